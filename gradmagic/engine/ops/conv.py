"""Convolution and pooling: conv1d/2d/3d, conv_transpose1d/2d/3d, max/avg/adaptive pooling
(1d and 2d) and max_unpool2d, with torch's options and node names.

A convolution is one N-d correlation: a strided window view of the padded input, copied
into columns (im2col) and multiplied by the kernel. Its gradients are convolutions too, and
each is an op of its own (torch's ``convolution_backward``), so second order works and the
widget reads ``∂/∂x = conv_transpose(g, W)``. Every convolution op keeps its geometry as
``stride``, ``padding`` (one ``(lo, hi)`` pair per spatial dim: 'same' may pad unevenly),
``dilation`` and ``groups``; the transposed direction maps a ``P``-long signal to the
``(P−1)·s + d·(k−1) + 1 − lo − hi`` long one, so a conv_transpose with ``output_padding``
is the pair ``(p, p − output_padding)``.

Pooling gathers each window through per-dimension coordinate tables (a fixed kernel or
adaptive windows, padding marked invalid): max pooling keeps torch's argmax (first in the
window; the last NaN wins) and is a gather by those indices, its VJP a scatter; average
pooling sums valid elements and divides by torch's divisor. 1d pooling is torch's
composite: unsqueeze → the 2d op → squeeze.

>>> import numpy as np
>>> from gradmagic.engine import tensor
>>> x = tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
>>> y = max_pool2d(x, 2)
>>> y.tolist(), y.grad_fn.name
([[[[5.0, 7.0], [13.0, 15.0]]]], 'MaxPool2DWithIndicesBackward0')
>>> conv2d(x, tensor(np.ones((1, 1, 2, 2))), stride=2).tolist()
[[[[10.0, 18.0], [42.0, 50.0]]]]
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..registry import defop
from ..tensor import Tensor, apply
from . import call, data

PUBLIC: tuple[str, ...] = (
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "max_pool1d", "max_pool2d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices", "max_unpool2d")
METHODS: tuple[str, ...] = ()  # torch.Tensor has no convolution or pooling methods


# ---------------------------------------------------------------- geometry
def _pad(x: np.ndarray, pads: Any, value: Any = 0) -> np.ndarray:
    """``x`` padded by ``(lo, hi)`` on each trailing spatial axis (negative: cropped)."""
    nd, lead = len(pads), x.ndim - len(pads)
    crop = tuple(slice(max(-lo, 0), x.shape[lead + i] - max(-hi, 0)) for i, (lo, hi) in enumerate(pads))
    x = x[(slice(None),) * lead + crop]
    if all(lo <= 0 and hi <= 0 for lo, hi in pads):
        return x
    shape = x.shape[:lead] + tuple(x.shape[lead + i] + max(lo, 0) + max(hi, 0)
                                   for i, (lo, hi) in enumerate(pads))
    out = np.full(shape, value, x.dtype)
    out[(slice(None),) * lead + tuple(slice(max(lo, 0), max(lo, 0) + x.shape[lead + i])
                                      for i, (lo, _) in enumerate(pads))] = x
    return out


def _conv_out(size: int, k: int, s: int, pad: tuple, d: int) -> int:
    return (size + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def _tight(sizes: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> tuple:
    """The pads with the right rows no window reaches dropped, so the transposed direction
    gives back exactly ``sizes``."""
    return tuple((lo, hi - (n + lo + hi - d * (k - 1) - 1) % s)
                 for n, k, s, (lo, hi), d in zip(sizes, kernel, stride, padding, dilation))


# ---------------------------------------------------------------- the three convolutions
def _columns(x, kernel, stride, padding, dilation, groups, out) -> np.ndarray:
    """im2col: (N, G, C/G·∏k, ∏out) windows of the padded ``x`` (N, C, *spatial)."""
    xp = _pad(x, padding)
    nd, (n, c) = len(kernel), x.shape[:2]
    st = xp.strides
    view = as_strided(xp, (n, c) + tuple(kernel) + tuple(out),
                      st[:2] + tuple(st[2 + i] * dilation[i] for i in range(nd))
                      + tuple(st[2 + i] * stride[i] for i in range(nd)), writeable=False)
    return view.reshape(n, groups, c // groups * math.prod(kernel), math.prod(out))


def _corr(x, w, stride, padding, dilation, groups) -> np.ndarray:
    """The correlation ``y[n, o] = Σ_c,k x[n, c, p·s + k·d − lo] · w[o, c, k]`` per group."""
    kernel, (n, o) = w.shape[2:], (x.shape[0], w.shape[0])
    out = tuple(_conv_out(x.shape[2 + i], k, stride[i], padding[i], dilation[i])
                for i, k in enumerate(kernel))
    cols = _columns(x, kernel, stride, padding, dilation, groups, out)
    y = np.matmul(w.reshape(groups, o // groups, cols.shape[2]), cols)  # (N, G, O/G, ∏out)
    return y.reshape((n, o) + out)


def _corr_t(g, w, stride, padding, dilation, groups) -> np.ndarray:
    """The transposed correlation (adjoint of ``_corr`` in its input): col2im of W^T·g."""
    kernel, (n, o), cg = w.shape[2:], g.shape[:2], w.shape[1]
    pos = g.shape[2:]
    if len(pos) == 2 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1):
        return _corr_t_rows(g, w, padding, groups)
    cols = np.matmul(w.reshape(groups, o // groups, cg * math.prod(kernel)).swapaxes(1, 2),
                     g.reshape(n, groups, o // groups, math.prod(pos)))  # (N, G, C/G·∏k, ∏P)
    cols = cols.reshape((n, groups * cg) + kernel + pos)
    full = tuple((p - 1) * s + d * (k - 1) + 1 for p, s, d, k in zip(pos, stride, dilation, kernel))
    buf = np.zeros((n, groups * cg) + full, np.result_type(g, w))
    lead = (slice(None), slice(None))
    for ks in itertools.product(*map(range, kernel)):  # one strided add per kernel offset
        at = tuple(slice(k * d, k * d + (p - 1) * s + 1, s)
                   for k, d, p, s in zip(ks, dilation, pos, stride))
        buf[lead + at] += cols[lead + ks]
    return _pad(buf, tuple((-lo, -hi) for lo, hi in padding))


def _corr_t_rows(g, w, padding, groups) -> np.ndarray:
    """``_corr_t`` for 2-d, stride 1, dilation 1, same sums in the same order: g is widened
    with zero columns to the output's width F1, so that each kernel offset (a, b) adds one
    contiguous run of P0·F1 values at a·F1 + b of the flattened planes (the zero columns
    add nothing) instead of P0 rows of P1 values."""
    (n, o), cg, (k0, k1) = g.shape[:2], w.shape[1], w.shape[2:]
    p0, p1 = g.shape[2:]
    f0, f1 = p0 + k0 - 1, p1 + k1 - 1
    wide = np.zeros((n, o, p0, f1), g.dtype)
    wide[..., :p1] = g
    cols = np.matmul(w.reshape(groups, o // groups, cg * k0 * k1).swapaxes(1, 2),
                     wide.reshape(n, groups, o // groups, p0 * f1))
    cols = cols.reshape(n, groups * cg, k0, k1, p0 * f1)
    run = p0 * f1
    buf = np.zeros((n, groups * cg, f0 * f1 + k1), np.result_type(g, w))
    for a, b in itertools.product(range(k0), range(k1)):
        at = a * f1 + b
        buf[..., at:at + run] += cols[:, :, a, b]
    buf = buf[..., :f0 * f1].reshape(n, groups * cg, f0, f1)
    return _pad(buf, tuple((-lo, -hi) for lo, hi in padding))


def _corr_w(x, g, kernel, stride, padding, dilation, groups) -> np.ndarray:
    """The kernel's gradient: ``Σ_n,p g[n, o, p] · x[n, c, p·s + k·d − lo]`` per group."""
    (n, c), o = x.shape[:2], g.shape[1]
    cols = _columns(x, kernel, stride, padding, dilation, groups, g.shape[2:])
    gm = g.reshape(n, groups, o // groups, cols.shape[3])
    return np.matmul(gm, cols.swapaxes(2, 3)).sum(axis=0).reshape((o, c // groups) + tuple(kernel))


def _with_bias(y, b):
    if b is not None:
        y += b.reshape((-1,) + (1,) * (y.ndim - 2))
    return y


def _bias_vjp(g, ans, x, w, b=None, **geometry):
    return g.sum(axis=(0,) + tuple(range(2, g.ndim)))


# conv(x, w, b): the forward of conv1d/2d/3d
def _conv(x, w, b=None, *, stride, padding, dilation, groups):
    return _with_bias(_corr(x, w, stride, padding, dilation, groups), b)


def _conv_x(g, ans, x, w, b=None, *, stride, padding, dilation, groups):
    pads = _tight(x.shape[2:], w.shape[2:], stride, padding, dilation)
    return call("conv_grad_input", g, w, stride=stride, padding=pads, dilation=dilation, groups=groups)


def _conv_w(g, ans, x, w, b=None, *, stride, padding, dilation, groups):
    pads = _tight(x.shape[2:], w.shape[2:], stride, padding, dilation)
    return call("conv_grad_weight", x, g, kernel=tuple(w.shape[2:]), stride=stride, padding=pads,
                dilation=dilation, groups=groups)


# conv_transpose(x, w, b): the forward of conv_transpose1d/2d/3d (w: C_in, C_out/G, *k)
def _conv_t(x, w, b=None, *, stride, padding, dilation, groups):
    return _with_bias(_corr_t(x, w, stride, padding, dilation, groups), b)


def _conv_t_x(g, ans, x, w, b=None, *, stride, padding, dilation, groups):
    return call("conv_transpose_grad_input", g, w, stride=stride, padding=padding,
                dilation=dilation, groups=groups)


def _conv_t_w(g, ans, x, w, b=None, *, stride, padding, dilation, groups):
    return call("conv_grad_weight", g, x, kernel=tuple(w.shape[2:]), stride=stride, padding=padding,
                dilation=dilation, groups=groups)


defop("conv", _conv, "ConvolutionBackward0", vjp=(_conv_x, _conv_w, _bias_vjp),
      formulas=("∂/∂x = conv_transpose(g, W)", "∂/∂W = correlate(x, g)", "∂/∂b = Σ g"),
      saves=("w", "x", ""))
defop("conv_transpose", _conv_t, "ConvolutionBackward0", vjp=(_conv_t_x, _conv_t_w, _bias_vjp),
      formulas=("∂/∂x = conv(g, W)", "∂/∂W = correlate(g, x)", "∂/∂b = Σ g"), saves=("w", "x", ""))


# the gradients as ops of their own (torch's convolution_backward), each linear in both inputs
def _gi(g, w, *, stride, padding, dilation, groups):
    return _corr_t(g, w, stride, padding, dilation, groups)


def _gi_g(h, ans, g, w, *, stride, padding, dilation, groups):
    return call("conv_transpose_grad_input", h, w, stride=stride, padding=padding,
                dilation=dilation, groups=groups)


def _gi_w(h, ans, g, w, *, stride, padding, dilation, groups):
    return call("conv_grad_weight", h, g, kernel=tuple(w.shape[2:]), stride=stride, padding=padding,
                dilation=dilation, groups=groups)


def _gti(g, w, *, stride, padding, dilation, groups):
    return _corr(g, w, stride, padding, dilation, groups)


def _gti_g(h, ans, g, w, *, stride, padding, dilation, groups):
    return call("conv_grad_input", h, w, stride=stride, padding=padding, dilation=dilation,
                groups=groups)


def _gti_w(h, ans, g, w, *, stride, padding, dilation, groups):
    return call("conv_grad_weight", g, h, kernel=tuple(w.shape[2:]), stride=stride, padding=padding,
                dilation=dilation, groups=groups)


def _gw(x, g, *, kernel, stride, padding, dilation, groups):
    return _corr_w(x, g, kernel, stride, padding, dilation, groups)


def _gw_x(h, ans, x, g, *, kernel, stride, padding, dilation, groups):
    return call("conv_grad_input", g, h, stride=stride, padding=padding, dilation=dilation,
                groups=groups)


def _gw_g(h, ans, x, g, *, kernel, stride, padding, dilation, groups):
    return call("conv_transpose_grad_input", x, h, stride=stride, padding=padding,
                dilation=dilation, groups=groups)


defop("conv_grad_input", _gi, "ConvolutionBackwardBackward0", vjp=(_gi_g, _gi_w),
      formulas=("∂/∂g = conv(h, W)", "∂/∂W = correlate(h, g)"), saves=("w", "g"))
defop("conv_transpose_grad_input", _gti, "ConvolutionBackwardBackward0", vjp=(_gti_g, _gti_w),
      formulas=("∂/∂g = conv_transpose(h, W)", "∂/∂W = correlate(g, h)"), saves=("w", "g"))
defop("conv_grad_weight", _gw, "ConvolutionBackwardBackward0", vjp=(_gw_x, _gw_g),
      formulas=("∂/∂x = conv_transpose(g, h)", "∂/∂g = conv(x, h)"), saves=("g", "x"))


# ---------------------------------------------------------------- public convolutions
def _ntuple(v: Any, n: int, what: str, conv: str) -> tuple:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError(f"{conv}: expected {what} to be a single integer value or a list of "
                           f"{n} values to match the convolution dimensions, but got {what}={list(v)}")
    return v


def _batched(input: Any, nd: int, name: str) -> bool:
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, "
                           f"but got input of size: {list(input.shape)}")
    return input.ndim == nd + 2


def _check_types(input: Any, weight: Any, bias: Any) -> None:
    if input.dtype != weight.dtype:
        raise RuntimeError(f"expected scalar type {_tname(input.dtype, True)} but found "
                           f"{_tname(weight.dtype, True)}")
    if bias is not None and bias.dtype != input.dtype:
        raise RuntimeError(f"Input type ({_tname(input.dtype)}) and bias type "
                           f"({_tname(bias.dtype)}) should be the same")


def _tname(dtype: Any, title: bool = False) -> str:
    name = {"float32": "float", "float64": "double", "float16": "half", "int64": "long"}.get(
        str(dtype), str(dtype))
    return name.capitalize() if title else name


def _conv_nd(nd: int, name: str):
    def fn(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
        batched = _batched(input, nd, name)
        x = input if batched else apply("unsqueeze", input, axis=0)
        stride, dilation = _ntuple(stride, nd, "stride", name), _ntuple(dilation, nd, "dilation", name)
        kernel = tuple(weight.shape[2:])
        _check_conv(x, weight, groups, name)
        _check_types(x, weight, bias)
        pads = _same_or_valid(padding, kernel, stride, dilation, nd, name)
        sizes = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
        if any(n < d * (k - 1) + 1 for n, k, d in zip(sizes, kernel, dilation)):
            raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, sizes))})."
                               f" Kernel size: ({' x '.join(map(str, kernel))}). Kernel size can't be "
                               "greater than actual input size")
        args = (x, weight) if bias is None else (x, weight, bias)
        y = apply("conv", *args, stride=stride, padding=pads, dilation=dilation, groups=int(groups))
        return y if batched else apply("squeeze", y, axis=0)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``torch.{name}``: stride, padding (ints, 'same', 'valid'), dilation, groups."
    return fn


