"""``gradmagic.diagnose.inplace``: a tensor saved for backward, then modified in place."""
from __future__ import annotations

import pytest

from diagnose_helpers import roles, run

from gradmagic.diagnose.inplace import inplace_fix


def test_names_the_tensor_the_saving_op_the_inplace_op_and_the_backward():
    rep, raised, _ = run("a = torch.ones(3, requires_grad=True)\nb = a.sigmoid()\nb.mul_(2)\nb.sum().backward()\n")
    assert raised == "RuntimeError"
    [d] = rep.diagnoses
    assert (d.kind, d.tensor, d.severity) == ("inplace_saved", "b", "error")
    assert d.title == "b was modified in place after SigmoidBackward0 saved it"
    assert [(ln["role"], ln["line"], ln["code"]) for ln in d.lines] == [
        ("saved by", 2, "b = a.sigmoid()"), ("modified in place", 3, "b.mul_(2)"), ("backward", 4, "b.sum().backward()")]
    assert d.fix.startswith("write `b = b.mul(2)` instead of `b.mul_(2)`")
    labels = {n.id: n.label for n in rep.nodes}
    assert [labels[n] for n in d.nodes] == ["SigmoidBackward0", "MulBackward0"]


def test_a_leaf_updated_under_no_grad_names_the_update():
    rep, raised, _ = run("w = torch.ones(3, requires_grad=True)\nloss = (w ** 2).sum()\n"
                         "with torch.no_grad():\n    w -= 0.1\nloss.backward()\n")
    [d] = rep.diagnoses
    assert roles(d) == {"saved by": "loss = (w ** 2).sum()", "modified in place": "w -= 0.1",
                        "backward": "loss.backward()"}
    assert d.fix.startswith("run every backward() that needs w before `w -= 0.1`")


def test_an_inplace_op_on_an_unsaved_tensor_is_no_problem():
    rep, raised, _ = run("a = torch.ones(3, requires_grad=True)\nb = a * 2\nb.add_(1)\nb.sum().backward()\n")
    assert raised is None and rep.diagnoses == []


def test_other_errors_are_not_taken_for_it():
    rep, raised, _ = run("a = torch.ones(3, requires_grad=True)\nb = a.sigmoid()\nb.mul_(2)\nraise ValueError('no')\n")
    assert raised == "ValueError" and rep.diagnoses == []


@pytest.mark.parametrize("code, fix", [
    ("b.mul_(2)", "write `b = b.mul(2)` instead of `b.mul_(2)`"),
    ("h.clamp_(min=0)", "write `h = h.clamp(min=0)` instead of `h.clamp_(min=0)`"),
    ("out += identity", "write `out = out + identity` instead of `out += identity`"),
    ("x *= 2", "write `x = x * 2` instead of `x *= 2`"),
    ("y = F.relu(y, inplace=True)", "pass `inplace=False` instead of `inplace=True`"),
    ("b[1] = 2", "call `.clone()` on b before `b[1] = 2`"),
])
def test_the_fix_rewrites_the_statement_out_of_place(code, fix):
    assert inplace_fix(code, code[0]).startswith(fix)
