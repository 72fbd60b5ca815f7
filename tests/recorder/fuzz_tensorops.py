"""Fuzzer families of the tensorops ops (registered into fuzz_programs.FAMILIES on import):
iteration and splits, cumulative ops, selection (sort, topk, median ...), masks and
diagonals, index and scatter writes."""
from __future__ import annotations

import torch

from fuzz_programs import Builder, _choose, _op, aliases, family, spell  # noqa: F401


def _f(b: Builder, pred=lambda t: True):
    return b.pick_float(lambda t: t.dtype == torch.float32 and pred(t))


def _dim(b: Builder, t: torch.Tensor) -> int:
    return b.int(-t.dim(), t.dim() - 1) if t.dim() else 0


def _distinct(t: torch.Tensor) -> bool:
    """No ties, no NaN: torch leaves the order of equal values to its kernels (topk,
    kthvalue, median with dim)."""
    with torch.no_grad():
        return t.numel() > 0 and not t.isnan().any() and t.unique().numel() == t.numel()


_PIECES = ["Tensor.unbind", "Tensor.tensor_split", "Tensor.hsplit", "Tensor.vsplit", "Tensor.dsplit"]
_SHAPES = ["Tensor.unflatten", "Tensor.ravel", "Tensor.movedim", "Tensor.tile", "Tensor.repeat_interleave"]


@family(*[n for r in _PIECES + _SHAPES for n in aliases(r)], weight=2)
def pieces(b: Builder) -> bool:
    """Iteration, splits (stacked back), reshapes and repeats."""
    a = _f(b, lambda t: t.dim() >= 1)
    if a is None:
        return False
    t = b.env[a]
    d = _dim(b, t)
    row = b.choice(_PIECES + _SHAPES + ["iterate"])
    if row == "iterate":
        return _op(b, f"torch.stack([r * {b.int(1, 3)} for r in {a}])", (a,))
    name = _choose(b, aliases(row))
    if row == "Tensor.unbind":
        return _op(b, f"torch.stack({spell(name, a, b.choice([str(d), f'dim={d}']))}, {d})", (a,))
    if row in _PIECES:
        args = {"Tensor.tensor_split": b.choice([f"2, dim={d}", f"[1], {d}", "3"]),
                "Tensor.hsplit": b.choice(["[1]", "1"]), "Tensor.vsplit": "[1, 2]",
                "Tensor.dsplit": "[1]"}[row]
        recv = f"{a}.reshape(1, 1, -1)" if row == "Tensor.dsplit" else a  # dsplit: 3-d and up
        return _op(b, f"torch.stack([p.sum() * 2 for p in {spell(name, recv, args)}])", (a,))
    n = t.shape[d]
    args = {"Tensor.unflatten": f"{d}, (1, {n})", "Tensor.ravel": "",
            "Tensor.movedim": f"{d}, {_dim(b, t)}",
            "Tensor.tile": b.choice(["2", "(2, 1)", "1, 2"]),
            "Tensor.repeat_interleave": b.choice(["2", f"2, dim={d}",
                                                  f"torch.tensor({[1 + i % 2 for i in range(n)]}), {d}"])}[row]
    return _op(b, spell(name, a, args), (a,))


_CUM = ["Tensor.cumprod", "Tensor.logcumsumexp", "Tensor.cummax", "Tensor.cummin"]
_SELECT = ["Tensor.sort", "Tensor.argsort", "Tensor.msort", "Tensor.topk", "Tensor.kthvalue",
           "Tensor.median", "Tensor.mode"]