def _check_conv(x: Any, weight: Any, groups: int, name: str) -> None:
    if weight.ndim != x.ndim:
        raise RuntimeError(f"weight should have at least three dimensions for {name}")
    if groups < 1 or weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at "
                           f"dimension 0, but got weight of size {list(weight.shape)} instead")
    if x.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {weight.shape[1] * groups} channels, but "
                           f"got {x.shape[1]} channels instead")


def _same_or_valid(padding: Any, kernel: tuple, stride: tuple, dilation: tuple, nd: int,
                   name: str) -> tuple:
    if padding == "valid":
        return ((0, 0),) * nd
    if padding == "same":
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]  # torch pads the odd one right
        return tuple((t // 2, t - t // 2) for t in total)
    if isinstance(padding, str):
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    return tuple((p, p) for p in _ntuple(padding, nd, "padding", name))


conv1d, conv2d, conv3d = (_conv_nd(n, f"conv{n}d") for n in (1, 2, 3))


def _conv_transpose_nd(nd: int, name: str):
    def fn(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
        batched = _batched(input, nd, name)
        x = input if batched else apply("unsqueeze", input, axis=0)
        stride, dilation = _ntuple(stride, nd, "stride", name), _ntuple(dilation, nd, "dilation", name)
        padding = _ntuple(padding, nd, "padding", name)
        extra = _ntuple(output_padding, nd, "output_padding", name)
        if any(e >= s and e >= d for e, s, d in zip(extra, stride, dilation)):
            dims = ("height", "width") if nd == 2 else ("depth", "height", "width")[3 - nd:]
            raise RuntimeError(
                "output padding must be smaller than either stride or dilation, but got "
                + " ".join(f"output_padding_{a}: {e}" for a, e in zip(dims, extra)) + " "
                + " ".join(f"stride_{a}: {s}" for a, s in zip(dims, stride)) + " "
                + " ".join(f"dilation_{a}: {d}" for a, d in zip(dims, dilation)))
        if weight.ndim != x.ndim or x.shape[1] != weight.shape[0] or weight.shape[0] % groups:
            raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected "
                               f"input{list(x.shape)} to have {weight.shape[0]} channels, but got "
                               f"{x.shape[1]} channels instead")
        _check_types(x, weight, bias)
        args = (x, weight) if bias is None else (x, weight, bias)
        y = apply("conv_transpose", *args, stride=stride, dilation=dilation, groups=int(groups),
                  padding=tuple((p, p - e) for p, e in zip(padding, extra)))
        return y if batched else apply("squeeze", y, axis=0)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``torch.{name}``: stride, padding, output_padding, groups, dilation."
    return fn


conv_transpose1d, conv_transpose2d, conv_transpose3d = (
    _conv_transpose_nd(n, f"conv_transpose{n}d") for n in (1, 2, 3))


# ---------------------------------------------------------------- pooling windows
@lru_cache(maxsize=256)
def _fixed(size: int, k: int, s: int, p: int, d: int, out: int) -> tuple:
    """Coordinates (out, k) of each window's elements and which are real (not padding)."""
    coords = np.arange(out)[:, None] * s - p + np.arange(k)[None, :] * d
    valid = (coords >= 0) & (coords < size)
    return np.clip(coords, 0, max(size - 1, 0)), valid


@lru_cache(maxsize=256)
def _adaptive(size: int, out: int) -> tuple:
    """torch's adaptive windows [⌊i·n/o⌋, ⌈(i+1)·n/o⌉) as coordinate tables."""
    i = np.arange(out)
    start, end = (i * size) // out, -((-(i + 1) * size) // out)
    k = int((end - start).max()) if out else 0
    coords = start[:, None] + np.arange(k)[None, :]
    valid = coords < end[:, None]
    return np.minimum(coords, end[:, None] - 1), valid


def _gather_windows(x: np.ndarray, tables: tuple) -> np.ndarray:
    """(R, oh, ow, kh·kw) windows of ``x`` (…, H, W), from per-dimension coordinate tables."""
    (ch, _), (cw, _) = tables
    planes = x.reshape(-1, x.shape[-2] * x.shape[-1])
    flat = ch[:, None, :, None] * x.shape[-1] + cw[None, :, None, :]  # (oh, ow, kh, kw)
    win = planes[:, flat]
    return win.reshape(win.shape[:3] + (-1,))


def _valid(tables: tuple) -> np.ndarray:
    (_, vh), (_, vw) = tables
    return (vh[:, None, :, None] & vw[None, :, None, :]).reshape(vh.shape[0], vw.shape[0], -1)


def _argmax_indices(x: np.ndarray, tables: tuple) -> np.ndarray:
    """torch's argmax per window as flat indices into each (H, W) plane: the first maximum
    in the window; the last NaN if any; padding never (all −inf: the first real element)."""
    (ch, vh), (cw, vw) = tables
    win = _gather_windows(x, tables)
    valid = _valid(tables)
    low = -np.inf if x.dtype.kind == "f" else (np.iinfo(x.dtype).min if x.dtype.kind in "iu" else False)
    if not valid.all():
        win = np.where(valid, win, low)
    pick = win.argmax(axis=-1)
    if x.dtype.kind == "f":
        nan = np.isnan(win)
        if nan.any():  # torch: ``val > max || isnan(val)`` keeps the last NaN
            last = win.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
            pick = np.where(nan.any(axis=-1), last, pick)
    kw = cw.shape[1]
    oi, oj = np.arange(ch.shape[0])[:, None], np.arange(cw.shape[0])[None, :]
    ki, kj = pick // kw, pick % kw
    h, w = ch[oi, ki], cw[oj, kj]
    real = vh[oi, ki] & vw[oj, kj]
    if not real.all():  # a window of −inf: torch keeps its first real element
        h = np.where(real, h, ch[oi, vh.argmax(axis=1)[:, None]])
        w = np.where(real, w, cw[oj, vw.argmax(axis=1)[None, :]])
    idx = (h * x.shape[-1] + w).astype(np.int64)
    return idx.reshape(x.shape[:-2] + idx.shape[1:])


def _take(x, indices, **geometry):
    """Each output is the input element at its index (a gather in every (H, W) plane)."""
    planes = x.reshape(-1, x.shape[-2] * x.shape[-1])
    return np.take_along_axis(planes, indices.reshape(planes.shape[0], -1), 1).reshape(indices.shape)


def _scatter(values: np.ndarray, flat: np.ndarray, size: tuple, dtype: Any) -> np.ndarray:
    """Sum ``values`` (R, m) into R planes of ``size`` at plane indices ``flat`` (R, m)."""
    rows, hw = values.shape[0], size[0] * size[1]
    where = (flat + (np.arange(rows) * hw)[:, None]).ravel()
    if values.dtype.kind == "c":
        return _scatter(values.real, flat, size, dtype) + 1j * _scatter(values.imag, flat, size, dtype)
    out = np.bincount(where, values.ravel().astype(np.float64), rows * hw)
    return out.astype(dtype, copy=False).reshape((rows,) + tuple(size))


def _put(g, x, *, indices, **geometry):
    """Each output gradient goes back to the element it came from (summed where windows share it)."""
    rows = g.reshape(-1, math.prod(indices.shape[-2:]))
    out = _scatter(rows, indices.reshape(rows.shape[0], -1), x.shape[-2:], g.dtype)
    return out.reshape(x.shape)


def _zero(h, ans, g, x, **params):
    """torch's pooling gradients keep an edge to x (their own derivative wrt x is 0), so a
    gradient taken with ``create_graph`` has a graph; the zeros are a constant."""
    zeros = np.zeros(x.shape, data(h).dtype)
    return Tensor(zeros) if isinstance(h, Tensor) else zeros


def _gather_pair(name: str, node: str, formula: str) -> None:
    """A max pooling (gather by argmax) and its gradient (scatter), each the other's VJP."""
    back = name + "_backward"
    defop(name, _take, node,
          vjp=(lambda g, ans, x, *, indices, **geo: call(back, g, x, indices=indices, **geo),),
          formulas=(formula,), saves=("x",))
    defop(back, _put, node.replace("Backward0", "BackwardBackward0"),
          vjp=(lambda h, ans, g, x, *, indices, **geo: call(name, h, indices=indices, **geo), _zero),
          formulas=("∂/∂g = h at the argmax (gather)", "∂/∂x = 0"), saves=("", ""))


_gather_pair("max_pool2d", "MaxPool2DWithIndicesBackward0", "∂/∂x = g at each window's argmax")
_gather_pair("adaptive_max_pool2d", "AdaptiveMaxPool2DBackward0", "∂/∂x = g at each window's argmax")


# ---------------------------------------------------------------- average pooling
def _mean_windows(x, tables, divisor):
    win = _gather_windows(x, tables)
    valid = _valid(tables)
    if not valid.all():
        win = np.where(valid, win, 0)
    return (win.sum(axis=-1) / divisor).astype(x.dtype, copy=False).reshape(
        x.shape[:-2] + divisor.shape)


def _spread(g, tables, divisor, size):
    """The adjoint of ``_mean_windows``: each g / divisor added to its window's elements."""
    (ch, _), (cw, _) = tables
    flat = (ch[:, None, :, None] * size[1] + cw[None, :, None, :]).reshape(divisor.shape + (-1,))
    valid = _valid(tables)
    rows = (g.reshape((-1,) + divisor.shape) / divisor).astype(g.dtype, copy=False)
    vals = np.where(valid, rows[..., None], 0)
    idx = np.broadcast_to(flat, vals.shape).reshape(vals.shape[0], -1)
    return _scatter(vals.reshape(vals.shape[0], -1), idx, size, g.dtype).reshape(
        g.shape[:-2] + tuple(size))


@lru_cache(maxsize=256)
def _avg_geometry(size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override):
    """(output size, pads reaching every window, divisor per output) of torch's avg_pool2d."""
    outs, pads, counts = [], [], []
    for n, k, s, p in zip(size, kernel_size, stride, padding):
        out = _pool_out(n, k, s, p, 1, ceil_mode)
        outs.append(out)
        pads.append((p, (out - 1) * s + k - n - p))
        start = np.arange(out) * s - p
        end = np.minimum(start + k, n + p)
        counts.append((end - start) if count_include_pad else
                      (np.minimum(end, n) - np.maximum(start, 0)))
    if divisor_override:
        divisor = np.full(tuple(outs), float(divisor_override))
    else:
        divisor = np.outer(counts[0], counts[1]).astype(np.float64)
    return tuple(outs), tuple(pads), divisor


_FAST_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _avg(x, *, kernel_size, stride, padding, **rule):
    """Window sums of the zero-padded x (a strided view) over torch's divisor."""
    out, pads, divisor = _avg_geometry(x.shape[-2:], kernel_size, stride, padding, **rule)
    xp = _pad(x, pads)
    if x.dtype in _FAST_FLOATS:  # one strided add per kernel offset, in the window's order
        total = None            # (a reduction over a strided window view is ~4× slower)
        for a, b in itertools.product(range(kernel_size[0]), range(kernel_size[1])):
            part = xp[..., a:a + (out[0] - 1) * stride[0] + 1:stride[0],
                      b:b + (out[1] - 1) * stride[1] + 1:stride[1]]
            if total is None:
                total = part.copy()
            else:
                total += part
        # divided in float64 and rounded once, as before (exact for any divisor_override)
        return np.divide(total, divisor, out=total, casting="unsafe")
    st = xp.strides
    win = as_strided(xp, xp.shape[:-2] + out + tuple(kernel_size),
                     st[:-2] + (st[-2] * stride[0], st[-1] * stride[1]) + st[-2:], writeable=False)
    return (win.sum(axis=(-2, -1)) / divisor).astype(x.dtype, copy=False)


def _avg_back(g, x, *, kernel_size, stride, padding, **rule):
    """g / divisor added back to every element of its window (one strided add per offset)."""
    out, pads, divisor = _avg_geometry(x.shape[-2:], kernel_size, stride, padding, **rule)
    share = (g / divisor).astype(g.dtype, copy=False)
    if tuple(kernel_size) == tuple(stride) and all(p == (0, 0) for p in pads) \
            and share.ndim >= 2:  # windows tile x: each share broadcast over its window
        share += 0  # a −0 share gives +0, as the sum into zeros below (and torch's)
        res = np.empty(g.shape[:-2] + tuple(x.shape[-2:]), g.dtype)
        for a, b in itertools.product(range(kernel_size[0]), range(kernel_size[1])):
            res[..., a::kernel_size[0], b::kernel_size[1]] = share
        return res
    buf = np.zeros(g.shape[:-2] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[-2:], pads)),
                   g.dtype)
    for a, b in itertools.product(range(kernel_size[0]), range(kernel_size[1])):
        buf[..., a:a + (out[0] - 1) * stride[0] + 1:stride[0],
            b:b + (out[1] - 1) * stride[1] + 1:stride[1]] += share
    return _pad(buf, tuple((-lo, -hi) for lo, hi in pads))


