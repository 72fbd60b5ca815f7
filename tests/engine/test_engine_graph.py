"""Backward as data, graph structure, memory and isolation from torch."""
from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

import gradmagic.engine as ge

REPO = Path(__file__).resolve().parents[2]


def test_import_engine_does_not_import_torch():
    code = "import sys, gradmagic.engine as ge; ge.arange(3.0); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_record_backward_steps_follow_the_contract():
    x = ge.arange(4.0, requires_grad=True)
    y = 2 * ge.dot(x, x)
    with ge.record_backward() as calls:
        y.backward()
    (rec,) = calls
    assert rec.kind == "backward" and [s.kind for s in rec.steps] == ["node", "node", "accumulate"]
    mul, dot, acc = rec.steps
    assert mul.node.name == "MulBackward0" and dot.node.name == "DotBackward0"
    assert mul.grad_output.tolist() == 1.0 and mul.input_grads[0] is None
    assert mul.input_grads[1].tolist() == 2.0
    assert dot.grad_output.tolist() == 2.0
    assert [g.tolist() for g in dot.input_grads] == [[0.0, 2.0, 4.0, 6.0]] * 2
    assert acc.tensor is x and acc.before is None
    assert acc.added.tolist() == acc.after.tolist() == [0.0, 4.0, 8.0, 12.0]


def test_record_accumulate_before_after_and_grad_calls():
    x = ge.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    with ge.record_backward() as calls:
        (x * x).sum().backward()
        ge.grad((x * 2).sum(), x)
    acc = calls[0].steps[-1]
    assert acc.before.tolist() == [3.0, 3.0] and acc.after.tolist() == [5.0, 7.0]
    assert calls[1].kind == "grad"
    last = calls[1].steps[-1]
    assert last.kind == "accumulate" and last.before is None and last.after.tolist() == [2.0, 2.0]
    x.grad.zero_()
    assert acc.after.tolist() == [5.0, 7.0]  # steps hold snapshots


def test_recording_is_off_by_default():
    from gradmagic.engine._state import STATE
    assert STATE.recorders is None
    with ge.record_backward():
        assert STATE.recorders
    assert STATE.recorders is None


def test_node_exposes_parents_formulas_and_saved_bytes():
    x = ge.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = ge.tensor([4.0, 5.0, 6.0])
    y = x * w
    fn = y.grad_fn
    assert fn.op == "mul" and fn.opdef is ge.REGISTRY["mul"]
    assert fn.parents == (x, None) and fn.next_functions[0][0] is x
    assert fn.formulas == ("∂/∂a = g·b", "∂/∂b = g·a")
    # torch saves `other` only, since only `self` needs a gradient
    assert [name for name, _ in fn.saved] == ["b"] and fn.saved_bytes == 12
    e = x.exp()
    assert [name for name, _ in e.grad_fn.saved] == ["result"]
    assert (x + w).grad_fn.saved_bytes == 0
    z = y.sum()
    assert z.grad_fn.parents == (fn,) and z.grad_fn.name == "SumBackward0"


def test_long_chain_has_no_recursion_limit():
    x = ge.tensor([0.5], requires_grad=True)
    h = x
    for _ in range(100_000):
        h = h * 1.0
    h.sum().backward()
    assert x.grad.tolist() == [1.0]
    assert len(ge.toposort([h.grad_fn])) == 100_001


def test_graph_is_freed_by_refcounting_without_gc():
    gc.disable()
    try:
        x = ge.tensor([1.0, 2.0], requires_grad=True)
        y = (x.exp() * x).sum()
        node, out = weakref.ref(y.grad_fn), weakref.ref(y)
        y.backward()
        del y
        assert node() is None and out() is None
        h = x * 2
        h.retain_grad()
        ref = weakref.ref(h)
        (h * h).sum().backward()
        del h
        assert ref() is None
    finally:
        gc.enable()


