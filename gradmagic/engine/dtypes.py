"""PyTorch's type promotion, on NumPy dtypes.

Torch differs from NumPy: Python scalars are *weak* (``float32 tensor * 2.0`` stays
float32, ``int64 tensor * 2.5`` becomes the default float32), 0-d tensors rank below
dimensioned tensors of the same category, and categories are bool < int < float.

>>> import numpy as np
>>> result_type(np.zeros(3, np.int64), 2.5)
dtype('float32')
>>> result_type(np.zeros(3, np.float32), np.float64(1.0))
dtype('float32')
"""
from __future__ import annotations

from typing import Any

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
float16 = np.dtype("float16")
int64 = np.dtype("int64")
int32 = np.dtype("int32")
int16 = np.dtype("int16")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

DEFAULT_FLOAT = float32
_DEFAULT = {0: bool_, 1: int64, 2: float32, 3: np.dtype("complex64")}
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def category(dtype: np.dtype) -> int:
    """0 bool, 1 integer, 2 floating, 3 complex."""
    return _CATEGORY[dtype.kind]


def is_floating(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def _operand(x: Any) -> tuple[int, int, np.dtype | None]:
    """(priority, category, dtype): priority 2 = dimensioned tensor, 1 = 0-d, 0 = scalar."""
    data = getattr(x, "data", x) if not isinstance(x, (np.ndarray, np.generic)) else x
    if isinstance(data, np.ndarray):
        return (2 if data.ndim else 1), category(data.dtype), data.dtype
    if isinstance(data, np.generic):
        return 1, category(data.dtype), data.dtype
    if isinstance(data, bool):
        return 0, 0, None
    if isinstance(data, int):
        return 0, 1, None
    if isinstance(data, float):
        return 0, 2, None
    if isinstance(data, complex):
        return 0, 3, None
    raise TypeError(f"unsupported operand type {type(x).__name__}")


def result_type(*operands: Any) -> np.dtype:
    """The dtype torch.result_type would give for these tensors/arrays/scalars."""
    ops = [_operand(x) for x in operands]
    top = max(c for _, c, _ in ops)
    best = max(p for p, c, _ in ops if c == top)
    if best == 0:
        return _DEFAULT[top]
    dtypes = [d for p, c, d in ops if c == top and p == best]
    out = dtypes[0]
    for d in dtypes[1:]:
        out = np.promote_types(out, d)
    return out


def float_result_type(*operands: Any) -> np.dtype:
    """Like result_type, but integer/bool results become the default float (true division, exp)."""
    dt = result_type(*operands)
    return dt if dt.kind in "fc" else DEFAULT_FLOAT


def infer_dtype(data: Any) -> np.dtype:
    """torch.tensor's dtype for Python data: float32 for floats, int64 for ints, bool."""
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return DEFAULT_FLOAT
    if arr.dtype.kind in "iu":
        return int64
    return arr.dtype
