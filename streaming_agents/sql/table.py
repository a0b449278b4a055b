"""Agent tables: run an :class:`Agent` over the rows of a ``Table``, get a ``Table`` back.

Route: ``to_data_stream`` -> rows to JSON events -> ``key_by`` the key column
-> :func:`run_agent` (memory per key in keyed state, journal, exactly-once like
any agent operator) -> outputs and dead letters to rows of a derived type ->
``from_data_stream``.  The ``StreamTableEnvironment`` must have been created
from the ``StreamExecutionEnvironment`` the job runs on.

Columns of the result, in order:

* every input column (CHAR/VARCHAR come back as STRING);
* the output: with a pydantic ``output_schema`` and ``flatten_output`` its
  fields, each a column (nested models are ROWs, lists ARRAYs, ...);
  otherwise one ``response`` STRING (the text, or the output as JSON);
* ``agent_status`` (``OK`` or ``FAILED``), ``agent_error`` (why it failed:
  the dead-letter reason and error) and ``agent_turn`` (the key's turn count
  after this row; NULL when failed).

A row the agent cannot answer is not lost: it comes out with status
``FAILED``, NULL outputs and the input columns, so it can be filtered,
counted or routed like any other row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from streaming_agents.agent import Agent
from streaming_agents.errors import ConfigError
from streaming_agents.journal.factory import JournalSetting
from streaming_agents.sql.tally import Tally
from streaming_agents.sql.typemap import from_data_type, from_pydantic
from streaming_agents.sql.types import SqlType

__all__ = [
    "ERROR_COLUMN",
    "RESPONSE_COLUMN",
    "STATUS_COLUMN",
    "TURN_COLUMN",
    "agent_table",
    "agent_table_type",
]

STATUS_COLUMN = "agent_status"
ERROR_COLUMN = "agent_error"
TURN_COLUMN = "agent_turn"
RESPONSE_COLUMN = "response"
_META = (
    (STATUS_COLUMN, SqlType("STRING")),
    (ERROR_COLUMN, SqlType("STRING")),
    (TURN_COLUMN, SqlType("INT")),
)


def agent_table_type(
    input_type: SqlType, agent: Agent[Any], *, flatten_output: bool = True, output_prefix: str = ""
) -> SqlType:
    """The ROW type of ``agent_table``'s result for an input of ``input_type``."""
    if agent.output_schema is not None and flatten_output:
        produced = from_pydantic(agent.output_schema).fields
        outputs = tuple((output_prefix + n, t.with_nullable(True)) for n, t in produced)
    else:
        outputs = ((output_prefix + RESPONSE_COLUMN, SqlType("STRING")),)
    fields = (*input_type.fields, *outputs, *_META)
    seen: set[str] = set()
    for name, _ in fields:
        if name.lower() in seen:
            raise ConfigError(
                f"agent table of {agent.name!r}: column {name!r} is both an input column and "
                "an output column; rename the input column or pass output_prefix="
            )
        seen.add(name.lower())
    return SqlType("ROW", fields=fields)


