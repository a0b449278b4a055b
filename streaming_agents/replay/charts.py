"""Inline SVG charts of the HTML report: each with its own scale, axes and labels.

No scripts and no external assets: every chart is an ``<svg>`` element with
tick marks and tick labels on its value axis, an axis title, a legend and
the value written on each bar, so a reader never has to guess a scale.
Colours: production blue, candidate orange (the same in every chart).
"""

from __future__ import annotations

import html
import math

__all__ = ["CANDIDATE", "PRODUCTION", "cdf_chart", "grouped_bars", "nice_ticks", "rate_bars"]

PRODUCTION, CANDIDATE = "#4e79a7", "#f28e2b"
_AXIS, _GRID, _FONT = "#555", "#e3e3e3", 'font-size="11" fill="#333"'


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (steps of 1, 2 or 5 x 10^k)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks, value = [0.0], 0.0
    while value < top - 1e-12:
        value += step
        ticks.append(round(value, 12))
    return ticks


def _fmt(value: float, unit: str = "") -> str:
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "USD":
        return f"{value:.2g}" if 0 < abs(value) < 0.01 else f"{value:.4g}"
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"


def _legend(x: float, y: float) -> str:
    return (
        f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{PRODUCTION}"/>'
        f'<text x="{x + 14}" y="{y}" {_FONT}>production</text>'
        f'<rect x="{x + 90}" y="{y - 9}" width="10" height="10" fill="{CANDIDATE}"/>'
        f'<text x="{x + 104}" y="{y}" {_FONT}>candidate</text>'
    )


def _y_axis(ticks: list[float], unit: str, left: float, top: float, plot_h: float,
            right: float, title: str) -> str:  # fmt: skip
    parts = []
    for tick in ticks:
        y = top + plot_h - plot_h * tick / ticks[-1]
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="{_GRID}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>'
            f"{_fmt(tick, unit)}</text>"
        )
    mid = top + plot_h / 2
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{_AXIS}"/>'
        f'<text x="12" y="{mid:.1f}" transform="rotate(-90 12 {mid:.1f})" text-anchor="middle" '
        f"{_FONT}>{html.escape(title)}</text>"
    )
    return "".join(parts)


def grouped_bars(
    title: str, groups: list[tuple[str, float, float]], *, unit: str = "", axis: str = "",
    width: int = 360, height: int = 240,
) -> str:  # fmt: skip
    """Production and candidate bars per group on one value axis of their own."""
    left, top, bottom, right = 64, 44, 40, width - 10
    plot_h = height - top - bottom
    ticks = nice_ticks(max([0.0, *(max(a, b) for _, a, b in groups)]))
    label = html.escape(title)
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="{label}">',
        f'<text x="{left}" y="14" font-size="12" font-weight="bold">{label}</text>',
        _legend(left, 32),
        _y_axis(ticks, unit, left, top, plot_h, right, axis or unit),
    ]
    slot = (right - left) / max(1, len(groups))
    bar_w = min(42.0, slot / 2.6)
    base = top + plot_h
    for i, (name, prod, cand) in enumerate(groups):
        centre = left + slot * (i + 0.5)
        for j, (value, colour) in enumerate(((prod, PRODUCTION), (cand, CANDIDATE))):
            h = plot_h * value / ticks[-1]
            x = centre - bar_w + j * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{html.escape(name)}: {_fmt(value, unit)} {unit}</title>'
                f'</rect><text x="{x + bar_w / 2 - 1:.1f}" y="{base - h - 3:.1f}" '
                f'text-anchor="middle" font-size="10">{_fmt(value, unit)}</text>'
            )
        parts.append(
            f'<text x="{centre:.1f}" y="{base + 16}" text-anchor="middle" {_FONT}>'
            f"{html.escape(name)}</text>"
        )
    parts.append(f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="{_AXIS}"/>')
    parts.append("</svg>")
    return "".join(parts)


def rate_bars(rows: list[tuple[str, float]], *, width: int = 640) -> str:
    """Horizontal bars of rates in [0, 1] on a labelled 0-100 % axis."""
    bar_h, gap, label_w, top = 18, 6, 210, 8
    scale = width - label_w - 60
    height = top + len(rows) * (bar_h + gap) + 30
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" '
             'aria-label="agreement per field">']  # fmt: skip
    axis_y = top + len(rows) * (bar_h + gap)
    for pct in (0, 25, 50, 75, 100):
        x = label_w + scale * pct / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="{_GRID}"/>'
            f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" {_FONT}>{pct}%</text>'
        )
    for i, (label, rate) in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = max(0.0, min(1.0, rate)) * scale
        colour = "#59a14f" if rate >= 0.999 else ("#edc948" if rate >= 0.8 else "#e15759")
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<text x="0" y="{y + 13}" {_FONT}>{html.escape(short)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" {_FONT}>{rate * 100:.1f}%</text>'
        )
    parts.append(
        f'<text x="{label_w + scale / 2:.1f}" y="{axis_y + 28}" text-anchor="middle" {_FONT}>'
        "share of compared inputs that agree</text></svg>"
    )
    return "".join(parts)


def _steps(values: list[float], top_value: float, left: float, base: float,
           plot_w: float, plot_h: float) -> str:  # fmt: skip
    ordered = sorted(values)
    points = [f"{left:.1f},{base:.1f}"]
    for i, value in enumerate(ordered):
        x = left + plot_w * value / top_value
        points.append(f"{x:.1f},{base - plot_h * i / len(ordered):.1f}")
        points.append(f"{x:.1f},{base - plot_h * (i + 1) / len(ordered):.1f}")
    return " ".join(points)


def cdf_chart(prod: list[float], cand: list[float], *, width: int = 640, height: int = 300) -> str:
    """Cumulative distribution of per-input latency: labelled axes, ticks and legend."""
    left, top, bottom, right = 64, 44, 48, width - 14
    plot_w, plot_h = right - left, height - top - bottom
    base = top + plot_h
    ticks = nice_ticks(max([0.0, *prod, *cand]), 6)
    top_value = ticks[-1]
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" role="img" '
        'aria-label="latency CDF">',
        f'<text x="{left}" y="14" font-size="12" font-weight="bold">'
        "Latency per input, cumulative</text>",
        _legend(left, 32),
        _y_axis([0.0, 25.0, 50.0, 75.0, 100.0], "%", left, top, plot_h, right,
                 "inputs answered within x"),
    ]  # fmt: skip
    for tick in ticks:
        x = left + plot_w * tick / top_value
        parts.append(
            f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" stroke="{_AXIS}"/>'
            f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle" {_FONT}>'
            f"{_fmt(tick)}</text>"
        )
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="{_AXIS}"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle" {_FONT}>'
        "latency per input, usage.latency_ms (ms)</text>"
    )
    for values, colour, name in ((prod, PRODUCTION, "production"), (cand, CANDIDATE, "candidate")):
        if values:
            points = _steps(values, top_value, left, base, plot_w, plot_h)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                f"<title>{name}: {len(values)} inputs</title></polyline>"
            )
    parts.append("</svg>")
    return "".join(parts)
