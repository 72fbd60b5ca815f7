"""Tensor hooks with torch's semantics: ``register_hook`` (leaves and non-leaves) and
``register_post_accumulate_grad_hook``, each returning a handle with ``remove()``.

A non-leaf's hooks belong to the node that computed it (torch's tensor pre-hooks on
``grad_fn``), a leaf's to the tensor (run before its gradient is accumulated). Hooks run in
registration order, each on the previous one's result; a hook returning ``None`` leaves the
gradient as it is. ``retain_grad()`` sees the hooked gradient (torch runs it last).

>>> from gradmagic.engine import tensor
>>> x = tensor([1.0, 2.0], requires_grad=True)
>>> z = x * 3
>>> handle = z.register_hook(lambda g: g * 2)
>>> z.sum().backward(); x.grad
tensor([6., 6.])
>>> handle.remove(); x.grad = None
>>> (x * 3).sum().backward(); x.grad
tensor([3., 3.])
"""
from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable

import numpy as np

#: id(node or leaf tensor) -> (weak reference to it, {handle id: hook}); empty = no hooks
HOOKS: dict = {}
#: id(leaf tensor) -> (weak reference, {handle id: hook}) for post-accumulate-grad hooks
POST_ACCUMULATE: dict = {}
_ids = itertools.count().__next__


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` unregisters the hook (idempotent)."""

    __slots__ = ("table", "key", "id")

    def __init__(self, table: dict, key: int, hid: int) -> None:
        self.table, self.key, self.id = table, key, hid

    def remove(self) -> None:
        entry = self.table.get(self.key)
        if entry is not None:
            entry[1].pop(self.id, None)
            if not entry[1]:
                self.table.pop(self.key, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def add_hook(table: dict, owner: Any, hook: Callable) -> RemovableHandle:
    """Register ``hook`` on ``owner`` (a Node or a leaf Tensor) in ``table``."""
    key = id(owner)
    entry = table.get(key)
    if entry is None or entry[0]() is not owner:
        ref = weakref.ref(owner, lambda _, key=key, table=table: table.pop(key, None))
        entry = table[key] = (ref, {})
    hid = _ids()
    entry[1][hid] = hook
    return RemovableHandle(table, key, hid)


def run_hooks(owner: Any, g: Any, create: bool) -> Any:
    """``g`` after the tensor hooks of ``owner`` (a Node or leaf Tensor), in order. Hooks see
    and return Tensors; a plain backward keeps working on arrays."""
    entry = HOOKS.get(id(owner))
    if entry is None or entry[0]() is not owner:
        return g
    from .tensor import Tensor, wrap
    for hook in list(entry[1].values()):
        arg = g if isinstance(g, Tensor) else wrap(g)
        out = hook(arg)
        if out is None:
            continue
        new = out.data if isinstance(out, Tensor) else np.asarray(out)
        shape = getattr(g, "shape", ())
        if new.shape != shape:
            raise RuntimeError(f"hook '{getattr(hook, '__name__', 'hook')}' has changed the size "
                               f"of value: expected {list(shape)}, got {list(new.shape)}")
        if create:
            g = out if isinstance(out, Tensor) else wrap(new)
        else:
            g = new
    return g


def run_post_accumulate(t: Any) -> None:
    """The post-accumulate-grad hooks of leaf ``t`` (each called with ``t``)."""
    entry = POST_ACCUMULATE.get(id(t))
    if entry is None or entry[0]() is not t:
        return
    for hook in list(entry[1].values()):
        hook(t)
