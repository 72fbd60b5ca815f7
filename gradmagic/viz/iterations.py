"""Training loops: one iteration at a time, never N copies side by side (issue 13 item 3).

A training loop leaves a run of identical iterations in the report (the same ops from the
same lines, each ending in a ``backward()``). :func:`iteration_plan` finds that run once;
:func:`view_report` turns the report into the report of one iteration (the last checked one
by default): its ops, the inputs only it used, and everything outside the loop (parameters,
data made before the loop), with an ``"iterations"`` entry that every view reads — the text
report's note, the static HTML's note, the widget's selector ("iteration 3 of 300").

Ops are matched by :func:`gradmagic.viz.fold.find_groups` (tandem repeats of kind, op label and
source line). Only op nodes are compared: a parameter or a batch made before the loop first
appears inside the first iteration, so leaves and constants join the iteration whose ops alone
use them, and are shared (shown in every iteration) otherwise.

>>> nodes = [{"id": "w", "kind": "leaf"}]
>>> for i in range(3):
...     nodes += [{"id": f"m{i}", "kind": "op", "label": "MulBackward0", "source": {"line": 3}},
...               {"id": f"s{i}", "kind": "op", "label": "SumBackward0", "source": {"line": 3}}]
>>> edges = [{"source": "w", "target": f"m{i}", "input": 0} for i in range(3)]
>>> edges += [{"source": f"m{i}", "target": f"s{i}", "input": 0} for i in range(3)]
>>> calls = [{"index": i, "root": f"s{i}", "steps": []} for i in range(3)]
>>> rep = {"nodes": nodes, "edges": edges, "backward_calls": calls}
>>> view = view_report(rep)
>>> [n["id"] for n in view["nodes"]], view["iterations"]["label"]
(['w', 'm2', 's2'], 'iteration 3 of 3')
>>> [n["id"] for n in view_report(rep, iteration=0)["nodes"]]
['w', 'm0', 's0']
"""
from __future__ import annotations

from typing import Any

from gradmagic.viz.exprs import node_exprs
from gradmagic.viz.fold import find_groups

__all__ = ["iteration_plan", "view_report", "iteration_of_calls", "start_call"]

_OP_KINDS = ("op", "opaque")


def iteration_plan(report: dict[str, Any]) -> dict[str, Any] | None:
    """The loop's iterations (node ids and backward calls of each), or None without a loop.

    A loop counts when at least two iterations each hold the root of the same number (≥ 1)
    of backward calls: a repeated forward alone (``y = y * 2`` in a loop) is folded by the
    layout when the graph is large, not split into iterations.
    """
    calls = report.get("backward_calls") or []
    if sum(1 for c in calls if c.get("root")) < 2:
        return None
    nodes = report.get("nodes") or []
    ops = [nd for nd in nodes if nd.get("kind") in _OP_KINDS]
    best = None
    for group in find_groups(ops, min_nodes=2):
        plan = _plan(report, ops, group)
        if plan and (best is None or len(group["members"]) > best[0]):
            best = (len(group["members"]), plan)
    return best[1] if best else None


