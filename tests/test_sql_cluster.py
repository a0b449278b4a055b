"""``streaming-agents sql SCRIPT --rest HOST:PORT``: what is refused before anything runs.

An unreachable cluster is one line and exit 1; a malformed ``--rest`` is a user error
(exit 2).  The script's job on a cluster whose workers lack our dependencies is
tests/test_bare_workers.py's (job B there).
"""

from __future__ import annotations

from pathlib import Path

from streaming_agents.testing.kafka import free_port
from tests.test_sql_cli import run_sql_cli


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
