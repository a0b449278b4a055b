"""What the runner cannot execute, said before anything runs (by ``--check`` and by the runner).

Confluent Cloud scripts use statements and functions that exist only there.
:func:`unsupported` names the first one in a statement with the reason and
what to write instead, so neither ``--check`` says OK nor the runner fails
later with Flink's "No match found for function signature".
:func:`ctas` recognises ``CREATE [OR REPLACE] TABLE name ... AS <query>``,
which the runner runs (and waits for) like an ``INSERT``.
"""

from __future__ import annotations

from dataclasses import dataclass

from streaming_agents.sql.lexer import Statement, Token, depth_step, ident_value

__all__ = ["Ctas", "ctas", "table_without_connector", "unsupported"]

_FUNCTIONS = {
    "ML_DETECT_ANOMALIES": "Confluent's built-in ARIMA anomaly detection has no counterpart "
    "here; compute the bounds with OVER windows or a Python UDF",
    "ML_FORECAST": "Confluent's forecasting function has no counterpart here",
    "AI_FORECAST": "Confluent's forecasting function has no counterpart here",
    "ML_EVALUATE": "model evaluation is not available; compare outputs with SQL",
    "VECTOR_SEARCH_AGG": "external vector-database search is not available; join a table "
    "of embeddings or call the store from a Python UDF",
    "VECTOR_SEARCH": "external vector-database search is not available",
    "KEY_SEARCH_AGG": "external-table lookups are not available; use a lookup join on a "
    "Flink connector table",
    "TEXT_SEARCH_AGG": "external full-text search is not available",
}
_ALTER = ("AGENT", "TOOL", "MODEL", "CONNECTION")


@dataclass(frozen=True)
class Ctas:
    """``CREATE TABLE name ... AS query``: the table and whether it names a connector."""

    name: str
    has_connector: bool


def _words(statement: Statement) -> list[Token]:
    return statement.words


def _with_has_connector(words: list[Token], start: int, end: int) -> bool:
    """Whether ``WITH ( ... 'connector' = ... )`` occurs at depth 0 between the indexes."""
    depth = 0
    for n in range(start, end):
        token = words[n]
        if depth == 0 and token.is_word("WITH") and n + 1 < end and words[n + 1].text == "(":
            inner, k = 0, n + 1
            while k < end:
                inner += depth_step(words[k])
                string = words[k].kind == "string"
                if inner == 1 and string and ident_value(words[k]).strip().lower() == "connector":
                    return True
                if inner == 0:
                    break
                k += 1
        depth += depth_step(token)
    return False


def _table_index(words: list[Token]) -> int | None:
    upper = [w.upper for w in words[:6]]
    if not upper or upper[0] != "CREATE":
        return None
    at = 1
    if upper[at : at + 2] == ["OR", "REPLACE"]:
        at += 2
    if at < len(upper) and upper[at] == "TEMPORARY":
        at += 1
    return at if at < len(upper) and upper[at] == "TABLE" else None


def ctas(statement: Statement) -> Ctas | None:
    """The CTAS in ``statement``, or None when it is not one."""
    words = _words(statement)
    at = _table_index(words)
    if at is None:
        return None
    depth = 0
    for n in range(at + 1, len(words) - 1):
        token = words[n]
        if depth == 0 and token.is_word("AS") and words[n + 1].is_word("SELECT", "WITH"):
            k = at + 1
            if [w.upper for w in words[k : k + 3]] == ["IF", "NOT", "EXISTS"]:
                k += 3
            name = ident_value(words[k])
            while k + 2 < n and words[k + 1].text == ".":
                k += 2
                name = ident_value(words[k])
            return Ctas(name, _with_has_connector(words, at + 1, n))
        depth += depth_step(token)
    return None


def table_without_connector(statement: Statement) -> bool:
    """A plain ``CREATE TABLE`` (not LIKE, not CTAS) whose options name no connector."""
    words = _words(statement)
    at = _table_index(words)
    if at is None or ctas(statement) is not None or any(w.is_word("LIKE") for w in words):
        return False
    return not _with_has_connector(words, at + 1, len(words))


def unsupported(statement: Statement, *, tool_invoke: bool = False) -> str | None:
    """Why the runner cannot execute ``statement`` (None: it can, as far as we know)."""
    words = _words(statement)
    upper = [w.upper for w in words[:3]]
    if upper[:1] == ["ALTER"] and len(upper) > 1 and upper[1] in _ALTER:
        return (
            f"ALTER {upper[1]} is not supported: models, tools and agents live for the "
            f"script's session; DROP {upper[1]} and CREATE it again"
        )
    found = ctas(statement)
    if found is not None and not found.has_connector:
        return (
            f"CREATE TABLE {found.name} AS SELECT needs connector options: Confluent Cloud "
            "makes a Kafka topic for the table, Flink needs them spelled out, e.g. "
            f"CREATE TABLE {found.name} WITH ('connector' = 'kafka', 'topic' = '...', "
            "'properties.bootstrap.servers' = '...', 'format' = 'json') AS SELECT ..."
        )
    for n, token in enumerate(words[:-1]):
        if token.kind != "ident" or words[n + 1].text != "(":
            continue
        name = token.upper
        if name in _FUNCTIONS:
            return f"line {token.line}: {name} is not supported: {_FUNCTIONS[name]}"
        if name == "AI_TOOL_INVOKE" and not tool_invoke:
            return (
                f"line {token.line}: AI_TOOL_INVOKE is not supported: give the tool to an agent "
                "(CREATE TOOL ... USING CONNECTION, CREATE AGENT ... USING TOOLS) and call "
                "AI_RUN_AGENT"
            )
    return None
