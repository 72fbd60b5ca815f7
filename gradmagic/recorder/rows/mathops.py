"""Mapping rows of the mathops family (see rows/__init__.py).

The mode receives Python-level functions for the ``torch.nn.functional`` wrappers
(``F.pad``, ``F.interpolate``, ``F.normalize``, ``F.unfold``/``F.fold``: the
``F.upsample*`` aliases and ``nn.Upsample`` arrive as ``F.interpolate``) and
``torch.functional``'s ``einsum``/``tensordot``/``cdist`` (``torch.einsum`` is that
object). Composite rows name the engine op at the top of what they build.
"""
from __future__ import annotations

from typing import Any

from gradmagic.engine import functional as EF

from ..adapters import call

_T = "Tensor."


def _names(name: str, *extra: str) -> tuple[str, ...]:
    return ("torch." + name, _T + name, *extra)


ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
    # products
    ("op", "einsum", call(EF.einsum), ("torch.einsum",)),
    ("op", "reshape", call(EF.tensordot), ("torch.tensordot",)),
    ("op", "reshape", call(EF.kron), _names("kron")),
    *[("op", n, call(getattr(EF, n)), _names(n)) for n in ("addmm", "addmv", "addbmm", "baddbmm",
                                                             "addr")],
    ("op", "addcmul", call(EF.addcmul), _names("addcmul")),
    ("op", "addcdiv", call(EF.addcdiv), _names("addcdiv")),
    # pointwise math
    ("op", "atan2", call(EF.atan2), _names("atan2", "torch.arctan2", "Tensor.arctan2")),
    ("op", "hypot", call(EF.hypot), _names("hypot")),
    ("op", "logaddexp", call(EF.logaddexp), _names("logaddexp")),
    ("op", "logaddexp2", call(EF.logaddexp2), _names("logaddexp2")),
    ("op", "erfc", call(EF.erfc), _names("erfc", "torch.special.erfc")),
    ("op", "erfinv", call(EF.erfinv), _names("erfinv", "torch.special.erfinv")),
    ("op", "xlogy", call(EF.xlogy), _names("xlogy", "torch.special.xlogy")),
    ("op", "lerp", call(EF.lerp), _names("lerp")),
    ("op", "clamp_min", call(EF.clamp_min), _names("clamp_min")),
    ("op", "clamp_max", call(EF.clamp_max), _names("clamp_max")),
    ("op", "nan_to_num", call(EF.nan_to_num), _names("nan_to_num")),
    # distances and norms
    ("op", "cross", call(EF.cross), _names("cross")),
    ("op", "cross", call(EF.linalg_cross), ("torch.linalg.cross",)),
    ("op", "dist", call(EF.dist), _names("dist")),
    ("op", "cdist", call(EF.cdist), ("torch.cdist",)),
    ("op", "norm", call(EF.vector_norm), ("torch.linalg.vector_norm",)),
    ("op", "norm", call(EF.matrix_norm), ("torch.linalg.matrix_norm",)),
    ("op", "norm", call(EF.linalg_norm), ("torch.linalg.norm",)),
    ("op", "div", call(EF.normalize), ("F.normalize",)),
    ("op", "sum", call(EF.cosine_similarity), ("torch.cosine_similarity", "F.cosine_similarity")),
    ("op", "norm", call(EF.pairwise_distance), ("torch.pairwise_distance", "F.pairwise_distance")),
    # resampling (torch.nn.functional)
    ("op", "pad", call(EF.pad), ("F.pad",)),
    ("op", "interpolate", call(EF.interpolate), ("F.interpolate",)),
    ("op", "im2col", call(EF.unfold), ("F.unfold",)),
    ("op", "col2im", call(EF.fold), ("F.fold",)),
    # in place (optimizers: exp_avg_sq.addcmul_(g, g, value=1 - β2), p.addcdiv_(m, denom, value=-lr))
    ("inplace", "addcmul", call(EF.addcmul_), ("Tensor.addcmul_",)),
    ("inplace", "addcdiv", call(EF.addcdiv_), ("Tensor.addcdiv_",)),
    ("inplace", "lerp", call(EF.lerp_), ("Tensor.lerp_",)),
    ("inplace", "clamp_min", call(EF.clamp_min_), ("Tensor.clamp_min_", "torch.clamp_min_")),
    ("inplace", "clamp_max", call(EF.clamp_max_), ("Tensor.clamp_max_", "torch.clamp_max_")),
    ("inplace", "nan_to_num", call(EF.nan_to_num_), ("Tensor.nan_to_num_", "torch.nan_to_num_")),
]