@family(*[n for r in _CUM + _SELECT for n in aliases(r)], weight=3)
def selection(b: Builder) -> bool:
    """Cumulative ops and sort/topk/kthvalue/median/mode (values, indices, both)."""
    row = b.choice(_CUM + _SELECT)
    a = _f(b, lambda t: t.dim() >= 1 and t.numel() > 0 and not t.isnan().any() and t.isfinite().all())
    if a is None:
        return False
    t = b.env[a]
    if row in _SELECT and not _distinct(t):  # random noise breaks ties
        a = f"({a} + torch.randn({tuple(t.shape)}))"
    d = _dim(b, t)
    name = _choose(b, aliases(row))
    dim = b.choice([str(d), f"dim={d}", f"axis={d}"])
    pick = b.choice([".values", "[0]", ".indices"])
    n = t.shape[d] if t.dim() else 1
    if row == "Tensor.cumprod":
        return _op(b, spell(name, f"{a}.tanh()", dim), (a,))
    if row == "Tensor.logcumsumexp":
        return _op(b, spell(name, a, dim), (a,))
    if row in ("Tensor.cummax", "Tensor.cummin"):
        return _op(b, spell(name, a, dim) + pick, (a,))
    if row == "Tensor.sort":
        desc = b.choice(["", ", descending=True", ", stable=True"])
        return _op(b, spell(name, a, dim + desc) + pick, (a,))
    if row == "Tensor.argsort":
        return _op(b, f"{a} * {spell(name, a, dim)}", (a,))
    if row == "Tensor.msort":
        return _op(b, spell(name, a), (a,))
    if row == "Tensor.topk":
        largest = b.choice(["", ", largest=False"])
        return _op(b, spell(name, a, f"{b.int(1, n)}, {dim}{largest}") + pick, (a,))
    if row == "Tensor.kthvalue":
        keep = b.choice(["", ", keepdim=True"])
        return _op(b, spell(name, a, f"{b.int(1, n)}, {dim}{keep}") + pick, (a,))
    if row == "Tensor.median" and b.bool():
        return _op(b, spell(name, a), (a,))
    keep = b.choice(["", ", keepdim=True", ", keepdims=True"])
    return _op(b, spell(name, a, dim + keep) + pick, (a,))


_MASKS = ["torch.nn.functional.one_hot", "Tensor.masked_fill", "Tensor.masked_select",
          "Tensor.masked_scatter", "Tensor.triu", "Tensor.tril", "Tensor.diagonal", "Tensor.diag",
          "Tensor.diag_embed", "Tensor.trace", "Tensor.roll", "Tensor.rot90", "Tensor.fliplr",
          "Tensor.flipud", "Tensor.nonzero", "Tensor.take", "Tensor.take_along_dim"]


@family(*[n for r in _MASKS for n in aliases(r)], weight=4)
def masks(b: Builder) -> bool:
    """one_hot, masked ops, triangles and diagonals, rolls and flips, nonzero, take."""
    row = b.choice(_MASKS + ["Tensor.masked_fill", "Tensor.masked_scatter"])  # (+ in place)
    a = _f(b, lambda t: t.dim() >= 1)
    if a is None:
        return False
    t = b.env[a]
    matrix = row in ("Tensor.triu", "Tensor.tril", "Tensor.diagonal", "Tensor.rot90", "Tensor.fliplr",
                     "Tensor.trace", "Tensor.diag")
    if matrix and (t.dim() != 2 if row in ("Tensor.trace", "Tensor.diag") else t.dim() < 2):
        a = f"{a}.reshape({t.shape[0]}, -1)" if t.shape[0] else f"{a}.reshape(1, -1)"
        t = t.reshape(t.shape[0], -1) if t.shape[0] else t.reshape(1, -1)
    d = _dim(b, t)
    name = _choose(b, aliases(row))
    if row == "torch.nn.functional.one_hot":
        k = b.choice(["3", "num_classes=4", ""])
        return _op(b, f"F.one_hot(({a} > 0).long(){', ' + k if k else ''}).float() * {a}.unsqueeze(-1)", (a,))
    if row == "Tensor.masked_fill":
        value = b.choice(["-1e9", "0.0", f"{a}.detach().sum()", f"{a}.mean()"])
        if b.bool():
            return b.add(_stmt(b, a, f"{{v}}.masked_fill_({a} > 0, {value})"), (a,))
        return _op(b, spell(name, a, f"{a} < 0, {value}"), (a,))
    if row == "Tensor.masked_select":
        return _op(b, spell(name, a, f"{a} > 0"), (a,))
    if row == "Tensor.masked_scatter":
        src = f"torch.arange({t.numel()}.0)"
        if b.bool():
            return b.add(_stmt(b, a, f"{{v}}.masked_scatter_({a} > 0, {src})"), (a,))
        return _op(b, spell(name, a, f"{a} > 0, {src}"), (a,))
    args = {"Tensor.triu": b.choice(["", "1", "diagonal=-1"]), "Tensor.tril": b.choice(["", "-1", "diagonal=1"]),
            "Tensor.diagonal": b.choice(["", "1", "0, -1, 0", "offset=-1, dim1=1, dim2=0"]),
            "Tensor.diag": b.choice(["", "1", "-1"]), "Tensor.diag_embed": b.choice(["", "1", "0, 0, 1"]),
            "Tensor.trace": "", "Tensor.roll": b.choice(["1", f"-1, {d}", f"shifts=2, dims={d}"]),
            "Tensor.rot90": b.choice(["", "2", "-1, [1, 0]", "k=3, dims=(0, 1)"]), "Tensor.fliplr": "",
            "Tensor.flipud": "", "Tensor.nonzero": b.choice(["", "as_tuple=True"]),
            "Tensor.take": f"torch.tensor([0, {t.numel() - 1}, 0])",
            "Tensor.take_along_dim": b.choice([f"{a}.argmax({d}, keepdim=True), {d}",
                                               f"{a}.argsort(dim={d}), dim={d}", f"{a}.flatten().argmin()"])}[row]
    if row == "Tensor.nonzero":
        if "as_tuple" in args:
            return _op(b, f"{a}[{spell(name, f'({a} > 0)', args)}] * 2", (a,))
        return _op(b, f"{spell(name, f'({a} > 0)', args)}.float().sum() * {a}", (a,))
    return _op(b, spell(name, a, args), (a,))


