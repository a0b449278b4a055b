"""Write the agent operator's audit records to Kafka, trace id in the headers.

PyFlink's ``KafkaSink`` cannot set record headers, the Table API's Kafka
connector can (the ``headers`` metadata column), so the audit stream goes
through a Table sink attached to the same job.  Delivery is exactly-once:
records become visible to ``read_committed`` consumers with the checkpoint,
like the agent's outputs.

Every value of the table's ``WITH (...)`` clause is quoted with
:func:`~streaming_agents.connectors.security.sql_string`; ``security`` adds
the client-security setting as ``properties.*`` options whose secrets stay
``${env:...}``/``${file:...}`` references, resolved by the Kafka client on the
TaskManager (never the password in the SQL text or the job graph).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pyflink.datastream import DataStream, StreamExecutionEnvironment

from streaming_agents.connectors.security import KafkaSecurity, sql_string, table_options

__all__ = ["audit_sink"]

_counter = 0


def _to_row(line: str) -> Any:
    from pyflink.common import Row

    record = json.loads(line)
    headers = {
        "trace_id": str(record.get("trace_id", "")).encode(),
        "agent": f"{record.get('agent', '')}@{record.get('version', '')}".encode(),
        "kind": str(record.get("kind", "")).encode(),
    }
    return Row(line.encode(), headers)


def audit_sink(
    env: StreamExecutionEnvironment,
    audit: DataStream,
    bootstrap: str,
    topic: str,
    transactional_id_prefix: str,
    *,
    properties: Mapping[str, str] | None = None,
    security: KafkaSecurity | None = None,
) -> None:
    """Attach an exactly-once Kafka sink for ``audit`` (from ``audit_log``) to the job.

    ``properties`` are extra Kafka producer properties, ``security`` the
    client-security setting (their keys may not clash).
    """
    from pyflink.common import Types
    from pyflink.table import StreamTableEnvironment

    global _counter
    _counter += 1
    name = f"sa_audit_sink_{_counter}"
    row_type = Types.ROW_NAMED(
        ["value", "headers"],
        [
            Types.PRIMITIVE_ARRAY(Types.BYTE()),
            Types.MAP(Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())),
        ],
    )
    rows = audit.map(_to_row, output_type=row_type)
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": bootstrap,
        "format": "raw",
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": transactional_id_prefix,
        "properties.transaction.timeout.ms": "600000",
        **table_options(security, properties),
    }
    with_clause = ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in options.items())
    t_env = StreamTableEnvironment.create(env)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE {name} (`value` BYTES, `headers` MAP<STRING, BYTES> METADATA)"
        f" WITH ({with_clause})"
    )
    statements = t_env.create_statement_set()
    statements.add_insert(name, t_env.from_data_stream(rows))
    statements.attach_as_datastream()
