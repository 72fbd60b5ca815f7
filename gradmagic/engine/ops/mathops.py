"""Math ops: einsum and the matrix-product family (addmm, addmv, addbmm, baddbmm, addr,
tensordot, kron), pointwise math (addcmul, addcdiv, atan2, hypot, logaddexp(2), erfc, erfinv,
xlogy, lerp, clamp_min/clamp_max, nan_to_num), distances and norms (cdist, dist, cross,
vector/matrix norms, normalize, cosine_similarity, pairwise_distance) and the resampling
helpers of ``torch.nn.functional`` (pad, interpolate, unfold/fold).

Where torch has one backward node (``AddmmBackward0``, ``CdistBackward0``,
``UpsampleBilinear2DBackward0``) the engine has one op of that name; where torch's function
is itself a composite (tensordot, kron, normalize, cosine_similarity, matrix norms) the
engine composes existing ops, so the graph shows the same steps torch takes.

>>> from gradmagic.engine import tensor
>>> q = tensor([[[1.0, 0.0], [0.0, 2.0]]], requires_grad=True)
>>> s = einsum("bqd,bkd->bqk", q, q)       # attention scores q·kᵀ
>>> s.sum().backward(); q.grad
tensor([[[2., 4.],
         [2., 4.]]])
"""
from __future__ import annotations

import builtins
import math
import string
from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..registry import defop
from ..tensor import Tensor, apply, inplace
from . import call, data
from .reduce import _norm, _norm_vjp

PUBLIC: tuple[str, ...] = (
    "einsum", "tensordot", "kron", "addmm", "addmv", "addbmm", "baddbmm", "addr", "addcmul",
    "addcdiv", "addcmul_", "addcdiv_", "atan2", "arctan2", "hypot", "logaddexp", "logaddexp2",
    "erfc", "erfinv", "xlogy", "lerp", "lerp_", "clamp_min", "clamp_max", "clamp_min_",
    "clamp_max_", "nan_to_num", "nan_to_num_", "cdist", "dist", "cross", "linalg_cross",
    "vector_norm", "matrix_norm", "linalg_norm", "normalize", "cosine_similarity",
    "pairwise_distance", "pad", "interpolate", "unfold", "fold")
METHODS: tuple[str, ...] = (
    "addmm", "addmv", "addbmm", "baddbmm", "addr", "addcmul", "addcdiv", "addcmul_", "addcdiv_",
    "atan2", "arctan2", "hypot", "logaddexp", "logaddexp2", "erfc", "erfinv", "xlogy", "lerp",
    "lerp_", "clamp_min", "clamp_max", "clamp_min_", "clamp_max_", "nan_to_num", "nan_to_num_",
    "cross", "dist", "kron")


def _dtype_of(*xs: Any) -> np.dtype:
    for x in xs:
        if isinstance(x, (np.ndarray, Tensor)) and data(x).dtype.kind == "f":
            return data(x).dtype
    return np.dtype(np.float32)


# ================================================================ einsum
_LETTERS = string.ascii_uppercase + string.ascii_lowercase  # torch's label order: A-Z, a-z


def einsum_subscripts(equation: str, shapes: Sequence[tuple]) -> tuple[list[str], str]:
    """``equation`` with ``...`` spelled out as letters and the implicit output made explicit
    (the letters used once, in alphabetical order, after the ``...`` dims), as torch reads it.

    >>> einsum_subscripts("...ij,jk", [(5, 2, 3), (3, 4)])
    (['Aij', 'jk'], 'Aik')
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        more = "more" if len(shapes) > len(terms) else "fewer"
        raise RuntimeError(f"einsum(): {more} operands were provided than specified in the equation")
    free = [c for c in _LETTERS if c not in eq]
    nell = builtins.max([len(s) - len(t) + 3 for t, s in zip(terms, shapes) if "..." in t],
                        default=0)
    ell = "".join(free[:nell])
    subs = []
    for t, s in zip(terms, shapes):
        if "..." in t:
            k = len(s) - len(t) + 3
            t = t.replace("...", ell[nell - k:])
        if len(t) != len(s):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(t)}) does "
                               f"not match the number of dimensions ({len(s)}) for operand "
                               f"{len(subs)}" + (" and no ellipsis was given" if "..." not in t else ""))
        subs.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = Counter("".join(subs))
        out = ell + "".join(sorted((c for c, n in counts.items() if n == 1 and c not in ell),
                                   key=_LETTERS.index))
    return subs, out


def _letter_sizes(subs: list[str], shapes: Sequence[tuple]) -> dict:
    """Each subscript letter's size, broadcast as torch does: 1 gives way to any size, 0
    included (an empty operand makes an empty contraction, not a size-1 one)."""
    sizes: dict = {}
    for sub, shape in zip(subs, shapes):
        for c, n in zip(sub, shape):
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = n
            elif n not in (1, prev):
                raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes "
                                   f"(subscript {c!r}: {prev} and {n})")
    return sizes


def _einsum(*arrays: np.ndarray, equation: str) -> np.ndarray:
    subs, out = einsum_subscripts(equation, [a.shape for a in arrays])
    sizes = _letter_sizes(subs, [a.shape for a in arrays])
    arrays = tuple(a if a.shape == tuple(sizes[c] for c in s) else  # torch broadcasts size 1
                   np.broadcast_to(a, tuple(sizes[c] for c in s)) for a, s in zip(arrays, subs))
    got = np.einsum(",".join(subs) + "->" + out, *arrays, optimize=len(arrays) > 2)
    return np.asarray(got)


def _einsum_vjp(g, ans, *operands, equation, index=0):
    """g contracted with every other operand, back to operand ``index``'s subscripts: letters it
    alone carries are broadcast, a repeated letter (a diagonal, ``ii``) goes back on the diagonal."""
    subs, out = einsum_subscripts(equation, [x.shape for x in operands])
    sizes = _letter_sizes(subs, [x.shape for x in operands])
    target = subs[index]
    uniq = "".join(dict.fromkeys(target))
    others = [k for k in range(len(operands)) if k != index]
    seen = set(out).union(*[set(subs[k]) for k in others])
    keep = "".join(c for c in uniq if c in seen)
    eq = ",".join([out] + [subs[k] for k in others]) + "->" + keep
    grad = call("einsum", g, *[operands[k] for k in others], equation=eq)
    if keep != uniq:  # letters only this operand has: the gradient is constant along them
        grad = grad.reshape(tuple(sizes[c] if c in keep else 1 for c in uniq))
        grad = call("expand", grad, shape=tuple(sizes[c] for c in uniq))
    if uniq != target:  # a repeated letter: the gradient sits on the diagonal (identity factors)
        free = [c for c in _LETTERS if c not in equation and c not in target]
        renamed, eyes, eye_subs = [], [], []
        for c in target:
            if c in renamed:
                new = free.pop(0)
                eyes.append(np.eye(sizes[c], dtype=data(g).dtype))
                eye_subs.append(c + new)
                c = new
            renamed.append(c)
        grad = call("einsum", grad, *eyes,
                    equation=",".join([uniq] + eye_subs) + "->" + "".join(renamed))
    return grad


def _einsum_name(inputs: tuple, params: dict) -> str:
    """torch's top node: einsum is permute/sum/mul/bmm inside torch (a heuristic of which)."""
    subs, out = einsum_subscripts(params["equation"], [np.shape(data(x)) for x in inputs])
    summed = set("".join(subs)) - set(out)
    if len(inputs) == 1:
        return "SumBackward1" if summed else "PermuteBackward0"
    return "ViewBackward0" if summed else "MulBackward0"


