"""The Kafka budget ledger: one spend per (agent, window) that every host agrees on.

Algorithm.  The ledger is one single-partition topic, so its offsets are a
total order all hosts see alike.  A reservation is a record
``{reserve: id, agent, window, tokens, cost, limits}`` produced with
``acks=all``; each host's tailing consumer applies records in offset order
with one deterministic rule: a reservation is granted iff the window's spend
from granted reservations and settlements at lower offsets plus its own
estimate fits its limits (:func:`fits`).  The reserving subtask waits until
its own tailing consumer reaches its record and reads the verdict it
computed; every other host computes the same verdict from the same prefix,
so no lock, leader or coordinator is needed.  After the call a settlement
record adds ``actual - reserved``.  The bound on overshoot is the one in
:mod:`streaming_agents.journal.ledger`.

Reads are bounded: a ledger starts reading at its window's start minus two
minutes (records are stamped by the broker, ``LogAppendTime``; hosts whose
clocks are more than two minutes apart could disagree about the first
records of a window).  Retention: ``delete`` after the longer of 7 days and
two windows.  Records hold agent names and figures only.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from streaming_agents.errors import InfrastructureError
from streaming_agents.journal.kafka_io import (
    AckingProducer,
    ensure_topic,
    new_consumer,
    offset_for_time,
)
from streaming_agents.journal.ledger import BudgetLimits, Reservation, fits

__all__ = ["KafkaLedger"]

_SKEW_MS = 120_000
_VERDICT_TIMEOUT_S = 60.0


class KafkaLedger:
    """Reservations and settlements in a single-partition topic; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        window_s: int,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap, self.topic, self.window_s = bootstrap, topic, window_s
        self.properties = dict(properties or {})
        self._spend: dict[tuple[str, int], tuple[int, float]] = {}
        self._waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._producer: AckingProducer | None = None
        self._thread: threading.Thread | None = None
        self._starting: asyncio.Future[None] | None = None

    def _start(self) -> None:
        retention_ms = max(7 * 24 * 3600 * 1000, 2 * self.window_s * 1000)
        config = {"cleanup.policy": "delete", "retention.ms": str(retention_ms),
                  "message.timestamp.type": "LogAppendTime"}  # fmt: skip
        ensure_topic(self.bootstrap, self.topic, 1, config, self.properties)
        consumer = new_consumer(self.bootstrap, self.properties)
        window_start_ms = int(time.time() // self.window_s) * self.window_s * 1000
        start = offset_for_time(consumer, self.topic, 0, window_start_ms - _SKEW_MS)
        consumer.assign([TopicPartition(self.topic, 0, start)])
        self._producer = AckingProducer(self.bootstrap, self.properties)
        self._thread = threading.Thread(
            target=self._tail, args=(consumer,), name="budget-ledger", daemon=True
        )
        self._thread.start()

    async def _ensure_started(self) -> AckingProducer:
        if self._starting is None:
            self._starting = asyncio.ensure_future(asyncio.to_thread(self._start))
        await asyncio.shield(self._starting)
        assert self._producer is not None
        return self._producer

    def _tail(self, consumer: Any) -> None:
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.1)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        time.sleep(0.1)  # transient broker trouble: librdkafka reconnects
                    continue
                self._apply(json.loads(msg.value() or b"{}"))
        finally:
            consumer.close()

    def _apply(self, record: dict[str, Any]) -> None:
        slot = (str(record.get("agent")), int(record.get("window", 0)))
        tokens, cost = int(record.get("tokens", 0)), float(record.get("cost", 0.0))
        with self._lock:
            spent = self._spend.get(slot, (0, 0.0))
            rid = record.get("reserve")
            if rid is None:  # a settlement
                self._spend[slot] = (spent[0] + tokens, spent[1] + cost)
                return
            limits = BudgetLimits(record.get("max_tokens"), record.get("max_cost_usd"))
            granted = fits(limits, spent, tokens, cost)
            if granted:
                self._spend[slot] = (spent[0] + tokens, spent[1] + cost)
            waiter = self._waiters.pop(str(rid), None)
            oldest = slot[1] - 1
            for stale in [s for s in self._spend if s[0] == slot[0] and s[1] < oldest]:
                del self._spend[stale]
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_resolve, future, granted)

    async def reserve(
        self, agent: str, window: int, limits: BudgetLimits, tokens: int, cost: float
    ) -> Reservation | None:
        producer = await self._ensure_started()
        rid = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        verdict: asyncio.Future[bool] = loop.create_future()
        with self._lock:
            self._waiters[rid] = (loop, verdict)
        record = {"reserve": rid, "agent": agent, "window": window, "tokens": tokens,
                  "cost": cost, "max_tokens": limits.max_tokens,
                  "max_cost_usd": limits.max_cost_usd}  # fmt: skip
        try:
            await producer.send(self.topic, json.dumps(record).encode(), partition=0)
            granted = await asyncio.wait_for(verdict, _VERDICT_TIMEOUT_S)
        except TimeoutError as exc:
            raise InfrastructureError(f"budget ledger {self.topic} did not answer") from exc
        finally:
            with self._lock:
                self._waiters.pop(rid, None)
        return Reservation(rid, agent, window, tokens, cost) if granted else None

    async def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        producer = await self._ensure_started()
        record = {"agent": reservation.agent, "window": reservation.window,
                  "tokens": tokens - reservation.tokens,
                  "cost": cost - reservation.cost}  # fmt: skip
        await producer.send(self.topic, json.dumps(record).encode(), partition=0)

    def spent(self, agent: str, window: int) -> tuple[int, float]:
        """This host's view (as far as its consumer has read)."""
        with self._lock:
            return self._spend.get((agent, window), (0, 0.0))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._producer is not None:
            self._producer.close()
            self._producer = None


def _resolve(future: asyncio.Future[bool], granted: bool) -> None:
    if not future.done():
        future.set_result(granted)
