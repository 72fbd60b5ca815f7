"""The computation graph as one static ``<svg>`` element, drawn from a report and its layout.

Kinds differ by shape and fill (leaf: pill, op: cut-corner box, opaque: pointed box,
constant: plain box, folded loop: a stack of cards); check states by stroke pattern and a
glyph badge (✓ agree, ✗ differ thick red, ? unchecked dashed, ⊘ disabled dotted), so no
state depends on colour alone. A node (or folded group holding one) that a diagnosis names
gets a dashed ring around its box and ``data-diagnosis="<kind>"``. Colours are presentation
attributes, so the picture survives sanitizers that drop ``<style>``; ``report.css`` only
adapts it to dark themes.

>>> from gradmagic.viz.layout import layout
>>> rep = {"nodes": [{"id": "n0", "kind": "leaf", "name": "x", "status": "agree"}], "edges": []}
>>> svg = render_svg(rep, layout(rep))
>>> svg.startswith("<svg") and svg.count("<svg") == 1 and 'data-name="x"' in svg
True
"""
from __future__ import annotations

from typing import Any

from gradmagic.viz.escape import clean_text, esc, truncate
from gradmagic.viz.facts import diagnosed_nodes
from gradmagic.viz.fmt import (STATUS_GLYPH, as_value, format_bytes, format_err, format_shape,
                               preview, status_text)
from gradmagic.viz.labels import LINE_H, PAD_X, PAD_Y, group_lines, node_lines

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
KIND_FILL = {"leaf": "#dbeafe", "op": "#fef3c7", "opaque": "#ede9fe", "constant": "#f1f5f9",
             "group": "#dcfce7"}
KIND_STROKE = {"leaf": "#1d4ed8", "op": "#b45309", "opaque": "#6d28d9", "constant": "#64748b",
               "group": "#15803d"}
KIND_WORD = {"leaf": "leaf (input that requires grad)", "op": "operation",
             "opaque": "opaque op (no gradmagic rule)", "constant": "constant (no grad)"}
STATUS_COLOR = {"agree": "#15803d", "differ": "#dc2626", "unchecked": "#64748b",
                "disabled": "#64748b"}
STATUS_DASH = {"unchecked": "6 3", "disabled": "2 3"}
TEXT_COLOR = {"title": "#0f172a", "kind": "#334155", "shape": "#475569", "value": "#0f172a",
              "grad": "#9a3412", "detail": "#334155"}
EDGE_COLOR = "#94a3b8"
LEGEND_H = 54


def render_svg(report: dict[str, Any], layout: dict[str, Any]) -> str:
    """One ``<svg>`` with every visible node, folded group and edge of ``layout``."""
    nodes = {n["id"]: n for n in report.get("nodes") or []}
    marks = diagnosed_nodes(report)
    graph_w, graph_h = float(layout.get("width") or 0), float(layout.get("height") or 0)
    legend = _legend()
    if not layout.get("nodes") and not layout.get("groups"):
        graph_h = 40.0
        legend = (f'<text class="gradmagic-legend-label" x="16" y="-14" font-size="12" '
                  f'fill="#334155">No tensor operations were recorded.</text>{legend}')
    width = max(graph_w, _LEGEND_W)
    height = graph_h + LEGEND_H
    dx = _r((width - graph_w) / 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gradmagic-svg" width="{_r(width)}" '
        f'height="{_r(height)}" viewBox="0 0 {_r(width)} {_r(height)}" role="img" '
        f'aria-label="{esc(_caption(report, layout))}" font-family="{FONT}" font-size="12">',
        f"<title>{esc(_caption(report, layout))}</title>",
        f'<g class="gradmagic-graph-body" transform="translate({dx},0)">',
        _module_frames(layout),
        '<g class="gradmagic-edges">',
        *(_edge(e) for e in layout.get("edges") or []),
        "</g>",
        '<g class="gradmagic-nodes">',
        *(_group(g, _group_mark(g, marks)) for g in layout.get("groups") or []
          if g.get("folded") and g.get("kind") != "module"),
        *(_module_box(g, _group_mark(g, marks)) for g in layout.get("groups") or []
          if g.get("folded") and g.get("kind") == "module"),
        *(_node(nodes[nid], box, marks.get(nid))
          for nid, box in (layout.get("nodes") or {}).items() if nid in nodes),
        "</g></g>",
        f'<g class="gradmagic-legend" transform="translate(0,{_r(graph_h)})">{legend}</g>',
        "</svg>",
    ]
    return "".join(parts)


