"""Backward as data: ``record_backward()`` collects one ``BackwardRecord`` per
``backward()``/``grad()`` call, with its ordered ``BackwardStep`` list (docs/contract.md).

>>> from gradmagic.engine import tensor, record_backward
>>> x = tensor([1.0, 2.0], requires_grad=True)
>>> with record_backward() as calls:
...     (x * x).sum().backward()
>>> [(s.kind, s.node.name if s.node else None) for s in calls[0].steps]
[('node', 'SumBackward0'), ('node', 'MulBackward0'), ('accumulate', None)]
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._state import STATE
from .node import Node
from .tensor import Tensor


class BackwardStep:
    """One step of a backward pass (see docs/contract.md).

    The arrays are the backward's own, not copies: cotangents are fresh arrays that
    nothing writes to afterwards (a recorded backward copies what it hands to a leaf's
    ``.grad``, the one gradient that later changes in place), so recording a step costs
    one small object, not a copy per array.
    """

    __slots__ = ("kind", "node", "grad_output", "input_grads", "tensor", "before", "added", "after")

    def __init__(self, kind: str, node: Node | None = None, grad_output: np.ndarray | None = None,
                 input_grads: tuple = (), tensor: Tensor | None = None,
                 before: np.ndarray | None = None, added: np.ndarray | None = None,
                 after: np.ndarray | None = None) -> None:
        self.kind = kind                  # "node" | "accumulate"
        self.node = node
        self.grad_output = grad_output
        self.input_grads = input_grads
        self.tensor = tensor
        self.before = before
        self.added = added
        self.after = after

    def __repr__(self) -> str:
        what = self.node.name if self.node is not None else "accumulate"
        return f"BackwardStep({self.kind!r}, {what})"


class BackwardRecord:
    """One ``backward()`` (kind "backward") or ``grad()`` (kind "grad") call."""

    __slots__ = ("kind", "roots", "retain_graph", "create_graph", "steps")

    def __init__(self, kind: str, roots: list, retain_graph: bool, create_graph: bool,
                 steps: list | None = None) -> None:
        self.kind = kind
        self.roots = roots
        self.retain_graph = retain_graph
        self.create_graph = create_graph
        self.steps = [] if steps is None else steps

    def __repr__(self) -> str:
        return f"BackwardRecord({self.kind!r}, {len(self.steps)} steps)"


class record_backward:
    """Collect a :class:`BackwardRecord` per backward/grad call made inside the block
    (``with record_backward() as calls:``; blocks nest, each sees the calls made in it)."""

    __slots__ = ("calls", "prev")

    def __enter__(self) -> list:
        self.calls: list = []
        self.prev = STATE.recorders
        STATE.recorders = [*(self.prev or ()), self.calls]
        return self.calls

    def __exit__(self, *exc: Any) -> None:
        STATE.recorders = self.prev


def open_record(kind: str, roots: list, retain_graph: bool, create_graph: bool) -> list:
    rec = BackwardRecord(kind, list(roots), retain_graph, create_graph)
    for calls in STATE.recorders:
        calls.append(rec)
    return rec.steps


def snapshot(x: Any) -> Any:
    """An owned copy of ``x`` (a Tensor's data or an array) for a step, or None."""
    return None if x is None else np.array(x.data if isinstance(x, Tensor) else x)
