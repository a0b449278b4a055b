"""Column types: pydantic -> Flink, SQL text -> Flink, values both ways (no JVM)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import AwareDatetime, BaseModel, Field

from streaming_agents.errors import ConfigError
from streaming_agents.sql.lexer import SqlScriptError
from streaming_agents.sql.typemap import from_pydantic, to_pydantic
from streaming_agents.sql.typeparse import parse_columns, parse_type
from streaming_agents.sql.types import SqlType


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Line(BaseModel):
    sku: str
    qty: int
    price: Decimal = Field(max_digits=8, decimal_places=2)


class Order(BaseModel):
    label: Literal["refund", "ship"]
    score: float
    urgent: bool
    total: Decimal = Field(max_digits=10, decimal_places=2)
    placed: dt.datetime
    seen: AwareDatetime | None = None
    day: dt.date
    lines: list[Line]
    tags: tuple[str, ...]
    counts: dict[str, int]
    colour: Colour
    note: str | None = None
    anything: Any = None


def test_pydantic_model_maps_to_nested_flink_row() -> None:
    row = from_pydantic(Order)
    assert row.sql() == (
        "ROW<`label` STRING NOT NULL, `score` DOUBLE NOT NULL, `urgent` BOOLEAN NOT NULL, "
        "`total` DECIMAL(10, 2) NOT NULL, `placed` TIMESTAMP(3) NOT NULL, "
        "`seen` TIMESTAMP_LTZ(3), `day` DATE NOT NULL, "
        "`lines` ARRAY<ROW<`sku` STRING NOT NULL, `qty` BIGINT NOT NULL, "
        "`price` DECIMAL(8, 2) NOT NULL> NOT NULL> NOT NULL, "
        "`tags` ARRAY<STRING NOT NULL> NOT NULL, `counts` MAP<STRING NOT NULL, BIGINT NOT NULL> "
        "NOT NULL, `colour` STRING NOT NULL, `note` STRING, `anything` STRING> NOT NULL"
    )
    assert parse_type(row.sql()) == row, "SQL text round-trips"


def test_recursive_models_are_refused() -> None:
    class Node(BaseModel):
        children: list[Node]

    Node.model_rebuild()
    with pytest.raises(ConfigError, match="recursive"):
        from_pydantic(Node)


def test_flink_types_and_type_infos_build() -> None:
    row = from_pydantic(Order)
    data_type = row.data_type()
    assert [f.name for f in data_type.fields][:3] == ["label", "score", "urgent"]
    info = row.type_info()
    assert info.get_field_names() == row.names


def test_values_convert_from_model_json_to_flink_values_and_back() -> None:
    order = Order(
        label="ship",
        score=0.5,
        urgent=True,
        total=Decimal("12.5"),
        placed=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        day=dt.date(2024, 5, 1),
        lines=[Line(sku="a", qty=2, price=Decimal("1.10"))],
        tags=("x",),
        counts={"a": 1},
        colour=Colour.BLUE,
        anything={"k": [1, 2]},
    )
    row_type = from_pydantic(Order)
    row = row_type.from_json(order.model_dump(mode="json"))
    assert row.total == Decimal("12.50")
    assert row.placed == dt.datetime(2024, 5, 1, 10, 0), "aware times become naive UTC"
    assert row.lines[0].price == Decimal("1.10") and row.lines[0].qty == 2
    assert row.colour == "blue" and row.anything == '{"k": [1, 2]}'
    assert row.seen is None and row.note is None
    back = row_type.to_json(row)
    assert back["total"] == "12.50" and back["placed"] == "2024-05-01T10:00:00"
    assert back["lines"] == [{"sku": "a", "qty": 2, "price": "1.10"}]


def test_values_that_do_not_fit_raise() -> None:
    with pytest.raises(ValueError, match="NOT NULL"):
        SqlType("STRING", nullable=False).from_json(None)
    with pytest.raises(TypeError):
        SqlType("BIGINT").from_json(1.5)
    with pytest.raises(TypeError):
        SqlType("ROW", fields=(("a", SqlType("INT")),)).from_json([1])


def test_sql_column_lists_parse_with_comments_and_become_pydantic_models() -> None:
    row = parse_columns(
        "category STRING NOT NULL COMMENT 'billing or other', urgency INT, "
        "amount DECIMAL(6, 2), at TIMESTAMP(3) WITH LOCAL TIME ZONE, "
        "items ARRAY<ROW<sku VARCHAR(10), qty INTEGER>>, attrs MAP<STRING, DOUBLE PRECISION>"
    )
    assert row.names == ["category", "urgency", "amount", "at", "items", "attrs"]
    assert row.fields[3][1] == SqlType("TIMESTAMP_LTZ", precision=3)
    model = to_pydantic(row)
    schema = model.model_json_schema()
    assert schema["properties"]["category"]["description"] == "billing or other"
    assert set(schema["required"]) == set(row.names), "every column is asked for"
    parsed = model.model_validate(
        {
            "category": "billing",
            "urgency": None,
            "amount": "3.14",
            "at": "2024-01-01T00:00:00Z",
            "items": [{"sku": "a", "qty": 1}],
            "attrs": {"x": 1.5},
        }
    )
    value = row.from_json(parsed.model_dump(mode="json"))
    assert value.items[0].sku == "a" and value.urgency is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a STRNG", "unsupported type"),
        ("a ARRAY<STRING", "expected .>."),
        ("a INT b INT", "expected ','"),
    ],
)
def test_bad_column_lists_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SqlScriptError, match=message):
        parse_columns(text)