def _caption(report: dict[str, Any], layout: dict[str, Any]) -> str:
    n = len(report.get("nodes") or [])
    folded = [g for g in layout.get("groups") or [] if g.get("folded") and g.get("kind") != "module"]
    boxes = [g for g in layout.get("groups") or [] if g.get("folded") and g.get("kind") == "module"]
    extra = f", {len(folded)} folded loop group(s)" if folded else ""
    extra += f", {len(boxes)} collapsed module box(es)" if boxes else ""
    return f"Computation graph: {n} nodes{extra}; data flows from inputs (top) to outputs (bottom)"


def _r(v: float) -> str:
    text = f"{float(v):.1f}"
    return text[:-2] if text.endswith(".0") else text


# ---------------------------------------------------------------- edges

def _edge_path(points: list[list[float]]) -> str:
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{_r(x0)} {_r(y0)}"]
    for x1, y1 in rest:
        if x1 == x0:
            d.append(f"L{_r(x1)} {_r(y1)}")
        else:
            bend = (y1 - y0) / 2 if y1 > y0 else 40.0
            d.append(f"C{_r(x0)} {_r(y0 + bend)} {_r(x1)} {_r(y1 - bend)} {_r(x1)} {_r(y1)}")
        x0, y0 = x1, y1
    return " ".join(d)


def _edge(edge: dict[str, Any]) -> str:
    points = edge.get("points") or []
    if len(points) < 2:
        return ""
    x, y = points[-1]
    arrow = f"M{_r(x - 4)} {_r(y - 8)} L{_r(x)} {_r(y)} L{_r(x + 4)} {_r(y - 8)} Z"
    count = ""
    if edge.get("count", 1) > 1:
        count = (f'<text class="gradmagic-edge-count" x="{_r(x + 6)}" y="{_r(y - 10)}" '
                 'font-size="10" fill="#475569">'
                 f'×{int(edge["count"])}</text>')
    return (f'<g class="gradmagic-edge" data-source="{esc(edge.get("source"))}" '
            f'data-target="{esc(edge.get("target"))}" data-input="{int(edge.get("input") or 0)}">'
            f'<path d="{_edge_path(points)}" fill="none" stroke="{EDGE_COLOR}" '
            f'stroke-width="1.4"/><path class="gradmagic-arrow" d="{arrow}" fill="{EDGE_COLOR}" '
            f'stroke="none"/>{count}</g>')


# ---------------------------------------------------------------- node boxes

def _outline(kind: str, w: float, h: float) -> tuple[str, str]:
    """(element name, geometry attributes) of a box of ``kind`` at the origin."""
    if kind == "leaf":
        return "rect", f'width="{_r(w)}" height="{_r(h)}" rx="{_r(min(h / 2, 16))}"'
    if kind == "op":
        c = 9
        pts = [(c, 0), (w - c, 0), (w, c), (w, h - c), (w - c, h), (c, h), (0, h - c), (0, c)]
    else:
        return "rect", f'width="{_r(w)}" height="{_r(h)}" rx="2"'
    return "polygon", 'points="' + " ".join(f"{_r(x)},{_r(y)}" for x, y in pts) + '"'


