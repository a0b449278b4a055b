"""The pipeline builder's content keys and operator uids (no job is run).

Two call sites of one agent in one job (two ``AI_RUN_AGENT`` of the same
agent, two agent tables) must not share an operator uid: Flink refuses a job
whose uids collide.  Without a ``uid`` the shipped jobs keep their old uids
(savepoint compatibility).
"""

from __future__ import annotations

import json
from typing import Any

from streaming_agents import Agent, Limits, ModelSpec
from streaming_agents.pipeline import AgentPipeline, Prepare, content_key


def _agent(name: str) -> Agent[Any]:
    model = ModelSpec(model="openai/fake-model", api_base="http://127.0.0.1:9", api_key_env="NONE")
    return Agent(name=name, version="1", model=model, prompt="{k}")


def _uids(j_env: Any) -> list[str]:
    """The uids of every transformation of the job, each transformation once."""
    seen: dict[int, str | None] = {}
    pending = list(j_env.getTransformations())
    while pending:
        transformation = pending.pop()
        if transformation.getId() in seen:
            continue
        seen[transformation.getId()] = transformation.getUid()
        pending.extend(transformation.getInputs())
    return [uid for uid in seen.values() if uid is not None]


def test_call_sites_of_one_agent_get_their_own_uids() -> None:
    from pyflink.common import Types

    from streaming_agents.runtime.environment import local_env

    env = local_env(checkpoint_interval_ms=None)
    source = env.from_collection(['{"k": "a"}'], type_info=Types.STRING())
    twice = _agent("twice")
    for uid in ("first", "second"):
        AgentPipeline.from_datastream(source, name=uid).key_by("k").apply(twice, uid=uid)
    AgentPipeline.from_datastream(source).key_by_content().apply(_agent("plain"))
    uids = _uids(env._j_stream_execution_environment)
    assert len(uids) == len(set(uids)), uids
    expected = {"first-prepare", "first", "second-prepare", "second"}
    assert expected | {"plain-prepare", "agent-plain"} <= set(uids), uids


def test_kafka_sinks_of_two_call_sites_get_their_own_uids() -> None:
    from pyflink.common import Types

    from streaming_agents.runtime.environment import local_env

    env = local_env(checkpoint_interval_ms=None)
    source = env.from_collection(['{"k": "a"}'], type_info=Types.STRING())
    twice = _agent("twice")
    for uid in ("first", "second"):
        streams = AgentPipeline.from_datastream(source, name=uid).key_by("k").apply(twice, uid=uid)
        streams.to_kafka("127.0.0.1:9", outputs=f"{uid}-out", dead_letters=f"{uid}-dlq",
                         transactional_id_prefix=f"tx-{uid}", uid=uid)  # fmt: skip
    plain = AgentPipeline.from_datastream(source).key_by("k").apply(_agent("plain"))
    plain.to_kafka("127.0.0.1:9", outputs="o", dead_letters="d", transactional_id_prefix="tx")
    uids = _uids(env._j_stream_execution_environment)
    assert len(uids) == len(set(uids)), uids
    sinks = {u for u in uids if "-sink-" in u}
    assert sinks == {f"{u}-sink-{r}" for u in ("first", "second", "plain") for r in ("out", "dlq")}


def test_content_key_is_the_same_for_equal_events_only() -> None:
    prepare = Prepare(None, Limits())
    keys = []
    for event in ({"a": 1, "b": "x"}, {"b": "x", "a": 1}, {"a": 2, "b": "x"}, {"a": None}):
        prepared = prepare(json.dumps(event))
        assert prepared is not None
        assert "e" in json.loads(prepared[1]), "every event has a content key"
        keys.append(prepared[0])
    assert keys[0] == keys[1] == content_key({"b": "x", "a": 1})
    assert len({keys[0], keys[2], keys[3]}) == 3
    assert all(k.startswith("content:") and len(k) == 72 for k in keys)


def test_unusable_keys_are_rejected_with_the_event() -> None:
    """An unusable key: a "no key" rejection saying why and carrying the decoded event."""
    prepare = Prepare("k", Limits(max_key_chars=15))
    for event, why in (
        ({"k": None, "n": 1}, "is NULL"),
        ({"k": "", "n": 2}, "is an empty string"),
        ({"k": "much-too-long-key", "n": 3}, "has 17 characters, more than 15"),
        ({"n": 4}, "is NULL"),
        ({"k": True, "n": 5}, "is a bool, not a string or an integer"),
        ({"k": "__malformed__", "n": 6}, "is '__malformed__', which is reserved"),
        ({"k": "\ufeffk", "n": 7}, "starts with U+FEFF (a byte-order mark), which PyFlink's"),
        ({"k": "\ufffek", "n": 8}, "starts with U+FFFE (a byte-order mark), which PyFlink's"),
    ):
        prepared = prepare(json.dumps(event))
        assert prepared is not None and prepared[0] == "__malformed__"
        rejection = json.loads(prepared[1])["x"]
        assert rejection["reason"] == "no key" and rejection["payload"] == event
        assert rejection["error"].startswith(f"the key field 'k' {why}"), rejection
