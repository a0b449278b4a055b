"""Kafka JSON tables of the SQL runner, without Flink: the DDL plan, the type rules, the decoder.

The decoder gets every case of the hostile corpus as the raw row the Kafka table
hands it (bytes + coordinates) and must give each its documented outcome without
raising; the end-to-end run is tests/test_sql_hostile.py.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from pyflink.common import Row

from streaming_agents.runtime.events import Limits
from streaming_agents.sql.jsonrows import DecodeRecords, Mismatch, column_value
from streaming_agents.sql.jsonsource import JsonSource, plan_json_source
from streaming_agents.sql.lexer import split_statements
from streaming_agents.sql.typeparse import parse_columns, parse_type
from streaming_agents.testing.hostile import NO_KEY, OUTPUT, corpus

DDL = """
CREATE TABLE orders (
  id      STRING NOT NULL COMMENT 'the order',
  amount  DECIMAL(8, 2),
  items   ARRAY<ROW<sku STRING, qty INT>>,
  `at`    TIMESTAMP(3),
  seen    TIMESTAMP_LTZ(3),
  part    INT METADATA FROM 'partition' VIRTUAL,
  hdrs    MAP<STRING, BYTES> METADATA FROM 'headers',
  doubled AS amount * 2,
  WATERMARK FOR `at` AS `at` - INTERVAL '5' SECOND,
  PRIMARY KEY (id) NOT ENFORCED
) WITH ('connector' = 'kafka', 'topic' = 'orders', 'format' = 'json',
        'properties.bootstrap.servers' = 'b:9092', 'properties.group.id' = 'g',
        'json.fail-on-missing-field' = 'true', 'input.max-depth' = '20',
        'properties.sasl.jaas.config' = '${file:/s.properties:jaas}')