def _shape(kind: str, status: str, w: float, h: float) -> str:
    """The box outline: kind by shape and fill, status by stroke colour, width and dashes.

    Opaque ops get a double border (an inner frame), constants square corners.
    """
    tag, geometry = _outline(kind, w, h)
    stroke = STATUS_COLOR["differ"] if status == "differ" else KIND_STROKE.get(kind, "#64748b")
    width = "3" if status == "differ" else "1.5"
    dash = f' stroke-dasharray="{STATUS_DASH[status]}"' if status in STATUS_DASH else ""
    box = (f'<{tag} class="gradmagic-box" {geometry} fill="{KIND_FILL.get(kind, "#f1f5f9")}" '
           f'stroke="{stroke}" stroke-width="{width}"{dash}/>')
    if kind == "opaque":
        box += (f'<rect x="3.5" y="3.5" width="{_r(w - 7)}" height="{_r(h - 7)}" rx="1" '
                f'fill="none" stroke="{KIND_STROKE["opaque"]}" stroke-width="1"/>')
    return box


def _badge(status: str, x: float, y: float) -> str:
    glyph = STATUS_GLYPH.get(status, "?")
    return (f'<g class="gradmagic-badge" transform="translate({_r(x)},{_r(y)})">'
            f'<circle r="8" fill="{STATUS_COLOR.get(status, "#64748b")}"/>'
            f'<text text-anchor="middle" y="4" font-size="11" font-weight="700" fill="#ffffff">'
            f"{glyph}</text></g>")


def _lines(lines: list[tuple[str, str]]) -> str:
    out = []
    for i, (role, text) in enumerate(lines):
        weight = ' font-weight="700"' if role == "title" else ""
        size = "12.5" if role == "title" else "11.5"
        out.append(f'<text class="gradmagic-{role}" x="{PAD_X}" y="{PAD_Y + LINE_H * i + 11}" '
                   f'font-size="{size}" fill="{TEXT_COLOR[role]}"{weight}>{esc(text)}</text>')
    return "".join(out)


def _node(node: dict[str, Any], box: dict[str, Any], mark: dict[str, Any] | None = None) -> str:
    kind = node.get("kind") if node.get("kind") in KIND_FILL else "op"
    status = node.get("status") or "unchecked"
    w, h = float(box["w"]), float(box["h"])
    tip = node_tooltip(node) + (f"\n{_mark_glyph(mark)} {mark.get('title') or ''}" if mark else "")
    return (f'<g class="gradmagic-node gradmagic-kind-{kind} gradmagic-status-{esc(status)}" '
            f'data-node-id="{esc(node["id"])}" data-name="{esc(node.get("name") or "")}"'
            f'{_mark_attr(mark)} '
            f'transform="translate({_r(box["x"])},{_r(box["y"])})" tabindex="0">'
            f"<title>{esc(tip, keep_newlines=True)}</title>{_ring(mark, w, h)}"
            f"{_shape(kind, status, w, h)}{_lines(node_lines(node))}"
            f"{_badge(status, w - 13, 13)}</g>")


# ---------------------------------------------------------------- diagnosis marks

MARK_COLOR = {"error": "#dc2626", "warning": "#d97706"}


def _mark_glyph(mark: dict[str, Any]) -> str:
    return "⚠" if mark.get("severity") == "warning" else "✗"


def _mark_attr(mark: dict[str, Any] | None) -> str:
    """`` data-diagnosis="<kind>"`` for a node a diagnosis names, else nothing."""
    return f' data-diagnosis="{esc(mark.get("kind") or "")}"' if mark else ""


def _ring(mark: dict[str, Any] | None, w: float, h: float) -> str:
    """A dashed ring around a box that a diagnosis names (shape, not colour alone)."""
    if not mark:
        return ""
    color = MARK_COLOR.get(mark.get("severity") or "error", MARK_COLOR["error"])
    return (f'<rect class="gradmagic-diagnosis-ring" x="-5" y="-5" width="{_r(w + 10)}" '
            f'height="{_r(h + 10)}" rx="10" fill="none" stroke="{color}" stroke-width="3" '
            f'stroke-dasharray="7 4"/>')


