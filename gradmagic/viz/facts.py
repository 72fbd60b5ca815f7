"""The facts every view states about a report, as plain strings: one source for text and HTML.

Nothing here formats for a medium: the text view lays these out as tables, the HTML view
as ``<table>``s. Strings come back cleaned (visible control characters) but not escaped.

>>> rep = {"ok": True, "checks": [{"node": "n0", "what": "grad", "status": "agree"}]}
>>> verdict(rep)["headline"]
'✓ gradmagic agrees with PyTorch: 1 gradient checked.'
"""
from __future__ import annotations

import math
from typing import Any

from gradmagic.viz.escape import clean_text
from gradmagic.viz.fmt import (as_value, format_bytes, format_err, format_number, format_shape,
                               format_source, format_stats, preview, status_text)

SAVED_HINT = "the forward pass stores intermediates so backward can use them"
CLEARING_HINT = ("accumulated over several backward calls without clearing: PyTorch adds each "
                 "backward's gradient to .grad, so call .grad.zero_() (or optimizer.zero_grad()) "
                 "between backward passes")
EVENT_WORD = {"created": "created", "backward": "backward", "zero_": "zero_()",
              "set_none": "set to None", "set": "assigned", "update": "updated"}


def node_index(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in report.get("nodes") or []}


def node_name(node: dict[str, Any] | None) -> str:
    """``y`` or ``y (MulBackward0)``, else the op label: how the views name a node in prose."""
    if not node:
        return "?"
    # what the learner wrote comes first: the variable, else the expression (viz.exprs)
    name = node.get("name") or node.get("expr")
    label = node.get("label") or node.get("torch_op") or node.get("kind")
    if name and label and node.get("kind") in ("op", "opaque"):
        return clean_text(f"{name} ({label})")
    return clean_text(name or label or node.get("id") or "?")


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """``{"level": ok|differ|unchecked|error, "headline": str, "details": [str, ...]}``.

    The headline says how much was checked; unchecked is never shown as agreeing.

    >>> cov = {"values": {"checked": 12, "unchecked": 3}, "grads": {"checked": 3, "unchecked": 1},
    ...        "too_large": 1}
    >>> verdict({"ok": True, "coverage": cov})["headline"]
    '✓ gradmagic agrees with PyTorch: 12 of 15 values and 3 of 4 gradients checked; 1 tensor too large to mirror.'
    >>> verdict({"ok": False, "coverage": {"values": {"checked": 0, "unchecked": 2}}})["level"]
    'unchecked'
    """
    cov = report.get("coverage") or _coverage_of_checks(report.get("checks") or [])
    parts = []
    checked_any = unchecked_any = 0
    for kind, word in (("values", "value"), ("grads", "gradient")):
        c = cov.get(kind) or {}
        done, left = int(c.get("checked", 0)), int(c.get("unchecked", 0))
        checked_any += done
        unchecked_any += left
        if done or left:
            parts.append(f"{done} of {_count(done + left, word)}" if left else _count(done, word))
    counted = " and ".join(parts) + " checked" if parts else ""
    large = int(cov.get("too_large") or 0)
    if large:
        counted += f"; {_count(large, 'tensor')} too large to mirror"
    sampled = (report.get("checking") or {}).get("skipped") and report["checking"].get("summary")
    if sampled and counted:  # check="sample": which backward calls ran in lockstep
        counted += f" in {clean_text(sampled)}"
    mismatches = report.get("mismatches") or []
    unsupported = report.get("unsupported") or []
    details: list[str] = []  # the user's error comes first
    # differences of earlier calls whose nodes are summarised, not drawn, count all the same
    differ = sum(int((cov.get(kind) or {}).get("differ", 0)) for kind in ("values", "grads"))
    if mismatches:
        level = "differ"
        headline = f"✗ {_count(len(mismatches), 'mismatch', 'mismatches')} between gradmagic " \
                   "and PyTorch."
    elif differ:
        level = "differ"
        headline = f"✗ {_count(differ, 'mismatch', 'mismatches')} between gradmagic and PyTorch, " \
                   "in earlier backward calls whose nodes are summarised, not drawn."
    elif unchecked_any and not checked_any:
        level = "unchecked"
        headline = f"? Nothing could be checked ({counted})."
    elif unsupported:
        level = "unchecked"
        headline = f"? Checked what could be checked ({counted or 'nothing'}); " \
                   f"{_count(len(unsupported), 'operation')} had no gradmagic rule."
    elif not counted:
        level = "ok"
        headline = "· Nothing to cross-check: no value or gradient was computed here."
    else:
        level = "ok"
        headline = f"✓ gradmagic agrees with PyTorch: {counted}."
    error = report.get("error")
    if error:
        details.append(f"The cell raised {clean_text(error.get('type'))}: "
                       f"{clean_text(error.get('message'))}")
        level = "error" if level == "ok" else level
    return {"level": level, "headline": headline, "details": details + _divergence(report)}


