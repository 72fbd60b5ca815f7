"""``nonscalar_backward``: "grad can be implicitly created only for scalar outputs".

``y.backward()`` without an argument needs ``y`` to hold one number (a loss). The diagnosis
says which tensor was not one, its shape, the line that made it and the two ways out.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> try:
...     with trace(session=Session()) as rep:
...         x = torch.ones(3, requires_grad=True)
...         y = x * 2
...         y.backward()
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('nonscalar_backward', 'y has shape [3], but backward() without an argument needs a single number')
>>> d.fix
'reduce it to one number first (`y.sum().backward()` or `y.mean().backward()`), or pass the gradient of each element: `y.backward(torch.ones_like(y))`'
"""
from __future__ import annotations

from typing import Any, Optional

from gradmagic.report import Diagnosis

from .context import Context, compact

#: torch's message for this error
MESSAGE = "grad can be implicitly created only for"


def find(ctx: Context) -> list:
    """The diagnosis of torch's non-scalar backward error, or [] when the cell did not raise it."""
    if MESSAGE not in ctx.error or ctx.b.failed is None:
        return []
    failed = ctx.b.failed
    root = next((r for r in failed.roots if _shape(r) not in (None, [])), None)
    if root is None:
        return []
    shape = _shape(root)
    name = ctx.name(root)
    what = name or f"the result of {ctx.label(root)}"
    y = name or "y"
    title = f"{what} has shape {shape}, but backward() without an argument needs a single number"
    message = (f"backward() starts from the gradient of the tensor it is called on; PyTorch makes that gradient "
               f"(1.0) by itself only for a tensor holding one number, and {what} holds "
               f"{_count(shape)} numbers (shape {shape}).")
    if failed.kind == "autograd.grad":
        fix = (f"reduce it to one number first (`torch.autograd.grad({y}.sum(), ...)`), or pass the gradient of "
               f"each element: `torch.autograd.grad({y}, ..., grad_outputs=torch.ones_like({y}))`")
    else:
        fix = (f"reduce it to one number first (`{y}.sum().backward()` or `{y}.mean().backward()`), or pass the "
               f"gradient of each element: `{y}.backward(torch.ones_like({y}))`")
    lines = [ctx.rec_line(root, "computed"), ctx.line(failed.src, "backward")]
    return [Diagnosis("nonscalar_backward", title, message, fix, tensor=name, lines=compact(lines),
                      nodes=ctx.node_ids([root]), severity=ctx.severity)]


def _shape(rec: Any) -> Optional[list]:
    """The recorded shape of ``rec``'s tensor (None when unknown)."""
    et = rec.et if rec is not None else None
    return list(et.data.shape) if et is not None else None


def _count(shape: list) -> int:
    """How many numbers a tensor of ``shape`` holds.

    >>> _count([2, 3]), _count([0])
    (6, 0)
    """
    n = 1
    for s in shape:
        n *= s
    return n
