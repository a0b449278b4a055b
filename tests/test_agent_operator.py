"""The agent operator on the local mini-cluster, against the fake LLM over HTTP."""

from __future__ import annotations

import json
from collections import Counter

from agent_support import by_key, echo_agent, events, run_collect

from streaming_agents import MemoryPolicy
from streaming_agents.testing.fake_llm import FakeLLM


def test_conversation_continues_per_key(fake_llm: FakeLLM) -> None:
    agent = echo_agent(fake_llm, policy=MemoryPolicy(max_turns=3))
    outputs, dead = run_collect(agent, events(n_keys=3, per_key=5))
    assert dead == []
    assert len(outputs) == 15
    for key, outs in by_key(outputs).items():
        assert [o["turn"] for o in outs] == [1, 2, 3, 4, 5]
        # n = messages sent: 2 per remembered turn (at most 3 kept) + the new prompt,
        # plus one summary message once turns were folded away.
        assert [o["output"].split("]")[0] for o in outs] == [
            "echo[n=1",
            "echo[n=3",
            "echo[n=5",
            "echo[n=7",
            "echo[n=8",
        ], key
        assert [o["output"].split(": ", 1)[1] for o in outs] == [f"{key}#{s}" for s in range(5)]
    stats = fake_llm.stats()
    assert stats["requests_total"] == 15


def test_per_key_order_under_random_latency_and_no_loss_at_end(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"latency_ms": {"kind": "uniform", "min_ms": 1, "max_ms": 300}, "seed": 7})
    outputs, dead = run_collect(echo_agent(fake_llm), events(n_keys=40, per_key=6))
    assert dead == []
    assert len(outputs) == 240
    for outs in by_key(outputs).values():
        assert [o["input"]["seq"] for o in outs] == list(range(6))
        assert [o["turn"] for o in outs] == list(range(1, 7))
    assert fake_llm.stats()["requests_total"] == 240


def test_calls_in_flight_reach_capacity(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"latency_ms": 1500})
    outputs, _ = run_collect(echo_agent(fake_llm), events(n_keys=250, per_key=1), capacity=100)
    assert len(outputs) == 250
    stats = fake_llm.stats()
    assert stats["max_concurrent"] >= 80, stats
    assert stats["max_concurrent"] <= 100, stats


def test_one_call_per_key_at_a_time(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"latency_ms": 200})
    outputs, _ = run_collect(echo_agent(fake_llm), events(n_keys=2, per_key=8), capacity=100)
    assert len(outputs) == 16
    assert fake_llm.stats()["max_concurrent"] == 2


def test_malformed_events_and_failed_calls_go_to_dead_letters(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"rules": [{"match": "k1#1$", "status": 400}]})
    raw = [*events(n_keys=2, per_key=3), "{not json", json.dumps([1, 2])]
    outputs, dead = run_collect(echo_agent(fake_llm, num_retries=0), raw)
    reasons = Counter(d["reason"] for d in dead)
    assert reasons == {"malformed event": 2, "llm call failed": 1}
    assert {d["payload"] for d in dead if d["reason"] == "malformed event"} == {
        "{not json",
        "[1, 2]",
    }
    # the failed event leaves memory untouched; the key goes on with its next event
    k1 = [o for o in outputs if o["key"] == "k1"]
    assert [(o["input"]["seq"], o["turn"]) for o in k1] == [(0, 1), (2, 2)]
    assert len(outputs) == 5


def test_429_storm_never_fails_the_job(fake_llm: FakeLLM) -> None:
    # No restart strategy on this job: a single task failure would fail it.
    fake_llm.configure({"rate_429": 0.4, "rate_500": 0.05, "retry_after_s": 0, "seed": 5})
    outputs, dead = run_collect(echo_agent(fake_llm, num_retries=8), events(n_keys=30, per_key=3))
    assert dead == []
    assert len(outputs) == 90
    for outs in by_key(outputs).values():
        assert [o["turn"] for o in outs] == [1, 2, 3]
    assert fake_llm.stats()["by_status"]["429"] >= 20