def _adaptive_geometry(size, output_size):
    tables = tuple(_adaptive(n, o) for n, o in zip(size, output_size))
    counts = [v.sum(axis=1) for _, v in tables]
    return tables, np.outer(counts[0], counts[1]).astype(np.float64)


def _adaptive_avg(x, *, output_size):
    tables, divisor = _adaptive_geometry(x.shape[-2:], output_size)
    return _mean_windows(x, tables, divisor)


def _adaptive_avg_back(g, x, *, output_size):
    tables, divisor = _adaptive_geometry(x.shape[-2:], output_size)
    return _spread(g, tables, divisor, x.shape[-2:])


def _average_pair(name: str, node: str, fwd: Any, back_fwd: Any, formula: str) -> None:
    """An average pooling and its gradient (spread back over the windows), each linear and
    each the other's VJP."""
    back = name + "_backward"
    defop(name, fwd, node, vjp=(lambda g, ans, x, **geo: call(back, g, x, **geo),),
          formulas=(formula,), saves=("x",))
    defop(back, back_fwd, node.replace("Backward0", "BackwardBackward0"),
          vjp=(lambda h, ans, g, x, **geo: call(name, h, **geo), _zero),
          formulas=("∂/∂g = window means of h", "∂/∂x = 0"), saves=("", ""))


