"""The hostile corpus through every shipped job and a public-API job on the standalone cluster.

Each job runs unbounded on the cluster (its default restart strategy); the
corpus of :mod:`streaming_agents.testing.hostile` is written to its input
topic with a valid event after every bad record.  Checked per job: every
valid record's output is committed (``read_committed``) exactly once, every
bad record has one dead letter with the expected reason and offset, nothing
else is written, and at the end the job is RUNNING with zero restarts and an
empty exception history in the REST API.

The five jobs run at the same time (they are independent: own topics, own
consumer groups and transactional ids, own journal folders): a module fixture
submits them all at once on the session's cluster, with one more TaskManager
for the slots they need (:mod:`cluster_support`) and a fake LLM of their own
answering every shipped job's sample events, and writes each job's corpus once
it runs.  Each test then checks its own job as above and cancels it: a job
that fails its checks fails its own test only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cluster_support import extra_taskmanager
from hostile_support import check_outcomes, collect

from streaming_agents.flink_rest import FlinkRest
from streaming_agents.registry import load_job
from streaming_agents.runtime.keys import key_of
from streaming_agents.testing.cluster import TERMINAL_STATES, FlinkCluster
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import (
    Case,
    corpus,
    corpus_with_valid_events,
    create_corpus_topic,
    interleaved,
    produce_cases,
)
from streaming_agents.testing.kafka import create_topics

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


API = "public_api"  # the public-API job's name among the module's runs
TIMEOUT_S = 300  # submission to checked outputs, per job, with five jobs sharing two cores


@dataclass
class CorpusRun:
    """One job of the module: its corpus and topics; ``started`` ends once it runs with its
    corpus written (and raises what went wrong on the way)."""

    cases: list[Case]
    topics: dict[str, str]  # role -> topic
    in_role: str
    out_role: str
    job_id: str = ""
    started: Future[str] = field(default_factory=Future)

    @property
    def in_topic(self) -> str:
        return self.topics[self.in_role]


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _make_topics(bootstrap: str, run: CorpusRun) -> None:
    create_corpus_topic(bootstrap, run.in_topic)
    others = [name for role, name in run.topics.items() if role != run.in_role]
    create_topics(bootstrap, others, partitions=1)


def _api_run(bootstrap: str, llm: FakeLLM) -> tuple[CorpusRun, Callable[[FlinkCluster], str]]:
    """The README's shape (kafka_records -> json_key -> run_agent), with `flink run -py`."""
    topics = {"in": _topic("hostile-api-in") + "-big", "out": _topic("hostile-api-out")}
    topics["dlq"] = _topic("hostile-api-dlq")
    cases = corpus_with_valid_events("k")
    run = CorpusRun(cases, topics, "in", "out")
    args = ["--bootstrap", bootstrap, "--in", topics["in"], "--out", topics["out"]]
    args += ["--dlq", topics["dlq"], "--api-base", llm.base_url]
    args += ["--job-name", f"hostile-api-{topics['in'][-14:-4]}"]

    def submit(cluster: FlinkCluster) -> str:
        return cluster.submit_py(API_JOB, args)

    return run, submit


def _shipped_run(
    job: str, bootstrap: str, rest_url: str, llm: FakeLLM, journal: Path
) -> tuple[CorpusRun, Callable[[FlinkCluster], str]]:
    """A shipped job, submitted with `streaming-agents submit` (a new process)."""
    in_role, out_role, key_field, _keep = SHIPPED[job]
    spec = load_job(job).spec
    topics = {role: _topic(f"h-{job[:8]}-{role}") for role in spec.topics}
    topics[in_role] += "-big"
    run = CorpusRun(_cases(_valid_samples(job), key_field), topics, in_role, out_role)
    argv = [job, "--rest", rest_url, "--bootstrap", bootstrap]
    argv += ["--model", "openai/fake-model", "--api-base", llm.base_url]
    argv += ["--api-key-env", "FAKE_LLM_API_KEY", "--checkpoint-ms", "1000"]
    argv += ["--journal-dir", str(journal), "--job-name", f"hostile-{job}"]
    # The session's workers run this venv: the job and streaming_agents are shipped (zip),
    # the other packages are there.  Shipping those too (--ship deps, ~240 MB a job) is
    # tests/test_bare_workers.py's subject, on workers that have only PyFlink.
    argv += ["--ship", "library"]
    for role, name in topics.items():
        argv += ["--topic", f"{role}={name}"]
    return run, lambda _cluster: _submit(argv)


