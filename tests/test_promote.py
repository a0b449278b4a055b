"""Promotion and rollback of claims_triage with traffic flowing (issue 17, item 3).

On a private standalone cluster (free ports, its own run folder): production
(claims_triage, agent version 1) is submitted with ``streaming-agents submit``;
a producer writes claims all along.  The dark launch, ``streaming-agents replay
--memory production`` of version 2, takes a savepoint of the running job and
replays from its offsets on its memory: each replayed decision has the turn
number production gave the same claim.  Then ``streaming-agents promote
claims_triage --candidate 2`` and ``streaming-agents rollback claims_triage``
run as new processes while claims keep arriving; before them, ``promote
--candidate 9`` (a version the job does not have) fails with exit 2 after
stopping production, which is started again from that savepoint.  Read back
``read_committed``:

* every claim has exactly one committed decision across the three jobs (none
  lost, none twice), and there are no dead letters;
* decisions came from version 1, then 2, then 1 again (per policy, in that
  order: the switch happens at one point of each key's history);
* each policy's turn numbers run 1, 2, 3, ... without a gap or a restart:
  memory carried over both switches.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streaming_agents.registry import load_job
from streaming_agents.replay.topics import read_topic
from streaming_agents.testing.fake_llm import FakeLLM

API_KEY_ENV = "FAKE_LLM_API_KEY"
POLICIES = 6


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A standalone cluster of this module only (never the shared one on 8081)."""
    from streaming_agents.chaos.cluster import ChaosCluster

    cluster = ChaosCluster(
        tmp_path_factory.mktemp("promote-cluster"), extra_env={API_KEY_ENV: "fake-key"}
    )
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def _claim(i: int) -> str:
    return json.dumps(
        {
            "claim_id": f"c{i}",
            "policy_id": f"p{i % POLICIES}",
            "customer": f"customer {i % POLICIES}",
            "amount": 400 + i,
            "description": "Water damage in the kitchen after a pipe burst on Monday at home.",
            "documents": ["photo", "invoice"],
        }
    )


