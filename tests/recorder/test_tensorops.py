"""Everyday tensor ops under the recorder: iteration (``for row in X``), splits, cumulative
ops, sort/topk/median, one_hot, masks, diagonals, rolls, index and scatter writes, run
plain and inside ``gradmagic.trace()``: same values and ``.grad``s, every value and
gradient checked and agreeing, nothing unsupported."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recorder_helpers import assert_clean
from recorder_helpers import assert_same as _same, plain_and_traced as _run
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace


def _clean(program, ops=()):
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)
    cov = rep.coverage
    assert cov["values"]["unchecked"] == 0 and cov["grads"]["unchecked"] == 0, cov
    assert cov["grads"]["agree"] >= 1, cov
    labels = {n.label for n in rep.nodes}
    for name in ops:
        assert name in labels, (name, sorted(labels))
    return rep


def test_iterating_over_rows_records_unbind():
    def program():
        X = torch.randn(4, 3, requires_grad=True)
        total = torch.zeros(())
        for row in X:
            total = total + row.sum()
        for i, col in enumerate(X.T):
            total = total + col.max() * i
        total.backward()
        return [total.detach(), X.grad]
    rep = _clean(program, ["UnbindBackward0"])
    assert sum(n.label == "UnbindBackward0" for n in rep.nodes) == 7
    assert {n.torch_op for n in rep.nodes if n.label == "UnbindBackward0"} == {"Tensor.unbind"}


def test_zip_over_two_tensors_and_unbind_dim():
    def program():
        a = torch.randn(3, 2, requires_grad=True)
        b = torch.randn(3, 2, requires_grad=True)
        out = sum((x * y).sum() for x, y in zip(a, b)) + sum(torch.unbind(a, dim=1)).sum()
        out.backward()
        return [out.detach(), a.grad, b.grad]
    _clean(program, ["UnbindBackward0"])


def test_splits_and_chunks():
    def program():
        x = torch.randn(6, 4, requires_grad=True)
        parts = [*x.split([2, 4]), *torch.split(x, 4, dim=0), *torch.chunk(x, 3, dim=1),
                 *x.tensor_split(4), *torch.hsplit(x, 2), *x.vsplit([1, 3]), x.narrow(1, 1, 2)]
        out = sum((p * p).sum() * (i + 1) for i, p in enumerate(parts))
        out.backward()
        return [out.detach(), x.grad]
    _clean(program, ["SplitWithSizesBackward0", "SplitBackward0", "SliceBackward0"])


def test_cumulative_ops_with_dim_and_axis():
    def program():
        x = torch.randn(3, 4, requires_grad=True)
        y = (x.cumsum(axis=0) * x).sum() + torch.cumprod(x, dim=1).sum() + x.cummax(0).values.sum()
        y = y + torch.cummin(x, axis=1)[0].sum() + x.logcumsumexp(dim=-1).sum()
        y = y + x.cumsum(0, dtype=torch.float64).sum()
        y.backward()
        return [y.detach(), x.grad]
    _clean(program, ["CumsumBackward0", "CumprodBackward0", "CummaxBackward0", "CumminBackward0",
                     "LogcumsumexpBackward0"])


def test_cumprod_through_a_zero():
    def program():
        x = torch.tensor([[2.0, 0.0, 3.0, 0.5], [1.0, 2.0, 0.0, 0.0]], requires_grad=True)
        y = (x.cumprod(1) * torch.arange(4.0)).sum()
        y.backward()
        return [y.detach(), x.grad]
    _clean(program, ["CumprodBackward0"])


def test_sort_topk_median_mode():
    def program():
        x = torch.randn(3, 5, requires_grad=True)
        v, i = x.sort(dim=1)
        top = torch.topk(x, 2)
        low = x.topk(2, dim=0, largest=False)
        med, kv, mo = x.median(), x.median(dim=1), x.kthvalue(2, 1, keepdim=True)
        out = (v * torch.arange(5.0)).sum() + top.values.sum() + low[0].sum() + med
        out = out + kv.values.sum() + mo[0].sum() + x.mode(0).values.sum() + x.msort()[0].sum()
        out = out + x.sort(0, descending=True).values[0].sum()
        out.backward()
        return [out.detach(), x.grad, i, top.indices, kv.indices, mo.indices, x.argsort(dim=1)]
    _clean(program, ["SortBackward0", "TopkBackward0", "MedianBackward0", "MedianBackward1",
                     "KthvalueBackward0", "ModeBackward0"])


def test_median_of_ties_shares_the_gradient():
    def program():
        x = torch.tensor([2.0, 1.0, 2.0, 3.0, 2.0], requires_grad=True)
        x.median().backward()
        return [x.grad]
    _clean(program, ["MedianBackward0"])


def test_one_hot_times_weights():
    def program():
        y = torch.tensor([3, 0, 9, 3])
        W = torch.randn(10, 4, requires_grad=True)
        out = (F.one_hot(y, 10).float() @ W).tanh().sum() + F.one_hot(y).sum()
        out.backward()
        return [out.detach(), W.grad]
    _clean(program, ["MmBackward0"])


def test_masked_attention_scores():
    def program():
        q = torch.randn(2, 4, 3, requires_grad=True)
        k = torch.randn(2, 4, 3, requires_grad=True)
        mask = torch.tril(torch.ones(4, 4))
        scores = q @ k.transpose(-2, -1) / 3 ** 0.5
        attn = scores.masked_fill(mask == 0, -1e9).softmax(-1)
        out = (attn @ k).pow(2).sum()
        out.backward()
        return [out.detach(), q.grad, k.grad]
    _clean(program, ["MaskedFillBackward0", "SoftmaxBackward0"])


def test_nn_multihead_attention_with_causal_mask():
    def program():
        mha = nn.MultiheadAttention(4, 2, batch_first=True)
        x = torch.randn(2, 3, 4, requires_grad=True)
        causal = torch.triu(torch.ones(3, 3, dtype=torch.bool), diagonal=1)
        out, _ = mha(x, x, x, attn_mask=causal)
        out.sum().backward()
        return [out.detach(), x.grad] + [p.grad for p in mha.parameters()]
    plain, traced, rep = _run(program)
    _same(plain, traced)
    assert rep.ok  # (MultiheadAttention's fused internals may be opaque: only agreement asserted)


def test_masks_triangles_diagonals():
    def program():
        x = torch.randn(4, 4, requires_grad=True)
        v = torch.tensor(0.5, requires_grad=True)
        y = x.masked_fill(x > 0, v) + x.triu(1) + torch.tril(x, -1) + x.diagonal().sum()
        y = y + torch.diag(x).sum() + x.trace() + torch.diag_embed(x[0]) + x.masked_select(x < 0).sum()
        y = y + x.masked_scatter(x > 0.5, torch.randn(16)) + torch.diag(x[1], 0)
        y.pow(2).sum().backward()
        return [y.detach(), x.grad, v.grad]
    _clean(program, ["MaskedFillBackward1", "TriuBackward0", "TrilBackward0", "DiagonalBackward0",
                     "TraceBackward0", "DiagEmbedBackward0", "MaskedSelectBackward0",
                     "MaskedScatterBackward0"])


def test_moves_and_repeats():
    def program():
        x = torch.randn(3, 4, requires_grad=True)
        y = x.roll(1, 0) * x.roll(-1) + x.rot90(2) + x.fliplr() + torch.flipud(x) + x.movedim(0, 1).T
        y = y + torch.moveaxis(x.unflatten(1, (2, 2)), 2, 0).reshape(2, 3, 2).permute(1, 0, 2).reshape(3, 4)
        z = x.repeat_interleave(2, dim=0).sum() + x.repeat_interleave(torch.tensor([1, 0, 2]), dim=0).sum()
        z = z + x.tile(2, 1).pow(2).sum() + x.ravel().cumsum(0).sum() + x.rot90(1, [0, 1]).pow(2).sum()
        out = y.pow(2).sum() + z
        out.backward()
        return [out.detach(), x.grad]
    _clean(program, ["RollBackward0", "Rot90Backward0", "FlipBackward0", "PermuteBackward0",
                     "RepeatBackward0", "IndexSelectBackward0"])


def test_index_and_scatter_writes():
    def program():
        x = torch.randn(3, 4, requires_grad=True)
        s = torch.randn(2, 4, requires_grad=True)
        i = torch.tensor([0, 2])
        y = x.index_add(0, i, s, alpha=2) + x.index_copy(0, i, s) + x.index_fill(1, torch.tensor([1]), 0.5)
        idx = torch.tensor([[0, 1, 2, 0]])
        y = y + x.scatter(1, torch.tensor([[0], [1], [2]]), 1.0) + x.scatter_add(0, idx, s[:1])
        y = y + x.scatter(0, idx, s[:1])
        for reduce in ("sum", "prod", "mean", "amax", "amin"):
            y = y + x.scatter_reduce(0, idx, s[:1], reduce, include_self=reduce != "sum")
        out = y.pow(2).sum() + x.take(torch.tensor([0, 5, 5])).sum()
        out = out + x.take_along_dim(x.argmax(1, keepdim=True), dim=1).sum()
        out.backward()
        return [out.detach(), x.grad, s.grad]
    _clean(program, ["IndexAddBackward0", "IndexCopyBackward0", "IndexFillBackward0",
                     "ScatterBackward1", "ScatterBackward0", "ScatterAddBackward0",
                     "ScatterReduceBackward0", "TakeBackward0", "GatherBackward0"])


def test_in_place_masked_and_index_writes():
    def program():
        x = torch.randn(3, 4, requires_grad=True)
        y = x * 1
        y.masked_fill_(y > 1, 1.0)
        y.index_add_(0, torch.tensor([1]), torch.ones(1, 4))
        y.scatter_(1, torch.tensor([[0], [1], [2]]), 2.0)
        y.index_fill_(0, torch.tensor([0]), 1.0)
        y.scatter_add_(0, torch.tensor([[0, 1, 2, 0]]), torch.ones(1, 4))
        y.index_copy_(1, torch.tensor([3]), torch.zeros(3, 1))
        y.masked_scatter_(y < 0, torch.arange(12.0))
        y.scatter_reduce_(0, torch.tensor([[2, 1, 0, 0]]), torch.full((1, 4), 0.5), "amax")  # saves y
        (y * y).sum().backward()
        return [y.detach(), x.grad]
    _clean(program)


def test_nonzero_and_where_one_argument():
    def program():
        x = torch.randn(3, 4, requires_grad=True)
        nz = torch.nonzero(x > 0)
        rows, cols = torch.where(x > 0)
        out = x[rows, cols].sum() + x[tuple(nz.T)].sum() + x.argwhere().float().sum()
        out = out + x[torch.nonzero(x < 0, as_tuple=True)].sum()
        out.backward()
        return [out.detach(), x.grad, nz]
    _clean(program)


def test_wrong_sort_rule_is_located(monkeypatch):
    """A sort VJP that sends g to the wrong places is caught at the sort node."""
    sort = REGISTRY["sort"]
    good = sort.vjps[0]
    monkeypatch.setattr(sort, "vjps", (lambda g, ans, a, **p: good(g, ans, a, **p)[..., ::-1].copy(),))
    with trace(session=Session()) as rep:
        x = torch.randn(2, 4, requires_grad=True)
        (x.sort(dim=1).values * torch.arange(4.0)).sum().backward()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "sort" and first.label == "SortBackward0"


def test_wrong_masked_fill_rule_is_located(monkeypatch):
    mf = REGISTRY["masked_fill"]
    monkeypatch.setattr(mf, "vjps", (lambda g, ans, a, value, mask: g, mf.vjps[1]))
    with trace(session=Session()) as rep:
        x = torch.randn(3, 3, requires_grad=True)
        (x.masked_fill(x > 0, 2.0) * torch.arange(3.0)).sum().backward()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "masked_fill" and first.label == "MaskedFillBackward0"


@pytest.mark.parametrize("src", [
    "x.unbind(5)", "x.topk(9)", "x.kthvalue(0)", "F.one_hot(torch.tensor([-1]), 3)",
    "x.masked_fill(x, 1.0)", "x.scatter(0, torch.tensor([[7]]), 1.0)", "x.take(torch.tensor([99]))",
    "x.diagonal(0, 1, 1)", "x.rot90(1, [0, 0])", "x.split([1, 1])"])
def test_bad_arguments_raise_as_plain_torch(src):
    """torch's own error reaches the user unchanged; the report stays ok."""
    ns = {"torch": torch, "F": F, "x": torch.randn(3, 4, requires_grad=True)}
    with pytest.raises(Exception) as plain:
        eval(src, ns)
    with trace(session=Session()) as rep:
        with pytest.raises(type(plain.value)):
            eval(src, ns)
    assert rep.ok and not any("internal error" in n for n in rep.notes)
