"""Which bytes of a Kafka record fill which column of a SQL table, decoded in Python, strictly.

Flink's Kafka connector decodes a record's key and value with the table's
formats (``'format'`` / ``'value.format'``, ``'key.format'`` with
``'key.fields'``) inside the JVM: its JSON format fails the job on a record
it cannot parse, and its ``raw`` format turns invalid bytes of a ``STRING``
column into U+FFFD without a word.  For the shapes planned here the SQL
runner reads both as bytes instead (:mod:`streaming_agents.sql.jsonsource`:
``'key.format' = 'raw'`` and ``'value.format' = 'raw'`` on one hidden
``BYTES`` column each) and a :class:`RecordLayout` decodes them:

* a **value** in ``json`` (an object: one field per column; tombstones,
  invalid UTF-8, a BOM, ``NaN``, duplicate keys, deep nesting and oversized
  values refused as in :mod:`streaming_agents.runtime.safe_json`) or in
  ``raw`` (one ``STRING`` column decoded strictly with ``'raw.charset'``,
  default UTF-8, refused when the text starts with U+FEFF/U+FFFE -- see
  :func:`~streaming_agents.runtime.keys.mark_problem` -- or one ``BYTES``
  column as is);
* a **key** (``'key.format'`` ``json`` or ``raw``, columns ``'key.fields'``,
  JSON field names without ``'key.fields-prefix'``), decoded by the same
  rules.  With ``'value.fields-include' = 'ALL'`` (Flink's default) every
  column is also read from the value, and the value's field wins, as in
  Flink; with ``EXCEPT_KEY`` key columns come from the key only.

Decisions where Flink gives no usable answer: a **null record key** makes
every key column NULL (a ``NOT NULL`` key column -> dead letter ``malformed
key``; Flink's JSON key format drops such a record silently); an **empty**
key is not JSON (``malformed key``); a **tombstone** of a ``raw`` value is a
row with a NULL column (as Flink gives it) unless the column is ``NOT
NULL`` (dead letter ``malformed event``).  Key problems have their own
reasons (``malformed key``, ``oversized key``, ``key type mismatch``), value
problems keep the agent operator's (``malformed event``, ``oversized
event``, ``type mismatch``).  Nothing here raises on account of the data.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

from streaming_agents.runtime.events import Limits, Rejected, decode
from streaming_agents.runtime.keys import mark_problem
from streaming_agents.sql.jsonrows import Mismatch, column_value
from streaming_agents.sql.types import SqlType

__all__ = ["KEY_COLUMN", "Part", "RecordLayout", "Refused", "is_format_option", "plan_layout"]

KEY_COLUMN = "sa_key"
"""The hidden raw table's column holding the record key's bytes (when a key format is declared)."""

_REASONS = {
    "value": ("malformed event", "oversized event", "type mismatch"),
    "key": ("malformed key", "oversized key", "key type mismatch"),
}
_FORMAT_OPTIONS = ("format", "value.format", "key.format", "key.fields", "key.fields-prefix")
_FORMAT_PREFIXES = ("json.", "raw.", "key.json.", "value.json.", "key.raw.", "value.raw.")
_PREVIEW_BYTES = 2000


def is_format_option(option: str) -> bool:
    """Whether ``option`` configures the key/value formats (replaced in the raw table)."""
    return (
        option in _FORMAT_OPTIONS
        or option == "value.fields-include"
        or option.startswith(_FORMAT_PREFIXES)
    )


@dataclass(frozen=True)
class Refused:
    """Why a record cannot become a row: the dead letter's reason, error and payload."""

    reason: str
    error: str
    payload: Any


