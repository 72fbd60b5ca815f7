"""``gradmagic.diagnose.zero``: gradients made exactly zero by a piecewise-constant op or a dead ReLU."""
from __future__ import annotations

from diagnose_helpers import roles, run


def test_round():
    rep, _, _ = run("w = torch.tensor([0.3, 1.7], requires_grad=True)\nq = (w * 4).round()\nq.sum().backward()\n")
    [d] = rep.diagnoses
    assert (d.kind, d.tensor, d.severity) == ("zero_grad", "w", "warning")
    assert d.title == "w.grad is all zeros: RoundBackward0 passes no gradient"
    assert roles(d) == {"computed": "q = (w * 4).round()", "backward": "q.sum().backward()"}
    assert "straight-through" in d.fix


def test_dead_relu():
    rep, _, _ = run("w = torch.tensor([1.0, 2.0], requires_grad=True)\nh = torch.relu(w - 5)\nh.sum().backward()\n")
    [d] = rep.diagnoses
    assert "dead ReLU" in d.message and "LeakyReLU" in d.fix


def test_a_live_relu_or_a_plain_zero_is_quiet():
    rep, _, _ = run("w = torch.tensor([1.0, 6.0], requires_grad=True)\ntorch.relu(w - 5).sum().backward()\n")
    assert rep.diagnoses == []
    rep, _, _ = run("w = torch.tensor([1.0, 6.0], requires_grad=True)\n(w * 0).sum().backward()\n")
    assert rep.diagnoses == []
