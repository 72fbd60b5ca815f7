"""gradmagic's autograd engine: reverse-mode automatic differentiation on NumPy, with
PyTorch's semantics and a torch-like API. Imports NumPy only.

>>> import gradmagic.engine as ge
>>> x = ge.arange(4.0, requires_grad=True)
>>> y = 2 * ge.dot(x, x)
>>> y.backward()
>>> x.grad
tensor([ 0.,  4.,  8., 12.])
>>> y.grad_fn.name, y.grad_fn.formulas
('MulBackward0', ('∂/∂a = g·b', '∂/∂b = g·a'))

Layout: ``tensor.py`` (Tensor, apply/run), ``node.py``, ``registry.py`` (the op table),
``ops/`` (op declarations by kind), ``backward.py`` (the reverse pass and ``sum_to``),
``accumulate.py`` (summing gradients: pending sums, leaves' ``.grad``),
``autograd.py`` (``backward``/``grad``), ``records.py`` (backward as data),
``functional.py`` (torch-named functions, also the Tensor methods via ``methods.py``),
``dtypes.py`` (torch's promotion), ``factories.py``, ``gradcheck.py``, ``printing.py``.
"""
from __future__ import annotations

from . import ops as _ops  # noqa: F401  (fills REGISTRY)
from . import methods as _methods  # noqa: F401  (binds Tensor methods)
from .autograd import backward, grad
from .backward import toposort
from .records import BackwardRecord, BackwardStep, record_backward
from .broadcast import broadcast_shapes, sum_to
from .dtypes import (bool_, float16, float32, float64, int8, int16, int32, int64, result_type,
                     uint8)
from .factories import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                        linspace, manual_seed, normal, ones, ones_like, rand, randint, randn,
                        tensor, zeros, zeros_like)
from .functional import *  # noqa: F401,F403
from .functional import __all__ as _functional_all
from .gradcheck import gradcheck
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .node import Node
from .registry import REGISTRY, OpDef, defop
from .tensor import Tensor, apply, run

bool = bool_  # noqa: A001  (torch.bool)
float = float32  # noqa: A001  (torch.float)
double, long = float64, int64

__all__ = ["Tensor", "tensor", "apply", "run", "REGISTRY", "OpDef", "defop", "Node", "no_grad",
           "enable_grad", "is_grad_enabled", "set_grad_enabled", "grad", "backward",
           "record_backward", "BackwardRecord", "BackwardStep", "gradcheck", "result_type",
           "sum_to", "broadcast_shapes", "toposort", "arange", "as_tensor", "empty", "empty_like",
           "eye", "from_numpy", "full", "full_like", "linspace", "manual_seed", "normal", "ones",
           "ones_like", "rand", "randint", "randn", "zeros", "zeros_like", "float16", "float32",
           "float64", "int8", "int16", "int32", "int64", "uint8", *_functional_all]
