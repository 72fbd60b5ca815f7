"""Normalization, embeddings and attention (torch.nn.functional's "Layers").

Normalizations are one op each, as torch's (``NativeBatchNormBackward0``,
``NativeLayerNormBackward0``, ``NativeGroupNormBackward0``); their VJPs recompute the
normalized input x̂ = (x − μ)/σ from ``x`` with differentiable operations, so a double
backward works as torch's. ``instance_norm``, ``local_response_norm``, attention and
multi-head attention are composites, as torch builds them.

>>> from gradmagic.engine import tensor
>>> x = tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 5.0]], requires_grad=True)
>>> y = layer_norm(x, (3,))
>>> y.grad_fn.name, [round(v, 4) for v in y.data[0].tolist()]
('NativeLayerNormBackward0', [-1.2247, 0.0, 1.2247])
"""
from __future__ import annotations

import functools
import math
from collections import namedtuple
from typing import Any

import numpy as np

from ..masks import dropped
from ..registry import defop
from ..tensor import Tensor, apply, mark_modified
from . import call, data

PUBLIC = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm",
          "embedding", "embedding_bag", "scaled_dot_product_attention",
          "multi_head_attention_forward")
METHODS: tuple[str, ...] = ()


# ---------------------------------------------------------------- shared helpers
def _wide(fn):
    """Run ``fn`` on float64 copies of its float32/float16 arrays, the result in the first
    array's dtype: torch's CPU kernels accumulate the statistics accurately (batch norm in
    double), and cancellations (a gradient that is 0 in exact arithmetic) leave rounding
    noise of the size of theirs only when ours is as accurate. Tensors (``create_graph``)
    pass through unchanged."""
    @functools.wraps(fn)
    def wide(*args, **params):
        dtype = None
        conv = []
        for a in args:
            if type(a) is np.ndarray and a.dtype.kind == "f" and a.dtype.itemsize < 8:
                dtype = dtype or a.dtype
                a = a.astype(np.float64)
            conv.append(a)
        out = fn(*conv, **params)
        return out if dtype is None or type(out) is not np.ndarray else out.astype(dtype)
    return wide


def _normalized(x: Any, axes: tuple, eps: float) -> tuple[Any, Any]:
    """(x̂, 1/σ) over ``axes`` (biased variance), differentiable on Tensors."""
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    rstd = ((xc * xc).mean(axis=axes, keepdims=True) + eps) ** -0.5
    return xc * rstd, rstd


def _norm_dx(gw: Any, xhat: Any, rstd: Any, axes: tuple) -> Any:
    """∂/∂x of x̂ = (x − μ)/σ over ``axes``, given the cotangent ``gw`` of x̂."""
    return rstd * (gw - gw.mean(axis=axes, keepdims=True)
                   - xhat * (gw * xhat).mean(axis=axes, keepdims=True))


def _dead_end(grad: Any, *inputs: Any) -> Any:
    """``grad`` (a ``create_graph`` gradient) as torch gives it where its double backward
    leads nowhere: it requires grad (torch's node saved an input that does), but no
    gradient comes back through it. A leaf of its own does just that."""
    if isinstance(grad, Tensor) and not grad.requires_grad and any(
            isinstance(x, Tensor) and x.requires_grad for x in inputs):
        return Tensor(grad.data, requires_grad=True)
    return grad


def _bias_grad(g: Any, w: Any, axes: Any, x: Any) -> Any:
    """Σ g (over ``axes``; None: left to the engine's broadcasting sum). Without a weight,
    torch's double backward drops this path (the bias gradient does not depend on g):
    the same here, so second derivatives agree with torch's."""
    if w is None and isinstance(g, Tensor):
        return _dead_end(Tensor(g.data if axes is None else g.data.sum(axis=axes)), x, g)
    return g if axes is None else g.sum(axis=axes)


def _check_float(x: Any, what: str) -> None:
    if x.dtype.kind != "f":
        raise RuntimeError(f"{what}: expected a floating point input, got {x.dtype}")


# ---------------------------------------------------------------- batch norm
def _channel(t: Any, ndim: int) -> Any:
    """A per-channel vector shaped to broadcast against an (N, C, ...) input."""
    return t.reshape((1, -1) + (1,) * (ndim - 2))


