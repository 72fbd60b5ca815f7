"""Format report values the way learners see them in PyTorch: ``tensor([0., 4., 8., 12.])``.

The one place where a Value dict (see docs/contract.md) becomes a string; the text, SVG
and HTML views all use it. Returns plain strings: callers escape them for HTML.

>>> v = {"shape": [4], "dtype": "float32", "numel": 4, "data": [0.0, 4.0, 8.0, 12.0],
...      "head": [0.0, 4.0, 8.0, 12.0], "min": 0.0, "max": 12.0, "mean": 6.0}
>>> preview(v)
'tensor([0., 4., 8., 12.])'
>>> preview({"shape": [], "dtype": "float32", "numel": 1, "data": 28.0, "head": [28.0]})
'tensor(28.)'
>>> preview({"shape": [2], "dtype": "complex64", "numel": 2, "data": ["1+2j", "-0.5j"]})
'tensor([1.+2.0000j, 0.-0.5000j])'
>>> preview({"shape": [3, 0], "dtype": "float32", "numel": 0, "data": [[], [], []]})
'tensor([], size=(3, 0))'
>>> format_shape([2, 3, 4]), format_shape([])
('[2, 3, 4]', 'scalar')
>>> format_err(3.2e-07)
'3.2e-07'
"""
from __future__ import annotations

import math
from typing import Any, Callable

from gradmagic.viz.escape import clean_text

Value = dict[str, Any]
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
STATUS_GLYPH = {"agree": "✓", "differ": "✗", "unchecked": "?", "disabled": "⊘"}
STATUS_WORD = {
    "agree": "agrees",
    "differ": "differs",
    "unchecked": "unchecked",
    "disabled": "not recomputed",
}


def status_text(status: str | None) -> str:
    """``✓ agrees``, ``✗ differs``, ``? unchecked``: a check state with its glyph."""
    status = status or "unchecked"
    return f"{STATUS_GLYPH.get(status, '?')} {STATUS_WORD.get(status, status)}"


def as_value(obj: Any, shape: list[int] | None = None, dtype: str | None = None) -> Value | None:
    """Normalise a Leaf ``grad`` (nested lists, a Value dict or None) to a Value dict or None."""
    if obj is None or isinstance(obj, dict):
        return obj
    flat = list(_flatten(obj))
    if shape is None:
        shape = _shape_of(obj)
    return {"shape": list(shape), "dtype": dtype or "", "numel": len(flat), "data": obj,
            "head": flat[:8], "min": None, "max": None, "mean": None}


def _shape_of(obj: Any) -> list[int]:
    shape = []
    while isinstance(obj, list):
        shape.append(len(obj))
        obj = obj[0] if obj else None
    return shape


def _flatten(obj: Any):
    if isinstance(obj, list):
        for item in obj:
            yield from _flatten(item)
    else:
        yield obj


def to_float(x: Any) -> float | None:
    """A JSON number or ``"nan"``/``"inf"``/``"-inf"`` as a float; None for anything else."""
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        return _NONFINITE.get(x)
    return None


def _style(values: list[Any], dtype: str) -> str:
    """Pick torch's number style for one tensor: int, bool, integral, fixed or sci."""
    if dtype == "bool" or (values and all(isinstance(v, bool) for v in values)):
        return "bool"
    if dtype.startswith(("int", "uint")) or (values and all(
            isinstance(v, int) and not isinstance(v, bool) for v in values) and not
            dtype.startswith(("float", "bfloat", "complex"))):
        return "int"
    finite = [abs(f) for f in map(to_float, values) if f is not None and math.isfinite(f)]
    if not finite:
        return "integral"
    big, nonzero = max(finite), [f for f in finite if f > 0]
    small = min(nonzero) if nonzero else 0.0
    if all(f == int(f) for f in finite):
        return "sci" if big >= 1e8 else "integral"
    if big >= 1e8 or (small and (small < 1e-4 or big / small > 1e3)):
        return "sci"
    return "fixed"


def as_complex(x: Any) -> complex | None:
    """A complex element of a Value (the report's string form ``"1+2j"``) as a complex;
    None for anything else.

    >>> as_complex("1-0.5j"), as_complex("nan+infj"), as_complex("nan"), as_complex(2.0)
    ((1-0.5j), (nan+infj), None, None)
    """
    if not isinstance(x, str) or x in _NONFINITE or not x.endswith("j"):
        return None
    try:
        return complex(x)
    except ValueError:
        return None


def format_number(x: Any, style: str = "fixed") -> str:
    """One element in torch's style (``4.``, ``0.5000``, ``1.0000e-05``, ``nan``, ``True``).

    A complex element uses ``style`` for both parts (``1.+2.j``); ``preview`` picks a style
    per part, as torch does.
    """
    c = as_complex(x)
    if c is not None:
        return format_complex(c, style, style)
    if isinstance(x, str) and x not in _NONFINITE:
        return clean_text(x)
    if style == "bool":
        return "True" if x else "False"
    f = to_float(x)
    if f is None:
        return clean_text(x)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if style == "int":
        return str(int(f))
    if style == "integral":
        return f"{int(f)}."
    if style == "sci":
        return f"{f:.4e}"
    return f"{f:.4f}"


