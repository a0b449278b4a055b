"""Traffic for a chaos run: a producer at a fixed rate and a committed-output collector.

:class:`EventProducer` writes ``{"k": key, "seq": n}`` records round-robin over
the keys (so each key's ``seq`` counts 0, 1, 2, ...) with an idempotent
producer: a broker restart delays records but neither loses nor repeats them.
An input counts once its delivery was acknowledged.

:class:`OutputCollector` reads the output topic as a ``read_committed``
consumer for the whole run, recording each record's offset and when it was
seen: what a downstream system sees of the job, and the clock for recovery
times.

Both take a client-security setting (``security``: on the secured broker,
the admin's; None is PLAINTEXT).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from streaming_agents.connectors.security import KafkaSecurity, librdkafka_config

__all__ = ["EventProducer", "OutputCollector", "Received", "key_name"]


def key_name(index: int) -> str:
    return f"key-{index:04d}"


class _PausableClient(threading.Thread):
    """A thread around one librdkafka client that :meth:`pause` closes and :meth:`resume` reopens.

    Around a planned broker restart: the job must survive it, the harness's own
    librdkafka client need not (one was seen never to reconnect).  Subclasses
    implement ``_open``, ``_close`` and ``_step`` (one unit of work).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._pause, self._idle = threading.Event(), threading.Event()

    def _open(self) -> Any:
        raise NotImplementedError

    def _close(self, client: Any) -> None:
        raise NotImplementedError

    def _step(self, client: Any) -> None:
        raise NotImplementedError

    def run(self) -> None:
        client: Any = None
        try:
            while not self._stop_event.is_set():
                if self._pause.is_set():
                    if client is not None:
                        self._close(client)
                        client = None
                    self._idle.set()
                    self._stop_event.wait(0.05)
                    continue
                if client is None:
                    client = self._open()
                    self._idle.clear()
                self._step(client)
        finally:
            if client is not None:
                self._close(client)

    def pause(self) -> None:
        """Close the client (a producer flushes first), then idle until :meth:`resume`."""
        self._pause.set()
        self._idle.wait()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class EventProducer(_PausableClient):
    """Produces ``rate`` events per second over ``keys`` keys until :meth:`stop`."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        keys: int,
        rate: float,
        *,
        security: KafkaSecurity | None = None,
    ) -> None:
        super().__init__("chaos-producer")
        self.security = security
        self.bootstrap, self.topic, self.keys, self.rate = bootstrap, topic, keys, rate
        self.delivered: list[tuple[str, int]] = []
        self.errors: list[str] = []
        self.sent = 0
        self.produced_at: dict[tuple[str, int], float] = {}
        self._paced_from = time.monotonic()

    def _on_delivery(self, err: Any, msg: Any) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(str(err))
                return
            event = json.loads(msg.value())
            self.delivered.append((event["k"], int(event["seq"])))

    def _open(self) -> Producer:
        self._paced_from = time.monotonic() - self.sent / self.rate  # no burst after a pause
        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                **librdkafka_config(self.security),
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 300_000,
                "log_level": 2,
            }
        )

    def _close(self, producer: Producer) -> None:
        left = producer.flush(300)
        if left:
            with self._lock:
                self.errors.append(f"{left} records unacknowledged")

    def _step(self, producer: Producer) -> None:
        key, seq = key_name(self.sent % self.keys), self.sent // self.keys
        value = json.dumps({"k": key, "seq": seq})
        self.produced_at[(key, seq)] = time.monotonic()
        producer.produce(self.topic, key=key, value=value, on_delivery=self._on_delivery)
        self.sent += 1
        producer.poll(0)
        pause = self._paced_from + self.sent / self.rate - time.monotonic()
        if pause > 0:
            self._stop_event.wait(pause)

    def inputs(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self.delivered)


@dataclass(frozen=True)
class Received:
    """One committed output: where it is in the topic, when it was seen, what it says."""

    partition: int
    offset: int
    seen_at: float
    value: dict[str, Any]


class OutputCollector(_PausableClient):
    """Reads ``topic`` from the start (``read_committed``) until :meth:`stop`."""

    def __init__(
        self, bootstrap: str, topic: str, *, security: KafkaSecurity | None = None
    ) -> None:
        super().__init__("chaos-collector")
        self.security = security
        self.bootstrap, self.topic = bootstrap, topic
        self.errors: list[str] = []
        self._records: list[Received] = []
        self._next: dict[int, int] = {}  # partition -> next offset to read

    def _open(self) -> Consumer:
        """A ``read_committed`` consumer assigned where the previous one stopped."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                **librdkafka_config(self.security),
                "group.id": f"chaos-verify-{uuid.uuid4().hex[:12]}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "log_level": 2,
            }
        )
        partitions = consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions
        consumer.assign(
            [TopicPartition(self.topic, p, self._next.get(p, OFFSET_BEGINNING)) for p in partitions]
        )
        return consumer

    def _close(self, consumer: Consumer) -> None:
        consumer.close()

    def _step(self, consumer: Consumer) -> None:
        msg = consumer.poll(0.1)
        if msg is None:
            return
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF and err.fatal():
                self.errors.append(str(err))
            return  # transient errors heal themselves
        record = Received(
            int(msg.partition() or 0),
            int(msg.offset() or 0),
            time.monotonic(),
            json.loads(msg.value() or b"{}"),
        )
        with self._lock:
            self._records.append(record)
            self._next[record.partition] = record.offset + 1

    def records(self) -> list[Received]:
        with self._lock:
            return list(self._records)

    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def first_new(self, offsets: dict[int, int], not_before: float = 0.0) -> float | None:
        """When the first record at or past ``offsets`` (per partition) was seen."""
        with self._lock:
            for record in self._records:
                new = record.offset >= offsets.get(record.partition, 0)
                if new and record.seen_at >= not_before:
                    return record.seen_at
        return None

    def distinct(self) -> set[tuple[str, int]]:
        with self._lock:
            return {(r.value["key"], int(r.value["input"]["seq"])) for r in self._records}
