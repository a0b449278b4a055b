"""Agent memory survives stop-with-savepoint and a memory schema upgrade, on the real cluster.

The job (``tests/jobs/agent_job.py``) runs an echo agent against the fake LLM,
Kafka in and Kafka out, exactly once.  The fake LLM's echo
``echo[n=<messages>]: <prompt>`` shows how much memory each call carried:
with every turn kept, turn ``t`` sends ``n = 2 * (t - 1) + 1`` messages.

These tests found a timer race in the operator (a result finished between the
commit and the re-arm kept no timer); ``ChainRunner.has_work`` fixes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.testing.cluster import TERMINAL_STATES, FlinkCluster
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce

JOB = Path(__file__).parent / "jobs" / "agent_job.py"
KEYS = tuple(f"k{i}" for i in range(5))
API_KEY_ENV = "FAKE_LLM_API_KEY"


def records(keys: Iterable[str], seqs: Iterable[int]) -> list[tuple[str, str]]:
    """Kafka records ``{"k": key, "seq": n}``, interleaved across keys."""
    keys = list(keys)
    return [(k, json.dumps({"k": k, "seq": s})) for s in seqs for k in keys]


def echo_n(output: Any) -> int:
    """``n`` of the fake LLM's ``echo[n=<n>]: ...`` reply."""
    reply = output["reply"] if isinstance(output, dict) else output
    return int(reply.split("]", 1)[0].removeprefix("echo[n="))


def echo_prompt(output: Any) -> str:
    reply = output["reply"] if isinstance(output, dict) else output
    return str(reply.split(": ", 1)[1])


def read_outputs(
    bootstrap: str, topic: str, expected: int, timeout_s: float, linger_s: float
) -> list[dict[str, Any]]:
    """Committed outputs, waiting for ``expected`` of them and lingering for extras."""
    got = consume_committed(
        bootstrap, topic, expected=expected, timeout_s=timeout_s, linger_s=linger_s
    )
    return [json.loads(m.value()) for m in got]


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """``(key, seq, turn)`` of every output, for readable assertion messages."""
    return [(r["key"], r["input"]["seq"], r["turn"]) for r in rows]


def by_key(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["key"], []).append(row)
    return grouped


def assert_taskmanager_has_api_key(cluster: FlinkCluster) -> None:
    """Agents read the key in the TaskManager process (thread mode): it must be in its env."""
    for pid in cluster._pids("taskexecutor"):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if not any(entry.startswith(f"{API_KEY_ENV}=".encode()) for entry in environ):
            pytest.fail(
                f"TaskManager {pid} has no {API_KEY_ENV}: the reused cluster was started "
                "without it; stop it (`python -m streaming_agents.testing.cluster down`)"
            )


class AgentJobs:
    """Submits ``agent_job.py`` runs that share one input/output topic and journal."""

    def __init__(
        self,
        cluster: FlinkCluster,
        bootstrap: str,
        fake_llm: FakeLLM,
        topic_factory: Callable[..., str],
        tmp_path: Path,
    ) -> None:
        self.cluster = cluster
        self.bootstrap = bootstrap
        self.in_topic, self.out_topic = topic_factory("agent-in"), topic_factory("agent-out")
        tag = uuid.uuid4().hex[:8]
        self.args = [
            *("--bootstrap", bootstrap, "--in", self.in_topic, "--out", self.out_topic),
            *("--api-base", fake_llm.base_url, "--journal", str(tmp_path / "journal.sqlite")),
            *("--group-id", f"agent-{tag}", "--txn-prefix", f"agent-{tag}"),
            *("--checkpoint-ms", "2000", "--state-backend", "rocksdb"),
        ]
        self.name = f"agent-savepoint-{tag}"
        self.savepoint_dir = tmp_path / "savepoints"
        self.started: list[str] = []

    def produce(self, keys: Iterable[str], seqs: Iterable[int]) -> None:
        produce(self.bootstrap, self.in_topic, records(keys, seqs))

    def submit(self, memory_version: int = 1, savepoint: str | None = None) -> str:
        job_id = self.cluster.submit_py(
            JOB,
            [*self.args, "--memory-version", str(memory_version), "--job-name", self.name],
            savepoint=savepoint,
        )
        self.started.append(job_id)
        self.cluster.wait_job(job_id, {"RUNNING"}, timeout_s=60)
        return job_id

    def stop_with_savepoint(self, job_id: str) -> str:
        path = self.cluster.stop_with_savepoint(job_id, self.savepoint_dir)
        self.cluster.wait_job(job_id, {"FINISHED"}, timeout_s=60)
        return path

    def outputs(
        self, expected: int, timeout_s: float = 60.0, linger_s: float = 3.0
    ) -> list[dict[str, Any]]:
        """Everything committed to the output topic; lingers so duplicates would show."""
        return read_outputs(self.bootstrap, self.out_topic, expected, timeout_s, linger_s)

    def cancel_all(self) -> None:
        for job_id in self.started:
            with contextlib.suppress(Exception):
                if self.cluster.job(job_id)["state"] not in TERMINAL_STATES:
                    self.cluster.cancel(job_id)


