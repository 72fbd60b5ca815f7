"""Convolution and pooling in the engine: torch's options, ties, specials and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import gradmagic.engine as ge

INF, NAN = float("inf"), float("nan")


def both(fn, *arrays, dtype=np.float64):
    """(engine result, torch result) of ``fn(module, *tensors)``."""
    xs = [np.asarray(a, dtype) for a in arrays]
    return fn(ge, *[ge.tensor(x) for x in xs]), fn(TF, *[torch.tensor(x) for x in xs])


def same(e, t):
    if isinstance(t, tuple):
        for a, b in zip(e, t):
            same(a, b)
        return
    assert e.shape == tuple(t.shape) and str(e.dtype) == str(t.numpy().dtype)
    np.testing.assert_allclose(e.data, t.numpy(), rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("window", [
    [[1.0, 1.0], [1.0, 1.0]],          # ties: the first in the window
    [[NAN, 1.0], [NAN, 1.0]],          # NaN wins, the last NaN
    [[2.0, NAN], [NAN, 5.0]],
    [[-INF, -INF], [-INF, -INF]],      # all −inf: the first real element, never padding
])
@pytest.mark.parametrize("padding", [0, 1])
def test_max_pool_indices_follow_torch(window, padding):
    x = np.array(window)[None, None]
    for m_fn in (lambda m, a: m.max_pool2d(a, 2, 1, padding, return_indices=True),
                 lambda m, a: m.adaptive_max_pool2d(a, 1, return_indices=True)):
        same(*both(m_fn, x))


def test_max_pool_gradient_goes_to_the_first_maximum():
    x = ge.tensor(np.ones((1, 1, 2, 3)), requires_grad=True)
    ge.max_pool2d(x, 2, 1).sum().backward()
    assert x.grad.tolist() == [[[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]]


def test_integer_max_pool_and_float32_stay_their_dtype():
    same(*both(lambda m, a: m.max_pool2d(a, 2, padding=1, return_indices=True),
               np.arange(16).reshape(1, 4, 4), dtype=np.int64))
    same(*both(lambda m, a, w: m.conv2d(a, w, padding="same"), np.ones((1, 2, 4, 4)),
               np.ones((3, 2, 2, 3)), dtype=np.float32))


@pytest.mark.parametrize("kind", ["avg", "adaptive_avg"])
def test_average_pooling_keeps_specials_in_their_windows(kind):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 3, 3] = INF, NAN
    fn = (lambda m, a: m.avg_pool2d(a, 2)) if kind == "avg" else (lambda m, a: m.adaptive_avg_pool2d(a, 3))
    same(*both(fn, x))


def test_conv_gradients_are_ops_of_their_own():
    x = ge.tensor(np.random.default_rng(0).standard_normal((1, 2, 5, 5)), requires_grad=True)
    w = ge.tensor(np.random.default_rng(1).standard_normal((3, 2, 3, 3)), requires_grad=True)
    y = ge.conv2d(x, w, stride=2, padding=1)
    gx, gw = ge.grad((y * y).sum(), [x, w], create_graph=True)
    assert gx.grad_fn.name == gw.grad_fn.name == "ConvolutionBackwardBackward0"  # as torch's
    op = ge.REGISTRY["conv"]
    assert op.formulas == ("∂/∂x = conv_transpose(g, W)", "∂/∂W = correlate(x, g)", "∂/∂b = Σ g")


CONV_ERRORS = [
    lambda m, x: m.conv2d(x, m.ones(2, 2, 3, 3, dtype=x.dtype)),                 # channels
    lambda m, x: m.conv2d(x, m.ones(2, 1, 7, 7, dtype=x.dtype)),                 # kernel too big
    lambda m, x: m.conv2d(x, m.ones(3, 1, 3, 3, dtype=x.dtype), groups=2),       # groups
    lambda m, x: m.conv2d(x, m.ones(2, 1, 3, 3, dtype=x.dtype), stride=2, padding="same"),
    lambda m, x: m.conv2d(x, m.ones(2, 1, 3, 3, dtype=np.float32 if m is ge else torch.float32)),
    lambda m, x: m.conv2d(x[0, 0, 0], m.ones(2, 1, 3, 3, dtype=x.dtype)),      # 1d input to conv2d
    lambda m, x: m.conv_transpose2d(x, m.ones(1, 2, 3, 3, dtype=x.dtype), stride=2, output_padding=2),
    lambda m, x: m.max_pool2d(x, 2, padding=2),
    lambda m, x: m.max_pool2d(x, 7),
    lambda m, x: m.avg_pool2d(x, 2, divisor_override=0),
]


@pytest.mark.parametrize("i", range(len(CONV_ERRORS)))
def test_bad_arguments_raise_torchs_exception(i):
    fn = CONV_ERRORS[i]
    x = np.ones((1, 1, 5, 5))
    with pytest.raises(Exception) as want:
        fn(_T, torch.tensor(x))
    with pytest.raises(want.type) as got:
        fn(ge, ge.tensor(x))
    assert str(got.value).split(",")[0] == str(want.value).split(",")[0]


class _TorchAndF:
    def __getattr__(self, name):
        return getattr(TF, name, None) or getattr(torch, name)


_T = _TorchAndF()


def test_max_unpool_and_output_size():
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 5))

    def fn(m, a):
        F = m if m is ge else TF
        y, i = F.max_pool2d(a, 2, return_indices=True)
        return F.max_unpool2d(y, i, 2, output_size=[2, 3, 5, 5])
    same(*both(fn, x))
    same(*both(lambda m, a: _f(m).max_unpool2d(*_f(m).max_pool2d(a, 2, return_indices=True), 2), x[..., :4, :4]))
    with pytest.raises(RuntimeError, match="Found an invalid max index: 18"):
        ge.max_unpool2d(*ge.max_pool2d(ge.tensor(x), 2, return_indices=True), 2)


def _f(m):
    return m if m is ge else TF
