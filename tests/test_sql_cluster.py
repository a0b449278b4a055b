"""``streaming-agents sql SCRIPT --rest HOST:PORT`` on a cluster whose workers lack our deps.

A private cluster (free ports, own run folder; tests/bare_workers_support.py) runs its
TaskManager's Python from a virtualenv with apache-flink only: no litellm, pydantic,
openai, aiohttp nor streaming_agents.  The SQL runner, run as a new process from a folder
outside the repo, must ship what they lack (``--ship deps``) and run the script's job
there (the check: tests/sql_cluster_support.py).  The cluster is this module's own: a
TaskManager that already ran a job with another shipped copy of streaming_agents keeps
that copy's modules in its embedded (thread mode) interpreter (seen:
``No module named 'streaming_agents.sql'`` after a ``submit`` on the same cluster).
Refused before anything runs: an unreachable cluster (one line, exit 1), a malformed
``--rest`` (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bare_workers_support import BareWorkerCluster, started_bare_cluster
from sql_cluster_support import run_sql_on_cluster

from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import free_port
from tests.test_sql_cli import run_sql_cli

KEY_ENV = "SA_SQL_BARE_WORKER_KEY"


@pytest.fixture(scope="module")
def sql_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareWorkerCluster]:
    # the API key lives on the workers
    with started_bare_cluster(
        tmp_path_factory.mktemp("sql-bare"), {KEY_ENV: "sk-sql-bare-worker-key"}
    ) as cluster:
        yield cluster


@pytest.mark.cluster
def test_sql_rest_ships_what_bare_workers_lack(
    sql_cluster: BareWorkerCluster, kafka_bootstrap: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    took = run_sql_on_cluster(sql_cluster.rest_url, kafka_bootstrap, fake_llm, tmp_path, KEY_ENV)
    print(f"sql --rest on bare workers: {took:.1f} s")


def test_an_unreachable_cluster_is_one_line_and_exit_1(tmp_path: Path) -> None:
    script = tmp_path / "s.sql"
    script.write_text("CREATE TABLE t (x INT) WITH ('connector' = 'datagen');\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_sql_cli(script, "--rest", f"127.0.0.1:{free_port()}", cwd=cwd, timeout_s=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Flink REST API at http://127.0.0.1:" in lines[0], lines


def test_a_malformed_rest_target_is_a_user_error(tmp_path: Path) -> None:
    script = tmp_path / "s.sql"
    script.write_text("SELECT 1;\n")
    result = run_sql_cli(script, "--rest", "not a host", cwd=tmp_path, timeout_s=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--rest must be HOST:PORT" in result.stderr
