"""Kafka records with their coordinates, for dead letters that point at the source.

``KafkaSource`` in PyFlink hands over values only.  The Table API's Kafka
connector exposes topic, partition, offset and timestamp as metadata
columns, and the ``raw`` format passes bytes through untouched, so a
malformed or non-UTF-8 record reaches the agent operator (and its dead-letter
output) byte for byte instead of failing the source.  Offsets are part of
the source's checkpointed state, exactly as with ``KafkaSource``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pyflink.datastream import DataStream, StreamExecutionEnvironment

from streaming_agents.errors import ConfigError

__all__ = ["MALFORMED_KEY", "json_key", "kafka_records"]

MALFORMED_KEY = "__malformed__"

_counter = 0


def kafka_records(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    topic: str,
    group_id: str,
    *,
    starting: str = "earliest-offset",
    bounded: bool = False,
    properties: dict[str, str] | None = None,
) -> DataStream:
    """A stream of ``Row(value: bytes, topic, partition, offset, ts: datetime)``.

    ``starting`` is the SQL connector's ``scan.startup.mode`` (``earliest-offset``,
    ``latest-offset``, ``group-offsets``); ``bounded`` stops at the offsets that
    are latest when the job starts.  Reads ``read_committed``.
    """
    from pyflink.table import StreamTableEnvironment

    global _counter
    if not topic:
        raise ConfigError("kafka_records needs a topic")
    _counter += 1
    table_name = f"sa_kafka_records_{_counter}"
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": bootstrap,
        "properties.group.id": group_id,
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": starting,
        "format": "raw",
    }
    if bounded:
        options["scan.bounded.mode"] = "latest-offset"
    for key, value in (properties or {}).items():
        options[f"properties.{key}"] = value
    with_clause = ", ".join(f"'{k}' = '{v}'" for k, v in options.items())
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


def json_key(field: str) -> Callable[[Any], str]:
    """Key selector for ``kafka_records`` rows: the JSON field, or ``MALFORMED_KEY``.

    Malformed records get one key of their own so they still reach the agent
    operator, which sends them to the dead-letter output with their bytes.
    """

    def select(row: Any) -> str:
        try:
            event = json.loads(bytes(row[0]).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return MALFORMED_KEY
        if not isinstance(event, dict) or field not in event:
            return MALFORMED_KEY
        return str(event[field])

    return select
