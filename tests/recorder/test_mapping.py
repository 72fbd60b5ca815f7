"""The mapping table: operator forms, argument spellings, opaque fallback, names, lines."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recorder_helpers import assert_clean, run_cells
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace
from gradmagic.recorder.mapping import TORCH_OPS, lookup, registry_targets


def test_every_target_is_an_engine_op():
    missing = sorted(registry_targets() - set(REGISTRY))
    assert not missing, missing
    assert all(spec.name for spec in TORCH_OPS.values())


def test_operator_forms_and_argument_spellings():
    with trace(session=Session()) as rep:
        x = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]], requires_grad=True)
        v = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        outs = [2 * x, x * 2, 1 - x, x - 1, 2 / (x * x + 1), x / 3, x ** 2, 2 ** x, -x, x @ v, v @ v,
                x.sum(axis=0, keepdims=True), x.sum(1, keepdim=True), torch.sum(x, dim=1), x.mean(0),
                x.norm(), torch.norm(x, p="fro"), x.clamp(min=0), torch.where(x > 0, x, 0.1 * x),
                torch.cat([x, x], dim=0), torch.stack([v, v]), x.T @ x, x.max(dim=1).values,
                x.max(), torch.max(x, torch.zeros_like(x)), F.softmax(x, dim=1), F.log_softmax(x, 1),
                torch.sigmoid(x), torch.tanh(x), torch.exp(x), torch.log(x * x + 1), x.abs(),
                F.relu(x), x.reshape(-1), x.view(3, 2), x.unsqueeze(0).squeeze(0), x.transpose(0, 1),
                x.permute(1, 0), x[:, 1:], x[0], x[x > 0], x.clone(), F.mse_loss(x, torch.ones(2, 3)),
                torch.logsumexp(x, dim=1), x.exp().log1p(), torch.outer(v, v), x.float(),
                (x > 0).float() * x, x.expand(2, 2, 3)[0], torch.sqrt(x * x + 1)]
        total = sum(o.sum() for o in outs)
        total.backward()
        cmp = (x == x) & (x < 5) | (x >= 10)
        with torch.no_grad():
            y = x.detach().clone()
            y += 1
            y.add_(v, alpha=2)
            y.mul_(0.5)
            y -= v
            y[0, 0] = 7.0
            y.zero_()
            y.fill_(3.0)
            y.clamp_(max=2.0)
    assert_clean(rep)
    assert cmp.all()
    assert rep.leaf("x").grad == x.grad.tolist() and rep.leaf("v").status == "agree"


def test_unmapped_call_is_opaque_and_unchecked():
    with trace(session=Session()) as rep:
        x = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
        w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = torch.special.bessel_j0(x) * 2
        (y + w).sum().backward()
    assert rep.unsupported == ["torch.special.bessel_j0"]
    assert rep.ok
    assert rep.leaf("x").status == "unchecked" and rep.leaf("w").status == "agree"
    opaque = [n for n in rep.nodes if n.kind == "opaque"]
    assert len(opaque) == 1 and opaque[0].torch_op == "torch.special.bessel_j0"


def test_names_sources_and_grad_nodes():
    cells = ["net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))\n"
             "X = torch.randn(4, 3)\n"
             "out = net(X).sum()\n"
             "out.backward()",
             "g = net[0].weight.grad * 1"]
    reports, ns = run_cells(cells)
    rep = reports[0]
    assert_clean(rep)
    names = {lf.name for lf in rep.leaves}
    assert names == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    out = rep.node("out")
    assert out.source["line"] == 3 and out.source["code"] == "out = net(X).sum()"
    assert rep.node("X").kind == "constant"
    lin = [n for n in rep.nodes if n.op == "linear"]
    assert len(lin) == 2 and all(n.source["line"] == 3 for n in lin)
    g = reports[1].node("g")
    assert g.status == "agree"
    assert reports[1].node("net.0.weight.grad") is not None


def test_gradcheck_finite_differences():
    with trace(session=Session(), gradcheck=True) as rep:
        x = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64, requires_grad=True)
        W = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
        y = torch.tanh(W @ x).pow(2).sum() + torch.softmax(x, 0)[0]
        y.backward()
    assert_clean(rep)
    gc = [c for c in rep.checks if c.what == "gradcheck"]
    assert {c.node for c in gc} == {rep.node("x").id, rep.node("W").id}
    assert all(c.status == "agree" for c in gc)


def test_long_loop_is_bounded():
    s = Session(keep_calls=2)
    with trace(session=s, check="all") as rep:
        w = torch.zeros(3, requires_grad=True)
        X = torch.randn(8, 3)
        for _ in range(60):
            loss = ((X @ w - 1) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w -= 0.1 * w.grad
                w.grad.zero_()
    assert_clean(rep)
    assert len(rep.backward_calls) == 60
    assert [c.steps is not None for c in rep.backward_calls].count(True) == 2
    assert len(rep.nodes) < 30
    assert any("summarised" in n for n in rep.notes)
    assert lookup(torch.Tensor.backward).kind == "backward"
