"""Module boxes: each ``nn.Module`` call of the report as a group of the layout (issue 13).

A call's group holds the nodes the call made (its submodules' included), the leaves of the
module's own parameters when only this call uses them (a module called once), and its
submodules' groups, so calls nest as the modules do. Groups form a laminar family (any two
are nested or disjoint), and loop groups (:mod:`gradmagic.viz.fold`) join it: loops fold
first, a module call inside a folded loop is hidden in the loop's box, and a call that
straddles a loop group's edge gets no box. Group ids are ``m<index>`` (the call's index in
``report["modules"]``), so they stay stable while boxes open and close.

Which boxes are open: ``expanded`` lists the open group ids; ``None`` is the default view,
where the calls at depth 0 (the model the user called) are open and every deeper call is a
collapsed box: the learner sees the network's layers first, one click (or the depth
control) away from their ops. A report without modules gets exactly the loop plan.

>>> rep = {"nodes": [{"id": "x", "kind": "constant"}, {"id": "w", "kind": "leaf"},
...                  {"id": "y", "kind": "op"}],
...        "modules": [{"index": 0, "path": "lin", "type": "Linear", "signature": "Linear 2→1",
...                     "inputs": [[4, 2]], "outputs": [[4, 1]], "nodes": ["y"], "depth": 0,
...                     "parent": None, "call": 0, "calls": 1,
...                     "parameters": [{"name": "lin.weight", "shape": [1, 2], "node": "w"}]}]}
>>> plan = group_plan(rep, expanded=())
>>> [(g["id"], g["label"], g["members"], g["folded"]) for g in plan["groups"]], plan["hidden"]
([('m0', 'lin · Linear 2→1', ['w', 'y'], True)], ['w', 'y'])
>>> group_plan(rep)["groups"][0]["folded"]
False
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from gradmagic.viz.escape import no_lone_surrogates
from gradmagic.viz.fold import _STATUS_RANK, fold_plan

__all__ = ["group_plan", "module_groups", "default_expanded", "module_levels"]


def default_expanded(report: dict[str, Any]) -> list[str]:
    """Ids of the module groups open in the default view: the calls at depth 0."""
    return [f"m{m['index']}" for m in report.get("modules") or [] if not m.get("depth")]


def module_levels(groups: list[dict[str, Any]]) -> list[list[str]]:
    """Module group ids per depth (``levels[d]`` = the boxes a depth control of d+1 opens)."""
    levels: list[list[str]] = []
    for group in groups:
        if group.get("kind") == "module":
            while len(levels) <= group["depth"]:
                levels.append([])
            levels[group["depth"]].append(group["id"])
    return levels


def group_plan(report: dict[str, Any], max_nodes: int = 300,
               expanded: Iterable[str] | None = None) -> dict[str, Any]:
    """Loop and module groups, which are drawn, which nodes they hide (``fold_plan``'s shape).

    Loops are looked for only when the graph, its module boxes drawn as ``expanded`` says,
    still has more than ``max_nodes`` boxes (a model of forty identical blocks is forty module
    boxes, not one "loop body ×40"). ``groups`` holds the groups to draw (none inside a folded
    one), outermost first;
    ``modules`` every module group with its ``depth`` and ``visible`` flag (for the depth
    control); ``levels`` the module group ids per depth.
    """
    if not report.get("modules"):
        return fold_plan(report, max_nodes, tuple(expanded or ()))
    opened = set(default_expanded(report) if expanded is None else expanded)
    plan = _nest(report, module_groups(report), opened, {"groups": [], "notes": []})
    drawn = len(report.get("nodes") or []) - len(plan["hidden"]) + sum(
        1 for g in plan["groups"] if g["folded"])
    if drawn <= max_nodes:  # the module boxes are enough: no loop to fold
        return plan
    loops = fold_plan(report, max_nodes, tuple(opened))
    return _nest(report, module_groups(report, loops["groups"]), opened, loops)


def _nest(report: dict[str, Any], modules: list[dict[str, Any]], opened: set[str],
          plan: dict[str, Any]) -> dict[str, Any]:
    """Set which module boxes are folded, and which groups are drawn, among ``plan``'s loops."""
    loops = plan["groups"]
    for group in modules:
        group["folded"] = group["id"] not in opened
    order = {nd["id"]: i for i, nd in enumerate(report.get("nodes") or [])}
    everything = sorted(loops + modules, key=lambda g: (-len(g["members"]), g.get("depth", -1),
                                                        order.get(g["members"][0], 0)))
    chains: dict[str, list[dict[str, Any]]] = {}  # node id -> groups holding it, outermost first
    for group in everything:
        for member in group["members"]:
            chains.setdefault(member, []).append(group)
    drawn, hidden = [], []
    for group in everything:
        chain = chains[group["members"][0]]
        outer = chain[:chain.index(group)]
        group["visible"] = not any(g["folded"] for g in outer)
        if group["visible"]:
            drawn.append(group)
            if group["folded"]:
                hidden.extend(group["members"])
    hidden.sort(key=lambda nid: order.get(nid, 0))
    info = [{"id": g["id"], "depth": g["depth"], "folded": g["folded"], "visible": g["visible"]}
            for g in modules]
    return {"groups": drawn, "hidden": hidden, "notes": plan["notes"], "modules": info,
            "levels": module_levels(modules)}


def module_groups(report: dict[str, Any], loops: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """One unpositioned group per module call that made a drawn node, in call order."""
    calls = report.get("modules") or []
    nodes = {nd["id"]: nd for nd in report.get("nodes") or []}
    loop_of = {m: g["id"] for g in loops for m in g["members"]}
    loop_size = {g["id"]: len(g["members"]) for g in loops}
    claims: dict[str, int] = {}
    for call in calls:
        for param in _own_params(call, calls):
            claims[param] = claims.get(param, 0) + 1
    children: dict[int, list[int]] = {}
    for call in calls:
        if call.get("parent") is not None:
            children.setdefault(call["parent"], []).append(call["index"])
    by_index = {c["index"]: c for c in calls}
    order = {nid: i for i, nid in enumerate(nodes)}  # members in report order, without a scan
    members: dict[int, set[str]] = {}
    kept: dict[int, dict[str, Any]] = {}
    for call in reversed(calls):  # children begin after their parent: build bottom-up
        core = {nid for nid in call.get("nodes") or [] if nid in nodes}
        for child in children.get(call["index"], []):
            core |= members.get(child, set())
        params = {p for p in _own_params(call, calls) if claims[p] == 1 and p in nodes}
        full = core | params
        if not _laminar(full, loop_of, loop_size):
            full = core
        members[call["index"]] = full
        if full and _laminar(full, loop_of, loop_size):
            kept[call["index"]] = _group(call, sorted(full, key=order.__getitem__), nodes,
                                         by_index, children)
    return [kept[c["index"]] for c in calls if c["index"] in kept]


def _own_params(call: dict[str, Any], calls: list[dict[str, Any]]) -> list[str]:
    """Drawn parameter leaves of a module called once in the block (shared ones stay outside)."""
    if (call.get("calls") or 1) > 1:
        return []
    return [p["node"] for p in call.get("parameters") or [] if p.get("node")]


def _laminar(members: set[str], loop_of: dict[str, str], loop_size: dict[str, int]) -> bool:
    """Whether ``members`` lies inside one loop group or holds every loop group it touches."""
    counts: dict[str, int] = {}
    outside = 0
    for nid in members:
        gid = loop_of.get(nid)
        if gid is None:
            outside += 1
        else:
            counts[gid] = counts.get(gid, 0) + 1
    if not counts or (len(counts) == 1 and not outside):
        return True
    return all(n == loop_size[gid] for gid, n in counts.items())


def _group(call: dict[str, Any], ordered: list[str], nodes: dict[str, dict[str, Any]],
           calls: dict[int, dict[str, Any]], children: dict[int, list[int]]) -> dict[str, Any]:
    status = max((nodes[m].get("status") or "agree" for m in ordered), key=_STATUS_RANK.get)
    lines = sorted({(nodes[m].get("source") or {}).get("line") for m in ordered} - {None})
    # lone surrogates become escapes: the layout travels as JSON to the browser
    path = no_lone_surrogates(str(call.get("path") or "?"))
    signature = no_lone_surrogates(str(call.get("signature") or call.get("type") or ""))
    return {"id": f"m{call['index']}", "kind": "module", "module": path,
            "type": no_lone_surrogates(str(call.get("type") or "")), "signature": signature,
            "label": f"{path} · {signature}" if signature else path,
            "inputs": call.get("inputs") or [], "outputs": call.get("outputs") or [],
            "grad": _grad_summary(_subtree_params(call, calls, children), nodes),
            "depth": int(call.get("depth") or 0), "call": int(call.get("call") or 0),
            "calls": int(call.get("calls") or 1), "members": ordered, "folded": False,
            "count": 1, "period": len(ordered), "ops": [], "lines": lines, "status": status}


def _subtree_params(call: dict[str, Any], calls: dict[int, dict[str, Any]],
                    children: dict[int, list[int]]) -> list[str]:
    """Parameter leaves of the call and of every call inside it (each once)."""
    out: dict[str, None] = {}
    stack = [call]
    while stack:
        cur = stack.pop()
        out.update((p["node"], None) for p in cur.get("parameters") or [] if p.get("node"))
        stack.extend(calls[i] for i in children.get(cur["index"], []) if i in calls)
    return list(out)


def _grad_summary(params: list[str], nodes: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """``{"norm": ‖∇θ‖}`` over the parameters' gradients when every one's data is in the
    report, else ``{"max_abs": max |∇θ|}`` from their min/max; None without gradients."""
    grads = [nodes[p].get("grad") for p in params if p in nodes]
    grads = [g for g in grads if isinstance(g, dict)]
    if not grads:
        return None
    if all(g.get("data") is not None for g in grads):
        total = sum(_sum_squares(g["data"]) for g in grads)
        return {"norm": math.sqrt(total)} if math.isfinite(total) else None
    bounds = [abs(float(g[k])) for g in grads for k in ("min", "max")
              if isinstance(g.get(k), (int, float))]
    return {"max_abs": max(bounds)} if bounds and math.isfinite(max(bounds)) else None


def _sum_squares(data: Any) -> float:
    if isinstance(data, list):
        return sum(_sum_squares(v) for v in data)
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data) ** 2
    return math.nan  # "nan"/"inf" strings: no finite norm
