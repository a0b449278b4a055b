"""No record a producer can write stops a SQL job: the hostile corpus via ``streaming-agents sql``.

The script (``tests/sql_scripts/hostile_tables.sql``) declares three Kafka
tables on ONE input topic, each read by the runner as bytes with coordinates
and decoded safely (:mod:`streaming_agents.sql.jsonsource`,
:mod:`streaming_agents.sql.recordlayout`):

* ``events``: ``'format' = 'json'``, through an agent (``AI_RUN_AGENT``);
* ``keyed``: ``'key.format' = 'json'`` (column ``k_id`` from the record key,
  ``'key.fields-prefix' = 'k_'``, ``EXCEPT_KEY``) + ``'value.format' = 'json'``;
* ``hostile.lines``: ``'format' = 'raw'`` with a ``STRING NOT NULL`` column, a
  qualified name.

Every case of :mod:`streaming_agents.testing.hostile`, plus type mismatches,
invalid UTF-8 a JVM decoder would repair, bad record keys and strings starting
with U+FEFF/U+FFFE (a column, a key column, a nested field, a raw line: PyFlink's
thread mode would drop or garble the mark, so they are refused), is written with
a valid record after each; the three INSERTs are one statement set (one job);
the CLI runs as a new process from a folder outside the repo, against the
session broker and the fake LLM.  Checked per table: exit code 0, one
committed output per record it can use (with its offset; ``lines`` outputs
the SHA-256 of the text, equal to the record's bytes', so nothing was
repaired), one dead letter per record it cannot use with its reason,
size/digest and exact offset, nothing else, every record within the size
limit; the runner's counts (its fail-loudly verdict) match them exactly.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from hostile_support import check_outcomes, collect

from streaming_agents.runtime.events import Limits
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import (
    MALFORMED,
    NO_KEY,
    OUTPUT,
    OVERSIZED,
    Case,
    corpus,
    create_corpus_topic,
    interleaved,
    produce_cases,
)
from tests.test_sql_cli import run_sql_cli

SCRIPT = Path(__file__).resolve().parent / "sql_scripts" / "hostile_tables.sql"
MISMATCH = "type mismatch"
BASE = {"k": "base", "seq": 0}
VALID = json.dumps(BASE).encode()
KEEP_KEY = ("valid, null record key", "valid, binary record key")
# bad record keys (the value is valid): the outcome in `keyed` (the other tables ignore keys)
KEYS: dict[str, tuple[bytes | None, str]] = {
    "valid, null record key": (None, "malformed key"),  # k_id is NOT NULL
    "valid, binary record key": (b"\x00\xff\xfe", "malformed key"),
    "key empty": (b"", "malformed key"),
    "key not JSON": (b"order-17", "malformed key"),
    "key a JSON array": (b'["x"]', "malformed key"),
    "key with NaN": (b'{"id": NaN}', "malformed key"),
    "key nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "malformed key"),
    "key 600 KB": (b'{"id": "' + b"x" * 600_000 + b'"}', "oversized key"),
    "key id missing": (b'{"other": 1}', "key type mismatch"),
    "key id null": (b'{"id": null}', "key type mismatch"),
    "key id a number (STRING takes JSON text)": (b'{"id": 7}', OUTPUT),
    # PyFlink's thread mode would drop / byte-swap the mark: refused before the row crosses
    "key id starting with U+FEFF": ('{"id": "\ufeffid0"}'.encode(), "key type mismatch"),
    "key id starting with U+FFFE": (b'{"id": "\\ufffeid0"}', "key type mismatch"),
}
# a string of `keyed`'s ROW column (declared only there): the outcome in `keyed`
NESTED = {
    "nested string starting with U+FEFF": ({"tag": "\ufefft"}, MISMATCH),
    "nested string with U+FEFF inside": ({"tag": "t\ufeff"}, OUTPUT),
}
# in the error of every case refused for a leading byte-order mark
MARK = "(a byte-order mark), which PyFlink's thread mode"


def _valid(i: int) -> dict[str, Any]:
    return {"k": f"v{i}", "seq": i}


def _marked(text: Any) -> bool:
    return isinstance(text, str) and text.startswith(("\ufeff", "\ufffe"))


def _sql_cases() -> list[Case]:
    """The corpus with the outcomes of ``events``: ``k STRING NOT NULL, seq BIGINT``."""
    cases = []
    for case in corpus(BASE, "k"):
        if case.expect == NO_KEY:  # k is a column: a missing/null one or a leading mark refused
            k = json.loads(case.value or b"{}").get("k")
            expect = MISMATCH if k is None or _marked(k) else OUTPUT
            case = Case(case.name, case.value, expect, case.key, case.headers)
        cases.append(case)
    typed = [
        ("seq a word", b'{"k": "x", "seq": "abc"}', MISMATCH),
        ("seq a fraction", b'{"k": "x", "seq": 1.5}', MISMATCH),
        ("seq above BIGINT", b'{"k": "x", "seq": 9223372036854775808}', MISMATCH),
        ("seq an object", b'{"k": "x", "seq": {"n": 1}}', MISMATCH),
        ("seq a numeric string", b'{"k": "x", "seq": " 12 "}', OUTPUT),
        ("k a number (STRING takes JSON text)", b'{"k": 7, "seq": 1}', OUTPUT),
        # bytes a JVM decoder turns into U+FFFD (Flink's raw STRING): never repaired here
        ("overlong UTF-8", b'{"k": "\xc0\xaf", "seq": 1}', MALFORMED),
        ("UTF-8-encoded surrogate", b'{"k": "\xed\xa0\x80", "seq": 1}', MALFORMED),
        ("truncated multibyte", b'{"k": "caf\xc3", "seq": 1}', MALFORMED),
        ("Latin-1 text", b'{"k": "caf\xe9", "seq": 1}', MALFORMED),
        # "\ufeffv0" would reach the agent as "v0": another conversation's memory
        ("k starting with U+FEFF (as UTF-8)", '{"k": "\ufeffv0", "seq": 1}'.encode(), MISMATCH),
        ("k starting with U+FFFE (escaped)", b'{"k": "\\ufffev0", "seq": 1}', MISMATCH),
        ("k with U+FEFF inside", '{"k": "v\ufeff0", "seq": 1}'.encode(), OUTPUT),
        ("U+FFFE before JSON", "\ufffe".encode() + VALID, MALFORMED),
    ]
    keys = [(name, VALID, OUTPUT) for name in KEYS if name not in KEEP_KEY]
    nested = [(n, json.dumps({**BASE, "meta": m}).encode(), OUTPUT) for n, (m, _) in NESTED.items()]
    rows = [*typed, *keys, *nested]
    return [*cases, *(Case(name, value, expect) for name, value, expect in rows)]


def _records() -> list[Case]:
    """Every case then a valid record; each with a JSON record key unless the case is a key's."""
    records = []
    for n, (case, _) in enumerate(interleaved(_sql_cases(), _valid)):
        key = KEYS[case.name][0] if case.name in KEYS else json.dumps({"id": f"id{n}"}).encode()
        records.append(replace(case, key=key))
    return records