def test_float32_stays_float32_end_to_end():
    x = ge.randn(3, 4, requires_grad=True)
    w = ge.randn(4, 2, requires_grad=True)
    with ge.record_backward() as calls:
        ((x @ w).tanh().sum() * 0.5).backward()
    for step in calls[0].steps:
        if step.kind == "node":
            assert step.grad_output.dtype == np.float32
    assert x.grad.dtype == w.grad.dtype == np.float32


def test_leaf_grads_do_not_alias_each_other_or_the_seed():
    a = ge.tensor([1.0, 2.0], requires_grad=True)
    b = ge.tensor([1.0, 2.0], requires_grad=True)
    gout = ge.tensor([1.0, 1.0])
    (a + b).backward(gout)
    a.grad.zero_()
    assert b.grad.tolist() == [1.0, 1.0] and gout.tolist() == [1.0, 1.0]


def test_gradcheck_detects_a_wrong_rule():
    op = ge.defop("bad_square_for_test", lambda a: a * a, "BadBackward0",
                  vjp=(lambda g, ans, a: g * a,), formulas=("wrong",))
    try:
        x = ge.tensor([0.5, 1.5], dtype=ge.float64, requires_grad=True)
        assert not ge.gradcheck(lambda t: ge.apply(op.name, t), (x,), raise_exception=False)
        with pytest.raises(AssertionError):
            ge.gradcheck(lambda t: ge.apply(op.name, t), (x,))
    finally:
        del ge.REGISTRY[op.name]


def test_apply_accepts_torch_and_numpy_keyword_names():
    x = ge.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a = ge.apply("sum", x, dim=0, keepdim=True)
    b = ge.apply("sum", x, axis=0, keepdims=True)
    assert a.tolist() == b.tolist() == [[4.0, 6.0]]
    with pytest.raises(NotImplementedError):
        ge.apply("no_such_op", x)


def test_numpy_ufuncs_on_tensors_record_engine_ops():
    x = ge.tensor([0.5, 1.0], requires_grad=True)
    y = np.exp(x) * np.ones(2, np.float32)
    assert isinstance(y, ge.Tensor) and y.grad_fn.name == "MulBackward0"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp([0.5, 1.0]), rtol=1e-6)


def test_zero_dim_gradients_are_arrays():
    a = ge.tensor(2.0, requires_grad=True)
    (a + a * a).backward()
    assert type(a.grad.data) is np.ndarray and a.grad.item() == 5.0
    (g,) = ge.grad(a * a + a, a)
    assert type(g.data) is np.ndarray and g.item() == 5.0


def test_create_graph_leaf_grad_is_writable_and_private():
    x = ge.tensor(2.0, requires_grad=True)
    x.backward(create_graph=True)
    x.grad.zero_()
    y = ge.tensor(3.0, requires_grad=True)
    y.backward(create_graph=True)
    assert y.grad.item() == 1.0


def test_retained_and_leaf_grads_are_separate_arrays():
    x = ge.tensor([1.0, 2.0], requires_grad=True)
    h = x + 0
    h.retain_grad()
    h.sum().backward()
    h.grad.zero_()
    assert x.grad.tolist() == [1.0, 1.0]
    w = ge.tensor([[1.0, 2.0]], requires_grad=True)
    (ga, gw) = ge.grad((w.reshape(2) + x).sum(), [x, w])
    ga.zero_()
    assert gw.tolist() == [[1.0, 1.0]]


def test_intermediate_tensors_die_while_the_graph_lives():
    x = ge.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    ref = weakref.ref(h)
    y = (h * h).sum()
    assert [name for name, _ in y.grad_fn.parents[0].saved] == ["a", "b"]
    assert y.grad_fn.parents[0].saved_bytes == 16
    del h
    assert ref() is None  # the node keeps h's array, not the Python object
    y.backward()
    assert x.grad.tolist() == [8.0, 16.0]


def test_inplace_on_a_dropped_saved_tensor_is_still_detected():
    x = ge.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    with ge.no_grad():
        h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
