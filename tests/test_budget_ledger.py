"""Budget ledgers: reservation before a call, settlement after, and the overshoot
bound measured with three processes racing against the real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from streaming_agents.journal.factory import open_ledger
from streaming_agents.journal.ledger import BudgetLimits

WORKER = str(Path(__file__).with_name("journal_worker.py"))


def test_sqlite_ledger_reserves_before_and_settles_after(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite://{tmp_path}/l.sqlite", agent="a", window_s=60)
    limits = BudgetLimits(max_tokens=100, max_cost_usd=None)

    async def scenario() -> list[object]:
        first = await ledger.reserve("a", 7, limits, 60, 0.0)
        second = await ledger.reserve("a", 7, limits, 60, 0.0)  # 120 > 100: refused
        assert first is not None
        await ledger.settle(first, 30, 0.0)  # the call spent less than reserved
        third = await ledger.reserve("a", 7, limits, 60, 0.0)  # 30 + 60 fits now
        other_window = await ledger.reserve("a", 8, limits, 100, 0.0)
        return [second, third, other_window]

    second, third, other_window = asyncio.run(scenario())
    assert second is None and third is not None and other_window is not None
    assert ledger.spent("a", 7) == (90, 0.0)
    ledger.close()


def _race(bootstrap: str, topic: str, agent: str, max_tokens: int, reserve: int) -> list[dict]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                WORKER,
                "race",
                bootstrap,
                topic,
                agent,
                "1",
                str(max_tokens),
                str(reserve),
                "120",
                "8",
                str(seed),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(3)
    ]
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def _ledger_total(bootstrap: str, topic: str, agent: str) -> int:
    """What a new host computes from the topic: it must agree with the racers."""
    ledger = open_ledger(f"kafka://{bootstrap}/{topic}", agent=agent, window_s=3600)

    async def catch_up() -> int:
        # a zero reservation returns once this host has read up to it
        await ledger.reserve(agent, 1, BudgetLimits(None, None), 0, 0.0)
        return ledger.spent(agent, 1)[0]

    total = asyncio.run(catch_up())
    ledger.close()
    return total


def test_three_processes_never_overshoot_when_reserving_a_calls_maximum(
    kafka_bootstrap: str,
) -> None:
    topic, agent, budget = f"ledger-{time.time_ns()}", "racer", 2000
    outs = _race(kafka_bootstrap, topic, agent, budget, reserve=40)  # 40 = the most a call spends
    actual = sum(o["actual"] for o in outs)
    granted = sum(o["granted"] for o in outs)
    print(f"reserve=max: granted {granted} of 360 calls, spent {actual} of {budget}")
    assert granted > 0 and sum(o["refused"] for o in outs) > 0, outs
    assert actual <= budget, outs
    assert _ledger_total(kafka_bootstrap, topic, agent) == actual, "every host agrees"


def test_overshoot_stays_within_the_stated_bound_when_reserving_less(
    kafka_bootstrap: str,
) -> None:
    topic, agent, budget, reserve = f"ledger-{time.time_ns()}", "racer", 2000, 10
    outs = _race(kafka_bootstrap, topic, agent, budget, reserve=reserve)
    actual = sum(o["actual"] for o in outs)
    in_flight = sum(o["max_in_flight"] for o in outs)
    bound = in_flight * (40 - reserve)  # sum over calls in flight of actual - reserved
    print(f"reserve={reserve}: spent {actual} of {budget}, overshoot {max(0, actual - budget)},"
          f" bound {bound} ({in_flight} calls in flight at most)")  # fmt: skip
    assert actual <= budget + bound, outs
    assert _ledger_total(kafka_bootstrap, topic, agent) == actual, "every host agrees"


def test_an_agent_budget_on_the_kafka_ledger_is_shared_by_two_runners(
    fake_llm, kafka_bootstrap: str
) -> None:  # type: ignore[no-untyped-def]
    from agent_support import echo_agent
    from runner_support import run_events

    from streaming_agents.llm.budget import Budget

    # the fake counts words + messages: a first call costs 4 tokens, one with history 9
    budget = Budget(max_tokens=10, window_s=3600, on_exceeded="dead_letter",
                    ledger=f"kafka://{kafka_bootstrap}/ledger-{time.time_ns()}")  # fmt: skip
    agent = echo_agent(fake_llm, budget=budget)
    done, _ = run_events(agent, [{"k": "a", "seq": i} for i in range(4)], capacity=1)
    reasons = [c.dead_letter and json.loads(c.dead_letter)["reason"] for c in done["a"]]
    assert reasons == [None, None, "over budget", "over budget"]
    # a second runner (another subtask, another host) reads the same ledger: still spent
    done, _ = run_events(agent, [{"k": "b", "seq": 0}], capacity=1)
    assert json.loads(done["b"][0].dead_letter or "{}")["reason"] == "over budget"
    assert fake_llm.stats()["requests_total"] == 2
