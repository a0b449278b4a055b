"""``streaming-agents sql --rest`` against a cluster whose workers lack our dependencies.

Used by tests/test_bare_workers.py (job B, on its private bare-worker cluster).
The script (``tests/sql_scripts/hostile_json.sql``) reads a Kafka JSON table
(hostile records included: decoded safely, dead-lettered), runs an agent
through the fake LLM and writes exactly-once.  The verdict comes from the
workers' counts in a Kafka topic: 8 records read, 4 of them dead-lettered, is
above the ``--max-dead-letter-ratio 0.4`` given here, so the command says so in
one line and exits 1 -- after its job committed everything.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import OUTPUT, Case, create_corpus_topic, produce_cases
from streaming_agents.testing.kafka import consume_committed
from tests.test_sql_cli import run_sql_cli

SCRIPT = Path(__file__).resolve().parent / "sql_scripts" / "hostile_json.sql"


def bare_cases() -> list[Case]:
    """Four bad records, each followed by a valid one (offsets 0..7)."""
    good = [
        Case(f"valid {i}", json.dumps({"k": f"c{i}", "seq": i}).encode(), OUTPUT) for i in range(4)
    ]
    bad = [
        Case("tombstone", None, "malformed event"),
        Case("invalid UTF-8", b'\xff{"k": "x"}', "malformed event"),
        Case("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "malformed event"),
        Case("seq a word", b'{"k": "x", "seq": "abc"}', "type mismatch"),
    ]
    return [case for pair in zip(bad, good, strict=True) for case in pair]


def _get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


def run_sql_on_cluster(
    rest_url: str, bootstrap: str, fake_llm: FakeLLM, tmp_path: Path, api_key_env: str
) -> float:
    """Run the script via ``--rest`` (key only on the workers) and check it; seconds taken."""
    suffix = uuid.uuid4().hex[:8]
    topic, outs = f"sql-bare-in-{suffix}", f"sql-bare-out-{suffix}"
    dlq = f"{topic}.dead-letters"
    for name in (topic, outs, dlq):
        create_corpus_topic(bootstrap, name)
    cases = bare_cases()
    produce_cases(bootstrap, topic, cases)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    started = time.monotonic()
    result = run_sql_cli(
        SCRIPT,
        "--rest", rest_url.removeprefix("http://"),
        "--var", f"bootstrap={bootstrap}",
        "--var", f"events_topic={topic}",
        "--var", f"outs_topic={outs}",
        "--var", f"txn_prefix=bare-{outs}",
        "--var", f"api_base={fake_llm.base_url}",
        "--var", f"api_key_env={api_key_env}",
        "--journal", f"sqlite://{tmp_path / 'journal'}",
        "--restart-attempts", "0",
        "--max-dead-letter-ratio", "0.4",
        "--checkpoint-interval", "1000",
        cwd=cwd,
        timeout_s=480,
        **{api_key_env: ""},  # not here: only the workers have the key
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-4000:])
    counted = [ln for ln in result.stdout.splitlines() if "] counted: " in ln]
    assert counted and counted[-1].endswith(
        ": 8 records read (4 dead letters), 4 AI rows (0 FAILED)"
    ), (result.stdout, result.stderr[-3000:])
    failed = [ln for ln in result.stderr.splitlines() if ln.startswith("streaming-agents: failed:")]
    assert len(failed) == 1 and "4 of 8" in failed[0], result.stderr[-3000:]
    assert re.search(r"shipping streaming_agents and \d+ packages \(\d+ MB", result.stderr)
    outputs = [json.loads(m.value()) for m in consume_committed(
        bootstrap, outs, expected=4, timeout_s=60, linger_s=2)]  # fmt: skip
    dead = [json.loads(m.value()) for m in consume_committed(
        bootstrap, dlq, expected=4, timeout_s=30, linger_s=1)]  # fmt: skip
    assert sorted(o["source"]["offset"] for o in outputs) == [1, 3, 5, 7]
    assert all(o["status"] == "OK" and o["reply"].startswith("echo") for o in outputs), outputs
    got = sorted((d["source"]["offset"], d["reason"]) for d in dead)
    assert got == [(2 * i, c.expect) for i, c in enumerate(cases[::2])], got
    jobs = [j for j in _get(f"{rest_url}/jobs/overview")["jobs"] if j["name"].startswith("sql ")]
    assert [j["state"] for j in jobs] == ["FINISHED"], jobs  # ran there, once
    history = _get(f"{rest_url}/jobs/{jobs[0]['jid']}/exceptions")
    assert not history.get("exceptionHistory", {}).get("entries"), history  # never failed
    return took
