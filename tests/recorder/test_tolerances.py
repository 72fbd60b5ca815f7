"""The tolerance model (issue 12): rounding that floating point explains is not a "differ";
real errors (a sign, a missing factor 2, a transposed matrix, a dropped broadcast) still are.

The bound (``gradmagic/recorder/magnitudes.py``, ``docs/contract.md``): a value or gradient
that fails ``max|e−t| ≤ atol + rtol·max|t|`` agrees when every element is within
``atol + rtol·max(max|t|, Σ|terms|)``, Σ|terms| being the size of what was summed into it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace


class Legendre3(torch.autograd.Function):
    """The PyTorch tutorial's LegendrePolynomial3 (examples_autograd/polynomial_custom_function)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 0.5 * (5 * x ** 3 - 3 * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 1.5 * (5 * x ** 2 - 1)


def test_the_tutorials_polynomial_fit_agrees_although_its_gradients_cancel():
    # c.grad sums 200 float32 terms of size ~0.01 into ~1e-6: torch and NumPy round differently
    with trace(session=Session()) as rep:
        x = torch.linspace(-math.pi, math.pi, 200)
        y = torch.sin(x)
        a, b = torch.full((), 0.0, requires_grad=True), torch.full((), -1.0, requires_grad=True)
        c, d = torch.full((), 0.0, requires_grad=True), torch.full((), 0.3, requires_grad=True)
        for _ in range(20):
            loss = (a + b * Legendre3.apply(c + d * x) - y).pow(2).sum()
            loss.backward()
            with torch.no_grad():
                for p in (a, b, c, d):
                    p -= 5e-6 * p.grad
                    p.grad = None
    assert rep.ok and not rep.mismatches, [m.detail for m in rep.mismatches]
    assert rep.coverage["grads"]["unchecked"] == 0