"""


def _plan(text: str) -> JsonSource | str | None:
    return plan_json_source(split_statements(text)[0])


def test_a_kafka_json_table_is_planned_with_its_columns_options_and_stand_ins() -> None:
    source = _plan(DDL)
    assert isinstance(source, JsonSource)
    assert [n for n, _ in source.physical] == ["id", "amount", "items", "at", "seen"]
    assert source.physical[0][1] == parse_type("STRING NOT NULL")
    assert source.physical[2][1].sql() == "ARRAY<ROW<`sku` STRING, `qty` INT>>"
    assert [(n, k) for n, _, k in source.metadata] == [("part", "partition"), ("hdrs", "headers")]
    assert source.computed == [("doubled", "amount * 2")]
    assert source.watermark == ("at", "`at` - INTERVAL '5' SECOND")
    assert source.order == ["id", "amount", "items", "at", "seen", "part", "hdrs", "doubled"]
    assert source.dlq_topic == "orders.dead-letters" and source.limits.max_depth == 20
    raw = source.raw_ddl()
    assert "'format' = 'raw'" in raw and "json." not in raw and "input." not in raw
    assert "METADATA FROM 'headers'" in raw and "'properties.group.id' = 'g'" in raw
    dlq = source.dlq_ddl()
    assert "'topic' = 'orders.dead-letters'" in dlq and "exactly-once" in dlq
    assert "group.id" not in dlq and "sasl.jaas.config" in dlq  # security, not consumer options
    assert "'sa-dlq-orders-s7'" in source.dead_letter_insert(7)


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("CREATE TABLE t (x INT) WITH ('connector' = 'kafka', 'format' = 'raw')", None),
        ("CREATE TABLE t (x INT) WITH ('connector' = 'datagen')", None),
        ("CREATE TABLE t WITH ('connector' = 'kafka', 'format' = 'json') AS SELECT 1", None),
        (
            "CREATE TABLE t (x INT) WITH ('connector' = 'kafka', 'value.format' = 'json')",
            "'value.format'/'key.format' = 'json' is left to Flink's JSON format",
        ),
        (
            "CREATE TABLE t (x INT) WITH ('connector' = 'kafka', 'format' = 'json', "
            "'topic' = 'a;b')",
            "give 'dead-letter.topic' (the table reads several topics or a pattern)",
        ),
    ],
)
def test_what_is_not_rewritten(ddl: str, expected: str | None) -> None:
    assert _plan(ddl) == expected


def test_types_are_converted_strictly() -> None:
    ok: list[tuple[str, Any, Any]] = [
        ("STRING", "a", "a"),
        ("STRING", {"b": [1, 2]}, '{"b":[1,2]}'),
        ("BOOLEAN", "TRUE", True),
        ("TINYINT", -128, -128),
        ("BIGINT", " 12 ", 12),
        ("DOUBLE", "1.5", 1.5),
        ("DECIMAL(5, 2)", 123.4, Decimal("123.40")),
        ("DECIMAL(5, 2)", "-999.99", Decimal("-999.99")),
        ("DATE", "2024-02-29", dt.date(2024, 2, 29)),
        ("TIMESTAMP(3)", "2024-01-02 03:04:05.678", dt.datetime(2024, 1, 2, 3, 4, 5, 678000)),
        ("BYTES", "AP8=", b"\x00\xff"),
        ("MAP<INT, STRING>", {"7": "x"}, {7: "x"}),
        ("ARRAY<INT>", [1, None], [1, None]),
    ]
    for text, value, expected in ok:
        assert column_value(parse_type(text), value) == expected, text
    assert column_value(parse_type("TIMESTAMP_LTZ(3)"), "1970-01-01T00:00:01Z", top=True) == 1000
    bad: list[tuple[str, Any]] = [
        ("BOOLEAN", "yes"),
        ("INT", 1.5),
        ("INT", 2**31),
        ("TINYINT", 128),
        ("BIGINT", "abc"),
        ("BIGINT", True),
        ("BIGINT", {"n": 1}),
        ("FLOAT", 1e39),
        ("DECIMAL(5, 2)", "1.234"),
        ("DECIMAL(5, 2)", 1234.5),
        ("DATE", "2024-02-30"),
        ("TIMESTAMP(3)", "2024-01-02T03:04:05+02:00"),
        ("BYTES", "not base64!"),
        ("ARRAY<INT>", {"a": 1}),
        ("ROW<a INT NOT NULL>", {"b": 1}),
        ("STRING NOT NULL", None),
    ]
    for text, value in bad:
        with pytest.raises(Mismatch):
            column_value(parse_type(text), value)
    with pytest.raises(Mismatch, match="UTC offset"):
        column_value(parse_type("TIMESTAMP_LTZ(3)"), "2024-01-02 03:04:05", top=True)


def _record(value: bytes | None, offset: int) -> Row:
    return Row(value=value, topic="in", partition=0, offset=offset, ts=None)


def test_every_hostile_case_becomes_a_row_or_a_dead_letter_without_raising() -> None:
    decoder = DecodeRecords("events", parse_columns("k STRING NOT NULL, seq BIGINT"), [], Limits())
    for offset, case in enumerate(corpus({"k": "base", "seq": 0}, "k")):
        (row,) = list(decoder(_record(case.value, offset)))
        dead = row[0]
        expect = case.expect
        if expect == NO_KEY:
            expect = "type mismatch" if json.loads(case.value or b"{}").get("k") is None else OUTPUT
        if expect == OUTPUT:
            assert dead is None and row[1] is not None, (case.name, dead)
            continue
        letter = json.loads(dead)
        assert letter["reason"] == expect, (case.name, letter["reason"], letter["error"])
        assert letter["source"] == {"topic": "in", "partition": 0, "offset": offset,
                                    "timestamp_ms": None}  # fmt: skip
        assert len(dead) <= Limits().max_record_bytes and letter["agent"] == "sql:events"
        assert list(row[1:]) == [None, None]


def test_a_null_in_the_watermarks_time_column_is_a_dead_letter_not_a_failed_job() -> None:
    physical = parse_columns("k STRING, `at` TIMESTAMP(3)")
    decoder = DecodeRecords("events", physical, [], Limits(), rowtime="at")
    good = b'{"k": "a", "at": "2024-01-02 03:04:05"}'
    (row,) = list(decoder(_record(good, 0)))
    assert row[0] is None and row[2] == dt.datetime(2024, 1, 2, 3, 4, 5)
    for offset, value in enumerate([b'{"k": "a"}', b'{"k": "a", "at": null}'], start=1):
        (row,) = list(decoder(_record(value, offset)))
        letter = json.loads(row[0])
        assert letter["reason"] == "type mismatch" and "WATERMARK" in letter["error"], letter
