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

Running a rule on absolute values bounds its terms only when the rule is made of products
and sums. The normalizations' rules subtract (g − mean(g) − x̂·mean(g·x̂)), and recompute x̂
from the input, so on absolute values they cancel again and normalize the wrong numbers:
``TERMS`` gives them their own Σ|terms|. Their size is set by |x̂|'s rounding: x − μ,
rounded in float32, is off by ε·(|x| + |μ|), so |x̂| is bounded by (|x| + |μ|)/σ, which is far
above 1 when a channel's values sit close together far from 0 (batch norm over two values
per channel in a diverging loop: |μ|/σ ≈ 2·10⁴). ``value_terms`` is the same bound for the
normalized output itself.
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

from typing import Any, Callable, Optional

import numpy as np

from gradmagic.engine.broadcast import sum_to
from gradmagic.engine.ops import data


def magnitudes(steps: list, output_of: Optional[Callable[[Any], Any]] = None) -> dict:
    """``id(leaf or retained tensor) -> Σ|terms|`` (float64 array of its shape) for the
    gradients a recorded backward accumulated, and ``id(node) ->`` the same for the gradient
    that reached each node (``steps``: the backward's ``BackwardStep`` list; ``output_of``:
    a node's output as recorded, for the rules that read it after the backward freed it)."""
    pending: dict = {}
    out: dict = {}
    for step in steps:
        if step.kind == "node":
            v = step.node
            gm = pending.pop(id(v), None)
            if gm is None:
                gm = _abs(step.grad_output)
            out[id(v)] = gm  # (what reached the node: a hook on its output sees this)
            _send(v, gm, step.input_grads, pending, output_of)
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


def _send(v: Any, gm: np.ndarray, input_grads: tuple, pending: dict,
          output_of: Optional[Callable[[Any], Any]] = None) -> None:
    """Each input's Σ|terms| from node ``v``, added to what ``pending`` holds for its parent."""
    for p, m in zip(v.parents, input_terms(v, gm, input_grads, output_of)):
        if p is not None and m is not None:
            k = id(p)
            pending[k] = pending[k] + m if k in pending else m


def input_terms(v: Any, gm: np.ndarray, input_grads: tuple,
                output_of: Optional[Callable[[Any], Any]] = None) -> list:
    """Σ|terms| of each input's gradient from node ``v`` (the VJP rules on absolute values;
    ``gm``: Σ|terms| of the gradient that reached it), None for an input with no parent or
    no bound. Never below the gradient ``input_grads[i]`` it bounds.

    >>> import gradmagic.engine as ge
    >>> a = ge.tensor(np.array([-2.0]), requires_grad=True)
    >>> b = ge.tensor(np.array([1.0]), requires_grad=True)
    >>> [float(m[0]) for m in input_terms(ge.maximum(a, b).grad_fn, np.array([5.0]), (np.zeros(1), np.ones(1)))]
    [5.0, 5.0]
    """
    op, params = v.opdef, v.params or {}
    raw = v.raw_inputs()
    args = [_abs(x) if _is_array(x) else x for x in raw]
    ans = v.ans
    if ans is None and op.saves_ans:  # freed by the backward: as recorded, else recomputed
        ans = output_of(v) if output_of is not None else None
        if ans is None:
            ans = _forward(v, raw, params)
    terms = TERMS.get(op.name)
    signed = [_f64(x) for x in raw]
    signed_ans = _f64(ans)
    ans = _abs(ans) if ans is not None else None
    out: list = []
    for i, p in enumerate(v.parents):
        gi = input_grads[i] if i < len(input_grads) else None
        if p is None:
            out.append(None)
            continue
        try:
            if op.name == "subgraph":  # a custom Function: its VJP re-runs (and re-checks) the
                raise NotImplementedError  # user's backward; bounded by the gradient it gave
            with np.errstate(all="ignore"):
                m = terms(i, gm, *signed, **params) if terms is not None else None
                if m is None:
                    m = _on_absolute_and_signed(op, i, gm, (ans, args), (signed_ans, signed), params)
                m = np.abs(np.asarray(data(m), np.float64))
            shape = np.shape(data(raw[i]))
            if m.shape != shape:
                m = sum_to(m, shape)
        except Exception:  # a rule that cannot run on absolute values: the gradient itself
            out.append(None if gi is None else _abs(gi))
            continue
        if gi is not None and np.shape(gi) == m.shape:
            m = np.maximum(m, _abs(gi))  # never below the gradient it bounds
        out.append(m)
    return out


