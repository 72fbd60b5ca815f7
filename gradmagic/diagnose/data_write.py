"""``inplace_saved`` without an error: a tensor saved for backward was changed through ``.data``.

``w.data.mul_(2)`` or ``w.data = v`` writes into ``w`` behind autograd's back: the version
counter that makes torch refuse a backward after ``w.mul_(2)`` does not move, so a backward
that needs the saved ``w`` runs without a word and computes its gradients from the new values.
The recorder notes every such write (``recorder.labels.note_data_write``: where, when, and
the values before and after); this detector finds a node of a kept backward call's graph that
saved the tensor before the write, with the backward after it, and the values changed in
between. Saved outputs (``sigmoid``, ``exp``) keep their old memory when ``.data = v`` gives
the tensor new memory, so only in-place writes count for them. A warning: the cell did not fail.

It costs nothing when no ``.data`` write was recorded.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> with trace(session=Session()) as rep:
...     w = torch.tensor([1.0, 2.0], requires_grad=True)
...     y = (w * w).sum()
...     _ = w.data.mul_(2)
...     y.backward()
>>> d = rep.diagnoses[0]
>>> d.kind, d.severity, d.title
('inplace_saved', 'warning', 'w was changed through .data after MulBackward0 saved it; the backward used the new values')
"""
from __future__ import annotations

from typing import Any, Optional

from gradmagic.recorder.labels import DATA_WRITES
from gradmagic.report import Diagnosis

from .context import Context, compact
from .inplace import _saved_by


def find(ctx: Context) -> list:
    """A diagnosis per tensor a kept backward call needed after ``.data`` changed it."""
    if not DATA_WRITES:
        return []
    written = {id(rec): (rec, entry) for rec, entry in list(DATA_WRITES.items())}
    out: list = []
    told: set = set()
    for call in ctx.b.calls[-ctx.b.keep_calls:]:
        if not call.roots or not any(w.calls <= call.index for _, e in written.values() for w in e.writes):
            continue
        for saver in sorted(ctx.ancestors(call.roots).values(), key=lambda r: r.seq):
            for saved in _saved_values(saver):
                hit = written.get(id(saved))
                if hit is None or id(saved) in told:
                    continue
                writes = _between(hit[1], saver, call, output=saved is saver)
                if writes:
                    told.add(id(saved))
                    out.append(_diagnosis(ctx, saver, saved, writes, call))
    return out


def _saved_values(saver: Any) -> list:
    """The Recs whose values ``saver``'s backward reads, as its op's rule says for the inputs
    that needed a gradient (``x ** 2`` keeps ``x``, not its result; ``x.exp()`` its result)."""
    node = saver.enode
    if node is None:
        return []
    op = node.opdef
    names: set = set()
    for i, parent in enumerate(node.parents):
        if parent is not None and op.saves:
            names.update(op.saves[0 if op.variadic else min(i, len(op.saves) - 1)])
    return [r for r in _saved_by(saver) if r is not saver or "ans" in names]


def _between(entry: Any, saver: Any, call: Any, output: bool) -> list:
    """The writes after ``saver`` saved its values and before ``call`` ran, when they changed
    what the backward reads ([] when they did not, or when an older write was forgotten);
    ``output``: the saved values are ``saver``'s own result, which ``.data = v`` leaves alone."""
    if entry.dropped_seq >= saver.seq:
        return []  # a write between them was forgotten: say nothing rather than guess
    writes = [w for w in entry.writes if w.seq >= saver.seq and w.calls <= call.index]
    if output:
        cut = next((k for k, w in enumerate(writes) if w.rebind), len(writes))
        writes = writes[:cut]
    if not writes or writes[0].before == writes[-1].after:
        return []
    return writes


def _diagnosis(ctx: Context, saver: Any, saved: Any, writes: list, call: Any) -> Diagnosis:
    name = ctx.name(saved) or ctx.label(saved)
    node_name = saver.enode.name
    first = writes[0]
    changed = ctx.line(first.src, "modified in place", cell=first.cell)
    code = changed["code"] if changed and changed["code"] else f"a write through {name}.data"
    at = f" (line {changed['line']})" if changed else ""
    backward = ctx.line(call.src, "backward", cell=call.cell)
    message = (f"{node_name} saved {name} for the backward pass; `{code}`{at} then changed {name}'s values "
               f"through `.data`, which autograd does not track, so torch raised no error and the backward "
               f"{_where(backward)}computed its gradients from the new values, not from those of the forward pass.")
    fix = (f"change {name} after every backward() that needs it, or recompute the forward pass after the change; "
           f"write the change as `with torch.no_grad(): ...` on {name} itself, not on {name}.data, so that torch "
           f"checks it")
    return Diagnosis("inplace_saved", f"{name} was changed through .data after {node_name} saved it; the backward "
                     f"used the new values", message, fix, tensor=ctx.name(saved),
                     lines=compact([ctx.rec_line(saver, "saved by"), changed, backward]),
                     nodes=ctx.node_ids([saver, saved]), severity=ctx.severity)


def _where(line: Optional[dict]) -> str:
    return f"(`{line['code']}`, line {line['line']}) " if line and line["code"] else ""
