"""The user-facing reverse-mode calls: ``Tensor.backward``, ``backward()`` and ``grad()``.

>>> from gradmagic.engine import tensor, grad
>>> x = tensor(3.0, requires_grad=True)
>>> (dx,) = grad(x ** 3, x, create_graph=True)
>>> dx, grad(dx, x)
(tensor(27., grad_fn=<MulBackward0>), (tensor(18.),))
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._state import STATE
from .accumulate import own
from .backward import plain_backward, run_backward
from .hooks import HOOKS, POST_ACCUMULATE
from .tensor import Tensor, as_tensor, wrap

ndarray = np.ndarray


_ONES: dict = {}


def _seed(root: Tensor, gradient: Any, create: bool) -> Any:
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        key = (root.data.shape, root.data.dtype)
        g = _ONES.get(key)
        if g is None:  # shared and read-only: leaves copy it, VJPs never write into g
            g = _ONES[key] = np.ones(*key)
            g.flags.writeable = False
        return wrap(g) if create else g
    g = as_tensor(gradient)
    if g.data.shape != root.data.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of {list(g.data.shape)}"
                           f" and output[0] has a shape of {list(root.data.shape)}.")
    return g if create else g.data


def _roots(tensors: Any, grads: Any, create: bool) -> tuple[list, list]:
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grads is None or isinstance(grads, (Tensor, ndarray)) or np.isscalar(grads):
        grads = [grads] * len(tensors) if grads is None else [grads]
    grads = list(grads)
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                               f"have a grad_fn")
    return tensors, [_seed(t, g, create) for t, g in zip(tensors, grads)]


def tensor_backward(self: Tensor, gradient: Any = None, retain_graph: bool | None = None,
                    create_graph: bool = False, inputs: Any = None) -> None:
    """``t.backward()``: accumulate d(t)/d(leaf) into every leaf's ``.grad``."""
    if gradient is None and not create_graph and inputs is None and type(self) is Tensor \
            and not HOOKS and not POST_ACCUMULATE:
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        if STATE.recorders:
            run_backward([self], [_seed(self, None, False)], bool(retain_graph), False, None,
                         False, "backward")
        else:
            plain_backward(self, _seed(self, None, False), bool(retain_graph))
        return
    backward(self, gradient, retain_graph, create_graph, inputs)


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs: Any = None) -> None:
    """``torch.autograd.backward``: accumulate gradients of ``tensors`` into leaves' ``.grad``."""
    roots, seeds = _roots(tensors, grad_tensors, create_graph)
    if retain_graph is None:
        retain_graph = create_graph
    sinks = None
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        sinks = {id(t.grad_fn or t): t for t in inputs}
    run_backward(roots, seeds, retain_graph, create_graph, sinks, False, "backward")


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None,
         materialize_grads: bool = False) -> tuple:
    """``torch.autograd.grad``: gradients of ``outputs`` with respect to ``inputs`` (no accumulation).

    >>> from gradmagic.engine import tensor
    >>> x = tensor(3.0, requires_grad=True)
    >>> (dx,) = grad(x ** 3, x, create_graph=True)
    >>> grad(dx, x)
    (tensor(18.),)
    """
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    roots, seeds = _roots(outputs, grad_outputs, create_graph)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    sinks = {id(t.grad_fn or t): t for t in inputs}
    got = run_backward(roots, seeds, retain_graph, create_graph, sinks, True, "grad")
    result = []
    for t in inputs:
        g = got.get(id(t.grad_fn or t))
        if g is None and not (allow_unused or materialize_grads):
            raise RuntimeError("One of the differentiated Tensors appears to not have been used "
                               "in the graph. Set allow_unused=True if this is the desired behavior.")
        if g is None and materialize_grads:
            g = np.zeros_like(t.data)
        result.append(None if g is None else g if isinstance(g, Tensor) else wrap(own(g, False)))
    return tuple(result)
