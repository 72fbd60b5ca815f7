"""``no_grad_fn``: "element 0 of tensors does not require grad and does not have a grad_fn".

``loss.backward()`` needs ``loss`` to be connected to something that requires grad. When
it is not, the chain was cut on the way (``with torch.no_grad():``, ``detach()``, ``.data``,
``.item()``/``.numpy()``/``.tolist()`` re-wrapped with ``torch.tensor``, an op without a
gradient such as ``argmax``), or nothing it was computed from ever had ``requires_grad``.
The cuts are the ones ``grad_none`` knows (``grad_none.how_cut``).

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> try:
...     with trace(session=Session()) as rep:
...         w = torch.ones(3, requires_grad=True)
...         with torch.no_grad():
...             loss = (w * 2).sum()
...         loss.backward()
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('no_grad_fn', 'loss has no grad_fn: it was computed with gradients off (`with torch.no_grad():`)')
>>> [ln["role"] for ln in d.lines]
['gradients off', 'computed', 'backward']
"""
from __future__ import annotations

import re
from typing import Any, Optional

from gradmagic.report import Diagnosis

from .context import Context, compact
from .grad_none import REWRAP, how_cut

#: torch's message for this error ("element 0 of tensors does not require grad ...")
MESSAGE = "does not require grad and does not have a grad_fn"
_ELEMENT = re.compile(r"element (\d+) of tensors")


def find(ctx: Context) -> list:
    """The diagnosis of torch's "does not have a grad_fn" error, or [] when the cell did not raise it."""
    if MESSAGE not in ctx.error or ctx.b.failed is None or not ctx.b.failed.roots:
        return []
    failed = ctx.b.failed
    m = _ELEMENT.search(ctx.error)
    k = int(m.group(1)) if m else 0
    root = failed.roots[k] if k < len(failed.roots) else failed.roots[0]
    name = ctx.name(root)
    what = name or f"the result of {ctx.label(root)}"
    y = name or "the loss"
    backward = ctx.line(failed.src, "backward")
    computed = ctx.rec_line(root, "computed" if root.kind == "op" else "created")
    cut = _cut(ctx, root)
    if cut is not None:
        return [_cut_diagnosis(ctx, root, what, y, cut, [computed, backward])]
    return [_never_required(ctx, root, what, y, [computed, backward])]


def _cut_diagnosis(ctx: Context, root: Any, what: str, y: str, cut: tuple, tail: list) -> Diagnosis:
    """The chain from ``root`` back to what requires grad was cut (``cut``: what, line, Rec)."""
    how, line, cut_rec = cut
    off = line is not None and line["role"] == "gradients off"
    title = f"{what} has no grad_fn: " + (f"it was computed with gradients off ({how})" if off else
                                          f"the chain to it was cut by {how}")
    message = (f"backward() needs {y} to be connected to a tensor that requires grad; {how} "
               f"{'turned gradient recording off' if off else 'made a tensor without history'} on the way, "
               f"so {y} has no grad_fn.")
    return _make(ctx, title, message, _fix(how, y), ctx.name(root), [line, *tail], [root, cut_rec])


def _never_required(ctx: Context, root: Any, what: str, y: str, tail: list) -> Diagnosis:
    """Nothing ``root`` was computed from requires grad: name its leaves (up to 3)."""
    leaves = [r for r in sorted(ctx.ancestors([root]).values(), key=lambda r: r.seq)
              if r.kind in ("leaf", "constant") and not r.inputs]
    named = [r for r in leaves if ctx.name(r)][:3]
    who = ", ".join(ctx.name(r) for r in named) or "the tensors it was computed from"
    title = f"{what} has no grad_fn: nothing it was computed from requires grad"
    message = (f"none of the tensors {y} was computed from ({who}) has requires_grad set, so autograd recorded "
               f"no graph for backward() to run through.")
    first = ctx.name(named[0]) if named else "w"
    fix = (f"create the tensors you want gradients for with `requires_grad=True` (or call "
           f"`{first}.requires_grad_()`) before computing {y}")
    lines = [ctx.rec_line(r, "created" if r.torch_op else "first used") for r in named] + tail
    return _make(ctx, title, message, fix, ctx.name(root), lines, [root] + named)


def _cut(ctx: Context, root: Any) -> Optional[tuple]:
    """``(what, line, Rec)`` of the cut nearest to ``root`` on its way back to the leaves."""
    from gradmagic.recorder.labels import DATA_OF  # (the recorder imports this package)
    recs = sorted(ctx.ancestors([root]).values(), key=lambda r: -r.seq)
    for r in recs:
        cut = how_cut(ctx, r)
        if cut is not None and cut[0]:
            return (*cut, r)
    for r in recs:  # a ``x.data`` alias (the recorder labels it with whose values it shares)
        base = DATA_OF.get(r)
        if base is not None:
            return f"`{ctx.name(base) or 'x'}.data`", ctx.rec_line(r, "cut by"), r
    for r in recs:  # values re-wrapped on another line than the one that read them
        if r.kind in ("leaf", "constant") and (r.torch_op or "") in REWRAP:
            op = r.torch_op.replace("Tensor.", "t.")
            return f"re-wrapping values with `{op}(...)`", ctx.rec_line(r, "cut by"), r
    return None


def _fix(how: str, y: str) -> str:
    if "no_grad" in how or "inference_mode" in how or "set_grad_enabled" in how:
        return f"compute {y} outside {how} (keep `torch.no_grad()` for evaluation and parameter updates only)"
    if "detach" in how or ".data" in how:
        return f"use the tensor itself instead of its detached copy on the way to {y}"
    if "no gradient flows" in how:
        return f"compute {y} with differentiable ops (a soft version, such as `softmax` instead of `argmax`)"
    return (f"keep {y} a tensor computed with torch ops from the tensors that require grad (no {how}); call "
            f"`.item()` only to print or log the value")


def _make(ctx: Context, title: str, message: str, fix: str, name: Optional[str], lines: list,
          recs: list) -> Diagnosis:
    return Diagnosis("no_grad_fn", title, message, fix, tensor=name, lines=compact(lines),
                     nodes=ctx.node_ids(recs), severity=ctx.severity)
