"""Test-table rows of the engine's conv family (merged into engine_table.TABLE).

Each forward row runs several geometries at once (stride, padding incl. 'same', dilation,
groups, ceil_mode, count_include_pad, divisor_override, 1d/2d/3d), flattened and
concatenated; the gradient ops (torch's convolution_backward, max_pool2d_with_indices_backward,
...) are compared with ``torch.ops.aten`` directly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as TF

import gradmagic.engine as ge
from engine_table import Row, bi, un  # noqa: F401

A = torch.ops.aten


def _f(m):
    """The engine, or torch.nn.functional (torch's ``return_indices`` spellings)."""
    return m if m is ge else TF


def _flat(m, *ys):
    return m.cat([y.reshape(-1) for y in ys])


def _conv(m, x, w, b):
    F = _f(m)
    if x.ndim == 3:
        return _flat(m, F.conv1d(x, w, b, stride=2, padding=1), F.conv1d(x, w, padding="same"),
                     F.conv1d(x[0], w, b, dilation=2))
    if x.ndim == 4:
        return _flat(m, F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
                     F.conv2d(x, w, padding="same", groups=2), F.conv2d(x, w, b, groups=2))
    return F.conv3d(x, w, b, stride=(1, 2, 1), padding=1)


def _conv_t(m, x, w, b):
    F = _f(m)
    if x.ndim == 3:
        return _flat(m, F.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2),
                     F.conv_transpose1d(x[0], w, dilation=2))
    if x.ndim == 4:
        return _flat(m, F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
                     F.conv_transpose2d(x, w, b, stride=(1, 2), padding=(0, 1), groups=2, dilation=(2, 1)))
    return F.conv_transpose3d(x, w, b, stride=2, padding=(1, 0, 1), output_padding=(1, 0, 0))


# conv_grad_input / conv_grad_weight: x (2, 3, 5, 5), w (4, 3, 3, 3), stride 2, padding 1 → g (2, 4, 3, 3)
_GEO = dict(stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
_TORCH_GEO = ([2, 2], [1, 1], [1, 1])


def _grad_input(m, g, w):
    if m is ge:
        return ge.apply("conv_grad_input", g, w, **_GEO)
    x = torch.zeros((2, 3, 5, 5), dtype=g.dtype)
    return A.convolution_backward(g, x, w, None, *_TORCH_GEO, False, [0, 0], 1, [True, False, False])[0]


def _grad_weight(m, x, g):
    if m is ge:
        return ge.apply("conv_grad_weight", x, g, kernel=(3, 3), **_GEO)
    w = torch.zeros((4, 3, 3, 3), dtype=x.dtype)
    return A.convolution_backward(g, x, w, None, *_TORCH_GEO, False, [0, 0], 1, [False, True, False])[1]


def _transpose_grad_input(m, g, w):
    """conv_transpose2d(x (2, 4, 3, 3), w (4, 3, 3, 3), stride 2, padding 1, output_padding 1)."""
    if m is ge:
        return ge.apply("conv_transpose_grad_input", g, w, stride=(2, 2), padding=((1, 0), (1, 0)),
                        dilation=(1, 1), groups=1)
    # = conv2d(g, w) (torch's own convolution_backward(transposed=True) has no double backward
    # with output_padding: "output_padding is not supported for non-transposed convolutions")
    return TF.conv2d(g, w, stride=2, padding=1)


def _max_pool(m, x):
    F = _f(m)
    return _flat(m, F.max_pool2d(x, 2), F.max_pool2d(x, 3, 2, 1, 1, True),
                 F.max_pool2d(x, (2, 3), stride=(1, 2), padding=1, dilation=(2, 1),
                              return_indices=True)[0],
                 F.max_pool1d(x.flatten(-2), 3, 2, 1, ceil_mode=True))


def _avg_pool(m, x):
    F = _f(m)
    return _flat(m, F.avg_pool2d(x, 2), F.avg_pool2d(x, 3, 2, 1, True, False),
                 F.avg_pool2d(x, (2, 3), 1, (1, 0), False, True, 5),
                 F.avg_pool1d(x.flatten(-2), 3, 2, 1, True, False))


def _adaptive_avg(m, x):
    F = _f(m)
    return _flat(m, F.adaptive_avg_pool2d(x, (3, 2)), F.adaptive_avg_pool2d(x, (None, 7)),
                 F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool1d(x.flatten(-2), 4))


def _adaptive_max(m, x):
    F = _f(m)
    return _flat(m, F.adaptive_max_pool2d(x, (3, 2)), F.adaptive_max_pool2d(x, (2, 7), True)[0],
                 F.adaptive_max_pool1d(x.flatten(-2), 4))


def _unpool(m, x):
    F = _f(m)
    y, i = F.max_pool2d(x, 2, return_indices=True)
    return F.max_unpool2d(y * y, i, 2, output_size=x.shape[-2:])


# the pooling gradients as ops: g (…, 3, 3) over x (…, 5, 4), kernel 3, stride 2, padding 1, ceil_mode
_POOL = dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))


