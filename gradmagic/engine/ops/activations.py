"""Rules of the activations family: the activations of ``torch.nn.functional`` (silu, elu,
selu, celu, hardtanh, relu6, mish, logsigmoid, softshrink, hardshrink, hardswish,
hardsigmoid, threshold, glu, prelu, rrelu in eval mode; softsign, tanhshrink and softmin as
torch composes them) and the plain elementwise math torch has beside them (sinh, cosh,
asin, acos, atan, asinh, acosh, atanh, log2, log10, exp2, sinc).

The losses live in ``nn.py``; their torch-named public functions are re-exported from here.

>>> from gradmagic.engine import tensor
>>> x = tensor([-1.0, 0.5, 4.0], requires_grad=True)
>>> y = relu6(x) + silu(x); y.sum().backward(); y.grad_fn
<AddBackward0 (add)>
>>> [round(v, 4) for v in x.grad.tolist()]
[0.0723, 1.74, 2.0527]
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import REGISTRY, defop
from ..tensor import Tensor, apply, inplace as _inplace_op
from . import call, data
from .elementwise import _masked_grad, _sigmoid, _softplus, _zeros
from .nn import (binary_cross_entropy, binary_cross_entropy_with_logits, cosine_embedding_loss,
                 cross_entropy, gaussian_nll_loss, hinge_embedding_loss, huber_loss, kl_div,
                 l1_loss, margin_ranking_loss, mse_loss, multilabel_soft_margin_loss, nll_loss,
                 poisson_nll_loss, smooth_l1_loss, soft_margin_loss, triplet_margin_loss)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _defop(name: str, *args, **kwargs) -> None:
    """``defop``, unless another family declared ``name`` already (the first one wins)."""
    if name not in REGISTRY:
        defop(name, *args, **kwargs)


# ---------------------------------------------------------------- piecewise-linear activations
_SIXTH = float(np.float32(1) / np.float32(6))  # torch's hardsigmoid_backward: 1.0f / 6.0f
# their gradients are ops of their own (torch's *_backward): linear in grad, 0 wrt x
_masked_grad("hardtanh_backward", "HardtanhBackwardBackward0",
             lambda grad, x, min_val=-1.0, max_val=1.0: grad * ~((x <= min_val) | (x >= max_val)),
             "∂/∂grad = g′·[min < x < max]")
_masked_grad("softshrink_backward", "SoftshrinkBackwardBackward0",
             lambda grad, x, lambd=0.5: grad * ~((x >= -lambd) & (x <= lambd)),
             "∂/∂grad = g′·[|x| > λ]")
_masked_grad("hardshrink_backward", "HardshrinkBackwardBackward0",
             lambda grad, x, lambd=0.5: grad * ~((x >= -lambd) & (x <= lambd)),
             "∂/∂grad = g′·[|x| > λ]")
_masked_grad("hardsigmoid_backward", "HardsigmoidBackwardBackward0",
             lambda grad, x: grad * ((x > -3) & (x < 3)) * _SIXTH,
             "∂/∂grad = g′·[−3 < x < 3]/6")


def _hardtanh(a, min_val=-1.0, max_val=1.0):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return np.minimum(np.maximum(a, min_val), max_val).astype(a.dtype, copy=False)


# hardtanh'(x) = 1 strictly inside (min, max), 0 at the edges (torch's hardtanh_backward)
defop("hardtanh", _hardtanh, "HardtanhBackward0",
      vjp=(lambda g, ans, a, min_val=-1.0, max_val=1.0:
           call("hardtanh_backward", g, a, min_val=min_val, max_val=max_val),),
      formulas=("∂/∂a = g·[min < a < max]",), saves=("a",))


def _check_lambd(lambd):
    if lambd < 0:
        raise RuntimeError(f"lambda must be in range [0, 3.40282e+38] for input dtype Float, "
                           f"but found {lambd:g}")


def _softshrink(a, lambd=0.5):
    _check_lambd(lambd)
    return np.where(a > lambd, a - lambd, np.where(a < -lambd, a + lambd, 0)).astype(a.dtype,
                                                                                   copy=False)


defop("softshrink", _softshrink, "SoftshrinkBackward0",
      vjp=(lambda g, ans, a, lambd=0.5: call("softshrink_backward", g, a, lambd=lambd),),
      formulas=("∂/∂a = g·[|a| > λ]",), saves=("a",), promote="float")
defop("hardshrink", lambda a, lambd=0.5: np.where((a >= -lambd) & (a <= lambd), 0, a).astype(
          a.dtype, copy=False), "HardshrinkBackward0",
      vjp=(lambda g, ans, a, lambd=0.5: call("hardshrink_backward", g, a, lambd=lambd),),
      formulas=("∂/∂a = g·[|a| > λ]",), saves=("a",), promote="float")
defop("hardsigmoid", lambda a: np.minimum(np.maximum(a + 3, 0), 6) / 6, "HardsigmoidBackward0",
      vjp=(lambda g, ans, a: call("hardsigmoid_backward", g, a),),
      formulas=("∂/∂a = g·[−3 < a < 3]/6",), saves=("a",), promote="float")


def _threshold(a, threshold, value):
    return np.where(a <= threshold, value, a).astype(a.dtype, copy=False)  # NaN stays NaN


defop("threshold", _threshold, "ThresholdBackward0",
      vjp=(lambda g, ans, a, threshold, value: call("threshold_backward", g, a, threshold=threshold),),
      formulas=("∂/∂a = g·[a > threshold]",), saves=("a",))
# rrelu in eval mode is leaky_relu with the mean slope (lower + upper)/2; training mode draws
# random slopes from torch's generator, which the engine does not replay
defop("rrelu", lambda a, lower=0.125, upper=1 / 3: np.where(a > 0, a, a * ((lower + upper) / 2)),
      "RreluWithNoiseBackward0",
      vjp=(lambda g, ans, a, lower=0.125, upper=1 / 3:
           call("leaky_relu_backward", g, a, negative_slope=(lower + upper) / 2),),
      formulas=("∂/∂a = g·(1 if a > 0 else (lower + upper)/2)",), saves=("a",), promote="float")


def _hardswish_vjp(g, ans, a):
    x = data(a)  # torch: 0 up to −3, x/3 + ½ strictly between −3 and 3, 1 from 3 on
    return call("where", x <= -3, 0.0, call("where", x < 3, g * (a / 3 + 0.5), g))


defop("hardswish", lambda a: a * np.minimum(np.maximum(a + 3, 0), 6) / 6, "HardswishBackward0",
      vjp=(_hardswish_vjp,), formulas=("∂/∂a = g·(0 | a/3 + ½ | 1)",), saves=("a",),
      promote="float")


# ---------------------------------------------------------------- smooth activations
def _elu(a, alpha=1.0, scale=1.0, input_scale=1.0):
    neg = np.expm1(np.minimum(a, 0) * input_scale) * (alpha * scale)  # (no overflow above 0)
    return np.where(a > 0, a * scale, neg).astype(a.dtype, copy=False)


def _elu_vjp(g, ans, a, alpha=1.0, scale=1.0, input_scale=1.0):
    # torch: the exponential branch for a <= 0
    # (the exponent is a where a < 0, else 0: at a = 0 its derivative is 0, as torch's double backward)
    below = call("exp", call("where", data(a) < 0, a, 0.0) * input_scale) * (alpha * scale * input_scale)
    return g * call("where", data(a) <= 0, below, scale)


defop("elu", _elu, "EluBackward0", vjp=(_elu_vjp,),
      formulas=("∂/∂a = g·(scale if a > 0 else scale·α·s·exp(s·a))",), saves=("a",),
      promote="float")
def _celu_scale(alpha) -> float:
    return 1.0 / float(np.float32(alpha))  # torch: 1.0 / alpha.toFloat()


# torch: the forward scales by 1/α, its backward by 1/float32(α)
defop("celu", lambda a, alpha=1.0: _elu(a, alpha, 1.0, 1 / alpha), "CeluBackward0",
      vjp=(lambda g, ans, a, alpha=1.0: _elu_vjp(g, ans, a, alpha, 1.0, _celu_scale(alpha)),),
      formulas=("∂/∂a = g·(1 if a > 0 else exp(a/α))",), saves=("a",), promote="float")


def _silu_vjp(g, ans, a):
    s = call("sigmoid", a)
    return g * (s * (1 + a * (1 - s)))


defop("silu", lambda a: a * _sigmoid(a), "SiluBackward0", vjp=(_silu_vjp,),
      formulas=("∂/∂a = g·σ(a)(1 + a(1 − σ(a)))",), saves=("a",), promote="float")


def _mish_vjp(g, ans, a):
    t = call("tanh", call("softplus", a))
    return g * (t + a * call("sigmoid", a) * (1 - t * t))


defop("mish", lambda a: a * np.tanh(_softplus(a)), "MishBackward0", vjp=(_mish_vjp,),
      formulas=("∂/∂a = g·(tanh(sp(a)) + a·σ(a)(1 − tanh²(sp(a))))",), saves=("a",),
      promote="float")
defop("logsigmoid", lambda a: np.minimum(a, 0) - np.log1p(np.exp(-np.abs(a))),
      "LogSigmoidBackward0", vjp=(lambda g, ans, a: g * call("sigmoid", -a),),
      formulas=("∂/∂a = g·σ(−a)",), saves=("a",), promote="float")


# ---------------------------------------------------------------- glu, prelu
def _halves(a, axis):
    """The two halves of ``a`` along ``axis`` (ndarray or Tensor)."""
    if a.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    ax = axis % a.ndim
    n = a.shape[ax]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {ax} is size {n}")
    lead = (slice(None),) * ax
    return a[lead + (slice(0, n // 2),)], a[lead + (slice(n // 2, n),)], ax


def _glu(a, axis=-1):
    first, second, _ = _halves(a, axis)
    return first * _sigmoid(second)


def _glu_vjp(g, ans, a, axis=-1):
    first, second, ax = _halves(a, axis)
    s = call("sigmoid", second)
    gs = g * s
    return call("cat", gs, gs * first * (1 - s), axis=ax)


defop("glu", _glu, "GluBackward0", vjp=(_glu_vjp,),
      formulas=("∂/∂a = g·σ(b), ∂/∂b = g·a·σ(b)(1 − σ(b))  (a, b: halves)",), saves=("a",),
      promote="float")


def _channel_shape(x, w) -> tuple:
    """``w`` broadcast over ``x``'s channel axis (1; none for a 1-D input)."""
    if x.ndim == 0 and w.size > 1:
        raise RuntimeError("Not allow zero-dim input tensor.")
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.size != 1 and w.size != channels:
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter "
                           f"numbers = {w.size} and channel size = {channels}.")
    if w.size == 1 or x.ndim < 2:
        return (1,) * x.ndim if x.ndim else ()
    return (1, channels) + (1,) * (x.ndim - 2)


