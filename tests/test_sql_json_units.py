"""Kafka JSON tables of the SQL runner, without Flink: the DDL plan, the type rules, the decoder.

The decoder gets every case of the hostile corpus as the raw row the Kafka table
hands it (bytes + coordinates) and must give each its documented outcome without
raising; the end-to-end run is tests/test_sql_hostile.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from pyflink.common import Row

from streaming_agents.runtime.events import Limits
from streaming_agents.sql.jsonjobs import JsonSources
from streaming_agents.sql.jsonrows import DecodeRecords, GoodRows, Mismatch, PackRows, column_value
from streaming_agents.sql.jsonsource import JsonSource, plan_json_source
from streaming_agents.sql.lexer import split_statements
from streaming_agents.sql.recordlayout import RecordLayout, plan_layout
from streaming_agents.sql.typeparse import parse_columns, parse_type
from streaming_agents.sql.types import SqlType
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

MARK_WHY = "(a byte-order mark), which PyFlink's thread mode drops or garbles"


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
        ("CREATE TABLE t (x INT) WITH ('connector' = 'datagen')", None),
        ("CREATE TABLE t WITH ('connector' = 'kafka', 'format' = 'json') AS SELECT 1", None),
        ("CREATE TABLE t (b BYTES) WITH ('connector' = 'kafka', 'format' = 'raw')", None),
        (
            "CREATE TABLE t (x INT) WITH ('connector' = 'kafka', 'format' = 'raw')",
            "a 'raw' INT value is left to Flink's raw format",
        ),
        (
            "CREATE TABLE t (x STRING) WITH ('connector' = 'kafka', 'format' = 'raw', "
            "'raw.line-delimiter' = '\\n', 'topic' = 'a')",
            "'raw.line-delimiter' is left to Flink's raw format",
        ),
        (
            "CREATE TABLE t (x STRING) WITH ('connector' = 'kafka', 'value.format' = 'avro')",
            "'value.format' = 'avro' is left to Flink's avro format",
        ),
        (
            "CREATE TABLE t (x STRING) WITH ('connector' = 'kafka', 'format' = 'json', "
            "'key.format' = 'csv', 'key.fields' = 'x')",
            "'key.format' = 'csv' is left to Flink's csv format",
        ),
        (
            "CREATE TABLE t (x STRING) WITH ('connector' = 'upsert-kafka', 'format' = 'json')",
            "'connector' = 'upsert-kafka' is left to Flink's formats",
        ),
        (
            "CREATE TABLE t (y INT) WITH ('connector' = 'kafka', 'format' = 'json') LIKE s",
            "LIKE is left to Flink's formats",
        ),
        (
            "CREATE TABLE t (x STRING) WITH ('connector' = 'kafka', 'value.format' = 'json', "
            "'key.format' = 'json', 'key.fields' = 'y', 'topic' = 'a')",
            "'key.fields' names 'y', not a physical column: left to Flink",
        ),
        (
            "CREATE TABLE t (k_x STRING) WITH ('connector' = 'kafka', 'value.format' = 'json', "
            "'key.format' = 'json', 'key.fields' = 'k_x', 'key.fields-prefix' = 'k_', "
            "'topic' = 'a')",
            "this 'key.fields-prefix' is left to Flink (it needs EXCEPT_KEY and prefixed keys)",
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


def _decoder(columns: str, options: dict[str, str] | None = None, **kw: Any) -> DecodeRecords:
    physical = parse_columns(columns)
    layout = plan_layout(options or {"format": "json"}, list(physical.fields))
    assert isinstance(layout, RecordLayout), layout
    return DecodeRecords("events", physical, [], Limits(), layout, **kw)


def _refused_k(value: bytes | None) -> bool:
    """Whether the corpus event's ``k`` cannot be a ``k STRING NOT NULL`` column."""
    k = json.loads(value or b"{}").get("k")
    return k is None or (isinstance(k, str) and k.startswith(("\ufeff", "\ufffe")))


