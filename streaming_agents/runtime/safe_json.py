"""Decoding JSON written by anyone: every failure is a reason, never an exception.

A Kafka producer can write any bytes.  :func:`decode_object` turns one record
value into a JSON object or a :class:`BadJson` naming what is wrong, and never
raises on account of the data.  It is stricter than :func:`json.loads`, which
accepts things that later break an agent job or silently change the data:

* invalid UTF-8, a UTF-8 byte order mark, and lone surrogates (``"\\ud800"``,
  which no UTF-8 writer downstream can encode) are refused, not repaired;
* ``NaN``, ``Infinity`` and numbers that overflow a float (``1e400``) are
  refused: JSON has no such numbers and they would come out as ``null`` or as
  invalid JSON;
* integers longer than Python's digit limit are refused with that reason;
* duplicate keys in one object are refused (which value wins is undefined
  across parsers: a check that reads one and an agent that reads the other
  would disagree);
* nesting deeper than ``max_depth`` is refused *before* parsing, with a
  linear scan, so neither the parser nor anything after it recurses deeply
  (a 100,000-level document would otherwise end in ``RecursionError`` or
  exhaust a worker thread's native stack).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

__all__ = ["DEFAULT_MAX_DEPTH", "BadJson", "decode_object", "nesting_depth"]

DEFAULT_MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted by default."""

_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_JSON_KIND = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
_JSON_KIND[type(None)] = "null"


@dataclass(frozen=True)
class BadJson:
    """Why a value is not a usable JSON object (``error`` is one line)."""

    error: str


class _Refused(ValueError):
    """Raised inside the parser's hooks; caught in :func:`decode_object`."""


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of ``text``, ignoring brackets inside strings.

    Linear in the length of ``text`` and not recursive.  Cheap when the text
    has few brackets: the exact scan runs only when their count could exceed
    a small depth.
    """
    if text.count("[") + text.count("{") <= 1:
        return text.count("[") + text.count("{")
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    if not brackets:
        return 0
    return max(accumulate(_DEPTH_STEP[c] for c in brackets))


def _no_constants(name: str) -> Any:
    raise _Refused(f"non-finite number {name} (not JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Refused(f"number {text[:40]} overflows a 64-bit float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key[:80]!r} in one object")
            seen.add(key)
    return result


def decode_object(raw: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any] | BadJson:
    """The JSON object in ``raw`` (UTF-8), or why it is not one."""
    if not raw:
        return BadJson("empty value")
    if raw.startswith(b"\xef\xbb\xbf"):
        return BadJson("starts with a UTF-8 byte order mark (JSON text must not)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadJson(f"not UTF-8: {exc}")
    depth = nesting_depth(text)
    if depth > max_depth:
        return BadJson(f"nested {depth} levels deep (limit {max_depth})")
    try:
        value = json.loads(
            text,
            parse_constant=_no_constants,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except _Refused as exc:
        return BadJson(str(exc))
    except RecursionError:
        return BadJson(f"nested too deeply to parse (limit {max_depth})")
    except ValueError as exc:  # JSONDecodeError, and int digit limits
        return BadJson(f"not JSON: {str(exc)[:200]}")
    if not isinstance(value, dict):
        return BadJson(f"not a JSON object (a JSON {_JSON_KIND.get(type(value), 'value')})")
    if "\\u" in text and _SURROGATE.search(json.dumps(value, ensure_ascii=False)):
        return BadJson("contains a lone UTF-16 surrogate escape (not encodable as UTF-8)")
    return value
