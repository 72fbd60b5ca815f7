"""Explain what went wrong: the ``Diagnosis`` list of a report (``GradReport.diagnoses``).

One detector per kind, each a module with a ``find(ctx) -> list[Diagnosis]``:

* ``inplace``   — ``inplace_saved``: a tensor saved for backward was modified in place
  (``data_write``: through ``.data``, which torch does not notice: a warning);
* ``freed``     — ``freed_graph``: backward through a graph an earlier call freed;
* ``grad_none`` — ``grad_none``: a ``.grad`` the cell read was None, and why;
* ``nonfinite`` — ``nonfinite_grad``: where a NaN/inf gradient was born;
* ``zero``      — ``zero_grad``: a piecewise-constant op or a dead ReLU zeroed a gradient;
* ``nonscalar`` — ``nonscalar_backward``: ``y.backward()`` on a tensor of more than one number;
* ``no_grad_fn`` — ``no_grad_fn``: backward from a tensor without a graph (where it was cut);
* ``leaf_inplace`` — ``leaf_inplace``: a leaf that requires grad changed in place;
* ``int_grad``  — ``int_requires_grad``: an integer or boolean tensor asked to require grad;
* ``bad_grad``  — ``invalid_gradient``: a hook or a custom ``backward`` returned a bad gradient
  (``module_hooks``: the backward hooks of an ``nn.Module``).

``diagnose`` is called by the recorder when it builds a report. It costs next to nothing
when nothing went wrong: the error detectors run only when the block raised, ``grad_none``
only when a ``.grad`` read gave None, and the gradient detectors only look further than one
pass over the leaves' gradients when one is non-finite or all zero. A failure of gradmagic
here becomes a note, never an exception in the user's cell.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> with trace(session=Session()) as rep:
...     x = torch.ones(2, requires_grad=True)
...     (x * x).sum().backward()
>>> rep.diagnoses
[]
"""
from __future__ import annotations

from typing import Any, Iterable

from gradmagic.report import GradReport

from . import (bad_grad, data_write, freed, grad_none, inplace, int_grad, leaf_inplace, module_hooks, no_grad_fn,
               nonfinite, nonscalar, zero)
from .context import Context

__all__ = ["diagnose", "Context", "collect_module_hooks"]

collect_module_hooks = module_hooks.collect

#: detectors in the order their diagnoses are listed (the cell's error first)
_ON_ERROR = (inplace.find, freed.find, nonscalar.find, no_grad_fn.find, leaf_inplace.find, int_grad.find,
             bad_grad.find)
_ON_NONE_READ = (grad_none.find,)
_ON_GRADIENTS = (data_write.find, nonfinite.find, zero.find)


def diagnose(session: Any, block: Any, report: GradReport, ids: dict, hooks: Iterable[Any] = ()) -> list:
    """The diagnoses of block ``block`` (``ids``: ``id(Rec) -> node id`` of ``report``;
    ``hooks``: what ``collect_module_hooks`` read from the block's module calls)."""
    ctx = Context(session, block, report, ids, hooks)
    detectors: list = []
    if ctx.error:
        detectors += _ON_ERROR
    if block.none_reads:
        detectors += _ON_NONE_READ
    if block.calls:
        detectors += _ON_GRADIENTS
    out: list = []
    for find in detectors:
        try:
            out += find(ctx)
        except Exception as exc:  # gradmagic's failure never breaks the user's cell
            report.notes.append(f"gradmagic could not finish its diagnosis ({find.__module__.rsplit('.', 1)[-1]}: "
                                f"{type(exc).__name__}: {exc}).")
    block.failed, block.raised, block.none_reads, block.hook_sites = None, None, [], []  # drop the user's graph
    return out
