"""Scratch arrays that outlive one call: for composites that compute many ops' outputs at
once into buffers of their own (an LSTM layer's gates and states, ops/recurrent.py).

A buffer is handed out again only once nothing refers to it any more (no node, tensor or
view: every view of an array holds a reference to it), so reusing it never changes a value
anyone can see. Keeping them between calls is what makes a training loop's steps reuse the
same memory: freeing ~60 MB per step let the C library give it back to the system and take
it again, page fault by page fault, every step (benchmarks/engine.py C2, 1.2× slower).
At most ``PER_SHAPE`` buffers per shape and ``LIMIT`` bytes in all are kept; ``clear()``
drops them.

>>> import numpy as np
>>> v = take((2, 3), np.dtype("float32"))[0]   # a view keeps its array in use
>>> take((2, 3), np.dtype("float32")) is v.base
False
>>> first = v.base; del v
>>> take((2, 3), np.dtype("float32")) is first  # still held here, by ``first``
False
>>> key = id(first); del first
>>> id(take((2, 3), np.dtype("float32"))) == key
True
"""
from __future__ import annotations

import math
from sys import getrefcount

import numpy as np

PER_SHAPE = 4
LIMIT = 256 << 20
BIG = 1 << 20  # ``big``: arrays the C library maps from the system (and unmaps when freed)
_POOL: dict[tuple, list] = {}  # (shape, dtype) -> buffers, oldest shapes first
_held = [0]                    # bytes in the pool


def take(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialized array of ``shape`` and ``dtype`` that nothing else refers to."""
    key = (shape, dtype)
    buffers = _POOL.get(key)
    if buffers is None:
        buffers = _POOL[key] = []
    else:
        for a in buffers:
            if getrefcount(a) == 3:  # the list, ``a`` and getrefcount's argument
                return a
    a = np.empty(shape, dtype)
    if len(buffers) < PER_SHAPE and a.nbytes <= LIMIT:
        while _held[0] + a.nbytes > LIMIT:
            _drop_oldest()
        buffers.append(a)
        _held[0] += a.nbytes
    return a


def big(shape: tuple, dtype: np.dtype, zero: bool = False) -> np.ndarray:
    """A new array for a one-off result (zero-filled with ``zero``): from the pool when it
    has at least ``BIG`` bytes, else from NumPy as usual (small ones are cheap to allocate,
    and keeping them would fill the pool with every shape a program uses)."""
    if np.dtype(dtype).itemsize * math.prod(shape) < BIG:
        return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    a = take(shape, dtype)
    if zero:
        a.fill(0)
    return a


def _drop_oldest() -> None:
    key = next(iter(_POOL))
    _held[0] -= sum(a.nbytes for a in _POOL.pop(key))


def clear() -> None:
    """Forget every kept buffer (those still in use live on with their users)."""
    _POOL.clear()
    _held[0] = 0
