"""Kafka records -> typed rows of a SQL source table, or dead letters; never an exception.

The SQL runner reads a Kafka source table (``'format' = 'json'``, a JSON or
raw key, raw text) as raw bytes with their topic/partition/offset (see
:mod:`streaming_agents.sql.jsonsource`) and hands each record to
:class:`DecodeRecords`.  Its key and value are decoded once by the table's
:class:`~streaming_agents.sql.recordlayout.RecordLayout`: JSON with the rules
of :mod:`streaming_agents.runtime.safe_json` and the
:class:`~streaming_agents.runtime.events.Limits` (tombstones, invalid UTF-8,
a BOM, ``NaN``, duplicate keys, deep nesting, oversized values are refused),
then every declared column converted strictly by :func:`column_value`; raw
text with a strict charset.  A record that cannot become a row becomes a dead
letter (:func:`~streaming_agents.runtime.events.dead_letter`: reason, error,
the record's size and SHA-256, its exact topic/partition/offset, the bytes
when they fit) -- nothing is set to NULL silently and nothing raises.

Conversion rules (JSON value -> column type): a missing field or ``null`` is
NULL (a dead letter for a ``NOT NULL`` column, or for any missing field with
``'json.fail-on-missing-field' = 'true'``); fields not declared are ignored.
``STRING``: a string as is, any other value as its compact JSON text (as
Flink's JSON format does); a string starting with a byte-order mark (U+FEFF or
U+FFFE) is refused (:func:`~streaming_agents.runtime.keys.mark_problem`), at
any depth and as a ``MAP`` key.
``BOOLEAN``: ``true``/``false`` or the strings ``"true"``/``"false"``.
Integer types: a JSON integer or a string of one, within the type's range (no
fractions, no rounding).  ``FLOAT``/``DOUBLE``: a
number or a numeric string, finite and within range.  ``DECIMAL(p, s)``: a
number or numeric string with at most ``s`` decimals and ``p`` digits (JSON
numbers with fractions pass through a 64-bit float: write exact decimals as
strings).  ``DATE``/``TIME``/``TIMESTAMP``: ISO-8601 strings (a space or
``T`` between date and time); ``TIMESTAMP`` refuses a UTC offset,
``TIMESTAMP_LTZ`` needs one (``Z`` or ``+hh:mm``).  ``BYTES``: base64.
``ARRAY``: a JSON array; ``MAP``: an object (keys converted to the key
type); ``ROW``: an object (nested fields follow the same rules).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import pickle
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from streaming_agents.runtime.events import (
    MALFORMED_KEY,
    Limits,
    dead_letter,
    record_of,
)
from streaming_agents.runtime.keys import mark_problem
from streaming_agents.sql.tally import Tally
from streaming_agents.sql.types import SqlType

if TYPE_CHECKING:
    from streaming_agents.sql.recordlayout import RecordLayout

__all__ = [
    "COORDINATES",
    "DEAD_COLUMN",
    "DeadLetters",
    "DecodeRecords",
    "GoodRows",
    "Mismatch",
    "PackRows",
    "column_value",
]

DEAD_COLUMN = "sa_dead_letter"
"""The transport column holding a record's dead letter (NULL for a good row)."""

COORDINATES = ("value", "topic", "partition", "offset", "ts")
"""The raw table's first columns, named as ``record_of`` expects them."""

_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INT": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
}
_FLOAT_MAX = 3.4028234663852886e38
_INTEGER = re.compile(r"\s*[+-]?\d{1,40}\s*")


