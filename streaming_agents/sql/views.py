"""The views that replace ``LATERAL TABLE(AI_RUN_AGENT / AI_COMPLETE / ML_PREDICT(...))``.

An ``AI_RUN_AGENT`` view is an agent table (:func:`agent_table`: the agent
operator with keyed memory, journal and exactly-once state) over
``SELECT *, <prompt>, <key> FROM <source> [WHERE <pushed filters>]``,
projected to the source's columns plus ``status, response, turn, error``
(or the first names of ``AS r(...)``).  An ``AI_COMPLETE``/``ML_PREDICT``
view is plain SQL around the model's completion function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streaming_agents.sql.agentcall import key_warning, parse_agent_call
from streaming_agents.sql.agents import KEY_FIELD, PROMPT_FIELD
from streaming_agents.sql.lexer import SqlScriptError, Statement, call_name
from streaming_agents.sql.rewrite import LateralCall
from streaming_agents.sql.tally import AI

if TYPE_CHECKING:
    from streaming_agents.sql.session import SqlSession

__all__ = ["AGENT_RESULT_COLUMNS", "ViewBuilder"]

AGENT_RESULT_COLUMNS = ("status", "response", "turn", "error")
_AGENT_SOURCES = ("agent_status", "sa__response", "agent_turn", "agent_error")
_OUT = "sa__out"


@dataclass
class ViewBuilder:
    """Resolver for :func:`rewrite_laterals` within one statement."""

    session: SqlSession
    statement: Statement
    uses_agents: bool = False
    uses_completions: bool = False

    def error(self, call: LateralCall, message: str) -> SqlScriptError:
        return self.statement.error(f"line {call.line}: {call.function}: {message}")

    def columns(self, call: LateralCall) -> list[str]:
        if call.function == "AI_RUN_AGENT":
            if len(call.columns) > len(AGENT_RESULT_COLUMNS):
                raise self.error(call, f"returns at most {list(AGENT_RESULT_COLUMNS)}")
            return call.columns or list(AGENT_RESULT_COLUMNS[:2])
        model = self.session.model(self._name(call, "model"), self.statement)
        if len(call.columns) > len(model.columns):
            raise self.error(call, f"model {model.name!r} returns only {model.columns}")
        return call.columns or model.columns

    def _name(self, call: LateralCall, what: str) -> str:
        if len(call.args) < 2:
            raise self.error(call, f"needs at least ({what}, prompt)")
        try:
            return call_name(call.args[0], what, call.line)
        except SqlScriptError as exc:
            raise self.error(call, str(exc)) from exc

    def _pre_query(self, call: LateralCall, extra: str) -> Any:
        where = " AND ".join(f"({p})" for p in call.pushed)
        text = f"SELECT *, {extra} FROM {call.source}" + (f" WHERE {where}" if where else "")
        return self.session.query(text, self.statement)

    def _check(self, call: LateralCall, source: list[str], names: list[str]) -> None:
        taken = {c.lower() for c in source}
        clash = [n for n in names if n.lower() in taken]
        if clash:
            renamed = ", ".join(f"r_{n}" for n in names)
            raise self.error(
                call,
                f"result column(s) {clash} clash with columns of {call.source!r}; name the "
                f"results: LATERAL TABLE({call.function}(...)) AS r({renamed})",
            )

    def view(self, call: LateralCall) -> str:
        from pyflink.table.expressions import col

        names = self.columns(call)
        if call.function == "AI_RUN_AGENT":
            self.uses_agents = True
            table = self._agent_view(call, names, col)
        else:
            self.uses_completions = True
            model = self.session.model(self._name(call, "model"), self.statement)
            embedding = None if call.function == "ML_PREDICT" else False
            function = self.session.completion_function(
                model.name, self.statement, embedding=embedding
            )
            pre = self._pre_query(call, f"{function}({call.args[1]}) AS {_OUT}")
            source = [c for c in pre.get_resolved_schema().get_column_names() if c != _OUT]
            self._check(call, source, names)
            if model.output is None:
                outs = [col(_OUT).alias(names[0])]
            else:
                outs = [
                    col(_OUT).get(f).alias(n) for f, n in zip(model.columns, names, strict=False)
                ]
            table = pre.select(*[col(c) for c in source], *outs)
        return self.session.register_view(table, agents=call.function == "AI_RUN_AGENT")

    def _agent_view(self, call: LateralCall, names: list[str], col: Any) -> Any:
        from streaming_agents.sql.table import agent_table

        try:
            parsed = parse_agent_call(call.args, call.line)
        except SqlScriptError as exc:
            raise self.error(call, str(exc)) from exc
        name, prompt, key = parsed.agent, parsed.prompt, parsed.key
        agent, capacity = self.session.catalog.agent(
            name, stateless=parsed.memory_key is None, statement=self.statement
        )
        where = f"statement {self.statement.number} line {call.line}"
        warning = key_warning(parsed)
        if warning:
            self.session.warn(f"{where}: {warning}")
        catalog = self.session.catalog
        options = catalog.agents[name].options if name in catalog.agents else {}
        has_ttl = any(k.replace("-", "_") == "memory_ttl" for k in options)
        if parsed.memory_key and not has_ttl and not catalog.state_ttl:
            self.session.warn(
                f"{where}: agent {name!r} keeps the memory of every key forever; set "
                "'memory_ttl' on the agent or SET 'sql.state-ttl' to forget idle keys"
            )
        key_sql = f"MD5(CAST(({prompt}) AS STRING))"
        if parsed.memory_key:  # a conversation: a row without this key is FAILED, never shared
            key_sql = f"CAST(({key}) AS STRING)"
        elif key:  # a request id only orders rows: a NULL or empty one falls back on the prompt
            key_sql = f"COALESCE(NULLIF(CAST(({key}) AS STRING), ''), {key_sql})"
        pre = self._pre_query(
            call, f"CAST(({prompt}) AS STRING) AS {PROMPT_FIELD}, {key_sql} AS {KEY_FIELD}"
        )
        source = [
            c
            for c in pre.get_resolved_schema().get_column_names()
            if c not in (PROMPT_FIELD, KEY_FIELD)
        ]
        self._check(call, source, names)
        uid, n = f"sql-agent-{name}", 1
        while uid in self.session.uids:
            n += 1
            uid = f"sql-agent-{name}-{n}"
        self.session.uids.add(uid)
        table = agent_table(
            self.session.t_env,
            pre,
            agent,
            key=KEY_FIELD,
            capacity=capacity,
            journal=self.session.journal(name),
            uid=uid,
            flatten_output=False,
            output_prefix="sa__",
            tally=self.session.tally(self.statement, AI),
        )
        outs = [col(src).alias(n) for src, n in zip(_AGENT_SOURCES, names, strict=False)]
        return table.select(*[col(c) for c in source], *outs)
