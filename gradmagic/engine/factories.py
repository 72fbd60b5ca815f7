"""Tensor factories with torch's default dtypes (float32 for floats, int64 for integers).

>>> from gradmagic.engine import arange, zeros, tensor
>>> arange(4.0), arange(3).dtype, zeros(2, 3).dtype
(tensor([0., 1., 2., 3.]), dtype('int64'), dtype('float32'))
>>> tensor([1, 2.5]).dtype
dtype('float32')
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes
from .tensor import Tensor, wrap

_GEN = [np.random.default_rng()]


def manual_seed(seed: int) -> None:
    """Seed the engine's own generator (randn, rand, normal, dropout without a mask)."""
    _GEN[0] = np.random.default_rng(seed)


def default_generator() -> np.random.Generator:
    return _GEN[0]


def _make(arr: np.ndarray, dtype: Any, requires_grad: bool) -> Tensor:
    if dtype is not None:
        arr = arr.astype(np.dtype(dtype), copy=False)
    t = wrap(arr)
    return t.requires_grad_(True) if requires_grad else t


def _size(size: tuple) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Copy ``data`` into a new leaf tensor (Python floats become float32, ints int64)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (list, tuple)):
        data = [d.data if isinstance(d, Tensor) else d for d in data] if data else data
    arr = np.array(data)
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
        dtype = dtypes.infer_dtype(arr) if arr.size or arr.dtype.kind != "f" else dtypes.float32
    return _make(arr, dtype, requires_grad)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    return data if isinstance(data, Tensor) and dtype is None else tensor(data, dtype)


def from_numpy(arr: np.ndarray) -> Tensor:
    """Share the array (no copy), keep its dtype."""
    return wrap(arr)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.zeros(_size(size), dtype or dtypes.float32), None, requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.ones(_size(size), dtype or dtypes.float32), None, requires_grad)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    dtype = dtype or dtypes.infer_dtype(fill_value)
    return _make(np.full(_size((size,)), fill_value, dtype), None, requires_grad)


def zeros_like(input: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def ones_like(input: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value: Any, dtype: Any = None) -> Tensor:
    return full(input.shape, fill_value, dtype=dtype or input.dtype)


def empty_like(input: Tensor, dtype: Any = None) -> Tensor:
    return zeros_like(input, dtype)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   for v in (start, end, step))
        dtype = dtypes.int64 if ints else dtypes.float32
    return _make(np.arange(start, end, step, dtype=np.float64 if np.dtype(dtype).kind == "f"
                           else None), dtype, requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    return _make(np.linspace(start, end, steps), dtype or dtypes.float32, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.eye(n, m), dtype or dtypes.float32, requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(_GEN[0].standard_normal(_size(size)), dtype or dtypes.float32, requires_grad)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(_GEN[0].random(_size(size)), dtype or dtypes.float32, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None) -> Tensor:
    if high is None:
        low, high = 0, low
    return _make(_GEN[0].integers(low, high, _size((size,))), dtype or dtypes.int64, False)


def normal(mean: float = 0.0, std: float = 1.0, size: Any = (), dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    return _make(_GEN[0].normal(mean, std, _size((size,))), dtype or dtypes.float32, requires_grad)
