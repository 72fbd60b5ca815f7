"""Everyday tensor ops: shape (unbind, split, unflatten, movedim, tensor_split), cumulative ops
(cumprod, cummax/cummin, logcumsumexp), selection (sort, topk, kthvalue, median, mode),
masks (masked_fill/select/scatter, triu/tril, one_hot), diagonals (diagonal, diag_embed,
trace), moves (roll, rot90, repeat_interleave, tile) and index writes (index_add/fill/copy,
scatter, scatter_add, scatter_reduce, take, take_along_dim, nonzero).

Every function accepts torch's spellings: ``dim``/``axis``, ``keepdim``/``keepdims``.

>>> from gradmagic.engine import tensor
>>> x = tensor([[3.0, 1.0, 2.0]], requires_grad=True)
>>> v, i = x.sort(dim=1)
>>> (v * tensor([1.0, 10.0, 100.0])).sum().backward(); x.grad   # g goes to the sorted index
tensor([[100.,   1.,  10.]])
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple
from typing import Any

import numpy as np

from ..registry import defop
from ..tensor import Tensor, apply, inplace, wrap
from . import call, data
from .reduce import _full_extreme_vjp
from .shape import along_axis


def _axis(dim: Any, kw: dict, default: Any = None) -> Any:
    """torch's ``dim``, also spelled ``axis`` (``kw`` holds the other keywords)."""
    axis = kw.pop("axis", None)
    dim = axis if dim is None else dim
    return default if dim is None else dim


def _keep(keepdim: bool, kw: dict) -> bool:
    keepdims = kw.pop("keepdims", None)
    return bool(keepdim if keepdims is None else keepdims)


def _no_more(kw: dict, name: str) -> None:
    if kw:
        raise TypeError(f"{name}() got an unexpected keyword argument '{next(iter(kw))}'")


def _int(x: Any) -> int:
    return int(data(x)) if isinstance(x, (Tensor, np.ndarray)) else int(x)


def _check_dim(dim: int, ndim: int) -> int:
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _slices(axis: int, item: Any) -> tuple:
    return (slice(None),) * axis + (item,)


# ---------------------------------------------------------------- unbind and split
def _part(a, axis, index, with_sizes=False):
    return a[_slices(axis, index)]


def _part_vjp(g, ans, a, axis, index, with_sizes=False):
    return call("index_backward", g, shape=a.shape, index=_slices(axis, index))


def _part_index(params):
    return _slices(params["axis"], params["index"])


defop("unbind", _part, "UnbindBackward0", vjp=(_part_vjp,),
      formulas=("∂/∂a = g placed at its slice, zeros elsewhere",), scatter=_part_index)
defop("split", _part,
      lambda inputs, params: "SplitWithSizesBackward0" if params.get("with_sizes") else "SplitBackward0",
      vjp=(_part_vjp,), formulas=("∂/∂a = g placed at its piece, zeros elsewhere",),
      scatter=_part_index)


def unbind(input: Tensor, dim: Any = None, **kw: Any) -> tuple:
    d = _axis(dim, kw, 0)
    _no_more(kw, "unbind")
    if input.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    d = _check_dim(_int(d), input.ndim)
    return tuple(apply("unbind", input, axis=d, index=i) for i in range(input.shape[d]))


def split(input: Tensor, split_size_or_sections: Any = None, dim: Any = None, **kw: Any) -> tuple:
    sizes = kw.pop("split_size", split_size_or_sections)
    d = _check_dim(_int(_axis(dim, kw, 0)), input.ndim)
    _no_more(kw, "split")
    n = input.shape[d]
    with_sizes = isinstance(sizes, (list, tuple))
    if with_sizes:
        sizes = [_int(s) for s in sizes]
        if builtins.sum(sizes) != n or builtins.min(sizes, default=0) < 0:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got "
                               f"split_sizes={sizes}")
    else:
        step = _int(sizes)
        if step <= 0 and not (step == 0 and n == 0):
            raise RuntimeError(f"split expects split_size be non-negative, but got "
                               f"split_size={step}")
        sizes = [builtins.min(step, n - s) for s in range(0, n, step)] if n else [0]
    starts = np.cumsum([0] + sizes[:-1])
    return tuple(apply("split", input, axis=d, index=slice(int(s), int(s) + k),
                       with_sizes=with_sizes) for s, k in zip(starts, sizes))


