"""A dedicated standalone cluster for chaos runs, rendered from ``flink-conf/``.

Chaos runs kill JobManagers and TaskManagers; doing that to the shared cluster
on port 8081 would break whatever else runs on it (other test sessions reuse
it).  :class:`ChaosCluster` renders the same ``flink-conf/config.yaml`` with
its own REST and RPC ports and keeps every folder Flink writes (logs, pid
files, checkpoints, savepoints, blobs, temporary files) under its own run
folder, so a run is isolated and its files can be scanned afterwards.

:class:`HostsCluster` is the two-"host" layout: one JobManager and one-slot
TaskManagers, each started by ``unshare -m`` (needs root) with a private
tmpfs over ``host_dir``, so they share the machine but not that folder, as
two hosts would not.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import repo_root
from streaming_agents.testing.cluster import FlinkCluster, flink_home
from streaming_agents.testing.kafka import free_port

__all__ = ["ChaosCluster", "HostsCluster", "latest_checkpoint"]

# Folders Flink would otherwise put under /tmp: kept in the run folder.
_EXTRA_CONFIG = """
io.tmp.dirs: {{RUN_DIR}}/tmp
blob.storage.directory: {{RUN_DIR}}/blob
web.tmpdir: {{RUN_DIR}}/tmp
"""


def _set_port(text: str, old: int, new: int) -> str:
    pattern = re.compile(rf"^(\s*port:\s*){old}\s*$", re.MULTILINE)
    text, count = pattern.subn(rf"\g<1>{new}", text)
    if count != 1:
        raise InfrastructureError(f"flink-conf/config.yaml: expected one `port: {old}`")
    return text


def latest_checkpoint(checkpoint_dir: Path, job_id: str) -> Path | None:
    """The newest completed checkpoint (``chk-N`` holding ``_metadata``) of ``job_id``."""
    done = [
        (int(path.name.split("-", 1)[1]), path)
        for path in (checkpoint_dir / job_id).glob("chk-*")
        if (path / "_metadata").exists()
    ]
    return max(done)[1] if done else None


class ChaosCluster(FlinkCluster):
    """A :class:`FlinkCluster` on free ports, with separate environments per process kind.

    ``extra_env`` reaches the JobManager and every TaskManager (also those
    started later by :meth:`start_taskmanager`): this is how a deployment
    hands the workers an API key without putting it in the job.
    ``client_env`` reaches only the ``flink`` CLI (``run``, ``stop``, ...),
    e.g. a password the job script reads while it builds the job.
    ``mask_client_env_log=False`` keeps Flink's stock client logging, which
    lists the driver's environment (only ``tests/test_secrets.py`` wants that).
    """

    def __init__(
        self,
        run_dir: Path,
        extra_env: Mapping[str, str] | None = None,
        *,
        client_env: Mapping[str, str] | None = None,
        mask_client_env_log: bool = True,
    ) -> None:
        self.rest_port = free_port()
        self.rpc_port = free_port(self.rest_port)
        run_dir = Path(run_dir).resolve()
        super().__init__(
            conf_src=run_dir / "conf-src",
            run_dir=run_dir,
            rest_url=f"http://localhost:{self.rest_port}",
            mask_client_env_log=mask_client_env_log,
        )
        self.extra_env = dict(extra_env or {})
        self.client_env = dict(client_env or {})
        self._cli = False

    def render_conf(self) -> Path:
        """``flink-conf/config.yaml`` with this cluster's ports and folders."""
        text = (repo_root() / "flink-conf" / "config.yaml").read_text()
        text = _set_port(_set_port(text, 8081, self.rest_port), 6123, self.rpc_port)
        self.conf_src.mkdir(parents=True, exist_ok=True)
        (self.conf_src / "config.yaml").write_text(text + _EXTRA_CONFIG)
        for folder in ("tmp", "blob"):
            (self.run_dir / folder).mkdir(parents=True, exist_ok=True)
        return super().render_conf()

    def env(self) -> dict[str, str]:
        return {**super().env(), **(self.client_env if self._cli else self.extra_env)}

    def _script(self, name: str, *args: str, timeout_s: float = 120.0) -> str:
        self._cli = name == "flink"
        try:
            return super()._script(name, *args, timeout_s=timeout_s)
        finally:
            self._cli = False

    def restart(self) -> tuple[float, float]:
        """Stop what is left of the cluster, start it again (same ports and folders).

        What is left (TaskManagers orphaned by a dead JobManager) is killed:
        ``stop-cluster.sh`` would wait for their tasks to cancel.  Returns once
        the JobManager's REST API answers (:meth:`start_detached`): the
        TaskManager registers while the caller resubmits, and the job waits for
        its slots.  Returns the seconds ``down`` and ``up`` took.
        """
        started = time.monotonic()
        self.kill_taskmanager()
        self.kill_jobmanager()
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()
        stopped = time.monotonic()
        self.start_detached()
        return stopped - started, time.monotonic() - stopped

    def start_detached(self, timeout_s: float = 90.0) -> None:
        """Start JobManager + TaskManager; return when the REST API answers (not the slots)."""
        self.render_conf()
        self._script("start-cluster.sh")
        deadline = time.monotonic() + timeout_s
        while not self.is_up():
            if time.monotonic() > deadline:
                raise InfrastructureError("JobManager not up:\n" + self.log_tail("standalone"))
            time.sleep(0.3)

    def latest_checkpoint(self, job_id: str) -> Path | None:
        return latest_checkpoint(self.checkpoint_dir, job_id)


