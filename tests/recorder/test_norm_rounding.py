"""Batch norm over few values per channel: float32 rounding that the tolerance model must
explain, and wrong rules that it must still catch.

A ResNet-18 trained by SGD on two images normalizes layer4's 1×1 maps over two values per
channel; once the loop diverges those two values sit close together far from 0 (|μ|/σ up
to 2·10⁴), and torch's float32 ``x − μ`` is off by ε·|x|: its batch-norm outputs and every
gradient through them carry that rounding. The engine computes the normalization in
float64 and is the closer of the two to float64 torch, yet the plain rule (rtol of max|t|)
called the conv weights' gradients "differ". ``magnitudes.TERMS`` bounds those rules'
terms with |x̂| ≤ (|x| + |μ|)/σ; a wrong rule (a sign, a factor, a dropped term) is still off
by far more than its terms' rounding on well-conditioned data.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradmagic.engine as E
from gradmagic.engine import REGISTRY, record_backward
from gradmagic.recorder import Session, trace
from gradmagic.recorder.crosscheck import compare
from gradmagic.recorder.magnitudes import rounding, value_terms, within_rounding


def _data(seed: int = 0, offset: float = 1.0, spread: float = 1e-2, channels: int = 64,
          size: int = 3) -> dict:
    """Two near-equal images far from 0: a full-size conv (``size`` 3) gives 2 values per
    channel; ``size`` 6 gives 2·4·4."""
    g = torch.Generator().manual_seed(seed)
    inp = offset + spread * torch.randn(2, 8, size, size, generator=g)
    inp[1] = inp[0] + spread * torch.randn(8, size, size, generator=g)
    return {"inp": inp, "W": torch.randn(channels, 8, 3, 3, generator=g) / 8,
            "gamma": torch.randn(channels, generator=g), "beta": torch.randn(channels, generator=g),
            "r": torch.randn(2, channels, 1, 1, generator=g)}


def _torch_grad(d: dict, dtype: torch.dtype) -> np.ndarray:
    w = d["W"].to(dtype).detach().requires_grad_()
    y = F.batch_norm(F.conv2d(d["inp"].to(dtype), w), None, None, d["gamma"].to(dtype),
                     d["beta"].to(dtype), True)
    (y * d["r"].to(dtype)).sum().backward()
    return w.grad.numpy()


def _engine_grad(d: dict) -> tuple:
    """(the engine's float32 gradient of the conv weight, the recorded steps, the leaf)."""
    w = E.tensor(d["W"].numpy(), requires_grad=True)
    with record_backward() as calls:
        y = E.batch_norm(E.conv2d(E.tensor(d["inp"].numpy()), w), None, None,
                         E.tensor(d["gamma"].numpy()), E.tensor(d["beta"].numpy()), True)
        (y * E.tensor(d["r"].numpy())).sum().backward()
    return w.grad.data, calls[0].steps, w


def _judge(d: dict) -> tuple:
    """(plain verdict, verdict with Σ|terms|) of the engine's gradient against torch float32."""
    e, steps, w = _engine_grad(d)
    res = compare(e, _torch_grad(d, torch.float32))
    return res[0], rounding(res, e, _torch_grad(d, torch.float32), steps, id(w), {})[0]


def test_conv_weight_gradient_through_two_value_batch_norm_is_float32_rounding():
    d = _data(offset=100.0)  # |μ|/σ ≈ 10⁴, as layer4's in the diverging ResNet-18 loop
    e, steps, w = _engine_grad(d)
    t32, t64 = _torch_grad(d, torch.float32), _torch_grad(d, torch.float64)
    scale = np.abs(t64).max()
    # the engine is the closer to the truth: torch float32 is off by several times max|g|
    assert np.abs(e - t64).max() / scale < 1e-2 < 1.0 < np.abs(t32 - t64).max() / scale
    res = compare(e, t32)
    assert res[0] == "differ"  # the false alarm: batch norm's rule on |x| cancelled as x's does
    judged = rounding(res, e, t32, steps, id(w), {})
    assert judged[0] == "agree" and "rounding" in judged[5]


@pytest.mark.parametrize("offset,spread", [(1.0, 1e-2), (10.0, 1e-3)])
def test_milder_two_value_batch_norm_gradients_agree(offset, spread):
    # torch float32 is off the float64 truth by 2.6e-4 (offset 1) and 8 % (offset 10)
    assert _judge(_data(offset=offset, spread=spread))[1] == "agree"


def _scaled(rule, factor: float):
    return lambda *a, **k: factor * rule(*a, **k)


def _no_xhat_term(g, ans, x, w, b, eps=1e-5):  # γ·(g − mean(g))/σ: the x̂ projection dropped
    axes = (0,) + tuple(range(2, x.ndim))
    gw = g * w.reshape(1, -1, *(1,) * (x.ndim - 2))
    var = x.astype(np.float64).var(axis=axes, keepdims=True)
    return ((gw - gw.mean(axis=axes, keepdims=True)) / np.sqrt(var + eps)).astype(x.dtype)


MUTANTS = {
    "conv weight, sign": ("conv", 1, lambda r: _scaled(r, -1.0)),
    "conv weight, factor 2": ("conv", 1, lambda r: _scaled(r, 2.0)),
    "batch norm x, factor 1.5": ("batch_norm", 0, lambda r: _scaled(r, 1.5)),
    "batch norm x, x̂ term dropped": ("batch_norm", 0, lambda r: _no_xhat_term),
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_wrong_conv_or_batch_norm_rule_is_still_caught(monkeypatch, name):
    op, i, mutate = MUTANTS[name]
    opdef = REGISTRY[op]
    rules = list(opdef.vjps)
    rules[i] = mutate(rules[i])
    monkeypatch.setattr(opdef, "vjps", tuple(rules))
    # well-conditioned, 32 values per channel: batch norm's usual case. (Over 2 values per
    # channel the input's gradient is 0 up to ε/σ² in exact arithmetic, whatever γ: every
    # digit of it is rounding, and no tolerance can tell a factor in it.)
    d = _data(seed=1, offset=0.0, spread=1.0, size=6)
    assert _judge(d) == ("differ", "differ")


def _train(steps: int = 4) -> object:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.Conv2d(32, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.Flatten(), nn.Linear(32, 10))
    x, y = torch.randn(2, 3, 4, 4), torch.tensor([0, 1])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with trace(session=Session(), check="all") as rep:
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    return rep


def test_a_small_resnet_like_sgd_loop_agrees_and_a_wrong_conv_rule_is_caught(monkeypatch):
    rep = _train()
    assert rep.ok and not rep.mismatches, [m.detail for m in rep.mismatches]
    assert rep.coverage["grads"]["checked"] > 0 and rep.coverage["grads"]["unchecked"] == 0
    conv = REGISTRY["conv"]
    monkeypatch.setattr(conv, "vjps", (conv.vjps[0], _scaled(conv.vjps[1], -1.0), conv.vjps[2]))
    rep = _train()
    assert not rep.ok and any(m.what == "grad" for m in rep.mismatches)


def test_batch_norm_values_far_from_zero_are_float32_rounding():
    # the forward half: layer4's batch norm at SGD step 6 (|μ|/σ ≈ 2·10⁴) was off by 2.8e-4
    g = torch.Generator().manual_seed(0)
    x = 50.0 + 1e-2 * torch.randn(2, 64, 1, 1, generator=g)
    gamma, beta = torch.randn(64, generator=g), torch.randn(64, generator=g)
    t32 = F.batch_norm(x, None, None, gamma, beta, True).numpy()
    t64 = F.batch_norm(x.double(), None, None, gamma.double(), beta.double(), True).numpy()
    y = E.batch_norm(E.tensor(x.numpy(), requires_grad=True), None, None, E.tensor(gamma.numpy()),
                     E.tensor(beta.numpy()), True)
    e = y.data
    assert np.abs(e - t64).max() < 1e-6 < np.abs(t32 - t64).max()
    res = compare(e, t32)
    assert res[0] == "differ"
    terms = value_terms(y.grad_fn)
    assert within_rounding(res, e, t32, terms)[0] == "agree"
    # well-conditioned values leave no such room: a sign or a dropped β still differs
    x = torch.randn(2, 64, 1, 1, generator=g)
    y = E.batch_norm(E.tensor(x.numpy(), requires_grad=True), None, None, E.tensor(gamma.numpy()),
                     E.tensor(beta.numpy()), True)
    t32 = F.batch_norm(x, None, None, gamma, beta, True).numpy()
    for wrong in (-y.data, y.data - beta.numpy().reshape(1, -1, 1, 1)):
        res = compare(wrong, t32)
        assert within_rounding(res, wrong, t32, value_terms(y.grad_fn))[0] == "differ"


# ----- a variance beyond float32's range (fuzz program 215090) ---------------------------------
_HUGE = [[[3.4e38, 1.0, 2.0], [0.5, 1.0, 1.0], [1.0, 1.0, 3.4e38]], [[1.0, 2.0, 1.0], [0.25, 0.5, 1.0], [2.0, 1.0, 1.0]]]
_NORMS = {
    "group_norm": lambda x, w, b: F.group_norm(x, 1, w, b, 1e-5),
    "layer_norm": lambda x, w, b: F.layer_norm(x, (3, 3)),
    "batch_norm": lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
    "instance_norm": lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
}


@pytest.mark.parametrize("name", sorted(_NORMS))
def test_a_normalization_whose_variance_overflows_float32_is_unchecked_not_differ(name):
    """torch's float32 kernels compute the variance in float32: (3.4e38 − μ)² is inf, 1/σ is 0,
    and the output is β; a kernel computing it wider gives x̂. The value check says why it
    cannot decide, and never "differ" (nor "agree")."""
    torch.manual_seed(0)
    w, b = torch.rand(3), torch.randn(3)
    with trace(session=Session()) as rep:
        x = torch.tensor(_HUGE, requires_grad=True)
        _NORMS[name](x, w, b)
    assert not rep.mismatches
    checks = [c for c in rep.checks if c.what == "value" and "variance overflows" in (c.detail or "")]
    statuses = {c.status for c in rep.checks if c.what == "value"}
    assert "differ" not in statuses
    assert checks and all(c.status == "unchecked" for c in checks)
    assert "float32" in checks[0].detail


def test_the_same_normalization_in_range_is_still_checked(monkeypatch):
    """The allowance needs a squared deviation beyond the range: a wrong layer_norm on ordinary
    float32 data still differs."""
    ln = REGISTRY["layer_norm"]
    right = ln.fwd
    monkeypatch.setattr(ln, "fwd", lambda *a, **k: right(*a, **k) * 1.01)
    with trace(session=Session()) as rep:
        x = torch.randn(2, 3, 3, requires_grad=True)
        F.layer_norm(x, (3, 3))
    assert not rep.ok
    assert any(c.status == "differ" for c in rep.checks if c.what == "value")