def _coverage_of_checks(checks: list) -> dict[str, Any]:
    """Coverage counted from the listed checks (reports made before ``coverage`` existed)."""
    out: dict[str, Any] = {}
    for kind, whats in (("values", ("value",)), ("grads", ("grad", "gradcheck"))):
        mine = [c for c in checks if c.get("what") in whats]
        left = sum(c.get("status") == "unchecked" for c in mine)
        out[kind] = {"checked": len(mine) - left, "unchecked": left}
    return out


def _divergence(report: dict[str, Any]) -> list[str]:
    """Sentences about the first divergent node, each mismatch, unchecked ops and notes."""
    nodes, details = node_index(report), []
    first = report.get("first_divergence")
    if first:
        src = (nodes.get(first) or {}).get("source") or {}
        code = clean_text(src.get("code") or "")
        where = f", line {src['line']}: {code}" if src.get("line") else ""
        details.append(f"First divergent node: {node_name(nodes.get(first))}{where}")
    for check in (report.get("mismatches") or [])[:5]:
        detail = clean_text(check.get("detail") or "")
        details.append(f"{check.get('what')} of {node_name(nodes.get(check.get('node')))} "
                       f"differs: max |Δ| {format_err(check.get('max_abs_err'))}"
                       + (f" ({detail})" if detail else ""))
    unsupported = report.get("unsupported") or []
    if unsupported:
        names = ", ".join(clean_text(u) for u in unsupported)
        details.append(f"Unchecked (no gradmagic rule): {names}")
    return details + [clean_text(n) for n in report.get("notes") or []]


def leaf_grad_rows(report: dict[str, Any], max_chars: int = 40) -> list[dict[str, str]]:
    """One row per leaf: name, shape, torch's .grad, gradmagic's, verdict, max error."""
    nodes = node_index(report)
    errors = {c.get("node"): c.get("max_abs_err") for c in report.get("checks") or []
              if c.get("what") == "grad"}
    rows = []
    for leaf in report.get("leaves") or []:
        node = nodes.get(leaf.get("id")) or {}
        status = leaf.get("status") or "unchecked"
        err = errors.get(leaf.get("id"), node.get("max_abs_err"))
        rows.append({
            "id": str(leaf.get("id")), "name": clean_text(leaf.get("name") or leaf.get("id")),
            "shape": format_shape(leaf.get("shape")), "dtype": clean_text(leaf.get("dtype") or ""),
            "torch": _grad_text(leaf.get("grad"), leaf, max_chars),
            # (unchecked with no engine gradient: torch's changed after the last checked call)
            "engine": "—" if status == "unchecked" and leaf.get("engine_grad") is None and leaf.get("grad")
            else _grad_text(leaf.get("engine_grad"), leaf, max_chars),
            "status": status,
            "verdict": status_text(status),
            "err": format_err(err) if status != "unchecked" else "—",
        })
    return rows


