"""Optimizer steps as torch runs them (the single-tensor for-loop, ``foreach=True``),
gradient clipping and learning-rate schedulers under ``trace()``: every parameter update
is recomputed by the engine and checked against torch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recorder_helpers import assert_clean
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace

OPTIMIZERS = {
    "SGD": lambda p, fe: torch.optim.SGD(p, lr=0.1, foreach=fe),
    "SGD-momentum": lambda p, fe: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01,
                                                  foreach=fe),
    "SGD-nesterov": lambda p, fe: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01,
                                                  foreach=fe),
    "Adam": lambda p, fe: torch.optim.Adam(p, lr=0.05, foreach=fe),
    "AdamW": lambda p, fe: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1, foreach=fe),
    "AdamW-amsgrad": lambda p, fe: torch.optim.AdamW(p, lr=0.05, amsgrad=True, foreach=fe),
    "RMSprop": lambda p, fe: torch.optim.RMSprop(p, lr=0.01, foreach=fe),
    "RMSprop-centered": lambda p, fe: torch.optim.RMSprop(p, lr=0.01, centered=True, momentum=0.9,
                                                          weight_decay=0.1, foreach=fe),
    "Adagrad": lambda p, fe: torch.optim.Adagrad(p, lr=0.1, weight_decay=0.1, foreach=fe),
}


def train(make_opt, steps=3, clip=None, sched=None):
    """A small MLP trained for ``steps`` steps; returns (net, optimizer, loss values)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = make_opt(net.parameters())
    scheduler = sched(opt) if sched else None
    X, y = torch.randn(5, 3), torch.randn(5, 1)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(X), y)
        loss.backward()
        if clip == "norm":
            torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        elif clip == "value":
            torch.nn.utils.clip_grad_value_(net.parameters(), 0.05)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return net, opt, losses


def traced(*args, **kw):
    """``train`` plain and under ``trace()``; the traced run must leave torch's values."""
    plain_net, plain_opt, plain_losses = train(*args, **kw)
    with trace(session=Session()) as rep:
        net, opt, losses = train(*args, **kw)
    assert losses == plain_losses
    for p, q in zip(net.parameters(), plain_net.parameters()):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in plain_opt.param_groups]
    return rep, net


def updates(rep, status=None):
    out = [c for c in rep.checks if c.detail and "update by" in c.detail]
    return [c for c in out if status is None or c.status == status]


@pytest.mark.parametrize("foreach", [None, True, False])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_update_is_recomputed_and_agrees(name, foreach):
    rep, net = traced(lambda p: OPTIMIZERS[name](p, foreach))
    assert_clean(rep)
    assert len(updates(rep, "agree")) == 4 and not updates(rep, "differ")  # one per parameter
    assert not [n for n in rep.notes if "not recomputed" in n], rep.notes
    for lf in rep.leaves:
        assert [e.kind for e in lf.events].count("update") == 3


def test_the_default_on_cpu_is_the_single_tensor_loop():
    """torch 2.13 picks the foreach kernels by default on CUDA only: on CPU ``foreach=None``
    is the for-loop (``Tensor.addcdiv_``), which the mirror follows as well."""
    from torch.optim.optimizer import _default_to_fused_or_foreach
    p = [torch.zeros(2, requires_grad=True)]
    assert _default_to_fused_or_foreach(p, differentiable=False, use_fused=False) == (False, False)


@pytest.mark.parametrize("foreach", [True, False])
def test_a_broken_rule_is_caught_on_the_update(monkeypatch, foreach):
    """A wrong engine ``sqrt`` (``_foreach_sqrt`` / ``Tensor.sqrt`` in Adam's denominator)
    shows as a differing update of every parameter; torch's values are untouched."""
    sqrt = REGISTRY["sqrt"]
    monkeypatch.setattr(sqrt, "fwd", lambda a: np.sqrt(a) * 1.5)
    rep, net = traced(lambda p: torch.optim.Adam(p, lr=0.05, foreach=foreach), steps=2)
    assert not rep.ok
    bad = updates(rep, "differ")
    assert len(bad) == 4 and all(c.detail == "update by Adam.step" for c in bad)
    assert {c.node for c in rep.mismatches} == {c.node for c in bad}
    assert {n.name for n in rep.nodes if n.id in {c.node for c in bad}} == {
        "net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}


def test_a_broken_foreach_rule_is_caught(monkeypatch):
    """Breaking the engine's rule of one foreach op (``torch._foreach_lerp_`` of Adam's
    first moment) is caught on the update."""
    from gradmagic.recorder import mapping
    from gradmagic.recorder.rows import optim as rows

    spec = mapping.lookup(torch._foreach_lerp_)
    good = spec.adapt

    def wrong(args, kwargs):
        out = good(args, kwargs)
        for t in args[0]:
            t.data *= 2
        return out
    wrong.elem = good.elem
    monkeypatch.setitem(mapping._CACHE, torch._foreach_lerp_, spec._replace(adapt=wrong))
    rep, _ = traced(lambda p: torch.optim.Adam(p, lr=0.05, foreach=True), steps=1)
    assert len(updates(rep, "differ")) == 4 and not rep.ok
    assert "torch._foreach_lerp_" in rows.FOREACH


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("clip", ["norm", "value"])
def test_gradient_clipping_is_checked(clip, foreach):
    rep, net = traced(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, foreach=foreach), clip=clip)
    assert_clean(rep)
    edits = [c for c in rep.checks if c.detail and c.detail.startswith("gradient edit by torch._foreach_")]
    assert edits and all(c.status == "agree" for c in edits)
    assert len(updates(rep, "agree")) == 4
    if clip == "norm":
        assert any(n.torch_op == "torch._foreach_norm" for n in rep.nodes)
        assert any(n.torch_op == "torch.linalg.vector_norm" for n in rep.nodes)
    kinds = [e.kind for e in rep.leaf("net.0.weight").events]
    assert kinds.count("set") == 3 * (1 if clip == "norm" else 2) and kinds.count("update") == 3


