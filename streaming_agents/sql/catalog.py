"""The session's connections, models, tools and agents, built from their DDL.

Option names are case-insensitive; ``<provider>.`` prefixes (Confluent's
``'openai.system_prompt'``, ``'openai.connection'``) are accepted.  Unknown
options are errors, so a typo never silently changes behaviour.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from streaming_agents.agent import Agent, ModelSpec
from streaming_agents.errors import ConfigError, StreamingAgentsError
from streaming_agents.sql.agents import parse_duration, resolve_callable, sql_agent
from streaming_agents.sql.ddl import AgentDef, ConnectionDef, Definition, DropDef, ModelDef, ToolDef
from streaming_agents.sql.lexer import SqlScriptError, Statement, ident_value
from streaming_agents.sql.typemap import to_pydantic
from streaming_agents.sql.typeparse import parse_columns
from streaming_agents.sql.types import SqlType
from streaming_agents.tools import Tool, tool

__all__ = ["Catalog", "SqlModel"]

_SECRET = ("api-key", "api_key", "apikey", "key", "secret", "token")
_MODEL_KEYS = {
    "provider", "model", "model_version", "endpoint", "api_base", "api_key_env", "api_key_ref",
    "connection",
    "system_prompt", "temperature", "max_tokens", "max_completion_tokens", "top_p", "seed",
    "timeout", "num_retries", "fallbacks", "task", "input_format", "output_format", "journal",
    "dimensions", "mcp.connection",
}  # fmt: skip
# Confluent's provider names -> litellm's model prefixes
PROVIDERS = {
    "openai": "openai", "azureopenai": "azure", "azureml": "azure_ai", "bedrock": "bedrock",
    "googleai": "gemini", "gemini": "gemini", "vertexai": "vertex_ai", "anthropic": "anthropic",
    "sagemaker": "sagemaker", "mistral": "mistral", "ollama": "ollama",
}  # fmt: skip
TASKS = ("text_generation", "embedding", "classification", "regression", "clustering")
_CONNECTION_KEYS = {
    "type", "endpoint", "api_base", "api_key_env", "api_key_ref", "token_env", "transport_type",
    "command", "env", "request_timeout",
}  # fmt: skip
_MCP_TYPES = ("mcp_server", "mcp")
_TOOL_KEYS = {"type", "description", "side_effecting"}
_MCP_TOOL_KEYS = {"type", "allowed_tools", "request_timeout", "side_effecting", "description"}
_AGENT_KEYS = {
    "max_iterations", "max_consecutive_failures", "max_turns", "memory_ttl", "capacity",
    "version", "max_repairs", "output",
}  # fmt: skip


@dataclass(frozen=True)
class SqlModel:
    """A model from ``CREATE MODEL``: how to call it, and what it returns."""

    name: str
    spec: ModelSpec
    system_prompt: str = ""
    output: SqlType | None = None  # None: text (or, for an embedding model, the vector)
    response_name: str = "response"
    journal: bool = True  # AI_COMPLETE answers repeated prompts from the journal
    task: str = "text_generation"
    mcp_connection: str | None = None  # 'mcp.connection': the tools AI_TOOL_INVOKE offers

    @property
    def embedding(self) -> bool:
        """Whether calls go to the embeddings API (``'task' = 'embedding'``)."""
        return self.task == "embedding"

    @property
    def columns(self) -> list[str]:
        return self.output.names if self.output is not None else [self.response_name]


def _options(
    statement: Statement, what: str, options: dict[str, str], known: set[str], prefix: str = ""
) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw, value in options.items():
        key = raw.removeprefix(f"{prefix}.") if prefix else raw
        key = key.removeprefix("params.").replace("-", "_")
        if key in _SECRET or key.endswith(("api_key", "secret")):
            raise statement.error(
                f"{what}: option {raw!r} would put a secret in the script; set an environment "
                "variable and name it with 'api_key_env' ('token_env' for an MCP server)"
            )
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise statement.error(f"{what}: unknown option {raw!r} ({hint}known: {sorted(known)})")
        result[key] = value
    return result


def _number(statement: Statement, what: str, key: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise statement.error(f"{what}: option {key!r} must be a number, got {value!r}") from None


class Catalog:
    """Everything ``CREATE CONNECTION/MODEL/TOOL/AGENT`` defined in a session."""

    def __init__(self, base_dir: Path | None = None, *, offline: bool = False) -> None:
        self.base_dir = base_dir
        self.offline = offline  # --check: MCP servers are not contacted
        self.connections: dict[str, dict[str, str]] = {}
        self.models: dict[str, SqlModel] = {}
        self.tools: dict[str, tuple[Tool, ...]] = {}  # an MCP tool is the server's tool set
        self.agents: dict[str, AgentDef] = {}
        self.python_functions: dict[str, str] = {}  # CREATE FUNCTION name AS 'path' LANGUAGE PYTHON
        self.state_ttl: str | None = None  # SET 'sql.state-ttl': the default memory_ttl

    def note_function(self, statement: Statement) -> None:
        """Remember ``CREATE FUNCTION name AS 'module.fn' LANGUAGE PYTHON`` for CREATE TOOL."""
        words = [w.upper for w in statement.words]
        if words[0] != "CREATE" or "FUNCTION" not in words[:5] or "PYTHON" not in words:
            return
        at = words.index("FUNCTION") + 1
        if words[at : at + 3] == ["IF", "NOT", "EXISTS"]:
            at += 3
        if at + 2 < len(words) and words[at + 1] == "AS":
            name, path = statement.words[at], statement.words[at + 2]
            self.python_functions[ident_value(name)] = ident_value(path)

    def _table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            "CONNECTION": self.connections,
            "MODEL": self.models,
            "TOOL": self.tools,
            "AGENT": self.agents,
        }
        return tables[kind]

    def apply(self, definition: Definition, statement: Statement) -> str:
        """Add (or drop) a definition; returns a one-line description of what was done."""
        if isinstance(definition, DropDef):
            table = self._table(definition.kind)
            if definition.name not in table and not definition.if_exists:
                raise statement.error(f"no {definition.kind.lower()} named {definition.name!r}")
            table.pop(definition.name, None)
            return f"dropped {definition.kind.lower()} {definition.name}"
        kind = type(definition).__name__.removesuffix("Def").upper()
        if definition.name in self._table(kind):
            if definition.if_not_exists:
                return f"{kind.lower()} {definition.name} exists"
            raise statement.error(f"{kind.lower()} {definition.name!r} already exists")
        if isinstance(definition, ConnectionDef):
            self.connections[definition.name] = _options(
                statement, f"connection {definition.name!r}", definition.options, _CONNECTION_KEYS
            )
        elif isinstance(definition, ModelDef):
            self.models[definition.name] = self._model(definition, statement)
        elif isinstance(definition, ToolDef):
            if definition.connection is not None:
                self.tools[definition.name] = self._mcp_tools(definition, statement)
            else:
                self.tools[definition.name] = (self._tool(definition, statement),)
        else:
            self._agent_options(definition, statement)
            unknown = [t for t in definition.tools if t not in self.tools]
            if definition.model not in self.models:
                raise statement.error(
                    f"agent {definition.name!r}: no model {definition.model!r} "
                    f"(models: {sorted(self.models) or 'none yet'})"
                )
            if unknown:
                raise statement.error(
                    f"agent {definition.name!r}: no tool(s) {unknown} "
                    f"(tools: {sorted(self.tools) or 'none yet'})"
                )
            self.agents[definition.name] = definition
        return f"created {kind.lower()} {definition.name}"

    def _model(self, definition: ModelDef, statement: Statement) -> SqlModel:
        what = f"model {definition.name!r}"
        provider = definition.options.get("provider", "").strip()
        opts = _options(statement, what, definition.options, _MODEL_KEYS, provider)
        connection_name = opts.get("connection")
        if connection_name is not None:
            if connection_name not in self.connections:
                raise statement.error(f"{what}: no connection {connection_name!r}")
            opts = {**self.connections[connection_name], **opts}
        model = opts.get("model") or opts.get("model_version")
        if not model:
            raise statement.error(f"{what}: needs 'model' (e.g. 'gpt-4o-mini' with 'provider')")
        if "/" not in model:
            if not provider:
                raise statement.error(f"{what}: 'model' {model!r} needs a 'provider' (openai, ...)")
            model = f"{PROVIDERS.get(provider.lower(), provider.lower())}/{model}"
        task = opts.get("task", "text_generation").strip().lower()
        if task not in TASKS:
            raise statement.error(f"{what}: 'task' must be one of {list(TASKS)}, got {task!r}")
        endpoint = opts.get("api_base") or opts.get("endpoint")
        if endpoint:
            for suffix in ("/chat/completions", "/embeddings", "/"):
                endpoint = endpoint.removesuffix(suffix)
        params: dict[str, Any] = {}
        numbers = (
            ("temperature", float), ("top_p", float), ("max_tokens", int),
            ("max_completion_tokens", int), ("seed", int), ("dimensions", int),
        )  # fmt: skip
        for key, kind in numbers:
            if key in opts:
                params[key] = _number(statement, what, key, opts[key], kind)
        spec = ModelSpec(
            model=model,
            api_base=endpoint or None,
            api_key_env=opts.get("api_key_env") or None,
            api_key_ref=opts.get("api_key_ref") or None,  # file:/path: this model's own key
            params=params,
            timeout_s=_number(statement, what, "timeout", opts.get("timeout", "60"), float),
            num_retries=_number(statement, what, "num_retries", opts.get("num_retries", "2"), int),
            fallbacks=tuple(f.strip() for f in opts.get("fallbacks", "").split(",") if f.strip()),
        )
        output = definition.output
        response = "embedding" if task == "embedding" else "response"
        if output is not None and len(output.fields) == 1:
            column_kind = output.fields[0][1].kind
            if column_kind == "STRING" or (task == "embedding" and column_kind == "ARRAY"):
                response, output = output.fields[0][0], None
        if task == "embedding" and output is not None:
            raise statement.error(f"{what}: an embedding model's OUTPUT is one ARRAY column")
        journal = opts.get("journal", "true").lower() not in ("false", "no", "0")
        system_prompt = opts.get("system_prompt", "")
        mcp = opts.get("mcp.connection")
        if mcp is not None and self.connections.get(mcp, {}).get("type", "").lower() not in (
            _MCP_TYPES
        ):
            raise statement.error(f"{what}: 'mcp.connection' {mcp!r} is no MCP server connection")
        return SqlModel(definition.name, spec, system_prompt, output, response, journal, task, mcp)

    def _tool(self, definition: ToolDef, statement: Statement) -> Tool:
        what = f"tool {definition.name!r}"
        opts = _options(statement, what, definition.options, _TOOL_KEYS)
        if opts.get("type", "function").lower() != "function":
            raise statement.error(f"{what}: only 'type' = 'function' tools are supported")
        path = self.python_functions.get(definition.function, definition.function)
        target = resolve_callable(path, self.base_dir)
        if target is None:
            raise statement.error(
                f"{what}: cannot import {path!r}: give 'module.function' (a module next to the "
                "script or on PYTHONPATH) or a function created with CREATE FUNCTION ... "
                "LANGUAGE PYTHON"
            )
        side = opts.get("side_effecting", "false").lower() in ("true", "yes", "1")
        description = opts.get("description") or definition.comment
        if isinstance(target, Tool):
            found = target
        else:
            try:
                found = tool(target, name=definition.name, side_effecting=side)
            except ConfigError as exc:
                raise statement.error(f"{what}: {exc}") from exc
        return dataclasses.replace(
            found,
            name=definition.name,
            description=description or found.description,
            side_effecting=found.side_effecting or side,
        )

    def _mcp_tools(self, definition: ToolDef, statement: Statement) -> tuple[Tool, ...]:
        """The tools of an MCP server (``CREATE TOOL ... USING CONNECTION``), listed now."""
        from streaming_agents.sql.mcp import mcp_tool_set

        what = f"tool {definition.name!r}"
        opts = _options(statement, what, definition.options, _MCP_TOOL_KEYS)
        connection = self.connections.get(definition.connection or "")
        if connection is None:
            raise statement.error(f"{what}: no connection {definition.connection!r}")
        if connection.get("type", "").lower() not in _MCP_TYPES:
            raise statement.error(
                f"{what}: connection {definition.connection!r} is not an MCP server "
                "('type' = 'mcp_server')"
            )
        if self.offline:
            return ()
        try:
            return mcp_tool_set(connection, opts)
        except StreamingAgentsError as exc:
            raise statement.error(f"{what}: {exc}") from exc

    def invoke_tools(
        self, model: SqlModel, function_tools: list[str], mcp_tools: list[str], statement: Statement
    ) -> tuple[Tool, ...]:
        """The tools ``AI_TOOL_INVOKE`` offers: session tools by name, the model's MCP tools."""
        from streaming_agents.sql.mcp import mcp_tool_set

        unknown = [t for t in function_tools if t not in self.tools]
        if unknown:
            raise statement.error(f"AI_TOOL_INVOKE: no tool(s) {unknown} (CREATE TOOL first)")
        tools = [tool for name in function_tools for tool in self.tools[name]]
        if mcp_tools:
            if model.mcp_connection is None:
                raise statement.error(
                    f"AI_TOOL_INVOKE: model {model.name!r} has no 'mcp.connection' for "
                    f"the MCP tools {mcp_tools}"
                )
            if not self.offline:
                connection = self.connections[model.mcp_connection]
                try:
                    tools += mcp_tool_set(connection, {"allowed_tools": ",".join(mcp_tools)})
                except StreamingAgentsError as exc:
                    raise statement.error(f"AI_TOOL_INVOKE: {exc}") from exc
        return tuple(tools)

    def _agent_options(self, definition: AgentDef, statement: Statement) -> dict[str, str]:
        return _options(statement, f"agent {definition.name!r}", definition.options, _AGENT_KEYS)

    def agent(self, name: str, *, stateless: bool, statement: Statement) -> tuple[Agent[Any], int]:
        """The :class:`Agent` for ``AI_RUN_AGENT(name, ...)`` and its capacity."""
        definition = self.agents.get(name)
        if definition is None:
            raise statement.error(f"no agent {name!r} (agents: {sorted(self.agents) or 'none'})")
        what = f"agent {name!r}"
        opts = self._agent_options(definition, statement)
        model = self.models[definition.model]
        output: SqlType | None = model.output
        if "output" in opts:
            try:
                output = parse_columns(opts["output"])
            except SqlScriptError as exc:
                raise statement.error(f"{what}: option 'output': {exc}") from exc
        output_model: type[BaseModel] | None = (
            to_pydantic(output, f"{name}_output") if output is not None else None
        )
        if model.embedding:
            raise statement.error(f"{what}: model {model.name!r} is an embedding model")
        ttl = opts.get("memory_ttl") or self.state_ttl
        spec = model.spec
        if "max_consecutive_failures" in opts:
            failures = _number(
                statement, what, "max_consecutive_failures", opts["max_consecutive_failures"], int
            )
            if failures < 1:
                raise statement.error(f"{what}: 'max_consecutive_failures' must be >= 1")
            spec = spec.model_copy(update={"num_retries": failures - 1})
        try:
            agent = sql_agent(
                name,
                spec,
                system_prompt=definition.prompt or model.system_prompt,
                tools=tuple(tool for t in definition.tools for tool in self.tools[t]),
                output_model=output_model,
                stateless=stateless,
                version=opts.get("version", "1"),
                max_turns=_number(statement, what, "max_turns", opts.get("max_turns", "20"), int),
                ttl_seconds=(parse_duration(ttl) or None) if ttl else None,
                max_tool_iterations=_number(
                    statement, what, "max_iterations", opts.get("max_iterations", "10"), int
                ),
                max_repairs=_number(
                    statement, what, "max_repairs", opts.get("max_repairs", "1"), int
                ),
            )
        except (ConfigError, ValueError) as exc:
            raise statement.error(f"{what}: {exc}") from exc
        capacity = _number(statement, what, "capacity", opts.get("capacity", "100"), int)
        return agent, capacity
