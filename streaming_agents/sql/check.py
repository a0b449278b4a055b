"""Check a script without running it: statements split, own DDL parsed, AI_* calls found.

Nothing is submitted and no JVM starts, so a CI job (or ``streaming-agents
sql --check``) can catch most mistakes in seconds; Flink's own statements
are only checked when the script runs.
"""

from __future__ import annotations

from pathlib import Path

from streaming_agents.sql.agentcall import key_warning, map_entries, parse_agent_call
from streaming_agents.sql.catalog import Catalog
from streaming_agents.sql.ddl import is_own_ddl, parse_ddl
from streaming_agents.sql.lexer import SqlScriptError, Statement, split_statements, substitute
from streaming_agents.sql.rewrite import LateralCall, rewrite_laterals, rewrite_scalars
from streaming_agents.sql.support import table_without_connector, unsupported

__all__ = ["NO_CONNECTOR", "check_script"]

TOOL_INVOKE = True  # AI_TOOL_INVOKE runs (streaming_agents/sql/toolinvoke.py)
NO_CONNECTOR = (
    "CREATE TABLE without 'connector': Confluent Cloud backs every table with a Kafka topic, "
    "Flink needs the connector options, e.g. WITH ('connector' = 'kafka', 'topic' = '...', "
    "'properties.bootstrap.servers' = '...', 'format' = 'json')"
)


class _Names:
    """A resolver that checks names only."""

    def __init__(self, catalog: Catalog, statement: Statement) -> None:
        self.catalog, self.statement = catalog, statement
        self.warnings: list[str] = []

    def columns(self, call: LateralCall) -> list[str]:
        return call.columns or ["status", "response"]

    def view(self, call: LateralCall) -> str:
        from streaming_agents.sql.lexer import call_name

        if len(call.args) < 2:
            raise self.statement.error(f"{call.function} needs at least (name, prompt)")
        name = call_name(call.args[0], "name", call.line)
        if call.function == "AI_RUN_AGENT":
            warning = key_warning(parse_agent_call(call.args, call.line))
            if warning:
                self.warnings.append(f"line {call.line}: {warning}")
        known = self.catalog.agents if call.function == "AI_RUN_AGENT" else self.catalog.models
        if name not in known:
            what = "agent" if call.function == "AI_RUN_AGENT" else "model"
            raise self.statement.error(f"line {call.line}: no {what} {name!r}")
        return f"checked_{name}"


def check_script(
    text: str, variables: dict[str, str] | None = None, base_dir: str | Path | None = None
) -> list[str]:
    """One line per statement describing it.

    Raises :class:`SqlScriptError` at the first error in a statement the
    runner would execute; statements it cannot execute at all (Confluent-only
    functions and statements, tables without a connector) are collected and
    all reported in one error at the end, each with its reason.
    """
    catalog = Catalog(Path(base_dir).resolve() if base_dir else None, offline=True)
    lines: list[str] = []
    problems: list[str] = []
    for statement in split_statements(substitute(text, variables)):
        heads = [w.upper for w in statement.words[:4]]
        is_set = heads == ["EXECUTE", "STATEMENT", "SET", "BEGIN"]
        for inner in statement.inner_statements() if is_set else [statement]:
            reason = unsupported(inner, tool_invoke=TOOL_INVOKE)
            if reason is None and table_without_connector(inner):
                reason = NO_CONNECTOR
            if reason is not None:
                problems.append(str(inner.error(reason)))
        if problems and problems[-1].startswith(f"statement {statement.number} "):
            lines.append(f"[{statement.number}] line {statement.line}: cannot run here")
            continue
        if is_own_ddl(statement):
            lines.append(f"[{statement.number}] {catalog.apply(parse_ddl(statement), statement)}")
            continue
        catalog.note_function(statement)
        resolver = _Names(catalog, statement)

        def model_function(model: str, line: int, statement: Statement = statement) -> str:
            if model not in catalog.models:
                raise statement.error(f"line {line}: no model {model!r}")
            return f"complete_{model}"

        def tool_invoke(
            model: str, line: int, args: list[str], statement: Statement = statement
        ) -> str:
            found = catalog.models.get(model)
            if found is None:
                raise statement.error(f"line {line}: no model {model!r}")
            function_tools = list(map_entries(args[2], line) or {})
            mcp_tools = list(map_entries(args[3], line) or {})
            catalog.invoke_tools(found, function_tools, mcp_tools, statement)
            return f"tools_{model}"

        try:
            rewritten = rewrite_laterals(statement.text, resolver, statement.line)
            rewrite_scalars(rewritten, model_function, statement.line, None, tool_invoke)
        except SqlScriptError as exc:
            if str(exc).startswith("statement "):
                raise
            raise statement.error(str(exc)) from None
        head = " ".join(w.text for w in statement.words[:3])
        lines.append(f"[{statement.number}] line {statement.line}: {head} ...")
        lines.extend(f"[{statement.number}] warning: {w}" for w in resolver.warnings)
    if problems:
        raise SqlScriptError(
            f"{len(problems)} statement(s) cannot run here:\n" + "\n".join(problems)
        )
    return lines