def _grad_text(grad: Any, leaf: dict[str, Any], max_chars: int) -> str:
    value = as_value(grad, leaf.get("shape"), leaf.get("dtype"))
    if value is None:
        return "None"
    stats = format_stats(value) if value.get("data") is None else ""
    return preview(value, max_chars, prefix="") + (f" ({stats})" if stats else "")


def event_rows(leaf: dict[str, Any], max_chars: int = 30, updates: bool = False) -> list[dict[str, str]]:
    """The accumulation history of one leaf's ``.grad``: event, where, code, ``before → after``.
    ``updates=True``: the changes of its *value* instead (optimizer steps, in-place updates
    under ``no_grad``), each with its ``step`` Δ; never mixed into the ``.grad`` history.

    >>> leaf = {"events": [{"kind": "backward", "line": 3, "code": "loss.backward()",
    ...                     "before": None, "after": {"shape": [], "numel": 1, "data": 2.0}},
    ...                    {"kind": "update", "line": 4, "code": "opt.step()",
    ...                     "before": {"shape": [], "numel": 1, "data": 1.0},
    ...                     "after": {"shape": [], "numel": 1, "data": 0.8},
    ...                     "added": {"shape": [], "numel": 1, "data": -0.2}}]}
    >>> [r["change"] for r in event_rows(leaf)], [r["step"] for r in event_rows(leaf, updates=True)]
    (['None → 2.'], ['-0.2000'])
    """
    rows = []
    for event in leaf.get("events") or []:
        kind = event.get("kind") or "?"
        if (kind == "update") != updates:
            continue
        where = ", ".join(p for p in (
            f"cell {event['cell']}" if event.get("cell") is not None else "",
            f"line {event['line']}" if event.get("line") is not None else "") if p)
        before = preview(event.get("before"), max_chars, prefix="")
        after = preview(event.get("after"), max_chars, prefix="")
        added = f" (+{preview(event['added'], max_chars, prefix='')})" if event.get("added") \
            and kind == "backward" and event.get("before") else ""
        step = preview(event.get("added"), max_chars, prefix="") if updates and event.get("added") else ""
        rows.append({"event": EVENT_WORD.get(kind, clean_text(kind)), "kind": clean_text(kind),
                     "where": where or "—", "code": clean_text(event.get("code") or ""),
                     "change": f"{before} → {after}{added}", "step": step})
    return rows


