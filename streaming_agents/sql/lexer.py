"""Tokens, statements and their positions in a SQL script.

The runner never parses Flink SQL itself: it only needs to find statement
boundaries, recognise its own statements (``CREATE MODEL/TOOL/AGENT``) and
locate calls to ``AI_RUN_AGENT`` / ``AI_COMPLETE`` so it can rewrite them.
A small tokenizer that knows Flink's quoting (``'...'`` strings with ``''``
escapes, backquoted identifiers, ``--`` and ``/* */`` comments) is enough,
and it keeps line numbers so errors can point at the statement.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streaming_agents.errors import UserError

__all__ = [
    "SqlScriptError",
    "Statement",
    "Token",
    "call_name",
    "closing",
    "depth_step",
    "dotted_name",
    "ident_value",
    "significant",
    "span",
    "split_args",
    "split_statements",
    "substitute",
    "tokenize",
]


class SqlScriptError(UserError):
    """A statement of a SQL script is wrong; the message says which one and why."""


@dataclass(frozen=True)
class Token:
    """One lexical token; ``kind`` is ws, comment, string, qident, ident, number or op."""

    kind: str
    text: str
    offset: int
    line: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else self.text

    def is_word(self, *words: str) -> bool:
        return self.kind == "ident" and self.text.upper() in words


_PATTERNS = [
    ("ws", r"\s+"),
    ("comment", r"--[^\n]*|/\*.*?\*/"),
    ("string", r"(?:[xXnN]|_[A-Za-z0-9]+)?'(?:[^']|'')*'"),
    ("qident", r"`(?:[^`]|``)*`"),
    ("number", r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"),
    ("ident", r"[A-Za-z_$][A-Za-z0-9_$]*"),
    ("op", r"<>|<=|>=|!=|\|\||::|=>|[^\s'`]"),
]
_LEXER = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _PATTERNS), re.DOTALL)


def tokenize(text: str, line: int = 1, base: int = 0) -> list[Token]:
    """All tokens of ``text`` (whitespace and comments included, so text can be rebuilt)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _LEXER.match(text, pos)
        if match is None or match.end() == pos:  # an unterminated quote
            quote = text[pos]
            what = {"'": "string literal", "`": "quoted identifier"}.get(quote, "comment")
            raise SqlScriptError(
                f"line {line}: unterminated {what} starting {text[pos : pos + 30]!r}"
            )
        kind = match.lastgroup or "op"
        chunk = match.group()
        if kind == "op" and chunk == "/" and text.startswith("/*", pos):
            raise SqlScriptError(f"line {line}: unterminated comment")
        tokens.append(Token(kind, chunk, base + pos, line))
        line += chunk.count("\n")
        pos = match.end()
    return tokens


def ident_value(token: Token) -> str:
    """The name an identifier, quoted identifier or string literal stands for."""
    if token.kind == "qident":
        return token.text[1:-1].replace("``", "`")
    if token.kind == "string":
        return token.text[token.text.index("'") + 1 : -1].replace("''", "'")
    return token.text


def dotted_name(words: Sequence[Token], at: int) -> list[Token]:
    """The parts of the name at ``words[at]`` (``t``, ``db.t``, ``cat.db.t``), or [] if none.

    ``words`` are tokens without whitespace and comments.
    """
    parts: list[Token] = []
    n = at
    while n < len(words) and words[n].kind in ("ident", "qident") and len(parts) < 3:
        parts.append(words[n])
        if n + 2 >= len(words) or words[n + 1].text != ".":
            break
        n += 2
    return parts


@dataclass(frozen=True)
class Statement:
    """One statement of a script: its text (without the ``;``), number (from 1) and line."""

    text: str
    number: int
    line: int
    tokens: tuple[Token, ...]

    @property
    def words(self) -> list[Token]:
        """The tokens without whitespace and comments."""
        return [t for t in self.tokens if t.kind not in ("ws", "comment")]

    def inner_statements(self) -> list[Statement]:
        """The statements between BEGIN and END of ``EXECUTE STATEMENT SET BEGIN ... END``."""
        words, base = self.words, self.tokens[0].offset
        begin, end = words[3], words[-1]
        body = self.text[begin.offset + len(begin.text) - base : end.offset - base]
        return [
            Statement(s.text, self.number, begin.line + s.line - 1, s.tokens)
            for s in split_statements(body)
        ]

    def error(self, message: str) -> SqlScriptError:
        head = " ".join(t.text for t in self.words[:3])
        return SqlScriptError(f"statement {self.number} (line {self.line}, {head} ...): {message}")


def _is_statement_set(words: list[Token]) -> bool:
    heads = [w.upper for w in words[:4]]
    return heads == ["EXECUTE", "STATEMENT", "SET", "BEGIN"]


