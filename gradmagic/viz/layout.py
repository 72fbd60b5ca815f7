"""Layered top-to-bottom layout of a report's graph, shared by the SVG and the widget.

Data flows downwards: inputs at the top, the loss at the bottom. The steps are the
classic Sugiyama ones, kept deterministic and dependency-free:

1. fold repeated loop iterations of large graphs (:mod:`gradmagic.viz.fold`) and group
   the nodes of each ``nn.Module`` call (:mod:`gradmagic.viz.modules`);
2. longest-path layering (inputs pulled down next to their first consumer);
3. dummy nodes on edges that span several layers (within a budget, so huge fan-outs stay linear);
4. barycenter sweeps to reduce crossings, keeping the order with the fewest;
5. compact x coordinates: per layer, the ordered positions closest to the barycenter of
   the neighbours (isotonic regression with minimum gaps), swept down and up.

>>> report = {"nodes": [{"id": "a", "kind": "leaf", "name": "x"},
...                     {"id": "b", "kind": "op", "label": "MulBackward0", "name": "y"}],
...           "edges": [{"source": "a", "target": "b", "input": 0},
...                     {"source": "a", "target": "b", "input": 1}]}
>>> lay = layout(report)
>>> lay["nodes"]["a"]["layer"], lay["nodes"]["b"]["layer"]
(0, 1)
>>> lay["nodes"]["a"]["y"] + lay["nodes"]["a"]["h"] < lay["nodes"]["b"]["y"]
True
"""
from __future__ import annotations

import heapq
from typing import Any, Iterable

from gradmagic.viz.modules import group_plan
from gradmagic.viz.labels import box_size, group_lines, node_lines

MARGIN = 16
H_GAP = 28  # between boxes in one layer
DUMMY_GAP = 10  # next to an edge passing through a layer
V_GAP = 44  # between layers
SWEEPS = 6


class _Graph:
    """Index-based working graph: real items (nodes and folded groups) then dummies."""

    def __init__(self, ids: list[str], sizes: list[tuple[int, int]]):
        self.ids = ids
        self.w = [float(s[0]) for s in sizes]
        self.h = [float(s[1]) for s in sizes]
        self.n_real = len(ids)
        self.up: list[list[tuple[int, int]]] = [[] for _ in ids]  # (neighbour, port)
        self.down: list[list[tuple[int, int]]] = [[] for _ in ids]
        self.layer: list[int] = [0] * len(ids)
        self.ports: list[int] = [0] * len(ids)  # number of incoming edges (ports on top)

    def add_dummy(self, layer: int) -> int:
        self.w.append(0.0)
        self.h.append(0.0)
        self.up.append([])
        self.down.append([])
        self.layer.append(layer)
        self.ports.append(1)
        return len(self.w) - 1


def layout(report: dict[str, Any], max_nodes: int = 300,
           expanded: Iterable[str] | None = None) -> dict[str, Any]:
    """Positions of every visible node, folded group and edge of ``report`` (see docs/contract.md).

    ``expanded`` lists the open groups; ``None`` is the default view (loops folded, module
    calls at depth 0 open and deeper ones collapsed).

    Node and group boxes are ``x, y`` (top-left), ``w, h`` in px; edges carry a polyline
    ``points`` from the bottom of the source to the top of the target (one port per input).
    """
    plan = group_plan(report, max_nodes, None if expanded is None else tuple(expanded))
    items, owner, sizes = _items(report, plan)
    graph = _Graph(items, sizes)
    edges = _edges(report, owner, {item: k for k, item in enumerate(items)})
    _assign_layers(graph, edges)
    chains = _add_dummies(graph, edges)
    order = _order(graph)
    xs = _coordinates(graph, order)
    tops, heights = _layer_bands(graph, len(order))
    return _result(graph, plan, edges, chains, order, xs, tops, heights)


def _items(report: dict[str, Any], plan: dict[str, Any]):
    """Visible node ids and folded group ids in report order, with their box sizes."""
    owner: dict[str, str] = {}
    groups = {g["id"]: g for g in plan["groups"] if g["folded"]}
    for gid, group in groups.items():
        for member in group["members"]:
            owner[member] = gid
    items, sizes, seen = [], [], set()
    for node in report.get("nodes") or []:
        item = owner.get(node["id"], node["id"])
        if item in seen:
            continue
        seen.add(item)
        items.append(item)
        lines = group_lines(groups[item]) if item in groups else node_lines(node)
        sizes.append(box_size(lines))
    return items, owner, sizes


