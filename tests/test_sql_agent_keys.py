"""AI_RUN_AGENT keys: a NULL memory key is a FAILED row, a NULL request id falls back on the prompt.

One query, two calls of the same agent (two agent operators in one job:
their uids differ): with ``MAP['memory_key', customer]`` rows whose
customer is NULL never reach the agent and share no conversation; with a
request id only, a NULL id orders the row by its prompt and it is answered.
"""

from __future__ import annotations

import io
from pathlib import Path

from streaming_agents.sql import SqlSession
from streaming_agents.testing.fake_llm import FakeLLM

SCRIPT = """
CREATE TEMPORARY VIEW tickets AS SELECT * FROM (VALUES
  ('t1', 'r1', 'c1', 'first'), ('t2', 'r2', 'c1', 'second'),
  ('t3', 'r3', CAST(NULL AS STRING), 'third'), ('t4', CAST(NULL AS STRING), CAST(NULL AS STRING),
  'fourth')) AS t(id, rid, customer, text);
CREATE MODEL m WITH (
  'model' = 'openai/fake-model', 'api_base' = '${api_base}', 'api_key_env' = 'FAKE_LLM_API_KEY');
CREATE AGENT a USING MODEL m USING PROMPT 'Echo.';
SELECT 'memory' AS site, t.id, t.customer, r.status, r.response, r.turn, r.error
FROM tickets AS t,
  LATERAL TABLE(AI_RUN_AGENT('a', t.text, t.rid, MAP['memory_key', t.customer]))
    AS r(status, response, turn, error)
UNION ALL
SELECT 'request' AS site, t.id, t.customer, r.status, r.response, r.turn, r.error
FROM tickets AS t,
  LATERAL TABLE(AI_RUN_AGENT('a', t.text, t.rid)) AS r(status, response, turn, error);
"""


def test_null_memory_keys_fail_and_null_request_ids_run(fake_llm: FakeLLM, tmp_path: Path) -> None:
    from pyflink.table import StreamTableEnvironment

    from streaming_agents.runtime.environment import local_env

    t_env = StreamTableEnvironment.create(local_env(checkpoint_interval_ms=None))
    session = SqlSession(t_env, journal_dir=tmp_path, out=io.StringIO(), err=io.StringIO())
    results = session.execute(SCRIPT, {"api_base": fake_llm.base_url})
    rows = sorted(tuple(row) for row in results[-1].rows)

    by = {(r[0], r[1]): r[3:] for r in rows}
    assert len(rows) == 8 and len(by) == 8, rows
    # memory per customer: c1's two tickets are one conversation (system + 2 per earlier turn)
    assert by["memory", "t1"][:3] == ("OK", "echo[n=2]: first", 1)
    assert by["memory", "t2"][:3] == ("OK", "echo[n=4]: second", 2)
    for ticket in ("t3", "t4"):  # NULL customer: FAILED, never given to the agent
        status, response, turn, error = by["memory", ticket]
        assert (status, response, turn) == ("FAILED", None, None), by["memory", ticket]
        assert error.startswith("no key: the memory key") and "is NULL" in error, error
    # request ids only order rows: t4's NULL id falls back on its prompt; no memory
    for ticket, text in (("t1", "first"), ("t2", "second"), ("t3", "third"), ("t4", "fourth")):
        assert by["request", ticket][:2] == ("OK", f"echo[n=2]: {text}"), by["request", ticket]
    assert fake_llm.stats()["requests_total"] == 6, "rows without a memory key cost no call"
