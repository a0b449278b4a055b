"""Flink metrics of the agent operator.

The event-loop thread only bumps plain counters (``RunnerStats``,
``CallStats``); Flink's metric objects are touched only from the operator's
own thread, in :meth:`OperatorMetrics.flush`, because PyFlink metrics are not
safe to update from foreign threads.
"""

from __future__ import annotations

from typing import Any

from streaming_agents.llm.litellm_client import LiteLLMClient
from streaming_agents.runtime.chains import ChainRunner

__all__ = ["OperatorMetrics"]


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
        g.gauge("calls_in_flight", lambda: runner.limiter.in_flight)
        g.gauge("concurrency_limit", lambda: int(runner.limiter.limit))
        g.gauge("llm_latency_ms_avg", self._avg_latency)
        g.gauge("cost_micro_usd", lambda: int(runner.stats.cost_usd * 1e6))
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
