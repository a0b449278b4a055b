"""Build :class:`SqlType` from pydantic models, Flink ``DataType``s and SQL text, and back.

pydantic -> Flink: ``str``/enums/``UUID`` -> STRING, ``int`` -> BIGINT, ``float`` -> DOUBLE,
``bool`` -> BOOLEAN, ``Decimal`` -> DECIMAL(max_digits, decimal_places) (default 38, 18),
``datetime`` -> TIMESTAMP(3) (aware values converted to UTC), ``AwareDatetime`` ->
TIMESTAMP_LTZ(3), ``date`` -> DATE, ``time`` -> TIME(0), ``bytes`` -> STRING, lists, tuples and
sets -> ARRAY, ``dict[str, T]`` -> MAP, nested models -> ROW, ``T | None`` -> nullable (else
NOT NULL).  Anything else (``Any``, unions of several types) becomes STRING holding JSON.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
import uuid
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, create_model

from streaming_agents.errors import ConfigError
from streaming_agents.sql.types import SqlType

__all__ = ["from_data_type", "from_pydantic", "to_pydantic"]

_STRING = SqlType("STRING")


def from_pydantic(model: type[BaseModel], _seen: tuple[type, ...] = ()) -> SqlType:
    """The ROW type of a pydantic model (fields NOT NULL unless ``Optional``)."""
    if model in _seen:
        raise ConfigError(f"{model.__name__} is recursive; Flink row types cannot be")
    fields = []
    notes = []
    for name, info in model.model_fields.items():
        sql_type = _annotation(info.annotation, info.metadata, (*_seen, model))
        fields.append((name, sql_type))
        notes.append(info.description or "")
    return SqlType("ROW", nullable=False, fields=tuple(fields), descriptions=tuple(notes))


def _annotation(tp: Any, metadata: list[Any], seen: tuple[type, ...]) -> SqlType:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(tp)
        return _annotation(inner, [*metadata, *extra], seen)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        base = _annotation(args[0], metadata, seen) if len(args) == 1 else _STRING
        return base.with_nullable(nullable or base.nullable)
    if origin is typing.Literal:
        values = typing.get_args(tp)
        if all(isinstance(v, bool) for v in values):
            return SqlType("BOOLEAN", False)
        if all(isinstance(v, int) for v in values):
            return SqlType("BIGINT", False)
        return SqlType("STRING", False)
    if origin in (list, tuple, set, frozenset) or _is_abc(origin, "Sequence", "Set"):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if origin is tuple and len(set(args)) > 1:
            return SqlType("STRING", False)
        element = _annotation(args[0], [], seen) if args else _STRING
        return SqlType("ARRAY", False, element=element)
    if origin is dict or _is_abc(origin, "Mapping"):
        key_type, value_type = (*typing.get_args(tp), str, Any)[:2]
        return SqlType(
            "MAP",
            False,
            key=_annotation(key_type, [], seen).with_nullable(False),
            element=_annotation(value_type, [], seen),
        )
    return _scalar(tp, metadata, seen)


def _is_abc(origin: Any, *names: str) -> bool:
    return (
        origin is not None
        and getattr(origin, "__module__", "") == "collections.abc"
        and (origin.__name__ in names)
    )


def _scalar(tp: Any, metadata: list[Any], seen: tuple[type, ...]) -> SqlType:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return from_pydantic(tp, seen)
    if tp is AwareDatetime:
        return SqlType("TIMESTAMP_LTZ", False, precision=3)
    if tp is bool:
        return SqlType("BOOLEAN", False)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        kind = "BIGINT" if all(isinstance(v, int) for v in values) else "STRING"
        return SqlType(kind, False)
    if tp is int:
        return SqlType("BIGINT", False)
    if tp is float:
        return SqlType("DOUBLE", False)
    if tp is Decimal:
        digits = next((m.max_digits for m in metadata if getattr(m, "max_digits", None)), None)
        places = next(
            (m.decimal_places for m in metadata if getattr(m, "decimal_places", None) is not None),
            None,
        )
        precision = min(38, digits or 38)
        scale = places if places is not None else (18 if digits is None else 0)
        return SqlType("DECIMAL", False, precision=precision, scale=min(scale, precision))
    if tp is dt.datetime:
        return SqlType("TIMESTAMP", False, precision=3)
    if tp is dt.date:
        return SqlType("DATE", False)
    if tp is dt.time:
        return SqlType("TIME", False, precision=0)
    if tp in (str, bytes, uuid.UUID):
        return SqlType("STRING", False)
    return _STRING  # Any, object, unions of several types: JSON text


def from_data_type(data_type: Any, where: str = "column") -> SqlType:
    """The :class:`SqlType` of a PyFlink ``DataType`` (a table column)."""
    from pyflink.table import types as ft

    nullable = bool(getattr(data_type, "_nullable", True))
    simple = [
        (ft.CharType, "STRING"),
        (ft.VarCharType, "STRING"),
        (ft.BooleanType, "BOOLEAN"),
        (ft.TinyIntType, "TINYINT"),
        (ft.SmallIntType, "SMALLINT"),
        (ft.IntType, "INT"),
        (ft.BigIntType, "BIGINT"),
        (ft.FloatType, "FLOAT"),
        (ft.DoubleType, "DOUBLE"),
        (ft.DateType, "DATE"),
        (ft.BinaryType, "BYTES"),
        (ft.VarBinaryType, "BYTES"),
    ]
    for cls, kind in simple:
        if isinstance(data_type, cls):
            return SqlType(kind, nullable)
    if isinstance(data_type, ft.DecimalType):
        return SqlType("DECIMAL", nullable, precision=data_type.precision, scale=data_type.scale)
    if isinstance(data_type, ft.TimeType):
        return SqlType("TIME", nullable, precision=data_type.precision)
    if isinstance(data_type, ft.TimestampType):
        return SqlType("TIMESTAMP", nullable, precision=data_type.precision)
    if isinstance(data_type, ft.LocalZonedTimestampType):
        return SqlType("TIMESTAMP_LTZ", nullable, precision=data_type.precision)
    if isinstance(data_type, ft.ArrayType):
        return SqlType("ARRAY", nullable, element=from_data_type(data_type.element_type, where))
    if isinstance(data_type, ft.MapType):
        key = from_data_type(data_type.key_type, where)
        return SqlType(
            "MAP", nullable, key=key, element=from_data_type(data_type.value_type, where)
        )
    if isinstance(data_type, ft.RowType):
        fields = tuple((f.name, from_data_type(f.data_type, where)) for f in data_type.fields)
        return SqlType("ROW", nullable, fields=fields)
    raise ConfigError(
        f"{where} has type {data_type}, which an agent table cannot carry; "
        "cast it (e.g. to STRING) or leave it out"
    )


# -- pydantic models from SQL types ----------------------------------------------------------

_PY = {
    "STRING": str,
    "BOOLEAN": bool,
    "TINYINT": int,
    "SMALLINT": int,
    "INT": int,
    "BIGINT": int,
    "FLOAT": float,
    "DOUBLE": float,
    "DATE": dt.date,
    "TIME": dt.time,
    "TIMESTAMP": dt.datetime,
    "TIMESTAMP_LTZ": AwareDatetime,
    "BYTES": str,
}


def to_pydantic(row: SqlType, name: str = "Output") -> type[BaseModel]:
    """A pydantic model for a ROW type: every field required, ``None`` allowed when nullable."""
    fields: dict[str, Any] = {}
    notes = row.descriptions or ("",) * len(row.fields)
    for index, ((column, sql_type), note) in enumerate(zip(row.fields, notes, strict=True)):
        annotation = _python_type(sql_type, f"{name}_{index}")
        fields[column] = (annotation, Field(..., description=note or None))
    model: type[BaseModel] = create_model(name, **fields)
    return model


def _python_type(sql_type: SqlType, name: str) -> Any:
    kind = sql_type.kind
    if kind == "DECIMAL":
        base: Any = typing.Annotated[
            Decimal, Field(max_digits=sql_type.precision, decimal_places=sql_type.scale)
        ]
    elif kind == "ARRAY":
        assert sql_type.element is not None
        base = list[_python_type(sql_type.element, name)]  # type: ignore[misc]
    elif kind == "MAP":
        assert sql_type.element is not None
        base = dict[str, _python_type(sql_type.element, name)]  # type: ignore[misc]
    elif kind == "ROW":
        base = to_pydantic(sql_type, name)
    else:
        base = _PY[kind]
    return base | None if sql_type.nullable else base
