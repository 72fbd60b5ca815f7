"""Elementwise ops: arithmetic, unary math, activations, comparisons, where, casts.

Each rule returns a cotangent of the output's (broadcast) shape; the engine reduces it
to the input's shape and dtype (``sum_to``) in one place.

>>> from gradmagic.engine import tensor
>>> x = tensor([-1.0, 0.0, 2.0], requires_grad=True)
>>> x.relu().sum().backward(); x.grad   # relu'(0) = 0, as in torch
tensor([0., 0., 1.])
"""
from __future__ import annotations

import math

import numpy as np

from .._quiet import quiet_enter, quiet_exit
from ..registry import defop
from ..tensor import Tensor
from . import call, data

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Exact (libm) error function, elementwise."""
    return np.asarray(_erf(x), dtype=np.float64).astype(x.dtype, copy=False)


def _name(tensor_name: str, scalar_first: str | None = None, scalar_second: str | None = None):
    """Node name that depends on which inputs are tensors (torch's overload names)."""
    def name(inputs: tuple, params: dict) -> str:
        if scalar_first and not isinstance(inputs[0], Tensor):
            return scalar_first
        if scalar_second and not isinstance(inputs[1], Tensor):
            return scalar_second
        return tensor_name
    return name


# ---------------------------------------------------------------- arithmetic
defop("add", lambda a, b, alpha=1: a + b if alpha == 1 else a + alpha * b, "AddBackward0",
      vjp=(lambda g, ans, a, b, alpha=1: g,
           lambda g, ans, a, b, alpha=1: g if alpha == 1 else g * alpha),
      formulas=("∂/∂a = g", "∂/∂b = g·alpha"), promote="same")
defop("sub", lambda a, b, alpha=1: a - b if alpha == 1 else a - alpha * b,
      _name("SubBackward0", scalar_first="RsubBackward1"),
      vjp=(lambda g, ans, a, b, alpha=1: g,
           lambda g, ans, a, b, alpha=1: -g if alpha == 1 else g * -alpha),
      formulas=("∂/∂a = g", "∂/∂b = −g·alpha"), promote="same")
defop("mul", np.multiply, "MulBackward0",
      vjp=(lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a),
      formulas=("∂/∂a = g·b", "∂/∂b = g·a"), saves=("b", "a"), promote="same")
defop("div", lambda a, b: a / b, "DivBackward0",
      # ∂/∂b as torch's div_tensor_other_backward: −g·((a / b) / b), not −g·a / (b·b), whose
      # b·b underflows (b = 1e-12, normalize's eps) and, differentiated again, gives 0/0
      vjp=(lambda g, ans, a, b: g / b, lambda g, ans, a, b: -g * ((a / b) / b)),
      formulas=("∂/∂a = g / b", "∂/∂b = −g·a / b²"), saves=("b", "a b"), promote="float",
      quiet=True)
defop("neg", lambda a: -a, "NegBackward0", vjp=(lambda g, ans, a: -g,), formulas=("∂/∂a = −g",))
defop("reciprocal", lambda a: 1 / a, "ReciprocalBackward0",
      vjp=(lambda g, ans, a: -g * ans * ans,), formulas=("∂/∂a = −g·out²",), saves=("ans",),
      promote="float", quiet=True)


def _pow_base(g, ans, a, b):
    if not isinstance(b, (np.ndarray, Tensor)):  # python exponent: PowBackward0
        return g * 0 if b == 0 else g * (b * a ** (b - 1))
    # torch: exponent 0 gives gradient 0 even where a**-1 is inf
    return call("where", data(b) == 0, 0.0, g * (b * a ** (b - 1)))


def _pow_exponent(g, ans, a, b):
    if not isinstance(a, (np.ndarray, Tensor)):  # python base: PowBackward2
        if a == 0:
            return call("where", data(b) >= 0, 0.0, g * ans * -math.inf)
        return g * ans * math.log(a)
    # torch: where a == 0 and b >= 0 the gradient is 0 (not 0·log 0 = nan)
    return call("where", (data(a) == 0) & (data(b) >= 0), 0.0, g * ans * np.log(a))


defop("pow", lambda a, b: a ** b, _name("PowBackward1", "PowBackward2", "PowBackward0"),
      vjp=(_pow_base, _pow_exponent), formulas=("∂/∂a = g·b·a^(b−1)", "∂/∂b = g·out·ln a"),
      saves=("a b", "a ans"), promote="same", quiet=True)
defop("square", lambda a: a * a, "PowBackward0", vjp=(lambda g, ans, a: g * (2 * a),),
      formulas=("∂/∂a = g·2a",), saves=("a",), promote="same")
def _share(wins: np.ndarray, tie: np.ndarray):
    """1 where this input won, ½ at ties (torch splits the gradient between both), else 0."""
    return np.where(tie, 0.5, 1.0 * wins)


def _extreme(name: str, node: str, better: np.ufunc) -> None:
    sym = ">" if better is np.greater else "<"
    defop(name, np.maximum if better is np.greater else np.minimum, node,
          vjp=(lambda g, ans, a, b: g * _share(better(data(a), data(b)), data(a) == data(b)),
               lambda g, ans, a, b: g * _share(better(data(b), data(a)), data(a) == data(b))),
          formulas=(f"∂/∂a = g·[a {sym} b] (½ at ties)", f"∂/∂b = g·[b {sym} a] (½ at ties)"),
          saves=("a b", "a b"), promote="same")


_extreme("maximum", "MaximumBackward0", np.greater)
_extreme("minimum", "MinimumBackward0", np.less)

# ---------------------------------------------------------------- unary math
defop("exp", np.exp, "ExpBackward0", vjp=(lambda g, ans, a: g * ans,),
      formulas=("∂/∂a = g·out",), saves=("ans",), promote="float")
defop("log", np.log, "LogBackward0", vjp=(lambda g, ans, a: g / a,),
      formulas=("∂/∂a = g / a",), saves=("a",), promote="float", quiet=True)
defop("log1p", np.log1p, "Log1PBackward0", vjp=(lambda g, ans, a: g / (a + 1),),
      formulas=("∂/∂a = g / (1 + a)",), saves=("a",), promote="float", quiet=True)
defop("expm1", np.expm1, "Expm1Backward0", vjp=(lambda g, ans, a: g * (ans + 1),),
      formulas=("∂/∂a = g·(out + 1)",), saves=("ans",), promote="float", quiet=True)
defop("sqrt", np.sqrt, "SqrtBackward0", vjp=(lambda g, ans, a: g / (2 * ans),),
      formulas=("∂/∂a = g / (2·out)",), saves=("ans",), promote="float", quiet=True)
defop("rsqrt", lambda a: 1 / np.sqrt(a), "RsqrtBackward0",
      vjp=(lambda g, ans, a: -0.5 * g * ans * ans * ans,),
      formulas=("∂/∂a = −g·out³ / 2",), saves=("ans",), promote="float", quiet=True)


def _zeros(g, ans, a, *rest, **params):
    """torch's ``zeros_like(grad)``: zeros, not g·0 (NaN where g is inf), and a constant
    under ``create_graph`` (no graph back to g, so a later backward reaches no leaf
    through it, as in torch)."""
    zeros = np.zeros_like(data(g))
    return Tensor(zeros) if isinstance(g, Tensor) else zeros


# sign(a) as an op (zero gradient, torch's SgnBackward): a double backward keeps a in its graph
defop("abs", np.abs, "AbsBackward0", vjp=(lambda g, ans, a: g * call("sign", a),),
      formulas=("∂/∂a = g·sign(a)  (0 at a = 0)",), saves=("a",))
def _sign(a: np.ndarray) -> np.ndarray:
    """torch's sign: 0 at NaN (NumPy's is NaN), so abs's gradient there is 0 too."""
    s = np.sign(a)
    if s.dtype.kind != "f":
        return s
    if isinstance(s, np.ndarray):
        return np.nan_to_num(s, copy=False, nan=0.0)
    return s.dtype.type(0) if s != s else s  # (a NumPy scalar)


defop("sign", _sign, "SignBackward0", vjp=(_zeros,),
      formulas=("∂/∂a = 0",))
defop("floor", np.floor, "FloorBackward0", vjp=(_zeros,), formulas=("∂/∂a = 0",))
defop("ceil", np.ceil, "CeilBackward0", vjp=(_zeros,), formulas=("∂/∂a = 0",))
defop("round", np.round, "RoundBackward0", vjp=(_zeros,), formulas=("∂/∂a = 0",))
defop("sin", np.sin, "SinBackward0", vjp=(lambda g, ans, a: g * np.cos(a),),
      formulas=("∂/∂a = g·cos a",), saves=("a",), promote="float")
defop("cos", np.cos, "CosBackward0", vjp=(lambda g, ans, a: -g * np.sin(a),),
      formulas=("∂/∂a = −g·sin a",), saves=("a",), promote="float")
defop("tan", np.tan, "TanBackward0", vjp=(lambda g, ans, a: g * (1 + ans * ans),),
      formulas=("∂/∂a = g·(1 + out²)",), saves=("ans",), promote="float")
defop("tanh", np.tanh, "TanhBackward0", vjp=(lambda g, ans, a: g * (1 - ans * ans),),
      formulas=("∂/∂a = g·(1 − out²)",), saves=("ans",), promote="float")


def _sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(−a)) in four in-place passes (~10× fewer than a two-branch form): where
    exp(−a) overflows to inf the result is exactly 0, as torch's, without a warning; the
    lower tail keeps its relative precision (exp(−a) is exact to an ulp there). ``out``:
    a float array of ``a``'s shape and dtype to write into (ops/recurrent.py)."""
    if a.dtype.kind != "f":
        e = np.exp(-np.abs(a))  # stable on both tails
        return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
    out = np.negative(a, out=np.empty(a.shape, a.dtype) if out is None else out)  # (0-d too)
    token = quiet_enter()
    try:
        np.exp(out, out=out)
    finally:
        quiet_exit(token)
    out += 1
    return np.reciprocal(out, out=out)


