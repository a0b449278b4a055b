"""Shipped jobs on a cluster whose workers have PyFlink and nothing else of ours.

A private standalone cluster (free ports, own run folder, one TaskManager) runs its
TaskManager's Python from a virtualenv without litellm, pydantic, openai, aiohttp or
streaming_agents (tests/bare_workers_support.py).  Both jobs run as new CLI processes:

- Job A, ``streaming-agents submit claims_triage --bounded`` (default ``--ship deps``),
  must send what the workers lack; every sample claim is decided through the fake LLM
  exactly once (read back ``read_committed``), the job ends FINISHED.
- Job B, ``streaming-agents sql --rest`` from a folder outside the repo (shipping its own
  copy), runs a script with a Kafka JSON table (hostile records included), an agent and
  an exactly-once sink (the checks: tests/sql_cluster_support.py).

B runs on the same TaskManager after A: a TaskManager runs thread-mode jobs in one
embedded Python interpreter that keeps ``sys.modules`` from job to job, and A's extracted
copy of ``streaming_agents`` is deleted when A ends.  B needs ``streaming_agents.sql``,
which A never imported: without :mod:`streaming_agents.runtime.shipped_imports` it failed
unpickling its functions with ``No module named 'streaming_agents.sql'``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from bare_workers_support import BareWorkerCluster, started_bare_cluster
from sql_cluster_support import run_sql_on_cluster

from streaming_agents.cli.demo import fake_rules
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed

KEY_ENV = "SA_SHIPPED_IMPORTS_KEY"
CLAIMS = 8


@pytest.fixture(scope="module")
def one_tm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareWorkerCluster]:
    with started_bare_cluster(
        tmp_path_factory.mktemp("shipped-imports"), {KEY_ENV: "sk-shipped-imports-key"}
    ) as cluster:
        yield cluster


def _submit_bounded_job(
    cluster: BareWorkerCluster, bootstrap: str, llm: FakeLLM, cwd: Path
) -> None:
    """Job A: claims_triage on the sample claims, shipped (``--ship deps``), run to its end;
    every claim decided (or one of the sample's malformed claims dead-lettered), exactly once."""
    suffix = uuid.uuid4().hex[:8]
    topics = {"claims": f"si-claims-{suffix}", "decisions": f"si-dec-{suffix}"}
    topics["dlq"] = f"si-dlq-{suffix}"
    done = subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", "submit", "claims_triage",
         "--rest", cluster.rest_url, "--bootstrap", bootstrap,
         "--model", "openai/claims-triage-fake", "--api-base", llm.base_url,
         "--api-key-env", KEY_ENV, "--bounded", "--sample", str(CLAIMS), "--create-topics",
         "--checkpoint-ms", "1000", *(f"--topic={r}={t}" for r, t in topics.items())],
        cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(r"shipping \d+ packages \(\d+ MB", done.stderr), done.stderr
    job_id = done.stdout.strip().splitlines()[-1]
    assert cluster.wait_job(job_id, {"FINISHED"}, timeout_s=300) == "FINISHED"
    decisions = consume_committed(bootstrap, topics["decisions"], timeout_s=30)
    dead = consume_committed(bootstrap, topics["dlq"], timeout_s=10)
    assert len(decisions) + len(dead) == CLAIMS, (len(decisions), len(dead))
    reasons = [bytes(m.value() or b"")[:300] for m in dead]
    assert len(dead) <= 2, reasons  # the sample's malformed claims at most
    routes = {json.loads(m.value())["output"]["route"] for m in decisions}
    assert routes <= {"auto_approve", "human_review", "request_more_info"} and routes


@pytest.mark.cluster
def test_a_second_shipped_job_imports_what_the_first_never_did(
    one_tm_cluster: BareWorkerCluster, kafka_bootstrap: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    assert len(one_tm_cluster.taskmanagers()) == 1  # both jobs share one interpreter
    # claims get Decision JSON; the SQL script's prompts match no rule: the default echo
    fake_llm.configure({"rules": fake_rules(), "latency_ms": 5})
    started = time.monotonic()
    (tmp_path / "a").mkdir()
    _submit_bounded_job(one_tm_cluster, kafka_bootstrap, fake_llm, tmp_path / "a")
    took_a = time.monotonic() - started
    (tmp_path / "b").mkdir()
    took_b = run_sql_on_cluster(
        one_tm_cluster.rest_url, kafka_bootstrap, fake_llm, tmp_path / "b", KEY_ENV
    )
    print(f"job A (submit, finished): {took_a:.1f} s; job B (sql --rest): {took_b:.1f} s")
