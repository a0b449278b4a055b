"""The arguments of ``AI_RUN_AGENT``, in Confluent Cloud's shapes.

``AI_RUN_AGENT(agent, prompt [, request_id] [, MAP[option, value, ...]])``:

* ``request_id`` -- as on Confluent, an id per request: each row is its own
  conversation (no memory).  Rows with the same id are handled one at a
  time, in order.
* the options ``MAP`` (third or fourth argument) -- ``'memory_key', <expr>``
  asks for memory: rows with the same value of ``<expr>`` are one
  conversation, remembered in keyed state (``memory_ttl`` on the agent bounds
  it).  ``'debug'`` and Confluent's per-call tuning options are accepted and
  have no effect here (see :data:`IGNORED_OPTIONS`).  The MAP never reaches
  Flink (the runner rewrites the call), so its values may have any type.

A key that is the same for every row (a literal, or an expression without
columns) makes every row one conversation handled one at a time: the runner
warns about it (:func:`constant_expression`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streaming_agents.sql.lexer import (
    SqlScriptError,
    call_name,
    closing,
    ident_value,
    significant,
    split_args,
    tokenize,
)

__all__ = [
    "IGNORED_OPTIONS",
    "AgentCall",
    "constant_expression",
    "key_warning",
    "map_entries",
    "parse_agent_call",
]

MEMORY_KEY = "memory_key"
IGNORED_OPTIONS = ("debug", "async_enabled", "client_timeout", "max_parallelism", "retry_count")
_NOT_COLUMNS = {
    "CAST", "AS", "NULL", "TRUE", "FALSE", "STRING", "VARCHAR", "CHAR", "INT", "INTEGER",
    "BIGINT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "DECIMAL", "BOOLEAN", "DATE",
}  # fmt: skip
_VOLATILE = {"UUID", "RAND", "RAND_INTEGER", "NOW", "PROCTIME", "CURRENT_ROW_TIMESTAMP"}


@dataclass(frozen=True)
class AgentCall:
    """One ``AI_RUN_AGENT`` call: what to run and how to key it."""

    agent: str
    prompt: str
    request_id: str | None = None
    memory_key: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        """The SQL expression rows are keyed by (memory key, else request id)."""
        return self.memory_key or self.request_id


def map_entries(arg: str, line: int) -> dict[str, str] | None:
    """``MAP['k', v, ...]`` -> {k: v-expression}; None when ``arg`` is not a MAP literal."""
    tokens = tokenize(arg, line)
    sig = significant(tokens)
    if len(sig) < 2 or not tokens[sig[0]].is_word("MAP") or tokens[sig[1]].text != "[":
        return None
    end = closing(tokens, sig, 1)
    if end != len(sig) - 1:
        return None
    items = split_args(arg, tokens, sig, 1, end)
    if len(items) % 2:
        raise SqlScriptError(f"line {line}: an options MAP needs key, value pairs")
    entries: dict[str, str] = {}
    for name, value in zip(items[::2], items[1::2], strict=True):
        words = [t for t in tokenize(name) if t.kind not in ("ws", "comment")]
        if len(words) != 1 or words[0].kind != "string":
            raise SqlScriptError(f"line {line}: MAP keys here are strings: {name!r}")
        entries[ident_value(words[0]).lower()] = value.strip()
    return entries


def parse_agent_call(args: list[str], line: int) -> AgentCall:
    """Read the arguments of one call (texts, as split from the statement)."""
    if len(args) < 2:
        raise SqlScriptError(f"line {line}: AI_RUN_AGENT needs at least (agent, prompt)")
    if len(args) > 4:
        raise SqlScriptError(
            f"line {line}: AI_RUN_AGENT takes (agent, prompt [, request_id] [, options MAP])"
        )
    agent = call_name(args[0], "agent", line)
    rest = [a.strip() for a in args[2:]]
    options: dict[str, str] = {}
    request_id: str | None = None
    for n, arg in enumerate(rest):
        entries = map_entries(arg, line)
        if entries is not None:
            options.update(entries)
        elif n == 0 and arg.upper() != "NULL":
            request_id = arg
        elif n == 1:
            raise SqlScriptError(
                f"line {line}: AI_RUN_AGENT: the fourth argument must be an options "
                f"MAP[...], got {arg!r}"
            )
    known = (MEMORY_KEY, *IGNORED_OPTIONS)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SqlScriptError(
            f"line {line}: AI_RUN_AGENT: unknown option(s) {unknown} (known: {list(known)})"
        )
    memory_key = options.get(MEMORY_KEY)
    if memory_key is not None and memory_key.upper() == "NULL":
        memory_key = None
    return AgentCall(agent, args[1].strip(), request_id, memory_key, options)


def constant_expression(sql: str) -> bool:
    """Whether ``sql`` names no column (literals and functions of literals only)."""
    tokens = tokenize(sql)
    for n, token in enumerate(tokens):
        if token.kind == "qident" or token.is_word(*_VOLATILE):
            return False
        if token.kind != "ident" or token.upper in _NOT_COLUMNS:
            continue
        following = next((t for t in tokens[n + 1 :] if t.kind not in ("ws", "comment")), None)
        if following is None or following.text != "(":
            return False  # a column (or a value that changes, like CURRENT_TIMESTAMP)
    return True


def key_warning(call: AgentCall) -> str | None:
    """A warning when the call's key is the same for every row (None: it is not)."""
    if call.memory_key is not None and constant_expression(call.memory_key):
        return (
            f"AI_RUN_AGENT({call.agent!r}): memory key {call.memory_key} is the same for every "
            "row: all rows are ONE conversation, answered one at a time, the prompt growing "
            "with every turn; key memory by a column (e.g. the customer id)"
        )
    if call.memory_key is None and call.request_id and constant_expression(call.request_id):
        return (
            f"AI_RUN_AGENT({call.agent!r}): request id {call.request_id} is the same for every "
            "row: rows are answered one at a time; pass an id per row"
        )
    return None
