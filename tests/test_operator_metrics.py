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
        self.registered: list[str] = []
        self.gauges: list[str] = []

    def add_group(self, name: str, extra: str | None = None) -> _Group:
        return self

    def counter(self, name: str) -> _Counter:
        self.registered.append(name)
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


def test_totals_follow_the_stats_and_dead_letters_add_up() -> None:
    group = _Group()
    runner = SimpleNamespace(limiter=SimpleNamespace(in_flight=0, limit=1.0), stats=RunnerStats())
    client = SimpleNamespace(stats=CallStats())
    metrics = OperatorMetrics(group, runner, client)  # type: ignore[arg-type]
    assert sorted(group.registered) == sorted(set(group.registered))  # each registered once
    assert set(group.registered) == {
        "events_in",
        "events_out",
        "dead_lettered",
        "llm_calls",
        "journal_hits",
        "retries",
        "rate_limited",
        "tool_calls",
        "tokens_in",
        "tokens_out",
        "calls_in_flight",
        "concurrency_limit",
        "llm_latency_ms_avg",
        "cost_micro_usd",
    }
    metrics.dead_lettered.inc()  # the operator's own dead letter (e.g. an unreadable event)
    metrics.dead_lettered.inc()
    stats = runner.stats
    stats.dead_lettered, stats.journal_hits, stats.tool_calls = 3, 2, 1
    stats.prompt_tokens, stats.completion_tokens = 100, 40
    client.stats.retries, client.stats.rate_limited = 2, 1
    want = {
        "dead_lettered": 5,
        "journal_hits": 2,
        "tool_calls": 1,
        "tokens_in": 100,
        "tokens_out": 40,
        "retries": 2,
        "rate_limited": 1,
    }
    for _ in range(2):  # a flush with nothing new counts nothing twice
        metrics.flush()
        assert {name: group.counters[name].count for name in want} == want
    stats.dead_lettered, stats.prompt_tokens = 4, 130
    metrics.dead_lettered.inc()
    metrics.flush()
    assert group.counters["dead_lettered"].count == 2 + 1 + 4
    assert group.counters["tokens_in"].count == 130
    assert group.counters["events_in"].count == group.counters["events_out"].count == 0
