"""The agent operator: a KeyedProcessFunction holding each key's memory.

Design (see docs/design.md for the measurements behind it):

* Keyed state is the truth.  ``memory`` holds the key's memory document and
  ``queue`` the events received but not yet committed, oldest first.  Both
  are checkpointed; an event leaves ``queue`` in the same callback that
  writes its new memory and emits its outputs, so state and output always
  agree at a checkpoint.
* The LLM work runs ahead on a background event loop (``chains.py``): up to
  ``capacity`` calls in flight across keys, one at a time per key.
* Completed work is committed in a processing-time timer for its key.  After
  a restore, the first callback for a key (timer or new event) rebuilds its
  chain from ``queue``: queued and in-flight work resumes, and calls whose
  results were already obtained are answered by the journal.
* Input is back-pressured like Flink's async I/O operator: before it accepts
  an event the operator waits (at most ``ADMIT_WAIT_S``) while ``max_backlog``
  events (default 4 x ``capacity``) are accepted but unprocessed across keys.
  A bounded input (a replay) is then read at the pace of the work, so outputs
  and checkpoints flow all along and little work is left when the input ends.
  (Without it the source is read in a second, the final watermark arrives
  at once and the end-of-input timers below wait for nearly all the work
  while holding the task thread: no output, no checkpoint until the end.)
* Every key with work also holds an event-time timer, set at the wall-clock
  time it was registered.  A job without watermarks fires it only when the
  final watermark arrives, i.e. when a bounded input (a replay of history)
  ends; the operator then waits for that key's chain and commits it, so the
  last events are not lost with the dropped processing-time timers.  (The
  timestamp is a real time because Flink stamps the timer's outputs with it
  and Kafka rejects records stamped far in the future.)  In a job with
  watermarks the timer may fire earlier; it then only commits and re-arms.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext, TimeDomain
from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

from streaming_agents.agent import Agent
from streaming_agents.journal.factory import JournalSetting
from streaming_agents.llm.call_pool import CallPool
from streaming_agents.llm.litellm_client import LiteLLMClient
from streaming_agents.llm.throttle import AdaptiveLimiter
from streaming_agents.runtime.breaker import RateBreaker
from streaming_agents.runtime.chains import ChainRunner, KeyChain
from streaming_agents.runtime.events import (
    MALFORMED_KEY,
    Envelope,
    Limits,
    Rejected,
    dead_letter,
    parse_event,
    record_of,
)
from streaming_agents.runtime.metrics import OperatorMetrics

__all__ = ["AUDIT_TAG", "DEAD_LETTER_TAG", "AgentFunction"]

DEAD_LETTER_TAG = OutputTag("dead-letter", Types.STRING())
AUDIT_TAG = OutputTag("audit", Types.STRING())
FINAL_WATERMARK = 2**63 - 1
DRAIN_TIMEOUT_S = 600.0
ADMIT_WAIT_S = 2.0
# max_backlog = BACKLOG_PER_CAPACITY x capacity unless given; 0: no back-pressure.
BACKLOG_PER_CAPACITY = 4


class AgentFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Runs one :class:`Agent` on a keyed stream of JSON events (str or dict)."""

    def __init__(
        self,
        agent: Agent[Any],
        journal: JournalSetting,
        capacity: int = 100,
        poll_ms: int = 5,
        fence_side_effects: bool = False,
        limits: Limits | None = None,
        llm_processes: int = 0,
        max_backlog: int | None = None,
    ) -> None:
        """``max_backlog``: events accepted but unprocessed before the input
        waits (default ``BACKLOG_PER_CAPACITY * capacity``; ``0`` never waits)."""
        self.agent = agent
        if max_backlog is None:
            max_backlog = BACKLOG_PER_CAPACITY * capacity
        self.max_backlog = max_backlog
        self.llm_processes = llm_processes
        # Taken where the job is built: inside a thread-mode worker
        # ``sys.executable`` is the base interpreter, not the job's venv.
        self.worker_python = sys.executable
        self.limits = limits or Limits()
        self.journal = journal
        self.capacity = capacity
        self.fence_side_effects = fence_side_effects
        self.poll_ms = poll_ms
        self._runner: ChainRunner | None = None
        self._pool: CallPool | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        from streaming_agents.runtime import shipped_imports

        shipped_imports.install()  # a later job's shipped copy can import what this one did not
        memory = ValueStateDescriptor("memory", Types.STRING())
        ttl = self.agent.policy.ttl_seconds
        if ttl is not None:
            memory.enable_time_to_live(
                StateTtlConfig.new_builder(Time.seconds(ttl))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build()
            )
        self._memory = runtime_context.get_state(memory)
        self._queue = runtime_context.get_state(ValueStateDescriptor("queue", Types.STRING()))
        limiter = AdaptiveLimiter(self.capacity)
        if self.llm_processes > 0:
            self._pool = CallPool(self.llm_processes, self.worker_python, sys.path)
        client = LiteLLMClient(
            self.agent.model, limiter, transport=self._pool, remote_key=self._pool is not None
        )
        self._runner = ChainRunner(
            self.agent,
            client.complete,
            self.journal,
            limiter,
            fence_side_effects=self.fence_side_effects,
            max_record_bytes=self.limits.max_record_bytes,
        )
        self._breaker = RateBreaker(self.agent.breaker) if self.agent.breaker else None
        self._metrics = OperatorMetrics(runtime_context.get_metrics_group(), self._runner, client)
        self._runner.start()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        key = str(ctx.get_current_key())
        self._metrics.events_in.inc()
        envelope = self._admit(key, value)
        if not isinstance(envelope, dict):
            self._metrics.dead_lettered.inc()
            yield from envelope
            return
        assert self._runner is not None
        if self.max_backlog > 0:
            # Back-pressure: bounded, so checkpoints and timers wait at most ADMIT_WAIT_S.
            self._runner.wait_backlog(self.max_backlog, ADMIT_WAIT_S)
        chain = self._chain(key)
        queue = json.loads(self._queue.value() or "[]")
        queue.append(envelope)
        self._queue.update(json.dumps(queue, default=str))
        self._runner.enqueue(chain, envelope)
        timers = ctx.timer_service()
        if chain.end_timer is None:
            chain.end_timer = max(timers.current_processing_time(), timers.current_watermark() + 1)
            timers.register_event_time_timer(chain.end_timer)
        self._schedule(chain, timers)
        yield from self._commit(chain)

    def _admit(self, key: str, value: Any) -> Envelope | list[Any]:
        """The event's envelope, or the side-output records that reject it."""
        try:
            envelope = parse_event(value, self.limits)
        except Exception as exc:  # noqa: BLE001 - no record may fail the job
            error = f"{type(exc).__name__}: {exc}"
            envelope = Rejected("malformed event", error, None, repr(value)[:1000], None)
        if not isinstance(envelope, Rejected) and key == MALFORMED_KEY:
            error = "the key selector found no usable key in this event"
            found = record_of(value)
            raw = found[0] if found is not None else None
            envelope = Rejected("no key", error, raw, envelope["e"], envelope["s"])
        if isinstance(envelope, Rejected):
            record = self._dead_letter(
                envelope.reason,
                key,
                envelope.payload,
                envelope.error,
                envelope.source,
                envelope.raw,
                envelope.original,
            )
            return [(DEAD_LETTER_TAG, record)]
        if self._breaker is not None and not self._breaker.admit(key):
            description = self._breaker.describe()
            record = self._dead_letter(
                "circuit open", key, envelope["e"], description, envelope["s"]
            )
            report = self._breaker.report(key, self.agent.name, self.agent.version)
            return [(DEAD_LETTER_TAG, record), (AUDIT_TAG, report)]
        return envelope

    def _dead_letter(
        self,
        reason: str,
        key: str,
        payload: Any,
        error: str,
        source: dict[str, Any] | None,
        raw: bytes | None = None,
        original: dict[str, Any] | None = None,
    ) -> str:
        return dead_letter(
            reason,
            key,
            payload,
            error,
            raw=raw,
            source=source,
            agent=self.agent.name,
            version=self.agent.version,
            original=original,
            max_bytes=self.limits.max_record_bytes,
        )

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        if self._runner is None:
            # Thread mode may fire a last processing-time timer after close();
            # its work is either committed already or restored from state.
            return
        chain = self._chain(str(ctx.get_current_key()))
        timers = ctx.timer_service()
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            chain.end_timer = None
            if timers.current_watermark() >= FINAL_WATERMARK:
                self._runner.wait_idle(chain, DRAIN_TIMEOUT_S)
        elif chain.next_timer is not None and timestamp >= chain.next_timer:
            chain.next_timer = None
        yield from self._commit(chain)
        # The chain may finish its last event between the commit and here: a
        # result left in ``done`` must still get a timer, or it waits forever.
        if self._runner.has_work(chain):
            self._schedule(chain, timers)
            if chain.end_timer is None:
                chain.end_timer = max(
                    timers.current_processing_time(), timers.current_watermark() + 1
                )
                timers.register_event_time_timer(chain.end_timer)

    def _chain(self, key: str) -> KeyChain:
        """The key's chain; after a restore it is rebuilt from keyed state."""
        assert self._runner is not None
        chain = self._runner.chain(key)
        if chain is None:
            memory = self.agent.memory.load(self._memory.value())
            queued = json.loads(self._queue.value() or "[]")
            chain = self._runner.ensure_chain(key, memory, queued)
        return chain

    def _schedule(self, chain: KeyChain, timers: Any) -> None:
        if chain.next_timer is None:
            assert self._runner is not None
            delay = self._runner.expected_wait_ms(chain, self.poll_ms)
            chain.next_timer = timers.current_processing_time() + delay
            timers.register_processing_time_timer(chain.next_timer)

    def _commit(self, chain: KeyChain) -> Iterator[Any]:
        assert self._runner is not None
        done = self._runner.take_done(chain)
        self._metrics.flush()
        if not done:
            return
        queue = json.loads(self._queue.value() or "[]")[len(done) :]
        if queue:
            self._queue.update(json.dumps(queue))
        else:
            self._queue.clear()
        self._memory.update(done[-1].memory_json)
        for completion in done:
            for line in completion.outputs:
                self._metrics.events_out.inc()
                yield line
            if completion.dead_letter is not None:
                yield DEAD_LETTER_TAG, completion.dead_letter
            for line in completion.audit:
                yield AUDIT_TAG, line
