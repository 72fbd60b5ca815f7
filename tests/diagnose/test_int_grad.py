"""``gradmagic.diagnose.int_grad``: integer or boolean tensors asked to require grad."""
from __future__ import annotations

import pytest

from diagnose_helpers import kinds, roles, run

from gradmagic.diagnose.int_grad import float_fix


@pytest.mark.parametrize("source, fix", [
    ("x = torch.arange(4)\nx.requires_grad_()\n", "`x = torch.arange(4.0)`"),
    ("x = torch.arange(4)\nx.requires_grad = True\n", "`x = torch.arange(4.0)`"),
    ("x = torch.tensor([1, 2, 3])\np = torch.nn.Parameter(x)\n", "`x = torch.tensor([1., 2., 3.])`"),
])
def test_the_line_that_made_the_integer_tensor(source, fix):
    rep, raised, _ = run(source)
    [d] = rep.diagnoses
    assert (raised, d.kind, d.tensor, d.severity) == ("RuntimeError", "int_requires_grad", "x", "error")
    assert "(int64)" in d.title and fix in d.fix and d.nodes
    assert roles(d)["created"] == source.split("\n")[0]


def test_a_factory_that_raises_draws_nothing_but_names_the_line():
    rep, _, _ = run("y = 1\nx = torch.arange(4, requires_grad=True)\n")
    [d] = rep.diagnoses
    assert d.tensor == "x" and d.nodes == []
    assert roles(d) == {"created": "x = torch.arange(4, requires_grad=True)"}
    assert "`x = torch.arange(4.0, requires_grad=True)`" in d.fix


def test_indices_of_an_op_get_another_fix():
    rep, _, _ = run("v, i = torch.max(torch.ones(2, 3), dim=1)\ni.requires_grad_()\n")
    [d] = rep.diagnoses
    assert "integer results" in d.fix and roles(d)["requires grad"] == "i.requires_grad_()"


def test_a_bool_mask():
    rep, _, _ = run("m = torch.ones(3) > 0\nm.requires_grad_()\n")
    [d] = rep.diagnoses
    assert "boolean tensor (bool)" in d.title


def test_float_tensors_are_fine():
    rep, raised, _ = run("x = torch.arange(4.0)\nx.requires_grad_()\n(x * x).sum().backward()\n")
    assert raised is None and "int_requires_grad" not in kinds(rep)


def test_float_fix_falls_back():
    assert "`.float()`" in float_fix("x = load()")
    assert "dtype=torch.float32" in float_fix("x = torch.arange(n)")