@pytest.fixture
def agent_jobs(
    flink_cluster: FlinkCluster,
    kafka_bootstrap: str,
    fake_llm: FakeLLM,
    topic_factory: Callable[..., str],
    tmp_path: Path,
) -> Any:
    assert os.environ.get(API_KEY_ENV), "conftest sets the fake API key"
    assert_taskmanager_has_api_key(flink_cluster)
    jobs = AgentJobs(flink_cluster, kafka_bootstrap, fake_llm, topic_factory, tmp_path)
    try:
        yield jobs
    finally:
        jobs.cancel_all()


def run_first_part(jobs: AgentJobs) -> str:
    """Seq 0..2 per key under memory v1, all outputs committed, then stop with a savepoint."""
    jobs.produce(KEYS, range(3))
    started = time.monotonic()
    job_id = jobs.submit(memory_version=1)
    first = jobs.outputs(expected=3 * len(KEYS), linger_s=1.0)
    print(f"first run: submit + 15 outputs {time.monotonic() - started:.1f}s")
    assert len(first) == 3 * len(KEYS), summary(first)
    for key, rows in by_key(first).items():
        assert [(r["input"]["seq"], r["turn"]) for r in rows] == [(0, 1), (1, 2), (2, 3)], key
        assert [echo_n(r["output"]) for r in rows] == [1, 3, 5], key
    started = time.monotonic()
    savepoint = jobs.stop_with_savepoint(job_id)
    print(f"stop with savepoint {time.monotonic() - started:.1f}s: {savepoint}")
    return savepoint


@pytest.mark.cluster
def test_stop_with_savepoint_restore_keeps_memory(agent_jobs: AgentJobs, fake_llm: FakeLLM) -> None:
    savepoint = run_first_part(agent_jobs)

    agent_jobs.produce(KEYS, range(3, 6))
    started = time.monotonic()
    agent_jobs.submit(memory_version=1, savepoint=savepoint)
    rows = agent_jobs.outputs(expected=6 * len(KEYS))
    print(f"restored run: submit + outputs {time.monotonic() - started:.1f}s")

    # Exactly once overall: 6 outputs per key, none repeated, none lost.
    assert len(rows) == 6 * len(KEYS), summary(rows)
    grouped = by_key(rows)
    assert sorted(grouped) == list(KEYS)
    for key, outs in grouped.items():
        assert [(o["input"]["seq"], o["turn"]) for o in outs] == [(s, s + 1) for s in range(6)], key
        # The restored memory went into the calls: turn t carried all 2 * (t - 1) earlier messages.
        assert [echo_n(o["output"]) for o in outs] == [1, 3, 5, 7, 9, 11], key
        assert [echo_prompt(o["output"]) for o in outs] == [f"{key}#{s}" for s in range(6)], key
        assert {o["version"] for o in outs} == {"1"}
    # Each event was asked exactly once: nothing replayed after the savepoint.
    assert fake_llm.stats()["requests_total"] == 6 * len(KEYS)


