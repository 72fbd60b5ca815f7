"""The recorded backward steps, as the gradient detectors (``nonfinite``, ``zero``) read them:
the gradient each call gave each leaf, and where along the way a gradient changed character.

>>> import numpy as np
>>> from gradmagic.engine import tensor
>>> x = tensor([1.0, 2.0], requires_grad=True)
>>> y = x * 3
>>> reaches(y.grad_fn, x), reaches(y.grad_fn, tensor([1.0], requires_grad=True))
(True, False)
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import numpy as np

from gradmagic.engine import Tensor as ETensor
from gradmagic.engine.node import Node

from .context import Context


def as_array(x: Any) -> Optional[np.ndarray]:
    """A step's gradient as an ndarray: steps of a ``create_graph`` backward hold engine tensors.

    >>> as_array(ETensor(np.ones(2))).tolist(), as_array(None)
    ([1.0, 1.0], None)
    """
    if x is None:
        return None
    return x.data if isinstance(x, ETensor) else np.asarray(x)


def leaf_gradients(ctx: Context) -> Iterator[tuple]:
    """``(call, Rec of the leaf, engine tensor or None, gradient array)`` for every gradient a
    kept backward call of the block gave (accumulated into a leaf, or returned by
    ``autograd.grad``)."""
    for call in ctx.b.calls[-ctx.b.keep_calls:]:
        for step in call.steps or ():
            if step.kind == "accumulate" and step.added is not None:
                rec = ctx.s.by_tensor.get(id(step.tensor))
                if rec is not None:
                    yield call, rec, step.tensor, as_array(step.added)
        for rec, arr in call.results:
            if arr is not None:
                yield call, rec, rec.et, as_array(arr)


def first_step(call: Any, target: Any, test: Callable[[Any, int], bool]) -> Optional[tuple]:
    """``(step, input index)`` of the first node step of ``call`` (execution order) for which
    ``test(step, i)`` holds on an input whose gradient flows on to ``target`` (an engine leaf)."""
    cache: dict = {}
    for step in call.steps or ():
        if step.kind != "node":
            continue
        parents = step.node.parents
        for i, gi in enumerate(step.input_grads):
            if gi is not None and i < len(parents) and test(step, i) and reaches(parents[i], target, cache):
                return step, i
    return None


def reaches(v: Any, target: Any, cache: Optional[dict] = None) -> bool:
    """True when a gradient sent to ``v`` (a Node or a leaf tensor) arrives at ``target``."""
    if target is None:
        return True
    cache = {} if cache is None else cache
    stack, seen = [v], set()
    while stack:
        u = stack.pop()
        if u is None or id(u) in seen:
            continue
        if u is target:
            return True
        known = cache.get(id(u))
        if known is not None:
            if known:
                return True
            continue
        seen.add(id(u))
        if type(u) is Node:
            stack.extend(u.parents)
    for k in seen:
        cache.setdefault(k, False)
    return False


def input_value(node: Node, i: int) -> Optional[np.ndarray]:
    """The value input ``i`` of ``node`` had when the node saved it (None when not kept)."""
    raw = node.raw_inputs()
    if i >= len(raw):
        return None
    x = raw[i]
    x = x.data if isinstance(x, ETensor) else x
    return x if isinstance(x, np.ndarray) else None


def at(arr: Optional[np.ndarray], index: tuple, shape: tuple) -> Optional[float]:
    """``arr[index]`` as a float when ``arr`` has ``shape`` (else None)."""
    if arr is None or arr.shape != shape:
        return None
    try:
        return float(arr[index])
    except (TypeError, ValueError):
        return None


def describe_index(index: tuple) -> str:
    """``(1, 2)`` -> ``"[1, 2]"``; ``()`` -> ``""``.

    >>> describe_index((1, 2)), describe_index(())
    ('[1, 2]', '')
    """
    return "[" + ", ".join(str(int(i)) for i in index) + "]" if index else ""