def _on_absolute_and_signed(op: Any, i: int, gm: np.ndarray, absolute: tuple, signed: tuple,
                            params: dict) -> np.ndarray:
    """Input ``i``'s rule on ``gm`` with absolute inputs (a sum of products: Σ|terms|) and
    with the signed ones (a choice by comparing them, as maximum's, routes ``gm`` where the
    gradient went; |x1| > |x2| may choose the other input), the larger of the two."""
    rule = op.vjp(i)

    def run(ans: Any, args: list) -> np.ndarray:
        m = rule(gm, ans, *args, index=i, **params) if op.variadic else rule(gm, ans, *args, **params)
        return np.abs(np.asarray(data(m), np.float64))

    m = run(*absolute)
    try:
        by_sign = run(*signed)
    except Exception:  # (the absolute rule stands alone)
        return m
    return np.fmax(m, by_sign) if by_sign.shape == m.shape else m


#: a value within this factor of its dtype's largest may overflow inside one kernel and not in
#: another: torch's vectorised float32 GELU computes x·(1 + erf(x/√2)) before halving it (2x
#: overflows at 3.4e38, its one-element path does not), NumPy's the other way round
NEAR_MAX = 16.0


def _overflow(res: tuple, engine: Any, ref: np.ndarray, terms: Any, what: str,
              summed: bool = True) -> tuple:
    """``res``: ±inf or NaN on one side only. Where one side is finite and the terms summed
    into the element exceed the dtype's range, whether the sum overflows depends on the order
    it is summed in (3.4e38·(−0.86) + 3.4e38·1.47 is 2.1e38 added one way, inf the other):
    neither side is wrong, and which order torch's kernel took is unknown, so the check is
    ``unchecked``, with why (never ``agree``). Two different specials (inf against −inf or
    NaN) stay a difference, and the other elements must still agree within rounding.

    >>> r = ("differ", None, None, 1e-4, 1e-6, "NaN/inf where torch differs")
    >>> big = np.float32(3e38)
    >>> _overflow(r, np.array([big], np.float32), np.array([np.inf], np.float32), np.array([6e38]), "value")[0]
    'unchecked'
    >>> _overflow(r, np.array([1.0], np.float32), np.array([np.inf], np.float32), np.array([2.0]), "value")[0]
    'differ'

    The same holds where the finite side or the terms come within ``NEAR_MAX`` of the dtype's
    largest value, a sum or not (``summed`` False: an elementwise op, whose ``terms`` are the op
    on its inputs' magnitudes): an intermediate of the kernel's order of operations may overflow
    there (GroupNorm's x·(rstd·w) with w = 3.4e38).

    >>> _overflow(r, big, np.array([np.inf], np.float32), np.array([3e38]), "value", summed=False)[0]
    'unchecked'
    >>> inf, nan = np.array([np.inf], np.float32), np.array([np.nan], np.float32)
    >>> _overflow(r, inf, nan, np.array([np.inf]), "value", summed=False)[0]  # GELU(inf)
    'unchecked'
    >>> _overflow(r, inf, nan, np.array([1.0]), "value", summed=False)[0]  # (a finite input)
    'differ'
    """
    rt, at = res[3], res[4]
    with np.errstate(all="ignore"):
        e, r = np.asarray(engine, np.float64), np.asarray(ref, np.float64)
        # NaN terms: an overflow of Σ|terms| (inf − inf); of an elementwise op, a NaN input
        t = np.where(np.isnan(terms), np.inf if summed else 0.0, np.asarray(terms, np.float64))
        same = (e == r) | (np.isnan(e) & np.isnan(r))
        special = ~same & ~(np.isfinite(e) & np.isfinite(r))
        limit = float(np.finfo(ref.dtype).max)
        over = t > limit  # (an infinite input of an elementwise op too: GELU(inf) is NaN vectorised)
        if np.any(special & ~np.isfinite(e) & ~np.isfinite(r) & ~(over & (np.isnan(e) | np.isnan(r)))):
            return res  # +inf against −inf; inf against NaN unless terms beyond the range made it
        size = np.fmax(t, np.where(np.isfinite(e), np.abs(e), np.abs(r)))
        if not special.any() or not np.all(size[special] > limit / NEAR_MAX):
            return res
    if not _explained(engine, ref, terms, rt, at, ~special)[0]:  # (the other elements)
        return res
    if summed and np.all(over[special]):
        detail = (f"not checked: the terms summed into this {what} exceed {ref.dtype.name}'s range "
                  f"(up to {float(t[special].max()):.3g}), so whether it overflows to ±inf depends on the "
                  f"order they are added in, which differs between torch's kernel and NumPy's")
    else:
        detail = (f"not checked: this {what} or its inputs come within a factor {NEAR_MAX:g} of "
                  f"{ref.dtype.name}'s largest value (up to {float(size[special].max()):.3g}), where whether an "
                  f"intermediate overflows to ±inf (or an infinite input gives ±inf or NaN) depends on the "
                  f"order of the kernel's operations, which differs between torch's kernels and NumPy's")
    return ("unchecked", None, None, rt, at, detail)


