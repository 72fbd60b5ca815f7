"""Fuzzer families of the mathops ops (registered into fuzz_programs.FAMILIES on import):
products (einsum, tensordot, kron, addmm and friends, addcmul/addcdiv), pointwise math,
distances and norms, padding/resampling/patches, and the in-place forms optimizers use."""
from __future__ import annotations

import torch

from fuzz_programs import Builder, Stmt, _choose, _lit, _op, _second, aliases, family, spell  # noqa: F401


def _f(b: Builder, pred=lambda t: True):
    return b.pick_float(lambda t: t.dtype == torch.float32 and pred(t))


def _dim(b: Builder, t: torch.Tensor) -> int:
    return b.int(-t.dim(), t.dim() - 1) if t.dim() else 0


def _randn(shape: tuple) -> str:
    return f"torch.randn({tuple(shape)})"


_PRODUCTS = ["torch.einsum", "torch.tensordot", "Tensor.kron", "Tensor.addmm", "Tensor.addmv",
             "Tensor.addbmm", "Tensor.baddbmm", "Tensor.addr", "Tensor.addcmul", "Tensor.addcdiv"]


@family(*[n for r in _PRODUCTS for n in aliases(r)], weight=3)
def products(b: Builder) -> bool:
    a = _f(b, lambda t: t.dim() >= 1)
    if a is None:
        return False
    t = b.env[a]
    s, n = tuple(t.shape), t.shape[-1]
    row = b.choice(_PRODUCTS)
    name = _choose(b, aliases(row))
    if row == "torch.einsum":
        letters = "ijk"[: t.dim()] if t.dim() <= 3 else None
        if letters is None:
            return False
        last = letters[-1]
        eq = b.choice([f"{letters},{last}z->{letters[:-1]}z", f"{letters}->{letters[::-1]}",
                       f"{letters},{letters}->", f"...{last},{last}->...", letters])
        other = _randn((n, 2)) if "z" in eq else (_randn((n,)) if eq.startswith("...") else
                                                    (a if eq.count(",") else None))
        args = f"{a}, {other}" if other is not None else a
        return _op(b, f"torch.einsum('{eq}', {args})", (a,))
    if row == "torch.tensordot":
        return _op(b, f"torch.tensordot({a}, {_randn((n, 2))}, dims=1)", (a,))
    if row == "Tensor.kron":
        return _op(b, spell(name, a, _randn((2,) * min(t.dim(), 2))), (a,))
    if row in ("Tensor.addcmul", "Tensor.addcdiv"):
        other, ins = _second(b, a)
        if not ins:
            other = _randn(s)
        div = f"({other} ** 2 + 0.5)" if row == "Tensor.addcdiv" else other
        value = b.choice(["", ", value=0.5", ", value=-2"])
        return _op(b, spell(name, a, f"{a}, {div}{value}"), (a, *ins))
    scale = b.choice(["", ", beta=0.5", ", alpha=2", ", beta=0, alpha=-1"])
    if row == "Tensor.addmm" and t.dim() <= 2:
        m = t.shape[0] if t.dim() == 2 else 2
        return _op(b, spell(name, a, f"{_randn((m, 3))}, {_randn((3, n))}{scale}"), (a,))
    if row == "Tensor.addmv" and t.dim() == 1:
        return _op(b, spell(name, a, f"{_randn((n, 3))}, {_randn((3,))}{scale}"), (a,))
    if row == "Tensor.addr" and t.dim() <= 2:
        m = t.shape[0] if t.dim() == 2 else 3
        return _op(b, spell(name, a, f"{_randn((m,))}, {_randn((n,))}{scale}"), (a,))
    if row == "Tensor.addbmm" and t.dim() <= 2:
        m = t.shape[0] if t.dim() == 2 else 2
        return _op(b, spell(name, a, f"{_randn((2, m, 3))}, {_randn((2, 3, n))}{scale}"), (a,))
    if row == "Tensor.baddbmm" and t.dim() == 3:
        return _op(b, spell(name, a, f"{_randn((s[0], s[1], 2))}, {_randn((s[0], 2, n))}{scale}"), (a,))
    # a as a factor instead (its shape does not fit the input slot)
    x, k = f"{a}.reshape(-1, {n})", t.numel() // n if n else 0
    if row == "Tensor.addmv":
        return _op(b, spell(name, "torch.zeros(1)", f"{x}, {_randn((n,))}{scale}"), (a,))
    if row == "Tensor.addr":
        return _op(b, spell(name, "torch.zeros(2, 1)", f"{_randn((2,))}, {a}.reshape(-1){scale}"), (a,))
    if row == "Tensor.baddbmm":
        return _op(b, spell(name, "torch.zeros(1, 1, 3)", f"{x}.unsqueeze(0), {_randn((1, n, 3))}{scale}"), (a,))
    if row == "Tensor.addbmm":
        return _op(b, spell(name, "torch.zeros(3)", f"{x}.unsqueeze(0), {_randn((1, n, 3))}{scale}"), (a,))
    return _op(b, spell(name, "torch.zeros(3)", f"{x}, {_randn((n, 3))}{scale}"), (a,))


