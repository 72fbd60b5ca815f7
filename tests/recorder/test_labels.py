"""Node labels for ``detach()``, ``x.data``, ``.item()`` numbers and tensors re-wrapped with
``torch.tensor``: the report says what they are (issue 15, item 6), and the views show it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diagnose"))
from diagnose_helpers import run  # noqa: E402

from gradmagic.recorder.labels import call_argument, origin_label  # noqa: E402
from gradmagic.viz.text import render_text  # noqa: E402

HEAD = "x = torch.ones(3, requires_grad=True)\ny = x * 2\n"


def _node(rep, **match):
    return next(n for n in rep.nodes if all(getattr(n, k) == v for k, v in match.items()))


@pytest.mark.parametrize("line, name, label", [
    ("d = y.detach()", "d", "detached copy of y (no gradient flows back)"),
    ("c = torch.tensor(y)", "c", "torch.tensor(y): a copy without history"),
    ("c = torch.as_tensor(y.detach().numpy())", "c", "torch.as_tensor(y.detach().numpy()): values without history"),
    ("c = torch.tensor(y.sum().item())", "c", "y.sum().item() as a constant (no history)"),
    ("s = y.sum().item()\nc = torch.tensor(s) * 2", None, "y.sum().item() as a constant (no history)"),
])
def test_labels_say_where_the_values_came_from(line, name, label):
    rep, raised, _ = run(HEAD + line + "\n")
    assert raised is None
    assert label in [n.label for n in rep.nodes if name is None or n.name == name]


def test_a_data_alias_names_its_tensor_also_when_temporary():
    rep, _, _ = run(HEAD + "a = y.data\nz = (a + y.data * 2).sum()\n")
    labels = [n.label for n in rep.nodes if n.kind == "constant"]
    assert labels == ["y.data (shares y's values, no history)"] * 2


def test_a_detach_of_an_unnamed_result_names_its_op():
    rep, _, _ = run(HEAD + "d = (x + 1).detach()\n")
    assert _node(rep, name="d").label == "detached copy of AddBackward0 (no gradient flows back)"


@pytest.mark.parametrize("line", [
    "c = torch.tensor([1.0, 2.0, 3.0])",  # plain values: nothing to say
    "s = 3.0\nc = torch.tensor(s)",  # a number that did not come from .item()
    "s = y.sum().item()\ns = 4.0\nc = torch.tensor(s)",  # rebound before use
])
def test_plain_constants_keep_no_label(line):
    rep, _, _ = run(HEAD + line + "\n")
    assert _node(rep, name="c").label is None


def test_the_text_view_and_the_dict_show_them():
    rep, _, _ = run(HEAD + "d = y.detach()\nloss = (d * x).sum()\nloss.backward()\n")
    data = rep.to_dict()
    assert "detached copy of y (no gradient flows back)" in [n["label"] for n in data["nodes"]]
    assert "detached copy of y (no gradient" in render_text(data)


def test_helpers():
    assert call_argument("t = torch.tensor([a, (b, c)], dtype=d)", "tensor") == "[a, (b, c)]"
    assert call_argument("t = torch.tensor()", "tensor") is None
    assert origin_label(type("R", (), {"torch_op": "Tensor.mul", "inputs": ()})(), set()) is None
