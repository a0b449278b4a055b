"""The Kafka test broker is real: records round-trip and aborted transactions stay hidden."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from streaming_agents.testing.kafka import LocalKafka, consume_committed, end_offsets, produce


def test_produce_consume_round_trip(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("roundtrip", partitions=2)
    records = [(f"k{i % 3}", f"v{i}") for i in range(20)]
    produce(kafka_bootstrap, topic, records)

    got = consume_committed(kafka_bootstrap, topic, expected=20, timeout_s=30, linger_s=1.0)

    assert sorted((m.key().decode(), m.value().decode()) for m in got) == sorted(records)
    # Same key -> same partition: the broker really partitions by key.
    partitions_by_key: dict[str, set[int]] = {}
    for m in got:
        partitions_by_key.setdefault(m.key().decode(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions_by_key.values())


def test_aborted_transaction_is_invisible(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("txn")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, value=f"aborted-{i}")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"committed-{i}")
    producer.commit_transaction(30)

    got = consume_committed(kafka_bootstrap, topic, expected=None, timeout_s=30, idle_s=2.0)
    assert [m.value().decode() for m in got] == [f"committed-{i}" for i in range(3)]
    # 8 records + an abort marker + a commit marker.
    assert end_offsets(kafka_bootstrap, topic) == {0: 10}

    # The aborted records were really written: a read_uncommitted reader sees all 8.
    raw = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"raw-{topic}",
            "isolation.level": "read_uncommitted",
            "auto.offset.reset": "earliest",
        }
    )
    raw.subscribe([topic])
    values: list[str] = []
    for _ in range(150):
        msg = raw.poll(0.2)
        if msg is not None and msg.error() is None:
            values.append(msg.value().decode())
        if len(values) >= 8:
            break
    raw.close()
    assert sorted(values) == sorted(
        [f"aborted-{i}" for i in range(5)] + [f"committed-{i}" for i in range(3)]
    )


def test_restart_keeps_data(
    local_kafka: LocalKafka | None, kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    if local_kafka is None:
        pytest.skip("broker is external or a container; only LocalKafka can be restarted")
    topic = topic_factory("restart")
    produce(kafka_bootstrap, topic, [(None, "before")])
    old_pid = local_kafka.pid
    local_kafka.restart()
    assert local_kafka.pid != old_pid and local_kafka.bootstrap == kafka_bootstrap
    produce(kafka_bootstrap, topic, [(None, "after")])
    got = consume_committed(kafka_bootstrap, topic, expected=2, linger_s=1.0)
    assert [m.value() for m in got] == [b"before", b"after"]
