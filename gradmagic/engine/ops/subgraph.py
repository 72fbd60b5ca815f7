"""A graph as one node: the engine's view of a user-defined ``torch.autograd.Function``.

``subgraph(*inputs, body=Subgraph(...))`` is one node (named after the Function, e.g.
``LegendreP3Backward``) whose forward value was computed by the ops inside the Function's
``forward``, recorded on the body's own leaves. Its VJP differentiates those ops: the true
VJP, which the recorder compares with the user's hand-written ``backward``. A ``replay``
(set by the recorder) may replace the result by torch's (lockstep): the rest of the
backward then continues from exactly what the user's backward gave torch.

>>> from gradmagic.engine import tensor, apply
>>> x = tensor([1.0, 2.0], requires_grad=True)
>>> inner = tensor([1.0, 2.0], requires_grad=True)
>>> body = Subgraph("CubeBackward", [inner], inner ** 3)
>>> y = apply("subgraph", x, body=body)
>>> y.grad_fn.name
'CubeBackward'
>>> y.sum().backward(); x.grad
tensor([ 3., 12.])
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ..registry import defop


@contextmanager
def _private() -> Iterator[None]:
    """A backward of the engine's own, inside a VJP: the user's hooks and retain_grad()
    tensors belong to the outer backward, not to this one (torch does not see it)."""
    from ..hooks import HOOKS, POST_ACCUMULATE
    from ..tensor import RETAINED
    saved = [(table, dict(table)) for table in (HOOKS, POST_ACCUMULATE, RETAINED)]
    for table, _ in saved:
        table.clear()
    try:
        yield
    finally:
        for table, entries in saved:
            table.update(entries)


class Subgraph:
    """The recorded inside of one node: its own leaves (``inputs``, one per outer input, or
    None where that input is not differentiable) and the ``output`` they computed."""

    __slots__ = ("name", "inputs", "output", "replay", "_cache", "_recorded", "differentiated")

    def __init__(self, name: str, inputs: Sequence[Any], output: Any,
                 replay: Optional[Callable[[Any, list], Optional[list]]] = None) -> None:
        self.name = name
        self.inputs = list(inputs)
        self.output = output
        self.replay = replay  # (g, true VJPs) -> VJPs to use instead, or None
        self._cache: tuple = (None, None)
        self._recorded = False
        self.differentiated = False  # a create_graph VJP was built (it re-runs the forward's ops)

    def forward(self, *arrays: Any) -> np.ndarray:
        """The output for input values ``arrays``: the recorded value the first time (the
        call that made the node), afterwards the inside re-evaluated (finite differences)."""
        if not self._recorded:
            self._recorded = True
            return self.output.data.copy()
        return self.evaluate(arrays)

    def evaluate(self, arrays: Sequence[Any], differentiable: bool = False) -> Any:
        """Re-run the ops inside on new input values (in their dtype, e.g. float64), or with
        ``differentiable`` on Tensors, recording a graph."""
        from ..backward import toposort
        from ..node import Node
        from ..tensor import Tensor, apply
        root = self.output.grad_fn
        subst = {id(x): (a if differentiable else np.asarray(a))
                 for x, a in zip(self.inputs, arrays) if x is not None}
        if root is None:
            return subst.get(id(self.output), self.output.data).copy()
        vals: dict = {}
        for v in reversed(toposort([root])):
            if type(v) is not Node:
                continue
            args = []
            for x, p in zip(v.raw_inputs(), v.parents):
                key = id(p)
                args.append(vals[key] if key in vals else subst[key] if key in subst else
                            x.data if isinstance(x, Tensor) else x)
            if differentiable:
                vals[id(v)] = apply(v.opdef.name, *args, **(v.params or {}))
            else:
                vals[id(v)] = np.asarray(v.opdef.fwd(*args, **(v.params or {})))
        return vals[id(root)]

    def vjp(self, g: Any, index: int, inputs: Sequence[Any] = ()) -> Any:
        """The cotangent of input ``index`` (each input's VJP asks; one backward computes all).
        With ``create_graph`` (``g`` a Tensor) the VJP is differentiable in ``inputs``."""
        if self._cache[0] is not g:
            from ..tensor import Tensor
            self._cache = (g, self._differentiable(g, inputs) if isinstance(g, Tensor) else self._all(g))
        return self._cache[1][index]

    def _differentiable(self, g: Any, inputs: Sequence[Any]) -> list:
        """The true VJP as a graph on the outer ``inputs``: the ops inside re-run on them, then
        differentiated with ``create_graph`` (a replay is told, for its check, not obeyed)."""
        from ..autograd import grad
        from ..tensor import Tensor, apply
        self.differentiated = True
        # one proxy (an identity node) per input: the gradient captured there is the partial
        # derivative for that position, even where one input is computed from another
        outer = [apply("clone", x) if isinstance(x, Tensor) and x.requires_grad and inner is not None
                 else None for x, inner in zip(inputs, self.inputs)]
        out = self.evaluate([p if p is not None else x for p, x in zip(outer, inputs)], differentiable=True)
        used = [x for x in outer if x is not None]
        with _private():
            got = iter(grad([out], used, grad_outputs=[g], create_graph=True, allow_unused=True)
                       if used and isinstance(out, Tensor) and out.requires_grad else [None] * len(used))
        res = [next(got) if x is not None else None for x in outer]
        if self.replay is not None:
            self.replay(np.asarray(g.data), [None if r is None else r.data for r in res])
            # from now on the VJP's graph re-runs the forward's ops, which torch's double
            # backward reaches through this node instead: per-node lockstep would count twice
            self.replay = None
        return res

    def _all(self, g: Any) -> list:
        """Every input's cotangent: the true VJP, or what the replay hands back instead."""
        true = self.true_vjp(g)
        if self.replay is not None:
            replaced = self.replay(np.asarray(g), true)
            if replaced is not None:
                return replaced
        return true

    def true_vjp(self, g: Any) -> list:
        """The VJP of the ops inside, per input (arrays; None where an input has no leaf)."""
        from ..autograd import grad
        from ..tensor import wrap
        used = [x for x in self.inputs if x is not None]
        with _private():
            got = iter(grad([self.output], used, grad_outputs=[wrap(np.asarray(g))], retain_graph=True,
                            allow_unused=True) if used else ())
        true = []
        for x in self.inputs:
            gx = next(got) if x is not None else None
            true.append(None if x is None else np.zeros_like(x.data) if gx is None else gx.data)
        return true


def _vjp(g: Any, ans: Any, *inputs: Any, index: int, body: Subgraph) -> Any:
    """None where the Function gives no gradient (its backward returned None): the engine
    then sends nothing along that edge, as torch does."""
    return body.vjp(g, index, inputs)


defop("subgraph", lambda *inputs, body: body.forward(*inputs),
      lambda inputs, params: params["body"].name, vjp=(_vjp,),
      formulas=("∂/∂input = the VJP of the ops inside forward (checked against your backward)",),
      variadic=True)
