"""Kafka source tables in SQL scripts: read as bytes, decoded safely, bad records dead-lettered.

Flink's JSON format fails the job on a record it cannot parse (or, with
``json.ignore-parse-errors``, drops it silently) and its ``raw`` format
repairs invalid bytes of a ``STRING`` column to U+FFFD.  The SQL runner
therefore never lets the JVM decode such a Kafka *source*.  For

``CREATE TABLE t (cols) WITH ('connector' = 'kafka', ..., 'format' = 'json')``

-- or ``'value.format' = 'json'`` with a ``json``/``raw`` key
(``'key.format'``, ``'key.fields'``), or ``'format' = 'raw'`` with a
``STRING`` column; :mod:`streaming_agents.sql.recordlayout` plans which
bytes fill which column -- it creates, instead of ``t``:

* ``sa_raw_..._t``: the same options with ``raw`` formats -- each record's
  value (and key, in a hidden ``sa_key`` column) as bytes with its
  topic/partition/offset/timestamp (and the table's other metadata columns);
  offsets are in Flink's checkpoints as usual;
* a Python step (:class:`~streaming_agents.sql.jsonrows.DecodeRecords`,
  through the DataStream API) turning each record into a typed row or a dead
  letter, registered as ``sa_decoded_..._t`` (computed columns and the
  ``WATERMARK`` are declared there);
* the view ``t``: the declared columns of the good rows, so queries read
  ``t`` as before;
* ``sa_sink_..._t``: the table as written, used when a statement INSERTs
  INTO ``t`` (writing is safe);
* ``sa_dlq_..._t``: the dead-letter sink, topic ``'dead-letter.topic'``
  (default ``<topic>.dead-letters``), written exactly-once (Kafka
  transactions committed with each checkpoint) with the transactional id
  prefix ``'dead-letter.transactional-id-prefix'`` (default
  ``sa-dlq-<table>``) plus ``-s<statement number>``.

Every job that reads ``t`` also writes ``t``'s dead letters: an INSERT or
statement set gets one more INSERT into the dead-letter sink (same job, the
source is read once); a ``SELECT`` or CTAS gets a companion job that writes
them.  Other options: ``'input.max-event-bytes'``, ``'input.max-depth'``
(:class:`~streaming_agents.runtime.events.Limits`), and Flink's
``'json.fail-on-missing-field'`` (``'value.json.'``/``'key.json.'``).
A qualified name (``db.t``) is kept for the view (a temporary view may live
in a database that does not exist); ``upsert-kafka``, other formats and
``LIKE`` are left to Flink (:func:`plan_json_source` gives the reason the
runner warns with).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streaming_agents.connectors.security import sql_string
from streaming_agents.runtime.events import Limits
from streaming_agents.sql.jsonrows import (
    COORDINATES,
    DEAD_COLUMN,
    DeadLetters,
    DecodeRecords,
    GoodRows,
    PackRows,
)
from streaming_agents.sql.lexer import (
    SqlScriptError,
    Statement,
    Token,
    dotted_name,
    ident_value,
)
from streaming_agents.sql.recordlayout import (
    KEY_COLUMN,
    RecordLayout,
    is_format_option,
    plan_layout,
)
from streaming_agents.sql.tally import Tally
from streaming_agents.sql.typeparse import parse_type
from streaming_agents.sql.types import SqlType

__all__ = ["JsonSource", "plan_json_source", "quote"]

_OURS = (
    "dead-letter.topic",
    "dead-letter.transactional-id-prefix",
    "input.max-event-bytes",
    "input.max-depth",
)
_COORDINATE_KEYS = ("topic", "partition", "offset", "timestamp")
_TYPE_OPENERS = ("ARRAY", "MAP", "ROW", "MULTISET")
_STRING = SqlType("STRING")
_CONSUMER_ONLY = ("properties.group.id", "properties.isolation.level")


def quote(name: str) -> str:
    """``name`` as a backquoted identifier."""
    return "`" + name.replace("`", "``") + "`"


@dataclass
class JsonSource:
    """One rewritten Kafka JSON table and the names of what stands in for it."""

    name: str
    options: dict[str, str]
    physical: list[tuple[str, SqlType]]
    metadata: list[tuple[str, SqlType, str]]  # name, type, metadata key
    computed: list[tuple[str, str]]  # name, expression
    order: list[str]  # declared column names, in order
    watermark: tuple[str, str] | None
    name_token: Token
    layout: RecordLayout
    path: tuple[str, ...] = ()  # the name's parts ('db', 't') when it is qualified
    name_last: Token | None = None  # the name's last token, when it is qualified
    token: str = ""
    builds: int = 0

    @property
    def view_path(self) -> str:
        """The view's name as Flink parses it (each part quoted when qualified)."""
        return ".".join(quote(p) for p in self.path) if len(self.path) > 1 else self.name

    def _hidden(self, what: str) -> str:
        return re.sub(r"\W", "_", f"sa_{what}_{self.token}_{self.name}")

    @property
    def raw_table(self) -> str:
        return self._hidden("raw")

    @property
    def decoded_view(self) -> str:
        """The good rows of the latest build (each reading statement gets its own)."""
        return self._hidden(f"decoded{self.builds}")

    @property
    def dead_view(self) -> str:
        """The dead letters of the latest build."""
        return self._hidden(f"dead{self.builds}")

    @property
    def sink_table(self) -> str:
        return self._hidden("sink")

    @property
    def dlq_table(self) -> str:
        return self._hidden("dlq")

    @property
    def dlq_topic(self) -> str:
        return self.options["dead-letter.topic"]

    @property
    def limits(self) -> Limits:
        defaults = Limits()
        return Limits(
            max_event_bytes=int(
                self.options.get("input.max-event-bytes", defaults.max_event_bytes)
            ),
            max_depth=int(self.options.get("input.max-depth", defaults.max_depth)),
        )

    def dead_letter_insert(self, statement_number: int) -> str:
        """The INSERT writing this table's dead letters, as part of statement ``n``'s job."""
        prefix = self.options.get("dead-letter.transactional-id-prefix", f"sa-dlq-{self.name}")
        hint = (
            "/*+ OPTIONS('sink.transactional-id-prefix' = "
            f"{sql_string(f'{prefix}-s{statement_number}')}) */"
        )
        return (
            f"INSERT INTO {quote(self.dlq_table)} {hint} SELECT {quote(DEAD_COLUMN)} "
            f"FROM {quote(self.dead_view)}"
        )

    # -- DDL of the stand-ins ----------------------------------------------------------------

    def raw_ddl(self) -> str:
        columns = [
            "`value` BYTES",
            "`topic` STRING METADATA VIRTUAL",
            "`partition` INT METADATA VIRTUAL",
            "`offset` BIGINT METADATA VIRTUAL",
            "`ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL",
        ]
        for name, sql_type, key in self._extra_metadata():
            columns.append(
                f"{quote('sa_m_' + name)} {sql_type.sql()} METADATA FROM {sql_string(key)} VIRTUAL"
            )
        if self.layout.key is not None:
            columns.insert(0, f"{quote(KEY_COLUMN)} BYTES")
        options = {
            k: v for k, v in self.options.items() if k not in _OURS and not is_format_option(k)
        }
        options.update(self.layout.raw_options())
        return (
            f"CREATE TEMPORARY TABLE {quote(self.raw_table)} ({', '.join(columns)}) "
            f"WITH ({_with(options)})"
        )

    def dlq_ddl(self) -> str:
        options = {
            k: v
            for k, v in self.options.items()
            if (k.startswith("properties.") and k not in _CONSUMER_ONLY)
        }
        options.setdefault("properties.transaction.timeout.ms", "600000")
        options.update(
            {
                "connector": "kafka",
                "topic": self.dlq_topic,
                "format": "raw",
                "sink.delivery-guarantee": "exactly-once",
                "sink.transactional-id-prefix": f"sa-dlq-{self.name}",
            }
        )
        return (
            f"CREATE TEMPORARY TABLE {quote(self.dlq_table)} "
            f"({quote(DEAD_COLUMN)} STRING) WITH ({_with(options)})"
        )

    def _extra_metadata(self) -> list[tuple[str, SqlType, str]]:
        return [m for m in self.metadata if m[2] not in _COORDINATE_KEYS]

    # -- the decoded table ---------------------------------------------------------------

    def transport(self) -> list[tuple[str, SqlType]]:
        """Columns of the decoder's rows: dead letter, physical, metadata (LTZ as epoch ms)."""
        fields = [(DEAD_COLUMN, SqlType("STRING"))]
        for name, sql_type in [*self.physical, *((n, t) for n, t, _ in self.metadata)]:
            if sql_type.kind == "TIMESTAMP_LTZ":
                fields.append((_millis(name), SqlType("BIGINT")))
            else:
                fields.append((name, sql_type.with_nullable(True)))
        return fields

    def build(self, t_env: Any, tally: Tally | None = None) -> None:
        """Create the reading stand-ins in ``t_env`` (``token`` names them per session).

        ``tally``: where the decoder counts its rows and dead letters (the
        runner's verdict, :mod:`streaming_agents.sql.tally`), if anywhere.

        Built for each statement that reads the table, after the statement's
        Python execution mode is set (PyFlink fixes an operator's mode when it
        is built: thread mode for agents, process mode for ``AI_COMPLETE``);
        the view ``t`` is then replaced by one over the new decoded rows.  A
        table only written to (often without a group id or startup mode)
        never gets a source.
        """
        from pyflink.common import Types
        from pyflink.table import Schema

        from streaming_agents.sql.counted import CountedStep

        if self.builds == 0:
            t_env.execute_sql(self.raw_ddl())
            t_env.execute_sql(self.dlq_ddl())
        self.builds += 1
        fields = self.transport()
        row_type = SqlType("ROW", fields=tuple(fields))
        decoder = DecodeRecords(
            self.name,
            SqlType("ROW", fields=tuple(self.physical)),
            self._extra_order(),
            self.limits,
            self.layout,
            self._rowtime(),
        )
        raw = t_env.sql_query(
            f"SELECT {', '.join(quote(c) for c in COORDINATES)}"
            + "".join(f", {quote('sa_m_' + n)}" for n, _, _ in self._extra_metadata())
            + (f", {quote(KEY_COLUMN)}" if self.layout.key is not None else "")
            + f" FROM {quote(self.raw_table)}"
        )
        packed = SqlType("ROW", fields=((DEAD_COLUMN, _STRING), ("sa_row", SqlType("BYTES"))))
        decoded = t_env.to_data_stream(raw).flat_map(
            PackRows(decoder), output_type=packed.type_info()
        )
        # two tables: the watermark (if any) is only ever computed on good rows
        dead = decoded.flat_map(CountedStep(DeadLetters(tally)), output_type=Types.STRING())
        t_env.create_temporary_view(self.dead_view, t_env.from_data_stream(dead).alias(DEAD_COLUMN))
        stream = decoded.flat_map(CountedStep(GoodRows(tally)), output_type=row_type.type_info())
        builder = Schema.new_builder()
        for name, sql_type in fields:
            builder = builder.column(name, sql_type.data_type())
        for name, sql_type in [*self.physical, *((n, t) for n, t, _ in self.metadata)]:
            if sql_type.kind == "TIMESTAMP_LTZ":
                ltz = sql_type.with_nullable(True).sql()
                expression = f"CAST(TO_TIMESTAMP_LTZ({quote(_millis(name))}, 3) AS {ltz})"
                builder = builder.column_by_expression(name, expression)
        for name, expression in self.computed:
            builder = builder.column_by_expression(name, expression)
        if self.watermark is not None:
            builder = builder.watermark(*self.watermark)
        t_env.create_temporary_view(
            self.decoded_view, t_env.from_data_stream(stream, builder.build())
        )
        columns = ", ".join(quote(c) for c in self.order)
        view = t_env.sql_query(f"SELECT {columns} FROM {quote(self.decoded_view)}")
        t_env.drop_temporary_view(self.view_path)
        t_env.create_temporary_view(self.view_path, view)

    def _rowtime(self) -> str | None:
        """The physical or metadata column the WATERMARK is on (a NULL there is refused)."""
        if self.watermark is None or self.watermark[0] in (n for n, _ in self.computed):
            return None
        return self.watermark[0]

    def _extra_order(self) -> list[tuple[str, str]]:
        """(raw column, metadata key) of every metadata column, in transport order."""
        return [(("sa_m_" + n) if k not in _COORDINATE_KEYS else n, k) for n, _, k in self.metadata]