defop("einsum", _einsum, _einsum_name, vjp=(_einsum_vjp,),
      formulas=("∂/∂xᵢ = einsum(g, the other operands) → xᵢ's subscripts",),
      saves=("operands",), promote="same", variadic=True)


def einsum(equation: Any, *operands: Any) -> Tensor:
    """``einsum("ij,jk->ik", a, b)``, ``einsum("ij,jk", [a, b])`` or the sublist form
    ``einsum(a, [0, 1], b, [1, 2], [0, 2])``."""
    if not isinstance(equation, str):  # sublist format
        items = [equation, *operands]
        ops = items[0::2][: len(items) // 2]
        lists = items[1::2]
        out = items[-1] if len(items) % 2 else None
        to = lambda ids: "".join("..." if i is Ellipsis else _LETTERS[26 + i if i < 26 else i - 26]
                                 for i in ids)
        equation = ",".join(to(s) for s in lists) + ("->" + to(out) if out is not None else "")
        operands = tuple(ops)
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return apply("einsum", *operands, equation=equation)


# ================================================================ products (torch composites)
def tensordot(a: Tensor, b: Tensor, dims: Any = 2, out: Any = None) -> Tensor:
    """torch's composite: permute both, reshape to matrices, ``mm``, reshape back."""
    if isinstance(dims, Tensor):
        dims = dims.data.tolist()
    if isinstance(dims, (int, np.integer)):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = dims
        da, db = ([da], [db]) if isinstance(da, (int, np.integer)) else (list(da), list(db))
    da, db = [d % builtins.max(a.ndim, 1) for d in da], [d % builtins.max(b.ndim, 1) for d in db]
    for x, y in zip(da, db):
        if a.shape[x] != b.shape[y]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size "
                               f"{a.shape[x]} in dim {x} and second has size {b.shape[y]} in dim {y}")
    ra, rb = [d for d in range(a.ndim) if d not in da], [d for d in range(b.ndim) if d not in db]
    k = math.prod(a.shape[d] for d in da)
    ma = call("reshape", call("permute", a, dims=tuple(ra + da)),
              shape=(math.prod(a.shape[d] for d in ra), k))
    mb = call("reshape", call("permute", b, dims=tuple(db + rb)),
              shape=(k, math.prod(b.shape[d] for d in rb)))
    return call("reshape", call("mm", ma, mb),
                shape=tuple(a.shape[d] for d in ra) + tuple(b.shape[d] for d in rb))


def kron(a: Tensor, b: Tensor) -> Tensor:
    """torch's composite: interleave the dims of a and b (a product of views), then reshape."""
    nd = builtins.max(a.ndim, b.ndim)
    sa, sb = (1,) * (nd - a.ndim) + a.shape, (1,) * (nd - b.ndim) + b.shape
    ea = call("reshape", a, shape=tuple(x for n in sa for x in (n, 1)))
    eb = call("reshape", b, shape=tuple(x for n in sb for x in (1, n)))
    return call("reshape", call("mul", ea, eb), shape=tuple(m * n for m, n in zip(sa, sb)))


# ================================================================ add + scaled product
def _scaled(inp: np.ndarray, prod: np.ndarray, beta: Any, alpha: Any) -> np.ndarray:
    """beta·input + alpha·prod; beta = 0 ignores input (its NaN and inf too), as torch."""
    out = prod if alpha == 1 else prod * alpha
    if beta == 0:
        return np.array(np.broadcast_to(out, np.broadcast_shapes(inp.shape, out.shape)))
    return out + (inp if beta == 1 else inp * beta)


def _scale(g, factor):
    return g if factor == 1 else g * factor


def _need(x, nd: int, what: str) -> None:
    if np.ndim(x) != nd:
        raise RuntimeError(f"{what} must be a {nd}D tensor" if nd != 2 else f"{what} must be a matrix")


def _addmm(inp, m1, m2, beta=1, alpha=1):
    _need(m1, 2, "mat1"), _need(m2, 2, "mat2")
    return _scaled(inp, m1 @ m2, beta, alpha)