@pytest.mark.cluster
def test_memory_schema_upgrade_reads_old_savepoint(agent_jobs: AgentJobs) -> None:
    savepoint = run_first_part(agent_jobs)

    # A key the old version never saw starts with fresh v2 memory.
    agent_jobs.produce([*KEYS, "fresh"], range(3, 5))
    started = time.monotonic()
    agent_jobs.submit(memory_version=2, savepoint=savepoint)
    rows = agent_jobs.outputs(expected=3 * len(KEYS) + 2 * (len(KEYS) + 1))
    print(f"upgraded run: submit + outputs {time.monotonic() - started:.1f}s")

    assert len(rows) == 3 * len(KEYS) + 2 * (len(KEYS) + 1), summary(rows)
    grouped = by_key(rows)
    for key in KEYS:
        old, new = grouped[key][:3], grouped[key][3:]
        assert [(o["version"], o["turn"]) for o in old] == [("1", 1), ("1", 2), ("1", 3)], key
        assert all(isinstance(o["output"], str) for o in old), key
        # v2 continued v1's memory: turns 4, 5 with the whole conversation sent...
        assert [(o["input"]["seq"], o["turn"]) for o in new] == [(3, 4), (4, 5)], key
        assert [echo_n(o["output"]) for o in new] == [7, 9], key
        assert [echo_prompt(o["output"]) for o in new] == [f"{key}#3", f"{key}#4"], key
        # ...through Memory.migrate: the v1 documents were upgraded to schema 2.
        assert [o["version"] for o in new] == ["2", "2"], key
        assert [o["output"]["mood"] for o in new] == ["migrated", "migrated"], key
        assert [o["output"]["schema_version"] for o in new] == [2, 2], key
    fresh = grouped["fresh"]
    assert [(o["input"]["seq"], o["turn"]) for o in fresh] == [(3, 1), (4, 2)]
    assert [echo_n(o["output"]) for o in fresh] == [1, 3]
    assert [o["output"]["mood"] for o in fresh] == ["new", "new"]


# --- metrics of the same job, read over Flink's REST API -----------------------

WANTED = ("events_in", "events_out", "llm_calls", "tokens_in", "tokens_out", "calls_in_flight")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _agent_metrics(rest: str, job_id: str) -> dict[str, float]:
    job = _get(f"{rest}/jobs/{job_id}")
    values: dict[str, float] = {}
    for vertex in job["vertices"]:
        base = f"{rest}/jobs/{job_id}/vertices/{vertex['id']}/metrics"
        ids = [m["id"] for m in _get(base) if ".agent." in m["id"]]
        if not ids:
            continue
        for metric in _get(f"{base}?get={','.join(ids)}"):
            values[metric["id"].rsplit(".", 1)[1]] = float(metric["value"])
    return values


@pytest.mark.cluster
def test_operator_metrics_are_reported(agent_jobs: AgentJobs, fake_llm: FakeLLM) -> None:
    agent_jobs.produce(KEYS, range(2))
    job_id = agent_jobs.submit()
    assert len(agent_jobs.outputs(expected=2 * len(KEYS), linger_s=0)) == 2 * len(KEYS)
    deadline, metrics = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        metrics = _agent_metrics(agent_jobs.cluster.rest_url, job_id)
        if metrics.get("events_out", 0) >= 2 * len(KEYS) and metrics.get("llm_calls", 0) > 0:
            break
        time.sleep(2)
    assert set(WANTED) <= set(metrics), metrics
    assert metrics["events_in"] == metrics["events_out"] == 2 * len(KEYS)
    assert metrics["llm_calls"] == fake_llm.stats()["requests_total"] == 2 * len(KEYS)
    assert metrics["tokens_in"] > 0 and metrics["tokens_out"] > 0
    assert metrics["calls_in_flight"] == 0
