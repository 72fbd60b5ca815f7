"""``nonfinite_grad``: a leaf's gradient holds NaN or ±inf — find the node where it was born.

Looked for only when a backward actually gave a leaf a non-finite gradient. The replay
(``BackwardRecord.steps``) is walked in execution order to the first node whose incoming
gradient was finite but which passed NaN or inf on towards that leaf: there its local
derivative was not finite (``SqrtBackward0`` at 0, ``LogBackward0`` at 0, a division by 0).

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> with trace(session=Session()) as rep:
...     x = torch.tensor([0.0, 4.0], requires_grad=True)
...     (x.sqrt() * 0).sum().backward()
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('nonfinite_grad', 'x.grad is nan: it first became nan at SqrtBackward0')
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gradmagic.report import Diagnosis

from .context import Context, compact
from .steps import as_array, at, describe_index, first_step, input_value, leaf_gradients

#: op -> the fix, for the ops whose derivative blows up at the edge of their domain
_FIXES = {
    "sqrt": "keep the input of sqrt away from 0 (e.g. `torch.sqrt(x + 1e-8)`)",
    "rsqrt": "keep the input of rsqrt away from 0 (e.g. `torch.rsqrt(x + 1e-8)`)",
    "log": "keep the input of log away from 0 (e.g. `torch.log(x.clamp_min(1e-8))`)",
    "log2": "keep the input of log2 away from 0 (e.g. `torch.log2(x.clamp_min(1e-8))`)",
    "log10": "keep the input of log10 away from 0 (e.g. `torch.log10(x.clamp_min(1e-8))`)",
    "div": "keep the denominator away from 0 (add a small epsilon to it)",
    "pow": "keep the base away from 0 when the exponent is below 1 (e.g. `(x + 1e-8) ** p`)",
    "exp": "keep the input of exp small enough that it does not overflow (e.g. `torch.exp(x.clamp_max(80))`)",
    "norm": "add a small epsilon under the square root (e.g. `torch.sqrt((x ** 2).sum() + 1e-8)`) "
            "instead of the norm of a zero vector",
}


def finite(a: Any) -> bool:
    """True when ``a`` (an ndarray) holds no NaN or inf (integers and booleans always do)."""
    return a.dtype.kind not in "fc" or bool(np.isfinite(a).all())


def find(ctx: Context) -> list:
    """One diagnosis per node where a non-finite leaf gradient was born."""
    out, born = [], {}
    for call, rec, leaf, grad in leaf_gradients(ctx):
        if finite(grad):
            continue
        hit = first_step(call, leaf, _turns_nonfinite)
        if hit is None:
            continue
        step, i = hit
        key = id(step.node)
        if key in born:
            born[key].nodes += [n for n in ctx.node_ids([rec]) if n not in born[key].nodes]
            continue
        born[key] = _diagnosis(ctx, call, rec, grad, step, i)
        out.append(born[key])
    return out


def _feeds_where(ctx: Context, rec: Any) -> bool:
    """``rec``'s value is a branch of a ``torch.where`` (the classic masked-branch nan)."""
    return rec is not None and any(r.op == "where" and any(i is rec for i in r.inputs) for r in ctx.b.kept_recs())


def _turns_nonfinite(step: Any, i: int) -> bool:
    g = as_array(step.grad_output)
    return g is not None and finite(g) and not finite(as_array(step.input_grads[i]))


def _diagnosis(ctx: Context, call: Any, rec: Any, grad: np.ndarray, step: Any, i: int) -> Diagnosis:
    node = step.node
    label = node.name
    gi = as_array(step.input_grads[i])
    bad = "nan" if np.isnan(gi).any() else "inf"
    index = tuple(np.argwhere(~np.isfinite(gi))[0])
    x = at(input_value(node, i), index, gi.shape)
    g = at(as_array(step.grad_output), index, gi.shape)
    formula = node.formulas[i] if i < len(node.formulas) else None
    where = describe_index(index)
    detail = f" at element {where}" if where else ""
    values = ", ".join(s for s in ((f"the input is {x:g}" if x is not None else ""),
                                   (f"the incoming gradient is {g:g}" if g is not None else "")) if s)
    grad_text = ctx.grad_of(rec)
    grad_bad = "nan" if np.isnan(grad).any() else "inf"
    message = (f"{label} received a finite gradient and passed {bad} on to input {i}{detail}"
               f"{': ' + values if values else ''}; its local derivative"
               f"{' (' + formula + ')' if formula else ''} is not finite there.")
    fix = _FIXES.get(node.op, f"keep the input of {label} inside the range where its derivative is finite "
                              f"(clamp it or add a small epsilon)")
    node_rec = ctx.s.by_node.get(id(node))
    if g == 0 and _feeds_where(ctx, node_rec):
        message += (" torch.where sent it a zero gradient for the elements it did not pick, and 0 times a "
                    "non-finite derivative is still nan.")
        fix = (f"apply the condition to the input of {label} as well (e.g. `torch.where(cond, x, safe_value)` "
               f"inside it), so the branch torch.where does not pick is computed at a harmless value")
    lines = [ctx.rec_line(node_rec, "computed") if node_rec is not None else None,
             ctx.line(call.src, "backward", cell=call.cell)]
    return Diagnosis("nonfinite_grad", f"{grad_text} is {grad_bad}: it first became {bad} at {label}", message,
                     fix, tensor=ctx.name(rec), lines=compact(lines), nodes=ctx.node_ids([node_rec, rec]),
                     severity=ctx.severity)