def _sigmoid_vjp(g, ans, a):
    if type(g) is np.ndarray and g.shape == ans.shape:  # plain backward: one temporary less
        out = g * ans
        out *= 1 - ans
        return out
    return g * ans * (1 - ans)


defop("sigmoid", _sigmoid, "SigmoidBackward0", vjp=(_sigmoid_vjp,),
      formulas=("∂/∂a = g·out·(1 − out)",), saves=("ans",), promote="float")

# ---------------------------------------------------------------- activations
def _masked_grad(name: str, node: str, fwd, formula: str) -> None:
    """Declare the gradient of a piecewise-linear activation as an op of its own (torch's
    ``threshold_backward``/``leaky_relu_backward``): linear in ``grad``, so its VJP wrt
    ``grad`` is itself; wrt ``x`` (what the pieces are chosen by) it is 0, but an edge to
    ``x`` is kept, as torch does, so that a gradient taken with ``create_graph`` has a graph
    (its double backward gives 0, not an error)."""
    def vjp_grad(g, ans, grad, x, **params):
        return call(name, g, x, **params)

    def vjp_x(g, ans, grad, x, **params):
        return _zeros(g, ans, x)

    defop(name, fwd, node,
          vjp=(vjp_grad, vjp_x), formulas=(formula, "∂/∂x = 0"), saves=("x", ""))


