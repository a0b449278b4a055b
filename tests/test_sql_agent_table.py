"""Agent tables (Table API): typed output columns, memory per key, failed rows kept, joins."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal

import cloudpickle
from pydantic import BaseModel, Field

from streaming_agents import Agent, ModelSpec, NullJournal
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
    # Literal rows only: a VALUES row holding an expression (a CAST) makes the
    # planner build a UNION of one-row sources, whose order is not defined.
    claims = t_env.sql_query(
        "SELECT k, seq, ts, CAST(amount AS DECIMAL(5, 1)) AS amount "
        f"FROM (VALUES {events}) AS t(k, seq, ts, amount)"
    )
    decided = agent_table(t_env, claims, agent, key="k", journal=NullJournal())
    assert list(decided.get_resolved_schema().get_column_names()) == [
        "k", "seq", "ts", "amount",
        "summary", "refund", "decided_at", "items", "escalate", "note",
        "agent_status", "agent_error", "agent_turn",
    ]  # fmt: skip
    t_env.create_temporary_view("decided", decided)
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW owners AS SELECT * FROM (VALUES ('k0', 'ann'), ('k1', 'bob'), "
        "('k2', 'cy'), ('k3', 'di')) AS o(k, owner)"
    )
    query = """
        SELECT d.k, d.seq, d.ts, d.amount, d.summary, d.refund, d.decided_at, d.items[1].sku,
               d.items[1].qty, d.escalate, d.note, d.agent_status, d.agent_error, d.agent_turn,
               o.owner
        FROM decided AS d JOIN owners AS o ON d.k = o.k
        WHERE d.seq >= 0
    """
    with t_env.execute_sql(query).collect() as results:
        rows = list(results)

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
