"""What the Python client scripts (python_clients.py, python_groups.py) share:
the check runner with its PASS/FAIL report, small assertion helpers, reading a
partition back with kafka-python, and the `main` that runs a script's checks
against the broker named on the command line.

A script imports this from its own directory (Python puts a script's
directory first on `sys.path`), so both run by path as before.
"""

import sys
import time
import traceback
import uuid

DEADLINE_S = 60

# (check name, passed) for every check run so far, in order.
RESULTS = []


def check(name, known_gap=None):
    """Runs a check; `known_gap` (a reason) marks one expected to fail until
    the broker grows a feature: its failure is reported as XFAIL and does not
    fail the run, and its success (XPASS) does, so the mark gets removed."""

    def wrap(fn):
        def run(*args):
            start = time.monotonic()
            failure = None
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - report everything
                failure = f"{type(e).__name__}: {e}"
                trace = traceback.format_exc()
            if known_gap:
                # An expected failure passes the run; an unexpected pass fails it.
                RESULTS.append((name, failure is not None))
                if failure:
                    print(f"XFAIL {name} (known gap: {known_gap}): {failure}", flush=True)
                else:
                    print(f"XPASS {name}: passes now; remove its known_gap mark", flush=True)
                return
            RESULTS.append((name, failure is None))
            if failure:
                print(f"FAIL {name}: {failure}", flush=True)
                print(trace, end="", file=sys.stderr)
            else:
                print(f"PASS {name} ({time.monotonic() - start:.1f}s)", flush=True)

        return run

    return wrap


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def wait_for(what, fn, timeout=DEADLINE_S):
    """Polls `fn` until it returns something true; `what` (a string, or a
    callable giving one at the timeout, for state worth seeing then) names
    the condition in the timeout's message."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            what = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def kp_read_partition(boot, topic, n):
    """Reads partition 0 of `topic` from its start with a group-less
    kafka-python consumer until `n` records came, and returns them
    (kafka-python's ConsumerRecords) with the partition's end offset."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(
        bootstrap_servers=boot,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(got) < n:
            for recs in c.poll(timeout_ms=200).values():
                got.extend(recs)
            expect(time.monotonic() < deadline, f"{topic}: consumed {len(got)} of {n} in {DEADLINE_S}s")
        return got, c.end_offsets([tp])[tp]
    finally:
        c.close()


def main(doc, run_checks):
    """Runs `run_checks(bootstrap)` against the broker named by the only
    command-line argument (printing `doc`, the script's usage, without one),
    prints the client versions first and the tally last, and exits 1 if any
    check failed."""
    if len(sys.argv) != 2:
        print(doc)
        sys.exit(2)
    boot = sys.argv[1]
    import confluent_kafka
    import kafka

    print(
        f"confluent-kafka {confluent_kafka.version()[0]} (librdkafka {confluent_kafka.libversion()[0]}), "
        f"kafka-python {kafka.__version__}, broker {boot}",
        flush=True,
    )
    run_checks(boot)

    failed = [n for n, ok in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed", flush=True)
    if failed:
        print("FAILED: " + "; ".join(failed), flush=True)
        sys.exit(1)
