"""Engine tests of the mathops family beyond the table: the composites (tensordot, kron,
norms, normalize, cosine_similarity, pairwise_distance) against torch, einsum's equation
forms, torch's node names, interpolate's source coordinates, padding modes, options
(beta = 0, value=, eps) and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import gradmagic.engine as ge
from engine_table import TORCH
from table_mathops import COMPOSITES
from test_engine_ops import assert_close, inputs, run_both


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composites_match_torch(name, dtype):
    row = COMPOSITES[name]
    for k, shapes in enumerate(row.shapes):
        xt, out_t, xg, out_g = run_both(row, inputs(row, shapes, dtype, k))
        assert_close(out_g, out_t, dtype, f"{name} forward")
        v = np.random.default_rng(k).standard_normal(out_t.shape).astype(dtype)
        gt = torch.autograd.grad(out_t, xt, torch.from_numpy(v))
        gg = ge.grad(out_g, xg, ge.Tensor(v))
        for i, (a, b) in enumerate(zip(gg, gt)):
            assert_close(a, b, dtype, f"{name} grad {i}")


EQUATIONS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]), ("iji->j", [(2, 3, 2)]), ("i,i->", [(3,), (3,)]), ("i,j->ij", [(2,), (3,)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]), ("b...,b->...", [(2, 3, 4), (2,)]),
    ("bij,bjk,bkl->bil", [(2, 2, 3), (2, 3, 2), (2, 2, 2)]), ("ij->", [(2, 3)]), ("ij->ji", [(2, 3)]),
    ("ij,kj->ikj", [(2, 3), (1, 3)]), ("Ab,bC->AC", [(2, 3), (3, 2)]), ("ij, jk -> ik", [(2, 3), (3, 4)]),
    ("i,i,i->i", [(3,), (3,), (3,)]),
]


@pytest.mark.parametrize("eq,shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum_equations_match_torch(eq, shapes):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    xt = [torch.tensor(a, requires_grad=True) for a in arrays]
    xg = [ge.tensor(a, requires_grad=True) for a in arrays]
    yt, yg = torch.einsum(eq, *xt), ge.einsum(eq, *xg)
    assert_close(yg, yt, "float64", eq)
    assert yg.grad_fn.name == yt.grad_fn.name(), eq
    v = rng.standard_normal(yt.shape)
    for a, b in zip(ge.grad(yg, xg, ge.Tensor(v), create_graph=True),
                    torch.autograd.grad(yt, xt, torch.from_numpy(v), create_graph=True)):
        assert_close(a, b, "float64", eq)
    assert ge.gradcheck(lambda *z: ge.einsum(eq, *z), xg)


def test_einsum_list_and_sublist_forms():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    want = torch.einsum("ij,jk->ik", torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(ge.einsum("ij,jk->ik", [ge.tensor(a), ge.tensor(b)]).data, want)
    np.testing.assert_allclose(ge.einsum(ge.tensor(a), [0, 1], ge.tensor(b), [1, 2], [0, 2]).data, want)
    np.testing.assert_allclose(ge.einsum(ge.tensor(a), [Ellipsis, 1], ge.tensor(b), [1, 2]).data, want)


@pytest.mark.parametrize("bad", ["ij,jk->ik", "ijk,jk->ik"])
def test_einsum_errors_are_torchs_type(bad):
    a, b = np.zeros((2, 3)), np.zeros((4, 4))
    with pytest.raises(RuntimeError):
        torch.einsum(bad, torch.tensor(a), torch.tensor(b))
    with pytest.raises(RuntimeError):
        ge.einsum(bad, ge.tensor(a), ge.tensor(b))


NAMES = [
    lambda m, a, b: m.addmm(a, a, a), lambda m, a, b: m.addcmul(a, a, b),
    lambda m, a, b: m.addcdiv(a, a, b), lambda m, a, b: m.atan2(a, b), lambda m, a, b: m.xlogy(a, 2.0),
    lambda m, a, b: m.xlogy(2.0, b), lambda m, a, b: m.lerp(a, b, 0.5), lambda m, a, b: m.lerp(a, b, b),
    lambda m, a, b: m.clamp_min(a, 0.1), lambda m, a, b: m.clamp_min(a, b),
    lambda m, a, b: m.clamp_max(a, b), lambda m, a, b: m.nan_to_num(a), lambda m, a, b: m.dist(a, b),
    lambda m, a, b: m.cdist(a, b), lambda m, a, b: m.cross(a, b, dim=1),
    lambda m, a, b: m.tensordot(a, b, 1),  # kron: torch's top node is UnsafeViewBackward0, the engine's ViewBackward0
    lambda m, a, b: m.pad(a[None], (1, 1), mode="reflect"), lambda m, a, b: m.pad(a, (1, -1)),
    lambda m, a, b: m.pad(a[None, None], (1, 1, 1, 1), mode="replicate"),
    lambda m, a, b: m.interpolate(a[None], scale_factor=2, mode="linear"),
    lambda m, a, b: m.interpolate(a[None, None], scale_factor=2),
    lambda m, a, b: m.interpolate(a[None, None], scale_factor=2, mode="bilinear"),
    lambda m, a, b: m.unfold(a[None, None], 2), lambda m, a, b: m.normalize(a),
    lambda m, a, b: m.cosine_similarity(a, b),
]


@pytest.mark.parametrize("k", range(len(NAMES)))
def test_node_names_are_torchs(k):
    f = NAMES[k]
    rng = np.random.default_rng(k)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    yt = f(TORCH, torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True))
    yg = f(ge, ge.tensor(a, requires_grad=True), ge.tensor(b, requires_grad=True))
    assert yg.grad_fn.name == yt.grad_fn.name()


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None), ("bilinear", False),
                                        ("bilinear", True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_interpolate_sizes_and_scales(mode, align, dtype):
    """Many input/output sizes and fractional scale factors: torch's source coordinates."""
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (2, 3), (3, 5), (7, 4)]:
        x = rng.standard_normal((1, 2, h, w)).astype(dtype)
        for kw in [dict(size=(5, 3)), dict(size=(1, 9)), dict(scale_factor=1.7), dict(scale_factor=(0.6, 2.5)),
                   dict(scale_factor=3, recompute_scale_factor=True), dict(scale_factor=0.5)]:
            if min(math.floor(h * 0.6), math.floor(w * 0.5)) < 1 and "scale_factor" in kw \
                    and kw["scale_factor"] in (0.5, (0.6, 2.5)):
                continue
            yt = TF.interpolate(torch.tensor(x), mode=mode, align_corners=align, **kw)
            yg = ge.interpolate(ge.tensor(x), mode=mode, align_corners=align, **kw)
            assert_close(yg, yt, dtype, f"{mode} {h}x{w} {kw}")


