"""Losses of ``torch.nn.functional``: mse_loss, cross_entropy, nll_loss,
binary_cross_entropy, binary_cross_entropy_with_logits.

>>> from gradmagic.engine import tensor
>>> logits = tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
>>> loss = apply_ce = __import__("gradmagic.engine", fromlist=["x"]).cross_entropy(
...     logits, tensor([0, 1]))
>>> round(loss.item(), 4)
0.1269
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import defop
from . import call, data

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: np.ndarray, reduction: str, count: int | None = None) -> np.ndarray:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.size if count is None else count)


def _scale(g, shape, reduction: str, count: int | None = None):
    """The cotangent of each per-element loss."""
    if reduction == "none":
        return g
    n = int(np.prod(shape)) if count is None else count
    return g / n if reduction == "mean" else g


# ---------------------------------------------------------------- regression
defop("mse_loss", lambda a, b, reduction="mean": _reduce((a - b) ** 2, reduction), "MseLossBackward0",
      vjp=(lambda g, ans, a, b, reduction="mean": _scale(g, np.broadcast_shapes(a.shape, b.shape),
                                                          reduction) * (2 * (a - b)),
           lambda g, ans, a, b, reduction="mean": _scale(g, np.broadcast_shapes(a.shape, b.shape),
                                                          reduction) * (-2 * (a - b))),
      formulas=("∂/∂a = g·2(a − b)/n", "∂/∂b = −g·2(a − b)/n"), saves=("a b", "a b"),
      promote="same")


# ---------------------------------------------------------------- classification
def _class_axis(x) -> int:
    return 0 if x.ndim == 1 else 1


def _nll_name(inputs: tuple, params: dict) -> str:
    """torch's node: NllLoss2DBackward0 for (N, C, d1, ...) inputs."""
    return "NllLoss2DBackward0" if np.ndim(data(inputs[0])) > 2 else "NllLossBackward0"


def _check_weight(weight, n_classes: int, who: str = "") -> None:
    if weight is not None and weight.size != n_classes:
        raise RuntimeError(f"{who}weight tensor should be defined either for all {n_classes} classes "
                           f"or no classes but got weight tensor of shape: [{weight.size}]")


def _class_weight(weight, ndim: int, c: int):
    """``weight`` (C,) shaped to broadcast along the class axis ``c``."""
    return weight.reshape((1,) * c + (weight.size,) + (1,) * (ndim - c - 1))


def _picked(logp, target, ignore_index, weight=None):
    """(−logp at the target class, per-sample weight (0 where ignored), one-hot of the targets)."""
    c = _class_axis(logp)
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    onehot = np.zeros(logp.shape, bool)
    np.put_along_axis(onehot, np.expand_dims(safe, c), True, c)
    onehot &= np.expand_dims(valid, c)
    w = valid.astype(logp.dtype) if weight is None else np.where(valid, weight[safe], 0).astype(
        logp.dtype, copy=False)
    return -(logp * onehot).sum(axis=c), w, onehot


def _nll(logp, target, reduction="mean", ignore_index=-100, weight=None):
    c = _class_axis(logp)
    _check_weight(weight, logp.shape[c])
    if target.dtype.kind == "f":  # class probabilities (cross_entropy)
        t = target if weight is None else target * _class_weight(weight, logp.ndim, c)
        loss = -(logp * t).sum(axis=c)
        return _reduce(loss, reduction, loss.size if loss.ndim else 1)
    if target.size and ((target >= logp.shape[c]) | (target < 0)
                        & (target != ignore_index)).any():
        raise IndexError(f"Target {int(target.max())} is out of bounds.")
    loss, w, _ = _picked(logp, target, ignore_index, weight)
    # mean: divided by the summed weights of the counted samples (0/0 = nan if none)
    return _reduce(loss * w, reduction, w.sum())