def test_a_wrong_clip_rule_is_caught(monkeypatch):
    monkeypatch.setattr(REGISTRY["clamp"], "fwd", lambda a, min=None, max=None: np.clip(a, min, max) * 0.5)
    rep, _ = traced(lambda p: torch.optim.SGD(p, lr=0.1), clip="value", steps=1)
    bad = [c for c in rep.mismatches if c.detail and "gradient edit by torch._foreach_clamp" in c.detail]
    assert bad and not rep.ok


@pytest.mark.parametrize("sched", [
    lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
    lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4),
])
def test_learning_rate_schedulers(sched):
    rep, _ = traced(lambda p: torch.optim.Adam(p, lr=0.05), sched=sched, steps=4)
    assert_clean(rep)
    assert len(updates(rep, "agree")) == 4


def test_fused_kernels_are_unchecked_not_wrong():
    """``fused=True`` runs one kernel without an engine rule: the updates are unchecked,
    with a note, and everything else still agrees."""
    rep, _ = traced(lambda p: torch.optim.Adam(p, lr=0.05, fused=True))
    assert rep.ok and not updates(rep)
    assert any("Adam.step: some parameter updates were not recomputed" in n and "_fused_adam_" in n
               for n in rep.notes), rep.notes


def test_an_engine_failure_never_breaks_the_step(monkeypatch):
    def boom(*a, **k):
        raise ValueError("boom")
    monkeypatch.setattr(REGISTRY["add"], "fwd", boom)
    plain = train(lambda p: torch.optim.Adam(p, lr=0.05, foreach=True), steps=2)[0]
    with trace(session=Session()) as rep:
        net = train(lambda p: torch.optim.Adam(p, lr=0.05, foreach=True), steps=2)[0]
    for p, q in zip(net.parameters(), plain.parameters()):
        assert torch.equal(p, q)
    assert not updates(rep) and any("not recomputed" in n and "boom" in n for n in rep.notes)
    assert not any("internal error" in n for n in rep.notes)


def test_foreach_update_by_hand():
    """``torch._foreach_add_(params, grads, alpha=-lr)`` outside an optimizer: each
    parameter's update is checked like ``p -= lr * p.grad``."""
    with trace(session=Session()) as rep:
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        b = torch.tensor([0.5], requires_grad=True)
        for _ in range(2):
            ((w * w).sum() + (b * w).sum()).backward()
            with torch.no_grad():
                torch._foreach_add_([w, b], [w.grad, b.grad], alpha=-0.1)
                torch._foreach_zero_([w.grad, b.grad])
        s = torch._foreach_sqrt(torch._foreach_abs([w, b]))
    assert_clean(rep)
    assert [e.kind for e in rep.leaf("w").events] == ["created"] + ["backward", "update", "zero_"] * 2
    upd = [c for c in rep.checks if c.detail == "update by torch._foreach_add_"]
    assert len(upd) == 2 and all(c.status == "agree" for c in upd)
    assert [n.torch_op for n in rep.nodes].count("torch._foreach_sqrt") == 2
    assert torch.allclose(s[0], w.abs().sqrt())


def test_no_check_leaves_the_step_alone():
    with trace(session=Session(), check=False) as rep:
        train(lambda p: torch.optim.Adam(p, lr=0.05, foreach=True), steps=2)
    assert not updates(rep) and not any("internal error" in n for n in rep.notes)


def test_an_update_event_carries_its_step_also_for_a_0d_parameter():
    # Event "update": added = after − before (the step); a 0-d parameter's difference is a
    # NumPy scalar, which must still be summarised (strict JSON)
    import json

    with trace(session=Session()) as rep:
        b = torch.tensor(1.0, requires_grad=True)
        opt = torch.optim.SGD([b], lr=0.5)
        (b * b).backward()
        opt.step()
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    [update] = [e for e in d["leaves"][0]["events"] if e["kind"] == "update"]
    assert update["before"]["data"] == 1.0 and update["after"]["data"] == 0.0
    assert update["added"]["data"] == -1.0
