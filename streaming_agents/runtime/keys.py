"""The one key selector: a JSON field of the event, or the dead-letter key.

A key selector runs inside Flink before the agent operator; an exception there
fails the job, so :func:`json_key` never raises on account of data.  The
field is a name or a dotted path (``"input.policy_id"``).  A key is usable
when it is a non-empty string or an integer (not a boolean) of at most
``Limits.max_key_chars`` characters, other than :data:`MALFORMED_KEY`
itself, and not starting with a byte-order mark (U+FEFF or U+FFFE, which
PyFlink's thread mode alters).  Every other record -- no such field, null,
an object, not JSON at all -- gets :data:`MALFORMED_KEY`, and the agent
operator dead-letters it with its reason (:func:`key_problem` says what is
wrong with a value).
"""

from __future__ import annotations

from typing import Any

from streaming_agents.errors import ConfigError
from streaming_agents.runtime.events import (
    MALFORMED_KEY,
    Limits,
    Rejected,
    is_prepared,
    parse_event,
)

__all__ = [
    "MALFORMED_KEY",
    "JsonKey",
    "json_key",
    "key_of",
    "key_problem",
    "mark_problem",
    "split_path",
    "value_at",
]


def split_path(field: str) -> tuple[str, ...]:
    """``"a.b"`` -> ``("a", "b")``; refuses empty names (a user mistake)."""
    parts = tuple(field.split("."))
    if not field or any(not part for part in parts):
        raise ConfigError(f"key field {field!r} must be a name or a dotted path of names")
    return parts


def key_problem(value: Any, max_chars: int) -> str | None:
    """Why ``value`` is no usable key (``"is NULL"``, ...), or None when it is one."""
    if value is None:
        return "is NULL"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"is a {type(value).__name__}, not a string or an integer"
    text = value if isinstance(value, str) else str(value)
    if not text:
        return "is an empty string"
    if len(text) > max_chars:
        return f"has {len(text)} characters, more than {max_chars}"
    if text == MALFORMED_KEY:
        return f"is {MALFORMED_KEY!r}, which is reserved"
    return mark_problem(text)  # the operator would see another key


def mark_problem(text: str) -> str | None:
    """Why PyFlink's thread mode would not hand ``text`` to Python intact, or None.

    Thread mode (the agent operator's) converts every Java string handed to a
    Python function -- a key from ``get_current_key()``, a Row field, a Table
    column -- as UTF-16 with byte-order-mark sniffing: a leading U+FEFF is
    dropped (``"\\ufeffk"`` arrives as ``"k"``, another agent key) and a leading
    U+FFFE byte-swaps the rest.  The mark anywhere else is kept.  Keys and the
    SQL runner's decoded strings are refused with this reason before they cross.
    """
    if text.startswith(_BYTE_ORDER_MARKS):
        return (
            f"starts with U+{ord(text[0]):04X} (a byte-order mark), which PyFlink's thread mode"
            " drops or garbles on the way to a Python function"
        )
    return None


_BYTE_ORDER_MARKS = ("\ufeff", "\ufffe")


def value_at(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in ``event`` (None when a step is missing or not an object)."""
    value: Any = event
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def key_of(event: dict[str, Any], path: tuple[str, ...], max_chars: int) -> str | None:
    """The key at ``path`` in ``event``, or None when it is missing or unusable
    (:func:`key_problem` says why)."""
    value = value_at(event, path)
    if key_problem(value, max_chars) is not None:
        return None
    return value if isinstance(value, str) else str(value)


class JsonKey:
    """Picklable key selector (see :func:`json_key`)."""

    def __init__(self, field: str, limits: Limits | None = None) -> None:
        self.field = field
        self.path = split_path(field)
        self.limits = limits or Limits()

    def __call__(self, value: Any) -> str:
        if is_prepared(value):
            return str(value[0])
        try:
            envelope = parse_event(value, self.limits)
        except Exception:  # noqa: BLE001 - a key selector must never fail the job
            return MALFORMED_KEY
        if isinstance(envelope, Rejected):
            return MALFORMED_KEY
        return key_of(envelope["e"], self.path, self.limits.max_key_chars) or MALFORMED_KEY


def json_key(field: str, limits: Limits | None = None) -> JsonKey:
    """Key selector for ``key_by``: the JSON field (or dotted path) of each event.

    Works on every input the agent operator accepts (``kafka_records`` rows,
    ``str``/``bytes`` JSON, ``dict``, pipeline rows).  Records without a usable
    key get :data:`MALFORMED_KEY`; the operator dead-letters those it cannot
    parse and processes the rest under that key.
    """
    return JsonKey(field, limits)
