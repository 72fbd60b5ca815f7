"""Test-table rows of the engine's activations family (merged into engine_table.TABLE)."""
from __future__ import annotations

from typing import Any

import numpy as np

import gradmagic.engine as ge
from engine_table import Row, _aten, bi, un  # noqa: F401

GLU = [((2, 4),), ((4,),), ((2, 2, 3),)]
PRELU = [((2, 3), (3,)), ((2, 3, 2), (1,)), ((3,), (1,)), ((2, 3, 2, 2), (3,)), ((2, 3), ())]
PAIR = [((3, 4), (3, 4)), ((5,), (5,)), ((), ())]
MASKED = [((3, 4), (3, 4)), ((), ())]


PRELU_BACKWARD = [((2, 3), (2, 3), (3,)), ((3,), (3,), (1,)), ((), (), ())]


def _prelu_backward(m: Any, g: Any, x: Any, w: Any) -> tuple:
    if m is ge:
        return ge.apply("prelu_backward_input", g, x, w), ge.apply("prelu_backward_weight", g, x, w)
    return m.ops.aten._prelu_kernel_backward(g, x, w)


def _hardsigmoid_backward(m: Any, g: Any, x: Any) -> Any:
    if m is ge:
        return ge.apply("hardsigmoid_backward", g, x)
    # torch's aten op has no derivative at all: its formula, with its 1.0f/6.0f
    return g * ((x > -3) & (x < 3)) * float(np.float32(1) / np.float32(6))


TABLE: dict[str, Row] = {
    # piecewise-linear activations (kinks at integers: the "away" domain stays off them)
    "hardtanh": un(lambda m, a: m.hardtanh(a, -1.0, 2.0) + m.relu6(a * 4), domain="away"),
    "softshrink": un(lambda m, a: m.softshrink(a, 1.0) + m.softshrink(a), domain="away"),
    "hardshrink": un(lambda m, a: m.hardshrink(a, 1.0) + a.hardshrink(), domain="away"),
    # torch has no double backward for hardsigmoid (its backward's grad_fn is NotImplemented)
    "hardsigmoid": un(lambda m, a: m.hardsigmoid(a * 3), domain="away", second=False),
    "hardswish": un(lambda m, a: m.hardswish(a * 3), domain="away"),
    "threshold": un(lambda m, a: m.threshold(a, 1.0, -2.0), domain="away"),
    "rrelu": un(lambda m, a: m.rrelu(a) + m.rrelu(a, 0.2, 0.4), domain="away"),
    # their gradients as ops (torch's aten *_backward): linear in grad, 0 wrt x
    "hardtanh_backward": bi(lambda m, g, x: _aten(m, "hardtanh_backward", g, x, min_val=-1.0,
                                                  max_val=2.0), shapes=MASKED,
                            domains=("real", "away")),
    "softshrink_backward": bi(lambda m, g, x: _aten(m, "softshrink_backward", g, x, lambd=1.0),
                              shapes=MASKED, domains=("real", "away")),
    "hardshrink_backward": bi(lambda m, g, x: _aten(m, "hardshrink_backward", g, x, lambd=1.0),
                              shapes=MASKED, domains=("real", "away")),
    "hardsigmoid_backward": bi(_hardsigmoid_backward, shapes=MASKED, domains=("real", "away")),
    # smooth activations
    "elu": un(lambda m, a: m.elu(a) + m.elu(a, 0.5) + m.selu(a)),
    "celu": un(lambda m, a: m.celu(a) + m.celu(a, 0.7)),
    "silu": un(lambda m, a: m.silu(a)),
    "mish": un(lambda m, a: m.mish(a * 2)),
    "logsigmoid": un(lambda m, a: m.logsigmoid(a * 3)),
    "glu": un(lambda m, a: m.glu(a, 0) if a.shape[0] % 2 == 0 and a.ndim > 1 else m.glu(a),
              shapes=GLU),
    "prelu": bi(lambda m, x, w: m.prelu(x, w), shapes=PRELU, domains=("away", "real")),
    # its gradient as two ops (torch's _prelu_kernel_backward, one output each)
    "prelu_backward_input": Row(lambda m, g, x, w: _prelu_backward(m, g, x, w)[0], 3,
                                shapes=PRELU_BACKWARD, domains=("real", "away", "real")),
    "prelu_backward_weight": Row(lambda m, g, x, w: _prelu_backward(m, g, x, w)[1], 3,
                                 shapes=PRELU_BACKWARD, domains=("real", "away", "real")),
    # elementwise math
    "sinh": un(lambda m, a: a.sinh()),
    "cosh": un(lambda m, a: m.cosh(a)),
    "asin": un(lambda m, a: (a.tanh() * 0.9).asin()),
    "acos": un(lambda m, a: m.acos(a.tanh() * 0.9)),
    "atan": un(lambda m, a: a.atan() + m.arctan(a)),
    "asinh": un(lambda m, a: a.asinh()),
    "acosh": un(lambda m, a: (a * a + 1.2).acosh()),
    "atanh": un(lambda m, a: (a.tanh() * 0.9).atanh()),
    "log2": un(lambda m, a: a.log2(), domain="positive"),
    "log10": un(lambda m, a: m.log10(a), domain="positive"),
    "exp2": un(lambda m, a: a.exp2()),
    "sinc": un(lambda m, a: m.sinc(a) + (a * 0).sinc()),
    # losses
    "smooth_l1_loss": bi(lambda m, a, b: m.smooth_l1_loss(a, b, beta=0.7)
                         + m.smooth_l1_loss(a, b, reduction="none").sum(), shapes=PAIR),
    "huber_loss": bi(lambda m, a, b: m.huber_loss(a, b, reduction="sum", delta=0.8)
                     + m.huber_loss(a, b), shapes=PAIR),
    "soft_margin_loss": bi(lambda m, a, b: m.soft_margin_loss(a, b.sign())
                           + m.soft_margin_loss(a, b.sign(), reduction="none").sum(), shapes=PAIR,
                           diff=(True, False), domains=("real", "away")),
}