def _addmv(inp, mat, vec, beta=1, alpha=1):
    _need(mat, 2, "mat"), _need(vec, 1, "vec")
    return _scaled(inp, mat @ vec, beta, alpha)


def _addbmm(inp, b1, b2, beta=1, alpha=1):
    _need(b1, 3, "batch1"), _need(b2, 3, "batch2")
    return _scaled(inp, (b1 @ b2).sum(axis=0), beta, alpha)


def _baddbmm(inp, b1, b2, beta=1, alpha=1):
    _need(b1, 3, "batch1"), _need(b2, 3, "batch2")
    return _scaled(inp, b1 @ b2, beta, alpha)


def _addr(inp, v1, v2, beta=1, alpha=1):
    _need(v1, 1, "vec1"), _need(v2, 1, "vec2")
    return _scaled(inp, np.multiply.outer(v1, v2), beta, alpha)


def _input_vjp(g, ans, inp, a, b, beta=1, alpha=1):
    return g * 0 if beta == 0 else _scale(g, beta)


def _mT(x):
    return x.swapaxes(-1, -2)


_PRODUCTS = {  # name: (forward, ∂/∂a, ∂/∂b, formulas)
    "addmm": (_addmm, lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(g @ _mT(b), alpha),
              lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(_mT(a) @ g, alpha),
              ("∂/∂mat1 = α·g·mat2ᵀ", "∂/∂mat2 = α·mat1ᵀ·g")),
    "addmv": (_addmv, lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(g[:, None] * b, alpha),
              lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(_mT(a) @ g, alpha),
              ("∂/∂mat = α·g ⊗ vec", "∂/∂vec = α·matᵀ·g")),
    "addbmm": (_addbmm, lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(g @ _mT(b), alpha),
               lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(_mT(a) @ g, alpha),
               ("∂/∂batch1[i] = α·g·batch2[i]ᵀ", "∂/∂batch2[i] = α·batch1[i]ᵀ·g")),
    "baddbmm": (_baddbmm, lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(g @ _mT(b), alpha),
                lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(_mT(a) @ g, alpha),
                ("∂/∂batch1 = α·g·batch2ᵀ", "∂/∂batch2 = α·batch1ᵀ·g")),
    "addr": (_addr, lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(g @ b, alpha),
             lambda g, ans, inp, a, b, beta=1, alpha=1: _scale(a @ g, alpha),
             ("∂/∂vec1 = α·g·vec2", "∂/∂vec2 = α·gᵀ·vec1")),
}
for _name, (_fwd, _va, _vb, _forms) in _PRODUCTS.items():
    defop(_name, _fwd, _name.capitalize() + "Backward0", vjp=(_input_vjp, _va, _vb),
          formulas=("∂/∂input = β·g", *_forms), saves=("", "b", "a"), promote="same")


