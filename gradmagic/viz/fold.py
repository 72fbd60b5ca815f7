"""Fold repeated loop iterations of a large graph into groups ("loop body ×100").

Nodes are in creation order in the report, so the iterations of a loop appear as a run
of blocks with the same signature sequence: (kind, op label, source cell and line) of
every node. :func:`find_groups` finds such tandem repeats; :func:`fold_plan` folds them
when a graph has more than ``max_nodes`` nodes. Group ids depend only on the report and
``max_nodes``, so a group keeps its id when another one is expanded.

>>> nodes = [{"id": "w", "kind": "leaf"}] + [
...     {"id": f"n{i}", "kind": "op", "label": ("MulBackward0", "TanhBackward0")[i % 2],
...      "source": {"cell": 1, "line": 3 + i % 2}} for i in range(200)]
>>> plan = fold_plan({"nodes": nodes}, max_nodes=50)
>>> [(g["id"], g["label"], len(g["members"]), g["folded"]) for g in plan["groups"]]
[('g0', 'loop body ×100', 200, True)]
>>> len(plan["hidden"])
200
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Any

MAX_PERIOD = 256  # longest loop body (in nodes) that is looked for
MIN_FOLD = 8  # fold only repeats that hide at least this many nodes
_STATUS_RANK = {"differ": 3, "unchecked": 2, "disabled": 1, "agree": 0}


def _signature(node: dict[str, Any]) -> tuple:
    src = node.get("source") or {}
    return (node.get("kind"), node.get("label") or node.get("op") or node.get("torch_op"),
            src.get("cell"), src.get("line"))


def _repeat_at(sig: list[int], i: int, occurrences: list[int]) -> tuple[int, int]:
    """Best (period, count) of a tandem repeat starting at ``i``: the one covering most nodes."""
    best = (0, 1)
    n = len(sig)
    start = bisect_right(occurrences, i)
    for j in occurrences[start:]:
        p = j - i
        if p > MAX_PERIOD or i + 2 * p > n:
            break
        if sig[i + p - 1] != sig[j + p - 1]:
            continue  # cheap filter before comparing whole blocks
        count = 1
        while i + (count + 1) * p <= n and sig[i + (count - 1) * p:i + count * p] == \
                sig[i + count * p:i + (count + 1) * p]:
            count += 1
        if count > 1 and p * count > best[0] * best[1]:
            best = (p, count)
    return best


def find_groups(nodes: list[dict[str, Any]], min_nodes: int = MIN_FOLD) -> list[dict[str, Any]]:
    """Every maximal run of repeated iterations covering at least ``min_nodes`` nodes, as
    unpositioned group dicts (not folded)."""
    codes: dict[tuple, int] = {}
    sig = [codes.setdefault(_signature(nd), len(codes)) for nd in nodes]
    where: dict[int, list[int]] = {}
    for idx, code in enumerate(sig):
        where.setdefault(code, []).append(idx)
    groups, i = [], 0
    while i < len(sig):
        period, count = _repeat_at(sig, i, where[sig[i]])
        if count > 1 and period * count >= min_nodes:
            groups.append(_group(f"g{len(groups)}", nodes[i:i + period * count], period, count))
            i += period * count
        else:
            i += 1
    return groups


def _group(gid: str, members: list[dict[str, Any]], period: int, count: int) -> dict[str, Any]:
    body = members[:period]
    ops = []
    for nd in body:
        label = nd.get("label") or nd.get("op") or nd.get("torch_op") or nd.get("kind")
        if label not in ops:
            ops.append(label)
    lines = sorted({(nd.get("source") or {}).get("line") for nd in members} - {None})
    status = max((nd.get("status") or "agree" for nd in members), key=_STATUS_RANK.get)
    return {"id": gid, "label": f"loop body ×{count}", "members": [nd["id"] for nd in members],
            "folded": False, "count": count, "period": period, "ops": ops, "lines": lines,
            "status": status}


def fold_plan(report: dict[str, Any], max_nodes: int = 300,
              expanded: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Groups (folded unless listed in ``expanded``), the hidden node ids and a note.

    Nothing is folded when the graph has at most ``max_nodes`` nodes.
    """
    nodes = report.get("nodes") or []
    if len(nodes) <= max_nodes:
        return {"groups": [], "hidden": [], "notes": []}
    groups = find_groups(nodes)
    keep_open = set(expanded)
    hidden: list[str] = []
    for group in groups:
        group["folded"] = group["id"] not in keep_open
        if group["folded"]:
            hidden.extend(group["members"])
    return {"groups": groups, "hidden": hidden, "notes": [_note(len(nodes), max_nodes, groups)]}


def _note(total: int, max_nodes: int, groups: list[dict[str, Any]]) -> str:
    folded = [g for g in groups if g["folded"]]
    if not groups:
        return (f"The graph has {total} nodes (more than max_nodes={max_nodes}) and no repeated "
                "loop iterations to fold, so every node is drawn.")
    if not folded:
        return f"The graph has {total} nodes; every repeated loop body is expanded."
    names = ", ".join(f"{g['label']} ({len(g['members'])} nodes)" for g in folded[:3])
    more = f" and {len(folded) - 3} more" if len(folded) > 3 else ""
    return (f"The graph has {total} nodes (more than max_nodes={max_nodes}): repeated loop "
            f"iterations are folded into {names}{more}. Expand a group to see its nodes.")
