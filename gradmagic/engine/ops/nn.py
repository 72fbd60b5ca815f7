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


def _picked(logp, target, ignore_index):
    """(−logp at the target class, mask of counted samples, one-hot of the targets)."""
    c = _class_axis(logp)
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    onehot = np.zeros(logp.shape, bool)
    np.put_along_axis(onehot, np.expand_dims(safe, c), True, c)
    onehot &= np.expand_dims(valid, c)
    return -(logp * onehot).sum(axis=c), valid, onehot


def _nll(logp, target, reduction="mean", ignore_index=-100):
    if target.dtype.kind == "f":  # class probabilities
        loss = -(logp * target).sum(axis=_class_axis(logp))
        return _reduce(loss, reduction, loss.size if loss.ndim else 1)
    if target.size and ((target >= logp.shape[_class_axis(logp)]) | (target < 0)
                        & (target != ignore_index)).any():
        raise IndexError(f"Target {int(target.max())} is out of bounds.")
    loss, valid, _ = _picked(logp, target, ignore_index)
    return _reduce(loss * valid, reduction, int(valid.sum()))


def _nll_vjp(g, ans, logp, target, reduction="mean", ignore_index=-100, softmax=None):
    """Cotangent of log-probabilities (``softmax``: add softmax·Σ for cross_entropy)."""
    t, c = data(target), _class_axis(logp)
    if t.dtype.kind == "f":
        weight, count = t, (t.size // t.shape[c] if t.ndim > 1 else 1)
    else:
        _, valid, weight = _picked(data(logp), t, ignore_index)
        count = int(valid.sum())
    gs = _scale(g, None, reduction, count)
    gs = gs.reshape(gs.shape[:c] + (1,) + gs.shape[c:]) if reduction == "none" else gs
    grad = gs * -weight.astype(data(logp).dtype)
    if softmax is not None:
        grad = grad + softmax * (gs * weight.sum(axis=c, keepdims=True).astype(data(logp).dtype))
    return grad


def _log_softmax(x):
    s = x - x.max(axis=_class_axis(x), keepdims=True)
    return s - np.log(np.exp(s).sum(axis=_class_axis(x), keepdims=True))


def _ce(x, target, reduction="mean", ignore_index=-100, label_smoothing=0.0):
    if label_smoothing:
        raise NotImplementedError("cross_entropy: label_smoothing is not supported")
    return _nll(_log_softmax(x), target, reduction, ignore_index)


def _ce_vjp(g, ans, x, target, reduction="mean", ignore_index=-100, label_smoothing=0.0):
    sm = call("softmax", x, axis=_class_axis(x))
    return _nll_vjp(g, None, x, target, reduction, ignore_index, softmax=sm)


defop("cross_entropy", _ce, "NllLossBackward0", vjp=(_ce_vjp, None),
      formulas=("∂/∂logits = g·(softmax − onehot)/n", "—"), saves=("x target",))
defop("nll_loss", _nll, "NllLossBackward0", vjp=(_nll_vjp, None),
      formulas=("∂/∂logp = −g·onehot/n", "—"), saves=("target",))


# ---------------------------------------------------------------- binary
def _bce(p, y, reduction="mean"):
    if ((p < 0) | (p > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):  # torch clamps the logs at −100
        loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
    return _reduce(loss, reduction)


def _bce_p(g, ans, p, y, reduction="mean"):
    return _scale(g, p.shape, reduction) * (p - y) / call("clamp", (1 - p) * p, min=1e-12)


def _bce_y(g, ans, p, y, reduction="mean"):
    logs = call("clamp", np.log1p(-p), min=-100) - call("clamp", np.log(p), min=-100)
    return _scale(g, p.shape, reduction) * logs


defop("binary_cross_entropy", _bce, "BinaryCrossEntropyBackward0", vjp=(_bce_p, _bce_y),
      formulas=("∂/∂p = g·(p − y) / (p(1 − p))", "∂/∂y = g·(log(1 − p) − log p)"),
      saves=("p y", "p"), promote="same", quiet=True)


def _bce_logits(x, y, reduction="mean"):
    return _reduce(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))), reduction)


defop("binary_cross_entropy_with_logits", _bce_logits, "BinaryCrossEntropyWithLogitsBackward0",
      vjp=(lambda g, ans, x, y, reduction="mean":
           _scale(g, x.shape, reduction) * (call("sigmoid", x) - y),
           lambda g, ans, x, y, reduction="mean": _scale(g, x.shape, reduction) * -x),
      formulas=("∂/∂x = g·(σ(x) − y)", "∂/∂y = −g·x"), saves=("x y", "x"), promote="same")
