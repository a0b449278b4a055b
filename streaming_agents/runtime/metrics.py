"""Flink metrics of the agent operator.

The event-loop thread only bumps plain counters (``RunnerStats``,
``CallStats``); Flink's metric objects are touched only from the operator's
own thread, in :meth:`OperatorMetrics.flush`, because PyFlink metrics are not
safe to update from foreign threads.

No PyFlink gauges: in thread mode a gauge is a Python callable that Flink's
metric query thread calls into the embedded interpreter (pemja) whenever the
REST API or web UI reads the TaskManager's metrics, and that crashed a
TaskManager (SIGSEGV in ``pemja ... PyObject.invokeMethodNoArgs`` from
``MetricGauge.getValue``).  So every value flushed here -- running totals
such as ``llm_calls`` and levels such as ``calls_in_flight`` alike -- is a
Java counter that each flush moves to the value read then (:class:`_Level`).
"""

from __future__ import annotations

from typing import Any

from streaming_agents.llm.litellm_client import LiteLLMClient
from streaming_agents.runtime.chains import ChainRunner

__all__ = ["OperatorMetrics"]

# Counters the operator bumps itself, from its own thread, as events pass.
_DIRECT = ("events_in", "events_out", "dead_lettered")


class _Level:
    """A value kept in a Flink counter (see the module doc).

    :meth:`set` adds the difference from the value it last set, so the counter
    follows the value up and down; increments made to the same counter by
    other code (``dead_lettered``) stay on top of it.
    """

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self._value = 0

    def set(self, value: int) -> None:
        if value != self._value:
            self._counter.inc(value - self._value)
            self._value = value


class OperatorMetrics:
    """Counters under the operator's metric group ``agent``."""

    def __init__(self, group: Any, runner: ChainRunner, client: LiteLLMClient) -> None:
        self._runner = runner
        self._client = client
        g = group.add_group("agent")
        flushed = tuple(self._read())  # only the names; each _Level starts at 0
        counters = {name: g.counter(name) for name in dict.fromkeys(_DIRECT + flushed)}
        self.events_in = counters["events_in"]
        self.events_out = counters["events_out"]
        # dead_lettered: the operator's own dead letters plus the runner's (flushed).
        self.dead_lettered = counters["dead_lettered"]
        self._levels = {name: _Level(counters[name]) for name in flushed}

    def _read(self) -> dict[str, int]:
        """The current value of every flushed counter, by metric name."""
        stats = self._runner.stats
        calls = self._client.stats
        limiter = self._runner.limiter
        return {
            "llm_calls": stats.llm_calls,
            "journal_hits": stats.journal_hits,
            "dead_lettered": stats.dead_lettered,
            "retries": calls.retries,
            "rate_limited": calls.rate_limited,
            "tool_calls": stats.tool_calls,
            "tokens_in": stats.prompt_tokens,
            "tokens_out": stats.completion_tokens,
            "calls_in_flight": limiter.in_flight,
            "concurrency_limit": int(limiter.limit),
            "llm_latency_ms_avg": (
                int(stats.latency_ms_total / stats.llm_calls) if stats.llm_calls else 0
            ),
            "cost_micro_usd": int(stats.cost_usd * 1e6),
        }

    def flush(self) -> None:
        """Move each flushed counter to what the loop thread has counted by now."""
        for name, value in self._read().items():
            self._levels[name].set(value)
