"""JSON-safe summaries of array values (the report dict's **Value**).

Only NumPy is needed here: the recorder turns torch tensors into arrays before
summarising them.

>>> import numpy as np
>>> v = summarize(np.array([0.0, 4.0, np.inf], dtype=np.float32))
>>> v["shape"], v["dtype"], v["data"], v["max"]
([3], 'float32', [0.0, 4.0, 'inf'], 'inf')
>>> summarize(np.zeros((100, 100)), value_limit=64)["data"] is None
True
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Number of elements up to which ``data`` holds the full nested list.
VALUE_LIMIT = 64
#: Number of leading (flattened) elements always given in ``head``.
HEAD = 8


def json_scalar(x: Any) -> Any:
    """Return ``x`` as a JSON-safe scalar: non-finite floats become ``"nan"``,
    ``"inf"``, ``"-inf"`` and complex numbers strings like ``"1+2j"``.

    >>> json_scalar(float("nan")), json_scalar(2), json_scalar(1 + 2j)
    ('nan', 2, '1+2j')
    """
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (complex, np.complexfloating)):
        c = complex(x)
        return f"{_num(c.real)}{'+' if c.imag >= 0 or math.isnan(c.imag) else '-'}{_num(abs(c.imag))}j"
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if math.isfinite(f):
            return f
        return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    return x


def _num(f: float) -> str:
    """Compact text for one component of a complex number."""
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return repr(int(f)) if f.is_integer() and abs(f) < 1e16 else repr(f)


def _clean(obj: Any) -> Any:
    """Replace non-JSON scalars inside nested lists (used only when needed)."""
    if isinstance(obj, list):
        return [_clean(o) for o in obj]
    return json_scalar(obj)


def to_json_list(arr: np.ndarray) -> Any:
    """``arr.tolist()`` made JSON-safe (0-d arrays give a scalar).

    >>> to_json_list(np.array([[1.0, float("-inf")]]))
    [[1.0, '-inf']]
    """
    out = arr.tolist()
    kind = arr.dtype.kind
    if kind == "c" or (kind == "f" and not np.isfinite(arr).all()):
        return _clean(out)
    return out


_NAMES: dict = {}


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``np.float32``, ``torch.float32`` or ``"float32"``.

    >>> dtype_name(np.dtype("int64"))
    'int64'
    """
    got = _NAMES.get(dtype)
    if got is None:
        got = _NAMES[dtype] = _dtype_name(dtype)
    return got


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None)
    if isinstance(name, str):
        return name
    return str(dtype).replace("torch.", "")


def summarize(arr: Any, value_limit: int = VALUE_LIMIT) -> dict[str, Any]:
    """The contract's **Value** dict for an array-like (ndarray, scalar or list).

    ``data`` is the nested list when ``numel <= value_limit``, else ``None``;
    ``head`` is the first ≤ 8 flattened elements; ``min``/``max``/``mean`` are
    ``None`` for empty, boolean and complex arrays.
    """
    a = np.asarray(arr)
    numel = int(a.size)
    if numel <= value_limit and numel and a.dtype.kind in "iuf":
        return _small(a, numel)
    flat = a.reshape(-1)
    summary: dict[str, Any] = {
        "shape": list(a.shape),
        "dtype": dtype_name(a.dtype),
        "numel": numel,
        "data": to_json_list(a) if numel <= value_limit else None,
        "head": to_json_list(flat[:HEAD]),
        "min": None,
        "max": None,
        "mean": None,
    }
    if numel and a.dtype.kind in "iuf":
        with np.errstate(all="ignore"):
            summary["min"] = json_scalar(_MIN(flat))
            summary["max"] = json_scalar(_MAX(flat))
            summary["mean"] = json_scalar(_SUM(flat, dtype=_MEAN_ACC.get(a.dtype.char, np.float64)) / numel)
    return summary


_MIN, _MAX, _SUM = np.minimum.reduce, np.maximum.reduce, np.add.reduce
#: accumulator of a large array's mean: NumPy's pairwise summation in float32 is
#: accurate to a few ulps and three times faster than casting to float64; ints (and
#: anything else) sum in float64
_MEAN_ACC = {"f": np.float32, "e": np.float32, "d": np.float64, "g": np.longdouble}


def _small(a: np.ndarray, numel: int) -> dict[str, Any]:
    """``summarize`` for a small real array, in plain Python (faster than NumPy calls)."""
    flat = a.ravel().tolist()
    if a.dtype.kind == "f" and not all(map(math.isfinite, flat)):
        data, head = _clean(a.tolist()), _clean(flat[:HEAD])
        if any(v != v for v in flat):
            lo = hi = mean = "nan"
        else:
            lo, hi = json_scalar(min(flat)), json_scalar(max(flat))
            mean = json_scalar(math.fsum(flat) / numel) if not (lo == "-inf" and hi == "inf") else "nan"
    else:
        data, head = a.tolist(), flat[:HEAD]
        lo, hi, mean = min(flat), max(flat), math.fsum(flat) / numel
    return {"shape": list(a.shape), "dtype": dtype_name(a.dtype), "numel": numel, "data": data,
            "head": head, "min": lo, "max": hi, "mean": mean}


def zeros_summary(shape: tuple, dtype: Any, value_limit: int = VALUE_LIMIT) -> dict[str, Any]:
    """``summarize(np.zeros(shape, dtype), value_limit)`` without making or reading the
    array (a zeroed gradient of a large leaf costs no pass over memory).

    >>> big = (300, 300)
    >>> zeros_summary(big, np.float32) == summarize(np.zeros(big, np.float32))
    True
    """
    dtype = np.dtype(dtype)
    numel = math.prod(shape)
    if numel <= value_limit or numel <= HEAD:
        return summarize(np.zeros(shape, dtype), value_limit)
    out = summarize(np.zeros(HEAD, dtype), 0)
    out.update(shape=list(shape), numel=numel, data=None)
    return out


def grad_field(arr: Any, value_limit: int = VALUE_LIMIT) -> Any:
    """A leaf's ``grad``/``engine_grad`` entry: nested lists when small, a
    **Value** summary when large, ``None`` when there is no gradient.

    >>> grad_field(np.array([1.0, 2.0]))
    [1.0, 2.0]
    >>> grad_field(None) is None
    True
    """
    if arr is None:
        return None
    a = np.asarray(arr)
    if a.size <= value_limit:
        return to_json_list(a)
    return summarize(a, value_limit)
