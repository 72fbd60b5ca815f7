"""Matrix products: matmul (all of NumPy's/torch's shape cases), dot, mv, mm, bmm, outer, linear.

>>> from gradmagic.engine import tensor
>>> A = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> (A @ A).sum().backward(); A.grad
tensor([[ 7., 11.],
        [ 9., 13.]])
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import defop


def _matmul_a(g, ans, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    if b.ndim == 1:
        return g[..., None] * b          # (…, n) ⊗ (k,) → (…, n, k)
    gm = g[..., None, :] if a.ndim == 1 else g
    out = gm @ b.swapaxes(-1, -2)
    return out[..., 0, :] if a.ndim == 1 else out


def _matmul_b(g, ans, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    if a.ndim == 1:
        return a[:, None] * g[..., None, :]   # (k,) ⊗ (…, m) → (…, k, m)
    gm = g[..., None] if b.ndim == 1 else g
    out = a.swapaxes(-1, -2) @ gm
    return out[..., 0] if b.ndim == 1 else out


def _matmul_name(inputs, params) -> str:
    nd = tuple(x.ndim for x in inputs)
    return {(1, 1): "DotBackward0", (2, 2): "MmBackward0", (2, 1): "MvBackward0",
            (1, 2): "SqueezeBackward4", (3, 3): "BmmBackward0"}.get(nd, "UnsafeViewBackward0")


def _checked(name: str, ndims: tuple[int, int], message: str):
    nd_a, nd_b = ndims
    product = np.dot if name == "dot" else np.matmul

    def fwd(a, b):
        if a.ndim != nd_a or b.ndim != nd_b:
            raise RuntimeError(message.format(a=a.ndim, b=b.ndim))
        return product(a, b)
    return fwd


_MATMUL = dict(vjp=(_matmul_a, _matmul_b), formulas=("∂/∂a = g·bᵀ", "∂/∂b = aᵀ·g"),
               saves=("b", "a"), promote="same")
defop("matmul", np.matmul, _matmul_name, **_MATMUL)
defop("dot", _checked("dot", (1, 1), "1D tensors expected, but got {a}D and {b}D tensors"),
      "DotBackward0", **_MATMUL)
defop("mv", _checked("mv", (2, 1), "vector + matrix @ vector expected, got {a}, {b}"),
      "MvBackward0", **_MATMUL)
defop("mm", _checked("mm", (2, 2), "self must be a matrix"), "MmBackward0", **_MATMUL)
defop("bmm", _checked("bmm", (3, 3), "batch1 must be a 3D tensor"), "BmmBackward0", **_MATMUL)
defop("outer", np.outer, "MulBackward0",
      vjp=(lambda g, ans, a, b: g @ b, lambda g, ans, a, b: a @ g),
      formulas=("∂/∂a = g·b", "∂/∂b = gᵀ·a"), saves=("b", "a"), promote="same")


def _few_rows(x, w) -> bool:
    """Few rows, many outputs (an RNN step's h·W_hhᵀ): OpenBLAS is ~1.4× faster on W·xᵀ
    than on x·Wᵀ; the result is its transpose (an F-ordered array, same values)."""
    return x.ndim == 2 and 8 * x.shape[0] <= w.shape[0] and x.shape[0] <= 256


def transposed_product(w, x, out):
    """``linear``'s x·Wᵀ (no bias) as ``w @ x.T`` written into ``out`` (C-ordered, the
    transposed shape), where its forward computes it that way; else None."""
    if not (_few_rows(x, w) and w.ndim == 2 and w.dtype == x.dtype == out.dtype):
        return None
    return np.matmul(w, x.T, out=out)


def _linear(x, w, b=None):
    if _few_rows(x, w):
        out = (w @ x.T).T
    elif x.ndim > 2 and w.ndim == 2:
        # one GEMM over all leading dims: NumPy's matmul of a stack by a matrix loops over
        # the stack, 2-2.5× slower (a sequence's input projection, a transformer's linears)
        out = (_rows(x) @ w.T).reshape(x.shape[:-1] + (w.shape[0],))
    else:
        out = x @ w.T
    if b is not None:
        out += b
    return out


def _linear_x(g, ans, x, w, b=None):
    if g.ndim > 2 and w.ndim == 2:  # one GEMM, as in ``_linear``
        return (_rows(g) @ w).reshape(tuple(g.shape[:-1]) + (w.shape[1],))
    return g @ w


def _linear_w(g, ans, x, w, b=None):
    return _rows(g).T @ _rows(x)


def _linear_w_factors(g, ans, x, w, b=None):
    """``_linear_w`` as the factors (A, B) of Aᵀ·B, for the engine to sum many at once."""
    if w.ndim != 2 or x.ndim < 1 or not g.dtype == x.dtype == w.dtype:
        return None
    return _rows(g), _rows(x)


def _rows(t):
    """``t`` as a matrix of its last dim (explicit sizes: -1 is ambiguous for empty ``t``)."""
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


def _linear_name(inputs, params) -> str:
    if inputs[0].ndim != 2:
        return "ViewBackward0" if inputs[0].ndim > 2 else "SqueezeBackward4"
    return "AddmmBackward0" if len(inputs) > 2 and inputs[2] is not None else "MmBackward0"


defop("linear", _linear, _linear_name,
      vjp=(_linear_x, _linear_w, lambda g, ans, x, w, b=None: g),
      formulas=("∂/∂x = g·W", "∂/∂W = gᵀ·x", "∂/∂b = Σ g"), saves=("w", "x", ""),
      outer={1: _linear_w_factors})