# torch's threshold_backward: grad where x > threshold, 0 elsewhere (NaN x passes grad on);
# a product with the mask, not np.where, which is ~8x slower on a 256×1024 batch
_masked_grad("threshold_backward", "ThresholdBackwardBackward0",
             lambda grad, x, threshold=0.0: grad * ~(x <= threshold),
             "∂/∂grad = g′·[x > threshold]")
_masked_grad("leaky_relu_backward", "LeakyReluBackwardBackward0",
             lambda grad, x, negative_slope=0.01:
             grad * np.where(x > 0, 1.0, negative_slope).astype(grad.dtype, copy=False),
             "∂/∂grad = g′·(1 if x > 0 else slope)")
# relu'(0) = 0 as in torch: its gradient is threshold_backward(g, out, 0)
defop("relu", lambda a: np.maximum(a, 0), "ReluBackward0",
      vjp=(lambda g, ans, a: call("threshold_backward", g, ans),),
      formulas=("∂/∂a = g·[out > 0]",), saves=("ans",))
defop("leaky_relu", lambda a, negative_slope=0.01: np.where(a > 0, a, a * negative_slope),
      "LeakyReluBackward0",
      vjp=(lambda g, ans, a, negative_slope=0.01:
           call("leaky_relu_backward", g, a, negative_slope=negative_slope),),
      formulas=("∂/∂a = g·(1 if a > 0 else slope)",), saves=("a",))


def _gelu(a: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))
    return a * 0.5 * (1 + erf(a / math.sqrt(2)))


def _gelu_vjp(g, ans, a, approximate="none"):
    if approximate == "tanh":
        k = math.sqrt(2 / math.pi)
        t = np.tanh(k * (a + 0.044715 * a ** 3))
        return g * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a))
    cdf = 0.5 * (1 + call("erf", a / math.sqrt(2)))
    return g * (cdf + a * np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi))


defop("erf", erf, "ErfBackward0",
      vjp=(lambda g, ans, a: g * (2 / math.sqrt(math.pi)) * np.exp(-a * a),),
      formulas=("∂/∂a = g·2/√π·exp(−a²)",), saves=("a",), promote="float")
