"""Indexing against torch: hypothesis-drawn index expressions (ints, slices, None, Ellipsis,
index lists, boolean masks, bools, 0-d index tensors, in any mix) on random shapes, for
``x[index]`` (value, gradient) and ``y[index] = v`` (result, both gradients).

torch applies ints (and 0-d integer tensors) as selects before the advanced indices, so an
int that sits apart from an index list does not move the list's dims to the front, as it
does in NumPy (``x[0, :, [0, 1]]`` has shape (3, 2) in torch for x of shape (2, 3, 4)).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import gradmagic.engine as ge

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def shape_and_index(draw: Any) -> tuple:
    """A shape (1-4 dims) and an index for it (a recipe both libraries can build): items that
    take a dim (ints, slices, lists, masks, 0-d tensors) and items that do not (None, bools,
    one Ellipsis), in a random order; half the time an int and a list with something between."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    kinds = st.sampled_from(["int", "int", "slice", "slice", "list", "list", "tensor0", "mask"])
    taking = draw(st.lists(kinds, max_size=len(shape)))
    if taking.count("mask") > 1:  # masks would have to broadcast with the lists
        taking = [k if k != "mask" or n == taking.index("mask") else "int" for n, k in enumerate(taking)]
    extra = draw(st.lists(st.sampled_from(["none", "none", "bool", "ellipsis"]), max_size=2))
    if extra.count("ellipsis") > 1:
        extra.remove("ellipsis")
    order = draw(st.permutations(taking + extra))
    if len(shape) >= 2 and draw(st.booleans()):  # the case where NumPy and torch differ
        sep = draw(st.sampled_from(["none", "ellipsis"] + ["slice"] * (len(shape) >= 3)))
        extra = [k for k in extra if k != "ellipsis" or sep != "ellipsis"]
        rest = draw(st.permutations(taking[:len(shape) - 2 - (sep == "slice")] + extra))
        pair = ["int", sep, "list"] if draw(st.booleans()) else ["list", sep, "int"]
        where = draw(st.integers(0, len(rest)))
        order = rest[:where] + pair + rest[where:]
    taking = [k for k in order if k not in ("none", "bool", "ellipsis")]
    length = draw(st.integers(1, 3))  # index lists share one length, so that they broadcast
    before = sum(k not in ("none", "bool") for k in order[:order.index("ellipsis")]) \
        if "ellipsis" in order else len(taking)  # the items after the Ellipsis index the last dims
    dims = iter(list(range(before)) + list(range(len(shape) - len(taking) + before, len(shape))))
    items: list = []
    for kind in order:
        if kind in ("none", "bool", "ellipsis"):
            items.append({"none": None, "ellipsis": Ellipsis}.get(kind, draw(st.booleans())))
        else:
            items.append(_item(draw, kind, shape[next(dims)], length))
    return shape, tuple(items)


