"""Extra engine tests of the tensorops family: torch's tie and NaN rules, zeros in cumprod,
keyword spellings, node names and errors (torch is the oracle)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gradmagic.engine as ge

NAN = float("nan")


def _pair(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype, requires_grad=True), ge.tensor(np.asarray(values, "float64"),
                                                                            requires_grad=True)


def _same(e, t):
    t = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.testing.assert_allclose(e.data if isinstance(e, ge.Tensor) else e, t, equal_nan=True)


@pytest.mark.parametrize("values", [[[1.0, 3.0, 3.0, 2.0, 3.0, 1.0]], [[1.0, NAN, 0.0, NAN, 5.0]],
                                    [[2.0, 2.0, 2.0], [0.0, -1.0, 0.0]]])
@pytest.mark.parametrize("fn", ["cummax", "cummin", "sort", "sort_desc", "sort_stable", "argsort"])
def test_ties_and_nan_follow_torch(values, fn):
    t, e = _pair(values)
    call = {"cummax": lambda m, x: m.cummax(x, axis=1), "cummin": lambda m, x: x.cummin(1),
            "sort": lambda m, x: x.sort(dim=1), "sort_desc": lambda m, x: m.sort(x, 1, True),
            "sort_stable": lambda m, x: x.sort(stable=True, dim=-1),
            "argsort": lambda m, x: (x.argsort(dim=1), x.argsort(1))}[fn]
    got, want = call(ge, e), call(torch, t)
    _same(got[1], want[1])
    if fn != "argsort":
        _same(got[0], want[0])
        g = np.arange(np.size(got[0].data), dtype="float64").reshape(got[0].shape)
        want[0].backward(torch.tensor(g))
        got[0].backward(ge.tensor(g))
        _same(e.grad, t.grad)
        assert got[0].grad_fn.name == want[0].grad_fn.name()


def test_median_is_the_lower_median_and_ties_share():
    t, e = _pair([2.0, 1.0, 2.0, 3.0, 2.0, 9.0])
    assert float(e.median().data) == float(t.median()) == 2.0
    t.median().backward()
    e.median().backward()
    _same(e.grad, t.grad)
    t, e = _pair([[4.0, 1.0, 3.0, 2.0]])
    _same(e.median(1).values, t.median(1).values)
    _same(e.median(dim=1, keepdims=True).indices, t.median(dim=1, keepdims=True).indices)


def test_mode_smallest_of_most_frequent_at_its_last_index():
    for values in ([1.0, 3.0, 3.0, 2.0, 3.0, 1.0], [5.0, 5.0, 1.0, 1.0], [1.0, 2, 2, 2, 3, 3, 3, 0]):
        t, e = _pair(values)
        mt, me = t.mode(), e.mode()
        _same(me.values, mt.values)
        _same(me.indices, mt.indices)


@pytest.mark.parametrize("values", [[[2.0, 0.0, 3.0, 0.5], [1.0, 2.0, 0.0, 0.0]], [[0.0, 1.5, -2.0]]])
def test_cumprod_through_zeros_first_and_second_order(values):
    t, e = _pair(values)
    v = np.linspace(-1, 1, np.size(values)).reshape(np.shape(values))
    (gt,) = torch.autograd.grad(t.cumprod(1), t, torch.tensor(v), create_graph=True)
    (gg,) = ge.grad(e.cumprod(dim=1), [e], ge.tensor(v), create_graph=True)
    _same(gg, gt)
    (ht,) = torch.autograd.grad((gt * gt).sum(), t)
    (hg,) = ge.grad((gg * gg).sum(), [e])
    _same(hg, ht)


def test_logcumsumexp_is_stable_on_large_values():
    t, e = _pair([[1000.0, -1000.0, 999.0, 1001.0]])
    _same(e.logcumsumexp(1), t.logcumsumexp(1))
    t.logcumsumexp(1).sum().backward()
    e.logcumsumexp(axis=1).sum().backward()
    _same(e.grad, t.grad)


def test_spellings_and_node_names():
    x = ge.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    assert [p.grad_fn.name for p in x.unbind(1)] == ["UnbindBackward0"] * 4
    assert {p.grad_fn.name for p in x.split([1, 2])} == {"SplitWithSizesBackward0"}
    assert {p.grad_fn.name for p in x.chunk(2, dim=1)} == {"SplitBackward0"}
    assert x.masked_fill(x > 3, 0.0).grad_fn.name == "MaskedFillBackward0"
    assert x.masked_fill(x > 3, ge.tensor(1.0)).grad_fn.name == "MaskedFillBackward1"
    assert ge.diag(x).grad_fn.name == "DiagonalBackward0_copy"
    assert x.diagonal().grad_fn.name == "DiagonalBackward0"
    assert x.scatter(0, ge.tensor([[0]]), 1.0).grad_fn.name == "ScatterBackward1"
    assert x.cumsum(axis=0).shape == (3, 4) and x.movedim(0, -1).grad_fn.name == "PermuteBackward0"
    assert [p.shape for p in x.tensor_split(3, axis=1)] == [(3, 2), (3, 1), (3, 1)]
    assert x.unflatten(1, (2, -1)).shape == (3, 2, 2) and x.ravel().shape == (12,)
    assert ge.one_hot(ge.tensor([2, 0]), 3).data.tolist() == [[0, 0, 1], [1, 0, 0]]


@pytest.mark.parametrize("src", [
    "x.unbind(5)", "x.topk(9)", "x.kthvalue(0)", "x.split([1, 1])", "x.rot90(1, [0, 0])",
    "m.nn.functional.one_hot(m.tensor([-1]), 3) if m is torch else m.one_hot(m.tensor([-1]), 3)",
    "x.masked_fill(x, 1.0)", "x.scatter(0, m.tensor([[7]]), 1.0)", "x.take(m.tensor([99]))",
    "x.diagonal(0, 1, 1)", "x.trace() if x.ndim != 2 else x[0].trace()"])
def test_errors_have_torch_types(src):
    for m in (torch, ge):
        x = m.ones((3, 4)) if m is ge else torch.ones(3, 4)
        with pytest.raises(Exception) as info:
            eval(src, {"m": m, "x": x, "torch": torch})
        if m is torch:
            want = type(info.value)
        else:
            assert isinstance(info.value, want), (src, info.value)
