"""A standalone Flink cluster (one JobManager, one TaskManager) from the pip install.

``FLINK_HOME`` is the installed ``pyflink`` package; the configuration is
``flink-conf/config.yaml`` rendered into ``<run_dir>/conf`` with the absolute
run folder and the venv's python filled in.  Checkpoints and savepoints go to
``<run_dir>/checkpoints`` and ``<run_dir>/savepoints`` and outlive the cluster,
so a job can be restored after ``down``/``up`` (``submit_py(..., savepoint=...)``).

Chaos helpers: :meth:`FlinkCluster.kill_taskmanager` (``kill -9``: the job
fails over from its last checkpoint once a TaskManager is back) and
:meth:`FlinkCluster.start_taskmanager`.

CLI: ``python -m streaming_agents.testing.cluster up|down|status``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import connector_jars, java_home, repo_root

__all__ = ["TERMINAL_STATES", "FlinkCluster", "flink_home"]

TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "CANCELED", "SUSPENDED"})


def flink_home() -> Path:
    """The installed ``pyflink`` package folder (it holds ``bin/``, ``lib/``, ``conf/``)."""
    import importlib.util

    spec = importlib.util.find_spec("pyflink")
    if spec is None or spec.origin is None:
        raise InfrastructureError("pyflink is not installed: run `make install`")
    return Path(spec.origin).parent


def _venv_python() -> str:
    venv = repo_root() / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _descendants(pid: int) -> list[int]:
    """Pids of all processes below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


# Flink's PythonEnvUtils logs the whole environment of `flink run -py`'s Python
# driver at INFO ("Starting Python process with environment variables: {...}"),
# masking only names Flink deems sensitive: OPENAI_API_KEY would be written in
# clear into the client log.  tests/test_secrets.py shows both sides.
_MASK_CLIENT_ENV = """
logger.sa_python_env.name = org.apache.flink.client.python.PythonEnvUtils
logger.sa_python_env.level = WARN
"""


