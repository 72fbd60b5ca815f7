"""Mapping rows of the tensorops family (see rows/__init__.py).

``for row in X:`` reaches the mode as ``Tensor.unbind`` (torch's ``Tensor.__iter__`` skips
``__torch_function__`` and calls ``self.unbind(0)``), so iteration is the ``unbind`` row.
``Tensor.split``/``Tensor.chunk`` keep their core rows (``mapping.py``): the engine's
``split``/``chunk`` are this family's (SplitBackward0, SplitWithSizesBackward0).
"""
from __future__ import annotations

from typing import Any

from gradmagic.engine import functional as EF

from ..adapters import call


def _both(name: str) -> tuple[str, str]:
    return ("Tensor." + name, "torch." + name)


ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
    # shapes
    ("op", "unbind", call(EF.unbind), _both("unbind")),
    ("op", "getitem", call(EF.tensor_split), _both("tensor_split")),
    ("op", "getitem", call(EF.hsplit), _both("hsplit")),
    ("op", "getitem", call(EF.vsplit), _both("vsplit")),
    ("op", "getitem", call(EF.dsplit), _both("dsplit")),
    ("op", "reshape", call(EF.unflatten), _both("unflatten")),
    ("op", "reshape", call(EF.ravel), _both("ravel")),
    ("op", "permute", call(EF.movedim), (*_both("movedim"), *_both("moveaxis"))),
    # cumulative
    ("op", "cumprod", call(EF.cumprod), _both("cumprod")),
    ("op", "logcumsumexp", call(EF.logcumsumexp), _both("logcumsumexp")),
    ("op", "cummax", call(EF.cummax), _both("cummax")),
    ("op", "cummin", call(EF.cummin), _both("cummin")),
    # selection
    ("op", "sort", call(EF.sort), _both("sort")),
    ("op", "sort", call(EF.argsort), _both("argsort")),
    ("op", "sort", call(EF.msort), _both("msort")),
    ("op", "topk", call(EF.topk), _both("topk")),
    ("op", "kthvalue", call(EF.kthvalue), _both("kthvalue")),
    ("op", "median", call(EF.median), _both("median")),
    ("op", "mode", call(EF.mode), _both("mode")),
    # masks and triangles
    ("op", "one_hot", call(EF.one_hot), ("F.one_hot",)),
    ("op", "masked_fill", call(EF.masked_fill), _both("masked_fill")),
    ("inplace", "masked_fill", call(EF.masked_fill_), ("Tensor.masked_fill_",)),
    ("op", "masked_select", call(EF.masked_select), _both("masked_select")),
    ("op", "masked_scatter", call(EF.masked_scatter), _both("masked_scatter")),
    ("inplace", "masked_scatter", call(EF.masked_scatter_), ("Tensor.masked_scatter_",)),
    ("op", "triu", call(EF.triu), _both("triu")),
    ("op", "tril", call(EF.tril), _both("tril")),
    # diagonals
    ("op", "diagonal", call(EF.diagonal), _both("diagonal")),
    ("op", "diagonal", call(EF.diag), _both("diag")),
    ("op", "diag_embed", call(EF.diag_embed), _both("diag_embed")),
    ("op", "trace", call(EF.trace), _both("trace")),
    # moves
    ("op", "roll", call(EF.roll), _both("roll")),
    ("op", "rot90", call(EF.rot90), _both("rot90")),
    ("op", "flip", call(EF.fliplr), _both("fliplr")),
    ("op", "flip", call(EF.flipud), _both("flipud")),
    ("op", "reshape", call(EF.repeat_interleave), _both("repeat_interleave")),
    ("op", "repeat", call(EF.tile), _both("tile")),
    # index writes
    ("op", "index_add", call(EF.index_add), _both("index_add")),
    ("inplace", "index_add", call(EF.index_add_), ("Tensor.index_add_",)),
    ("op", "index_copy", call(EF.index_copy), _both("index_copy")),
    ("inplace", "index_copy", call(EF.index_copy_), ("Tensor.index_copy_",)),
    ("op", "index_fill", call(EF.index_fill), _both("index_fill")),
    ("inplace", "index_fill", call(EF.index_fill_), ("Tensor.index_fill_",)),
    ("op", "scatter", call(EF.scatter), _both("scatter")),
    ("inplace", "scatter", call(EF.scatter_), ("Tensor.scatter_",)),
    ("op", "scatter_add", call(EF.scatter_add), _both("scatter_add")),
    ("inplace", "scatter_add", call(EF.scatter_add_), ("Tensor.scatter_add_",)),
    ("op", "scatter_reduce", call(EF.scatter_reduce), _both("scatter_reduce")),
    ("inplace", "scatter_reduce", call(EF.scatter_reduce_), ("Tensor.scatter_reduce_",)),
    ("op", "take", call(EF.take), _both("take")),
    ("op", "gather", call(EF.take_along_dim), _both("take_along_dim")),
    ("op", "nonzero", call(EF.nonzero), (*_both("nonzero"), *_both("argwhere"))),
]
