"""Traffic for a chaos run: a producer at a fixed rate and a committed-output collector.

:class:`EventProducer` writes ``{"k": key, "seq": n}`` records round-robin over
the keys (so each key's ``seq`` counts 0, 1, 2, ...) with an idempotent
producer: a broker restart delays records but neither loses nor repeats them.
An input counts once its delivery was acknowledged.

:class:`OutputCollector` reads the output topic as a ``read_committed``
consumer for the whole run, recording each record's offset and when it was
seen: what a downstream system sees of the job, and the clock for recovery
times.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer

__all__ = ["EventProducer", "OutputCollector", "Received", "key_name"]


def key_name(index: int) -> str:
    return f"key-{index:04d}"


class EventProducer(threading.Thread):
    """Produces ``rate`` events per second over ``keys`` keys until :meth:`stop`."""

    def __init__(self, bootstrap: str, topic: str, keys: int, rate: float) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.bootstrap, self.topic, self.keys, self.rate = bootstrap, topic, keys, rate
        self.delivered: list[tuple[str, int]] = []
        self.errors: list[str] = []
        self.sent = 0
        self.produced_at: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def _on_delivery(self, err: Any, msg: Any) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(str(err))
                return
            event = json.loads(msg.value())
            self.delivered.append((event["k"], int(event["seq"])))

    def run(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 300_000,
                # a broker restart is planned: its "connection refused" lines are noise
                "log_level": 2,
            }
        )
        started = time.monotonic()
        while not self._stop_event.is_set():
            key, seq = key_name(self.sent % self.keys), self.sent // self.keys
            value = json.dumps({"k": key, "seq": seq})
            self.produced_at[(key, seq)] = time.monotonic()
            producer.produce(self.topic, key=key, value=value, on_delivery=self._on_delivery)
            self.sent += 1
            producer.poll(0)
            pause = started + self.sent / self.rate - time.monotonic()
            if pause > 0:
                self._stop_event.wait(pause)
        left = producer.flush(300)
        if left:
            with self._lock:
                self.errors.append(f"{left} records unacknowledged at the end")

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

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


class OutputCollector(threading.Thread):
    """Reads ``topic`` from the start (``read_committed``) until :meth:`stop`."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="chaos-collector", daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.errors: list[str] = []
        self._records: list[Received] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"chaos-verify-{uuid.uuid4().hex[:12]}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "log_level": 2,
            }
        )
        consumer.subscribe([self.topic])
        try:
            while not self._stop_event.is_set():
                msg = consumer.poll(0.1)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF and err.fatal():
                        self.errors.append(str(err))
                    continue  # transient errors (a broker restart) heal themselves
                record = Received(
                    int(msg.partition() or 0),
                    int(msg.offset() or 0),
                    time.monotonic(),
                    json.loads(msg.value() or b"{}"),
                )
                with self._lock:
                    self._records.append(record)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

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