def _nll_vjp(g, ans, logp, target, reduction="mean", ignore_index=-100, weight=None, softmax=None):
    """Cotangent of log-probabilities (``softmax``: add softmax·Σ for cross_entropy)."""
    t, c, x = data(target), _class_axis(logp), data(logp)
    if t.dtype.kind == "f":
        wt = t if weight is None else t * _class_weight(weight, x.ndim, c)
        count = t.size // t.shape[c] if t.ndim > 1 else 1
    else:
        _, w, onehot = _picked(x, t, ignore_index, weight)
        wt, count = onehot * np.expand_dims(w, c), w.sum()
    # every target ignored: torch's loss is nan (0/0) but its gradient is zero (total weight 0)
    # (0, not g·0: torch never reads g then, so a nan g still gives 0)
    gs = call("where", np.zeros((), bool), g, np.zeros((), data(g).dtype)) \
        if reduction == "mean" and not count else _scale(g, None, reduction, count)
    gs = gs.reshape(gs.shape[:c] + (1,) + gs.shape[c:]) if reduction == "none" else gs
    wt = wt.astype(x.dtype, copy=False)
    grad = gs * -wt
    if softmax is not None:
        grad = grad + softmax * (gs * wt.sum(axis=c, keepdims=True))
    return grad


def _log_softmax(x):
    s = x - x.max(axis=_class_axis(x), keepdims=True)
    return s - np.log(np.exp(s).sum(axis=_class_axis(x), keepdims=True))


def _ce(x, target, reduction="mean", ignore_index=-100, weight=None):
    return _nll(_log_softmax(x), target, reduction, ignore_index, weight)


def _ce_vjp(g, ans, x, target, reduction="mean", ignore_index=-100, weight=None):
    sm = call("softmax", x, axis=_class_axis(x))
    return _nll_vjp(g, None, x, target, reduction, ignore_index, weight, softmax=sm)


defop("cross_entropy", _ce, _nll_name, vjp=(_ce_vjp, None),
      formulas=("∂/∂logits = g·w[t]·(softmax − onehot)/Σw", "—"), saves=("x target",), quiet=True)
defop("nll_loss", _nll, _nll_name, vjp=(_nll_vjp, None),
      formulas=("∂/∂logp = −g·w[t]·onehot/Σw", "—"), saves=("target",), quiet=True)


# ---------------------------------------------------------------- binary
def _bce(p, y, reduction="mean", weight=None):
    if ((p < 0) | (p > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):  # torch clamps the logs at −100
        loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
    return _reduce(loss if weight is None else loss * weight, reduction)


def _weighted(g, weight):
    return g if weight is None else g * weight


def _bce_p(g, ans, p, y, reduction="mean", weight=None):
    gs = _weighted(_scale(g, p.shape, reduction), weight)
    return gs * (p - y) / call("clamp", (1 - p) * p, min=1e-12)


def _bce_y(g, ans, p, y, reduction="mean", weight=None):
    logs = call("clamp", np.log1p(-p), min=-100) - call("clamp", np.log(p), min=-100)
    return _weighted(_scale(g, p.shape, reduction), weight) * logs


defop("binary_cross_entropy", _bce, "BinaryCrossEntropyBackward0", vjp=(_bce_p, _bce_y),
      formulas=("∂/∂p = g·w·(p − y) / (p(1 − p))", "∂/∂y = g·w·(log(1 − p) − log p)"),
      saves=("p y", "p"), promote="same", quiet=True)


def _bce_logits(x, y, reduction="mean", weight=None, pos_weight=None):
    softplus_neg = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))  # log(1 + e^−x)
    if pos_weight is None:
        loss = (1 - y) * x + softplus_neg
    else:  # torch: the positive term weighted by pos_weight
        loss = (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_neg
    return _reduce(loss if weight is None else loss * weight, reduction)


def _bcel_x(g, ans, x, y, reduction="mean", weight=None, pos_weight=None):
    gs = _weighted(_scale(g, x.shape, reduction), weight)
    if pos_weight is None:
        return gs * (call("sigmoid", x) - y)
    py = pos_weight * y
    return gs * ((py + 1 - y) * call("sigmoid", x) - py)


def _bcel_y(g, ans, x, y, reduction="mean", weight=None, pos_weight=None):
    gs = _weighted(_scale(g, x.shape, reduction), weight)
    if pos_weight is None:
        return gs * -x
    return gs * ((pos_weight - 1) * -call("logsigmoid", x) - x)


defop("binary_cross_entropy_with_logits", _bce_logits, "BinaryCrossEntropyWithLogitsBackward0",
      vjp=(_bcel_x, _bcel_y),
      formulas=("∂/∂x = g·w·((pw·y + 1 − y)·σ(x) − pw·y)", "∂/∂y = −g·w·(x + (pw − 1)·log σ(x))"),
      saves=("x y", "x"), promote="same")


# ---------------------------------------------------------------- robust regression, soft margin
def _smooth_l1(a, b, reduction="mean", beta=1.0):
    d = np.abs(a - b)
    return _reduce(np.where(d < beta, 0.5 * d * d / (beta or 1), d - 0.5 * beta).astype(
        d.dtype, copy=False), reduction)


def _smooth_l1_vjp(g, ans, a, b, reduction="mean", beta=1.0):
    d = a - b  # torch: d/β inside (−β, β), sign(d) outside
    inside = np.abs(data(d)) < beta
    return _scale(g, d.shape, reduction) * call("where", inside, d / (beta or 1), call("sign", d))


def _huber(a, b, reduction="mean", delta=1.0):
    d = np.abs(a - b)
    return _reduce(np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)).astype(
        d.dtype, copy=False), reduction)


