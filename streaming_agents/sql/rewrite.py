"""Rewrite ``AI_RUN_AGENT`` / ``AI_COMPLETE`` / ``ML_PREDICT`` calls into plain Flink SQL.

``FROM src [AS s], LATERAL TABLE(AI_RUN_AGENT(...)) [AS r[(c1, ...)]]`` (also
``CROSS JOIN LATERAL TABLE(...)`` and ``[LEFT] JOIN LATERAL TABLE(...) ON TRUE``)
becomes ``FROM <view> AS s``, where the view (built by the session) holds the
source's columns plus the call's result columns; qualifiers ``r.x`` become
``s.x``.  Conjuncts of the ``WHERE`` right after the call that do not use
its results are moved below the call, as Flink's planner would do for a real
lateral join, so filtered-out rows never reach the LLM.  A scalar
``AI_COMPLETE('model', prompt)`` becomes a call of the model's function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from streaming_agents.sql.lexer import (
    SqlScriptError,
    Token,
    call_name,
    closing,
    depth_step,
    ident_value,
    significant,
    span,
    split_args,
    tokenize,
)

__all__ = ["LateralCall", "Resolver", "rewrite_laterals", "rewrite_scalars"]

TABLE_FUNCTIONS = ("AI_RUN_AGENT", "AI_COMPLETE", "ML_PREDICT")
_CLAUSE_END = ("GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "INTERSECT", "EXCEPT", "WINDOW")


@dataclass
class LateralCall:
    """One ``LATERAL TABLE(fn(args))`` found in a statement."""

    function: str
    args: list[str]
    source: str
    alias: str | None
    lateral_alias: str | None
    columns: list[str]
    pushed: list[str] = field(default_factory=list)
    line: int = 1


class Resolver(Protocol):
    """What the rewrite asks the session about a call."""

    def columns(self, call: LateralCall) -> list[str]:
        """The names the call's result columns will have."""

    def view(self, call: LateralCall) -> str:
        """Build the view replacing source + call (``call.pushed`` filters first); its name."""


def _find(tokens: list[Token], sig: list[int]) -> int | None:
    for k in range(len(sig) - 4):
        a, b, c, d, e = (tokens[sig[k + i]] for i in range(5))
        opens = c.text == "(" and e.text == "("
        if a.is_word("LATERAL") and b.is_word("TABLE") and opens and d.is_word(*TABLE_FUNCTIONS):
            return k
    return None


def rewrite_laterals(text: str, resolver: Resolver, line: int = 1) -> str:
    """Replace every lateral call by a view the resolver builds."""
    while True:
        tokens = tokenize(text, line)
        sig = significant(tokens)
        k = _find(tokens, sig)
        if k is None:
            return text
        text = _rewrite_one(text, tokens, sig, k, resolver)


