"""Tools, structured output with repair, throttling and retries, against the fake LLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from agent_support import echo_agent, events
from pydantic import BaseModel
from runner_support import run_events

from streaming_agents import SqliteJournal
from streaming_agents.llm.throttle import AdaptiveLimiter
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.tools import tool

CALLS: list[str] = []


@tool(side_effecting=True)
def open_ticket(customer: str, priority: int = 1) -> dict[str, Any]:
    """Open a support ticket for a customer."""
    CALLS.append(customer)
    return {"ticket": f"T-{customer}", "priority": priority}


class Verdict(BaseModel):
    label: Literal["ok", "bad"]
    score: int


def _outputs(done: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [json.loads(line) for items in done.values() for c in items for line in c.outputs]


def _dead(done: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [json.loads(c.dead_letter) for items in done.values() for c in items if c.dead_letter]


def _ticket_rule() -> dict[str, Any]:
    return {
        "match": "#0$",
        "tool_calls": [{"name": "open_ticket", "arguments": {"customer": "ada", "priority": 2}}],
    }


def test_tool_loop_runs_the_tool_and_answers(fake_llm: FakeLLM) -> None:
    CALLS.clear()
    fake_llm.configure({"rules": [_ticket_rule()]})
    agent = echo_agent(fake_llm, tools=(open_ticket,))
    done, runner = run_events(agent, [{"k": "a", "seq": 0}, {"k": "a", "seq": 1}])
    outs = _outputs(done)
    assert CALLS == ["ada"]
    assert [o["input"]["seq"] for o in outs] == [0, 1]
    assert outs[0]["output"].startswith("echo[")  # the reply after the tool result
    sent = fake_llm.requests(last=10)
    tool_msgs = [m for r in sent for m in r["messages"] if m["role"] == "tool"]
    assert json.loads(tool_msgs[0]["content"]) == {"ticket": "T-ada", "priority": 2}
    assert runner.stats.tool_calls == 1


def test_tool_results_are_journalled_and_never_repeated(fake_llm: FakeLLM, tmp_path: Path) -> None:
    CALLS.clear()
    fake_llm.configure({"rules": [_ticket_rule()]})
    agent = echo_agent(fake_llm, tools=(open_ticket,))
    journal = SqliteJournal(tmp_path / "j.sqlite")
    first, _ = run_events(agent, [{"k": "a", "seq": 0}], journal=journal)
    calls_after_first = fake_llm.stats()["requests_total"]
    again, runner = run_events(agent, [{"k": "a", "seq": 0}], journal=journal)  # a replay
    assert CALLS == ["ada"], "the side effect ran once"
    assert fake_llm.stats()["requests_total"] == calls_after_first == 2
    assert _outputs(first) == _outputs(again)
    assert runner.stats.journal_hits == 3  # two LLM answers and one tool result


def test_side_effecting_tools_are_fenced(fake_llm: FakeLLM) -> None:
    CALLS.clear()
    fake_llm.configure({"rules": [_ticket_rule()]})
    agent = echo_agent(fake_llm, tools=(open_ticket,))
    done, runner = run_events(agent, [{"k": "a", "seq": 0}], fence_side_effects=True)
    assert CALLS == []
    assert runner.stats.tools_fenced == 1
    assert len(_outputs(done)) == 1


def test_invalid_structured_output_is_repaired_once(fake_llm: FakeLLM) -> None:
    fake_llm.configure(
        {
            "rules": [
                {"match": "failed validation", "json": {"label": "ok", "score": 3}},
                {"match": "#", "reply": "I think it is fine"},
            ]
        }
    )
    agent = echo_agent(fake_llm, output_schema=Verdict)
    done, runner = run_events(agent, [{"k": "a", "seq": 0}])
    assert _outputs(done)[0]["output"] == {"label": "ok", "score": 3}
    assert runner.stats.repairs == 1
    assert fake_llm.stats()["requests_total"] == 2


def test_still_invalid_output_goes_to_dead_letters_with_the_raw_reply(fake_llm: FakeLLM) -> None:
    bad = {"label": "maybe", "score": "x"}
    fake_llm.configure({"rules": [{"match": "#|failed validation", "json": bad}]})
    agent = echo_agent(fake_llm, output_schema=Verdict, max_repairs=1)
    done, _ = run_events(agent, [{"k": "a", "seq": 0}, {"k": "a", "seq": 1}])
    dead = _dead(done)
    assert [d["reason"] for d in dead] == ["unusable llm reply"] * 2
    assert json.loads(dead[0]["payload"]["reply"]) == {"label": "maybe", "score": "x"}
    assert "label" in dead[0]["error"]
    assert _outputs(done) == []


def test_429_storm_shrinks_concurrency_loses_nothing_then_recovers(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"rate_429": 0.5, "retry_after_s": 0, "latency_ms": 20, "seed": 3})
    limiter = AdaptiveLimiter(20, cooldown_s=0.05)
    evts = [json.loads(e) for e in events(n_keys=40, per_key=2)]
    done, _ = run_events(echo_agent(fake_llm), evts, limiter=limiter)
    assert len(_outputs(done)) == 80 and _dead(done) == []
    assert limiter.min_limit <= 5, "429s halved the number of calls in flight"
    assert fake_llm.stats()["by_status"]["429"] > 0
    low = limiter.limit
    fake_llm.configure({"latency_ms": 20})
    evts = [json.loads(e) for e in events(n_keys=40, per_key=5)]
    done, _ = run_events(echo_agent(fake_llm, name="after"), evts, limiter=limiter)
    assert len(_outputs(done)) == 200
    assert limiter.limit > low, "the limit grows back once the 429s stop"


def test_500s_and_timeouts_are_retried(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"rate_500": 0.2, "rate_malformed": 0.1, "seed": 11})
    evts = [json.loads(e) for e in events(n_keys=10, per_key=3)]
    done, _ = run_events(echo_agent(fake_llm, num_retries=6), evts)
    assert len(_outputs(done)) == 30 and _dead(done) == []
    assert fake_llm.stats()["requests_total"] > 30


def test_fallback_model_answers_when_the_first_fails(fake_llm: FakeLLM) -> None:
    from streaming_agents import Agent, ModelSpec

    fake_llm.configure({"rules": [{"match": "#", "status": 400}]})
    bad_first = ModelSpec(
        model="openai/primary",
        api_base=fake_llm.base_url,
        api_key_env="FAKE_LLM_API_KEY",
        num_retries=0,
        fallbacks=("openai/secondary",),
    )
    agent = Agent(name="fb", version="1", model=bad_first, prompt="{k}#{seq}")
    done, _ = run_events(agent, [{"k": "a", "seq": 0}])
    # both models get the 400 here: the event is dead-lettered after the fallback tried
    assert [d["reason"] for d in _dead(done)] == ["llm call failed"]
    models = [r["model"] for r in fake_llm.requests(last=10)]
    assert models == ["primary", "secondary"]


def test_per_call_timeout_then_retry(fake_llm: FakeLLM) -> None:
    from streaming_agents import Agent, ModelSpec

    fake_llm.configure({"rules": [{"match": "slow", "fault": "timeout"}], "timeout_s": 5})
    spec = ModelSpec(
        model="openai/m",
        api_base=fake_llm.base_url,
        api_key_env="FAKE_LLM_API_KEY",
        timeout_s=0.5,
        num_retries=1,
    )
    agent = Agent(name="to", version="1", model=spec, prompt="{text}")
    done, _ = run_events(agent, [{"k": "a", "text": "slow one"}, {"k": "b", "text": "fast"}])
    dead = _dead(done)
    assert [d["key"] for d in dead] == ["a"] and "Timeout" in dead[0]["error"]
    assert [o["key"] for o in _outputs(done)] == ["b"]
    assert fake_llm.stats()["requests_total"] == 3  # a, its one retry, b
