#!/usr/bin/env python3
"""Chronik against the Python Kafka clients: confluent-kafka and kafka-python.

Usage: python3 python_clients.py HOST:PORT

For each client: produce 1000 records with acks=all (every codec the client
has), read them all back with a group-less consumer (manual assignment; consumer
groups are python_groups.py's) and compare keys, values, headers and offsets;
then the admin clients create, describe, alter and delete topics.

Every check runs even if an earlier one failed; each prints PASS or FAIL with
the reason, and the exit status is 1 if any failed.
Needs: pip install confluent-kafka kafka-python lz4 python-snappy zstandard
"""

import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
from chronik_test_util import DEADLINE_S, check, expect, kp_read_partition, main, unique, wait_for  # noqa: E402

N = 1000


def records(tag):
    """(key, value, headers) triples; some null keys, some tombstones (never
    both: kafka-python refuses a record with neither)."""
    out = []
    for i in range(N):
        key = None if i % 10 == 3 else f"{tag}-key-{i}".encode()
        value = None if i % 17 == 5 and key is not None else (f"{tag} value {i} lorem ipsum; " * (1 + i % 13)).encode()
        headers = [] if i % 4 == 0 else [("index", str(i).encode()), ("tag", tag.encode())]
        out.append((key, value, headers))
    return out


def compare(ctx, want, got):
    """got: list of (offset, key, value, headers-as-list-of-(str, bytes))."""
    expect(len(got) == len(want), f"{ctx}: consumed {len(got)} records, produced {len(want)}")
    for i, ((off, k, v, h), (wk, wv, wh)) in enumerate(zip(got, want)):
        expect(off == i, f"{ctx}: record #{i} has offset {off} (gap or reorder)")
        expect(k == wk, f"{ctx}: offset {i}: key {k!r} != {wk!r}")
        expect(v == wv, f"{ctx}: offset {i}: value {v!r:.60} != {wv!r:.60}")
        expect(list(h) == list(wh), f"{ctx}: offset {i}: headers {h!r} != {wh!r}")


# ----- confluent-kafka (librdkafka 2.16) ----------------------------------------


def ck_consume(boot, topic, n):
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    # confluent-kafka insists on a group.id; with assign() and no commits the
    # group is never joined.
    c = Consumer(
        {
            "bootstrap.servers": boot,
            "group.id": "chronik-compat-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    got, errors = [], []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            m = c.poll(0.2)
            if m is not None:
                if m.error() is None:
                    got.append((m.offset(), m.key(), m.value(), m.headers() or []))
                elif m.error().code() == KafkaError._PARTITION_EOF:
                    if len(got) >= n:
                        break
                else:
                    errors.append(str(m.error()))
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: consumed {len(got)} of {n} in {DEADLINE_S}s; errors {errors[:5]}"
                )
    finally:
        c.close()
    return got


def ck_round_trip(boot, codec):
    from confluent_kafka import Producer

    topic = unique(f"py-ck-{codec}")
    want = records(topic)
    p = Producer(
        {
            "bootstrap.servers": boot,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": 10,
        }
    )
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.offset() if err is None else None))

    for k, v, h in want:
        while True:
            try:
                p.produce(topic, value=v, key=k, headers=h or None, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(DEADLINE_S)
    expect(left == 0, f"{topic}: {left} records still unacknowledged after {DEADLINE_S}s")
    errs = [e for e, _ in reports if e is not None]
    expect(not errs, f"{topic}: {len(errs)} delivery errors, e.g. {errs[:3]}")
    offsets = sorted(o for _, o in reports)
    expect(offsets == list(range(N)), f"{topic}: acknowledged offsets are not 0..{N - 1}")
    compare(f"confluent-kafka {codec}", want, ck_consume(boot, topic, N))


def ck_admin(boot):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    a = AdminClient({"bootstrap.servers": boot})
    topic = unique("py-ck-admin")
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=2, replication_factor=1, config={"retention.ms": "123456"})],
        request_timeout=30,
    )
    fs[topic].result(30)
    md = wait_for("topic in metadata", lambda: a.list_topics(topic, timeout=10).topics.get(topic))
    expect(md.error is None and len(md.partitions) == 2, f"metadata: {md.error} {md.partitions}")

    res = ConfigResource(ResourceType.TOPIC, topic)

    def describe():
        return a.describe_configs([res], request_timeout=30)[res].result(30)

    cfg = describe()
    expect(cfg["retention.ms"].value == "123456", f"retention.ms after create: {cfg['retention.ms']}")

    inc = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "777777", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    a.incremental_alter_configs([inc], request_timeout=30)[inc].result(30)
    cfg = describe()
    expect(cfg["retention.ms"].value == "777777", f"retention.ms after incremental alter: {cfg['retention.ms']}")

    fs = a.create_partitions([NewPartitions(topic, 4)], request_timeout=30)
    fs[topic].result(30)
    wait_for("4 partitions", lambda: len(a.list_topics(topic, timeout=10).topics[topic].partitions) == 4)

    try:
        a.create_topics([NewTopic(topic, 1, 1)], request_timeout=30)[topic].result(30)
        raise AssertionError("duplicate CreateTopics succeeded")
    except KafkaException as e:
        expect(e.args[0].name() == "TOPIC_ALREADY_EXISTS", f"duplicate create: {e}")

    a.delete_topics([topic], request_timeout=30)[topic].result(30)
    wait_for("topic gone", lambda: topic not in a.list_topics(timeout=10).topics)