def _huber_vjp(g, ans, a, b, reduction="mean", delta=1.0):
    d = a - b  # torch: d inside [−δ, δ], δ·sign(d) outside
    inside = np.abs(data(d)) <= delta
    return _scale(g, d.shape, reduction) * call("where", inside, d, call("sign", d) * delta)


defop("smooth_l1_loss", _smooth_l1, "SmoothL1LossBackward0",
      vjp=(_smooth_l1_vjp, lambda g, *args, **kw: -_smooth_l1_vjp(g, *args, **kw)),
      formulas=("∂/∂a = g·(d/β if |d| < β else sign d)/n", "∂/∂b = −∂/∂a"), saves=("a b", "a b"),
      promote="same")
defop("huber_loss", _huber, "HuberLossBackward0",
      vjp=(_huber_vjp, lambda g, *args, **kw: -_huber_vjp(g, *args, **kw)),
      formulas=("∂/∂a = g·(d if |d| ≤ δ else δ·sign d)/n", "∂/∂b = −∂/∂a"), saves=("a b", "a b"),
      promote="same")


def _soft_margin(x, y, reduction="mean"):
    # torch's result has the input's dtype, whatever the target's
    return _reduce(np.log1p(np.exp(-y * x)), reduction).astype(x.dtype, copy=False)


defop("soft_margin_loss", _soft_margin, "SoftMarginLossBackward0",
      vjp=(lambda g, ans, x, y, reduction="mean":
           _scale(g, np.broadcast_shapes(x.shape, y.shape), reduction) * -y * call("sigmoid", -y * x),
           None),  # torch: not differentiable wrt the target
      formulas=("∂/∂x = −g·y·σ(−yx)/n", "—"), saves=("x y",),
      quiet=True)


# ---------------------------------------------------------------- torch-named functions
def _legacy(size_average, reduce, reduction: str) -> str:
    """torch's ``_Reduction.legacy_get_string``: the old size_average/reduce flags."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _reduced(loss, reduction: str):
    """``loss`` reduced as torch's ``apply_loss_reduction`` (Mean/Sum nodes)."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _not_differentiable(x, fn: str, arg: str) -> None:
    """torch's error for a tensor argument its kernel does not differentiate."""
    from .._state import STATE
    if STATE.grad_enabled and getattr(x, "requires_grad", False):
        raise RuntimeError(f"The function '{fn}' is not differentiable with respect to argument "
                           f"'{arg}'. This input cannot have requires_grad True.")


_SCALAR = {"float16": "Half", "float32": "Float", "float64": "Double"}


def _same_dtype(weight, input) -> None:
    """torch's nll_loss kernels take a weight of the input's dtype only."""
    if weight is None:
        return
    w, x = np.asarray(data(weight)).dtype, np.asarray(data(input)).dtype
    if w != x and x.kind == "f":
        raise RuntimeError(f"expected scalar type {_SCALAR.get(str(x), x)} but found "
                           f"{_SCALAR.get(str(w), w)}")


def _EF():
    from .. import functional
    return functional