_BINARY = ["Tensor.atan2", "Tensor.hypot", "Tensor.logaddexp", "Tensor.logaddexp2", "Tensor.xlogy",
           "Tensor.lerp", "Tensor.clamp_min", "Tensor.clamp_max"]
_UNARY = ["Tensor.erfc", "Tensor.erfinv", "Tensor.nan_to_num"]


@family(*[n for r in _BINARY + _UNARY for n in aliases(r)], weight=3)
def pointwise_math(b: Builder) -> bool:
    a = _f(b)
    if a is None:
        return False
    row = b.choice(_BINARY + _UNARY)
    name = _choose(b, aliases(row))
    if row in _UNARY:
        recv = {"Tensor.erfinv": f"({a}.tanh() * 0.9)", "Tensor.erfc": a,
                "Tensor.nan_to_num": f"(1 / {a})"}[row]
        args = b.choice(["", "nan=0.5, posinf=3.0", "neginf=-2.0"]) if row == "Tensor.nan_to_num" else ""
        return _op(b, spell(name, recv, args), (a,))
    other, ins = _second(b, a)
    if row == "Tensor.lerp":  # lerp does not promote: an operand of a's shape and dtype
        same = b.pick_float(lambda u: u.shape == b.env[a].shape and u.dtype == torch.float32)
        other, ins = (same, (same,)) if same and b.bool() else (_randn(tuple(b.env[a].shape)), ())
    elif not ins and row != "Tensor.xlogy":
        other = f"torch.tensor({other})"
    if row == "Tensor.xlogy":
        y = f"({other} ** 2 + 0.5)" if ins else repr(abs(float(other)) + 0.5)
        return _op(b, spell(name, a, y), (a, *ins))
    if row == "Tensor.lerp":
        w = b.choice(["0.3", "0.75", f"{a}.sigmoid()"])
        return _op(b, spell(name, a, f"{other}, {w}"), (a, *ins))
    return _op(b, spell(name, a, other), (a, *ins))


_DIST = ["Tensor.cross", "torch.linalg.cross", "Tensor.dist", "torch.cdist", "torch.linalg.vector_norm",
         "torch.linalg.matrix_norm", "torch.linalg.norm", "torch.nn.functional.normalize",
         "torch.cosine_similarity", "torch.pairwise_distance"]


@family(*[n for r in _DIST for n in aliases(r)], weight=2)
def distances(b: Builder) -> bool:
    a = _f(b, lambda t: t.dim() >= 1 and t.numel() > 0)
    if a is None:
        return False
    t = b.env[a]
    s, nd = tuple(t.shape), t.dim()
    row = b.choice(_DIST)
    name = _choose(b, aliases(row))
    if row in ("Tensor.cross", "torch.linalg.cross"):
        x = f"{a}.reshape(-1, 1).expand(-1, 3)"
        dim = b.choice(["", ", dim=1", ", dim=-1"]) if row == "Tensor.cross" else b.choice(["", ", dim=-1"])
        return _op(b, f"{spell(name, x, f'{_randn((1, 3))}{dim}')}" if name.startswith("Tensor")
                   else f"{name}({x}, {_randn((1, 3))}{dim})", (a,))
    if row == "Tensor.dist":
        p = b.choice(["", ", 1", ", p=3", ", float('inf')"])
        return _op(b, spell(name, a, f"{_randn(s)}{p}"), (a,))
    if row == "torch.cdist":
        x = f"{a}.reshape(-1, {s[-1]})"
        p = b.choice(["", ", p=1.0", ", p=2.0"])
        return _op(b, f"torch.cdist({x}, {_randn((2, s[-1]))}{p})", (a,))
    if row == "torch.linalg.vector_norm":
        args = b.choice(["", ", 2.0", ", ord=1", ", ord=float('inf')", f", dim={_dim(b, t)}, keepdim=True",
                         ", ord=3"])
        return _op(b, f"torch.linalg.vector_norm({a}{args})", (a,))
    if row in ("torch.linalg.matrix_norm", "torch.linalg.norm"):
        x = a if nd >= 2 else f"{a}.reshape(1, -1)"
        ords = ["", ", ord='fro'", ", ord=1", ", ord=-1", ", ord=float('inf')"]
        if row == "torch.linalg.norm":
            ords += [", dim=-1", ", dim=(-2, -1)"]
        return _op(b, f"{row}({x}{b.choice(ords)})", (a,))
    if row == "torch.nn.functional.normalize":
        args = b.choice(["", f", dim={_dim(b, t)}", ", p=1.0, dim=0", ", eps=0.5"])
        return _op(b, f"F.normalize({a}{args})", (a,))
    other, ins = _second(b, a)
    if not ins:
        other = _randn(s)
    if row == "torch.cosine_similarity":
        return _op(b, f"{b.choice(['torch', 'F'])}.cosine_similarity({a}, {other}, dim={_dim(b, t)})", (a, *ins))
    return _op(b, f"{b.choice(['torch', 'F'])}.pairwise_distance({a}, {other})", (a, *ins))


