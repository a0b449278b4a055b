"""A replay that starts each key with production's memory, restored from production's state.

Production (the pipeline builder, unbounded, agent uid ``agent-<name>``) answers the
first three events of every key and is cancelled with its last checkpoint retained.
A bounded replay of the next three events per key (its own topic and offsets) is
started from that checkpoint with the agent under production's uid and
``execution.state-recovery.ignore-unclaimed-state``: the keys' conversations go on
at turn 4 with production's memory (the fake LLM's echo counts the messages sent),
and the replay reads only its own range.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import cloudpickle
from agent_support import echo_agent, events

from streaming_agents import SqliteJournal
from streaming_agents.connectors.kafka import exactly_once_sink
from streaming_agents.pipeline import AgentPipeline
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce

cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEYS = 5


def _retained_checkpoint(root: Path) -> Path:
    found = sorted(root.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name[4:]))
    assert found, f"no retained checkpoint under {root}"
    return found[-1].parent


def _ends_within(client: Any, timeout_s: float) -> bool:
    """Whether the job ends within ``timeout_s``; it is cancelled if not."""
    waiter = threading.Thread(target=client.get_job_execution_result().result, daemon=True)
    waiter.start()
    waiter.join(timeout_s)
    if waiter.is_alive():
        client.cancel().result()
        return False
    return True


def _later(raw: list[str], offset: int) -> list[str]:
    out = []
    for line in raw:
        event = json.loads(line)
        event["seq"] += offset
        out.append(json.dumps(event))
    return out


def test_replay_starts_keys_with_production_memory(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    prod_in, prod_out, prod_dlq = topic_factory("in"), topic_factory("out"), topic_factory("dlq")
    history, shadow = topic_factory("history"), topic_factory("shadow")
    produce(kafka_bootstrap, prod_in, [(None, e) for e in events(KEYS, 3)])
    agent = echo_agent(fake_llm)
    ckpt = tmp_path / "ckpt"

    env = local_env(
        checkpoint_interval_ms=500,
        checkpoint_dir=str(ckpt),
        extra_config={
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION"
        },
    )
    AgentPipeline.from_kafka(env, kafka_bootstrap, prod_in, "production").key_by("k").apply(
        agent, journal=SqliteJournal(tmp_path / "prod.sqlite")
    ).to_kafka(
        kafka_bootstrap,
        outputs=prod_out,
        dead_letters=prod_dlq,
        transactional_id_prefix=f"prod-{prod_out}",
    )
    client = env.execute_async("production")
    done = consume_committed(kafka_bootstrap, prod_out, expected=KEYS * 3, timeout_s=180)
    assert len(done) == KEYS * 3  # committed: a checkpoint after every output completed
    client.cancel().result()
    restore = _retained_checkpoint(ckpt)

    produce(kafka_bootstrap, history, [(None, e) for e in _later(events(KEYS, 3), 3)])
    replay_env = local_env(
        checkpoint_interval_ms=500,
        extra_config={
            "execution.state-recovery.path": restore.as_uri(),
            "execution.state-recovery.ignore-unclaimed-state": "true",
            # The Kafka source comes from the Table API without a uid: both jobs would get
            # the same topology-derived one and the replay would restore production's
            # (unbounded) source state.  An explicit, different uid leaves it unclaimed.
            "table.exec.uid.generation": "ALWAYS",
            "table.exec.uid.format": "replay-<id>_<transformation>",
        },
    )
    streams = (
        AgentPipeline.from_kafka(replay_env, kafka_bootstrap, history, "replay", bounded=True)
        .key_by("k")
        .apply(
            agent,
            journal=SqliteJournal(tmp_path / "replay.sqlite"),
            uid=f"agent-{agent.name}",
            fence_side_effects=True,
        )
    )
    streams.outputs.sink_to(exactly_once_sink(kafka_bootstrap, shadow, f"replay-{shadow}"))
    replay = replay_env.execute_async("replay")
    assert _ends_within(replay, timeout_s=240), "the bounded replay did not end"

    outputs = [
        json.loads(m.value())
        for m in consume_committed(kafka_bootstrap, shadow, expected=KEYS * 3, linger_s=2)
    ]
    assert len(outputs) == KEYS * 3
    for key in {o["key"] for o in outputs}:
        mine = [o for o in outputs if o["key"] == key]
        assert [o["input"]["seq"] for o in mine] == [3, 4, 5], "only the replay's own range"
        assert [o["turn"] for o in mine] == [4, 5, 6], "production's memory continued"
        # 3 remembered turns (6 messages) + the new prompt on the first replayed event
        assert mine[0]["output"].startswith("echo[n=7]"), mine[0]["output"]
