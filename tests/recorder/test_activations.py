"""Activations, elementwise math and losses under the recorder: nn.Modules and F calls run
under ``trace()`` must be mapped (nothing opaque), agree with torch node by node, and leave
outputs and ``.grad`` exactly as a plain run does; a wrong rule must be caught."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from recorder_helpers import assert_clean
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace

T3 = [1, 3, 0]

ACTIVATIONS = {
    "SiLU": lambda: nn.SiLU(), "ELU": lambda: nn.ELU(0.5), "SELU": lambda: nn.SELU(),
    "CELU": lambda: nn.CELU(0.7), "Hardtanh": lambda: nn.Hardtanh(-0.5, 0.7),
    "ReLU6": lambda: nn.ReLU6(), "Mish": lambda: nn.Mish(), "LogSigmoid": lambda: nn.LogSigmoid(),
    "Softsign": lambda: nn.Softsign(), "Softshrink": lambda: nn.Softshrink(0.3),
    "Hardshrink": lambda: nn.Hardshrink(0.3), "Tanhshrink": lambda: nn.Tanhshrink(),
    "Hardswish": lambda: nn.Hardswish(), "Hardsigmoid": lambda: nn.Hardsigmoid(),
    "GELU-tanh": lambda: nn.GELU(approximate="tanh"), "GLU": lambda: nn.GLU(),
    "GLU0": lambda: nn.GLU(0), "PReLU4": lambda: nn.PReLU(4), "PReLU": lambda: nn.PReLU(),
    "RReLU-eval": lambda: nn.RReLU().eval(), "Softmin": lambda: nn.Softmin(1),
    "Threshold": lambda: nn.Threshold(0.1, -1.0), "ELU-inplace": lambda: _Inplace(nn.ELU(inplace=True)),
    "ReLU6-inplace": lambda: _Inplace(nn.ReLU6(inplace=True)),
    "SELU-inplace": lambda: _Inplace(nn.SELU(inplace=True)),
    # DCGAN's discriminator (the official tutorial): nn.LeakyReLU(0.2, inplace=True)
    "LeakyReLU-inplace": lambda: _Inplace(nn.LeakyReLU(0.2, inplace=True)),
}


class _Inplace(nn.Module):
    """An in-place activation on an intermediate (x·2), as in a Sequential after a Linear."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x):
        return self.act(x * 2)


def _both(program):
    """(plain result, traced result, report): ``program()`` returns (output, leaves)."""
    torch.manual_seed(0)
    plain = program()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with trace(session=Session()) as rep:
            traced = program()
    return plain, traced, rep


def _assert_same(plain, traced) -> None:
    (out_p, leaves_p), (out_t, leaves_t) = plain, traced
    assert torch.equal(out_p, out_t)
    for a, b in zip(leaves_p, leaves_t):
        assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_modules_are_mapped_and_agree(name):
    def program():
        layer = ACTIVATIONS[name]()
        x = torch.randn(4, 4, requires_grad=True)
        y = layer(x)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        return y.detach(), [x, *layer.parameters()]

    plain, traced, rep = _both(program)
    assert_clean(rep)
    _assert_same(plain, traced)


def test_elementwise_math_spellings():
    def program():
        x = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
        y = (torch.sinh(x) + x.cosh() + torch.asin(x * 0.5) + x.acos() + torch.atan(x) + x.asinh()
             + torch.acosh(x + 1.5) + x.atanh() + torch.log2(x + 0.1) + x.log10() + torch.exp2(x)
             + x.sinc() + torch.arcsin(x * 0.3) + x.arctan() + torch.special.exp2(x)
             + torch.special.sinc(x) + x.hardshrink(0.2) + torch.selu(x) + torch.celu(x))
        y.sum().backward()
        return y.detach(), [x]

    plain, traced, rep = _both(program)
    assert_clean(rep)
    _assert_same(plain, traced)


