"""Fuzzer families of the activations ops (registered into fuzz_programs.FAMILIES on import):
the activations of ``F`` (options, ``inplace=True``, the in-place spellings), elementwise
math (sinh ... sinc) and the losses (every reduction, weights, label smoothing, K-dim)."""
from __future__ import annotations

import torch

from fuzz_programs import Builder, Stmt, _choose, _lit, _op, aliases, family, spell  # noqa: F401

_FN = "torch.nn.functional."
#: activation -> argument texts to choose from (rows: every alias of F.<name>)
_ACTS = {
    "silu": [""], "mish": [""], "elu": ["", "0.5", "alpha=2.0"], "selu": [""],
    "celu": ["", "0.7", "alpha=1.5"], "hardtanh": ["", "-0.5, 0.5", "min_val=-2.0, max_val=0.3"],
    "relu6": [""], "hardswish": [""], "hardsigmoid": [""], "logsigmoid": [""],
    "softshrink": ["", "0.3", "lambd=1.0"], "hardshrink": ["", "0.3"], "softsign": [""],
    "tanhshrink": [""], "threshold": ["0.1, -1.0", "threshold=0.5, value=2.0"],
    "rrelu": ["", "0.1, 0.3", "training=False"], "softmin": ["dim=-1", "0"],
}
_INPLACE_OK = ("silu", "mish", "elu", "selu", "celu", "hardtanh", "relu6", "hardswish",
               "hardsigmoid", "threshold", "rrelu")


def _float(b: Builder, pred=lambda t: True):
    return b.pick_float(lambda t: t.dtype == torch.float32 and pred(t))


@family(*[n for a in _ACTS for n in aliases(_FN + a)], weight=3)
def activations(b: Builder) -> bool:
    a = _float(b)
    if a is None:
        return False
    acts = b.subset(sorted(_ACTS), 1, 2)
    calls = [_activation(b, a, act) for act in acts]
    act = acts[0]
    if act in _INPLACE_OK and b.int(0, 3) == 0:  # on a fresh intermediate, as in a Sequential
        var = b.name()
        name, recv, args = calls[0]
        line = spell(name, var, args + (", inplace=True" if args else "inplace=True"))
        return b.add(Stmt(f"{var} = {recv} * 1.5\n{line}", "op", var), (a,))
    return _op(b, " + ".join(spell(*c) for c in calls), (a,))


def _activation(b: Builder, a: str, act: str) -> tuple:
    """(spelling, receiver, argument text) of one activation call on ``a``."""
    args = b.choice(_ACTS[act])
    if act == "softmin" and b.env[a].dim() == 0:
        args = "dim=0"
    recv = f"({a} * 3)" if act in ("hardswish", "hardsigmoid", "relu6") else a
    return _choose(b, aliases(_FN + act)), recv, args


_INPLACE_ROWS = {"torch.nn.functional.elu_": "", "torch.selu_": "", "torch.celu_": "0.5",
                 "torch.nn.functional.hardtanh_": "-0.5, 0.5", "torch.threshold_": "0.1, 0.0",
                 "torch.rrelu_": "", "torch.nn.functional.leaky_relu_": "0.2"}


@family(*[n for r in _INPLACE_ROWS for n in aliases(r)], weight=1)
def activation_inplace(b: Builder) -> bool:
    a = _float(b)
    if a is None:
        return False
    row = b.choice(sorted(_INPLACE_ROWS))
    var = b.name()
    line = spell(_choose(b, aliases(row)), var, _INPLACE_ROWS[row])
    return b.add(Stmt(f"{var} = {a}.clone()\n{line}", "op", var), (a,))


@family(*aliases(_FN + "glu"), *aliases(_FN + "prelu"), *aliases(_FN + "gelu"), weight=1)
def gates(b: Builder) -> bool:
    """glu over an even dimension, prelu with a learnt slope (one or per channel)."""
    kind = b.choice(["glu", "prelu", "gelu"])
    if kind == "glu":
        a = _float(b, lambda t: t.dim() > 0 and t.shape[-1] % 2 == 0)
        if a is None:
            return False
        return _op(b, spell(_choose(b, aliases(_FN + "glu")), a, b.choice(["", "-1", "dim=-1"])), (a,))
    a = _float(b)
    if a is None:
        return False
    if kind == "gelu":
        return _op(b, f"F.gelu({a}, approximate={b.choice(['none', 'tanh'])!r})", (a,))
    t = b.env[a]
    n = t.shape[1] if t.dim() >= 2 else 1
    w = b.name("w")
    b.add(Stmt(f"{w} = torch.full(({b.choice([1, n])},), {_lit(b.float(0.05, 0.5))}, "
               f"requires_grad=True)", "setup", w))
    return _op(b, spell(_choose(b, aliases(_FN + "prelu")), a, w), (a, w))


_MATH = {"sinh": "{a}.tanh()", "cosh": "{a}.tanh()", "asin": "({a}.tanh() * 0.9)",
         "acos": "({a}.tanh() * 0.9)", "atan": "{a}", "asinh": "{a}",
         "acosh": "({a} * {a} + 1.5)", "atanh": "({a}.tanh() * 0.9)", "log2": "({a}.abs() + 0.5)",
         "log10": "({a}.abs() + 0.5)", "exp2": "{a}.tanh()", "sinc": "{a}"}