def _edges(report: dict[str, Any], owner: dict[str, str], index: dict[str, int]):
    """(source, target, input, count) between visible items; edges into a group are merged."""
    merged: dict[tuple[int, int], list[int]] = {}
    out: list[list[int]] = []
    for edge in report.get("edges") or []:
        s = index.get(owner.get(edge["source"], edge["source"]))
        t = index.get(owner.get(edge["target"], edge["target"]))
        if s is None or t is None or s == t:
            continue
        grouped = edge["source"] in owner or edge["target"] in owner
        if grouped and (s, t) in merged:
            merged[(s, t)][3] += 1
            continue
        row = [s, t, int(edge.get("input") or 0), 1]
        out.append(row)
        if grouped:
            merged[(s, t)] = row
    return out


def _assign_layers(graph: _Graph, edges: list[list[int]]) -> None:
    """Longest-path layers over a topological order; cycles (if any) are broken by index."""
    n = graph.n_real
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for s, t, *_ in edges:
        preds[t].append(s)
        succs[s].append(t)
    indeg = [len(p) for p in preds]
    rank = [-1] * n  # position in the topological order
    ready = [k for k in range(n) if indeg[k] == 0]
    heapq.heapify(ready)
    cursor = count = 0
    while count < n:
        if not ready:  # a cycle: take the earliest remaining node, ignore its back edges
            while rank[cursor] >= 0:
                cursor += 1
            ready = [cursor]
        k = heapq.heappop(ready)
        if rank[k] >= 0:
            continue
        rank[k] = count
        count += 1
        layer = max((graph.layer[p] + 1 for p in preds[k] if 0 <= rank[p] < rank[k]), default=0)
        graph.layer[k] = layer
        for t in succs[k]:
            indeg[t] -= 1
            if indeg[t] == 0 and rank[t] < 0:
                heapq.heappush(ready, t)
    for k in range(n):  # inputs sit just above their first consumer
        if not preds[k] and succs[k]:
            graph.layer[k] = max(0, min(graph.layer[t] for t in succs[k]) - 1)


def _add_dummies(graph: _Graph, edges: list[list[int]]) -> list[list[int]]:
    """Chain every edge through one dummy per layer it crosses; returns each edge's chain.

    Long edges get dummies shortest first while the total stays within a budget linear
    in the graph size; the others are drawn straight (one parameter feeding a thousand
    iterations must not cost a million dummies).
    """
    budget = 3 * graph.n_real + 400
    spans = sorted(range(len(edges)),
                   key=lambda e: (graph.layer[edges[e][1]] - graph.layer[edges[e][0]], e))
    chains: list[list[int]] = [[] for _ in edges]
    for e in spans:
        s, t, port, _ = edges[e]
        span = graph.layer[t] - graph.layer[s]
        if 1 < span <= budget:
            budget -= span - 1
            chains[e] = [graph.add_dummy(graph.layer[s] + d) for d in range(1, span)]
        path = [s, *chains[e], t]
        for a, b in zip(path, path[1:]):
            graph.down[a].append((b, port if b == t else 0))
            graph.up[b].append((a, port if b == t else 0))
        graph.ports[t] = max(graph.ports[t], port + 1)
    return chains


def _order(graph: _Graph) -> list[list[int]]:
    """Order inside each layer: barycenter sweeps down and up, keeping the fewest crossings."""
    depth = max(graph.layer, default=-1) + 1
    order: list[list[int]] = [[] for _ in range(depth)]
    for k in range(len(graph.w)):
        order[graph.layer[k]].append(k)
    pos = [0.0] * len(graph.w)
    _set_positions(order, pos)
    best, best_cross = [list(layer) for layer in order], _crossings(graph, order, pos)
    for sweep in range(SWEEPS):
        downwards = sweep % 2 == 0
        layers = range(1, depth) if downwards else range(depth - 2, -1, -1)
        for li in layers:
            _sort_layer(graph, order[li], pos, downwards)
            for i, k in enumerate(order[li]):
                pos[k] = float(i)
        cross = _crossings(graph, order, pos)
        if cross < best_cross:
            best, best_cross = [list(layer) for layer in order], cross
    return best


def _set_positions(order: list[list[int]], pos: list[float]) -> None:
    for layer in order:
        for i, k in enumerate(layer):
            pos[k] = float(i)


def _port_shift(graph: _Graph, target: int, port: int) -> float:
    """Where input ``port`` enters ``target``, in fractions of a slot (-0.5 … 0.5)."""
    n = graph.ports[target]
    return (port + 1) / (n + 1) - 0.5 if n > 1 else 0.0


