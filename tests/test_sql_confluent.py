"""A script in Confluent Cloud's Streaming Agents shapes, run end to end as a user runs it.

``tests/sql_scripts/claims_review.sql`` (CTAS with ``AI_RUN_AGENT`` and an
options MAP as third argument, a Python tool, an MCP tool over streamable HTTP, an embedding
model through ``ML_PREDICT`` and ``AI_EMBEDDING``, ``AI_TOOL_INVOKE`` with an MCP tool, a
TIMESTAMP_LTZ / DECIMAL / nested ROW-ARRAY-MAP source with NULLs) is copied
to a folder outside the repo and run by ``streaming-agents sql`` as a new
process from another such folder, against the local broker and the fake LLM.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

from streaming_agents.sql.check import check_script
from streaming_agents.sql.lexer import SqlScriptError
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.fake_llm_script import embedding
from streaming_agents.testing.kafka import consume_committed, produce
from streaming_agents.testing.mcp_server import POLICIES
from tests.test_mcp_tools import http_server  # noqa: F401 - the HTTP MCP server fixture
from tests.test_sql_cli import run_sql_cli

SCRIPTS = Path(__file__).resolve().parent / "sql_scripts"


def _claims() -> list[dict[str, Any]]:
    claims: list[dict[str, Any]] = [
        {
            "claim_id": f"C{i}",
            "applicant": "ada" if i % 2 else "bob",
            "narrative": {1: "open a ticket for the roof", 3: "check policy P-7 please"}.get(
                i, f"roof damage {i}"
            ),
            "amount": f"{1000 + i}.25",
            "filed_at": f"2024-05-0{i + 1} 10:00:00.{i:03d}Z",
            "details": {"city": "Naples", "tags": ["storm", f"t{i}"]},
            "attrs": {"channel": "web", "n": str(i)},
        }
        for i in range(5)
    ]
    claims.append(
        dict.fromkeys(("amount", "filed_at", "details", "attrs"))
        | {"claim_id": "C5", "applicant": "ada", "narrative": "water damage"}
    )
    return claims


def _instant(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _rows(bootstrap: str, topic: str, n: int) -> list[dict[str, Any]]:
    found = consume_committed(bootstrap, topic, expected=n, timeout_s=60, linger_s=1)
    return [json.loads(m.value()) for m in found]


def test_confluent_shaped_script_runs_from_outside_the_repo(
    fake_llm: FakeLLM,
    kafka_bootstrap: str,
    topic_factory,
    tmp_path: Path,
    http_server: tuple[str, Path],  # noqa: F811 - the fixture imported above
) -> None:
    mcp_url, tickets = http_server
    fake_llm.configure(
        {
            "rules": [
                {
                    "match": "open a ticket",
                    "tool_calls": [{"name": "open_ticket", "arguments": {"summary": "C1 roof"}}],
                },
                {"match": "open a ticket", "after_tool": True, "reply": "ticket opened"},
                {
                    "match": "policy check for C2",
                    "tool_calls": [{"name": "lookup_policy", "arguments": {"policy_id": "P-100"}}],
                },
                {
                    "match": "check policy P-7",
                    "tool_calls": [{"name": "policy_tool", "arguments": {"policy_id": "P-7"}}],
                },
                {"match": "check policy P-7", "after_tool": True, "reply": "covered, pay"},
            ]
        }
    )
    claims = _claims()
    src, reviewed, vectors = (topic_factory(p) for p in ("claims", "reviewed", "vectors"))
    produce(kafka_bootstrap, src, [(None, json.dumps(c)) for c in claims])
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, scripts)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    variables = {
        "bootstrap": kafka_bootstrap,
        "claims_topic": src,
        "reviewed_topic": reviewed,
        "vectors_topic": vectors,
        "llm_endpoint": fake_llm.base_url,
        "mcp_endpoint": mcp_url,
    }
    args = [f"--var={k}={v}" for k, v in variables.items()]
    result = run_sql_cli(
        scripts / "claims_review.sql", *args, cwd=cwd, TICKET_MCP_TOKEN="mcp-secret-token"
    )
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
    assert "LiteLLM" not in result.stdout + result.stderr, "no LiteLLM debug lines"
    assert result.stdout.count("] submitted job") == 2, result.stdout  # the CTAS and the INSERT
    # the CTAS reads a Kafka JSON table: a companion job writes its dead letters
    assert "] dead letters of claims: submitted job" in result.stdout, result.stdout
    # fail loudly: the runner counted the jobs' rows (CTAS, INSERT; AI_TOOL_INVOKE included)
    counted = [ln for ln in result.stdout.splitlines() if "] counted: " in ln]
    assert len(counted) == 2 and all("(0 FAILED)" in ln for ln in counted), result.stdout
    # each claim counted once, though the CTAS reads it in two jobs (rows; dead letters)
    assert all(f"{len(claims)} records read (0 dead letters)" in ln for ln in counted), counted
    print("\n".join(counted))

    by_id = {c["claim_id"]: c for c in claims}
    rows = _rows(kafka_bootstrap, reviewed, len(claims))
    assert sorted(r["claim_id"] for r in rows) == sorted(by_id)
    for row in rows:
        claim = by_id[row["claim_id"]]
        assert row["status"] == "OK", row
        if row["claim_id"] == "C3":
            assert row["response"] == "covered, pay", "answered after the Python tool ran"
        elif row["claim_id"] == "C1":
            assert row["response"] == "ticket opened", "answered after the MCP tool ran"
        else:
            prompt = f"Claim {claim['claim_id']} by {claim['applicant']}: {claim['narrative']}"
            # n=2: system prompt + this claim only -- the MAP argument is no memory key
            assert row["response"] == f"echo[n=2]: {prompt}", row
        # every input type came back through the agent unchanged, NULLs included
        assert row["applicant"] == claim["applicant"]
        expected_amount = Decimal(claim["amount"]) if claim["amount"] else None
        assert (Decimal(str(row["amount"])) if row["amount"] is not None else None) == (
            expected_amount
        )
        assert _instant(row["filed_at"]) == _instant(claim["filed_at"])
        assert row["details"] == claim["details"] and row["attrs"] == claim["attrs"]

    vectors_rows = _rows(kafka_bootstrap, vectors, len(claims))
    assert sorted(r["claim_id"] for r in vectors_rows) == sorted(by_id)
    for row in vectors_rows:
        # AI_TOOL_INVOKE: the model's tool call ran once, else its reply comes back
        if row["claim_id"] == "C2":
            policy = row["policy"]["lookup_policy"]
            assert policy["status"] == "OK" and json.loads(policy["response"]) == POLICIES["P-100"]
        else:
            assert row["policy"] == {
                "model": {
                    "status": "NO_TOOL_CALL",
                    "response": f"echo[n=1]: policy check for {row['claim_id']}",
                }
            }
        narrative = by_id[row["claim_id"]]["narrative"]
        for column, text in (
            ("embedding", narrative),
            ("summary_embedding", f"summary: {narrative}"),
        ):
            want = embedding(text)
            assert len(row[column]) == len(want)
            assert all(abs(a - b) < 1e-5 for a, b in zip(row[column], want, strict=True))

    stats = fake_llm.stats()
    assert stats["embeddings_total"] == 2 * len(claims), stats  # ML_PREDICT and AI_EMBEDDING
    # agent: one call per claim and one more after each tool; AI_TOOL_INVOKE: one per claim
    assert stats["chat_total"] == 2 * len(claims) + 2, stats
    filed = [json.loads(line) for line in tickets.read_text().splitlines()]
    assert [t["summary"] for t in filed] == ["C1 roof"], "the MCP tool ran once"
    assert "mcp-secret-token" not in result.stdout + result.stderr
    chats = [r for r in fake_llm.requests(50) if "messages" in r]
    agent_calls = [r for r in chats if r["messages"][0]["content"].startswith("You review")]
    assert len(agent_calls) == len(claims) + 2
    assert all(r.get("max_completion_tokens") == 256 for r in agent_calls)
    tool_turn = next(r for r in chats if r["messages"][-1]["role"] == "tool")
    assert '"status": "active"' in tool_turn["messages"][-1]["content"]


UNSUPPORTED = """
CREATE TABLE claims (id STRING, n BIGINT) WITH ('connector' = 'datagen');
CREATE MODEL m WITH ('provider' = 'openai', 'model' = 'gpt-4o-mini');
CREATE AGENT a USING MODEL m USING PROMPT 'x';
ALTER AGENT a SET ('max_iterations' = '3');
CREATE TABLE windows WITH ('connector' = 'blackhole') AS
  SELECT * FROM ML_DETECT_ANOMALIES(TABLE claims);
