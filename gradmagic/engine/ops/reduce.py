"""Reductions and normalisations: sum, mean, prod, var/std, max/min, norm, logsumexp,
softmax, log_softmax, cumsum, argmax/argmin.

Parameters use NumPy's names (``axis``, ``keepdims``); ``apply`` also accepts torch's
``dim``/``keepdim``.

>>> from gradmagic.engine import tensor
>>> x = tensor([1.0, 3.0, 3.0], requires_grad=True)
>>> x.max().backward(); x.grad   # ties share the gradient evenly, as torch's max()
tensor([0.0000, 0.5000, 0.5000])
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import defop
from ..tensor import Tensor
from . import call, data, norm_axis, unreduce


def _reduced_name(full: str, with_dim: str):
    return lambda inputs, params: full if params.get("axis") is None else with_dim


def _count(shape: tuple[int, ...], axis) -> int:
    """Elements reduced over ``axis`` (math.prod: np.prod costs microseconds on a tuple)."""
    axes = norm_axis(axis, len(shape))
    return math.prod([shape[i] for i in axes] if axes is not None else shape)


def _sum(a, axis=None, keepdims=False, dtype=None):
    if axis is None and not keepdims and dtype is None:
        return a.sum()
    return a.sum(axis=norm_axis(axis, a.ndim), keepdims=keepdims, dtype=dtype)


def _mean(a, axis=None, keepdims=False):
    if a.dtype.kind not in "fc":
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {a.dtype}")
    ax = norm_axis(axis, a.ndim)  # add.reduce then divide, as np.mean, minus its wrapper
    return a.sum(axis=ax, keepdims=keepdims) / (a.size if ax is None else _count(a.shape, ax))


defop("sum", _sum, _reduced_name("SumBackward0", "SumBackward1"),
      vjp=(lambda g, ans, a, axis=None, keepdims=False, dtype=None:
           unreduce(g, a.shape, axis, keepdims),),
      formulas=("∂/∂a = g (broadcast)",))
defop("mean", _mean, _reduced_name("MeanBackward0", "MeanBackward1"),
      vjp=(lambda g, ans, a, axis=None, keepdims=False:
           unreduce(g, a.shape, axis, keepdims) / max(_count(a.shape, axis), 1),),
      formulas=("∂/∂a = g / n (broadcast)",))


def _prod_vjp(g, ans, a, axis=None, keepdims=False):
    x = data(a)
    if (x != 0).all():
        return unreduce(g, a.shape, axis, keepdims) * unreduce(ans, a.shape, axis, keepdims) / a
    # with zeros: g times the product of the other elements
    ax = norm_axis(axis, x.ndim)
    if isinstance(a, Tensor):  # create_graph: as torch's, the gradient has a graph to a
        return unreduce(g, a.shape, axis, keepdims) * _others(a, ax)
    # plain backward: the products via exclusive cumulative products
    flat = x.reshape(-1) if ax is None else np.moveaxis(x, ax[0], -1)
    left = np.cumprod(np.concatenate([np.ones_like(flat[..., :1]), flat[..., :-1]], -1), -1)
    right = np.flip(np.cumprod(np.concatenate(
        [np.ones_like(flat[..., :1]), np.flip(flat, -1)[..., :-1]], -1), -1), -1)
    others = left * right
    others = others.reshape(x.shape) if ax is None else np.moveaxis(others, -1, ax[0])
    return unreduce(g, a.shape, axis, keepdims) * others


def _others(a: Tensor, ax: tuple | None) -> Tensor:
    """Product of the other elements along the reduced axis, written with ops (differentiable
    again): each row of an n×n copy, its diagonal set to 1, multiplied out."""
    flat = call("reshape", a, shape=(-1,)) if ax is None else call("transpose", a, dim0=ax[0], dim1=-1)
    n = flat.shape[-1]
    rows = call("expand", call("unsqueeze", flat, axis=-2), shape=flat.shape[:-1] + (n, n))
    others = call("prod", call("where", np.eye(n, dtype=bool), 1.0, rows), axis=-1)
    if ax is None:
        return call("reshape", others, shape=a.shape)
    return call("transpose", others, dim0=ax[0], dim1=-1)


defop("prod", lambda a, axis=None, keepdims=False: a.prod(axis=norm_axis(axis, a.ndim),
                                                           keepdims=keepdims),
      _reduced_name("ProdBackward0", "ProdBackward1"), vjp=(_prod_vjp,),
      formulas=("∂/∂a = g·∏(others)",), saves=("a ans",), quiet=True)


def _var(a, axis=None, keepdims=False, correction=1):
    ax = norm_axis(axis, a.ndim)
    n = _count(a.shape, axis)
    if n - correction > 0:
        return a.var(axis=ax, keepdims=keepdims, ddof=correction)
    # inf/nan as torch gives, without NumPy's "Degrees of freedom"/"empty slice" warnings
    with np.errstate(all="ignore"):
        centered = a - a.sum(axis=ax, keepdims=True) / n
        out = (centered * centered).sum(axis=ax, keepdims=keepdims) / (n - correction)
        return out + np.nan if n == 0 else out  # empty: nan (not -0.0)


def _centered(a, axis):
    """``a`` minus its mean over ``axis`` (an empty slice gives an empty result, no warning)."""
    ax = norm_axis(axis, a.ndim)
    return a - a.sum(axis=ax, keepdims=True) / max(_count(a.shape, axis), 1)


def _var_vjp(g, ans, a, axis=None, keepdims=False, correction=1):
    dof = _count(a.shape, axis) - correction  # torch: 2/dof is inf when dof <= 0
    return unreduce(g, a.shape, axis, keepdims) * _centered(a, axis) * (2 / dof if dof > 0 else math.inf)


def _std_vjp(g, ans, a, axis=None, keepdims=False, correction=1):
    """torch's std_backward term for term: var's VJP of g / (2·std), masked to 0 where std
    is 0, so that a double backward gives what torch's does (NaN at the masked division)."""
    grad_var = _masked(g / (2 * ans), data(ans) == 0)
    return _var_vjp(grad_var, None, a, axis, keepdims, correction)


