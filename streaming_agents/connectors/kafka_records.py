"""Kafka records with their coordinates, for dead letters that point at the source.

``KafkaSource`` in PyFlink hands over values only.  The Table API's Kafka
connector exposes topic, partition, offset and timestamp as metadata
columns, and the ``raw`` format passes bytes through untouched, so a
malformed or non-UTF-8 record reaches the agent operator (and its dead-letter
output) byte for byte instead of failing the source.  Offsets are part of
the source's checkpointed state, exactly as with ``KafkaSource``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyflink.datastream import DataStream, StreamExecutionEnvironment

from streaming_agents.connectors.security import KafkaSecurity, sql_string, table_options
from streaming_agents.errors import ConfigError
from streaming_agents.runtime.keys import MALFORMED_KEY, json_key

__all__ = ["MALFORMED_KEY", "json_key", "kafka_records"]

_counter = 0


def _offsets(spec: Mapping[int, int]) -> str:
    return ";".join(f"partition:{p},offset:{o}" for p, o in sorted(spec.items()))


def kafka_records(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    topic: str | Sequence[str],
    group_id: str,
    *,
    starting: str | int | Mapping[int, int] = "earliest-offset",
    bounded: bool | int | Mapping[int, int] = False,
    properties: Mapping[str, str] | None = None,
    security: KafkaSecurity | None = None,
) -> DataStream:
    """A stream of ``Row(value: bytes, topic, partition, offset, ts: datetime)``.

    ``value`` is ``None`` for a tombstone.  ``topic`` is one topic or several.
    ``starting``: the SQL connector's ``scan.startup.mode`` (``earliest-offset``,
    ``latest-offset``, ``group-offsets``), a timestamp in epoch milliseconds,
    or ``{partition: offset}`` (single topic).  ``bounded``: ``True`` stops at
    the offsets that are latest when the job starts; a timestamp or
    ``{partition: end offset}`` stops there; ``False`` reads on forever.
    Reads ``read_committed``.  ``properties`` are extra consumer properties
    and ``security`` the client-security setting
    (:mod:`streaming_agents.connectors.security`: its secrets stay
    references resolved on the workers).  Every option value is quoted with
    :func:`~streaming_agents.connectors.security.sql_string`.
    """
    from pyflink.table import StreamTableEnvironment

    global _counter
    topics = [topic] if isinstance(topic, str) else list(topic)
    if not topics or not all(topics):
        raise ConfigError("kafka_records needs a topic")
    _counter += 1
    table_name = f"sa_kafka_records_{_counter}"
    options = {
        "connector": "kafka",
        "topic": ";".join(topics),
        "properties.bootstrap.servers": bootstrap,
        "properties.group.id": group_id,
        "properties.isolation.level": "read_committed",
        "format": "raw",
        **_startup(starting),
        **_bounds(bounded),
        **table_options(security, properties),
    }
    with_clause = ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in options.items())
    t_env = StreamTableEnvironment.create(env)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE {table_name} ("
        " `value` BYTES,"
        " `topic` STRING METADATA VIRTUAL,"
        " `partition` INT METADATA VIRTUAL,"
        " `offset` BIGINT METADATA VIRTUAL,"
        " `ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL"
        f") WITH ({with_clause})"
    )
    table = t_env.sql_query(
        f"SELECT `value`, `topic`, `partition`, `offset`, `ts` FROM {table_name}"
    )
    return t_env.to_data_stream(table)


def _startup(starting: str | int | Mapping[int, int]) -> dict[str, str]:
    if isinstance(starting, Mapping):
        return {
            "scan.startup.mode": "specific-offsets",
            "scan.startup.specific-offsets": _offsets(starting),
        }
    if isinstance(starting, int):
        return {"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": str(starting)}
    return {"scan.startup.mode": starting}


def _bounds(bounded: bool | int | Mapping[int, int]) -> dict[str, str]:
    if isinstance(bounded, Mapping):
        return {
            "scan.bounded.mode": "specific-offsets",
            "scan.bounded.specific-offsets": _offsets(bounded),
        }
    if bounded is True:
        return {"scan.bounded.mode": "latest-offset"}
    if bounded is False:
        return {}
    return {"scan.bounded.mode": "timestamp", "scan.bounded.timestamp-millis": str(bounded)}