def _rewrite_one(text: str, tokens: list[Token], sig: list[int], k: int, resolver: Resolver) -> str:
    line = tokens[sig[k]].line
    function = tokens[sig[k + 3]].text.upper()

    def fail(message: str) -> SqlScriptError:
        return SqlScriptError(f"line {line}: {function}: {message}")

    k_fn_close = closing(tokens, sig, k + 4)
    args = split_args(text, tokens, sig, k + 4, k_fn_close)
    k_end = closing(tokens, sig, k + 2)
    if k_end != k_fn_close + 1:
        raise fail("LATERAL TABLE(...) must hold just the function call")
    # the alias of the call: [AS] name [(c1, c2, ...)]
    j = k_end + 1
    lateral_alias, columns = None, []
    if j < len(sig) and tokens[sig[j]].is_word("AS"):
        j += 1
    if (
        j < len(sig)
        and tokens[sig[j]].kind in ("ident", "qident")
        and not tokens[sig[j]].is_word(
            "WHERE", "ON", "JOIN", "CROSS", "LEFT", "INNER", "GROUP", "ORDER", "UNION", "LIMIT"
        )
    ):
        lateral_alias = ident_value(tokens[sig[j]])
        j += 1
        if j < len(sig) and tokens[sig[j]].text == "(":
            j_close = closing(tokens, sig, j)
            columns = [call_name(a, "column alias", line) for a in split_args(
                text, tokens, sig, j, j_close)]  # fmt: skip
            j = j_close + 1
    # what joins the call to the table before it
    b = k - 1
    joined_by_join = False
    if b >= 0 and tokens[sig[b]].text == ",":
        pass
    elif b >= 0 and tokens[sig[b]].is_word("JOIN"):
        joined_by_join = True
        while b - 1 >= 0 and tokens[sig[b - 1]].is_word("CROSS", "LEFT", "INNER", "OUTER"):
            b -= 1
    else:
        raise fail("write FROM <table> [AS t], LATERAL TABLE(...) [AS r]")
    if joined_by_join and j + 1 < len(sig) and tokens[sig[j]].is_word("ON"):
        if not tokens[sig[j + 1]].is_word("TRUE"):
            raise fail("a join with LATERAL TABLE(...) must be ON TRUE")
        j += 2
    # the single FROM item before it
    depth, f = 0, b - 1
    while f >= 0:
        token = tokens[sig[f]]
        depth -= depth_step(token)
        if depth < 0:
            raise fail("no FROM before the call")
        if depth == 0 and (token.text == "," or token.is_word("JOIN")):
            raise fail("only one table may come before the call; join in a subquery first")
        if depth == 0 and token.is_word("FROM"):
            break
        f -= 1
    if f < 0 or f + 1 > b - 1:
        raise fail("no table before the call")
    last = sig[b - 1]
    while tokens[last + 1].kind in ("ws", "comment") and last + 1 < sig[b]:
        last += 1  # keep hints (/*+ OPTIONS(...) */) after the table name
    source = span(text, tokens, sig[f + 1], last).rstrip()
    alias = _source_alias(tokens, sig[f + 1 : b])
    call = LateralCall(function, args, source, alias, lateral_alias, columns, line=line)
    # WHERE conjuncts that do not use the call's results
    where = _where(tokens, sig, j)
    remaining: list[str] | None = None
    if where is not None:
        _, _, parts = where
        blocked = {c.lower() for c in (*columns, *resolver.columns(call))}
        if lateral_alias:
            blocked.add(lateral_alias.lower())
        keep: list[str] = []
        push: list[str] = []
        for first, last in parts:
            words = [tokens[sig[i]] for i in range(first, last + 1)]
            uses = any(
                (w.kind in ("ident", "qident") and ident_value(w).lower() in blocked)
                or w.is_word("SELECT", *TABLE_FUNCTIONS)
                for w in words
            )
            (keep if uses else push).append(span(text, tokens, sig[first], sig[last]))
        call.pushed = push
        remaining = keep
    view = resolver.view(call)
    out = [text[: tokens[sig[f + 1]].offset], view if alias is None else f"{view} AS {alias}"]
    after = tokens[sig[j - 1]]
    if where is None:
        out.append(text[after.offset + len(after.text) :])
    else:
        out.append(text[after.offset + len(after.text) : tokens[sig[where[0]]].offset])
        end = tokens[sig[where[1]]]
        rest = text[end.offset + len(end.text) :]
        if remaining:
            kept = "WHERE " + " AND ".join(f"({c})" for c in remaining)
            out.append(kept if not rest or rest[0].isspace() else kept + " ")
        out.append(rest)
    rewritten = "".join(out)
    if lateral_alias:
        rewritten = _requalify(rewritten, lateral_alias, alias or view)
    return rewritten


def _requalify(text: str, old: str, new: str) -> str:
    """Replace the qualifier ``old.`` by ``new.`` everywhere in ``text``."""
    tokens = tokenize(text)
    out = []
    for n, token in enumerate(tokens):
        following = tokens[n + 1] if n + 1 < len(tokens) else None
        qualifies = following is not None and following.text == "."
        if qualifies and token.kind in ("ident", "qident") and ident_value(token) == old:
            out.append(f"`{new}`")
        else:
            out.append(token.text)
    return "".join(out)


