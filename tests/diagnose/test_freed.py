"""``gradmagic.diagnose.freed``: backward through a graph an earlier backward freed."""
from __future__ import annotations

from diagnose_helpers import roles, run

from gradmagic.diagnose.freed import carried_name
import torch

from gradmagic.recorder import Session, trace


def test_a_second_backward_names_the_first():
    rep, raised, _ = run("x = torch.ones(3, requires_grad=True)\ny = (x * x).sum()\ny.backward()\ny.backward()\n")
    [d] = rep.diagnoses
    assert (d.kind, d.tensor, d.severity) == ("freed_graph", None, "error")
    assert [(ln["role"], ln["line"]) for ln in d.lines] == [("freed by", 3), ("backward", 4)]
    assert "retain_graph=True" in d.fix and "`y.backward()`" in d.fix
    assert {n.label for n in rep.nodes if n.id in d.nodes} == {"MulBackward0", "SumBackward0"}


def test_the_freeing_call_may_be_in_an_earlier_cell():
    s = Session()
    ns = {"torch": torch}
    src1 = "x = torch.ones(3, requires_grad=True)\ny = (x * x).sum()\ny.backward()\n"
    with trace(session=s, namespace=ns, filename="<c1>", source=src1, cell=1):
        exec(compile(src1, "<c1>", "exec"), ns)
    src2 = "y.backward()\n"
    try:
        with trace(session=s, namespace=ns, filename="<c2>", source=src2, cell=2) as rep:
            exec(compile(src2, "<c2>", "exec"), ns)
    except RuntimeError:
        pass
    [d] = rep.diagnoses
    assert [(ln["role"], ln["cell"], ln["line"], ln["code"]) for ln in d.lines] == [
        ("freed by", 1, 3, "y.backward()"), ("backward", 2, 1, "y.backward()")]


def test_retain_graph_keeps_it():
    rep, raised, _ = run("x = torch.ones(3, requires_grad=True)\ny = (x * x).sum()\n"
                         "y.backward(retain_graph=True)\ny.backward()\n")
    assert raised is None and rep.diagnoses == []


def test_a_state_carried_into_a_new_forward_is_named():
    rep, raised, _ = run("W = torch.ones(2, 2, requires_grad=True)\nh = torch.zeros(1, 2)\nfor t in range(2):\n"
                         "    h = torch.tanh(h @ W + 1)\n    h.sum().backward()\n")
    [d] = rep.diagnoses
    assert d.tensor == "h" and "h = h.detach()" in d.fix
    assert roles(d)["reused"] == "h = torch.tanh(h @ W + 1)"


def test_carried_name():
    assert carried_name("total = total + loss") == "total"
    assert carried_name("total += loss") == "total"
    assert carried_name("a, b = f(a, b)") is None  # two candidates: no guess
    assert carried_name("not python (") is None


def test_autograd_grad_frees_too():
    rep, raised, _ = run("x = torch.ones(3, requires_grad=True)\ny = (x.exp()).sum()\n"
                         "g, = torch.autograd.grad(y, [x])\ng2, = torch.autograd.grad(y, [x])\n")
    [d] = rep.diagnoses
    assert raised == "RuntimeError"
    assert roles(d) == {"freed by": "g, = torch.autograd.grad(y, [x])", "backward": "g2, = torch.autograd.grad(y, [x])"}
