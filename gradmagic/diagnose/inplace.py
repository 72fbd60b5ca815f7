"""``inplace_saved``: a tensor saved for backward was modified in place before the backward.

torch says only "one of the variables needed for gradient computation has been modified by
an inplace operation: [torch.FloatTensor [3]], which is output 0 of Sigmoid". The recorded
graph says more: which node saved the tensor (and on which line), which in-place op or
parameter update changed it afterwards, and which backward needed it.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> try:
...     with trace(session=Session()) as rep:
...         a = torch.ones(3, requires_grad=True)
...         b = a.sigmoid()
...         _ = b.mul_(2)
...         b.sum().backward()
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, d.title, d.fix
('inplace_saved', 'b was modified in place after SigmoidBackward0 saved it', 'write `b = b.mul(2)` instead of `b.mul_(2)`, or call `.clone()` on b before the in-place op')
>>> [ln["role"] for ln in d.lines]
['saved by', 'modified in place', 'backward']
"""
from __future__ import annotations

import re
from typing import Any, Optional

from gradmagic.report import Diagnosis

from .context import Context, compact

#: torch's message for this error (the part every version shares)
MESSAGE = "modified by an inplace operation"
_OUTPUT_OF = re.compile(r"output \d+ of (\w+)")
_SHAPE = re.compile(r"\[torch\.\w+ \[([\d, ]*)\]\]")
_METHOD = re.compile(r"^(?:[\w.]+\s*=\s*)?(?P<obj>[\w.\[\]]+)\.(?P<op>\w+)_\((?P<args>.*)\)$")
_AUGMENTED = re.compile(r"^(?P<obj>[\w.\[\]]+)\s*(?P<op>\+|-|\*|/|\*\*|@)=\s*(?P<rhs>.+)$")
#: activations whose ``inplace=True`` (often set on an ``nn.ReLU`` module) writes into their input
_INPLACE_ACTIVATIONS = frozenset({"torch.nn.functional.relu", "torch.nn.functional.relu6", "torch.nn.functional.elu",
                                  "torch.nn.functional.leaky_relu", "torch.nn.functional.hardtanh",
                                  "torch.nn.functional.threshold", "torch.nn.functional.silu",
                                  "torch.nn.functional.dropout"})
_DUNDER_INPLACE = ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ipow__", "__setitem__")


def find(ctx: Context) -> list:
    """The diagnosis of torch's in-place error, or [] when the cell did not raise it."""
    if MESSAGE not in ctx.error:
        return []
    failed = ctx.b.failed
    graph = ctx.failed_graph()
    best: Optional[tuple] = None
    writes = _inplace_writes(ctx)
    for saver in graph.values():
        for saved in _saved_by(saver):
            change = _changed_after(writes, saved, saver.seq)
            if change is None:
                continue
            key = (_matches(ctx.error, saved), saver.seq)
            if best is None or key > best[0]:
                best = (key, saver, saved, change)
    if best is None:
        return []
    return [_diagnosis(ctx, failed, *best[1:])]


def _saved_by(saver: Any) -> list:
    """The Recs whose value ``saver``'s backward node keeps (its inputs, or its own output)."""
    node = saver.enode
    if node is None or saver.kind not in ("op", "internal"):
        return []
    out = [saver] if node.opdef.saves_ans else []
    parents, raw = node.parents, node.raw_inputs()
    for k in node.saved_idx:
        for rec in saver.inputs:
            if rec is None or rec is saver or rec in out:
                continue
            if (rec.enode is not None and parents[k] is rec.enode) or \
                    (rec.et is not None and (parents[k] is rec.et or raw[k] is rec.et)):
                out.append(rec)
    return out


def _inplace_writes(ctx: Context) -> dict:
    """``id(Rec) -> [Rec, ...]``: the in-place ops that wrote into each Rec's tensor, in order."""
    out: dict = {}
    for r in ctx.b.kept_recs():
        if r.inputs and r.inputs[0] is not None and _is_inplace(r, r.inputs[0]):
            out.setdefault(id(r.inputs[0]), []).append(r)
    return out


def _changed_after(writes: dict, saved: Any, seq: int) -> Optional[tuple]:
    """``("op", Rec)`` of the first in-place op on ``saved``'s tensor after ``seq``, or
    ``("update", Event)`` of the first update of a leaf (an optimizer step, a no-grad write)."""
    for r in writes.get(id(saved), ()):
        if r.seq > seq:
            return ("op", r)
    hist = saved.hist
    if hist is not None and saved.kind == "leaf":
        for ev in hist.events:
            if ev.kind == "update" and ev.seq > seq:
                return ("update", ev)
    return None