def agent_table(
    t_env: Any,
    table: Any,
    agent: Agent[Any],
    *,
    key: str | None,
    capacity: int = 100,
    journal: JournalSetting = None,
    uid: str | None = None,
    flatten_output: bool = True,
    output_prefix: str = "",
    tally: Tally | None = None,
) -> Any:
    """Run ``agent`` on every row of ``table``, keyed (and remembering) by column ``key``.

    ``key=None`` keys rows by their whole content (for agents without
    memory).  ``t_env`` is the ``StreamTableEnvironment`` of ``table``.
    Returns a ``Table`` (columns: see the module doc) to join, filter or
    insert into any sink; an exactly-once Kafka sink table commits it with
    the checkpoint that covers the agent's state.  ``tally`` (the SQL
    runner's): where each row is counted as OK or FAILED.
    """
    from pyflink.common import Types
    from pyflink.table import Schema

    from streaming_agents.runtime.api import dead_letters, run_agent

    schema = table.get_resolved_schema()
    names = list(schema.get_column_names())
    if key is not None and key not in names:
        raise ConfigError(f"agent table of {agent.name!r}: no key column {key!r} in {names}")
    input_type = SqlType(
        "ROW",
        fields=tuple(
            (name, from_data_type(data_type, f"column {name!r}"))
            for name, data_type in zip(names, schema.get_column_data_types(), strict=True)
        ),
    )
    for name, column_type in input_type.fields:
        if any(_holds_instant(child) for child in _children(column_type)):
            raise ConfigError(
                f"agent table of {agent.name!r}: column {name!r} ({column_type.sql()}) holds a "
                "TIMESTAMP_LTZ inside a ROW/ARRAY/MAP, which PyFlink's thread mode cannot carry "
                "through the agent; CAST that field to TIMESTAMP(3) or BIGINT first (top-level "
                "TIMESTAMP_LTZ columns are fine)"
            )
    out_type = agent_table_type(
        input_type, agent, flatten_output=flatten_output, output_prefix=output_prefix
    )
    schema_model = agent.output_schema if flatten_output else None
    output_names = list(from_pydantic(schema_model).names) if schema_model else None
    decoder = RowDecoder(input_type, out_type, output_names, tally)
    events = t_env.to_data_stream(table).map(RowEncoder(input_type), output_type=Types.STRING())
    keyed = events.key_by(KeyOf(key), key_type=Types.STRING())
    replies = run_agent(keyed, agent, capacity=capacity, journal=journal, uid=uid)
    transport = decoder.transport
    row_info = transport.type_info()
    rows = replies.flat_map(decoder.outputs, output_type=row_info).union(
        dead_letters(replies).flat_map(decoder.failures, output_type=row_info)
    )
    builder = Schema.new_builder()
    for name, sql_type in transport.fields:
        builder = builder.column(name, sql_type.with_nullable(True).data_type())
    result = t_env.from_data_stream(rows, builder.build())
    if not decoder.instants:
        return result
    return result.select(*_restore_instants(out_type, decoder.instants))


def _children(sql_type: SqlType) -> list[SqlType]:
    return [
        *(t for _, t in sql_type.fields),
        *(t for t in (sql_type.element, sql_type.key) if t is not None),
    ]


def _holds_instant(sql_type: SqlType) -> bool:
    """Whether ``sql_type`` is or contains a TIMESTAMP_LTZ."""
    return sql_type.kind == "TIMESTAMP_LTZ" or any(_holds_instant(c) for c in _children(sql_type))


def _restore_instants(out_type: SqlType, instants: frozenset[int]) -> list[Any]:
    """Column expressions turning the epoch-millisecond columns back into TIMESTAMP_LTZ."""
    from pyflink.table.expressions import col, to_timestamp_ltz

    columns = []
    for n, (name, sql_type) in enumerate(out_type.fields):
        if n in instants:
            ltz = sql_type.with_nullable(True).data_type()
            columns.append(to_timestamp_ltz(col(name), 3).cast(ltz).alias(name))
        else:
            columns.append(col(name))
    return columns


def _null_safe_embedded_arrays() -> None:
    """PyFlink 2.3 thread mode: a NULL ARRAY crashes ``ArrayDataConverter`` (``tuple(None)``).

    Patched when this module is imported -- in the worker that happens while
    the encoder/decoder below are unpickled, before the first record.
    """
    try:
        from pyflink.fn_execution.embedded import converters
    except ImportError:  # pragma: no cover - PyFlink without the embedded runtime
        return
    cls = converters.ArrayDataConverter
    if getattr(cls, "_sa_null_safe", False):
        return
    to_internal, to_external = cls.to_internal, cls.to_external
    cls.to_internal = lambda self, v: None if v is None else to_internal(self, v)
    cls.to_external = lambda self, v: None if v is None else to_external(self, v)
    cls._sa_null_safe = True