class Mismatch(ValueError):
    """A JSON value that does not fit its column type (raised and caught in this module)."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Mismatch(f"expected {what}, got {_kind(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise Mismatch(f"expected {what}, got {_preview(value)}") from None
    if not math.isfinite(number):
        raise Mismatch(f"expected a finite {what}, got {_preview(value)}")
    return number


def _integer(sql_type: SqlType, value: Any) -> int:
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Mismatch(f"expected an integer ({sql_type.kind}), got {_preview(value)}")
    low, high = _RANGES[sql_type.kind]
    if not low <= value <= high:
        raise Mismatch(f"{_preview(value)} is out of the range of {sql_type.kind}")
    return value


def _decimal(sql_type: SqlType, value: Any) -> Decimal:
    _number(value, "a decimal number")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise Mismatch(f"expected a decimal number, got {_preview(value)}") from None
    precision, scale = sql_type.precision or 10, sql_type.scale or 0
    exponent = number.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and -exponent > scale
        and number != number.quantize(Decimal(1).scaleb(-scale))
    ):
        raise Mismatch(f"{_preview(value)} has more than {scale} decimal(s) ({sql_type.sql()})")
    number = number.quantize(Decimal(1).scaleb(-scale))
    if len(number.as_tuple().digits) > precision:
        raise Mismatch(f"{_preview(value)} has more than {precision} digits ({sql_type.sql()})")
    return number


def _moment(sql_type: SqlType, value: Any) -> Any:
    if not isinstance(value, str):
        raise Mismatch(f"expected an ISO-8601 string ({sql_type.kind}), got {_kind(value)}")
    text = value.strip()
    try:
        if sql_type.kind == "DATE":
            return dt.date.fromisoformat(text)
        if sql_type.kind == "TIME":
            return dt.time.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Mismatch(f"not a {sql_type.kind} in ISO-8601: {_preview(value)}") from None
    if sql_type.kind == "TIMESTAMP":
        if moment.tzinfo is not None:
            raise Mismatch(f"TIMESTAMP takes no UTC offset (use TIMESTAMP_LTZ): {_preview(value)}")
        return moment
    if moment.tzinfo is None:
        raise Mismatch(f"TIMESTAMP_LTZ needs a UTC offset ('Z' or +hh:mm): {_preview(value)}")
    return round(moment.timestamp() * 1000)  # carried as epoch ms, see jsonsource


def column_value(sql_type: SqlType, value: Any, *, top: bool = False) -> Any:
    """``value`` (decoded JSON) as the Python value of ``sql_type``; :class:`Mismatch` if not.

    ``top``: a top-level column, whose ``TIMESTAMP_LTZ`` travels as epoch ms.
    """
    if value is None:
        if not sql_type.nullable:
            raise Mismatch("null for a NOT NULL column")
        return None
    kind = sql_type.kind
    if kind == "STRING":
        if not isinstance(value, str):
            return json.dumps(value, separators=(",", ":"))  # starts with one of [{"-0-9tfn
        problem = mark_problem(value)
        if problem is not None:
            raise Mismatch(problem)
        return value
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise Mismatch(f"expected a boolean, got {_preview(value)}")
    if kind in _RANGES:
        return _integer(sql_type, value)
    if kind in ("FLOAT", "DOUBLE"):
        number = _number(value, "a number")
        if kind == "FLOAT" and abs(number) > _FLOAT_MAX:
            raise Mismatch(f"{_preview(value)} is out of the range of FLOAT")
        return number
    if kind == "DECIMAL":
        return _decimal(sql_type, value)
    if kind in ("DATE", "TIME", "TIMESTAMP", "TIMESTAMP_LTZ"):
        if kind == "TIMESTAMP_LTZ" and not top:
            raise Mismatch("a TIMESTAMP_LTZ inside a ROW/ARRAY/MAP is not supported")
        return _moment(sql_type, value)
    if kind == "BYTES":
        if not isinstance(value, str):
            raise Mismatch(f"expected base64 text (BYTES), got {_kind(value)}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Mismatch(f"not base64: {_preview(value)}") from None
    return _nested(sql_type, value)


def _nested(sql_type: SqlType, value: Any) -> Any:
    kind = sql_type.kind
    if kind == "ARRAY" and sql_type.element is not None:
        if not isinstance(value, list):
            raise Mismatch(f"expected an array, got {_kind(value)}")
        return [_field(f"element {i}", sql_type.element, v) for i, v in enumerate(value)]
    if kind == "MAP" and sql_type.key is not None and sql_type.element is not None:
        if not isinstance(value, dict):
            raise Mismatch(f"expected an object (MAP), got {_kind(value)}")
        key_type, element = sql_type.key, sql_type.element
        return {
            _field(f"map key {_preview(k)}", key_type, k): _field(
                f"map value of {_preview(k)}", element, v
            )
            for k, v in value.items()
        }
    if kind == "ROW":
        from pyflink.common import Row

        if not isinstance(value, dict):
            raise Mismatch(f"expected an object (ROW), got {_kind(value)}")
        return Row(**{n: _field(f"field {n!r}", t, value.get(n)) for n, t in sql_type.fields})
    raise Mismatch(f"unsupported column type {kind}")


def _field(where: str, sql_type: SqlType, value: Any) -> Any:
    """A nested value (``where``: field, element or map key/value) converted; errors say where."""
    try:
        return column_value(sql_type, value)
    except Mismatch as exc:
        raise Mismatch(f"{where}: {exc}") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "null")


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


class DecodeRecords:
    """The flat_map of a Kafka source: raw record -> one transport row (a row or a dead letter).

    Input rows start with :data:`COORDINATES`, go on with the table's other
    metadata columns (``extra``) and end with the record key's bytes when the
    ``layout`` has a key.  The ``layout``
    (:class:`~streaming_agents.sql.recordlayout.RecordLayout`) decodes key and
    value into the physical columns.  Each output row holds the dead letter
    (or NULL), the physical columns (top-level ``TIMESTAMP_LTZ`` as epoch ms)
    and the metadata columns, in that order.
    """

    def __init__(
        self,
        table: str,
        physical: SqlType,
        extra: list[tuple[str, str]],
        limits: Limits,
        layout: RecordLayout,
        rowtime: str | None = None,
    ) -> None:
        self.table = table
        self.physical = physical
        self.extra = extra  # (column name, metadata key); ts-like ones come from COORDINATES
        self.limits = limits
        self.layout = layout
        self.rowtime = rowtime  # the WATERMARK's column: NULL there would fail the job

    def __call__(self, record: Any) -> Iterator[Any]:
        from pyflink.common import Row

        from streaming_agents.sql.recordlayout import KEY_COLUMN, Refused

        raw: bytes | None = None
        source: dict[str, Any] | None = None
        blank = [None] * len(self.physical.fields)
        try:
            found = record_of(record)
            if found is None:
                raise Mismatch("not a Kafka record row")
            raw, source = found
            meta = [_meta_value(record, source, name, key) for name, key in self.extra]
            key = record.as_dict().get(KEY_COLUMN) if self.layout.key is not None else None
            row = self.layout.row(None if key is None else bytes(key), raw, self.limits)
            if isinstance(row, Refused):
                dead = self._dead(row.reason, row.error, row.payload, raw, source)
                yield Row(dead, *blank, *meta)
                return
            values = [row[name] for name in self.physical.names]
            self._check_rowtime(values, meta)
        except Mismatch as exc:
            dead = self._dead("type mismatch", str(exc), _preview_of(raw), raw, source)
            yield Row(dead, *blank, *([None] * len(self.extra)))
            return
        except Exception as exc:  # noqa: BLE001 - a record must never fail the job
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            dead = self._dead("malformed event", error, _preview_of(raw), raw, source)
            yield Row(dead, *blank, *([None] * len(self.extra)))
            return
        yield Row(None, *values, *meta)

    def _check_rowtime(self, values: list[Any], meta: list[Any]) -> None:
        if self.rowtime is None:
            return
        names = [*self.physical.names, *(name.removeprefix("sa_m_") for name, _ in self.extra)]
        if self.rowtime in names and [*values, *meta][names.index(self.rowtime)] is None:
            raise Mismatch(f"column {self.rowtime!r}: NULL in the WATERMARK's time column")

    def _dead(self, reason: str, error: str, payload: Any, raw: bytes | None, source: Any) -> str:
        return dead_letter(
            reason,
            MALFORMED_KEY,
            payload,
            error,
            raw=raw,
            source=source,
            agent=f"sql:{self.table}",
            max_bytes=self.limits.max_record_bytes,
        )


class PackRows:
    """The decoder's rows as ``(dead letter, pickled columns)`` for the hop to the two steps.

    The decoder's output goes through the JVM to :class:`GoodRows` and
    :class:`DeadLetters`.  In thread mode (agents) PyFlink hands a Java string
    to Python with a leading U+FEFF removed (seen on PyFlink 2.3: a raw line
    ``"\ufeff{...}"`` arrived as ``"{...}"``), so the columns cross as bytes and
    come back unchanged.  The pickle is made here, from the decoder's own
    values, never from a record's bytes.  (Strings starting with such a mark
    are refused by the decoder anyway --
    :func:`~streaming_agents.runtime.keys.mark_problem` -- because the good
    rows go on through the JVM as Java strings.)
    """

    def __init__(self, decoder: DecodeRecords) -> None:
        self.decoder = decoder

    def __call__(self, record: Any) -> Iterator[Any]:
        from pyflink.common import Row

        for row in self.decoder(record):
            dead = row[0]
            yield Row(dead, None if dead is not None else pickle.dumps(tuple(row[1:])))


class GoodRows:
    """flat_map: the rows without a dead letter, unpacked (each counted in ``tally``, if given).

    The counting is here and in :class:`DeadLetters`, not in the decoder: a
    ``SELECT`` or CTAS reads the good rows in its own job and the dead letters
    in a companion job, both with the decoder; each record is counted once.
    """

    def __init__(self, tally: Tally | None = None) -> None:
        self.tally = tally

    def __call__(self, row: Any) -> Iterator[Any]:
        from pyflink.common import Row

        if row[0] is None:
            if self.tally is not None:
                self.tally.ok()
            yield Row(None, *pickle.loads(row[1]))  # made by PackRows in this job


class DeadLetters:
    """flat_map: the dead letters (JSON text) of the rows that have one (counted, with why)."""

    def __init__(self, tally: Tally | None = None) -> None:
        self.tally = tally

    def __call__(self, row: Any) -> Iterator[str]:
        if row[0] is not None:
            if self.tally is not None:
                from streaming_agents.cli.failures import reasons_of

                self.tally.failed(reasons_of([row[0]])[0])
            yield row[0]


def _meta_value(record: Any, source: dict[str, Any], name: str, key: str) -> Any:
    """A metadata column's value: the record's coordinate, or the raw row's own column."""
    if key == "timestamp":
        return source.get("timestamp_ms")
    if key in ("topic", "partition", "offset"):
        return source.get(key)
    value = record.as_dict().get(name)
    millis = getattr(value, "to_epoch_milli", None) or getattr(value, "toEpochMilli", None)
    return int(millis()) if callable(millis) else value


def _preview_of(raw: bytes | None) -> str | None:
    return None if raw is None else raw[:2000].decode("utf-8", "backslashreplace")