def split_statements(text: str) -> list[Statement]:
    """Split a script on ``;`` outside quotes and comments.

    ``EXECUTE STATEMENT SET BEGIN ... END;`` stays one statement.  Empty
    statements (only comments) are dropped.
    """
    tokens = tokenize(text)
    statements: list[Statement] = []
    current: list[Token] = []

    def flush() -> None:
        words = [t for t in current if t.kind not in ("ws", "comment")]
        if words:
            start = words[0]
            end = words[-1]
            body = text[start.offset : end.offset + len(end.text)]
            first = current.index(start)
            last = current.index(end)
            number = len(statements) + 1
            statements.append(Statement(body, number, start.line, tuple(current[first : last + 1])))
        current.clear()

    for token in tokens:
        if token.kind == "op" and token.text == ";":
            words = [t for t in current if t.kind not in ("ws", "comment")]
            if _is_statement_set(words) and not (words and words[-1].is_word("END")):
                current.append(token)
                continue
            flush()
        else:
            current.append(token)
    flush()
    return statements


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::-([^}]*))?\}")


def substitute(text: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace ``${name}`` / ``${name:-default}`` by a variable, else the environment.

    Comments are left alone.  A variable that is neither given, set in the
    environment nor has a default is an error naming its line.
    """
    values = dict(variables or {})
    segments: list[tuple[bool, str, int]] = []  # (is comment, text, first line)
    for token in tokenize(text):
        is_comment = token.kind == "comment"
        if segments and segments[-1][0] == is_comment:
            segments[-1] = (is_comment, segments[-1][1] + token.text, segments[-1][2])
        else:
            segments.append((is_comment, token.text, token.line))
    out: list[str] = []
    for is_comment, chunk, first_line in segments:
        if is_comment:
            out.append(chunk)
            continue

        def repl(match: re.Match[str], chunk: str = chunk, first_line: int = first_line) -> str:
            name, default = match.group(1), match.group(2)
            if name in values:
                return values[name]
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            line = first_line + chunk.count("\n", 0, match.start())
            raise SqlScriptError(
                f"line {line}: variable ${{{name}}} is not set (pass it as a variable, "
                f"set the environment variable, or write ${{{name}:-default}})"
            )

        out.append(_VARIABLE.sub(repl, chunk))
    return "".join(out)


# -- helpers for finding calls ---------------------------------------------------------------


def significant(tokens: list[Token]) -> list[int]:
    """Indices of the tokens that are not whitespace or comments."""
    return [i for i, t in enumerate(tokens) if t.kind not in ("ws", "comment")]


def depth_step(token: Token) -> int:
    """+1 for an opening bracket or CASE, -1 for a closing one or END."""
    if token.kind == "op" and token.text in ("(", "["):
        return 1
    if token.kind == "op" and token.text in (")", "]"):
        return -1
    if token.is_word("CASE"):
        return 1
    if token.is_word("END"):
        return -1
    return 0


def closing(tokens: list[Token], sig: list[int], k: int) -> int:
    """Position in ``sig`` of the bracket closing the one at ``sig[k]``."""
    depth = 0
    for j in range(k, len(sig)):
        depth += depth_step(tokens[sig[j]])
        if depth == 0:
            return j
    raise SqlScriptError(f"line {tokens[sig[k]].line}: unbalanced {tokens[sig[k]].text!r}")


def span(text: str, tokens: list[Token], first: int, last: int) -> str:
    """The text from token ``first`` to token ``last`` (inclusive)."""
    start, end = tokens[first], tokens[last]
    return text[start.offset : end.offset + len(end.text)]


def split_args(
    text: str, tokens: list[Token], sig: list[int], k_open: int, k_close: int
) -> list[str]:
    """Texts of the comma-separated arguments between ``sig[k_open]`` and ``sig[k_close]``."""
    args, depth, start = [], 0, k_open + 1
    for j in range(k_open + 1, k_close):
        token = tokens[sig[j]]
        depth += depth_step(token)
        if depth == 0 and token.kind == "op" and token.text == ",":
            args.append(span(text, tokens, sig[start], sig[j - 1]) if j > start else "")
            start = j + 1
    if k_close > start:
        args.append(span(text, tokens, sig[start], sig[k_close - 1]))
    return args


def call_name(arg: str, what: str, line: int) -> str:
    """The model or agent name in an argument (``'name'``, ```name``` or ``name``)."""
    words = [t for t in tokenize(arg) if t.kind not in ("ws", "comment")]
    if len(words) != 1 or words[0].kind not in ("ident", "qident", "string"):
        raise SqlScriptError(f"line {line}: the {what} must be a name, got {arg!r}")
    return ident_value(words[0])