def _stmt(b: Builder, a: str, line: str):
    from fuzz_programs import Stmt
    var = b.name()
    return Stmt(f"{var} = {a}.clone()\n" + line.format(v=var), "op", var)


_WRITES = ["Tensor.index_add", "Tensor.index_copy", "Tensor.index_fill", "Tensor.scatter",
           "Tensor.scatter_add", "Tensor.scatter_reduce"]


@family(*[n for r in _WRITES for n in aliases(r) + aliases(r + "_")], weight=3)
def index_writes(b: Builder) -> bool:
    """index_add/copy/fill and scatter/scatter_add/scatter_reduce, out of place and in place
    (on a fresh clone)."""
    a = _f(b, lambda t: t.dim() >= 1 and t.numel() > 0)
    if a is None:
        return False
    t = b.env[a]
    d = _dim(b, t)
    n = t.shape[d]
    row = b.choice(_WRITES)
    in_place = b.int(0, 2) == 0
    pick = f"torch.tensor([{n - 1}, 0])" if row != "Tensor.index_copy" or n > 1 else "torch.tensor([0])"
    k = 2 if "[" in pick and ", " in pick else 1
    part = list(t.shape)
    part[d] = k
    src = b.choice([f"torch.randn({tuple(part)}, requires_grad=True)", f"torch.ones({tuple(part)})"])
    if row == "Tensor.index_fill":
        args = f"{d}, {pick}, {b.choice(['-1.0', f'{a}.mean()'])}"
    elif row in ("Tensor.index_add", "Tensor.index_copy"):
        alpha = ", alpha=2" if row == "Tensor.index_add" and b.bool() else ""
        args = f"{d}, {pick}, {src}{alpha}"
    else:
        index = f"torch.randint(0, {n}, {tuple(part)})"
        if row == "Tensor.scatter":
            args = f"{d}, {index}, {b.choice([src, '0.5'])}"
        elif row == "Tensor.scatter_add":
            args = f"{d}, {index}, {src}"
        else:
            reduce = b.choice(["'sum'", "'prod'", "'mean'", "'amax'", "'amin'"])
            args = f"{d}, {index}, {src}, {reduce}{b.choice(['', ', include_self=False'])}"
    if in_place:
        return b.add(_stmt(b, a, spell(_choose(b, aliases(row + "_")), "{v}", args)), (a,))
    return _op(b, spell(_choose(b, aliases(row)), a, args), (a,))
