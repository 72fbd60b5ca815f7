"""Shape and indexing ops: reshape, squeeze/unsqueeze, transpose/permute, expand, repeat,
flip, indexing (getitem, index_put, gather, index_select), cat and stack.

>>> from gradmagic.engine import tensor
>>> y_hat = tensor([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]], requires_grad=True)
>>> y_hat[range(2), [0, 2]].sum().backward(); y_hat.grad
tensor([[1., 0., 0.],
        [0., 0., 1.]])
"""
from __future__ import annotations

import numpy as np

from ..registry import defop
from ..tensor import Tensor
from . import call, data

_RESHAPE = ("∂/∂a = g reshaped back",)


def _back(g, ans, a, **params):
    return g.reshape(a.shape)


defop("reshape", lambda a, shape: a.reshape(shape), "ViewBackward0", vjp=(_back,),
      formulas=_RESHAPE)


def _squeeze(a, axis=None):
    if axis is None:
        return a.reshape([n for n in a.shape if n != 1])
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(ax % max(a.ndim, 1) for ax in axes if a.ndim and a.shape[ax] == 1)
    return a.reshape([n for i, n in enumerate(a.shape) if i not in axes])  # torch: no-op if size ≠ 1


defop("squeeze", _squeeze,
      lambda inputs, params: "SqueezeBackward0" if params.get("axis") is None else "SqueezeBackward1",
      vjp=(_back,), formulas=_RESHAPE)
defop("unsqueeze", lambda a, axis: np.expand_dims(a, axis), "UnsqueezeBackward0", vjp=(_back,),
      formulas=_RESHAPE)
defop("transpose", lambda a, dim0, dim1: a.swapaxes(dim0, dim1), "TransposeBackward0",
      vjp=(lambda g, ans, a, dim0, dim1: g.swapaxes(dim0, dim1),),
      formulas=("∂/∂a = gᵀ",))
defop("t", lambda a: a.T, "TBackward0", vjp=(lambda g, ans, a: g.T,), formulas=("∂/∂a = gᵀ",))
defop("permute", lambda a, dims: a.transpose(dims), "PermuteBackward0",
      vjp=(lambda g, ans, a, dims: call("permute", g, dims=tuple(np.argsort(dims))),),
      formulas=("∂/∂a = g permuted back",))


def _expand(a, shape):
    lead = len(shape) - a.ndim
    full = tuple(a.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    return np.broadcast_to(a, full)


# the reduction back to a's shape is the engine's sum_to
defop("expand", _expand, "ExpandBackward0", vjp=(lambda g, ans, a, shape: g,),
      formulas=("∂/∂a = g summed over broadcast dims",))


def _repeat_vjp(g, ans, a, repeats):
    shape = (1,) * (len(repeats) - a.ndim) + tuple(a.shape)
    split = [d for r, n in zip(repeats, shape) for d in (r, n)]
    return g.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2))).reshape(a.shape)


defop("repeat", lambda a, repeats: np.tile(a, repeats), "RepeatBackward0", vjp=(_repeat_vjp,),
      formulas=("∂/∂a = g summed over the copies",))
defop("flip", lambda a, dims: np.flip(a, dims).copy(), "FlipBackward0",
      vjp=(lambda g, ans, a, dims: call("flip", g, dims=dims),), formulas=("∂/∂a = g flipped",))


# ---------------------------------------------------------------- indexing
def is_basic(index) -> bool:
    """True for an index of ints, slices, None and Ellipsis only (a view, no duplicates)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice, np.integer)) for i in items)


def _index_name(inputs, params) -> str:
    index = params["index"]
    if not is_basic(index):
        return "IndexBackward0"
    items = [i for i in (index if isinstance(index, tuple) else (index,))
             if i is not None and i is not Ellipsis]
    return "SelectBackward0" if items and isinstance(items[-1], (int, np.integer)) else \
        "SliceBackward0" if items else "AliasBackward0"


def _scatter(g, shape, index):
    """zeros(shape) with g added at ``index`` (repeated indices accumulate)."""
    out = np.zeros(shape, g.dtype)
    if is_basic(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


defop("getitem", lambda a, index: a[index], _index_name,
      vjp=(lambda g, ans, a, index: call("index_backward", g, shape=a.shape, index=index),),
      formulas=("∂/∂a = g scattered into zeros at index",))
defop("index_backward", _scatter, "IndexBackwardBackward0",
      vjp=(lambda g, ans, a, shape, index: call("getitem", g, index=index),),
      formulas=("∂/∂g = g′ at index",))


def _index_put(a, value, index):
    out = np.array(a)  # a 0-d cotangent can arrive as a NumPy scalar (no item assignment)
    out[index] = value
    return out


defop("index_put", _index_put, "CopySlices",
      vjp=(lambda g, ans, a, v, index: call("index_put", g, 0.0, index=index),
           lambda g, ans, a, v, index: call("getitem", g, index=index)),
      formulas=("∂/∂self = g with zeros at index", "∂/∂value = g at index"))


def along_axis(index: np.ndarray, axis: int) -> tuple:
    """Full fancy index selecting ``index`` along ``axis`` (take_along_axis as getitem)."""
    axis %= index.ndim
    grids = np.ogrid[tuple(slice(n) for n in index.shape)]
    return tuple(index if i == axis else grids[i] for i in range(index.ndim))


defop("gather", lambda a, axis, index: np.take_along_axis(a, index, axis), "GatherBackward0",
      vjp=(lambda g, ans, a, axis, index:
           call("index_backward", g, shape=a.shape, index=along_axis(index, axis)),),
      formulas=("∂/∂a = g scattered back along dim",))
defop("index_select", lambda a, axis, index: np.take(a, index, axis), "IndexSelectBackward0",
      vjp=(lambda g, ans, a, axis, index: call(
          "index_backward", g, shape=a.shape, index=(slice(None),) * (axis % a.ndim) + (index,)),),
      formulas=("∂/∂a = g added back at index",))


# ---------------------------------------------------------------- joining
def _cat_vjp(g, ans, *inputs, axis=0, index=0):
    axis %= g.ndim
    start = sum(x.shape[axis] for x in inputs[:index])
    return g[(slice(None),) * axis + (slice(start, start + inputs[index].shape[axis]),)]


def _stack_vjp(g, ans, *inputs, axis=0, index=0):
    axis %= g.ndim
    return g[(slice(None),) * axis + (index,)]


defop("cat", lambda *arrays, axis=0: np.concatenate(arrays, axis), "CatBackward0",
      vjp=(_cat_vjp,), formulas=("∂/∂xᵢ = g's slice i",), promote="same", variadic=True)
defop("stack", lambda *arrays, axis=0: np.stack(arrays, axis), "StackBackward0",
      vjp=(_stack_vjp,), formulas=("∂/∂xᵢ = g[i]",), promote="same", variadic=True)


def normalize_index(index):
    """torch-style index → NumPy index: Tensors to arrays, ranges and lists to arrays."""
    if isinstance(index, tuple):
        return tuple(normalize_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, (range, list)):
        return np.asarray(index if not isinstance(index, list) else [data(i) for i in index])
    return index
