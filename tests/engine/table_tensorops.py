"""Test-table rows of the engine's tensorops family (merged into engine_table.TABLE)."""
from __future__ import annotations

from engine_table import RED, Row, _aten, bi, un  # noqa: F401

IDX = [0, 2, 2, 1]
SR_INDEX = [[0, 1, 0], [0, 0, 1], [1, 1, 0]]


def _unbind(m, a):
    return sum(r * (i + 1) for i, r in enumerate(a.unbind(dim=0)))


def _split(m, a):
    pieces = [*a.split([1, 2])[::-1], *a.split(2, dim=0)[::-1], *m.chunk(a, 2)]
    return m.cat(pieces) ** 2


def _scatter_reduce(m, a, s):
    index = m.tensor(SR_INDEX)
    out = 0
    for k, reduce in enumerate(("sum", "prod", "mean", "amax", "amin")):
        for include_self in (True, False):
            r = a.scatter_reduce(0, index, s, reduce, include_self=include_self)
            out = out + r * (k + 1) * (2 if include_self else 1)
    return out


TABLE: dict[str, Row] = {
    # unbind and split (one node per piece, as torch)
    "unbind": un(_unbind, shapes=[((3, 4),), ((2,),), ((2, 3, 2),)]),
    "split": un(_split, shapes=[((3, 4),), ((3,),)]),
    # cumulative
    "cumprod": un(lambda m, a: a.cumprod(dim=0) * m.cumprod(a, axis=-1), shapes=RED[:3]),
    "logcumsumexp": un(lambda m, a: a.logcumsumexp(0) + m.logcumsumexp(a * 3, axis=-1), shapes=RED[:3]),
    "cummax": un(lambda m, a: a.cummax(0).values * m.cummax(a, dim=-1)[0], shapes=RED[:3]),
    "cummin": un(lambda m, a: a.cummin(axis=-1).values ** 2, shapes=RED[:3]),
    # selection: the gradient goes to the picked index
    "sort": un(lambda m, a: a.sort(dim=0).values * a.sort(-1, descending=True)[0]
               + m.sort(a, stable=True, dim=0)[0] ** 2 + a.msort(), shapes=RED),
    "topk": un(lambda m, a: a.topk(2).values ** 2 + a.topk(2, dim=-1, largest=False)[0],
               shapes=[((3, 4),), ((5,),)]),
    "kthvalue": un(lambda m, a: a.kthvalue(2, dim=0).values ** 2 + a.kthvalue(1, 0, True)[0].sum(),
                   shapes=[((3, 4),), ((4,),)]),
    "median_dim": un(lambda m, a: a.median(dim=-1).values ** 2 + a.median(0, keepdim=True)[0].sum(),
                     shapes=[((3, 4),), ((5,),), ((2, 3, 2),)]),
    "median": un(lambda m, a: a.median() * a, shapes=RED),
    "mode": un(lambda m, a: a.mode(dim=0).values ** 2 + a.mode()[0].sum(), shapes=[((3, 4),), ((5,),)]),
    # masks
    "one_hot": un(lambda m, a: m.one_hot((a > 0).long(), 2).to(a.dtype) * a.unsqueeze(-1),
                  shapes=[((3,),), ((2, 3),)]),
    "masked_fill": bi(lambda m, a, v: a.masked_fill(a > 0, -1.0) * 2 + a.masked_fill(a < 0.3, v) * a,
                      shapes=[((3, 4), ()), ((2,), ())]),
    "masked_select": un(lambda m, a: (a.masked_select(a > 0) ** 2).sum()
                        + a.masked_select(m.tensor([True, False, True])) * 3,
                        shapes=[((2, 3),), ((4, 3),)]),
    "masked_scatter": bi(lambda m, a, s: a.masked_scatter(a > 0, s) * a,
                         shapes=[((2, 3), (7,)), ((3,), (2, 2))]),
    "triu": un(lambda m, a: a.triu(1) * a + m.triu(a, diagonal=-1), shapes=[((3, 4),), ((2, 3, 3),)]),
    "tril": un(lambda m, a: a.tril(-1) * a + m.tril(a), shapes=[((3, 4),), ((2, 3, 3),)]),
    # diagonals
    "diagonal": un(lambda m, a: a.diagonal() ** 2 + a.diagonal(1, -1, 0).sum(),
                   shapes=[((3, 4),), ((2, 3, 3),)]),
    "diagonal_backward": un(lambda m, a: _aten(m, "diagonal_backward", a, shape=(3, 4), offset=1,
                                               dim1=0, dim2=1) ** 2, shapes=[((3,),)]),
    "diag_embed": un(lambda m, a: (m.diag_embed(a) ** 2).sum() + m.diag_embed(a, 1, 0, -1) * 2,
                     shapes=[((3,),), ((2, 3),)]),
    "trace": un(lambda m, a: a.trace() * a.trace(), shapes=[((3, 4),), ((3, 3),)]),
    # moves
    "roll": un(lambda m, a: a.roll(1) * a.roll((1, -2), (0, -1)), shapes=[((3, 4),), ((2, 3, 2),)]),
    "rot90": un(lambda m, a: a.rot90(2) * a + (a.rot90() ** 2).sum() + a.rot90(3, [0, 1]).sum(),
                shapes=[((3, 4),), ((3, 3),)]),
    # index writes
    "index_add": bi(lambda m, a, s: a.index_add(0, m.tensor(IDX), s, alpha=2) * a,
                    shapes=[((3, 2), (4, 2))]),
    "index_copy": bi(lambda m, a, s: a.index_copy(1, m.tensor([2, 0]), s) ** 2,
                     shapes=[((3, 4), (3, 2))]),
    "index_fill": bi(lambda m, a, v: a.index_fill(0, m.tensor([1, 1]), v) ** 2
                     + a.index_fill(1, m.tensor([0]), -1.0), shapes=[((3, 2), ())]),
    # (torch's backward fails for a src larger than index: its gather has index's shape)
    "scatter": bi(lambda m, a, s: a.scatter(1, m.tensor([[0, 2], [1, 0]]), s) ** 2
                  + a.scatter(0, m.tensor([[1, 0, 1]]), 0.5) * a, shapes=[((2, 3), (2, 2))]),
    "scatter_add": bi(lambda m, a, s: a.scatter_add(0, m.tensor([[0, 1, 0], [0, 0, 1]]), s) ** 2,
                      shapes=[((2, 3), (2, 3))]),
    "scatter_reduce": bi(_scatter_reduce, shapes=[((2, 3), (3, 3))]),
    "take": un(lambda m, a: a.take(m.tensor([[0, 5], [5, -1]])) ** 2, shapes=[((2, 3),)]),
    "nonzero": un(lambda m, a: m.nonzero(a > 0).sum() * a, shapes=[((3, 4),), ((3,),)],
                  gradcheck=False),
}