_average_pair("avg_pool2d", "AvgPool2DBackward0", _avg, _avg_back,
              "∂/∂x = g / window size, spread over each window")
_average_pair("adaptive_avg_pool2d", "AdaptiveAvgPool2DBackward0", _adaptive_avg,
              _adaptive_avg_back, "∂/∂x = g / window size, spread over each window")


# ---------------------------------------------------------------- max_unpool2d
def _unpool(x, *, indices, size):
    planes = np.zeros((math.prod(x.shape[:-2]), size[0] * size[1]), x.dtype)
    np.put_along_axis(planes, indices.reshape(planes.shape[0], -1),
                      x.reshape(planes.shape[0], -1), 1)
    return planes.reshape(x.shape[:-2] + tuple(size))


def _unpool_vjp(g, ans, x, *, indices, size):
    lead = tuple(x.shape[:-2])
    planes = g.reshape((math.prod(lead), size[0] * size[1]))
    picked = call("gather", planes, axis=1, index=indices.reshape(planes.shape[0], -1))
    return picked.reshape(tuple(x.shape))


defop("max_unpool2d", _unpool, "MaxUnpool2DBackward0", vjp=(_unpool_vjp,),
      formulas=("∂/∂x = g at the indices (gather)",), saves=("",))


# ---------------------------------------------------------------- public pooling
def _pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape: a last window must start inside the input or left pad."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _pair(v: Any, name: str) -> tuple:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * 2
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v * 2
    if len(v) != 2:
        raise RuntimeError(f"{name} must either be a single int, or a tuple of two ints")
    return v


