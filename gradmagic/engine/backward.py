"""Reverse mode: traversal in creation order, the VJPs of each node, the one ``sum_to``.

Nodes run newest first (a heap on ``Node.seq``), so each runs once all its consumers have
(as in torch); each node's VJPs come from the op table and are reduced to the input's
shape and dtype here, in one place. Summing the gradients (pending sums, leaves'
``.grad``) is ``accumulate.py``'s job.

>>> from gradmagic.engine import tensor
>>> x = tensor([1.0, 2.0], requires_grad=True)
>>> (x * x + x).sum().backward(); x.grad
tensor([3., 5.])
"""
from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any, Sequence

import numpy as np

from ._state import STATE
from .hooks import HOOKS, POST_ACCUMULATE, run_hooks, run_post_accumulate
from .broadcast import sum_to
from .node import ABSENT, FREED, MODIFIED, Node
from .accumulate import (Factors, accumulate, add_pending, add_sum, deliver, merge, own,
                         scatter_into, start)
from .records import (BackwardRecord, BackwardStep, open_record,  # noqa: F401 (re-exported)
                      record_backward, snapshot)
from .tensor import RETAINED, Tensor, wrap

# the accumulation helpers' former names here (callers and tests may use them)
_accumulate, _deliver, _merge, _scatter_into, _start, _Factors = (
    accumulate, deliver, merge, scatter_into, start, Factors)
__all__ = ["toposort", "node_grads", "run_backward", "plain_backward", "cast_grad", "own"]

ndarray = np.ndarray


def toposort(roots: Sequence[Any]) -> list:
    """Vertices (Nodes and leaf Tensors) reachable from ``roots``, each before its parents."""
    order, seen = [], set()
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.append((v, True))
        if type(v) is Node:
            for p in v.parents:
                if p is not None and id(p) not in seen:
                    stack.append((p, False))
    order.reverse()
    return order


def _needed(order: list, sinks: dict) -> set:
    """ids of vertices from which some sink is reachable (so only those run)."""
    need: set = set()
    for v in reversed(order):
        if id(v) in sinks or (type(v) is Node and any(
                p is not None and id(p) in need for p in v.parents)):
            need.add(id(v))
    return need


def _check(v: Node) -> None:
    """Raise torch's errors for a freed graph or a saved tensor modified in place."""
    if v.vsum < 0:
        if v.vsum == MODIFIED:
            raise RuntimeError(f"one of the variables needed for gradient computation has been "
                               f"modified by an inplace operation: the output of {v.name}")
        if v.saved_idx or v.opdef.saves_ans:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or "
                "if you need to access saved tensors after calling backward.")
        return
    if v.version_sum() != v.vsum:
        raise RuntimeError(f"one of the variables needed for gradient computation has been "
                           f"modified by an inplace operation: an input of {v.name} is at a "
                           f"newer version than the one saved for backward")


def node_grads(v: Node, g: Any, create: bool, parents: tuple | None = None) -> list:
    """Each input's gradient from node ``v`` (None where not needed), reduced to the
    input's shape (``sum_to``, the one place broadcasting is undone) and dtype."""
    op, params = v.opdef, v.params or _EMPTY
    args, ans = _vjp_args(v, create)
    out = []
    for i, p in enumerate(v.parents if parents is None else parents):
        if p is None:
            out.append(None)
            continue
        if op.variadic:
            gi = op.vjps[0](g, ans, *args, index=i, **params)
            if gi is None:  # no gradient along this edge (a custom Function's None)
                out.append(None)
                continue
        else:
            gi = op.vjps[i](g, ans, *args, **params)
        x = args[i].data if create else args[i]
        if gi.shape != x.shape:
            gi = sum_to(gi, x.shape)
        if gi.dtype != x.dtype:
            gi = cast_grad(gi, x.dtype)
        if not create and type(gi) is not ndarray:
            gi = np.asarray(gi)
        out.append(gi)
    return out


def _vjp_args(v: Node, create: bool) -> tuple[Any, Any]:
    """(what the VJPs receive for the inputs, the output): arrays for a plain backward;
    Tensors and a recomputed, differentiable output with ``create_graph``."""
    raw = v.raw_inputs()
    if v.vsum < 0 or (v.saved_idx and v.version_sum() != v.vsum):
        _check(v)
    if create:  # the saved output comes back as a tensor of this very node (as torch
        # unpacks a saved result), so gradients through it reach the node's retain_grad()
        return v.inputs, wrap(v.ans, True, v) if v.opdef.saves_ans else None
    if len(raw) == 1:
        a = raw[0]
        return (a.data if type(a) is Tensor else a,), v.ans
    if len(raw) == 2:
        a, b = raw
        return (a.data if type(a) is Tensor else a, b.data if type(b) is Tensor else b), v.ans
    return [x.data if type(x) is Tensor else x for x in raw], v.ans