def test_pad_modes_and_cropping():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    for mode in ("constant", "reflect", "replicate", "circular"):
        for pad in [(1, 2), (0, 3, 2, 1), (1, 1, 1, 1, 1, 1)]:
            if mode != "constant" and len(pad) == 2:  # torch: 2 pads need a 2-D or 3-D input
                continue
            yt = TF.pad(torch.tensor(x), pad, mode)
            yg = ge.pad(ge.tensor(x), pad, mode)
            assert_close(yg, yt, "float64", f"{mode} {pad}")
    for pad in [(-1, 2), (-2, -1, 1, -1), (3, -4)]:
        assert_close(ge.pad(ge.tensor(x), pad, value=2.5), TF.pad(torch.tensor(x), pad, value=2.5),
                     "float64", str(pad))
    with pytest.raises(RuntimeError):
        TF.pad(torch.tensor(x), (5, 0), mode="reflect")
    with pytest.raises(RuntimeError):
        ge.pad(ge.tensor(x), (5, 0), mode="reflect")


def test_beta_zero_ignores_nan_input():
    inp = np.full((2, 2), np.nan)
    a = np.eye(2)
    yt = torch.addmm(torch.tensor(inp), torch.tensor(a), torch.tensor(a), beta=0)
    yg = ge.addmm(ge.tensor(inp), ge.tensor(a), ge.tensor(a), beta=0)
    assert_close(yg, yt, "float64", "beta=0")
    assert not np.isnan(yg.data).any()


