"""Kafka reads and checks a replay needs, outside Flink (confluent-kafka).

Nothing here joins a consumer group or commits an offset: partitions are
assigned directly, so reading a production topic leaves every group's
offsets as they were.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streaming_agents.connectors.broker import ensure_topics
from streaming_agents.connectors.security import KafkaSecurity, librdkafka_config
from streaming_agents.errors import InfrastructureError
from streaming_agents.replay.errors import NotAuthorized, UnsafeTarget
from streaming_agents.replay.ranges import topic_partitions

__all__ = [
    "TopicRecord",
    "check_shadow_target",
    "ensure_topic",
    "group_offsets",
    "read_topic",
    "refuse_unsafe_names",
    "topic_end_offsets",
]


@dataclass(frozen=True)
class TopicRecord:
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None


def _consumer(bootstrap: str, security: KafkaSecurity | None, **extra: Any) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            **librdkafka_config(security),
            "bootstrap.servers": bootstrap,
            "group.id": f"sa-replay-read-{uuid.uuid4().hex[:10]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **extra,
        }
    )


def topic_end_offsets(
    bootstrap: str, topic: str, *, security: KafkaSecurity | None = None
) -> dict[int, int]:
    """High watermark per partition (raises :class:`MissingTopic`)."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap, security)
    try:
        parts = topic_partitions(consumer, topic)
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]) for p in parts
        }
    finally:
        consumer.close()


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    start: dict[int, int] | None = None,
    timeout_s: float = 120.0,
    security: KafkaSecurity | None = None,
) -> list[TopicRecord]:
    """Every committed record of ``topic`` (from ``start`` offsets, else the beginning)
    up to each partition's end when the read starts: a topic written to all along
    (production's input during a dark launch) is read up to that end, not chased."""
    return list(_iter_topic(bootstrap, topic, start=start, timeout_s=timeout_s, security=security))


def _iter_topic(
    bootstrap: str,
    topic: str,
    *,
    start: dict[int, int] | None,
    timeout_s: float,
    security: KafkaSecurity | None,
) -> Iterator[TopicRecord]:
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    consumer = _consumer(bootstrap, security, **{"enable.partition.eof": True})
    try:
        parts = topic_partitions(consumer, topic)
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in parts}
        begin = {p: (start or {}).get(p, OFFSET_BEGINNING) for p in parts}
        pending = {p for p in parts if marks[p][1] > max(marks[p][0], (start or {}).get(p, 0))}
        if not pending:
            return
        consumer.assign([TopicPartition(topic, p, begin[p]) for p in sorted(pending)])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"reading {topic} took over {timeout_s:.0f} s (partitions {sorted(pending)})"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                if err.code() in _refused(KafkaError):
                    raise NotAuthorized(f"reading {topic}: the broker refused: {err.str()}")
                raise InfrastructureError(f"reading {topic} failed: {err}")
            part, offset = msg.partition(), msg.offset()
            if part not in pending or offset >= marks[part][1]:
                pending.discard(part)  # past the end this read started with
                continue
            _kind, ts = msg.timestamp()
            yield TopicRecord(part, offset, int(ts), msg.value())
            if offset >= marks[part][1] - 1:
                pending.discard(part)
    finally:
        consumer.close()


def _refused(kafka_error: Any) -> tuple[int, ...]:
    """Error codes of a request the broker's ACLs refused."""
    return (kafka_error.TOPIC_AUTHORIZATION_FAILED, kafka_error.GROUP_AUTHORIZATION_FAILED)


def ensure_topic(
    bootstrap: str, topic: str, partitions: int, *, security: KafkaSecurity | None = None
) -> bool:
    """Create ``topic`` when missing; True if it was created."""
    client = {**librdkafka_config(security), "bootstrap.servers": bootstrap}
    return bool(ensure_topics(client, [topic], partitions))


def refuse_unsafe_names(
    shadow_topic: str, *, source_topic: str, production_topic: str | None
) -> None:
    """The shadow topic must be neither the input nor the production output."""
    if not shadow_topic:
        raise UnsafeTarget("a shadow topic is needed")
    if shadow_topic == source_topic:
        raise UnsafeTarget(f"the shadow topic {shadow_topic!r} is the topic being read")
    if production_topic is not None and shadow_topic == production_topic:
        raise UnsafeTarget(f"the shadow topic {shadow_topic!r} is the production output topic")


def check_shadow_target(
    bootstrap: str,
    shadow_topic: str,
    *,
    source_topic: str,
    production_topic: str | None,
    security: KafkaSecurity | None = None,
) -> None:
    """Refuse shadow topics that are an input, the production output or hold its records.

    The last few records of each partition must be shadow outputs
    (``"shadow": true``); an empty topic is fine.
    """
    refuse_unsafe_names(shadow_topic, source_topic=source_topic, production_topic=production_topic)
    ends = topic_end_offsets(bootstrap, shadow_topic, security=security)
    start = {p: max(0, high - 5) for p, high in ends.items()}
    records = read_topic(bootstrap, shadow_topic, start=start, timeout_s=30, security=security)
    for record in records:
        if not _is_shadow(record.value):
            raise UnsafeTarget(
                f"topic {shadow_topic!r} holds records that are not shadow outputs (partition "
                f"{record.partition}, offset {record.offset}): is it a production topic?"
            )


def _is_shadow(value: bytes | None) -> bool:
    try:
        doc = json.loads(value or b"")
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("shadow") is True


def group_offsets(
    bootstrap: str, group: str, topic: str, *, security: KafkaSecurity | None = None
) -> dict[int, int]:
    """The committed offsets of consumer group ``group`` on ``topic`` (-1001: none)."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap, security, **{"group.id": group})
    try:
        parts = topic_partitions(consumer, topic)
        found = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return {tp.partition: int(tp.offset) for tp in found}
    finally:
        consumer.close()
