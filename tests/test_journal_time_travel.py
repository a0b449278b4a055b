"""The Kafka journal as the event log: CLI run, replay from it, time travel -- end to end.

One production run, as a user starts it: ``streaming-agents run JOBDIR --journal
kafka://.../TOPIC --job-name tt-prod`` in a new process on the mini-cluster, real
broker, fake LLM over HTTP.  Its agent keeps a conversation per key and puts the
memory it holds after each event in the output, so the test knows what production
held at every decision.  Then:

* the journal topic holds one entry per call, scoped to the job's name;
* a replay of a candidate (different prompt for k1 from its third event on) answers
  from that Kafka journal where it is (no copy, nothing written to it): the fake LLM
  sees exactly the 2 changed calls, and the divergence report names k1 at turn 3,
  message 4 (two turns of history come first);
* ``streaming-agents history`` (a new process) rebuilds k1's memory at the offset of
  its third event equal to what production held there, with 0 LLM calls; under
  another job's scope the journal has no answer: it says so and exits 1, still with
  0 calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.replay.topics import read_topic, topic_end_offsets
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, create_topics, produce

KEYS = ("k0", "k1", "k2")
PER_KEY = 4
JOB_NAME = "tt-prod"
MODEL = "openai/tt-fake"

JOB_FILES = {
    "__init__.py": '"""Time-travel test job: a conversation per key; outputs carry memory."""\n',
    "job.py": '''
        """Agent and job of the time-travel test."""
        import json
        import os

        from streaming_agents import Agent, ConversationMemory, LLMRequest, ModelSpec


        def _prompt(event):
            return f"{event['k']} says {event['n']}"


        def step(event, memory):
            messages = [*memory.as_messages(), {"role": "user", "content": _prompt(event)}]
            return LLMRequest(messages=tuple(messages))


        def step_v2(event, memory):
            request = step(event, memory)
            if event["k"] != "k1" or event["n"] < 2:
                return request
            last = {"role": "user", "content": _prompt(event) + " (v2)"}
            return request.model_copy(update={"messages": (*request.messages[:-1], last)})


        def reduce(event, memory, result):
            new = memory.with_turn(_prompt(event), result.content)
            return new, [{"reply": result.content, "memory": json.loads(new.dump())}]


        def make_agent(model, version="1", step_fn=step):
            return Agent(name="tt-echo", version=version, model=model,
                         memory=ConversationMemory, step_fn=step_fn, reduce_fn=reduce)


        def history_agent():
            """Production's agent for --agent (the model name is all the digest needs)."""
            return make_agent(ModelSpec(model=os.environ["TT_MODEL"]))


        def candidate_agent():
            return make_agent(ModelSpec(model=os.environ["TT_MODEL"],
                                        api_base=os.environ["TT_API_BASE"],
                                        api_key_env="FAKE_LLM_API_KEY"), "2", step_v2)


        def build(env, ctx):
            from pyflink.common import Types, WatermarkStrategy

            from streaming_agents import json_key, run_agent
            from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source

            source = kafka_source(ctx.bootstrap, ctx.topic("in"), "tt", bounded=ctx.bounded)
            events = env.from_source(source, WatermarkStrategy.no_watermarks(), "in")
            keyed = events.key_by(json_key("k"), key_type=Types.STRING())
            out = run_agent(keyed, make_agent(ctx.model), journal=ctx.journal)
            sink = exactly_once_sink(ctx.bootstrap, ctx.topic("out"), "tt-" + ctx.topic("out"))
            out.sink_to(sink)
        ''',
    "spec.py": """
        from streaming_agents.registry import AgentDecl, JobSpec

        from .job import build

        JOB = JobSpec(
            name="tt-echo",
            description="time-travel test job",
            topics={"in": "tt-in", "out": "tt-out"},
            agents=(AgentDecl("tt-echo", "1", ("in",), ("out",)),),
            build=build,
        )
        """,
}


@dataclass
class Production:
    bootstrap: str
    root: Path
    topic: str
    journal: str
    journal_topic: str
    outputs: list[dict[str, Any]]
    env: dict[str, str]


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def production(
    kafka_bootstrap: str,
    fake_llm_server: FakeLLM,
    tmp_path_factory: pytest.TempPathFactory,
) -> Production:
    root = tmp_path_factory.mktemp("tt")
    folder = root / "tt_job"
    folder.mkdir()
    for name, text in JOB_FILES.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    suffix = uuid.uuid4().hex[:8]
    topic, out, journal_topic = f"tt-in-{suffix}", f"tt-out-{suffix}", f"tt-journal-{suffix}"
    create_topics(kafka_bootstrap, [topic, out], partitions=2)
    events = [(k, json.dumps({"k": k, "n": n})) for n in range(PER_KEY) for k in KEYS]
    produce(kafka_bootstrap, topic, events)  # keyed: a key's events in one partition, in order
    journal = f"kafka://{kafka_bootstrap}/{journal_topic}"
    env = {**os.environ, "TT_MODEL": MODEL, "TT_API_BASE": fake_llm_server.base_url}
    fake_llm_server.configure({})
    fake_llm_server.reset()
    argv = ["run", str(folder), "--bootstrap", kafka_bootstrap, "--model", MODEL]
    argv += ["--api-base", fake_llm_server.base_url, "--api-key-env", "FAKE_LLM_API_KEY"]
    argv += ["--journal", journal, "--job-name", JOB_NAME, "--bounded", "--checkpoint-ms", "500"]
    argv += ["--topic", f"in={topic}", "--topic", f"out={out}"]
    done = _cli(argv, env, root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert fake_llm_server.stats()["chat_total"] == len(events)
    outputs = [
        json.loads(m.value()) for m in consume_committed(kafka_bootstrap, out, expected=len(events))
    ]
    assert len(outputs) == len(events)
    return Production(kafka_bootstrap, root, topic, journal, journal_topic, outputs, env)


def test_cli_run_journals_every_call_in_kafka_scoped_to_the_job(production: Production) -> None:
    entries = read_topic(production.bootstrap, production.journal_topic)
    assert len(entries) == len(KEYS) * PER_KEY
    keys = {json.loads(e.value or b"{}")["content"] for e in entries}
    assert len(keys) == len(entries), "one entry per distinct call"
    requests = read_topic(production.bootstrap, f"{production.journal_topic}.requests")
    assert len(requests) == len(entries)
    raw = {e.partition for e in entries}
    assert len(raw) >= 2, "entries spread over the journal's partitions by key"


def test_journal_record_keys_carry_the_job_scope(production: Production) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": production.bootstrap, "group.id": "tt-check",
                         "enable.partition.eof": True})  # fmt: skip
    try:
        meta = consumer.list_topics(production.journal_topic, timeout=10)
        parts = meta.topics[production.journal_topic].partitions
        consumer.assign([TopicPartition(production.journal_topic, p, 0) for p in parts])
        seen, eof = [], set()
        while len(eof) < len(parts):
            msg = consumer.poll(10)
            assert msg is not None, "journal topic not readable"
            if msg.error():
                eof.add(msg.partition())
                continue
            seen.append((msg.key() or b"").split(b"\0")[0].decode())
    finally:
        consumer.close()
    assert set(seen) == {f"{JOB_NAME}/tt-echo@1"}


def test_replay_answers_from_the_kafka_production_journal(
    production: Production,
    fake_llm: FakeLLM,
    topic_factory: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streaming_agents.replay import replay
    from streaming_agents.replay.loading import load_agent

    for name, value in production.env.items():
        if name.startswith("TT_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(production.root)
    candidate = load_agent("tt_job.job:candidate_agent")
    before = {
        t: topic_end_offsets(production.bootstrap, t)
        for t in (production.journal_topic, f"{production.journal_topic}.requests")
    }
    result = replay(
        candidate,
        bootstrap=production.bootstrap,
        topic=production.topic,
        shadow_topic=topic_factory("tt-shadow", 2),
        key_field="k",
        journal=f"{production.journal}?scope={JOB_NAME}",
        progress=False,
        run_dir=tmp_path,
        mode="batch",  # answered from the journal but for 2 calls: no checkpoints to wait for
    )
    assert fake_llm.stats()["chat_total"] == 2, "only k1's third and fourth calls changed"
    assert result.llm_calls_made == 2 and result.outputs == len(KEYS) * PER_KEY
    [div] = result.divergences
    assert (div.key, div.turn, div.message_index) == ("k1", 3, 4), div.describe()
    assert div.recorded_message == {"role": "user", "content": "k1 says 2"}
    assert div.new_message == {"role": "user", "content": "k1 says 2 (v2)"}
    after = {t: topic_end_offsets(production.bootstrap, t) for t in before}
    assert after == before, "the production journal was not written"
    assert not list(Path(result.run_dir).glob("*copy*"))


def _offset_of(production: Production, key: str, n: int) -> int:
    for rec in read_topic(production.bootstrap, production.topic):
        event = json.loads(rec.value or b"{}")
        if (event.get("k"), event.get("n")) == (key, n):
            return rec.offset
    raise AssertionError(f"no event {key}#{n}")


def test_history_rebuilds_memory_at_an_offset_with_no_llm_call(
    production: Production, fake_llm: FakeLLM
) -> None:
    offset = _offset_of(production, "k1", 2)
    held = next(
        o["output"]["memory"] for o in production.outputs if o["input"] == {"k": "k1", "n": 2}
    )
    argv = ["history", "--agent", "tt_job.job:history_agent", "--key", "k1"]
    argv += ["--input-topic", production.topic, "--key-field", "k", "--bootstrap"]
    argv += [production.bootstrap, "--journal", production.journal, "--at-offset", str(offset)]
    done = _cli([*argv, "--job", JOB_NAME, "--json"], production.env, production.root)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["memory"] == held
    assert len(held["turns"]) == 3 and len(doc["decisions"]) == 3
    assert doc["llm_calls_answered_from_journal"] == 3 and doc["gap"] is None
    assert [d["offset"] <= offset for d in doc["decisions"]] == [True] * 3
    last = doc["decisions"][-1]["calls"][0]
    assert last["request"]["messages"][-1]["content"] == "k1 says 2"
    assert fake_llm.stats()["chat_total"] == 0

    text = _cli([*argv, "--job", JOB_NAME], production.env, production.root)
    assert text.returncode == 0, text.stderr[-3000:]
    assert "0 LLM calls made" in text.stdout and held["turns"][-1]["assistant"] in text.stdout

    other = _cli([*argv, "--job", "another-job"], production.env, production.root)
    assert other.returncode == 1, other.stderr[-3000:]
    assert "the journal has no answer" in other.stderr and "no LLM was called" in other.stderr
    assert fake_llm.stats()["chat_total"] == 0

    absent = [*argv[:-4], "--journal", f"{production.journal}-absent", "--job", JOB_NAME]
    missing = _cli(absent, production.env, production.root)
    assert missing.returncode == 2 and "no journal topic" in missing.stderr, missing.stderr
