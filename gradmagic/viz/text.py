"""The report as plain text for terminals and the CLI: a tree and tables within ``width`` columns.

>>> rep = {"ok": True, "nodes": [{"id": "n0", "kind": "leaf", "name": "x", "shape": [],
...        "dtype": "float32", "status": "agree"}], "edges": [], "leaves": [], "checks": []}
>>> print(render_text(rep))  # doctest: +NORMALIZE_WHITESPACE
gradmagic · Nothing to cross-check: no value or gradient was computed here.
<BLANKLINE>
Graph (each node lists its inputs below it; data flows up, gradients flow down)
x  leaf  scalar float32  ✓
"""
from __future__ import annotations

import textwrap
from typing import Any

from gradmagic.viz.escape import clean_text, display_width, pad, truncate
from gradmagic.viz.facts import (CLEARING_HINT, SEVERITY_GLYPH, call_rows, diagnosis_facts,
                                 event_rows, flow_facts, leaf_grad_rows, node_name, saved_summary,
                                 verdict)
from gradmagic.viz.fmt import STATUS_GLYPH, as_value, format_shape, preview
from gradmagic.viz.fold import fold_plan
from gradmagic.viz.iterations import iteration_note, view_report
from gradmagic.viz.labels import kind_text
from gradmagic.viz.modules import module_groups

MAX_TREE_LINES = 60
MAX_INDENT = 36
MAX_EVENTS = 12


def render_text(report: dict[str, Any], width: int = 100, max_nodes: int = 300,
                iteration: int | None = None) -> str:
    """Diagnoses (when the cell failed or surprised), verdict, graph tree, gradient table,
    accumulation history, backward calls, saved tensors.

    A training loop shows one iteration (``iteration``, default the last checked one; see
    :func:`gradmagic.viz.iterations.view_report`)."""
    report = view_report(report, iteration)
    out: list[str] = _diagnoses(report, width)
    v = verdict(report)
    cell = report.get("cell") or {}
    where = f" · cell [{cell['number']}]" if cell.get("number") is not None else ""
    if is_empty(report):  # no tensor at all: one line, not an empty graph section
        return f"gradmagic{where} · no tensors were recorded in this cell.\n"
    # the line already starts with "gradmagic": "gradmagic · cell [6] ✓ agrees with PyTorch: …"
    out += _wrap(f"gradmagic{where} {_headline(v['headline'])}", width, "")
    for detail in v["details"]:
        out += _wrap(detail, width, "  ")
    note = iteration_note(report)
    if note:
        out += [""] + _wrap(note, width, "  ")
    out += ["", "Graph (each node lists its inputs below it; data flows up, gradients flow down)"]
    out += _tree(report, max_nodes)
    out += _gradients(report, width)
    out += _flow(report, width)
    out += _histories(report, width)
    out += _calls(report, width)
    out += _saved(report, width)
    return "\n".join(_fit(line, width) for line in out) + "\n"


def is_empty(report: dict[str, Any]) -> bool:
    """True for a cell that recorded no tensor, raised nothing and has nothing to diagnose
    or note (a note may say why gradmagic recorded nothing)."""
    return not (report.get("nodes") or report.get("leaves") or report.get("backward_calls")
                or report.get("diagnoses") or report.get("error") or report.get("notes"))


def _headline(text: str) -> str:
    """The verdict without a second "gradmagic" (the line starts with the word already)."""
    return (text.replace("✓ gradmagic agrees", "✓ agrees", 1)
            .replace(" between gradmagic and PyTorch", " with PyTorch", 1)
            .replace("had no gradmagic rule", "had no rule", 1))


# ---------------------------------------------------------------- diagnoses

def _diagnoses(report: dict[str, Any], width: int) -> list[str]:
    """One block per diagnosis, most important first, then a blank line; ``[]`` when none."""
    out: list[str] = []
    for diag in diagnosis_facts(report):
        out += _diagnosis(diag, width) + [""]
    return out


def _diagnosis(diag: dict[str, Any], width: int) -> list[str]:
    """``✗ Why it failed: <title>``, the message, the lines involved, the fix."""
    heading = diag["heading"] + (f": {diag['title']}" if diag["title"] else "")
    out = _wrap(f"{SEVERITY_GLYPH[diag['severity']]} {heading}", width, "")
    if diag["message"]:
        out += _wrap(diag["message"], width, "  ")
    if diag["lines"]:
        out += table(["where", "role", "code"],
                     [[ln["where"], ln["role"], ln["code"]] for ln in diag["lines"]],
                     width, shrink_first=(2,))
    if diag["fix"]:
        out += _wrap(f"Fix: {diag['fix']}", width, "  ")
    return out


def _wrap(text: str, width: int, indent: str) -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False) or [indent]


def _fit(line: str, width: int) -> str:
    return truncate(line.rstrip(), width)


# ---------------------------------------------------------------- tree

