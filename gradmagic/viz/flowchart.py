"""The gradient-flow chart as static SVG: one line per layer across the backward calls (log
scale), or one bar per layer when the block ran one backward call.

The numbers and hints come from ``viz.facts.flow_facts`` (the widget draws the same chart
in ``static/graph.js``'s ``gradFlowPanel``). Every layer name is escaped; the SVG carries
its colours as presentation attributes, so it reads without a stylesheet.

>>> facts = {"calls": 1, "layers": [{"name": "w<1>", "calls": [0], "norm": [0.5]},
...                                 {"name": "b", "calls": [0], "norm": [2e-3]}]}
>>> svg = flow_svg(facts)
>>> svg.startswith('<svg class="gradmagic-flow"'), "w&lt;1&gt;" in svg, svg.count("<rect class")
(True, True, 2)
"""
from __future__ import annotations

import math
from typing import Any

from gradmagic.viz.escape import esc, truncate
from gradmagic.viz.facts import flow_facts

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 12, 34
#: line colours (the widget's graph.css uses the same, in the same order)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _positive(values: list[Any]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v) and v > 0]


def decades(facts: dict[str, Any]) -> tuple[int, int]:
    """The y range as powers of ten ``(lo, hi)``, ``lo < hi``, around every positive norm."""
    vals = [v for lay in facts["layers"] for v in _positive(lay["norm"])]
    if not vals:
        return -1, 1
    lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    return (lo, hi) if hi > lo else (lo, lo + 1)


def x_ticks(calls: int) -> list[int]:
    """The backward calls labelled on the x axis: each of up to 10, else first, middle, last.

    >>> x_ticks(3), x_ticks(300)
    ([0, 1, 2], [0, 150, 299])
    """
    return list(range(calls)) if calls <= 10 else [0, calls // 2, calls - 1]


def flow_svg(facts: dict[str, Any]) -> str:
    """The chart as one ``<svg class="gradmagic-flow">`` element."""
    lo, hi = decades(facts)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    layers = facts["layers"]

    def y_of(v: float) -> float:
        return TOP + plot_h * (1 - (math.log10(v) - lo) / (hi - lo))

    bars = facts.get("calls", 1) <= 1
    label = "layer" if bars else "backward call"
    out = [f'<svg class="gradmagic-flow" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
           f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="gradient norm per layer" font-family="sans-serif" font-size="11">']
    step = max(1, math.ceil((hi - lo) / 6))
    for d in range(lo, hi + 1, step):
        y = y_of(10.0 ** d)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">1e{d}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle" '
               f'fill="#555">{label}</text>')
    out.append(f'<text x="12" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" fill="#555" '
               f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">‖grad‖</text>')
    if bars:
        out += _bars(layers, y_of, plot_w, plot_h)
    else:
        out += _lines(layers, y_of, plot_w, facts["calls"])
    out.append("</svg>")
    return "".join(out)


def _bars(layers: list, y_of: Any, plot_w: float, plot_h: float) -> list[str]:
    out = []
    slot = plot_w / max(1, len(layers))
    base = TOP + plot_h
    for i, lay in enumerate(layers):
        v = lay["norm"][-1]
        x = LEFT + slot * i + slot * 0.15
        colour = COLOURS[i % len(COLOURS)]
        name = esc(lay["name"])
        if v is not None and math.isfinite(v) and v > 0:
            y = y_of(v)
            out.append(f'<rect class="gradmagic-flow-bar" data-layer="{name}" x="{x:.1f}" y="{y:.1f}" '
                       f'width="{slot * 0.7:.1f}" height="{max(0.5, base - y):.1f}" fill="{colour}">'
                       f'<title>{name}: ‖grad‖ {esc(lay.get("last_norm") or "")}</title></rect>')
        else:
            out.append(f'<rect class="gradmagic-flow-bar" data-layer="{name}" x="{x:.1f}" y="{base - 1:.1f}" '
                       f'width="{slot * 0.7:.1f}" height="1" fill="{colour}">'
                       f'<title>{name}: ‖grad‖ {esc(lay.get("last_norm") or "")}</title></rect>')
        out.append(f'<text x="{x + slot * 0.35:.1f}" y="{base + 13:.1f}" text-anchor="middle" '
                   f'fill="#333">{esc(truncate(lay["name"], max(4, int(slot / 6.5))))}</text>')
    return out


def _lines(layers: list, y_of: Any, plot_w: float, calls: int) -> list[str]:
    out = []
    span = max(1, calls - 1)
    x_of = lambda c: LEFT + plot_w * c / span  # noqa: E731
    for c in x_ticks(calls):
        out.append(f'<text x="{x_of(c):.1f}" y="{HEIGHT - BOTTOM + 13}" text-anchor="middle" '
                   f'fill="#555">{c}</text>')
    for i, lay in enumerate(layers):
        colour = COLOURS[i % len(COLOURS)]
        name = esc(lay["name"])
        segs, cur = [], []
        for c, v in zip(lay["calls"], lay["norm"]):
            if v is not None and math.isfinite(v) and v > 0:
                cur.append(f"{x_of(c):.1f},{y_of(v):.1f}")
            elif cur:  # a gap: zero or non-finite
                segs.append(cur)
                cur = []
        if cur:
            segs.append(cur)
        for seg in segs:
            shape = (f'<polyline points="{" ".join(seg)}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
                     if len(seg) > 1 else
                     f'<circle cx="{seg[0].split(",")[0]}" cy="{seg[0].split(",")[1]}" r="2.5" fill="{colour}"/>')
            out.append(f'<g class="gradmagic-flow-line" data-layer="{name}"><title>{name}: last ‖grad‖ '
                       f'{esc(lay.get("last_norm") or "")}</title>{shape}</g>')
        y = TOP + 6 + 15 * i
        out.append(f'<line x1="{WIDTH - RIGHT + 10}" y1="{y}" x2="{WIDTH - RIGHT + 26}" y2="{y}" '
                   f'stroke="{colour}" stroke-width="2"/><text x="{WIDTH - RIGHT + 30}" y="{y + 4}" '
                   f'fill="#333">{esc(truncate(lay["name"], 17))}</text>')
    return out


def _finite(v: Any) -> Any:
    """A series entry for the widget: 4 significant digits, None for zero-free gaps (non-finite)."""
    return None if v is None or not math.isfinite(v) else float(f"{v:.4g}")


def flow_payload(report: dict[str, Any]) -> dict[str, Any] | None:
    """``flow_facts`` for the widget's ``graph["flow"]``: JSON-safe (non-finite → None), with
    the chart's y range (``decades``); None when the panel is not shown."""
    facts = flow_facts(report)
    if facts is None:
        return None
    layers = [{**lay, **{k: [_finite(v) for v in lay[k]] for k in ("norm", "mean", "max")}}
              for lay in facts["layers"]]
    return {**facts, "layers": layers, "decades": list(decades(facts)), "colours": list(COLOURS)}
