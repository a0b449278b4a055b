"""A forced task failure mid-run: no output lost or duplicated, no LLM call repaid.

The job reads a Kafka topic, runs the agent, passes outputs through
CrashOnce (which fails the task once, mid-run) and writes them with the
exactly-once Kafka sink.  Flink restarts from the last checkpoint and replays;
the journal must answer every call that had already been answered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cloudpickle
from agent_support import echo_agent, events

from streaming_agents import SqliteJournal, run_agent, tool
from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.faults import CrashOnce, attempt_logs
from streaming_agents.testing.kafka import consume_committed, produce

KEYS, PER_KEY = 20, 10

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_forced_failure_loses_nothing_duplicates_nothing_repays_nothing(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    from pyflink.common import Types, WatermarkStrategy

    fake_llm.configure({"latency_ms": {"kind": "uniform", "min_ms": 20, "max_ms": 80}})
    src, dst = topic_factory("in"), topic_factory("out")
    produce(kafka_bootstrap, src, [(None, e) for e in events(KEYS, PER_KEY)])
    total = KEYS * PER_KEY

    env = local_env(
        checkpoint_interval_ms=10_000,
        extra_config={
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "3",
            "restart-strategy.fixed-delay.delay": "500 ms",
        },
    )
    source = kafka_source(kafka_bootstrap, src, "recovery-test", bounded=True)
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
    keyed = stream.key_by(lambda s: json.loads(s)["k"], key_type=Types.STRING())
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    out = run_agent(keyed, echo_agent(fake_llm), capacity=100, journal=journal)
    crash_dir = str(tmp_path / "crash")
    out.map(CrashOnce(crash_dir, at_record=total // 2), output_type=Types.STRING()).sink_to(
        exactly_once_sink(kafka_bootstrap, dst, f"recovery-{dst}")
    )
    env.execute("agent-recovery")

    logs = attempt_logs(crash_dir)
    assert sorted(logs) == [0, 1], "the task failed once and was restarted once"
    produced_twice = len(logs[0]) + len(logs[1]) - total
    assert produced_twice >= total // 2 - KEYS, "the restart replayed what was done before it"

    committed = [
        json.loads(m.value())
        for m in consume_committed(kafka_bootstrap, dst, expected=total, timeout_s=60, linger_s=3)
    ]
    assert len(committed) == total
    seen = {(o["key"], o["input"]["seq"]) for o in committed}
    assert len(seen) == total, "no duplicates"
    for key in {o["key"] for o in committed}:
        mine = [o for o in committed if o["key"] == key]
        assert [o["input"]["seq"] for o in mine] == list(range(PER_KEY))
        assert [o["turn"] for o in mine] == list(range(1, PER_KEY + 1)), "memory applied once"

    stats = fake_llm.stats()
    assert stats["requests_distinct"] == total
    # Only calls in flight at the crash (at most one per key) may be paid twice;
    # every call answered before it came back from the journal.
    repeated = stats["requests_total"] - stats["requests_distinct"]
    assert repeated <= KEYS, stats
    assert produced_twice > repeated


def _side_effect_tool(path: str) -> Any:
    @tool(side_effecting=True)
    def record_action(note: str) -> dict[str, str]:
        """Record an action in the outside world (a file standing in for an API)."""
        with open(path, "a") as out:
            out.write(note + "\n")
        return {"recorded": note}

    return record_action


def test_forced_failure_does_not_repeat_recorded_tool_side_effects(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    from pyflink.common import Types, WatermarkStrategy

    keys, per_key = 10, 6
    total = keys * per_key
    rule = {"match": "#", "tool_calls": [{"name": "record_action", "arguments": {"note": "x"}}]}
    fake_llm.configure(
        {"rules": [rule], "latency_ms": {"kind": "uniform", "min_ms": 20, "max_ms": 60}}
    )
    src, dst = topic_factory("in"), topic_factory("out")
    produce(kafka_bootstrap, src, [(None, e) for e in events(keys, per_key)])
    effects = tmp_path / "effects.log"

    env = local_env(
        checkpoint_interval_ms=10_000,
        extra_config={
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "3",
            "restart-strategy.fixed-delay.delay": "500 ms",
        },
    )
    source = kafka_source(kafka_bootstrap, src, "tool-recovery", bounded=True)
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
    keyed = stream.key_by(lambda s: json.loads(s)["k"], key_type=Types.STRING())
    agent = echo_agent(fake_llm, tools=(_side_effect_tool(str(effects)),))
    out = run_agent(keyed, agent, journal=SqliteJournal(tmp_path / "journal.sqlite"))
    crash_dir = str(tmp_path / "crash")
    out.map(CrashOnce(crash_dir, at_record=total // 2), output_type=Types.STRING()).sink_to(
        exactly_once_sink(kafka_bootstrap, dst, f"tools-{dst}")
    )
    env.execute("tool-recovery")

    logs = attempt_logs(crash_dir)
    assert sorted(logs) == [0, 1]
    produced_twice = len(logs[0]) + len(logs[1]) - total
    committed = consume_committed(kafka_bootstrap, dst, expected=total, timeout_s=60, linger_s=2)
    assert len(committed) == total
    runs = effects.read_text().splitlines()
    # one side effect per event; only a tool call in flight at the crash may run twice
    assert total <= len(runs) <= total + keys, len(runs)
    assert len(runs) - total < produced_twice