_RESAMPLE = ["torch.nn.functional.pad", "torch.nn.functional.interpolate", "torch.nn.functional.unfold",
             "torch.nn.functional.fold"]


@family(*[n for r in _RESAMPLE for n in aliases(r)], weight=1)
def resample(b: Builder) -> bool:
    a = _f(b, lambda t: t.numel() > 0)
    if a is None:
        return False
    t = b.env[a]
    n = t.numel()
    row = b.choice(_RESAMPLE)
    x3, x4 = f"{a}.reshape(1, 1, -1)", f"{a}.reshape(1, 1, -1, 1)"
    if t.dim() >= 2:
        x4 = f"{a}.reshape(-1, 1, {t.shape[-2]}, {t.shape[-1]})"
    h, w = (t.shape[-2], t.shape[-1]) if t.dim() >= 2 else (n, 1)
    if row == "torch.nn.functional.pad":
        mode = b.choice(["constant", "constant", "reflect", "replicate", "circular"])
        if mode == "constant":
            pads = b.choice(["(1, 2)", "(0, 1, 2, 0)", "(-1, 1)" if w > 1 else "(1, 1)"])
            value = b.choice(["", ", value=0.5"])
            return _op(b, f"F.pad({a}, {pads}{value})", (a,))
        lim = n - 1 if mode == "reflect" else n
        p = min(lim, 2)
        return _op(b, f"F.pad({x3}, ({p}, {min(lim, 1)}), mode='{mode}')", (a,))
    if row == "torch.nn.functional.interpolate":
        form = b.choice([f"{x3}, scale_factor=2", f"{x3}, size=5, mode='linear'",
                         f"{x4}, scale_factor=2, mode='bilinear'",
                         f"{x4}, size=(3, 4), mode='bilinear', align_corners=True",
                         f"{x4}, scale_factor=1.5, mode='nearest'"])
        return _op(b, f"F.interpolate({form})", (a,))
    k = 2 if min(h, w) >= 2 else 1
    if row == "torch.nn.functional.unfold":
        return _op(b, f"F.unfold({x4}, {k}{b.choice(['', ', padding=1', ', stride=2'])})", (a,))
    cols = f"F.unfold({x4}, {k})"
    return _op(b, f"F.fold({cols}, ({h}, {w}), {k})", (a,))


_INPLACE = {"Tensor.addcmul_": "{o}, {o}, value=0.1", "Tensor.addcdiv_": "{o}, ({o} ** 2 + 1.0), value=-0.5",
            "Tensor.lerp_": "{o}, 0.25", "Tensor.clamp_min_": "-0.3", "Tensor.clamp_max_": "0.4",
            "Tensor.nan_to_num_": "nan=0.0"}


@family(*[n for r in _INPLACE for n in aliases(r)], weight=2)
def inplace_math(b: Builder) -> bool:
    """The in-place forms, on a fresh clone (recorded) or as an optimizer writes them (no_grad)."""
    a = _f(b)
    if a is None:
        return False
    var = b.name()
    row = b.choice(sorted(_INPLACE))
    other = f"torch.randn({tuple(b.env[a].shape)})"
    line = spell(_choose(b, aliases(row)), var, _INPLACE[row].format(o=other))
    if b.bool():
        return b.add(Stmt(f"{var} = {a}.clone()\n{line}", "op", var), (a,))
    return b.add(Stmt(f"{var} = {a}.detach().clone()\nwith torch.no_grad():\n    {line}", "op", var),
                 (a,))