def _bn_axes(x: Any) -> tuple:
    return (0,) + tuple(range(2, x.ndim))


def _affine(y: Any, w: Any, b: Any, ndim: int) -> Any:
    if w is not None:
        y = y * _channel(w, ndim)
    if b is not None:
        y = y + _channel(b, ndim)
    return y


@_wide
def _bn(x, w=None, b=None, eps=1e-5):
    _check_float(x, "batch_norm")
    return _affine(_normalized(x, _bn_axes(x), eps)[0], w, b, x.ndim)


@_wide
def _bn_x(g, ans, x, w, b, eps=1e-5):
    axes = _bn_axes(x)
    xhat, rstd = _normalized(x, axes, eps)
    return _norm_dx(g if w is None else g * _channel(w, x.ndim), xhat, rstd, axes)


@_wide
def _bn_w(g, ans, x, w, b, eps=1e-5):
    return (g * _normalized(x, _bn_axes(x), eps)[0]).sum(axis=_bn_axes(x))


def _bn_b(g, ans, x, w, b, eps=1e-5):
    return _bias_grad(g, w, _bn_axes(g), x)


defop("batch_norm", _bn, "NativeBatchNormBackward0", vjp=(_bn_x, _bn_w, _bn_b),
      formulas=("∂/∂x = γ·(g − mean(g) − x̂·mean(g·x̂))/σ  (batch statistics; x̂ = (x − μ)/σ)",
                "∂/∂γ = Σ g·x̂", "∂/∂β = Σ g"),
      saves=("x w", "x", ""))


def _bn_eval(x, mean, var, w=None, b=None, eps=1e-5):
    _check_float(x, "batch_norm")
    return _affine((x - _channel(mean, x.ndim)) * _channel((var + eps) ** -0.5, x.ndim), w, b, x.ndim)


def _bn_eval_x(g, ans, x, mean, var, w, b, eps=1e-5):
    scale = (var + eps) ** -0.5 if w is None else w * (var + eps) ** -0.5
    return _dead_end(g * _channel(scale, x.ndim), x)


def _bn_eval_w(g, ans, x, mean, var, w, b, eps=1e-5):
    xhat = (x - _channel(mean, x.ndim)) * _channel((var + eps) ** -0.5, x.ndim)
    return (g * xhat).sum(axis=_bn_axes(x))


def _bn_eval_b(g, ans, x, mean, var, w, b, eps=1e-5):
    return _bias_grad(g, w, _bn_axes(g), x)


defop("batch_norm_eval", _bn_eval, "NativeBatchNormBackward0",
      vjp=(_bn_eval_x, None, None, _bn_eval_w, _bn_eval_b),
      formulas=("∂/∂x = g·γ/√(running_var + ε)  (running statistics: an affine map)", "—", "—",
                "∂/∂γ = Σ g·x̂", "∂/∂β = Σ g"),
      saves=("w var", "", "", "x mean var", ""))


def batch_norm(input: Tensor, running_mean: Any = None, running_var: Any = None,
               weight: Any = None, bias: Any = None, training: bool = False,
               momentum: float | None = 0.1, eps: float = 1e-5) -> Tensor:
    """``F.batch_norm``: batch statistics when ``training`` (the running ones are then
    updated in place, as torch does), else the running statistics."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected 2D or more input (got {input.ndim}D input)")
    if not training:
        if running_mean is None or running_var is None:
            raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
        return apply("batch_norm_eval", input, running_mean, running_var, weight, bias, eps=eps)
    n = input.numel() // input.shape[1]
    if n <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, "
                         f"got input size {list(input.shape)}")
    out = apply("batch_norm", input, weight, bias, eps=eps)
    _update_running(input.data, _bn_axes(input.data), running_mean, running_var, momentum)
    return out


def _update_running(x: np.ndarray, axes: tuple, running_mean: Any, running_var: Any,
                    momentum: float | None) -> None:
    """torch's in-place update: r ← (1 − m)·r + m·batch (the variance unbiased)."""
    m = 0.0 if momentum is None else momentum
    n = x.size // x.shape[1] if x.ndim > 1 else x.size
    if running_mean is not None:
        mean = x.mean(axis=axes)
        running_mean.data[...] = (1 - m) * running_mean.data + m * mean.astype(running_mean.dtype)
        mark_modified(running_mean)
    if running_var is not None:
        var = x.var(axis=axes) * (n / max(n - 1, 1))
        running_var.data[...] = (1 - m) * running_var.data + m * var.astype(running_var.dtype)
        mark_modified(running_var)


