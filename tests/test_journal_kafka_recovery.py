"""A forced task failure with the Kafka journal: answered calls are not paid again.

As tests/test_agent_recovery.py, but the job names its journal by URI
(``kafka://bootstrap/topic``), resolved by the operator where it runs.  After
the restart the operator finds the answers of the replayed events in the
journal topic (reading the recent tail of its keys' partitions) instead of
paying for them again.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cloudpickle
from agent_support import echo_agent, events
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from streaming_agents import run_agent
from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.faults import CrashOnce, attempt_logs
from streaming_agents.testing.kafka import consume_committed, end_offsets, produce

KEYS, PER_KEY = 20, 10

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_kafka_journal_answers_replayed_calls_after_a_forced_failure(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory, tmp_path: Path
) -> None:
    from pyflink.common import Types, WatermarkStrategy

    fake_llm.configure({"latency_ms": {"kind": "uniform", "min_ms": 20, "max_ms": 80}})
    src, dst = topic_factory("in"), topic_factory("out")
    journal_topic = f"journal-{time.time_ns()}"
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
    source = kafka_source(kafka_bootstrap, src, "kafka-journal-test", bounded=True)
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
    keyed = stream.key_by(lambda s: json.loads(s)["k"], key_type=Types.STRING())
    uri = f"kafka://{kafka_bootstrap}/{journal_topic}?partitions=8"
    out = run_agent(keyed, echo_agent(fake_llm), capacity=100, journal=uri)
    crash_dir = str(tmp_path / "crash")
    out.map(CrashOnce(crash_dir, at_record=total // 2), output_type=Types.STRING()).sink_to(
        exactly_once_sink(kafka_bootstrap, dst, f"kj-{dst}")
    )
    env.execute("kafka-journal-recovery")

    logs = attempt_logs(crash_dir)
    assert sorted(logs) == [0, 1], "the task failed once and was restarted once"
    produced_twice = len(logs[0]) + len(logs[1]) - total
    committed = [
        json.loads(m.value())
        for m in consume_committed(kafka_bootstrap, dst, expected=total, timeout_s=60, linger_s=3)
    ]
    assert len(committed) == total
    assert len({(o["key"], o["input"]["seq"]) for o in committed}) == total, "no duplicates"

    for key in {o["key"] for o in committed}:
        mine = [o for o in committed if o["key"] == key]
        assert [o["input"]["seq"] for o in mine] == list(range(PER_KEY))
        assert [o["turn"] for o in mine] == list(range(1, PER_KEY + 1)), "memory applied once"
    stats = fake_llm.stats()
    assert stats["requests_distinct"] == total
    repeated = stats["requests_total"] - stats["requests_distinct"]
    print(f"replayed outputs {produced_twice}, calls paid again {repeated} (<= {KEYS} in flight)")
    assert repeated <= KEYS, stats
    assert produced_twice > repeated, "the replay was answered from the Kafka journal"

    # every paid call is in the journal topic (compaction may merge a race's twins)
    assert sum(end_offsets(kafka_bootstrap, journal_topic).values()) >= total
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, journal_topic)
    config = admin.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == "compact,delete"
    assert config["message.timestamp.type"].value == "LogAppendTime"