def _preview(raw: bytes | None) -> str | None:
    return None if raw is None else raw[:_PREVIEW_BYTES].decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Part:
    """One side of the record (``key`` or ``value``) and the columns it fills."""

    side: str  # "key" or "value"
    format: str  # "json" or "raw"
    columns: tuple[tuple[str, SqlType], ...]  # (column, type) in the order of the side
    fields: tuple[str, ...]  # the JSON field of each column (key: without the prefix)
    charset: str = "UTF-8"  # raw STRING only
    fail_on_missing: bool = False  # json only

    def values(self, raw: bytes | None, limits: Limits) -> dict[str, Any] | Refused:
        """The typed value of each of this side's columns, or why there is none."""
        if self.format == "raw":
            return self._raw(raw, limits)
        malformed, oversized, mismatch = _REASONS[self.side]
        if raw is None and self.side == "key":
            return self._null_key()
        decoded = decode(raw, None, limits)
        if isinstance(decoded, Rejected):
            reason = oversized if decoded.reason == "oversized event" else malformed
            error = decoded.error if self.side == "value" else f"record key: {decoded.error}"
            return Refused(reason, error, decoded.payload)
        event = decoded["e"]
        values: dict[str, Any] = {}
        for (name, sql_type), field in zip(self.columns, self.fields, strict=True):
            try:
                if self.fail_on_missing and field not in event:
                    option = "json." if self.side == "value" else "key.json."
                    raise Mismatch(f"missing field ('{option}fail-on-missing-field')")
                values[name] = column_value(sql_type, event.get(field), top=True)
            except Mismatch as exc:
                return Refused(mismatch, f"{self._column(name)}: {exc}", _preview(raw))
        return values

    def _column(self, name: str) -> str:
        return f"column {name!r}" + (" (record key)" if self.side == "key" else "")

    def _null_key(self) -> dict[str, Any] | Refused:
        for name, sql_type in self.columns:
            if not sql_type.nullable:
                error = f"no record key (null) but {self._column(name)} is NOT NULL"
                return Refused(_REASONS["key"][0], error, None)
        return {name: None for name, _ in self.columns}

    def _raw(self, raw: bytes | None, limits: Limits) -> dict[str, Any] | Refused:
        malformed, oversized, _ = _REASONS[self.side]
        ((name, sql_type),) = self.columns
        if raw is None:
            if sql_type.nullable:
                return {name: None}
            what = "null value (a tombstone)" if self.side == "value" else "no record key (null)"
            return Refused(malformed, f"{what} but {self._column(name)} is NOT NULL", None)
        if len(raw) > limits.max_event_bytes:
            error = f"{len(raw)} bytes > {limits.max_event_bytes}"
            return Refused(oversized, self._prefixed(error), _preview(raw[:200]))
        if sql_type.kind == "BYTES":
            return {name: raw}
        try:
            text = raw.decode(self.charset)
        except UnicodeDecodeError as exc:
            error = f"not {self.charset}: {exc}"
            return Refused(malformed, self._prefixed(error), _preview(raw))
        problem = mark_problem(text)
        if problem is not None:  # a BOM of a raw line: the text itself is refused
            return Refused(malformed, self._prefixed(f"text {problem}"), _preview(raw))
        return {name: text}

    def _prefixed(self, error: str) -> str:
        return error if self.side == "value" else f"record key: {error}"


@dataclass(frozen=True)
class RecordLayout:
    """The value's part and, if declared, the key's; :meth:`row` decodes one record."""

    value: Part
    key: Part | None = None

    def row(
        self, key: bytes | None, value: bytes | None, limits: Limits
    ) -> dict[str, Any] | Refused:
        """Every physical column's value (by name), or why the record cannot be a row.

        The value is decoded first (its reason wins when both are bad); with
        ``'value.fields-include' = 'ALL'`` a column in both takes the value's.
        """
        values = self.value.values(value, limits)
        if isinstance(values, Refused) or self.key is None:
            return values
        keyed = self.key.values(key, limits)
        if isinstance(keyed, Refused):
            return keyed
        return {**keyed, **values}

    def raw_options(self) -> dict[str, str]:
        """The format options of the raw table that reads this layout's bytes."""
        if self.key is None:
            return {"format": "raw"}
        return {
            "key.format": "raw",
            "key.fields": KEY_COLUMN,
            "value.format": "raw",
            "value.fields-include": "EXCEPT_KEY",
        }

    def describe(self) -> str:
        """What the console line says the table reads safely."""
        value = "JSON" if self.value.format == "json" else f"raw text ({self.value.charset})"
        if self.value.columns and self.value.columns[0][1].kind == "BYTES":
            value = "raw bytes" if self.value.format == "raw" else value
        if self.key is None:
            return value
        key = "JSON" if self.key.format == "json" else "raw"
        return f"{value} values with {key} keys"