def instance_norm(input: Tensor, running_mean: Any = None, running_var: Any = None,
                  weight: Any = None, bias: Any = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """``F.instance_norm`` as torch builds it: a batch norm of the input viewed as
    (1, N·C, ...), the affine parameters repeated N times, viewed back."""
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    shape = input.shape
    if input.numel() // (shape[0] * shape[1]) <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, "
                         f"got input size {list(shape)}")
    n = shape[0]
    w = None if weight is None else apply("repeat", weight, repeats=(n,))
    b = None if bias is None else apply("repeat", bias, repeats=(n,))
    xr = apply("reshape", input, shape=(1, shape[0] * shape[1]) + tuple(shape[2:]))
    out = apply("batch_norm", xr, w, b, eps=eps)
    if running_mean is not None or running_var is not None:  # mean over the batch of the
        stats = input.data.reshape(shape[0], shape[1], -1)       # per-instance updates
        m = momentum
        k = stats.shape[-1]
        if running_mean is not None:
            new = (1 - m) * running_mean.data + m * stats.mean(-1).astype(running_mean.dtype)
            running_mean.data[...] = new.mean(0)
            mark_modified(running_mean)
        if running_var is not None:
            var = stats.var(-1) * (k / max(k - 1, 1))
            new = (1 - m) * running_var.data + m * var.astype(running_var.dtype)
            running_var.data[...] = new.mean(0)
            mark_modified(running_var)
    return apply("reshape", out, shape=tuple(shape))


# ---------------------------------------------------------------- layer norm and group norm
def _ln_axes(x: Any, k: int) -> tuple:
    return tuple(range(x.ndim - k, x.ndim))


@_wide
def _ln(x, w=None, b=None, normalized_shape=(), eps=1e-5):
    _check_float(x, "layer_norm")
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != tuple(normalized_shape) or x.ndim < k:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with "
                           f"shape [*, {', '.join(map(str, normalized_shape))}], but got input of "
                           f"size{list(x.shape)}")
    y = _normalized(x, _ln_axes(x, k), eps)[0]
    if w is not None:
        y = y * w
    return y if b is None else y + b


@_wide
def _ln_x(g, ans, x, w, b, normalized_shape=(), eps=1e-5):
    axes = _ln_axes(x, len(normalized_shape))
    xhat, rstd = _normalized(x, axes, eps)
    return _norm_dx(g if w is None else g * w, xhat, rstd, axes)


@_wide
def _ln_w(g, ans, x, w, b, normalized_shape=(), eps=1e-5):
    return g * _normalized(x, _ln_axes(x, len(normalized_shape)), eps)[0]  # summed by the engine


defop("layer_norm", _ln, "NativeLayerNormBackward0",
      vjp=(_ln_x, _ln_w, lambda g, ans, x, w, b, normalized_shape=(), eps=1e-5: _bias_grad(g, w, None, x)),
      formulas=("∂/∂x = (g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))/σ  (x̂ = (x − μ)/σ over the last dims)",
                "∂/∂γ = Σ g·x̂", "∂/∂β = Σ g"),
      saves=("x w", "x", ""))


def layer_norm(input: Tensor, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    return apply("layer_norm", input, weight, bias, normalized_shape=shape, eps=eps)


def _grouped(x: Any, groups: int) -> Any:
    return x.reshape((x.shape[0], groups, -1))


@_wide
def _gn(x, w=None, b=None, num_groups=1, eps=1e-5):
    _check_float(x, "group_norm")
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, "
                           f"but got input of shape {list(x.shape)} and num_groups={num_groups}")
    y = _normalized(_grouped(x, num_groups), (2,), eps)[0].reshape(x.shape)
    return _affine(y, w, b, x.ndim)