def _millis(name: str) -> str:
    return f"sa_ms_{name}"


def _with(options: dict[str, str]) -> str:
    return ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in options.items())


# -- parsing the CREATE TABLE --------------------------------------------------------------


def _table_head(words: list[Token]) -> int | None:
    """Index of the table name of ``CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name``."""
    upper = [w.upper for w in words[:8]]
    at = 1
    if upper[:1] != ["CREATE"]:
        return None
    if upper[at : at + 1] == ["TEMPORARY"]:
        at += 1
    if upper[at : at + 1] != ["TABLE"]:
        return None
    at += 1
    if upper[at : at + 3] == ["IF", "NOT", "EXISTS"]:
        at += 3
    return at if at < len(words) else None


def _items(words: list[Token], start: int) -> tuple[list[list[Token]], int]:
    """The comma-separated items between ``words[start]`` = '(' and its ')'; index after it."""
    items: list[list[Token]] = [[]]
    depth, angle = 0, 0
    for n in range(start, len(words)):
        token = words[n]
        if token.kind == "op" and token.text == "<" and words[n - 1].is_word(*_TYPE_OPENERS):
            angle += 1
        elif token.kind == "op" and token.text == ">" and angle > 0:
            angle -= 1
        elif token.kind == "op" and token.text in ("(", "["):
            depth += 1
            if depth == 1:
                continue
        elif token.kind == "op" and token.text in (")", "]"):
            depth -= 1
            if depth == 0:
                return [i for i in items if i], n + 1
        if depth == 1 and angle == 0 and token.text == ",":
            items.append([])
            continue
        items[-1].append(token)
    raise SqlScriptError("unbalanced parentheses in CREATE TABLE")


