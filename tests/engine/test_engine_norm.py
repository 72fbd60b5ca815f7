"""The norm family's options and edge cases against torch: running statistics, padding
rows, bags, attention masks, multi-head attention, errors, and torch's double-backward
quirks (the engine_table rows cover the plain forward/VJP/gradcheck/second order)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch import nn

import gradmagic.engine as ge

RNG = np.random.default_rng(0)


def _pair(a: np.ndarray, grad: bool = True):
    return torch.tensor(a, requires_grad=grad), ge.tensor(a, requires_grad=grad)


def _check(f_torch, f_engine, arrays, grad=None, tol=1e-9):
    """Forward and the gradients of ⟨out, v⟩ (random v) agree with torch's."""
    grad = grad or (True,) * len(arrays)
    pairs = [_pair(a, g) for a, g in zip(arrays, grad)]
    ot = f_torch(*[p[0] for p in pairs])
    oe = f_engine(*[p[1] for p in pairs])
    np.testing.assert_allclose(oe.data, ot.detach().numpy(), rtol=tol, atol=tol)
    v = RNG.standard_normal(tuple(ot.shape))
    xt = [p[0] for p, g in zip(pairs, grad) if g]
    xe = [p[1] for p, g in zip(pairs, grad) if g]
    gt = torch.autograd.grad(ot, xt, torch.tensor(v))
    gg = ge.grad(oe, xe, ge.tensor(v))
    for a, b in zip(gg, gt):
        np.testing.assert_allclose(a.data, b.numpy(), rtol=tol, atol=tol)
    return oe