defop("var", _var, "VarBackward0", vjp=(_var_vjp,),
      formulas=("∂/∂a = g·2(a − mean) / (n − c)",), saves=("a",), quiet=True)
defop("std", lambda a, axis=None, keepdims=False, correction=1:
      np.sqrt(_var(a, axis, keepdims, correction)), "StdBackward0", vjp=(_std_vjp,),
      formulas=("∂/∂a = g·(a − mean) / ((n − c)·out)",), saves=("a ans",), quiet=True)


# ---------------------------------------------------------------- max / min
def _even_vjp(g, ans, a, axis=None, keepdims=False):
    """Ties share the gradient evenly (torch's amax/amin and full max()/min())."""
    hit = data(a) == data(unreduce(ans, a.shape, axis, keepdims))
    count = hit.sum(axis=norm_axis(axis, a.ndim), keepdims=True)
    return unreduce(g, a.shape, axis, keepdims) * (hit / count).astype(data(a).dtype)


def _full_extreme_vjp(g, ans, a, axis=None, keepdims=False):
    """Full ``max()``/``min()``: as ``_even_vjp``, except that a NaN result sends the
    gradient to the NaN entries, shared evenly (torch's evenly_distribute_backward)."""
    x = data(a)
    if axis is None and x.dtype.kind in "fc" and np.isnan(data(ans)).any():
        hit = np.isnan(x)
        return (np.asarray(g) * hit / hit.sum()).astype(x.dtype)
    return _even_vjp(g, ans, a, axis, keepdims)


def _extreme(fn):
    return lambda a, axis=None, keepdims=False: fn(a, axis=norm_axis(axis, a.ndim),
                                                   keepdims=keepdims)


def _index_vjp(pick):
    """max/min with dim: the whole gradient goes to the returned index."""
    def vjp(g, ans, a, axis, keepdims=False):
        x = data(a)
        idx = np.expand_dims(pick(x, axis=axis), axis)
        hit = np.zeros(x.shape, bool)
        np.put_along_axis(hit, idx, True, axis)
        return unreduce(g, a.shape, axis, keepdims) * hit
    return vjp


for _name, _np_fn, _pick, _torch in (("max", np.max, np.argmax, "Max"),
                                     ("min", np.min, np.argmin, "Min")):
    defop(_name, _extreme(_np_fn), f"{_torch}Backward1", vjp=(_full_extreme_vjp,),
          formulas=("∂/∂a = g·[a = out] / #ties",), saves=("a ans",))
    defop("a" + _name, _extreme(_np_fn), f"A{_name}Backward0", vjp=(_even_vjp,),
          formulas=("∂/∂a = g·[a = out] / #ties",), saves=("a ans",))
    defop(_name + "_dim",
          lambda a, axis, keepdims=False, _f=_np_fn: _f(a, axis=axis, keepdims=keepdims),
          f"{_torch}Backward0", vjp=(_index_vjp(_pick),),
          formulas=("∂/∂a = g at the returned index",), saves=("a",))
    defop("arg" + _name, lambda a, axis=None, keepdims=False, _p=_pick:
          _p(a, axis=axis, keepdims=keepdims), "", nondiff=True, formulas=("not differentiable",))


