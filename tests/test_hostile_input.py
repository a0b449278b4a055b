"""No record a producer can write stops an agent job (the hostile corpus, end to end).

Every case of :mod:`streaming_agents.testing.hostile` is written to a real
topic, each followed by a valid event.  The job must finish with one
committed output per valid record, one dead letter per bad record (with the
expected reason and the record's exact offset), nothing else, and every
record within the sink's size limit.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

import pytest
from agent_support import echo_agent
from hostile_support import check_outcomes, collect

from streaming_agents import dead_letters, run_agent
from streaming_agents.connectors.kafka import exactly_once_sink
from streaming_agents.connectors.kafka_records import json_key, kafka_records
from streaming_agents.pipeline import Prepare
from streaming_agents.runtime.environment import local_env
from streaming_agents.runtime.events import Limits, dead_letter, parse_event
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import (
    OUTPUT,
    Case,
    corpus,
    corpus_with_valid_events,
    create_corpus_topic,
    produce_cases,
)

BASE = {"k": "base", "seq": 0}


@pytest.mark.parametrize("case", corpus(BASE, "k"), ids=lambda c: c.name)
def test_every_case_is_decided_without_raising(case: Case) -> None:
    """The key selector and the decoder give every case its documented outcome."""
    limits = Limits()
    key = json_key("k")(case.value)
    prepared = Prepare("k", limits)(case.value)
    assert prepared is not None
    envelope = json.loads(prepared[1])
    if case.expect == OUTPUT:
        assert key == prepared[0] == "base" and "e" in envelope
    else:
        assert key == prepared[0] == "__malformed__"
        assert envelope["x"]["reason"] == case.expect, envelope["x"]["error"]
    if case.value is not None:
        parsed = parse_event(case.value, limits)
        assert isinstance(parsed, dict) == (case.expect == OUTPUT or case.expect == "no key")


def test_a_dead_letter_always_fits_and_points_at_the_original() -> None:
    raw = b"\x00" * 3_000_000
    source = {"topic": "t", "partition": 2, "offset": 41, "timestamp_ms": 1}
    record = dead_letter(
        "oversized event",
        "k" * 50_000,
        "é" * 900_000,
        "e" * 10_000,
        raw=raw,
        source=source,
        max_bytes=100_000,
    )
    assert len(record.encode()) <= 100_000
    parsed = json.loads(record)
    assert parsed["truncated"] is True and parsed["original_b64"] is None
    assert parsed["original"] == {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert parsed["source"] == source
    small = json.loads(dead_letter("malformed event", "k", "x", raw=b"\xff", source=source))
    assert base64.b64decode(small["original_b64"]) == b"\xff" and small["truncated"] is False


def _run_public_api_job(bootstrap: str, topics: dict[str, str], fake_llm: FakeLLM) -> None:
    from pyflink.common import Types

    env = local_env(checkpoint_interval_ms=1000)
    rows = kafka_records(env, bootstrap, topics["in"], "hostile", bounded=True)
    out = run_agent(rows.key_by(json_key("k"), key_type=Types.STRING()), echo_agent(fake_llm))
    out.sink_to(exactly_once_sink(bootstrap, topics["out"], f"o-{topics['out']}"))
    dead_letters(out).sink_to(exactly_once_sink(bootstrap, topics["dlq"], f"d-{topics['dlq']}"))
    env.execute("hostile-public-api")


def test_public_api_job_survives_the_corpus(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topics = {
        "in": topic_factory("hostile-in"),
        "out": topic_factory("hostile-out"),
        "dlq": topic_factory("hostile-dlq"),
    }
    topics["in"] += "-big"
    create_corpus_topic(kafka_bootstrap, topics["in"])
    cases = corpus_with_valid_events("k")
    produce_cases(kafka_bootstrap, topics["in"], cases)
    _run_public_api_job(kafka_bootstrap, topics, fake_llm)

    outputs, dead = collect(kafka_bootstrap, cases, topics["out"], topics["dlq"])
    check_outcomes(cases, outputs, dead, topics["in"])
