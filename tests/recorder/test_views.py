"""In-place writes through torch views (``y[0].mul_(2)``, ``torch.relu_(y[1:])``,
``y[0][1] = v``): the recorder mirrors torch's ``CopySlices`` (the base's new history) so
gradients through the base and through other views of it are checked, not left unchecked.
torch (a plain run of the same cell) is the oracle."""
from __future__ import annotations

import pytest
import torch

from recorder_helpers import assert_clean
from gradmagic.recorder import Session, trace
from gradmagic.recorder.state import view_index

CASES = {
    "whole view": "y = w.clone()\ny[...].div_(2.0)\nloss = (y * y).sum()",
    "row": "y = w * 2\ny[0].mul_(w[1])\nloss = (y * w).sum()",
    "column, then the view used": "y = w * 3\nv = y[:, 1]\nv.mul_(3)\nloss = (v * v).sum() + y.sum()",
    "strided slice": "y = w.clone()\ny[1:, ::2].sub_(w[0, 0])\nloss = (y ** 2).sum()",
    "view of a transpose": "y = w.clone()\ny.T[0].add_(1.5)\nloss = (y * w).sum()",
    "view of a reshape": "y = w * 1\ny.view(9)[2:5].mul_(-1.0)\nloss = (y ** 3).sum()",
    "relu_ on a view": "y = w.clone()\ntorch.relu_(y[1:])\nloss = (y ** 2).sum()",
    "augmented assignment": "y = w * 1\ny[0] *= w[2]\nloss = y.sum()",
    "setitem on a view": "y = w * 1\ny[0][1] = w[2, 2] * 5\nloss = y.sum()",
    "constant base": "c = torch.zeros(3, 3)\nc[0:2].add_(w[1:])\nloss = (c * c).sum()",
    "two writes": "y = w * 2\nv = y[1]\nv.mul_(2)\nv.add_(1)\nloss = (y * w).sum()",
    "another view of the base": "y = w.clone()\na, b = y[0:2], y[1:]\na.mul_(3)\nloss = (b * b).sum()",
}


def _run(src: str, traced: bool):
    code = compile(src + "\nloss.backward()\n", "<views>", "exec")
    torch.manual_seed(0)
    ns = {"torch": torch, "w": torch.randn(3, 3, requires_grad=True)}
    if not traced:
        exec(code, ns)
        return ns, None
    with trace(session=Session(), namespace=ns) as rep:
        exec(code, ns)
    return ns, rep


@pytest.mark.parametrize("name", sorted(CASES))
def test_write_through_a_view_is_checked(name):
    plain, _ = _run(CASES[name], traced=False)
    ns, rep = _run(CASES[name], traced=True)
    assert torch.equal(ns["w"].grad, plain["w"].grad)  # the user's result is torch's own
    assert_clean(rep)
    assert [c.status for c in rep.backward_calls] == ["agree"]
    assert rep.leaf("w").status == "agree" and rep.leaf("w").grad == plain["w"].grad.tolist()
    assert any(n.torch_op == "CopySlices" for n in rep.nodes)


def test_second_order_through_a_view_write():
    src = ("y = w * w\ny[1:].mul_(w[:2])\ng, = torch.autograd.grad(y.sum(), w, create_graph=True)\n"
           "loss = (g * g).sum()")
    plain, _ = _run(src, traced=False)
    ns, rep = _run(src, traced=True)
    assert torch.equal(ns["w"].grad, plain["w"].grad)
    assert [c.status for c in rep.backward_calls] == ["agree", "agree"]


def test_a_leaf_updated_through_a_view_under_no_grad():
    """``w[0] -= lr * w.grad[0]``: an update event of w (one per statement), next backward agrees."""
    with trace(session=Session()) as rep:
        w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        (w * w).sum().backward()
        with torch.no_grad():
            w[0] -= 0.1 * w.grad[0]
            w[1:] *= 0.5
        w.grad.zero_()
        (w * w).sum().backward()
    assert_clean(rep)
    assert [e.kind for e in rep.leaf("w").events] == ["created", "backward", "update", "update", "zero_",
                                                       "backward"]
    assert rep.leaf("w").status == "agree" and rep.leaf("w").grad == w.grad.tolist()


@pytest.mark.parametrize("index", ["[1]", "[:, 2]", "[1:, ::2]", "[..., None, 0]", ".T[1:]", ".view(-1)[3:7]",
                                   ".reshape(2, 3)[1]", "[0, 1]"])
def test_view_index_addresses_the_views_elements(index):
    base = torch.arange(6.0).reshape(2, 3)
    view = eval("base" + index)
    assert base[view_index(view, base)].tolist() == view.tolist()


@pytest.mark.parametrize("index", ["[1]", "[:, 1:]", "[::2, 0]"])
def test_view_index_follows_a_base_with_its_own_strides(index):
    base = torch.arange(12.0).reshape(3, 4).t().clone()  # clone keeps the transposed layout
    assert not base.is_contiguous()
    view = eval("base" + index)
    assert base[view_index(view, base)].tolist() == view.tolist()


def test_view_index_declines_overlapping_memory():
    base = torch.zeros(1).expand(3)  # three elements, one memory location
    assert view_index(base[1:], base) is None


def test_write_through_a_view_of_a_transposed_clone():
    src = "y = w.t().clone()\ny[:, 1].mul_(w[0])\nloss = (y * y).sum()"
    plain, _ = _run(src, traced=False)
    ns, rep = _run(src, traced=True)
    assert torch.equal(ns["w"].grad, plain["w"].grad)
    assert [c.status for c in rep.backward_calls] == ["agree"]
