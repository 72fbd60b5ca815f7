"""The static HTML report: a self-contained fragment with no script and no external URL.

It reads well wherever a notebook is read (JupyterLab, Notebook, VS Code, GitHub,
nbconvert): first the diagnoses when the cell failed or surprised (why, which lines, the
fix), a verdict banner, the graph as one inline SVG, the leaves' gradients next to
PyTorch's, each leaf's accumulation history, the backward calls and what the forward pass
saved. ``report.css`` is inlined; every user string is escaped. The graph also comes as a
picture (an SVG ``data:`` URL in an ``<img>``) that shows where an untrusted notebook's
HTML sanitizer removes ``<svg>`` and ``<style>`` (see ``graph_block``).

>>> rep = {"ok": True, "nodes": [{"id": "n0", "kind": "leaf", "name": "x", "shape": [4],
...        "dtype": "float32", "status": "agree"}], "edges": [], "leaves": [], "checks": []}
>>> page = render_html(rep)
>>> page.count("<svg"), "<script" in page
(1, False)
"""
from __future__ import annotations

import base64
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from gradmagic.viz.escape import esc
from gradmagic.viz.facts import (CLEARING_HINT, SEVERITY_GLYPH, call_rows, diagnosis_facts,
                                 event_rows, flow_facts, leaf_grad_rows, node_name, saved_summary,
                                 verdict)
from gradmagic.viz.flowchart import flow_svg
from gradmagic.viz.fmt import (as_value, format_err, format_shape, format_source, preview,
                               status_text)
from gradmagic.viz.iterations import iteration_note, view_report
from gradmagic.viz.labels import kind_text
from gradmagic.viz.layout import layout
from gradmagic.viz.svg import render_svg

CSS_PATH = Path(__file__).resolve().parent.parent / "static" / "report.css"
MAX_NODE_ROWS = 300
MAX_EVENTS = 30


@lru_cache(maxsize=1)
def report_css() -> str:
    """The report stylesheet, read once from ``gradmagic/static/report.css``."""
    return CSS_PATH.read_text(encoding="utf-8")


def render_html(report: dict[str, Any], max_nodes: int = 300,
                layout_dict: dict[str, Any] | None = None, iteration: int | None = None) -> str:
    """The whole static report as one ``<div class="gradmagic-report">`` fragment.

    ``layout_dict`` reuses a layout already computed (else one is made with ``max_nodes``).
    A training loop shows one iteration (``iteration``, default the last checked one; see
    :func:`gradmagic.viz.iterations.view_report`).
    """
    report = view_report(report, iteration)
    lay = layout_dict if layout_dict is not None else layout(report, max_nodes=max_nodes)
    level = verdict(report)["level"]
    parts = [f'<div class="gradmagic-report gradmagic-level-{level}" lang="en">',
             f"<style>{report_css()}</style>",
             diagnoses_block(report),
             _verdict(report),
             _iterations(report),
             _section("Computation graph", "hover a box for its details; ✓ ✗ ? compare with "
                      "PyTorch", graph_block(report, lay)),
             *(f'<p class="gradmagic-sub">{esc(note)}</p>' for note in lay.get("notes") or []),
             _gradients(report),
             _flow(report),
             _histories(report),
             _calls(report),
             _saved(report),
             _node_table(report),
             "</div>"]
    return "\n".join(p for p in parts if p)


def _iterations(report: dict[str, Any]) -> str:
    """Which iteration of a training loop the graph shows ("" without a loop)."""
    note = iteration_note(report)
    if not note:
        return ""
    plan = report["iterations"]
    return (f'<p class="gradmagic-sub gradmagic-iterations" data-iteration="{plan["shown"]}" '
            f'data-iterations="{plan["count"]}">{esc(note)}</p>')


