"""Confluent's shapes, parsed: AI_RUN_AGENT arguments, CTAS, providers, agent and model options."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming_agents.errors import ConfigError
from streaming_agents.sql.agentcall import constant_expression, key_warning, parse_agent_call
from streaming_agents.sql.catalog import Catalog
from streaming_agents.sql.ddl import parse_ddl
from streaming_agents.sql.lexer import SqlScriptError, split_statements
from streaming_agents.sql.support import ctas, table_without_connector


def test_agent_call_shapes() -> None:
    plain = parse_agent_call(["`agent`", "CONCAT('a', x)"], 1)
    assert (plain.agent, plain.prompt, plain.key, plain.memory_key) == (
        "agent", "CONCAT('a', x)", None, None,
    )  # fmt: skip
    with_id = parse_agent_call(["'a'", "p", "t.id", "MAP['debug', true]"], 1)
    assert with_id.request_id == "t.id" and with_id.memory_key is None
    assert with_id.key == "t.id" and with_id.options == {"debug": "true"}
    # Confluent's lab shape: the options MAP as third argument is no key
    lab = parse_agent_call(["'a'", "p", "MAP['debug', 'true']"], 1)
    assert lab.request_id is None and lab.memory_key is None
    memory = parse_agent_call(["'a'", "p", "t.id", "MAP['memory_key', t.customer]"], 1)
    assert memory.memory_key == "t.customer" and memory.key == "t.customer"
    with pytest.raises(SqlScriptError, match="fourth argument must be an options MAP"):
        parse_agent_call(["'a'", "p", "t.id", "t.other"], 3)
    with pytest.raises(SqlScriptError, match="takes"):
        parse_agent_call(["'a'", "p", "x", "MAP['debug', 1]", "y"], 3)


def test_constant_keys_are_warned_about() -> None:
    for constant in ("'all'", "42", "CAST('x' AS STRING)", "UPPER('a')"):
        assert constant_expression(constant), constant
    for varying in ("t.customer", "customer", "`id`", "UUID()", "CONCAT(t.a, 'x')"):
        assert not constant_expression(varying), varying
    warning = key_warning(parse_agent_call(["'a'", "p", "t.id", "MAP['memory_key', 'k']"], 1))
    assert warning is not None and "ONE conversation" in warning
    assert key_warning(parse_agent_call(["'a'", "p", "'same'"], 1)) is not None
    assert key_warning(parse_agent_call(["'a'", "p", "t.id"], 1)) is None


def test_ctas_and_tables_without_connector() -> None:
    statements = split_statements(
        "CREATE TABLE IF NOT EXISTS db.out WITH ('connector' = 'kafka') AS SELECT * FROM t;\n"
        "CREATE OR REPLACE TABLE o2 AS SELECT a FROM (SELECT 1 AS a);\n"
        "CREATE TABLE plain (a STRING) WITH ('connector' = 'datagen');\n"
        "CREATE TABLE bare (a STRING);\n"
        "CREATE TABLE copy WITH ('connector' = 'blackhole') LIKE plain;\n"
    )
    found = [ctas(s) for s in statements]
    assert found[0] is not None and (found[0].name, found[0].has_connector) == ("out", True)
    assert found[1] is not None and (found[1].name, found[1].has_connector) == ("o2", False)
    assert found[2:] == [None, None, None]
    assert [table_without_connector(s) for s in statements] == [False, False, False, True, False]


def _catalog(script: str) -> Catalog:
    catalog = Catalog()
    for statement in split_statements(script):
        catalog.apply(parse_ddl(statement), statement)
    return catalog


def test_providers_tasks_and_agent_defaults_follow_confluent() -> None:
    catalog = _catalog(
        "CREATE CONNECTION az WITH ('type' = 'azureopenai', 'endpoint' = "
        "'https://x.openai.azure.com/openai/deployments/d/chat/completions', "
        "'api_key_env' = 'AZ_KEY');\n"
        "CREATE MODEL chat WITH ('provider' = 'azureopenai', 'azureopenai.connection' = 'az', "
        "'azureopenai.model_version' = 'gpt-4o', 'azureopenai.max_completion_tokens' = '99');\n"
        "CREATE MODEL gem WITH ('provider' = 'googleai', 'googleai.model_version' = 'g-2');\n"
        "CREATE MODEL vec OUTPUT (embedding ARRAY<FLOAT>) WITH ('provider' = 'openai', "
        "'task' = 'embedding', 'model' = 'text-embedding-3-small');\n"
        "CREATE AGENT plain USING MODEL chat USING PROMPT 'x';\n"
        "CREATE AGENT strict USING MODEL chat USING PROMPT 'x' "
        "WITH ('max_consecutive_failures' = '1');\n"
    )
    chat = catalog.models["chat"]
    assert chat.spec.model == "azure/gpt-4o" and chat.spec.api_key_env == "AZ_KEY"
    assert chat.spec.api_base == "https://x.openai.azure.com/openai/deployments/d"
    assert chat.spec.params == {"max_completion_tokens": 99} and not chat.embedding
    assert catalog.models["gem"].spec.model == "gemini/g-2"
    vec = catalog.models["vec"]
    assert vec.embedding and vec.columns == ["embedding"] and vec.output is None
    statement = split_statements("SELECT 1")[0]
    plain, _ = catalog.agent("plain", stateless=True, statement=statement)
    assert plain.max_tool_iterations == 10, "Confluent's default max_iterations"
    assert plain.model.num_retries == 2, "3 consecutive failures (Confluent's default)"
    strict, _ = catalog.agent("strict", stateless=True, statement=statement)
    assert strict.model.num_retries == 0
    catalog.state_ttl = "1 h"  # SET 'sql.state-ttl' = '1 h'
    remembering, _ = catalog.agent("plain", stateless=False, statement=statement)
    assert remembering.policy.ttl_seconds == 3600
    embedder = _catalog(
        "CREATE MODEL v WITH ('model' = 'openai/e', 'task' = 'embedding');\n"
        "CREATE AGENT a USING MODEL v;"
    )
    with pytest.raises(SqlScriptError, match="is an embedding model"):
        embedder.agent("a", stateless=True, statement=statement)
    with pytest.raises(SqlScriptError, match="'task' must be one of"):
        _catalog("CREATE MODEL v WITH ('model' = 'openai/e', 'task' = 'embeddings')")


def test_nested_timestamp_ltz_is_found() -> None:
    from streaming_agents.sql.table import _holds_instant
    from streaming_agents.sql.typeparse import parse_type

    assert _holds_instant(parse_type("ROW<t TIMESTAMP_LTZ(3), s STRING>"))
    assert _holds_instant(parse_type("ARRAY<TIMESTAMP_LTZ(3)>"))
    assert _holds_instant(parse_type("MAP<STRING, ROW<a ARRAY<TIMESTAMP_LTZ(3)>>>"))
    assert not _holds_instant(parse_type("ROW<t TIMESTAMP(3), a ARRAY<DECIMAL(10, 2)>>"))


def test_a_model_key_can_be_this_models_own_secret_file(tmp_path: Path) -> None:
    """'api_key_ref' = 'file:/path': the key is read from that file at each call, on the worker;
    a pasted key is refused without being echoed."""
    key_file = tmp_path / "chat.key"
    key_file.write_text("sk-chat-only\n")
    catalog = _catalog(
        f"CREATE CONNECTION c WITH ('type' = 'openai', 'api_key_ref' = 'file:{key_file}');\n"
        "CREATE MODEL chat WITH ('provider' = 'openai', 'openai.connection' = 'c', "
        "'openai.model_version' = 'gpt-4o');\n"
        f"CREATE MODEL other WITH ('provider' = 'openai', 'model' = 'gpt-4o', "
        f"'api_key_ref' = 'file:{key_file}');\n"
    )
    for name in ("chat", "other"):
        spec = catalog.models[name].spec
        assert spec.key_ref() == f"file:{key_file}" and spec.api_key_env is None
        assert "sk-chat-only" not in repr(spec)
    with pytest.raises(ConfigError) as refused:
        _catalog("CREATE MODEL m WITH ('provider' = 'openai', 'model' = 'x', "
                 "'api_key_ref' = 'sk-pasted-secret-123');")  # fmt: skip
    assert "sk-pasted-secret-123" not in str(refused.value)
