"""How large the terms behind a gradient were: the scale of its rounding error.

A gradient is a sum of products along every path from the root. Summed in another order
(torch's kernels against NumPy's), two correct float32 results differ by a few ulps *of
the terms*, not of the result: when the terms cancel (``c.grad`` of a polynomial fit is a
sum of 200 terms of size 0.01 that comes to 1e-6), that is far more than ``rtol`` times
the result. ``magnitudes`` runs the recorded backward steps once more on absolute values
(|g|, |inputs|, |output|, float64) with the same VJP rules, so each input receives an upper
estimate of Σ|terms| at every reduction (``sum_to`` of a broadcast, the sums inside matmul,
dot, sum); the tolerance of a gradient is then ``atol + rtol · max(max|t|, max Σ|terms|)``.
This runs only for a gradient that failed the plain rule, so it costs nothing otherwise.
A wrong rule (a sign, a missing factor 2, a transposed product) is off by the size of the
terms themselves, far above ``rtol`` of them, and is still caught.

>>> from gradmagic.engine import tensor, record_backward
>>> w = tensor([1.0, -1.0], requires_grad=True)
>>> with record_backward() as calls:
...     (w * tensor([3.0, 3.0])).sum().backward()
>>> float(magnitudes(calls[0].steps)[id(w)].max())
3.0
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gradmagic.engine.broadcast import sum_to


def magnitudes(steps: list) -> dict:
    """``id(leaf or retained tensor) -> Σ|terms|`` (float64 array of its shape) for the
    gradients a recorded backward accumulated, and ``id(node) ->`` the same for the gradient
    that reached each node (``steps``: the backward's ``BackwardStep`` list)."""
    pending: dict = {}
    out: dict = {}
    for step in steps:
        if step.kind == "node":
            v = step.node
            gm = pending.pop(id(v), None)
            if gm is None:
                gm = _abs(step.grad_output)
            out[id(v)] = gm  # (what reached the node: a hook on its output sees this)
            _send(v, gm, step.input_grads, pending)
        elif step.kind == "accumulate" and step.tensor is not None:
            t = step.tensor
            m = pending.get(id(t.grad_fn)) if t.grad_fn is not None else pending.pop(id(t), None)
            if m is None and step.added is not None:
                m = _abs(step.added)
            if m is not None:
                if step.before is not None:
                    m = m + _abs(step.before)
                out[id(t)] = m
    return out


def _send(v: Any, gm: np.ndarray, input_grads: tuple, pending: dict) -> None:
    """Each input's Σ|terms| from node ``v`` (the VJP rules on absolute values)."""
    op, params = v.opdef, v.params or {}
    raw = v.raw_inputs()
    args = [_abs(getattr(x, "data", x)) if _is_array(x) else x for x in raw]
    ans = _abs(v.ans) if v.ans is not None else None
    for i, p in enumerate(v.parents):
        if p is None:
            continue
        gi = input_grads[i] if i < len(input_grads) else None
        try:
            with np.errstate(all="ignore"):
                rule = op.vjp(i)
                m = rule(gm, ans, *args, index=i, **params) if op.variadic else rule(gm, ans, *args, **params)
                m = np.abs(np.asarray(getattr(m, "data", m), np.float64))
            shape = np.shape(getattr(raw[i], "data", raw[i]))
            if m.shape != shape:
                m = sum_to(m, shape)
        except Exception:  # a rule that cannot run on absolute values: the gradient itself
            if gi is None:
                continue
            m = _abs(gi)
        if gi is not None and np.shape(gi) == m.shape:
            m = np.maximum(m, _abs(gi))  # never below the gradient it bounds
        k = id(p)
        pending[k] = pending[k] + m if k in pending else m


def _is_array(x: Any) -> bool:
    return isinstance(getattr(x, "data", x), np.ndarray)


def _abs(x: Any) -> np.ndarray:
    a = np.asarray(getattr(x, "data", x))
    if a.dtype.kind not in "fc":
        return a  # masks and indices stay as they are
    return np.abs(a).astype(np.float64)


def rounding(res: tuple, engine: Any, ref: np.ndarray, steps: list, key: int, cache: dict) -> tuple:
    """A gradient of a recorded backward (``steps``) that failed the plain rule, judged against
    Σ|terms| of the leaf or node ``key`` (``cache``: one dict per backward call, so the
    magnitudes are computed once however many gradients ask)."""
    if engine is None or ref.dtype.kind != "f":
        return res
    if "all" not in cache:
        try:
            cache["all"] = magnitudes(steps)
        except Exception:  # a rule that fails on absolute values: no bound, the check stands
            cache["all"] = {}
    return within_rounding(res, engine, ref, cache["all"].get(key), "gradient")


def node_key(rec: Any) -> int:
    """The key ``magnitudes`` files a recorded tensor's gradient under: its node, else itself."""
    return id(rec.enode) if rec.enode is not None else id(rec.et)


def within_rounding(res: tuple, engine: np.ndarray, ref: np.ndarray, terms: Any,
                    what: str = "value") -> tuple:
    """``res`` (a failed comparison of ``engine`` with torch's ``ref``) judged element by
    element against ``terms``, the size of the terms summed into each element:
    ``|e − t| ≤ atol + rtol·max(max|t|, Σ|terms|)``. ``agree`` (with the bound in its
    detail) when rounding explains every element, else ``res`` unchanged."""
    if terms is None or np.shape(terms) != ref.shape or not ref.size or ref.dtype.kind != "f" \
            or np.shape(engine) != ref.shape:
        return res
    rt, at = res[3], res[4]
    with np.errstate(all="ignore"):
        t = np.where(np.isfinite(terms), terms, 0.0)  # no allowance from infinite terms
        finite = np.abs(ref[np.isfinite(ref)])
        scale = float(finite.max()) if finite.size else 0.0
        diff = np.abs(np.asarray(engine, np.float64) - np.asarray(ref, np.float64))
        same = (engine == ref) | (np.isnan(engine) & np.isnan(ref))
        diff = np.where(same, 0.0, diff)
        if not np.all(diff <= at + rt * np.maximum(scale, t)):
            return res  # more than rounding can explain: the difference stands as it is
        big = float(t.max())
    return ("agree", res[1], res[2], rt, at,
            f"within {ref.dtype.name} rounding: |Δ| {res[1]:.3g} ≤ atol + rtol·{max(scale, big):.3g}, "
            f"where {big:.3g} is the size of the terms summed into this {what} (they cancel)")
