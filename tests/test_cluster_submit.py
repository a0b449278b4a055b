"""The count job runs on the standalone cluster via `flink run -py`, exactly once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from streaming_agents.testing.cluster import FlinkCluster
from streaming_agents.testing.kafka import consume_committed, end_offsets, produce

JOB = Path(__file__).parent / "jobs" / "kafka_count_job.py"
KEYS = ("alpha", "beta", "gamma")
PER_KEY = 5


@pytest.mark.cluster
def test_count_job_on_standalone_cluster(
    flink_cluster: FlinkCluster, kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    in_topic, out_topic = topic_factory("events"), topic_factory("counts")
    produce(
        kafka_bootstrap,
        in_topic,
        [(k, json.dumps({"key": k, "n": n})) for n in range(PER_KEY) for k in KEYS],
    )
    name = f"kafka-count-{uuid.uuid4().hex[:8]}"

    started = time.monotonic()
    job_id = flink_cluster.submit_py(
        JOB,
        ["--bootstrap", kafka_bootstrap, "--in", in_topic, "--out", out_topic, "--job-name", name],
    )
    assert flink_cluster.wait_job(job_id, {"FINISHED"}, timeout_s=180) == "FINISHED"
    print(f"submit + run on cluster: {time.monotonic() - started:.1f}s")

    # The sink commits on checkpoints: at least the final one completed.
    checkpoints = flink_cluster.rest(f"/jobs/{job_id}/checkpoints")["counts"]
    assert checkpoints["completed"] >= 1, checkpoints
    listed = {j["jid"]: j for j in flink_cluster.jobs()}
    assert listed[job_id]["name"] == name
    assert listed[job_id]["state"] == "FINISHED"

    got = consume_committed(kafka_bootstrap, out_topic, expected=len(KEYS) * PER_KEY, linger_s=2.0)
    rows = [json.loads(m.value()) for m in got]
    assert len(rows) == len(KEYS) * PER_KEY, rows
    for key in KEYS:
        assert [r["count"] for r in rows if r["key"] == key] == list(range(1, PER_KEY + 1))
    # Written in Kafka transactions: their commit markers take offsets beyond the records.
    assert sum(end_offsets(kafka_bootstrap, out_topic).values()) > len(rows)
