"""The journal is chosen where the work runs, not by the submitting client.

A standalone cluster whose TaskManager has ``STREAMING_AGENTS_JOURNAL`` set to
one folder, a ``flink run`` client with it set to another: a job that names
no journal writes its entries in the workers' folder, never the client's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from streaming_agents.chaos.cluster import ChaosCluster
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce

JOB = Path(__file__).parent / "jobs" / "worker_journal_job.py"


@pytest.mark.cluster
def test_a_job_without_a_journal_uses_the_workers_setting(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    worker_dir, client_dir = tmp_path / "worker-journal", tmp_path / "client-journal"
    cluster = ChaosCluster(
        tmp_path / "flink",
        extra_env={"STREAMING_AGENTS_JOURNAL": f"sqlite://{worker_dir}",
                   "FAKE_LLM_API_KEY": "sk-worker-journal-test"},
        client_env={"STREAMING_AGENTS_JOURNAL": f"sqlite://{client_dir}",
                    "STREAMING_AGENTS_JOURNAL_DIR": str(client_dir)},
    )  # fmt: skip
    src, dst = topic_factory("in"), topic_factory("out")
    events = [json.dumps({"k": f"k{i % 3}", "seq": i // 3}) for i in range(9)]
    produce(kafka_bootstrap, src, [(None, e) for e in events])
    cluster.up()
    try:
        job = cluster.submit_py(
            JOB,
            ["--bootstrap", kafka_bootstrap, "--in", src, "--out", dst,
             "--api-base", fake_llm.base_url],
        )  # fmt: skip
        assert cluster.wait_job(job, {"FINISHED"}, timeout_s=240) == "FINISHED"
    finally:
        cluster.down()
    assert len(consume_committed(kafka_bootstrap, dst, expected=9, linger_s=1)) == 9
    assert not client_dir.exists(), "the client's setting is not carried into the job"
    journal = worker_dir / "worker-journal.sqlite"
    with sqlite3.connect(journal) as conn:
        rows = conn.execute("SELECT scope, COUNT(*) FROM results GROUP BY scope").fetchall()
    # scoped to the job (no pipeline.name when run_agent ran: the operator uid), agent, version
    assert rows == [("agent-worker-journal/worker-journal@1", 9)], rows
    assert fake_llm.stats()["requests_total"] == 9
