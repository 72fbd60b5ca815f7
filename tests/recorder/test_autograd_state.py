"""requires_grad setter, retain_grad, backward(inputs=), grad = None, .data writes,
autograd.grad with several inputs, momentum SGD with zero_grad(set_to_none=False)."""
from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from recorder_helpers import assert_clean
from gradmagic.recorder import Session, trace
from gradmagic.recorder.twins import Rec


def test_autograd_state_changes():
    with trace(session=Session(), check="all") as rep:
        x = torch.randn(3)
        x.requires_grad = True
        w = torch.randn(3, requires_grad=True)
        h = x * w
        h.retain_grad()
        out = (h ** 2).sum()
        out.backward(inputs=[w, x])
        x.grad = None
        with torch.no_grad():
            w.data -= 0.1 * w.grad
        g1, g2 = torch.autograd.grad((x * w).sum(), [x, w])
        net = nn.Linear(3, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad(set_to_none=False)
            net(x.detach().unsqueeze(0)).sum().backward()
            opt.step()
        z = torch.zeros(3)
        z += x * 2
        z.sum().backward()
    assert_clean(rep)
    kinds = {lf.name: [e.kind for e in lf.events] for lf in rep.leaves}
    assert kinds["x"] == ["created", "backward", "set_none", "backward"]
    assert kinds["w"] == ["created", "backward", "update"]
    assert kinds["net.weight"] == ["created"] + ["backward", "update", "zero_"] * 2 + ["backward", "update"]
    assert rep.node("z").label == "AddBackward0" and rep.node("z").status == "agree"
    assert not any(n.name and n.name.endswith(".grad") for n in rep.nodes)  # zero_grad's reads
    assert rep.leaf("x").grad == x.grad.tolist()


def test_records_do_not_pile_up():
    s = Session()
    with trace(session=s):
        w = torch.zeros(4, requires_grad=True)
        X = torch.randn(16, 4)
        for _ in range(200):
            loss = torch.sigmoid(X @ w).sum()
            loss.backward()
            with torch.no_grad():
                w -= 0.01 * w.grad
            w.grad = None
    gc.collect()
    alive = sum(1 for o in gc.get_objects() if type(o) is Rec)
    assert alive < 60, alive


@pytest.mark.skipif(tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 11),
                    reason="torch.autograd.backward(...) reaches TorchFunctionMode from torch 2.11 on")
def test_autograd_backward_function_form():
    with trace(session=Session(), check="all") as rep:
        x = torch.tensor([1.0, -2.0], requires_grad=True)
        y = x * x
        torch.autograd.backward([y], grad_tensors=[torch.tensor([1.0, 0.5])])
    assert_clean(rep)
    assert rep.leaf("x").grad == [2.0, -2.0] and rep.leaf("x").status == "agree"
    assert rep.backward_calls[0].status == "agree"


@pytest.mark.skipif(tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 11),
                    reason="torch.autograd.backward(...) reaches TorchFunctionMode from torch 2.11 on")
def test_autograd_backward_with_several_roots_is_mirrored():
    """``torch.autograd.backward([l1, l2, v], grad_tensors=[...])``: the engine runs the same
    multi-root backward; every leaf reached by any root is checked."""
    with trace(session=Session(), check="all") as rep:
        x = torch.tensor([1.0, -2.0], requires_grad=True)
        w = torch.tensor([0.5, 3.0], requires_grad=True)
        l1, l2, v = (x * w).sum(), (x * x).mean(), x * 3
        torch.autograd.backward([l1, l2, v], grad_tensors=[None, torch.tensor(2.0),
                                                          torch.tensor([1.0, 0.5])], retain_graph=True)
        torch.autograd.backward((l1 * 2,), retain_graph=True)  # a tuple of one root
    assert_clean(rep)
    assert [c.status for c in rep.backward_calls] == ["agree", "agree"]
    assert rep.leaf("x").grad == x.grad.tolist() == [6.5, 6.5]
    assert rep.leaf("w").grad == w.grad.tolist() == [3.0, -6.0]
    assert len(rep.leaf("x").events) == 3  # created, then one backward event per call


def test_editing_grad_in_place_is_mirrored_in_the_engine():
    """x.grad.zero_() in a later cell, and inside a training loop: the engine's .grad follows."""
    from recorder_helpers import run_cells

    reports, _ = run_cells([
        "x = torch.arange(4.0)\nx.requires_grad_(True)\ny = x.sum()\ny.backward()",
        "x.grad.zero_()\ny = x*x\ny",
        "w = torch.tensor([1.0, -1.0], requires_grad=True)\nfor i in range(3):\n"
        "    (w*w).sum().backward()\n    with torch.no_grad():\n"
        "        w -= 0.1*w.grad\n        w.grad.zero_()\n",
    ])
    (x1,), (x2,), (w3,) = ([lf for lf in r.to_dict()["leaves"]] for r in reports)
    assert x1["engine_grad"] == x1["grad"] == [1.0, 1.0, 1.0, 1.0]
    assert x2["grad"] == x2["engine_grad"] == [0.0, 0.0, 0.0, 0.0]
    assert x2["events"][-1]["kind"] == "zero_"
    assert w3["grad"] == w3["engine_grad"] == [0.0, 0.0]
