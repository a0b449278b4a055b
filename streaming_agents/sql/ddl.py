"""``CREATE CONNECTION / MODEL / TOOL / AGENT`` (and ``DROP``): parsed into definitions.

Shapes follow Confluent Cloud's Streaming Agents so scripts port with few
edits; docs/sql.md lists every option and where the semantics differ.
Secrets never appear in a script: ``'api_key_env'`` names the environment
variable the workers read the key from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streaming_agents.sql.lexer import SqlScriptError, Statement, Token, ident_value
from streaming_agents.sql.typeparse import parse_columns
from streaming_agents.sql.types import SqlType

__all__ = [
    "AgentDef",
    "ConnectionDef",
    "DropDef",
    "ModelDef",
    "ToolDef",
    "is_own_ddl",
    "parse_ddl",
]

KINDS = ("CONNECTION", "MODEL", "TOOL", "AGENT")


@dataclass(frozen=True)
class ConnectionDef:
    name: str
    options: dict[str, str]
    if_not_exists: bool = False


@dataclass(frozen=True)
class ModelDef:
    name: str
    options: dict[str, str]
    input: SqlType | None = None
    output: SqlType | None = None
    comment: str = ""
    if_not_exists: bool = False


@dataclass(frozen=True)
class ToolDef:
    name: str
    function: str  # "" for a tool USING CONNECTION
    options: dict[str, str]
    comment: str = ""
    if_not_exists: bool = False
    connection: str | None = None  # an MCP server's connection


@dataclass(frozen=True)
class AgentDef:
    name: str
    model: str
    prompt: str
    tools: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    comment: str = ""
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropDef:
    kind: str
    name: str
    if_exists: bool = False


Definition = ConnectionDef | ModelDef | ToolDef | AgentDef | DropDef


def is_own_ddl(statement: Statement) -> bool:
    """Whether the statement creates or drops a connection, model, tool or agent."""
    words = [w.upper for w in statement.words[:3]]
    if len(words) < 2 or words[0] not in ("CREATE", "DROP"):
        return False
    kind = words[2] if words[1] == "TEMPORARY" and len(words) > 2 else words[1]
    return kind in KINDS


class _Reader:
    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self.words = statement.words
        self.pos = 0

    def peek(self) -> Token | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def take(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise self.statement.error(f"expected {what} but the statement ended")
        self.pos += 1
        return token

    def accept(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.upper in words:
            self.pos += 1
            return True
        return False

    def expect(self, *words: str) -> None:
        for word in words:
            token = self.take(word)
            if token.upper != word:
                raise self.statement.error(f"expected {word} but found {token.text!r}")

    def name(self, what: str) -> str:
        token = self.take(what)
        if token.kind not in ("ident", "qident", "string"):
            raise self.statement.error(f"expected {what} but found {token.text!r}")
        parts = [ident_value(token)]
        while self.accept("."):
            parts.append(ident_value(self.take(what)))
        return parts[-1]  # catalog.database.name: models, tools and agents live in the session

    def string(self, what: str) -> str:
        token = self.take(what)
        if token.kind != "string":
            raise self.statement.error(f"expected {what} as a quoted string, found {token.text!r}")
        return ident_value(token)

    def parenthesised(self, what: str) -> str:
        """The raw text inside ``( ... )`` (balanced)."""
        start = self.take(what)
        if start.text != "(":
            raise self.statement.error(f"expected ( after {what}, found {start.text!r}")
        depth, first = 1, self.pos
        while depth:
            token = self.take(f"closing ) of {what}")
            depth += {"(": 1, ")": -1}.get(token.text, 0) if token.kind == "op" else 0
        inner = self.words[first : self.pos - 1]
        if not inner:
            return ""
        text = self.statement.text
        base = self.statement.tokens[0].offset
        return text[inner[0].offset - base : inner[-1].offset - base + len(inner[-1].text)]

    def options(self) -> dict[str, str]:
        options: dict[str, str] = {}
        if not self.accept("WITH"):
            return options
        if self.take("(").text != "(":
            raise self.statement.error("expected ( after WITH")
        if self.accept(")"):
            return options
        while True:
            key = self.string("an option name")
            self.expect("=")
            options[key.strip().lower()] = self.string(f"the value of option {key!r}")
            if self.accept(")"):
                return options
            self.expect(",")

    def end(self) -> None:
        token = self.peek()
        if token is not None:
            raise self.statement.error(f"unexpected {token.text!r}")


def _columns(reader: _Reader, what: str) -> SqlType:
    text = reader.parenthesised(what)
    try:
        return parse_columns(text)
    except SqlScriptError as exc:
        raise reader.statement.error(f"{what}: {exc}") from exc


def parse_ddl(statement: Statement) -> Definition:
    """Parse one of this module's statements (see :func:`is_own_ddl`)."""
    reader = _Reader(statement)
    verb = reader.take("CREATE or DROP").upper
    reader.accept("TEMPORARY")
    kind = reader.take("CONNECTION, MODEL, TOOL or AGENT").upper
    if verb == "DROP":
        if_exists = reader.accept("IF")
        if if_exists:
            reader.expect("EXISTS")
        name = reader.name(f"the {kind.lower()} name")
        reader.end()
        return DropDef(kind, name, if_exists)
    if_not_exists = reader.accept("IF")
    if if_not_exists:
        reader.expect("NOT", "EXISTS")
    name = reader.name(f"the {kind.lower()} name")
    if kind == "CONNECTION":
        options = reader.options()
        reader.end()
        return ConnectionDef(name, options, if_not_exists)
    if kind == "MODEL":
        inputs = _columns(reader, "INPUT") if reader.accept("INPUT") else None
        outputs = _columns(reader, "OUTPUT") if reader.accept("OUTPUT") else None
        comment = reader.string("the comment") if reader.accept("COMMENT") else ""
        options = reader.options()
        reader.end()
        return ModelDef(name, options, inputs, outputs, comment, if_not_exists)
    if kind == "TOOL":
        reader.expect("USING")
        if reader.accept("CONNECTION"):
            connection = reader.name("the connection name")
            comment = reader.string("the comment") if reader.accept("COMMENT") else ""
            options = reader.options()
            reader.end()
            return ToolDef(name, "", options, comment, if_not_exists, connection)
        reader.expect("FUNCTION")
        function = reader.take("a function name or 'module.function'")
        comment = reader.string("the comment") if reader.accept("COMMENT") else ""
        options = reader.options()
        reader.end()
        return ToolDef(name, ident_value(function), options, comment, if_not_exists)
    model = prompt = ""
    tools: list[str] = []
    comment = ""
    while reader.accept("USING"):
        what = reader.take("MODEL, PROMPT or TOOLS").upper
        if what == "MODEL":
            model = reader.name("the model name")
        elif what == "PROMPT":
            prompt = reader.string("the prompt")
        elif what == "TOOLS":
            tools.append(reader.name("a tool name"))
            while reader.accept(","):
                tools.append(reader.name("a tool name"))
        elif what == "AGENTS":
            raise statement.error("reflection agents (USING AGENTS) are not supported")
        else:
            raise statement.error(f"expected USING MODEL, PROMPT or TOOLS, found USING {what}")
    if reader.accept("COMMENT"):
        comment = reader.string("the comment")
    options = reader.options()
    reader.end()
    if not model:
        raise statement.error(f"agent {name!r} needs USING MODEL <model>")
    return AgentDef(name, model, prompt, tuple(tools), options, comment, if_not_exists)
