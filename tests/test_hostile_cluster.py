"""The hostile corpus through every shipped job and a public-API job on the standalone cluster.

Each job runs unbounded on the cluster (its default restart strategy); the
corpus of :mod:`streaming_agents.testing.hostile` is written to its input
topic with a valid event after every bad record.  Checked per job: every
valid record's output is committed (``read_committed``) exactly once, every
bad record has one dead letter with the expected reason and offset, nothing
else is written, and at the end the job is RUNNING with zero restarts and an
empty exception history in the REST API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_support import check_outcomes, collect

from streaming_agents.registry import load_job
from streaming_agents.runtime.keys import key_of
from streaming_agents.testing.cluster import FlinkCluster
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import (
    Case,
    corpus,
    create_corpus_topic,
    interleaved,
    produce_cases,
)

API_JOB = Path(__file__).parent / "jobs" / "hostile_api_job.py"


Accepts = Callable[[Any, dict[str, Any]], bool]


def _accepts(validate: Callable[[Any, dict[str, Any]], Any]) -> Accepts:
    """Whether the job's module accepts an event and makes an output of it."""

    def accepts(module: Any, event: dict[str, Any]) -> bool:
        try:
            return validate(module, event) is not False
        except ValueError:  # pydantic's ValidationError is a ValueError
            return False

    return accepts


# job folder -> (input role, output role, key field, accepts: its own input model or filter)
SHIPPED: dict[str, tuple[str, str, str, Accepts]] = {
    "claims_triage": (
        "claims",
        "decisions",
        "policy_id",
        _accepts(lambda m, e: m.Claim.model_validate(e)),
    ),
    "claims_compliance": (
        "decisions",
        "reviews",
        "input.policy_id",
        _accepts(lambda m, e: m.needs_review(e) and m.case_of(e)),
    ),
    "catalog_normalisation": (
        "products",
        "normalised",
        "partner_id",
        _accepts(lambda m, e: m.PartnerProduct.model_validate(e)),
    ),
    "supply_chain": (
        "positions",
        "actions",
        "region",
        _accepts(lambda m, e: m.parse_event({**e, "type": "position"})),
    ),
}


def _valid_samples(job: str) -> list[dict[str, Any]]:
    role, _out, key_field, keep = SHIPPED[job]
    entry = load_job(job)
    spec = entry.spec
    assert spec.sample is not None
    found = []
    for record in spec.sample(60, 3):
        try:
            event = json.loads(record.value)
        except ValueError:
            continue
        path = tuple(key_field.split("."))
        usable = isinstance(event, dict) and key_of(event, path, 256) and keep(entry.module, event)
        if record.role == role and usable:
            found.append(event)
    assert len(found) >= 3, f"{job}: too few valid samples"
    return found


def _cases(valid: list[dict[str, Any]], key_field: str) -> list[Case]:
    cases = corpus(valid[0], key_field)
    return [case for case, _ in interleaved(cases, lambda i: valid[(i + 1) % len(valid)])]


def _wait_running(cluster: FlinkCluster, job_id: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = cluster.job(job_id)["state"]
        if state == "RUNNING":
            return
        assert state in {"CREATED", "INITIALIZING"}, state
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not RUNNING after {timeout_s} s")


def _check_healthy(cluster: FlinkCluster, job_id: str) -> None:
    assert cluster.job(job_id)["state"] == "RUNNING"
    restarts = cluster.rest(f"/jobs/{job_id}/metrics?get=numRestarts")
    assert [m["value"] for m in restarts] == ["0"], restarts
    history = cluster.rest(f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]
    assert history == [], history[0].get("exceptionName") if history else None


def _submit(argv: list[str]) -> str:
    """``streaming-agents submit ...`` as a new process; returns the job id it prints."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", "submit", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def all_rules(fake_llm: FakeLLM) -> FakeLLM:
    """The fake LLM answering every shipped job's sample events."""
    rules: list[dict[str, Any]] = []
    for job in SHIPPED:
        spec = load_job(job).spec
        assert spec.fake_rules is not None
        rules.extend(spec.fake_rules())
    fake_llm.configure({"rules": rules, "latency_ms": 5})
    return fake_llm


@pytest.mark.cluster
def test_public_api_job_survives_the_corpus_on_the_cluster(
    flink_cluster: FlinkCluster,
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    all_rules: FakeLLM,
) -> None:
    """The README's shape (kafka_records -> json_key -> run_agent), with `flink run -py`."""
    api_in = topic_factory("hostile-api-in") + "-big"
    api_out, api_dlq = topic_factory("hostile-api-out"), topic_factory("hostile-api-dlq")
    create_corpus_topic(kafka_bootstrap, api_in)
    args = ["--bootstrap", kafka_bootstrap, "--in", api_in, "--out", api_out, "--dlq", api_dlq]
    args += ["--api-base", all_rules.base_url, "--job-name", f"hostile-api-{api_in[-10:]}"]
    base = {"k": "base", "seq": 0}
    cases = [c for c, _ in interleaved(corpus(base, "k"), lambda i: {"k": f"v{i % 4}", "seq": i})]
    job_id = flink_cluster.submit_py(API_JOB, args)
    _run_corpus(flink_cluster, kafka_bootstrap, job_id, cases, api_in, api_out, api_dlq)


@pytest.mark.cluster
@pytest.mark.parametrize("job", sorted(SHIPPED))
def test_shipped_job_survives_the_corpus_on_the_cluster(
    job: str,
    flink_cluster: FlinkCluster,
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    all_rules: FakeLLM,
    tmp_path: Path,
) -> None:
    """Each shipped job, submitted with `streaming-agents submit` (a new process)."""
    in_role, out_role, key_field, _keep = SHIPPED[job]
    spec = load_job(job).spec
    topics = {role: topic_factory(f"h-{job[:8]}-{role}") for role in spec.topics}
    topics[in_role] += "-big"
    create_corpus_topic(kafka_bootstrap, topics[in_role])
    argv = [job, "--rest", flink_cluster.rest_url, "--bootstrap", kafka_bootstrap]
    argv += ["--model", "openai/fake-model", "--api-base", all_rules.base_url]
    argv += ["--api-key-env", "FAKE_LLM_API_KEY", "--checkpoint-ms", "1000"]
    argv += ["--journal-dir", str(tmp_path / "journal"), "--job-name", f"hostile-{job}"]
    for role, name in topics.items():
        argv += ["--topic", f"{role}={name}"]
    cases = _cases(_valid_samples(job), key_field)
    _run_corpus(
        flink_cluster,
        kafka_bootstrap,
        _submit(argv),
        cases,
        topics[in_role],
        topics[out_role],
        topics["dlq"],
    )


def _run_corpus(
    cluster: FlinkCluster,
    bootstrap: str,
    job_id: str,
    cases: list[Case],
    in_topic: str,
    out_topic: str,
    dlq_topic: str,
) -> None:
    """Write the corpus once the job runs; check its outputs and health; cancel it."""
    started = time.monotonic()
    try:
        _wait_running(cluster, job_id)
        produce_cases(bootstrap, in_topic, cases)
        outputs, dead = collect(bootstrap, cases, out_topic, dlq_topic, timeout_s=120)
        check_outcomes(cases, outputs, dead, in_topic)
        _check_healthy(cluster, job_id)
    finally:
        cluster.cancel(job_id)
    print(f"{in_topic}: {len(cases)} records checked in {time.monotonic() - started:.1f} s")
