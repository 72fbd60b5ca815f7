"""Cotangent accumulation: the pending sums of a backward pass and the leaves' ``.grad``.

A backward pass keeps, per vertex still to run, the sum of the gradients its consumers
sent (``pending``, keyed by ``id``). Who may write into a sum is tracked here: ``borrowed``
holds the ids whose array someone else sees too (a seed, ``g`` passed through, a view),
``owned`` (plain backward) the ids whose sum the pass allocated itself, which then takes
the next gradients in place. Leaves receive their total as torch's AccumulateGrad does.

>>> import numpy as np
>>> pending, owned, borrowed = {}, set(), set()
>>> g = np.ones(2)
>>> add_pending(pending, owned, borrowed, 1, g, g), 1 in borrowed   # g itself: borrowed
(True, True)
>>> add_pending(pending, owned, borrowed, 1, np.ones(2), g), pending[1], 1 in owned
(False, array([2., 2.]), True)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .node import Node
from .records import BackwardStep, snapshot
from .scratch import big
from .tensor import RETAINED, Tensor, retained, wrap

ndarray = np.ndarray


# ---------------------------------------------------------------- pending sums
def add_pending(pending: dict, owned: set, borrowed: set, k: int, gi: Any, g: Any) -> bool:
    """Add the array ``gi`` into vertex ``k``'s pending sum (plain backward); True when
    ``k`` had none (it must join the heap or the leaves). A sum made here (``owned``) takes
    the next gradients in place; ``g`` is the cotangent ``gi`` was computed from."""
    if k in pending:
        if k in owned:  # a sum made here: nobody else sees it
            total = pending[k]
            total += gi
        else:
            pending[k] = total = pending[k] + gi
            if type(total) is ndarray:  # (0-d sums are NumPy scalars)
                owned.add(k)
            borrowed.discard(k)
        return False
    pending[k] = gi
    if gi is g or gi.base is not None:
        borrowed.add(k)  # g itself or a view of it: others see this array too
    return True


def add_sum(pending: dict, borrowed: set, k: int, gi: Any, g: Any) -> bool:
    """``add_pending`` for the general pass (``create_graph``, hooks, ``inputs=``): sums are
    new values (Tensors with ``create_graph``), never updated in place."""
    if k in pending:
        pending[k] = pending[k] + gi
        borrowed.discard(k)
        return False
    pending[k] = gi
    if gi is g or type(gi) is not Tensor and gi.base is not None:
        borrowed.add(k)  # g itself or a view of it: others see this array too
    return True


def start(roots: list, grads: list) -> tuple[dict, list]:
    """Pending cotangents of the roots' vertices (summed when a root repeats)."""
    pending: dict = {}
    starts: list = []
    for r, g in zip(roots, grads):
        v = r.grad_fn or r
        if id(v) in pending:
            pending[id(v)] = pending[id(v)] + g
        else:
            pending[id(v)] = g
            starts.append(v)
    return pending, starts


def scatter_into(pending: dict, owned: set, borrowed: set, p: Any, a: Any, g: Any,
                 index: Any) -> bool | None:
    """Add a slice's gradient ``g`` into the pending sum of its input ``p`` (array ``a``) at
    the basic ``index``: what adding the VJP's zeros-with-``g``-at-``index`` gives, without
    the zeros. True when ``p`` has no pending gradient yet (it must join the heap or the
    leaves), False when added to one; None, with nothing done, when ``index`` is None or the
    dtypes differ (the general path then runs)."""
    if index is None or type(g) is not ndarray or g.dtype != a.dtype:
        return None
    k = id(p)
    total = pending.get(k)
    if total is None:
        total = big(a.shape, a.dtype, zero=True)
        total[index] = g
        pending[k] = total
        owned.add(k)
        return True
    if k not in owned:  # someone else's array (or a view): add into a copy of it
        total = pending[k] = np.array(total, copy=True)
        owned.add(k)
        borrowed.discard(k)
    total[index] += g
    return False


def merge(pending: dict, deferred: dict, borrowed: set, k: int) -> Any:
    """The total gradient of vertex ``k``: its pending sum plus its deferred products."""
    g = pending.pop(k, None)
    parts = deferred.pop(k, None)
    if parts is None:
        return g
    borrowed.discard(k)  # a new array
    return parts.total() if g is None else g + parts.total()