def _keyed(case: Case) -> Case:
    """The outcome in ``keyed``: the value's when it is bad (decoded first), else the key's."""
    if case.name in NESTED:
        return replace(case, expect=NESTED[case.name][1])
    if case.expect != OUTPUT or case.name not in KEYS:
        return case
    return replace(case, expect=KEYS[case.name][1])


def _line(case: Case) -> Case:
    """The outcome in ``lines`` (``line STRING NOT NULL``): strict UTF-8, size limit."""
    value = case.value
    if value is None:
        return replace(case, expect=MALFORMED)
    if len(value) > Limits().max_event_bytes:
        return replace(case, expect=OVERSIZED)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return replace(case, expect=MALFORMED)
    return replace(case, expect=MALFORMED if _marked(text) else OUTPUT)


def _refused_for_a_mark(cases: list[Case], dead: list[dict[str, Any]]) -> set[str]:
    """The cases whose dead letter says a string starts with a byte-order mark."""
    return {cases[d["source"]["offset"]].name for d in dead if MARK in d["error"]}


def _run(bootstrap: str, topic: str, outs: str, api_base: str, tmp_path: Path) -> Any:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return run_sql_cli(
        SCRIPT,
        "--var", f"bootstrap={bootstrap}",
        "--var", f"events_topic={topic}",
        "--var", f"outs_topic={outs}",
        "--var", f"txn_prefix=hostile-{outs}",
        "--var", f"api_base={api_base}",
        "--journal", f"sqlite://{tmp_path / 'journal'}",
        "--restart-attempts", "0",
        "--checkpoint-interval", "1000",
        cwd=cwd,
        timeout_s=300,
    )  # fmt: skip