def graph_block(report: dict[str, Any], lay: dict[str, Any]) -> str:
    """The graph twice: the inline ``<svg>`` (tooltips, selectable text) and the same SVG as
    an ``<img>`` data URL, for front ends whose HTML sanitizer drops ``<svg>`` and
    ``<style>`` (JupyterLab and Notebook 7 showing an untrusted notebook).

    The stylesheet shows the inline SVG and hides the image; where it was removed, the
    inline ``display:none`` hides what the sanitizer left of the SVG (its loose text)
    and the image shows. An SVG inside ``<img>`` runs no script and loads nothing.

    >>> from gradmagic.viz.layout import layout
    >>> rep = {"nodes": [{"id": "n0", "kind": "leaf", "name": "x"}], "edges": []}
    >>> block = graph_block(rep, layout(rep))
    >>> block.count("<svg"), 'src="data:image/svg+xml;base64,' in block
    (1, True)
    """
    svg = render_svg(report, lay)
    data = base64.b64encode(_picture(svg).encode("utf-8")).decode("ascii")
    width = re.search(r'<svg[^>]* width="([\d.]+)"', svg)
    size = f' width="{width.group(1)}"' if width else ""
    alt = "Computation graph (picture); the node table below lists every node."
    return (f'<div class="gradmagic-graph">'
            f'<div class="gradmagic-graph-live" style="display:none">{svg}</div>'
            f'<img class="gradmagic-graph-img" alt="{esc(alt)}"{size} '
            f'src="data:image/svg+xml;base64,{data}"></div>')


#: what an SVG shown as a picture cannot use: tooltips, classes (no stylesheet reaches it),
#: data attributes and focus; attribute values are escaped, so they hold no quote
_NOT_IN_PICTURE = re.compile(r'<title>[^<]*</title>| (?:class|data-[\w-]+|tabindex)="[^"]*"')


def _picture(svg: str) -> str:
    """``svg`` without what only the inline copy uses (about a third smaller)."""
    return _NOT_IN_PICTURE.sub("", svg)


def _section(title: str, sub: str, body: str) -> str:
    sub_html = f' <span class="gradmagic-muted">— {esc(sub)}</span>' if sub else ""
    return f'<div class="gradmagic-h">{esc(title)}{sub_html}</div>\n{body}'