# ----------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("momentum", [0.1, 0.5, 0.0])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 2, 2)])
def test_batch_norm_updates_the_running_statistics_as_torch(shape, momentum):
    x = RNG.standard_normal(shape).astype(np.float32)
    mean, var = RNG.standard_normal(3).astype(np.float32), RNG.random(3).astype(np.float32) + 0.5
    tm, tv, em, ev = torch.tensor(mean), torch.tensor(var), ge.tensor(mean), ge.tensor(var)
    out_t = TF.batch_norm(torch.tensor(x), tm, tv, training=True, momentum=momentum)
    out_e = ge.batch_norm(ge.tensor(x), em, ev, training=True, momentum=momentum)
    np.testing.assert_allclose(out_e.data, out_t.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(em.data, tm.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ev.data, tv.numpy(), rtol=1e-6, atol=1e-6)
    assert em._version == 1 and ev._version == 1 and em.dtype == np.float32


def test_batch_norm_eval_uses_the_running_statistics_and_leaves_them():
    x = RNG.standard_normal((4, 3, 2))
    mean, var = RNG.standard_normal(3), RNG.random(3) + 0.5
    em = ge.tensor(mean)
    _check(lambda x, w, b: TF.batch_norm(x, torch.tensor(mean), torch.tensor(var), w, b, eps=1e-3),
           lambda x, w, b: ge.batch_norm(x, em, ge.tensor(var), w, b, eps=1e-3),
           [x, RNG.standard_normal(3), RNG.standard_normal(3)])
    assert em._version == 0 and np.array_equal(em.data, mean)


def test_batch_norm_without_affine_or_running_statistics():
    out = _check(lambda x: TF.batch_norm(x, None, None, training=True),
                 lambda x: ge.batch_norm(x, None, None, training=True), [RNG.standard_normal((5, 2))])
    assert out.grad_fn.name == "NativeBatchNormBackward0"


def test_batch_norm_errors_as_torch():
    x = torch.randn(1, 3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        TF.batch_norm(x, None, None, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ge.batch_norm(ge.tensor(x.numpy()), None, None, training=True)


def test_module_batch_norm_with_cumulative_average():
    """``momentum=None``: the module passes 1/num_batches_tracked as the factor."""
    bn = nn.BatchNorm1d(3, momentum=None)
    em, ev = ge.tensor(bn.running_mean.numpy().copy()), ge.tensor(bn.running_var.numpy().copy())
    for step in range(1, 4):
        x = torch.randn(5, 3)
        bn(x)
        ge.batch_norm(ge.tensor(x.numpy()), em, ev, training=True, momentum=1.0 / step)
    np.testing.assert_allclose(em.data, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ev.data, bn.running_var.numpy(), rtol=1e-5, atol=1e-6)


def test_instance_norm_as_torch_with_running_statistics():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    tm, tv, em, ev = torch.tensor(mean), torch.tensor(var), ge.tensor(mean), ge.tensor(var)
    ot = TF.instance_norm(torch.tensor(x), tm, tv, momentum=0.3)
    oe = ge.instance_norm(ge.tensor(x), em, ev, momentum=0.3)
    np.testing.assert_allclose(oe.data, ot.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(em.data, tm.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ev.data, tv.numpy(), rtol=1e-6, atol=1e-6)
    out = _check(lambda x, w, b: TF.instance_norm(x, weight=w, bias=b),
                 lambda x, w, b: ge.instance_norm(x, weight=w, bias=b),
                 [RNG.standard_normal((2, 3, 2, 2)), RNG.standard_normal(3), RNG.standard_normal(3)])
    assert out.grad_fn.name == "ViewBackward0"  # torch's: a view of a batch norm
    _check(lambda x: TF.instance_norm(x, torch.zeros(2, dtype=torch.float64),
                                      torch.full((2,), 2.0, dtype=torch.float64), use_input_stats=False),
           lambda x: ge.instance_norm(x, ge.tensor(np.zeros(2)), ge.tensor(np.full(2, 2.0)),
                                      use_input_stats=False),
           [RNG.standard_normal((2, 2, 3))])


# ----------------------------------------------------------------------------- layer/group norm
def test_layer_norm_and_group_norm_options():
    x = RNG.standard_normal((2, 3, 4))
    _check(lambda x: TF.layer_norm(x, [3, 4], eps=1e-2), lambda x: ge.layer_norm(x, [3, 4], eps=1e-2), [x])
    _check(lambda x, w: TF.layer_norm(x, (4,), w), lambda x, w: ge.layer_norm(x, (4,), w), [x, RNG.standard_normal(4)])
    _check(lambda x, w, b: TF.group_norm(x, 3, w, b), lambda x, w, b: ge.group_norm(x, 3, w, b),
           [RNG.standard_normal((2, 6, 2)), RNG.standard_normal(6), RNG.standard_normal(6)])
    _check(lambda x: TF.group_norm(x, 1), lambda x: ge.group_norm(x, 1), [x])


def test_layer_norm_and_group_norm_errors_as_torch():
    x = torch.randn(2, 3)
    with pytest.raises(RuntimeError):
        TF.layer_norm(x, (4,))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        ge.layer_norm(ge.tensor(x.numpy()), (4,))
    with pytest.raises(RuntimeError):
        TF.group_norm(x, 2)
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        ge.group_norm(ge.tensor(x.numpy()), 2)


@pytest.mark.parametrize("name", ["batch_norm", "layer_norm", "batch_norm_eval"])
def test_without_a_weight_the_double_backward_drops_the_bias_path_as_torch(name):
    """torch's double backward of a normalization without a weight ignores the bias
    gradient's dependence on g: second derivatives through the bias gradient are missing
    in torch (None), and so here."""
    def f(m, x, bias):
        if name == "layer_norm":
            return (TF if m is torch else ge).layer_norm(x, (2,), None, bias)
        stats = (None, None) if name == "batch_norm" else (m.tensor(np.zeros(2)), m.tensor(np.ones(2)))
        return (TF if m is torch else ge).batch_norm(x, *stats, None, bias,
                                                     training=name == "batch_norm")
    x, b = RNG.standard_normal((3, 2)), RNG.standard_normal(2)
    got = []
    for m, grad in ((torch, torch.autograd.grad), (ge, ge.grad)):
        xs, bs = m.tensor(x, requires_grad=True), m.tensor(b, requires_grad=True)
        out = f(m, xs, 3 - bs)
        gx, gb = grad((out * out).sum(), [xs, bs], create_graph=True)
        assert gb.requires_grad  # Σ g requires grad, but leads nowhere
        assert grad(gb.sum(), [xs, bs], allow_unused=True, retain_graph=True) == (None, None)
        hx, hb = grad((gx * gx).sum(), [xs, bs], allow_unused=True)
        got.append([None if t is None else np.asarray(t.detach().numpy() if m is torch else t.data)
                    for t in (hx, hb)])
    for a, e in zip(got[1], got[0]):
        assert (a is None or not a.any()) if e is None else np.allclose(a, e)


def test_second_order_without_a_weight_matches_torch():
    x = RNG.standard_normal((3, 4))
    got = []
    for m, grad in ((torch, torch.autograd.grad), (ge, ge.grad)):
        xs = m.tensor(x, requires_grad=True)
        out = (TF if m is torch else ge).layer_norm(xs, (4,))
        g, = grad((out * out * out).sum(), [xs], create_graph=True)
        h, = grad((g * g).sum(), [xs])
        got.append(h.detach().numpy() if m is torch else h.data)
    np.testing.assert_allclose(got[1], got[0], rtol=1e-9, atol=1e-9)


def test_float32_stays_float32():
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    _check(lambda x: TF.layer_norm(x, (8,)), lambda x: ge.layer_norm(x, (8,)), [x], tol=1e-5)
    out = ge.layer_norm(ge.tensor(x, requires_grad=True), (8,))
    out.sum().backward()
    assert out.dtype == np.float32 and out.grad_fn.name == "NativeLayerNormBackward0"


def test_local_response_norm_options():
    x = RNG.standard_normal((2, 5, 3))
    for size in (1, 2, 3, 6):
        out = _check(lambda x: TF.local_response_norm(x, size, alpha=0.3, beta=0.6, k=1.5),
                     lambda x: ge.local_response_norm(x, size, alpha=0.3, beta=0.6, k=1.5), [x])
    assert out.grad_fn.name == "DivBackward0"
    with pytest.raises(ValueError):
        ge.local_response_norm(ge.tensor(np.ones((2, 3))), 2)


# ----------------------------------------------------------------------------- embeddings
def test_embedding_padding_idx_and_frequency_scaling():
    w = RNG.standard_normal((6, 3))
    idx = np.array([[0, 2, 2], [5, 0, 1]])
    for kw in ({"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
               {"padding_idx": 0, "scale_grad_by_freq": True}):
        out = _check(lambda w: TF.embedding(torch.tensor(idx), w, **kw),
                     lambda w: ge.embedding(ge.tensor(idx), w, **kw), [w])
        assert out.grad_fn.name == "EmbeddingBackward0"
    wt, we = _pair(w)
    TF.embedding(torch.tensor(idx), wt, padding_idx=2).sum().backward()
    ge.embedding(ge.tensor(idx), we, padding_idx=2).sum().backward()
    assert not we.grad.data[2].any() and np.array_equal(we.grad.data, wt.grad.numpy())


def test_embedding_max_norm_renormalises_the_weight_in_place_as_torch():
    w = RNG.standard_normal((5, 3)) * 2
    idx = np.array([1, 3, 3])
    wt, we = _pair(w)
    ot = TF.embedding(torch.tensor(idx), wt, max_norm=1.0)
    oe = ge.embedding(ge.tensor(idx), we, max_norm=1.0)
    np.testing.assert_allclose(oe.data, ot.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(we.data, wt.detach().numpy(), rtol=1e-12)
    assert np.allclose(we.data[0], w[0]) and we._version == 1
    ot.sum().backward()
    oe.sum().backward()
    np.testing.assert_allclose(we.grad.data, wt.grad.numpy())


def test_embedding_errors_as_torch():
    w = torch.randn(4, 2)
    with pytest.raises(IndexError):
        TF.embedding(torch.tensor([4]), w)
    with pytest.raises(IndexError):
        ge.embedding(ge.tensor([4]), ge.tensor(w.numpy()))
    with pytest.raises(AssertionError):
        ge.embedding(ge.tensor([1]), ge.tensor(w.numpy()), padding_idx=4)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_modes_offsets_padding_and_empty_bags(mode):
    w = RNG.standard_normal((6, 3))
    idx, off = np.array([0, 2, 2, 5, 1, 3, 3]), np.array([0, 2, 2, 5])
    for kw in ({}, {"padding_idx": 2}, {"include_last_offset": True}):
        out = _check(lambda w: TF.embedding_bag(torch.tensor(idx), w, torch.tensor(off), mode=mode, **kw),
                     lambda w: ge.embedding_bag(ge.tensor(idx), w, ge.tensor(off), mode=mode, **kw), [w])
        assert out.grad_fn.name == "EmbeddingBagBackward0"
    _check(lambda w: TF.embedding_bag(torch.tensor([[0, 1], [4, 4]]), w, mode=mode),
           lambda w: ge.embedding_bag(ge.tensor([[0, 1], [4, 4]]), w, mode=mode), [w])


def test_embedding_bag_max_ties_go_to_the_first_row():
    w = np.array([[1.0, 2.0], [1.0, 0.0], [0.0, 2.0]])
    _check(lambda w: TF.embedding_bag(torch.tensor([[0, 1, 2]]), w, mode="max"),
           lambda w: ge.embedding_bag(ge.tensor([[0, 1, 2]]), w, mode="max"), [w])


def test_embedding_bag_per_sample_weights_and_errors():
    w, psw = RNG.standard_normal((6, 3)), RNG.standard_normal((2, 2))
    _check(lambda w, p: TF.embedding_bag(torch.tensor([[0, 2], [2, 5]]), w, mode="sum", per_sample_weights=p),
           lambda w, p: ge.embedding_bag(ge.tensor([[0, 2], [2, 5]]), w, mode="sum", per_sample_weights=p),
           [w, psw])
    with pytest.raises(NotImplementedError):
        ge.embedding_bag(ge.tensor([0, 1]), ge.tensor(w), ge.tensor([0]), mode="mean",
                         per_sample_weights=ge.tensor(psw[0]))
    with pytest.raises(ValueError):
        ge.embedding_bag(ge.tensor([0, 1]), ge.tensor(w))


# ----------------------------------------------------------------------------- attention
@pytest.mark.parametrize("opts", [{}, {"is_causal": True}, {"scale": 0.3}, {"mask": "bool"},
                                  {"mask": "float"}])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 5, 4), (2, 5, 2)), ((2, 2, 3, 4), (2, 2, 3, 4), (2, 2, 3, 4))])
def test_scaled_dot_product_attention(opts, shapes):
    opts = dict(opts)
    arrays = [RNG.standard_normal(s) for s in shapes]
    mask = opts.pop("mask", None)
    L, S = shapes[0][-2], shapes[1][-2]
    if mask == "bool":
        m = RNG.random((L, S)) > 0.4
        m[:, 0] = True
        opts_t, opts_e = {**opts, "attn_mask": torch.tensor(m)}, {**opts, "attn_mask": ge.tensor(m)}
    elif mask == "float":
        arrays.append(RNG.standard_normal((L, S)))
        opts_t = opts_e = opts
    else:
        opts_t = opts_e = opts
    if mask == "float":  # a float mask gets a gradient too
        _check(lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m, **opts),
               lambda q, k, v, m: ge.scaled_dot_product_attention(q, k, v, attn_mask=m, **opts), arrays)
    else:
        _check(lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **opts_t),
               lambda q, k, v: ge.scaled_dot_product_attention(q, k, v, **opts_e), arrays)