def test_every_hostile_case_becomes_a_row_or_a_dead_letter_without_raising() -> None:
    decoder = _decoder("k STRING NOT NULL, seq BIGINT")
    for offset, case in enumerate(corpus({"k": "base", "seq": 0}, "k")):
        (row,) = list(decoder(_record(case.value, offset)))
        dead = row[0]
        expect = case.expect
        if expect == NO_KEY:  # k is a column here: only a missing/null/BOM-led one is refused
            expect = "type mismatch" if _refused_k(case.value) else OUTPUT
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
    decoder = _decoder("k STRING, `at` TIMESTAMP(3)", rowtime="at")
    good = b'{"k": "a", "at": "2024-01-02 03:04:05"}'
    (row,) = list(decoder(_record(good, 0)))
    assert row[0] is None and row[2] == dt.datetime(2024, 1, 2, 3, 4, 5)
    for offset, value in enumerate([b'{"k": "a"}', b'{"k": "a", "at": null}'], start=1):
        (row,) = list(decoder(_record(value, offset)))
        letter = json.loads(row[0])
        assert letter["reason"] == "type mismatch" and "WATERMARK" in letter["error"], letter


KV_DDL = """
CREATE TABLE kv (
  k_id    STRING NOT NULL,
  k_n     INT,
  k       STRING NOT NULL,
  seq     BIGINT,
  `offset` BIGINT METADATA VIRTUAL
) WITH ('connector' = 'kafka', 'topic' = 'kv', 'properties.bootstrap.servers' = 'b:9092',
        'key.format' = 'json', 'key.fields' = 'k_id;k_n', 'key.fields-prefix' = 'k_',
        'key.json.fail-on-missing-field' = 'false', 'value.format' = 'json',
        'value.json.fail-on-missing-field' = 'true', 'value.fields-include' = 'EXCEPT_KEY')
"""


def test_a_key_and_value_json_table_reads_both_as_bytes_with_its_layout() -> None:
    source = _plan(KV_DDL)
    assert isinstance(source, JsonSource)
    key, value = source.layout.key, source.layout.value
    assert key is not None and key.format == "json" and key.fields == ("id", "n")
    assert [n for n, _ in key.columns] == ["k_id", "k_n"] and not key.fail_on_missing
    assert value.format == "json" and value.fields == ("k", "seq") and value.fail_on_missing
    raw = source.raw_ddl()
    assert raw.startswith("CREATE TEMPORARY TABLE `sa_raw__kv` (`sa_key` BYTES, `value` BYTES")
    for option in ("'key.format' = 'raw'", "'key.fields' = 'sa_key'", "'value.format' = 'raw'",
                   "'value.fields-include' = 'EXCEPT_KEY'"):  # fmt: skip
        assert option in raw, raw
    assert "json" not in raw and "prefix" not in raw and "'format'" not in raw
    assert source.layout.describe() == "JSON values with JSON keys"


def _kv_record(key: bytes | None, value: bytes | None, offset: int) -> Row:
    return Row(value=value, topic="kv", partition=0, offset=offset, ts=None, sa_key=key)


def test_keys_are_decoded_by_the_same_rules_and_a_bad_key_is_its_own_dead_letter() -> None:
    source = _plan(KV_DDL)
    assert isinstance(source, JsonSource)
    decoder = DecodeRecords(
        "kv", SqlType("ROW", fields=tuple(source.physical)), [], Limits(), source.layout
    )
    value = b'{"k": "a", "seq": 1}'
    cases: list[tuple[bytes | None, bytes | None, Any]] = [
        (b'{"id": "x", "n": "7"}', value, ["x", 7, "a", 1]),
        (b'{"id": 5}', value, ["5", None, "a", 1]),  # STRING takes JSON text; n missing: NULL
        (None, value, ("malformed key", "no record key (null) but column 'k_id'")),
        (b"", value, ("malformed key", "record key: empty value")),
        (b'\xff{"id": "x"}', value, ("malformed key", "record key: not UTF-8")),
        (b"plain", value, ("malformed key", "record key: not JSON")),
        (b'["x"]', value, ("malformed key", "record key: not a JSON object")),
        (b'{"id": "a", "id": "b"}', value, ("malformed key", "record key: duplicate key")),
        (b"[" * 100_000, value, ("malformed key", "record key: nested 100000 levels")),
        (b'{"id": "' + b"x" * 600_000 + b'"}', value, ("oversized key", "record key: 600")),
        (b'{"n": 1}', value, ("key type mismatch", "column 'k_id' (record key): null for")),
        (b'{"id": "x", "n": 1.5}', value, ("key type mismatch", "column 'k_n' (record key)")),
        (b'{"id": "x"}', b'{"k": "a"}', ("type mismatch", "column 'seq': missing field")),
        (b"\xff", None, ("malformed event", "null value (a tombstone)")),  # value first
    ]
    for offset, (key, raw, expected) in enumerate(cases):
        (row,) = list(decoder(_kv_record(key, raw, offset)))
        if isinstance(expected, list):
            assert row[0] is None and list(row[1:]) == expected, (offset, row[0])
            continue
        letter = json.loads(row[0])
        assert (letter["reason"], letter["error"][: len(expected[1])]) == expected, letter
        assert letter["source"]["offset"] == offset and list(row[1:]) == [None] * 4
        if raw is not None:
            assert letter["original"]["bytes"] == len(raw)  # the value: readable at its offset