def _product(name: str):
    def fn(input: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
        return apply(name, input, a, b, beta=beta, alpha=alpha)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``{name}(input, a, b, *, beta=1, alpha=1)``: β·input + α·(a ∘ b)."
    return fn


addmm, addmv, addbmm, baddbmm, addr = map(_product, _PRODUCTS)


# ================================================================ addcmul / addcdiv
defop("addcmul", lambda x, t1, t2, value=1: x + value * t1 * t2, "AddcmulBackward0",
      vjp=(lambda g, ans, x, t1, t2, value=1: g,
           lambda g, ans, x, t1, t2, value=1: g * (t2 * value),
           lambda g, ans, x, t1, t2, value=1: g * (t1 * value)),
      formulas=("∂/∂input = g", "∂/∂t1 = g·value·t2", "∂/∂t2 = g·value·t1"),
      saves=("", "t2", "t1"), promote="same")
defop("addcdiv", lambda x, t1, t2, value=1: x + value * t1 / t2, "AddcdivBackward0",
      vjp=(lambda g, ans, x, t1, t2, value=1: g,
           lambda g, ans, x, t1, t2, value=1: g * (value / t2),
           lambda g, ans, x, t1, t2, value=1: -g * value * t1 / (t2 * t2)),
      formulas=("∂/∂input = g", "∂/∂t1 = g·value / t2", "∂/∂t2 = −g·value·t1 / t2²"),
      saves=("", "t2", "t1 t2"), promote="same", quiet=True)


def addcmul(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    return apply("addcmul", input, tensor1, tensor2, value=value)


def addcdiv(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    if all(np.asarray(data(t)).dtype.kind in "iub" for t in (tensor1, tensor2)):
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a future "
                           "release addcdiv will perform a true division of tensor1 and tensor2.")
    return apply("addcdiv", input, tensor1, tensor2, value=value)


def addcmul_(self: Tensor, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    return inplace(self, "addcmul", tensor1, tensor2, value=value)


def addcdiv_(self: Tensor, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    return inplace(self, "addcdiv", tensor1, tensor2, value=value)


# ================================================================ pointwise math
def _two_name(tensor_name: str, scalar_first: str, scalar_second: str):
    def name(inputs: tuple, params: dict) -> str:
        if not isinstance(inputs[0], (Tensor, np.ndarray)):
            return scalar_first
        if not isinstance(inputs[1], (Tensor, np.ndarray)):
            return scalar_second
        return tensor_name
    return name


def _atan2_vjp(i: int):
    """∂/∂a = g·b·r, ∂/∂b = g·(−a)·r with r = 1 / (a² + b²), as torch 2.13 computes them
    (measured): r overflows to ∞ where a² + b² is subnormal, and is 0 at the origin a = b = 0
    through a ``where`` whose other branch is still differentiated, so a second derivative
    there is NaN in torch (0·∞), and here too."""
    def vjp(g, ans, a, b):
        den = a * a + b * b
        recip = 1 / den
        both = np.asarray(data(den) == 0)
        if both.any():
            recip = call("where", both, np.zeros((), _dtype_of(a, b)), recip)
        return g * b * recip if i == 0 else g * -a * recip
    return vjp


defop("atan2", np.arctan2, "Atan2Backward0",
      vjp=(_atan2_vjp(0), _atan2_vjp(1)),
      formulas=("∂/∂a = g·b / (a² + b²)", "∂/∂b = −g·a / (a² + b²)"), saves=("a b", "a b"),
      promote="float", quiet=True)
defop("hypot", np.hypot, "HypotBackward0",
      vjp=(lambda g, ans, a, b: g * a / ans, lambda g, ans, a, b: g * b / ans),
      formulas=("∂/∂a = g·a / out", "∂/∂b = g·b / out"), saves=("a ans", "b ans"),
      promote="float", quiet=True)
defop("logaddexp", np.logaddexp, "LogaddexpBackward0",
      vjp=(lambda g, ans, a, b: g / (1 + np.exp(b - a)),
           lambda g, ans, a, b: g / (1 + np.exp(a - b))),
      formulas=("∂/∂a = g / (1 + exp(b − a))", "∂/∂b = g / (1 + exp(a − b))"),
      saves=("a b", "a b"), promote="float", quiet=True)
defop("logaddexp2", np.logaddexp2, "Logaddexp2Backward0",
      vjp=(lambda g, ans, a, b: g / (1 + 2.0 ** (b - a)),
           lambda g, ans, a, b: g / (1 + 2.0 ** (a - b))),
      formulas=("∂/∂a = g / (1 + 2^(b − a))", "∂/∂b = g / (1 + 2^(a − b))"),
      saves=("a b", "a b"), promote="float", quiet=True)

_erfc = np.frompyfunc(math.erfc, 1, 1)
_erf = np.frompyfunc(math.erf, 1, 1)


def _libm(fn, x: np.ndarray) -> np.ndarray:
    return np.asarray(fn(x), dtype=np.float64).astype(x.dtype, copy=False)


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function: Giles' single-precision approximation, then Newton steps on
    erf (libm) in float64. ±1 give ±inf, |y| > 1 gives NaN, as torch."""
    y64 = np.asarray(y, np.float64)
    with np.errstate(all="ignore"):
        w = -np.log((1 - y64) * (1 + y64))
        small = w < 5
        ws, wl = w - 2.5, np.sqrt(w) - 3
        ps = np.polyval([2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                         0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941], ws)
        pl = np.polyval([-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                         0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682], wl)
        x = np.where(small, ps, pl) * y64
        inner = np.isfinite(x) & (np.abs(y64) < 1)
        for _ in range(3):
            xi = np.where(inner, x, 0.0)
            err = _libm(_erf, xi) - y64
            x = np.where(inner, xi - err / (2 / math.sqrt(math.pi) * np.exp(-xi * xi)), x)
        x = np.where(np.abs(y64) == 1, np.copysign(np.inf, y64), x)
        x = np.where(np.abs(y64) > 1, np.nan, x)
    return x.astype(y.dtype if y.dtype.kind == "f" else np.float32)


defop("erfc", lambda x: _libm(_erfc, x), "ErfcBackward0",
      vjp=(lambda g, ans, x: g * (-2 / math.sqrt(math.pi)) * np.exp(-x * x),),
      formulas=("∂/∂a = −g·2/√π·exp(−a²)",), saves=("x",), promote="float")
defop("erfinv", _erfinv, "ErfinvBackward0",
      vjp=(lambda g, ans, x: g * (math.sqrt(math.pi) / 2) * np.exp(ans * ans),),
      formulas=("∂/∂a = g·√π/2·exp(out²)",), saves=("ans",), promote="float", quiet=True)


def _xlogy(x, y):
    x, y = (np.asarray(v) if isinstance(v, np.generic) else v for v in (x, y))
    if not isinstance(x, np.ndarray):  # a Python number takes the tensor's dtype
        x = np.asarray(x, y.dtype)
    if not isinstance(y, np.ndarray):
        y = np.asarray(y, x.dtype)
    out = np.where(x == 0, np.zeros((), np.result_type(x, y)), x * np.log(y))
    return np.where(np.isnan(y), np.nan, out).astype(out.dtype, copy=False)


def _xlogy_x(g, ans, x, y):
    # torch 2.13: g·log y, except 0 where x = 0 and y = 0 (measured; also at x = 0 for y ≠ 0)
    both = np.asarray((data(x) == 0) & (data(y) == 0))
    ones = np.ones(np.shape(data(x)), _dtype_of(y, x, g))
    return g * call("xlogy", np.where(both, 0, ones).astype(ones.dtype), y)


defop("xlogy", _xlogy, _two_name("XlogyBackward0", "XlogyBackward1", "XlogyBackward2"),
      vjp=(_xlogy_x, lambda g, ans, x, y: g * x / y),
      formulas=("∂/∂x = g·log y  (0 where x = y = 0)", "∂/∂y = g·x / y"), saves=("x y", "x y"),
      promote="float", quiet=True)


def atan2(input: Any, other: Any) -> Tensor:
    return apply("atan2", input, other)


arctan2 = atan2


def hypot(input: Any, other: Any) -> Tensor:
    return apply("hypot", input, other)


def logaddexp(input: Any, other: Any) -> Tensor:
    return apply("logaddexp", input, other)


def logaddexp2(input: Any, other: Any) -> Tensor:
    return apply("logaddexp2", input, other)


def erfc(input: Any) -> Tensor:
    return apply("erfc", input)


def erfinv(input: Any) -> Tensor:
    return apply("erfinv", input)


def xlogy(input: Any, other: Any) -> Tensor:
    return apply("xlogy", input, other)


# ---------------------------------------------------------------- lerp
def _lerp(a, b, w):
    if isinstance(w, np.ndarray) and (w.dtype != a.dtype) or b.dtype != a.dtype:
        raise RuntimeError(f"expected dtype {a.dtype} for `end` and `weight` but got dtype "
                           f"{b.dtype if b.dtype != a.dtype else w.dtype}")
    # torch's two-sided formula (exact at both ends)
    return np.where(np.abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w)).astype(a.dtype, copy=False)


def _lerp_name(inputs: tuple, params: dict) -> str:
    return "LerpBackward1" if isinstance(inputs[2], (Tensor, np.ndarray)) else "LerpBackward0"


defop("lerp", _lerp, _lerp_name,
      vjp=(lambda g, ans, a, b, w: g * (1 - w), lambda g, ans, a, b, w: g * w,
           lambda g, ans, a, b, w: g * (b - a)),
      formulas=("∂/∂start = g·(1 − w)", "∂/∂end = g·w", "∂/∂weight = g·(end − start)"),
      saves=("w", "w", "a b"))


def lerp(input: Any, end: Any, weight: Any) -> Tensor:
    return apply("lerp", input, end, weight)


def lerp_(self: Tensor, end: Any, weight: Any) -> Tensor:
    return inplace(self, "lerp", end, weight)


# ---------------------------------------------------------------- clamp_min / clamp_max
def _clamp_one(name: str, node: str, better: Any, keep: Any, formula: str) -> None:
    """clamp_min(x, m) = max(x, m): the gradient goes to x where x is kept (ties: to x)."""
    def vjp_x(g, ans, x, m):
        return g * keep(data(x), data(m))

    def vjp_m(g, ans, x, m):
        return g * ~keep(data(x), data(m))

    defop(name, better, lambda inputs, params: node + ("1" if isinstance(inputs[1], (Tensor, np.ndarray))
                                                     else "0"),
          vjp=(vjp_x, vjp_m), formulas=(formula, "∂/∂bound = g where the bound wins"),
          saves=("x m", "x m"), promote="same")


_clamp_one("clamp_min", "ClampMinBackward", np.maximum, np.greater_equal, "∂/∂x = g·[x ≥ min]")
_clamp_one("clamp_max", "ClampMaxBackward", np.minimum, np.less_equal, "∂/∂x = g·[x ≤ max]")


def clamp_min(input: Any, min: Any) -> Tensor:  # noqa: A002 (torch's names)
    return apply("clamp_min", input, min)


def clamp_max(input: Any, max: Any) -> Tensor:  # noqa: A002
    return apply("clamp_max", input, max)


def clamp_min_(self: Tensor, min: Any) -> Tensor:  # noqa: A002
    return inplace(self, "clamp_min", min)


def clamp_max_(self: Tensor, max: Any) -> Tensor:  # noqa: A002
    return inplace(self, "clamp_max", max)


# ---------------------------------------------------------------- nan_to_num
defop("nan_to_num", lambda x, nan=0.0, posinf=None, neginf=None:
      np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf) if x.dtype.kind == "f" else x.copy(),
      "NanToNumBackward0",
      vjp=(lambda g, ans, x, nan=0.0, posinf=None, neginf=None: g * np.isfinite(data(x)),),
      formulas=("∂/∂a = g·[a finite]",), saves=("x",))


def nan_to_num(input: Any, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> Tensor:
    return apply("nan_to_num", input, nan=nan, posinf=posinf, neginf=neginf)


def nan_to_num_(self: Tensor, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> Tensor:
    return inplace(self, "nan_to_num", nan=nan, posinf=posinf, neginf=neginf)


# ================================================================ cross, dist, cdist
def _cross_dim(shape: tuple, dim: Any) -> int:
    if dim is None:  # torch.cross without dim: the first dim of size 3
        for i, n in enumerate(shape):
            if n == 3:
                return i
        raise RuntimeError("no dimension of size 3 in input")
    return dim


def _cross(a, b, axis=-1):
    if a.ndim != b.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    shape = np.broadcast_shapes(a.shape, b.shape)
    if not shape or shape[axis] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {axis} must have length 3. Got "
                           f"{a.shape[axis] if a.ndim else 0} and {b.shape[axis] if b.ndim else 0}")
    a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    return np.cross(a, b, axis=axis)


defop("cross", _cross, "LinalgCrossBackward0",
      vjp=(lambda g, ans, a, b, axis=-1: call("cross", b, g, axis=axis),
           lambda g, ans, a, b, axis=-1: call("cross", g, a, axis=axis)),
      formulas=("∂/∂a = b × g", "∂/∂b = g × a"), saves=("b", "a"), promote="same")


def cross(input: Tensor, other: Tensor, dim: Any = None) -> Tensor:
    shape = np.broadcast_shapes(input.shape, np.shape(data(other)))
    return apply("cross", input, other, axis=_cross_dim(shape, dim))


def linalg_cross(input: Tensor, other: Tensor, *, dim: int = -1) -> Tensor:
    return apply("cross", input, other, axis=dim)


def _dist(a, b, p=2):
    return _norm(a - b, ord=p)


defop("dist", _dist, "DistBackward0",
      vjp=(lambda g, ans, a, b, p=2: _norm_vjp(g, ans, a - b, ord=p),
           lambda g, ans, a, b, p=2: -_norm_vjp(g, ans, a - b, ord=p)),
      formulas=("∂/∂a = g·(a − b) / ‖a − b‖  (p = 2)", "∂/∂b = −∂/∂a"), saves=("a b ans", "a b ans"),
      promote="float", quiet=True)


def dist(input: Any, other: Any, p: Any = 2) -> Tensor:
    return apply("dist", input, other, p=p)


def _cdist(x1, x2, p=2.0):
    if x1.ndim < 2 or x2.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} "
                           f"X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    return _norm(x1[..., :, None, :] - x2[..., None, :, :], ord=p, axis=-1)


def _cdist_diff_vjp(g, ans, x1, x2, p):
    diff = call("unsqueeze", x1, axis=-2) - call("unsqueeze", x2, axis=-3)
    return _norm_vjp(g, ans, diff, ord=p, axis=-1)


defop("cdist", _cdist, "CdistBackward0",
      vjp=(lambda g, ans, x1, x2, p=2.0: _cdist_diff_vjp(g, ans, x1, x2, p).sum(axis=-2),
           lambda g, ans, x1, x2, p=2.0: -_cdist_diff_vjp(g, ans, x1, x2, p).sum(axis=-3)),
      formulas=("∂/∂x1ᵢ = Σⱼ g_ij·(x1ᵢ − x2ⱼ) / d_ij  (p = 2)",
                "∂/∂x2ⱼ = −Σᵢ g_ij·(x1ᵢ − x2ⱼ) / d_ij  (p = 2)"),
      saves=("x1 x2 ans", "x1 x2 ans"), promote="same", quiet=True)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: Any = None) -> Tensor:
    return apply("cdist", x1, x2, p=p)


# ================================================================ norms (composites of ops)
def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x if dtype is None else call("to", x, dtype=np.dtype(dtype))


def vector_norm(x: Tensor, ord: Any = 2, dim: Any = None, keepdim: bool = False, *,  # noqa: A002
                dtype: Any = None) -> Tensor:
    dim = list(dim) if isinstance(dim, (tuple, list)) else dim
    return apply("norm", _cast(x, dtype), ord=float(ord), axis=dim, keepdims=keepdim)


def matrix_norm(A: Tensor, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False, *,  # noqa: A002
                dtype: Any = None) -> Tensor:
    """'fro' is a vector norm over both dims; ±1 and ±inf are max/min of absolute column/row
    sums (torch's ``abs → sum → amax``); 2, −2 and 'nuc' need an SVD (not implemented)."""
    if A.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 "
                           f"dimensions.")
    A = _cast(A, dtype)
    d0, d1 = (d % A.ndim for d in dim)
    if ord == "fro":
        return apply("norm", A, ord=2, axis=[d0, d1], keepdims=keepdim)
    if ord in ("nuc", 2, -2):
        raise NotImplementedError(f"matrix_norm(ord={ord!r}) needs an SVD")
    if ord not in (1, -1, math.inf, -math.inf):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    rows, cols = (d0, d1) if abs(ord) == 1 else (d1, d0)  # ord 1: sum over rows, then max
    sums = call("sum", call("abs", A), axis=rows, keepdims=True)
    out = call("amax" if ord > 0 else "amin", sums, axis=cols, keepdims=True)
    return out if keepdim else call("squeeze", out, axis=(d0, d1))


def linalg_norm(A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *,  # noqa: A002
                dtype: Any = None) -> Tensor:
    if isinstance(dim, int):
        dim = (dim,)
    if isinstance(ord, str) or (dim is not None and len(dim) == 2) or (
            dim is None and ord is not None and A.ndim == 2):
        return matrix_norm(A, "fro" if ord is None else ord, (-2, -1) if dim is None else dim,
                           keepdim, dtype=dtype)
    if dim is None and ord is not None and A.ndim != 1:
        raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must "
                           f"be 1D or 2D. Got {A.ndim}D.")
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None) -> Tensor:
    """torch's composite: input / norm(input, p, dim, keepdim).clamp_min(eps).expand_as(input)."""
    n = apply("norm", input, ord=p, axis=dim, keepdims=True)
    return input / call("expand", call("clamp_min", n, eps), shape=input.shape)


def _norm_floor(n: Any, eps: float) -> Any:
    """torch clamps the norms in place under no_grad: the value is floored at eps, the
    gradient passes as if it were not (a constant added where the clamp acted)."""
    v = data(n)
    if (v < eps).any():
        return n + np.where(v < eps, eps - v, 0).astype(v.dtype, copy=False)  # (not inf − inf)
    return n


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """torch's composite: Σ (x1 / ‖x1‖)·(x2 / ‖x2‖) over dim, each norm floored at eps."""
    shape = np.broadcast_shapes(x1.shape, x2.shape)
    x1 = x1 if x1.shape == shape else call("expand", x1, shape=shape)
    x2 = x2 if x2.shape == shape else call("expand", x2, shape=shape)
    n1 = _norm_floor(apply("norm", x1, ord=2, axis=dim, keepdims=True), eps)
    n2 = _norm_floor(apply("norm", x2, ord=2, axis=dim, keepdims=True), eps)
    return call("sum", (x1 / n1) * (x2 / n2), axis=dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """torch's composite: norm(x1 − x2 + eps, p) over the last dim."""
    nd = builtins.max(np.ndim(data(x1)), np.ndim(data(x2)))
    return apply("norm", x1 - x2 + eps, ord=p, axis=builtins.max(nd - 1, 0) if nd else None,
                 keepdims=keepdim)


# ================================================================ F.pad
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_pairs(ndim: int, pad: Sequence[int]) -> list:
    """torch's pad tuple (last dim first, (left, right) pairs) as NumPy's per-dim pairs."""
    pairs = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        pairs[ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return pairs


def _pad_constant(x, pad, value):
    pairs = _pad_pairs(x.ndim, pad)
    crop = tuple(slice(-lo if lo < 0 else 0, x.shape[i] + hi if hi < 0 else None)
                 for i, (lo, hi) in enumerate(pairs))
    x = x[crop]
    grow = [(builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in pairs]
    if not any(lo or hi for lo, hi in grow):
        return x.copy()
    return np.pad(x, grow, constant_values=value)


def _pad_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Which input position each output position copies, along one dim."""
    if mode == "reflect" and (lo >= n or hi >= n):
        raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding "
                           f"input dimension, but got: padding ({lo}, {hi}) at dimension of input {n}")
    if mode == "circular" and (lo > n or hi > n):
        raise RuntimeError("Padding value causes wrapping around more than once.")
    idx = np.arange(n)
    idx = idx[builtins.max(-lo, 0): n - builtins.max(-hi, 0)]  # negative: crop first
    return np.pad(idx, (builtins.max(lo, 0), builtins.max(hi, 0)), mode=_PAD_MODES[mode])


def _pad_indices(shape: tuple, pad: Sequence[int], mode: str) -> list:
    k = len(pad) // 2
    if len(pad) % 2 or k > 3 or len(shape) not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {len(shape)}D input tensor.")
    return [(len(shape) - 1 - i, _pad_index(shape[-1 - i], pad[2 * i], pad[2 * i + 1], mode))
            for i in range(k)]


def _pad(x, pad, mode="constant", value=0.0):
    if mode == "constant":
        return _pad_constant(x, pad, 0.0 if value is None else value)
    for axis, idx in _pad_indices(x.shape, pad, mode):
        x = np.take(x, idx, axis=axis)
    return x


def _pad_backward(g, pad, mode, shape):
    """The adjoint of a reflect/replicate/circular pad: each output's g added to its source."""
    for axis, idx in _pad_indices(shape, pad, mode):
        onehot = (idx[:, None] == np.arange(shape[axis])).astype(g.dtype)
        g = np.moveaxis(np.moveaxis(g, axis, -1) @ onehot, -1, axis)
    return g


def _pad_vjp(g, ans, x, pad, mode="constant", value=0.0):
    if mode == "constant":  # cut the border off again (and zero-fill what was cropped)
        return call("pad", g, pad=tuple(-p for p in pad), mode="constant", value=0.0)
    return call("pad_backward", g, pad=pad, mode=mode, shape=x.shape)


def _pad_name(inputs: tuple, params: dict) -> str:
    mode = params.get("mode", "constant")
    if mode == "constant":
        return "ConstantPadNdBackward0"
    if mode == "circular":
        return "CopySlices"  # torch pads circularly with slice copies
    return f"{'Reflection' if mode == 'reflect' else 'Replication'}Pad{len(params['pad']) // 2}DBackward0"


def _pad_backward_name(inputs: tuple, params: dict) -> str:
    mode = params["mode"]
    if mode == "circular":
        return "SliceBackwardBackward0"
    return f"{'Reflection' if mode == 'reflect' else 'Replication'}Pad{len(params['pad']) // 2}DBackwardBackward0"


defop("pad", _pad, _pad_name, vjp=(_pad_vjp,),
      formulas=("∂/∂x = g with the border cut off (reflect/replicate/circular: border added back "
                "onto its source)",))
defop("pad_backward", _pad_backward, _pad_backward_name,
      vjp=(lambda g, ans, grad, pad, mode, shape: call("pad", g, pad=pad, mode=mode),),
      formulas=("∂/∂grad = pad(g′)",))


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Any = None) -> Tensor:
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the input "
                           "dimension but got padding length {} and input of dimension {}".format(
                               len(pad), input.ndim))
    if mode not in ("constant", *_PAD_MODES):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant" and value:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    params = dict(pad=tuple(int(p) for p in pad), mode=mode)
    if mode == "constant":
        params["value"] = 0.0 if value is None else value
    return apply("pad", input, **params)


# ================================================================ F.interpolate
_INTERP_ND = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _interp_matrix(n_in: int, n_out: int, scale: Any, mode: str, align: bool,
                   dtype: np.dtype) -> np.ndarray:
    """The (n_out × n_in) linear map of one spatial dim, with torch's source coordinates."""
    dst = np.arange(n_out)
    W = np.zeros((n_out, n_in), dtype)
    if mode in ("nearest", "nearest-exact"):  # torch computes these indices in float32
        s = np.float32(1.0 / scale if scale else n_in / n_out)
        pos = dst.astype(np.float32) + np.float32(0.5 if mode == "nearest-exact" else 0)
        src = np.minimum(np.floor(pos * s).astype(np.int64), n_in - 1)
        W[dst, src] = 1
        return W
    op = np.float32 if dtype == np.float32 else np.float64
    if align:
        s = op((n_in - 1) / (n_out - 1)) if n_out > 1 else op(0)
        src = s * dst.astype(op)
    else:
        s = op(1.0 / scale) if scale else op(n_in / n_out)
        src = np.maximum(s * (dst.astype(op) + op(0.5)) - op(0.5), op(0))
    lo = np.minimum(src.astype(np.int64), n_in - 1)
    step = (lo < n_in - 1).astype(np.int64)
    lam = np.clip(src - lo.astype(op), op(0), op(1))
    np.add.at(W, (dst, lo), 1 - lam)
    np.add.at(W, (dst, lo + step), lam)
    return W


def _interp_mats(in_shape, size, scales, mode, align, dtype):
    return [_interp_matrix(n_in, n_out, s, mode, align, dtype)
            for n_in, n_out, s in zip(in_shape, size, scales)]


def _interpolate(x, size, scales, mode, align_corners):
    k = len(size)
    for i, W in enumerate(_interp_mats(x.shape[-k:], size, scales, mode, align_corners, x.dtype)):
        axis = x.ndim - k + i
        x = np.moveaxis(np.moveaxis(x, axis, -1) @ W.T, -1, axis)
    return x


def _interpolate_backward(g, size, scales, mode, align_corners, in_size):
    k = len(size)
    for i, W in enumerate(_interp_mats(in_size, size, scales, mode, align_corners, g.dtype)):
        axis = g.ndim - k + i
        g = np.moveaxis(np.moveaxis(g, axis, -1) @ W, -1, axis)
    return g


def _interp_name(suffix: str):
    def name(inputs: tuple, params: dict) -> str:
        mode, k = params["mode"], len(params["size"])
        kind = {"nearest": "Nearest", "nearest-exact": "NearestExact", "linear": "Linear",
                "bilinear": "Bilinear", "trilinear": "Trilinear"}[mode]
        return f"Upsample{kind}{k}D{suffix}"
    return name


defop("interpolate", _interpolate, _interp_name("Backward0"),
      vjp=(lambda g, ans, x, size, scales, mode, align_corners: call(
          "interpolate_backward", g, size=size, scales=scales, mode=mode,
          align_corners=align_corners, in_size=x.shape[-len(size):]),),
      formulas=("∂/∂x = each output's g sent back to the inputs it mixed, times their weights",))
defop("interpolate_backward", _interpolate_backward, _interp_name("BackwardBackward0"),
      vjp=(lambda g, ans, grad, size, scales, mode, align_corners, in_size: call(
          "interpolate", g, size=size, scales=scales, mode=mode, align_corners=align_corners),),
      formulas=("∂/∂grad = interpolate(g′)",))


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: Any = None, recompute_scale_factor: Any = None,
                antialias: bool = False) -> Tensor:
    k = input.ndim - 2
    if mode in _INTERP_ND and _INTERP_ND[mode] != k:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs "
                                  f"{_INTERP_ND[mode] + 2}D input")
    if mode not in ("nearest", "nearest-exact", *_INTERP_ND) or antialias:
        raise NotImplementedError(f"interpolate(mode={mode!r}, antialias={antialias})")
    if k < 1 or k > 3:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {input.ndim}D) for the modes: nearest | linear | bilinear "
                                  f"| bicubic | trilinear | area | nearest-exact (got {mode})")
    if mode.startswith("nearest") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("either size or scale_factor should be defined" if size is None else
                         "only one of size or scale_factor should be defined")
    spatial = input.shape[2:]
    if size is not None:
        size = tuple(int(s) for s in (size if isinstance(size, (list, tuple)) else (size,) * k))
        scales = (None,) * k
    else:
        sf = scale_factor if isinstance(scale_factor, (list, tuple)) else (scale_factor,) * k
        size = tuple(int(math.floor(float(n) * float(s))) for n, s in zip(spatial, sf))
        scales = (None,) * k if recompute_scale_factor else tuple(float(s) for s in sf)
    return apply("interpolate", input, size=size, scales=scales, mode=mode,
                 align_corners=bool(align_corners))


