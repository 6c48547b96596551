#!/usr/bin/env bash
# Chronik against kcat (Debian's kcat 1.7.1, librdkafka 2.0.2).
#
# Usage: kcat.sh HOST:PORT
#
# For every codec: produce a file of key:value lines with acks=all and a header,
# consume it back from the beginning to the end of the partition, and diff keys,
# values, headers and offsets. Then `kcat -L` must list the broker and the topics.
# Exits non-zero with a message naming the failed step.
set -euo pipefail

BOOT=${1:?usage: kcat.sh HOST:PORT}
N=1000
T=60 # seconds any single kcat run may take
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL kcat: $*" >&2
    exit 1
}

kcat -V | head -n 2
run=$(date +%s%N | tail -c 7)

for i in $(seq 0 $((N - 1))); do
    printf 'key-%d:value %d the quick brown fox jumps over the lazy dog %d\n' "$i" "$i" "$((i * i))"
done >"$tmp/in.txt"
seq 0 $((N - 1)) >"$tmp/offsets.want"
sed 's/$/|h1=v1,h2=v2/' "$tmp/in.txt" >"$tmp/with-headers.want"

for codec in none gzip snappy lz4 zstd; do
    topic="kcat-$codec-$run"
    timeout $T kcat -P -b "$BOOT" -t "$topic" -p 0 -K: -X acks=all -z "$codec" \
        -H h1=v1 -H h2=v2 -l "$tmp/in.txt" ||
        fail "$codec: produce (kcat -P) failed"
    timeout $T kcat -C -b "$BOOT" -t "$topic" -p 0 -o beginning -e -q \
        -f '%o\t%k:%s|%h\n' >"$tmp/out.txt" ||
        fail "$codec: consume (kcat -C -e) failed"
    cut -f1 "$tmp/out.txt" >"$tmp/offsets.got"
    cut -f2- "$tmp/out.txt" >"$tmp/records.got"
    diff -q "$tmp/offsets.want" "$tmp/offsets.got" >/dev/null ||
        fail "$codec: offsets are not 0..$((N - 1)): $(diff "$tmp/offsets.want" "$tmp/offsets.got" | head -n 5)"
    diff -q "$tmp/with-headers.want" "$tmp/records.got" >/dev/null ||
        fail "$codec: records differ: $(diff "$tmp/with-headers.want" "$tmp/records.got" | head -n 5)"
    echo "PASS kcat round trip $codec ($N records)"
done

# Metadata: the broker and every topic created above, one partition each.
timeout $T kcat -L -b "$BOOT" >"$tmp/meta.txt" || fail "kcat -L failed"
grep -Eq '^ +broker [0-9]+ at ' "$tmp/meta.txt" || fail "kcat -L lists no broker: $(head -n 5 "$tmp/meta.txt")"
for codec in none gzip snappy lz4 zstd; do
    grep -q "topic \"kcat-$codec-$run\" with 1 partitions" "$tmp/meta.txt" ||
        fail "kcat -L does not list kcat-$codec-$run with 1 partition: $(cat "$tmp/meta.txt")"
done
timeout $T kcat -L -J -b "$BOOT" -t "kcat-none-$run" >"$tmp/meta.json" || fail "kcat -L -J failed"
python3 - "$tmp/meta.json" "kcat-none-$run" <<'EOF' || fail "kcat -L -J metadata is wrong"
import json, sys
md = json.load(open(sys.argv[1]))
assert md["brokers"], md
t = [t for t in md["topics"] if t["topic"] == sys.argv[2]]
assert len(t) == 1 and "error" not in t[0], md
p = t[0]["partitions"]
assert len(p) == 1 and p[0]["leader"] == md["brokers"][0]["id"], md
EOF
echo "PASS kcat -L metadata"
echo "kcat: all checks passed"
