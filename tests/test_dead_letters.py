"""Bad input from Kafka goes to a dead-letter topic with its bytes and coordinates."""

from __future__ import annotations

import base64
import json

from agent_support import echo_agent

from streaming_agents import dead_letters, run_agent
from streaming_agents.connectors.kafka import exactly_once_sink
from streaming_agents.connectors.kafka_records import json_key, kafka_records
from streaming_agents.runtime.environment import local_env
from streaming_agents.runtime.events import Limits
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce


def test_bad_records_reach_the_dead_letter_topic_and_the_job_goes_on(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory
) -> None:
    from pyflink.common import Types

    src, out_topic, dlq_topic = topic_factory("in"), topic_factory("out"), topic_factory("dlq")
    records: list[bytes] = [
        b'{"k": "a", "seq": 0}',
        b"\xff\xfe not utf-8",
        b'{"k": "a", "seq": 1}',
        b"{truncated json",
        json.dumps({"k": "b", "seq": 0, "blob": "x" * 3000}).encode(),
        b"[1, 2, 3]",
        b'{"k": "b", "seq": 1}',
    ]
    produce(kafka_bootstrap, src, [(None, r) for r in records])

    env = local_env(checkpoint_interval_ms=2000)
    rows = kafka_records(env, kafka_bootstrap, src, "dlq-test", bounded=True)
    out = run_agent(
        rows.key_by(json_key("k"), key_type=Types.STRING()),
        echo_agent(fake_llm),
        limits=Limits(max_event_bytes=2048),
    )
    out.sink_to(exactly_once_sink(kafka_bootstrap, out_topic, f"o-{out_topic}"))
    dead_letters(out).sink_to(exactly_once_sink(kafka_bootstrap, dlq_topic, f"d-{dlq_topic}"))
    env.execute("dead-letters")

    outputs = [
        json.loads(m.value()) for m in consume_committed(kafka_bootstrap, out_topic, expected=3)
    ]
    assert [(o["key"], o["input"]["seq"], o["turn"]) for o in outputs] == [
        ("a", 0, 1),
        ("a", 1, 2),
        ("b", 1, 1),
    ]
    assert outputs[0]["source"]["offset"] == 0 and outputs[0]["source"]["topic"] == src

    dead = [
        json.loads(m.value()) for m in consume_committed(kafka_bootstrap, dlq_topic, expected=4)
    ]
    by_offset = {d["source"]["offset"]: d for d in dead}
    assert sorted(by_offset) == [1, 3, 4, 5]
    for offset, record in by_offset.items():
        assert base64.b64decode(record["original_b64"]) == records[offset]
        assert record["source"]["topic"] == src and record["source"]["partition"] == 0
        assert record["agent"] == "echo"
    assert by_offset[1]["reason"] == "malformed event" and "UTF-8" in by_offset[1]["error"]
    assert by_offset[3]["reason"] == "malformed event" and "JSON" in by_offset[3]["error"]
    assert by_offset[4]["reason"] == "oversized event"
    assert by_offset[5]["error"].startswith("not a JSON object")
