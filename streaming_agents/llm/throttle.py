"""Adaptive concurrency for LLM calls: 429s shrink it, successes grow it back slowly.

An AIMD limit (as TCP congestion control): every rate-limit answer halves
the number of calls allowed in flight (at most once per ``cooldown_s``, so a
burst of 429s from one overload counts once); every success adds
``1/limit``, so the limit regains one slot per round of calls.  A 429 storm
therefore slows the operator down instead of failing the task, and Flink
never sees an exception to restart the job for.

Nothing here is checkpointed: after a restore the limit starts again at
``capacity`` and the first 429s shrink it anew.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["AdaptiveLimiter"]


class AdaptiveLimiter:
    """At most ``limit`` (between ``floor`` and ``capacity``) calls in flight.

    Waiters are served first come, first served, and a freed slot wakes
    exactly one of them: with thousands of keys waiting for ``capacity``
    slots, waking them all on every release (a condition's ``notify_all``)
    cost more event-loop time than the calls it admitted.
    """

    def __init__(self, capacity: int, floor: int = 1, cooldown_s: float = 0.5) -> None:
        self.capacity = capacity
        self.floor = max(1, min(floor, capacity))
        self.cooldown_s = cooldown_s
        self.limit = float(capacity)
        self.min_limit = float(capacity)
        self.in_flight = 0
        self.max_in_flight = 0
        self.waiting = 0
        """Calls waiting for a slot (read by other threads: metrics, timer estimates)."""
        self.rate_limited_total = 0
        self._last_cut = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _bind(self) -> asyncio.AbstractEventLoop:
        # A limiter (and what it learnt) may outlive the loop it was first
        # used on, e.g. across operator restarts: waiters of a dead loop are
        # dropped, they can never be woken.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._waiters, self.waiting = loop, deque(), 0
        return loop

    async def _acquire(self) -> None:
        loop = self._bind()
        if not self._waiters and self.in_flight < int(self.limit):
            self._admit()
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        self.waiting += 1
        try:
            await waiter  # resolved by _wake, which has admitted this call
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # admitted, then cancelled before it could run
            raise
        finally:
            self.waiting -= 1

    def _admit(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._admit()
                waiter.set_result(None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one call slot for the duration of one attempt."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    def succeeded(self) -> None:
        self.limit = min(float(self.capacity), self.limit + 1.0 / self.limit)
        self._wake()

    def rate_limited(self) -> None:
        self.rate_limited_total += 1
        now = time.monotonic()
        if now - self._last_cut >= self.cooldown_s:
            self._last_cut = now
            self.limit = max(float(self.floor), self.limit / 2)
            self.min_limit = min(self.min_limit, self.limit)