def _sort_layer(graph: _Graph, layer: list[int], pos: list[float], downwards: bool) -> None:
    keys = {}
    for k in layer:
        if downwards:
            nbrs = [pos[a] for a, _ in graph.up[k]]
        else:
            nbrs = [pos[b] + 0.5 * _port_shift(graph, b, p) for b, p in graph.down[k]]
        keys[k] = sum(nbrs) / len(nbrs) if nbrs else pos[k]
    layer.sort(key=lambda k: (keys[k], pos[k]))


def _crossings(graph: _Graph, order: list[list[int]], pos: list[float]) -> int:
    """Edge crossings between consecutive layers (inversion count with a Fenwick tree)."""
    _set_positions(order, pos)
    total = 0
    for layer in order[:-1]:
        pairs = sorted((pos[a], pos[b] + 0.01 * p) for a in layer for b, p in graph.down[a])
        ranks = {v: i + 1 for i, v in enumerate(sorted({b for _, b in pairs}))}
        tree = [0] * (len(ranks) + 1)
        for seen, (_, b) in enumerate(pairs):
            r, le = ranks[b], 0
            i = r
            while i > 0:
                le += tree[i]
                i -= i & -i
            total += seen - le
            i = r
            while i < len(tree):
                tree[i] += 1
                i += i & -i
    return total


def _coordinates(graph: _Graph, order: list[list[int]]) -> list[float]:
    """Center x of every box: packed, then pulled towards neighbours down, up and down."""
    xs = [0.0] * len(graph.w)
    for layer in order:
        centers = _pack(graph, layer)
        mid = centers[-1] / 2 if centers else 0.0
        for k, c in zip(layer, centers):
            xs[k] = c - mid
    depth = len(order)
    for direction in ("down", "up", "down", "both"):
        layers = range(depth - 2, -1, -1) if direction == "up" else range(depth)
        for li in layers:
            desired = [_desired(graph, k, xs, direction) for k in order[li]]
            for k, c in zip(order[li], _place(graph, order[li], desired)):
                xs[k] = c
    return xs


def _pack(graph: _Graph, layer: list[int]) -> list[float]:
    centers, x = [], 0.0
    for i, k in enumerate(layer):
        if i:
            x += _separation(graph, layer[i - 1], k)
        centers.append(x)
    return centers


def _separation(graph: _Graph, a: int, b: int) -> float:
    gap = H_GAP if a < graph.n_real and b < graph.n_real else DUMMY_GAP
    return (graph.w[a] + graph.w[b]) / 2 + gap


def _desired(graph: _Graph, k: int, xs: list[float], direction: str) -> tuple[float, float]:
    """(target x, weight) for box ``k``: the mean of its neighbours' attachment points."""
    above = [xs[a] - _port_x(graph, k, p) for a, p in graph.up[k]]
    below = [xs[b] + _port_x(graph, b, p) for b, p in graph.down[k]]
    nbrs = above if direction == "down" else below if direction == "up" else above + below
    weight = 4.0 if k >= graph.n_real else 1.0  # keep long edges straight
    if not nbrs:
        return xs[k], 0.25 * weight
    return sum(nbrs) / len(nbrs), weight


def _port_x(graph: _Graph, target: int, port: int) -> float:
    return _port_shift(graph, target, port) * graph.w[target]


