"""``gradmagic.diagnose.no_grad_fn``: backward from a tensor without a graph, and where it was cut."""
from __future__ import annotations

from diagnose_helpers import kinds, roles, run


def _one(source):
    rep, raised, _ = run(source)
    assert raised == "RuntimeError"
    [d] = rep.diagnoses
    assert d.kind == "no_grad_fn" and d.severity == "error"
    return d


def test_a_no_grad_block_is_named():
    d = _one("w = torch.ones(3, requires_grad=True)\nwith torch.no_grad():\n    loss = (w * 2).sum()\n"
             "loss.backward()\n")
    assert d.tensor == "loss" and "gradients off" in d.title
    assert roles(d) == {"gradients off": "with torch.no_grad():", "computed": "loss = (w * 2).sum()",
                        "backward": "loss.backward()"}
    assert "outside `with torch.no_grad():`" in d.fix


def test_an_item_rewrapped_in_a_tensor():
    d = _one("w = torch.ones(3, requires_grad=True)\nloss = torch.tensor((w * 2).sum().item())\nloss.backward()\n")
    assert roles(d)["cut by"] == "loss = torch.tensor((w * 2).sum().item())"
    assert "`.item()`" in d.title and ".item()" in d.fix


def test_a_detach_on_the_way():
    d = _one("w = torch.ones(3, requires_grad=True)\nh = (w * 2).detach()\nloss = (h ** 2).sum()\nloss.backward()\n")
    assert roles(d)["cut by"] == "h = (w * 2).detach()" and "detached copy" in d.fix


def test_values_rewrapped_on_another_line():
    d = _one("w = torch.ones(3, requires_grad=True)\na = (w * 2).detach().numpy()\nt = torch.tensor(a)\n"
             "loss = t.sum()\nloss.backward()\n")
    assert roles(d)["cut by"] == "t = torch.tensor(a)" and "re-wrapping values" in d.title


def test_requires_grad_never_set():
    d = _one("w = torch.ones(3)\nx = torch.ones(3)\nloss = (w * x).sum()\nloss.backward()\n")
    assert "nothing it was computed from requires grad" in d.title
    assert [ln["role"] for ln in d.lines] == ["created", "created", "computed", "backward"]
    assert "requires_grad=True" in d.fix and "`w.requires_grad_()`" in d.fix


def test_correct_code_gets_nothing():
    rep, raised, _ = run("w = torch.ones(3, requires_grad=True)\nloss = (w * 2).sum()\nloss.backward()\n")
    assert raised is None and "no_grad_fn" not in kinds(rep)


def test_a_data_alias_on_the_way():
    d = _one("w = torch.ones(3, requires_grad=True)\nh = w.data * 2\nloss = h.sum()\nloss.backward()\n")
    assert "`w.data`" in d.title and roles(d)["cut by"] == "h = w.data * 2"
    assert "detached copy" in d.fix