@_wide
def _gn_x(g, ans, x, w, b, num_groups=1, eps=1e-5):
    xhat, rstd = _normalized(_grouped(x, num_groups), (2,), eps)
    gw = g if w is None else g * _channel(w, x.ndim)
    return _norm_dx(_grouped(gw, num_groups), xhat, rstd, (2,)).reshape(x.shape)


@_wide
def _gn_w(g, ans, x, w, b, num_groups=1, eps=1e-5):
    xhat = _normalized(_grouped(x, num_groups), (2,), eps)[0].reshape(x.shape)
    return (g * xhat).sum(axis=_bn_axes(x))


def _gn_b(g, ans, x, w, b, num_groups=1, eps=1e-5):
    return _bias_grad(g, w, _bn_axes(g), x)


defop("group_norm", _gn, "NativeGroupNormBackward0", vjp=(_gn_x, _gn_w, _gn_b),
      formulas=("∂/∂x = (g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))/σ  (μ, σ per sample and group)",
                "∂/∂γ = Σ g·x̂", "∂/∂β = Σ g"),
      saves=("x w", "x", ""))


def group_norm(input: Tensor, num_groups: int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    return apply("group_norm", input, weight, bias, num_groups=int(num_groups), eps=eps)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """``F.local_response_norm``: x / (k + α·mean of x² over ``size`` neighbouring channels)^β,
    as torch builds it (a zero-padded moving average over the channel axis)."""
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    if input.numel() == 0:
        return input
    c = input.shape[1]
    sq = input * input
    pad = [(0, 0)] * input.ndim
    pad[1] = (size // 2, (size - 1) // 2)
    padded = apply("pad_constant", sq, pad=tuple(pad))
    window = sum(apply("getitem", padded, index=(slice(None), slice(i, i + c)))
                 for i in range(size)) / size
    return input / (window * alpha + k) ** beta


def _pad_vjp(g, ans, a, pad):
    return call("getitem", g, index=tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, a.shape)))


defop("pad_constant", lambda a, pad: np.pad(a, pad), "ConstantPadNdBackward0", vjp=(_pad_vjp,),
      formulas=("∂/∂a = g without the padding",), saves=("",))


# ---------------------------------------------------------------- embeddings
def _check_indices(idx: np.ndarray, n: int) -> None:
    if idx.dtype.kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following "
                           f"scalar types: Long, Int; but got {idx.dtype} instead")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError("index out of range in self")


def _emb(w, indices, padding_idx=-1, scale_grad_by_freq=False):
    _check_indices(indices, w.shape[0])
    return w[indices]


def _emb_vjp(g, ans, w, indices, padding_idx=-1, scale_grad_by_freq=False):
    if not scale_grad_by_freq:
        keep = np.ones(indices.shape, bool) if padding_idx < 0 else indices != padding_idx
        g = g * keep.astype(data(g).dtype)[..., None]
        rows = (int(np.prod(indices.shape)), g.shape[-1])  # (not -1: an embedding of width 0)
        return call("index_backward", g.reshape(rows), shape=tuple(w.shape),
                    index=(indices.reshape(-1),))
    return call("embedding_dense_backward", g, indices, num_weights=w.shape[0], padding_idx=padding_idx)


def _emb_dense_backward(g, indices, num_weights, padding_idx=-1):
    """torch's embedding_dense_backward with scale_grad_by_freq: each row's sum divided by how
    often the row was looked up."""
    keep = np.ones(indices.shape, bool) if padding_idx < 0 else indices != padding_idx
    counts = np.bincount(indices.reshape(-1), minlength=num_weights)
    scaled = g * (keep / np.maximum(counts[indices], 1)).astype(g.dtype)[..., None]
    out = np.zeros((num_weights, g.shape[-1]), g.dtype)
    np.add.at(out, indices.reshape(-1), scaled.reshape(indices.size, g.shape[-1]))
    return out


# torch's double backward of it looks rows up again without the frequency scale
# (embedding_dense_double_backward): mirrored as is, not as the mathematical derivative
defop("embedding_dense_backward", _emb_dense_backward, "EmbeddingDenseBackwardBackward0",
      vjp=(lambda gg, ans, g, indices, num_weights, padding_idx=-1:
           call("embedding", gg, indices, padding_idx=padding_idx), None),
      formulas=("∂/∂g = gg[indices] (torch's: without the frequency scale)", "—"), saves=("indices", ""))


