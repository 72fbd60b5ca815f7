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

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ._state import STATE
from .node import Node
from .tensor import Tensor


@dataclass
class BackwardStep:
    """One step of a backward pass (see docs/contract.md)."""
    kind: str                                 # "node" | "accumulate"
    node: Node | None = None
    grad_output: np.ndarray | None = None
    input_grads: tuple = ()
    tensor: Tensor | None = None
    before: np.ndarray | None = None
    added: np.ndarray | None = None
    after: np.ndarray | None = None


@dataclass
class BackwardRecord:
    """One ``backward()`` (kind "backward") or ``grad()`` (kind "grad") call."""
    kind: str
    roots: list
    retain_graph: bool
    create_graph: bool
    steps: list = field(default_factory=list)


@contextlib.contextmanager
def record_backward() -> Iterator[list]:
    """Collect a :class:`BackwardRecord` per backward/grad call made inside the block."""
    calls: list = []
    prev = STATE.recorders
    STATE.recorders = [*(prev or ()), calls]
    try:
        yield calls
    finally:
        STATE.recorders = prev


def open_record(kind: str, roots: list, retain_graph: bool, create_graph: bool) -> list:
    rec = BackwardRecord(kind, list(roots), retain_graph, create_graph)
    for calls in STATE.recorders:
        calls.append(rec)
    return rec.steps


def snapshot(x: Any) -> Any:
    return None if x is None else np.array(x.data if isinstance(x, Tensor) else x)