_null_safe_embedded_arrays()


class RowEncoder:
    """Row -> JSON event (values made JSON-compatible by their column types)."""

    def __init__(self, input_type: SqlType) -> None:
        self.input_type = input_type

    def __call__(self, row: Any) -> str:
        return json.dumps(self.input_type.to_json(row), sort_keys=True, default=str)


class KeyOf:
    """The key column of an event as a string (the whole event without a key column)."""

    def __init__(self, column: str | None) -> None:
        self.column = column

    def __call__(self, event_json: str) -> str:
        if self.column is None:
            return event_json
        value = json.loads(event_json).get(self.column)
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class RowDecoder:
    """Agent outputs and dead letters -> rows of the agent table's type."""

    def __init__(
        self,
        input_type: SqlType,
        out_type: SqlType,
        output_names: list[str] | None,
        tally: Tally | None = None,
    ) -> None:
        self.tally = tally
        self.input_type = input_type
        self.out_type = out_type
        self.output_names = output_names
        self.n_outputs = len(out_type.fields) - len(input_type.fields) - len(_META)
        # PyFlink's thread mode cannot hand a Python value to Java as java.time.Instant
        # (ClassCastException: PyObject cannot be cast to Instant): top-level TIMESTAMP_LTZ
        # columns travel as epoch milliseconds (BIGINT) and are converted back in the Table.
        self.instants = frozenset(
            n for n, (_, t) in enumerate(out_type.fields) if t.kind == "TIMESTAMP_LTZ"
        )
        self.transport = SqlType(
            "ROW",
            fields=tuple(
                (name, SqlType("BIGINT") if n in self.instants else t)
                for n, (name, t) in enumerate(out_type.fields)
            ),
        )

    def _row(self, event: Any, produced: list[Any], status: str, error: Any, turn: Any) -> Any:
        from pyflink.common import Row

        event = event if isinstance(event, dict) else {}
        values: list[Any] = []
        for name, sql_type in self.input_type.fields:
            try:
                values.append(sql_type.from_json(event.get(name)))
            except (TypeError, ValueError, AttributeError):
                values.append(None)
        values.extend([*produced, status, error, turn])
        for n in self.instants:
            if values[n] is not None:
                values[n] = values[n].to_epoch_milli()
        if self.tally is not None and status == "OK":
            self.tally.ok()
        elif self.tally is not None:
            self.tally.failed(str(error))
        return Row(**dict(zip(self.out_type.names, values, strict=True)))

    def outputs(self, line: str) -> Iterator[Any]:
        record = json.loads(line)
        event, output = record.get("input"), record.get("output")
        out_fields = self.out_type.fields[len(self.input_type.fields) :][: self.n_outputs]
        try:
            if self.output_names is not None:
                if not isinstance(output, dict):
                    raise TypeError(f"expected an object, got {output!r}")
                produced = [
                    t.with_nullable(True).from_json(output.get(n))
                    for n, (_, t) in zip(self.output_names, out_fields, strict=True)
                ]
            else:
                text = output if isinstance(output, str) else json.dumps(output, sort_keys=True)
                produced = [text]
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            error = f"output does not fit the table type: {type(exc).__name__}: {exc}"
            yield self._row(event, [None] * self.n_outputs, "FAILED", error, None)
            return
        yield self._row(event, produced, "OK", None, record.get("turn"))

    def failures(self, line: str) -> Iterator[Any]:
        record = json.loads(line)
        payload = record.get("payload")
        if record.get("reason") == "unusable llm reply" and isinstance(payload, dict):
            payload = payload.get("event")
        error = ": ".join(str(p) for p in (record.get("reason"), record.get("error")) if p)
        yield self._row(payload, [None] * self.n_outputs, "FAILED", error, None)