def _table(headers: list[str], rows: list[tuple[str, list[str]]], cls: str) -> str:
    """``rows`` are (``<tr>`` attributes, cells), both already escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr {attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
                   for attrs, cells in rows)
    return (f'<table class="gradmagic-table {cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _code(text: str) -> str:
    return f"<code>{esc(text)}</code>" if text else ""


def _status_cell(status: str, text: str) -> str:
    return f'<span class="gradmagic-verdict-cell gradmagic-status-{esc(status)}">{esc(text)}</span>'


def diagnoses_block(report: dict[str, Any]) -> str:
    """Every diagnosis of ``report``, most important first (``""`` when there is none): a
    ``gradmagic-diagnosis`` block each, with its heading, message, lines and fix.

    >>> rep = {"diagnoses": [{"kind": "grad_none", "severity": "warning",
    ...        "title": "Why is <h>.grad None?", "message": "h is not a leaf.",
    ...        "fix": "call h.retain_grad()", "lines": [], "nodes": []}]}
    >>> block = diagnoses_block(rep)
    >>> 'data-diagnosis="grad_none"' in block, "Why is &lt;h&gt;.grad None?" in block
    (True, True)
    >>> diagnoses_block({"diagnoses": []})
    ''
    """
    blocks = [_diagnosis(d) for d in diagnosis_facts(report)]
    return f'<div class="gradmagic-diagnoses">{"".join(blocks)}</div>' if blocks else ""


def _diagnosis(diag: dict[str, Any]) -> str:
    severity = diag["severity"]
    title = f'<div class="gradmagic-diagnosis-title">{esc(diag["title"])}</div>' \
        if diag["title"] else ""
    message = f'<p class="gradmagic-diagnosis-message">{esc(diag["message"])}</p>' \
        if diag["message"] else ""
    rows = [(f'class="gradmagic-diagnosis-line" data-line="{esc(_or_empty(ln["line"]))}"',
             [esc(ln["where"]), esc(ln["role"]), _code(ln["code"])]) for ln in diag["lines"]]
    lines = _table(["where", "role", "code"], rows, "gradmagic-diagnosis-lines") if rows else ""
    fix = (f'<p class="gradmagic-diagnosis-fix"><strong>Fix:</strong> {esc(diag["fix"])}</p>'
           if diag["fix"] else "")
    role = "alert" if severity == "error" else "note"
    return (f'<div class="gradmagic-diagnosis gradmagic-diagnosis-{severity}" '
            f'data-diagnosis="{esc(diag["kind"])}" role="{role}">'
            f'<div class="gradmagic-diagnosis-heading">{SEVERITY_GLYPH[severity]} '
            f'{esc(diag["heading"])}</div>{title}{message}{lines}{fix}</div>')


def _or_empty(value: Any) -> Any:
    return "" if value is None else value


def _verdict(report: dict[str, Any]) -> str:
    v = verdict(report)
    items = "".join(f"<li>{esc(d)}</li>" for d in v["details"])
    error = report.get("error")
    err_html = ""
    if error:
        err_html = (f'<div class="gradmagic-error">⚠ The cell raised {esc(error.get("type"))}: '
                    f"{esc(error.get('message'))}</div>")
        items = "".join(f"<li>{esc(d)}</li>" for d in v["details"][1:])
    return (f'<div class="gradmagic-verdict gradmagic-verdict-{v["level"]}" role="status">'
            f'{err_html}<strong>{esc(v["headline"])}</strong>'
            f'{f"<ul>{items}</ul>" if items else ""}</div>')


def _gradients(report: dict[str, Any]) -> str:
    rows = [(f'class="gradmagic-status-{esc(r["status"])}" data-leaf="{esc(r["id"])}"',
             [_code(r["name"]), esc(f"{r['shape']} {r['dtype']}"), _code(r["torch"]),
              _code(r["engine"]), _status_cell(r["status"], r["verdict"]), esc(r["err"])])
            for r in leaf_grad_rows(report, max_chars=60)]
    if not rows:
        return ""
    return _section("Gradients of the leaves", "torch's .grad next to gradmagic's own",
                    _table(["leaf", "shape", "torch .grad", "gradmagic", "check", "max |Δ|"],
                           rows, "gradmagic-grads"))


def _flow(report: dict[str, Any]) -> str:
    """The gradient-flow panel: hints, the chart (``.gradmagic-flow``) and its numbers."""
    facts = flow_facts(report)
    if facts is None:
        return ""
    hints = "".join(f'<p class="gradmagic-hint gradmagic-flow-hint" data-hint="{esc(h["kind"])}">'
                    f'<strong>⚠ {esc(h["title"])}.</strong> {esc(h["text"])}</p>' for h in facts["hints"])
    rows = [(f'data-layer="{esc(lay["name"])}"',
             [_code(lay["name"]), esc(lay["type"] or lay["kind"]), esc(lay["last_norm"]),
              esc(lay["last_mean"]), esc(lay["last_max"]), esc(lay["trend"])])
            for lay in facts["layers"]]
    table = _table(["layer", "kind", "‖grad‖ (last call)", "mean |g|", "max |g|", "trend"], rows,
                   "gradmagic-flow-table")
    acts = ""
    if facts["activations"]:
        arows = [(f'data-module="{esc(a["module"])}"',
                  [_code(a["module"]), esc(a["type"]), esc(a["shape"]), esc(a["mean"]), esc(a["std"]),
                   esc(a["zeros"])]) for a in facts["activations"]]
        acts = (f'<p class="gradmagic-sub">{esc(facts["activations_title"])}</p>'
                + _table(["module", "kind", "shape", "mean", "std", "zeros"], arows, "gradmagic-flow-acts"))
    return _section(facts["title"], facts["sub"],
                    f'<div class="gradmagic-flow-panel">{hints}{flow_svg(facts)}{table}{acts}</div>')


def _histories(report: dict[str, Any]) -> str:
    blocks = []
    for leaf in report.get("leaves") or []:
        rows = event_rows(leaf, max_chars=40)
        if not rows:
            continue
        name = esc(leaf.get("name") or leaf.get("id"))
        shown = rows[-MAX_EVENTS:]
        dropped = int(leaf.get("events_dropped") or 0) + len(rows) - len(shown)
        more = (f'<p class="gradmagic-sub">{dropped} earlier events not shown.</p>'
                if dropped else "")
        table = _table(["event", "where", "code", ".grad before → after"],
                       [(f'class="gradmagic-event-{esc(r["kind"])}"',
                         [esc(r["event"]), esc(r["where"]), _code(r["code"]), _code(r["change"])])
                        for r in shown], "gradmagic-history-table")
        hint = ""
        if leaf.get("accumulated_without_clearing"):
            hint = f'<p class="gradmagic-hint">⚠ <code>{name}.grad</code> {esc(CLEARING_HINT)}.</p>'
        blocks.append(f'<div class="gradmagic-history" data-leaf="{name}">'
                      f'<div class="gradmagic-sub"><code>{name}.grad</code></div>'
                      f"{more}{table}{hint}</div>")
    grads = len(blocks)
    for leaf in report.get("leaves") or []:
        rows = event_rows(leaf, max_chars=40, updates=True)
        if not rows:
            continue
        name = esc(leaf.get("name") or leaf.get("id"))
        table = _table(["event", "where", "code", "value before → after", "step Δ"],
                       [('class="gradmagic-event-update"',
                         [esc(r["event"]), esc(r["where"]), _code(r["code"]), _code(r["change"]),
                          _code(r["step"])]) for r in rows[-MAX_EVENTS:]], "gradmagic-history-table")
        blocks.append(f'<div class="gradmagic-history gradmagic-updates" data-leaf="{name}">'
                      f'<div class="gradmagic-sub">updates of <code>{name}</code> (its value, not its '
                      f'.grad)</div>{table}</div>')
    if not blocks:
        return ""
    what = "every change to each leaf's .grad" + (", and its value updates" if len(blocks) > grads else "")
    return _section("Accumulation history", what, "".join(blocks))


def _calls(report: dict[str, Any]) -> str:
    rows = [('class="gradmagic-call"', [esc(r["index"]), _code(r["kind"]), esc(r["where"]),
                                 _code(r["code"]), esc(r["root"]), esc(r["verdict"])])
            for r in call_rows(report)]
    if not rows:
        return ""
    return _section("Backward calls", "", _table(["#", "call", "where", "code", "from", "check"],
                                                 rows, "gradmagic-calls"))


def _saved(report: dict[str, Any]) -> str:
    summary = saved_summary(report)
    if not summary["count"]:
        return ""
    rows = [('class="gradmagic-saved-row"', [esc(r["node"]), _code(r["saved"]), esc(r["bytes"])])
            for r in summary["rows"][:20]]
    more = len(summary["rows"]) - len(rows)
    tail = f'<p class="gradmagic-sub">… and {more} more nodes.</p>' if more > 0 else ""
    table = _table(["node", "saved tensors", "bytes"], rows, "gradmagic-saved")
    return _section("Saved for backward", "",
                    f'<p class="gradmagic-sub">{esc(summary["sentence"])}</p>{table}{tail}')


def _node_table(report: dict[str, Any]) -> str:
    nodes = report.get("nodes") or []
    if not nodes:
        return ""
    rows = []
    for node in nodes[:MAX_NODE_ROWS]:
        status = node.get("status") or "unchecked"
        grad = as_value(node.get("grad"), node.get("shape"), node.get("dtype"))
        src = node.get("source") or {}
        rows.append((f'class="gradmagic-status-{esc(status)}" data-node-id="{esc(node["id"])}"', [
            _code(node_name(node)), esc(kind_text(node)),
            esc(f"{format_shape(node.get('shape'))} {node.get('dtype') or ''}"),
            _code(preview(node.get("value"), 60)), _code(preview(grad, 60) if grad else ""),
            esc("; ".join(node.get("formulas") or [])),
            esc(format_source(src)) + (f"<br>{_code(src['code'])}" if src.get("code") else ""),
            _status_cell(status, status_text(status) + (f" ({format_err(node['max_abs_err'])})"
                         if node.get("max_abs_err") is not None else ""))]))
    more = len(nodes) - len(rows)
    tail = f'<p class="gradmagic-sub">… {more} more nodes not listed.</p>' if more > 0 else ""
    table = _table(["node", "kind", "shape", "value", "grad", "local derivative", "source",
                    "check"], rows, "gradmagic-nodes-table")
    return (f'<details class="gradmagic-all-nodes"><summary>All {len(nodes)} nodes</summary>'
            f"{table}{tail}</details>")
