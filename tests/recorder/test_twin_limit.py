"""Tensors above ``Session.twin_limit`` get a stand-in, never a copy: "unchecked: too large"."""
from __future__ import annotations

import numpy as np
import torch

from gradmagic.recorder import Session, trace


def _program(session: Session) -> tuple:
    with trace(session=session) as rep:
        torch.manual_seed(0)
        W = torch.randn(20, 10, requires_grad=True)  # 200 elements: above the limit below
        b = torch.zeros(10, requires_grad=True)
        x = torch.randn(4, 20)
        loss = torch.relu(x @ W + b).sum()
        loss.backward()
        with torch.no_grad():
            W -= 0.1 * W.grad
            b -= 0.1 * b.grad
        W.grad.zero_()
        b.grad.zero_()
        big = torch.ones(300, requires_grad=True) * 2
        (big.sum() * b.sum()).backward()
        (gW,) = torch.autograd.grad((W * 2).sum(), W)
    return rep, W, b, gW


def test_stand_ins_hold_no_copy_and_are_reported_unchecked():
    session = Session(twin_limit=100)
    rep, W, b, gW = _program(session)
    assert rep.ok and not rep.unsupported and not rep.mismatches
    assert any("too large" in n for n in rep.notes)
    stand_ins = [tw for t, tw in session.twins.items() if tw.rec.too_large]
    assert stand_ins and all(tw.et.data.strides == (0,) * tw.et.data.ndim for tw in stand_ins)
    assert all(t.numel() > 100 for t, tw in session.twins.items() if tw.rec.too_large)
    nodes = rep.to_dict()["nodes"]
    too_large = [n for n in nodes if "too large" in (n.get("label") or "")]
    assert too_large and all(n["status"] == "unchecked" for n in too_large)


def test_small_tensors_beside_them_are_still_checked():
    rep, W, b, gW = _program(Session(twin_limit=100))
    leaves = {leaf.name: leaf for leaf in rep.leaves}
    assert "b" in leaves and "W" not in leaves  # W is a stand-in: no history, no copy
    assert [e.kind for e in leaves["b"].events] == ["created", "backward", "update", "zero_", "backward"]
    assert any(n["status"] == "agree" for n in rep.to_dict()["nodes"])


def test_user_values_equal_the_plain_run():
    rep, W, b, gW = _program(Session(twin_limit=100))
    torch.manual_seed(0)
    W0 = torch.randn(20, 10, requires_grad=True)
    b0 = torch.zeros(10, requires_grad=True)
    x0 = torch.randn(4, 20)
    torch.relu(x0 @ W0 + b0).sum().backward()
    with torch.no_grad():
        W0 -= 0.1 * W0.grad
        b0 -= 0.1 * b0.grad
    W0.grad.zero_()
    b0.grad.zero_()
    (torch.ones(300, requires_grad=True).mul(2).sum() * b0.sum()).backward()
    assert torch.equal(W, W0) and torch.equal(b, b0) and torch.equal(b.grad, b0.grad)
    assert torch.equal(gW, torch.full((20, 10), 2.0))


def test_default_limit_copies_ordinary_tensors():
    rep, *_ = _program(Session())
    assert rep.ok and not any("too large" in n for n in rep.notes)
    assert {leaf.name for leaf in rep.leaves} >= {"W", "b"}


def test_a_tensor_that_grows_past_the_limit_becomes_a_stand_in():
    session = Session(twin_limit=50)
    with trace(session=session) as rep:
        t = torch.zeros(10)
        u = t * 2
        t.resize_(100)
        t.fill_(1.0)
        v = t + 1
    assert rep.ok
    assert session.twins.get(t).rec.too_large and session.twins.get(v).rec.too_large
    assert np.array_equal(session.twins.get(u).et.data, np.zeros(10, np.float32))


def test_a_cell_above_the_limit_is_not_ok_and_says_nothing_was_checked():
    """Issue 12: nothing checked is never a green ✓; stand-ins keep their real shapes."""
    from gradmagic.viz.facts import verdict
    with trace(session=Session(twin_limit=100)) as rep:
        x = torch.ones(20, 30, requires_grad=True)
        (x * 2).sum().backward()
    d = rep.to_dict()
    assert not rep.ok and not rep.mismatches
    assert d["coverage"]["values"]["checked"] == 0 and d["coverage"]["values"]["unchecked"] >= 1
    assert d["coverage"]["too_large"] >= 1
    v = verdict(d)
    assert v["level"] == "unchecked" and v["headline"].startswith("? Nothing could be checked")
    assert "✓" not in v["headline"]
    shapes = [n["shape"] for n in d["nodes"] if "too large" in (n.get("label") or "")]
    assert [20, 30] in shapes
