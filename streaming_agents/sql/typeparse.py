"""Column types written in Flink SQL: ``DECIMAL(10, 2)``, ``ARRAY<ROW<a INT>>``, column lists.

Used for ``CREATE MODEL ... OUTPUT (...)`` and the ``'output'`` option of
``CREATE AGENT``.  ``COMMENT 'text'`` on a column becomes the field's
description in the JSON schema the model is given.
"""

from __future__ import annotations

from streaming_agents.sql.lexer import SqlScriptError, Token, ident_value, tokenize
from streaming_agents.sql.types import SCALARS, SqlType

__all__ = ["parse_columns", "parse_type"]

_ALIASES = {"INTEGER": "INT", "DEC": "DECIMAL", "NUMERIC": "DECIMAL", "VARBINARY": "BYTES"}


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.words = [t for t in tokenize(text) if t.kind not in ("ws", "comment")]
        self.pos = 0

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.pos + ahead
        return self.words[index] if index < len(self.words) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise SqlScriptError(f"type list ends too early: {self.text!r}")
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.upper != text:
            raise SqlScriptError(f"expected {text!r} but found {token.text!r} in {self.text!r}")

    def accept(self, *texts: str) -> bool:
        token = self.peek()
        if token is not None and token.upper in texts:
            self.pos += 1
            return True
        return False

    def numbers(self) -> list[int]:
        if not self.accept("("):
            return []
        values = [int(self.take().text)]
        while self.accept(","):
            values.append(int(self.take().text))
        self.expect(")")
        return values


def _read_type(reader: _Reader) -> SqlType:
    token = reader.take()
    kind = _ALIASES.get(token.upper, token.upper)
    args: list[int] = []
    if kind in ("ARRAY", "MAP", "ROW"):
        close = ">" if reader.accept("<") else (")" if reader.accept("(") else "")
        if not close:
            raise SqlScriptError(f"{kind} needs <...> in {reader.text!r}")
        if kind == "ROW":
            result = _read_fields(reader, close)
        elif kind == "ARRAY":
            result = SqlType("ARRAY", element=_read_type(reader))
            reader.expect(close)
        else:
            key = _read_type(reader)
            reader.expect(",")
            result = SqlType("MAP", key=key, element=_read_type(reader))
            reader.expect(close)
    else:
        if kind in ("CHAR", "VARCHAR", "BINARY"):
            reader.numbers()
            kind = "BYTES" if kind == "BINARY" else "STRING"
        elif kind == "DOUBLE":
            reader.accept("PRECISION")
        else:
            args = reader.numbers()
        if kind == "TIMESTAMP" and reader.accept("WITH"):
            reader.expect("LOCAL")
            reader.expect("TIME")
            reader.expect("ZONE")
            kind = "TIMESTAMP_LTZ"
        elif kind == "TIMESTAMP" and reader.accept("WITHOUT"):
            reader.expect("TIME")
            reader.expect("ZONE")
        if kind not in SCALARS:
            raise SqlScriptError(f"unsupported type {token.text!r} in {reader.text!r}")
        default = {"DECIMAL": [10, 0], "TIME": [0], "TIMESTAMP": [6], "TIMESTAMP_LTZ": [6]}
        args = args or default.get(kind, [])
        if kind == "DECIMAL":
            result = SqlType("DECIMAL", precision=args[0], scale=args[1] if len(args) > 1 else 0)
        else:
            result = SqlType(kind, precision=args[0] if args else None)
    if reader.accept("NOT"):
        reader.expect("NULL")
        return result.with_nullable(False)
    reader.accept("NULL")
    return result


def _read_fields(reader: _Reader, close: str) -> SqlType:
    fields: list[tuple[str, SqlType]] = []
    notes: list[str] = []
    while True:
        name = ident_value(reader.take())
        fields.append((name, _read_type(reader)))
        note = ""
        if reader.accept("COMMENT"):
            note = ident_value(reader.take())
        notes.append(note)
        if reader.accept(close):
            return SqlType("ROW", fields=tuple(fields), descriptions=tuple(notes))
        reader.expect(",")


def parse_type(text: str) -> SqlType:
    """A type written in Flink SQL (``DECIMAL(10, 2)``, ``ARRAY<ROW<a INT>>``, ...)."""
    reader = _Reader(text)
    result = _read_type(reader)
    if reader.peek() is not None:
        raise SqlScriptError(f"unexpected {reader.take().text!r} after the type in {text!r}")
    return result


def parse_columns(text: str) -> SqlType:
    """A column list ``name TYPE [COMMENT '...'], ...`` (no parentheses) as a ROW type."""
    reader = _Reader(f"{text})")
    row = _read_fields(reader, ")")
    if reader.peek() is not None:
        raise SqlScriptError(f"unexpected {reader.take().text!r} in column list {text!r}")
    return row