def saved_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Totals of what the forward pass saved for backward, and the nodes that saved most."""
    rows = []
    for node in report.get("nodes") or []:
        saved = node.get("saved") or []
        if saved:
            items = ", ".join(f"{clean_text(s.get('name'))} {format_shape(s.get('shape'))}"
                              for s in saved)
            rows.append((int(node.get("saved_bytes") or 0), node_name(node), items))
    rows.sort(key=lambda r: -r[0])
    total = sum(r[0] for r in rows)
    count = sum(len(n.get("saved") or []) for n in report.get("nodes") or [])
    sentence = (f"Saved for backward: {_count(count, 'tensor')}, {format_bytes(total)} in all — "
                f"{SAVED_HINT}.")
    return {"sentence": sentence, "total": total, "count": count,
            "rows": [{"node": n, "saved": s, "bytes": format_bytes(b)} for b, n, s in rows]}


def call_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """One row per backward call: what was called, where, from which root, its verdict."""
    nodes = node_index(report)
    rows = []
    for call in report.get("backward_calls") or []:
        src = call.get("source") or {}
        status = call.get("status") or "unchecked"
        rows.append({"index": str(call.get("index")),
                     "kind": "backward()" if call.get("kind") == "backward" else "autograd.grad()",
                     "where": f"line {src['line']}" if src.get("line") is not None else "—",
                     "code": clean_text(src.get("code") or ""),
                     "root": root_text(report, call, nodes),
                     "verdict": status_text(status)})
    return rows


def root_text(report: dict[str, Any], call: dict[str, Any], nodes: dict[str, Any]) -> str:
    """A backward call's root as the call list names it: the node when it is drawn, the
    iteration that holds it when a training loop shows another one, else "not drawn" (the
    graph of an earlier call, summarised) — never a bare "?", which reads as "unchecked".

    >>> report = {"iterations": {"items": [{"index": 0, "number": 4, "calls": [0]}]}}
    >>> root_text(report, {"index": 0, "root": "n3"}, {}), root_text(report, {"index": 1, "root": None}, {})
    ('in iteration 4', '— not drawn')
    """
    node = nodes.get(call.get("root"))
    if node:
        return node_name(node)
    for item in (report.get("iterations") or {}).get("items") or []:
        if call.get("index") in item.get("calls") or ():
            return f"in iteration {item.get('number')}"
    return "— not drawn"


# ---------------------------------------------------------------- diagnoses

#: the heading of a diagnosis of severity "error" (a warning's heading is its title)
FAILED_HEADING = "Why it failed"
SEVERITY_GLYPH = {"error": "✗", "warning": "⚠"}


def diagnosis_heading(diagnosis: dict[str, Any]) -> str:
    """``Why it failed`` for an error; a warning is headed by its own title.

    >>> diagnosis_heading({"severity": "error", "title": "b was modified in place"})
    'Why it failed'
    >>> diagnosis_heading({"severity": "warning", "title": "Why is h.grad None?"})
    'Why is h.grad None?'
    """
    if (diagnosis.get("severity") or "error") == "error":
        return FAILED_HEADING
    return clean_text(diagnosis.get("title") or "")


def _line_where(line: dict[str, Any], cell: Any) -> str:
    """``line 2``; ``cell 3, line 2`` when the line is in another cell than the report's."""
    other = line.get("cell") is not None and line.get("cell") != cell
    return format_source({"cell": line.get("cell") if other else None,
                          "line": line.get("line")}) or format_source(line) or "—"


def diagnosis_facts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's diagnoses in their order (most important first), as the views state
    them: ``kind``, ``severity``, ``heading``, ``title`` (``""`` when the heading is the
    title), ``message``, ``fix``, ``nodes`` and ``lines`` (each ``where``, ``role``, ``code``,
    ``line``), every string cleaned. ``[]`` when the report has none.

    >>> rep = {"cell": {"number": 3}, "diagnoses": [{"kind": "inplace_saved", "severity": "error",
    ...        "title": "b was modified in place", "message": "m", "fix": "write b = b * 2",
    ...        "lines": [{"cell": 3, "line": 1, "code": "b = a.sigmoid()", "role": "saved by"},
    ...                  {"cell": 4, "line": 1, "code": "b.mul_(2)", "role": "modified in place"}],
    ...        "nodes": ["n2"]}]}
    >>> [d] = diagnosis_facts(rep)
    >>> d["heading"], d["title"], [ln["where"] for ln in d["lines"]]
    ('Why it failed', 'b was modified in place', ['line 1', 'cell 4, line 1'])
    """
    cell = (report.get("cell") or {}).get("number")
    out = []
    for diag in report.get("diagnoses") or []:
        heading = diagnosis_heading(diag)
        title = clean_text(diag.get("title") or "")
        out.append({
            "kind": clean_text(diag.get("kind") or ""),
            "severity": "warning" if diag.get("severity") == "warning" else "error",
            "heading": heading, "title": "" if title == heading else title,
            "message": clean_text(diag.get("message") or ""),
            "fix": clean_text(diag.get("fix") or ""),
            "nodes": [str(n) for n in diag.get("nodes") or []],
            "lines": [{"where": _line_where(ln, cell), "role": clean_text(ln.get("role") or ""),
                       "code": clean_text(ln.get("code") or ""), "line": ln.get("line")}
                      for ln in diag.get("lines") or []],
        })
    return out


def diagnosed_nodes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Node id → the first (most important) diagnosis that names it.

    >>> marks = diagnosed_nodes({"diagnoses": [{"kind": "grad_none", "nodes": ["n1"]},
    ...                                        {"kind": "zero_grad", "nodes": ["n1", "n2"]}]})
    >>> {nid: d["kind"] for nid, d in marks.items()}
    {'n1': 'grad_none', 'n2': 'zero_grad'}
    """
    marks: dict[str, dict[str, Any]] = {}
    for diag in report.get("diagnoses") or []:
        for nid in diag.get("nodes") or []:
            marks.setdefault(str(nid), diag)
    return marks


