"""Kafka plumbing shared by the Kafka journal and the Kafka budget ledger.

* :class:`AckingProducer` -- an idempotent producer (``acks=all``) whose
  sends are awaitable: a poll thread serves librdkafka's delivery callbacks
  and resolves an asyncio future on the caller's loop, so the event loop
  never blocks on the broker.  The future yields the record's offset.
* :func:`ensure_topic` -- creates a topic with the given configuration if it
  is missing (an existing topic is left as it is).
* :func:`require_topics` -- checks topics exist (a read-only journal creates none).
* :func:`read_partition` -- reads one partition between two offsets.

``properties`` everywhere are extra librdkafka client settings (security
protocol, SASL, TLS files...), merged over the defaults here.  They are
never written to records.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streaming_agents.connectors.broker import ensure_topics
from streaming_agents.errors import ConfigError, InfrastructureError

__all__ = [
    "AckingProducer",
    "ensure_topic",
    "new_consumer",
    "offset_for_time",
    "read_partition",
    "require_topics",
    "watermarks",
]

_TIMEOUT_S = 30.0


def _client_conf(bootstrap: str, properties: Mapping[str, Any] | None) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap}
    conf.update(dict(properties or {}))
    return conf


class AckingProducer:
    """Idempotent ``acks=all`` producer; :meth:`send` is awaited, never blocking the loop."""

    def __init__(self, bootstrap: str, properties: Mapping[str, Any] | None = None) -> None:
        conf = _client_conf(bootstrap, properties)
        conf.update({"enable.idempotence": True, "acks": "all", "linger.ms": 2})
        self._producer = Producer(conf)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="journal-producer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> int:
        """Append one record; returns its offset once every in-sync replica has it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, err, msg)

        self._produce(topic, value, key, partition, delivered)
        return await future

    def send_nowait(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> None:
        """Append one record without waiting (delivered by :meth:`flush` at the latest)."""
        self._produce(topic, value, key, partition, None)

    def send_sync(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> int:
        """Append one record and block this thread until it is acknowledged (offset)."""
        done = threading.Event()
        outcome: list[Any] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            outcome.extend((err, msg))
            done.set()

        self._produce(topic, value, key, partition, delivered)
        if not done.wait(_TIMEOUT_S):
            raise InfrastructureError(f"no acknowledgement from Kafka for {topic} in {_TIMEOUT_S}s")
        err, msg = outcome
        if err is not None:
            raise InfrastructureError(f"Kafka refused a record for {topic}: {err}")
        return _offset(msg)

    def _produce(
        self, topic: str, value: bytes, key: bytes | None, partition: int | None, cb: Any
    ) -> None:
        kwargs: dict[str, Any] = {"value": value, "key": key}
        if partition is not None:
            kwargs["partition"] = partition
        if cb is not None:
            kwargs["on_delivery"] = cb
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                return
            except BufferError:
                self._producer.flush(1.0)  # the local queue is full: let it drain
            except KafkaException as exc:
                raise InfrastructureError(f"cannot append to {topic}: {exc}") from exc

    def flush(self, timeout_s: float = _TIMEOUT_S) -> None:
        self._producer.flush(timeout_s)

    def close(self) -> None:
        self.flush()
        self._stop.set()
        self._thread.join(timeout=5)


def _settle(future: asyncio.Future[int], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(InfrastructureError(f"Kafka refused a journal record: {err}"))
    else:
        future.set_result(_offset(msg))


def _offset(msg: Message) -> int:
    offset = msg.offset()
    if offset is None:
        raise InfrastructureError(f"Kafka returned a record without an offset ({msg.topic()})")
    return int(offset)


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    config: Mapping[str, str],
    properties: Mapping[str, Any] | None = None,
) -> None:
    """Create ``topic`` with ``config`` unless it exists; replication min(3, brokers)."""
    ensure_topics(_client_conf(bootstrap, properties), [topic], partitions, config=config)


def require_topics(
    bootstrap: str, topics: list[str], properties: Mapping[str, Any] | None = None
) -> None:
    """Raise :class:`ConfigError` unless every topic exists (a reader creates nothing)."""
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    admin = AdminClient(_client_conf(bootstrap, properties))
    try:
        meta = admin.list_topics(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise InfrastructureError(f"cannot list the topics of {bootstrap}: {exc}") from exc
    missing = [t for t in topics if t not in meta.topics or meta.topics[t].error is not None]
    if missing:
        raise ConfigError(f"no journal topic {', '.join(missing)} on {bootstrap}")


def new_consumer(bootstrap: str, properties: Mapping[str, Any] | None = None) -> Consumer:
    """A consumer for assigned partitions (no group membership, no commits)."""
    conf = _client_conf(bootstrap, properties)
    conf.update(
        {
            "group.id": "streaming-agents-journal-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    return Consumer(conf)


def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """Low and high watermark of one partition, asked of the broker."""
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=_TIMEOUT_S, cached=False
        )
    except KafkaException as exc:
        raise InfrastructureError(f"cannot read offsets of {topic}[{partition}]: {exc}") from exc
    return int(low), int(high)


def offset_for_time(consumer: Consumer, topic: str, partition: int, ms: int) -> int:
    """The first offset whose timestamp is at or after ``ms`` (the end if none)."""
    found = consumer.offsets_for_times([TopicPartition(topic, partition, ms)], timeout=_TIMEOUT_S)
    offset = found[0].offset
    if offset < 0 or offset == OFFSET_END:
        return watermarks(consumer, topic, partition)[1]
    return int(offset)


def read_partition(
    consumer: Consumer, topic: str, partition: int, start: int, end: int
) -> Iterator[Message]:
    """Records of ``partition`` at offsets ``[start, end)`` (``end``: a high watermark)."""
    if start >= end:
        return
    consumer.assign([TopicPartition(topic, partition, start)])
    try:
        while True:
            msg = consumer.poll(_TIMEOUT_S)
            if msg is None:
                raise InfrastructureError(f"no record from {topic}[{partition}] in {_TIMEOUT_S}s")
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return
                raise InfrastructureError(f"reading {topic}[{partition}]: {err}")
            if _offset(msg) >= end:
                return
            yield msg
            if _offset(msg) + 1 >= end:
                return
    finally:
        consumer.unassign()
