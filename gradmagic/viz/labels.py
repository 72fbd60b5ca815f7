"""What a graph box says, and how big it is: shared by the layout (sizes) and the SVG (drawing).

Boxes use a monospace font, so their size follows from the number of columns of each line.

>>> node = {"id": "n3", "kind": "op", "name": "y", "label": "MulBackward0", "shape": [],
...         "dtype": "float32", "status": "agree",
...         "value": {"shape": [], "dtype": "float32", "numel": 1, "data": 28.0, "head": [28.0]}}
>>> [text for _, text in node_lines(node)]
['y', 'MulBackward0', 'scalar float32', 'tensor(28.)']
>>> box_size(node_lines(node))
(121, 74)
"""
from __future__ import annotations

import math
from typing import Any

from gradmagic.viz.escape import clean_text, display_width, truncate
from gradmagic.viz.fmt import as_value, format_shape, preview

CHAR_W = 7.2  # px per column of the 12 px monospace font used inside boxes
LINE_H = 15
PAD_X = 10
PAD_Y = 7
BADGE_W = 20  # room for the status glyph in the top-right corner
MAX_COLS = 30
MODULE_COLS = 40  # module boxes: "[2, 1, 28, 28] → [2, 6, 28, 28]" fits
MIN_W = 64

Line = tuple[str, str]  # (role, text); roles: title, kind, shape, value, grad, detail


def node_title(node: dict[str, Any]) -> str:
    """The name a learner knows the node by: its variable name, else what the learner wrote
    (``expr``: ``a * b``, ``net.1``; :func:`gradmagic.viz.exprs.node_exprs`), else its op label."""
    if node.get("name"):
        return clean_text(node["name"])
    if node.get("expr"):
        return clean_text(node["expr"])
    if node.get("kind") == "constant" and node.get("value") and not node["value"].get("shape"):
        return preview(node["value"], MAX_COLS, prefix="")
    return clean_text(node.get("label") or node.get("torch_op") or node.get("op")
                      or node.get("kind") or "?")


def kind_text(node: dict[str, Any]) -> str:
    """Second line: the torch-style op label, or what kind of input this is."""
    kind = node.get("kind")
    if kind == "op":
        return clean_text(node.get("label") or node.get("op") or "op")
    if kind == "opaque":
        return "opaque " + clean_text(node.get("torch_op") or node.get("label") or "")
    if kind == "leaf":
        return "leaf · requires grad" if node.get("requires_grad") else "leaf"
    return "constant"


def node_lines(node: dict[str, Any]) -> list[Line]:
    """The lines drawn inside a node's box, already cut to ``MAX_COLS`` columns."""
    title = node_title(node)
    lines: list[Line] = [("title", title)]
    kind = kind_text(node)
    if kind != title:
        lines.append(("kind", kind))
    dtype = clean_text(node.get("dtype") or "")
    lines.append(("shape", f"{format_shape(node.get('shape'))} {dtype}".strip()))
    if node.get("value") is not None:
        lines.append(("value", preview(node["value"], MAX_COLS)))
    grad = as_value(node.get("grad"), node.get("shape"), node.get("dtype"))
    if grad is not None:
        lines.append(("grad", "grad " + preview(grad, MAX_COLS - 5, prefix="")))
    return [(role, truncate(text, MAX_COLS)) for role, text in lines]


def group_lines(group: dict[str, Any]) -> list[Line]:
    """Lines of a folded group's box: its label, the ops of one iteration, its size."""
    if group.get("kind") == "module":
        return module_lines(group)
    ops = group.get("ops") or []
    summary = " · ".join(ops[:4]) + (" …" if len(ops) > 4 else "")
    lines: list[Line] = [("title", clean_text(group.get("label") or "group"))]
    if summary:
        lines.append(("kind", clean_text(summary)))
    size = f"{len(group.get('members') or [])} nodes"
    if group.get("lines"):
        first, last = group["lines"][0], group["lines"][-1]
        size += f" · line {first}" if first == last else f" · lines {first}–{last}"
    lines.append(("detail", size))
    return [(role, truncate(text, MAX_COLS)) for role, text in lines]


def _shapes(shapes: list[Any]) -> str:
    return ", ".join(format_shape(s) for s in shapes) if shapes else "–"


