"""Per-key chains of LLM work on a background asyncio loop.

The Flink operator (``runtime/operator.py``) owns the truth: memory and the
queue of unprocessed events live in keyed state and are checkpointed.  This
module only *computes ahead*: for every key with queued events it runs
``step -> LLM call -> reduce`` one event at a time, in arrival order, on an
event loop in a background thread, with at most ``capacity`` calls in flight
across all keys (fewer while the provider rate-limits: ``llm/throttle.py``).
Results wait in ``KeyChain.done`` until the operator commits them to state
and emits them inside a Flink callback for that key.

``backlog`` counts the events accepted but not yet processed (queued or
running) across keys; the operator waits on it (:meth:`ChainRunner.wait_backlog`)
before it accepts more, which back-pressures the input.

Nothing here is checkpointed.  If the process dies, the chains are lost and
rebuilt from state after restore; calls already answered come back from the
journal.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from streaming_agents.agent import Agent
from streaming_agents.journal.factory import JournalSetting
from streaming_agents.llm.litellm_client import new_call_loop
from streaming_agents.llm.throttle import AdaptiveLimiter
from streaming_agents.memory import Memory
from streaming_agents.runtime.events import Envelope
from streaming_agents.runtime.processing import EventProcessor, LLMCall
from streaming_agents.runtime.work import Completion, KeyChain, RunnerStats

__all__ = ["ChainRunner", "Completion", "KeyChain", "RunnerStats"]


class ChainRunner:
    """Runs every key's chain on one asyncio loop in a daemon thread."""

    def __init__(
        self,
        agent: Agent[Any],
        call: LLMCall,
        journal: JournalSetting,
        limiter: AdaptiveLimiter,
        *,
        fence_side_effects: bool = False,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        self.agent = agent
        self.limiter = limiter
        self.processor = EventProcessor(
            agent,
            call,
            journal,
            fence_side_effects=fence_side_effects,
            max_record_bytes=max_record_bytes,
        )
        self.stats: RunnerStats = self.processor.stats
        self._chains: dict[str, KeyChain] = {}
        self.backlog = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop = new_call_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="agent-loop", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self.processor.close()

    # --- called from the Flink operator thread ---------------------------------

    def chain(self, key: str) -> KeyChain | None:
        with self._lock:
            return self._chains.get(key)

    def ensure_chain(self, key: str, memory: Memory, queued: list[Envelope]) -> KeyChain:
        """The key's chain, rebuilt from state (memory + queued events) if absent."""
        with self._lock:
            chain = self._chains.get(key)
            if chain is None:
                chain = KeyChain(key=key, memory=memory, todo=deque(queued))
                self._chains[key] = chain
                self.backlog += len(queued)
                self._kick(chain)
            return chain

    def enqueue(self, chain: KeyChain, envelope: Envelope) -> None:
        with self._lock:
            chain.todo.append(envelope)
            self.backlog += 1
            self._kick(chain)

    def take_done(self, chain: KeyChain) -> list[Completion]:
        """Completed events in order; forgets an idle chain once drained."""
        with self._lock:
            done = list(chain.done)
            chain.done.clear()
            if chain.idle:
                self._chains.pop(chain.key, None)
            return done

    def expected_wait_ms(self, chain: KeyChain, floor_ms: int) -> int:
        """When the chain's next result is likely: drives how often its timer fires.

        Polling every busy key at a fixed short interval costs more CPU than
        the LLM calls themselves once thousands of keys wait for capacity.
        """
        stats, limiter = self.stats, self.limiter
        avg = stats.latency_ms_total / stats.llm_calls if stats.llm_calls else 50.0
        started = chain.call_started
        if started is not None:
            remaining = avg - (time.monotonic() - started) * 1000.0
        elif chain.running:
            remaining = avg * (1.0 + limiter.waiting / max(1.0, limiter.limit))
        else:
            remaining = 0.0
        return int(min(5000.0, max(float(floor_ms), remaining + 2.0)))

    def has_work(self, chain: KeyChain) -> bool:
        """Whether the key still needs a timer: work running, queued, or done but not taken."""
        with self._lock:
            return not chain.idle or bool(chain.done)

    def wait_idle(self, chain: KeyChain, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not chain.idle:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_backlog(self, limit: int, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until fewer than ``limit`` events are unprocessed."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.backlog >= limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _kick(self, chain: KeyChain) -> None:
        if not chain.running and chain.todo:
            chain.running = True
            self._loop.call_soon_threadsafe(self._spawn, chain)

    # --- on the event loop ------------------------------------------------------

    def _spawn(self, chain: KeyChain) -> None:
        self._loop.create_task(self._drive(chain))

    async def _drive(self, chain: KeyChain) -> None:
        while True:
            with self._lock:
                if not chain.todo:
                    chain.running = False
                    self._changed.notify_all()
                    return
                envelope, memory = chain.todo[0], chain.memory
            completion, memory = await self.processor.process_safely(chain, envelope, memory)
            with self._lock:
                chain.todo.popleft()
                self.backlog -= 1
                chain.memory = memory
                chain.done.append(completion)
                self._changed.notify_all()
