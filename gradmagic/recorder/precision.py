"""The precision a recorded call worked in, where its own steps are narrower than its result.

A primitive op promotes its inputs first (``x32 * y64`` multiplies in float64: the float32
value converts exactly), so its result carries only the result dtype's rounding. A composite
may compute part of itself before promoting: ``F.cosine_similarity(x32, y64)`` divides ``x32``
by its float32 norm, then multiplies by the float64 side. Its float64 result then carries
float32 rounding, in torch as in the engine, and checking it at float64's tolerances would call
two correct computations different. ``working_dtype`` finds that narrower dtype among the
values a call's internal steps (the engine nodes adopted as ``"internal"`` records) computed.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from gradmagic.engine import Tensor as ETensor


def working_dtype(node: Any, by_node: dict) -> Optional[np.dtype]:
    """The narrowest float dtype an internal step of the call whose output is engine ``node``
    computed; None when it has no internal step (or none computed a float).

    ``by_node``: id(engine node) -> its record; a step is a node whose record's ``kind`` is
    ``"internal"``.

    >>> import numpy as np, gradmagic.engine as ge
    >>> from types import SimpleNamespace
    >>> x = ge.tensor(np.ones(3, np.float32), requires_grad=True)
    >>> y = ge.tensor(np.ones(3), requires_grad=True)
    >>> out = (x / 2.0) * y                        # x / 2 in float32, then promoted
    >>> step = out.grad_fn.parents[0]
    >>> working_dtype(out.grad_fn, {id(step): SimpleNamespace(kind="internal")})
    dtype('float32')
    >>> working_dtype(out.grad_fn, {}) is None      # (x / 2 a call of its own: no step inside)
    True
    """
    narrow: Optional[np.dtype] = None
    for _, value in internal_steps(node, by_node):
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype.kind == "f" and (narrow is None or dtype.itemsize < narrow.itemsize):
            narrow = dtype
    return narrow


def internal_steps(node: Any, by_node: dict) -> Iterator[tuple]:
    """``(step, its output as the node using it stored it)`` for each internal step of the call
    whose output is engine ``node`` (a step used twice comes once)."""
    stack, seen = [node], {id(node)}
    while stack:
        n = stack.pop()
        for parent, value in zip(n.parents, n.raw_inputs()):
            if parent is None or type(parent) is ETensor or id(parent) in seen:
                continue
            rec = by_node.get(id(parent))
            if rec is None or rec.kind != "internal":
                continue
            seen.add(id(parent))
            stack.append(parent)
            yield parent, value
