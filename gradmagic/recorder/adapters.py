"""Adapter helpers shared by every section of the mapping table (``mapping.py`` and the
family sections in ``recorder/rows/``): an adapter takes the engine-side arguments of a
torch call (tensors already replaced by their twins) and runs the engine.

>>> from gradmagic.engine import tensor, functional as EF
>>> call(EF.mul)((tensor([2.0]), 3.0), {})
tensor([6.])
"""
from __future__ import annotations

from typing import Any, Callable

import torch

_DROP_IF_DEFAULT = {"out": None, "memory_format": None, "layout": None, "device": None,
                    "pin_memory": False, "non_blocking": False, "copy": False, "inplace": False,
                    "size_average": None, "reduce": None, "weight": None, "generator": None,
                    "pos_weight": None}


def _clean(kwargs: dict) -> dict:
    """Drop keyword arguments that only restate torch's defaults (``weight=None``), and
    ``memory_format``, which sets strides, never values (the engine's arrays have no layout
    to choose: ``p.data.clone(memory_format=torch.preserve_format)`` is how ``copy.deepcopy``
    copies a parameter, as ``nn.TransformerEncoder`` does for each layer).

    >>> _clean({"memory_format": torch.preserve_format, "weight": None, "dim": 1})
    {'dim': 1}
    """
    if not kwargs:
        return kwargs
    out = {}
    for k, v in kwargs.items():
        if k in _DROP_IF_DEFAULT and (v is None or v is _DROP_IF_DEFAULT[k]) or k == "memory_format":
            continue
        if k == "device" and isinstance(v, (str, torch.device)) and torch.device(v).type == "cpu":
            continue
        out[k] = v
    return out


def call(fn: Callable) -> Callable[[Any, dict], Any]:
    """Adapter running engine function ``fn`` with torch's arguments."""
    def adapt(args: Any, kwargs: dict) -> Any:
        return fn(*args, **_clean(kwargs)) if kwargs else fn(*args)
    adapt.__name__ = f"call_{getattr(fn, '__name__', 'fn')}"
    return adapt


def swapped(fn: Callable) -> Callable[[Any, dict], Any]:
    """Adapter for reflected operators: ``Tensor.__rsub__(x, 2)`` is ``2 - x``."""
    return lambda args, kwargs: fn(args[1], args[0])
