"""The comparison report as a terminal table (the HTML page: :mod:`.report_html`).

The table starts with the same headline figures as the page
(:func:`~streaming_agents.replay.report_data.headline`: versions, models,
range, run id, memory start, agreement, judge verdicts, cost per input, dead
letters), then agreement per field, usage, the differing cases with their
verdicts and the divergences.
"""

from __future__ import annotations

import json
from typing import Any

from streaming_agents.replay.report_data import ComparisonReport, headline
from streaming_agents.replay.report_html import render_html

__all__ = ["render_html", "render_table"]


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _signed(value: float, digits: int = 0) -> str:
    return f"{value:+.{digits}f}"


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _rows(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        cells = [
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells))
    return out


def _usage_rows(r: ComparisonReport) -> list[list[str]]:
    p, c, d = r.production, r.candidate, r.deltas
    rows = [
        [name, str(getattr(p, attr)), str(getattr(c, attr)), _signed(d[attr])]
        for name, attr in (
            ("llm calls", "llm_calls"),
            ("prompt tokens", "prompt_tokens"),
            ("completion tokens", "completion_tokens"),
            ("total tokens", "total_tokens"),
        )
    ]
    rows.append(["cost usd", f"{p.cost_usd:.6f}", f"{c.cost_usd:.6f}", _signed(d["cost_usd"], 6)])
    rows.append(
        ["cost usd per input", f"{p.cost_per_input:.6f}", f"{c.cost_per_input:.6f}",
         _signed(d["cost_per_input_usd"], 6)]
    )  # fmt: skip
    for q in (50, 90, 99):
        rows.append(
            [f"latency p{q} ms", f"{p.latency(q):.1f}", f"{c.latency(q):.1f}",
             _signed(d[f"latency_p{q}_ms"], 1)]
        )  # fmt: skip
    return rows


def _case_rows(r: ComparisonReport, max_cases: int) -> list[str]:
    judged = r.judge_model is not None
    more = f" (first {max_cases})" if len(r.differing) > max_cases else ""
    rows = [
        [
            case.key,
            _short(case.input, 40),
            ",".join(case.fields) or "-",
            _short(case.production, 36),
            _short(case.candidate, 36),
            *([case.verdict.preference if case.verdict else "-"] if judged else []),
        ]
        for case in r.differing[:max_cases]
    ]
    head = ["key", "input", "fields", "production", "candidate"] + (["judge"] if judged else [])
    return ["", f"{len(r.differing)} differing cases{more}:", *_rows(head, rows)]


def render_table(report: ComparisonReport, max_cases: int = 10) -> str:
    """The report as plain text for a terminal."""
    r = report
    figures = headline(r)
    width = max(len(label) for label, _ in figures)
    out = [
        f"production {r.production_topic}  vs  candidate {r.candidate_topic}"
        + (f"  (run {r.run_id})" if r.run_id else ""),
        *(f"  {label.ljust(width)}  {value}" for label, value in figures),
        f"join by {r.join}: {r.matched} inputs in both, {len(r.only_production)} only in "
        f"production, {len(r.only_candidate)} only in candidate, "
        f"{r.candidate_dead_letters} candidate dead letters",
        "",
    ]
    rows = [["overall (exact output)", str(r.matched), str(r.agreed), _pct(r.agreement_rate)]]
    rows += [[f"field {f.field}", str(f.compared), str(f.agreed), _pct(f.rate)] for f in r.fields]
    out += _rows(["agreement", "compared", "agreed", "rate"], rows)
    out.append("")
    out += _rows(["usage (matched inputs)", "production", "candidate", "delta"], _usage_rows(r))
    if r.differing:
        out += _case_rows(r, max_cases)
    if r.run is not None and r.run.divergences:
        out += ["", f"diverged from the record on {len(r.run.divergences)} keys:"]
        out += [f"  {d.get('description', d.get('key'))}" for d in r.run.divergences[:max_cases]]
    out += [f"note: {note}" for note in r.notes]
    return "\n".join(out)