def test_attention_dropout_needs_a_source_of_masks():
    """The engine never makes a mask up: without torch's (``engine/masks.py``), dropout raises."""
    q = ge.tensor(RNG.standard_normal((2, 3, 4)))
    with pytest.raises(NotImplementedError, match="random mask"):
        ge.scaled_dot_product_attention(q, q, q, dropout_p=0.1)
    ge.scaled_dot_product_attention(q, q, q, dropout_p=0.0)


def _torch_masks():
    """A source of torch's masks from the generator's present state (what the recorder saves)."""
    from gradmagic.recorder.masks import TorchMasks
    from gradmagic.engine.masks import mask_source
    return mask_source(TorchMasks(torch.get_rng_state(), torch.float64))


@pytest.mark.parametrize("opts", [{}, {"is_causal": True}, {"scale": 0.3}, {"mask": "bool"},
                                  {"mask": "float"}], ids=str)
@pytest.mark.parametrize("p", [0.2, 0.7])
def test_attention_dropout_with_torchs_masks(opts, p):
    """Each (batch, head) draws its weights' mask as torch's math path does: values and gradients
    as torch's, torch's generator moved exactly as by the plain call."""
    q, k, v = (RNG.standard_normal((2, 3, 4, 5)) for _ in range(3))
    opts = dict(opts)
    kind = opts.pop("mask", None)
    mask = None if kind is None else (RNG.random((4, 4)) > 0.3) | np.eye(4, dtype=bool) if kind == "bool" \
        else RNG.standard_normal((4, 4))
    torch.manual_seed(1)
    with _torch_masks():
        oe = _check(lambda *t: TF.scaled_dot_product_attention(*t, attn_mask=None if mask is None else
                                                               torch.tensor(mask), dropout_p=p, **opts),
                    lambda *t: ge.scaled_dot_product_attention(*t, attn_mask=mask, dropout_p=p, **opts),
                    [q, k, v])
    assert oe is not None