def chunk(input: Tensor, chunks: int, dim: Any = None, **kw: Any) -> tuple:
    d = _check_dim(_int(_axis(dim, kw, 0)), input.ndim)
    _no_more(kw, "chunk")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    n = input.shape[d]
    return split(input, -(-n // chunks) if n else 1, d)


def tensor_split(input: Tensor, indices_or_sections: Any = None, dim: Any = None, **kw: Any) -> tuple:
    from .. import functional as F
    spec = kw.pop("sections", kw.pop("indices", kw.pop("tensor_indices_or_sections",
                                                        indices_or_sections)))
    d = _check_dim(_int(_axis(dim, kw, 0)), input.ndim)
    _no_more(kw, "tensor_split")
    n = input.shape[d]
    spec = data(spec)
    if isinstance(spec, np.ndarray) and spec.ndim == 0:
        spec = int(spec)
    if isinstance(spec, (int, np.integer)):
        if spec <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {spec}")
        q, r = divmod(n, int(spec))
        cuts = list(np.cumsum([q + 1] * r + [q] * (int(spec) - r)))[:-1]
    else:
        cuts = [int(c) for c in np.asarray(spec).reshape(-1)]
    bounds = [0] + cuts + [n]
    return tuple(F.getitem(input, _slices(d, slice(s, e))) for s, e in zip(bounds[:-1], bounds[1:]))


def _split_dir(name: str, dim: int, min_ndim: int):
    def fn(input: Tensor, indices_or_sections: Any = None, **kw: Any) -> tuple:
        spec = kw.pop("sections", kw.pop("indices", indices_or_sections))
        _no_more(kw, name)
        if input.ndim < min_ndim:
            raise RuntimeError(f"torch.{name} requires a tensor with at least {min_ndim} dimension, "
                               f"but got a tensor with {input.ndim} dimensions!")
        d = 0 if name == "hsplit" and input.ndim == 1 else dim
        if isinstance(spec, (int, np.integer)) and (spec == 0 or input.shape[d] % spec):
            raise RuntimeError(f"torch.{name} attempted to split along dimension {d}, but the size "
                               f"of the dimension {input.shape[d]} is not divisible by the "
                               f"split_size {spec}!")
        return tensor_split(input, spec, d)
    fn.__name__ = fn.__qualname__ = name
    return fn


hsplit, vsplit, dsplit = _split_dir("hsplit", 1, 1), _split_dir("vsplit", 0, 2), _split_dir("dsplit", 2, 3)


def unflatten(input: Tensor, dim: Any = None, sizes: Any = None, **kw: Any) -> Tensor:
    from .. import functional as F
    d = _check_dim(_int(_axis(dim, kw, None)), input.ndim)
    sizes = tuple(int(s) for s in kw.pop("sizes", sizes))
    _no_more(kw, "unflatten")
    n = input.shape[d]
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        sizes = tuple(n // known if s == -1 and known else s for s in sizes)
    if math.prod(sizes) != n:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {d} ({n}) in the input tensor")
    return F.reshape(input, input.shape[:d] + sizes + input.shape[d + 1:])


def ravel(input: Tensor) -> Tensor:
    from .. import functional as F
    return F.reshape(input, (-1,))


def movedim(input: Tensor, source: Any, destination: Any) -> Tensor:
    from .. import functional as F
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) "
                           f"should contain the same number of dims as destination ({dst} dims)")
    n = input.ndim
    src = [_check_dim(s, n) for s in src]
    dst = [_check_dim(s, n) for s in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError("movedim: repeated dim in `source` or `destination`")
    perm = [-1] * n
    for s, t in zip(src, dst):
        perm[t] = s
    rest = iter(i for i in range(n) if i not in src)
    perm = [p if p >= 0 else next(rest) for p in perm]
    return F.permute(input, *perm) if n else F.permute(input)


moveaxis = movedim


# ---------------------------------------------------------------- cumulative ops
def _move(x, axis):
    return np.moveaxis(x, axis, -1)


def _cumprod_fwd(a, axis):
    return np.cumprod(a, axis=axis).reshape(np.shape(a))


def _rev_cumsum(g, axis):
    return call("flip", call("cumsum", call("flip", g, dims=(axis,)), axis=axis), dims=(axis,))


def _cumprod_vjp(g, ans, a, axis):
    """Without zeros: reverse cumsum of g·out, divided by a. With a zero: out_j's derivative in
    a_k is the product of a_0..a_j without a_k (each row of an n×n copy, diagonal set to 1)."""
    if np.ndim(data(a)) == 0:
        return g
    if (data(a) != 0).all():
        return _rev_cumsum(g * ans, axis) / a
    n = a.shape[axis]
    moved = call("transpose", a, dim0=axis, dim1=-1) if isinstance(a, Tensor) else np.swapaxes(a, axis, -1)
    gm = call("transpose", g, dim0=axis, dim1=-1) if isinstance(g, Tensor) else np.swapaxes(g, axis, -1)
    rows = call("expand", call("unsqueeze", moved, axis=-2), shape=moved.shape[:-1] + (n, n))
    others = call("cumprod", call("where", np.eye(n, dtype=bool), 1.0, rows), axis=-1)
    upper = np.triu(np.ones((n, n), dtype=bool))  # out_j depends on a_k for j >= k
    grad = call("sum", call("where", upper, others, 0.0) * call("unsqueeze", gm, axis=-2), axis=-1)
    return call("transpose", grad, dim0=axis, dim1=-1)


defop("cumprod", _cumprod_fwd, "CumprodBackward0", vjp=(_cumprod_vjp,),
      formulas=("∂/∂a = reverse cumsum of g·out, over a",), saves=("a ans",), quiet=True)


def _logcumsumexp_fwd(a, axis):
    if a.ndim == 0:
        return a.copy()
    return np.logaddexp.accumulate(a, axis=axis)


def _logcumsumexp_vjp(g, ans, a, axis):
    """torch's logcumsumexp_backward: the positive and negative parts of g, each summed in
    log space from the right (no overflow)."""
    if np.ndim(data(a)) == 0:
        return g
    low = np.finfo(data(a).dtype).min
    log_abs = np.log(np.abs(g))
    pos = call("where", data(g) > 0, log_abs, low)
    neg = call("where", data(g) < 0, log_abs, low)

    def rev(x):
        return call("flip", call("logcumsumexp", call("flip", x, dims=(axis,)), axis=axis), dims=(axis,))
    return np.exp(rev(pos - ans) + a) - np.exp(rev(neg - ans) + a)


defop("logcumsumexp", _logcumsumexp_fwd, "LogcumsumexpBackward0", vjp=(_logcumsumexp_vjp,),
      formulas=("∂/∂a_k = Σ_{j≥k} g_j·exp(a_k − out_j)",), saves=("a ans",), promote="float",
      quiet=True)


def _cum_axis(input: Tensor, dim: Any, kw: dict, name: str) -> int:
    d = _axis(dim, kw, None)
    if d is None:
        raise TypeError(f"{name}() missing 1 required positional argument: 'dim'")
    return _check_dim(_int(d), input.ndim)


def cumprod(input: Tensor, dim: Any = None, *, dtype: Any = None, **kw: Any) -> Tensor:
    d = _cum_axis(input, dim, kw, "cumprod")
    _no_more(kw, "cumprod")
    if dtype is not None:
        input = input.to(dtype)
    elif input.dtype.kind in "biu":
        input = input.to(np.int64)
    return apply("cumprod", input, axis=d)


def logcumsumexp(input: Tensor, dim: Any = None, **kw: Any) -> Tensor:
    d = _cum_axis(input, dim, kw, "logcumsumexp")
    _no_more(kw, "logcumsumexp")
    return apply("logcumsumexp", input, axis=d)


# ---------------------------------------------------------------- picking by index
def _pick(a, axis, index, keepdims=True, stable=None):
    """``a``'s entries at ``index`` along ``axis`` (index has keepdims shape)."""
    if a.ndim == 0:
        return a.copy()
    out = np.take_along_axis(a, index, axis)
    return out if keepdims else out.squeeze(axis)


def _pick_vjp(g, ans, a, axis, index, keepdims=True, stable=None):
    if np.ndim(data(a)) == 0:
        return g
    if not keepdims:
        g = call("unsqueeze", g, axis=axis) if isinstance(g, Tensor) else np.expand_dims(g, axis)
    return call("index_backward", g, shape=a.shape, index=along_axis(index, axis))


_PICKED = ("∂/∂a = g sent back to the picked indices",)
for _name, _node in (("topk", "TopkBackward0"), ("kthvalue", "KthvalueBackward0"),
                     ("median_dim", "MedianBackward1"), ("mode", "ModeBackward0"),
                     ("cummax", "CummaxBackward0"), ("cummin", "CumminBackward0")):
    defop(_name, _pick, _node, vjp=(_pick_vjp,), formulas=_PICKED)
defop("sort", _pick,
      lambda inputs, params: "SortBackward0" if params.get("stable") is None else "SortBackward1",
      vjp=(_pick_vjp,), formulas=_PICKED)


def _cum_index(x: np.ndarray, values: np.ndarray, axis: int) -> np.ndarray:
    """cummax/cummin indices: the last position that set (or equalled) the running value, a NaN
    sets it for good (torch's ``isnan(x) || (!isnan(out) && x >= out)``)."""
    pos = np.arange(x.shape[axis]).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
    hit = (x == values) | np.isnan(x) if x.dtype.kind in "fc" else x == values
    return np.maximum.accumulate(np.where(hit, pos, 0), axis=axis)


def _cum_extreme(name: str, ufunc: Any, result: type):
    def fn(input: Tensor, dim: Any = None, **kw: Any) -> Any:
        d = _cum_axis(input, dim, kw, name)
        _no_more(kw, name)
        x = input.data
        if x.ndim == 0:
            return result(apply(name, input, axis=0, index=np.zeros((), np.int64)),
                          wrap(np.zeros((), np.int64)))
        values = ufunc.accumulate(x, axis=d) if x.dtype.kind not in "fc" else \
            _nan_accumulate(ufunc, x, d)
        index = _cum_index(x, values, d).astype(np.int64)
        return result(apply(name, input, axis=d, index=index), wrap(index))
    fn.__name__ = fn.__qualname__ = name
    return fn


def _nan_accumulate(ufunc: Any, x: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ufunc.accumulate(x, axis=axis)  # np.maximum/minimum propagate NaN, as torch


cummax = _cum_extreme("cummax", np.maximum, namedtuple("cummax", ["values", "indices"]))
cummin = _cum_extreme("cummin", np.minimum, namedtuple("cummin", ["values", "indices"]))


def _order(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable sort order along ``axis``, NaN counted largest (torch's order)."""
    if x.ndim == 0:
        return np.zeros((), np.int64)
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # descending and stable: sort the reversed row ascending, reverse the result back
    n = x.shape[axis]
    rev = np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    return n - 1 - rev


_sort_t = namedtuple("sort", ["values", "indices"])
_topk_t = namedtuple("topk", ["values", "indices"])
_kth_t = namedtuple("kthvalue", ["values", "indices"])
_median_t = namedtuple("median", ["values", "indices"])
_mode_t = namedtuple("mode", ["values", "indices"])


def sort(input: Tensor, dim: Any = None, descending: bool = False, stable: Any = None,
         **kw: Any) -> Any:
    d = _check_dim(_int(_axis(dim, kw, -1)), input.ndim)
    descending = bool(kw.pop("descending", descending))
    _no_more(kw, "sort")
    index = _order(input.data, d, descending).astype(np.int64)
    params = {} if stable is None else {"stable": bool(stable)}
    return _sort_t(apply("sort", input, axis=d, index=index, **params), wrap(index))


def argsort(input: Tensor, dim: Any = None, descending: bool = False, stable: bool = False,
            **kw: Any) -> Tensor:
    d = _check_dim(_int(_axis(dim, kw, -1)), input.ndim)
    _no_more(kw, "argsort")
    return wrap(_order(input.data, d, bool(descending)).astype(np.int64))


def msort(input: Tensor) -> Tensor:
    return sort(input, 0).values


def topk(input: Tensor, k: int, dim: Any = None, largest: bool = True, sorted: bool = True,  # noqa: A002
         **kw: Any) -> Any:
    d = _check_dim(_int(_axis(dim, kw, -1)), input.ndim)
    _no_more(kw, "topk")
    k = _int(k)
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    index = _order(input.data, d, bool(largest))
    if input.ndim:
        index = index[_slices(d, slice(0, k))]
    index = index.astype(np.int64)
    return _topk_t(apply("topk", input, axis=d, index=index), wrap(index))


def kthvalue(input: Tensor, k: int, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
    d = _check_dim(_int(_axis(dim, kw, -1)), input.ndim)
    keep = _keep(keepdim, kw)
    _no_more(kw, "kthvalue")
    k = _int(k)
    n = input.shape[d] if input.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    index = _order(input.data, d, False)
    return _pick_result(_kth_t, "kthvalue", input, d, index, k - 1, keep)


def _pick_result(result: type, name: str, input: Tensor, d: int, order: np.ndarray, at: Any,
                 keep: bool) -> Any:
    """(values, indices) at position ``at`` of ``order`` along ``d``."""
    if input.ndim == 0:
        return result(apply(name, input, axis=0, index=np.zeros((), np.int64)),
                      wrap(np.zeros((), np.int64)))
    index = np.take_along_axis(order, np.broadcast_to(np.asarray(at), order.shape[:d] + (1,)
                               + order.shape[d + 1:]).astype(np.intp), d).astype(np.int64)
    values = apply(name, input, axis=d, index=index, keepdims=keep)
    return result(values, wrap(index if keep else index.squeeze(d)))


def median(input: Tensor, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
    d = _axis(dim, kw, None)
    keep = _keep(keepdim, kw)
    _no_more(kw, "median")
    if d is None:
        return apply("median", input)
    d = _check_dim(_int(d), input.ndim)
    x = input.data
    order = _order(x, d, False)
    if input.ndim == 0:
        return _pick_result(_median_t, "median_dim", input, d, order, 0, keep)
    n = x.shape[d]
    if n == 0:
        raise IndexError(f"median(): Expected reduction dim {d} to have non-zero size.")
    at = np.full(x.shape[:d] + (1,) + x.shape[d + 1:], (n - 1) // 2)
    if x.dtype.kind in "fc":  # a row with NaN: its (first) NaN
        nan = np.isnan(x)
        first = np.argmax(np.take_along_axis(nan, order, d), axis=d, keepdims=True)
        at = np.where(nan.any(axis=d, keepdims=True), first, at)
    return _pick_result(_median_t, "median_dim", input, d, order, at, keep)


def _median_fwd(a):
    if a.size == 0:
        return np.asarray(np.nan, a.dtype)
    flat = np.sort(a.reshape(-1))  # NaN last: a NaN anywhere makes the median NaN
    if a.dtype.kind in "fc" and np.isnan(flat[-1]):
        return np.asarray(np.nan, a.dtype)
    return np.asarray(flat[(flat.size - 1) // 2])


# median(): ties share the gradient evenly (torch's evenly_distribute_backward), as max()
defop("median", _median_fwd, "MedianBackward0", vjp=(_full_extreme_vjp,),
      formulas=("∂/∂a = g·[a = out] / #ties",), saves=("a ans",))


def mode(input: Tensor, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
    """The most frequent value (the smallest one among equally frequent), at its last index."""
    d = _check_dim(_int(_axis(dim, kw, -1)), input.ndim)
    keep = _keep(keepdim, kw)
    _no_more(kw, "mode")
    if input.ndim == 0:
        return _pick_result(_mode_t, "mode", input, d, np.zeros((), np.int64), 0, keep)
    x = np.moveaxis(input.data, d, -1)
    count = (x[..., :, None] == x[..., None, :]).sum(-1)
    best = count.max(-1, keepdims=True)
    cand = np.where((count == best) & ~_isnan(x), x, _top(x.dtype))
    value = cand.min(-1, keepdims=True)
    n = x.shape[-1]
    last = n - 1 - np.argmax(np.flip(x == value, -1), axis=-1, keepdims=True)
    index = np.moveaxis(last, -1, d).astype(np.int64)
    values = apply("mode", input, axis=d, index=index, keepdims=keep)
    return _mode_t(values, wrap(index if keep else index.squeeze(d)))


def _isnan(x: np.ndarray) -> np.ndarray:
    return np.isnan(x) if x.dtype.kind in "fc" else np.zeros(x.shape, bool)


def _top(dtype: np.dtype) -> Any:
    return np.inf if dtype.kind in "fc" else (True if dtype.kind == "b" else np.iinfo(dtype).max)


# ---------------------------------------------------------------- one_hot and masks
def _one_hot(a, num_classes=-1):
    if a.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(a.max()) + 1
    if a.size and a.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if a.size and a.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return (a[..., None] == np.arange(num_classes)).astype(np.int64)


defop("one_hot", _one_hot, "", nondiff=True, formulas=("not differentiable",))


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    return apply("one_hot", tensor, num_classes=int(num_classes))


def _masked_fill(a, value, mask):
    value = np.asarray(value)
    return np.where(mask, value.astype(a.dtype, copy=False), a)


defop("masked_fill", _masked_fill,
      lambda inputs, params: "MaskedFillBackward1" if isinstance(inputs[1], Tensor) else "MaskedFillBackward0",
      vjp=(lambda g, ans, a, value, mask: call("where", mask, 0.0, g),
           lambda g, ans, a, value, mask: call("sum", call("where", mask, g, 0.0))),
      formulas=("∂/∂a = g where not mask, 0 elsewhere", "∂/∂value = Σ g over mask"))


def _mask(mask: Any, name: str) -> np.ndarray:
    m = data(mask)
    if not (isinstance(m, np.ndarray) and m.dtype == bool):
        raise RuntimeError(f"{name} only supports boolean masks, but got mask with dtype "
                           f"{getattr(m, 'dtype', type(m).__name__)}")
    return m


def _value(value: Any, name: str) -> Any:
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"{name} only supports a 0-dimensional value tensor, but got tensor "
                           f"with {value.ndim} dimension(s).")
    return value


def masked_fill(input: Tensor, mask: Any, value: Any) -> Tensor:
    return apply("masked_fill", input, _value(value, "masked_fill_"), mask=_mask(mask, "masked_fill_"))


def masked_fill_(self: Tensor, mask: Any, value: Any) -> Tensor:
    return inplace(self, "masked_fill", _value(value, "masked_fill_"), mask=_mask(mask, "masked_fill_"))


def _masked_select(a, mask):
    shape = np.broadcast_shapes(a.shape, mask.shape)
    return np.broadcast_to(a, shape)[np.broadcast_to(mask, shape)]


def _masked_select_vjp(g, ans, a, mask):
    shape = np.broadcast_shapes(np.shape(a), mask.shape)
    return call("index_backward", g, shape=shape, index=np.broadcast_to(mask, shape))


defop("masked_select", _masked_select, "MaskedSelectBackward0", vjp=(_masked_select_vjp,),
      formulas=("∂/∂a = g put back where mask, 0 elsewhere",))


def masked_select(input: Tensor, mask: Any) -> Tensor:
    return apply("masked_select", input, mask=_mask(mask, "masked_select:"))


def _masked_scatter(a, source, mask):
    shape = np.broadcast_shapes(a.shape, mask.shape)
    m = np.broadcast_to(mask, shape)
    count = int(m.sum())
    if source.size < count:
        raise RuntimeError("masked_scatter: expected source to have at least as many elements "
                           "as the ones selected by the mask")
    out = np.array(np.broadcast_to(a, shape))
    out[m] = source.reshape(-1)[:count]
    return out


def _masked_scatter_src_vjp(g, ans, a, source, mask):
    m = np.broadcast_to(mask, np.shape(g))
    picked = call("getitem", g, index=m)
    flat = call("index_backward", picked, shape=(int(np.prod(np.shape(source))),),
                index=slice(0, int(m.sum())))
    return call("reshape", flat, shape=np.shape(source))


defop("masked_scatter", _masked_scatter, "MaskedScatterBackward0",
      vjp=(lambda g, ans, a, source, mask: call("where", mask, 0.0, g), _masked_scatter_src_vjp),
      formulas=("∂/∂a = g where not mask", "∂/∂source = g's masked entries, in order"))


def masked_scatter(input: Tensor, mask: Any, source: Tensor) -> Tensor:
    return apply("masked_scatter", input, source, mask=_mask(mask, "masked_scatter_"))


def masked_scatter_(self: Tensor, mask: Any, source: Tensor) -> Tensor:
    return inplace(self, "masked_scatter", source, mask=_mask(mask, "masked_scatter_"))


# ---------------------------------------------------------------- triangles and diagonals
defop("triu", lambda a, diagonal=0: np.triu(a, diagonal), "TriuBackward0",
      vjp=(lambda g, ans, a, diagonal=0: call("triu", g, diagonal=diagonal),),
      formulas=("∂/∂a = triu(g)",))
defop("tril", lambda a, diagonal=0: np.tril(a, diagonal), "TrilBackward0",
      vjp=(lambda g, ans, a, diagonal=0: call("tril", g, diagonal=diagonal),),
      formulas=("∂/∂a = tril(g)",))


def _triangle(name: str):
    def fn(input: Tensor, diagonal: int = 0) -> Tensor:
        if input.ndim < 2:
            raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
        return apply(name, input, diagonal=_int(diagonal))
    fn.__name__ = fn.__qualname__ = name
    return fn


triu, tril = _triangle("triu"), _triangle("tril")


def _diag_index(shape: tuple, offset: int, dim1: int, dim2: int) -> tuple:
    """The index of the ``offset`` diagonal of dims ``dim1``, ``dim2`` (torch's layout: the
    other dims in order, then the diagonal last)."""
    n1, n2 = shape[dim1], shape[dim2]
    k = builtins.max(0, builtins.min(n1 + builtins.min(offset, 0), n2 - builtins.max(offset, 0)))
    i = np.arange(k) - builtins.min(offset, 0)
    j = np.arange(k) + builtins.max(offset, 0)
    rest = [d for d in range(len(shape)) if d not in (dim1, dim2)]
    nd = len(rest) + 1
    grids = {d: np.arange(shape[d]).reshape([-1 if a == p else 1 for a in range(nd)])
             for p, d in enumerate(rest)}
    last = [1] * (nd - 1) + [-1]
    grids[dim1], grids[dim2] = i.reshape(last), j.reshape(last)
    return tuple(grids[d] for d in range(len(shape)))


def _diagonal(a, offset=0, dim1=0, dim2=1, copy=False):
    return a[_diag_index(a.shape, offset, dim1, dim2)]


defop("diagonal", _diagonal,
      lambda inputs, params: "DiagonalBackward0_copy" if params.get("copy") else "DiagonalBackward0",
      vjp=(lambda g, ans, a, offset=0, dim1=0, dim2=1, copy=False: call(
          "diagonal_backward", g, shape=a.shape, offset=offset, dim1=dim1, dim2=dim2),),
      formulas=("∂/∂a = g on the diagonal, zeros elsewhere",))


def _diagonal_backward(g, shape, offset, dim1, dim2):
    out = np.zeros(shape, g.dtype)
    out[_diag_index(tuple(shape), offset, dim1, dim2)] = g
    return out


defop("diagonal_backward", _diagonal_backward, "DiagonalBackwardBackward0",
      vjp=(lambda g, ans, a, shape, offset, dim1, dim2: call(
          "diagonal", g, offset=offset, dim1=dim1, dim2=dim2),),
      formulas=("∂/∂g = diagonal(g′)",))


def _embed_dims(ndim: int, dim1: int, dim2: int) -> tuple:
    d1, d2 = _check_dim(dim1, ndim + 1), _check_dim(dim2, ndim + 1)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return d1, d2


def _diag_embed(a, offset=0, dim1=-2, dim2=-1):
    d1, d2 = _embed_dims(a.ndim, dim1, dim2)
    n = a.shape[-1] + abs(offset)
    rest = list(a.shape[:-1])
    shape = []
    for d in range(a.ndim + 1):
        shape.append(n if d in (d1, d2) else rest.pop(0))
    return _diagonal_backward(a, tuple(shape), offset, d1, d2)


defop("diag_embed", _diag_embed, "DiagEmbedBackward0",
      vjp=(lambda g, ans, a, offset=0, dim1=-2, dim2=-1: call(
          "diagonal", g, offset=offset, **dict(zip(("dim1", "dim2"), _embed_dims(np.ndim(a), dim1, dim2)))),),
      formulas=("∂/∂a = diagonal(g)",))


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    d1, d2 = _check_dim(dim1, input.ndim), _check_dim(dim2, input.ndim)
    if input.ndim < 2 or d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return apply("diagonal", input, offset=int(offset), dim1=d1, dim2=d2)


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    return apply("diag_embed", input, offset=int(offset), dim1=int(dim1), dim2=int(dim2))


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    if input.ndim == 1:
        return apply("diag_embed", input, offset=int(diagonal), dim1=0, dim2=1)
    if input.ndim != 2:
        raise RuntimeError("diag(): Supports 1D or 2D tensors. Got " + f"{input.ndim}D")
    return apply("diagonal", input, offset=int(diagonal), dim1=0, dim2=1, copy=True)


def _trace_vjp(g, ans, a):
    return g * np.eye(*np.shape(a), dtype=data(a).dtype)


defop("trace", lambda a: np.asarray(np.trace(a)), "TraceBackward0", vjp=(_trace_vjp,),
      formulas=("∂/∂a = g·I",))


def trace(input: Tensor) -> Tensor:
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    if input.dtype.kind in "biu":
        input = input.to(np.int64)
    return apply("trace", input)


# ---------------------------------------------------------------- moving entries
def _roll(a, shifts, dims=None):
    if dims is None:
        return np.roll(a.reshape(-1), shifts).reshape(a.shape)
    return np.roll(a, shifts, dims)


defop("roll", _roll, "RollBackward0",
      vjp=(lambda g, ans, a, shifts, dims=None: call(
          "roll", g, shifts=tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts,
          dims=dims),),
      formulas=("∂/∂a = g rolled back",))


def _ints(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return tuple(_int(i) for i in x)
    return _int(x)


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    shifts, dims = _ints(shifts), None if dims is None else _ints(dims)
    if dims is None:
        if isinstance(shifts, tuple):
            if len(shifts) != 1:
                raise RuntimeError(f"roll: Expected shifts and dims to have the same size, "
                                   f"got {len(shifts)} shifts and no dims")
            shifts = shifts[0]
        return apply("roll", input, shifts=shifts)
    shifts = shifts if isinstance(shifts, tuple) else (shifts,)
    dims = dims if isinstance(dims, tuple) else (dims,)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                           f"dims:{len(dims)}")
    dims = tuple(_check_dim(d, input.ndim) for d in dims)
    return apply("roll", input, shifts=shifts, dims=dims)


defop("rot90", lambda a, k=1, dims=(0, 1): np.rot90(a, k, dims).copy(), "Rot90Backward0",
      vjp=(lambda g, ans, a, k=1, dims=(0, 1): call("rot90", g, k=-k, dims=dims),),
      formulas=("∂/∂a = g rotated back",))


def rot90(input: Tensor, k: int = 1, dims: Any = (0, 1)) -> Tensor:
    dims = tuple(_int(d) for d in dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = _check_dim(dims[0], input.ndim), _check_dim(dims[1], input.ndim)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    return apply("rot90", input, k=_int(k) % 4, dims=(d0, d1))


def fliplr(input: Tensor) -> Tensor:
    from .. import functional as F
    if input.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return F.flip(input, (1,))


def flipud(input: Tensor) -> Tensor:
    from .. import functional as F
    if input.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return F.flip(input, (0,))


def repeat_interleave(input: Tensor, repeats: Any = None, dim: Any = None, *,
                      output_size: Any = None, **kw: Any) -> Tensor:
    """Int ``repeats``: unsqueeze → expand → reshape (torch's own composite, ViewBackward0);
    tensor ``repeats``: index_select with each index repeated."""
    from .. import functional as F
    d = _axis(dim, kw, None)
    _no_more(kw, "repeat_interleave")
    if repeats is None:  # torch.repeat_interleave(counts): the repeated positions
        counts = data(input)
        return wrap(np.repeat(np.arange(counts.size), counts).astype(np.int64))
    if d is None:
        input, d = F.reshape(input, (-1,)), 0
    d = _check_dim(_int(d), input.ndim)
    reps = data(repeats)
    if isinstance(reps, np.ndarray) and reps.size != 1:
        index = np.repeat(np.arange(input.shape[d]), reps).astype(np.int64)
        return F.index_select(input, d, index)
    r = int(np.asarray(reps).reshape(-1)[0]) if isinstance(reps, np.ndarray) else int(reps)
    shape = input.shape
    if input.ndim == 0:
        return F.expand(F.reshape(input, (1,)), (r,))
    up = F.unsqueeze(input, d + 1)
    out = F.expand(up, shape[:d + 1] + (r,) + shape[d + 1:])
    return F.reshape(out, shape[:d] + (shape[d] * r,) + shape[d + 1:])


def tile(input: Tensor, dims: Any, *more: Any) -> Tensor:
    from .. import functional as F
    reps = tuple(dims) if isinstance(dims, (list, tuple)) else (dims, *more)
    reps = (1,) * (input.ndim - len(reps)) + tuple(_int(r) for r in reps)
    return F.repeat(input, reps)


# ---------------------------------------------------------------- index writes
def _index_add(a, source, axis, index, alpha=1):
    out = np.array(a)
    np.add.at(out, _slices(axis, index), source * alpha if alpha != 1 else source)
    return out


def _select_back(g, axis, index, alpha=1):
    picked = call("index_select", g, axis=axis, index=index)
    return picked if alpha == 1 else picked * alpha


defop("index_add", _index_add, "IndexAddBackward0",
      vjp=(lambda g, ans, a, source, axis, index, alpha=1: g,
           lambda g, ans, a, source, axis, index, alpha=1: _select_back(g, axis, index, alpha)),
      formulas=("∂/∂a = g", "∂/∂source = alpha·g at index"))


def _index_copy(a, source, axis, index):
    out = np.array(a)
    out[_slices(axis, index)] = source
    return out


def _zero_at(g, index):
    return call("index_put", g, 0.0, index=index)


defop("index_copy", _index_copy, "IndexCopyBackward0",
      vjp=(lambda g, ans, a, source, axis, index: _zero_at(g, _slices(axis, index)),
           lambda g, ans, a, source, axis, index: _select_back(g, axis, index)),
      formulas=("∂/∂a = g with zeros at index", "∂/∂source = g at index"))


def _index_fill(a, value, axis, index):
    out = np.array(a)
    out[_slices(axis, index)] = np.asarray(value).astype(a.dtype)
    return out


defop("index_fill", _index_fill,
      lambda inputs, params: "IndexFillBackward1" if isinstance(inputs[1], Tensor) else "IndexFillBackward0",
      vjp=(lambda g, ans, a, value, axis, index: _zero_at(g, _slices(axis, np.unique(index))),
           lambda g, ans, a, value, axis, index: call("sum", call(
               "index_select", g, axis=axis, index=np.unique(index)))),
      formulas=("∂/∂a = g with zeros at index", "∂/∂value = Σ g at index"))


def _index_args(input: Tensor, dim: Any, index: Any, kw: dict, name: str) -> tuple:
    d = _check_dim(_int(_axis(dim, kw, None)), input.ndim)
    idx = np.asarray(data(index))
    if idx.dtype.kind not in "iu":
        raise IndexError(f"{name}(): Expected dtype int32/int64 for index")
    if idx.ndim > 1:
        raise IndexError(f"{name}(): Index is supposed to be a vector")
    n = input.shape[d] if input.ndim else 1
    if idx.size and (idx.max() >= n or idx.min() < -n):
        raise IndexError(f"index out of range in self")
    return d, idx.reshape(-1).astype(np.intp) % builtins.max(n, 1)


def _index_op(name: str, value_name: str, in_place: bool):
    def fn(input: Tensor, dim: Any = None, index: Any = None, source: Any = None, *,
           alpha: Any = 1, **kw: Any) -> Tensor:
        src = kw.pop(value_name, source)
        d, idx = _index_args(input, dim, index, kw, name)
        _no_more(kw, name + ("_" if in_place else ""))
        params = {"axis": d, "index": idx}
        if name == "index_add" and alpha != 1:
            params["alpha"] = alpha
        if name == "index_fill":
            src = _value(src, "index_fill_")
        return (inplace(input, name, src, **params) if in_place
                else apply(name, input, src, **params))
    fn.__name__ = fn.__qualname__ = name + ("_" if in_place else "")
    return fn


index_add, index_add_ = _index_op("index_add", "source", False), _index_op("index_add", "source", True)
index_copy, index_copy_ = _index_op("index_copy", "source", False), _index_op("index_copy", "source", True)
index_fill, index_fill_ = _index_op("index_fill", "value", False), _index_op("index_fill", "value", True)


# ----- scatter family
def _scatter_fwd(a, src, axis, index, reduce=None):
    out = np.array(a)
    where = along_axis(index, axis)
    vals = _src_part(src, index) if np.ndim(src) else np.asarray(src).astype(a.dtype)
    if reduce == "add":
        np.add.at(out, where, vals)
    elif reduce == "multiply":
        np.multiply.at(out, where, vals)
    else:
        out[where] = vals
    return out


def _src_part(src, index):
    """``src``'s leading block of ``index``'s shape (torch reads src only there)."""
    return src[tuple(slice(0, n) for n in index.shape)]


def _src_grad(part, src, index):
    """The cotangent of ``src`` from that of its leading block."""
    if tuple(np.shape(src)) == tuple(index.shape):
        return part
    return call("index_backward", part, shape=np.shape(src),
                index=tuple(slice(0, n) for n in index.shape))


def _scatter_src_vjp(g, ans, a, src, axis, index, reduce=None):
    return _src_grad(call("gather", g, axis=axis, index=index), src, index)


defop("scatter", _scatter_fwd,
      lambda inputs, params: "ScatterBackward0" if isinstance(inputs[1], Tensor) else "ScatterBackward1",
      vjp=(lambda g, ans, a, src, axis, index, reduce=None: _zero_at(g, along_axis(index, axis)),
           _scatter_src_vjp),
      formulas=("∂/∂a = g with zeros where written", "∂/∂src = gather(g, dim, index)"))
defop("scatter_add", lambda a, src, axis, index: _scatter_fwd(a, src, axis, index, "add"),
      "ScatterAddBackward0",
      vjp=(lambda g, ans, a, src, axis, index: g,
           lambda g, ans, a, src, axis, index: _scatter_src_vjp(g, ans, a, src, axis, index)),
      formulas=("∂/∂a = g", "∂/∂src = gather(g, dim, index)"))


def _scatter_reduce_fwd(a, src, axis, index, reduce, include_self=True):
    where = along_axis(index, axis)
    vals = _src_part(src, index).astype(a.dtype, copy=False)
    ufunc = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum,
             "amin": np.minimum}[reduce]
    out = np.array(a)
    if not include_self:
        out[where] = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf if a.dtype.kind == "f" else
                      np.iinfo(a.dtype).min, "amin": np.inf if a.dtype.kind == "f" else
                      np.iinfo(a.dtype).max}[reduce]
    ufunc.at(out, where, vals)
    if reduce == "mean":
        count = np.full(a.shape, 1 if include_self else 0, a.dtype)
        np.add.at(count, where, 1)
        count = np.where(count == 0, 1, count)
        out = out / count if a.dtype.kind == "f" else out // count
    return out.astype(a.dtype, copy=False)


def _scattered(shape, axis, index):
    hit = np.zeros(shape, bool)
    hit[along_axis(index, axis)] = True
    return hit


def _count(shape, axis, index, dtype, include_self, src_weight=None, self_weight=None):
    n = (np.ones(shape, dtype) if self_weight is None else self_weight.astype(dtype)) \
        if include_self else np.zeros(shape, dtype)
    np.add.at(n, along_axis(index, axis), 1 if src_weight is None else src_weight.astype(dtype))
    return n


def _sr_self_vjp(g, ans, a, src, axis, index, reduce, include_self=True):
    x, shape = data(a), np.shape(a)
    if reduce == "sum":
        gs = g
    elif reduce == "mean":
        n = _count(shape, axis, index, x.dtype, include_self)
        gs = g / np.where(n == 0, 1, n)
    elif reduce == "prod":
        masked = call("where", x == 0, 1.0, a)  # torch's masked_self (keeps a graph to a)
        gs = g * call("scatter_reduce", masked, src, axis=axis, index=index, reduce="prod",
                      include_self=include_self) / masked
    else:  # amax/amin: ties share evenly (torch's scatter_reduce_backward)
        res = data(ans)
        self_hit = x == res
        src_hit = data(_src_part(src, index)) == np.take_along_axis(res, index, axis)
        n = _count(shape, axis, index, x.dtype, True, src_hit, self_hit)
        gs = g / n * self_hit
    if not include_self:
        gs = call("where", _scattered(shape, axis, index), 0.0, gs)
    return gs


def _sr_src_vjp(g, ans, a, src, axis, index, reduce, include_self=True):
    x, shape = data(a), np.shape(a)
    part = _src_part(src, index)
    if reduce == "sum":
        gp = call("gather", g, axis=axis, index=index)
    elif reduce == "mean":
        n = _count(shape, axis, index, x.dtype, include_self)
        gp = call("gather", g / np.where(n == 0, 1, n), axis=axis, index=index)
    elif reduce == "prod":
        gp = _sr_prod_src(g, ans, a, part, axis, index, include_self)
    else:
        res = data(ans)
        value = np.take_along_axis(res, index, axis)
        src_hit = data(part) == value
        n = _count(shape, axis, index, x.dtype, True, src_hit, x == res)
        gp = call("gather", g / n, axis=axis, index=index) * src_hit
    return _src_grad(gp, src, index)


def _sr_prod_src(g, ans, a, part, axis, index, include_self):
    """torch's rule: g·out / src, except where src is the only zero of its slot (then g times
    the product of the others)."""
    p = data(part)
    zero = p == 0
    zeros_in_slot = np.take_along_axis(_count(np.shape(a), axis, index, p.dtype, False, zero),
                                       index, axis)
    single = zero & (zeros_in_slot == 1)
    others = call("scatter_reduce", a, call("where", single, 1.0, part), axis=axis, index=index,
                  reduce="prod", include_self=include_self)
    with_single = call("gather", g * others, axis=axis, index=index)
    plain = call("gather", g * ans, axis=axis, index=index) / call("where", zero, 1.0, part)
    return call("where", single, with_single, plain)


defop("scatter_reduce", _scatter_reduce_fwd, "ScatterReduceBackward0",
      vjp=(_sr_self_vjp, _sr_src_vjp),
      formulas=("∂/∂a = g (sum), g/count (mean), g·[a = out]/#ties (amax/amin), g·out/a (prod)",
                "∂/∂src = gather of the same"), saves=("a ans", "a ans src"), quiet=True)


def _scatter_args(input: Tensor, dim: Any, index: Any, kw: dict, name: str) -> tuple:
    d = _check_dim(_int(_axis(dim, kw, None)), input.ndim)
    idx = np.asarray(data(index))
    if idx.dtype != np.int64:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    if idx.ndim != builtins.max(input.ndim, 1) and idx.size:
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    n = input.shape[d] if input.ndim else 1
    if idx.size and (idx.max() >= n or idx.min() < 0):
        raise RuntimeError(f"index {int(idx.max())} is out of bounds for dimension {d} with size {n}")
    return d, idx.astype(np.intp)


_REDUCE_OLD = {"add": "add", "multiply": "multiply"}


def _scatter_op(in_place: bool):
    def fn(input: Tensor, dim: Any = None, index: Any = None, src: Any = None, *,
           reduce: Any = None, **kw: Any) -> Tensor:
        src = kw.pop("value", src)
        d, idx = _scatter_args(input, dim, index, kw, "scatter")
        _no_more(kw, "scatter")
        params = {"axis": d, "index": idx}
        if reduce is not None:
            if reduce not in _REDUCE_OLD:
                raise RuntimeError(f"reduce argument must be either add or multiply. Got {reduce}")
            params["reduce"] = reduce
        if in_place:
            return inplace(input, "scatter", src, **params)
        return apply("scatter", input, src, **params)
    fn.__name__ = fn.__qualname__ = "scatter_" if in_place else "scatter"
    return fn


scatter, scatter_ = _scatter_op(False), _scatter_op(True)


def _scatter_add_op(in_place: bool):
    def fn(input: Tensor, dim: Any = None, index: Any = None, src: Any = None, **kw: Any) -> Tensor:
        d, idx = _scatter_args(input, dim, index, kw, "scatter_add")
        _no_more(kw, "scatter_add")
        if in_place:
            return inplace(input, "scatter_add", src, axis=d, index=idx)
        return apply("scatter_add", input, src, axis=d, index=idx)
    fn.__name__ = fn.__qualname__ = "scatter_add_" if in_place else "scatter_add"
    return fn


scatter_add, scatter_add_ = _scatter_add_op(False), _scatter_add_op(True)


def _scatter_reduce_op(in_place: bool):
    def fn(input: Tensor, dim: Any = None, index: Any = None, src: Any = None, reduce: Any = None,
           *, include_self: bool = True, **kw: Any) -> Tensor:
        d, idx = _scatter_args(input, dim, index, kw, "scatter_reduce")
        _no_more(kw, "scatter_reduce")
        if reduce not in ("sum", "prod", "mean", "amax", "amin"):
            raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, "
                               f"got {reduce}")
        params = {"axis": d, "index": idx, "reduce": reduce, "include_self": bool(include_self)}
        if in_place:
            return inplace(input, "scatter_reduce", src, **params)
        return apply("scatter_reduce", input, src, **params)
    fn.__name__ = fn.__qualname__ = "scatter_reduce_" if in_place else "scatter_reduce"
    return fn


scatter_reduce, scatter_reduce_ = _scatter_reduce_op(False), _scatter_reduce_op(True)


# ----- take
def _take_vjp(g, ans, a, index):
    flat = call("index_backward", g, shape=(int(np.prod(np.shape(a))),), index=(index,))
    return call("reshape", flat, shape=np.shape(a))


defop("take", lambda a, index: a.reshape(-1)[index], "TakeBackward0", vjp=(_take_vjp,),
      formulas=("∂/∂a = g added back at the flat indices",))


def take(input: Tensor, index: Any) -> Tensor:
    idx = np.asarray(data(index))
    if idx.dtype != np.int64:
        raise RuntimeError("take(): Expected a long tensor for index, but got " + str(idx.dtype))
    n = input.data.size
    if idx.size and (idx.max() >= n or idx.min() < -n):
        raise IndexError(f"out of range: tried to access index {int(idx.max())} on a tensor of "
                         f"{n} elements.")
    return apply("take", input, index=idx.astype(np.intp) % builtins.max(n, 1))


def take_along_dim(input: Tensor, indices: Any, dim: Any = None, **kw: Any) -> Tensor:
    """gather along ``dim`` after broadcasting input and indices in the other dims
    (``dim=None``: on the flattened input)."""
    from .. import functional as F
    d = _axis(dim, kw, None)
    _no_more(kw, "take_along_dim")
    idx = np.asarray(data(indices))
    if idx.dtype.kind not in "iu":
        raise RuntimeError("torch.take_along_dim(): dtype of indices should be Long but got "
                           f"{idx.dtype}")
    if d is None:
        return F.gather(F.reshape(input, (-1,)), 0, idx.reshape(-1))
    d = _check_dim(_int(d), input.ndim)
    if input.ndim != idx.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {input.ndim} dimensions for input, "
                           f"and {idx.ndim} dimensions for indices")
    shape_in, shape_ix = list(input.shape), list(idx.shape)
    shape_in[d] = shape_ix[d] = 1
    b = np.broadcast_shapes(tuple(shape_in), tuple(shape_ix))
    want_in = b[:d] + (input.shape[d],) + b[d + 1:]
    want_ix = b[:d] + (idx.shape[d],) + b[d + 1:]
    x = input if input.shape == want_in else F.expand(input, want_in)
    idx = np.broadcast_to(idx, want_ix)
    return F.gather(x, d, np.ascontiguousarray(idx) % builtins.max(input.shape[d], 1))


defop("nonzero", lambda a: np.argwhere(a).astype(np.int64), "", nondiff=True,
      formulas=("not differentiable",))


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    if as_tuple:
        x = input.data
        if x.ndim == 0:
            return (wrap(np.zeros(int(bool(x)), np.int64)),)
        return tuple(wrap(i.astype(np.int64)) for i in np.nonzero(x))
    return apply("nonzero", input)


def argwhere(input: Tensor) -> Tensor:
    return apply("nonzero", input)


PUBLIC: tuple[str, ...] = (
    "unbind", "split", "chunk", "tensor_split", "hsplit", "vsplit", "dsplit", "unflatten", "ravel",
    "movedim", "moveaxis", "cumprod", "logcumsumexp", "cummax", "cummin", "sort", "argsort",
    "msort", "topk", "kthvalue", "median", "mode", "one_hot", "masked_fill", "masked_fill_",
    "masked_select", "masked_scatter", "masked_scatter_", "triu", "tril", "diagonal",
    "diag_embed", "diag", "trace", "roll", "rot90", "fliplr", "flipud", "repeat_interleave",
    "tile", "index_add", "index_add_", "index_copy", "index_copy_", "index_fill", "index_fill_",
    "scatter", "scatter_", "scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_",
    "take", "take_along_dim", "nonzero", "argwhere")
METHODS: tuple[str, ...] = tuple(n for n in PUBLIC if n not in ("one_hot",))