def _source_alias(tokens: list[Token], item: list[int]) -> str | None:
    words = [tokens[i] for i in item]
    if words[0].text == "(":
        depth, end = 0, 0
        for n, w in enumerate(words):
            depth += depth_step(w)
            if depth == 0:
                end = n
                break
        rest = [w for w in words[end + 1 :] if not w.is_word("AS")]
        return ident_value(rest[-1]) if rest else None
    rest = [w for w in words if w.text != "."]
    return ident_value(rest[-1]) if rest else None


def _where(
    tokens: list[Token], sig: list[int], j: int
) -> tuple[int, int, list[tuple[int, int]]] | None:
    """(start, end, conjunct spans) of a WHERE directly after ``sig[j - 1]``."""
    if j >= len(sig) or not tokens[sig[j]].is_word("WHERE"):
        return None
    depth, parts, start, between = 0, [], j + 1, False
    last = j
    for n in range(j + 1, len(sig)):
        token = tokens[sig[n]]
        step = depth_step(token)
        if depth + step < 0 or (depth == 0 and token.is_word(*_CLAUSE_END)):
            break
        depth += step
        if depth == 0 and token.is_word("BETWEEN"):
            between = True
        elif depth == 0 and token.is_word("AND"):
            if between:
                between = False
            else:
                parts.append((start, n - 1))
                start = n + 1
        last = n
    if last < start:
        return None
    parts.append((start, last))
    return j, last, parts


def rewrite_scalars(
    text: str,
    function_for: Callable[[str, int], str],
    line: int = 1,
    embedding_for: Callable[[str, int], str] | None = None,
    tool_invoke_for: Callable[[str, int, list[str]], str] | None = None,
) -> str:
    """``AI_COMPLETE('m', p)`` -> ``<function_for('m', line)>(p)``; ``AI_EMBEDDING`` likewise."""
    while True:
        tokens = tokenize(text, line)
        sig = significant(tokens)
        for k in range(len(sig) - 1):
            token = tokens[sig[k]]
            if token.is_word("AI_COMPLETE", "AI_EMBEDDING") and tokens[sig[k + 1]].text == "(":
                k_close = closing(tokens, sig, k + 1)
                args = split_args(text, tokens, sig, k + 1, k_close)
                if len(args) not in (2, 3):
                    raise SqlScriptError(
                        f"line {token.line}: {token.text} takes (model, text[, options])"
                    )
                lookup = function_for
                if token.is_word("AI_EMBEDDING") and embedding_for is not None:
                    lookup = embedding_for
                name = lookup(call_name(args[0], "model", token.line), token.line)
                start, end = tokens[sig[k]].offset, tokens[sig[k_close]].offset + 1
                text = f"{text[:start]}{name}({args[1]}){text[end:]}"
                break
            if token.is_word("AI_TOOL_INVOKE") and tokens[sig[k + 1]].text == "(":
                k_close = closing(tokens, sig, k + 1)
                args = split_args(text, tokens, sig, k + 1, k_close)
                if len(args) not in (4, 5) or tool_invoke_for is None:
                    raise SqlScriptError(
                        f"line {token.line}: AI_TOOL_INVOKE takes (model, prompt, "
                        "function_tools MAP, mcp_tools MAP[, options MAP])"
                    )
                model = call_name(args[0], "model", token.line)
                name = tool_invoke_for(model, token.line, args)
                start, end = tokens[sig[k]].offset, tokens[sig[k_close]].offset + 1
                text = f"{text[:start]}{name}({args[1]}){text[end:]}"
                break
            if token.is_word("AI_RUN_AGENT", "ML_PREDICT") and tokens[sig[k + 1]].text == "(":
                raise SqlScriptError(
                    f"line {token.line}: {token.text} is a table function: write "
                    f"FROM t, LATERAL TABLE({token.text}(...)) AS r"
                )
        else:
            return text