def _explained(engine: Any, ref: np.ndarray, terms: Any, rt: float, at: float,
               where: Optional[np.ndarray] = None) -> tuple:
    """(does rounding explain every element, in ``where`` when given: ``|e − t| ≤ atol +
    rtol·max(max|t|, Σ|terms|)``, with no allowance from infinite terms; max|t|; max Σ|terms|)."""
    with np.errstate(all="ignore"):
        t = np.where(np.isfinite(terms), terms, 0.0)
        finite = np.abs(ref[np.isfinite(ref)])
        scale = float(finite.max()) if finite.size else 0.0
        diff = np.abs(np.asarray(engine, np.float64) - np.asarray(ref, np.float64))
        same = (engine == ref) | (np.isnan(engine) & np.isnan(ref))
        diff = np.where(same if where is None else same | ~where, 0.0, diff)
        return bool(np.all(diff <= at + rt * np.maximum(scale, t))), scale, float(t.max())


def _forward(v: Any, raw: list, params: dict) -> Any:
    """Node ``v``'s output, recomputed from its kept inputs (None when they were not kept): a
    backward that did not retain its graph frees the outputs that VJPs read (amin, exp,
    tanh, ...), and a rule run without it would fall back to the gradient itself, far below
    Σ|terms| when they cancel."""
    try:
        with np.errstate(all="ignore"):
            return v.opdef.fwd(*[data(x) for x in raw], **params)
    except Exception:
        return None


# ----- normalizations: Σ|terms| of rules that cancel ------------------------------------------
def _xhat_bound(x: np.ndarray, axes: tuple, eps: float) -> tuple:
    """(bound on |x̂| with the rounding of x − μ, 1/σ) over ``axes``."""
    mu = x.mean(axis=axes, keepdims=True)
    rstd = (np.square(x - mu).mean(axis=axes, keepdims=True) + eps) ** -0.5
    return (np.abs(x) + np.abs(mu)) * rstd, rstd


def _dx_terms(gw: np.ndarray, xb: np.ndarray, rstd: np.ndarray, axes: tuple) -> np.ndarray:
    """Σ|terms| of (g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))/σ, given |g·γ| and the bound on |x̂|."""
    return rstd * (gw + gw.mean(axis=axes, keepdims=True) + xb * (gw * xb).mean(axis=axes, keepdims=True))


def _channel(w: np.ndarray, ndim: int) -> np.ndarray:
    return np.abs(w).reshape((1, -1) + (1,) * (ndim - 2))