def plan_layout(
    options: dict[str, str], physical: list[tuple[str, SqlType]]
) -> RecordLayout | str | None:
    """The layout of a Kafka table, a reason it is left to Flink, or None (nothing to decode).

    None: a ``raw`` ``BYTES`` value without a key format (Flink decodes nothing).
    """
    value_format = options.get("value.format", options.get("format"))
    key_format = options.get("key.format")
    keys = [f.strip() for f in options.get("key.fields", "").split(";") if f.strip()]
    prefix = options.get("key.fields-prefix", "")
    include = options.get("value.fields-include", "ALL").upper()
    types = dict(physical)
    problem = _key_problem(key_format, keys, prefix, include, types)
    if problem is not None:
        return problem
    value_columns = [(n, t) for n, t in physical if include == "ALL" or n not in keys]
    value = _part("value", str(value_format), value_columns, "", options)
    if isinstance(value, str):
        return value
    if key_format is None:
        if value.format == "raw" and value.columns[0][1].kind == "BYTES":
            return None
        return RecordLayout(value)
    # with ALL the value decides every column: the key's own columns may be NULL
    nullable = include == "ALL"
    columns = [(f, types[f].with_nullable(True) if nullable else types[f]) for f in keys]
    key = _part("key", key_format, columns, prefix, options)
    return key if isinstance(key, str) else RecordLayout(value, key)


def _key_problem(
    key_format: str | None, keys: list[str], prefix: str, include: str, types: dict[str, Any]
) -> str | None:
    """Why the key options are not planned (Flink refuses them itself), else None."""
    if include not in ("ALL", "EXCEPT_KEY"):
        return f"'value.fields-include' = {include!r} is left to Flink"
    if key_format is None:
        return "'key.fields' without a 'key.format' is left to Flink" if keys else None
    if not keys:
        return "a 'key.format' without 'key.fields' is left to Flink"
    unknown = [k for k in keys if k not in types]
    if unknown:
        return f"'key.fields' names {unknown[0]!r}, not a physical column: left to Flink"
    if prefix and (include == "ALL" or not all(k.startswith(prefix) for k in keys)):
        return "this 'key.fields-prefix' is left to Flink (it needs EXCEPT_KEY and prefixed keys)"
    return None


def _part(
    side: str,
    fmt: str,
    columns: list[tuple[str, SqlType]],
    prefix: str,
    options: dict[str, str],
) -> Part | str:
    """One side's :class:`Part`, or why Flink's format is left to read it."""
    own = {k.removeprefix(f"{side}."): v for k, v in options.items() if k.startswith(f"{side}.")}
    if side == "value":  # 'format' = ... takes its options unprefixed
        own = {**{k: v for k, v in options.items() if k.startswith(("json.", "raw."))}, **own}
    if fmt == "json":
        missing = own.get("json.fail-on-missing-field", "false").lower() == "true"
        fields = tuple(n.removeprefix(prefix) for n, _ in columns)
        return Part(side, "json", tuple(columns), fields, fail_on_missing=missing)
    if fmt != "raw":
        return f"'{side}.format' = {fmt!r} is left to Flink's {fmt} format"
    if len(columns) != 1:
        return f"a 'raw' {side} with {len(columns)} columns is left to Flink (it needs one)"
    name, sql_type = columns[0]
    if sql_type.kind not in ("STRING", "BYTES"):
        return f"a 'raw' {sql_type.kind} {side} is left to Flink's raw format"
    if "raw.line-delimiter" in own:
        return "'raw.line-delimiter' is left to Flink's raw format"
    charset = own.get("raw.charset", "UTF-8")
    try:
        codecs.lookup(charset)
    except LookupError:
        return f"'raw.charset' = {charset!r} is left to Flink's raw format"
    return Part(side, "raw", ((name, sql_type),), (name,), charset=charset)