def _group_mark(group: dict[str, Any], marks: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The first diagnosis naming one of a folded group's members, if any."""
    return next((marks[m] for m in group.get("members") or [] if m in marks), None)


def _group(group: dict[str, Any], mark: dict[str, Any] | None = None) -> str:
    w, h = float(group["w"]), float(group["h"])
    status = group.get("status") or "agree"
    cards = "".join(
        f'<rect x="{off}" y="{off}" width="{_r(w)}" height="{_r(h)}" rx="6" '
        f'fill="{KIND_FILL["group"]}" stroke="{KIND_STROKE["group"]}" stroke-width="1"/>'
        for off in (8, 4))
    tip = (f"{group.get('label')}: {len(group.get('members') or [])} nodes folded, one iteration "
           f"is {' → '.join(group.get('ops') or [])}. Expand the group to see them.")
    return (f'<g class="gradmagic-group gradmagic-folded gradmagic-status-{esc(status)}" '
            f'data-group-id="{esc(group["id"])}" data-members="{len(group.get("members") or [])}"'
            f'{_mark_attr(mark)} '
            f'transform="translate({_r(group["x"])},{_r(group["y"])})">'
            f"<title>{esc(tip)}</title>{_ring(mark, w + 8, h + 8)}{cards}"
            f'<rect class="gradmagic-box" width="{_r(w)}" height="{_r(h)}" rx="6" '
            f'fill="{KIND_FILL["group"]}" stroke="{KIND_STROKE["group"]}" stroke-width="1.5"/>'
            f"{_lines(group_lines(group))}{_badge(status, w - 13, 13)}</g>")


# ---------------------------------------------------------------- module boxes

MODULE_FILL, MODULE_STROKE, MODULE_TEXT = "#e0e7ff", "#4338ca", "#312e81"


def _module_attrs(group: dict[str, Any]) -> str:
    """The test hooks and ids every module box carries (``data-module``, ``data-module-class``)."""
    return (f'data-group-id="{esc(group["id"])}" data-module="{esc(group.get("module") or "")}" '
            f'data-module-class="{esc(group.get("type") or "")}" '
            f'data-depth="{int(group.get("depth") or 0)}" '
            f'data-members="{len(group.get("members") or [])}"')


def _module_tip(group: dict[str, Any]) -> str:
    lines = [str(group.get("label") or ""), *(text for _, text in group_lines(group)[1:])]
    return "\n".join(lines)


def _module_box(group: dict[str, Any], mark: dict[str, Any] | None = None) -> str:
    """A collapsed module call: one box with its path, signature, shapes and gradient."""
    w, h = float(group["w"]), float(group["h"])
    status = group.get("status") or "agree"
    return (f'<g class="gradmagic-group gradmagic-module gradmagic-folded '
            f'gradmagic-status-{esc(status)}" {_module_attrs(group)}{_mark_attr(mark)} '
            f'transform="translate({_r(group["x"])},{_r(group["y"])})">'
            f"<title>{esc(_module_tip(group), keep_newlines=True)}</title>{_ring(mark, w, h)}"
            f'<rect class="gradmagic-box" width="{_r(w)}" height="{_r(h)}" rx="8" '
            f'fill="{MODULE_FILL}" stroke="{MODULE_STROKE}" stroke-width="2"/>'
            f'<rect x="3" y="3" width="{_r(w - 6)}" height="{_r(h - 6)}" rx="6" fill="none" '
            f'stroke="{MODULE_STROKE}" stroke-width="0.8"/>'
            f"{_lines(group_lines(group))}{_badge(status, w - 13, 13)}</g>")


def _module_frames(layout: dict[str, Any]) -> str:
    """Open module calls: a labelled frame behind their nodes (nothing without modules)."""
    frames = [g for g in layout.get("groups") or []
              if g.get("kind") == "module" and not g.get("folded") and "x" in g]
    if not frames:
        return ""
    parts = ['<g class="gradmagic-module-frames">']
    for g in frames:
        parts.append(
            f'<g class="gradmagic-group gradmagic-module gradmagic-unfolded" {_module_attrs(g)} '
            f'transform="translate({_r(g["x"])},{_r(g["y"])})"><title>{esc(_module_tip(g), keep_newlines=True)}</title>'
            f'<rect class="gradmagic-module-frame" width="{_r(g["w"])}" height="{_r(g["h"])}" '
            f'rx="8" fill="{MODULE_FILL}" fill-opacity="0.35" stroke="{MODULE_STROKE}" '
            f'stroke-width="1" stroke-dasharray="4 3"/>'
            f'<text class="gradmagic-module-title" x="6" y="12" font-size="11" '
            f'fill="{MODULE_TEXT}">{esc(_frame_title(g))}</text></g>')
    parts.append("</g>")
    return "".join(parts)


def _frame_title(group: dict[str, Any]) -> str:
    """An open box's title, cut to its width (11 px monospace)."""
    cols = max(4, int((float(group.get("w") or 0) - 12) / 6.7))
    return truncate(clean_text(group.get("label") or ""), cols)


def node_tooltip(node: dict[str, Any]) -> str:
    """Everything about a node in a few plain-text lines (the SVG ``<title>`` tooltip)."""
    head = node.get("name") or node.get("label") or node.get("kind") or "?"
    label = node.get("label") or node.get("torch_op")
    lines = [f"{head} = {label}" if node.get("name") and label else str(head)]
    src = node.get("source") or {}
    if src.get("code"):
        lines.append(f"line {src.get('line')}: {src['code']}")
    lines.append(f"{KIND_WORD.get(node.get('kind'), node.get('kind'))}, shape "
                 f"{format_shape(node.get('shape'))}, {node.get('dtype') or ''}")
    lines.append(f"value {preview(node.get('value'), 120)}")
    for key, word in (("grad", "grad (gradmagic)"), ("torch_grad", "grad (torch)")):
        value = as_value(node.get(key), node.get("shape"), node.get("dtype"))
        if value is not None:
            lines.append(f"{word} {preview(value, 120)}")
    lines.extend(f"local derivative: {f}" for f in node.get("formulas") or [])
    for saved in node.get("saved") or []:
        lines.append(f"saved for backward: {saved.get('name')} {format_shape(saved.get('shape'))}"
                     f" ({format_bytes(saved.get('bytes'))})")
    status = node.get("status") or "unchecked"
    err = node.get("max_abs_err")
    err_text = f", max |Δ| {format_err(err)}" if err is not None else ""
    lines.append(f"{status_text(status)} with PyTorch{err_text}")
    return "\n".join(lines)


# ---------------------------------------------------------------- legend

_LEGEND_KINDS = (("leaf", "leaf"), ("op", "op"), ("constant", "constant"), ("opaque", "opaque"))
_LEGEND_STATUS = (("agree", "agrees with torch"), ("differ", "differs"),
                  ("unchecked", "unchecked"))
_LEGEND_W = 720


def _legend() -> str:
    """Two rows under the graph: what the shapes mean, what the badges mean."""
    parts, x = [], 16.0
    for kind, word in _LEGEND_KINDS:
        parts.append(f'<g transform="translate({_r(x)},8)">{_shape(kind, "agree", 34, 16)}'
                     f'{_legend_label(40, word)}</g>')
        x += 40 + 7 * len(word) + 18
    x = 16.0
    for status, word in _LEGEND_STATUS:
        parts.append(f'<g transform="translate({_r(x)},32)">{_badge(status, 8, 8)}'
                     f"{_legend_label(22, word)}</g>")
        x += 22 + 7 * len(word) + 18
    parts.append(f'<g transform="translate({_r(x)},32)">'
                 f"{_legend_label(0, 'data flows down ↓, gradients flow up ↑')}</g>")
    return "".join(parts)


def _legend_label(x: float, word: str) -> str:
    return (f'<text class="gradmagic-legend-label" x="{_r(x)}" y="12" font-size="11" '
            f'fill="#334155">{word}</text>')
