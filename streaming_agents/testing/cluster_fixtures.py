"""pytest fixture for the standalone Flink cluster (tests marked ``cluster`` use it).

``flink_cluster`` reuses a cluster that already answers on its REST port
(e.g. one started by ``make cluster-up``) and leaves it running; otherwise it
starts one from ``flink-conf/`` and stops it at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streaming_agents.testing.cluster import FlinkCluster

__all__ = ["flink_cluster"]


@pytest.fixture(scope="session")
def flink_cluster() -> Iterator[FlinkCluster]:
    """A running standalone cluster (JobManager + one TaskManager with 2 slots)."""
    cluster = FlinkCluster()
    if cluster.is_up():
        yield cluster
        return
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()