def _prelu(x, w):
    return np.where(x > 0, x, w.reshape(_channel_shape(x, w)) * x).astype(x.dtype, copy=False)


def _prelu_x(g, ans, x, w):
    return call("prelu_backward_input", g, x, w.reshape(_channel_shape(data(x), data(w))))


def _prelu_w(g, ans, x, w):
    shape = _channel_shape(data(x), data(w))
    gx = call("prelu_backward_weight", g, x, w.reshape(shape))  # torch: slope gets g·x where x <= 0
    axes = tuple(i for i, n in enumerate(shape) if n == 1 or i != 1)
    return call("sum", gx, axis=axes).reshape(data(w).shape) if axes else gx.reshape(data(w).shape)


# torch's _prelu_kernel_backward as two ops: their values choose by x > 0, their own VJPs (the
# double backward, derivatives.yaml) by x >= 0, so at x = 0 a second-order gradient is torch's
def _at_or_above_zero(G, x, below):
    return call("where", data(x) >= 0, 0.0, below)


defop("prelu_backward_input",
      lambda grad, x, w: np.where(x > 0, grad, w * grad).astype(grad.dtype, copy=False),
      "PreluKernelBackwardBackward0",
      vjp=(lambda G, ans, grad, x, w: call("where", data(x) >= 0, G, G * w),
           lambda G, ans, grad, x, w: _zeros(G, ans, x),
           lambda G, ans, grad, x, w: _at_or_above_zero(G, x, grad * G)),
      formulas=("∂/∂grad = g′·(1 if x >= 0 else w)", "∂/∂x = 0", "∂/∂w = g′·grad where x < 0"),
      saves=("x w", "x", "grad x"))