def _loss_program(make, target_fn, shape=(3, 4), extra=()):
    def program():
        x = torch.randn(*shape, requires_grad=True)
        loss = make()(x, *[f() for f in extra], target_fn())
        (loss.sum() if loss.dim() else loss).backward()
        return loss.detach(), [x]
    return program


def _idx():
    return torch.tensor(T3)


LOSSES = {
    "CE-smoothing": (lambda: nn.CrossEntropyLoss(label_smoothing=0.1), _idx),
    "CE-weight": (lambda: nn.CrossEntropyLoss(weight=torch.tensor([0.5, 2.0, 1.0, 0.3])), _idx),
    "CE-all": (lambda: nn.CrossEntropyLoss(weight=torch.tensor([0.5, 2.0, 1.0, 0.3]), ignore_index=3,
                                           label_smoothing=0.2, reduction="sum"), _idx),
    "CE-probs": (lambda: nn.CrossEntropyLoss(label_smoothing=0.1, reduction="none"),
                 lambda: torch.rand(3, 4).softmax(1)),
    "NLL-weight": (lambda: nn.NLLLoss(weight=torch.tensor([0.5, 2.0, 1.0, 0.3]), reduction="none"),
                   _idx),
    "L1": (lambda: nn.L1Loss(), lambda: torch.randn(3, 4)),
    "SmoothL1": (lambda: nn.SmoothL1Loss(beta=0.5), lambda: torch.randn(3, 4)),
    "Huber": (lambda: nn.HuberLoss(delta=0.5, reduction="none"), lambda: torch.randn(3, 4)),
    "KLDiv": (lambda: nn.KLDivLoss(reduction="batchmean"), lambda: torch.rand(3, 4).softmax(1)),
    "KLDiv-log": (lambda: nn.KLDivLoss(log_target=True, reduction="sum"), lambda: torch.randn(3, 4)),
    "PoissonNLL": (lambda: nn.PoissonNLLLoss(), lambda: torch.rand(3, 4) * 3),
    "PoissonNLL-full": (lambda: _Exp(nn.PoissonNLLLoss(log_input=False, full=True)),
                        lambda: torch.rand(3, 4) * 3 + 0.5),
    "MultiLabelSoftMargin": (lambda: nn.MultiLabelSoftMarginLoss(weight=torch.rand(4)),
                             lambda: (torch.rand(3, 4) > 0.5).float()),
    "SoftMargin": (lambda: nn.SoftMarginLoss(), lambda: torch.randn(3, 4).sign()),
    "HingeEmbedding": (lambda: nn.HingeEmbeddingLoss(margin=0.5), lambda: torch.randn(3, 4).sign()),
    "BCEWithLogits": (lambda: nn.BCEWithLogitsLoss(pos_weight=torch.rand(4), weight=torch.rand(4)),
                      lambda: torch.rand(3, 4)),
    "BCE": (lambda: _Sigmoid(nn.BCELoss(weight=torch.rand(4), reduction="sum")),
            lambda: torch.rand(3, 4)),
    "MSE": (lambda: nn.MSELoss(reduction="sum"), lambda: torch.randn(3, 4)),
}


class _Exp(nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, x, t):
        return self.loss(x.exp(), t)


class _Sigmoid(_Exp):
    def forward(self, x, t):
        return self.loss(x.sigmoid(), t)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_modules_are_mapped_and_agree(name):
    make, target = LOSSES[name]
    plain, traced, rep = _both(_loss_program(make, target))
    assert_clean(rep)
    _assert_same(plain, traced)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_k_dimensional_cross_entropy(reduction):
    def program():
        x = torch.randn(2, 3, 2, 2, requires_grad=True)
        t = torch.randint(0, 3, (2, 2, 2))
        w = torch.tensor([1.0, 0.5, 2.0])
        loss = (F.cross_entropy(x, t, reduction=reduction)
                + F.cross_entropy(x, t, weight=w, ignore_index=1, reduction=reduction)
                + F.cross_entropy(x, t, label_smoothing=0.3, weight=w, reduction=reduction)
                + F.nll_loss(F.log_softmax(x, 1), t, weight=w, reduction=reduction))
        loss.sum().backward()
        return loss.detach(), [x]

    plain, traced, rep = _both(program)
    assert_clean(rep)
    _assert_same(plain, traced)


