"""The activations family beyond the op table: every option of the activations and losses
(weights, ignore_index, label smoothing, probability targets, K-dimensional inputs, each
reduction, legacy flags), node names per spelling, torch's errors — torch is the oracle."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradmagic.engine as ge

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4)) * 2
Y = RNG.standard_normal((3, 4))
T = np.array([1, 3, 0])
W = np.array([0.5, 2.0, 1.0, 0.3])
K = RNG.standard_normal((2, 3, 2, 2))
TK = RNG.integers(0, 3, (2, 2, 2))
P, Q = 1 / (1 + np.exp(-X)), 1 / (1 + np.exp(-Y))
PM1 = np.array([1.0, -1.0, 1.0])
REDUCTIONS = ["mean", "sum", "none"]


def both(fn, *arrays, grad=None, dtype="float64"):
    """(engine out, torch out, engine grads, torch grads) of ``fn(m, t, *xs)`` for m in
    (gradmagic.engine, F) and t in (gradmagic.engine, torch)."""
    grad = grad or [a.dtype.kind == "f" for a in arrays]
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    xt = [torch.tensor(a, requires_grad=bool(g)) for a, g in zip(arrays, grad)]
    xg = [ge.tensor(a, requires_grad=bool(g)) for a, g in zip(arrays, grad)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yt = fn(F, torch, *xt)
    yg = fn(ge, ge, *xg)
    v = RNG.standard_normal(yt.shape).astype(dtype)
    used = [i for i, g in enumerate(grad) if g]
    gt = torch.autograd.grad(yt, [xt[i] for i in used], torch.tensor(v), allow_unused=True)
    gg = ge.grad(yg, [xg[i] for i in used], ge.tensor(v), allow_unused=True)
    return yg, yt, gg, gt


def check(fn, *arrays, grad=None, dtype="float64", name=None):
    yg, yt, gg, gt = both(fn, *arrays, grad=grad, dtype=dtype)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    assert yg.data.dtype == yt.detach().numpy().dtype
    np.testing.assert_allclose(yg.data, yt.detach().numpy(), equal_nan=True, **tol)
    for a, b in zip(gg, gt):
        if b is None:
            assert a is None or not a.data.any()
        else:
            np.testing.assert_allclose(a.data, b.numpy(), equal_nan=True, **tol)
    if name is not None:
        assert yg.grad_fn.name == yt.grad_fn.name() == name


# ----------------------------------------------------------------------------- activations
ACTS = {
    "silu": "SiluBackward0", "elu": "EluBackward0", "selu": "EluBackward0", "celu": "CeluBackward0",
    "hardtanh": "HardtanhBackward0", "relu6": "HardtanhBackward0", "mish": "MishBackward0",
    "logsigmoid": "LogSigmoidBackward0", "softsign": "DivBackward0",
    "softshrink": "SoftshrinkBackward0", "hardshrink": "HardshrinkBackward0",
    "tanhshrink": "SubBackward0", "hardswish": "HardswishBackward0",
    "hardsigmoid": "HardsigmoidBackward0", "glu": "GluBackward0", "rrelu": "RreluWithNoiseBackward0",
    "softmin": "SoftmaxBackward0",
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_matches_torch_with_node_name(name, dtype):
    kw = {"softmin": {"dim": 1}}.get(name, {})
    check(lambda m, t, a: getattr(m, name)(a, **kw), X, dtype=dtype, name=ACTS[name])


@pytest.mark.parametrize("spelling", [
    lambda m, a: m.elu(a, 0.3), lambda m, a: m.celu(a, 2.5), lambda m, a: m.hardtanh(a, -0.2, 2.5),
    lambda m, a: m.softshrink(a, 1.5), lambda m, a: m.hardshrink(a, 0.0),
    lambda m, a: m.gelu(a, approximate="tanh"), lambda m, a: m.glu(a, 0) if a.shape[0] % 2 == 0
    else m.glu(a.reshape(2, 6), dim=0), lambda m, a: m.rrelu(a, 0.1, 0.9),
    lambda m, a: m.threshold(a, 0.5, 7.0), lambda m, a: m.softmin(a),
    lambda m, a: m.softmin(a, 0, dtype=torch.float64 if m is F else np.float64),
])
def test_activation_options(spelling):
    check(lambda m, t, a: spelling(m, a), X)


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((2, 4, 3), (4,)), ((2, 3), (1,)), ((5,), (1,)),
                                    ((), ()), ((2, 3, 2, 2), (3,))])
def test_prelu_shapes(shapes):
    x, w = RNG.standard_normal(shapes[0]), RNG.uniform(-0.5, 0.5, shapes[1])
    check(lambda m, t, a, b: m.prelu(a, b), x, w, name="PreluKernelBackward0")


def test_inplace_activations():
    def fn(m, t, a):
        ys = [a * (i + 1) for i in range(6)]
        m.elu(ys[0], inplace=True)
        m.hardtanh_(ys[1], -0.5, 0.5)
        m.selu_(ys[2])
        m.relu6(ys[3], inplace=True)
        m.threshold_(ys[4], 0.1, -1.0)
        m.celu_(ys[5], 0.5)
        return sum(y.sum() for y in ys)
    check(fn, X)


@pytest.mark.parametrize("name, node", [
    ("sinh", "SinhBackward0"), ("cosh", "CoshBackward0"), ("asin", "AsinBackward0"),
    ("acos", "AcosBackward0"), ("atan", "AtanBackward0"), ("asinh", "AsinhBackward0"),
    ("acosh", "AcoshBackward0"), ("atanh", "AtanhBackward0"), ("log2", "Log2Backward0"),
    ("log10", "Log10Backward0"), ("exp2", "Exp2Backward0"), ("sinc", "SincBackward0")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_math_matches_torch(name, node, dtype):
    x = {"asin": np.tanh(X) * .9, "acos": np.tanh(X) * .9, "atanh": np.tanh(X) * .9,
         "acosh": np.abs(X) + 1.1, "log2": np.abs(X) + .1, "log10": np.abs(X) + .1}.get(name, X)
    check(lambda m, t, a: getattr(t, name)(a), x, dtype=dtype, name=node)
    check(lambda m, t, a: getattr(a, name)(), x, dtype=dtype)


def test_math_on_integers_and_sinc_at_zero():
    check(lambda m, t, a: t.sinc(a), np.array([0.0, 1.0, 0.5, -2.0]))
    for name in ("sinh", "exp2", "log2", "atan", "sinc"):
        got = getattr(ge, name)(ge.tensor([1, 2, 3]))
        want = getattr(torch, name)(torch.tensor([1, 2, 3]))
        assert str(got.dtype) == "float32" and str(want.dtype) == "torch.float32"
        np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-6)


def test_integer_threshold_and_hardtanh_keep_their_dtype():
    for fn in (lambda m, a: m.threshold(a, 1, 5), lambda m, a: m.hardtanh(a, 0, 2)):
        got, want = fn(ge, ge.tensor([1, 2, 3])), fn(F, torch.tensor([1, 2, 3]))
        assert got.data.tolist() == want.tolist() and str(got.dtype) == "int64"


# ----------------------------------------------------------------------------- losses
LOSSES = {
    "l1": (lambda m, t, a, b, r: m.l1_loss(a, b, reduction=r), (X, Y), None),
    "smooth_l1": (lambda m, t, a, b, r: m.smooth_l1_loss(a, b, reduction=r, beta=0.7), (X, Y), None),
    "smooth_l1_beta0": (lambda m, t, a, b, r: m.smooth_l1_loss(a, b, reduction=r, beta=0.0), (X, Y),
                        None),
    "huber": (lambda m, t, a, b, r: m.huber_loss(a, b, reduction=r, delta=0.8), (X, Y), None),
    "huber_weight": (lambda m, t, a, b, r: m.huber_loss(a, b, r, 0.8, weight=t.tensor(Q)), (X, Y),
                     None),
    "mse_weight": (lambda m, t, a, b, r: m.mse_loss(a, b, reduction=r, weight=t.tensor(Q)), (X, Y),
                   None),
    "l1_weight": (lambda m, t, a, b, r: m.l1_loss(a, b, reduction=r, weight=t.tensor(Q)), (X, Y),
                  None),
    "kl": (lambda m, t, a, b, r: m.kl_div(a, b.softmax(1), reduction=r), (X, Y), None),
    "kl_log_target": (lambda m, t, a, b, r: m.kl_div(a, b, reduction=r, log_target=True), (X, Y),
                      None),
    "poisson": (lambda m, t, a, b, r: m.poisson_nll_loss(a, b.abs() * 3, reduction=r), (X, Y), None),
    "poisson_full": (lambda m, t, a, b, r: m.poisson_nll_loss(a.exp(), b.abs() * 3, log_input=False,
                                                              full=True, eps=1e-3, reduction=r),
                     (X, Y), None),
    "gaussian": (lambda m, t, a, b, v, r: m.gaussian_nll_loss(a, b, v.abs(), full=True, reduction=r),
                 (X, Y, RNG.standard_normal((3, 4))), None),
    "gaussian_homo": (lambda m, t, a, b, v, r: m.gaussian_nll_loss(a, b, v.abs(), reduction=r),
                      (X, Y, RNG.standard_normal(3)), None),
    "gaussian_eps": (lambda m, t, a, b, v, r: m.gaussian_nll_loss(a, b, v * 0.01, eps=0.5,
                                                                   reduction=r),
                     (X, Y, RNG.uniform(0, 1, (3, 1))), None),
    "nll_weight": (lambda m, t, a, i, r: m.nll_loss(a.log_softmax(1), i, weight=t.tensor(W).type_as(a),
                                                    reduction=r), (X, T), None),
    "nll_weight_ignore": (lambda m, t, a, i, r: m.nll_loss(a.log_softmax(1), i, t.tensor(W).type_as(a),
                                                           ignore_index=1, reduction=r), (X, T), None),
    "nll_kd": (lambda m, t, a, i, r: m.nll_loss(a, i, weight=t.tensor(W[:3]).type_as(a), reduction=r), (K, TK),
               "NllLoss2DBackward0"),
    "ce_weight": (lambda m, t, a, i, r: m.cross_entropy(a, i, weight=t.tensor(W).type_as(a), reduction=r),
                  (X, T), "NllLossBackward0"),
    "ce_smoothing": (lambda m, t, a, i, r: m.cross_entropy(a, i, label_smoothing=0.2, reduction=r),
                     (X, T), None),
    "ce_all": (lambda m, t, a, i, r: m.cross_entropy(a, i, weight=t.tensor(W).type_as(a), ignore_index=3,
                                                     label_smoothing=0.2, reduction=r), (X, T), None),
    "ce_probs": (lambda m, t, a, b, r: m.cross_entropy(a, b.softmax(1), reduction=r), (X, Y), None),
    "ce_probs_all": (lambda m, t, a, b, r: m.cross_entropy(a, b.softmax(1), weight=t.tensor(W).type_as(a),
                                                           label_smoothing=0.1, reduction=r),
                     (X, Y), None),
    "ce_kd": (lambda m, t, a, i, r: m.cross_entropy(a, i, weight=t.tensor(W[:3]).type_as(a), label_smoothing=0.1,
                                                    ignore_index=2, reduction=r), (K, TK), None),
    "ce_kd_plain": (lambda m, t, a, i, r: m.cross_entropy(a, i, reduction=r, ignore_index=0), (K, TK),
                    None),
    "ce_1d": (lambda m, t, a, i, r: m.cross_entropy(a, i, reduction=r), (X[0], np.array(2)), None),
    "multilabel": (lambda m, t, a, b, r: m.multilabel_soft_margin_loss(
        a, (b > 0).double(), weight=t.tensor(W).type_as(a), reduction=r), (X, Y), None),
    "cosine": (lambda m, t, a, b, r: m.cosine_embedding_loss(a, b, t.tensor(PM1), margin=0.1,
                                                             reduction=r), (X, Y), None),
    "margin_ranking": (lambda m, t, a, b, r: m.margin_ranking_loss(a, b, t.tensor(PM1), margin=0.1,
                                                                   reduction=r), (X[:, 0], Y[:, 0]),
                       None),
    "triplet": (lambda m, t, a, b, c, r: m.triplet_margin_loss(a, b, c, reduction=r),
                (X, Y, Y * 2 + 0.3), None),
    "triplet_swap_p1": (lambda m, t, a, b, c, r: m.triplet_margin_loss(a, b, c, 0.5, 1, swap=True,
                                                                        reduction=r),
                        (X, Y, Y * 2 + 0.3), None),
    "soft_margin": (lambda m, t, a, r: m.soft_margin_loss(a, t.tensor(np.sign(Y)), reduction=r), (X,),
                    None),
    "hinge": (lambda m, t, a, r: m.hinge_embedding_loss(a, t.tensor(np.sign(Y)), margin=0.5,
                                                        reduction=r), (X,), None),
    "bce_weight": (lambda m, t, a, b, r: m.binary_cross_entropy(a, b, weight=t.tensor(W).type_as(a),
                                                                reduction=r), (P, Q),
                   "BinaryCrossEntropyBackward0"),
    "bce_logits_weights": (lambda m, t, a, b, r: m.binary_cross_entropy_with_logits(
        a, b, weight=t.tensor(W).type_as(a), pos_weight=t.tensor(W[::-1].copy()).type_as(a), reduction=r), (X, Q),
        "BinaryCrossEntropyWithLogitsBackward0"),
    "bce_logits_pos_weight": (lambda m, t, a, b, r: m.binary_cross_entropy_with_logits(
        a, b, pos_weight=t.tensor(W).type_as(a), reduction=r), (X, Q), None),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_torch(name, reduction, dtype):
    fn, arrays, node = LOSSES[name]
    check(lambda m, t, *xs: fn(m, t, *xs, reduction), *arrays, dtype=dtype,
          name=node if reduction != "none" or "kd" not in name else None)


def test_kl_div_batchmean_and_legacy_flags():
    check(lambda m, t, a, b: m.kl_div(a, b.softmax(1), reduction="batchmean"), X, Y)
    check(lambda m, t, a, b: m.l1_loss(a, b, size_average=False), X, Y)
    check(lambda m, t, a, b: m.mse_loss(a, b, reduce=False), X, Y)
    check(lambda m, t, a, i: m.cross_entropy(a, i, size_average=False), X, T)


def test_loss_node_names():
    for fn, name in [(lambda m, a, b: m.smooth_l1_loss(a, b), "SmoothL1LossBackward0"),
                     (lambda m, a, b: m.huber_loss(a, b), "HuberLossBackward0"),
                     (lambda m, a, b: m.soft_margin_loss(a, b.detach().sign()), "SoftMarginLossBackward0"),
                     (lambda m, a, b: m.l1_loss(a, b), "MeanBackward0"),
                     (lambda m, a, b: m.l1_loss(a, b, reduction="none"), "AbsBackward0")]:
        check(lambda m, t, a, b: fn(m, a, b), X, Y, name=name)


def test_second_order_through_losses():
    """Hessian-vector products through the composite and fused losses, engine vs torch."""
    def loss(m, t, a, i, b):
        return (m.cross_entropy(a, i, weight=t.tensor(W).type_as(a), label_smoothing=0.1)
                + m.cross_entropy(a, i, weight=t.tensor(W).type_as(a))
                + m.kl_div(a.log_softmax(1), b.softmax(1), reduction="batchmean")
                + m.binary_cross_entropy_with_logits(a, b.sigmoid(), pos_weight=t.tensor(W).type_as(a))
                + m.huber_loss(a, b, delta=0.5) + m.smooth_l1_loss(a, b, beta=0.5)
                + m.soft_margin_loss(a, t.tensor(np.sign(Y))) + m.mish(a).sum() + m.silu(a).sum()
                + m.elu(a).sum() + m.logsigmoid(a).sum() + m.glu(a).sum())
    xt, yt = torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True)
    xg, yg = ge.tensor(X, requires_grad=True), ge.tensor(Y, requires_grad=True)
    lt, lg = loss(F, torch, xt, torch.tensor(T), yt), loss(ge, ge, xg, ge.tensor(T), yg)
    gt = torch.autograd.grad(lt, [xt, yt], create_graph=True)
    gg = ge.grad(lg, [xg, yg], create_graph=True)
    u = RNG.standard_normal((2, 3, 4))
    ht = torch.autograd.grad(sum((g * torch.tensor(v)).sum() for g, v in zip(gt, u)), [xt, yt])
    hg = ge.grad(sum((g * ge.tensor(v)).sum() for g, v in zip(gg, u)), [xg, yg])
    for a, b in zip(hg, ht):
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- errors
ERRORS = [
    lambda m, t, x: m.glu(x[:, :3]),
    lambda m, t, x: m.glu(x[0, 0]),
    lambda m, t, x: m.softshrink(x, -1.0),
    lambda m, t, x: m.hardtanh(x, 2.0, 1.0),
    lambda m, t, x: m.prelu(x, t.ones(3)),
    lambda m, t, x: m.nll_loss(x, t.tensor([0, 4, 1])),
    lambda m, t, x: m.nll_loss(x, t.tensor([0, 1, 1]), weight=t.ones(5)),
    lambda m, t, x: m.cross_entropy(x, t.tensor([0, 1, 1]), label_smoothing=1.5),
    lambda m, t, x: m.cross_entropy(x, x.detach().softmax(1), weight=t.ones(3)),
    lambda m, t, x: m.smooth_l1_loss(x, x.detach(), beta=-1.0),
    lambda m, t, x: m.triplet_margin_loss(x, x, x, margin=0.0),
    lambda m, t, x: m.gaussian_nll_loss(x, x, t.ones(2)),
    lambda m, t, x: m.gaussian_nll_loss(x, x, -t.ones(3, 4)),
    lambda m, t, x: m.l1_loss(x, x, reduction="avg"),
    lambda m, t, x: m.mse_loss(x, x, weight=t.ones(4)),
    lambda m, t, x: m.soft_margin_loss(x.detach(), x),
    lambda m, t, x: m.nll_loss(x, t.tensor([0, 1, 1]), weight=x[0].detach().requires_grad_()),
    lambda m, t, x: m.margin_ranking_loss(x, x[0], x[0]),
    lambda m, t, x: m.nll_loss(x, t.tensor([0, 1, 1]), weight=t.ones(4)),  # float32 weight
    lambda m, t, x: m.nll_loss(x, x.detach().softmax(1)),
    lambda m, t, x: m.cross_entropy(x, t.tensor([0, 1, 1]), weight=t.ones(4), label_smoothing=0.1),
]


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_errors_as_torch(i):
    fn = ERRORS[i]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as want:
            fn(F, torch, torch.tensor(X, requires_grad=True))
        with pytest.raises(type(want.value)):
            fn(ge, ge, ge.tensor(X, requires_grad=True))


def test_rrelu_training_is_not_replayed():
    with pytest.raises(NotImplementedError):
        ge.rrelu(ge.tensor(X), training=True)
