"""Agent tables (Table API): typed output columns, memory per key, failed rows kept, joins.

Rows without a usable key (NULL, empty) come out FAILED with their input
columns and share no memory; ``key=None`` keys rows by their content; two
agent tables of one agent in one job (different uids) do not collide.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any

import cloudpickle
import pytest
from pydantic import BaseModel, Field

from streaming_agents import Agent, ConfigError, ModelSpec, NullJournal
from streaming_agents.sql import agent_table
from streaming_agents.testing.fake_llm import FakeLLM

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the output model goes to workers


class LineItem(BaseModel):
    sku: str
    qty: int


class Decision(BaseModel):
    summary: str = Field(description="one line")
    refund: Decimal = Field(max_digits=8, decimal_places=2)
    decided_at: dt.datetime
    items: list[LineItem]
    escalate: bool
    note: str | None = None


def test_agent_table_types_memory_failures_and_joins(fake_llm: FakeLLM) -> None:
    from pyflink.table import StreamTableEnvironment

    from streaming_agents.runtime.environment import local_env

    # one event gets an HTTP 400 (not retried): its row must come out FAILED, not vanish
    fake_llm.configure({"rules": [{"match": r"^k2#1$", "status": 400}]})
    model = ModelSpec(
        model="openai/fake-model", api_base=fake_llm.base_url, api_key_env="FAKE_LLM_API_KEY"
    )
    agent = Agent(
        name="claims", version="1", model=model, prompt="{k}#{seq}", output_schema=Decision
    )
    t_env = StreamTableEnvironment.create(local_env(checkpoint_interval_ms=None))
    events = ", ".join(
        f"('k{k}', {s}, TIMESTAMP '2024-03-0{k + 1} 10:00:00.250', {k}.5)"
        for s in range(3)
        for k in range(4)
    )
    # rows without a usable key: two NULL keys ('kn') and an empty one ('ke')
    events += ", " + ", ".join(
        f"('{k}', {s}, TIMESTAMP '2024-03-09 10:00:00.250', 9.5)" for k, s in NO_KEY
    )
    # Literal rows only: a VALUES row holding an expression (a CAST) makes the
    # planner build a UNION of one-row sources, whose order is not defined.
    claims = t_env.sql_query(
        "SELECT CASE k WHEN 'kn' THEN CAST(NULL AS STRING) WHEN 'ke' THEN '' ELSE k END AS k, "
        "seq, ts, CAST(amount AS DECIMAL(5, 1)) AS amount "
        f"FROM (VALUES {events}) AS t(k, seq, ts, amount)"
    )
    _refusals(t_env, agent)
    decided = agent_table(t_env, claims, agent, key="k", journal=NullJournal(), uid="by-key")
    # the same agent a second time in the job, keyed by row content: its own uids
    contents = t_env.sql_query(
        "SELECT k, seq, ts, CAST(amount AS DECIMAL(5, 1)) AS amount FROM (VALUES "
        "('kc', 0, TIMESTAMP '2024-03-08 10:00:00.250', 7.5), "
        "('kc', 1, TIMESTAMP '2024-03-08 10:00:00.250', 7.5)) AS t(k, seq, ts, amount)"
    )
    by_content = agent_table(t_env, contents, agent, key=None, journal=NullJournal(), uid="rows")
    decided = decided.union_all(by_content)
    assert list(decided.get_resolved_schema().get_column_names()) == [
        "k", "seq", "ts", "amount",
        "summary", "refund", "decided_at", "items", "escalate", "note",
        "agent_status", "agent_error", "agent_turn",
    ]  # fmt: skip
    t_env.create_temporary_view("decided", decided)
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW owners AS SELECT * FROM (VALUES ('k0', 'ann'), ('k1', 'bob'), "
        "('k2', 'cy'), ('k3', 'di'), ('kc', 'eve')) AS o(k, owner)"
    )
    query = """
        SELECT d.k, d.seq, d.ts, d.amount, d.summary, d.refund, d.decided_at, d.items[1].sku,
               d.items[1].qty, d.escalate, d.note, d.agent_status, d.agent_error, d.agent_turn,
               o.owner
        FROM decided AS d LEFT JOIN owners AS o ON d.k = o.k
        WHERE d.seq >= 0
    """
    with t_env.execute_sql(query).collect() as results:
        rows = _materialised(results)

    keyless = [r for r in rows if r[0] in (None, "")]
    _check_keyless(keyless)
    # key=None: the two 'kc' rows differ, so each is its own conversation (turn 1 each)
    by_content = sorted((r[1], r[11], r[13]) for r in rows if r[0] == "kc")
    assert by_content == [(0, "OK", 1), (1, "OK", 1)], rows
    rows = [r for r in rows if r[0] not in (None, "", "kc")]
    assert sorted((r[0], r[1]) for r in rows) == [(f"k{k}", s) for k in range(4) for s in range(3)]
    owners = {"k0": "ann", "k1": "bob", "k2": "cy", "k3": "di"}
    for row in rows:
        k, seq, ts, amount, summary, refund, decided_at, sku, qty = row[:9]
        escalate, note, status, error, turn, owner = row[9:]
        index = int(k[1:])
        assert ts == dt.datetime(2024, 3, index + 1, 10, 0, 0, 250000), "input columns pass through"
        assert amount == Decimal(f"{index}.5") and owner == owners[k]
        if (k, seq) == ("k2", 1):
            assert status == "FAILED" and "llm call failed" in error
            assert summary is None and refund is None and turn is None
            continue
        assert status == "OK" and error is None, row
        # the fake LLM fills every string of the schema with the prompt
        assert summary == f"{k}#{seq}" and sku == f"{k}#{seq}" and note == f"{k}#{seq}"
        assert refund == Decimal("0.00") and qty == 0 and escalate is True
        assert decided_at == dt.datetime(2024, 1, 1)
    # memory: each key's turn counts its answered events in order (k2's failed one is skipped)
    turns = {k: [r[13] for r in sorted(rows, key=lambda r: r[1]) if r[0] == k] for k in owners}
    assert turns == {"k0": [1, 2, 3], "k1": [1, 2, 3], "k2": [1, None, 2], "k3": [1, 2, 3]}


NO_KEY = (("kn", 10), ("kn", 11), ("ke", 12))


def _check_keyless(rows: list[Any]) -> None:
    """Rows without a key: FAILED with the reason and their input columns, no shared memory."""
    assert sorted(((r[1], r[0]) for r in rows), key=lambda r: r[0]) == [
        (10, None), (11, None), (12, ""),
    ], rows  # fmt: skip
    for row in rows:
        _, seq, ts, amount, summary = row[:5]
        status, error, turn, owner = row[11:]
        assert ts == dt.datetime(2024, 3, 9, 10, 0, 0, 250000) and amount == Decimal("9.5")
        assert status == "FAILED" and summary is None and owner is None, row
        # never given to the agent: no turn, so two NULL keys are no one conversation
        assert turn is None, row
        why = "is NULL" if seq < 12 else "is an empty string"
        assert error.startswith("no key: the key column 'k' ") and why in error, error


def _refusals(t_env: Any, agent: Agent[Any]) -> None:
    """Key columns the agent table cannot key by are refused before the job is built."""
    dotted = t_env.sql_query("SELECT * FROM (VALUES ('a', TRUE)) AS t(`a.b`, flag)")
    with pytest.raises(ConfigError, match=r"dot in its name.*SELECT `a\.b` AS a_b"):
        agent_table(t_env, dotted, agent, key="a.b")
    with pytest.raises(ConfigError, match=r"key column 'flag' is BOOLEAN.*CAST it to STRING"):
        agent_table(t_env, dotted, agent, key="flag")


def _materialised(changelog: Any) -> list[Any]:
    """The query's final rows: its changelog applied (a LEFT JOIN first emits a row
    without its right side, then retracts it when the right side arrives, if it is late)."""
    from pyflink.common import RowKind

    rows: list[Any] = []
    for row in changelog:
        kind = row.get_row_kind()
        row.set_row_kind(RowKind.INSERT)
        if kind in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            rows.append(row)
        else:
            rows.remove(row)
    return rows