defop("embedding", _emb, "EmbeddingBackward0", vjp=(_emb_vjp,),
      formulas=("∂/∂W[i] = Σ g over the positions that looked up row i (none for padding_idx)",),
      saves=("",))


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """``F.embedding``: rows of ``weight``; ``max_norm`` first rescales, in place, the rows
    looked up whose norm is above it (as torch's ``embedding_renorm_``, without a graph)."""
    idx = np.asarray(data(input))
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported")
    n = weight.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx = padding_idx % n
    if max_norm is not None:
        _check_indices(idx, n)
        _renorm(weight, idx, max_norm, norm_type)
    return apply("embedding", weight, indices=idx, padding_idx=-1 if padding_idx is None else padding_idx,
                 scale_grad_by_freq=bool(scale_grad_by_freq))


def _renorm(weight: Tensor, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    rows = np.unique(idx % weight.shape[0])
    w = weight.data
    norms = np.linalg.norm(w[rows].astype(np.float64), ord=norm_type, axis=1)
    big = norms > max_norm
    if big.any():
        scale = (max_norm / (norms[big] + 1e-7)).astype(w.dtype)
        w[rows[big]] *= scale[:, None]
        mark_modified(weight)


def _bags(indices, offsets, n_bags, include_last):
    """The bag of each index position (offsets as torch takes them)."""
    n = indices.shape[0]
    starts = offsets[:n_bags]
    if starts.size and (starts[0] != 0 or (np.diff(starts) < 0).any() or starts[-1] > n):
        raise RuntimeError("offsets must start at 0 and be non-decreasing, at most input.size(0)")
    return np.searchsorted(starts, np.arange(n), side="right") - 1


def _bag_parts(w, indices, offsets, mode, padding_idx, include_last):
    n_bags = offsets.shape[0] - (1 if include_last else 0)
    bag = _bags(indices, offsets, n_bags, include_last)
    keep = np.ones(indices.shape, bool) if padding_idx < 0 else indices != padding_idx
    counts = np.bincount(bag[keep], minlength=n_bags)
    return n_bags, bag, keep, counts


def _embag(w, psw=None, indices=None, offsets=None, mode="mean", padding_idx=-1,
           include_last=False):
    _check_indices(indices, w.shape[0])
    n_bags, bag, keep, counts = _bag_parts(w, indices, offsets, mode, padding_idx, include_last)
    rows = w[indices]
    if psw is not None:
        rows = rows * psw[:, None]
    out = np.zeros((n_bags, w.shape[1]), w.dtype)
    if mode == "max":
        out[...] = -np.inf
        np.maximum.at(out, bag[keep], rows[keep])
        out[counts == 0] = 0
        return out
    np.add.at(out, bag[keep], rows[keep])
    if mode == "mean":
        out /= np.maximum(counts, 1).astype(w.dtype)[:, None]
    return out


def _embag_w(g, ans, w, psw, indices=None, offsets=None, mode="mean", padding_idx=-1,
             include_last=False):
    n_bags, bag, keep, counts = _bag_parts(w, indices, offsets, mode, padding_idx, include_last)
    graph, g, gd = isinstance(g, Tensor), data(g), data(g).dtype
    w, ans, psw = data(w), data(ans), data(psw)
    if mode == "max":  # the gradient goes to the first row holding the maximum (torch's argmax)
        rows = w[indices]
        pos = np.where(keep[:, None] & (rows == ans[bag]), np.arange(len(bag))[:, None],
                       len(bag))
        first = np.full(g.shape, len(bag))
        np.minimum.at(first, bag, pos)
        contrib = (np.arange(len(bag))[:, None] == first[bag]) * g[bag]
    else:
        contrib = g[bag] * keep[:, None].astype(gd)
        if mode == "mean":
            contrib = contrib / np.maximum(counts, 1).astype(gd)[bag][:, None]
        if psw is not None:
            contrib = contrib * psw[:, None]
    out = np.zeros(w.shape, gd)
    np.add.at(out, indices, contrib)
    return Tensor(out) if graph else out  # (torch has no double backward here: no graph)


def _embag_psw(g, ans, w, psw, indices=None, offsets=None, mode="mean", padding_idx=-1,
               include_last=False):
    n_bags, bag, keep, counts = _bag_parts(w, indices, offsets, mode, padding_idx, include_last)
    out = (data(g)[bag] * data(w)[indices]).sum(axis=1) * keep
    return Tensor(out) if isinstance(g, Tensor) else out


defop("embedding_bag", _embag, "EmbeddingBagBackward0", vjp=(_embag_w, _embag_psw),
      formulas=("∂/∂W[i] = Σ over the bags using row i of g[bag] (÷ bag size for mean; "
                "only the arg-max row for max)", "∂/∂weights[j] = g[bag of j]·W[index j]"),
      saves=("w ans", "w"))


def embedding_bag(input: Any, weight: Tensor, offsets: Any = None, max_norm: float | None = None,
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean",
                  sparse: bool = False, per_sample_weights: Any = None,
                  include_last_offset: bool = False, padding_idx: int | None = None) -> Tensor:
    """``F.embedding_bag``: sums, means or maxima of bags of rows of ``weight``."""
    idx = np.asarray(data(input))
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode}")
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding_bag: scale_grad_by_freq/sparse are not supported")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError("embedding_bag: per_sample_weights was not None. "
                                  f"per_sample_weights is only supported for mode='sum' (got mode='{mode}')")
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None")
        offsets = np.arange(0, idx.size, idx.shape[1], dtype=np.int64)
        idx = idx.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = apply("reshape", per_sample_weights, shape=(-1,))
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {idx.ndim}")
    n = weight.shape[0]
    pad = -1 if padding_idx is None else padding_idx % n
    if max_norm is not None:
        _check_indices(idx, n)
        _renorm(weight, idx, max_norm, norm_type)
    return apply("embedding_bag", weight, per_sample_weights, indices=idx,
                 offsets=np.asarray(data(offsets)), mode=mode, padding_idx=pad,
                 include_last=bool(include_last_offset))