def test_hostile_records_through_a_sql_script_are_processed_or_dead_lettered(
    kafka_bootstrap: str, topic_factory: Any, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    topic = f"sql-hostile-in-{uuid.uuid4().hex[:10]}"
    outs = topic_factory("sql-hostile-out")
    tables = {  # table -> (its cases, output topic, dead-letter topic)
        "events": ([], outs, f"{topic}.dead-letters"),
        "keyed": ([], f"{outs}-keyed", f"{topic}.keyed-dead-letters"),
        "hostile.lines": ([], f"{outs}-lines", f"{topic}.lines-dead-letters"),
    }
    for name in (topic, *(t for _, out, dlq in tables.values() for t in (out, dlq))):
        if name != outs:
            create_corpus_topic(kafka_bootstrap, name)
    records = _records()
    produce_cases(kafka_bootstrap, topic, records)
    started = time.monotonic()
    result = _run(kafka_bootstrap, topic, outs, fake_llm.base_url, tmp_path)
    took = time.monotonic() - started
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    assert "table events reads JSON safely" in result.stdout, result.stdout[-2000:]
    assert "table keyed reads JSON values with JSON keys safely" in result.stdout
    assert "table hostile.lines reads raw text (UTF-8) safely" in result.stdout
    assert "failed" not in result.stderr and "warning" not in result.stderr, result.stderr[-3000:]
    expected = {"events": records, "keyed": [_keyed(c) for c in records],
                "hostile.lines": [_line(c) for c in records]}  # fmt: skip
    with ThreadPoolExecutor(3) as pool:
        reads = {
            table: pool.submit(collect, kafka_bootstrap, expected[table], out, dlq)
            for table, (_, out, dlq) in tables.items()
        }
        got = {table: read.result() for table, read in reads.items()}
    for table, (outputs, dead) in got.items():
        for letter in dead:
            assert letter["agent"] == f"sql:{table}" and letter["reason"], letter
        check_outcomes(expected[table], outputs, dead, topic)
    marks = {t: _refused_for_a_mark(expected[t], dead) for t, (_, dead) in got.items()}
    events = {"key starting with U+FEFF", "key starting with U+FFFE",  # the corpus' k
              "k starting with U+FEFF (as UTF-8)", "k starting with U+FFFE (escaped)"}  # fmt: skip
    keyed = {*events, "key id starting with U+FEFF", "key id starting with U+FFFE",
             "nested string starting with U+FEFF"}  # fmt: skip
    lines = {"UTF-8 BOM before JSON", "U+FFFE before JSON"}  # raw lines starting with one
    assert marks == {"events": events, "keyed": keyed, "hostile.lines": lines}, marks
    for out in got["events"][0]:
        assert out["status"] == "OK" and out["reply"].startswith("echo"), out
        if records[out["source"]["offset"]].name == "k with U+FEFF inside":
            assert out["k"] == "v\ufeff0", out  # a mark after the first character is kept
    for out in got["keyed"][0]:  # k_id came from the record key (the corpus keys are id<n>)
        key = records[out["source"]["offset"]].key
        assert key is not None and out["id"] == str(json.loads(key)["id"]), out
    for out in got["hostile.lines"][0]:  # the exact bytes: nothing was repaired to U+FFFD
        value = records[out["source"]["offset"]].value
        assert value is not None and out["sha"] == hashlib.sha256(value).hexdigest(), out
    # fail loudly: the runner counted every record and row (exit 0: under the 0.5 default)
    dead_total = sum(len(dead) for _, dead in got.values())
    counted = f"counted: {3 * len(records)} records read ({dead_total} dead letters), "
    counted += f"{len(got['events'][0])} AI rows (0 FAILED)"
    assert counted in result.stdout, result.stdout[-2000:]
    # the journal URI was resolved by the factory on the worker: a SQLite file per agent
    assert (tmp_path / "journal" / "echo.sqlite").is_file()
    print(f"SQL hostile corpus: {len(records)} records x 3 tables, CLI run {took:.1f} s")