@pytest.mark.parametrize("need_weights", [True, False])
def test_multi_head_attention_dropout_with_torchs_masks(need_weights):
    torch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, dropout=0.4, dtype=torch.float64)
    x = torch.randn(3, 2, 8, dtype=torch.float64, requires_grad=True)
    ex = ge.tensor(x.detach().numpy(), requires_grad=True)
    w = [ge.tensor(t.detach().numpy(), requires_grad=True)
         for t in (m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.out_proj.bias)]
    torch.manual_seed(5)
    with _torch_masks():
        oe, we = ge.multi_head_attention_forward(ex, ex, ex, 8, 2, w[0], w[1], None, None, False, 0.4,
                                                 w[2], w[3], training=True, need_weights=need_weights)
    ot, wt = m(x, x, x, need_weights=need_weights)
    np.testing.assert_allclose(oe.data, ot.detach().numpy(), rtol=1e-12, atol=1e-12)
    if need_weights:  # the returned weights are the dropped ones, averaged over heads
        np.testing.assert_allclose(we.data, wt.detach().numpy(), rtol=1e-12, atol=1e-12)
    ot.sum().backward()
    ge.backward(ge.sum(oe))
    np.testing.assert_allclose(ex.grad.data, x.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w[0].grad.data, m.in_proj_weight.grad.numpy(), rtol=1e-10, atol=1e-12)