def _max_pool_backward(m, g, x):
    if m is ge:
        i = ge.max_pool2d(x.detach(), 3, 2, 1, 1, True, True)[1].data
        return ge.apply("max_pool2d_backward", g, x, indices=i, dilation=(1, 1), ceil_mode=True, **_POOL)
    i = TF.max_pool2d(x.detach(), 3, 2, 1, 1, True, True)[1]
    return A.max_pool2d_with_indices_backward(g, x, [3, 3], [2, 2], [1, 1], [1, 1], True, i)


def _avg_pool_backward(m, g, x):
    if m is ge:
        return ge.apply("avg_pool2d_backward", g, x, ceil_mode=True, count_include_pad=False,
                        divisor_override=None, **_POOL)
    return A.avg_pool2d_backward(g, x, [3, 3], [2, 2], [1, 1], True, False, None)


def _adaptive_avg_backward(m, g, x):
    if m is ge:
        return ge.apply("adaptive_avg_pool2d_backward", g, x, output_size=(3, 3))
    return A._adaptive_avg_pool2d_backward(g, x)


def _adaptive_max_backward(m, g, x):
    if m is ge:
        i = ge.adaptive_max_pool2d(x.detach(), 3, True)[1].data
        return ge.apply("adaptive_max_pool2d_backward", g, x, indices=i, output_size=(3, 3))
    i = TF.adaptive_max_pool2d(x.detach(), 3, True)[1]
    return A.adaptive_max_pool2d_backward(g, x, i)


_POOLED = [((2, 3, 3, 3), (2, 3, 5, 4)), ((3, 3, 3), (3, 5, 4))]

TABLE: dict[str, Row] = {
    "conv": Row(_conv, 3, shapes=[((2, 4, 5, 5), (6, 2, 3, 2), (6,)), ((2, 2, 7), (3, 2, 3), (3,)),
                                  ((1, 2, 3, 4, 3), (2, 2, 2, 2, 2), (2,))]),
    "conv_transpose": Row(_conv_t, 3, shapes=[((2, 4, 3, 3), (4, 3, 3, 2), (6,)),
                                              ((2, 3, 4), (3, 2, 3), (2,)),
                                              ((1, 2, 2, 3, 2), (2, 2, 3, 2, 2), (2,))]),
    "conv_grad_input": bi(_grad_input, shapes=[((2, 4, 3, 3), (4, 3, 3, 3))]),
    "conv_grad_weight": bi(_grad_weight, shapes=[((2, 3, 5, 5), (2, 4, 3, 3))]),
    "conv_transpose_grad_input": bi(_transpose_grad_input, shapes=[((2, 3, 6, 6), (4, 3, 3, 3))]),
    "max_pool2d": un(_max_pool, shapes=[((2, 3, 5, 4),), ((3, 6, 5),)]),
    "max_pool2d_backward": bi(_max_pool_backward, shapes=_POOLED),
    "avg_pool2d": un(_avg_pool, shapes=[((2, 3, 5, 4),), ((3, 6, 5),)]),
    "avg_pool2d_backward": bi(_avg_pool_backward, shapes=_POOLED),
    "adaptive_avg_pool2d": un(_adaptive_avg, shapes=[((2, 3, 5, 4),), ((3, 6, 5),)]),
    "adaptive_avg_pool2d_backward": bi(_adaptive_avg_backward, shapes=_POOLED),
    "adaptive_max_pool2d": un(_adaptive_max, shapes=[((2, 3, 5, 4),), ((3, 6, 5),)]),
    "adaptive_max_pool2d_backward": bi(_adaptive_max_backward, shapes=_POOLED),
    "max_unpool2d": un(_unpool, shapes=[((2, 3, 4, 5),), ((3, 5, 5),)]),
}
