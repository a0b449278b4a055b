"""The comparison report as one self-contained HTML page, written for people to read.

Sections (each a ``<section id=...>``, in this order): ``metadata`` (the
headline figures of :func:`~streaming_agents.replay.report_data.headline`:
versions, models, range, run id, memory start, agreement, verdicts, cost per
input, dead letters), ``agreement`` (per field, with the judge's verdicts
beside), ``usage`` (LLM calls, tokens and cost per input: three charts, each
on its own axis), ``latency`` (percentiles and a labelled CDF),
``divergences`` (where a re-run left the production record), ``cases`` (each
differing input with an inline diff per field, its verdict and trace ids),
``dead-letters`` (reasons), ``only`` (inputs one side lacks) and ``keys``
(per-key drill-down: the key's timeline, production beside candidate).

Inline CSS and inline SVG only: no scripts, fonts, images or style sheets are
fetched (the page can be mailed, archived and opened offline); the
drill-down uses ``<details>`` elements, which need no script.
"""

from __future__ import annotations

import hashlib
import html
import json
from typing import Any

from streaming_agents.replay.charts import cdf_chart, grouped_bars, rate_bars
from streaming_agents.replay.report_data import (
    Case,
    ComparisonReport,
    TimelineEntry,
    Verdict,
    headline,
)
from streaming_agents.replay.textdiff import field_diffs

__all__ = ["MAX_CASES_SHOWN", "MAX_KEYS_SHOWN", "key_anchor", "render_html"]