def test_erfinv_accuracy_and_edges():
    y = np.array([-1.0, -0.999999, -0.5, 0.0, 1e-8, 0.3, 0.9999, 1.0, 1.5, np.nan])
    want = torch.erfinv(torch.tensor(y)).numpy()
    np.testing.assert_allclose(ge.erfinv(ge.tensor(y)).data, want, rtol=1e-12, atol=1e-14, equal_nan=True)
    y32 = np.linspace(-0.99, 0.99, 101, dtype=np.float32)
    np.testing.assert_allclose(ge.erfinv(ge.tensor(y32)).data, torch.erfinv(torch.tensor(y32)).numpy(),
                               rtol=2e-6, atol=1e-7)


def test_xlogy_zero_and_nan():
    x, y = np.array([0.0, 0.0, 1.0, 2.0]), np.array([0.0, np.nan, 0.0, 3.0])
    assert_close(ge.xlogy(ge.tensor(x), ge.tensor(y)), torch.xlogy(torch.tensor(x), torch.tensor(y)),
                 "float64", "xlogy")


def test_inplace_addcmul_addcdiv_like_an_optimizer():
    p = np.linspace(-1, 1, 6).reshape(2, 3)
    g = np.arange(6.0).reshape(2, 3) - 2
    for lib, t in ((torch, torch.tensor), (ge, ge.tensor)):
        v, w = t(np.zeros((2, 3))), t(p.copy())
        v.addcmul_(t(g), t(g), value=0.1)
        w.addcdiv_(t(g), v.sqrt() + 1e-8, value=-0.5)
        w.lerp_(t(g), 0.25).clamp_min_(-0.5).clamp_max_(0.5)
        out = w.data if lib is ge else w.numpy()
        if lib is torch:
            ref = out.copy()
        else:
            np.testing.assert_allclose(out, ref)
    leaf = ge.tensor(p, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        leaf.addcmul_(leaf, leaf)
    x = ge.tensor(p, requires_grad=True) * 1
    before = x._version
    x.addcmul_(ge.tensor(g), ge.tensor(g))
    assert x._version == before + 1 and x.grad_fn.name == "AddcmulBackward0"


def test_cosine_similarity_tiny_norms_as_torch():
    """torch floors each norm at eps in place under no_grad: the gradient sees the unclamped norm."""
    a = np.array([[1e-10, 0.0, 0.0]])
    b = np.array([[1.0, 2.0, 0.5]])
    xt = [torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)]
    xg = [ge.tensor(a, requires_grad=True), ge.tensor(b, requires_grad=True)]
    TF.cosine_similarity(*xt).sum().backward()
    ge.cosine_similarity(*xg).sum().backward()
    for u, w in zip(xg, xt):
        np.testing.assert_allclose(u.grad.data, w.grad.numpy(), rtol=1e-9)


def test_unsupported_options_raise_not_implemented():
    x = ge.tensor(np.zeros((1, 1, 3, 3)))
    with pytest.raises(NotImplementedError):
        ge.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(NotImplementedError):
        ge.matrix_norm(x, ord="nuc")
    with pytest.raises(NotImplementedError):
        ge.interpolate(x, scale_factor=2, mode="linear")  # torch: linear needs 3-D input


@pytest.mark.parametrize("ord", [1, 2, 3, 0.5, -1, math.inf])
def test_norm_over_one_element_is_its_absolute_value_as_torchs(ord):
    """torch's vector norm over a single element is |x| itself: no x² that overflows near
    float32's maximum (a false "differ" the fuzzer found, program 52732: ``_foreach_norm`` of
    ``nan_to_num(1 / 0)``), no rounding of (|x|³)^(1/3). Over two elements float32's sum of
    squares overflows in torch too, and in the engine."""
    for values, dim in (([3.4e38], None), ([[-3.4e38], [3.0]], -1), ([[2.0, 7.0]], 0), (-3.4e38, None)):
        t = torch.tensor(values, dtype=torch.float32)
        want = torch.linalg.vector_norm(t, ord, dim)
        got = ge.vector_norm(ge.tensor(t.numpy()), ord, dim)
        np.testing.assert_array_equal(got.data, want.numpy())
    big = torch.tensor([2e38, 2e38])
    assert math.isinf(torch.linalg.vector_norm(big).item())
    assert math.isinf(float(ge.vector_norm(ge.tensor(big.numpy())).data))