# ---------------------------------------------------------------- gradient flow

#: d2l's lesson (section "Numerical Stability and Initialization"), named in every flow hint
D2L_SECTION = "d2l §5.4 Numerical Stability and Initialization"
VANISH_RATIO = 1e-6  # a layer's norm below this × the largest layer's: vanishing
EXPLODE_RATIO = 1e3  # above this × the smallest nonzero layer's: exploding
EXPLODE_GROWTH = 10.0  # growing by more than this per call over the last calls: exploding
GROWTH_CALLS = 3  # ... over this many calls


def _num(x: Any) -> float | None:
    """A series entry as a float (``"nan"``/``"inf"`` strings included), None when absent."""
    if x is None:
        return None
    if isinstance(x, str):
        return float(x) if x in ("nan", "inf", "-inf") else None
    return float(x)


def _trend(norms: list[float | None]) -> str:
    """``↑ ×12``, ``↓ ×0.01``, ``steady`` (last vs first call) or ``—`` for one call."""
    vals = [v for v in norms if v is not None]
    if len(vals) < 2:
        return "—"
    first, last = vals[0], vals[-1]
    if not (math.isfinite(first) and math.isfinite(last)):
        return "non-finite"
    if first == 0:
        return "steady" if last == 0 else "↑ from 0"
    r = last / first
    if r > 2:
        return f"↑ ×{_fmt_num(r)}"
    if r < 0.5:
        return f"↓ ×{_fmt_num(r)}"
    return "steady"