_EMPTY: dict = {}


def run_backward(roots: list, grads: list, retain_graph: bool, create_graph: bool,
                 sinks: dict | None, capture: bool, kind: str) -> dict:
    """The engine. ``sinks`` maps id(vertex) -> tensor receiving the gradient (None: all
    leaves). With ``capture`` the gradients are returned (``grad()``), not accumulated.

    Nodes run newest first (``Node.seq``, a heap), so each runs once all its consumers have
    (they are all younger); leaves receive their totals at the end. The common case — one
    root, every leaf, no ``create_graph`` — goes to ``plain_backward``.
    """
    steps = open_record(kind, roots, retain_graph, create_graph) if STATE.recorders else None
    if sinks is None and not create_graph and len(roots) == 1 and not HOOKS and not POST_ACCUMULATE:
        plain_backward(roots[0], grads[0], retain_graph, steps)
        return {}
    if steps is not None:  # steps keep arrays, not copies: the seeds may be someone's data
        grads = [snapshot(g) if type(g) is ndarray else g for g in grads]
    pending, starts = start(roots, grads)
    need = _needed(toposort(starts), sinks) if sinks is not None else None
    heap = [(-v.seq, v) for v in starts if type(v) is Node]
    heapify(heap)
    leaves = [v for v in starts if type(v) is not Node]
    borrowed = set(pending)  # ids whose pending array is not ours (seeds, pass-throughs)
    captured: dict = {}
    prev, STATE.grad_enabled = STATE.grad_enabled, create_graph
    try:
        while heap:
            v = heappop(heap)[1]
            g = pending.pop(id(v))
            if HOOKS:
                g = run_hooks(v, g, create_graph)
            if sinks is not None or RETAINED:
                deliver(v, g, sinks, capture, captured, create_graph, steps, borrowed)
            parents = v.parents
            grads_in = node_grads(v, g, create_graph, parents)
            _send(v, g, parents, grads_in, pending, heap, leaves, need, borrowed, steps)
            if not retain_graph:
                v.vsum, v.ans = FREED, None
        for t in leaves:
            g = pending.pop(id(t))
            if HOOKS:
                g = run_hooks(t, g, create_graph)
            deliver(t, g, sinks, capture, captured, create_graph, steps, borrowed)
            if POST_ACCUMULATE and not capture and (sinks is None or id(t) in sinks):
                run_post_accumulate(t)
    finally:
        STATE.grad_enabled = prev
    return captured


def plain_backward(root: Tensor, seed: Any, retain: bool, steps: list | None = None) -> None:
    """``root.backward()`` in the common case — one root, no ``inputs=``, no
    ``create_graph`` — as one loop over the nodes' slots (``steps``: a list the
    ``BackwardStep``s are appended to, see ``record_backward``). Nodes run in decreasing
    creation order (``Node.seq``, a heap): every consumer of a node was created after it, so
    a node runs once all its consumers that the root reaches have run, with no dependency
    counting; leaves receive their summed gradient at the end."""
    v = root.grad_fn or root
    if type(v) is Tensor:
        accumulate(v, seed, False, steps, True)
        return
    if steps is not None and type(seed) is ndarray:  # steps keep arrays, not copies: the
        seed = snapshot(seed)                        # seed may be someone's data
    prev, STATE.grad_enabled = STATE.grad_enabled, False
    try:
        _run_plain(v, seed, retain, steps)
    finally:
        STATE.grad_enabled = prev