def _mha(kw_torch, batched=True, cross=False, kdim=None, dtype=torch.float64):
    torch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, kdim=kdim, vdim=kdim, dtype=dtype)
    L, S, N = 3, 4, 2
    shp = (lambda n, d=8: (n, N, d)) if batched else (lambda n, d=8: (n, d))
    q = torch.randn(shp(L), dtype=dtype, requires_grad=True)
    k = torch.randn(shp(S, kdim or 8), dtype=dtype, requires_grad=True) if cross else q
    v = torch.randn(shp(S, kdim or 8), dtype=dtype, requires_grad=True) if cross else q
    kw = dict(use_separate_proj_weight=m.in_proj_weight is None, q_proj_weight=m.q_proj_weight,
              k_proj_weight=m.k_proj_weight, v_proj_weight=m.v_proj_weight, training=True, **kw_torch)
    args = (8, 2, m.in_proj_weight, m.in_proj_bias, None, None, False, 0.0, m.out_proj.weight,
            m.out_proj.bias)
    twins: dict = {}

    def E(t):
        if not isinstance(t, torch.Tensor):
            return t
        if id(t) not in twins:
            twins[id(t)] = ge.tensor(t.detach().numpy(), requires_grad=t.requires_grad)
        return twins[id(t)]
    ot, wt = TF.multi_head_attention_forward(q, k, v, *args, **kw)
    oe, we = ge.multi_head_attention_forward(E(q), E(k), E(v), *map(E, args),
                                             **{n: E(x) for n, x in kw.items()})
    np.testing.assert_allclose(oe.data, ot.detach().numpy(), rtol=1e-9, atol=1e-9)
    assert (we is None) == (wt is None)
    loss_t, loss_e = (ot * ot).sum(), (oe * oe).sum()
    if wt is not None:
        np.testing.assert_allclose(we.data, wt.detach().numpy(), rtol=1e-9, atol=1e-9)
        loss_t, loss_e = loss_t + (wt * wt).sum(), loss_e + (we * we).sum()
    params = [p for p in m.parameters()] + ([q, k, v] if cross else [q])
    for a, b in zip(ge.grad(loss_e, [E(p) for p in params]), torch.autograd.grad(loss_t, params)):
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-8, atol=1e-9)