def _describe(node: dict[str, Any]) -> str:
    name = clean_text(node.get("name") or node.get("expr") or "")  # what the learner wrote
    kind = kind_text(node)
    parts = [f"{name}  {kind}" if name else kind, f"{format_shape(node.get('shape'))} "
             f"{clean_text(node.get('dtype') or '')}".strip()]
    if node.get("value") is not None:
        parts.append(preview(node["value"], 36))
    grad = as_value(node.get("grad"), node.get("shape"), node.get("dtype"))
    if grad is not None:
        parts.append("grad " + preview(grad, 28, prefix=""))
    parts.append(STATUS_GLYPH.get(node.get("status") or "unchecked", "?"))
    return "  ".join(parts)


def _tree(report: dict[str, Any], max_nodes: int) -> list[str]:
    """Outputs first, each node's inputs indented below it; shared nodes are shown once."""
    nodes = {n["id"]: n for n in report.get("nodes") or []}
    plan = fold_plan(report, max_nodes)
    groups = {g["id"]: g for g in plan["groups"] if g["folded"]}
    owner = {m: gid for gid, g in groups.items() for m in g["members"]}
    items = list(dict.fromkeys(owner.get(n, n) for n in nodes))
    inputs = _inputs(report, owner, set(items))
    used = {s for ins in inputs.values() for _, s in ins}
    roots = [i for i in items if i not in used] or items[:1]
    lines: list[str] = []
    seen: set[str] = set()
    chains = _module_chains(report, plan["groups"])
    stack = [(r, "", "", None) for r in reversed(roots)]
    while stack and len(lines) < MAX_TREE_LINES:
        item, lead, child_lead, parent = stack.pop()
        child_lead = "… " if len(child_lead) > MAX_INDENT else child_lead
        for heading in _entered(chains, item, parent):
            lines.append(lead + heading)
            lead = child_lead
        if item in seen:
            lines.append(f"{lead}{_short(item, nodes, groups)}  (shown above)")
            continue
        seen.add(item)
        group = groups.get(item)
        lines.append(lead + (f"[{group['label']}: {' → '.join(group['ops'][:4])}]" if group
                             else _describe(nodes[item])))
        kids = [s for _, s in sorted(inputs.get(item, []))]
        for j in range(len(kids) - 1, -1, -1):
            last = j == len(kids) - 1
            stack.append((kids[j], child_lead + ("└─ " if last else "├─ "),
                          child_lead + ("   " if last else "│  "), item))
    if len(items) > len(seen):
        lines.append(f"… {len(items) - len(seen)} more nodes not shown (see the HTML report)")
    for note in plan["notes"]:
        lines += _wrap(clean_text(note), 100, "")
    return lines


