#!/usr/bin/env python3
"""Chronik's consumer groups and idempotent producer against the Python Kafka
clients: confluent-kafka and kafka-python.

Usage: python3 python_groups.py HOST:PORT   (a broker started with
--group-initial-rebalance-delay-ms 0)

For each client: two members of one group, each polled by its own thread,
share a 4-partition topic; once both hold partitions (two each, none twice),
400 records are produced with acks=all, and each must reach the member that
owns its partition exactly once; every record is committed synchronously,
and after the members close the group's committed offsets are the end offsets.
Then kafka-python's KafkaProducer with enable_idempotence=True produces and
reads back, and its KafkaAdminClient lists and describes the groups, fetches
their committed offsets and deletes one.

Every check runs even if an earlier one failed; each prints PASS or FAIL with
the reason, and the exit status is 1 if any failed.
Needs: pip install confluent-kafka kafka-python
"""

import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
from chronik_test_util import DEADLINE_S, check, expect, kp_read_partition, main, unique, wait_for  # noqa: E402

PARTITIONS = 4
N = 400

# Groups the admin check describes, filled in by the group checks:
# group id -> (topic, committed offsets per partition).
GROUPS = {}


class Members:
    """Member threads of one group; `poll_one(member)` is run by each thread
    until `stop` and returns (partition, offset, value) records it consumed
    and committed; `assignment(member)` its partitions now."""

    def __init__(self, names, make, poll_one, assignment, close):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.got = []  # (member name, partition, offset, value)
        self.assigned = {n: set() for n in names}
        self.errors = []
        self.threads = []
        for name in names:
            t = threading.Thread(target=self._run, args=(name, make, poll_one, assignment, close), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, name, make, poll_one, assignment, close):
        member = make(name)
        try:
            while not self.stop.is_set():
                try:
                    recs = poll_one(member)
                except Exception as e:  # noqa: BLE001 - a test failure, reported below
                    with self.lock:
                        self.errors.append(f"{name}: {type(e).__name__}: {e}")
                    recs = []
                with self.lock:
                    self.assigned[name] = set(assignment(member))
                    self.got.extend((name, p, o, v) for p, o, v in recs)
        finally:
            close(member)

    def balanced(self):
        with self.lock:
            sets = list(self.assigned.values())
        every = [p for s in sets for p in s]
        return all(sets) and sorted(every) == list(range(PARTITIONS))

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(DEADLINE_S)
            expect(not t.is_alive(), "a member did not close in time")


def check_group_consumption(ctx, members, topic, produce):
    """Waits for the two members to share the partitions, produces, and checks
    each record reached its partition's owner exactly once."""
    try:
        wait_for(
            lambda: f"{ctx}: two members sharing {PARTITIONS} partitions; assigned {members.assigned}",
            members.balanced,
        )
        with members.lock:
            owner = {p: n for n, s in members.assigned.items() for p in s}
        produce(topic)
        wait_for(f"{ctx}: {N} records consumed", lambda: len(members.got) >= N)
        with members.lock:
            got = list(members.got)
            errors = list(members.errors)
            still = {p: n for n, s in members.assigned.items() for p in s}
    finally:
        members.close()
    expect(not errors, f"{ctx}: member errors: {errors[:5]}")
    expect(still == owner, f"{ctx}: the group rebalanced while records flowed: {owner} -> {still}")
    values = sorted(v for _, _, _, v in got)
    expect(values == sorted(f"{topic}-{i}".encode() for i in range(N)), f"{ctx}: records not each consumed once")
    for name, p, o, v in got:
        expect(owner[p] == name, f"{ctx}: {name} got {topic}/{p}@{o}, owned by {owner[p]}")


def produce_numbered(boot, topic):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5})
    errors = []
    for i in range(N):
        p.produce(
            topic,
            value=f"{topic}-{i}".encode(),
            partition=i % PARTITIONS,
            on_delivery=lambda err, _m: err and errors.append(err),
        )
        p.poll(0)
    left = p.flush(DEADLINE_S)
    expect(left == 0 and not errors, f"{topic}: {left} unacknowledged, errors {errors[:3]}")


def create_topic(boot, topic):
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": boot})
    a.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    wait_for(f"{topic} in metadata", lambda: len(a.list_topics(topic, timeout=10).topics[topic].partitions) == PARTITIONS)


def end_offsets(boot, topic):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": boot, "group.id": "chronik-compat-unused"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(PARTITIONS)]
    finally:
        c.close()


# ----- confluent-kafka (librdkafka) ----------------------------------------------


