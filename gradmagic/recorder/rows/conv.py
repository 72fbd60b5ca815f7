"""Mapping rows of the conv family (see rows/__init__.py): convolutions and pooling.

``F.conv2d`` is ``torch.conv2d`` itself (one builtin), as are ``F.avg_pool1d``,
``F.adaptive_avg_pool1d`` and the conv_transpose functions; ``F.max_pool2d`` and the other
``return_indices`` functions are Python dispatchers that the mode receives as they are
(``nn.MaxPool2d`` hands over ``F.max_pool2d``, or ``F.max_pool2d_with_indices`` with
``return_indices=True``). ``torch.max_pool2d``/``torch.avg_pool1d`` spell a default stride
as ``[]``; ``torch.adaptive_max_pool1d`` always returns (values, indices).
"""
from __future__ import annotations

from typing import Any

from gradmagic.engine import functional as EF

from ..adapters import call

ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
    ("op", "conv", call(EF.conv1d), ("torch.conv1d", "F.conv1d")),
    ("op", "conv", call(EF.conv2d), ("torch.conv2d", "F.conv2d")),
    ("op", "conv", call(EF.conv3d), ("torch.conv3d", "F.conv3d")),
    ("op", "conv_transpose", call(EF.conv_transpose1d), ("torch.conv_transpose1d", "F.conv_transpose1d")),
    ("op", "conv_transpose", call(EF.conv_transpose2d), ("torch.conv_transpose2d", "F.conv_transpose2d")),
    ("op", "conv_transpose", call(EF.conv_transpose3d), ("torch.conv_transpose3d", "F.conv_transpose3d")),
    ("op", "max_pool2d", call(EF.max_pool2d), ("F.max_pool2d", "torch.max_pool2d")),
    ("op", "max_pool2d", call(EF.max_pool2d_with_indices), ("F.max_pool2d_with_indices",)),
    ("op", "max_pool2d", call(EF.max_pool1d), ("F.max_pool1d", "torch.max_pool1d")),
    ("op", "max_pool2d", call(EF.max_pool1d_with_indices), ("F.max_pool1d_with_indices",
                                                            "torch.max_pool1d_with_indices")),
    ("op", "avg_pool2d", call(EF.avg_pool2d), ("F.avg_pool2d",)),
    ("op", "avg_pool2d", call(EF.avg_pool1d), ("torch.avg_pool1d", "F.avg_pool1d")),
    ("op", "adaptive_avg_pool2d", call(EF.adaptive_avg_pool2d), ("F.adaptive_avg_pool2d",)),
    ("op", "adaptive_avg_pool2d", call(EF.adaptive_avg_pool1d), ("torch.adaptive_avg_pool1d",
                                                                 "F.adaptive_avg_pool1d")),
    ("op", "adaptive_max_pool2d", call(EF.adaptive_max_pool2d), ("F.adaptive_max_pool2d",)),
    ("op", "adaptive_max_pool2d", call(EF.adaptive_max_pool2d_with_indices),
     ("F.adaptive_max_pool2d_with_indices",)),
    ("op", "adaptive_max_pool2d", call(EF.adaptive_max_pool1d), ("F.adaptive_max_pool1d",)),
    ("op", "adaptive_max_pool2d", call(EF.adaptive_max_pool1d_with_indices),
     ("F.adaptive_max_pool1d_with_indices", "torch.adaptive_max_pool1d")),
    ("op", "max_unpool2d", call(EF.max_unpool2d), ("F.max_unpool2d",)),
]