def _item(draw: Any, kind: str, size: int, length: int) -> Any:
    """One dim-taking index item for a dim of ``size``."""
    if kind == "int":
        return draw(st.integers(-size, size - 1))
    if kind == "tensor0":
        return ("t0", draw(st.integers(-size, size - 1)))
    if kind == "slice":
        start, stop = draw(st.sampled_from([None, 0, 1, -1])), draw(st.sampled_from([None, 2, -1]))
        return slice(start, stop, draw(st.sampled_from([None, 1, 2])))
    if kind == "mask":
        return ("mask", draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    # a Python list, or an index tensor of 1 or 2 dims
    vals = draw(st.lists(st.integers(-size, size - 1), min_size=length, max_size=length))
    form = draw(st.sampled_from(["python", "tensor", "tensor2d"]))
    return vals if form == "python" else ("list", vals if form == "tensor" else [vals])


def build(items: tuple, lib: Any) -> tuple:
    """The index for ``lib`` (torch or gradmagic.engine): 0-d index tensors, masks, lists."""
    out = []
    for i in items:
        if isinstance(i, tuple) and i[0] == "t0":
            out.append(lib.tensor(i[1]))
        elif isinstance(i, tuple) and i[0] == "mask":
            out.append(lib.tensor(i[1]))
        elif isinstance(i, tuple) and i[0] == "list":
            out.append(lib.tensor(i[1]))
        else:
            out.append(i)
    return tuple(out)


def outcome(fn: Any) -> tuple:
    try:
        return "ok", fn()
    except (IndexError, RuntimeError, ValueError) as e:
        return "error", type(e).__name__


def data(t: Any) -> np.ndarray:
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.data


def close(a: Any, b: Any) -> None:
    assert a.shape == tuple(b.shape), f"shape {a.shape} != torch {tuple(b.shape)}"
    np.testing.assert_allclose(data(a), data(b), rtol=1e-12)


@SETTINGS
@given(case=shape_and_index(), seed=st.integers(0, 2**16))
def test_getitem_matches_torch(case: tuple, seed: int) -> None:
    shape, items = case
    arr = np.random.default_rng(seed).standard_normal(shape)
    xt, xg = torch.tensor(arr, requires_grad=True), ge.tensor(arr, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kt, ot = outcome(lambda: xt[build(items, torch)])
    kg, og = outcome(lambda: xg[build(items, ge)])
    assert kg == kt, f"torch: {kt} {ot if kt == 'error' else ''}, engine: {kg} {og if kg == 'error' else ''}"
    if kt == "error":
        assert og == ot
        return
    close(og, ot)
    v = np.random.default_rng(seed + 1).standard_normal(tuple(ot.shape))
    ot.backward(torch.from_numpy(v))
    og.backward(ge.tensor(v))
    close(xg.grad, xt.grad)


@SETTINGS
@given(case=shape_and_index(), seed=st.integers(0, 2**16), scalar=st.booleans())
def test_setitem_matches_torch(case: tuple, seed: int, scalar: bool) -> None:
    shape, items = case
    positions = torch.arange(int(np.prod(shape))).reshape(shape)
    picked = outcome(lambda: positions[build(items, torch)])
    if picked[0] == "error" or picked[1].unique().numel() != picked[1].numel():
        return  # torch's result is unspecified where an index repeats
    rng = np.random.default_rng(seed)
    arr, val = rng.standard_normal(shape), rng.standard_normal(() if scalar else tuple(picked[1].shape))
    w = rng.standard_normal(shape)
    grads = []
    for lib in (torch, ge):
        x, v = lib.tensor(arr, requires_grad=True), lib.tensor(val, requires_grad=True)
        y = x * 1
        y[build(items, lib)] = v * 2
        (y * lib.tensor(w)).sum().backward()
        grads.append((y, x.grad, v.grad))
    for got, want in zip(grads[1], grads[0]):
        close(got, want)


@pytest.mark.parametrize("shape, index, torch_shape", [
    ((2, 2), (Ellipsis, 0, None, [0, 0]), (1, 2)),       # the fuzzer's find; NumPy: (2, 1)
    ((2, 3, 4), (0, slice(None), [0, 1]), (3, 2)),       # NumPy: (2, 3)
    ((2, 3, 4), ([0, 1], slice(None), 0), (2, 3)),       # NumPy and torch agree (dims first)
    ((2, 3, 4, 5), (slice(None), [0, 1], 0, [0, 1]), (2, 2)),
    ((2, 3, 4), (1, slice(None), [[0, 1], [1, 0]]), (3, 2, 2)),  # NumPy: (2, 2, 3)
])
def test_an_int_apart_from_an_index_list_keeps_its_dims_in_place(shape, index, torch_shape) -> None:
    x = ge.tensor(np.arange(np.prod(shape), dtype=np.float64).reshape(shape))
    want = torch.arange(np.prod(shape), dtype=torch.float64).reshape(shape)[index]
    assert tuple(want.shape) == torch_shape
    got = x[index]
    assert got.shape == torch_shape
    np.testing.assert_array_equal(got.data, want.numpy())
