"""Bounded replays stream: checkpoints with outputs complete midway, and a crash resumes there.

A replay-shaped job (the pipeline builder on a bounded Kafka range, the agent
fenced under the shadow uid, exactly-once sink) fails once at 75 % of its
outputs.  Because the agent operator back-pressures its input (at most
4 x capacity events accepted but unprocessed), the input is read at the pace
of the work and checkpoints holding outputs complete all along; the restart
resumes from the last of them.  Without back-pressure the whole range is read
in about a second, the outputs come in the end-of-input drain, and the last
checkpoint before the crash holds almost none of them (the restart redoes
nearly everything): the ``redone`` assertion below fails on that code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cloudpickle
from agent_support import echo_agent

from streaming_agents import SqliteJournal
from streaming_agents.connectors.kafka import exactly_once_sink
from streaming_agents.pipeline import AgentPipeline
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.faults import CrashOnce, attempt_logs
from streaming_agents.testing.kafka import consume_committed, produce

cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEYS, PER_KEY, CAPACITY = 20, 20, 8
# Large events keep few records in Flink's network buffers between the source and
# the operator (a checkpoint barrier queues behind them), as in a replay of real
# events; 400 tiny records would all fit in one buffer.
PAD = "x" * 16_000


def _events() -> list[str]:
    pairs = [(k, s) for s in range(PER_KEY) for k in range(KEYS)]
    return [json.dumps({"k": f"k{k}", "seq": s, "pad": PAD}) for k, s in pairs]


def test_bounded_replay_checkpoints_midway_and_resumes_from_there(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    fake_llm.configure({"latency_ms": 150})
    src, dst = topic_factory("history"), topic_factory("shadow")
    produce(kafka_bootstrap, src, [(None, e) for e in _events()])
    total = KEYS * PER_KEY
    crash_at = total * 3 // 4

    env = local_env(
        checkpoint_interval_ms=500,
        extra_config={
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "3",
            "restart-strategy.fixed-delay.delay": "500 ms",
            # as replay() runs: barriers overtake the records back-pressure keeps queued
            "execution.checkpointing.unaligned.enabled": "true",
        },
    )
    agent = echo_agent(fake_llm)
    streams = (
        AgentPipeline.from_kafka(
            env,
            kafka_bootstrap,
            src,
            "replay-streams-test",
            bounded=True,
            properties={"commit.offsets.on.checkpoint": "false"},
        )
        .key_by("k")
        .apply(
            agent,
            capacity=CAPACITY,
            journal=SqliteJournal(tmp_path / "journal.sqlite"),
            uid=f"shadow-agent-{agent.name}",
            fence_side_effects=True,
        )
    )
    from pyflink.common import Types

    crash_dir = str(tmp_path / "crash")
    crashing = streams.outputs.map(
        CrashOnce(crash_dir, at_record=crash_at), output_type=Types.STRING()
    )
    crashing.sink_to(exactly_once_sink(kafka_bootstrap, dst, f"streams-{dst}"))
    env.execute("replay-streams")

    logs = attempt_logs(crash_dir)
    assert sorted(logs) == [0, 1], "the task failed once and was restarted once"
    assert len(logs[0]) == crash_at
    committed = [
        json.loads(m.value())
        for m in consume_committed(kafka_bootstrap, dst, expected=total, timeout_s=60, linger_s=3)
    ]
    assert len(committed) == total
    assert len({(o["key"], o["input"]["seq"]) for o in committed}) == total, "no duplicates"
    for key in {o["key"] for o in committed}:
        mine = [o for o in committed if o["key"] == key]
        assert [o["input"]["seq"] for o in mine] == list(range(PER_KEY)), "per-key order"
        assert [o["turn"] for o in mine] == list(range(1, PER_KEY + 1)), "memory applied once"
    # The restart began from a checkpoint taken midway: the outputs it held were not
    # produced again.  (With the end-of-input drain it held almost none.)
    redone = len(logs[1])
    assert redone <= total * 6 // 10, f"{redone} of {total} outputs produced again after restart"