def _is_inplace(r: Any, saved: Any) -> bool:
    """``r`` wrote into ``saved``'s tensor (the recorder keeps one engine tensor per torch
    tensor across in-place ops; an in-place call without a rule is known by its name)."""
    if r.et is not None and r.et is saved.et:
        return True
    name = (r.torch_op or "").rsplit(".", 1)[-1]
    return (name.endswith("_") and not name.endswith("__")) or name in _DUNDER_INPLACE


def _matches(message: str, saved: Any) -> int:
    """How well ``saved`` fits torch's message ("output 0 of Sigmoid", the shape)."""
    score = 0
    m = _OUTPUT_OF.search(message)
    node = saved.enode
    if m is not None and node is not None and node.name.startswith(m.group(1)):
        score += 2
    elif m is None and saved.kind in ("leaf", "constant"):
        score += 2
    shape = _SHAPE.search(message)
    if shape is not None and saved.et is not None:
        want = [int(x) for x in shape.group(1).replace(" ", "").split(",") if x]
        score += list(saved.et.data.shape) == want
    return score


def _diagnosis(ctx: Context, failed: Any, saver: Any, saved: Any, change: tuple) -> Diagnosis:
    kind, what = change
    name = ctx.name(saved) or (ctx.name(what) if kind == "op" else None) or ctx.label(saved)
    node_name = saver.enode.name
    if kind == "op":
        changed_line = ctx.rec_line(what, "modified in place")
        fix = inplace_fix(ctx.code(what.src), name)
        if what.torch_op in _INPLACE_ACTIVATIONS and "inplace=True" not in (ctx.code(what.src) or ""):
            fix = (f"create the activation with `inplace=False` (the default), or call `.clone()` on {name} "
                   f"before `{ctx.code(what.src)}`")
    else:
        changed_line = ctx.line(what.where, "modified in place", cell=what.cell)
        update = changed_line["code"] if changed_line else "the update"
        fix = f"run every backward() that needs {name} before `{update}`, or recompute the forward pass after it"
    backward = ctx.line(failed.src, "backward") if failed is not None else None
    where = f" (line {changed_line['line']})" if changed_line else ""
    message = (f"{node_name} saved {name} for the backward pass; "
               f"`{changed_line['code'] if changed_line else 'an in-place operation'}`{where} then changed it in "
               f"place, so the backward could no longer use the value it saved.")
    nodes = ctx.node_ids([saver, saved] + ([what] if kind == "op" else []))
    return Diagnosis("inplace_saved", f"{name} was modified in place after {node_name} saved it", message, fix,
                     tensor=name, lines=compact([ctx.rec_line(saver, "saved by"), changed_line, backward]),
                     nodes=nodes, severity=ctx.severity)


def inplace_fix(code: Optional[str], name: str) -> str:
    """One sentence: how to write the in-place statement ``code`` out of place.

    >>> inplace_fix("b.mul_(2)", "b")
    'write `b = b.mul(2)` instead of `b.mul_(2)`, or call `.clone()` on b before the in-place op'
    >>> inplace_fix("_ = b.mul_(2)", "b")
    'write `b = b.mul(2)` instead of `b.mul_(2)`, or call `.clone()` on b before the in-place op'
    >>> inplace_fix("x += 1", "x")
    'write `x = x + 1` instead of `x += 1`, or call `.clone()` on x before the in-place op'
    >>> inplace_fix("y = F.relu(y, inplace=True)", "y")
    'pass `inplace=False` instead of `inplace=True`'
    """
    code = (code or "").strip()
    m = _METHOD.match(code)
    if m is not None:
        obj, op, args = m.group("obj", "op", "args")
        return (f"write `{obj} = {obj}.{op}({args})` instead of `{obj}.{op}_({args})`, "
                f"or call `.clone()` on {name} before the in-place op")
    m = _AUGMENTED.match(code)
    if m is not None:
        obj, op, rhs = m.group("obj", "op", "rhs")
        return (f"write `{obj} = {obj} {op} {rhs}` instead of `{code}`, "
                f"or call `.clone()` on {name} before the in-place op")
    if "inplace=True" in code:
        return "pass `inplace=False` instead of `inplace=True`"
    shown = f"`{code}`" if code else "the in-place op"
    return f"call `.clone()` on {name} before {shown}, so the value saved for backward stays as it was"
