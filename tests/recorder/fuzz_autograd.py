"""Fuzzer families of autograd's own machinery: tensor hooks (leaves and non-leaves, removed
or not, post-accumulate-grad), custom ``torch.autograd.Function``s (both styles, correct
backward) and float32 sums whose terms cancel (the rounding-aware tolerance).

Mutated backwards live in ``MUTANTS``: ``tests/recorder/test_fuzz_differential.py`` runs
programs with them and requires every one to be caught on the Function's node.
"""
from __future__ import annotations

import torch

from fuzz_programs import NAMESPACE_EXTRAS, Builder, Stmt, _lit, _op, aliases_of_kind, family


# ----------------------------------------------------------------------------- custom Functions
class FzCube(torch.autograd.Function):
    """x³ with a hand-written backward (``forward(ctx, ...)`` style)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2


class FzMulAdd(torch.autograd.Function):
    """x·tanh(y) + 1 (``setup_context`` style, ``needs_input_grad``)."""

    @staticmethod
    def forward(x, y):
        return x * y.tanh() + 1.0

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = g * y.tanh() if ctx.needs_input_grad[0] else None
        gy = g * x * (1 - y.tanh() ** 2) if ctx.needs_input_grad[1] else None
        return gx, gy


class FzExp(torch.autograd.Function):
    """exp, saving its output."""

    @staticmethod
    def forward(ctx, x):
        out = x.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


def _mutant(name: str, backward) -> type:
    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(FzCube.forward.__func__ if hasattr(FzCube.forward, "__func__") else FzCube.forward),
        "backward": staticmethod(backward)})


def _sign(ctx, g):
    (x,) = ctx.saved_tensors
    return -g * 3 * x ** 2


def _factor(ctx, g):
    (x,) = ctx.saved_tensors
    return g * x ** 2          # the factor 3 is missing


def _square(ctx, g):
    (x,) = ctx.saved_tensors
    return g * 3 * x           # x instead of x²


#: deliberately wrong backwards of x³, each to be caught on its Function's node
MUTANTS = {"FzWrongSign": _mutant("FzWrongSign", _sign), "FzNoFactor3": _mutant("FzNoFactor3", _factor),
           "FzWrongPower": _mutant("FzWrongPower", _square)}
NAMESPACE_EXTRAS.update({"FzCube": FzCube, "FzMulAdd": FzMulAdd, "FzExp": FzExp, **MUTANTS})


@family(weight=2)
def custom_function(b: Builder) -> bool:
    a = b.pick_float(lambda t: t.requires_grad)
    if a is None:
        return False
    kind = b.choice(["cube", "exp", "muladd"])
    if kind == "cube":
        return _op(b, f"FzCube.apply({a}.tanh())", (a,))
    if kind == "exp":
        return _op(b, f"FzExp.apply({a}.tanh())", (a,))
    other = b.pick_float(lambda t: t.shape == b.env[a].shape) or a
    return _op(b, f"FzMulAdd.apply({a}, {other})", (a, other))


# ----------------------------------------------------------------------------- hooks
_HOOKS = ["lambda g: g * 2.0", "lambda g: g + 1.0", "lambda g: None", "lambda g: g.clamp(-1.0, 1.0)"]


@family(*aliases_of_kind("register_hook"), weight=2)
def hook(b: Builder) -> bool:
    t = b.pick_float(lambda t: t.requires_grad)
    if t is None:
        return False
    if b.int(0, 3) == 0 and b.env[t].is_leaf:
        src = (f"{t}.register_post_accumulate_grad_hook(lambda p: None)")
    else:
        handle = b.name("h")
        src = f"{handle} = {t}.register_hook({b.choice(_HOOKS)})"
        if b.int(0, 3) == 0:
            src += f"\n{handle}.remove()"
    return b.add(Stmt(src, "grad", t))


# ----------------------------------------------------------------------------- cancelling sums
@family(weight=1)
def cancelling_sum(b: Builder) -> bool:
    """A float32 gradient that is a sum of ~1,000 terms cancelling to almost nothing."""
    a = b.pick(lambda t: t.dtype == torch.float32 and t.requires_grad)
    if a is None:
        return False
    n = b.choice([999, 1001, 2000])
    scale = _lit(b.float(0.5, 3.0))
    return _op(b, f"({a}.sum() * torch.linspace(-{scale}, {scale}, {n})).sin().sum()", (a,))
