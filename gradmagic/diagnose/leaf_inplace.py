"""``leaf_inplace``: "a leaf Variable that requires grad is being used in an in-place operation".

A tensor created with ``requires_grad=True`` (a weight) may not be changed in place while
autograd records: the classic hand-written update ``w -= lr * w.grad``, or setting values
with ``w[0] = 1``. The diagnosis names the leaf, the line that created it and the in-place
line, and the fix: do the update with gradients off.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> try:
...     with trace(session=Session()) as rep:
...         w = torch.ones(3, requires_grad=True)
...         (w * w).sum().backward()
...         w -= 0.1 * w.grad
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('leaf_inplace', 'w requires grad, so `w -= 0.1 * w.grad` cannot change it in place')
>>> [ln["role"] for ln in d.lines]
['created', 'in-place op']
"""
from __future__ import annotations

from typing import Any, Optional

from gradmagic.report import Diagnosis

from .context import Context, compact

#: torch's messages for this error (also "a view of a leaf Variable ...")
MESSAGE = "leaf Variable that requires grad"


def find(ctx: Context) -> list:
    """The diagnosis of torch's leaf in-place error, or [] when the cell did not raise it."""
    raised = ctx.b.raised
    if MESSAGE not in ctx.error or raised is None:
        return []
    target = raised.roots[0] if raised.roots else None
    leaf = _leaf_of(target)
    name = ctx.name(leaf) or ctx.name(target)
    op_line = ctx.line(raised.src, "in-place op")
    code = op_line["code"] if op_line and op_line["code"] else f"{raised.kind}(...)"
    who = name or "this tensor"
    title = f"{who} requires grad, so `{code}` cannot change it in place"
    view = " (through a view of it)" if leaf is not None and leaf is not target else ""
    message = (f"{who} is a leaf tensor created with requires_grad=True; autograd refuses to change such a tensor "
               f"in place{view} while it records, because the change would not be part of any graph.")
    lines = [ctx.rec_line(leaf, "created" if leaf is not None and leaf.torch_op else "first used"), op_line]
    return [Diagnosis("leaf_inplace", title, message, update_fix(code, who, _after_backward(ctx, leaf)),
                      tensor=name, lines=compact(lines), nodes=ctx.node_ids([leaf, target]),
                      severity=ctx.severity)]


def update_fix(code: str, name: str, after_backward: bool) -> str:
    """The fix for in-place line ``code`` on leaf ``name``: an update after a backward, or an
    initialisation (values set before training).

    >>> update_fix("w -= lr * w.grad", "w", True)
    'wrap the update in `with torch.no_grad():` (`with torch.no_grad(): w -= lr * w.grad`), or let an optimizer do it (`torch.optim.SGD([w], lr=lr).step()`); `w.data` also bypasses autograd'
    >>> update_fix("w[0] = 1", "w", False)
    'set the values under `with torch.no_grad():` (`with torch.no_grad(): w[0] = 1`), or before `w.requires_grad_()`'
    """
    if after_backward:
        return (f"wrap the update in `with torch.no_grad():` (`with torch.no_grad(): {code}`), or let an optimizer "
                f"do it (`torch.optim.SGD([{name}], lr=lr).step()`); `{name}.data` also bypasses autograd")
    return (f"set the values under `with torch.no_grad():` (`with torch.no_grad(): {code}`), or before "
            f"`{name}.requires_grad_()`")


def _leaf_of(rec: Any) -> Any:
    """The leaf ``rec`` is (a view of): follow first inputs up to a Rec without inputs."""
    seen = 0
    while rec is not None and rec.inputs and seen < 64:
        rec, seen = rec.inputs[0], seen + 1
    return rec


def _after_backward(ctx: Context, leaf: Optional[Any]) -> bool:
    """Did a backward run since ``leaf`` was created (so the line is a parameter update)?"""
    seq = leaf.seq if leaf is not None else 0
    return any(c.kind == "backward" and c.seq > seq for c in ctx.s.recent_calls)
