"""torch-like ``repr``: ``tensor([0., 1.], requires_grad=True)``,
``tensor(28., grad_fn=<MulBackward0>)``.

>>> import numpy as np
>>> from gradmagic.engine import Tensor
>>> Tensor(np.array([0.5, 2.0], np.float64))
tensor([0.5000, 2.0000], dtype=torch.float64)
"""
from __future__ import annotations

from typing import Any

import numpy as np

_DEFAULT_DTYPES = ("float32", "int64", "bool")


def _float_formatter(arr: np.ndarray):
    finite = arr[np.isfinite(arr)] if arr.size else arr
    if finite.size == 0 or np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e8:
        width = max((len(f"{v:.0f}") for v in finite.flat), default=1) + 1
        return lambda v: _special(v) or f"{v:.0f}.".rjust(width)
    big = np.abs(finite).max()
    small = np.abs(finite[finite != 0]).min() if (finite != 0).any() else 1
    if big >= 1e8 or small < 1e-4 or big / small > 1000:
        return lambda v: _special(v) or f"{v:.4e}"
    width = len(f"{big:.4f}") + (1 if (finite < 0).any() else 0)
    return lambda v: _special(v) or f"{v:.4f}".rjust(width)


def _special(v: float) -> str:
    return "" if np.isfinite(v) else ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))


def format_data(arr: np.ndarray) -> str:
    if arr.dtype.kind == "f":
        fmt = {"float_kind": _float_formatter(arr)}
    elif arr.dtype.kind == "b":
        width = 5 if not arr.all() else 4
        fmt = {"bool": lambda v: ("True" if v else "False").rjust(width)}
    else:
        fmt = None
    body = np.array2string(arr, separator=", ", formatter=fmt, prefix="tensor(",
                           threshold=1000, edgeitems=3, max_line_width=80)
    return body


def tensor_repr(t: Any) -> str:
    parts = [format_data(t.data)]
    if t.data.size == 0:
        parts[0] = "[]" if t.data.ndim == 1 else f"size={tuple(t.data.shape)}"
    if str(t.data.dtype) not in _DEFAULT_DTYPES:
        parts.append(f"dtype=torch.{t.data.dtype}")
    if t.grad_fn is not None:
        parts.append(f"grad_fn=<{t.grad_fn.name}>")
    elif t.requires_grad:
        parts.append("requires_grad=True")
    return "tensor(" + ", ".join(parts) + ")"
