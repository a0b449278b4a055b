"""``streaming-agents sql`` as a user runs it: a new process, from a folder outside the repo.

A failing job must be loud and bounded: each task failure's root cause on
stderr while Flink restarts it, then exit code 1 after the restart budget.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from streaming_agents.sql.jobwatch import job_settings, root_cause

ROOT = Path(__file__).resolve().parents[1]


# Set in this process by earlier in-process PyFlink jobs of the same pytest run (seen in a
# run of several SQL test files); it would stop the CLI from starting its JVM.
_NOT_THE_USERS = ("PYTHONPATH", "PYFLINK_GATEWAY_DISABLED")


def cli_env(**extra: str) -> dict[str, str]:
    """The user's environment: no PYTHONPATH pointing into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_THE_USERS}
    env.setdefault("SA_JARS_DIR", str(ROOT / ".jars"))
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.update(extra)
    return env


def run_sql_cli(
    script: Path, *args: str, cwd: Path, timeout_s: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    """``streaming-agents sql SCRIPT ARGS`` in ``cwd`` (never the repo), as a new process."""
    assert not str(cwd.resolve()).startswith(str(ROOT)), "must run outside the checkout"
    command = [str(Path(sys.executable).with_name("streaming-agents")), "sql", str(script), *args]
    return subprocess.run(
        command,
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


FAILING_UDF = """
from pyflink.table import DataTypes
from pyflink.table.udf import udf


@udf(result_type=DataTypes.STRING())
def strict_parse(x):
    raise ValueError(f"cannot parse record {x}")
"""

FAILING_SCRIPT = """
CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');
CREATE TABLE snk (y STRING) WITH ('connector' = 'blackhole');
CREATE TEMPORARY FUNCTION strict_parse AS 'my_udfs.strict_parse' LANGUAGE PYTHON;
INSERT INTO snk SELECT strict_parse(x) FROM src;
"""


def test_failing_job_reports_its_root_cause_and_exits_non_zero_after_the_budget(
    tmp_path: Path,
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "my_udfs.py").write_text(FAILING_UDF)
    script = scripts / "failing.sql"
    script.write_text(FAILING_SCRIPT)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    started = time.monotonic()
    # Flink adds a failure to the REST exception history when it restarts the job (after the
    # delay); the watcher then has the delay of the next attempt to print it. A last attempt
    # failing within one poll of the restart may end the mini-cluster before it is read: its
    # cause is still in the runner's final line (asserted below).
    result = run_sql_cli(script, "--restart-attempts", "1", "--restart-delay", "4", cwd=elsewhere)
    took = time.monotonic() - started
    assert result.returncode == 1, (result.stdout, result.stderr[-3000:])
    assert "[4] submitted job" in result.stdout
    # while Flink restarts the job: the first failure, with its cause and the budget
    assert "failed in 'Source: src" in result.stderr
    assert "ValueError: cannot parse record" in result.stderr
    assert "restart 1 of 1" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("streaming-agents: failed: statement 4 (line 5): job failed")
    assert "ValueError: cannot parse record" in last
    assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
    assert took < 120, f"a failing job must end within the restart budget, took {took:.0f} s"


def test_root_cause_finds_the_innermost_error() -> None:
    pemja = (
        "pemja.core.PythonException: <class 'ModuleNotFoundError'>: No module named 'x'\n"
        "\tat /venv/pyflink/fn_execution/pickle.loads(pickle.py:29)\n"
    )
    assert root_cause(pemja) == "ModuleNotFoundError: No module named 'x'"
    chained = (
        "org.apache.flink.runtime.client.JobExecutionException: Job execution failed.\n"
        "\tat org.apache.Foo.bar(Foo.java:1)\n"
        "Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by X\n"
        "Caused by: java.lang.ClassCastException: class PyObject cannot be cast to Instant\n"
        "\tat org.apache.Foo.baz(Foo.java:2)\n"
    )
    assert root_cause(chained) == "ClassCastException: class PyObject cannot be cast to Instant"
    beam = (
        "Caused by: java.lang.RuntimeException: Error received from SDK harness for "
        "instruction 2: Traceback (most recent call last):\n"
        '  File "/x.py", line 3, in eval\n'
        "    raise KeyError('k')\n"
        "KeyError: 'k'\n"
        "\n\tat org.apache.beam.Foo(Foo.java:1)\n"
    )
    assert root_cause(beam) == "KeyError: 'k'"
    assert root_cause("plain message") == "plain message"


def test_job_settings_bound_the_restarts() -> None:
    settings = job_settings(restart_attempts=2, restart_delay_s=1.5, rest_port=8999)
    assert settings["restart-strategy.type"] == "fixed-delay"
    assert settings["restart-strategy.fixed-delay.attempts"] == "2"
    assert settings["restart-strategy.fixed-delay.delay"] == "1500 ms"
    assert settings["rest.bind-port"] == "8999"
    assert job_settings(restart_attempts=0)["restart-strategy.type"] == "none"
