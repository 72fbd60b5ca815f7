"""Second order at the kinks, zeros and ties of piecewise ops, against torch.

torch's first derivative of relu is ``threshold_backward(g, out)``, of |x| ``g·sgn(x)``, of a
p-norm a masked quotient: each keeps a graph to x even where its own derivative is zero, so a
gradient taken with ``create_graph=True`` can be differentiated again (giving 0, or NaN where
torch's masked quotient divides 0 by 0). The engine must give the same graph-or-not, values
and second-order gradients (the TABLE's rows in test_engine_ops.py stay off the kinks).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

import gradmagic.engine as ge
from engine_table import TORCH

X = np.array([[0.0, -1.5, 2.0, 0.0], [0.7, -0.2, 0.0, 0.7]])   # zeros, a tie (0.7), signs
ZEROS = np.zeros((2, 3))
ZERO_ROW = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])

CASES: dict[str, tuple[Callable[[Any, Any], Any], np.ndarray]] = {
    "relu": (lambda m, x: m.relu(x), X),
    "relu_method": (lambda m, x: (x * 2 - 1.4).relu(), X),
    "leaky_relu": (lambda m, x: m.leaky_relu(x, 0.2), X),
    "clamp": (lambda m, x: x.clamp(-0.2, 0.7), X),
    "maximum_tie": (lambda m, x: m.maximum(x, x.flip(1) * 1), X),
    "max_ties": (lambda m, x: x.max(), X),
    "amax_ties": (lambda m, x: x.amax(dim=1), X),
    "abs": (lambda m, x: x.abs(), X),
    "sign": (lambda m, x: x.sign() * x, X),
    "floor": (lambda m, x: x.floor() * x, X),
    "remainder_divisor": (lambda m, x: m.ones_like(x) % (x * x + 0.5), X),
    "prod_with_zeros": (lambda m, x: x.prod(), X),
    "prod_dim_with_zeros": (lambda m, x: x.prod(dim=1), X),
    "prod_one_zero": (lambda m, x: (x + 1.5).prod(dim=0), X),
    "norm_at_zero": (lambda m, x: x.norm(), ZEROS),
    "norm_dim_zero_row": (lambda m, x: x.norm(dim=1), ZERO_ROW),
    "norm_p1": (lambda m, x: x.norm(p=1), X),
    "norm_inf": (lambda m, x: x.norm(p=float("inf")), X),
    "norm_minus_inf_zero_row": (lambda m, x: x.norm(p=float("-inf"), dim=1), ZERO_ROW),
    "norm_p3_zero_row": (lambda m, x: x.norm(p=3, dim=1), ZERO_ROW),
    "norm_p1_5": (lambda m, x: x.norm(p=1.5), X),
    "norm_p0_5": (lambda m, x: x.norm(p=0.5, dim=1), X),
    "norm_p0_5_zero_row": (lambda m, x: x.norm(p=0.5, dim=1), ZERO_ROW),
    "norm_p_minus_1": (lambda m, x: x.norm(p=-1, dim=1), ZERO_ROW + 0.5 * (ZERO_ROW == 0)),
    "std_of_a_constant": (lambda m, x: (x * 0 + 1).std(dim=1), X),
}


def arr(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return np.zeros(tuple(t.shape)) if t._is_zerotensor() else t.detach().numpy()
    return np.asarray(t.data)


def first_and_second(lib: Any, fn: Callable, x0: np.ndarray) -> tuple:
    """(gradient, does it have a graph, gradient of Σ g²·x) with ``lib`` = torch or the engine."""
    grad = torch.autograd.grad if lib is torch else ge.grad
    x = lib.tensor(x0, requires_grad=True)
    out = fn(TORCH if lib is torch else ge, x)
    v = np.linspace(0.5, 1.5, out.numel()).reshape(tuple(out.shape))
    g, = grad(out, [x], lib.tensor(v), create_graph=True)
    if not g.requires_grad:
        return arr(g), False, None
    h, = grad((g * g * x).sum(), [x], allow_unused=True)
    return arr(g), True, None if h is None else arr(h)


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_order_at_kinks_matches_torch(name: str) -> None:
    fn, x0 = CASES[name]
    gt, graph_t, ht = first_and_second(torch, fn, x0)
    gg, graph_g, hg = first_and_second(ge, fn, x0)
    np.testing.assert_allclose(gg, gt, rtol=1e-12, atol=1e-15, equal_nan=True)
    assert graph_g == graph_t, f"torch's gradient {'has' if graph_t else 'has no'} graph, the engine's differs"
    if graph_t:
        hg = np.zeros_like(gt) if hg is None else hg
        ht = np.zeros_like(gt) if ht is None else ht
        np.testing.assert_allclose(hg, ht, rtol=1e-12, atol=1e-15, equal_nan=True)