# ================================================================ F.unfold / F.fold
def _pair(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _im2col(x, kernel_size, dilation, padding, stride):
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel_size, dilation, padding, stride
    batched = x.ndim == 4
    xb = x if batched else x[None]
    xp = np.pad(xb, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    oh, ow = (xp.shape[2] - eh) // sh + 1, (xp.shape[3] - ew) // sw + 1
    if oh < 1 or ow < 1:
        raise RuntimeError(f"Given input with spatial size ({x.shape[-2]}, {x.shape[-1]}), "
                           f"kernel_size=({kh}, {kw}), dilation=({dh}, {dw}), padding=({ph}, {pw}), "
                           f"calculated shape of the array of sliding blocks as ({oh}, {ow}), "
                           f"but its components must be at least one.")
    win = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(2, 3))
    win = win[:, :, : sh * (oh - 1) + 1: sh, : sw * (ow - 1) + 1: sw, ::dh, ::dw]
    n, c = xb.shape[:2]
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)
    return cols if batched else cols[0]


def _col2im(cols, output_size, kernel_size, dilation, padding, stride):
    (H, W), (kh, kw), (dh, dw), (ph, pw), (sh, sw) = output_size, kernel_size, dilation, padding, stride
    batched = cols.ndim == 3
    cb = cols if batched else cols[None]
    n, ck, L = cb.shape
    oh, ow = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ck % (kh * kw) or oh * ow != L:
        raise RuntimeError(f"Expected size of input's dimension 2 to match the calculated number of "
                           f"sliding blocks {oh} * {ow} = {oh * ow}, but got input.size(2)={L}.")
    c = ck // (kh * kw)
    blocks = cb.reshape(n, c, kh, kw, oh, ow)
    out = np.zeros((n, c, H + 2 * ph, W + 2 * pw), cols.dtype)
    for i in range(kh):  # one strided slice-add per kernel position (kh·kw, not per element)
        for j in range(kw):
            out[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                j * dw: j * dw + sw * (ow - 1) + 1: sw] += blocks[:, :, i, j]
    out = out[:, :, ph: ph + H, pw: pw + W]
    return out if batched else out[0]


