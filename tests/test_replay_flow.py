"""Replays and dark launches end to end: real broker, fake LLM, Flink mini-cluster.

History: 28 events with timestamps one second apart -- 2 before the replay
range, 24 in it (keys k0..k5, seq 0..3), 2 after.  Production runs version 1
over all of it (Kafka -> agent -> exactly-once Kafka, a journal, a consumer
group).  Version 2 differs only for events with amount >= 900: its step adds
" LARGE" to the prompt, which the fake LLM answers differently.

Known consequences, checked number by number:

* LARGE events (k1 seq 2 claim, k4 seq 0 quote, k4 seq 3 claim): outputs
  differ -- route and risk for the claims, only risk for the quote.  So 21 of
  24 agree, route 22/24, risk 21/24.
* Prompt tokens: +1 per LARGE event (one more word); the refunds after a
  divergence (k1 seq 3, k4 seq 2) have no recorded tool result, so the tool is
  fenced and the model reads the fence note (10 words) instead of the tool's
  result (2 words): +8 each.  Total +19; completion tokens and calls +0.
* With production's journal, only requests that changed are paid: k1 from
  seq 2 (3 calls, the refund needs two), k4 from seq 0 (5 calls) = 8.  The
  divergence report names k1 at turn 3 (message 4: two turns of history come
  first) and k4 at turn 1 (message 0).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from streaming_agents import Agent, ConversationMemory, LLMRequest, LLMResult, ModelSpec
from streaming_agents.cli.main import main
from streaming_agents.replay import ReplayRange, compare, replay, shadow
from streaming_agents.replay.topics import group_offsets, read_topic, topic_end_offsets
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, create_topics, produce
from streaming_agents.tools import Tool, tool

cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEYS = [f"k{i}" for i in range(6)]
PER_KEY = 4
LARGE = {("k1", 2), ("k4", 0), ("k4", 3)}
REFUND = {("k2", 1), ("k5", 0), ("k1", 3), ("k4", 2)}
QUOTE = {("k4", 0)}
PROMPT = "{k}#{seq} {kind} amount={amount}"
RULES: dict[str, Any] = {
    "rules": [
        {"match": "LARGE", "json": {"route": "review", "risk": 5}},
        {"match": "refund", "tool_calls": [{"name": "notify", "arguments": {"customer": "c"}}]},
        {"match": "refund", "after_tool": True, "json": {"route": "refund", "risk": 2}},
        {"match": "quote", "json": {"route": "review", "risk": 1}},
        {"match": ".", "json": {"route": "approve", "risk": 1}},
    ]
}


def make_notify(effects: str) -> Tool:
    def notify(customer: str) -> dict[str, Any]:
        """Tell the customer (a side effect: one line in a file per call)."""
        with open(effects, "a") as fh:
            fh.write(customer + "\n")
        return {"sent": True}

    made: Tool = tool(side_effecting=True)(notify)
    return made


def reduce_json(
    event: Any, memory: ConversationMemory, result: LLMResult
) -> tuple[ConversationMemory, list[Any]]:
    return memory.with_turn(PROMPT.format(**event), result.content), [json.loads(result.content)]


def make_agent(api_base: str, effects: str, version: str = "1") -> Agent[Any]:
    model = ModelSpec(model="openai/fake-model", api_base=api_base, api_key_env="FAKE_LLM_API_KEY")
    v1: Agent[Any] = Agent(
        name="triage",
        version="1",
        model=model,
        prompt=PROMPT,
        tools=(make_notify(effects),),
        reduce_fn=reduce_json,
    )
    if version == "1":
        return v1

    def step_v2(event: Any, memory: ConversationMemory) -> LLMRequest:
        request = v1.step(event, memory)
        if event["amount"] < 900:
            return request
        last = dict(request.messages[-1])
        last["content"] = f"{last['content']} LARGE"
        return request.model_copy(update={"messages": (*request.messages[:-1], last)})

    return dataclasses.replace(v1, version="2", step_fn=step_v2)


def cli_agent_v1() -> Agent[Any]:
    """For ``--agent test_replay_flow:cli_agent_v1`` (settings from the environment)."""
    return make_agent(os.environ["REPLAY_TEST_API_BASE"], os.environ["REPLAY_TEST_EFFECTS"])


def _event(i: int, key: str, seq: int) -> dict[str, Any]:
    kind = "refund" if (key, seq) in REFUND else "quote" if (key, seq) in QUOTE else "claim"
    amount = 950 if (key, seq) in LARGE else 100 + seq
    return {"id": f"e{i:02d}", "k": key, "seq": seq, "kind": kind, "amount": amount}


@dataclasses.dataclass
class History:
    bootstrap: str
    topic: str
    prod_out: str
    prod_group: str
    journal: Path
    effects: Path
    start_ms: int
    stop_ms: int
    prod_outputs: dict[str, dict[str, Any]]
    prod_offsets: dict[int, int]
    prod_out_end: dict[int, int]


def _outputs_by_id(bootstrap: str, topic: str, run: str | None = None) -> dict[str, dict[str, Any]]:
    docs = [json.loads(r.value or b"") for r in read_topic(bootstrap, topic)]
    if run is not None:
        docs = [d for d in docs if d.get("replay", {}).get("run") == run]
    return {d["input"]["id"]: d for d in docs}


def _configure(fake: FakeLLM) -> None:
    fake.configure(RULES)
    fake.reset()


@pytest.fixture(scope="module")
def history(
    kafka_bootstrap: str, fake_llm_server: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[History]:
    from pyflink.common import Types, WatermarkStrategy

    from streaming_agents import SqliteJournal, run_agent
    from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
    from streaming_agents.runtime.environment import local_env

    tmp = tmp_path_factory.mktemp("replay")
    suffix = uuid.uuid4().hex[:8]
    topic, prod_out, group = f"claims-{suffix}", f"decisions-{suffix}", f"prod-{suffix}"
    create_topics(kafka_bootstrap, [topic, prod_out])
    pairs = [("old0", 0), ("old1", 0)]
    pairs += [(k, s) for s in range(PER_KEY) for k in KEYS]
    pairs += [("late0", 0), ("late1", 0)]
    base = int(time.time() * 1000) - 3_600_000
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, (key, seq) in enumerate(pairs):
        producer.produce(topic, value=json.dumps(_event(i, key, seq)), timestamp=base + i * 1000)
    assert producer.flush(30) == 0
    effects = tmp / "side_effects.txt"
    effects.write_text("")
    journal = tmp / "production-journal.sqlite"

    _configure(fake_llm_server)
    env = local_env(checkpoint_interval_ms=1000)
    source = kafka_source(kafka_bootstrap, topic, group, bounded=True)
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "claims")
    keyed = stream.key_by(lambda s: json.loads(s)["k"], key_type=Types.STRING())
    agent = make_agent(fake_llm_server.base_url, str(effects))
    out = run_agent(keyed, agent, journal=SqliteJournal(journal))
    out.sink_to(exactly_once_sink(kafka_bootstrap, prod_out, f"prod-{suffix}"))
    env.execute("production v1")

    outputs = _outputs_by_id(kafka_bootstrap, prod_out)
    assert len(outputs) == len(pairs)
    assert effects.read_text().count("\n") == len(REFUND), "production ran the tool"
    yield History(
        bootstrap=kafka_bootstrap,
        topic=topic,
        prod_out=prod_out,
        prod_group=group,
        journal=journal,
        effects=effects,
        start_ms=base + 2000,
        stop_ms=base + 26_000,
        prod_outputs=outputs,
        prod_offsets=group_offsets(kafka_bootstrap, group, topic),
        prod_out_end=topic_end_offsets(kafka_bootstrap, prod_out),
    )


def _production_untouched(h: History) -> None:
    assert group_offsets(h.bootstrap, h.prod_group, h.topic) == h.prod_offsets
    assert topic_end_offsets(h.bootstrap, h.prod_out) == h.prod_out_end
    assert _outputs_by_id(h.bootstrap, h.prod_out) == h.prod_outputs
    assert h.effects.read_text().count("\n") == len(REFUND), "no side effect ran again"


def test_replay_of_v2_reports_every_known_difference(
    history: History, fake_llm_server: FakeLLM, tmp_path: Path
) -> None:
    h = history
    _configure(fake_llm_server)
    shadow_topic = f"shadow-{uuid.uuid4().hex[:8]}"
    progress = io.StringIO()
    result = replay(
        make_agent(fake_llm_server.base_url, str(h.effects), "2"),
        bootstrap=h.bootstrap,
        topic=h.topic,
        shadow_topic=shadow_topic,
        range=ReplayRange.between(h.start_ms, h.stop_ms),
        key_field="k",
        journal=h.journal,
        production_topic=h.prod_out,
        progress=progress,
        run_dir=tmp_path,
    )
    assert (result.expected, result.outputs, result.dead_letters) == (24, 24, 0)
    assert "24/24 outputs" in progress.getvalue().splitlines()[-1]
    assert result.llm_calls_made == 8
    assert fake_llm_server.stats()["requests_total"] == 8, "only changed requests were paid"
    assert {(c.key, c.turn, c.tool, c.outcome) for c in result.fenced} == {
        ("k1", 4, "notify", "fenced"),
        ("k4", 3, "notify", "fenced"),
        ("k2", 2, "notify", "replayed"),
        ("k5", 1, "notify", "replayed"),
    }
    found = [(d.key, d.turn, d.where, d.message_index) for d in result.divergences]
    assert found == [("k1", 3, "messages", 4), ("k4", 1, "messages", 0)]
    k1 = result.divergences[0]
    assert k1.recorded_message == {"role": "user", "content": "k1#2 claim amount=950"}
    assert k1.new_message == {"role": "user", "content": "k1#2 claim amount=950 LARGE"}
    assert k1.event is not None and k1.event["id"] == "e15"
    _production_untouched(h)

    shadow_docs = _outputs_by_id(h.bootstrap, shadow_topic, result.run_id)
    assert all(d["shadow"] is True for d in shadow_docs.values())
    report = compare(h.bootstrap, h.prod_out, shadow_topic)
    assert report.run_id == result.run_id and report.candidate_shadow
    assert (report.matched, report.agreed) == (24, 21)
    assert report.agreement_rate == pytest.approx(21 / 24)
    assert len(report.only_production) == 4 and report.only_candidate == []
    fields = {f.field: (f.compared, f.agreed) for f in report.fields}
    assert fields == {"route": (24, 22), "risk": (24, 21)}
    differing = sorted((c.key, c.input["seq"], c.fields) for c in report.differing)
    assert differing == [
        ("k1", 2, ("risk", "route")),
        ("k4", 0, ("risk",)),
        ("k4", 3, ("risk", "route")),
    ]
    deltas = report.deltas
    assert deltas["prompt_tokens"] == 19
    assert (deltas["completion_tokens"], deltas["llm_calls"]) == (0, 0)
    # Answers from the record carry the recorded latency: k0 was never re-asked.
    for doc in shadow_docs.values():
        if doc["key"] == "k0":
            prod = h.prod_outputs[doc["input"]["id"]]
            assert doc["usage"] == prod["usage"] and doc["output"] == prod["output"]


def test_deterministic_rerun_from_the_cli_pays_nothing_and_matches(
    history: History,
    fake_llm_server: FakeLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = history
    _configure(fake_llm_server)
    monkeypatch.setenv("REPLAY_TEST_API_BASE", fake_llm_server.base_url)
    monkeypatch.setenv("REPLAY_TEST_EFFECTS", str(h.effects))
    shadow_topic = f"rerun-{uuid.uuid4().hex[:8]}"
    html = tmp_path / "report.html"
    code = main(
        [
            "replay",
            "--bootstrap",
            h.bootstrap,
            "--agent",
            "test_replay_flow:cli_agent_v1",
            "--topic",
            h.topic,
            "--from",
            str(h.start_ms),
            "--to",
            str(h.stop_ms),
            "--key",
            "k",
            "--shadow-topic",
            shadow_topic,
            "--journal",
            str(h.journal),
            "--production-topic",
            h.prod_out,
            "--html",
            str(html),
            "--run-dir",
            str(tmp_path),
            "--mode",
            "batch",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert fake_llm_server.stats()["requests_total"] == 0, "every call came from the record\n" + out
    assert "LLM calls made: 0" in out and "every request matched the record" in out
    assert re.search(r"overall \(exact output\)\s+24\s+24\s+100\.0%", out), out
    assert "24/24 outputs" in err
    rerun = _outputs_by_id(h.bootstrap, shadow_topic)
    assert len(rerun) == 24
    for ident, doc in rerun.items():
        prod = h.prod_outputs[ident]
        assert (doc["output"], doc["turn"], doc["usage"]) == (
            prod["output"],
            prod["turn"],
            prod["usage"],
        )
    page = html.read_text()
    assert "<svg" in page and "http" not in page.replace("http-equiv", "")
    _production_untouched(h)


def test_live_shadow_runs_beside_production_without_side_effects(
    history: History, fake_llm_server: FakeLLM, kafka_bootstrap: str
) -> None:
    h = history
    _configure(fake_llm_server)
    suffix = uuid.uuid4().hex[:8]
    live, shadow_topic, audit = f"live-{suffix}", f"live-shadow-{suffix}", f"audit-{suffix}"
    create_topics(kafka_bootstrap, [live])
    agent = make_agent(fake_llm_server.base_url, str(h.effects), "2")
    run = shadow(
        agent,
        bootstrap=kafka_bootstrap,
        topic=live,
        shadow_topic=shadow_topic,
        key_field="k",
        starting=int(time.time() * 1000) - 1000,
        production_topic=h.prod_out,
        audit_topic=audit,
    )
    try:
        events = [
            {"id": f"s{i}", "k": f"s{i % 3}", "seq": i // 3, "kind": kind, "amount": amount}
            for i, (kind, amount) in enumerate(
                [("refund", 10), ("claim", 10), ("claim", 950), ("claim", 10), ("refund", 10)]
            )
        ]
        produce(kafka_bootstrap, live, [(None, json.dumps(e)) for e in events])
        got = consume_committed(kafka_bootstrap, shadow_topic, expected=5, timeout_s=150)
    finally:
        run.stop()
    docs = {d["input"]["id"]: d for d in (json.loads(m.value()) for m in got)}
    assert len(docs) == 5 and all(d["shadow"] is True for d in docs.values())
    assert docs["s2"]["output"] == {"route": "review", "risk": 5}, "the candidate answered"
    assert docs["s0"]["output"] == {"route": "refund", "risk": 2}
    fenced = run.fenced_calls(agent.name)
    assert sorted((c.key, c.outcome) for c in fenced) == [("s0", "fenced"), ("s1", "fenced")]
    assert fake_llm_server.stats()["requests_total"] == 7  # two calls per refund
    trail = [json.loads(r.value or b"") for r in read_topic(kafka_bootstrap, audit)]
    assert trail and all(rec["shadow"] is True for rec in trail)
    tools = sorted(r["outcome"] for r in trail if r["kind"] == "tool_call")
    assert tools == ["fenced", "fenced"]
    _production_untouched(h)
