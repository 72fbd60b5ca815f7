"""The torch-named public functions. Each one is a single ``apply`` (one engine op per
torch call), and each is also a ``Tensor`` method, as in torch (``x.exp()`` is
``exp(x)``). Both torch's ``dim``/``keepdim`` and NumPy's ``axis``/``keepdims`` work.

>>> from gradmagic.engine import tensor, functional as F
>>> x = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> F.sum(x, dim=0), x.sum(axis=1, keepdims=True).shape
(tensor([4., 6.], grad_fn=<SumBackward1>), (2, 1))
>>> x.max(dim=1)
max(values=tensor([2., 4.], grad_fn=<MaxBackward0>), indices=tensor([1, 1]))
"""
from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any, Sequence

import numpy as np

from ._state import STATE
from .ops import shape as _shape
from .registry import REGISTRY
from .tensor import Tensor, apply, check_inplace, inplace, mark_modified, run1, run2
from .tensor import inplace as _inplace_op

_unset = object()
_MUL, _ADD = REGISTRY["mul"], REGISTRY["add"]


def _dim(dim: Any, axis: Any) -> Any:
    dim = axis if dim is None else dim
    return list(dim) if isinstance(dim, (list, tuple)) else dim


def _sizes(args: tuple) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` both give (2, 3), as torch's size arguments."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return tuple(int(a) for a in args)


# ---------------------------------------------------------------- arithmetic
def add(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    return apply("add", input, other, alpha=alpha) if alpha != 1 else run2(_ADD, input, other)


def sub(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    return apply("sub", input, other, alpha=alpha) if alpha != 1 else apply("sub", input, other)


def rsub(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    return sub(other, input, alpha=alpha)


def mul(input: Any, other: Any) -> Tensor:
    return run2(_MUL, input, other)


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    if rounding_mode == "floor":
        return apply("floor_divide", input, other)
    return apply("div", input, other)


def pow(input: Any, exponent: Any) -> Tensor:  # noqa: A001
    return apply("pow", input, exponent)


def floor_divide(input: Any, other: Any) -> Tensor:
    return apply("floor_divide", input, other)


def remainder(input: Any, other: Any) -> Tensor:
    return apply("remainder", input, other)


def _unary(name: str):
    op = REGISTRY[name]

    def fn(input: Tensor) -> Tensor:
        return run1(op, input)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``{name}(input)`` elementwise (engine op ``{name}``)."
    return fn


neg, exp, log, log1p, expm1, sqrt, rsqrt, square, abs, sign = map(  # noqa: A001
    _unary, ("neg", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "abs", "sign"))
sin, cos, tan, tanh, sigmoid, relu, reciprocal, floor, ceil, round = map(  # noqa: A001
    _unary, ("sin", "cos", "tan", "tanh", "sigmoid", "relu", "reciprocal", "floor", "ceil", "round"))
logical_not, clone, erf, isnan = map(_unary, ("logical_not", "clone", "erf", "isnan"))
negative, true_divide, multiply, subtract, absolute = neg, div, mul, sub, abs


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """max(0, x) + slope·min(0, x); ``inplace=True`` writes it into ``input`` (as
    ``nn.LeakyReLU(0.2, inplace=True)`` in DCGAN's discriminator)."""
    if inplace:
        return _inplace_op(input, "leaky_relu", negative_slope=negative_slope)
    return apply("leaky_relu", input, negative_slope=negative_slope)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(input, negative_slope, inplace=True)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    return apply("gelu", input, approximate=approximate)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return apply("softplus", input, beta=beta, threshold=threshold)


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    return apply("clamp", input, min=min, max=max)


clip = clamp


def maximum(input: Any, other: Any) -> Tensor:
    return apply("maximum", input, other)


def minimum(input: Any, other: Any) -> Tensor:
    return apply("minimum", input, other)


def where(condition: Any, input: Any = _unset, other: Any = _unset) -> Any:
    if input is _unset:
        return tuple(Tensor(i) for i in np.nonzero(_data(condition)))
    return apply("where", condition, input, other)


def _compare(name: str):
    def fn(input: Any, other: Any) -> Tensor:
        return apply(name, input, other)
    fn.__name__ = fn.__qualname__ = name
    return fn


eq, ne, lt, le, gt, ge = map(_compare, ("eq", "ne", "lt", "le", "gt", "ge"))
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne
logical_and, logical_or = _compare("logical_and"), _compare("logical_or")


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


# ---------------------------------------------------------------- reductions
def _reduction(name: str):
    op = REGISTRY[name]

    def fn(input: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
           keepdims: bool | None = None, **kw: Any) -> Tensor:
        if dim is None and axis is None and not keepdim and not keepdims and not kw:
            return run1(op, input)
        keep = bool(keepdim if keepdims is None else keepdims)
        return apply(name, input, axis=_dim(dim, axis), keepdims=keep, **kw)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``{name}(input, dim=None, keepdim=False)`` (also ``axis``/``keepdims``)."
    return fn


sum, mean, prod, amax, amin = map(_reduction, ("sum", "mean", "prod", "amax", "amin"))  # noqa: A001


def _var_like(name: str):
    def fn(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
           correction: int | None = None, axis: Any = None, keepdims: bool | None = None) -> Tensor:
        if isinstance(unbiased, (int, list, tuple)) and not isinstance(unbiased, bool):
            dim, unbiased = unbiased, None  # x.var(0) passes dim positionally
        c = correction if correction is not None else (0 if unbiased is False else 1)
        keep = bool(keepdim if keepdims is None else keepdims)
        return apply(name, input, axis=_dim(dim, axis), keepdims=keep, correction=c)
    fn.__name__ = fn.__qualname__ = name
    return fn


var, std = _var_like("var"), _var_like("std")
MinMax = namedtuple("MinMax", ["values", "indices"])
_max_t = namedtuple("max", ["values", "indices"])
_min_t = namedtuple("min", ["values", "indices"])


def _extreme(name: str, result: type, binary: Any):
    def fn(input: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
           keepdims: bool | None = None) -> Any:
        if isinstance(dim, Tensor):
            return binary(input, dim)
        dim, keep = _dim(dim, axis), bool(keepdim if keepdims is None else keepdims)
        if dim is None:
            return apply(name, input)
        values = apply(name + "_dim", input, axis=dim, keepdims=keep)
        return result(values, apply("arg" + name, input, axis=dim, keepdims=keep))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``{name}(x)``, ``{name}(x, dim)`` → (values, indices), ``{name}(x, other)``."
    return fn


max = _extreme("max", _max_t, maximum)  # noqa: A001
min = _extreme("min", _min_t, minimum)  # noqa: A001


def argmax(input: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    return apply("argmax", input, axis=_dim(dim, axis), keepdims=keepdim)


def argmin(input: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    return apply("argmin", input, axis=_dim(dim, axis), keepdims=keepdim)


def norm(input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, *,
         axis: Any = None, keepdims: bool | None = None) -> Tensor:
    keep = bool(keepdim if keepdims is None else keepdims)
    return apply("norm", input, ord=2 if p is None else p, axis=_dim(dim, axis), keepdims=keep)


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    return apply("logsumexp", input, axis=dim, keepdims=keepdim)


def softmax(input: Tensor, dim: int, dtype: Any = None) -> Tensor:
    return apply("softmax", input if dtype is None else to(input, dtype), axis=dim)


def log_softmax(input: Tensor, dim: int, dtype: Any = None) -> Tensor:
    return apply("log_softmax", input if dtype is None else to(input, dtype), axis=dim)


def cumsum(input: Tensor, dim: Any = None, *, axis: Any = None, dtype: Any = None) -> Tensor:
    if dtype is not None:  # torch casts first (``x.cumsum(0, dtype=torch.float64)``)
        input = to(input, dtype)
    return apply("cumsum", input, axis=_dim(dim, axis))


# ---------------------------------------------------------------- shapes
def reshape(input: Tensor, *shape: Any) -> Tensor:
    return apply("reshape", input, shape=_sizes(shape))


view = reshape


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    shape = input.shape
    if not shape:
        return reshape(input, (1,))
    s, e = start_dim % len(shape), end_dim % len(shape)
    return reshape(input, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def squeeze(input: Tensor, dim: Any = None, *, axis: Any = None) -> Tensor:
    dim = _dim(dim, axis)
    return apply("squeeze", input, axis=tuple(dim) if isinstance(dim, list) else dim)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    return apply("unsqueeze", input, axis=dim)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    return apply("transpose", input, dim0=dim0, dim1=dim1)


swapaxes = swapdims = transpose


def t(input: Tensor) -> Tensor:
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return apply("t", input)


def permute(input: Tensor, *dims: Any) -> Tensor:
    return apply("permute", input, dims=tuple(d % builtins.max(input.ndim, 1) for d in _sizes(dims)))


def expand(input: Tensor, *sizes: Any) -> Tensor:
    return apply("expand", input, shape=_sizes(sizes))


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    return expand(input, other.shape)


def broadcast_to(input: Tensor, size: Sequence[int]) -> Tensor:
    return expand(input, tuple(size))


def repeat(input: Tensor, *repeats: Any) -> Tensor:
    return apply("repeat", input, repeats=_sizes(repeats))


def flip(input: Tensor, dims: Any) -> Tensor:
    return apply("flip", input, dims=tuple(dims) if isinstance(dims, (list, tuple)) else (dims,))


def getitem(input: Tensor, index: Any) -> Tensor:
    return apply("getitem", input, index=_shape.normalize_index(index))


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    return getitem(input, (slice(None),) * (dim % input.ndim) + (slice(start, start + length),))


def select(input: Tensor, dim: int, index: int) -> Tensor:
    return getitem(input, (slice(None),) * (dim % input.ndim) + (index,))


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    return apply("gather", input, axis=dim, index=_data(index))


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    return apply("index_select", input, axis=dim, index=_data(index))


def cat(tensors: Sequence[Tensor], dim: int = 0, *, axis: Any = None) -> Tensor:
    return apply("cat", *tensors, axis=_dim(dim, axis) or 0)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0, *, axis: Any = None) -> Tensor:
    return apply("stack", *tensors, axis=_dim(dim, axis) or 0)


def split(input: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple:
    n = input.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [builtins.min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
    starts = np.cumsum([0] + sizes[:-1])
    return tuple(narrow(input, dim, int(s), int(k)) for s, k in zip(starts, sizes))


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    n = input.shape[dim]
    return split(input, -(-n // chunks) if n else 1, dim)


def contiguous(input: Tensor) -> Tensor:
    return input


def detach(input: Tensor) -> Tensor:
    return input.detach()


def to(input: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    dtype = kwargs.get("dtype")
    for a in args:
        if isinstance(a, (np.dtype, type)) or (isinstance(a, str) and a not in ("cpu", "cuda")):
            dtype = a
    if dtype is None or np.dtype(dtype) == input.dtype:
        return input
    return apply("to", input, dtype=np.dtype(dtype))


def _cast(dtype: np.dtype):
    return lambda input: to(input, dtype)


def type_as(input: Tensor, other: Tensor) -> Tensor:
    return to(input, other.dtype)


# ---------------------------------------------------------------- linear algebra and nn
def _binary(name: str):
    op = REGISTRY[name]

    def fn(input: Tensor, other: Tensor) -> Tensor:
        return run2(op, input, other)
    fn.__name__ = fn.__qualname__ = name
    return fn


matmul, dot, mv, mm, bmm, outer = map(_binary, ("matmul", "dot", "mv", "mm", "bmm", "outer"))
ger, inner = outer, dot


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    if bias is None:
        return apply("linear", input, weight)
    return apply("linear", input, weight, bias)


# the losses (mse_loss, cross_entropy, nll_loss, binary_cross_entropy, ...) are the
# activations family's (engine/ops/nn.py, re-exported below)


def dropout(input: Tensor, mask: Any = None, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout with the keep-``mask`` given from outside (the recorder copies torch's)."""
    if not training or p == 0:
        return input
    if mask is None:
        from .factories import default_generator
        mask = default_generator().random(input.shape) >= p
    return apply("dropout", input, mask=np.asarray(_data(mask), bool), p=p)


# ---------------------------------------------------------------- in-place
def _inplace(name: str):
    def fn(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return inplace(self, name, *args, **kwargs)
    fn.__name__ = fn.__qualname__ = name + "_"
    return fn


add_, sub_, mul_, div_, pow_ = map(_inplace, ("add", "sub", "mul", "div", "pow"))
clamp_, relu_, exp_, neg_, sigmoid_, tanh_ = map(
    _inplace, ("clamp", "relu", "exp", "neg", "sigmoid", "tanh"))
clip_ = clamp_


def zero_(self: Tensor) -> Tensor:
    return inplace(self, "zero")


def fill_(self: Tensor, value: Any) -> Tensor:
    return inplace(self, "fill", value=_data(value))


def copy_(self: Tensor, src: Any) -> Tensor:
    return inplace(self, "copy", src)


def setitem(self: Tensor, index: Any, value: Any) -> None:
    """``self[index] = value`` (torch's ``CopySlices`` when recorded)."""
    index = _shape.normalize_index(index)
    check_inplace(self)
    if STATE.grad_enabled and (self.requires_grad or getattr(value, "requires_grad", False)):
        inplace(self, "index_put", value, index=index)
    else:
        self.data[index] = _data(value)
        mark_modified(self)


# ---------------------------------------------------------------- op families (engine/ops/*.py)
from .ops import FAMILIES as _FAMILIES  # noqa: E402

for _family in _FAMILIES:
    for _public in _family.PUBLIC:
        globals()[_public] = getattr(_family, _public)

__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "builtins", "namedtuple", "Any", "Sequence", "np", "STATE", "Tensor", "apply", "run",
    "REGISTRY",
    "check_inplace", "inplace", "mark_modified", "MinMax")]
