"""``gradmagic.diagnose.data_write``: a tensor saved for backward changed through ``.data``.

torch does not notice such a write (``.data`` does not move the version counter), so the
backward silently uses the new values; the diagnosis names the ``.data`` line. Writes that
change nothing the backward reads get nothing.
"""
from __future__ import annotations

import pytest
import torch

from diagnose_helpers import kinds, roles, run


@pytest.mark.parametrize("write", ["w.data.mul_(2)", "w.data = torch.tensor([5.0, 6.0])",
                                   "w.data[0] = 3.0", "torch.nn.init.zeros_(w.data)"])
def test_a_leaf_changed_through_data_after_it_was_saved(write):
    rep, raised, ns = run(f"w = torch.tensor([1.0, 2.0], requires_grad=True)\ny = (w * w).sum()\n{write}\n"
                          "y.backward()\n")
    [d] = rep.diagnoses
    assert (raised, d.kind, d.severity, d.tensor) == (None, "inplace_saved", "warning", "w")
    assert d.title == "w was changed through .data after MulBackward0 saved it; the backward used the new values"
    assert roles(d) == {"saved by": "y = (w * w).sum()", "modified in place": write, "backward": "y.backward()"}
    assert torch.equal(ns["w"].grad, 2 * ns["w"].detach())  # torch did use the new values
    assert d.nodes and "torch.no_grad()" in d.fix


def test_a_saved_result_changed_through_data_is_mirrored_not_a_mismatch():
    rep, _, ns = run("x = torch.tensor([1.0, 2.0], requires_grad=True)\nb = x.sigmoid()\nb.data.mul_(2)\n"
                     "b.sum().backward()\n")
    [d] = rep.diagnoses
    assert d.title == "b was changed through .data after SigmoidBackward0 saved it; the backward used the new values"
    assert roles(d) == {"saved by": "b = x.sigmoid()", "modified in place": "b.data.mul_(2)",
                        "backward": "b.sum().backward()"}
    # the engine mirrors what torch did (its saved values changed too): no false "differ"
    assert rep.ok and rep.first_divergence is None
    s = torch.tensor([1.0, 2.0]).sigmoid() * 2
    assert torch.allclose(ns["x"].grad, s * (1 - s))
    assert [n.value for n in rep.nodes if n.name == "b"] != []  # the node keeps its forward value


@pytest.mark.parametrize("cell", [
    # the write changed nothing
    "w = torch.tensor([1.0, 2.0], requires_grad=True)\ny = (w * w).sum()\nw.data.clamp_(-5, 5)\ny.backward()\n",
    # changed and changed back before the backward
    "x = torch.tensor([1.0, 2.0], requires_grad=True)\nb = x.exp()\nb.data.mul_(2)\nb.data.div_(2)\n"
    "b.sum().backward()\n",
    # a result saved by its node keeps its old memory when .data gets new memory
    "x = torch.tensor([1.0, 2.0], requires_grad=True)\nb = x.sigmoid()\nb.data = torch.zeros(2)\nb.sum().backward()\n",
    # x ** 2 keeps x, not its result
    "x = torch.tensor([1.0, 2.0], requires_grad=True)\ny = x ** 2\ny.data.mul_(2)\ny.sum().backward()\n",
    # w * 3 keeps nothing of w
    "w = torch.tensor([1.0, 2.0], requires_grad=True)\ny = (w * 3).sum()\nw.data.mul_(2)\ny.backward()\n",
    # no input needs a gradient through the weight: the layer keeps no weight
    "torch.manual_seed(0)\nlin = torch.nn.Linear(2, 1)\nout = lin(torch.ones(3, 2))\nloss = (out ** 2).mean()\n"
    "lin.weight.data.mul_(0.5)\nloss.backward()\n",
    # the update comes after the backward (plain SGD through .data), the next forward is new
    "torch.manual_seed(0)\nw = torch.randn(3, requires_grad=True)\nx = torch.randn(4, 3)\nfor step in range(3):\n"
    "    loss = ((x @ w) ** 2).mean()\n    loss.backward()\n    w.data -= 0.1 * w.grad.data\n    w.grad.data.zero_()\n",
    # x @ w keeps x (for w's gradient), not w: a second backward does not read w
    "torch.manual_seed(0)\nw = torch.randn(3, requires_grad=True)\nx = torch.randn(4, 3)\n"
    "loss = ((x @ w) ** 2).mean()\nloss.backward(retain_graph=True)\nw.data -= 0.1 * w.grad\nloss.backward()\n",
    # the write comes before the forward
    "w = torch.tensor([1.0, 2.0], requires_grad=True)\nw.data.mul_(2)\ny = (w * w).sum()\ny.backward()\n",
])
def test_writes_that_change_nothing_the_backward_reads_get_nothing(cell):
    rep, raised, _ = run(cell)
    assert raised is None and "inplace_saved" not in kinds(rep), [d.title for d in rep.diagnoses]


def test_a_write_between_two_backwards_of_one_graph():
    rep, _, _ = run("torch.manual_seed(0)\nw = torch.randn(3, requires_grad=True)\nx = torch.randn(4, 3)\n"
                    "loss = (torch.sin(w) * x).sum()\nloss.backward(retain_graph=True)\n"
                    "w.data -= 0.1 * w.grad\nloss.backward()\n")
    [d] = rep.diagnoses  # sin keeps w (x @ w would keep x only: its backward would not care)
    assert roles(d) == {"saved by": "loss = (torch.sin(w) * x).sum()", "modified in place": "w.data -= 0.1 * w.grad",
                        "backward": "loss.backward()"}
    assert d.lines[-1]["line"] == 7  # the second backward, not the first