KPM = torch.tensor([[False, False, True, False], [False, True, False, False]])
CAUSAL = torch.triu(torch.ones(3, 3, dtype=torch.bool), 1)


@pytest.mark.parametrize("case", [
    dict(), dict(kw=dict(need_weights=False)), dict(kw=dict(average_attn_weights=False)),
    dict(kw=dict(key_padding_mask=KPM), cross=True),
    dict(kw=dict(key_padding_mask=KPM, need_weights=False), cross=True),
    dict(kw=dict(attn_mask=CAUSAL)), dict(kw=dict(attn_mask=CAUSAL, is_causal=True, need_weights=False)),
    dict(kw=dict(attn_mask=torch.randn(3, 4, dtype=torch.float64)), cross=True),
    dict(kw=dict(attn_mask=torch.randn(4, 3, 4, dtype=torch.float64), need_weights=False), cross=True),
    dict(cross=True, kdim=6), dict(batched=False), dict(batched=False, kw=dict(need_weights=False)),
], ids=lambda c: "-".join(f"{k}" for k in {**c.get("kw", {}), **{k: 1 for k in c if k != "kw"}}) or "plain")
def test_multi_head_attention_forward(case):
    case = dict(case)
    _mha(case.pop("kw", {}), **case)


def test_multi_head_attention_unsupported_options_raise():
    x = ge.tensor(RNG.standard_normal((3, 2, 4)))
    w, b = ge.tensor(RNG.standard_normal((12, 4))), ge.tensor(RNG.standard_normal(12))
    ow, ob = ge.tensor(RNG.standard_normal((4, 4))), ge.tensor(RNG.standard_normal(4))
    with pytest.raises(NotImplementedError, match="random"):
        ge.multi_head_attention_forward(x, x, x, 4, 1, w, b, None, None, False, 0.1, ow, ob)
    with pytest.raises(NotImplementedError):
        ge.multi_head_attention_forward(x, x, x, 4, 1, w, b, None, None, True, 0.0, ow, ob)
    out, weights = ge.multi_head_attention_forward(x, x, x, 4, 1, w, b, None, None, False, 0.1, ow,
                                                   ob, training=False)
    assert out.shape == (3, 2, 4) and weights.shape == (2, 3, 3)


def test_eval_batch_norm_gradient_requires_grad_but_leads_nowhere_as_torch():
    """In eval mode ∂/∂x = g·γ/√(var + ε) does not depend on x; torch's gradient still
    requires grad (its node saved x), and a second backward through it gives nothing."""
    x, w = RNG.standard_normal((4, 3)), RNG.random(3) + 0.5
    for m, grad in ((torch, torch.autograd.grad), (ge, ge.grad)):
        xs = m.tensor(x, requires_grad=True)
        out = (TF if m is torch else ge).batch_norm(xs, m.tensor(np.zeros(3)), m.tensor(np.ones(3)),
                                                   m.tensor(w))
        g, = grad(out.sum(), [xs], create_graph=True)
        assert g.requires_grad
        (g * g).sum().backward()
        assert xs.grad is None