# ----- kafka-python 3.x ---------------------------------------------------------


def kp_consume(boot, topic, n):
    recs, end = kp_read_partition(boot, topic, n)
    # Nothing beyond what was produced.
    expect(end == n, f"{topic}: end offset {end}, produced {n}")
    return [(r.offset, r.key, r.value, [(k, v) for k, v in (r.headers or [])]) for r in recs]


def kp_round_trip(boot, codec, idempotence):
    from kafka import KafkaProducer

    topic = unique(f"py-kp-{codec or 'none'}")
    want = records(topic)
    kw = {} if idempotence is None else {"enable_idempotence": idempotence}
    p = KafkaProducer(
        bootstrap_servers=boot,
        acks="all",
        compression_type=codec,
        linger_ms=10,
        **kw,
    )
    try:
        futs = [p.send(topic, value=v, key=k, headers=h, partition=0) for k, v, h in want]
        p.flush(timeout=DEADLINE_S)
        offsets = sorted(f.get(timeout=DEADLINE_S).offset for f in futs)
    finally:
        p.close(timeout=10)
    expect(offsets == list(range(N)), f"{topic}: acknowledged offsets are not 0..{N - 1}")
    compare(f"kafka-python {codec}", want, kp_consume(boot, topic, N))


def kp_admin(boot):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    a = KafkaAdminClient(bootstrap_servers=boot)
    topic = unique("py-kp-admin")
    try:
        a.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1, "configs": {"retention.ms": "123456"}}}
        )
        wait_for("topic listed", lambda: topic in a.list_topics())
        desc = a.describe_topics([topic])
        expect(len(desc) == 1 and len(desc[0]["partitions"]) == 3, f"describe_topics: {desc}")

        def retention():
            cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            try:
                return cfg["topic"][topic]["retention.ms"]["value"]
            except (KeyError, TypeError):
                raise AssertionError(f"describe_configs has no retention.ms: {cfg!r:.600}") from None

        expect(retention() == "123456", f"retention.ms after create: {retention()}")
        a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "555555"})])
        expect(retention() == "555555", f"retention.ms after alter_configs: {retention()}")

        try:
            a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
            raise AssertionError("duplicate create_topics succeeded")
        except TopicAlreadyExistsError:
            pass

        a.delete_topics([topic])
        wait_for("topic gone", lambda: topic not in a.list_topics())
    finally:
        a.close()


def run_checks(boot):
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        check(f"confluent-kafka round trip {codec}")(ck_round_trip)(boot, codec)
    check("confluent-kafka admin")(ck_admin)(boot)
    for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
        check(f"kafka-python round trip {codec or 'none'}")(kp_round_trip)(boot, codec, False)
    # kafka-python 3.x defaults to enable_idempotence=True (needs InitProducerId).
    check("kafka-python round trip with default settings (idempotence)")(kp_round_trip)(boot, None, None)
    check("kafka-python admin")(kp_admin)(boot)


if __name__ == "__main__":
    main(__doc__, run_checks)