class HostsCluster(ChaosCluster):
    """A chaos cluster whose one-slot TaskManagers each see their own ``host_dir``."""

    def __init__(self, run_dir: Path, host_dir: Path, extra_env: dict[str, str]) -> None:
        super().__init__(run_dir, extra_env)
        self.host_dir = host_dir

    def render_conf(self) -> Path:
        conf_dir = super().render_conf()
        path = conf_dir / "config.yaml"
        text, count = re.subn(r"(numberOfTaskSlots:\s*)\d+", r"\g<1>1", path.read_text())
        if count != 1:
            raise InfrastructureError("flink-conf/config.yaml: expected one numberOfTaskSlots")
        path.write_text(text)
        return conf_dir

    def up(self, timeout_s: float = 90.0) -> None:
        """The JobManager, then two TaskManagers on their own "hosts"."""
        self.render_conf()
        self.host_dir.mkdir(parents=True, exist_ok=True)
        self._script("jobmanager.sh", "start")
        deadline = time.monotonic() + timeout_s
        while not self.is_up():
            if time.monotonic() > deadline:
                raise InfrastructureError("JobManager not up:\n" + self.log_tail("standalone"))
            time.sleep(0.5)
        for _ in range(2):
            self.start_taskmanager()

    def start_detached(self, timeout_s: float = 90.0) -> None:
        """:meth:`up`: each TaskManager is started in its own namespace and waited for."""
        self.up(timeout_s)

    def start_taskmanager(self, timeout_s: float = 60.0) -> None:
        """A TaskManager in a new mount namespace with an empty private ``host_dir``."""
        before = {tm["id"] for tm in self.taskmanagers()}
        script = (
            f"mount -t tmpfs -o mode=0700 tmpfs '{self.host_dir}' && "
            f"exec '{flink_home() / 'bin' / 'taskmanager.sh'}' start"
        )
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            env=self.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise InfrastructureError(f"TaskManager in a namespace failed: {done.stderr[-2000:]}")
        deadline = time.monotonic() + timeout_s
        while not {tm["id"] for tm in self.taskmanagers()} - before:
            if time.monotonic() > deadline:
                raise InfrastructureError("new TaskManager not registered")
            time.sleep(0.3)

    def kill_one_taskmanager(self) -> int:
        """``kill -9`` the oldest live TaskManager; returns its pid."""
        pids = self._pids("taskexecutor")
        if not pids:
            raise InfrastructureError("no TaskManager to kill")
        victim = min(pids)
        subprocess.run(["kill", "-9", str(victim)], check=True)
        while Path(f"/proc/{victim}").exists():
            time.sleep(0.05)
        return victim

    def placement(self, job_id: str) -> list[str]:
        """The TaskManager id of each subtask of the job's agent vertex (subtask order)."""
        vertices = self.rest(f"/jobs/{job_id}")["vertices"]
        agent = next((v for v in vertices if "agent" in v["name"].lower()), vertices[-1])
        subtasks = self.rest(f"/jobs/{job_id}/vertices/{agent['id']}")["subtasks"]
        return [
            str(s.get("taskmanager-id", "?")) for s in sorted(subtasks, key=lambda s: s["subtask"])
        ]