def _start(
    cluster: FlinkCluster, bootstrap: str, run: CorpusRun, submit: Callable[[FlinkCluster], str]
) -> None:
    """Topics, submission, RUNNING, then the corpus written; the outcome in ``run.started``."""
    try:
        _make_topics(bootstrap, run)
        run.job_id = submit(cluster)
        _wait_running(cluster, run.job_id, timeout_s=TIMEOUT_S)
        produce_cases(bootstrap, run.in_topic, run.cases)
    except Exception as exc:  # noqa: BLE001 - handed to the job's test, which fails with it
        run.started.set_exception(exc)
    else:
        run.started.set_result(run.job_id)


def _selected(request: pytest.FixtureRequest) -> list[str]:
    """The jobs whose tests this session runs (``-k`` may leave some out)."""
    names = set()
    for item in request.session.items:
        if getattr(item, "module", None) is request.module:
            callspec = getattr(item, "callspec", None)
            names.add(callspec.params["job"] if callspec else API)
    return sorted(names)


@pytest.fixture(scope="module")
def corpus_runs(
    request: pytest.FixtureRequest,
    flink_cluster: FlinkCluster,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, CorpusRun]]:
    """Every selected job submitted at once, each writing its corpus once it runs."""
    jobs = _selected(request)
    rules: list[dict[str, Any]] = []
    for job in SHIPPED:  # the fake LLM answering every shipped job's sample events
        spec = load_job(job).spec
        assert spec.fake_rules is not None
        rules.extend(spec.fake_rules())
    llm = FakeLLM({"rules": rules, "latency_ms": 5}).start()
    runs: dict[str, CorpusRun] = {}
    slots = len(jobs) - int(flink_cluster.overview()["slots-available"])
    try:
        with extra_taskmanager(flink_cluster, max(slots, 0)), ThreadPoolExecutor(len(jobs)) as pool:
            for name in jobs:
                if name == API:
                    run, submit = _api_run(kafka_bootstrap, llm)
                else:
                    journal = tmp_path_factory.mktemp(f"journal-{name}")
                    rest = flink_cluster.rest_url
                    run, submit = _shipped_run(name, kafka_bootstrap, rest, llm, journal)
                runs[name] = run
                pool.submit(_start, flink_cluster, kafka_bootstrap, run, submit)
            yield runs
            pool.shutdown(wait=True)
            _cancel_left(flink_cluster, runs)
    finally:
        llm.stop()


def _cancel(cluster: FlinkCluster, job_id: str) -> None:
    """Cancel through the REST API (no `flink` CLI, no JVM to start) and wait until done."""
    rest = FlinkRest(cluster.rest_url)
    rest.cancel(job_id)
    rest.wait_state(job_id, {"CANCELED"}, timeout_s=120)


def _cancel_left(cluster: FlinkCluster, runs: dict[str, CorpusRun]) -> None:
    """Jobs a test did not get to cancel (its start failed after the submission)."""
    for run in runs.values():
        if run.job_id and cluster.job(run.job_id)["state"] not in TERMINAL_STATES:
            _cancel(cluster, run.job_id)


@pytest.mark.cluster
def test_public_api_job_survives_the_corpus_on_the_cluster(
    flink_cluster: FlinkCluster, kafka_bootstrap: str, corpus_runs: dict[str, CorpusRun]
) -> None:
    """The README's shape (kafka_records -> json_key -> run_agent), with `flink run -py`."""
    _check_run(flink_cluster, kafka_bootstrap, corpus_runs[API])


@pytest.mark.cluster
@pytest.mark.parametrize("job", sorted(SHIPPED))
def test_shipped_job_survives_the_corpus_on_the_cluster(
    job: str,
    flink_cluster: FlinkCluster,
    kafka_bootstrap: str,
    corpus_runs: dict[str, CorpusRun],
) -> None:
    """Each shipped job, submitted with `streaming-agents submit` (a new process)."""
    _check_run(flink_cluster, kafka_bootstrap, corpus_runs[job])


def _check_run(cluster: FlinkCluster, bootstrap: str, run: CorpusRun) -> None:
    """The job's outputs, dead letters and health once its corpus is in; then cancel it."""
    started = time.monotonic()
    job_id = run.started.result(timeout=TIMEOUT_S)  # raises what its start ran into
    try:
        out_topic, dlq_topic = run.topics[run.out_role], run.topics["dlq"]
        outputs, dead = collect(bootstrap, run.cases, out_topic, dlq_topic, timeout_s=TIMEOUT_S)
        check_outcomes(run.cases, outputs, dead, run.in_topic)
        _check_healthy(cluster, job_id)
    finally:
        _cancel(cluster, job_id)
    print(f"{run.in_topic}: {len(run.cases)} records checked in {time.monotonic() - started:.1f} s")
