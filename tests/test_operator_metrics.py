"""The agent operator's Flink metrics, without Flink: what it registers and what a flush sets.

A PyFlink gauge in thread mode is called by Flink's metric query thread inside the
embedded interpreter, which crashed a TaskManager when the REST API read its metrics;
so the operator registers counters only, and its levels go up and down with each
flush.  tests/test_agent_savepoint.py reads the same metrics over a cluster's REST API.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streaming_agents.llm.litellm_client import CallStats
from streaming_agents.runtime.metrics import OperatorMetrics
from streaming_agents.runtime.work import RunnerStats


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n


class _Group:
    """Records what is registered, as PyFlink's metric group API names it."""

    def __init__(self) -> None:
        self.counters: dict[str, _Counter] = {}
        self.gauges: list[str] = []

    def add_group(self, name: str, extra: str | None = None) -> _Group:
        return self

    def counter(self, name: str) -> _Counter:
        return self.counters.setdefault(name, _Counter())

    def gauge(self, name: str, obj: Any) -> None:
        self.gauges.append(name)


def test_levels_are_counters_set_at_each_flush() -> None:
    group = _Group()
    limiter = SimpleNamespace(in_flight=0, limit=8.0)
    runner = SimpleNamespace(limiter=limiter, stats=RunnerStats())
    metrics = OperatorMetrics(group, runner, SimpleNamespace(stats=CallStats()))  # type: ignore[arg-type]
    assert group.gauges == []
    limiter.in_flight = 5
    runner.stats.llm_calls, runner.stats.latency_ms_total = 4, 1000.0
    runner.stats.cost_usd = 0.25
    metrics.flush()
    levels = {name: group.counters[name].count for name in ("calls_in_flight", "concurrency_limit")}
    assert levels == {"calls_in_flight": 5, "concurrency_limit": 8}
    assert group.counters["llm_latency_ms_avg"].count == 250
    assert group.counters["cost_micro_usd"].count == 250_000
    assert group.counters["llm_calls"].count == 4
    limiter.in_flight, limiter.limit = 0, 3.0
    metrics.flush()
    assert group.counters["calls_in_flight"].count == 0
    assert group.counters["concurrency_limit"].count == 3
    assert group.counters["llm_calls"].count == 4
