"""Mapping rows of the activations family (see rows/__init__.py): the activations of
``torch.nn.functional`` (what ``nn.SiLU``, ``nn.ELU``, ``nn.PReLU`` ... call), elementwise math
(``torch.sinh`` ... ``Tensor.sinc``) and the losses beyond the core table's (``nn.L1Loss``,
``nn.KLDivLoss`` ...: ``F.cross_entropy``, ``F.nll_loss``, ``F.mse_loss`` and the binary
cross-entropies keep their core rows, whose engine functions are this family's).

The op named by a composite's row (``F.l1_loss`` → ``mean``) is its last node for the default
reduction; the recorder draws every node the engine made.
"""
from __future__ import annotations

from typing import Any

from gradmagic.engine import functional as EF

from ..adapters import call

_MATH = ("sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh", "log2", "log10",
         "exp2", "sinc")
_ARC = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
        "acosh": "arccosh", "atanh": "arctanh"}
_SPECIAL = {"exp2": ("torch.special.exp2",), "sinc": ("torch.special.sinc",)}


def _math_names(n: str) -> tuple[str, ...]:
    arc = _ARC.get(n)
    return ("Tensor." + n, "torch." + n) + (("Tensor." + arc, "torch." + arc) if arc else ()) \
        + _SPECIAL.get(n, ())


ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
    # activations (``inplace=True`` runs the engine's in-place form)
    ("op", "silu", call(EF.silu), ("F.silu",)),
    ("op", "mish", call(EF.mish), ("F.mish",)),
    ("op", "elu", call(EF.elu), ("F.elu",)),
    ("op", "elu", call(EF.selu), ("F.selu", "torch.selu")),
    ("op", "celu", call(EF.celu), ("F.celu", "torch.celu")),
    ("op", "hardtanh", call(EF.hardtanh), ("F.hardtanh",)),
    ("op", "hardtanh", call(EF.relu6), ("F.relu6",)),
    ("op", "hardswish", call(EF.hardswish), ("F.hardswish",)),
    ("op", "hardsigmoid", call(EF.hardsigmoid), ("F.hardsigmoid",)),
    ("op", "threshold", call(EF.threshold), ("F.threshold", "torch.threshold")),
    ("op", "rrelu", call(EF.rrelu), ("F.rrelu", "torch.rrelu")),
    ("op", "logsigmoid", call(EF.logsigmoid), ("F.logsigmoid",)),
    ("op", "softshrink", call(EF.softshrink), ("F.softshrink",)),
    ("op", "hardshrink", call(EF.hardshrink), ("F.hardshrink", "torch.hardshrink",
                                                "Tensor.hardshrink")),
    ("op", "glu", call(EF.glu), ("F.glu",)),
    ("op", "prelu", call(EF.prelu), ("F.prelu", "torch.prelu", "Tensor.prelu")),
    ("op", "div", call(EF.softsign), ("F.softsign",)),
    ("op", "sub", call(EF.tanhshrink), ("F.tanhshrink",)),
    ("op", "softmax", call(EF.softmin), ("F.softmin",)),
    ("inplace", "elu", call(EF.elu_), ("F.elu_",)),
    ("inplace", "elu", call(EF.selu_), ("torch.selu_", "F.selu_")),
    ("inplace", "celu", call(EF.celu_), ("torch.celu_", "F.celu_")),
    ("inplace", "hardtanh", call(EF.hardtanh_), ("F.hardtanh_",)),
    ("inplace", "threshold", call(EF.threshold_), ("torch.threshold_", "F.threshold_")),
    ("inplace", "rrelu", call(EF.rrelu_), ("torch.rrelu_", "F.rrelu_")),
    # elementwise math
    *[("op", n, call(getattr(EF, n)), _math_names(n)) for n in _MATH],
    # losses (F.cross_entropy, F.nll_loss, F.mse_loss, F.binary_cross_entropy[_with_logits]:
    # core rows)
    ("op", "mean", call(EF.l1_loss), ("F.l1_loss",)),
    ("op", "smooth_l1_loss", call(EF.smooth_l1_loss), ("F.smooth_l1_loss",)),
    ("op", "huber_loss", call(EF.huber_loss), ("F.huber_loss",)),
    ("op", "soft_margin_loss", call(EF.soft_margin_loss), ("F.soft_margin_loss",)),
    ("op", "mean", call(EF.kl_div), ("F.kl_div",)),
    ("op", "mean", call(EF.poisson_nll_loss), ("F.poisson_nll_loss",)),
    ("op", "mean", call(EF.gaussian_nll_loss), ("F.gaussian_nll_loss",)),
    ("op", "mean", call(EF.multilabel_soft_margin_loss), ("F.multilabel_soft_margin_loss",)),
    ("op", "mean", call(EF.cosine_embedding_loss), ("F.cosine_embedding_loss",)),
    ("op", "mean", call(EF.margin_ranking_loss), ("F.margin_ranking_loss",)),
    ("op", "mean", call(EF.hinge_embedding_loss), ("F.hinge_embedding_loss",)),
    ("op", "mean", call(EF.triplet_margin_loss), ("F.triplet_margin_loss",)),
]
