"""The adaptive limiter on its own: bounds, order, cancellation, wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from streaming_agents.llm.throttle import AdaptiveLimiter


async def _hold(
    limiter: AdaptiveLimiter, name: int, started: list[int], gate: asyncio.Event
) -> None:
    async with limiter.slot():
        started.append(name)
        await gate.wait()


def test_never_more_than_the_limit_and_first_come_first_served() -> None:
    async def main() -> tuple[list[int], int, int]:
        limiter = AdaptiveLimiter(3)
        started: list[int] = []
        gates = [asyncio.Event() for _ in range(10)]
        tasks = [asyncio.create_task(_hold(limiter, i, started, gates[i])) for i in range(10)]
        await asyncio.sleep(0.01)
        admitted_first, waiting = len(started), limiter.waiting
        for gate in gates:  # release one at a time: the next waiter in line gets the slot
            gate.set()
            await asyncio.sleep(0.005)
            assert limiter.in_flight <= 3
        await asyncio.gather(*tasks)
        return started, admitted_first, waiting

    started, admitted_first, waiting = asyncio.run(main())
    assert admitted_first == 3
    assert waiting == 7
    assert started == list(range(10))


class _CountedSteps(Coroutine[Any, Any, None]):
    """A coroutine that counts how often its task runs it (each send is one task step)."""

    def __init__(self, coro: Coroutine[Any, Any, None], steps: list[int]) -> None:
        self._coro, self._steps = coro, steps

    def send(self, value: Any) -> Any:
        self._steps[0] += 1
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self._steps[0] += 1
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        return self._coro.__await__()


def test_a_release_wakes_one_waiter_not_all() -> None:
    """200 waiters for 2 slots: each task runs twice (wait, then its turn), not once per release."""

    async def main() -> tuple[int, int]:
        limiter = AdaptiveLimiter(2)
        gate = asyncio.Event()
        holders = [asyncio.create_task(_hold(limiter, i, [], gate)) for i in range(2)]
        await asyncio.sleep(0.01)
        steps, ran = [0], [0]

        async def waiter() -> None:
            async with limiter.slot():
                ran[0] += 1
                await asyncio.sleep(0)

        waiters = [asyncio.create_task(_CountedSteps(waiter(), steps)) for _ in range(200)]
        await asyncio.sleep(0.01)
        assert limiter.waiting == 200 and ran[0] == 0
        gate.set()
        await asyncio.gather(*holders, *waiters)
        assert limiter.in_flight == 0 and limiter.waiting == 0
        return ran[0], steps[0]

    ran, steps = asyncio.run(main())
    assert ran == 200
    # 1 step to start waiting, 1 when admitted, 1 after the sleep(0) inside the slot
    assert steps == 3 * 200, steps


def test_cancelled_waiters_give_back_nothing_they_did_not_get() -> None:
    async def main() -> tuple[int, int, list[int]]:
        limiter = AdaptiveLimiter(1)
        gate = asyncio.Event()
        holder = asyncio.create_task(_hold(limiter, 0, [], gate))
        await asyncio.sleep(0.01)
        started: list[int] = []
        cancelled = asyncio.create_task(_hold(limiter, 1, started, asyncio.Event()))
        later = asyncio.create_task(_hold(limiter, 2, started, gate))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(holder, later)
        return limiter.in_flight, limiter.waiting, started

    in_flight, waiting, started = asyncio.run(main())
    assert (in_flight, waiting) == (0, 0)
    assert started == [2]  # only the later waiter ran, and it got the slot


def test_rate_limits_halve_the_limit_and_successes_grow_it_back() -> None:
    async def main() -> tuple[float, float, int, int]:
        limiter = AdaptiveLimiter(8, cooldown_s=0.0)
        limiter.rate_limited()
        limiter.rate_limited()
        low = limiter.limit
        started: list[int] = []
        gate = asyncio.Event()
        tasks = [asyncio.create_task(_hold(limiter, i, started, gate)) for i in range(8)]
        await asyncio.sleep(0.01)
        admitted_at_low = len(started)
        for _ in range(20):
            limiter.succeeded()  # a grown limit admits waiters without a release
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(*tasks)
        return low, limiter.limit, admitted_at_low, limiter.max_in_flight

    low, grown, admitted_at_low, most = asyncio.run(main())
    assert low == 2.0
    assert grown > 6.0
    assert admitted_at_low == 2
    assert most > 2