def flow_facts(report: dict[str, Any]) -> dict[str, Any] | None:
    """The gradient-flow panel of ``report["grad_flow"]``, or None when a view shows none.

    Shown when a hint fires, when the block ran three or more backward calls (a training
    loop), or when two or more layers got gradients over two or more calls or one of them is
    a module; a toy cell — one or two backward calls over plain tensors, as the seed and demo
    notebooks' accumulation lessons — keeps its views as they were (its .grad history says it). ``layers`` holds
    each layer's series (``calls``, ``norm``, ``mean``, ``max`` as floats or None) and its
    last values as text; ``hints`` the vanishing / exploding sentences.

    >>> flow = {"calls": 1, "layers": [
    ...     {"name": "net.0", "kind": "module", "type": "Linear", "calls": [0], "norm": [1e-9],
    ...      "mean": [1e-10], "max": [1e-9]},
    ...     {"name": "net.2", "kind": "module", "type": "Linear", "calls": [0], "norm": [0.5],
    ...      "mean": [0.1], "max": [0.4]}]}
    >>> f = flow_facts({"grad_flow": flow})
    >>> [h["kind"] for h in f["hints"]], f["layers"][0]["last_norm"]
    (['vanishing'], '1e-09')
    """
    flow = report.get("grad_flow") or {}
    layers = []
    for lay in flow.get("layers") or []:
        norm = [_num(v) for v in lay.get("norm") or []]
        if not norm:
            continue
        mean, top = [_num(v) for v in lay.get("mean") or []], [_num(v) for v in lay.get("max") or []]
        layers.append({"name": clean_text(lay.get("name") or "?"), "type": clean_text(lay.get("type") or ""),
                       "kind": lay.get("kind") or "parameter", "calls": list(lay.get("calls") or []),
                       "norm": norm, "mean": mean, "max": top,
                       "last_norm": _fmt_num(norm[-1]), "last_mean": _fmt_num(mean[-1] if mean else None),
                       "last_max": _fmt_num(top[-1] if top else None), "trend": _trend(norm)})
    if not layers:
        return None
    hints = flow_hints(layers)
    calls = int(flow.get("calls") or 1)
    modular = any(lay["kind"] == "module" for lay in layers)
    if not (hints or calls >= 3 or (len(layers) >= 2 and (calls >= 2 or modular))):
        return None
    sub = (f"the L2 norm of each layer's .grad after each of {_count(calls, 'backward call')}"
           if calls > 1 else "the L2 norm of each layer's .grad after the backward call")
    if flow.get("thinned"):
        sub += f" (evenly thinned to at most {flow.get('max_points')} points per layer)"
    if modular:
        sub += "; a module's parameters count together"
    checking = report.get("checking") or {}
    if checking.get("skipped"):
        sub += "; calls run at full speed are measured at every call up to 32, then 16 per doubling"
    loss = [(c, _num(v)) for c, v in zip((checking.get("loss") or {}).get("calls") or [],
                                         (checking.get("loss") or {}).get("values") or [])]
    if len(loss) >= 2:
        sub += (f"; loss {_fmt_num(loss[0][1])} at call {loss[0][0] + 1} → "
                f"{_fmt_num(loss[-1][1])} at call {loss[-1][0] + 1}")
    acts = [{"module": clean_text(a.get("module") or "?"), "type": clean_text(a.get("type") or ""),
             "shape": format_shape(a.get("shape")), "mean": _fmt_num(_num(a.get("mean"))),
             "std": _fmt_num(_num(a.get("std"))), "zeros": f"{100 * float(a.get('zeros') or 0):.0f}%"}
            for a in flow.get("activations") or []]
    return {"title": "Gradient flow", "sub": sub, "activations": acts,
            "activations_title": "Activations: the output of each module's last call",
            "calls": calls, "layers": layers, "hints": hints}


def _fmt_num(x: float | None) -> str:
    """Three significant digits: ``1.36``, ``0.00237``, ``1e-09``, ``inf``."""
    if x is None:
        return "—"
    return format_number(x) if not math.isfinite(x) else f"{x:.3g}"


