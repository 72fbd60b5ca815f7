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
    """True for an index of ints, slices, None and Ellipsis only (a view, no duplicates);
    a bool is an advanced index (a new dim indexed by [0] or [])."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, slice) or _is_int(i) for i in items)


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
        np.add.at(out, torch_index(index, shape), g)
    return out


defop("getitem", lambda a, index: a[torch_index(index, a.shape)], _index_name,
      vjp=(lambda g, ans, a, index: call("index_backward", g, shape=a.shape, index=index),),
      formulas=("∂/∂a = g scattered into zeros at index",),
      scatter=lambda params: params["index"] if is_basic(params["index"]) else None)
defop("index_backward", _scatter, "IndexBackwardBackward0",
      vjp=(lambda g, ans, a, shape, index: call("getitem", g, index=index),),
      formulas=("∂/∂g = g′ at index",))


def _index_put(a, value, index):
    out = np.array(a)  # a 0-d cotangent can arrive as a NumPy scalar (no item assignment)
    out[torch_index(index, out.shape)] = value
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


# ---------------------------------------------------------------- torch's index rules
def normalize_index(index):
    """torch-style index → NumPy index: Tensors to arrays, ranges and lists to arrays, a
    0-d integer Tensor to an int (torch selects with it), and a list holding sequences,
    slices, None, Ellipsis or Tensors to a tuple (torch's legacy rule, kept with a warning).

    >>> normalize_index([[0, 1], slice(None)])
    (array([0, 1]), slice(None, None, None))
    """
    if isinstance(index, list) and _sequence_as_tuple(index):  # the whole index only
        index = tuple(index)
    if isinstance(index, tuple):
        return tuple(_normalize_item(i) for i in index)
    return _normalize_item(index)


def _normalize_item(index):
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, np.ndarray) and index.ndim == 0:
        if index.dtype == bool:
            return bool(index)  # a new dim, as True/False
        if index.dtype.kind in "iu" and index.dtype != np.uint8:  # a 0-d uint8 index is a mask
            return int(index)
    if isinstance(index, (range, list)):
        arr = np.asarray(index if not isinstance(index, list) else [data(i) for i in index])
        return arr.astype(np.intp) if arr.size == 0 else arr  # [] indexes nothing (not floats)
    return index


def _sequence_as_tuple(index: list) -> bool:
    """torch's ``treatSequenceAsTuple`` for a list index (NumPy's old heuristic)."""
    return len(index) < 32 and any(
        i is None or i is Ellipsis or isinstance(i, (slice, list, tuple, range, Tensor, np.ndarray))
        for i in index)


def _is_int(i) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _is_advanced(i) -> bool:
    return isinstance(i, (np.ndarray, bool, np.bool_))


def torch_index(index, shape: tuple):
    """The NumPy index that gives torch's result for ``index`` on an array of ``shape``.

    NumPy counts an int among the advanced indices; torch selects with it first. When an int
    sits apart from an index array (``x[0, :, [0, 1]]``), NumPy moves the indexed dims to the
    front while torch keeps them in place, so such an index becomes one whose every entry is
    an array laid out as torch's result (broadcast indexing: same values, same gradient).

    >>> x = np.arange(24).reshape(2, 3, 4)
    >>> x[0, :, [0, 1]].shape, x[torch_index((0, slice(None), np.array([0, 1])), x.shape)].shape
    ((2, 3), (3, 2))
    """
    items = index if isinstance(index, tuple) else (index,)
    if not (any(map(_is_int, items)) and any(map(_is_advanced, items))):
        return index  # NumPy and torch agree
    items = _expand(items, len(shape))
    if items is None:
        return index  # too many indices: NumPy raises torch's IndexError
    return _all_advanced(items, shape)


def _expand(items: tuple, ndim: int) -> tuple | None:
    """Boolean arrays as their nonzero() index arrays; Ellipsis (or the missing tail) as slices."""
    out: list = []
    for i in items:
        out.extend(np.nonzero(i) if isinstance(i, np.ndarray) and i.dtype == bool else (i,))
    used = sum(1 for i in out if not (i is None or i is Ellipsis or isinstance(i, (bool, np.bool_))))
    if used > ndim:
        return None
    at = next((k for k, i in enumerate(out) if i is Ellipsis), len(out))
    return tuple(out[:at]) + (slice(None),) * (ndim - used) + tuple(out[at + 1:])


def _sliced_dims(items: tuple, shape: tuple) -> tuple[list, dict]:
    """torch's first pass: ints select (``picked``: input dim -> int); every other item makes
    one dim of the "sliced" tensor: (kind, the input dim it indexes or None, its positions)."""
    dims: list = []
    picked: dict = {}
    d = 0
    for i in items:
        if i is None:
            dims.append(("new", None, np.arange(1)))
            continue
        if isinstance(i, (bool, np.bool_)):  # torch: a new dim indexed by [0] (True) or []
            dims.append(("adv", None, np.arange(int(i))))
            continue
        if _is_int(i):
            picked[d] = i
        elif isinstance(i, slice):
            dims.append(("slice", d, np.arange(*i.indices(shape[d]))))
        else:
            dims.append(("adv", d, np.asarray(i)))
        d += 1
    return dims, picked


def _all_advanced(items: tuple, shape: tuple) -> tuple:
    """One index array per dim of ``shape``, broadcasting to torch's result: the index arrays'
    broadcast dims stay in place if they are adjacent among the sliced dims, else go first."""
    dims, picked = _sliced_dims(items, shape)
    adv = [k for k, (kind, _, _) in enumerate(dims) if kind == "adv"]
    shapes = [dims[k][2].shape for k in adv]
    try:
        block = np.broadcast_shapes(*shapes)
    except ValueError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with "
                         "shapes " + ", ".join(str(list(s)) for s in shapes)) from None
    others = [k for k in range(len(dims)) if k not in adv]
    lead = len([k for k in others if k < adv[0]]) if adv == list(range(adv[0], adv[-1] + 1)) else 0
    full = tuple(len(dims[k][2]) for k in others[:lead]) + block + tuple(
        len(dims[k][2]) for k in others[lead:])
    out: list = [picked.get(k) for k in range(len(shape))]
    for n, k in enumerate(others):
        kind, dim, pos = dims[k]
        if kind == "slice":
            axis = n if n < lead else n + len(block)
            out[dim] = pos.reshape([len(pos) if a == axis else 1 for a in range(len(full))])
    for k in adv:
        kind, dim, pos = dims[k]
        if dim is not None:
            out[dim] = pos.reshape((1,) * (lead + len(block) - pos.ndim) + pos.shape
                                   + (1,) * (len(full) - lead - len(block)))
    out[0] = np.broadcast_to(np.asarray(out[0]), full)  # so that None dims and bools count
    return tuple(out)
