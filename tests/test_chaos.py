"""Exactly-once under crashes, on a real cluster: the short chaos run (``make chaos`` = long).

``streaming_agents.chaos`` starts its own Kafka broker, fake LLM (10 % 429,
5 % 500, 2 % timeouts, random latency) and standalone Flink cluster, submits
``jobs/chaos/job.py`` with ``flink run -py``, produces events while it kills
the TaskManager three times (``kill -9``, a new one started each time),
restarts the Kafka broker, and kills the JobManager (then restarts the
cluster and resumes the job from its latest retained checkpoint with
``flink run -s``).  A ``read_committed`` consumer must then see every input
exactly once, per key in order, with ``turn == seq + 1``.

The savepoint path (``flink stop --savepoint`` then ``flink run -s``) is
covered by ``tests/test_agent_savepoint.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming_agents.chaos import judge, run_chaos, short_plan


@pytest.mark.cluster
def test_chaos_short_run_is_exactly_once(tmp_path: Path) -> None:
    plan = short_plan(run_dir=tmp_path / "chaos")
    result = run_chaos(plan)
    found, report = judge(result)
    print(report)
    assert [f.kind for f in result.faults] == [
        "TaskManager kill -9",
        "Kafka broker restart",
        "TaskManager kill -9",
        "JobManager kill -9",
        "TaskManager kill -9",
    ], report
    assert all(f.recovery_s is not None for f in result.faults), report
    assert result.restored_from and "/chk-" in result.restored_from[0], report
    assert found.ok, report
    # Calls repeated because of crashes: at most those in flight, one per key per crash.
    crashes = sum(1 for f in result.faults if "kill" in f.kind)
    repeated_ok = int(result.llm["by_status"].get("200", 0)) - int(result.llm["requests_distinct"])
    assert repeated_ok <= crashes * plan.keys, report
