"""Is a Kafka broker there? One clear error instead of librdkafka's retry log.

A librdkafka client pointed at a wrong address logs every failed connection
attempt to stderr (``%3|...|FAIL|... Connection refused``, hundreds of lines over
its retry period), and the caller then sees a timeout traceback.  Here every
client gets a silent logger, and failures become one
:class:`~streaming_agents.errors.InfrastructureError`:

* :func:`check_broker` -- ask for the cluster metadata once, within a deadline;
* :func:`kafka_errors` -- ``with kafka_errors(bootstrap): ...`` maps the
  ``confluent_kafka`` exceptions raised inside to one line naming the broker
  (the style of httpx's ``map_exceptions``).

Nothing here imports PyFlink.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streaming_agents.errors import InfrastructureError

__all__ = ["check_broker", "kafka_errors", "quiet_logger"]


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
