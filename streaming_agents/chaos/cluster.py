"""A dedicated standalone cluster for chaos runs, rendered from ``flink-conf/``.

Chaos runs kill JobManagers and TaskManagers; doing that to the shared cluster
on port 8081 would break whatever else runs on it (other test sessions reuse
it).  :class:`ChaosCluster` renders the same ``flink-conf/config.yaml`` with
its own REST and RPC ports and keeps every folder Flink writes (logs, pid
files, checkpoints, savepoints, blobs, temporary files) under its own run
folder, so a run is isolated and its files can be scanned afterwards.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import repo_root
from streaming_agents.testing.cluster import FlinkCluster
from streaming_agents.testing.kafka import free_port

__all__ = ["ChaosCluster", "latest_checkpoint"]

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
        ``stop-cluster.sh`` would wait for their tasks to cancel.  Returns the
        seconds ``down`` and ``up`` took.
        """
        started = time.monotonic()
        self.kill_taskmanager()
        self.kill_jobmanager()
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()
        stopped = time.monotonic()
        self.up()
        return stopped - started, time.monotonic() - stopped

    def latest_checkpoint(self, job_id: str) -> Path | None:
        return latest_checkpoint(self.checkpoint_dir, job_id)
