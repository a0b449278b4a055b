"""Budgets, the circuit breaker and the audit log."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent_support import echo_agent
from runner_support import run_events

from streaming_agents import audit_log, dead_letters, run_agent
from streaming_agents.agent import CircuitBreaker
from streaming_agents.connectors.audit import audit_sink
from streaming_agents.connectors.kafka import exactly_once_sink
from streaming_agents.connectors.kafka_records import json_key, kafka_records
from streaming_agents.llm.budget import Budget
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce


def _evts(n: int, key: str = "a") -> list[dict[str, object]]:
    return [{"k": key, "seq": i} for i in range(n)]


def test_budget_dead_letters_once_spent_and_survives_a_restart(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    # the fake counts words + messages: call 1 costs 4 tokens, call 2 (with history) 9
    budget = Budget(
        max_tokens=10,
        window_s=3600,
        on_exceeded="dead_letter",
        ledger_path=str(tmp_path / "ledger.sqlite"),
    )
    agent = echo_agent(fake_llm, budget=budget)
    done, _ = run_events(agent, _evts(4), capacity=1)
    reasons = [c.dead_letter and json.loads(c.dead_letter)["reason"] for c in done["a"]]
    assert reasons == [None, None, "over budget", "over budget"]
    assert fake_llm.stats()["requests_total"] == 2
    # a new runner (as after a restart) reads the same ledger: still spent
    done, _ = run_events(agent, _evts(1, key="b"), capacity=1)
    assert json.loads(done["b"][0].dead_letter or "{}")["reason"] == "over budget"
    assert fake_llm.stats()["requests_total"] == 2


def test_budget_parks_events_until_the_next_window(fake_llm: FakeLLM, tmp_path: Path) -> None:
    budget = Budget(
        max_tokens=3, window_s=2, on_exceeded="park", ledger_path=str(tmp_path / "ledger.sqlite")
    )
    start = time.time()
    done, runner = run_events(echo_agent(fake_llm, budget=budget), _evts(3), capacity=1)
    assert all(c.dead_letter is None and len(c.outputs) == 1 for c in done["a"])
    assert runner.stats.parked >= 1
    # one call per 2 s window: the third call cannot start before two windows have begun
    assert time.time() - start >= 2.0
    assert fake_llm.stats()["requests_total"] == 3


def test_audit_log_and_circuit_breaker_in_a_kafka_job(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory
) -> None:
    from pyflink.common import Types

    src, out_t, dlq_t, audit_t = (topic_factory(p) for p in ("in", "out", "dlq", "audit"))
    quiet = [json.dumps({"k": "quiet", "seq": i}) for i in range(2)]
    noisy = [json.dumps({"k": "noisy", "seq": i}) for i in range(6)]
    produce(kafka_bootstrap, src, [(None, e) for e in [*quiet, *noisy]])

    env = local_env(checkpoint_interval_ms=2000)
    rows = kafka_records(env, kafka_bootstrap, src, "gov", bounded=True)
    agent = echo_agent(fake_llm, breaker=CircuitBreaker(max_events=3, per_seconds=600))
    out = run_agent(rows.key_by(json_key("k"), key_type=Types.STRING()), agent)
    out.sink_to(exactly_once_sink(kafka_bootstrap, out_t, f"o-{out_t}"))
    dead_letters(out).sink_to(exactly_once_sink(kafka_bootstrap, dlq_t, f"d-{dlq_t}"))
    audit_sink(env, audit_log(out), kafka_bootstrap, audit_t, f"a-{audit_t}")
    env.execute("governance")

    outputs = [json.loads(m.value()) for m in consume_committed(kafka_bootstrap, out_t, expected=5)]
    assert sorted((o["key"], o["input"]["seq"]) for o in outputs) == [
        ("noisy", 0),
        ("noisy", 1),
        ("noisy", 2),
        ("quiet", 0),
        ("quiet", 1),
    ]
    dead = [json.loads(m.value()) for m in consume_committed(kafka_bootstrap, dlq_t, expected=3)]
    assert [(d["reason"], d["payload"]["seq"]) for d in dead] == [
        ("circuit open", s) for s in (3, 4, 5)
    ]

    audit = consume_committed(kafka_bootstrap, audit_t, expected=13, linger_s=2)
    records = [json.loads(m.value()) for m in audit]
    kinds = [r["kind"] for r in records]
    assert kinds.count("llm_call") == 5 and kinds.count("decision") == 5
    assert kinds.count("circuit_open") == 3
    by_output = {o["trace_id"]: o for o in outputs}
    for message, record in zip(audit, records, strict=True):
        headers = dict(message.headers() or [])
        if record["kind"] == "circuit_open":
            continue
        assert headers["trace_id"].decode() == record["trace_id"]
        assert headers["agent"].decode() == "echo@1"
        assert record["trace_id"] in by_output
        if record["kind"] == "llm_call":
            assert record["outcome"] == "called" and record["model"] and len(record["digest"]) == 64
            assert record["source"]["topic"] == src
            assert record["prompt_tokens"] > 0
