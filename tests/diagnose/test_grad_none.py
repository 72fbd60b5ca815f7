"""``gradmagic.diagnose.grad_none``: why a ``.grad`` the cell read is None."""
from __future__ import annotations

import pytest

from diagnose_helpers import roles, run


def _one(source):
    rep, raised, _ = run(source)
    [d] = rep.diagnoses
    assert d.kind == "grad_none"
    return d, raised


def test_a_non_leaf_needs_retain_grad():
    d, raised = _one("w = torch.ones(2, requires_grad=True)\nh = w * 2\nh.sum().backward()\ng = h.grad\n")
    assert (d.tensor, d.title, d.severity, raised) == ("h", "Why is h.grad None?", "warning", None)
    assert roles(d) == {"computed": "h = w * 2", "read": "g = h.grad"}
    assert "h.retain_grad()" in d.fix


def test_a_weight_rebound_by_its_update_is_no_leaf_any_more():
    d, raised = _one("w = torch.tensor(2.0, requires_grad=True)\nfor _ in range(2):\n"
                     "    ((w * 3 - 10) ** 2).backward()\n    w = w - 0.1 * w.grad\n")
    assert raised == "TypeError" and d.severity == "error"
    assert "torch.no_grad()" in d.fix and "w = w - 0.1 * w.grad" in d.fix


@pytest.mark.parametrize("source", [
    "x = torch.ones(2, requires_grad=True)\ng = x.grad\n",  # no backward yet: None by design
    "x = torch.ones(2, requires_grad=True)\n(x * 2).sum().backward()\nif x.grad is not None:\n    g = x.grad\n",
    "x = torch.ones(2, requires_grad=True)\ny = torch.ones(2, requires_grad=True)\n(x * 2).sum().backward()\n"
    "ok = y.grad is None\n",
    "x = torch.ones(2, requires_grad=True)\ng, = torch.autograd.grad((x * 2).sum(), [x])\nh = x.grad\n",
    # torch's own reads (Module.zero_grad looks at p.grad) are not the user's
    "m = torch.nn.Linear(2, 1)\nfor i in range(2):\n    m.zero_grad()\n    m(torch.ones(1, 2)).sum().backward()\n",
])
def test_expected_nones_are_not_diagnosed(source):
    rep, raised, _ = run(source)
    assert raised is None and rep.diagnoses == []


def test_no_grad_block_is_named():
    d, _ = _one("w = torch.ones(2, requires_grad=True)\nv = torch.ones(2, requires_grad=True)\n"
                "with torch.no_grad():\n    h = w * 2\n(h * v).sum().backward()\ng = w.grad\n")
    assert roles(d)["gradients off"] == "with torch.no_grad():"
    assert d.lines[[ln["role"] for ln in d.lines].index("gradients off")]["line"] == 3


@pytest.mark.parametrize("cut, code", [
    ("h = w.detach() * 2", "h = w.detach() * 2"),
    ("h = torch.tensor(w.sum().item()) * 2", "h = torch.tensor(w.sum().item()) * 2"),
])
def test_a_cut_chain_is_named(cut, code):
    d, _ = _one(f"w = torch.ones(2, requires_grad=True)\nv = torch.ones(2, requires_grad=True)\n{cut}\n"
                "(h * v).sum().backward()\ng = w.grad\n")
    assert roles(d)["cut by"] == code and d.tensor == "w"


def test_a_gradient_set_to_none_after_backward():
    d, raised = _one("w = torch.ones(2, requires_grad=True)\n(w * 2).sum().backward()\nw.grad = None\n"
                     "w.grad.zero_()\n")
    assert raised == "AttributeError" and d.severity == "error"
    assert roles(d) == {"backward": "(w * 2).sum().backward()", "set to None": "w.grad = None",
                        "read": "w.grad.zero_()"}


def test_requires_grad_never_set_and_rewrapping_are_told_apart():
    d, _ = _one("x = torch.tensor(3.)\nw = torch.tensor(4., requires_grad=True)\n(w * x).backward()\ng = x.grad\n")
    assert "never had requires_grad set" in d.message and roles(d)["created"] == "x = torch.tensor(3.)"
    d, _ = _one("w = torch.tensor(4., requires_grad=True)\nz = torch.tensor(w)\n(w * z).backward()\ng = z.grad\n")
    assert roles(d)["cut by"] == "z = torch.tensor(w)"


def test_one_diagnosis_per_tensor():
    rep, _, _ = run("w = torch.ones(2, requires_grad=True)\nh = w * 2\nh.sum().backward()\na = h.grad\nb = h.grad\n")
    assert len(rep.diagnoses) == 1
