"""pytest fixtures for Kafka: one broker per session, fresh topics per test.

``kafka_bootstrap`` picks, in order:

1. ``STREAMING_AGENTS_KAFKA_BOOTSTRAP`` -- an external cluster you run yourself
   (e.g. ``make kafka-up``); never stopped by the tests;
2. a testcontainers ``KafkaContainer`` when a Docker engine answers;
3. :class:`~streaming_agents.testing.kafka.LocalKafka` in a temporary folder,
   stopped at the end of the session.

``local_kafka`` is the ``LocalKafka`` object in case 3 (tests that restart or
kill the broker use it and skip otherwise).  ``topic_factory`` creates topics
with unique names, so tests never see each other's records or transactions.

``secure_kafka`` is a second, secured ``LocalKafka`` (SASL_SSL, SCRAM users,
ACLs enforced; see :mod:`streaming_agents.testing.kafka`), always started by
the session that asks for it, whatever ``kafka_bootstrap`` uses.
``secure_topic_factory`` creates topics there as the admin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.errors import InfrastructureError
from streaming_agents.testing.kafka import LocalKafka, create_topics

__all__ = [
    "kafka_bootstrap",
    "local_kafka",
    "secure_kafka",
    "secure_topic_factory",
    "topic_factory",
]

ENV_BOOTSTRAP = "STREAMING_AGENTS_KAFKA_BOOTSTRAP"


def _docker_answers() -> bool:
    """True when a Docker engine replies to ``docker info`` within 3 s."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _start_local_kafka(secure: bool = False) -> LocalKafka:
    # Not under pytest's tmp_path: concurrent pytest sessions of the same user prune
    # each other's old basetemp folders, which would delete a running broker's data.
    broker = LocalKafka(Path(tempfile.mkdtemp(prefix="sa-kafka-")), secure=secure)
    try:
        broker.start()
    except InfrastructureError as exc:  # e.g. a port taken between choosing and binding it
        warnings.warn(f"LocalKafka start failed, retrying once on new ports: {exc}", stacklevel=1)
        shutil.rmtree(broker.workdir, ignore_errors=True)
        broker = LocalKafka(Path(tempfile.mkdtemp(prefix="sa-kafka-")), secure=secure)
        broker.start()
    return broker


@pytest.fixture(scope="session")
def local_kafka() -> Iterator[LocalKafka | None]:
    """The session's LocalKafka broker, or None when an external/container broker is used."""
    if os.environ.get(ENV_BOOTSTRAP) or _docker_answers():
        yield None
        return
    broker = _start_local_kafka()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(local_kafka: LocalKafka | None) -> Iterator[str]:
    """``host:port`` of the session's Kafka broker (see the module doc for the choice)."""
    external = os.environ.get(ENV_BOOTSTRAP)
    if external:
        yield external
        return
    if local_kafka is not None:
        yield local_kafka.bootstrap
        return
    from testcontainers.kafka import KafkaContainer

    container: Any = (
        KafkaContainer()
        .with_kraft()
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    )
    container.start()
    try:
        yield str(container.get_bootstrap_server())
    finally:
        container.stop()


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Callable[..., str]:
    """``topic_factory(prefix="t", partitions=1) -> name``: creates a uniquely named topic."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        create_topics(kafka_bootstrap, [name], partitions=partitions)
        return name

    return make


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[LocalKafka]:
    """A secured LocalKafka of this session (admin: ``secure_kafka.admin_security``)."""
    broker = _start_local_kafka(secure=True)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.workdir, ignore_errors=True)


@pytest.fixture
def secure_topic_factory(secure_kafka: LocalKafka) -> Callable[..., str]:
    """``secure_topic_factory(prefix="t", partitions=1) -> name``, created by the admin."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        create_topics(
            secure_kafka.bootstrap,
            [name],
            partitions=partitions,
            security=secure_kafka.admin_security,
        )
        return name

    return make