# ---------------------------------------------------------------- attention
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    """softmax(q·kᵀ·scale + mask)·v, as torch's math path builds it (q and k each scaled by
    √scale); with ``dropout_p``, the weights are dropped with torch's mask (``engine/masks.py``)
    before the product with v."""
    return _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)[0]


def _attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
               enable_gqa=False):
    """(output, attention weights, dropped as the output used them)."""
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa is not supported")
    L, S = q.shape[-2], k.shape[-2]
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    root = math.sqrt(s)
    scores = apply("matmul", q * root, apply("transpose", k * root, dim0=-2, dim1=-1))
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                               "set when is_causal=True")
        attn_mask = np.tril(np.ones((L, S), bool))
    if attn_mask is not None:
        m = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
        if m.dtype == np.bool_:
            scores = apply("where", m, scores, -math.inf)
        else:
            scores = scores + attn_mask
    weights = dropped(apply("softmax", scores, axis=-1), dropout_p)
    return apply("matmul", weights, v), weights


MHAOutput = namedtuple("MHAOutput", ["attn_output", "attn_output_weights"])


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,
                                 in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p,
                                 out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """torch's ``F.multi_head_attention_forward`` (sequence-first inputs) step for step, as
    a composite: in-projections, split into heads, scaled dot-product attention, output
    projection; the attention weights (averaged over heads) when ``need_weights``."""
    from .. import functional as EF
    if bias_k is not None or bias_v is not None or add_zero_attn or static_k is not None \
            or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: bias_k/bias_v, add_zero_attn and "
                                  "static_k/v are not supported")
    if not training:
        dropout_p = 0.0
    batched = query.ndim == 3
    if not batched:
        query, key, value = (EF.unsqueeze(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = EF.unsqueeze(key_padding_mask, 0)
    tgt, bsz, embed = query.shape
    src = key.shape[0]
    key_padding_mask = _canonical_mask(key_padding_mask, query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                           "Transformer module method `generate_square_subsequent_mask` to "
                           "create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None
    else:
        attn_mask = _canonical_mask(attn_mask, query.dtype)
        if key_padding_mask is not None:
            is_causal = False
    if embed != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, "
                             f"but got {embed}")
    head = embed // num_heads
    if use_separate_proj_weight:
        bq, bk, bv = (None,) * 3 if in_proj_bias is None else EF.chunk(in_proj_bias, 3)
        q, k, v = (EF.linear(query, q_proj_weight, bq), EF.linear(key, k_proj_weight, bk),
                   EF.linear(value, v_proj_weight, bv))
    else:
        q, k, v = _in_projection_packed(EF, query, key, value, in_proj_weight, in_proj_bias)
    if attn_mask is not None and attn_mask.ndim == 2:
        attn_mask = EF.unsqueeze(attn_mask, 0)
    q = EF.transpose(EF.reshape(q, (tgt, bsz * num_heads, head)), 0, 1)
    k = EF.transpose(EF.reshape(k, (src, bsz * num_heads, head)), 0, 1)
    v = EF.transpose(EF.reshape(v, (src, bsz * num_heads, head)), 0, 1)
    if key_padding_mask is not None:
        kpm = EF.reshape(EF.expand(EF.reshape(key_padding_mask, (bsz, 1, 1, src)),
                                   (bsz, num_heads, 1, src)), (bsz * num_heads, 1, src))
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if need_weights:
        scores = EF.bmm(q * math.sqrt(1.0 / float(head)), EF.transpose(k, -2, -1))
        if attn_mask is not None:
            scores = attn_mask + scores  # torch's baddbmm(attn_mask, q, kᵀ)
        weights = dropped(EF.softmax(scores, -1), dropout_p)
        out = EF.reshape(EF.transpose(EF.bmm(weights, v), 0, 1), (tgt * bsz, embed))
        out = EF.reshape(EF.linear(out, out_proj_weight, out_proj_bias), (tgt, bsz, embed))
        weights = EF.reshape(weights, (bsz, num_heads, tgt, src))
        if average_attn_weights:
            weights = EF.mean(weights, dim=1)
        if not batched:
            out, weights = EF.squeeze(out, 1), EF.squeeze(weights, 0)
        return MHAOutput(out, weights)
    if attn_mask is not None:
        attn_mask = EF.unsqueeze(attn_mask, 0) if attn_mask.shape[0] == 1 and attn_mask.ndim == 3 \
            else EF.reshape(attn_mask, (bsz, num_heads, -1, src))
    q, k, v = (EF.reshape(t, (bsz, num_heads, t.shape[1], head)) for t in (q, k, v))
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = EF.reshape(EF.permute(out, 2, 0, 1, 3), (bsz * tgt, embed))
    out = EF.reshape(EF.linear(out, out_proj_weight, out_proj_bias), (tgt, bsz, embed))
    if not batched:
        out = EF.squeeze(out, 1)
    return MHAOutput(out, None)


def _canonical_mask(mask: Any, dtype: Any) -> Any:
    """A boolean mask (True: masked out) as an additive float one (−inf), as torch's."""
    if mask is None:
        return None
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype == np.bool_:
        return Tensor(np.where(m, -np.inf, 0).astype(dtype))
    if m.dtype.kind != "f":
        raise AssertionError("only bool and floating types of masks are supported")
    return mask if isinstance(mask, Tensor) else Tensor(m)


def _in_projection_packed(EF, q, k, v, w, b):
    """torch's ``_in_projection_packed``: one linear when q, k, v are one tensor."""
    embed = q.shape[-1]
    if k is v and q is k:  # self-attention: one projection, split in three
        proj = EF.linear(q, w, b)
        proj = EF.reshape(proj, tuple(proj.shape[:-1]) + (3, embed))
        proj = EF.squeeze(EF.transpose(EF.unsqueeze(proj, 0), 0, -2), -2)
        return EF.select(proj, 0, 0), EF.select(proj, 0, 1), EF.select(proj, 0, 2)
    wq, wk, wv = EF.chunk(w, 3)
    bq, bk, bv = (None,) * 3 if b is None else EF.chunk(b, 3)
    return EF.linear(q, wq, bq), EF.linear(k, wk, bk), EF.linear(v, wv, bv)
