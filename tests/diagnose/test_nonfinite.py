"""``gradmagic.diagnose.nonfinite``: where a NaN or inf gradient was born."""
from __future__ import annotations

from diagnose_helpers import roles, run


def test_sqrt_at_zero():
    rep, raised, _ = run("x = torch.tensor([0.0, 4.0], requires_grad=True)\ny = x.sqrt() * 0\ny.sum().backward()\n")
    [d] = rep.diagnoses
    assert (d.kind, d.tensor, d.severity) == ("nonfinite_grad", "x", "warning")
    assert d.title == "x.grad is nan: it first became nan at SqrtBackward0"
    assert "at element [0]" in d.message and "the input is 0" in d.message and "∂/∂a" in d.message
    assert roles(d) == {"computed": "y = x.sqrt() * 0", "backward": "y.sum().backward()"}
    labels = {n.id: n.label or n.name for n in rep.nodes}
    assert [labels[n] for n in d.nodes] == ["SqrtBackward0", "x"]
    assert "1e-8" in d.fix


def test_the_where_trap_gets_its_own_fix():
    rep, _, _ = run("x = torch.tensor([0.0, 2.0], requires_grad=True)\n"
                    "y = torch.where(x > 1, torch.log(x), x)\ny.sum().backward()\n")
    [d] = rep.diagnoses
    assert "torch.where" in d.message and "apply the condition to the input" in d.fix


def test_finite_gradients_and_nan_values_that_do_not_reach_a_gradient_are_quiet():
    rep, raised, _ = run("x = torch.tensor([1.0, 4.0], requires_grad=True)\nx.sqrt().sum().backward()\n")
    assert raised is None and rep.diagnoses == []
    rep, _, _ = run("x = torch.tensor([1.0, float('nan')])\nw = torch.ones(2, requires_grad=True)\n"
                    "(w * 2).sum().backward()\nz = x * 2\n")
    assert rep.diagnoses == []