# (w is an input of torch's node too: a later backward through the slope's gradient gives w a
# zero gradient, not none)
defop("prelu_backward_weight",
      lambda grad, x, w: np.where(x > 0, 0, x * grad).astype(grad.dtype, copy=False),
      "PreluKernelBackwardBackward0",
      vjp=(lambda G, ans, grad, x, w: _at_or_above_zero(G, x, G * x),
           lambda G, ans, grad, x, w: _at_or_above_zero(G, x, grad * G),
           lambda G, ans, grad, x, w: _zeros(G, ans, x)),
      formulas=("∂/∂grad = g′·x where x < 0", "∂/∂x = g′·grad where x < 0", "∂/∂w = 0"),
      saves=("x", "grad x", ""))


defop("prelu", _prelu, "PreluKernelBackward0", vjp=(_prelu_x, _prelu_w),
      formulas=("∂/∂x = g·(1 if x > 0 else w)", "∂/∂w = Σ g·x over x <= 0 (per channel)"),
      saves=("x w", "x"), promote="same")


# ---------------------------------------------------------------- elementwise math
_LN2, _LN10 = math.log(2), math.log(10)


def _sinc_vjp(g, ans, a):
    # torch: 0 at a = 0, the quotient masked (0/0 there: a second derivative is NaN, as torch's)
    px = math.pi * a
    d = (px * call("cos", px) - call("sin", px)) / (px * a)
    return call("where", data(a) == 0, 0.0, g * d)


