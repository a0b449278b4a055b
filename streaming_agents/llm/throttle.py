"""Adaptive concurrency for LLM calls: 429s shrink it, successes grow it back slowly.

An AIMD limit (as TCP congestion control): every rate-limit answer halves
the number of calls allowed in flight (at most once per ``cooldown_s``, so a
burst of 429s from one overload counts once); every success adds
``1/limit``, so the limit regains one slot per round of calls.  A 429 storm
therefore slows the operator down instead of failing the task, and Flink
never sees an exception to restart the job for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["AdaptiveLimiter"]


class AdaptiveLimiter:
    """At most ``limit`` (between ``floor`` and ``capacity``) calls in flight."""

    def __init__(self, capacity: int, floor: int = 1, cooldown_s: float = 0.5) -> None:
        self.capacity = capacity
        self.floor = max(1, min(floor, capacity))
        self.cooldown_s = cooldown_s
        self.limit = float(capacity)
        self.min_limit = float(capacity)
        self.in_flight = 0
        self.max_in_flight = 0
        self.waiting = 0
        self.rate_limited_total = 0
        self._last_cut = 0.0
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        # One condition per event loop: a limiter (and what it learnt) may
        # outlive the loop it was first used on, e.g. across operator restarts.
        loop = asyncio.get_running_loop()
        if self._cond is None or self._loop is not loop:
            self._cond, self._loop = asyncio.Condition(), loop
        return self._cond

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one call slot for the duration of one attempt."""
        cond = self._condition()
        async with cond:
            self.waiting += 1
            try:
                await cond.wait_for(lambda: self.in_flight < int(self.limit))
            finally:
                self.waiting -= 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            async with cond:
                self.in_flight -= 1
                cond.notify_all()

    def succeeded(self) -> None:
        self.limit = min(float(self.capacity), self.limit + 1.0 / self.limit)

    def rate_limited(self) -> None:
        self.rate_limited_total += 1
        now = time.monotonic()
        if now - self._last_cut >= self.cooldown_s:
            self._last_cut = now
            self.limit = max(float(self.floor), self.limit / 2)
            self.min_limit = min(self.min_limit, self.limit)
