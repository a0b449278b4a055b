"""Dark launch of claims_triage version 2 on production's memory, judged, from the CLI.

As a user runs it (docs/replay.md, "Dark launch to promotion"), every command a
new process against a real broker, the fake LLM over HTTP and Flink:

* production -- claims_triage version 1 (the job's own ``build``, agent uid
  ``agent-claims-triage``) -- answers one claim on each of 4 policies; its
  newest retained checkpoint is the savepoint; then a second claim per policy;
* ``replay --agent jobs.claims_triage.job:agent_from_env`` with
  ``STREAMING_AGENTS_AGENT_VERSION=2 --memory-from CHECKPOINT --judge-model
  openai/fake-judge --rubric FILE --html``: reads from the checkpoint's offsets
  (the 4 second claims), each policy starting with the claim production
  remembers, and judges each differing pair;
* at the same time ``shadow --memory-from CHECKPOINT`` (version 2, stopped with
  SIGINT once its 4 outputs are committed), then ``compare`` of its shadow topic
  alone, which shows the memory start from the outputs' marks.

Version 2 differs from version 1 only in its system prompt ("name the earlier
claim ids"); the fake LLM is told (a rule with ``system``) to answer that
prompt with one more reason on claims without documents, so exactly the 2
policies whose second claim has no documents differ -- if the judge were
skipped, or ran on agreeing pairs, the counts below would not hold.  The
rubric prefers answers naming earlier claims: both verdicts go to the candidate.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from streaming_agents import ModelSpec, SqliteJournal
from streaming_agents.cli.demo import fake_rules
from streaming_agents.journal.factory import open_reader, request_log
from streaming_agents.registry import load_job
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("P1", "P2", "P3", "P4")
V2_PROMPT = "name the earlier claim ids"
EXTRA_REASON = "earlier claims on this policy are in the conversation"
RUBRIC = (
    "Prefer decisions that take the policy's earlier claims into account.\nprefer: earlier claims"
)


def _claim(policy: str, n: int, documents: list[str], description: str) -> dict[str, Any]:
    return {
        "claim_id": f"C-{policy}-{n}",
        "policy_id": policy,
        "customer": f"customer of {policy}",
        "amount": 800.0 + n,
        "description": description,
        "documents": documents,
    }


FIRST = [_claim(p, 1, ["photo", "invoice"], "water damage in the kitchen") for p in POLICIES]
SECOND = [  # P1 and P4 without documents: the pairs version 2 answers differently
    _claim("P1", 2, [], "broken window after a storm"),
    _claim("P2", 2, ["photo", "invoice"], "hail damage on the car roof"),
    _claim("P3", 2, ["photo"], "my bike was stolen, please pay in cash"),
    _claim("P4", 2, [], "a tree fell on the fence"),
]
DIFFERING = {"C-P1-2", "C-P4-2"}


def _rules() -> list[dict[str, Any]]:
    """Version 2's prompt gets one more reason on claims without documents; else the demo's."""
    v2 = {
        "system": V2_PROMPT,
        "match": r"(?m)^Documents: none$",
        "json": {
            "claim_id": "",
            "route": "request_more_info",
            "fraud_score": 0.12,
            "reasons": ["no documents attached", EXTRA_REASON],
        },
    }
    return [v2, *fake_rules()]


def _production(
    bootstrap: str, fake: FakeLLM, claims: str, decisions: str, dlq: str, tmp: Path
) -> Path:
    """Version 1 on the claims; returns the checkpoint taken after the first claims."""
    load_job("claims_triage")  # puts the jobs folder on the path (tests/jobs shadows `jobs`)
    from claims_triage.job import build  # type: ignore[import-not-found]

    ckpt = tmp / "ckpt"
    env = local_env(
        checkpoint_interval_ms=500,
        checkpoint_dir=str(ckpt),
        extra_config={
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.num-retained": "1000",
        },
    )
    model = ModelSpec(model="openai/fake", api_base=fake.base_url, api_key_env="FAKE_LLM_API_KEY")
    build(env, bootstrap, claims, decisions, dlq, model, group_id=f"prod-{claims}",
          journal=SqliteJournal(tmp / "prod.sqlite"), version="1")  # fmt: skip
    produce(bootstrap, claims, [(c["policy_id"], json.dumps(c)) for c in FIRST])
    client = env.execute_async("claims-triage production")
    try:
        first = consume_committed(bootstrap, decisions, expected=len(FIRST), timeout_s=180)
        assert len(first) == len(FIRST)
        found = sorted(ckpt.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name[4:]))
        assert found, f"no completed checkpoint under {ckpt}"
        savepoint = found[-1].parent  # committed outputs: a checkpoint after all 4 completed
        produce(bootstrap, claims, [(c["policy_id"], json.dumps(c)) for c in SECOND])
        done = consume_committed(bootstrap, decisions, expected=8, timeout_s=180)
        assert len(done) == 8
    finally:
        client.cancel().result()
    return savepoint


def _cli_env(fake: FakeLLM) -> dict[str, str]:
    return {
        **os.environ,
        "STREAMING_AGENTS_MODEL": "openai/fake",
        "STREAMING_AGENTS_API_BASE": fake.base_url,
        "STREAMING_AGENTS_API_KEY_ENV": "FAKE_LLM_API_KEY",
        "STREAMING_AGENTS_AGENT_VERSION": "2",
    }


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "streaming_agents.cli.main", *args]


def _judge_calls(fake: FakeLLM) -> list[dict[str, Any]]:
    return [r for r in fake.requests(last=200) if str(r.get("model", "")).endswith("fake-judge")]


def test_judged_dark_launch_on_production_memory_from_the_cli(
    kafka_bootstrap: str, topic_factory: Any, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.configure({"rules": _rules()})
    claims, decisions, dlq = (
        topic_factory("claims"),
        topic_factory("decisions"),
        topic_factory("dlq"),
    )
    began = time.monotonic()
    savepoint = _production(kafka_bootstrap, fake_llm, claims, decisions, dlq, tmp_path)
    production_s = time.monotonic() - began
    rubric = tmp_path / "rubric.txt"
    rubric.write_text(RUBRIC)
    shadow_topic, live_topic = topic_factory("shadow"), topic_factory("live")
    html, runs = tmp_path / "report.html", tmp_path / "runs"
    agent = ["--agent", "jobs.claims_triage.job:agent_from_env", "--key", "policy_id"]
    common = ["--bootstrap", kafka_bootstrap, "--topic", claims, "--production-topic", decisions]
    started = time.monotonic()
    live_log = (tmp_path / "shadow.out").open("w"), (tmp_path / "shadow.err").open("w")
    live = subprocess.Popen(
        _cli("shadow", *agent, *common, "--shadow-topic", live_topic,
             "--memory-from", str(savepoint)),
        cwd=ROOT, env=_cli_env(fake_llm), stdout=live_log[0], stderr=live_log[1],
    )  # fmt: skip
    try:
        done = subprocess.run(
            _cli("replay", *agent, *common, "--to", "latest", "--shadow-topic", shadow_topic,
                 "--memory-from", str(savepoint), "--run-dir", str(runs), "--no-progress",
                 "--judge-model", "openai/fake-judge", "--rubric", str(rubric),
                 "--judge-api-base", fake_llm.base_url, "--judge-api-key-env",
                 "FAKE_LLM_API_KEY", "--html", str(html)),
            cwd=ROOT, env=_cli_env(fake_llm), capture_output=True, text=True, timeout=240,
            check=False,
        )  # fmt: skip
        replay_s = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr
        shadowed = consume_committed(kafka_bootstrap, live_topic, expected=4, timeout_s=180)
    finally:
        live.send_signal(signal.SIGINT)
        code = live.wait(timeout=120)
        for handle in live_log:
            handle.close()
    shadow_s = time.monotonic() - started
    out = done.stdout
    print(f"\nproduction {production_s:.1f} s; replay {replay_s:.1f} s, shadow {shadow_s:.1f} s "
          f"(concurrent)\n{out}")  # fmt: skip

    # The replay read the second claims, from the checkpoint's offsets, on production's memory.
    assert f"memory start: production's, from savepoint {savepoint}" in out, out
    assert "p0=4" in out, out
    turns = {json.loads(m.value())["input"]["claim_id"]: json.loads(m.value())["turn"]
             for m in consume_committed(kafka_bootstrap, shadow_topic, expected=4)}  # fmt: skip
    assert turns == {c["claim_id"]: 2 for c in SECOND}, "each policy went on from turn 1"
    candidate = [r for r in fake_llm.requests(last=200) if V2_PROMPT in json.dumps(r["messages"])]
    assert len(candidate) == 8, "4 calls by the replay, 4 by the shadow"
    remembered = [len(r["messages"]) == 4 and "Claim C-P" in r["messages"][1]["content"]
                  for r in candidate]  # fmt: skip
    assert all(remembered), "production's memory: the first claim and its decision"

    # The judge ran on each differing pair, and only on those.
    judged = _judge_calls(fake_llm)
    assert len(judged) == 2
    assert {
        json.loads(r["messages"][-1]["content"])["input"]["claim_id"] for r in judged
    } == DIFFERING
    assert "inputs compared" in out and "4 (2 agree, 2 differ)" in out, out
    assert "candidate 2, production 0, tie 0, not judged 0 (openai/fake-judge)" in out, out
    assert "judge: 2 calls paid, 0 answered from the journal" in out, out
    (judge_db,) = runs.glob("*/judge.sqlite")  # journalled in the run folder
    store = open_reader(f"sqlite://{judge_db}", agent="judge")
    try:
        log = request_log(store)
        assert log is not None
        assert len(log.recorded_requests(agent="judge", kind="llm")) == 2
    finally:
        store.close()
    page = html.read_text()
    assert "<tr><td>reasons</td><td class=n>4</td><td class=n>2</td><td class=n>50.0%</td>" \
           "<td>candidate 2</td></tr>" in page  # fmt: skip
    assert "<tr><td>route</td><td class=n>4</td><td class=n>4</td><td class=n>100.0%</td>" \
           "<td>-</td></tr>" in page  # fmt: skip
    assert page.count("judge: better: candidate") == 2 and 'id="verdicts"' in page

    # The shadow: same memory start, 4 outputs, stopped by SIGINT; compare alone shows the start.
    assert len(shadowed) == 4
    live_err = (tmp_path / "shadow.err").read_text()
    live_out = (tmp_path / "shadow.out").read_text()
    assert f"memory start: production's, from savepoint {savepoint}" in live_err, live_err
    assert code == 0, live_err
    assert "stopped; 4 outputs (0 dead letters)" in live_out, live_out
    report_json = tmp_path / "compare.json"
    compared = subprocess.run(
        _cli("compare", "--bootstrap", kafka_bootstrap, "--production", decisions,
             "--candidate", live_topic, "--json", str(report_json)),
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    row = next(line for line in compared.stdout.splitlines() if "memory start" in line)
    assert f"production's, from savepoint {savepoint}" in row and "p0=4" in row, compared.stdout
    assert "4 (2 agree, 2 differ)" in compared.stdout, compared.stdout
    assert json.loads(report_json.read_text())["memory_start"] in row
    print(live_out, live_err[-400:])


def test_fake_llm_rules_can_name_the_system_prompt() -> None:
    from streaming_agents.testing.fake_llm_script import FakeLLMConfig, Script

    script = Script(FakeLLMConfig.model_validate({"rules": _rules()}))

    def route(system: str) -> Any:
        body = {"model": "openai/fake", "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Claim C-1 on policy P1\nDocuments: none"}]}  # fmt: skip
        return json.loads(script.chat(body, "0" * 64).body["choices"][0]["message"]["content"])

    assert route(f"... {V2_PROMPT} ...")["reasons"][-1] == EXTRA_REASON
    assert EXTRA_REASON not in route("version 1's prompt")["reasons"]