def _param(x, like=None):
    """A tensor argument torch does not differentiate (weights, pos_weight) as an ndarray, in
    the dtype of ``like`` (torch's kernels compute in the input's dtype)."""
    if x is None:
        return None
    arr = np.asarray(data(x))
    dtype = np.asarray(data(like)).dtype if like is not None else arr.dtype
    return arr.astype(dtype, copy=False) if dtype.kind == "f" else arr


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    reduction = _legacy(size_average, reduce, reduction)
    if weight is None:
        return _EF().apply("mse_loss", input, target, reduction=reduction)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = (input - target) ** 2 * weight
    return loss.sum() / weight.sum() if reduction == "mean" else _reduced(loss, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """``|input − target|``, reduced (composite in torch: Sub, Abs, Mean)."""
    reduction = _legacy(size_average, reduce, reduction)
    loss = _EF().abs(input - target)
    if weight is None:
        return _reduced(loss, reduction)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    return loss.sum() / weight.sum() if reduction == "mean" else _reduced(loss, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0):
    reduction = _legacy(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:  # torch: plain l1_loss
        return l1_loss(input, target, reduction=reduction)
    return _EF().apply("smooth_l1_loss", input, target, reduction=reduction, beta=beta)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    if weight is None:
        return _EF().apply("huber_loss", input, target, reduction=reduction, delta=delta)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = _EF().apply("huber_loss", input, target, reduction="none", delta=delta) * weight
    return _reduced(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    _not_differentiable(target, "soft_margin_loss", "target")
    return _EF().apply("soft_margin_loss", input, target,
                       reduction=_legacy(size_average, reduce, reduction))


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    _not_differentiable(weight, "nll_loss_forward", "weight")
    _same_dtype(weight, input)
    if np.asarray(data(target)).dtype.kind == "f":  # (class probabilities: cross_entropy only)
        raise RuntimeError("expected scalar type Long but found Float")
    kw = {} if weight is None else {"weight": _param(weight)}
    return _EF().apply("nll_loss", input, target, reduction=_legacy(size_average, reduce, reduction),
                       ignore_index=ignore_index, **kw)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
    """Index targets without smoothing: one op (softmax − onehot). Probability targets and
    label smoothing: composed as torch composes them (log_softmax, then sums)."""
    EF = _EF()
    reduction = _legacy(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    w = _param(weight)
    x = data(input)
    c = _class_axis(x)
    n_classes = x.shape[c]
    _check_weight(w, n_classes, "cross_entropy: ")
    t = data(target)
    if t.dtype.kind != "f":
        _not_differentiable(weight, "nll_loss_forward", "weight")
        _same_dtype(weight, input)
    if t.dtype.kind != "f" and not label_smoothing:
        kw = {} if w is None else {"weight": w}
        return EF.apply("cross_entropy", input, target, reduction=reduction,
                        ignore_index=ignore_index, **kw)
    logp = EF.log_softmax(input, c)
    wb = None if w is None else _class_weight(w, x.ndim, c)  # (probabilities: promoted)
    share = label_smoothing / n_classes if n_classes else 0.0  # (no class: nothing to share)
    if t.dtype.kind == "f":
        if label_smoothing:
            target = target * (1 - label_smoothing) + share
        prod = logp * target if wb is None else logp * target * wb
        if reduction == "none":
            return -prod.sum(c)
        total = -prod.sum()
        if reduction != "mean":
            return total
        return total / (x.size // n_classes) if x.size else total * np.nan  # (torch: empty -> NaN)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    ignored = t == ignore_index
    smooth = -(logp if wb is None else logp * wb).sum(c)
    smooth = EF.where(ignored, 0.0, smooth)
    if reduction == "mean":
        safe = np.where(ignored, 0, t)
        count = (~ignored).sum() if w is None else np.where(ignored, 0, w[safe]).sum()
        smooth = smooth.sum() / np.asarray(count, x.dtype)
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1 - label_smoothing) + smooth * share


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    _not_differentiable(weight, "binary_cross_entropy", "weight")
    kw = {} if weight is None else {"weight": _param(weight, input)}
    return _EF().apply("binary_cross_entropy", input, target,
                       reduction=_legacy(size_average, reduce, reduction), **kw)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    given = {k: v for k, v in (("weight", weight), ("pos_weight", pos_weight)) if v is not None}
    for k, v in given.items():
        _not_differentiable(v, "binary_cross_entropy_with_logits", k)
    kw = {k: _param(v, input) for k, v in given.items()}
    return _EF().apply("binary_cross_entropy_with_logits", input, target,
                       reduction=_legacy(size_average, reduce, reduction), **kw)


def _xlogy(t):
    """t·log t with 0 where t = 0 (torch's xlogy(t, t))."""
    EF = _EF()
    pos = data(t) > 0
    return t * EF.log(EF.where(pos, t, 1.0))


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False):
    """Σ target·(log target − input) (composite in torch: Xlogy/Exp, Mul, Sub, then the
    reduction; ``batchmean`` divides the sum by the batch size)."""
    EF = _EF()
    reduction = _legacy(size_average, reduce, reduction)
    if log_target:
        loss = EF.exp(target) * (target - input)
    else:
        loss = _xlogy(target) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / data(input).shape[0] if np.ndim(data(input)) else total
    return _reduced(loss, reduction)


def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None, reduction: str = "mean"):
    EF = _EF()
    reduction = _legacy(size_average, reduce, reduction)
    if reduction not in REDUCTIONS:
        raise ValueError(reduction + " is not a valid value for reduction")
    loss = EF.exp(input) - target * input if log_input else input - target * EF.log(input + eps)
    if full:  # Stirling's term, 0 where target <= 1
        big = data(target) > 1
        t = EF.where(big, target, 2.0)
        stirling = t * EF.log(t) - t + 0.5 * EF.log(2 * math.pi * t)
        loss = loss + EF.where(big, stirling, 0.0)
    return _reduced(loss, reduction)


def _var_shape(input, var):
    """torch's checks of ``var``'s shape (homoscedastic: one dimension of size 1, or none)."""
    xs, vs = tuple(data(input).shape), tuple(data(var).shape)
    if vs == xs:
        return var
    if xs[:-1] == vs:
        return _EF().unsqueeze(var, -1)
    if len(xs) == len(vs) and sum(v for x, v in zip(xs, vs) if x != v) == 1:
        return var
    raise ValueError("var is of incorrect size")


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean"):
    """½(log var + (input − target)²/var), var clamped at eps without stopping its gradient
    (torch clamps a clone under no_grad)."""
    from ..tensor import Tensor as ET
    EF = _EF()
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = ET(np.full(data(input).shape, var, data(input).dtype))
    elif (data(var) < 0).any():
        raise ValueError("var has negative entry/entries")
    var = _var_shape(input, var)
    if reduction not in REDUCTIONS:
        raise ValueError(reduction + " is not valid")
    v = data(var)
    var = var + np.where(v < eps, eps - v, 0).astype(v.dtype, copy=False)  # (not inf − inf at var = inf)
    loss = 0.5 * (EF.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduced(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean"):
    from .activations import logsigmoid
    reduction = _legacy(size_average, reduce, reduction)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    class_dim = np.ndim(data(input)) - 1
    loss = loss.sum(class_dim) / data(input).shape[class_dim]
    return _reduced(loss, reduction)


def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None,
                          reduce=None, reduction: str = "mean"):
    """1 − cos where target = 1, max(0, cos − margin) where target = −1 (torch's Loss.cpp)."""
    EF = _EF()
    reduction = _legacy(size_average, reduce, reduction)
    dim = np.ndim(data(target))
    prod = (input1 * input2).sum(dim)
    mag1 = (input1 * input1).sum(dim) + 1e-12
    mag2 = (input2 * input2).sum(dim) + 1e-12
    cos = prod / EF.sqrt(mag1 * mag2)
    t = data(target)
    out = EF.where(t == 1, 1 - cos, 0.0) + EF.where(t == -1, EF.clamp(cos - margin, min=0), 0.0)
    return _reduced(out, reduction)


def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None,
                        reduce=None, reduction: str = "mean"):
    dims = {np.ndim(data(input1)), np.ndim(data(input2)), np.ndim(data(target))}
    if len(dims) > 1:
        raise RuntimeError("margin_ranking_loss : All input tensors should have same dimension")
    loss = _EF().clamp(-target * (input1 - input2) + margin, min=0)
    return _reduced(loss, _legacy(size_average, reduce, reduction))


def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    EF = _EF()
    t = data(target)
    out = EF.where(t != 1, EF.clamp(margin - input, min=0), 0.0) + EF.where(t != -1, input, 0.0)
    return _reduced(out, _legacy(size_average, reduce, reduction))


def _pairwise_distance(x1, x2, p, eps):
    last = max(np.ndim(data(x1)), np.ndim(data(x2))) - 1
    return _EF().norm(x1 - x2 + eps, p, last)


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean"):
    EF = _EF()
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    d_pos = _pairwise_distance(anchor, positive, p, eps)
    d_neg = _pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = EF.minimum(d_neg, _pairwise_distance(positive, negative, p, eps))
    loss = EF.clamp(margin + d_pos - d_neg, min=0)  # (in torch's order: 1 + 3.4e38 − 3.4e38 is 0)
    return _reduced(loss, _legacy(size_average, reduce, reduction))
