"""A budget held by two subtasks at once: the Kafka ledger, reserved before each call.

The echo agent runs at parallelism 2 on the mini-cluster; each subtask has its
own ledger client (its own producer and tailing consumer), as two hosts would.
Every call reserves ``reserve_tokens``, at least what any call here spends, so
the stated bound says the window's spend never exceeds the budget: checked
from the ledger topic (what a new host computes) and from the outputs' usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import cloudpickle
from agent_support import echo_agent, events

from streaming_agents import run_agent
from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
from streaming_agents.journal.factory import open_ledger
from streaming_agents.journal.ledger import BudgetLimits
from streaming_agents.llm.budget import Budget
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce

KEYS, PER_KEY, BUDGET, RESERVE = 12, 5, 400, 40

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _ledger_spend(uri: str, agent: str, windows: list[int]) -> list[int]:
    ledger = open_ledger(uri, agent=agent, window_s=3600)

    async def read() -> list[int]:
        await ledger.reserve(agent, windows[-1], BudgetLimits(None, None), 0, 0.0)  # catch up
        return [ledger.spent(agent, w)[0] for w in windows]

    spent = asyncio.run(read())
    ledger.close()
    return spent


def test_two_subtasks_share_one_budget_without_overshoot(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory
) -> None:
    from pyflink.common import Types, WatermarkStrategy

    fake_llm.configure({"latency_ms": {"kind": "uniform", "min_ms": 50, "max_ms": 150}})
    src, dst = topic_factory("in", partitions=2), topic_factory("out")
    produce(kafka_bootstrap, src, [(None, e) for e in events(KEYS, PER_KEY)])
    ledger_uri = f"kafka://{kafka_bootstrap}/ledger-{time.time_ns()}"
    budget = Budget(max_tokens=BUDGET, window_s=3600, on_exceeded="dead_letter",
                    reserve_tokens=RESERVE, ledger=ledger_uri)  # fmt: skip
    agent = echo_agent(fake_llm, budget=budget)
    first_window = budget.window()

    env = local_env(parallelism=2, checkpoint_interval_ms=2000)
    source = kafka_source(kafka_bootstrap, src, "budget-parallel", bounded=True)
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
    keyed = stream.key_by(lambda s: json.loads(s)["k"], key_type=Types.STRING())
    out = run_agent(keyed, agent, capacity=50, journal="none")
    out.sink_to(exactly_once_sink(kafka_bootstrap, dst, f"bp-{dst}"))
    env.execute("budget-parallel")

    windows = sorted({first_window, budget.window()})
    outputs = [json.loads(m.value()) for m in consume_committed(kafka_bootstrap, dst, linger_s=3)]
    used = [o["usage"]["prompt_tokens"] + o["usage"]["completion_tokens"] for o in outputs]
    assert outputs and len(outputs) < KEYS * PER_KEY, "the budget stopped some events"
    assert max(used) <= RESERVE, "each call reserved at least what it spent: bound is 0"
    spent = _ledger_spend(ledger_uri, agent.name, windows)
    print(f"outputs {len(outputs)} of {KEYS * PER_KEY}; spent {spent} of {BUDGET} per window;"
          f" calls {fake_llm.stats()['requests_total']}")  # fmt: skip
    assert all(s <= BUDGET for s in spent), spent
    assert sum(spent) == sum(used), "every paid call settled to its actual usage"
    assert fake_llm.stats()["requests_total"] == len(outputs)
