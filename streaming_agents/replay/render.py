"""The comparison report as a terminal table and as a self-contained HTML page.

The HTML has inline CSS and inline SVG charts only: no scripts, fonts,
images or style sheets are fetched, so the file can be mailed or archived.
"""

from __future__ import annotations

import html
import json
from typing import Any

from streaming_agents.replay.compare import Case, ComparisonReport

__all__ = ["render_html", "render_table"]

MAX_CASES_SHOWN = 200


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
    out = [
        f"production {r.production_topic}  vs  candidate {r.candidate_topic}"
        + (f"  (run {r.run_id})" if r.run_id else ""),
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
        case_rows = [
            [
                c_.key,
                _short(c_.input, 40),
                ",".join(c_.fields) or "-",
                _short(c_.production, 36),
                _short(c_.candidate, 36),
            ]
            for c_ in r.differing[:max_cases]
        ]
        out += _rows(["key", "input", "fields", "production", "candidate"], case_rows)
    for note in r.notes:
        out.append(f"note: {note}")
    return "\n".join(out)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f3f3f3}td.n{text-align:right}
pre{margin:0;white-space:pre-wrap;word-break:break-word;max-width:380px;font-size:12px}
.diff{background:#fff0f0}.muted{color:#777}.legend span{margin-right:16px}
"""
_PROD, _CAND = "#4e79a7", "#f28e2b"


def _svg_bars(rows: list[tuple[str, float]], *, width: int = 640) -> str:
    """Horizontal bars of rates in [0, 1]."""
    bar_h, gap, label_w = 20, 8, 200
    height = len(rows) * (bar_h + gap) + gap
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    scale = width - label_w - 70
    for i, (label, rate) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(0.0, min(1.0, rate)) * scale
        color = "#59a14f" if rate >= 0.999 else ("#edc948" if rate >= 0.8 else "#e15759")
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{html.escape(_short(label, 30))}</text>'
            f'<rect x="{label_w}" y="{y}" width="{scale}" height="{bar_h}" fill="#eee"/>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>'
            f'<text x="{label_w + scale + 6}" y="{y + 15}" font-size="12">{_pct(rate)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_grouped(groups: list[tuple[str, float, float]], unit: str, *, width: int = 640) -> str:
    """Vertical bar pairs (production, candidate) per group."""
    height, top, bottom = 220, 16, 36
    top_value = max([1e-9, *(max(a, b) for _, a, b in groups)])
    plot_h = height - top - bottom
    slot = (width - 40) / max(1, len(groups))
    bar_w = min(40.0, slot / 3)
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    parts.append(
        f'<line x1="30" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#999"/>'
    )
    for i, (label, prod, cand) in enumerate(groups):
        x0 = 40 + i * slot + slot / 2 - bar_w
        for j, (value, color) in enumerate(((prod, _PROD), (cand, _CAND))):
            h = plot_h * value / top_value
            x = x0 + j * bar_w
            y = height - bottom - h
            box = f'x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}"'
            parts.append(
                f'<rect {box} fill="{color}">'
                f"<title>{html.escape(label)}: {value:.2f} {unit}</title></rect>"
                f'<text x="{x + (bar_w - 2) / 2:.1f}" y="{y - 3:.1f}" font-size="10" '
                f'text-anchor="middle">{value:.0f}</text>'
            )
        parts.append(
            f'<text x="{x0 + bar_w:.1f}" y="{height - bottom + 16}" font-size="12" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_cdf(prod: list[float], cand: list[float], *, width: int = 640) -> str:
    """Cumulative distribution of per-input latency, both sides."""
    height, left, bottom, top = 220, 40, 30, 10
    top_value = max([1e-9, *prod, *cand])
    plot_w, plot_h = width - left - 10, height - top - bottom
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    base = height - bottom
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width}" y2="{base}" stroke="#999"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>'
        f'<text x="{left}" y="{height - 8}" font-size="11">0 ms</text>'
        f'<text x="{width - 10}" y="{height - 8}" font-size="11" text-anchor="end">'
        f"{top_value:.0f} ms</text>"
        f'<text x="4" y="{top + 10}" font-size="11">100%</text>'
    )
    for values, color in ((prod, _PROD), (cand, _CAND)):
        if not values:
            continue
        ordered = sorted(values)
        points = []
        for i, v in enumerate(ordered):
            x = left + plot_w * v / top_value
            points.append(f"{x:.1f},{height - bottom - plot_h * i / len(ordered):.1f}")
            points.append(f"{x:.1f},{height - bottom - plot_h * (i + 1) / len(ordered):.1f}")
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(points)}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _pre(value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, indent=1, sort_keys=True, default=str)
    )
    return f"<pre>{html.escape(text)}</pre>"


def _case_rows(cases: list[Case]) -> str:
    rows = []
    for c in cases[:MAX_CASES_SHOWN]:
        rows.append(
            "<tr>"
            f"<td>{html.escape(c.key)}</td><td>{_pre(c.input)}</td>"
            f"<td>{html.escape(', '.join(c.fields) or '-')}</td>"
            f'<td class="diff">{_pre(c.production)}</td><td class="diff">{_pre(c.candidate)}</td>'
            "</tr>"
        )
    more = len(cases) - MAX_CASES_SHOWN
    if more > 0:
        rows.append(f'<tr><td colspan="5" class="muted">… {more} more</td></tr>')
    return "".join(rows)


def render_html(report: ComparisonReport, title: str = "Candidate vs production") -> str:
    """The report as one self-contained HTML document."""
    r = report
    p, c, d = r.production, r.candidate, r.deltas
    esc = html.escape
    agreement = [("overall (exact output)", r.agreement_rate)] + [
        (f"field {f.field}", f.rate) for f in r.fields
    ]
    usage_rows = "".join(
        f"<tr><th>{esc(name)}</th><td class=n>{a}</td><td class=n>{b}</td>"
        f"<td class=n>{delta}</td></tr>"
        for name, a, b, delta in (
            ("LLM calls", p.llm_calls, c.llm_calls, _signed(d["llm_calls"])),
            ("prompt tokens", p.prompt_tokens, c.prompt_tokens, _signed(d["prompt_tokens"])),
            (
                "completion tokens",
                p.completion_tokens,
                c.completion_tokens,
                _signed(d["completion_tokens"]),
            ),
            ("total tokens", p.total_tokens, c.total_tokens, _signed(d["total_tokens"])),
            ("cost (USD)", f"{p.cost_usd:.6f}", f"{c.cost_usd:.6f}", _signed(d["cost_usd"], 6)),
            *(
                (
                    f"latency p{q} (ms)",
                    f"{p.latency(q):.1f}",
                    f"{c.latency(q):.1f}",
                    _signed(d[f"latency_p{q}_ms"], 1),
                )
                for q in (50, 90, 99)
            ),
        )
    )
    field_rows = "".join(
        f"<tr><td>{esc(f.field)}</td><td class=n>{f.compared}</td><td class=n>{f.agreed}</td>"
        f"<td class=n>{_pct(f.rate)}</td></tr>"
        for f in r.fields
    )
    legend = (
        f'<p class="legend"><span style="color:{_PROD}">■ production</span>'
        f'<span style="color:{_CAND}">■ candidate</span></p>'
    )
    notes = "".join(f"<p class=muted>note: {esc(n)}</p>" for n in r.notes)
    run = f"(run {esc(r.run_id)})" if r.run_id else ""
    shadow = " — shadow outputs" if r.candidate_shadow else ""
    field_table = (
        "<table><tr><th>field</th><th>compared</th><th>agreed</th><th>rate</th></tr>"
        + field_rows
        + "</table>"
        if r.fields
        else ""
    )
    token_chart = _svg_grouped(
        [
            ("prompt", p.prompt_tokens, c.prompt_tokens),
            ("completion", p.completion_tokens, c.completion_tokens),
            ("LLM calls", p.llm_calls, c.llm_calls),
        ],
        "",
    )
    latency_chart = _svg_grouped(
        [(f"p{q}", p.latency(q), c.latency(q)) for q in (50, 90, 99)], "ms"
    )
    header = (
        "<tr><th>key</th><th>input</th><th>fields</th><th>production</th><th>candidate</th></tr>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{esc(title)}</h1>
<p>production <b>{esc(r.production_topic)}</b> vs candidate <b>{esc(r.candidate_topic)}</b>
{run}{shadow}</p>
<p>Joined by <b>{esc(r.join)}</b>: {r.matched} inputs in both,
{len(r.only_production)} only in production, {len(r.only_candidate)} only in candidate,
{r.candidate_dead_letters} candidate dead letters.</p>{notes}
<h2>Agreement: {_pct(r.agreement_rate)} ({r.agreed} of {r.matched})</h2>
{_svg_bars(agreement)}
{field_table}
<h2>Tokens and cost (matched inputs)</h2>
<table><tr><th></th><th>production</th><th>candidate</th><th>delta</th></tr>{usage_rows}</table>
{legend}{token_chart}
<h2>Latency per input (usage.latency_ms)</h2>
{legend}{latency_chart}
{_svg_cdf(p.latencies_ms, c.latencies_ms)}
<h2>Differing cases ({len(r.differing)})</h2>
<table>{header}{_case_rows(r.differing)}</table>
<h2>Only in production ({len(r.only_production)})</h2>
<table>{header}{_case_rows(r.only_production)}</table>
<h2>Only in candidate ({len(r.only_candidate)})</h2>
<table>{header}{_case_rows(r.only_candidate)}</table>
</body></html>
"""
