"""`streaming-agents submit` to a cluster whose workers have PyFlink and nothing else of ours.

A private standalone cluster (free ports, own run folder) runs its TaskManager's Python
from a virtualenv without litellm, pydantic, openai, aiohttp or
streaming_agents (tests/bare_workers_support.py).  ``submit`` (default ``--ship deps``)
must send what they lack; the claim-triage job then decides every sample claim through
the fake LLM, exactly once, read back ``read_committed``.
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

from streaming_agents.cli.demo import fake_rules
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed

KEY_ENV = "SA_BARE_WORKER_KEY"
CLAIMS = 8


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareWorkerCluster]:
    # the API key lives on the workers
    with started_bare_cluster(
        tmp_path_factory.mktemp("bare"), {KEY_ENV: "sk-bare-worker-key"}
    ) as cluster:
        yield cluster


def _doc(message: object) -> dict[str, object]:
    value = json.loads(message.value())  # type: ignore[attr-defined]
    return value if isinstance(value, dict) else {}


@pytest.mark.cluster
def test_submit_ships_what_bare_workers_lack(
    bare_cluster: BareWorkerCluster, kafka_bootstrap: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.configure({"rules": fake_rules(), "latency_ms": 5})
    suffix = uuid.uuid4().hex[:8]
    topics = {"claims": f"bare-claims-{suffix}", "decisions": f"bare-dec-{suffix}"}
    topics["dlq"] = f"bare-dlq-{suffix}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", "submit", "claims_triage",
         "--rest", bare_cluster.rest_url, "--bootstrap", kafka_bootstrap,
         "--model", "openai/claims-triage-fake", "--api-base", fake_llm.base_url,
         "--api-key-env", KEY_ENV, "--bounded", "--sample", str(CLAIMS), "--create-topics",
         "--checkpoint-ms", "1000", *(f"--topic={r}={t}" for r, t in topics.items())],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(r"shipping \d+ packages \(\d+ MB", done.stderr), done.stderr
    job_id = done.stdout.strip().splitlines()[-1]
    state = bare_cluster.wait_job(job_id, {"FINISHED"}, timeout_s=300)
    print(f"submit + run on bare workers: {time.monotonic() - started:.1f} s")
    assert state == "FINISHED"
    decisions = consume_committed(kafka_bootstrap, topics["decisions"], timeout_s=30)
    dead = consume_committed(kafka_bootstrap, topics["dlq"], timeout_s=10)
    assert len(decisions) + len(dead) == CLAIMS, (len(decisions), len(dead))
    reasons = [(d.get("reason"), str(d.get("error"))[:300]) for d in map(_doc, dead)]
    assert len(dead) <= 2, reasons  # the sample's malformed claims at most
    routes = {json.loads(m.value())["output"]["route"] for m in decisions}
    assert routes <= {"auto_approve", "human_review", "request_more_info"} and routes