def format_complex(c: complex, real_style: str, imag_style: str) -> str:
    """``1.+2.0000j`` like torch: the real part, the imaginary part's sign, its magnitude."""
    imag = format_number(abs(c.imag) if c.imag == c.imag else c.imag, imag_style)
    sign = "-" if c.imag < 0 else "+"
    return f"{format_number(c.real, real_style)}{sign}{imag}j"


Formatter = Callable[[Any], str]


def _formatter(elements: list[Any], dtype: str) -> Formatter:
    """How to write each element of one tensor: one number style for the whole tensor (two,
    real and imaginary, for complex tensors), as torch chooses them."""
    parts = [as_complex(x) for x in elements]
    if dtype.startswith("complex") or (elements and all(c is not None for c in parts)):
        cs = [c if c is not None else complex(to_float(x) or 0.0) for c, x in zip(parts, elements)]
        re_style = _style([c.real for c in cs], "float")
        im_style = _style([abs(c.imag) for c in cs], "float")
        return lambda x: (format_complex(as_complex(x), re_style, im_style) if as_complex(x) is not None
                          else format_number(x, re_style))
    style = _style(elements, dtype)
    return lambda x: format_number(x, style)


def _nested(data: Any, fmt: Formatter) -> str:
    if isinstance(data, list):
        return "[" + ", ".join(_nested(item, fmt) for item in data) + "]"
    return fmt(data)


def _elements_of(value: Value) -> list[Any]:
    data = value.get("data")
    if data is not None:
        return list(_flatten(data))
    return list(value.get("head") or [])


def preview(value: Value | None, max_chars: int = 40, prefix: str = "tensor") -> str:
    """A torch-like one-line preview of a Value, at most ``max_chars`` characters when possible.

    Small tensors appear in full; longer ones show their first elements and ``…``.
    ``prefix=""`` gives the bare numbers (``[0., 4.]``, ``28.``).
    """
    if value is None:
        return "None"
    wrap = 2 + len(prefix) if prefix else 0
    inner = _inner(value, max_chars - wrap)
    return f"{prefix}({inner})" if prefix else inner


def _inner(value: Value, max_chars: int) -> str:
    shape = list(value.get("shape") or [])
    if shape and 0 in shape:  # torch: tensor([]) and tensor([], size=(3, 0))
        return "[]" if len(shape) == 1 else f"[], size=({', '.join(str(int(n)) for n in shape)})"
    elements = _elements_of(value)
    extremes = [value.get(k) for k in ("min", "max")] if value.get("data") is None else []
    fmt = _formatter(elements + [x for x in extremes if x is not None], str(value.get("dtype") or ""))
    if not shape:
        return fmt(elements[0]) if elements else "…"
    data = value.get("data")
    if data is not None:
        full = _nested(data, fmt)
        if len(full) <= max_chars:
            return full
    return _head_preview(elements, shape, int(value.get("numel") or 0), fmt, max_chars)


def _head_preview(elements: list[Any], shape: list[int], numel: int, fmt: Formatter,
                  max_chars: int) -> str:
    """``tensor([[0., 1., 2., …], …])``: the first elements of the first row that fit."""
    ndim, row = len(shape), int(shape[-1]) if shape else 0
    elements = elements[:row] if ndim > 1 else elements
    row_done = lambda n: n >= row if ndim > 1 else n >= numel  # noqa: E731
    outer = ", …" + "]" * (ndim - 1) if ndim > 1 and numel > row else "]" * (ndim - 1)
    shown: list[str] = []
    for x in elements:
        candidate = shown + [fmt(x)]
        tail = "" if row_done(len(candidate)) else ", …"
        text = f"{'[' * ndim}{', '.join(candidate)}{tail}]{outer}"
        if shown and len(text) > max_chars:
            break
        shown = candidate
    items = shown if row_done(len(shown)) else shown + ["…"]
    return f"{'[' * ndim}{', '.join(items)}]{outer}"


def format_stats(value: Value | None) -> str:
    """``min 0. · max 23. · mean 11.5000`` for a Value with statistics, else ``""``."""
    if not value or value.get("min") is None:
        return ""
    nums = [value.get("min"), value.get("max"), value.get("mean")]
    return " · ".join(f"{k} {format_number(n, _style([n], 'float'))}"
                      for k, n in zip(("min", "max", "mean"), nums) if n is not None)


def format_shape(shape: list[int] | None) -> str:
    """``[2, 3, 4]`` like ``torch.Size``; ``scalar`` for 0-dim; ``?`` when unknown."""
    if shape is None:
        return "?"
    if not shape:
        return "scalar"
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def format_err(err: Any) -> str:
    """A max-error number as ``3.2e-07``; ``0`` for exact; ``—`` when not measured."""
    f = to_float(err)
    if f is None:
        return "—"
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf"
    if f == 0:
        return "0"
    return f"{f:.1e}" if abs(f) < 1e-3 or abs(f) >= 1e4 else f"{f:.4g}"


def format_bytes(n: Any) -> str:
    """``48 B``, ``1.5 KiB``, ``3.0 MiB``."""
    size = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def format_source(source: dict[str, Any] | None) -> str:
    """``cell 3, line 2`` (or ``line 2``) for a source dict; ``""`` when unknown."""
    if not source:
        return ""
    parts = []
    if source.get("cell") is not None:
        parts.append(f"cell {source['cell']}")
    if source.get("line") is not None:
        parts.append(f"line {source['line']}")
    return ", ".join(parts)