@family(*[n for m in _MATH for n in aliases("Tensor." + m)], weight=2)
def math(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    fns = b.subset(sorted(_MATH), 2, 4)  # a few per statement: twelve functions, four spellings
    return _op(b, " + ".join(spell(_choose(b, aliases("Tensor." + fn)), _MATH[fn].format(a=a))
                             for fn in fns), (a,))


_PAIRWISE = ["l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss",
             "gaussian_nll_loss", "soft_margin_loss", "hinge_embedding_loss"]
_BATCHED = ["multilabel_soft_margin_loss", "cosine_embedding_loss", "margin_ranking_loss",
            "triplet_margin_loss"]


@family(*[n for r in _PAIRWISE + _BATCHED for n in aliases(_FN + r)], weight=2)
def more_losses(b: Builder) -> bool:
    loss = b.choice(_PAIRWISE + _BATCHED)
    red = b.choice(["", ", reduction='sum'", ", reduction='none'", ", reduction='mean'"])
    name = "F." + loss
    if loss in _PAIRWISE:
        a = _float(b)
        if a is None:
            return False
        shape = tuple(b.env[a].shape)
        other = f"torch.randn({shape})"
        forms = {
            "l1_loss": f"{name}({a}, {other}{red})",
            "smooth_l1_loss": f"{name}({a}, {other}{red}, beta={b.choice([1.0, 0.5, 0.0])})",
            "huber_loss": f"{name}({a}, {other}{red}, delta={b.choice([1.0, 0.3])})",
            "kl_div": b.choice([f"{name}({a}, torch.rand({shape}){red})",
                                f"{name}({a}, {other}, log_target=True{red})",
                                f"{name}({a}, torch.rand({shape}), reduction='batchmean')"]),
            "poisson_nll_loss": b.choice([f"{name}({a}, torch.rand({shape}) * 3{red})",
                                          f"{name}({a}.exp(), torch.rand({shape}) * 4, log_input=False, "
                                          f"full=True{red})"]),
            "gaussian_nll_loss": f"{name}({a}, {other}, {a}.exp(), full={b.bool()}{red})",
            "soft_margin_loss": f"{name}({a}, {other}.sign(){red})",
            "hinge_embedding_loss": f"{name}({a}, {other}.sign(), margin={b.choice([1.0, 0.5])}{red})",
        }
        return _op(b, forms[loss], (a,))
    a = _float(b, lambda t: t.dim() == 2)
    if a is None:
        return False
    n, c = b.env[a].shape
    other = f"torch.randn({(n, c)})"
    pm = f"(torch.randint(0, 2, ({n},)) * 2 - 1)"
    forms = {
        "multilabel_soft_margin_loss": f"{name}({a}, (torch.rand({(n, c)}) > 0.5).float(){red})",
        "cosine_embedding_loss": f"{name}({a}, {other}, {pm}, margin={b.choice([0.0, 0.2])}{red})",
        "margin_ranking_loss": f"{name}({a}[:, 0], {other}[:, 0], {pm}.float(), margin=0.1{red})",
        "triplet_margin_loss": f"{name}({a}, {other}, {other}, swap={b.bool()}, p={b.choice([1, 2])}{red})",
    }
    return _op(b, forms[loss], (a,))


@family(*aliases(_FN + "cross_entropy"), *aliases(_FN + "nll_loss"),
        *aliases(_FN + "binary_cross_entropy_with_logits"), weight=1)
def weighted_losses(b: Builder) -> bool:
    """cross_entropy/nll_loss with weight, ignore_index, label smoothing, K-dim inputs;
    binary cross-entropy with weight and pos_weight."""
    kind = b.choice(["ce", "nll", "bcel"])
    red = b.choice(["", ", reduction='sum'", ", reduction='none'"])
    if kind == "bcel":
        a = _float(b, lambda t: t.dim() >= 1)
        if a is None:
            return False
        shape, c = tuple(b.env[a].shape), b.env[a].shape[-1]
        return _op(b, f"F.binary_cross_entropy_with_logits({a}, torch.rand({shape}), "
                      f"weight=torch.rand({c}), pos_weight=torch.rand({c}) * 2{red})", (a,))
    a = _float(b, lambda t: t.dim() in (2, 3) and t.shape[1] > 1)
    if a is None:
        return False
    shape = tuple(b.env[a].shape)
    c = shape[1]
    target = f"torch.randint(0, {c}, {(shape[0],) + shape[2:]})"
    opts = b.choice(["", f", weight=torch.rand({c})", f", ignore_index={c - 1}",
                     f", weight=torch.rand({c}), ignore_index=0"])
    if kind == "nll":
        return _op(b, f"F.nll_loss(F.log_softmax({a}, 1), {target}{opts}{red})", (a,))
    smooth = b.choice(["", ", label_smoothing=0.1"])
    return _op(b, f"F.cross_entropy({a}, {target}{opts}{smooth}{red})", (a,))