# ---------------------------------------------------------------- norms
def _norm(a, ord=2, axis=None, keepdims=False):  # noqa: A002
    """torch's vector norm. Over a single element it is that element's absolute value
    itself, as torch's is (no x² that overflows near the dtype's maximum, no rounding of
    (|x|³)^(1/3)); over more, |x|ᵖ summed in the input's dtype, as torch's CPU kernel does."""
    ax, x = norm_axis(axis, a.ndim), np.abs(a)
    if ord != 0 and (a.size if ax is None else math.prod(a.shape[i] for i in ax)) == 1:
        return x.sum(axis=ax, keepdims=keepdims)
    if ord in (2, "fro"):
        return np.sqrt((x * x).sum(axis=ax, keepdims=keepdims))
    if ord == np.inf:
        return x.max(axis=ax, keepdims=keepdims)
    if ord == -np.inf:
        return x.min(axis=ax, keepdims=keepdims)
    if ord == 0:
        return (x != 0).sum(axis=ax, keepdims=keepdims).astype(a.dtype)
    return ((x ** ord).sum(axis=ax, keepdims=keepdims)) ** (1.0 / ord)


def _masked(t, mask):
    """``t`` with 0 where ``mask`` (torch's ``masked_fill_(mask, 0)``, differentiable in ``t``)."""
    return call("where", mask, 0.0, t)


def _norm_vjp(g, ans, a, ord=2, axis=None, keepdims=False):  # noqa: A002
    """torch's norm_backward, term for term, so that a double backward gives what torch's
    does: 0 where the norm is 0 at first order, and NaN there at second order (the masked
    quotient's own VJP divides 0 by 0, in torch as here). sign(a) is an op: torch's
    ``sgn()`` keeps a (zero) graph to ``a``."""
    gu, n = unreduce(g, a.shape, axis, keepdims), unreduce(ans, a.shape, axis, keepdims)
    zero = data(n) == 0
    if ord in (2, "fro"):
        return gu * _masked(a / n, zero)
    if ord == 0:
        return gu * 0
    sign = call("sign", a)
    if ord == 1:
        return sign * gu
    if ord in (np.inf, -np.inf):
        return sign * _even_vjp(g, ans, np.abs(a), axis, keepdims)
    if ord < 1:
        return sign * _masked(np.abs(a) ** (ord - 1), data(a) == 0) * gu * n ** (1 - ord)
    scaled = sign * np.abs(a) ** (ord - 1) if ord < 2 else a * np.abs(a) ** (ord - 2)
    return scaled * _masked(gu / n ** (ord - 1), zero)


defop("norm", _norm, "LinalgVectorNormBackward0", vjp=(_norm_vjp,),
      formulas=("∂/∂a = g·a / ‖a‖  (p = 2)",), saves=("a ans",), promote="float", quiet=True)


# ---------------------------------------------------------------- log-sum-exp and softmax
def _logsumexp(a, axis, keepdims=False):
    ax = norm_axis(axis, a.ndim)
    m = a.max(axis=ax, keepdims=True) if a.size else np.zeros((1,) * a.ndim, a.dtype)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.exp(a - m).sum(axis=ax, keepdims=True)) + m
    if keepdims:
        return out
    return out.reshape(()) if ax is None else out.squeeze(axis=ax)


def _softmax(a, axis):
    if not a.size:  # an empty tensor (max has no identity): an empty result, as torch
        return a.copy()
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(a, axis):
    if not a.size:
        return a.copy()
    s = a - a.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


defop("logsumexp", _logsumexp, "LogsumexpBackward0",
      vjp=(lambda g, ans, a, axis, keepdims=False:
           unreduce(g, a.shape, axis, keepdims) * np.exp(a - unreduce(ans, a.shape, axis, keepdims)),),
      formulas=("∂/∂a = g·softmax(a)",), saves=("a ans",), promote="float", quiet=True)
defop("softmax", _softmax, "SoftmaxBackward0",
      vjp=(lambda g, ans, a, axis: ans * (g - (g * ans).sum(axis=axis, keepdims=True)),),
      formulas=("∂/∂a = out·(g − Σ g·out)",), saves=("ans",), promote="float")
defop("log_softmax", _log_softmax, "LogSoftmaxBackward0",
      vjp=(lambda g, ans, a, axis: g - np.exp(ans) * g.sum(axis=axis, keepdims=True),),
      formulas=("∂/∂a = g − exp(out)·Σ g",), saves=("ans",), promote="float")


def _cumsum_vjp(g, ans, a, axis):
    if np.ndim(data(a)) == 0:
        return g  # a 0-d cumsum is the identity
    return call("flip", call("cumsum", call("flip", g, dims=(axis,)), axis=axis), dims=(axis,))


# np.cumsum of a 0-d array is 1-d; torch keeps the input's shape
defop("cumsum", lambda a, axis: np.cumsum(a, axis=axis).reshape(np.shape(a)), "CumsumBackward0",
      vjp=(_cumsum_vjp,),
      formulas=("∂/∂a = reverse cumsum of g",))
