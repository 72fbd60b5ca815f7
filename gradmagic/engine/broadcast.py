"""Broadcasting helpers. ``sum_to`` is the one place where backward undoes broadcasting.

>>> import numpy as np
>>> sum_to(np.ones((2, 3)), (3,)).tolist()
[2.0, 2.0, 2.0]
"""
from __future__ import annotations

from typing import Any

import numpy as np


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    return np.broadcast_shapes(*shapes)


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` (ndarray or Tensor) over the axes broadcasting added to reach ``shape``.
    A ``g`` with fewer dims is reshaped: torch's ``copy_``/``__setitem__`` drop a value's
    leading size-1 dims (``t[...] = v`` with ``v`` of shape (1, 3) into a (3,) slot).

    >>> sum_to(np.ones(3), (1, 3)).shape
    (1, 3)
    """
    lead = len(g.shape) - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    elif lead < 0:
        return g.reshape(shape) if g.shape == tuple(shape[-lead:]) else sum_to(
            g.reshape((1,) * -lead + tuple(g.shape)), shape)
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if ones:
        g = g.sum(axis=ones, keepdims=True)
    return g
