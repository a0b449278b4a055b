"""The verdict of a chaos run, and its report as a plain-text table.

:func:`verdict` checks what a ``read_committed`` consumer saw against what was
produced: every input exactly one output, per key in sequence order, and each
output's ``turn`` equal to its ``seq + 1`` (the key's memory neither lost a
turn nor applied one twice).  :func:`render` prints those figures with the
faults injected, their recovery times and the LLM request counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Check", "FaultRecord", "Verdict", "render", "verdict"]


@dataclass(frozen=True)
class FaultRecord:
    """One fault: what, when (seconds into the run), and the recovery it took."""

    kind: str
    at_s: float
    recovery_s: float | None
    detail: str = ""


@dataclass(frozen=True)
class Check:
    name: str
    value: int
    ok: bool


@dataclass
class Verdict:
    """Counts of every guarantee; ``ok`` when all hold."""

    inputs: int
    outputs: int
    distinct: int
    checks: list[Check] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def verdict(
    inputs: Iterable[tuple[str, int]],
    outputs: Sequence[dict[str, Any]],
    dead_letters: int,
    harness_errors: Sequence[str] = (),
    leaks: Sequence[str] = (),
) -> Verdict:
    """Compare produced ``(key, seq)`` inputs with committed outputs (in topic order).

    ``leaks``: where a secret was found (``"<secret> in <file>"``).
    """
    expected = set(inputs)
    pairs = [(str(o["key"]), int(o["input"]["seq"])) for o in outputs]
    counts = Counter(pairs)
    seen = set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    lost = sorted(expected - seen)
    unexpected = sorted(seen - expected)
    order_violations, last = 0, dict[str, int]()
    for key, seq in pairs:
        if key in last and seq <= last[key]:
            order_violations += 1
        last[key] = max(seq, last.get(key, -1))
    wrong_turns = [o for o in outputs if int(o["turn"]) != int(o["input"]["seq"]) + 1]
    result = Verdict(inputs=len(expected), outputs=len(outputs), distinct=len(seen))
    result.checks = [
        Check("every input has an output (lost)", len(lost), not lost and bool(expected)),
        Check("duplicates", duplicates, duplicates == 0),
        Check("outputs without an input", len(unexpected), not unexpected),
        Check("per-key order violations", order_violations, order_violations == 0),
        Check("turn != seq + 1 (memory lost/doubled)", len(wrong_turns), not wrong_turns),
        Check("dead letters", dead_letters, dead_letters == 0),
        Check("files holding a secret (API key, passwords)", len(leaks), not leaks),
        Check("harness errors", len(harness_errors), not harness_errors),
    ]
    dupes = [p for p, n in counts.items() if n > 1]
    result.examples += [f"lost {k}#{s}" for k, s in lost[:5]]
    result.examples += [f"duplicate {k}#{s}" for k, s in dupes[:5]]
    result.examples += [
        f"turn {o['turn']} for {o['key']}#{o['input']['seq']}" for o in wrong_turns[:5]
    ]
    result.examples += [f"harness: {e}" for e in harness_errors[:5]]
    result.examples += [f"secret: {what}" for what in leaks[:5]]
    return result


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


def render(
    title: str,
    settings: dict[str, Any],
    faults: Sequence[FaultRecord],
    result: Verdict,
    llm: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """The report: settings, faults with recovery times, guarantees, LLM requests."""
    out = [title, "  " + ", ".join(f"{k}={v}" for k, v in settings.items()), ""]
    rows = [
        [
            f.kind,
            f"{f.at_s:.1f}",
            "-" if f.recovery_s is None else f"{f.recovery_s:.1f}",
            f.detail,
        ]
        for f in faults
    ]
    out += _table(rows, ["fault", "at (s)", "recovery (s)", "detail"])
    recoveries = [f.recovery_s for f in faults if f.recovery_s is not None]
    if recoveries:
        out.append(
            f"  recovery = fault to first new committed output; "
            f"max {max(recoveries):.1f} s, mean {sum(recoveries) / len(recoveries):.1f} s"
        )
    out.append("")
    checks = [
        ["inputs produced (acknowledged)", str(result.inputs), ""],
        ["outputs committed (read_committed)", str(result.outputs), ""],
        ["distinct (key, seq) in outputs", str(result.distinct), ""],
        *([c.name, str(c.value), "PASS" if c.ok else "FAIL"] for c in result.checks),
    ]
    out += _table(checks, ["guarantee", "count", "verdict"])
    by_status = llm.get("by_status", {})
    total, distinct = int(llm.get("requests_total", 0)), int(llm.get("requests_distinct", 0))
    ok_replies = int(by_status.get("200", 0))
    failed = {s: n for s, n in sorted(by_status.items()) if s != "200"}
    llm_rows = [
        ["requests total / distinct", f"{total} / {distinct}"],
        ["repeated (total - distinct)", str(total - distinct)],
        ["  of which failed replies (fault retries)", str(sum(failed.values()))],
        ["  of which 200s repeated after crashes", str(max(0, ok_replies - distinct))],
        ["failed replies by status", ", ".join(f"{s}: {n}" for s, n in failed.items()) or "0"],
    ]
    out += ["", *_table(llm_rows, ["fake LLM", "count"])]
    for name, value in (extra or {}).items():
        out.append(f"  {name}: {value}")
    if result.examples:
        out += ["", "examples of failures:", *(f"  {e}" for e in result.examples)]
    out += ["", f"VERDICT: {'PASS' if result.ok else 'FAIL'}"]
    return "\n".join(out)
