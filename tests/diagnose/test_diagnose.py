"""``gradmagic.diagnose``: the entry point the recorder calls when it builds a report."""
from __future__ import annotations

import json

import gradmagic.diagnose as diagnose_pkg
from diagnose_helpers import run


def test_a_failing_detector_becomes_a_note(monkeypatch):
    def broken(ctx):
        raise KeyError("boom")
    monkeypatch.setattr(diagnose_pkg, "_ON_ERROR", (broken,))
    rep, raised, _ = run("a = torch.ones(3, requires_grad=True)\nb = a.sigmoid()\nb.mul_(2)\nb.sum().backward()\n")
    assert raised == "RuntimeError"  # the user's own error, unchanged
    assert rep.diagnoses == []
    assert any("could not finish its diagnosis" in n and "KeyError" in n for n in rep.notes)


def test_nothing_runs_when_nothing_went_wrong(monkeypatch):
    called = []
    spy = lambda ctx: called.append(1) or []  # noqa: E731
    monkeypatch.setattr(diagnose_pkg, "_ON_ERROR", (spy,))
    monkeypatch.setattr(diagnose_pkg, "_ON_NONE_READ", (spy,))
    rep, raised, _ = run("x = torch.ones(3, requires_grad=True)\n(x * x).sum().backward()\ng = x.grad\n")
    assert raised is None and called == [] and rep.diagnoses == []


def test_diagnoses_are_json_safe_and_point_at_drawn_nodes():
    rep, _, _ = run("x = torch.tensor([0.0, 1.0], requires_grad=True)\n(x.sqrt() * 0).sum().backward()\n"
                    "h = x * 2\ng = h.grad\n")
    d = rep.to_dict()
    assert [x["kind"] for x in d["diagnoses"]] == ["grad_none", "nonfinite_grad"]
    ids = {n["id"] for n in d["nodes"]}
    assert all(set(x["nodes"]) <= ids and x["nodes"] for x in d["diagnoses"])
    json.dumps(d, allow_nan=False)


def test_the_block_lets_go_of_the_graph():
    import gc
    import weakref
    rep, _, ns = run("a = torch.ones(3, requires_grad=True)\nb = a.sigmoid()\nb.mul_(2)\nb.sum().backward()\n")
    assert rep.diagnoses
    ref = weakref.ref(ns["b"])
    ns.clear()
    gc.collect()
    assert ref() is None