def _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode, what):
    if input.ndim not in (3, 4):
        raise RuntimeError(f"non-empty 3D or 4D (batch mode) tensor expected for input")
    k = _pair(kernel_size, f"{what}: kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        _pair(stride, f"{what}: stride")
    p, d = _pair(padding, f"{what}: padding"), _pair(dilation, f"{what}: dilation")
    for kk, pp, dd in zip(k, p, d):
        if pp > (dd * (kk - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={pp}, kernel_size={kk} and dilation={dd}")
    out = tuple(_pool_out(n, kk, ss, pp, dd, ceil_mode)
                for n, kk, ss, pp, dd in zip(input.shape[-2:], k, s, p, d))
    if min(out) < 1:
        shape = "x".join(map(str, input.shape[-3:]))
        raise RuntimeError(f"Given input size: ({shape}). Calculated output size: "
                           f"({input.shape[-3]}x{out[0]}x{out[1]}). Output size is too small")
    return k, s, p, d, out


def max_pool2d_with_indices(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False,
                            return_indices: bool = True) -> tuple:
    """``(values, indices)`` of torch's max_pool2d (indices flat in each H×W plane)."""
    k, s, p, d, out = _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode,
                                     "max_pool2d")
    tables = tuple(_fixed(n, kk, ss, pp, dd, o)
                   for n, kk, ss, pp, dd, o in zip(input.shape[-2:], k, s, p, d, out))
    idx = _argmax_indices(data(input), tables)
    y = apply("max_pool2d", input, indices=idx, kernel_size=k, stride=s, padding=p, dilation=d,
              ceil_mode=bool(ceil_mode))
    return y, Tensor(idx)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    out = max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return out if return_indices else out[0]


def _one_d(fn2d: Any, input: Tensor, *args: Any) -> Any:
    """torch's 1d pooling: unsqueeze(-2) → the 2d pooling → squeeze(-2)."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2D or 3D (batch mode) tensor for input with possibly 0 "
                           f"batch size and non-zero dimensions for input, but got: "
                           f"{list(input.shape)}")
    out = fn2d(apply("unsqueeze", input, axis=-2), *args)
    if isinstance(out, tuple):
        return apply("squeeze", out[0], axis=-2), Tensor(np.squeeze(out[1].data, -2))
    return apply("squeeze", out, axis=-2)


def _one(v: Any, fill: int) -> Any:
    if v is None or (not isinstance(v, int) and len(v) == 0):
        return None
    return (fill, v if isinstance(v, int) else int(v[0]))


def max_pool1d_with_indices(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False,
                            return_indices: bool = True) -> tuple:
    return _one_d(max_pool2d_with_indices, input, _one(kernel_size, 1), _one(stride, 1),
                  _one(padding, 0), _one(dilation, 1), ceil_mode)


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    out = max_pool1d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return out if return_indices else out[0]


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    k, s, p, _, _ = _pool_geometry(input, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    return apply("avg_pool2d", input, kernel_size=k, stride=s, padding=p, ceil_mode=bool(ceil_mode),
                 count_include_pad=bool(count_include_pad), divisor_override=divisor_override)


def avg_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    return _one_d(avg_pool2d, input, _one(kernel_size, 1), _one(stride, 1), _one(padding, 0),
                  ceil_mode, count_include_pad)


def _output_size(input: Any, output_size: Any) -> tuple:
    sizes = (output_size,) * 2 if isinstance(output_size, (int, np.integer)) or output_size is None \
        else tuple(output_size)
    if len(sizes) == 1:
        sizes = sizes * 2
    return tuple(int(n if o is None else o) for o, n in zip(sizes, input.shape[-2:]))


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    if input.ndim not in (3, 4):
        raise RuntimeError("adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got "
                           f"{list(input.shape)}")
    out = _output_size(input, output_size)
    if out == (1, 1):  # torch: a mean over H and W
        return apply("mean", input, axis=(-1, -2), keepdims=True)
    return apply("adaptive_avg_pool2d", input, output_size=out)


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    size = output_size if isinstance(output_size, int) else output_size[0]
    return _one_d(adaptive_avg_pool2d, input, (1, size))


def adaptive_max_pool2d_with_indices(input: Tensor, output_size: Any,
                                     return_indices: bool = True) -> tuple:
    if input.ndim not in (3, 4):
        raise RuntimeError("adaptive_max_pool2d(): Expected 3D or 4D tensor, but got "
                           f"{list(input.shape)}")
    out = _output_size(input, output_size)
    tables = tuple(_adaptive(n, o) for n, o in zip(input.shape[-2:], out))
    idx = _argmax_indices(data(input), tables)
    return apply("adaptive_max_pool2d", input, indices=idx, output_size=out), Tensor(idx)


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    out = adaptive_max_pool2d_with_indices(input, output_size)
    return out if return_indices else out[0]


def adaptive_max_pool1d_with_indices(input: Tensor, output_size: Any,
                                     return_indices: bool = True) -> tuple:
    size = output_size if isinstance(output_size, int) else output_size[0]
    return _one_d(adaptive_max_pool2d_with_indices, input, (1, size))


def adaptive_max_pool1d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    out = adaptive_max_pool1d_with_indices(input, output_size)
    return out if return_indices else out[0]


def max_unpool2d(input: Tensor, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Tensor:
    k = _pair(kernel_size, "max_unpool2d: kernel_size")
    s = k if stride is None else _pair(stride, "max_unpool2d: stride")
    p = _pair(padding, "max_unpool2d: padding")
    if output_size is None:
        size = tuple((n - 1) * ss - 2 * pp + kk for n, kk, ss, pp in zip(input.shape[-2:], k, s, p))
    else:
        size = tuple(int(n) for n in tuple(output_size)[-2:])
    idx = np.asarray(data(indices), np.int64)
    if idx.shape != tuple(input.shape):
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({list(input.shape)}) but got indices tensor with shape: {list(idx.shape)}")
    if idx.size and (idx.min() < 0 or idx.max() >= size[0] * size[1]):
        bad = int(idx.max() if idx.max() >= size[0] * size[1] else idx.min())
        raise RuntimeError(f"Found an invalid max index: {bad} (output volumes are of size "
                           f"{size[0]}x{size[1]})")
    return apply("max_unpool2d", input, indices=idx, size=size)