def test_with_value_fields_include_all_the_value_decides_and_a_null_key_is_no_dead_letter() -> None:
    physical = parse_columns("id STRING NOT NULL, seq BIGINT")
    options = {"key.format": "raw", "key.fields": "id", "value.format": "json"}
    layout = plan_layout(options, list(physical.fields))
    assert isinstance(layout, RecordLayout) and layout.key is not None
    decoder = DecodeRecords("t", physical, [], Limits(), layout)
    for key, value, expected in [
        (b"from-key", b'{"id": "from-value", "seq": 1}', ["from-value", 1]),
        (None, b'{"id": "v", "seq": 2}', ["v", 2]),
    ]:
        (row,) = list(decoder(_kv_record(key, value, 0)))
        assert row[0] is None and list(row[1:]) == expected
    (row,) = list(decoder(_kv_record(b"k", b'{"seq": 2}', 0)))
    assert json.loads(row[0])["error"] == "column 'id': null for a NOT NULL column"
    (row,) = list(decoder(_kv_record(b"\xc3", b'{"id": "v", "seq": 2}', 0)))
    assert json.loads(row[0])["reason"] == "malformed key"  # a raw STRING key: strict UTF-8


def _raw_decoder(column: str, **options: str) -> DecodeRecords:
    physical = parse_columns(column)
    source = _plan(
        f"CREATE TABLE lines ({column}) WITH ('connector' = 'kafka', 'topic' = 'in', "
        + ", ".join(f"'{k}' = '{v}'" for k, v in {"format": "raw", **options}.items())
        + ")"
    )
    assert isinstance(source, JsonSource), source
    assert "'format' = 'raw'" in source.raw_ddl() and "charset" not in source.raw_ddl()
    return DecodeRecords("lines", physical, [], Limits(), source.layout)


def test_a_raw_string_table_decodes_strictly_and_never_repairs_bytes() -> None:
    decoder = _raw_decoder("line STRING NOT NULL")
    extra = [b"\xc0\xaf", b"\xed\xa0\x80", b"caf\xc3", b"", "é \U0001f600".encode()]
    extra += ["\ufffeab".encode(), "a\ufeff\ufffe".encode()]  # a mark: refused only first
    values = [c.value for c in corpus({"k": "base", "seq": 0}, "k")] + extra
    outcomes = set()
    for offset, value in enumerate(values):
        (row,) = list(decoder(_record(value, offset)))
        try:
            text = None if value is None else value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        marked = text is not None and text.startswith(("\ufeff", "\ufffe"))
        if text is not None and not marked and len(value or b"") <= Limits().max_event_bytes:
            assert row[0] is None and row[1] == text, offset
            outcomes.add("row")
            continue
        letter = json.loads(row[0])
        assert row[1] is None and letter["source"]["offset"] == offset
        if value is None:
            assert letter["reason"] == "malformed event", letter
            assert letter["error"].startswith("null value (a tombstone) but column 'line'")
        elif marked:  # the corpus' UTF-8 BOM before JSON, and U+FFFE
            assert letter["reason"] == "malformed event", letter
            mark = f"text starts with U+{ord(text[0]):04X} (a byte-order mark)"
            assert letter["error"].startswith(mark), letter
            assert "thread mode" in letter["error"]
            assert base64.b64decode(letter["original_b64"]) == value
            outcomes.add("marked")
        elif text is None:
            assert letter["reason"] == "malformed event" and "not UTF-8" in letter["error"]
            if len(value) <= 4 * 1024:
                assert base64.b64decode(letter["original_b64"]) == value  # the bytes, not U+FFFD
        else:
            assert letter["reason"] == "oversized event", letter
        outcomes.add(letter["reason"])
    assert outcomes == {"row", "marked", "malformed event", "oversized event"}


