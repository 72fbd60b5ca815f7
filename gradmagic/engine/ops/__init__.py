"""Op declarations, grouped by kind. Importing this package fills ``REGISTRY``.

VJP helpers used by the rules live here: :func:`call` runs a registered op directly on
ndarrays (plain backward) or through ``apply`` when a Tensor is involved
(``create_graph=True``), so every rule is written once and stays differentiable.

>>> import numpy as np
>>> from gradmagic.engine import tensor
>>> call("exp", np.zeros(2)).tolist()              # a plain ndarray: the forward itself
[1.0, 1.0]
>>> call("exp", tensor([0.0], requires_grad=True))  # a Tensor: a recorded op
tensor([1.], grad_fn=<ExpBackward0>)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import REGISTRY
from ..tensor import Tensor, apply


def call(op_name: str, *args: Any, **params: Any) -> Any:
    """``op_name`` on ndarrays (its forward) or on Tensors (``apply``, recorded)."""
    for a in args:
        if isinstance(a, Tensor):
            return apply(op_name, *args, **params)
    return REGISTRY[op_name].fwd(*args, **params)


def data(x: Any) -> Any:
    """The ndarray behind ``x`` (for masks and indices, which are never differentiated)."""
    return x.data if isinstance(x, Tensor) else x


def norm_axis(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """``dim`` as a sorted tuple of non-negative axes (None: all)."""
    if axis is None or ndim == 0:  # torch accepts dim 0/-1 on 0-d tensors
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if not axes:
        return None
    return tuple(sorted(int(a) % max(ndim, 1) for a in axes))


def unreduce(g: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Bring a reduction's cotangent back to the input's ``shape`` (broadcast)."""
    if not keepdims and axis is not None:
        axes = norm_axis(axis, len(shape))
        g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))
    if isinstance(g, Tensor):
        return apply("expand", g, shape=shape)
    out = np.empty(shape, g.dtype)  # cheaper than np.broadcast_to on small arrays
    out[...] = g
    return out


from . import elementwise, reduce, shape, linalg, nn, subgraph  # noqa: E402,F401  (registration)
# op families: each declares its rules and its torch-named public functions (``PUBLIC``, re-exported
# by ``functional``; ``METHODS``: those that are also Tensor methods)
from . import tensorops, mathops, activations, conv, norm, recurrent  # noqa: E402

FAMILIES = (tensorops, mathops, activations, conv, norm, recurrent)