def _text(statement: Statement, tokens: list[Token]) -> str:
    base = statement.tokens[0].offset
    first, last = tokens[0], tokens[-1]
    return statement.text[first.offset - base : last.offset - base + len(last.text)]


def _without_comment(tokens: list[Token]) -> list[Token]:
    if len(tokens) >= 2 and tokens[-2].is_word("COMMENT") and tokens[-1].kind == "string":
        return tokens[:-2]
    return tokens


def _options(words: list[Token], start: int) -> dict[str, str]:
    items, _ = _items(words, start)
    options = {}
    for item in items:
        if len(item) != 3 or item[1].text != "=" or item[0].kind != "string":
            raise SqlScriptError("WITH options must be 'key' = 'value'")
        options[ident_value(item[0]).strip()] = ident_value(item[2])
    return options


def plan_json_source(statement: Statement) -> JsonSource | str | None:
    """A :class:`JsonSource` for a Kafka source ``CREATE TABLE``, a reason it is not, or None.

    Planned: ``'connector' = 'kafka'`` with a ``json`` value, or a ``raw``
    value of one ``STRING`` column, optionally with a ``json`` or ``raw`` key
    (:func:`~streaming_agents.sql.recordlayout.plan_layout`).  A string: a
    Kafka table the runner leaves to Flink's formats (a bad record fails the
    job or is silently repaired there) -- ``upsert-kafka``, other formats,
    ``LIKE``.  None: not a Kafka source declaration (a CTAS,
    another connector) or nothing to decode (``raw`` ``BYTES``).
    """
    words = statement.words
    at = _table_head(words)
    if at is None or at + 1 >= len(words):
        return None
    with_at = next(
        (
            n
            for n in range(at, len(words) - 1)
            if words[n].is_word("WITH") and words[n + 1].text == "("
        ),
        None,
    )
    if with_at is None:
        return None
    try:
        options = _options(words, with_at + 1)
    except SqlScriptError:
        return None
    _, after = _items(words, with_at + 1)
    if after < len(words) and not words[after].is_word("LIKE"):
        return None  # CTAS: a sink, not a source declaration
    connector = options.get("connector")
    if connector == "upsert-kafka":
        return "'connector' = 'upsert-kafka' is left to Flink's formats"
    if connector != "kafka":
        return None
    value_format = options.get("value.format", options.get("format"))
    for side, fmt in (("value", value_format), ("key", options.get("key.format"))):
        if fmt is not None and fmt not in ("json", "raw"):
            return f"'{side}.format' = {fmt!r} is left to Flink's {fmt} format"
    if value_format is None or after < len(words):
        return None if value_format is None else "LIKE is left to Flink's formats"
    parts = dotted_name(words, at)  # t, db.t, cat.db.t
    last = at + 2 * (len(parts) - 1)
    if not parts or last + 1 >= len(words) or words[last + 1].text != "(":
        return None
    source = _parse(statement, words, last, options)
    if isinstance(source, JsonSource) and last > at:
        source.path = tuple(ident_value(t) for t in parts)
        source.name, source.name_token, source.name_last = (
            ".".join(source.path),
            words[at],
            words[last],
        )
    return source


