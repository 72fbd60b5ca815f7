"""``Node``: one recorded op application (torch's ``grad_fn``). No math here.

A node references its op's row (``opdef``; ``op`` is its name), its inputs (what
backward reads, kept with the version they had), the parents (per input: a ``Node``, a
leaf ``Tensor`` that requires grad, or ``None``) and, when the op's VJP reads it, the
output array. It never references its output tensor, so graphs are freed by reference
counting.

>>> from gradmagic.engine import tensor
>>> x = tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).grad_fn.name
'MulBackward0'
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

FREED = -2     # vsum after a backward without retain_graph
MODIFIED = -1  # vsum when the saved output was modified in place


ABSENT = object()  # marks an unused input slot
_SCALARS = {int, float, bool, complex}
_next_seq = itertools.count().__next__


class Node:
    # One gc-tracked object per op: the first two inputs and parents live in slots
    # (tuples would be two more tracked objects per op, see performance-notes.md), and an
    # input computed by another node is kept as its array, its version read from that
    # node's ``outv``, so the tensor object dies as soon as the user drops it (as torch's
    # Python tensors do) and the cyclic GC sees one object per op.
    __slots__ = ("opdef", "a", "b", "pa", "pb", "rest", "params", "ans", "saved_idx", "vsum",
                 "outv", "seq", "__weakref__")

    def __init__(self, op: Any, a: Any, b: Any, pa: Any, pb: Any, params: dict | None,
                 ans: np.ndarray | None, saved_idx: tuple[int, ...], vsum: int) -> None:
        """A node of an op with one or two inputs (``b`` is ``ABSENT`` for one), each
        given as stored: an input another node computed as its array (see the class comment).
        ``Node.of`` builds the rest."""
        self.opdef = op               # the OpDef (row of the op table)
        self.a, self.b = a, b         # the inputs as stored
        self.pa, self.pb = pa, pb     # where their gradients go (Node, leaf Tensor or None)
        self.rest = None              # (inputs, parents) for three or more inputs
        self.params = params          # keyword parameters (axis, keepdims, ...) or None
        self.ans = ans                # output array, kept only when a VJP reads it
        self.saved_idx = saved_idx    # inputs whose values backward reads
        self.vsum = vsum              # sum of their versions at record time (or FREED/MODIFIED)
        self.outv = 0                 # in-place modifications of the output since recorded
        self.seq = _next_seq()        # creation order: every parent has a smaller one

    @classmethod
    def of(cls, op: Any, inputs: tuple, parents: tuple, params: dict | None,
           ans: np.ndarray | None, saved_idx: tuple[int, ...], vsum: int) -> "Node":
        """A node of an op with three or more inputs, or a variadic one (``tensor.run1`` and
        ``run2`` build the others from their slots)."""
        node = cls(op, ABSENT, ABSENT, None, None, params, ans, saved_idx, vsum)
        node.rest = (inputs, parents)
        return node

    @property
    def parents(self) -> tuple:
        """Per input, where its gradient goes: a Node, a leaf Tensor, or None."""
        if self.rest is not None:
            return self.rest[1]
        return (self.pa,) if self.b is ABSENT else (self.pa, self.pb)

    def raw_inputs(self) -> tuple:
        """The inputs as stored: Tensors, Python scalars, or arrays (see the class comment)."""
        if self.rest is not None:
            return self.rest[0]
        return (self.a,) if self.b is ABSENT else (self.a, self.b)

    def version_sum(self) -> int:
        """Current version total of the saved inputs (backward compares it with ``vsum``)."""
        total = 0
        if self.rest is None:  # the common case, read from the slots (no tuples built)
            for i in self.saved_idx:
                p = self.pa if i == 0 else self.pb
                if type(p) is Node:
                    total += p.outv
                elif p is not None:  # a leaf that requires grad: the input tensor itself
                    total += p._version
                else:
                    x = self.a if i == 0 else self.b
                    if type(x) not in _SCALARS and hasattr(x, "_version"):
                        total += x._version
            return total
        raw, parents = self.rest
        for i in self.saved_idx:
            if type(parents[i]) is Node:
                total += parents[i].outv
            elif hasattr(raw[i], "_version"):
                total += raw[i]._version
        return total

    @property
    def inputs(self) -> tuple:
        """The op's input tensors (and Python scalars). An input kept as its array comes back
        as a tensor with that value and ``grad_fn`` (as torch unpacks a saved tensor)."""
        from .tensor import wrap
        return tuple(wrap(x, True, p) if type(x) is np.ndarray else x
                     for x, p in zip(self.raw_inputs(), self.parents))

    @property
    def op(self) -> str:
        """The registry name of the op, e.g. ``"mul"``."""
        return self.opdef.name

    @property
    def name(self) -> str:
        """torch-style name of the backward function, e.g. ``"MulBackward0"``."""
        n = self.opdef.node_name
        return n if isinstance(n, str) else n(self.inputs, self.params or {})

    @property
    def formulas(self) -> tuple[str, ...]:
        f = self.opdef.formulas
        n = len(self.parents)
        return f if len(f) >= n else f + f[-1:] * (n - len(f))

    @property
    def needs(self) -> tuple[bool, ...]:
        return tuple(p is not None for p in self.parents)

    @property
    def saved(self) -> list[tuple[str, np.ndarray]]:
        """What this node keeps for backward, as ``(name, array)`` pairs (empty once freed)."""
        if self.vsum == FREED:
            return []
        out = []
        names = self.opdef.arg_names
        for i in self.saved_idx:
            x = self.raw_inputs()[i]
            name = names[i] if i < len(names) else f"input{i}"
            out.append((name, x if isinstance(x, np.ndarray) else np.asarray(getattr(x, "data", x))))
        if self.ans is not None:
            out.append(("result", self.ans))
        return out

    @property
    def saved_bytes(self) -> int:
        return sum(a.nbytes for _, a in self.saved)

    @property
    def next_functions(self) -> tuple:
        """torch-like edges: ``(parent, 0)`` per input."""
        return tuple((p, 0) for p in self.parents)

    def __repr__(self) -> str:
        return f"<{self.name} ({self.opdef.name})>"

