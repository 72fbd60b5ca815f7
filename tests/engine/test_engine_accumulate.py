"""Gradient accumulation in the plain backward: sums the loop allocated take later
gradients in place, a slice's gradient (getitem, unbind, split) is added into its input's
sum at the slice, and neither ever writes into an array someone else holds (the seed, an
input's data, another tensor's gradient). Checked against torch, values and dtypes."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import gradmagic.engine as ge


def _pair(a: np.ndarray) -> tuple:
    return ge.tensor(a.copy(), requires_grad=True), torch.tensor(a.copy(), requires_grad=True)


def _check(program, a: np.ndarray, seed: np.ndarray | None = None) -> None:
    """Run ``program`` (the same code on both libraries) and compare the leaf's gradient."""
    e, t = _pair(a)
    out_e, out_t = program(e, ge), program(t, torch)
    if seed is None:
        out_e.sum().backward()
        out_t.sum().backward()
    else:
        seed_e = ge.tensor(seed)
        out_e.backward(seed_e)
        out_t.backward(torch.tensor(seed))
        np.testing.assert_array_equal(seed_e.data, seed)  # the seed is never written into
    assert e.grad.dtype == t.grad.numpy().dtype
    np.testing.assert_allclose(e.grad.data, t.grad.numpy(), rtol=1e-6, atol=1e-6)


