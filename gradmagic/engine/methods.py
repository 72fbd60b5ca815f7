"""Tensor methods and operators, bound from :mod:`functional` (as torch does).

>>> from gradmagic.engine import tensor
>>> x = tensor([1.0, 2.0], requires_grad=True)
>>> (-x + 2 ** x / x @ x).grad_fn.name
'AddBackward0'
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes
from . import functional as F
from .autograd import tensor_backward
from .ops import FAMILIES as _FAMILIES
from .registry import REGISTRY
from .tensor import Tensor, apply, inplace, run2

_FUNCTIONS = (
    "add sub mul div pow neg exp log log1p expm1 sqrt rsqrt square abs sign sin cos tan tanh "
    "sigmoid relu reciprocal floor ceil round logical_not clone erf isnan leaky_relu gelu softplus "
    "clamp clip maximum minimum eq ne lt le gt ge logical_and logical_or sum mean prod amax amin "
    "var std max min argmax argmin norm logsumexp softmax log_softmax cumsum reshape view flatten "
    "squeeze unsqueeze transpose swapaxes swapdims t permute expand expand_as broadcast_to repeat "
    "flip narrow select gather index_select split chunk contiguous to type_as matmul dot mv mm "
    "bmm outer add_ sub_ mul_ div_ pow_ clamp_ clip_ relu_ exp_ neg_ sigmoid_ tanh_ zero_ fill_ "
    "copy_ negative multiply subtract true_divide absolute greater less greater_equal less_equal "
    "not_equal").split()
for _name in _FUNCTIONS:
    setattr(Tensor, _name, getattr(F, _name))
for _family in _FAMILIES:  # the op families' methods (engine/ops/*.py ``METHODS``)
    for _name in _family.METHODS:
        setattr(Tensor, _name, getattr(_family, _name))

_CASTS = {"float": dtypes.float32, "double": dtypes.float64, "half": dtypes.float16,
          "long": dtypes.int64, "int": dtypes.int32, "short": dtypes.int16, "bool": dtypes.bool_,
          "byte": dtypes.uint8}
for _name, _dt in _CASTS.items():
    setattr(Tensor, _name, (lambda dt: lambda self: F.to(self, dt))(_dt))
Tensor.astype = lambda self, dtype: F.to(self, dtype)          # NumPy spelling, used by VJPs
Tensor.type = lambda self, dtype=None: str(self.dtype) if dtype is None else F.to(self, dtype)
# a new tensor also for 0-d and 1-d inputs, as torch's (its grad_fn is PermuteBackward0)
Tensor.T = property(lambda self: apply("permute", self, dims=tuple(reversed(range(self.ndim)))))
Tensor.mT = property(lambda self: F.transpose(self, -2, -1))
Tensor.backward = tensor_backward
Tensor.where = lambda self, condition, other: F.where(condition, self, other)


def _swap(fn):
    return lambda self, other: fn(other, self)


_OPERATORS = {
    "__add__": F.add, "__radd__": _swap(F.add), "__sub__": F.sub, "__rsub__": _swap(F.sub),
    "__mul__": F.mul, "__rmul__": _swap(F.mul), "__truediv__": F.div,
    "__rtruediv__": _swap(F.div), "__pow__": F.pow, "__rpow__": _swap(F.pow),
    "__matmul__": F.matmul, "__rmatmul__": _swap(F.matmul), "__neg__": F.neg,
    "__abs__": F.abs, "__eq__": F.eq, "__ne__": F.ne, "__lt__": F.lt, "__le__": F.le,
    "__gt__": F.gt, "__ge__": F.ge, "__invert__": F.logical_not, "__and__": F.logical_and,
    "__or__": F.logical_or, "__getitem__": F.getitem, "__setitem__": F.setitem,
    "__floordiv__": lambda a, b: apply("floor_divide", a, b),
    "__rfloordiv__": lambda a, b: apply("floor_divide", b, a),
    "__mod__": lambda a, b: apply("remainder", a, b),
    "__pos__": lambda a: a,
}
for _name, _fn in _OPERATORS.items():
    setattr(Tensor, _name, _fn)

# the hot operators run their op directly (same as apply, minus the name lookup)
_MUL, _ADD, _SUB = REGISTRY["mul"], REGISTRY["add"], REGISTRY["sub"]
Tensor.__mul__ = lambda self, other: run2(_MUL, self, other)
Tensor.__rmul__ = lambda self, other: run2(_MUL, other, self)
Tensor.__add__ = lambda self, other: run2(_ADD, self, other)
Tensor.__radd__ = lambda self, other: run2(_ADD, other, self)
Tensor.__sub__ = lambda self, other: run2(_SUB, self, other)

for _name, _op in (("__iadd__", "add"), ("__isub__", "sub"), ("__imul__", "mul"),
                   ("__itruediv__", "div")):
    setattr(Tensor, _name, (lambda op: lambda self, other: inplace(self, op, other))(_op))

# NumPy ufuncs on Tensors run engine ops, so VJP rules written with np.exp etc. stay
# differentiable when they receive Tensors (create_graph=True)
_UFUNCS = {np.add: "add", np.subtract: "sub", np.multiply: "mul", np.true_divide: "div",
           np.negative: "neg", np.power: "pow", np.exp: "exp", np.log: "log", np.log1p: "log1p",
           np.expm1: "expm1", np.sqrt: "sqrt", np.sin: "sin", np.cos: "cos", np.tan: "tan",
           np.tanh: "tanh", np.abs: "abs", np.sign: "sign", np.maximum: "maximum",
           np.minimum: "minimum", np.matmul: "matmul", np.square: "square",
           np.reciprocal: "reciprocal", np.floor: "floor", np.equal: "eq", np.not_equal: "ne",
           np.less: "lt", np.less_equal: "le", np.greater: "gt", np.greater_equal: "ge",
           np.logical_not: "logical_not"}


def _array_ufunc(self: Tensor, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    name = _UFUNCS.get(ufunc)
    if method != "__call__" or name is None or kwargs:
        return NotImplemented
    return apply(name, *inputs)


Tensor.__array_ufunc__ = _array_ufunc