def ck_group(boot):
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    topic, group = unique("py-ck-group"), unique("py-ck-group")
    create_topic(boot, topic)

    def make(name):
        c = Consumer(
            {
                "bootstrap.servers": boot,
                "group.id": group,
                "client.id": name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "heartbeat.interval.ms": 500,
                "session.timeout.ms": 10000,
            }
        )
        c.subscribe([topic])
        return c

    def poll_one(c):
        m = c.poll(0.1)
        if m is None:
            return []
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                return []
            raise RuntimeError(str(m.error()))
        c.commit(message=m, asynchronous=False)
        return [(m.partition(), m.offset(), m.value())]

    def assignment(c):
        return [tp.partition for tp in c.assignment()]

    members = Members(["ck-a", "ck-b"], make, poll_one, assignment, lambda c: c.close())
    check_group_consumption("confluent-kafka", members, topic, lambda t: produce_numbered(boot, t))

    c = Consumer({"bootstrap.servers": boot, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
    finally:
        c.close()
    committed = [tp.offset for tp in sorted(tps, key=lambda tp: tp.partition)]
    ends = end_offsets(boot, topic)
    expect(committed == ends, f"committed offsets {committed} != end offsets {ends}")
    GROUPS[group] = (topic, committed)


# ----- kafka-python 3.x ----------------------------------------------------------


def kp_group(boot):
    from kafka import KafkaConsumer, TopicPartition

    topic, group = unique("py-kp-group"), unique("py-kp-group")
    create_topic(boot, topic)

    def make(name):
        c = KafkaConsumer(
            topic,
            bootstrap_servers=boot,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            heartbeat_interval_ms=500,
            session_timeout_ms=10000,
        )
        # kafka-python 3.0 can join before it has the topic's metadata: the
        # leader assigns nothing, rejoins on the metadata change, and once it
        # has performed the new assignment need_rejoin() is false, so poll
        # never collects the SyncGroup result and the member stays without
        # partitions until its session expires (1 run in 60 under load).
        # Having the metadata before the first poll avoids the empty round.
        wait_for(f"{name}: {topic} metadata", lambda: c.partitions_for_topic(topic))
        return c

    def poll_one(c):
        out = []
        for tp, recs in c.poll(timeout_ms=100).items():
            out.extend((tp.partition, r.offset, r.value) for r in recs)
        if out:
            c.commit()  # synchronous: the positions after what poll returned
        return out

    members = Members(
        ["kp-a", "kp-b"],
        make,
        poll_one,
        lambda c: [tp.partition for tp in c.assignment()],
        lambda c: c.close(),
    )
    check_group_consumption("kafka-python", members, topic, lambda t: produce_numbered(boot, t))

    c = KafkaConsumer(bootstrap_servers=boot, group_id=group, enable_auto_commit=False)
    try:
        committed = [c.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    finally:
        c.close()
    ends = end_offsets(boot, topic)
    expect(committed == ends, f"committed offsets {committed} != end offsets {ends}")
    GROUPS[group] = (topic, committed)


def kp_idempotent(boot):
    from kafka import KafkaProducer

    topic = unique("py-kp-idem")
    p = KafkaProducer(bootstrap_servers=boot, acks="all", enable_idempotence=True, linger_ms=5)
    try:
        futs = [p.send(topic, value=f"{topic}-{i}".encode(), partition=0) for i in range(N)]
        p.flush(timeout=DEADLINE_S)
        offsets = [f.get(timeout=DEADLINE_S).offset for f in futs]
    finally:
        p.close(timeout=10)
    expect(offsets == list(range(N)), f"{topic}: acknowledged offsets are not 0..{N - 1} in order")

    recs, end = kp_read_partition(boot, topic, N)
    expect(end == N, f"{topic}: end offset {end}, produced {N}")
    got = [(r.offset, r.value) for r in recs]
    expect(got == [(i, f"{topic}-{i}".encode()) for i in range(N)], f"{topic}: records read back differ")


def kp_admin(boot):
    from kafka.admin import KafkaAdminClient

    expect(len(GROUPS) == 2, f"the group checks did not both leave a group: {sorted(GROUPS)}")
    a = KafkaAdminClient(bootstrap_servers=boot)
    try:
        listed = {g["group_id"]: g for g in a.list_groups()}
        for group in GROUPS:
            g = listed.get(group)
            expect(g is not None, f"list_groups has no {group}: {sorted(listed)}")
            expect(
                (g["protocol_type"], g["group_state"]) == ("consumer", "Empty"),
                f"list_groups {group}: {g}",
            )
        empty = {g["group_id"] for g in a.list_groups(states_filter=["Empty"])}
        expect(set(GROUPS) <= empty, f"list_groups(states_filter=Empty) = {sorted(empty)}")

        described = a.describe_groups(list(GROUPS))
        for group in GROUPS:
            d = described[group]
            expect(
                (d["group_state"], d["protocol_type"], d["members"], d["error"]) == ("Empty", "consumer", [], None),
                f"describe_groups {group}: {d}",
            )

        for group, (topic, committed) in GROUPS.items():
            offsets = a.list_group_offsets(group)[group]
            got = {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}
            expect(got == dict(enumerate(committed)), f"list_group_offsets {group}: {got} != {committed}")

        gone = sorted(GROUPS)[0]
        r = a.delete_groups([gone, unique("py-never")])
        expect(sorted(r.values()) == ["GroupIdNotFoundError", "OK"] and r[gone] == "OK", f"delete_groups: {r}")
        left = {g["group_id"] for g in a.list_groups()}
        expect(gone not in left and sorted(GROUPS)[1] in left, f"groups after delete_groups: {sorted(left)}")
    finally:
        a.close()


def run_checks(boot):
    check("confluent-kafka consumer group of two, committed offsets")(ck_group)(boot)
    check("kafka-python consumer group of two, committed offsets")(kp_group)(boot)
    check("kafka-python idempotent producer")(kp_idempotent)(boot)
    check("kafka-python admin: list, describe, offsets, delete groups")(kp_admin)(boot)


if __name__ == "__main__":
    main(__doc__, run_checks)
