"""SQL scripts without Flink: splitting, variables, CREATE MODEL/TOOL/AGENT, rewrites, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming_agents.cli.main import main
from streaming_agents.errors import UserError
from streaming_agents.sql.catalog import Catalog
from streaming_agents.sql.check import check_script
from streaming_agents.sql.ddl import AgentDef, ModelDef, ToolDef, parse_ddl
from streaming_agents.sql.lexer import SqlScriptError, split_statements, substitute
from streaming_agents.sql.rewrite import LateralCall, rewrite_laterals, rewrite_scalars

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "sql"
EXAMPLE_VARS = {
    "bootstrap": "localhost:9092",
    "tickets_topic": "tickets",
    "replies_topic": "replies",
    "triage_topic": "triaged",
}


def test_statements_split_outside_quotes_and_comments_with_their_lines() -> None:
    script = (
        "-- a comment; not a statement\n"
        "CREATE TABLE t (a STRING) WITH ('x' = 'a;b');\n"
        "\n"
        "/* block; comment */ INSERT INTO t\n"
        "SELECT 'it''s; fine' FROM `odd;name`;\n"
        "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; INSERT INTO b SELECT 2; END;\n"
        ";;"
    )
    statements = split_statements(script)
    assert [(s.number, s.line) for s in statements] == [(1, 2), (2, 4), (3, 6)]
    assert statements[1].text.startswith("INSERT INTO t") and statements[1].text.endswith("`")
    inner = statements[2].inner_statements()
    assert [s.text for s in inner] == ["INSERT INTO a SELECT 1", "INSERT INTO b SELECT 2"]


def test_variables_come_from_arguments_then_environment_then_defaults(monkeypatch) -> None:
    monkeypatch.setenv("SA_TEST_TOPIC", "from-env")
    text = "-- ${not_substituted}\nSELECT '${a}', '${SA_TEST_TOPIC}', '${b:-fallback}'"
    assert substitute(text, {"a": "A"}) == (
        "-- ${not_substituted}\nSELECT 'A', 'from-env', 'fallback'"
    )
    with pytest.raises(SqlScriptError, match=r"line 2: variable \$\{missing\} is not set"):
        substitute("SELECT 1,\n ${missing}")


def test_create_model_tool_and_agent_parse_like_confluent() -> None:
    script = """
    CREATE MODEL `triage` INPUT (text STRING) OUTPUT (label STRING COMMENT 'a or b', score DOUBLE)
      COMMENT 'classifier'
      WITH ('provider' = 'openai', 'openai.model_version' = 'gpt-4o-mini',
            'openai.system_prompt' = 'Classify.', 'api_key_env' = 'OPENAI_API_KEY');
    CREATE TOOL lookup USING FUNCTION 'support_tools.order_status' WITH ('type' = 'function');
    CREATE AGENT IF NOT EXISTS helper USING MODEL triage USING PROMPT 'Be brief.'
      USING TOOLS lookup COMMENT 'x' WITH ('max_iterations' = '3', 'memory_ttl' = '2 h');
    """
    model, tool, agent = (parse_ddl(s) for s in split_statements(script))
    assert isinstance(model, ModelDef) and model.output is not None
    assert model.output.names == ["label", "score"] and model.comment == "classifier"
    assert isinstance(tool, ToolDef) and tool.function == "support_tools.order_status"
    assert isinstance(agent, AgentDef) and agent.if_not_exists and agent.tools == ("lookup",)

    catalog = Catalog(EXAMPLES)
    for statement in split_statements(script):
        catalog.apply(parse_ddl(statement), statement)
    sql_model = catalog.models["triage"]
    assert sql_model.spec.model == "openai/gpt-4o-mini"
    assert sql_model.system_prompt == "Classify." and sql_model.columns == ["label", "score"]
    assert catalog.tools["lookup"][0].invoke('{"order_id": "a1"}') == (
        '{"order_id": "a1", "status": "shipped on Monday, arrives Thursday"}'
    )
    built, capacity = catalog.agent(
        "helper", stateless=False, statement=split_statements(script)[2]
    )
    assert built.max_tool_iterations == 3 and built.policy.ttl_seconds == 7200
    assert built.output_schema is not None and capacity == 100
    request = built.step({"sa__prompt": "hello"}, built.memory.load(None))
    assert [m["role"] for m in request.messages] == ["system", "user"]
    assert request.response_schema is not None and request.tools


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            "CREATE MODEL m WITH ('model' = 'openai/x');\n\nCREATE AGENT a USING MODEL nope;",
            r"statement 2 \(line 3, CREATE AGENT a .*no model 'nope' \(models: \['m'\]\)",
        ),
        (
            "CREATE MODEL m WITH ('model' = 'x', 'openai.api-key' = 'sk-1', 'provider' = 'openai')",
            r"statement 1 \(line 1.*would put a secret in the script",
        ),
        ("CREATE MODEL m WITH ('model' = 'openai/x', 'temprature' = '1')", "did you mean"),
        ("CREATE MODEL m WITH ('model' = 'gpt-4o')", "needs a 'provider'"),
        ("CREATE TOOL t USING CONNECTION c WITH ('type' = 'mcp')", "no connection 'c'"),
        (
            "CREATE CONNECTION c WITH ('type' = 'mcp_server', 'endpoint' = 'http://x/mcp', "
            "'token' = 'abc')",
            r"would put a secret in the script.*'token_env'",
        ),
        (
            "CREATE CONNECTION c WITH ('type' = 'openai');\n"
            "CREATE TOOL t USING CONNECTION c WITH ('type' = 'mcp')",
            "is not an MCP server",
        ),
        (
            "SELECT * FROM t, LATERAL TABLE(AI_RUN_AGENT('a', t.x, t.id, MAP['memry_key', t.k]))",
            r"unknown option\(s\) \['memry_key'\]",
        ),
        ("CREATE TOOL t USING FUNCTION 'no_such_module.fn'", "cannot import"),
        ("CREATE AGENT a USING PROMPT 'x'", "needs USING MODEL"),
        (
            "CREATE MODEL m WITH ('model' = 'openai/x');\nCREATE MODEL m WITH ('model' = 'a/b')",
            "already exists",
        ),
        (
            "CREATE MODEL m WITH ('model' = 'openai/x');\nCREATE AGENT a USING MODEL m;\n"
            "SELECT * FROM t,\n LATERAL TABLE(AI_RUN_AGENT('b', t.x)) AS r",
            r"statement 3 \(line 3.*line 4: no agent 'b'",
        ),
        ("SELECT AI_RUN_AGENT('a', x) FROM t", "is a table function"),
        ("SELECT 1 FROM a, b, LATERAL TABLE(AI_RUN_AGENT('a', x))", "only one table"),
    ],
)
def test_script_errors_name_the_statement_and_what_is_wrong(script: str, message: str) -> None:
    with pytest.raises(SqlScriptError, match=message) as caught:
        check_script(script, base_dir=EXAMPLES)
    assert isinstance(caught.value, UserError)


class _Views:
    def __init__(self) -> None:
        self.calls: list[LateralCall] = []

    def columns(self, call: LateralCall) -> list[str]:
        return call.columns or ["status", "response"]

    def view(self, call: LateralCall) -> str:
        self.calls.append(call)
        return f"v{len(self.calls)}"


def test_lateral_agent_calls_become_views_and_filters_move_below_them() -> None:
    views = _Views()
    text = rewrite_laterals(
        "INSERT INTO out SELECT t.id, r.status, r.response FROM tickets /*+ OPTIONS('a'='b') */ "
        "AS t, LATERAL TABLE(AI_RUN_AGENT('support', CONCAT('q: ', t.text), t.customer)) AS r "
        "WHERE t.priority = 'high' AND r.status = 'OK' AND t.n BETWEEN 1 AND 5 GROUP BY t.id",
        views,
    )
    assert text == (
        "INSERT INTO out SELECT t.id, `t`.status, `t`.response FROM v1 AS t "
        "WHERE (`t`.status = 'OK') GROUP BY t.id"
    )
    (call,) = views.calls
    assert call.args == ["'support'", "CONCAT('q: ', t.text)", "t.customer"]
    assert call.source == "tickets /*+ OPTIONS('a'='b') */ AS t"
    assert call.pushed == ["t.priority = 'high'", "t.n BETWEEN 1 AND 5"]


def test_confluent_shapes_rewrite() -> None:
    views = _Views()
    text = rewrite_laterals(
        "SELECT status, response FROM customer_communications, "
        "LATERAL TABLE(AI_RUN_AGENT(`chat_listener_agent`, `prompt`, `id`, MAP['debug', true]))",
        views,
    )
    assert text == "SELECT status, response FROM v1 AS customer_communications"
    text = rewrite_laterals(
        "SELECT * FROM (SELECT * FROM a) s CROSS JOIN LATERAL TABLE(ML_PREDICT('m', s.x)) "
        "AS p(label, score) WHERE p.label = 'x' OR s.y = 2",
        views,
    )
    assert text == "SELECT * FROM v2 AS s WHERE (`s`.label = 'x' OR s.y = 2)"
    assert views.calls[1].columns == ["label", "score"] and views.calls[1].pushed == []
    text = rewrite_scalars(
        "SELECT AI_COMPLETE('m', CONCAT('a', AI_COMPLETE(`n`, x))) FROM t",
        lambda model, line: f"f_{model}",
    )
    assert text == "SELECT f_m(CONCAT('a', f_n(x))) FROM t"


def test_example_scripts_check_and_cli_exit_codes(capsys, tmp_path: Path) -> None:
    for script in sorted(EXAMPLES.glob("*.sql")):
        check_script(script.read_text(), EXAMPLE_VARS, EXAMPLES)
    args = [f"--var={k}={v}" for k, v in EXAMPLE_VARS.items()]
    assert main(["sql", "--check", str(EXAMPLES / "support_agent.sql"), *args]) == 0
    assert "support_agent.sql: OK" in capsys.readouterr().out
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE MODEL m WITH ('model' = 'openai/x');\nCREATE AGENT a USING MODEL b;\n")
    assert main(["sql", "--check", str(bad)]) == 2
    assert "statement 2 (line 2" in capsys.readouterr().err
    assert main(["sql", str(tmp_path / "missing.sql")]) == 2
