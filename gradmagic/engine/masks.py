"""Dropout masks drawn inside the engine's composites: attention and recurrent layers.

torch draws these masks inside one fused call: ``F.scaled_dot_product_attention`` with
``dropout_p``, ``F.multi_head_attention_forward`` in training, and ``nn.LSTM``/``nn.GRU``/
``nn.RNN`` with ``dropout`` between layers. Each draw is ``empty(shape).bernoulli_(1 - p)``
on the CPU generator. The composite asks :func:`keep_mask` for each mask, in the order torch
draws them.

Nothing is drawn unless a source is installed with :func:`mask_source`. The recorder installs
one that replays torch's generator from the state saved before the call
(``recorder/masks.py``), so the engine applies torch's very masks. Without a source the
composites raise ``NotImplementedError``: a mask the engine made up could never be checked
against torch's.

>>> import numpy as np
>>> with mask_source(lambda shape, dtype, p: np.ones(shape, bool)):
...     bool(keep_mask((2, 3), np.float32, 0.5).all())
True
>>> keep_mask((2, 3), np.float32, 0.5)
Traceback (most recent call last):
...
NotImplementedError: dropout inside a fused call draws a random mask, and no source of torch's masks is installed
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from .tensor import apply

#: (shape, dtype, p) -> boolean keep-mask (True: the element is kept)
MaskSource = Callable[[tuple, np.dtype, float], Any]

_SOURCES: list = []


def keep_mask(shape: tuple, dtype: Any, p: float) -> np.ndarray:
    """The next keep-mask of ``shape`` for values of ``dtype`` dropped with probability ``p``
    (``0 < p < 1``: torch draws nothing for ``p`` of 0 or 1)."""
    if not _SOURCES:
        raise NotImplementedError("dropout inside a fused call draws a random mask, and no source "
                                  "of torch's masks is installed")
    return np.asarray(_SOURCES[-1](tuple(int(n) for n in shape), np.dtype(dtype), float(p)), bool)


@contextmanager
def mask_source(source: MaskSource) -> Iterator[None]:
    """Let the composites run inside this block take their masks from ``source``."""
    _SOURCES.append(source)
    try:
        yield
    finally:
        _SOURCES.remove(source)


def dropped(x: Any, p: float, shape: tuple | None = None, axes: tuple | None = None) -> Any:
    """``x`` after torch's inverted dropout with probability ``p`` (an engine op, so the mask
    is part of the graph). torch draws the mask on ``shape`` (default: ``x``'s) and it is laid
    onto ``x`` transposed by ``axes`` (a batch-first RNN's outputs are time-major to torch)."""
    p = float(p)
    if p <= 0 or x.numel() == 0:
        return x
    if p >= 1:  # torch multiplies by zero, drawing nothing
        return apply("dropout", x, mask=np.zeros(x.shape, bool), p=p)
    keep = keep_mask(x.shape if shape is None else shape, x.dtype, p)
    if axes is not None:
        keep = keep.transpose(axes)
    return apply("dropout", x, mask=keep, p=p)