SELECT * FROM claims, LATERAL TABLE(VECTOR_SEARCH_AGG(v, DESCRIPTOR(e), claims.id, 3));
CREATE TABLE reviewed AS SELECT id FROM claims;
CREATE TABLE plain (id STRING);
SELECT * FROM TABLE(AI_FORECAST(claims, DESCRIPTOR(n)));
SELECT * FROM claims, LATERAL TABLE(AI_RUN_AGENT('a', claims.id, MAP['memory_key', 'all']));
"""


def test_check_flags_every_statement_the_runner_cannot_execute() -> None:
    try:
        check_script(UNSUPPORTED)
    except SqlScriptError as exc:
        message = str(exc)
    else:
        raise AssertionError("--check said OK")
    assert message.startswith("6 statement(s) cannot run here")
    for expected in (
        "statement 4 (line 5, ALTER AGENT a ...): ALTER AGENT is not supported",
        "statement 5 (line 6, CREATE TABLE windows ...): line 7: ML_DETECT_ANOMALIES is not "
        "supported",
        "statement 6 (line 8, SELECT * FROM ...): line 8: VECTOR_SEARCH_AGG is not supported",
        "statement 7 (line 9, CREATE TABLE reviewed ...): CREATE TABLE reviewed AS SELECT needs",
        "statement 8 (line 10, CREATE TABLE plain ...): CREATE TABLE without 'connector'",
        "statement 9 (line 11, SELECT * FROM ...): line 11: AI_FORECAST is not supported",
    ):
        assert expected in message, message
    lines = check_script(UNSUPPORTED.split("ALTER AGENT")[0] + UNSUPPORTED.split(";\n")[-2])
    warning = lines[-1]
    assert "memory key 'all' is the same for every row" in warning, lines
