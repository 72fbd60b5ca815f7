"""One test per autograd rule of torch that the engine mirrors (torch is the oracle)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gradmagic.engine as ge


def both(values, requires_grad=True):
    return (torch.tensor(values, requires_grad=requires_grad),
            ge.tensor(values, requires_grad=requires_grad))


def test_leaf_grad_accumulates_across_backward_calls():
    xt, xg = both([1.0, 2.0, 3.0])
    for _ in range(2):
        (xt * xt).sum().backward()
        (xg * xg).sum().backward()
    np.testing.assert_allclose(xg.grad.data, xt.grad.numpy())


def test_non_leaf_grad_is_none_unless_retained():
    xg = ge.tensor([1.0, 2.0], requires_grad=True)
    y, z = xg * 2, xg * 3
    z.retain_grad()
    (y * z).sum().backward()
    assert y.grad is None and not y.is_leaf
    np.testing.assert_allclose(z.grad.data, (xg * 2).data)
    assert z.retains_grad and not y.retains_grad


@pytest.mark.parametrize("op", ["exp", "sigmoid", "tanh", "sqrt"])  # VJPs that read the output
def test_retained_output_receives_gradient_through_its_own_saved_value(op):
    """With ``create_graph``, a VJP that reads the op's output uses that very output (as
    torch unpacks a saved result), so a later backward also reaches ``t.retain_grad()``
    through it."""
    grads = []
    for T in (torch, ge):
        x = T.tensor([0.3, 0.7], requires_grad=True)
        t = getattr(x.tanh(), op)()
        t.retain_grad()
        (g,) = T.autograd.grad((t * t).sum(), [x], create_graph=True) if T is torch else \
            ge.grad((t * t).sum(), [x], create_graph=True)
        (g * g).sum().backward()
        grads.append((t.grad.detach().numpy() if T is torch else t.grad.data,
                      x.grad.detach().numpy() if T is torch else x.grad.data))
    (tt, xt), (tg, xg) = grads
    np.testing.assert_allclose(tg, tt, rtol=1e-5)
    np.testing.assert_allclose(xg, xt, rtol=1e-5)


def test_second_backward_through_freed_graph_raises():
    xg = ge.tensor([1.0, 2.0], requires_grad=True)
    y = (xg * xg).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    xt, xg = both([1.0, 2.0])
    yt, yg = (xt * xt).sum(), (xg * xg).sum()
    for _ in range(2):
        yt.backward(retain_graph=True)
        yg.backward(retain_graph=True)
    np.testing.assert_allclose(xg.grad.data, xt.grad.numpy())


def test_graph_without_saved_tensors_can_backward_twice_like_torch():
    xt, xg = both([1.0, 2.0])
    yt, yg = (xt + 1).sum(), (xg + 1).sum()
    yt.backward(); yt.backward()
    yg.backward(); yg.backward()
    np.testing.assert_allclose(xg.grad.data, xt.grad.numpy())


def test_non_scalar_backward_needs_gradient():
    xg = ge.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (xg * 2).backward()
    (xg * 2).backward(ge.tensor([1.0, 0.5]))
    np.testing.assert_allclose(xg.grad.data, [2.0, 1.0])


def test_gradient_shape_mismatch_raises():
    xg = ge.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (xg * 2).backward(ge.tensor([1.0, 0.5, 2.0]))


def test_inplace_on_saved_tensor_detected_at_backward():
    xt, xg = both([1.0, 2.0])
    for x in (xt, xg):
        a = x * 1
        y = (a * a).sum()
        a.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.backward()


def test_inplace_on_saved_output_detected_at_backward():
    for lib in (torch, ge):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x.exp()
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_inplace_on_unsaved_input_is_fine():
    xt, xg = both([1.0, 2.0])
    results = []
    for x in (xt, xg):
        a = x * 1
        y = (a + 1).sum()  # AddBackward saves nothing
        a.mul_(3)
        y.backward()
        results.append(np.array(x.grad.tolist()))
    np.testing.assert_allclose(results[0], results[1])


def test_inplace_on_leaf_requiring_grad_raises_outside_no_grad():
    xg = ge.tensor([1.0, 2.0], requires_grad=True)
    message = "a leaf Variable that requires grad is being used in an in-place operation."
    with pytest.raises(RuntimeError, match=message):
        xg.add_(1)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        xg[0] = 5.0
    with ge.no_grad():
        xg -= 0.5 * ge.tensor([1.0, 1.0])
        xg[1] = 7.0
    np.testing.assert_allclose(xg.data, [0.5, 7.0])
    assert xg.is_leaf and xg.requires_grad and xg._version == 2


def test_sgd_step_matches_torch():
    wt, wg = both([0.5, -1.0])
    for _ in range(3):
        for w, lib in ((wt, torch), (wg, ge)):
            loss = ((w * lib.tensor([1.0, 2.0])).sum() - 1) ** 2
            loss.backward()
            with lib.no_grad():
                w -= 0.1 * w.grad
            w.grad.zero_()
    np.testing.assert_allclose(wg.data, wt.detach().numpy(), rtol=1e-6)


def test_requires_grad_propagation():
    x = ge.tensor([1.0], requires_grad=True)
    c = ge.tensor([2.0])
    assert (x * c).requires_grad and not (c * c).requires_grad
    assert (x * c).grad_fn is not None and (c * c).grad_fn is None
    assert not (x > 0).requires_grad and not x.argmax().requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        ge.tensor([1, 2]).requires_grad_()


def test_detach_cuts_the_graph():
    x = ge.tensor([1.0, 2.0], requires_grad=True)
    y = x * x.detach()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.data is x.data


def test_no_grad_stops_recording_and_enable_grad_restores():
    x = ge.tensor([1.0], requires_grad=True)
    with ge.no_grad():
        assert not ge.is_grad_enabled()
        y = x * 2
        with ge.enable_grad():
            z = x * 2
    assert ge.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad

    @ge.no_grad()
    def f(a):
        return a * 2
    assert not f(x).requires_grad


def test_backward_inputs_restricts_accumulation():
    for lib in (torch, ge):
        a = lib.tensor([1.0], requires_grad=True)
        b = lib.tensor([2.0], requires_grad=True)
        (a * b).sum().backward(inputs=[a])
        assert b.grad is None and float(a.grad[0]) == 2.0


def test_grad_allow_unused_and_errors():
    a = ge.tensor([1.0], requires_grad=True)
    b = ge.tensor([2.0], requires_grad=True)
    y = (a * 3).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        ge.grad(y, [a, b], retain_graph=True)
    ga, gb = ge.grad(y, [a, b], allow_unused=True)
    assert gb is None and ga.data.tolist() == [3.0] and a.grad is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        ge.grad((a * 2).sum(), [ge.tensor([1.0])])
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        ge.tensor([1.0]).sum().backward()


def test_grad_wrt_non_leaf():
    xt, xg = both([1.0, 2.0])
    ht, hg = xt * 3, xg * 3
    (gt,) = torch.autograd.grad((ht * ht).sum(), ht)
    (gg,) = ge.grad((hg * hg).sum(), hg)
    np.testing.assert_allclose(gg.data, gt.numpy())


def test_hessian_vector_product_via_create_graph():
    xt, xg = both([0.3, -1.2, 2.0])
    vt, vg = torch.tensor([1.0, 0.5, -1.0]), ge.tensor([1.0, 0.5, -1.0])
    out = []
    for x, v, lib in ((xt, vt, torch), (xg, vg, ge)):
        y = (x.tanh() * x.exp()).sum() + (x ** 3).sum()
        (g,) = (torch.autograd.grad if lib is torch else ge.grad)(y, x, create_graph=True)
        (g * v).sum().backward()
        out.append(np.array(x.grad.tolist()))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-5)


def test_backward_create_graph_grad_is_differentiable():
    x = ge.tensor(3.0, requires_grad=True)
    (x ** 3).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.item() == 27.0
    (gg,) = ge.grad(g, x)
    assert gg.item() == 18.0


def test_relu_kink_and_max_ties_follow_torch():
    for values, fn in (([-1.0, 0.0, 2.0], lambda x: x.relu().sum()),
                       ([1.0, 3.0, 3.0], lambda x: x.max()),
                       ([1.0, 3.0, 3.0], lambda x: x.amax(0)),
                       ([[1.0, 3.0, 3.0]], lambda x: x.max(dim=1).values.sum()),
                       ([1.0, 1.0], lambda x: torch.maximum(x, x.detach()).sum()
                        if isinstance(x, torch.Tensor) else ge.maximum(x, x.detach()).sum()),
                       ([0.0, 1.0], lambda x: x.abs().sum()),
                       ([0.0, 1.0], lambda x: x.norm())):
        xt, xg = both(values)
        fn(xt).backward()
        fn(xg).backward()
        np.testing.assert_allclose(xg.grad.data, xt.grad.numpy(), err_msg=str(values))


def test_max_with_dim_returns_values_and_indices():
    xt, xg = both([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    rt, rg = xt.max(dim=1), xg.max(dim=1)
    assert rg.indices.tolist() == rt.indices.tolist()
    values, indices = xg.min(1, keepdim=True)
    assert values.shape == (2, 1) and indices.dtype == np.int64


def test_setitem_records_copyslices():
    xt, xg = both([1.0, 2.0, 3.0])
    vt, vg = both([10.0])
    for x, v in ((xt, vt), (xg, vg)):
        a = x * 1
        a[1] = v[0] * 2
        (a * a).sum().backward()
    assert xg.grad.tolist() == xt.grad.tolist() and vg.grad.tolist() == vt.grad.tolist()
    a = xg * 1
    a[0] = 5.0
    assert a.grad_fn.name == "CopySlices"


def test_dtype_of_results_and_grads_follow_torch():
    cases = [lambda m: m.arange(4) * 2.5, lambda m: m.arange(4) / m.arange(1, 5),
             lambda m: m.ones(3) * m.tensor(2.0, dtype=m.float64),
             lambda m: m.ones(3, dtype=m.float64) + m.ones(3), lambda m: m.arange(3).sum(),
             lambda m: m.tensor([True, False]) + 1, lambda m: m.arange(3).float().mean(),
             lambda m: m.tensor([1, 2]) * m.tensor(1.5, dtype=m.float64),
             lambda m: m.arange(3, dtype=m.int32) + 1, lambda m: m.arange(4).exp()]
    for case in cases:
        assert str(case(ge).dtype) == str(case(torch).dtype).replace("torch.", "")
    x32 = ge.ones(3, requires_grad=True)
    (x32 * ge.tensor(2.0, dtype=ge.float64)).sum().backward()
    assert x32.grad.dtype == np.float32


def test_factories_default_dtypes():
    for name, args in (("zeros", (2,)), ("ones", (2,)), ("rand", (2,)), ("randn", (2,)),
                       ("empty", (2,)), ("eye", (2,)), ("linspace", (0, 1, 3)), ("arange", (3,)),
                       ("arange", (3.0,)), ("full", ((2,), 1)), ("full", ((2,), 1.0))):
        assert str(getattr(ge, name)(*args).dtype) == str(getattr(torch, name)(*args).dtype)[6:]
    assert ge.tensor([1, 2.5]).dtype == np.float32 and ge.tensor([1, 2]).dtype == np.int64
    assert ge.normal(0.0, 1.0, (3,)).dtype == np.float32
    assert ge.zeros_like(ge.tensor([1, 2])).dtype == np.int64


def test_repr_like_torch():
    x = ge.arange(4.0, requires_grad=True)
    assert repr(x) == "tensor([0., 1., 2., 3.], requires_grad=True)"
    assert repr(2 * ge.dot(x, x)) == "tensor(28., grad_fn=<MulBackward0>)"
    assert repr(ge.tensor([0.5, 2.0])) == repr(torch.tensor([0.5, 2.0]))
    assert repr(ge.arange(3)) == "tensor([0, 1, 2])"
    assert repr(ge.tensor([1.0], dtype=ge.float64)) == "tensor([1.], dtype=torch.float64)"
    assert repr(ge.tensor([True, False])) == "tensor([ True, False])"


def test_item_numpy_and_metadata():
    x = ge.tensor([[1.0, 2.0]], requires_grad=True)
    assert x.shape == (1, 2) and x.ndim == 2 and x.numel() == 2 and x.dtype == np.float32
    assert x.sum().item() == 3.0 and x.detach().numpy().tolist() == [[1.0, 2.0]]
    with pytest.raises(RuntimeError, match="requires grad"):
        x.numpy()


def test_split_chunk_cat_stack_round_trip():
    x = ge.arange(10.0, requires_grad=True)
    parts = x.split(4)
    assert isinstance(parts, tuple) and [p.shape for p in parts] == [(4,), (4,), (2,)]
    assert len(x.chunk(3)) == len(torch.arange(10.0).chunk(3))
    ge.cat(parts).sum().backward()
    assert x.grad.tolist() == [1.0] * 10


def test_result_type_matches_torch_on_a_grid():
    samples = {
        "f32": (np.ones(2, np.float32), torch.ones(2)),
        "f64": (np.ones(2, np.float64), torch.ones(2, dtype=torch.float64)),
        "f16": (np.ones(2, np.float16), torch.ones(2, dtype=torch.float16)),
        "i64": (np.ones(2, np.int64), torch.ones(2, dtype=torch.int64)),
        "i32": (np.ones(2, np.int32), torch.ones(2, dtype=torch.int32)),
        "u8": (np.ones(2, np.uint8), torch.ones(2, dtype=torch.uint8)),
        "i8": (np.ones(2, np.int8), torch.ones(2, dtype=torch.int8)),
        "b": (np.ones(2, bool), torch.ones(2, dtype=torch.bool)),
        "0f64": (np.array(1.0), torch.tensor(1.0, dtype=torch.float64)),
        "0f32": (np.array(1.0, np.float32), torch.tensor(1.0)),
        "0i32": (np.array(1, np.int32), torch.tensor(1, dtype=torch.int32)),
        "0b": (np.array(True), torch.tensor(True)),
        "float": (2.5, 2.5), "int": (3, 3), "bool": (True, True),
    }
    for a_name, (a_np, a_t) in samples.items():
        for b_name, (b_np, b_t) in samples.items():
            if not isinstance(a_t, torch.Tensor) and not isinstance(b_t, torch.Tensor):
                continue
            want = str(torch.result_type(a_t, b_t)).replace("torch.", "")
            assert str(ge.result_type(a_np, b_np)) == want, (a_name, b_name)


def test_version_counter_counts_inplace_ops():
    x = ge.zeros(3)
    v0 = x._version
    x.add_(1); x.mul_(2); x[0] = 3.0; x.zero_()
    assert x._version == v0 + 4


def test_errors_have_torch_types():
    with pytest.raises(RuntimeError):
        ge.dot(ge.ones(2, 2), ge.ones(2, 2))
    with pytest.raises(RuntimeError, match="mean"):
        ge.arange(3).mean()
    with pytest.raises(RuntimeError, match="can't be cast"):
        ge.arange(3).add_(1.5)


def test_mlp_training_steps_match_torch():
    """A D2L-style softmax-regression/MLP loop: engine and torch stay together."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 5)).astype(np.float32), rng.integers(0, 3, 16)
    W1, b1 = rng.standard_normal((8, 5)).astype(np.float32) * 0.3, np.zeros(8, np.float32)
    W2, b2 = rng.standard_normal((3, 8)).astype(np.float32) * 0.3, np.zeros(3, np.float32)
    result = []
    for lib in (torch, ge):
        ps = [lib.tensor(p.copy(), requires_grad=True) for p in (W1, b1, W2, b2)]
        xs, ys = lib.tensor(X), lib.tensor(y)
        F = torch.nn.functional if lib is torch else ge
        for _ in range(3):
            h = F.relu(F.linear(xs, ps[0], ps[1]))
            y_hat = F.softmax(F.linear(h, ps[2], ps[3]), dim=1)
            loss = -(y_hat[range(16), ys]).log().mean() + F.cross_entropy(h @ ps[2].T, ys)
            loss.backward()
            with lib.no_grad():
                for p in ps:
                    p -= 0.5 * p.grad
                    p.grad.zero_()
        result.append([p.detach().numpy().copy() for p in ps] + [loss.item()])
    for a, b in zip(result[1], result[0]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
