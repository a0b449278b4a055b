"""Flink metrics of the agent operator.

The event-loop thread only bumps plain counters (``RunnerStats``,
``CallStats``); Flink's metric objects are touched only from the operator's
own thread, in :meth:`OperatorMetrics.flush`, because PyFlink metrics are not
safe to update from foreign threads.

No PyFlink gauges: in thread mode a gauge is a Python callable that Flink's
metric query thread calls into the embedded interpreter (pemja) whenever the
REST API or web UI reads the TaskManager's metrics, and that crashed a
TaskManager (SIGSEGV in ``pemja ... PyObject.invokeMethodNoArgs`` from
``MetricGauge.getValue``).  Levels such as ``calls_in_flight`` are Java
counters instead, set to the current value at each flush.
"""

from __future__ import annotations

from typing import Any

from streaming_agents.llm.litellm_client import LiteLLMClient
from streaming_agents.runtime.chains import ChainRunner

__all__ = ["OperatorMetrics"]


class _Level:
    """A value that goes up and down, kept in a Flink counter (see the module doc)."""

    def __init__(self, counter: Any) -> None:
        self._counter = counter
        self._value = 0

    def set(self, value: int) -> None:
        if value != self._value:
            self._counter.inc(value - self._value)
            self._value = value


class OperatorMetrics:
    """Counters and gauges under the operator's metric group ``agent``."""

    def __init__(self, group: Any, runner: ChainRunner, client: LiteLLMClient) -> None:
        self._runner = runner
        self._client = client
        g = group.add_group("agent")
        self.events_in = g.counter("events_in")
        self.events_out = g.counter("events_out")
        self.dead_lettered = g.counter("dead_lettered")
        self._llm_calls = g.counter("llm_calls")
        self._journal_hits = g.counter("journal_hits")
        self._retries = g.counter("retries")
        self._rate_limited = g.counter("rate_limited")
        self._tool_calls = g.counter("tool_calls")
        self._tokens_in = g.counter("tokens_in")
        self._tokens_out = g.counter("tokens_out")
        self._levels = {
            name: _Level(g.counter(name))
            for name in (
                "calls_in_flight",
                "concurrency_limit",
                "llm_latency_ms_avg",
                "cost_micro_usd",
            )
        }
        self._seen: dict[str, int] = {}

    def _avg_latency(self) -> int:
        stats = self._runner.stats
        return int(stats.latency_ms_total / stats.llm_calls) if stats.llm_calls else 0

    def flush(self) -> None:
        """Copy what the loop thread counted into Flink counters (deltas)."""
        stats = self._runner.stats
        calls = self._client.stats
        for name, counter, value in (
            ("llm_calls", self._llm_calls, stats.llm_calls),
            ("journal_hits", self._journal_hits, stats.journal_hits),
            ("dead", self.dead_lettered, stats.dead_lettered),
            ("retries", self._retries, calls.retries),
            ("rate_limited", self._rate_limited, calls.rate_limited),
            ("tool_calls", self._tool_calls, stats.tool_calls),
            ("tokens_in", self._tokens_in, stats.prompt_tokens),
            ("tokens_out", self._tokens_out, stats.completion_tokens),
        ):
            delta = value - self._seen.get(name, 0)
            if delta:
                counter.inc(delta)
                self._seen[name] = value
        limiter = self._runner.limiter
        for name, level in (
            ("calls_in_flight", limiter.in_flight),
            ("concurrency_limit", int(limiter.limit)),
            ("llm_latency_ms_avg", self._avg_latency()),
            ("cost_micro_usd", int(stats.cost_usd * 1e6)),
        ):
            self._levels[name].set(level)
