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
    """Sum ``g`` (ndarray or Tensor) over the axes broadcasting added to reach ``shape``."""
    lead = len(g.shape) - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if ones:
        g = g.sum(axis=ones, keepdims=True)
    return g
