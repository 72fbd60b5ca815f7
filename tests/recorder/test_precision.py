"""A call whose own steps work in a narrower float than its result (``precision.py``): its value
is checked at that precision's tolerances, and only then; a primitive op on mixed dtypes keeps
the wider dtype's (fuzz program 157657: ``F.cosine_similarity(x32, c64)`` called "differ" on a
float32 rounding of its norm)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace


def _cosine(seed: int):
    torch.manual_seed(seed)
    x = torch.randn(4, 3, requires_grad=True)
    c = torch.ones(3, dtype=torch.float64)
    out = F.cosine_similarity(x, c, dim=1)
    out.sum().backward()
    return out.detach().clone(), x.grad.clone()


@pytest.mark.parametrize("seed", range(5))
def test_cosine_similarity_of_float32_and_float64_agrees_at_float32s_precision(seed):
    plain_out, plain_grad = _cosine(seed)
    with trace(session=Session()) as rep:
        out, grad = _cosine(seed)
    assert torch.equal(out, plain_out) and torch.equal(grad, plain_grad)
    assert rep.ok, rep.mismatches
    value = [c for c in rep.checks if c.what == "value" and rep.node(c.node).torch_op == "torch.cosine_similarity"]
    assert value and all(c.status == "agree" for c in value)
    assert rep.backward_calls[0].status == "agree"


def test_seed_0_needs_the_float32_allowance_and_says_so():
    """(Without it this value check differs by ~1.7e-8, above float64's rtol of 1e-9.)"""
    with trace(session=Session()) as rep:
        _cosine(0)
    value = [c for c in rep.checks if c.what == "value" and rep.node(c.node).torch_op == "torch.cosine_similarity"]
    assert value[0].status == "agree" and value[0].max_abs_err > 1e-9
    assert "within float32 rounding" in value[0].detail


def test_a_wrong_internal_step_still_differs(monkeypatch):
    norm = REGISTRY["norm"]
    right = norm.fwd
    monkeypatch.setattr(norm, "fwd", lambda *a, **k: right(*a, **k) * 1.001)
    with trace(session=Session()) as rep:
        _cosine(0)
    assert not rep.ok
    assert rep.node(rep.first_divergence).torch_op == "torch.cosine_similarity"


def test_a_primitive_op_on_mixed_dtypes_keeps_float64s_tolerance(monkeypatch):
    """``x32 * c64`` promotes exactly before multiplying: an error of float32's size is a
    difference there (no internal step lowers the precision)."""
    mul = REGISTRY["mul"]
    monkeypatch.setattr(mul, "fwd", lambda a, b: (a * b) * (1 + 1e-7))
    with trace(session=Session()) as rep:
        x = torch.randn(3, requires_grad=True)
        x * torch.ones(3, dtype=torch.float64)
    checks = [c for c in rep.checks if c.what == "value" and rep.node(c.node).op == "mul"]
    assert checks and checks[0].status == "differ" and checks[0].rtol == 1e-9
