"""``gradmagic.diagnose.nonscalar``: ``backward()`` on a tensor of more than one number."""
from __future__ import annotations

import pytest

from diagnose_helpers import kinds, roles, run


def test_the_shape_and_both_fixes_are_given():
    rep, raised, _ = run("x = torch.ones(2, 3, requires_grad=True)\ny = x * 2\ny.backward()\n")
    [d] = rep.diagnoses
    assert (raised, d.kind, d.tensor, d.severity) == ("RuntimeError", "nonscalar_backward", "y", "error")
    assert "[2, 3]" in d.title and "6 numbers" in d.message
    assert "`y.sum().backward()`" in d.fix and "`y.backward(torch.ones_like(y))`" in d.fix
    assert roles(d) == {"computed": "y = x * 2", "backward": "y.backward()"}
    assert [n.label for n in rep.nodes if n.id in d.nodes] == ["MulBackward0"]


def test_autograd_grad_gets_grad_outputs():
    rep, _, _ = run("x = torch.ones(3, requires_grad=True)\ny = x.exp()\ng, = torch.autograd.grad(y, x)\n")
    [d] = rep.diagnoses
    assert "grad_outputs=torch.ones_like(y)" in d.fix
    assert roles(d)["backward"] == "g, = torch.autograd.grad(y, x)"


def test_an_unnamed_root_is_described_by_its_op():
    rep, _, _ = run("x = torch.ones(3, requires_grad=True)\n(x * 2).backward()\n")
    [d] = rep.diagnoses
    assert d.tensor is None and d.title.startswith("the result of MulBackward0 has shape [3]")


@pytest.mark.parametrize("source", [
    "x = torch.ones(3, requires_grad=True)\n(x * 2).sum().backward()\n",
    "x = torch.ones(3, requires_grad=True)\ny = x * 2\ny.backward(torch.ones_like(y))\n",
    "x = torch.ones(3, requires_grad=True)\ny = x * 2\n"
    "raise ValueError('grad can be implicitly created only for scalar outputs')\n",
])
def test_no_false_alarm(source):
    rep, _, _ = run(source)
    assert "nonscalar_backward" not in kinds(rep)
