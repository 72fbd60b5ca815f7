"""The mathops family under ``trace()``: snippets as real code writes them (attention
scores with einsum, a U-Net-style upsampling block, normalized embeddings, gradient-norm
clipping over a parameter list, optimizer-style ``addcmul_``/``addcdiv_`` under
``no_grad``, padding and patch extraction). Each runs plain and traced: the report must be
ok with nothing unsupported, and outputs and ``.grad``s must equal the plain run's."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recorder_helpers import assert_clean
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace


def _both(program):
    """(plain result, traced result, report): ``program()`` returns (output, leaves)."""
    torch.manual_seed(0)
    plain = program()
    torch.manual_seed(0)
    with trace(session=Session()) as rep:
        traced = program()
    return plain, traced, rep


def _assert_same(plain, traced):
    (out_p, leaves_p), (out_t, leaves_t) = plain, traced
    assert torch.equal(out_p, out_t)
    for a, b in zip(leaves_p, leaves_t):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad)


def _check(program):
    plain, traced, rep = _both(program)
    assert_clean(rep)
    _assert_same(plain, traced)
    return rep


def test_attention_scores_with_einsum():
    def program():
        q = torch.randn(2, 3, 4, requires_grad=True)
        k = torch.randn(2, 5, 4, requires_grad=True)
        v = torch.randn(2, 5, 4, requires_grad=True)
        scores = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.shape[-1])
        attn = scores.softmax(dim=-1)
        out = torch.einsum("bqk,bkd->bqd", attn, v)
        heads = torch.einsum("bhd->bd", out.unsqueeze(1).expand(2, 2, 3, 4).reshape(2, 6, 4))
        (out.sum() + heads.pow(2).sum() + torch.einsum("ii", torch.einsum("...i,...j", q[0, 0], k[0, 0]))
         ).backward()
        return out.detach(), [q, k, v]

    rep = _check(program)
    assert any(n.op == "einsum" for n in rep.nodes)


def test_unet_block_with_bilinear_upsampling():
    class Up(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = nn.Linear(6, 3)

        def forward(self, x, skip):
            x = self.up(x)
            dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
            x = torch.cat([skip, x], dim=1)
            return self.conv(x.permute(0, 2, 3, 1))

    def program():
        up = Up()
        x = torch.randn(1, 3, 2, 3, requires_grad=True)
        skip = torch.randn(1, 3, 5, 7, requires_grad=True)
        y = up(x, skip)
        z = F.interpolate(y.permute(0, 3, 1, 2), size=(3, 4), mode="nearest")
        w = F.upsample(z, scale_factor=2, mode="bilinear")
        (y.pow(2).mean() + w.sum()).backward()
        return y.detach(), [x, skip, *up.parameters()]

    rep = _check(program)
    assert {"interpolate", "pad"} <= {n.op for n in rep.nodes}


def test_normalized_embeddings_and_similarities():
    def program():
        emb = nn.Embedding(6, 4)
        ids = torch.tensor([[0, 2, 5], [1, 1, 3]])
        e = F.normalize(emb.weight[ids.reshape(-1)], p=2, dim=-1).reshape(2, 3, 4)
        sim = F.cosine_similarity(e[:, :1], e, dim=-1)
        d = F.pairwise_distance(e[0], e[1]) + torch.cdist(e[0], e[1]).sum(1) + torch.cdist(e[0], e[1], p=1).sum(0)
        (sim.sum() + d.sum() + torch.dist(e[0], e[1])).backward()
        return sim.detach(), [emb.weight]

    _check(program)


def test_clip_grad_norm_style_vector_norms():
    def program():
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        net(torch.randn(5, 3)).pow(2).sum().backward()
        grads = [p.grad for p in net.parameters()]
        with torch.no_grad():
            norms = [torch.linalg.vector_norm(g, 2.0) for g in grads]
            total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
            coef = torch.clamp(1.0 / (total + 1e-6), max=1.0)
            for g in grads:
                g.mul_(coef)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        inf = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, float("inf")) for g in grads]),
                                       float("inf"))
        w = net[0].weight
        mats = torch.linalg.matrix_norm(w) + torch.linalg.matrix_norm(w, ord=1) + torch.linalg.norm(w, dim=1).sum()
        return (total + inf + mats).detach(), list(net.parameters())

    _check(program)


def test_adam_style_addcmul_and_addcdiv_under_no_grad():
    def program():
        p = torch.randn(3, 4, requires_grad=True)
        m, v = torch.zeros(3, 4), torch.zeros(3, 4)
        for step in range(1, 4):
            loss = (p * torch.linspace(-1, 1, 4)).pow(2).sum()
            p.grad = None
            loss.backward()
            with torch.no_grad():
                g = p.grad
                m.lerp_(g, 0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                denom = (v / (1 - 0.999 ** step)).sqrt().add_(1e-8)
                p.addcdiv_(m, denom, value=-0.01 / (1 - 0.9 ** step))
                p.clamp_min_(-2.0).clamp_max_(2.0)
        return p.detach().clone(), [p]

    _check(program)


def test_matrix_products_and_pointwise_math():
    def program():
        M = torch.randn(3, 3, requires_grad=True)
        a = torch.randn(3, requires_grad=True)
        B = torch.randn(2, 3, 3, requires_grad=True)
        y = (torch.addmm(M, M, M.t(), beta=0.5, alpha=2) + torch.addr(M, a, a) + a.addmv(M, a)
             + torch.addbmm(M, B, B) + torch.baddbmm(B, B, B).sum(0)
             + torch.tensordot(B, B, dims=([0, 2], [0, 1])) + torch.kron(a[:2], a[1:]).reshape(2, 2).sum())
        z = (torch.atan2(y, M) + torch.hypot(y, M) + torch.logaddexp(y, M) + torch.logaddexp2(y, M)
             + torch.erfc(M) + torch.erfinv(M.tanh() * 0.9) + torch.xlogy(M, M.abs() + 0.1)
             + torch.lerp(M, y, 0.25) + torch.lerp(M, y, M.sigmoid()) + torch.clamp_min(y, M)
             + y.clamp_max(0.5) + torch.nan_to_num(M.log()) + torch.addcmul(M, y, M, value=0.5)
             + torch.addcdiv(M, y, M.exp()) + torch.cross(M, y, dim=1) + torch.linalg.cross(M, y))
        z.sum().backward()
        return z.detach(), [M, a, B]

    _check(program)


def test_padding_modes_and_patches():
    def program():
        img = torch.randn(2, 3, 5, 6, requires_grad=True)
        seq = torch.randn(2, 3, 6, requires_grad=True)
        vol = torch.randn(1, 2, 3, 3, 4, requires_grad=True)
        outs = [F.pad(img, (1, 1, 2, 0)), F.pad(img, (2, 1, 1, 1), mode="reflect"),
                F.pad(seq, (1, 2), mode="replicate"), F.pad(img, (1, 1, 1, 1), mode="circular"),
                F.pad(img, (-1, 1, 0, -2), value=3.0), F.pad(seq, (2, 3), mode="reflect"),
                F.pad(vol, (1, 1, 1, 1, 1, 1), mode="replicate")]
        cols = F.unfold(img, kernel_size=3, padding=1, stride=2)
        back = F.fold(cols, (5, 6), kernel_size=3, padding=1, stride=2)
        ups = [F.interpolate(seq, scale_factor=2, mode="linear"),
               F.interpolate(vol, size=(4, 5, 6), mode="trilinear", align_corners=False),
               F.interpolate(img, scale_factor=1.5, mode="nearest-exact"), F.upsample_nearest(img, scale_factor=2),
               F.upsample_bilinear(img, size=(7, 9))]
        total = sum((o ** 2).sum() for o in outs + ups) + (back * img).sum()
        total.backward()
        return total.detach(), [img, seq, vol]

    _check(program)


def test_second_order_through_padding_and_upsampling():
    def program():
        x = torch.randn(1, 2, 3, 4, requires_grad=True)
        y = F.interpolate(F.pad(x, (1, 1, 1, 1), mode="reflect"), scale_factor=2, mode="bilinear")
        (g,) = torch.autograd.grad((y ** 3).sum(), x, create_graph=True)
        (g ** 2).sum().backward()
        return g.detach(), [x]

    _check(program)


def test_wrong_einsum_rule_is_located(monkeypatch):
    einsum = REGISTRY["einsum"]
    right = einsum.vjps[0]
    monkeypatch.setattr(einsum, "vjps", (lambda g, ans, *ops, **kw: 2 * right(g, ans, *ops, **kw),))
    with trace(session=Session()) as rep:
        q = torch.randn(2, 3, 4, requires_grad=True)
        torch.einsum("bqd,bkd->bqk", q, q).tanh().sum().backward()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "einsum" and first.torch_op == "torch.einsum"


def test_wrong_interpolate_weights_are_located(monkeypatch):
    monkeypatch.setattr(REGISTRY["interpolate"], "fwd", _shifted)
    with trace(session=Session()) as rep:
        x = torch.randn(1, 1, 3, 3, requires_grad=True)
        F.interpolate(x, scale_factor=2, mode="bilinear").sum().backward()
    assert not rep.ok
    assert rep.node(rep.first_divergence).op == "interpolate"


def _shifted(x, **kw):
    from gradmagic.engine.ops.mathops import _interpolate
    return _interpolate(x, **kw) * 1.01


@pytest.mark.parametrize("code", [
    "torch.linalg.matrix_norm(x, ord='nuc')",
    "F.interpolate(x, scale_factor=2, mode='bicubic')",
])
def test_unsupported_variants_are_opaque_not_broken(code):
    with trace(session=Session()) as rep:
        x = torch.randn(1, 1, 3, 3, requires_grad=True)
        y = eval(code, {"torch": torch, "F": F, "x": x})
        y.sum().backward()
    assert rep.unsupported and not rep.mismatches


def test_atan2_at_the_origin_has_torchs_zero_gradient():
    # fuzz seed 1815: torch 2.13 gives 0 at a = b = 0 (not 0·inf = nan); nan/inf elsewhere stays
    with trace(session=Session()) as rep:
        a = torch.tensor([0.0, 0.0, 1e-20, -0.0, 1.0], requires_grad=True)
        b = torch.tensor([0.0, 1e-20, 0.0, 0.0, 2.0], requires_grad=True)
        torch.atan2(a, b).sum().backward()
        x = torch.zeros(2, requires_grad=True)
        torch.atan2(x, x).sum().backward()
    assert_clean(rep)
    assert x.grad.tolist() == [0.0, 0.0]


def test_gaussian_and_poisson_nll_full_stay_float32():
    # fuzz seed 3148: the constant ½·log 2π must not promote a float32 loss to float64
    with trace(session=Session()) as rep:
        x = torch.rand((), requires_grad=True)
        F.gaussian_nll_loss(x, torch.randn(()), x.exp(), full=True, reduction="sum").backward()
        y = torch.rand(3, requires_grad=True)
        F.poisson_nll_loss(y, torch.rand(3) * 3, log_input=False, full=True).backward()
    assert_clean(rep)


def test_second_derivatives_where_torch_gives_nan_or_huge_values():
    """The fuzzer's programs 7903 and 801. atan2's gradient is 0 at the origin through a
    ``where`` whose other branch torch still differentiates: a second derivative there is NaN
    in torch, and in the engine. ``F.normalize(x, p=1)`` at x = 0 divides by eps = 1e-12:
    torch's ∂/∂b of a / b is −g·((a / b) / b), whose own derivative stays finite (4e24) where
    −g·a / (b·b) would underflow b·b and give 0/0."""
    def program():
        a = torch.tensor([0.0, 1.0, 0.0], requires_grad=True)
        b = torch.tensor([0.0, 0.0, 2.0], requires_grad=True)
        ga, gb = torch.autograd.grad(torch.atan2(a, b).sum(), [a, b], create_graph=True)
        (ga.sum() * 2 + gb.sum()).backward()
        x = torch.zeros((1, 2, 1), requires_grad=True)
        (x.sum() + F.normalize(x, p=1.0, dim=0).pow(2).sum()).backward(create_graph=True)
        g = x.grad
        x.grad = None
        (g * g).sum().backward(inputs=[x])
        return a.grad, b.grad, x.grad
    torch.manual_seed(0)
    plain = program()
    with trace(session=Session()) as rep:
        traced = program()
    assert_clean(rep)
    assert rep.coverage["grads"]["unchecked"] == 0, rep.coverage  # (checked, not explained away)
    assert torch.isnan(plain[0][0]) and abs(float(plain[2][0, 0, 0]) - 4e24) < 1e18
    for p, t in zip(plain, traced):
        assert torch.equal(p.nan_to_num(), t.nan_to_num()) and torch.equal(p.isnan(), t.isnan())