def _plan(report: dict[str, Any], ops: list[dict[str, Any]],
          group: dict[str, Any]) -> dict[str, Any] | None:
    period, count = group["period"], group["count"]
    members = group["members"]
    iteration_of = {nid: k // period for k, nid in enumerate(members)}
    roots: list[list[int]] = [[] for _ in range(count)]
    for call in report.get("backward_calls") or []:
        k = iteration_of.get(call.get("root"))
        if k is not None:
            roots[k].append(int(call.get("index", 0)))
    per = {len(r) for r in roots}
    if len(per) != 1 or 0 in per:
        return None
    _assign_inputs(report, iteration_of)
    items = [[] for _ in range(count)]
    for nd in report.get("nodes") or []:
        k = iteration_of.get(nd["id"])
        if k is not None:
            items[k].append(nd["id"])
    lines = sorted({(nd.get("source") or {}).get("line") for nd in report.get("nodes") or []
                    if nd["id"] in iteration_of} - {None})
    c = per.pop()
    calls = report.get("backward_calls") or []

    def number(k: int) -> int:
        """Iteration ``k``'s number in the loop, from its first backward call's number among all
        of the block's calls (with ``check="sample"`` the kept iterations are not consecutive)."""
        i = roots[k][0]
        return (int(calls[i].get("call", i)) if i < len(calls) else i) // c + 1
    before = number(0) - 1  # iterations summarised or run at full speed before the first kept one
    total = max(number(count - 1), int((report.get("checking") or {}).get("calls") or 0) // c)
    iterations = []
    for k in range(count):
        kept = [i for i in roots[k] if i < len(calls)]
        checked = all(calls[i].get("steps") is not None and calls[i].get("status") != "unchecked"
                      for i in kept)
        iterations.append({"index": k, "number": number(k), "nodes": items[k],
                           "calls": roots[k], "checked": checked,
                           "label": f"iteration {number(k)} of {total}"})
    checked = [it["index"] for it in iterations if it["checked"]]
    return {"count": count, "total": total, "kept_from": before + 1, "lines": lines,
            "kept": _numbers([it["number"] for it in iterations]),
            "default": checked[-1] if checked else count - 1, "iterations": iterations}


def _assign_inputs(report: dict[str, Any], iteration_of: dict[str, int]) -> None:
    """Leaves and constants used by the ops of one iteration only join that iteration."""
    users: dict[str, set[int]] = {}
    for edge in report.get("edges") or []:
        k = iteration_of.get(edge["target"])
        users.setdefault(edge["source"], set()).add(-1 if k is None else k)
    for nd in report.get("nodes") or []:
        if nd["id"] in iteration_of or nd.get("kind") in _OP_KINDS:
            continue
        used = users.get(nd["id"], set())
        if len(used) == 1 and -1 not in used:
            iteration_of[nd["id"]] = next(iter(used))


def view_report(report: dict[str, Any], iteration: int | None = None) -> dict[str, Any]:
    """``report`` as the views show it: one iteration of a training loop (``None``: the plan's
    default, the last checked one), without ``.grad`` reads that float unused in the graph.

    The result carries ``"iterations"`` (the plan, without node lists, plus ``shown`` and
    ``label``) when the report has a loop; a report that already carries it is returned as is.
    Node and backward-call ids are unchanged, so ``events[].call`` and ``grad_flow`` stay valid.
    """
    if "iterations" in report:
        return report
    out = _with_exprs(_without_grad_reads(report))
    plan = iteration_plan(out)
    if plan is None:
        out["iterations"] = None
        first = next((c.get("index", i) for i, c in enumerate(out.get("backward_calls") or [])), None)
        if first is not None:
            _forward_values(out, first)
        return out
    shown = plan["default"] if iteration is None else max(0, min(int(iteration), plan["count"] - 1))
    hide = {nid for it in plan["iterations"] if it["index"] != shown for nid in it["nodes"]}
    out = _drop_nodes(out, hide)
    calls = plan["iterations"][shown]["calls"]
    if calls:
        _forward_values(out, calls[0])
    out["iterations"] = {
        **{k: v for k, v in plan.items() if k != "iterations"},
        "shown": shown, "label": plan["iterations"][shown]["label"],
        "items": [{k: v for k, v in it.items() if k != "nodes"} for it in plan["iterations"]],
    }
    return out


def _forward_values(report: dict[str, Any], call: int) -> None:
    """A leaf updated after backward call ``call`` (``opt.step()``) shows the value the
    forward pass used; the value after the update moves to ``value_after`` (its details)."""
    used: dict[str, dict[str, Any]] = {}
    for leaf in report.get("leaves") or []:
        events = leaf.get("events") or []
        at = next((k for k, ev in enumerate(events)
                   if ev.get("kind") == "backward" and ev.get("call") == call), None)
        if at is None:
            continue
        update = next((ev for ev in events[at + 1:] if ev.get("kind") == "update"), None)
        if update and update.get("before") is not None:
            used[leaf["id"]] = update["before"]
    if used:
        report["nodes"] = [{**nd, "value": used[nd["id"]], "value_after": nd.get("value")}
                           if nd["id"] in used else nd for nd in report.get("nodes") or []]


def _with_exprs(report: dict[str, Any]) -> dict[str, Any]:
    """Each unnamed node gets ``expr``, what the learner wrote for it (its box's title)."""
    exprs = node_exprs(report)
    if exprs:
        report["nodes"] = [{**nd, "expr": exprs[nd["id"]]} if nd["id"] in exprs else nd
                           for nd in report.get("nodes") or []]
    return report


def _without_grad_reads(report: dict[str, Any]) -> dict[str, Any]:
    """Reading ``x.grad`` records a constant; unused in the graph it is no node worth drawing
    (the leaf's details and its timeline already show the gradient)."""
    used = {e["source"] for e in report.get("edges") or []}
    roots = {c.get("root") for c in report.get("backward_calls") or []}
    drop = {nd["id"] for nd in report.get("nodes") or []
            if nd.get("kind") == "constant" and nd.get("torch_op") == "Tensor.grad"
            and nd["id"] not in used and nd["id"] not in roots}
    return _drop_nodes(report, drop) if drop else dict(report)


def _drop_nodes(report: dict[str, Any], drop: set[str]) -> dict[str, Any]:
    out = dict(report)
    if not drop:
        return out
    out["nodes"] = [nd for nd in report.get("nodes") or [] if nd["id"] not in drop]
    out["edges"] = [e for e in report.get("edges") or []
                    if e["source"] not in drop and e["target"] not in drop]
    if report.get("modules"):
        out["modules"] = [m for m in report["modules"]
                          if not set(m.get("nodes") or ()) & drop]
    return out


def iteration_of_calls(report: dict[str, Any]) -> dict[int, int]:
    """Backward call index → the iteration it belongs to (for the views' call lists)."""
    plan = report.get("iterations") or {}
    return {c: it["index"] for it in plan.get("items") or [] for c in it["calls"]}


def start_call(report: dict[str, Any]) -> int:
    """The backward call a replay starts on: the first with steps in the shown iteration
    (else in the whole report), so the step controls are never disabled when some call has
    steps."""
    calls = report.get("backward_calls") or []
    plan = report.get("iterations")
    candidates = range(len(calls))
    if plan:
        candidates = plan["items"][plan["shown"]]["calls"]
    for i in candidates:
        if 0 <= i < len(calls) and calls[i].get("steps"):
            return i
    for i, call in enumerate(calls):
        if call.get("steps"):
            return i
    return 0


def iteration_note(report: dict[str, Any]) -> str:
    """One sentence saying which iteration the views show ("" without a loop).

    >>> iteration_note({"iterations": {"label": "iteration 3 of 300", "lines": [4, 7],
    ...     "count": 3, "kept_from": 298, "total": 300, "default": 2, "shown": 2}})
    'Training loop (lines 4–7): showing iteration 3 of 300, the last checked one; iterations 298–300 are kept in full, one at a time.'
    """
    plan = report.get("iterations")
    if not plan:
        return ""
    lines = plan.get("lines") or []
    where = ""
    if lines:
        where = f" (line {lines[0]})" if lines[0] == lines[-1] else f" (lines {lines[0]}–{lines[-1]})"
    which = ", the last checked one" if plan["shown"] == plan["default"] else ""
    kept = plan.get("kept") or f"{plan['kept_from']}–{plan['kept_from'] + plan['count'] - 1}"
    return (f"Training loop{where}: showing {plan['label']}{which}; iterations {kept} "
            "are kept in full, one at a time.")


def _numbers(numbers: list) -> str:
    """``"298–300"`` for a run, ``"64, 128, 256"`` otherwise (``check="sample"`` keeps the
    checked iterations of a long loop, which are not consecutive)."""
    if numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"{numbers[0]}–{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return ", ".join(map(str, numbers))