def test_pair_and_triplet_losses():
    def program():
        a, p, n = (torch.randn(3, 4, requires_grad=True) for _ in range(3))
        v = torch.rand(3, 1, requires_grad=True)
        loss = (nn.CosineEmbeddingLoss(0.2)(a, p, torch.tensor([1, -1, 1]))
                + nn.MarginRankingLoss(0.1, reduction="sum")(a[:, 0], p[:, 0], torch.tensor([1., -1., 1.]))
                + nn.TripletMarginLoss(swap=True)(a, p, n)
                + nn.TripletMarginLoss(p=1, reduction="sum")(a, p, n)
                + nn.GaussianNLLLoss(full=True)(a, p, v)
                + F.gaussian_nll_loss(a, n, 0.5, reduction="sum"))
        loss.backward()
        return loss.detach(), [a, p, n, v]

    plain, traced, rep = _both(program)
    assert_clean(rep)
    _assert_same(plain, traced)


def test_rrelu_in_training_mode_is_opaque():
    """Training-mode rrelu draws its slopes from torch's generator: not replayed, so the call
    is an opaque node (its value copied from torch), never a wrong check."""
    def program():
        x = torch.randn(3, 4, requires_grad=True)
        y = nn.RReLU()(x)
        y.sum().backward()
        return y.detach(), [x]

    plain, traced, rep = _both(program)
    assert rep.ok and rep.unsupported == ["torch.nn.functional.rrelu"]
    _assert_same(plain, traced)


def test_wrong_silu_rule_is_located(monkeypatch):
    silu = REGISTRY["silu"]
    monkeypatch.setattr(silu, "vjps", (lambda g, ans, a: g * REGISTRY["sigmoid"].fwd(a),))
    with trace(session=Session()) as rep:
        x = torch.randn(3, 4, requires_grad=True)
        nn.Sequential(nn.Linear(4, 2), nn.SiLU())(x).sum().backward()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "silu" and first.torch_op == "torch.nn.functional.silu"


def test_wrong_label_smoothing_is_caught(monkeypatch):
    """A wrong nll_loss rule under label-smoothed cross-entropy (composite) is caught."""
    nll = REGISTRY["nll_loss"]
    wrong = nll.vjps[0]
    monkeypatch.setattr(nll, "vjps", (lambda g, *a, **k: 2 * wrong(g, *a, **k), None))
    with trace(session=Session()) as rep:
        x = torch.randn(3, 4, requires_grad=True)
        nn.CrossEntropyLoss(label_smoothing=0.1)(x, torch.tensor(T3)).backward()
    assert not rep.ok
    assert rep.node(rep.first_divergence).op == "nll_loss"


@pytest.mark.parametrize("kw", [{}, {"weight": True}, {"label_smoothing": 0.1},
                                {"weight": True, "label_smoothing": 0.1}])
def test_cross_entropy_with_every_target_ignored(kw):
    # fuzz seeds 8517, 4047: torch's mean loss is nan (0/0) but its gradient is exactly 0,
    # even when the upstream gradient is nan (the loss squared)
    torch.manual_seed(0)
    kw = {k: (torch.rand(3) if k == "weight" else v) for k, v in kw.items()}
    with trace(session=Session()) as rep:
        x = torch.randn(2, 3, requires_grad=True)
        loss = F.cross_entropy(x, torch.tensor([0, 0]), ignore_index=0, **kw)
        (loss * loss).backward()
    assert_clean(rep)
    assert torch.isnan(loss) and x.grad.abs().sum() == 0