MAX_CASES_SHOWN = 200
MAX_KEYS_SHOWN = 200
MAX_TIMELINE = 100
esc = html.escape

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;color:#222;max-width:1180px;
padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d5d5d5;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f4f4f4}td.n{text-align:right}
table.meta th{width:220px}pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px}
td pre{max-width:470px}del{background:#ffd7d5;text-decoration:line-through}
ins{background:#cdf3d0;text-decoration:none}.muted{color:#777}.charts{display:flex;gap:16px;
flex-wrap:wrap}figure{margin:0}.case{border:1px solid #ddd;border-radius:6px;padding:8px 12px;
margin:12px 0}.case h3{font-size:14px;margin:0 0 6px}.badge{display:inline-block;padding:1px 8px;
border-radius:10px;font-size:12px;color:#fff;margin-left:6px}.b-candidate{background:#f28e2b}
.b-production{background:#4e79a7}.b-tie{background:#888}.b-not{background:#bbb;color:#222}
.s-differ{background:#fff4e5}.s-agree{background:#f3fbf3}.s-dead{background:#fdeaea}
code{font-size:12px;background:#f4f4f4;padding:0 3px}details{margin:4px 0}summary{cursor:pointer}
"""


def key_anchor(key: str) -> str:
    """The element id of a key's drill-down."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _pre(value: Any) -> str:
    if isinstance(value, str):
        return f"<pre>{esc(value)}</pre>"
    text = json.dumps(value, indent=1, sort_keys=True, default=str, ensure_ascii=False)
    return f"<pre>{esc(text)}</pre>"


def _badge(verdict: Verdict | None) -> str:
    if verdict is None:
        return ""
    css = "not" if verdict.preference == "not judged" else verdict.preference
    label = "judge: " + ("better: " + verdict.preference if css in ("production", "candidate")
                         else verdict.preference)  # fmt: skip
    return f'<span class="badge b-{css}" title="{esc(verdict.reason)}">{esc(label)}</span>'


def _traces(production: str, candidate: str) -> str:
    if not (production or candidate):
        return ""
    return (
        f'<span class="muted">trace ids: production <code>{esc(production or "-")}</code> '
        f"candidate <code>{esc(candidate or '-')}</code></span>"
    )


def _metadata(r: ComparisonReport) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in headline(r))
    shadow = " (shadow outputs)" if r.candidate_shadow else ""
    notes = "".join(f"<p class=muted>note: {esc(n)}</p>" for n in r.notes)
    return (
        f'<section id="metadata"><h2>Run</h2>'
        f"<p>production <b>{esc(r.production_topic)}</b> vs candidate "
        f"<b>{esc(r.candidate_topic)}</b>{shadow}; joined by <b>{esc(r.join)}</b>: "
        f"{r.matched} inputs in both, {len(r.only_production)} only in production, "
        f"{len(r.only_candidate)} only in candidate.</p>"
        f'<table class="meta">{rows}</table>{notes}</section>'
    )


def _agreement(r: ComparisonReport) -> str:
    bars = [("overall (exact output)", r.agreement_rate)] + [
        (f"field {f.field}", f.rate) for f in r.fields
    ]
    per_field: dict[str, dict[str, int]] = {}
    for case in r.differing:
        if case.verdict is not None:
            for name in case.fields or ("output",):
                slot = per_field.setdefault(name, {})
                slot[case.verdict.preference] = slot.get(case.verdict.preference, 0) + 1
    judged = r.judge_model is not None
    head = "<tr><th>field</th><th>compared</th><th>agreed</th><th>rate</th>" + (
        "<th>judge on the pairs where it differs</th></tr>" if judged else "</tr>"
    )
    rows = []
    for f in r.fields:
        verdicts = ", ".join(f"{p} {n}" for p, n in sorted(per_field.get(f.field, {}).items()))
        extra = f"<td>{esc(verdicts or '-')}</td>" if judged else ""
        rows.append(
            f"<tr><td>{esc(f.field)}</td><td class=n>{f.compared}</td><td class=n>{f.agreed}</td>"
            f"<td class=n>{f.rate * 100:.1f}%</td>{extra}</tr>"
        )
    table = f"<table>{head}{''.join(rows)}</table>" if r.fields else ""
    return (
        f'<section id="agreement"><h2>Agreement: {r.agreement_rate * 100:.1f}% '
        f"({r.agreed} of {r.matched})</h2>{rate_bars(bars)}{table}{_verdicts(r)}</section>"
    )


def _verdicts(r: ComparisonReport) -> str:
    if r.judge_model is None:
        return ""
    v = r.verdicts
    cells = "".join(f"<td class=n>{v[p]}</td>" for p in v)
    return (
        f'<div id="verdicts"><h3>Judge: {esc(r.judge_model)} on {len(r.differing)} '
        f"differing pairs</h3><table><tr>{''.join(f'<th>{esc(p)}</th>' for p in v)}</tr>"
        f"<tr>{cells}</tr></table><details><summary>rubric</summary>{_pre(r.rubric or '')}"
        "</details></div>"
    )


def _usage(r: ComparisonReport) -> str:
    p, c, d = r.production, r.candidate, r.deltas
    lines = [
        ("LLM calls", p.llm_calls, c.llm_calls, f"{d['llm_calls']:+.0f}"),
        ("prompt tokens", p.prompt_tokens, c.prompt_tokens, f"{d['prompt_tokens']:+.0f}"),
        ("completion tokens", p.completion_tokens, c.completion_tokens,
         f"{d['completion_tokens']:+.0f}"),
        ("total tokens", p.total_tokens, c.total_tokens, f"{d['total_tokens']:+.0f}"),
        ("cost (USD)", f"{p.cost_usd:.6f}", f"{c.cost_usd:.6f}", f"{d['cost_usd']:+.6f}"),
        ("cost per input (USD)", f"{p.cost_per_input:.6f}", f"{c.cost_per_input:.6f}",
         f"{d['cost_per_input_usd']:+.6f}"),
    ]  # fmt: skip
    rows = "".join(
        f"<tr><th>{esc(n)}</th><td class=n>{a}</td><td class=n>{b}</td><td class=n>{x}</td></tr>"
        for n, a, b, x in lines
    )
    n = max(1, r.matched)
    charts = [
        grouped_bars("LLM calls", [("all inputs", p.llm_calls, c.llm_calls)],
                     axis="LLM calls", width=260),
        grouped_bars("LLM calls per input", [("per input", p.llm_calls / n, c.llm_calls / n)],
                     axis="calls per input", width=260),
        grouped_bars("Tokens", [("prompt", p.prompt_tokens, c.prompt_tokens),
                                ("completion", p.completion_tokens, c.completion_tokens)],
                     axis="tokens"),
        grouped_bars("Cost per input", [("USD per input", p.cost_per_input, c.cost_per_input)],
                     unit="USD", axis="USD per input", width=260),
    ]  # fmt: skip
    figures = "".join(f"<figure>{chart}</figure>" for chart in charts)
    return (
        f'<section id="usage"><h2>Calls, tokens and cost ({r.matched} matched inputs)</h2>'
        f"<table><tr><th></th><th>production</th><th>candidate</th><th>delta</th></tr>{rows}"
        f'</table><div class="charts">{figures}</div></section>'
    )


def _latency(r: ComparisonReport) -> str:
    p, c = r.production, r.candidate
    groups = [(f"p{q}", p.latency(q), c.latency(q)) for q in (50, 90, 99)]
    return (
        '<section id="latency"><h2>Latency per input (usage.latency_ms)</h2>'
        '<div class="charts"><figure>'
        + grouped_bars("Latency percentiles", groups, axis="ms", width=380)
        + "</figure><figure>"
        + cdf_chart(p.latencies_ms, c.latencies_ms)
        + "</figure></div><p class=muted>Calls answered from a journal report the recorded "
        "latency.</p></section>"
    )


def _divergences(r: ComparisonReport) -> str:
    run = r.run
    if run is None or not run.journal_given:
        body = "<p class=muted>No production journal was given: divergences not computed.</p>"
    elif not run.divergences:
        body = "<p>Every request matched the production record (deterministic re-run).</p>"
    else:
        items = "".join(
            f'<li><a href="#{key_anchor(str(d.get("key")))}">key {esc(str(d.get("key")))}</a>: '
            f"{_pre(d.get('description', ''))}</li>"
            for d in run.divergences
        )
        body = f"<p>First request per key that left the record:</p><ul>{items}</ul>"
    fenced = f"<p>Side-effecting tool calls not run: {run.fenced}</p>" if run else ""
    return f'<section id="divergences"><h2>Divergences</h2>{body}{fenced}</section>'


def _case(case: Case) -> str:
    rows = "".join(
        f"<tr><td>{esc(fd.field)}{' (missing in ' + fd.missing + ')' if fd.missing else ''}</td>"
        f"<td><pre>{fd.production_html}</pre></td><td><pre>{fd.candidate_html}</pre></td></tr>"
        for fd in field_diffs(case.production, case.candidate)
    )
    reason = f"<p><b>judge:</b> {esc(case.verdict.reason)}</p>" if case.verdict is not None else ""
    turn = f" turn {case.turn}" if case.turn is not None else ""
    return (
        f'<div class="case"><h3><a href="#{key_anchor(case.key)}">key {esc(case.key)}</a>{turn}'
        f" — fields {esc(', '.join(case.fields) or 'output')}{_badge(case.verdict)}</h3>"
        f"{reason}<details><summary>input</summary>{_pre(case.input)}</details>"
        "<table><tr><th>field</th><th>production</th><th>candidate</th></tr>"
        f"{rows}</table>{_traces(case.production_trace, case.candidate_trace)}</div>"
    )


def _cases(r: ComparisonReport) -> str:
    shown = "".join(_case(c) for c in r.differing[:MAX_CASES_SHOWN])
    more = len(r.differing) - MAX_CASES_SHOWN
    tail = f"<p class=muted>… {more} more (see --json)</p>" if more > 0 else ""
    empty = "" if r.differing else "<p>None: every matched input agrees.</p>"
    return (
        f'<section id="cases"><h2>Differing cases ({len(r.differing)})</h2>'
        f"{empty}{shown}{tail}</section>"
    )


def _dead_letters(r: ComparisonReport) -> str:
    rows = "".join(
        f"<tr><td>{esc(reason)}</td><td class=n>{n}</td></tr>"
        for reason, n in r.dead_letter_reasons.most_common()
    )
    body = (
        f"<table><tr><th>reason</th><th>count</th></tr>{rows}</table>" if rows else "<p>None.</p>"
    )
    return (
        f'<section id="dead-letters"><h2>Candidate dead letters ({r.candidate_dead_letters})'
        f"</h2>{body}</section>"
    )


def _only(r: ComparisonReport) -> str:
    def table(cases: list[Case], side: str) -> str:
        rows = "".join(
            f'<tr><td><a href="#{key_anchor(c.key)}">{esc(c.key)}</a></td><td>{_pre(c.input)}</td>'
            f"<td>{_pre(c.production if side == 'production' else c.candidate)}</td></tr>"
            for c in cases[:MAX_CASES_SHOWN]
        )
        if not rows:
            return "<p>None.</p>"
        return f"<table><tr><th>key</th><th>input</th><th>{side}</th></tr>{rows}</table>"

    return (
        f'<section id="only"><h2>Only in production ({len(r.only_production)})</h2>'
        f"{table(r.only_production, 'production')}"
        f"<h2>Only in candidate ({len(r.only_candidate)})</h2>"
        f"{table(r.only_candidate, 'candidate')}</section>"
    )


def _timeline_row(e: TimelineEntry) -> str:
    css = {"differ": "s-differ", "agree": "s-agree", "dead letter": "s-dead"}.get(e.status, "")
    if e.status == "differ":
        diffs = field_diffs(e.production, e.candidate)
        prod = "".join(f"<pre><b>{esc(d.field)}</b>: {d.production_html}</pre>" for d in diffs)
        cand = "".join(f"<pre><b>{esc(d.field)}</b>: {d.candidate_html}</pre>" for d in diffs)
    else:
        prod = _pre(e.production) if e.production is not None else "-"
        cand = _pre(e.candidate) if e.candidate is not None else "-"
    where = f"p{e.offset[0]}@{e.offset[1]}" if e.offset else "-"
    return (
        f'<tr class="{css}"><td>{e.turn if e.turn is not None else "-"}</td><td>{where}</td>'
        f"<td>{_pre(e.input)}</td><td>{prod}</td><td>{cand}</td><td>{esc(e.status)}</td>"
        f"<td><code>{esc(e.production_trace or '-')}</code><br>"
        f"<code>{esc(e.candidate_trace or '-')}</code></td></tr>"
    )


def _keys(r: ComparisonReport) -> str:
    def changed(entries: list[TimelineEntry]) -> int:
        return sum(e.status in ("differ", "dead letter") for e in entries)

    def interesting(item: tuple[str, list[TimelineEntry]]) -> tuple[int, int, str]:
        return (-changed(item[1]), -sum(e.status != "agree" for e in item[1]), item[0])

    ranked = sorted(r.timelines.items(), key=interesting)
    blocks = []
    for key, entries in ranked[:MAX_KEYS_SHOWN]:
        differ = changed(entries)
        rows = "".join(_timeline_row(e) for e in entries[:MAX_TIMELINE])
        blocks.append(
            f'<details id="{key_anchor(key)}" class="key"{" open" if differ else ""}>'
            f"<summary>key <b>{esc(key)}</b>: {len(entries)} inputs, {differ} differ or "
            "dead-lettered"
            "</summary><table><tr><th>turn</th><th>input at</th><th>input</th>"
            "<th>production</th><th>candidate</th><th>status</th>"
            f"<th>trace ids (production / candidate)</th></tr>{rows}</table></details>"
        )
    more = len(ranked) - MAX_KEYS_SHOWN
    tail = f"<p class=muted>… {more} more keys (fewer differences)</p>" if more > 0 else ""
    return (
        f'<section id="keys"><h2>Keys ({len(r.timelines)}): timeline per key</h2>'
        "<p class=muted>Keys with differences first. Trace ids are the audit records' "
        f"<code>trace_id</code>.</p>{''.join(blocks)}{tail}</section>"
    )


def render_html(report: ComparisonReport, title: str = "Candidate vs production") -> str:
    """The report as one self-contained HTML document (see the module doc)."""
    sections = (_metadata, _agreement, _usage, _latency, _divergences, _cases, _dead_letters,
                _only, _keys)  # fmt: skip
    body = "\n".join(section(report) for section in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>\n{body}\n</body></html>\n"
    )
