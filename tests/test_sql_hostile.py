"""No record a producer can write stops a SQL job: the hostile corpus via ``streaming-agents sql``.

The script (``tests/sql_scripts/hostile_json.sql``) declares its Kafka source
``'format' = 'json'``; the runner reads it as bytes with coordinates and
decodes it safely (:mod:`streaming_agents.sql.jsonsource`).  Every case of
:mod:`streaming_agents.testing.hostile`, plus type mismatches a SQL table
adds, is written with a valid event after each; the CLI runs as a new process
from a folder outside the repo, against the session broker and the fake LLM.
Checked: exit code 0, one committed output per valid record (with its
offset), one dead letter per bad record with its reason, size/digest and
exact offset, nothing else, every record within the size limit; the runner's
counts (its fail-loudly verdict) match them exactly.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from hostile_support import check_outcomes, collect

from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import (
    NO_KEY,
    OUTPUT,
    Case,
    corpus,
    create_corpus_topic,
    interleaved,
    produce_cases,
)
from tests.test_sql_cli import run_sql_cli

SCRIPT = Path(__file__).resolve().parent / "sql_scripts" / "hostile_json.sql"
MISMATCH = "type mismatch"
BASE = {"k": "base", "seq": 0}


def _valid(i: int) -> dict[str, Any]:
    return {"k": f"v{i}", "seq": i}


def _sql_cases() -> list[Case]:
    """The corpus with a SQL table's outcomes: ``k STRING NOT NULL, seq BIGINT``."""
    cases = []
    for case in corpus(BASE, "k"):
        if case.expect == NO_KEY:  # k is a column here: only a missing/null one is refused
            event = json.loads(case.value or b"{}")
            expect = MISMATCH if event.get("k") is None else OUTPUT
            case = Case(case.name, case.value, expect, case.key, case.headers)
        cases.append(case)
    typed = [
        ("seq a word", b'{"k": "x", "seq": "abc"}', MISMATCH),
        ("seq a fraction", b'{"k": "x", "seq": 1.5}', MISMATCH),
        ("seq above BIGINT", b'{"k": "x", "seq": 9223372036854775808}', MISMATCH),
        ("seq an object", b'{"k": "x", "seq": {"n": 1}}', MISMATCH),
        ("seq a numeric string", b'{"k": "x", "seq": " 12 "}', OUTPUT),
        ("k a number (STRING takes JSON text)", b'{"k": 7, "seq": 1}', OUTPUT),
    ]
    return [*cases, *(Case(name, value, expect) for name, value, expect in typed)]


def test_hostile_records_through_a_sql_script_are_processed_or_dead_lettered(
    kafka_bootstrap: str, topic_factory: Any, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    topic = f"sql-hostile-in-{uuid.uuid4().hex[:10]}"
    create_corpus_topic(kafka_bootstrap, topic)
    outs = topic_factory("sql-hostile-out")
    dlq = f"{topic}.dead-letters"
    cases = [case for case, _ in interleaved(_sql_cases(), _valid)]
    create_corpus_topic(kafka_bootstrap, dlq)
    produce_cases(kafka_bootstrap, topic, cases)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    started = time.monotonic()
    result = run_sql_cli(
        SCRIPT,
        "--var", f"bootstrap={kafka_bootstrap}",
        "--var", f"events_topic={topic}",
        "--var", f"outs_topic={outs}",
        "--var", f"txn_prefix=hostile-{outs}",
        "--var", f"api_base={fake_llm.base_url}",
        "--journal", f"sqlite://{tmp_path / 'journal'}",
        "--restart-attempts", "0",
        "--checkpoint-interval", "1000",
        cwd=cwd,
        timeout_s=300,
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    assert "reads JSON safely" in result.stdout and dlq in result.stdout
    assert "failed" not in result.stderr, result.stderr[-3000:]
    outputs, dead = collect(kafka_bootstrap, cases, outs, dlq)
    for out in outputs:
        assert out["status"] == "OK" and out["reply"].startswith("echo"), out
    for letter in dead:
        assert letter["agent"] == "sql:events", letter
        assert letter["reason"] and letter["source"]["partition"] == 0, letter
    check_outcomes(cases, outputs, dead, topic)
    # fail loudly: the runner counted every record and row (exit 0: under the 0.5 default)
    counted = f"counted: {len(cases)} records read ({len(dead)} dead letters), "
    counted += f"{len(outputs)} AI rows (0 FAILED)"
    assert counted in result.stdout, result.stdout[-2000:]
    assert len(dead) / len(cases) <= 0.5
    # the journal URI was resolved by the factory on the worker: a SQLite file per agent
    assert (tmp_path / "journal" / "echo.sqlite").is_file()
    print(f"SQL hostile corpus: {len(cases)} records, CLI run {took:.1f} s")