def _module_chains(report: dict[str, Any], loops: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Node id -> the module call groups holding it, outermost first (``{}`` without modules)."""
    chains: dict[str, list[dict[str, Any]]] = {}
    for group in module_groups(report, loops):  # parents come before their children
        for member in group["members"]:
            chains.setdefault(member, []).append(group)
    for chain in chains.values():
        chain.sort(key=lambda g: -len(g["members"]))
    return chains


def _entered(chains: dict[str, list[dict[str, Any]]], item: str, parent: str | None) -> list[str]:
    """Headings of the module calls that ``item`` is in and its parent in the tree is not."""
    outer = {g["id"] for g in chains.get(parent, [])} if parent else set()
    return [f"▸ {clean_text(g['label'])}  {_shape_list(g['inputs'])} → "
            f"{_shape_list(g['outputs'])}"
            for g in chains.get(item, []) if g["id"] not in outer]


def _shape_list(shapes: list[Any]) -> str:
    return ", ".join(format_shape(s) for s in shapes) if shapes else "–"


def _inputs(report: dict[str, Any], owner: dict[str, str],
            items: set[str]) -> dict[str, list[tuple[int, str]]]:
    """For each visible item, its (input number, source item) pairs; group-internal edges dropped."""
    inputs: dict[str, list[tuple[int, str]]] = {}
    for edge in report.get("edges") or []:
        s, t = owner.get(edge["source"], edge["source"]), owner.get(edge["target"], edge["target"])
        pair = (int(edge.get("input") or 0), s)
        if s != t and s in items and t in items and pair not in inputs.setdefault(t, []):
            inputs[t].append(pair)
    return inputs


def _short(item: str, nodes: dict[str, Any], groups: dict[str, Any]) -> str:
    return groups[item]["label"] if item in groups else node_name(nodes[item])


# ---------------------------------------------------------------- tables

def table(headers: list[str], rows: list[list[str]], width: int, indent: str = "  ",
          shrink_first: tuple[int, ...] = ()) -> list[str]:
    """Columns separated by two spaces; wide columns shrink (with …) to fit ``width``.

    Columns in ``shrink_first`` (such as source code) give way first, down to 16 columns.
    """
    cols = [max([display_width(h)] + [display_width(r[i]) for r in rows])
            for i, h in enumerate(headers)]
    room = width - len(indent) - 2 * (len(cols) - 1)
    while sum(cols) > room and max(cols) > 4:
        first = [i for i in shrink_first if cols[i] > 16]
        candidates = first or range(len(cols))
        widest = max(candidates, key=lambda i: (cols[i], -i))
        cols[widest] -= 1
    out = [indent + "  ".join(pad(truncate(h, c), c) for h, c in zip(headers, cols))]
    out.append(indent + "  ".join("─" * c for c in cols))
    for row in rows:
        out.append(indent + "  ".join(pad(truncate(cell, c), c) for cell, c in zip(row, cols)))
    return out


def _gradients(report: dict[str, Any], width: int) -> list[str]:
    rows = leaf_grad_rows(report)
    if not rows:
        return []
    body = [[r["name"], r["shape"], r["torch"], r["engine"], r["verdict"], r["err"]] for r in rows]
    return ["", "Gradients of the leaves (torch .grad vs gradmagic)"] + table(
        ["leaf", "shape", "torch .grad", "gradmagic", "check", "max |Δ|"], body, width)


def _flow(report: dict[str, Any], width: int) -> list[str]:
    """The gradient-flow table (layer, last norm, mean, max, trend) and its hints."""
    facts = flow_facts(report)
    if facts is None:
        return []
    out = ["", facts["title"]] + _wrap(facts["sub"][0].upper() + facts["sub"][1:] + ".", width, "  ")
    out += table(["layer", "kind", "‖grad‖ last", "mean |g|", "max |g|", "trend"],
                 [[lay["name"], lay["type"] or lay["kind"], lay["last_norm"], lay["last_mean"],
                   lay["last_max"], lay["trend"]] for lay in facts["layers"]], width)
    for hint in facts["hints"]:
        out += _wrap(f"⚠ {hint['title']}: {hint['text']}", width, "  ")
    if facts["activations"]:
        out += ["", facts["activations_title"]] + table(
            ["module", "kind", "shape", "mean", "std", "zeros"],
            [[a["module"], a["type"], a["shape"], a["mean"], a["std"], a["zeros"]] for a in facts["activations"]],
            width)
    return out


def _histories(report: dict[str, Any], width: int) -> list[str]:
    out: list[str] = []
    for leaf in report.get("leaves") or []:
        rows = event_rows(leaf)
        if not rows:
            continue
        name = clean_text(leaf.get("name") or leaf.get("id"))
        out += ["", f"Accumulation history of {name}.grad"]
        if leaf.get("events_dropped"):
            out.append(f"  ({leaf['events_dropped']} earlier events not kept)")
        shown = rows[-MAX_EVENTS:]
        if len(rows) > len(shown):
            out.append(f"  ({len(rows) - len(shown)} earlier events not shown)")
        out += table(["event", "where", "code", ".grad before → after"],
                     [[r["event"], r["where"], r["code"], r["change"]] for r in shown], width,
                     shrink_first=(2,))
        if leaf.get("accumulated_without_clearing"):
            out += _wrap(f"⚠ {name}.grad {CLEARING_HINT}.", width, "  ")
    return out + _updates(report, width)


def _updates(report: dict[str, Any], width: int) -> list[str]:
    """Each leaf's value updates (optimizer steps, edits under no_grad): a table of their own."""
    out: list[str] = []
    for leaf in report.get("leaves") or []:
        rows = event_rows(leaf, updates=True)
        if not rows:
            continue
        name = clean_text(leaf.get("name") or leaf.get("id"))
        shown = rows[-MAX_EVENTS:]
        out += ["", f"Updates of {name} (its value, not its .grad)"]
        if len(rows) > len(shown):
            out.append(f"  ({len(rows) - len(shown)} earlier updates not shown)")
        out += table(["event", "where", "code", "value before → after", "step Δ"],
                     [[r["event"], r["where"], r["code"], r["change"], r["step"]] for r in shown], width,
                     shrink_first=(2,))
    return out


def _calls(report: dict[str, Any], width: int) -> list[str]:
    rows = call_rows(report)
    if not rows:
        return []
    return ["", "Backward calls"] + table(
        ["#", "call", "where", "code", "root", "check"],
        [[r["index"], r["kind"], r["where"], r["code"], r["root"], r["verdict"]] for r in rows],
        width, shrink_first=(3,))


def _saved(report: dict[str, Any], width: int) -> list[str]:
    summary = saved_summary(report)
    if not summary["count"]:
        return []
    rows = [[r["node"], r["saved"], r["bytes"]] for r in summary["rows"][:10]]
    out = [""] + _wrap(summary["sentence"], width, "")
    out += table(["node", "saved tensors", "bytes"], rows, width)
    if len(summary["rows"]) > 10:
        out.append(f"  … and {len(summary['rows']) - 10} more nodes")
    return out