_FOLD = ("kernel_size", "dilation", "padding", "stride")
defop("im2col", _im2col, "Im2ColBackward0",
      vjp=(lambda g, ans, x, kernel_size, dilation, padding, stride: call(
          "col2im", g, output_size=x.shape[-2:], kernel_size=kernel_size, dilation=dilation,
          padding=padding, stride=stride),),
      formulas=("∂/∂x = fold(g): each block's g added back where the block came from",))
defop("col2im", _col2im, "Col2ImBackward0",
      vjp=(lambda g, ans, cols, output_size, kernel_size, dilation, padding, stride: call(
          "im2col", g, kernel_size=kernel_size, dilation=dilation, padding=padding,
          stride=stride),),
      formulas=("∂/∂cols = unfold(g): each block reads its g",))


def unfold(input: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Tensor:
    """``F.unfold`` (im2col): sliding blocks as columns."""
    if input.ndim not in (3, 4):
        raise NotImplementedError(f"Input Error: Only 3D or 4D input Tensors are supported "
                                  f"(got {input.ndim}D)")
    return apply("im2col", input, kernel_size=_pair(kernel_size), dilation=_pair(dilation),
                 padding=_pair(padding), stride=_pair(stride))


def fold(input: Tensor, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Tensor:
    """``F.fold`` (col2im): columns summed back into an image."""
    if input.ndim not in (2, 3):
        raise NotImplementedError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors "
                                  f"are supported (got {input.ndim}D)")
    return apply("col2im", input, output_size=_pair(output_size), kernel_size=_pair(kernel_size),
                 dilation=_pair(dilation), padding=_pair(padding), stride=_pair(stride))
