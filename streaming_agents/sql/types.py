"""One description of a column type, and what it becomes in Flink.

:class:`SqlType` is built from a pydantic model, from a Flink ``DataType``
or from SQL text (:mod:`streaming_agents.sql.typemap`) and turns into

* the Table API ``DataType`` of a column (time types bridged to the
  ``java.sql`` classes PyFlink's DataStream coders produce),
* the DataStream ``TypeInformation`` of the Python map that builds rows,
* SQL text (``ROW<`a` STRING NOT NULL, ...>``),

and converts values both ways: Flink Python values to JSON (events for the
agent) and JSON back to the Python values the ``TypeInformation`` expects.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = ["SCALARS", "SqlType"]

SCALARS = (
    "STRING",
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INT",
    "BIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
    "BYTES",
)
_INTS = ("TINYINT", "SMALLINT", "INT", "BIGINT")


@dataclass(frozen=True)
class SqlType:
    """A Flink SQL type: a scalar ``kind``, or ``ARRAY``/``MAP``/``ROW`` with children."""

    kind: str
    nullable: bool = True
    precision: int | None = None
    scale: int | None = None
    element: SqlType | None = None
    key: SqlType | None = None
    fields: tuple[tuple[str, SqlType], ...] = ()
    descriptions: tuple[str, ...] = field(default=(), compare=False)

    def with_nullable(self, nullable: bool) -> SqlType:
        return SqlType(
            self.kind,
            nullable,
            self.precision,
            self.scale,
            self.element,
            self.key,
            self.fields,
            self.descriptions,
        )

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.fields]

    # -- SQL text ---------------------------------------------------------------

    def sql(self) -> str:
        suffix = "" if self.nullable else " NOT NULL"
        kind = self.kind
        if kind == "DECIMAL":
            return f"DECIMAL({self.precision}, {self.scale}){suffix}"
        if kind in ("TIME", "TIMESTAMP", "TIMESTAMP_LTZ"):
            return f"{kind}({self.precision}){suffix}"
        if kind == "ARRAY":
            assert self.element is not None
            return f"ARRAY<{self.element.sql()}>{suffix}"
        if kind == "MAP":
            assert self.key is not None and self.element is not None
            return f"MAP<{self.key.sql()}, {self.element.sql()}>{suffix}"
        if kind == "ROW":
            inner = ", ".join(f"`{n}` {t.sql()}" for n, t in self.fields)
            return f"ROW<{inner}>{suffix}"
        return f"{kind}{suffix}"

    # -- Flink types ------------------------------------------------------------

    def data_type(self) -> Any:
        """The PyFlink Table ``DataType`` (time types bridged to ``java.sql``)."""
        from pyflink.table import DataTypes

        kind = self.kind
        simple = {
            "STRING": DataTypes.STRING,
            "BOOLEAN": DataTypes.BOOLEAN,
            "TINYINT": DataTypes.TINYINT,
            "SMALLINT": DataTypes.SMALLINT,
            "INT": DataTypes.INT,
            "BIGINT": DataTypes.BIGINT,
            "FLOAT": DataTypes.FLOAT,
            "DOUBLE": DataTypes.DOUBLE,
            "BYTES": DataTypes.BYTES,
        }
        if kind in simple:
            result = simple[kind](self.nullable)
        elif kind == "DECIMAL":
            result = DataTypes.DECIMAL(self.precision, self.scale, self.nullable)
        elif kind == "DATE":
            result = DataTypes.DATE(self.nullable).bridged_to("java.sql.Date")
        elif kind == "TIME":
            result = DataTypes.TIME(self.precision, self.nullable).bridged_to("java.sql.Time")
        elif kind == "TIMESTAMP":
            result = DataTypes.TIMESTAMP(self.precision, self.nullable).bridged_to(
                "java.sql.Timestamp"
            )
        elif kind == "TIMESTAMP_LTZ":
            result = DataTypes.TIMESTAMP_LTZ(self.precision, self.nullable)
        elif kind == "ARRAY":
            assert self.element is not None
            result = DataTypes.ARRAY(self.element.data_type(), self.nullable)
        elif kind == "MAP":
            assert self.key is not None and self.element is not None
            result = DataTypes.MAP(self.key.data_type(), self.element.data_type(), self.nullable)
        elif kind == "ROW":
            fields = [DataTypes.FIELD(n, t.data_type()) for n, t in self.fields]
            result = DataTypes.ROW(fields, self.nullable)
        else:
            raise ValueError(f"no Flink type for {kind}")
        return result

    def type_info(self) -> Any:
        """The DataStream ``TypeInformation`` whose values :meth:`from_json` produces."""
        from pyflink.common import Types

        kind = self.kind
        simple = {
            "STRING": Types.STRING,
            "BOOLEAN": Types.BOOLEAN,
            "TINYINT": Types.BYTE,
            "SMALLINT": Types.SHORT,
            "INT": Types.INT,
            "BIGINT": Types.LONG,
            "FLOAT": Types.FLOAT,
            "DOUBLE": Types.DOUBLE,
            "DECIMAL": Types.BIG_DEC,
            "DATE": Types.SQL_DATE,
            "TIME": Types.SQL_TIME,
            "TIMESTAMP": Types.SQL_TIMESTAMP,
            "TIMESTAMP_LTZ": Types.INSTANT,
        }
        if kind in simple:
            return simple[kind]()
        if kind == "BYTES":
            return Types.PRIMITIVE_ARRAY(Types.BYTE())
        if kind == "ARRAY":
            assert self.element is not None
            if self.element.kind in ("STRING", "BOOLEAN", *_INTS, "FLOAT", "DOUBLE"):
                return Types.BASIC_ARRAY(self.element.type_info())
            return Types.OBJECT_ARRAY(self.element.type_info())
        if kind == "MAP":
            assert self.key is not None and self.element is not None
            return Types.MAP(self.key.type_info(), self.element.type_info())
        if kind == "ROW":
            return Types.ROW_NAMED(self.names, [t.type_info() for _, t in self.fields])
        raise ValueError(f"no TypeInformation for {kind}")

    # -- values -------------------------------------------------------------------

    def to_json(self, value: Any) -> Any:
        """A Flink Python value of this type as JSON-compatible data."""
        if value is None:
            return None
        kind = self.kind
        if kind == "ROW":
            items = value.as_dict() if hasattr(value, "as_dict") else dict(value)
            return {n: t.to_json(items.get(n)) for n, t in self.fields}
        if kind == "ARRAY":
            assert self.element is not None
            return [self.element.to_json(v) for v in value]
        if kind == "MAP":
            assert self.element is not None
            return {str(k): self.element.to_json(v) for k, v in dict(value).items()}
        if kind == "DECIMAL":
            return str(value)
        if kind == "BYTES":
            return base64.b64encode(bytes(value)).decode()
        if kind == "TIMESTAMP_LTZ" and hasattr(value, "to_epoch_milli"):
            value = dt.datetime.fromtimestamp(value.to_epoch_milli() / 1000, dt.UTC)
        if kind in ("DATE", "TIME", "TIMESTAMP", "TIMESTAMP_LTZ"):
            # thread mode hands over java.time objects, whose str() is ISO-8601
            return value.isoformat() if hasattr(value, "isoformat") else str(value)
        return value

    def from_json(self, value: Any) -> Any:
        """JSON-compatible data as the Python value :meth:`type_info` expects.

        Raises ``ValueError``/``TypeError`` when the value does not fit.
        """
        if value is None:
            if not self.nullable:
                raise ValueError("null for a NOT NULL field")
            return None
        kind = self.kind
        if kind == "STRING":
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if kind == "BOOLEAN":
            if not isinstance(value, bool):
                raise TypeError(f"expected a boolean, got {value!r}")
            return value
        if kind in _INTS:
            if isinstance(value, bool) or int(value) != float(value):
                raise TypeError(f"expected an integer, got {value!r}")
            return int(value)
        if kind in ("FLOAT", "DOUBLE"):
            return float(value)
        if kind == "DECIMAL":
            return _decimal(value, self.scale or 0)
        if kind == "BYTES":
            return base64.b64decode(value) if isinstance(value, str) else bytes(value)
        if kind == "DATE":
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if kind == "TIME":
            return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))
        if kind == "TIMESTAMP":
            return _naive_utc(_datetime(value))
        if kind == "TIMESTAMP_LTZ":
            from pyflink.common.time import Instant

            moment = _datetime(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return Instant.of_epoch_milli(round(moment.timestamp() * 1000))
        if kind == "ARRAY":
            assert self.element is not None
            return [self.element.from_json(v) for v in value]
        if kind == "MAP":
            assert self.key is not None and self.element is not None
            return {self.key.from_json(k): self.element.from_json(v) for k, v in value.items()}
        if kind == "ROW":
            from pyflink.common import Row

            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {value!r}")
            return Row(**{n: t.from_json(value.get(n)) for n, t in self.fields})
        raise ValueError(f"unsupported type {kind}")


def _decimal(value: Any, scale: int) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc
    return number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return dt.datetime.fromisoformat(str(value))


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)
