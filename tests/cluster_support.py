"""More slots on the session's standalone cluster for a while: one extra TaskManager.

Tests that run several jobs at once on the shared cluster (``flink_cluster``,
one TaskManager with two slots) start one more TaskManager with more slots,
from the cluster's own configuration (``taskmanager.sh start -D
taskmanager.numberOfTaskSlots=N``), and stop it when they are done
(``taskmanager.sh stop``: it leaves, so the JobManager drops it at once and
the session's cluster is as before).  Starting it does not block: jobs
submitted meanwhile wait for slots, so the start overlaps their submission.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from streaming_agents.errors import InfrastructureError
from streaming_agents.testing.cluster import FlinkCluster


def _pid_file_tail(cluster: FlinkCluster) -> int | None:
    """The last pid in the TaskManagers' pid file: the one ``taskmanager.sh stop`` stops."""
    for pid_file in cluster.pid_dir.glob("*taskexecutor*.pid"):
        lines = pid_file.read_text().split()
        if lines and lines[-1].isdigit():
            return int(lines[-1])
    return None


@contextmanager
def extra_taskmanager(
    cluster: FlinkCluster, slots: int, timeout_s: float = 120.0
) -> Iterator[None]:
    """One more TaskManager with ``slots`` slots while the block runs; stopped after it.

    ``slots`` 0 or less: nothing is started.
    """
    if slots <= 0:
        yield
        return
    before_ids = {tm["id"] for tm in cluster.taskmanagers()}
    before_pids = set(cluster._pids("taskexecutor"))
    cluster._script("taskmanager.sh", "start", "-D", f"taskmanager.numberOfTaskSlots={slots}")
    new_pids = sorted(set(cluster._pids("taskexecutor")) - before_pids)
    try:
        yield
    finally:
        _stop(cluster, new_pids, before_ids, timeout_s)


def _stop(cluster: FlinkCluster, pids: list[int], before_ids: set[str], timeout_s: float) -> None:
    """Stop our TaskManager (gracefully: it unregisters) and wait until the JobManager lost it."""
    if pids and _pid_file_tail(cluster) == pids[-1]:
        cluster._script("taskmanager.sh", "stop")  # also takes it off the pid file
    else:  # someone started another one after ours: stop ours by its pid
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while {tm["id"] for tm in cluster.taskmanagers()} - before_ids:
        if time.monotonic() > deadline:
            raise InfrastructureError(f"extra TaskManager {pids} still registered")
        time.sleep(0.3)
