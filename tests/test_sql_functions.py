"""AI_COMPLETE as an async scalar function: every output belongs to its own input.

PyFlink 2.3.0's async scalar functions hand most concurrent calls another
row's arguments (FLINK-39532); ``streaming_agents.sql.functions.guard_inputs``
works around it.  This test fails without the guard (measured: 941 of 1,000
rows wrong).
"""

from __future__ import annotations

from streaming_agents import ModelSpec
from streaming_agents.sql import completion_function, parse_columns
from streaming_agents.testing.fake_llm import FakeLLM

ROWS = 200


def test_each_completion_matches_its_own_input_under_concurrency(fake_llm: FakeLLM) -> None:
    from pyflink.table import StreamTableEnvironment

    from streaming_agents.runtime.environment import local_env

    fake_llm.configure({"latency_ms": {"kind": "uniform", "min_ms": 0, "max_ms": 60}, "seed": 7})
    model = ModelSpec(
        model="openai/fake-model", api_base=fake_llm.base_url, api_key_env="FAKE_LLM_API_KEY"
    )
    # async scalar functions need process mode (local_env defaults to the agents' thread mode)
    env = local_env(checkpoint_interval_ms=None, extra_config={"python.execution-mode": "process"})
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.exec.async-scalar.max-concurrent-operations", "50")
    t_env.create_temporary_function("complete", completion_function(model, name="complete"))
    typed = parse_columns("label STRING NOT NULL, n INT, tags ARRAY<STRING>, d DECIMAL(6, 2)")
    t_env.create_temporary_function(
        "classify", completion_function(model, name="classify", output=typed)
    )
    values = ", ".join(f"('id{i}')" for i in range(ROWS))
    t_env.execute_sql(f"CREATE TEMPORARY VIEW src AS SELECT * FROM (VALUES {values}) AS t(id)")

    query = "SELECT id, complete(CONCAT('say ', id)), classify(id) FROM src"
    with t_env.execute_sql(query).collect() as results:
        rows = list(results)

    assert sorted(r[0] for r in rows) == sorted(f"id{i}" for i in range(ROWS))
    wrong = [r for r in rows if r[1] != f"echo[n=1]: say {r[0]}"]
    assert not wrong, f"{len(wrong)} text completions belong to another row, e.g. {wrong[:3]}"
    wrong = [r for r in rows if r[2] is None or r[2][0] != r[0] or r[2][2] != [r[0]]]
    assert not wrong, f"{len(wrong)} typed completions belong to another row, e.g. {wrong[:3]}"
    stats = fake_llm.stats()
    assert stats["requests_total"] == 2 * ROWS
    assert stats["max_concurrent"] > 5, "calls were in flight together"
