"""Test-table rows of the engine's mathops family (merged into engine_table.TABLE)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as TF

import gradmagic.engine as ge
from engine_table import Row, bi, un  # noqa: F401


def nn(m: Any) -> Any:
    """``torch.nn.functional`` or the engine (flat)."""
    return ge if m is ge else TF


def linalg(m: Any) -> Any:
    return _EngineLinalg if m is ge else torch.linalg


class _EngineLinalg:
    vector_norm = staticmethod(ge.vector_norm)
    matrix_norm = staticmethod(ge.matrix_norm)
    norm = staticmethod(ge.linalg_norm)
    cross = staticmethod(ge.linalg_cross)


def first_grad(m: Any, f: Any, shape: tuple, v: Any) -> Any:
    """The gradient of ``f`` at zeros(shape) for cotangent ``v``, with a graph (create_graph):
    a backward function (pad's, interpolate's) as a differentiable function of ``v``."""
    if m is ge:
        with ge.enable_grad():  # gradcheck evaluates the row under no_grad
            x = ge.zeros(shape, dtype=v.dtype, requires_grad=True)
            return ge.grad(f(x), [x], v, create_graph=True)[0]
    x = torch.zeros(shape, dtype=v.dtype, requires_grad=True)
    return torch.autograd.grad(f(x), [x], v, create_graph=True)[0]


def _einsum(m: Any, a: Any, b: Any) -> Any:
    return (m.einsum("bqd,bkd->bqk", a, b).sum(-1) + m.einsum("...ij,...ij", a, b)[:, None]
            + m.einsum("bii->bi", a * b) + m.einsum("bij->", a)
            + m.einsum("i,j->ij", a[0, 0], b[0, :, 0])[0, :2].sum())


def _products(m: Any, a: Any, b: Any) -> Any:
    return m.tensordot(a, b, dims=([1, 2], [2, 1])).sum() + m.kron(a[0], b[1]).sum(0)


def _norms(m: Any, a: Any) -> Any:
    la = linalg(m)
    return (la.vector_norm(a) + la.vector_norm(a, ord=1, dim=(0, 1)).sum() + la.matrix_norm(a).sum()
            + la.matrix_norm(a, ord=1).sum() + la.matrix_norm(a, ord=float("inf"), keepdim=True).sum()
            + la.matrix_norm(a, ord=-1).sum() + la.norm(a[0]) + la.norm(a, dim=-1).sum()
            + la.vector_norm(a, ord=3, dim=-1, keepdim=True).sum())


def _similar(m: Any, a: Any, b: Any) -> Any:
    F = nn(m)
    return (F.normalize(a, dim=-1) * b).sum() + F.cosine_similarity(a, b).sum() \
        + F.pairwise_distance(a, b).sum() + F.normalize(a, p=1, dim=0).sum(0)


def _pad(m: Any, a: Any) -> Any:
    F = nn(m)
    return (F.pad(a, (1, 2)).sum() + F.pad(a, (1, 0, 2, 1), value=0.5).sum(-1).sum()
            + F.pad(a, (-1, 1, 0, -1)).sum() + F.pad(a, (1, 2, 0, 1), mode="reflect").sum(1).sum()
            + (F.pad(a, (2, 1, 1, 1), mode="replicate") ** 2).sum()
            + (F.pad(a, (1, 2, 2, 0), mode="circular") ** 2).sum()
            + F.pad(a[None], (1, 1, 1, 0, 1, 1), mode="replicate").sum())


def _interp(m: Any, a: Any) -> Any:
    F = nn(m)
    return ((F.interpolate(a, scale_factor=2) ** 2).sum()
            + (F.interpolate(a, size=(5, 7), mode="bilinear") ** 2).sum()
            + (F.interpolate(a, size=(3, 2), mode="bilinear", align_corners=True) ** 2).sum()
            + (F.interpolate(a, scale_factor=1.7, mode="bilinear") ** 2).sum()
            + (F.interpolate(a, size=(5, 3), mode="nearest-exact") ** 2).sum()
            + (F.interpolate(a[0], size=7, mode="linear") ** 2).sum()
            + (F.interpolate(a[None], scale_factor=(2, 1, 1.5), mode="trilinear") ** 2).sum()
            + (F.interpolate(a[0], scale_factor=2.5, mode="nearest") ** 2).sum())


TABLE: dict[str, Row] = {
    "einsum": bi(_einsum, shapes=[((2, 3, 3), (2, 3, 3)), ((1, 2, 2), (3, 2, 2))]),
    "addmm": Row(lambda m, c, a, b: m.addmm(c, a, b, beta=0.5, alpha=2) + m.addmm(c, a, b), 3,
                 shapes=[((3, 4), (3, 2), (2, 4)), ((4,), (3, 2), (2, 4))]),
    "addmv": Row(lambda m, c, a, b: m.addmv(c, a, b, alpha=-1.5) * m.addmv(c, a, b, beta=0), 3,
                 shapes=[((3,), (3, 2), (2,))]),
    "addbmm": Row(lambda m, c, a, b: m.addbmm(c, a, b, beta=2), 3,
                  shapes=[((3, 4), (2, 3, 2), (2, 2, 4)), ((1, 4), (2, 3, 2), (2, 2, 4))]),
    "baddbmm": Row(lambda m, c, a, b: c.baddbmm(a, b, alpha=0.5), 3,
                   shapes=[((2, 3, 4), (2, 3, 2), (2, 2, 4)), ((3, 4), (2, 3, 2), (2, 2, 4))]),
    "addr": Row(lambda m, c, a, b: m.addr(c, a, b, beta=-1, alpha=3), 3,
                shapes=[((3, 4), (3,), (4,))]),
    "addcmul": Row(lambda m, x, a, b: m.addcmul(x, a, b, value=-0.5) + x.addcmul(a, b), 3),
    "addcdiv": Row(lambda m, x, a, b: m.addcdiv(x, a, b, value=2) + x.addcdiv(a, b), 3,
                   domains=("real", "real", "away")),
    "atan2": bi(lambda m, a, b: m.atan2(a, b), domain="away"),
    "hypot": bi(lambda m, a, b: m.hypot(a, b), domain="away"),
    "logaddexp": bi(lambda m, a, b: m.logaddexp(a, b)),
    "logaddexp2": bi(lambda m, a, b: m.logaddexp2(a, b)),
    "erfc": un(lambda m, a: m.erfc(a)),
    "erfinv": un(lambda m, a: m.erfinv(a), domain="unit"),
    "xlogy": bi(lambda m, a, b: m.xlogy(a, b) + m.xlogy(a, 2.0) + m.xlogy(3.0, b),
                domains=("real", "positive")),
    "lerp": Row(lambda m, a, b, w: m.lerp(a, b, w) + a.lerp(b, 0.3) + m.lerp(a, b, 0.8), 3,
                shapes=[((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (3, 4)), ((), (2,), ())],
                domains=("real", "real", "unit")),
    "clamp_min": bi(lambda m, a, b: m.clamp_min(a, b) + a.clamp_min(0.2), domain="away"),
    "clamp_max": bi(lambda m, a, b: m.clamp_max(a, b) + a.clamp_max(-0.1), domain="away"),
    "nan_to_num": un(lambda m, a: m.nan_to_num(a.log(), nan=0.5, neginf=-3.0) * a
                     + m.nan_to_num(1 / a).clamp(-9, 9)),
    "cross": bi(lambda m, a, b: m.cross(a, b, dim=-1) + linalg(m).cross(a, b),
                shapes=[((4, 3), (4, 3)), ((2, 1, 3), (1, 4, 3)), ((3,), (3,))]),
    "dist": bi(lambda m, a, b: m.dist(a, b) + m.dist(a, b, p=1) + a.dist(b, 3) + m.dist(a, b, float("inf")),
               domain="away", min_side=1),
    # torch has no double backward for cdist (the derivative of _cdist_backward is not implemented)
    "cdist": bi(lambda m, a, b: m.cdist(a, b) + m.cdist(a, b, p=1) + m.cdist(a, b, p=3),
                shapes=[((4, 3), (5, 3)), ((2, 3, 2), (1, 4, 2))], second=False),
    "pad": un(_pad, shapes=[((1, 2, 4, 5),), ((2, 3, 3),)]),
    "pad_backward": un(lambda m, v: first_grad(m, lambda x: nn(m).pad(x, (1, 2, 2, 0), mode="reflect"),
                                               (1, 2, 3, 4), v)
                       + first_grad(m, lambda x: nn(m).pad(x, (1, 2, 2, 0), mode="replicate"),
                                    (1, 2, 3, 4), v),
                       shapes=[((1, 2, 5, 7),)]),
    "interpolate": un(_interp, shapes=[((1, 2, 3, 4),), ((2, 1, 4, 2),)]),
    "interpolate_backward": un(
        lambda m, v: first_grad(m, lambda x: nn(m).interpolate(x, size=(5, 7), mode="bilinear"),
                                (1, 2, 3, 4), v)
        + first_grad(m, lambda x: nn(m).interpolate(x, size=(5, 7), mode="nearest"), (1, 2, 3, 4), v),
        shapes=[((1, 2, 5, 7),)]),
    "im2col": un(lambda m, a: nn(m).unfold(a, 2) * 2 + nn(m).unfold(a, (2, 3), dilation=(1, 2),
                                                                       padding=1, stride=(2, 1))[..., :3, :4].sum(),
                 shapes=[((1, 2, 4, 5),), ((2, 5, 5),)]),
    "col2im": un(lambda m, a: nn(m).fold(a, (4, 5), 2) + nn(m).fold(a[..., :10], (5, 4), 2, dilation=(2, 1),
                                                                      padding=(1, 0), stride=(1, 2)).sum(),
                 shapes=[((1, 8, 12),), ((8, 12),)]),
}
# composites of other ops (no registry row of their own), checked against torch with the
# same machinery in test_engine_mathops.py
COMPOSITES: dict[str, Row] = {
    "tensordot_kron": bi(_products, shapes=[((2, 3, 4), (2, 4, 3))]),
    "norms": un(_norms, shapes=[((3, 4),), ((2, 3, 3),)], domain="away"),
    "similarity": bi(_similar, shapes=[((3, 4), (3, 4)), ((2, 3), (3,))]),
}