def test_a_raw_string_tombstone_is_a_null_row_when_the_column_is_nullable() -> None:
    (row,) = list(_raw_decoder("line STRING")(_record(None, 0)))
    assert list(row) == [None, None]
    latin = _raw_decoder("line STRING", **{"raw.charset": "ISO-8859-1"})
    (row,) = list(latin(_record(b"caf\xe9", 1)))
    assert list(row) == [None, "café"]


def test_rows_cross_to_the_good_rows_step_as_bytes_and_come_back_unchanged() -> None:
    decoder = _decoder("k STRING NOT NULL, seq BIGINT")
    (packed,) = list(PackRows(decoder)(_record(b'{"k": "a\\ufeff\\u0000", "seq": 1}', 0)))
    assert packed[0] is None and isinstance(packed[1], bytes)
    (row,) = list(GoodRows()(packed))
    assert list(row) == [None, "a\ufeff\x00", 1]
    (dead,) = list(PackRows(decoder)(_record(b"[", 1)))
    assert dead[1] is None and json.loads(dead[0])["reason"] == "malformed event"
    assert list(GoodRows()(dead)) == []


def test_a_raw_value_with_a_key_is_planned_even_as_bytes() -> None:
    ddl = (
        "CREATE TABLE t (id INT NOT NULL, body {body}) WITH ('connector' = 'kafka', "
        "'topic' = 't', 'key.format' = 'json', 'key.fields' = 'id', 'value.format' = 'raw', "
        "'value.raw.charset' = 'UTF-16', 'value.fields-include' = 'EXCEPT_KEY')"
    )
    for body, describe in [("BYTES", "raw bytes"), ("STRING", "raw text (UTF-16)")]:
        source = _plan(ddl.format(body=body))
        assert isinstance(source, JsonSource), source
        assert source.layout.describe() == f"{describe} values with JSON keys"
        physical = SqlType("ROW", fields=tuple(source.physical))
        decoder = DecodeRecords("t", physical, [], Limits(), source.layout)
        (row,) = list(decoder(_kv_record(b'{"id": 3}', "hé".encode("utf-16"), 0)))
        assert list(row) == [None, 3, "hé" if body == "STRING" else "hé".encode("utf-16")]