def _bn_terms(i, gm, x, w=None, b=None, eps=1e-5):
    """batch_norm (batch statistics): Σ|terms| of ∂/∂x and ∂/∂γ; None: the plain rule (∂/∂β)."""
    _, axes = _statistics_axes("batch_norm", x, {})
    xb, rstd = _xhat_bound(x, axes, eps)
    if i == 0:
        return _dx_terms(gm if w is None else gm * _channel(w, x.ndim), xb, rstd, axes)
    return (gm * xb).sum(axis=axes) if i == 1 else None


def _ln_terms(i, gm, x, w=None, b=None, normalized_shape=(), eps=1e-5):
    """layer_norm: as ``_bn_terms`` over the last ``len(normalized_shape)`` dims."""
    _, axes = _statistics_axes("layer_norm", x, {"normalized_shape": normalized_shape})
    xb, rstd = _xhat_bound(x, axes, eps)
    if i == 0:
        return _dx_terms(gm if w is None else gm * np.abs(w), xb, rstd, axes)
    return gm * xb if i == 1 else None  # (summed to γ's shape by the caller)


def _gn_terms(i, gm, x, w=None, b=None, num_groups=1, eps=1e-5):
    """group_norm: as ``_bn_terms`` per sample and group."""
    xg, axes = _statistics_axes("group_norm", x, {"num_groups": num_groups})
    xb, rstd = _xhat_bound(xg, axes, eps)
    if i == 0:
        gw = gm if w is None else gm * _channel(w, x.ndim)
        return _dx_terms(gw.reshape(xg.shape), xb, rstd, axes).reshape(x.shape)
    if i == 1:
        return (gm * xb.reshape(x.shape)).sum(axis=(0,) + tuple(range(2, x.ndim)))
    return None


#: op name -> ``terms(i, Σ|terms| of g, *inputs (signed, float64), **params)``: Σ|terms| of
#: input ``i``'s gradient, or None for the plain rule on absolute values
TERMS: dict = {"batch_norm": _bn_terms, "layer_norm": _ln_terms, "group_norm": _gn_terms}


def value_terms(node: Any) -> Any:
    """Σ|terms| of a normalization's output (|γ|·bound on |x̂| + |β|) for the engine ``node``
    that computed it; None for other ops (their value terms: the op on absolute values)."""
    op = node.opdef.name
    if op not in TERMS:
        return None
    x, w, b = (_f64(a) for a in node.raw_inputs()[:3])
    params = node.params or {}
    grouped, axes = _statistics_axes(op, x, params)
    xb = _xhat_bound(grouped, axes, params.get("eps", 1e-5))[0].reshape(x.shape)
    per_channel = op != "layer_norm"  # (γ and β: per channel, or over the normalized dims)
    out = xb if w is None else xb * (_channel(w, x.ndim) if per_channel else np.abs(w))
    return out if b is None else out + (_channel(b, x.ndim) if per_channel else np.abs(b))


def _statistics_axes(op: str, x: np.ndarray, params: dict) -> tuple:
    """(x shaped for the normalization's statistics, the axes they are taken over): per channel
    (batch_norm), over the last ``len(normalized_shape)`` dims (layer_norm), per sample and
    group (group_norm)."""
    if op == "group_norm":
        return x.reshape(x.shape[0], params.get("num_groups", 1), -1), (2,)
    k = len(params.get("normalized_shape", ())) if op == "layer_norm" else None
    return x, tuple(range(x.ndim - k, x.ndim)) if k is not None else (0,) + tuple(range(2, x.ndim))


def moments_overflow(node: Any) -> Optional[str]:
    """Why a normalization's value cannot be checked when its input's squared deviations from
    the mean leave the dtype's range (``x`` near float32's largest value): a kernel that computes
    the variance in that dtype, as torch's CPU kernels do for float32, gets inf (then 1/σ = 0 and
    the output is β), one that computes it wider does not. Neither is wrong; None otherwise.

    >>> import gradmagic.engine as ge
    >>> x = ge.tensor(np.array([[3e38, 1.0, -2e38]], np.float32), requires_grad=True)
    >>> moments_overflow(ge.layer_norm(x, (3,)).grad_fn)[:39]
    'not checked: the squared deviations of '
    >>> moments_overflow(ge.layer_norm(x / 1e20, (3,)).grad_fn) is None
    True
    """
    op = node.opdef.name
    x = data(node.raw_inputs()[0])
    if op not in TERMS or not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.itemsize >= 8 or not x.size:
        return None
    grouped, axes = _statistics_axes(op, x.astype(np.float64), node.params or {})
    with np.errstate(all="ignore"):
        top = float(np.nanmax(np.square(grouped - grouped.mean(axis=axes, keepdims=True))))
    limit = float(np.finfo(x.dtype).max)
    if not top > limit / NEAR_MAX:
        return None
    return (f"not checked: the squared deviations of this normalization's input from its mean reach "
            f"{top:.3g}, beyond {x.dtype.name}'s range, so its variance overflows in a kernel that "
            f"computes it in {x.dtype.name} (torch's) and not in one that computes it wider")


