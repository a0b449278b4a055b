"""Agent tables: run an :class:`Agent` over the rows of a ``Table``, get a ``Table`` back.

Route: ``to_data_stream`` -> rows to JSON events -> the pipeline builder
(:class:`~streaming_agents.pipeline.AgentPipeline`: each event decoded once,
keyed by the key column, then :func:`run_agent` -- memory per key in keyed
state, journal, exactly-once like any agent operator) -> outputs and dead
letters to rows of a derived type -> ``from_data_stream``.  The
``StreamTableEnvironment`` must have been created from the
``StreamExecutionEnvironment`` the job runs on.

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
counted or routed like any other row.  So does a row without a usable key
(NULL, an empty string, longer than ``Limits.max_key_chars``): it never
reaches the agent, so rows without a key share no conversation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from streaming_agents.agent import Agent
from streaming_agents.errors import ConfigError
from streaming_agents.journal.factory import JournalSetting
from streaming_agents.runtime.events import Limits
from streaming_agents.runtime.keys import key_problem
from streaming_agents.sql.agents import KEY_FIELD
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
# Column types whose values are JSON strings or integers: usable keys (RowEncoder).
_KEY_KINDS = frozenset(
    ("STRING", "TINYINT", "SMALLINT", "INT", "BIGINT", "DECIMAL", "DATE", "TIME", "TIMESTAMP",
     "TIMESTAMP_LTZ", "BYTES")
)  # fmt: skip
# How agent_error names the key of an AI_RUN_AGENT view (its key column is internal).
_SQL_KEY_LABEL = "the memory key (else the request id, else the prompt)"


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

    ``key`` is a column name without dots (a dot would read as a path into
    a ROW) of a string, integer, DECIMAL, time or BYTES type.  A row whose
    key is NULL, empty or over ``Limits.max_key_chars`` characters comes out
    ``FAILED`` (it never reaches the agent).  ``key=None`` keys rows by their
    whole content (for agents without memory).  ``t_env`` is the
    ``StreamTableEnvironment`` of ``table``; ``uid`` the agent operator's
    (default ``agent-<name>``; two agent tables of one agent in one job need
    different ones).  Returns a ``Table`` (columns: see the module doc) to
    join, filter or insert into any sink; an exactly-once Kafka sink table
    commits it with the checkpoint that covers the agent's state.  ``tally``
    (the SQL runner's): where each row is counted as OK or FAILED.
    """
    from pyflink.common import Types
    from pyflink.table import Schema

    from streaming_agents.pipeline import AgentPipeline
    from streaming_agents.sql.counted import CountedStep

    input_type = _input_type(table, agent, key)
    out_type = agent_table_type(
        input_type, agent, flatten_output=flatten_output, output_prefix=output_prefix
    )
    schema_model = agent.output_schema if flatten_output else None
    output_names = list(from_pydantic(schema_model).names) if schema_model else None
    decoder = RowDecoder(input_type, out_type, output_names, tally, key=key)
    events = t_env.to_data_stream(table).map(RowEncoder(input_type), output_type=Types.STRING())
    pipeline = AgentPipeline.from_datastream(events, name=f"sql:{uid or agent.name}")
    pipeline = pipeline.key_by(key) if key is not None else pipeline.key_by_content()
    replies = pipeline.apply(agent, capacity=capacity, journal=journal, uid=uid)
    transport = decoder.transport
    row_info = transport.type_info()
    # wrapped so that the job's end closes the tally (the counts reach the runner)
    rows = replies.outputs.flat_map(
        CountedStep(decoder.outputs, tally), output_type=row_info
    ).union(
        replies.dead_letters.flat_map(CountedStep(decoder.failures, tally), output_type=row_info)
    )
    builder = Schema.new_builder()
    for name, sql_type in transport.fields:
        builder = builder.column(name, sql_type.with_nullable(True).data_type())
    result = t_env.from_data_stream(rows, builder.build())
    if not decoder.instants:
        return result
    return result.select(*_restore_instants(out_type, decoder.instants))


def _input_type(table: Any, agent: Agent[Any], key: str | None) -> SqlType:
    """The ROW type of ``table``'s rows; refuses a key or a column the agent table cannot use."""
    schema = table.get_resolved_schema()
    names = list(schema.get_column_names())
    where = f"agent table of {agent.name!r}"
    if key is not None and key not in names:
        raise ConfigError(f"{where}: no key column {key!r} in {names}")
    if key is not None and "." in key:
        raise ConfigError(
            f"{where}: key column {key!r} has a dot in its name, which would read as a path "
            f"into a ROW; rename it first (SELECT `{key}` AS {key.replace('.', '_')}, ...)"
        )
    input_type = SqlType(
        "ROW",
        fields=tuple(
            (name, from_data_type(data_type, f"column {name!r}"))
            for name, data_type in zip(names, schema.get_column_data_types(), strict=True)
        ),
    )
    for name, column_type in input_type.fields:
        if name == key and column_type.kind not in _KEY_KINDS:
            raise ConfigError(
                f"{where}: key column {name!r} is {column_type.sql()}; a key is a string or an "
                f"integer: CAST it to STRING first"
            )
        if any(_holds_instant(child) for child in _children(column_type)):
            raise ConfigError(
                f"{where}: column {name!r} ({column_type.sql()}) holds a "
                "TIMESTAMP_LTZ inside a ROW/ARRAY/MAP, which PyFlink's thread mode cannot carry "
                "through the agent; CAST that field to TIMESTAMP(3) or BIGINT first (top-level "
                "TIMESTAMP_LTZ columns are fine)"
            )
    return input_type


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


class RowDecoder:
    """Agent outputs and dead letters -> rows of the agent table's type."""

    def __init__(
        self,
        input_type: SqlType,
        out_type: SqlType,
        output_names: list[str] | None,
        tally: Tally | None = None,
        *,
        key: str | None = None,
    ) -> None:
        self.tally = tally
        self.key = key
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
        reason = record.get("reason")
        if reason == "unusable llm reply" and isinstance(payload, dict):
            payload = payload.get("event")
        event = payload if isinstance(payload, dict) else _input_of(record)
        detail = record.get("error")
        if reason == "no key" and self.key is not None and event is not None:
            detail = self._no_key(event.get(self.key)) or detail
        error = ": ".join(str(p) for p in (reason, detail) if p)
        yield self._row(event, [None] * self.n_outputs, "FAILED", error, None)

    def _no_key(self, value: Any) -> str | None:
        """Why the key column's ``value`` is no key (None when it looks usable)."""
        label = _SQL_KEY_LABEL if self.key == KEY_FIELD else f"the key column {self.key!r}"
        problem = key_problem(value, Limits().max_key_chars)
        if problem is None:
            return None
        return f"{label} {problem} (a row without a key is not given to the agent)"


def _input_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The input row of a dead letter whose payload is no longer an object.

    A dead letter over its size limit carries a text preview instead of the
    event (and maybe the event's bytes in ``original_b64``): the row is
    recovered from whichever of them is still a whole JSON object.
    """
    for text in (_text_of(record.get("original_b64")), record.get("payload")):
        if not isinstance(text, str):
            continue
        try:
            value = json.loads(text)  # the encoder's own JSON (NaN included), bounded in size
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _text_of(b64: Any) -> str | None:
    """The UTF-8 text a base64 field holds, or None."""
    if not isinstance(b64, str):
        return None
    try:
        return base64.b64decode(b64).decode("utf-8")
    except ValueError:  # bad base64 (binascii.Error) or not UTF-8
        return None
