"""Kafka source and exactly-once sink for PyFlink jobs.

Exactly-once end to end needs three things, and these builders set them:

* **Source offsets live in checkpoints.**  ``KafkaSource`` stores the offsets it
  read in each checkpoint and restarts from them after a failure; the offsets it
  commits to the consumer group are only for monitoring.  It reads with
  ``isolation.level=read_committed`` so an upstream exactly-once job's aborted
  or still-open transactions are never consumed.
* **The sink writes in transactions tied to checkpoints.**  ``KafkaSink`` with
  ``EXACTLY_ONCE`` opens a Kafka transaction per checkpoint interval and commits
  it only when that checkpoint completes.  So output appears with a delay of
  up to one checkpoint interval, checkpointing must be on (see
  :func:`streaming_agents.runtime.environment.local_env`), and a failure
  between checkpoints aborts the open transaction -- the replayed records are
  written again in a new one, never twice visibly.
* **Consumers of the output use ``read_committed``.**  A ``read_uncommitted``
  consumer (librdkafka's default is read_committed, the Java client's is not)
  sees aborted duplicates.

Both builders take ``security``, the project's one client-security setting
(:mod:`streaming_agents.connectors.security`): its Java properties hold
references (``${env:...}``, ``${file:...}``) that each Kafka client resolves
on the TaskManager/JobManager creating it, so the job graph never holds the
password; those machines need the variable or the file.

``transaction.timeout.ms`` must not exceed the broker's
``transaction.max.timeout.ms`` (15 min by default), and must be longer than
the longest expected outage: a transaction the broker times out before the
checkpoint's commit is lost data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from streaming_agents.connectors.security import KafkaSecurity, merge_properties
from streaming_agents.errors import ConfigError

if TYPE_CHECKING:
    from pyflink.datastream.connectors.kafka import KafkaSink, KafkaSource

__all__ = ["BROKER_MAX_TRANSACTION_TIMEOUT_MS", "exactly_once_sink", "kafka_source"]

BROKER_MAX_TRANSACTION_TIMEOUT_MS = 900_000
"""Kafka's default ``transaction.max.timeout.ms`` (15 min)."""

Starting = Literal["earliest", "latest", "committed"]


def kafka_source(
    bootstrap: str,
    topics: str | Sequence[str],
    group_id: str,
    *,
    starting: Starting | int = "earliest",
    value: Literal["string", "bytes"] = "string",
    bounded: bool = False,
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed",
    properties: dict[str, str] | None = None,
    security: KafkaSecurity | None = None,
) -> KafkaSource:
    """A ``KafkaSource`` of record values (``str`` or ``bytes``).

    Args:
        bootstrap: ``host:port[,host:port]``.
        topics: one topic or several.
        group_id: consumer group; offsets committed there on checkpoint
            completion are informational (recovery uses the checkpoint).
        starting: where a job *without* restored state starts: ``earliest``,
            ``latest``, ``committed`` (the group's offsets, else earliest), or a
            timestamp in epoch milliseconds.  A restored job ignores this.
        value: ``string`` (UTF-8) or ``bytes``.
        bounded: stop at the offsets that are latest when the job starts, so
            the job finishes (tests, backfills); the final checkpoint then
            commits the sink's last transaction.
        isolation_level: keep ``read_committed`` unless reading a topic no
            transactional producer writes and latency matters.
        properties: extra Kafka consumer properties.
        security: the client-security setting (SASL/TLS); its keys may not
            clash with ``properties``.
    """
    from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetResetStrategy,
        KafkaOffsetsInitializer,
        KafkaSource,
    )

    names = [topics] if isinstance(topics, str) else list(topics)
    if not names:
        raise ConfigError("kafka_source needs at least one topic")
    if isinstance(starting, int):
        start = KafkaOffsetsInitializer.timestamp(starting)
    elif starting == "earliest":
        start = KafkaOffsetsInitializer.earliest()
    elif starting == "latest":
        start = KafkaOffsetsInitializer.latest()
    elif starting == "committed":
        start = KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
    else:
        raise ConfigError(f"unknown starting position {starting!r}")
    schema = SimpleStringSchema() if value == "string" else ByteArraySchema()
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(bootstrap)
        .set_topics(*names)
        .set_group_id(group_id)
        .set_starting_offsets(start)
        .set_value_only_deserializer(schema)
        .set_property("isolation.level", isolation_level)
    )
    for key, val in merge_properties(security, properties).items():
        builder = builder.set_property(key, val)
    if bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def exactly_once_sink(
    bootstrap: str,
    topic: str,
    transactional_id_prefix: str,
    *,
    transaction_timeout_ms: int = 600_000,
    value: Literal["string", "bytes"] = "string",
    properties: dict[str, str] | None = None,
    security: KafkaSecurity | None = None,
) -> KafkaSink:
    """A ``KafkaSink`` writing values to ``topic`` with ``DeliveryGuarantee.EXACTLY_ONCE``.

    Records become visible to ``read_committed`` consumers when the checkpoint
    after them completes.  ``transactional_id_prefix`` must be unique per job
    (per topic-writing sink) on a cluster and stable across restarts of the
    same job: on recovery the sink uses it to find and commit or abort the
    transactions of the previous attempt; two jobs sharing a prefix fence each
    other.  ``transaction_timeout_ms`` must be at most the broker's
    ``transaction.max.timeout.ms`` (15 min) and longer than any outage to
    survive.  ``security`` is the client-security setting (as for
    :func:`kafka_source`); the principal needs WRITE on ``topic`` and
    WRITE/DESCRIBE on transactional ids prefixed ``transactional_id_prefix``.
    """
    from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
    from pyflink.datastream.connectors import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

    if not 0 < transaction_timeout_ms <= BROKER_MAX_TRANSACTION_TIMEOUT_MS:
        raise ConfigError(
            f"transaction_timeout_ms={transaction_timeout_ms} must be in "
            f"(0, {BROKER_MAX_TRANSACTION_TIMEOUT_MS}] (broker transaction.max.timeout.ms)"
        )
    if not transactional_id_prefix:
        raise ConfigError("exactly_once_sink needs a non-empty transactional_id_prefix")
    schema = SimpleStringSchema() if value == "string" else ByteArraySchema()
    serializer = (
        KafkaRecordSerializationSchema.builder()
        .set_topic(topic)
        .set_value_serialization_schema(schema)
        .build()
    )
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap)
        .set_record_serializer(serializer)
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .set_transactional_id_prefix(transactional_id_prefix)
        .set_property("transaction.timeout.ms", str(transaction_timeout_ms))
    )
    for key, val in merge_properties(security, properties).items():
        builder = builder.set_property(key, val)
    return builder.build()
