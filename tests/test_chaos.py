"""Exactly-once under crashes over SASL_SSL: the short chaos run (``make chaos`` = long).

``streaming_agents.chaos`` starts its own Kafka broker, fake LLM (10 % 429,
5 % 500, 2 % timeouts, random latency) and standalone Flink cluster, submits
``jobs/chaos/job.py`` with ``flink run -py``, produces events while it
restarts the Kafka broker, kills the JobManager (then restarts the cluster and
resumes the job from its latest retained checkpoint with ``flink run -s``),
and kills the TaskManager of that restored job (``kill -9``, a new one
started): one fault of each kind (``make chaos`` repeats the TaskManager
kill five times).  A ``read_committed`` consumer must then see every input
exactly once, per key in order, with ``turn == seq + 1``.

The run is on the secured broker (``ChaosPlan.secure``, as ``python -m
streaming_agents.chaos --short --secure``): SASL_SSL, SCRAM-SHA-512, ACLs; the
job runs as its own principal, whose password holds ``'``, ``"`` and ``\\``,
under exactly the ACLs its topics, group and transactional-id prefix need; the
broker restart brings it back on the same ports with its users and ACLs; the
producer and the ``read_committed`` readers are the admin.  No file of the
run (Flink logs -- the TaskManagers' among them, which show the Kafka clients'
configs with ``sasl.jaas.config = [hidden]``, the probe --, checkpoints, the
journal, the broker's data) holds the API key or a password.  PLAINTEXT is
what every other test and ``make chaos`` run.

The savepoint path (``flink stop --savepoint`` then ``flink run -s``) is
covered by ``tests/test_agent_savepoint.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming_agents.chaos import judge, run_chaos, short_plan


@pytest.mark.cluster
def test_chaos_short_run_is_exactly_once(tmp_path: Path) -> None:
    plan = short_plan(run_dir=tmp_path / "chaos", secure=True)
    result = run_chaos(plan)
    found, report = judge(result)
    print(report)
    assert [f.kind for f in result.faults] == [
        "Kafka broker restart",
        "JobManager kill -9",
        "TaskManager kill -9",
    ], report
    assert len(result.jobs) == 2, report  # the TaskManager kill hit the restored job
    assert all(f.recovery_s is not None for f in result.faults), report
    assert result.restored_from and "/chk-" in result.restored_from[0], report
    assert found.ok, report
    assert result.settings()["kafka"] == f"SASL_SSL as {result.principal}", report
    assert result.principal.startswith("User:chaos-"), report
    # The password scan saw the TaskManagers' logs (their clients' configs, masked)...
    assert "SCRAM password" in result.secrets_searched, report
    assert result.jaas_probe_files > 0, report
    # ...and found no secret anywhere (found.ok counts these too; stated on its own).
    assert result.leaks == [], report
    # Calls repeated because of crashes: at most those in flight, one per key per crash.
    crashes = sum(1 for f in result.faults if "kill" in f.kind)
    repeated_ok = int(result.llm["by_status"].get("200", 0)) - int(result.llm["requests_distinct"])
    assert repeated_ok <= crashes * plan.keys, report
