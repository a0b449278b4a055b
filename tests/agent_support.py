"""Helpers shared by the agent-operator tests (pickled by value into Flink)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from streaming_agents import Agent, Journal, ModelSpec, NullJournal, SqliteJournal
from streaming_agents.runtime.keys import json_key
from streaming_agents.testing.fake_llm import FakeLLM

cloudpickle.register_pickle_by_value(sys.modules[__name__])

FAKE_KEY_ENV = "FAKE_LLM_API_KEY"


def echo_agent(fake_llm: FakeLLM, name: str = "echo", version: str = "1", **kw: Any) -> Agent[Any]:
    """An agent whose replies are the fake LLM's echo (``echo[n=<messages>]: <prompt>``)."""
    model = ModelSpec(
        model="openai/fake-model",
        api_base=fake_llm.base_url,
        api_key_env=FAKE_KEY_ENV,
        num_retries=kw.pop("num_retries", 2),
    )
    return Agent(name=name, version=version, model=model, prompt="{k}#{seq}", **kw)


def events(n_keys: int, per_key: int, interleave: bool = True) -> list[str]:
    """JSON events ``{"k": "k<i>", "seq": <j>}``, seq counting from 0 per key."""
    if interleave:
        pairs = [(k, s) for s in range(per_key) for k in range(n_keys)]
    else:
        pairs = [(k, s) for k in range(n_keys) for s in range(per_key)]
    return [json.dumps({"k": f"k{k}", "seq": s}) for k, s in pairs]


def run_collect(
    agent: Agent[Any],
    raw_events: list[str],
    *,
    capacity: int = 100,
    journal: Journal | None = None,
    llm_processes: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the agent on the mini-cluster over a bounded collection.

    Returns (outputs, dead letters), both parsed from JSON.
    """
    from pyflink.common import Types

    from streaming_agents import dead_letters, run_agent
    from streaming_agents.runtime.environment import local_env

    env = local_env(checkpoint_interval_ms=None)
    source = env.from_collection(raw_events, type_info=Types.STRING())
    keyed = source.key_by(json_key("k"), key_type=Types.STRING())
    out = run_agent(
        keyed,
        agent,
        capacity=capacity,
        journal=journal or NullJournal(),
        llm_processes=llm_processes,
    )
    tagged = out.map(lambda s: "OUT " + s, output_type=Types.STRING()).union(
        dead_letters(out).map(lambda s: "DLQ " + s, output_type=Types.STRING())
    )
    lines = list(tagged.execute_and_collect())
    outputs = [json.loads(line[4:]) for line in lines if line.startswith("OUT ")]
    dead = [json.loads(line[4:]) for line in lines if line.startswith("DLQ ")]
    return outputs, dead


def by_key(outputs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for out in outputs:
        grouped.setdefault(out["key"], []).append(out)
    return grouped


def sqlite_journal(tmp_path: Path) -> SqliteJournal:
    return SqliteJournal(tmp_path / "journal.sqlite")