PROGRAMS = {
    "slices-of-a-leaf": lambda x, m: x[0] * 2 + x[1] * 3 + x[0] * x[2],
    "slices-after-a-sum": lambda x, m: (x * x)[0] + (x * x)[1:3].sum(0) + (x * x)[2],
    "unbind-each-row": lambda x, m: sum(r * (k + 1) for k, r in enumerate(m.unbind(x, 0))),
    "split-and-whole": lambda x, m: m.split(x, 2, 1)[0].sum(1) + x.sum(1) + m.split(x, 2, 1)[1][:, 0],
    "slice-of-a-view": lambda x, m: x.reshape(3, 4)[1] + x.reshape(3, 4)[1] * x.reshape(3, 4)[2],
    "many-uses": lambda x, m: sum(x * k for k in range(6)) + sum(x[:, k] for k in range(4))[:, None],
    "columns-of-transpose": lambda x, m: x.t()[1] + x.t()[3] + x.t()[1],
    "ellipsis-and-none": lambda x, m: x[..., 1][None] + x[None, :, 2] + x[..., None, 0],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_accumulation_matches_torch(name, dtype):
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    _check(PROGRAMS[name], a)


def test_a_seed_passed_through_is_copied_before_slices_add_into_it():
    a = np.random.default_rng(1).standard_normal((3, 4))
    seed = np.random.default_rng(2).standard_normal((3, 4))
    # the seed reaches x through x + 0 first (the newest node; add passes g itself), then
    # the slices' gradients are added: into a copy, never into the seed
    _check(lambda x, m: 0 * x[0] + (x + 0), a, seed)
    _check(lambda x, m: m.stack(list(m.unbind(x, 0)), 0) + (x + 0), a, seed)


def test_slice_gradients_do_not_touch_a_retained_grad_or_the_input():
    x = ge.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x * 1
    y.retain_grad()
    z = y[0] * 2 + y[1] + y[0]
    data = x.data.copy()
    z.sum().backward()
    assert y.grad.data.tolist() == [[3.0, 3.0, 3.0], [1.0, 1.0, 1.0]]
    assert x.grad.data.tolist() == [[3.0, 3.0, 3.0], [1.0, 1.0, 1.0]]
    assert y.grad.data is not x.grad.data
    np.testing.assert_array_equal(x.data, data)


def test_leaf_grad_accumulates_across_backward_calls():
    x = ge.tensor(np.ones(4), requires_grad=True)
    for k in range(3):
        (x[0] + x[1:].sum() + x[0] * 2).backward()
    assert x.grad.data.tolist() == [9.0, 3.0, 3.0, 3.0]


def test_retain_graph_twice_gives_the_same_grads_without_aliasing():
    x = ge.tensor(np.arange(4.0), requires_grad=True)
    out = sum(r * r for r in ge.functional.unbind(x.reshape(2, 2), 0)).sum()
    out.backward(retain_graph=True)
    first = x.grad.data.copy()
    x.grad = None
    out.backward()
    np.testing.assert_array_equal(x.grad.data, first)


def test_recorded_backward_keeps_every_slice_gradient():
    x = ge.tensor(np.ones((2, 2)), requires_grad=True)
    with ge.record_backward() as calls:
        (x[0] * 3 + x[1]).sum().backward()
    grads = [s.input_grads[0] for s in calls[0].steps if s.kind == "node" and s.node.op == "getitem"]
    assert sorted(g.tolist() for g in grads) == [[[0.0, 0.0], [1.0, 1.0]], [[3.0, 3.0], [0.0, 0.0]]]
    assert x.grad.data.tolist() == [[3.0, 3.0], [1.0, 1.0]]


@pytest.mark.parametrize("shape", [(5, 3, 4), (2, 5, 3, 4)])
def test_linear_on_stacked_inputs_matches_torch(shape):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(shape).astype(np.float32)
    w, b = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    for transpose in (False, True):  # contiguous and not
        e, t = _pair(a)
        ew, tw = _pair(w)
        eb, tb = _pair(b)
        xe = e.transpose(0, 1) if transpose else e
        xt = t.transpose(0, 1) if transpose else t
        oe, ot = ge.functional.linear(xe, ew, eb), torch.nn.functional.linear(xt, tw, tb)
        assert oe.shape == tuple(ot.shape) and oe.dtype == ot.detach().numpy().dtype
        np.testing.assert_allclose(oe.data, ot.detach().numpy(), rtol=1e-5, atol=1e-5)
        (oe * oe).sum().backward()
        (ot * ot).sum().backward()
        for got, want in ((e, t), (ew, tw), (eb, tb)):
            assert got.grad.dtype == want.grad.numpy().dtype
            np.testing.assert_allclose(got.grad.data, want.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_linear_with_few_rows_matches_torch_in_value_and_gradient():
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        h = rng.standard_normal((4, 40)).astype(dtype)  # few rows, many outputs: the RNN step
        w = rng.standard_normal((64, 40)).astype(dtype)
        eh, th = _pair(h)
        ew, tw = _pair(w)
        oe, ot = ge.functional.linear(eh, ew), torch.nn.functional.linear(th, tw)
        np.testing.assert_allclose(oe.data, ot.detach().numpy(), rtol=1e-5, atol=1e-5)
        (oe * oe).sum().backward()
        (ot * ot).sum().backward()
        for got, want in ((eh, th), (ew, tw)):
            assert got.grad.dtype == want.grad.numpy().dtype
            np.testing.assert_allclose(got.grad.data, want.grad.numpy(), rtol=1e-4, atol=1e-4)


def _linear_loop(w, b, x, m, steps=5):
    """A weight used at every step, as in an RNN (its gradients are summed as one product)."""
    lin = m.nn.functional.linear if m is torch else ge.functional.linear
    h = x
    for _ in range(steps):
        h = m.tanh(lin(h, w, b) if b is not None else lin(h, w))
    return h


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["bias", "no-bias", "weight-also-elsewhere", "weight-used-before",
                                  "sliced-before", "weight-is-a-node", "folded"])
def test_weight_used_at_every_step_matches_torch(case, dtype, monkeypatch):
    accumulate = importlib.import_module("gradmagic.engine.accumulate")
    if case == "folded":  # past the limit, the factors so far are summed into a dense part
        monkeypatch.setattr(accumulate.Factors, "LIMIT", 300)
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((3, 3), (3,), (4, 3))]
    (ew, tw), (eb, tb), (ex, tx) = (_pair(a) for a in arrays)
    outs = []
    for w, b, x, m in ((ew, eb, ex, ge), (tw, tb, tx, torch)):
        b = None if case == "no-bias" else b
        w_used = w * 2 if case == "weight-is-a-node" else w
        # used elsewhere before and after the loop: its gradients arrive before and after
        # the loop's (deferred) ones
        before = (w * w).sum() if case in ("weight-also-elsewhere", "weight-used-before") else \
            w[1].sum() * 3 if case == "sliced-before" else 0
        out = before + _linear_loop(w_used, b, x, m).sum()
        if case == "weight-also-elsewhere":
            out = out + (w * w * w).sum() + _linear_loop(w[:, :], b, x, m, 2).sum()
        outs.append(out)
    outs[0].backward()
    outs[1].backward()
    for e, t in ((ew, tw), (eb, tb), (ex, tx)):
        if t.grad is None:
            assert e.grad is None
            continue
        assert e.grad.dtype == t.grad.numpy().dtype
        np.testing.assert_allclose(e.grad.data, t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_recorded_backward_keeps_each_steps_weight_gradient():
    w = ge.tensor(np.eye(2), requires_grad=True)
    x = ge.tensor(np.array([[1.0, 2.0]]))
    with ge.record_backward() as calls:
        ge.functional.linear(ge.functional.linear(x, w), w).sum().backward()
    grads = [s.input_grads[1] for s in calls[0].steps if s.kind == "node" and s.node.op == "linear"]
    assert [g.tolist() for g in grads] == [[[1.0, 2.0], [1.0, 2.0]]] * 2
    assert w.grad.data.tolist() == [[2.0, 4.0], [2.0, 4.0]]
