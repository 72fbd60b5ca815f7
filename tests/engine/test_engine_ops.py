"""Every op of the engine's table against torch: forward values, VJPs, dtypes (float32
and float64), float64 finite-difference gradchecks and second-order products."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import gradmagic.engine as ge
from engine_table import TABLE, TORCH, Row

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-9, atol=1e-11)}


def sample(rng: np.random.Generator, shape: tuple, domain: str, dtype: str) -> np.ndarray:
    x = rng.standard_normal(shape)
    if domain == "positive":
        x = np.abs(x) + 0.5
    elif domain == "unit":
        x = rng.uniform(0.05, 0.95, shape)
    elif domain == "away":
        x = np.sign(x) * (np.abs(x) + 0.6) + 0.1 * np.round(x)  # off kinks, ties and integers
        x = np.where(np.abs(x - np.round(x)) < 0.05, x + 0.1, x)
    return np.asarray(x, dtype)


def shapes_for(row: Row) -> st.SearchStrategy:
    if row.shapes == "broadcast":
        return mutually_broadcastable_shapes(num_shapes=row.n, min_dims=0, max_dims=3,
                                             min_side=row.min_side, max_side=3).map(
            lambda r: r.input_shapes)
    return st.sampled_from(row.shapes)


def inputs(row: Row, shapes: tuple, dtype: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    domains = row.domains or (row.domain,) * row.n
    return [sample(rng, s, d, dtype) for s, d in zip(shapes, domains)]


def diff_mask(row: Row) -> tuple:
    return row.diff or (True,) * row.n


def run_both(row: Row, arrays: list, second: bool = False):
    """(torch out, torch grads, engine out, engine grads) for a random cotangent."""
    mask = diff_mask(row)
    xt = [torch.tensor(a, requires_grad=m) for a, m in zip(arrays, mask)]
    xg = [ge.tensor(a, requires_grad=m) for a, m in zip(arrays, mask)]
    out_t, out_g = row.fn(TORCH, *xt), row.fn(ge, *xg)
    return xt, out_t, xg, out_g


def assert_close(engine, reference, dtype: str, what: str) -> None:
    ref = reference.detach().numpy() if isinstance(reference, torch.Tensor) else reference
    got = engine.data if isinstance(engine, ge.Tensor) else engine
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != torch {ref.shape}"
    assert str(got.dtype) == str(ref.dtype), f"{what}: dtype {got.dtype} != torch {ref.dtype}"
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, ref, err_msg=what, equal_nan=True, **TOL[dtype])
    else:
        np.testing.assert_array_equal(got, ref, err_msg=what)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(TABLE))
def test_forward_and_vjp_match_torch(name: str, dtype: str) -> None:
    row = TABLE[name]

    @SETTINGS
    @given(shapes=shapes_for(row), seed=st.integers(0, 2**16))
    def check(shapes, seed):
        arrays = inputs(row, shapes, dtype, seed)
        xt, out_t, xg, out_g = run_both(row, arrays)
        assert_close(out_g, out_t, dtype, f"{name} forward")
        if not out_t.requires_grad:
            assert not out_g.requires_grad
            return
        v = np.random.default_rng(seed + 1).standard_normal(out_t.shape).astype(
            str(out_g.dtype))
        used = [x for x in xt if x.requires_grad]
        gt = torch.autograd.grad(out_t, used, torch.from_numpy(v), allow_unused=True)
        gg = ge.grad(out_g, [x for x in xg if x.requires_grad], ge.Tensor(v), allow_unused=True)
        for i, (a, b) in enumerate(zip(gg, gt)):
            if b is None:
                assert a is None or not a.data.any(), f"{name}: grad {i} should be None/zero"
            else:
                assert a is not None, f"{name}: engine gave no gradient for input {i}"
                assert_close(a, b, dtype, f"{name} grad of input {i}")

    check()


@pytest.mark.parametrize("name", sorted(n for n, r in TABLE.items() if r.gradcheck))
def test_gradcheck_float64(name: str) -> None:
    row = TABLE[name]

    @settings(max_examples=3, deadline=None, derandomize=True)
    @given(shapes=shapes_for(row), seed=st.integers(0, 2**16))
    def check(shapes, seed):
        arrays = inputs(row, shapes, "float64", seed)
        xs = [ge.tensor(a, requires_grad=m) for a, m in zip(arrays, diff_mask(row))]
        if not row.fn(ge, *xs).requires_grad:
            return
        assert ge.gradcheck(lambda *z: row.fn(ge, *z), xs, eps=1e-6, atol=1e-6, rtol=1e-5)

    check()


@pytest.mark.parametrize("name", sorted(n for n, r in TABLE.items() if r.second))
def test_second_order_matches_torch(name: str) -> None:
    """Hessian-vector products: grad of ⟨grad(f)·v, u⟩, engine (create_graph) vs torch.
    Where torch's first derivative keeps a graph (relu's, |x|'s: zero second derivative),
    the engine's must too, so that differentiating it again works and gives torch's zeros."""
    row = TABLE[name]
    shapes = (row.shapes[0] if row.shapes != "broadcast" else ((2, 3),) * row.n)
    arrays = inputs(row, shapes, "float64", 7)
    xt, out_t, xg, out_g = run_both(row, arrays)
    if not out_t.requires_grad:
        return
    xt, xg = [x for x in xt if x.requires_grad], [x for x in xg if x.requires_grad]
    rng = np.random.default_rng(3)
    v = rng.standard_normal(out_t.shape)
    gt = torch.autograd.grad(out_t, xt, torch.from_numpy(v), create_graph=True, allow_unused=True)
    gg = ge.grad(out_g, xg, ge.Tensor(v), create_graph=True, allow_unused=True)
    pairs = [(a, b, x.shape) for a, b, x in zip(gg, gt, xt) if b is not None]
    for a, b, _ in pairs:
        assert_close(a, b, "float64", f"{name} first order")
    us = [rng.standard_normal(s) for _, _, s in pairs]
    st_ = sum((b * torch.from_numpy(u)).sum() for (_, b, _), u in zip(pairs, us))
    sg = sum((a * ge.Tensor(u)).sum() for (a, _, _), u in zip(pairs, us))
    if not isinstance(st_, torch.Tensor) or not st_.requires_grad:  # a constant first derivative
        assert not isinstance(sg, ge.Tensor) or not sg.requires_grad or all(
            g is None or not g.data.any() for g in ge.grad(sg, xg, allow_unused=True))
        return
    assert sg.requires_grad, f"{name}: torch's gradient has a graph, the engine's has none"
    ht = torch.autograd.grad(st_, xt, allow_unused=True)
    hg = ge.grad(sg, xg, allow_unused=True)
    for i, (a, b) in enumerate(zip(hg, ht)):
        if b is None or b._is_zerotensor():
            assert a is None or not a.data.any()
        else:
            assert a is not None, f"{name}: no second-order gradient for input {i}"
            assert_close(a, b, "float64", f"{name} second order, input {i}")


def test_every_registry_op_has_a_row() -> None:
    assert set(ge.REGISTRY) == set(TABLE), set(ge.REGISTRY) ^ set(TABLE)


def test_every_op_has_formulas_and_node_name() -> None:
    for name, op in ge.REGISTRY.items():
        assert op.formulas, name
        if not op.nondiff:
            assert op.node_name, name
            assert any(v is not None for v in op.vjps), name


def _arrays_of(steps: list) -> list:
    out = []
    for s in steps:
        out += [s.grad_output, *s.input_grads, s.before, s.added, s.after]
    return [a for a in out if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("name", sorted(n for n, r in TABLE.items() if r.gradcheck))
def test_recorded_steps_keep_their_values_through_later_writes(name: str) -> None:
    """Recorded steps hold the backward's arrays, not copies: nothing written later — the
    inputs' values, the seed, the leaves' ``.grad`` (accumulated, zeroed) — may change them."""
    row = TABLE[name]
    shapes = (row.shapes[0] if row.shapes != "broadcast" else ((2, 3),) * row.n)
    xs = [ge.tensor(a, requires_grad=m) for a, m in zip(inputs(row, shapes, "float64", 11), diff_mask(row))]
    out = row.fn(ge, *xs)
    if not out.requires_grad:
        return
    seed = ge.tensor(np.random.default_rng(5).standard_normal(out.shape))
    with ge.record_backward() as calls:
        out.backward(seed, retain_graph=True)
    kept = [a.copy() for a in _arrays_of(calls[0].steps)]
    out.backward(seed, retain_graph=True)  # accumulates into the leaves' .grad in place
    seed.data += 1.0
    out.data[...] = 7.0
    for x in xs:
        x.data[...] = 3.0
        if x.grad is not None:
            x.grad.data[...] = 0.0
    for before, now in zip(kept, _arrays_of(calls[0].steps)):
        np.testing.assert_array_equal(now, before, err_msg=name)