_MATH = {  # name: (forward, node, vjp, formula, saves)
    "sinh": (np.sinh, lambda g, ans, a: g * call("cosh", a), "∂/∂a = g·cosh a", "a"),
    "cosh": (np.cosh, lambda g, ans, a: g * call("sinh", a), "∂/∂a = g·sinh a", "a"),
    "asin": (np.arcsin, lambda g, ans, a: g * call("rsqrt", 1 - a * a), "∂/∂a = g / √(1 − a²)", "a"),
    "acos": (np.arccos, lambda g, ans, a: -g * call("rsqrt", 1 - a * a), "∂/∂a = −g / √(1 − a²)",
             "a"),
    "atan": (np.arctan, lambda g, ans, a: g / (a * a + 1), "∂/∂a = g / (1 + a²)", "a"),
    "asinh": (np.arcsinh, lambda g, ans, a: g * call("rsqrt", a * a + 1), "∂/∂a = g / √(a² + 1)",
              "a"),
    "acosh": (np.arccosh, lambda g, ans, a: g * call("rsqrt", a * a - 1), "∂/∂a = g / √(a² − 1)",
              "a"),
    "atanh": (np.arctanh, lambda g, ans, a: g / (1 - a * a), "∂/∂a = g / (1 − a²)", "a"),
    "log2": (np.log2, lambda g, ans, a: g / (a * _LN2), "∂/∂a = g / (a·ln 2)", "a"),
    "log10": (np.log10, lambda g, ans, a: g / (a * _LN10), "∂/∂a = g / (a·ln 10)", "a"),
    "exp2": (np.exp2, lambda g, ans, a: g * ans * _LN2, "∂/∂a = g·out·ln 2", "ans"),
    "sinc": (np.sinc, _sinc_vjp, "∂/∂a = g·(πa·cos πa − sin πa)/(πa²)  (0 at a = 0)", "a"),
}
for _name, (_fwd, _vjp, _formula, _saves) in _MATH.items():
    _defop(_name, _fwd, _name.capitalize() + "Backward0", vjp=(_vjp,), formulas=(_formula,),
           saves=(_saves,), promote="float", quiet=True)