def _f64(x: Any) -> Any:
    """A float array as float64 (signed); anything else unchanged."""
    a = data(x)
    return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a


def _is_array(x: Any) -> bool:
    return isinstance(data(x), np.ndarray)


def _abs(x: Any) -> np.ndarray:
    a = np.asarray(data(x))
    if a.dtype.kind not in "fc":
        return a  # masks and indices stay as they are
    return np.abs(a).astype(np.float64)


def rounding(res: tuple, engine: Any, ref: np.ndarray, steps: list, key: int, cache: dict,
             output_of: Optional[Callable[[Any], Any]] = None) -> tuple:
    """A gradient of a recorded backward (``steps``) that failed the plain rule, judged against
    Σ|terms| of the leaf or node ``key`` (``cache``: one dict per backward call, so the
    magnitudes are computed once however many gradients ask; ``output_of``: see
    ``magnitudes``)."""
    if engine is None or ref.dtype.kind != "f":
        return res
    if "all" not in cache:
        try:
            cache["all"] = magnitudes(steps, output_of)
        except Exception:  # a rule that fails on absolute values: no bound, the check stands
            cache["all"] = {}
    return within_rounding(res, engine, ref, cache["all"].get(key), "gradient")


def node_key(rec: Any) -> int:
    """The key ``magnitudes`` files a recorded tensor's gradient under: its node, else itself."""
    return id(rec.enode) if rec.enode is not None else id(rec.et)


#: ops whose value is a sum of products (a contraction or a reduction): the only ones whose
#: result can overflow in one summation order and not in another (``_overflow``)
SUMMING_OPS = frozenset({
    "addbmm", "addmm", "addmv", "addr", "baddbmm", "bmm", "conv", "conv_transpose", "cumsum",
    "dot", "einsum", "linear", "matmul", "mean", "mm", "mv", "outer", "sum", "trace", "index_add",
    "scatter_add", "embedding_bag", "avg_pool2d", "adaptive_avg_pool2d", "col2im"})


def within_rounding(res: tuple, engine: np.ndarray, ref: np.ndarray, terms: Any,
                    what: str = "value", summed: bool = True) -> tuple:
    """``res`` (a failed comparison of ``engine`` with torch's ``ref``) judged element by
    element against ``terms``, the size of the terms summed into each element:
    ``|e − t| ≤ atol + rtol·max(max|t|, Σ|terms|)``. ``agree`` (with the bound in its
    detail) when rounding explains every element; ``unchecked`` when ±inf or NaN on one side
    is an overflow that the summation order decides (``_overflow``; ``summed``: the value is a
    sum of products); else ``res`` unchanged."""
    if terms is None or np.shape(terms) != ref.shape or not ref.size or ref.dtype.kind != "f" \
            or np.shape(engine) != ref.shape:
        return res
    rt, at = res[3], res[4]
    if res[1] is None:  # ±inf or NaN on one side only
        return _overflow(res, engine, ref, terms, what, summed)
    explained, scale, big = _explained(engine, ref, terms, rt, at)
    if not explained:
        return res  # more than rounding can explain: the difference stands as it is
    return ("agree", res[1], res[2], rt, at,
            f"within {ref.dtype.name} rounding: |Δ| {res[1]:.3g} ≤ atol + rtol·{max(scale, big):.3g}, "
            f"where {big:.3g} is the size of the terms summed into this {what} (they cancel)")