class _Recorder:
    """A table environment stand-in recording the DDL it gets (name logic only, no Flink)."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def execute_sql(self, text: str) -> None:
        self.sql.append(text)


def test_a_qualified_table_is_created_read_and_written_by_its_full_name() -> None:
    script = (
        "CREATE TABLE cat.`my db`.t (x STRING) WITH ('connector' = 'kafka', 'topic' = 'a', "
        "'format' = 'raw');\n"
        "INSERT INTO cat.`my db`.t SELECT x FROM other;\n"
        "INSERT INTO out SELECT x FROM cat.`my db`.t;\n"
        "SELECT * FROM t;\n"
        "INSERT INTO cat.`my db`.t SELECT x FROM cat.`my db`.t"
    )
    create, write, read, other, both = split_statements(script)
    source = plan_json_source(create)
    assert isinstance(source, JsonSource), source
    assert source.name == "cat.my db.t" and source.view_path == "`cat`.`my db`.`t`"
    recorder = _Recorder()
    jobs = JsonSources(recorder, "tok")
    assert "table cat.my db.t reads raw text (UTF-8) safely" in jobs.create(create, source)
    assert source.sink_table == "sa_sink_tok_cat_my_db_t"
    assert recorder.sql == [create.text.replace("cat.`my db`.t", "`sa_sink_tok_cat_my_db_t`")]
    assert jobs.read_by(write, "") == [] and jobs.read_by(other, "") == []
    assert jobs.read_by(read, "") == [source] and jobs.read_by(both, "") == [source]
    assert jobs.retarget(write.text) == "INSERT INTO `sa_sink_tok_cat_my_db_t` SELECT x FROM other"


def test_a_string_starting_with_a_byte_order_mark_is_refused_wherever_it_is() -> None:
    # PyFlink's thread mode would hand "\ufeffvictim" to the agent as "victim" (another key's
    # memory) and byte-swap "\ufffe...": no such string may become part of a row.
    physical = (
        "k STRING NOT NULL, r ROW<s STRING>, a ARRAY<STRING>, m MAP<STRING, STRING>, n STRING"
    )
    decoder = _decoder(physical)
    cases: list[tuple[Any, str]] = [
        (
            {"k": "\ufeffvictim"},
            "column 'k': starts with U+FEFF (a byte-order mark), which PyFlink's thread mode drops",
        ),
        (
            {"k": "\ufffeab"},
            "column 'k': starts with U+FFFE (a byte-order mark), which PyFlink's thread mode drops",
        ),
        ({"k": "x", "r": {"s": "\ufeff"}}, "column 'r': field 's': starts with U+FEFF"),
        ({"k": "x", "a": ["ok", "\ufffe"]}, "column 'a': element 1: starts with U+FFFE"),
        ({"k": "x", "m": {"\ufeffk": "v"}}, "column 'm': map key '\\ufeffk': starts with U+FEFF"),
        ({"k": "x", "m": {"k": "\ufeffv"}}, "column 'm': map value of 'k': starts with U+FEFF"),
    ]
    for offset, (event, error) in enumerate(cases):
        for ascii_only in (True, False):  # "\ufeff" escaped or as its UTF-8 bytes
            raw = json.dumps(event, ensure_ascii=ascii_only).encode()
            (row,) = list(decoder(_record(raw, offset)))
            assert row[0] is not None, (event, row)
            letter = json.loads(row[0])
            assert letter["reason"] == "type mismatch", letter
            assert letter["error"].startswith(error), letter["error"]
            assert "drops or garbles on the way to a Python function" in letter["error"]
    # anywhere but first, and in JSON text a STRING column takes, the mark is kept
    kept = {"k": "a\ufeff", "r": {"s": "b\ufffe"}, "a": ["c\ufeff"], "m": {"d\ufeff": "e"},
            "n": {"\ufeff": 1}}  # fmt: skip
    (row,) = list(decoder(_record(json.dumps(kept, ensure_ascii=False).encode(), 9)))
    assert row[0] is None, row[0]
    assert list(row[1:]) == ["a\ufeff", Row(s="b\ufffe"), ["c\ufeff"], {"d\ufeff": "e"},
                             '{"\\ufeff":1}']  # fmt: skip


def test_a_key_column_starting_with_a_byte_order_mark_is_a_key_dead_letter() -> None:
    physical = parse_columns("id STRING NOT NULL, seq BIGINT")
    for key_format, key, expected in [
        (
            "json",
            '{"id": "\ufeffvictim"}'.encode(),
            ("key type mismatch", "column 'id' (record key): starts with U+FEFF"),
        ),
        (
            "json",
            b'{"id": "\\ufffeab"}',
            ("key type mismatch", "column 'id' (record key): starts with U+FFFE"),
        ),
        ("raw", "\ufeffvictim".encode(), ("malformed key", "record key: text starts with U+FEFF")),
        ("raw", "\ufffe".encode(), ("malformed key", "record key: text starts with U+FFFE")),
    ]:
        options = {"key.format": key_format, "key.fields": "id", "value.format": "json",
                   "value.fields-include": "EXCEPT_KEY"}  # fmt: skip
        layout = plan_layout(options, list(physical.fields))
        assert isinstance(layout, RecordLayout) and layout.key is not None
        decoder = DecodeRecords("t", physical, [], Limits(), layout)
        (row,) = list(decoder(_kv_record(key, b'{"seq": 1}', 3)))
        assert row[0] is not None, (key, row)
        letter = json.loads(row[0])
        assert (letter["reason"], letter["error"][: len(expected[1])]) == expected, letter
        assert "thread mode" in letter["error"] and letter["source"]["offset"] == 3
    # a raw value in a charset that keeps a BOM as text (UTF-16-BE): refused as well
    utf16 = _raw_decoder("line STRING", **{"raw.charset": "UTF-16-BE"})
    (row,) = list(utf16(_record("\ufeffhi".encode("utf-16-be"), 4)))
    assert json.loads(row[0])["error"].startswith("text starts with U+FEFF"), row
    (row,) = list(utf16(_record("h\ufeffi".encode("utf-16-be"), 5)))
    assert list(row) == [None, "h\ufeffi"]