def flow_hints(layers: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Vanishing and exploding gradients, worded as d2l teaches them (at most one of each)."""
    bad = next((lay for lay in layers if any(v is not None and not math.isfinite(v) for v in lay["norm"])), None)
    last = [(lay["name"], lay["norm"][-1]) for lay in layers
            if lay["norm"][-1] is not None and math.isfinite(lay["norm"][-1])]
    hints = [] if bad is not None else _vanishing(last)
    exploding = _exploding(layers, last, bad, bool(hints))
    return hints + ([exploding] if exploding else [])


def _spread(last: list[tuple[str, float]]) -> tuple | None:
    """(smallest nonzero layer, largest layer, True when the smallest lies nearer the input)
    when the largest last norm is more than ``EXPLODE_RATIO``× the smallest, else None.
    ``last`` is in the layers' order (their first use: input first in a Sequential)."""
    nonzero = [(i, p) for i, p in enumerate(last) if p[1] > 0]
    if not nonzero:
        return None
    lo = min(nonzero, key=lambda ip: ip[1][1])
    hi = max(nonzero, key=lambda ip: ip[1][1])
    if hi[1][1] <= EXPLODE_RATIO * lo[1][1]:
        return None
    return lo[1], hi[1], lo[0] < hi[0]


def _vanishing(last: list[tuple[str, float]]) -> list[dict[str, str]]:
    """The vanishing hint from each layer's last norm, or ``[]``: a layer below a millionth
    of the largest, every gradient zero, or gradients that shrink more than
    ``EXPLODE_RATIO``× from the output side back toward the input (d2l's sigmoid case)."""
    big = max(last, key=lambda p: p[1], default=None)
    if big is None:
        return []
    low = [p for p in last if big[1] > 0 and p[1] < VANISH_RATIO * big[1]]
    spread = _spread(last)
    if low:
        who = ", ".join(p[0] for p in low[:3]) + (f" and {len(low) - 3} more" if len(low) > 3 else "")
        what = (f"The gradient norm of {who} {'is' if len(low) == 1 else 'are'} less than a "
                f"millionth of {big[0]}'s ({_fmt_num(big[1])}); {low[0][0]}'s is "
                f"{'zero' if low[0][1] == 0 else _fmt_num(low[0][1])}")
    elif big[1] == 0:
        what = "Every layer's gradient is exactly zero"
    elif spread is not None and spread[2]:
        small, big = spread[0], spread[1]
        what = (f"{small[0]}'s gradient ({_fmt_num(small[1])}) is less than 1/{EXPLODE_RATIO:g} of "
                f"{big[0]}'s ({_fmt_num(big[1])}), which lies nearer the output: the gradient shrinks "
                f"as it flows back toward the input")
    else:
        return []
    return [{"kind": "vanishing", "title": "Vanishing gradients", "text": (
        f"{what}: those parameters barely learn. Backpropagation multiplies one local derivative "
        f"per layer, and a product of many small factors vanishes — a saturated sigmoid's "
        f"derivative is at most 0.25. Use ReLU instead of sigmoid/tanh, initialize the weights "
        f"with Xavier/He scaling (nn.init.xavier_uniform_), or add normalization ({D2L_SECTION}).")}]


def _exploding(layers: list[dict[str, Any]], last: list[tuple[str, float]], bad: Any,
               vanished: bool) -> dict[str, str] | None:
    """The exploding hint: a non-finite norm, a fast-growing layer, or (when nothing vanished)
    a layer nearer the input far larger than the smallest nonzero one nearer the output (the
    gradient grows as it flows back); else None. The reverse order is vanishing."""
    growth = next((lay for lay in layers if _grows(lay["norm"])), None)
    spread = _spread(last)
    if bad is not None:
        why = f"{bad['name']}'s gradient became non-finite (inf or NaN)"
    elif growth is not None:
        why = (f"{growth['name']}'s gradient grew more than {EXPLODE_GROWTH:g}× per backward call "
               f"over the last {GROWTH_CALLS} calls")
    elif not vanished and spread is not None and not spread[2]:
        small, big = spread[0], spread[1]
        why = (f"{big[0]}'s gradient ({_fmt_num(big[1])}) is more than {EXPLODE_RATIO:g}× "
               f"{small[0]}'s ({_fmt_num(small[1])}), which lies nearer the output: the gradient "
               f"grows as it flows back toward the input")
    else:
        return None
    return {"kind": "exploding", "title": "Exploding gradients", "text": (
        f"{why}. A product of many large factors explodes, and a learning rate too large makes "
        f"every step overshoot so the loss and the gradients grow each iteration. Lower the learning "
        f"rate, initialize with smaller weights (Xavier/He scaling), or clip the gradient norm "
        f"(torch.nn.utils.clip_grad_norm_) ({D2L_SECTION}).")}


def _grows(norms: list[float | None]) -> bool:
    """The last ``GROWTH_CALLS`` norms each grew more than ``EXPLODE_GROWTH``× on the one before."""
    tail = norms[-GROWTH_CALLS - 1:]
    if len(tail) < GROWTH_CALLS + 1 or any(v is None or not math.isfinite(v) for v in tail):
        return False
    return all(a > 0 and b > EXPLODE_GROWTH * a for a, b in zip(tail, tail[1:]))