def test_a_long_float32_training_loop_agrees():
    torch.manual_seed(0)
    with trace(session=Session(), check="all") as rep:
        w = torch.randn(64, requires_grad=True)
        X = torch.randn(512, 64)
        for _ in range(300):
            loss = ((X @ w).tanh() ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w -= 1e-2 * w.grad
                w.grad.zero_()
    assert rep.ok and not rep.mismatches
    assert rep.coverage["grads"]["checked"] == 300 and rep.coverage["grads"]["unchecked"] == 0


def test_a_cancelling_forward_sum_agrees():
    with trace(session=Session()) as rep:
        x = torch.tensor(1.541, requires_grad=True)
        s = (x * torch.linspace(-1.0, 1.0, 999)).sin().sum()  # ~1e-8 from terms up to 1
        s.backward()
    assert rep.ok and not rep.mismatches


@pytest.mark.parametrize("reduce", ["amin", "amax", "exp", "tanh-erfinv"])
def test_a_cancelling_sum_behind_an_op_whose_rule_reads_its_output_agrees(reduce):
    """The fuzzer's programs 1270 and 3059, shrunk: Σ sin(a·c) over a symmetric c has a
    gradient that cancels to ~0 from terms of ~285. Between it and the leaf sit ops whose rules
    read their output (amin's ties, exp, tanh, erfinv), which the backward frees: Σ|terms| takes
    that output from the op's record (or recomputes it) instead of falling back to the gradient
    itself (1.5e-5) and crying "differ"."""
    torch.manual_seed(30265)
    with trace(session=Session()) as rep:
        x = torch.rand((1, 1, 2), requires_grad=True)
        c = torch.linspace(-0.57, 0.57, 999)
        if reduce == "tanh-erfinv":  # (program 3059's values: only the recorded outputs serve)
            x = torch.tensor([[[0.25], [0.75]]], requires_grad=True)
            t, c = (x.tanh() * 0.9).erfinv(), torch.linspace(-1.35, 1.35, 1001)
        else:
            t = getattr(torch, reduce)(x, 0, keepdim=True) if reduce != "exp" else x.exp()
        s = (t.sum() * c).sin().sum()
        s.backward(retain_graph=True)
        (s * 2).backward()  # (the second backward: what the first kept, this one frees)
    assert rep.ok and not rep.mismatches
    assert rep.coverage["grads"]["checked"] == 2 and rep.coverage["grads"]["unchecked"] == 0


def test_a_product_that_overflows_in_one_summation_order_is_unchecked():
    """The fuzzer's program 1961: 3.4e38·(−0.86) + 3.4e38·1.47 is 2.1e38 summed one way and inf
    the other (torch's bmm gives inf, NumPy's 2.1e38). Neither is wrong: "unchecked", and why,
    never "differ" (nor "agree")."""
    with trace(session=Session()) as rep:
        a = torch.tensor([[[3.4028e38, 3.4028e38], [1.0, 1.0]]])
        w = torch.tensor([[[-0.8603, -0.3611], [1.4709, -0.8691]]], requires_grad=True)
        y = a.bmm(w)
        z = w * 2  # (a value that is checked: a report with nothing checked is not ok)
    assert rep.ok and not rep.mismatches and rep.coverage["values"]["differ"] == 0
    check = next(c for c in rep.checks if c.what == "value" and c.status == "unchecked")
    assert "exceed float32's range" in check.detail


MUTANTS = {
    # a sign
    "tanh": lambda g, ans, a: -g * (1 - ans * ans),
    # a missing factor 2 (square's rule is g·2a)
    "square": lambda g, ans, a: g * a,
}


@pytest.mark.parametrize("op", sorted(MUTANTS))
def test_a_wrong_rule_is_still_caught(monkeypatch, op):
    opdef = REGISTRY[op]
    monkeypatch.setattr(opdef, "vjps", (MUTANTS[op],))
    with trace(session=Session()) as rep:
        w = torch.linspace(-1.0, 1.0, 7, requires_grad=True)
        y = w.tanh() if op == "tanh" else w.square()
        (y * torch.linspace(0.5, 1.5, 7)).sum().backward()
    assert not rep.ok and rep.mismatches


def test_a_transposed_matrix_is_caught(monkeypatch):
    mm = REGISTRY["matmul"]
    good = mm.vjps
    monkeypatch.setattr(mm, "vjps", (lambda g, ans, a, b: np.swapaxes(good[0](g, ans, a, b), -1, -2)
                                     .reshape(np.shape(a)), good[1]))
    with trace(session=Session()) as rep:
        A = torch.linspace(-1.0, 1.0, 9, requires_grad=True).reshape(3, 3)
        (A @ torch.linspace(0.0, 2.0, 9).reshape(3, 3)).pow(2).sum().backward()
    assert not rep.ok and rep.mismatches


def test_a_dropped_broadcast_is_caught(monkeypatch):
    add = REGISTRY["add"]
    good = add.vjps
    # the bias's gradient taken from one row instead of summed over the batch
    monkeypatch.setattr(add, "vjps", (good[0], lambda g, ans, a, b, alpha=1: (g[:1] if np.ndim(g) > 1 else g)))
    with trace(session=Session()) as rep:
        X = torch.linspace(-1.0, 1.0, 12).reshape(4, 3)
        bias = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
        (X + bias).pow(2).sum().backward()
    assert not rep.ok and rep.mismatches


def test_autograd_grad_of_a_cancelling_sum_through_two_paths_agrees():
    # fuzz seed 2094: the 0-d input's gradient comes from two paths (sin·linspace and gelu);
    # its bound must be found by the input, not by matching the (numpy scalar) result object
    with trace(session=Session()) as rep:
        x = torch.zeros((), requires_grad=True)
        s = (x * torch.linspace(-2.7, 2.7, 2000)).sin().sum()
        loss = s + F.gelu(x, approximate="tanh").pow(2)
        (g,) = torch.autograd.grad(loss, [x])
    assert rep.ok and not rep.mismatches, [m.detail for m in rep.mismatches]
    assert rep.coverage["grads"]["unchecked"] == 0


def _scaled_mul_rule(monkeypatch, factor: float) -> None:
    from gradmagic.engine import REGISTRY
    mul = REGISTRY["mul"]
    good_a, good_b = mul.vjps
    monkeypatch.setattr(mul, "vjps", (lambda g, ans, a, b: good_a(g, ans, a, b) * factor, good_b))


@pytest.mark.parametrize("factor, status", [(1 + 3e-4, "unchecked"), (-1.0, "differ"), (2.0, "differ")])
def test_a_call_too_large_to_record_never_calls_rounding_a_difference(monkeypatch, factor, status):
    """Without its steps, a gradient off by a rounding-sized margin is unchecked (the size of the
    terms summed into it is unknown), while a wrong sign or factor still differs."""
    import gradmagic.recorder.backward as rb
    monkeypatch.setattr(rb, "STEPS_LIMIT", 0)  # as for a ResNet's millions of parameters
    _scaled_mul_rule(monkeypatch, factor)
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with trace(session=Session(), check="all") as rep:
        (w * torch.tensor([0.5, 0.25, 2.0])).sum().backward()
    leaf = rep.leaf("w")
    assert leaf.status == status, [c.detail for c in rep.checks]
    assert rep.ok == (status != "differ")
    if status == "unchecked":
        detail = next(c.detail for c in rep.checks if c.what == "grad")
        assert "too large to record step by step" in detail


def test_a_difference_in_a_call_no_longer_drawn_is_still_a_mismatch(monkeypatch):
    """A wrong rule hit only in the first calls of a long loop: their nodes are summarised, not
    drawn, and the headline still says ✗, never ✓."""
    from gradmagic.engine import REGISTRY
    from gradmagic.viz.facts import verdict
    mul = REGISTRY["mul"]
    good = mul.fwd
    monkeypatch.setattr(mul, "fwd", lambda a, b: good(a, b) * (2.0 if np.max(b) < 2.5 else 1.0))
    w = torch.ones(3, requires_grad=True)
    with trace(session=Session(), check="all") as rep:
        for i in range(1, 9):
            w.grad = None
            (w * float(i)).sum().backward()
    assert not rep.ok and rep.coverage["values"]["differ"] == 2
    assert rep.mismatches == []  # the two products that differ are no longer drawn
    v = verdict(rep.to_dict())
    assert v["level"] == "differ" and v["headline"].startswith("✗")


def test_elementwise_overflow_near_the_largest_value_is_unchecked_never_differ():
    """Some of torch's vectorised float32 GELU kernels compute x·(1 + erf(x/√2)) before halving
    it: at float32's largest value they give inf (NumPy's order gives 3.4e38), and at +inf NaN.
    Which is right is a matter of the kernel's order of operations: the check says unchecked,
    with why (program 50446 of the fuzzer), never differ. Which kernel torch takes depends on
    the CPU (on others it halves first and agrees with NumPy): where torch's result is finite
    the value is checked and agrees; values away from the top of the range are always checked."""
    top = float(np.finfo(np.float32).max)
    x = torch.full((3,), top, requires_grad=True)
    with trace(session=Session()) as rep:
        at_top = F.gelu(x * 1)
        with_inf = F.gelu(torch.tensor([1.0, 2.0]) * x[:2] / top)  # [gelu(1), gelu(inf)]
        F.gelu(x / top)  # (far from the top: checked)
    overflowed = [bool(torch.isinf(at_top).any()), bool(torch.isnan(with_inf[1]))]  # (torch's own)
    expected = ["unchecked" if o else "agree" for o in overflowed] + ["agree"]
    status = {c.node: c for c in rep.checks if c.what == "value"}
    by_out = sorted((n.id for n in rep.nodes if n.torch_op == "torch.nn.functional.gelu"),
                    key=lambda i: int(i[1:]))
    verdicts = [status[i].status for i in by_out]
    assert verdicts == expected, (verdicts, overflowed)
    assert all("largest value" in status[i].detail for i, o in zip(by_out, overflowed) if o)
    assert rep.ok and not rep.mismatches
