"""The SQL session's Kafka tables read safely: which statements read them, their dead letters.

:mod:`streaming_agents.sql.jsonsource` describes one table's stand-ins; this
module keeps a session's tables and answers the session's questions: create
the table (its sink under a hidden name), build the decoding source when a
statement first reads it, which tables a statement reads (directly or through
views), ``INSERT INTO t`` -> its sink, and the statement set that adds the dead
letters of every table read to the statement's own job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streaming_agents.sql.jsonsource import JsonSource, quote
from streaming_agents.sql.lexer import Statement, Token, dotted_name, ident_value, tokenize
from streaming_agents.sql.outcome import flink_message
from streaming_agents.sql.tally import Tally

__all__ = ["JsonSources"]


class JsonSources:
    """The Kafka JSON tables of one session (names are per session through ``token``)."""

    def __init__(self, t_env: Any, token: str) -> None:
        self.t_env = t_env
        self.token = token
        self.tables: dict[str, JsonSource] = {}  # lower-case table name -> stand-ins
        self.views: dict[str, set[str]] = {}  # lower-case view name -> tables it reads

    def create(self, statement: Statement, source: JsonSource) -> str:
        """Create the table's sink under its hidden name; the console line."""
        source.token = self.token
        base = statement.tokens[0].offset
        last = source.name_last or source.name_token  # a qualified name: db . t
        start = source.name_token.offset - base
        end = last.offset - base + len(last.text)
        sink = f"{statement.text[:start]}{quote(source.sink_table)}{statement.text[end:]}"
        try:
            self.t_env.execute_sql(sink)
        except Exception as exc:  # noqa: BLE001 - Py4J/PyFlink raise many unrelated types
            raise statement.error(flink_message(exc, statement, False)) from None
        self.tables[source.name.lower()] = source
        return (
            f"ok: table {source.name} reads {source.layout.describe()} safely; records it "
            f"cannot use go to topic {source.dlq_topic!r}"
        )

    def build_read(self, statement: Statement, tally: Tally | None = None) -> None:
        """Build the decoding stand-ins of the tables ``statement`` reads (in its mode).

        ``tally``: where their decoders count records and dead letters, if anywhere.
        """
        for source in self.read_by(statement, ""):
            try:
                source.build(self.t_env, tally)
            except Exception as exc:  # noqa: BLE001 - Py4J/PyFlink raise many unrelated types
                message = flink_message(exc, statement, True)
                raise statement.error(
                    f"reading Kafka JSON table {source.name}: {message}"
                ) from None

    def read_by(self, statement: Statement, text: str) -> list[JsonSource]:
        """The tables a statement (and its rewritten ``text``) reads, directly or via views."""
        if not self.tables:
            return []
        names = _names([*statement.tokens, *tokenize(text)])
        found = set(names)
        for name in names:
            found |= self.views.get(name, set())
        target = _insert_target(statement)
        if target is not None and _names(statement.tokens, count=True).count(target) == 1:
            found.discard(target)  # INSERT INTO t only: t is written, not read
        return [self.tables[n] for n in sorted(found) if n in self.tables]

    def note_view(self, name: str, sources: list[JsonSource]) -> None:
        """View ``name`` reads ``sources`` (statements reading the view read them too)."""
        if sources:
            self.views[name.lower()] = {s.name.lower() for s in sources}

    def retarget(self, text: str) -> str:
        """``INSERT INTO t`` of a Kafka JSON table ``t`` -> INSERT INTO its sink table."""
        if not self.tables:
            return text
        tokens = [t for t in tokenize(text) if t.kind not in ("ws", "comment")]
        for k in range(len(tokens) - 2):
            first, second = tokens[k], tokens[k + 1]
            if not (first.is_word("INSERT") and second.is_word("INTO", "OVERWRITE")):
                continue
            parts = dotted_name(tokens, k + 2)
            source = self.tables.get(".".join(ident_value(t).lower() for t in parts))
            if source is not None:
                cut, last = parts[0].offset, parts[-1]
                return text[:cut] + quote(source.sink_table) + text[last.offset + len(last.text) :]
        return text

    def execute(self, texts: list[str], sources: list[JsonSource], number: int) -> Any:
        """One job: the INSERTs ``texts`` plus the dead letters of ``sources``."""
        statement_set = self.t_env.create_statement_set()
        for text in texts:
            statement_set.add_insert_sql(text)
        for source in sources:
            statement_set.add_insert_sql(source.dead_letter_insert(number))
        return statement_set.execute()


def _names(tokens: Sequence[Token], count: bool = False) -> list[str]:
    """Lower-case names mentioned: every identifier, and every dotted name (``db.t``)."""
    words = [t for t in tokens if t.kind not in ("ws", "comment")]
    names = []
    for n, token in enumerate(words):
        if token.kind not in ("ident", "qident"):
            continue
        names.append(ident_value(token).lower())
        if n > 0 and words[n - 1].text == ".":
            continue  # a dotted name is counted once, from its first part
        parts = dotted_name(words, n)
        if len(parts) > 1:
            names.append(".".join(ident_value(t).lower() for t in parts))
    return names if count else sorted(set(names))


def _insert_target(statement: Statement) -> str | None:
    """The lower-case table an ``INSERT INTO/OVERWRITE`` writes (``db.t`` if qualified)."""
    words = statement.words
    at = 1 if words and words[0].is_word("EXECUTE") else 0
    if (
        len(words) > at + 2
        and words[at].is_word("INSERT")
        and words[at + 1].is_word("INTO", "OVERWRITE")
    ):
        parts = dotted_name(words, at + 2)
        return ".".join(ident_value(t).lower() for t in parts) if parts else None
    return None
