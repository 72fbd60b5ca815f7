"""The test table of engine ops: one row per REGISTRY entry (torch is the oracle).

A row calls the op the same way on both libraries: ``fn(m, *xs)`` where ``m`` is
``gradmagic.engine`` or :data:`TORCH` (torch with torch.nn.functional merged in), so
the engine's torch-like API is exercised at the same time. Adding an op to the engine
= one declaration there + one row here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as TF

import gradmagic.engine as ge


_NN = {"binary_cross_entropy_with_logits", "binary_cross_entropy", "cross_entropy", "nll_loss",
       "mse_loss", "linear", "gelu", "softplus", "leaky_relu", "softmax", "log_softmax", "relu"}


class _TorchNS:
    """``torch`` with ``torch.nn.functional`` merged in (the engine is flat)."""

    def __getattr__(self, name: str) -> Any:
        for mod in ((TF, torch) if name in _NN else (torch, TF)):
            if hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(name)


TORCH = _TorchNS()


@dataclass
class Row:
    fn: Callable[..., Any]
    n: int = 1                       # number of tensor inputs
    domain: str = "real"             # real | positive | unit | away (|x| > 0.5, off kinks)
    shapes: Any = "broadcast"        # "broadcast" or a list of shape tuples per example
    second: bool = True              # Hessian-vector products vs torch (a zero one included: the
                                     # first derivative must keep a graph where torch's does)
    diff: tuple | None = None        # which inputs require grad (default: all)
    gradcheck: bool = True
    min_side: int = 0
    domains: tuple = field(default_factory=tuple)  # per-input domain override


def un(fn: Callable, **kw: Any) -> Row:
    return Row(fn, 1, **kw)


def bi(fn: Callable, **kw: Any) -> Row:
    return Row(fn, 2, **kw)


MAT = [((3, 4), (4, 2)), ((4,), (4,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 2, 3), (3, 2)),
       ((2, 3, 4), (2, 4, 1)), ((1, 2, 3), (4, 3, 2))]
RED = [((3, 4),), ((2, 3, 2),), ((5,),), ((),)]
IDX = np.array([0, 2, 2, 1])

TABLE: dict[str, Row] = {
    # arithmetic
    "add": bi(lambda m, a, b: a + b),
    "sub": bi(lambda m, a, b: m.sub(a, b, alpha=2) + (2 - a) - b),
    "mul": bi(lambda m, a, b: a * b),
    "div": bi(lambda m, a, b: a / b, domains=("real", "away")),
    "neg": un(lambda m, a: -a),
    "reciprocal": un(lambda m, a: a.reciprocal(), domain="away"),
    "pow": bi(lambda m, a, b: a ** b, domains=("positive", "real")),
    "square": un(lambda m, a: a.square()),
    "maximum": bi(lambda m, a, b: m.maximum(a, b)),
    "minimum": bi(lambda m, a, b: m.minimum(a, b)),
    # unary math
    "exp": un(lambda m, a: a.exp()),
    "log": un(lambda m, a: a.log(), domain="positive"),
    "log1p": un(lambda m, a: a.log1p(), domain="positive"),
    "expm1": un(lambda m, a: a.expm1()),
    "sqrt": un(lambda m, a: a.sqrt(), domain="positive"),
    "rsqrt": un(lambda m, a: a.rsqrt(), domain="positive"),
    "abs": un(lambda m, a: a.abs(), domain="away"),
    "sign": un(lambda m, a: a.sign() * a, domain="away"),
    "floor": un(lambda m, a: a.floor() + a, domain="away"),
    "ceil": un(lambda m, a: a.ceil() + a, domain="away"),
    "round": un(lambda m, a: a.round() + a, domain="away"),
    "sin": un(lambda m, a: a.sin()),
    "cos": un(lambda m, a: a.cos()),
    "tan": un(lambda m, a: (a * 0.3).tan()),
    "tanh": un(lambda m, a: a.tanh()),
    "sigmoid": un(lambda m, a: a.sigmoid()),
    "relu": un(lambda m, a: a.relu(), domain="away"),
    "leaky_relu": un(lambda m, a: m.leaky_relu(a, 0.2), domain="away"),
    # the gradients of relu/leaky_relu as ops (torch's aten ops): linear in grad, 0 wrt x
    "threshold_backward": bi(lambda m, g, x: _aten(m, "threshold_backward", g, x, threshold=0.3),
                             shapes=[((3, 4), (3, 4)), ((), ()), ((2, 0), (2, 0))],
                             domains=("real", "away")),
    "leaky_relu_backward": bi(lambda m, g, x: _aten(m, "leaky_relu_backward", g, x,
                                                    negative_slope=0.2),
                              shapes=[((3, 4), (3, 4)), ((), ())], domains=("real", "away")),
    "erf": un(lambda m, a: m.erf(a)),
    "gelu": un(lambda m, a: m.gelu(a)),
    "softplus": un(lambda m, a: m.softplus(a, beta=2.0, threshold=3.0)),
    "clamp": un(lambda m, a: a.clamp(-0.5, 0.7), domain="away"),
    "where": bi(lambda m, a, b: m.where(a > b, a, b * 2)),
    # comparisons (outputs not differentiable: compared as values, grads through mul)
    "eq": bi(lambda m, a, b: (a.round() == b.round()) * a, domain="away"),
    "ne": bi(lambda m, a, b: (a.round() != b.round()) * a, domain="away"),
    "lt": bi(lambda m, a, b: (a < b) * a),
    "le": bi(lambda m, a, b: (a <= b) * b),
    "gt": bi(lambda m, a, b: (a > b) * a),
    "ge": bi(lambda m, a, b: (a >= b) * b),
    "logical_not": un(lambda m, a: (~(a > 0)) * a),
    "logical_and": bi(lambda m, a, b: ((a > 0) & (b > 0)) * a),
    "logical_or": bi(lambda m, a, b: ((a > 0) | (b > 0)) * b),
    "isnan": un(lambda m, a: m.isnan(a.log()) * a),
    "floor_divide": bi(lambda m, a, b: m.floor_divide(a.detach(), b) * a, domain="away",
                       diff=(True, False)),
    "remainder": bi(lambda m, a, b: a % b, domains=("away", "positive")),
    # copies and casts
    "clone": un(lambda m, a: a.clone() * a),
    "to": un(lambda m, a: a.double() * 2),
    "dropout": un(lambda m, a: _dropout(m, a)),
    "zero": un(lambda m, a: (a * 1).zero_() + a),
    "fill": un(lambda m, a: (a * 1).fill_(2.0) * a),
    "copy": bi(lambda m, a, b: (a * 1).copy_(b) * b, shapes=[((3,), (3,)), ((2, 3), (3,))]),
    # reductions
    "sum": un(lambda m, a: a.sum(dim=-1, keepdim=True) * a.sum(), second=True),
    "mean": un(lambda m, a: a.mean(0) if a.ndim else a.mean(), shapes=RED, min_side=1),
    "prod": un(lambda m, a: a.prod(dim=0) if a.ndim else a.prod(), shapes=RED, min_side=1),
    "var": un(lambda m, a: a.var(0), shapes=[((4, 3),), ((5,),)]),
    "std": un(lambda m, a: a.std(dim=1, keepdim=True), shapes=[((3, 4),), ((2, 5),)]),
    "max": un(lambda m, a: a.max(), shapes=RED),
    "amax": un(lambda m, a: a.amax(dim=-1), shapes=RED[:3]),
    "max_dim": un(lambda m, a: a.max(dim=0).values, shapes=RED[:3]),
    "argmax": un(lambda m, a: a.argmax(dim=0), shapes=RED[:3], gradcheck=False),
    "min": un(lambda m, a: a.min(), shapes=RED),
    "amin": un(lambda m, a: a.amin(dim=0, keepdim=True), shapes=RED[:3]),
    "min_dim": un(lambda m, a: a.min(-1, keepdim=True)[0], shapes=RED[:3]),
    "argmin": un(lambda m, a: a.argmin(), shapes=RED, gradcheck=False),
    "norm": un(lambda m, a: a.norm(dim=-1) + a.norm(p=1) + a.norm(p=float("inf")),
               shapes=RED[:3], domain="away"),
    "logsumexp": un(lambda m, a: a.logsumexp(dim=-1), shapes=RED[:3]),
    "softmax": un(lambda m, a: m.softmax(a, dim=-1), shapes=RED[:3]),
    "log_softmax": un(lambda m, a: m.log_softmax(a, dim=0), shapes=RED[:3]),
    "cumsum": un(lambda m, a: a.cumsum(dim=0) * a, shapes=RED[:3]),
    # shapes and indexing
    "reshape": un(lambda m, a: a.reshape(-1) * a.flatten() + a.view(a.numel()), shapes=RED),
    "squeeze": un(lambda m, a: a.squeeze() * a.squeeze(1).sum(),
                  shapes=[((2, 1, 3),), ((1, 1, 1),)]),
    "unsqueeze": un(lambda m, a: a.unsqueeze(0).unsqueeze(-1) * a.unsqueeze(-1), shapes=RED),
    "transpose": un(lambda m, a: a.transpose(-1, -2) @ a + a.mT @ a, shapes=[((3, 2),), ((2, 2, 3),)]),
    "t": un(lambda m, a: a.t() * a.t(), shapes=[((3, 2),), ((4,),)]),
    "permute": un(lambda m, a: a.permute(2, 0, 1) * a.mT.permute(1, 0, 2), shapes=[((2, 3, 4),)]),
    "expand": un(lambda m, a: a.expand(2, 3, 4) * m.broadcast_to(a, (3, 4)),
                 shapes=[((4,),), ((3, 1),), ((1, 4),)]),
    "repeat": un(lambda m, a: a.repeat(2, 3) * a.repeat(2, 3), shapes=[((3,),), ((2, 2),)]),
    "flip": un(lambda m, a: m.flip(a, (0,)) * a, shapes=RED[:3]),
    "getitem": un(lambda m, a: _getitem(m, a), shapes=[((4, 5),)]),
    "index_backward": un(lambda m, a: _index_backward(m, a), shapes=[((4, 3),)]),
    "index_put": bi(lambda m, a, b: _setitem(a * 1, b), shapes=[((4, 3), (3,)), ((4, 3), ())]),
    "gather": un(lambda m, a: m.gather(a, 1, m.tensor([[0, 0], [1, 0], [2, 2]])) ** 2,
                 shapes=[((3, 3),)]),
    "index_select": un(lambda m, a: m.index_select(a, 0, m.tensor(IDX)) ** 2, shapes=[((3, 2),)]),
    "cat": bi(lambda m, a, b: m.cat([a, b * b, a], dim=0), shapes=[((2, 3), (4, 3)), ((2,), (3,))]),
    "stack": bi(lambda m, a, b: m.stack([a, b * b], dim=-1), shapes=[((2, 3), (2, 3)), ((), ())]),
    # linear algebra
    "matmul": bi(lambda m, a, b: a @ b, shapes=MAT),
    "dot": bi(lambda m, a, b: m.dot(a, b), shapes=[((4,), (4,))]),
    "mv": bi(lambda m, a, b: m.mv(a, b), shapes=[((2, 3), (3,))]),
    "mm": bi(lambda m, a, b: m.mm(a, b), shapes=[((2, 3), (3, 4))]),
    "bmm": bi(lambda m, a, b: m.bmm(a, b), shapes=[((2, 2, 3), (2, 3, 4))]),
    "outer": bi(lambda m, a, b: m.outer(a, b), shapes=[((3,), (4,))]),
    "linear": Row(lambda m, x, w, b: m.linear(x, w, b) * m.linear(x, w), 3,
                  shapes=[((5, 3), (4, 3), (4,)), ((3,), (2, 3), (2,)), ((2, 5, 3), (4, 3), (4,))]),
    # losses
    "mse_loss": bi(lambda m, a, b: m.mse_loss(a, b) + m.mse_loss(a, b, reduction="none").sum(),
                   shapes=[((3, 4), (3, 4)), ((5,), (5,))]),
    "cross_entropy": un(lambda m, a: _ce(m, a), shapes=[((4, 3),)]),
    "nll_loss": un(lambda m, a: m.nll_loss(m.log_softmax(a, dim=1), m.tensor([2, 0, 1, 2]),
                                           reduction="sum"), shapes=[((4, 3),)]),
    "binary_cross_entropy": bi(lambda m, p, y: m.binary_cross_entropy(p, y), domain="unit",
                               shapes=[((3, 2), (3, 2)), ((4,), (4,))]),
    "binary_cross_entropy_with_logits": bi(
        lambda m, x, y: m.binary_cross_entropy_with_logits(x, y, reduction="sum"),
        shapes=[((3, 2), (3, 2))], domains=("real", "unit")),
}


def _aten(m: Any, name: str, *xs: Any, **params: Any) -> Any:
    """An internal op that torch only has in ``torch.ops.aten`` (positional scalars)."""
    if m is ge:
        return ge.apply(name, *xs, **params)
    extra = (False,) if name == "leaky_relu_backward" else ()  # self_is_result
    return getattr(torch.ops.aten, name)(*xs, *params.values(), *extra)


def _dropout(m: Any, a: Any) -> Any:
    mask = np.asarray(np.arange(a.numel()).reshape(a.shape) % 3 != 0)
    if m is ge:
        return ge.dropout(a, mask=mask, p=0.25)
    return a * (torch.from_numpy(mask).to(a.dtype) / 0.75)


def _getitem(m: Any, a: Any) -> Any:
    rows = m.tensor([0, 2, 2])
    mask = a > 0.3
    return (a[1:3, ::2].sum() + a[range(3), [1, 0, 4]] + a[rows, 1] * 2 + a[None, ..., -1].sum()
            + a[mask].sum() + a[-1].sum())


def _index_backward(m: Any, a: Any) -> Any:
    if m is ge:
        return ge.apply("index_backward", a, shape=(5, 3), index=(IDX,)) ** 2
    z = torch.zeros(5, 3, dtype=a.dtype)
    return z.index_put((torch.tensor(IDX),), a, accumulate=True) ** 2


def _setitem(a: Any, b: Any) -> Any:
    a[1:3] = b
    return a * a


def _ce(m: Any, a: Any) -> Any:
    t = m.tensor([2, 0, 1, 2])
    probs = m.tensor(np.linspace(0.1, 1.0, 12).reshape(4, 3) / 1.65, dtype=a.dtype)
    return (m.cross_entropy(a, t) + m.cross_entropy(a, t, reduction="none").sum() * 0.5
            + m.cross_entropy(a, m.tensor([1, -100, 0, 2]), reduction="sum")
            + m.cross_entropy(a, probs))


# the op families' rows (tests/engine/table_*.py, one per engine/ops/ family module)
import table_activations, table_conv, table_mathops, table_norm, table_recurrent, table_tensorops  # noqa: E402

for _family in (table_tensorops, table_mathops, table_activations, table_conv, table_norm,
                table_recurrent):
    TABLE.update(_family.TABLE)


# ---------------------------------------------------------------- a custom Function as one node
class _Cube(torch.autograd.Function):
    """torch's side of the ``subgraph`` row: sin(x³) with a hand-written backward."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return (x ** 3).sin()

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g * (x ** 3).cos() * 3 * x ** 2


def _subgraph(m: Any, a: Any) -> Any:
    if m is not ge:
        return _Cube.apply(a)
    from gradmagic.engine.ops.subgraph import Subgraph
    inner = ge.tensor(a.data.copy(), requires_grad=True)
    return ge.apply("subgraph", a, body=Subgraph("_CubeBackward", [inner], (inner ** 3).sin()))


TABLE["subgraph"] = un(_subgraph)