class Traffic:
    """Writes one claim every ``interval_s`` until stopped; counts them."""

    def __init__(self, bootstrap: str, topic: str, interval_s: float = 0.1) -> None:
        self.bootstrap, self.topic, self.interval_s = bootstrap, topic, interval_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # One producer for the whole run: a claim really goes out every interval (a new
        # producer per claim took ~0.6 s each in CI, and the dark launch's
        # "savepoint -> now" range could then hold no record at all).
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        try:
            while not self._stop.is_set():
                claim = _claim(self.sent)
                producer.produce(self.topic, key=f"p{self.sent % POLICIES}", value=claim)
                assert producer.flush(30) == 0, "a claim was not acknowledged"
                self.sent += 1
                self._stop.wait(self.interval_s)
        finally:
            producer.flush(30)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _run(argv: tuple[str, ...], extra_env: dict[str, str] | None = None, expect: int = 0) -> str:
    """``streaming-agents ...`` as a new process; returns its stdout (stderr if it failed)."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(extra_env or {})}
    if not extra_env:
        env.pop("STREAMING_AGENTS_AGENT_VERSION", None)
    done = subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        check=False,
    )
    assert done.returncode == expect, done.stderr[-3000:]
    return done.stdout if expect == 0 else done.stderr


def _cli(*argv: str) -> str:
    """``streaming-agents ...`` as a new process; returns the job id it prints last."""
    out = _run(argv)
    job_id = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id), out
    return job_id


def _dark_launch(
    rest: str, bootstrap: str, topics: dict[str, str], shadow: str, savepoints: Path, llm: str
) -> str:
    """``replay --memory production`` of version 2 (a new process); returns its stdout."""
    argv = ("replay", "--agent", "jobs.claims_triage.job:agent_from_env", "--key", "policy_id")
    argv += ("--topic", topics["claims"], "--to", "latest", "--shadow-topic", shadow)
    argv += ("--production-topic", topics["decisions"], "--bootstrap", bootstrap)
    argv += ("--memory", "production", "--rest", rest, "--savepoint-dir", str(savepoints))
    argv += ("--production-job", "claims-triage", "--no-progress")
    env = {"STREAMING_AGENTS_MODEL": "openai/fake-model", "STREAMING_AGENTS_API_BASE": llm}
    env |= {"STREAMING_AGENTS_API_KEY_ENV": API_KEY_ENV, API_KEY_ENV: "fake-key"}
    return _run(argv, {**env, "STREAMING_AGENTS_AGENT_VERSION": "2"})


def _decisions(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value or b"{}") for r in read_topic(bootstrap, topic, timeout_s=60)]


def _wait_for(
    bootstrap: str, topic: str, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        outputs = _decisions(bootstrap, topic)
        if done(outputs):
            return outputs
        assert time.monotonic() < deadline, f"{len(outputs)} committed decisions, condition unmet"
        time.sleep(1.0)


def _versions(outputs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(o["version"]) for o in outputs)


@pytest.mark.cluster
def test_promote_and_rollback_with_traffic_flowing(
    private_cluster: Any,
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> None:
    spec = load_job("claims_triage").spec
    assert spec.fake_rules is not None
    fake_llm.configure({"rules": spec.fake_rules(), "latency_ms": 5})
    topics = {role: topic_factory(f"promote-{role}") for role in spec.topics}
    job = ["claims_triage", "--rest", private_cluster.rest_url, "--bootstrap", kafka_bootstrap]
    job += ["--model", "openai/fake-model", "--api-base", fake_llm.base_url]
    job += ["--api-key-env", API_KEY_ENV, "--checkpoint-ms", "1000", "--ship", "none"]
    job += ["--journal-dir", str(tmp_path / "journal")]
    for role, name in topics.items():
        job += ["--topic", f"{role}={name}"]
    switch = ["--savepoint-dir", str(tmp_path / "savepoints")]
    out = topics["decisions"]

    with Traffic(kafka_bootstrap, topics["claims"]) as traffic:
        started = time.monotonic()
        _cli("submit", *job)
        _wait_for(kafka_bootstrap, out, lambda o: len(o) >= 15, 240)
        shadow = topic_factory("promote-shadow")
        summary = _dark_launch(
            private_cluster.rest_url,
            kafka_bootstrap,
            topics,
            shadow,
            tmp_path / "dark-launch",
            fake_llm.base_url,
        )
        assert "memory start: production's, from savepoint" in summary, summary
        failed = _run(("promote", *job, "--candidate", "9", *switch), expect=2)
        assert "versions are 1, 2" in failed, failed
        names = [j["name"] for j in private_cluster.rest("/jobs/overview")["jobs"]]
        assert names.count("claims-triage") == 2, names  # stopped, and started again
        _cli("promote", *job, "--candidate", "2", *switch)
        _wait_for(kafka_bootstrap, out, lambda o: _versions(o)["2"] >= 15, 240)
        before = _versions(_decisions(kafka_bootstrap, out))["1"]
        last = _cli("rollback", *job, *switch)
        _wait_for(kafka_bootstrap, out, lambda o: _versions(o)["1"] >= before + 15, 240)
    sent = traffic.sent
    outputs = _wait_for(kafka_bootstrap, out, lambda o: len(o) >= sent, 240)
    print(f"submit, promote, rollback, {sent} claims: {time.monotonic() - started:.1f} s")
    private_cluster.rest(f"/jobs/{last}?mode=cancel", "PATCH")

    ids = Counter(o["output"]["claim_id"] for o in outputs)
    assert len(outputs) == sent and set(ids) == {f"c{i}" for i in range(sent)}
    assert max(ids.values()) == 1, [c for c, n in ids.items() if n > 1][:10]
    assert _decisions(kafka_bootstrap, topics["dlq"]) == []
    assert _versions(outputs)["2"] >= 15 and _versions(outputs)["1"] >= 30
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for o in sorted(outputs, key=lambda o: int(o["output"]["claim_id"][1:])):
        by_policy.setdefault(o["key"], []).append(o)
    for policy, mine in by_policy.items():
        pattern = "".join(str(o["version"]) for o in mine)
        assert re.fullmatch(r"1*2*1*", pattern), (policy, pattern)
        assert [o["turn"] for o in mine] == list(range(1, len(mine) + 1)), policy
    turns = {o["output"]["claim_id"]: o["turn"] for o in outputs}
    dark = [o for o in _decisions(kafka_bootstrap, shadow) if not o.get("dead_letter")]
    assert dark and {str(o["version"]) for o in dark} == {"2"}
    assert [o["turn"] for o in dark] == [turns[o["output"]["claim_id"]] for o in dark]
    # Equal turns mean each key started with production's memory.  A claim production had
    # accepted but not yet answered at the savepoint (a policy's first, turn 1, when its key
    # lagged) is in the restored operator's queue, so the dark launch answers it too.
    assert any(o["turn"] > 1 for o in dark), "the dark launch started on production's memory"
    history = (tmp_path / "savepoints" / "promotions.jsonl").read_text().splitlines()
    actions = [(e["action"], e["from_version"], e["to_version"]) for e in map(json.loads, history)]
    assert actions == [("promote", "", "2"), ("rollback", "2", "")]
