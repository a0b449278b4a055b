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
    p, c, d = r.production, r.candidate, r.deltas
    usage_rows = [
        ["llm calls", str(p.llm_calls), str(c.llm_calls), _signed(d["llm_calls"])],
        ["prompt tokens", str(p.prompt_tokens), str(c.prompt_tokens), _signed(d["prompt_tokens"])],
        [
            "completion tokens",
            str(p.completion_tokens),
            str(c.completion_tokens),
            _signed(d["completion_tokens"]),
        ],
        ["total tokens", str(p.total_tokens), str(c.total_tokens), _signed(d["total_tokens"])],
        ["cost usd", f"{p.cost_usd:.6f}", f"{c.cost_usd:.6f}", _signed(d["cost_usd"], 6)],
        [
            "cost usd per input",
            f"{p.cost_per_input:.6f}",
            f"{c.cost_per_input:.6f}",
            _signed(d["cost_per_input_usd"], 6),
        ],
    ]
    for pct in (50, 90, 99):
        usage_rows.append(
            [
                f"latency p{pct} ms",
                f"{p.latency(pct):.1f}",
                f"{c.latency(pct):.1f}",
                _signed(d[f"latency_p{pct}_ms"], 1),
            ]
        )
    out += _rows(["usage (matched inputs)", "production", "candidate", "delta"], usage_rows)
    if r.differing:
        out += [
            "",
            f"{len(r.differing)} differing cases"
            + (f" (first {max_cases})" if len(r.differing) > max_cases else "")
            + ":",
        ]
        judged = r.judge_model is not None
        case_rows = [
            [
                c_.key,
                _short(c_.input, 40),
                ",".join(c_.fields) or "-",
                _short(c_.production, 36),
                _short(c_.candidate, 36),
                *([c_.verdict.preference if c_.verdict else "-"] if judged else []),
            ]
            for c_ in r.differing[:max_cases]
        ]
        head = ["key", "input", "fields", "production", "candidate"]
        out += _rows(head + (["judge"] if judged else []), case_rows)
    if r.run is not None and r.run.divergences:
        out += ["", f"diverged from the record on {len(r.run.divergences)} keys:"]
        out += [f"  {d.get('description', d.get('key'))}" for d in r.run.divergences[:max_cases]]
    for note in r.notes:
        out.append(f"note: {note}")
    return "\n".join(out)