defop("gelu", _gelu, "GeluBackward0", vjp=(_gelu_vjp,),
      formulas=("∂/∂a = g·(Φ(a) + a·φ(a))",), saves=("a",), promote="float")


def _softplus(a: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    z = a * beta
    # log1p(exp(z)) without overflow; torch returns a itself above the threshold
    soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta
    return np.where(z > threshold, a, soft).astype(a.dtype, copy=False)


defop("softplus", _softplus, "SoftplusBackward0",
      vjp=(lambda g, ans, a, beta=1.0, threshold=20.0:
           call("where", data(a) * beta > threshold, g, g * call("sigmoid", a * beta)),),
      formulas=("∂/∂a = g·σ(β·a)",), saves=("a",), promote="float")


def _clamp(a: np.ndarray, min=None, max=None) -> np.ndarray:  # noqa: A002 (torch names)
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if min is not None:
        a = np.maximum(a, min)
    if max is not None:
        a = np.minimum(a, max)
    return a


def _clamp_vjp(g, ans, a, min=None, max=None):  # noqa: A002
    x = data(a)
    inside = np.ones(x.shape, bool)  # torch: gradient passes where min <= a <= max
    if min is not None:
        inside &= x >= min
    if max is not None:
        inside &= x <= max
    return g * inside


defop("clamp", _clamp, "ClampBackward1", vjp=(_clamp_vjp,),
      formulas=("∂/∂a = g·[min ≤ a ≤ max]",), saves=("a",))

# ---------------------------------------------------------------- selection and comparison
defop("where", np.where, "WhereBackward0",
      vjp=(None, lambda g, ans, c, a, b: call("where", data(c), g, 0.0),
           lambda g, ans, c, a, b: call("where", data(c), 0.0, g)),
      formulas=("—", "∂/∂a = g·[cond]", "∂/∂b = g·[¬cond]"), saves=("", "c", "c"),
      promote="where")
for _n, _f in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
               ("gt", np.greater), ("ge", np.greater_equal)):
    defop(_n, _f, "", nondiff=True, promote="same", formulas=("not differentiable",))
defop("logical_not", np.logical_not, "", nondiff=True, formulas=("not differentiable",))
defop("logical_and", np.logical_and, "", nondiff=True, formulas=("not differentiable",))
defop("logical_or", np.logical_or, "", nondiff=True, formulas=("not differentiable",))
defop("isnan", np.isnan, "", nondiff=True, formulas=("not differentiable",))
defop("floor_divide", np.floor_divide, "", nondiff=True, promote="same",
      formulas=("not differentiable",), quiet=True)
defop("remainder", np.remainder, "RemainderBackward0",
      # floor as an op: torch's gradient wrt b keeps a (zero) graph to a and b
      vjp=(lambda g, ans, a, b: g, lambda g, ans, a, b: -g * call("floor", a / b)),
      formulas=("∂/∂a = g", "∂/∂b = −g·⌊a/b⌋"), saves=("", "a b"), promote="same", quiet=True)

# ---------------------------------------------------------------- copies and casts
defop("clone", lambda a: a.copy(), "CloneBackward0", vjp=(lambda g, ans, a: g,),
      formulas=("∂/∂a = g",))
defop("to", lambda a, dtype: a.astype(dtype), "ToCopyBackward0",
      vjp=(lambda g, ans, a, dtype: g,), formulas=("∂/∂a = g (cast back)",))
defop("dropout", lambda a, mask, p: a * (mask.astype(a.dtype) / (1 - p)) if p < 1 else a * 0,
      "MulBackward0",
      vjp=(lambda g, ans, a, mask, p: g * (mask.astype(g.dtype) / (1 - p)) if p < 1 else g * 0,),
      formulas=("∂/∂a = g·mask / (1 − p)",))

# ---------------------------------------------------------------- in-place helpers (out of place)
defop("zero", np.zeros_like, "ZeroBackward0", vjp=(_zeros,), formulas=("∂/∂a = 0",))
defop("fill", lambda a, value: np.full_like(a, value), "FillBackward0",
      vjp=(_zeros,), formulas=("∂/∂a = 0",))
defop("copy", lambda a, src: np.broadcast_to(src, a.shape).astype(a.dtype), "CopyBackwards",
      vjp=(_zeros, lambda g, ans, a, src: g),
      formulas=("∂/∂self = 0", "∂/∂src = g"))