def _parse(
    statement: Statement, words: list[Token], at: int, options: dict[str, str]
) -> JsonSource | str | None:
    name = ident_value(words[at])
    physical: list[tuple[str, SqlType]] = []
    metadata: list[tuple[str, SqlType, str]] = []
    computed: list[tuple[str, str]] = []
    order: list[str] = []
    watermark = None
    items, _ = _items(words, at + 1)
    try:
        for item in items:
            if item[0].is_word("PRIMARY", "CONSTRAINT"):
                continue  # planner information only; the view has no key
            if item[0].is_word("WATERMARK") and len(item) > 4 and item[1].is_word("FOR"):
                watermark = (ident_value(item[2]), _text(statement, item[4:]))
                continue
            column = ident_value(item[0])
            rest = _without_comment(item[1:])
            if rest and rest[0].is_word("AS"):
                computed.append((column, _text(statement, rest[1:])))
            elif any(t.is_word("METADATA") for t in rest):
                k = next(n for n, t in enumerate(rest) if t.is_word("METADATA"))
                key = column
                if k + 2 < len(rest) and rest[k + 1].is_word("FROM"):
                    key = ident_value(rest[k + 2])
                metadata.append((column, parse_type(_text(statement, rest[:k])), key))
            else:
                if rest and rest[-1].is_word("ENFORCED"):  # inline PRIMARY KEY NOT ENFORCED
                    rest = rest[:-4]
                physical.append((column, parse_type(_text(statement, rest))))
            order.append(column)
    except (SqlScriptError, StopIteration, IndexError) as exc:
        return f"its columns could not be read ({exc})"
    layout = plan_layout(options, physical)
    if not isinstance(layout, RecordLayout):
        return layout
    if "dead-letter.topic" not in options:
        topic = options.get("topic", "")
        if not topic or ";" in topic:
            return "give 'dead-letter.topic' (the table reads several topics or a pattern)"
        options["dead-letter.topic"] = f"{topic}.dead-letters"
    return JsonSource(
        name, options, physical, metadata, computed, order, watermark, words[at], layout
    )
