"""Is a Kafka broker there? One clear error instead of librdkafka's retry log.

A librdkafka client pointed at a wrong address logs every failed connection
attempt to stderr (``%3|...|FAIL|... Connection refused``, hundreds of lines over
its retry period), and the caller then sees a timeout traceback.  Here every
client gets a silent logger, and failures become one
:class:`~streaming_agents.errors.InfrastructureError`:

* :func:`check_broker` -- ask for the cluster metadata once, within a deadline;
* :func:`kafka_errors` -- ``with kafka_errors(bootstrap): ...`` maps the
  ``confluent_kafka`` exceptions raised inside to one line naming the broker
  (the style of httpx's ``map_exceptions``);
* :func:`ensure_topics` -- create topics unless they exist (with a config set at
  creation), then wait until every partition has a leader.  The one home for
  topic creation: the journal, replay/shadow and the test broker call it.

Nothing here imports PyFlink.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from streaming_agents.errors import InfrastructureError

__all__ = ["check_broker", "ensure_topics", "kafka_errors", "quiet_logger"]


def quiet_logger() -> logging.Logger:
    """A logger for librdkafka clients that drops their connection-retry noise."""
    logger = logging.getLogger("streaming_agents.rdkafka")
    logger.setLevel(logging.CRITICAL)
    logger.propagate = False
    return logger


@contextmanager
def kafka_errors(bootstrap: str) -> Iterator[None]:
    """Re-raise ``confluent_kafka`` failures inside as one-line InfrastructureErrors."""
    from confluent_kafka import KafkaException

    try:
        yield
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        reason = getattr(error, "str", lambda: str(error))()
        raise InfrastructureError(f"Kafka at {bootstrap}: {reason}") from exc


def check_broker(bootstrap: str, timeout_s: float = 10.0, **config: Any) -> None:
    """Raise one InfrastructureError unless a broker at ``bootstrap`` answers within ``timeout_s``.

    ``config``: extra client settings (security), as for any confluent_kafka client.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    settings: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": quiet_logger()}
    admin = AdminClient({**settings, **config})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        reason = getattr(error, "str", lambda: str(error))()
        raise InfrastructureError(
            f"no Kafka broker answers at {bootstrap} within {timeout_s:g} s ({reason}); "
            "check --bootstrap (or $STREAMING_AGENTS_KAFKA_BOOTSTRAP)"
        ) from exc
    if not metadata.brokers:
        raise InfrastructureError(f"the Kafka cluster at {bootstrap} lists no brokers")


def ensure_topics(
    client: Mapping[str, Any],
    names: Iterable[str],
    partitions: int = 1,
    *,
    config: Mapping[str, str] | None = None,
    replication: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing topics among ``names``; return the ones created here.

    ``client``: librdkafka settings, ``bootstrap.servers`` and security included.
    ``config``: topic settings applied at creation (an existing topic keeps its
    own).  ``replication``: default min(3, brokers), with ``min.insync.replicas``
    2 when it is 3.  Returns once every partition of every topic has a leader, so
    a producer that starts next does not see "unknown topic".  Raises one
    :class:`InfrastructureError` on a refusal (ACLs) or a timeout.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    wanted = list(dict.fromkeys(names))
    settings_client: dict[str, Any] = {"logger": quiet_logger(), **client}
    admin = AdminClient(settings_client)
    with kafka_errors(str(client.get("bootstrap.servers", "?"))):
        meta = admin.list_topics(timeout=timeout_s)
    missing = [n for n in wanted if n not in meta.topics or meta.topics[n].error is not None]
    copies = replication or min(3, max(1, len(meta.brokers)))
    settings = dict(config or {})
    if copies >= 3:
        settings.setdefault("min.insync.replicas", "2")
    created: list[str] = []
    if missing:
        news = [NewTopic(n, partitions, copies, config=settings) for n in missing]
        for name, future in admin.create_topics(news, operation_timeout=timeout_s).items():
            try:
                future.result(timeout_s)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise InfrastructureError(f"cannot create topic {name}: {exc}") from exc
    _await_leaders(admin, wanted, timeout_s)
    return created


def _await_leaders(admin: Any, names: list[str], timeout_s: float) -> None:
    """Return once every partition of ``names`` has a leader in the metadata clients see."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=min(5.0, timeout_s)).topics
        if all(_has_leaders(topics.get(n)) for n in names):
            return
        if time.monotonic() >= deadline:
            raise InfrastructureError(f"topics {names} have no leader after {timeout_s:g} s")
        time.sleep(0.1)  # metadata propagation has no notification to wait on


def _has_leaders(meta: Any) -> bool:
    return bool(
        meta is not None
        and meta.error is None
        and meta.partitions
        and all(p.leader >= 0 for p in meta.partitions.values())
    )