def module_lines(group: dict[str, Any]) -> list[Line]:
    """Lines of a module box: path and signature, shapes in → out, its parameters' gradient."""
    lines: list[Line] = [("title", clean_text(group.get("label") or group.get("module") or "module"))]
    lines.append(("shape", f"{_shapes(group.get('inputs'))} → {_shapes(group.get('outputs'))}"))
    grad = group.get("grad") or {}
    if grad.get("norm") is not None:
        lines.append(("grad", f"‖∇θ‖ {grad['norm']:.4g}"))
    elif grad.get("max_abs") is not None:
        lines.append(("grad", f"max |∇θ| {grad['max_abs']:.4g}"))
    count = len(group.get("members") or [])
    size = f"{count} node" + ("s" if count != 1 else "")
    if (group.get("calls") or 1) > 1:
        size += f" · call {group.get('call', 0) + 1} of {group['calls']}"
    lines.append(("detail", size))
    return [(role, truncate(text, MODULE_COLS)) for role, text in lines]


def box_size(lines: list[Line]) -> tuple[int, int]:
    """Width and height in px of a box holding ``lines`` (title row leaves room for a badge)."""
    cols = [display_width(text) * CHAR_W + (BADGE_W if role == "title" else 0)
            for role, text in lines]
    width = max([MIN_W, *cols]) + 2 * PAD_X
    return int(math.ceil(width)), len(lines) * LINE_H + 2 * PAD_Y


def step_over_line(call: dict[str, Any], nodes: dict[str, dict[str, Any]],
                   inputs: dict[str, list[tuple[str, int]]]) -> str:
    """What the backward pass does in a collapsed module box, in one line:
    ``net.3 Linear: g [64, 10] → g [64, 256]; ∂W = gᵀ·x; ∂b = Σ g`` (the gradient arrives
    shaped like the call's output and leaves shaped like its input; then each parameter's
    local rule, or the rule of the module's single op when it has no parameters).
    ``call`` is a ModuleCall of the report, ``inputs`` maps a node id to its (source, input)
    edges.

    >>> nodes = {"y": {"id": "y", "formulas": ["∂/∂x = g·W", "∂/∂W = gᵀ·x"]}}
    >>> call = {"path": "net.3", "type": "Linear", "inputs": [[64, 256]], "outputs": [[64, 10]],
    ...         "nodes": ["y"], "parameters": [{"name": "net.3.weight", "node": "w"}]}
    >>> step_over_line(call, nodes, {"y": [("h", 0), ("w", 1)]})
    'net.3 Linear: g [64, 10] → g [64, 256]; ∂W = gᵀ·x'
    """
    def shapes(key: str) -> str:
        return ", ".join(f"g {format_shape(s)}" for s in call.get(key) or []) or "g"

    head = clean_text(f"{call.get('path') or '?'} {call.get('type') or ''}".strip())
    text = f"{head}: {shapes('outputs')} → {shapes('inputs')}"
    params = {p["node"] for p in call.get("parameters") or [] if p.get("node")}
    ops = [nid for nid in call.get("nodes") or [] if (nodes.get(nid) or {}).get("formulas")]
    rules: list[str] = []
    for nid in ops:
        formulas = nodes[nid]["formulas"]
        for source, i in inputs.get(nid, []):
            if i >= len(formulas) or not (source in params or (not params and len(ops) == 1)):
                continue
            rule = formulas[i].replace("∂/∂", "∂", 1) if source in params else formulas[i]
            if rule not in rules and rule != "—":
                rules.append(clean_text(rule))
    return "; ".join([text, *rules])


def step_over_lines(report: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, str]:
    """``step_over_line`` of every module group in ``groups`` (id ``m<index>``), by group id."""
    calls = {f"m{m['index']}": m for m in report.get("modules") or []}
    wanted = [g["id"] for g in groups if g.get("kind") == "module" and g["id"] in calls]
    if not wanted:
        return {}
    nodes = {nd["id"]: nd for nd in report.get("nodes") or []}
    inputs: dict[str, list[tuple[str, int]]] = {}
    for edge in report.get("edges") or []:
        inputs.setdefault(edge["target"], []).append((edge["source"], int(edge.get("input") or 0)))
    return {gid: step_over_line(calls[gid], nodes, inputs) for gid in wanted}