class Factors:
    """Gradients ``Σ Aᵢᵀ·Bᵢ`` summed as one product of the stacked ``A``s and ``B``s (one
    GEMM instead of one per use, and no sum of full-size arrays). The first is multiplied
    at once (a weight used once keeps nothing alive); the later ones are kept as factors,
    and past ``LIMIT`` bytes held, folded into the dense partial sum."""
    LIMIT = 32 << 20
    __slots__ = ("a", "b", "nbytes", "dense")

    def __init__(self) -> None:
        self.a, self.b, self.nbytes, self.dense = [], [], 0, None

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        if self.dense is None and not self.a:  # the first one
            self.dense = a.T @ b
            return
        self.a.append(a)
        self.b.append(b)
        self.nbytes += a.nbytes + b.nbytes
        if self.nbytes > self.LIMIT:
            self.dense = self.total()
            self.a, self.b, self.nbytes = [], [], 0

    def total(self) -> np.ndarray:
        if not self.a:
            return self.dense
        if len(self.a) == 1:
            out = self.a[0].T @ self.b[0]
        else:
            out = _stacked(self.a).T @ _stacked(self.b)
        if self.dense is not None:
            out += self.dense
        return out


def _stacked(parts: list) -> np.ndarray:
    rows = sum(p.shape[0] for p in parts)
    return np.concatenate(parts, out=big((rows,) + parts[0].shape[1:], parts[0].dtype))


# ---------------------------------------------------------------- leaves and sinks
def accumulate(t: Tensor, g: Any, create: bool, steps: list | None, borrowed: bool) -> None:
    """Add ``g`` into ``t.grad`` the way torch's AccumulateGrad does: the first time it
    takes ``g`` itself unless someone else may still see it (``borrowed``: a copy). A
    recorded step keeps ``g`` itself, so then the leaf's ``.grad`` (the one gradient that
    later changes in place) is a copy."""
    grad = t.grad
    kept = steps is not None and not create  # the step holds ``g``, not a snapshot
    if kept and type(g) is not ndarray:
        g = np.array(g)
    before = None if grad is None or steps is None else grad.data.copy()
    if grad is None:
        if create:  # a constant cotangent (the seed) is copied; an op's output is fresh
            t.grad = g if g.grad_fn is not None else wrap(g.data.copy())
        else:
            t.grad = wrap(own(g, borrowed or kept))
    elif create or grad.requires_grad:
        t.grad = grad + g
    else:
        grad.data += g
    if steps is not None:
        after = g if kept and grad is None else t.grad.data.copy()
        steps.append(BackwardStep("accumulate", tensor=t, before=before,
                                  added=g if kept else snapshot(g), after=after))


def deliver(v: Any, g: Any, sinks: dict | None, capture: bool, captured: dict, create: bool,
            steps: list | None, borrowed: set) -> None:
    """Give ``g`` to whoever receives it at vertex ``v``: a leaf's ``.grad``, a retained
    tensor's, or (``grad()``) the captured results."""
    key = id(v)
    shared = key in borrowed or type(v) is Node  # a node's g also feeds its VJPs
    if sinks is None:
        t = v if type(v) is Tensor else retained(v)
        if t is not None:
            accumulate(t, g, create, steps, shared)
        return
    if RETAINED and type(v) is Node:  # torch fills retain_grad() tensors on the way, also
        t = retained(v)              # for backward(inputs=...) and autograd.grad
        if t is not None and (capture or sinks.get(key) is not t):
            accumulate(t, g, create, steps, True)
    if key in sinks:
        if not capture:
            accumulate(sinks[key], g, create, steps, shared)
            return
        captured[key] = g if create or not shared else np.array(g)
        if steps is not None:
            steps.append(BackwardStep("accumulate", tensor=sinks[key], added=g, after=g))


def own(g: Any, borrowed: bool) -> np.ndarray:
    """``g`` itself when it is a fresh array nobody else sees, else a copy (0-d sums of
    NumPy arrays are NumPy scalars: those become arrays)."""
    if type(g) is not ndarray:
        return np.array(g)
    return g.copy() if borrowed or not g.flags.writeable else g
