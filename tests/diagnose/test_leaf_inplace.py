"""``gradmagic.diagnose.leaf_inplace``: a leaf that requires grad changed in place."""
from __future__ import annotations

import pytest
import torch

from diagnose_helpers import kinds, roles, run

from gradmagic.diagnose.leaf_inplace import update_fix
from gradmagic.recorder import Session, trace


def test_a_hand_written_update_after_backward():
    rep, raised, _ = run("w = torch.ones(3, requires_grad=True)\n(w * w).sum().backward()\nw -= 0.1 * w.grad\n")
    [d] = rep.diagnoses
    assert (raised, d.kind, d.tensor, d.severity) == ("RuntimeError", "leaf_inplace", "w", "error")
    assert roles(d) == {"created": "w = torch.ones(3, requires_grad=True)", "in-place op": "w -= 0.1 * w.grad"}
    assert "with torch.no_grad(): w -= 0.1 * w.grad" in d.fix and "optim.SGD([w]" in d.fix
    assert [n.name for n in rep.nodes if n.id in d.nodes] == ["w"]


def test_setting_values_before_training():
    rep, _, _ = run("w = torch.zeros(3, requires_grad=True)\nw[0] = 1.0\n")
    [d] = rep.diagnoses
    assert roles(d)["in-place op"] == "w[0] = 1.0" and "before `w.requires_grad_()`" in d.fix


def test_through_a_view_names_the_leaf():
    rep, _, _ = run("w = torch.zeros(3, requires_grad=True)\nw[1:].add_(1)\n")
    [d] = rep.diagnoses
    assert d.tensor == "w" and "through a view" in d.message


def test_a_parameter_first_seen_there_is_drawn():
    rep, _, _ = run("lin = torch.nn.Linear(2, 2)\nlin.weight.mul_(2)\n")
    [d] = rep.diagnoses
    assert d.tensor == "lin.weight" and d.nodes


def test_the_update_under_no_grad_is_fine():
    rep, raised, _ = run("w = torch.ones(3, requires_grad=True)\n(w * w).sum().backward()\nwith torch.no_grad():\n"
                         "    w -= 0.1 * w.grad\n")
    assert raised is None and "leaf_inplace" not in kinds(rep)


def test_a_caught_error_is_not_the_cells_error():
    rep, raised, _ = run("w = torch.ones(3, requires_grad=True)\ntry:\n    w.add_(1)\nexcept RuntimeError:\n    pass\n"
                         "raise ValueError('stop')\n")
    assert raised == "ValueError" and "leaf_inplace" not in kinds(rep)


def test_update_fix():
    assert "optimizer" in update_fix("w.sub_(g)", "w", True)
    assert "requires_grad_()" in update_fix("w.fill_(0)", "w", False)


def test_a_leaf_from_an_earlier_cell_is_drawn():
    s, ns = Session(), {"torch": torch}
    with trace(session=s, namespace=ns, filename="<c1>", source="w = torch.ones(3, requires_grad=True)\n", cell=1):
        exec(compile("w = torch.ones(3, requires_grad=True)\n", "<c1>", "exec"), ns)
    with pytest.raises(RuntimeError), trace(session=s, namespace=ns, filename="<c2>", source="w.add_(1)\n",
                                            cell=2) as rep:
        exec(compile("w.add_(1)\n", "<c2>", "exec"), ns)
    [d] = rep.diagnoses
    assert d.tensor == "w" and d.nodes
    assert [(ln["role"], ln["cell"], ln["code"]) for ln in d.lines] == [
        ("created", 1, "w = torch.ones(3, requires_grad=True)"), ("in-place op", 2, "w.add_(1)")]