class FlinkCluster:
    """Start, drive and stop a standalone cluster whose REST API is ``rest_url``."""

    def __init__(
        self,
        conf_src: Path | None = None,
        run_dir: Path | None = None,
        rest_url: str = "http://localhost:8081",
        *,
        mask_client_env_log: bool = True,
    ) -> None:
        self.mask_client_env_log = mask_client_env_log
        self.conf_src = Path(conf_src or repo_root() / "flink-conf").resolve()
        self.run_dir = Path(run_dir or repo_root() / ".run" / "flink").resolve()
        self.rest_url = rest_url.rstrip("/")
        self.conf_dir = self.run_dir / "conf"
        self.log_dir = self.run_dir / "log"
        self.pid_dir = self.run_dir / "pid"
        self.lib_dir = self.run_dir / "lib"
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.savepoint_dir = self.run_dir / "savepoints"

    # -- configuration and processes -------------------------------------------------
    def render_conf(self) -> Path:
        """Write ``<run_dir>/conf`` (config.yaml from the template + Flink's log configs).

        Also links ``<run_dir>/lib``: the pip package's ``lib/`` plus
        ``opt/flink-python-*.jar``, which the pip package leaves out of ``lib/``
        (without it the cluster cannot load Python operators).
        """
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        self.lib_dir.mkdir(parents=True)
        home = flink_home()
        for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]:
            (self.lib_dir / jar.name).symlink_to(jar)
        for folder in (self.log_dir, self.pid_dir, self.checkpoint_dir, self.savepoint_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for src in (flink_home() / "conf").iterdir():
            if src.suffix in {".properties", ".xml"}:
                shutil.copy(src, self.conf_dir / src.name)
        text = (self.conf_src / "config.yaml").read_text()
        text = text.replace("{{RUN_DIR}}", str(self.run_dir)).replace("{{PYTHON}}", _venv_python())
        (self.conf_dir / "config.yaml").write_text(text)
        if self.mask_client_env_log:
            with (self.conf_dir / "log4j-cli.properties").open("a") as props:
                props.write(_MASK_CLIENT_ENV)
        (self.conf_dir / "workers").write_text("localhost\n")
        (self.conf_dir / "masters").write_text("localhost:8081\n")
        return self.conf_dir

    def env(self) -> dict[str, str]:
        """Environment for Flink's scripts: FLINK_HOME/CONF/LIB/LOG/PID dirs and JAVA_HOME."""
        return {
            **os.environ,
            "FLINK_HOME": str(flink_home()),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LIB_DIR": str(self.lib_dir),
            "FLINK_LOG_DIR": str(self.log_dir),
            "FLINK_PID_DIR": str(self.pid_dir),
            "JAVA_HOME": java_home(),
        }

    def _script(self, name: str, *args: str, timeout_s: float = 120.0) -> str:
        cmd = [str(flink_home() / "bin" / name), *args]
        try:
            done = subprocess.run(
                cmd, env=self.env(), capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise InfrastructureError(f"{name} {' '.join(args)} timed out ({timeout_s}s)") from exc
        if done.returncode != 0:
            raise InfrastructureError(
                f"{name} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout + done.stderr

    def up(self, timeout_s: float = 90.0) -> None:
        """Start JobManager + TaskManager and wait until a TaskManager offers free slots."""
        if self.is_up():
            raise InfrastructureError(f"a Flink cluster already answers on {self.rest_url}")
        self.render_conf()
        self._script("start-cluster.sh")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ov = self.overview()
                if ov.get("taskmanagers", 0) >= 1 and ov.get("slots-available", 0) >= 1:
                    return
            except InfrastructureError:
                pass  # REST not up yet
            time.sleep(0.5)
        self.down()
        raise InfrastructureError(
            f"Flink cluster not ready in {timeout_s:.0f}s:\n{self.log_tail('standalonesession')}"
        )

    def down(self, timeout_s: float = 30.0) -> None:
        """``stop-cluster.sh``, then SIGKILL whatever of ours is still alive after ``timeout_s``."""
        if self.conf_dir.exists():
            self._script("stop-cluster.sh")
        deadline = time.monotonic() + timeout_s
        while self._pids() and time.monotonic() < deadline:
            time.sleep(0.3)
        for pid in self._pids():
            os.kill(pid, signal.SIGKILL)
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()

    def _pids(self, role: str = "") -> list[int]:
        """Live JobManager/TaskManager pids recorded in our pid files (``role`` filters)."""
        pids: list[int] = []
        for pid_file in self.pid_dir.glob(f"*{role}*.pid" if role else "*.pid"):
            for line in pid_file.read_text().split():
                cmdline = Path(f"/proc/{line}/cmdline")
                if line.isdigit() and cmdline.exists() and b"flink" in cmdline.read_bytes():
                    pids.append(int(line))
        return pids

    def _kill(self, role: str, descendants: bool = False) -> list[int]:
        """``kill -9`` this cluster's ``role`` processes (and their descendants), wait until
        they are gone; returns their pids."""
        pids = self._pids(role)
        children = [child for pid in pids for child in _descendants(pid)] if descendants else []
        for pid in [*pids, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            while Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
        return pids

    def kill_taskmanager(self) -> list[int]:
        """``kill -9`` every TaskManager of this cluster and its Python workers (a machine
        crash); returns the TaskManager pids.  Jobs fail over once a TaskManager is back."""
        return self._kill("taskexecutor", descendants=True)

    def kill_jobmanager(self) -> list[int]:
        """``kill -9`` the JobManager (no HA: its jobs are gone until resubmitted)."""
        return self._kill("standalonesession")

    def start_taskmanager(self, timeout_s: float = 60.0) -> None:
        """Start one more TaskManager and wait until it has registered with the JobManager."""
        before = {tm["id"] for tm in self.taskmanagers()}
        self._script("taskmanager.sh", "start")
        deadline = time.monotonic() + timeout_s
        while not {tm["id"] for tm in self.taskmanagers()} - before:
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"new TaskManager not registered in {timeout_s:.0f}s:\n"
                    f"{self.log_tail('taskexecutor')}"
                )
            time.sleep(0.3)

    def log_tail(self, role: str, lines: int = 60) -> str:
        logs = sorted(self.log_dir.glob(f"*{role}*.log"))
        if not logs:
            return f"(no {role} log in {self.log_dir})"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    # -- REST ------------------------------------------------------------------------
    def rest(self, path: str, method: str = "GET", timeout_s: float = 5.0) -> Any:
        req = urllib.request.Request(f"{self.rest_url}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                body = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise InfrastructureError(f"Flink REST {method} {path} failed: {exc}") from exc
        return json.loads(body) if body else None

    def is_up(self) -> bool:
        try:
            self.rest("/overview", timeout_s=2)
        except InfrastructureError:
            return False
        return True

    def overview(self) -> dict[str, Any]:
        result: dict[str, Any] = self.rest("/overview")
        return result

    def taskmanagers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.rest("/taskmanagers")["taskmanagers"]
        return result

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the JobManager knows: ``jid``, ``name``, ``state``, times..."""
        result: list[dict[str, Any]] = self.rest("/jobs/overview")["jobs"]
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.rest(f"/jobs/{job_id}")
        return result

    def wait_job(
        self, job_id: str, states: Collection[str] = ("FINISHED",), timeout_s: float = 120.0
    ) -> str:
        """Wait until the job is in one of ``states``; raise if it ends in another state."""
        deadline = time.monotonic() + timeout_s
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = str(self.job(job_id)["state"])
            if state in states:
                return state
            if state in TERMINAL_STATES:
                errors = self.rest(f"/jobs/{job_id}/exceptions")
                raise InfrastructureError(f"job {job_id} ended {state}: {str(errors)[:3000]}")
            time.sleep(0.3)
        raise InfrastructureError(f"job {job_id} still {state} after {timeout_s:.0f}s")

    # -- CLI -------------------------------------------------------------------------
    def submit_py(
        self,
        script: Path | str,
        args: Sequence[str] = (),
        jars: Sequence[Path] | None = None,
        *,
        savepoint: str | None = None,
    ) -> str:
        """``flink run -d -py script`` with the connector jars; returns the job id.

        ``savepoint`` restores the job's state from a savepoint or retained
        checkpoint path (``flink run -s``).
        """
        jar_list = list(connector_jars() if jars is None else jars)
        cmd = ["run", "-d"]
        if jar_list:
            cmd += ["-Dpipeline.jars=" + ";".join(Path(j).resolve().as_uri() for j in jar_list)]
        if savepoint:
            cmd += ["-s", savepoint]
        cmd += ["-py", str(Path(script).resolve()), *args]
        out = self._script("flink", *cmd, timeout_s=180)
        found = re.search(r"JobID ([0-9a-f]{32})", out)
        if not found:
            raise InfrastructureError(f"no job id in `flink run` output:\n{out[-3000:]}")
        return found.group(1)

    def cancel(self, job_id: str) -> None:
        self._script("flink", "cancel", job_id)

    def stop_with_savepoint(self, job_id: str, savepoint_dir: Path | str | None = None) -> str:
        """``flink stop --savepointPath DIR JOB`` (JobClient's own is broken in PyFlink 2.3).

        Returns the savepoint path; the job ends FINISHED after its sinks committed.
        """
        target = Path(savepoint_dir or self.savepoint_dir).resolve()
        out = self._script("flink", "stop", "--savepointPath", target.as_uri(), job_id)
        found = re.search(r"Savepoint completed\. Path: (\S+)", out)
        if not found:
            raise InfrastructureError(f"no savepoint path in `flink stop` output:\n{out[-3000:]}")
        return found.group(1)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming_agents.testing.cluster")
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    cluster = FlinkCluster()
    if args.command == "up":
        if cluster.is_up():
            print(f"already up: {cluster.rest_url}")
            return 0
        started = time.monotonic()
        cluster.up()
        print(f"Flink cluster up in {time.monotonic() - started:.1f}s: {cluster.rest_url}")
        return 0
    if args.command == "down":
        cluster.down()
        print("Flink cluster stopped")
        return 0
    if cluster.is_up():
        print(json.dumps(cluster.overview()))
        return 0
    print("not running")
    return 1


if __name__ == "__main__":
    sys.exit(_main())
