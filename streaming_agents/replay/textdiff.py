"""Inline diffs of two outputs, field by field, for the HTML report.

An output pair is split into fields (the top-level fields of two objects,
else one field ``output``); each differing field is shown as production text
beside candidate text with what changed highlighted: words that were removed
are wrapped in ``<del>`` on the production side, words that were added in
``<ins>`` on the candidate side.  Where one word replaces one word (``950``
and ``951``, ``low`` and ``lower``) the highlight goes down to the characters.
Values that are not strings are compared as pretty-printed JSON (sorted keys),
so a nested change shows where it is.  Everything is HTML-escaped here.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldDiff", "field_diffs", "inline_diff", "text_of"]

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)
_MAX_CHARS = 20_000  # longer values are cut (the diff is quadratic in the worst case)
_MISSING = object()


def text_of(value: Any) -> str:
    """The text a value is compared as: a string itself, anything else as JSON."""
    if value is _MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True, default=str, ensure_ascii=False)


def _chars(a: str, b: str) -> tuple[str, str]:
    """One word against one word: highlight the characters that differ."""
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        x, y = html.escape(a[i1:i2]), html.escape(b[j1:j2])
        if op == "equal":
            left.append(x)
            right.append(y)
            continue
        if x:
            left.append(f"<del>{x}</del>")
        if y:
            right.append(f"<ins>{y}</ins>")
    return "".join(left), "".join(right)


Opcode = tuple[str, int, int, int, int]


def _merged(ops: Sequence[Opcode], ta: list[str]) -> list[Opcode]:
    """Opcodes with whitespace-only equal runs between two changes folded into one change."""
    out: list[Opcode] = []
    for i, op in enumerate(ops):
        tag, i1, i2, _, j2 = op
        inner = 0 < i < len(ops) - 1 and ops[i + 1][0] != "equal"
        blank = tag == "equal" and inner and not "".join(ta[i1:i2]).strip()
        if out and out[-1][0] != "equal" and (tag != "equal" or blank):
            _, a1, _, b1, _ = out[-1]
            out[-1] = ("replace", a1, i2, b1, j2)
        else:
            out.append(op)
    return out


def inline_diff(a: str, b: str) -> tuple[str, str]:
    """(production HTML, candidate HTML) with removed and added words highlighted."""
    a, b = a[:_MAX_CHARS], b[:_MAX_CHARS]
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    left, right = [], []
    ops = difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes()
    for op, i1, i2, j1, j2 in _merged(ops, ta):
        x, y = "".join(ta[i1:i2]), "".join(tb[j1:j2])
        if op == "equal":
            left.append(html.escape(x))
            right.append(html.escape(y))
        elif i2 - i1 == 1 and j2 - j1 == 1 and _similar(x, y):
            cx, cy = _chars(x, y)
            left.append(cx)
            right.append(cy)
        else:
            if x:
                left.append(f"<del>{html.escape(x)}</del>")
            if y:
                right.append(f"<ins>{html.escape(y)}</ins>")
    return "".join(left), "".join(right)


def _similar(x: str, y: str) -> bool:
    """Whether two words share enough characters for a character-level highlight."""
    return difflib.SequenceMatcher(None, x, y, autojunk=False).ratio() >= 0.5


@dataclass(frozen=True)
class FieldDiff:
    """One field of an output pair: its name, both sides as HTML, whether they differ."""

    field: str
    production_html: str
    candidate_html: str
    differs: bool
    missing: str = ""  # "production" / "candidate" when one side has no such field


def field_diffs(production: Any, candidate: Any, *, all_fields: bool = False) -> list[FieldDiff]:
    """The differing fields of a pair (every field with ``all_fields``), highlighted."""
    if isinstance(production, dict) and isinstance(candidate, dict):
        names = sorted(set(production) | set(candidate))
        pairs = [(n, production.get(n, _MISSING), candidate.get(n, _MISSING)) for n in names]
    else:
        pairs = [("output", production, candidate)]
    out = []
    for name, a, b in pairs:
        ta, tb = text_of(a), text_of(b)
        differs = a is _MISSING or b is _MISSING or ta != tb
        if not differs and not all_fields:
            continue
        missing = "production" if a is _MISSING else ("candidate" if b is _MISSING else "")
        left, right = inline_diff(ta, tb) if differs else (html.escape(ta), html.escape(tb))
        out.append(FieldDiff(name, left, right, differs, missing))
    return out