def _place(graph: _Graph, layer: list[int], desired: list[tuple[float, float]]) -> list[float]:
    """Centers closest (weighted least squares) to ``desired`` keeping order and gaps (PAVA)."""
    offsets = _pack(graph, layer)
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for (d, w), off in zip(desired, offsets):
        blocks.append([(d - off) * w, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, w2, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w2
            blocks[-1][2] += c
    out: list[float] = []
    for s, w, c in blocks:
        out.extend([s / w] * int(c))
    return [y + off for y, off in zip(out, offsets)]


def _layer_bands(graph: _Graph, depth: int) -> tuple[list[float], list[float]]:
    heights = [0.0] * depth
    for k in range(graph.n_real):
        heights[graph.layer[k]] = max(heights[graph.layer[k]], graph.h[k])
    tops, y = [], float(MARGIN)
    for h in heights:
        tops.append(y)
        y += max(h, 8.0) + V_GAP
    return tops, heights


def _result(graph: _Graph, plan: dict[str, Any], edges: list[list[int]],
            chains: list[list[int]], order: list[list[int]], xs: list[float],
            tops: list[float], heights: list[float]) -> dict[str, Any]:
    left = min((xs[k] - graph.w[k] / 2 for k in range(len(xs))), default=0.0)
    shift = MARGIN - left
    boxes: dict[str, dict[str, Any]] = {}
    rank = {k: i for layer in order for i, k in enumerate(layer)}
    for k in range(graph.n_real):
        li = graph.layer[k]
        y = tops[li] + (heights[li] - graph.h[k]) / 2
        boxes[graph.ids[k]] = {"x": _r(xs[k] + shift - graph.w[k] / 2), "y": _r(y),
                               "w": graph.w[k], "h": graph.h[k], "layer": li, "order": rank[k]}
    out_edges = []
    for (s, t, port, count), chain in zip(edges, chains):
        points = [[_r(xs[s] + shift), _r(boxes[graph.ids[s]]["y"] + graph.h[s])]]
        for d in chain:  # straight down through each layer the edge crosses
            x, top = _r(xs[d] + shift), tops[graph.layer[d]]
            points += [[x, _r(top)], [x, _r(top + heights[graph.layer[d]])]]
        points.append([_r(xs[t] + shift + _port_x(graph, t, port)), boxes[graph.ids[t]]["y"]])
        edge = {"source": graph.ids[s], "target": graph.ids[t], "input": port, "points": points}
        out_edges.append({**edge, "count": count} if count > 1 else edge)
    width = max((b["x"] + b["w"] for b in boxes.values()), default=0) + MARGIN
    height = max((b["y"] + b["h"] for b in boxes.values()), default=0) + MARGIN
    placed = {g["id"]: dict(g) for g in plan["groups"]}
    where: dict[str, dict[str, Any]] = {}  # hidden node -> the folded box standing for it
    for gid, group in placed.items():
        if group["folded"]:
            box = boxes.pop(gid)
            group.update(x=box["x"], y=box["y"], w=box["w"], h=box["h"], layer=box["layer"])
            where.update((m, group) for m in group["members"])
    for group in reversed(plan["groups"]):  # innermost first: frames hold inner frames
        if not group["folded"]:
            _frame(placed[group["id"]], boxes, where, placed)
    out = {"width": _r(width), "height": _r(height), "direction": "TB", "nodes": boxes,
           "edges": out_edges, "groups": [placed[g["id"]] for g in plan["groups"]],
           "hidden": list(plan["hidden"]), "notes": list(plan["notes"])}
    if "modules" in plan:
        out.update(modules=plan["modules"], levels=plan["levels"])
        _fit_frames(out)
    return out


def _fit_frames(out: dict[str, Any]) -> None:
    """Move everything right/down so that module frames keep a margin, and widen the canvas."""
    frames = [g for g in out["groups"] if "x" in g]
    if not frames:
        return
    dx = max(0.0, MARGIN / 2 - min(g["x"] for g in frames))
    dy = max(0.0, MARGIN / 2 - min(g["y"] for g in frames))
    if dx or dy:
        for box in [*out["nodes"].values(), *frames]:
            box["x"], box["y"] = _r(box["x"] + dx), _r(box["y"] + dy)
        for edge in out["edges"]:
            edge["points"] = [[_r(x + dx), _r(y + dy)] for x, y in edge["points"]]
    right = max(g["x"] + g["w"] for g in frames) + MARGIN / 2
    bottom = max(g["y"] + g["h"] for g in frames) + MARGIN / 2
    out["width"] = _r(max(out["width"] + dx, right))
    out["height"] = _r(max(out["height"] + dy, bottom))


FRAME_PAD = 6  # around the members of an open module box
FRAME_TOP = 16  # room above them for the box's title


def _frame(group: dict[str, Any], boxes: dict[str, dict[str, Any]],
           where: dict[str, dict[str, Any]], placed: dict[str, dict[str, Any]]) -> None:
    """An expanded group gets its members' bounding box; an open module box (a frame drawn
    around them) also holds the frames of its open submodules, with a margin and a title row."""
    members = [boxes.get(m) or where.get(m) for m in group["members"]]
    members = [b for b in members if b is not None and "x" in b]
    if group.get("kind") == "module":
        inner = set(group["members"])
        members += [g for g in placed.values() if g is not group and "x" in g and not g["folded"]
                    and g.get("kind") == "module" and set(g["members"]) < inner]
    if not members:
        return
    x0 = min(b["x"] for b in members)
    y0 = min(b["y"] for b in members)
    x1 = max(b["x"] + b["w"] for b in members)
    y1 = max(b["y"] + b["h"] for b in members)
    if group.get("kind") == "module":
        x0, y0, x1, y1 = x0 - FRAME_PAD, y0 - FRAME_TOP, x1 + FRAME_PAD, y1 + FRAME_PAD
    group.update(x=_r(x0), y=_r(y0), w=_r(x1 - x0), h=_r(y1 - y0))


def _r(v: float) -> float:
    """Round a coordinate to 0.1 px (keeps output small and deterministic)."""
    return round(v, 1) + 0.0
