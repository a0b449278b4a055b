"""The control experiment of a replay on production's memory (issue 17, item 1).

Production (the pipeline builder, unbounded, agent uid ``agent-<name>``, a
SQLite journal) answers three events of each of 5 keys; its newest completed
checkpoint then is the "savepoint" (retained: on the mini-cluster no REST
savepoint is available; the standalone-cluster path takes real savepoints in
``tests/test_promote.py``).  Production goes on with three more events per key.

1. ``replay(production version, memory_from=checkpoint, journal=production's)``
   reads from the offsets in the checkpoint (the second half, found there, not
   given), starts each key with production's memory and reproduces production's
   outputs 100 % with 0 LLM calls (the fake LLM's counter does not move); the
   summary and ``to_dict`` say which memory start was used.
2. A live ``shadow(memory_from=checkpoint)`` starts at the same offsets on the
   same memory and, calling the (deterministic) fake LLM, gives the same outputs.
3. The same replay of the same range from empty memory differs on every one of
   those (multi-turn) outputs and has to call the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cloudpickle
from agent_support import echo_agent, events

from streaming_agents import SqliteJournal
from streaming_agents.pipeline import AgentPipeline
from streaming_agents.replay import ReplayRange, replay, shadow
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce

cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEYS = 5
TURNS = 3  # per key before the savepoint, and again after it


def _newest_checkpoint(root: Path) -> Path:
    found = sorted(root.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name[4:]))
    assert found, f"no completed checkpoint under {root}"
    return found[-1].parent


def _later(raw: list[str], offset: int) -> list[str]:
    out = []
    for line in raw:
        event = json.loads(line)
        event["seq"] += offset
        out.append(json.dumps(event))
    return out


def _by_input(outputs: list[dict[str, Any]]) -> dict[tuple[str, int], Any]:
    return {(o["key"], o["input"]["seq"]): o["output"] for o in outputs}


def _shadow_outputs(bootstrap: str, topic: str, run_id: str) -> list[dict[str, Any]]:
    records = consume_committed(bootstrap, topic, expected=KEYS * TURNS, linger_s=1, timeout_s=180)
    docs = [json.loads(m.value()) for m in records]
    return [d for d in docs if d["replay"]["run"] == run_id and not d.get("dead_letter")]


def test_replay_on_production_memory_reproduces_production(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    prod_in, prod_out, prod_dlq = topic_factory("in"), topic_factory("out"), topic_factory("dlq")
    agent = echo_agent(fake_llm)
    journal_file = tmp_path / "prod.sqlite"
    ckpt = tmp_path / "ckpt"
    produce(kafka_bootstrap, prod_in, [(None, e) for e in events(KEYS, TURNS)])
    env = local_env(
        checkpoint_interval_ms=500,
        checkpoint_dir=str(ckpt),
        extra_config={
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.num-retained": "1000",  # keep the mid-run one
        },
    )
    AgentPipeline.from_kafka(env, kafka_bootstrap, prod_in, "production").key_by("k").apply(
        agent, journal=SqliteJournal(journal_file)
    ).to_kafka(
        kafka_bootstrap,
        outputs=prod_out,
        dead_letters=prod_dlq,
        transactional_id_prefix=f"prod-{prod_out}",
    )
    client = env.execute_async("production")
    try:
        first = consume_committed(kafka_bootstrap, prod_out, expected=KEYS * TURNS, timeout_s=180)
        assert len(first) == KEYS * TURNS
        # Committed outputs = a checkpoint after all of them completed: this one holds the
        # memory of 3 turns per key and the source at offset 15.
        savepoint = _newest_checkpoint(ckpt)
        produce(kafka_bootstrap, prod_in, [(None, e) for e in _later(events(KEYS, TURNS), TURNS)])
        done = consume_committed(
            kafka_bootstrap, prod_out, expected=2 * KEYS * TURNS, timeout_s=180
        )
        assert len(done) == 2 * KEYS * TURNS
    finally:
        client.cancel().result()
    production = _by_input([json.loads(m.value()) for m in done])
    second_half = {k: v for k, v in production.items() if k[1] >= TURNS}
    assert all(v.startswith("echo[n=") for v in second_half.values())

    calls_before = fake_llm.stats()["requests_total"]
    on_memory = replay(
        agent,
        bootstrap=kafka_bootstrap,
        topic=prod_in,
        key_field="k",
        shadow_topic=topic_factory("shadow"),
        journal=journal_file,
        memory_from=savepoint,
        production_topic=prod_out,
        progress=False,
        run_dir=tmp_path / "runs",
    )
    assert on_memory.range.offsets == {0: (KEYS * TURNS, 2 * KEYS * TURNS)}, "savepoint offsets"
    assert on_memory.llm_calls_made == 0
    assert fake_llm.stats()["requests_total"] == calls_before, "answered from the journal"
    replayed = _by_input(_shadow_outputs(kafka_bootstrap, on_memory.shadow_topic, on_memory.run_id))
    assert replayed == second_half, "100 % of production's outputs reproduced"
    summary = on_memory.summary()
    assert f"memory start: production's, from savepoint {savepoint}" in summary, summary
    start = on_memory.to_dict()["memory_start"]
    assert start["kind"] == "savepoint" and start["agent_uid"] == f"agent-{agent.name}"
    assert start["offsets"] == {"0": KEYS * TURNS}

    live = shadow(
        agent,
        bootstrap=kafka_bootstrap,
        topic=prod_in,
        key_field="k",
        shadow_topic=topic_factory("live"),
        memory_from=savepoint,
        production_topic=prod_out,
        run_dir=tmp_path / "runs",
    )
    try:
        shadowed = _by_input(_shadow_outputs(kafka_bootstrap, live.shadow_topic, live.run_id))
    finally:
        live.stop()
    assert live.memory_start.offsets == {0: KEYS * TURNS}
    assert shadowed == second_half, "the live shadow on production's memory agrees"

    empty = replay(
        agent,
        bootstrap=kafka_bootstrap,
        topic=prod_in,
        key_field="k",
        shadow_topic=topic_factory("shadow"),
        range=ReplayRange.offsets(KEYS * TURNS, 2 * KEYS * TURNS),
        journal=journal_file,
        production_topic=prod_out,
        progress=False,
        run_dir=tmp_path / "runs",
    )
    fresh = _by_input(_shadow_outputs(kafka_bootstrap, empty.shadow_topic, empty.run_id))
    assert set(fresh) == set(second_half)
    differing = [k for k in fresh if fresh[k] != second_half[k]]
    assert len(differing) == KEYS * TURNS, "every multi-turn output differs without memory"
    assert empty.llm_calls_made == KEYS * TURNS
    assert "memory start: empty" in empty.summary()
    assert empty.to_dict()["memory_start"]["kind"] == "empty"
