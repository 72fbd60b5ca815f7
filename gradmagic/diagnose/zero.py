"""``zero_grad``: a leaf's gradient is exactly zero because a piecewise-constant op (``round``,
``floor``, ``sign``, …) or a ReLU whose inputs were all negative ("dead ReLU") stopped it.

Looked for only when a backward gave a leaf an all-zero gradient. The replay is walked to the
first such node whose incoming gradient was not zero but which passed only zeros on towards
that leaf. (Comparisons, ``argmax`` and integer casts have no gradient at all: they cut the
graph, which ``grad_none`` explains.)

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> with trace(session=Session()) as rep:
...     w = torch.tensor([0.3, 1.7], requires_grad=True)
...     (w * 4).round().sum().backward()
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('zero_grad', 'w.grad is all zeros: RoundBackward0 passes no gradient')
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gradmagic.report import Diagnosis

from .context import Context, compact
from .steps import as_array, first_step, input_value, leaf_gradients

#: ops whose derivative is 0 everywhere (where defined)
PIECEWISE_CONSTANT = frozenset({"round", "floor", "ceil", "trunc", "sign", "heaviside"})
#: ops that are flat on part of their domain: zero when every input lies there
FLAT_PART = frozenset({"relu", "threshold", "clamp", "clamp_min", "clamp_max", "hardtanh", "relu6"})


def find(ctx: Context) -> list:
    """One diagnosis per node that turned a leaf's gradient into zeros."""
    out, seen = [], {}
    for call, rec, leaf, grad in leaf_gradients(ctx):
        if grad.size == 0 or grad.dtype.kind not in "fc" or grad.any():
            continue
        hit = first_step(call, leaf, _stops)
        if hit is None:
            continue
        step, i = hit
        if id(step.node) in seen:
            d = seen[id(step.node)]
            d.nodes += [n for n in ctx.node_ids([rec]) if n not in d.nodes]
            continue
        seen[id(step.node)] = d = _diagnosis(ctx, call, rec, step, i)
        out.append(d)
    return out


def _stops(step: Any, i: int) -> bool:
    """The node got a non-zero gradient and sent only zeros to input ``i``, by its nature."""
    g, gi = as_array(step.grad_output), as_array(step.input_grads[i])
    if g is None or not np.any(g) or np.any(gi):
        return False
    return step.node.op in PIECEWISE_CONSTANT or step.node.op in FLAT_PART


def _diagnosis(ctx: Context, call: Any, rec: Any, step: Any, i: int) -> Diagnosis:
    node = step.node
    label = node.name
    name = ctx.name(rec) or ctx.label(rec)
    grad_text = ctx.grad_of(rec)
    if node.op in PIECEWISE_CONSTANT:
        message = (f"{label} is piecewise constant: its derivative is 0 wherever it is defined, so no gradient "
                   f"reaches {name} through it.")
        fix = (f"use a straight-through estimator (`x + (x.{node.op}() - x).detach()`) or a smooth function "
               f"instead of {node.op} where a gradient must flow")
    elif node.op in ("relu", "threshold"):
        x = input_value(node, i)
        count = f" (all {x.size})" if x is not None else ""
        message = (f"every input of {label} was negative or zero{count}, so the ReLU passed no gradient back "
                   f"(a dead ReLU).")
        fix = ("check the inputs' scale (initialisation, learning rate, bias) or use LeakyReLU, which keeps a "
               "slope below 0")
    else:
        message = f"every input of {label} lay in its flat part (outside the clamp range), so it passed no gradient."
        fix = f"widen the range of {node.op}, or move its inputs inside it, where a gradient must flow"
    node_rec = ctx.s.by_node.get(id(node))
    lines = [ctx.rec_line(node_rec, "computed") if node_rec is not None else None,
             ctx.line(call.src, "backward", cell=call.cell)]
    return Diagnosis("zero_grad", f"{grad_text} is all zeros: {label} passes no gradient", message, fix,
                     tensor=ctx.name(rec), lines=compact(lines), nodes=ctx.node_ids([node_rec, rec]),
                     severity="warning")