def _run_plain(root: Node, seed: Any, retain: bool, steps: list | None) -> None:
    """The loop of ``plain_backward``: ``run_backward``'s loop with ``node_grads`` and
    ``_send`` written inline for one- and two-input nodes, without their per-node calls
    and tuples: on small graphs those calls were most of backward's cost
    (W1, W5 of benchmarks/engine.py).

    Sums of gradients (``accumulate.py``), for RNNs above all (benchmarks/engine.py C2): a
    sum this loop allocated itself (``owned``) takes the next gradients in place; a slice's gradient (an
    op with ``scatter``) is added into its input's sum at the slice, not as a zero-filled
    array; and a weight's gradients ``Aᵀ·B`` (an op with ``outer``) wait in ``deferred``
    until the weight runs, then are summed as one product of the stacked factors."""
    pending = {id(root): seed}
    borrowed = {id(root)}
    owned: set = set()
    deferred: dict = {}
    fast = steps is None  # not recording each step's gradients: the shortcuts may run
    heap = [(-root.seq, root)]
    leaves = []
    take = pending.pop
    while heap:
        v = heappop(heap)[1]
        k = id(v)
        g = merge(pending, deferred, borrowed, k) if deferred and k in deferred else take(k)
        if RETAINED:
            deliver(v, g, None, False, {}, False, steps, borrowed)
        op = v.opdef
        if v.rest is not None:  # three or more inputs, or a variadic op: the general path
            parents = v.parents
            if op.special and fast:
                parents = _defer(v, g, parents, pending, deferred, heap, leaves)
            edges = tuple(zip(parents, v.raw_inputs(), node_grads(v, g, False, parents)))
        else:
            if v.vsum < 0 or (v.saved_idx and v.version_sum() != v.vsum):
                _check(v)
            params, ans = v.params, v.ans
            vjps, a, b, pa, pb = op.vjps, v.a, v.b, v.pa, v.pb
            if type(a) is Tensor:
                a = a.data
            if op.special and fast:  # an op with ``outer`` or ``scatter``
                if b is not ABSENT:
                    pa, pb = _defer(v, g, (pa, pb), pending, deferred, heap, leaves)
                elif pa is not None and op.scatter is not None:
                    new = scatter_into(pending, owned, borrowed, pa, a, g, op.scatter(params))
                    if new is not None:
                        if new and id(pa) not in deferred:
                            if type(pa) is Node:
                                heappush(heap, (-pa.seq, pa))
                            else:
                                leaves.append(pa)
                        if not retain:
                            v.vsum, v.ans = FREED, None
                        continue
            if b is ABSENT:
                edges = ((pa, a, vjps[0](g, ans, a, **params) if params else vjps[0](g, ans, a)),)
            else:
                if type(b) is Tensor:
                    b = b.data
                edges = (
                    (pa, a, None if pa is None else
                     vjps[0](g, ans, a, b, **params) if params else vjps[0](g, ans, a, b)),
                    (pb, b, None if pb is None else
                     vjps[1](g, ans, a, b, **params) if params else vjps[1](g, ans, a, b)))
        if steps is not None:
            got = []
        for p, x, gi in edges:
            if p is None or gi is None:
                if steps is not None:
                    got.append(None)
                continue
            if type(gi) is not ndarray:
                gi = np.asarray(gi)
            if gi.shape != x.shape:
                gi = sum_to(gi, x.shape)
            if gi.dtype != x.dtype:
                gi = cast_grad(gi, x.dtype)
            if steps is not None:
                got.append(gi)
            k = id(p)
            if add_pending(pending, owned, borrowed, k, gi, g) and not (deferred and k in deferred):
                if type(p) is Node:  # (a deferred one is already queued by ``_defer``)
                    heappush(heap, (-p.seq, p))
                else:
                    leaves.append(p)
        if steps is not None:
            steps.append(BackwardStep("node", v, g, tuple(got)))
        if not retain:
            v.vsum, v.ans = FREED, None
    for t in leaves:
        k = id(t)
        g = merge(pending, deferred, borrowed, k) if deferred and k in deferred else take(k)
        accumulate(t, g, False, steps, k in borrowed)


def _defer(v: Node, g: Any, parents: tuple, pending: dict, deferred: dict, heap: list,
           leaves: list) -> tuple:
    """Keep the factors of ``v``'s gradients ``Aᵀ·B`` (its op's ``outer``) for their
    parents in ``deferred`` (a parent seen for the first time joins the heap or the
    leaves); ``parents`` with those set to None, for the VJPs of the others."""
    op, params = v.opdef, v.params or _EMPTY
    args, ans = _vjp_args(v, False)
    out = list(parents)
    for i, rule in op.outer.items():
        p = parents[i] if i < len(parents) else None
        factors = None if p is None else rule(g, ans, *args, **params)
        if factors is None:
            continue
        k = id(p)
        if k not in deferred:
            deferred[k] = Factors()
            if k not in pending:
                if type(p) is Node:
                    heappush(heap, (-p.seq, p))
                else:
                    leaves.append(p)
        deferred[k].add(*factors)
        out[i] = None
    return tuple(out)


def _send(v: Node, g: Any, parents: tuple, grads_in: list, pending: dict, heap: list,
          leaves: list, need: set | None, borrowed: set, steps: list | None) -> None:
    """Add each input's gradient to its parent's pending sum; a parent seen for the first
    time joins the heap (a node) or the leaves (a tensor)."""
    if steps is not None:
        steps.append(BackwardStep("node", v, g, tuple(grads_in)))
    for p, gi in zip(parents, grads_in):
        if gi is None or (need is not None and id(p) not in need):
            continue
        if add_sum(pending, borrowed, id(p), gi, g):
            if type(p) is Node:
                heappush(heap, (-p.seq, p))
            else:
                leaves.append(p)


def cast_grad(g: Any, dtype: np.dtype) -> Any:
    """``g`` in its input's dtype; a complex gradient of a real input keeps its real part,
    silently, as torch does (NumPy would warn that it discards the imaginary part).

    >>> cast_grad(np.array([1 + 2j]), np.dtype("float32"))
    array([1.], dtype=float32)
    """
    if type(g) is ndarray and g.dtype.kind == "c" and dtype.kind != "c":
        g = g.real
    return g.astype(dtype)
