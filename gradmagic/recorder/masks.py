"""torch's dropout masks, replayed from its CPU generator: the recorder saves the generator's
state before a call that draws masks, and the engine's composites take the same masks
(``engine/masks.py``) without the user's random numbers moving.

>>> import torch
>>> state = torch.get_rng_state()
>>> torch.dropout(torch.ones(6), 0.5, True).ne(0).tolist() == TorchMasks(state, torch.float32)((6,), None, 0.5).tolist()
True
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .twins import to_numpy


def replayed(state: torch.Tensor, draw: Callable[[], Any]) -> tuple[Any, torch.Tensor]:
    """``draw()`` run on torch's CPU generator as it was at ``state``: (its result, the
    generator's state after it). The user's generator is left exactly as it was."""
    now = torch.get_rng_state()
    torch.set_rng_state(state)
    try:
        return draw(), torch.get_rng_state()
    finally:
        torch.set_rng_state(now)


class TorchMasks:
    """A mask source (``engine.masks.mask_source``) that draws torch's masks, in torch's
    order, from the generator state saved before the call: ``empty(shape).bernoulli_(1 - p)``
    in the call's ``dtype`` (a bfloat16 call draws in bfloat16, whatever the engine's twins
    hold), what ``at::dropout`` does on the CPU."""

    def __init__(self, state: torch.Tensor, dtype: torch.dtype) -> None:
        self.state, self.dtype = state, dtype

    def __call__(self, shape: tuple, dtype: Any, p: float) -> np.ndarray:
        mask, self.state = replayed(self.state, lambda: torch.empty(shape, dtype=self.dtype).bernoulli_(1 - p))
        return to_numpy(mask) != 0


def call_dtype(tensors: Any) -> torch.dtype | None:
    """The dtype of the first floating-point torch tensor in ``tensors`` (nested lists, tuples
    and dicts): the dtype torch's fused call draws its masks in."""
    if isinstance(tensors, torch.Tensor):
        return tensors.dtype if tensors.is_floating_point() else None
    if isinstance(tensors, dict):
        return call_dtype(tuple(tensors.values()))
    if isinstance(tensors, (list, tuple)):
        for t in tensors:
            got = call_dtype(t)
            if got is not None:
                return got
    return None


def only_cpu(tensors: Any) -> bool:
    """Are all the torch tensors in ``tensors`` (nested lists, tuples and dicts) on the CPU? A mask
    drawn on another device comes from that device's generator, which is not replayed."""
    if isinstance(tensors, torch.Tensor):
        return tensors.is_cpu
    if isinstance(tensors, (list, tuple)):
        return all(only_cpu(t) for t in tensors)
    if isinstance(tensors, dict):
        return all(only_cpu(t) for t in tensors.values())
    return True


def feature_noise_shape(name: str, shape: tuple) -> tuple | None:
    """The shape torch draws a channel dropout's mask in, as it lies on the input (one value per
    sample and channel: ``make_feature_noise``), or None for elementwise dropout. ``name``: the
    torch call; ``F.dropout1d``/``F.dropout3d`` add a batch dimension to unbatched input first.

    >>> feature_noise_shape("torch.nn.functional.dropout2d", (8, 3, 5, 5))
    (8, 3, 1, 1)
    >>> feature_noise_shape("torch.nn.functional.dropout1d", (3, 7))  # unbatched (C, L)
    (3, 1)
    >>> feature_noise_shape("torch.nn.functional.dropout", (8, 3)) is None
    True
    """
    if not (name.endswith(("dropout1d", "dropout2d", "dropout3d")) or name.endswith("feature_dropout")):
        return None
    unbatched = (name.endswith("dropout1d") and len(shape) == 2) or (name.endswith("dropout3d") and len(shape) == 4)
    full = ((1,) + shape) if unbatched else shape
    noise = full[:2] + (1,) * (len(full) - 2)
    return noise[1:] if unbatched else noise