# ---------------------------------------------------------------- torch-named functions
def _act(op: str, input: Tensor, inplace: bool = False, **params) -> Tensor:
    """``op(input)``, or written into ``input`` (torch's ``inplace=True``)."""
    return _inplace_op(input, op, **params) if inplace else apply(op, input, **params)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _act("silu", input, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return _act("mish", input, inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _act("elu", input, inplace, alpha=alpha)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    return _act("elu", input, inplace, alpha=SELU_ALPHA, scale=SELU_SCALE)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _act("celu", input, inplace, alpha=alpha)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    return _act("hardtanh", input, inplace, min_val=min_val, max_val=max_val)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return _act("hardswish", input, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return _act("hardsigmoid", input, inplace)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    return _act("threshold", input, inplace, threshold=threshold, value=value)


def rrelu(input: Tensor, lower: float = 1 / 8, upper: float = 1 / 3, training: bool = False,
          inplace: bool = False, generator=None) -> Tensor:
    if training:
        raise NotImplementedError("rrelu in training mode draws random slopes (not replayed)")
    return _act("rrelu", input, inplace, lower=lower, upper=upper)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return elu(input, alpha, True)


def selu_(input: Tensor) -> Tensor:
    return selu(input, True)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return celu(input, alpha, True)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return hardtanh(input, min_val, max_val, True)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:  # noqa: F811
    return _act("threshold", input, True, threshold=threshold, value=value)


def rrelu_(input: Tensor, lower: float = 1 / 8, upper: float = 1 / 3, training: bool = False,
           generator=None) -> Tensor:
    return rrelu(input, lower, upper, training, True)


def logsigmoid(input: Tensor) -> Tensor:
    return apply("logsigmoid", input)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return apply("softshrink", input, lambd=lambd)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return apply("hardshrink", input, lambd=lambd)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    return apply("glu", input, axis=dim)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    return apply("prelu", input, weight)


def softsign(input: Tensor) -> Tensor:
    """``x / (|x| + 1)``, composed as torch composes it (Abs, Add, Div)."""
    return input / (apply("abs", input) + 1)


def tanhshrink(input: Tensor) -> Tensor:
    """``x − tanh x``, composed as torch composes it (Tanh, Sub)."""
    return input - apply("tanh", input)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``softmax(−x, dim)`` (Neg, Softmax), torch's implicit dim when ``dim`` is None."""
    from .. import functional as EF
    if dim is None:
        dim = 0 if np.ndim(data(input)) in (0, 1, 3) else 1
    x = input if dtype is None else EF.to(input, dtype)
    return EF.softmax(-x, dim)


def _math(name: str):
    def fn(input: Tensor) -> Tensor:
        return apply(name, input)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``{name}(input)`` elementwise (engine op ``{name}``)."
    return fn


sinh, cosh, asin, acos, atan, asinh, acosh, atanh, log2, log10, exp2, sinc = map(_math, _MATH)
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh

_LOSSES = ("l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss",
           "gaussian_nll_loss", "nll_loss", "cross_entropy", "multilabel_soft_margin_loss",
           "cosine_embedding_loss", "margin_ranking_loss", "triplet_margin_loss", "soft_margin_loss",
           "hinge_embedding_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "mse_loss")
_MATH_NAMES = tuple(_MATH) + ("arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh")
PUBLIC: tuple[str, ...] = (
    "silu", "mish", "elu", "selu", "celu", "hardtanh", "relu6", "hardswish", "hardsigmoid",
    "threshold", "rrelu", "elu_", "selu_", "celu_", "hardtanh_", "threshold_", "rrelu_",
    "logsigmoid", "softshrink", "hardshrink", "glu", "prelu", "softsign", "tanhshrink", "softmin",
    *_MATH_NAMES, *_LOSSES)
METHODS: tuple[str, ...] = ("hardshrink", "prelu", *_MATH_NAMES)
