"""``grad_none``: the cell read ``t.grad`` and got None — say why.

The recorder notes every ``.grad`` read that gives None (``Block.none_reads``, with the
tensor's autograd state at that moment). The reasons, in the order they are tried:

* ``t`` is not a leaf (an op made it): PyTorch keeps ``.grad`` of leaves only — fix
  ``t.retain_grad()``, or keep ``t`` a leaf (update it in place under ``torch.no_grad()``);
* ``t`` is ``x.data``, ``x.detach()``, a re-wrapped value (``torch.tensor(x)``, ``.item()``,
  ``.numpy()``, ``.tolist()``) or was computed with gradients off (the ``with`` line);
* ``t`` never had ``requires_grad`` set;
* ``t`` requires grad but the gradient was set to None after a backward (the line), or no
  backward reached it: the chain from ``t`` to the loss was cut (the line), or ``t`` is not on
  the path from the root at all.

A leaf read before any ``backward()`` call (``autograd.grad`` fills no ``.grad``) is None by
design (diagnosed only when the None broke the cell: ``w.grad.zero_()`` before the first
backward), and a read that tests for None (``if p.grad is not None:``) expects it.

>>> import torch, warnings
>>> from gradmagic.recorder import Session, trace
>>> with warnings.catch_warnings(), trace(session=Session()) as rep:
...     warnings.simplefilter("ignore")  # torch warns about reading a non-leaf's .grad
...     w = torch.ones(2, requires_grad=True)
...     h = w * 2
...     h.sum().backward()
...     g = h.grad
>>> d = rep.diagnoses[0]
>>> d.kind, d.title, d.fix
('grad_none', 'Why is h.grad None?', 'call `h.retain_grad()` before backward() to keep the gradient of this intermediate tensor')
"""
from __future__ import annotations

import re
from typing import Any, Optional

from gradmagic.report import Diagnosis

from .context import Context, compact
from .grad_mode import grad_off_at, source_of

#: torch calls that build a new tensor from values, without a graph
REWRAP = frozenset({"torch.tensor", "torch.as_tensor", "torch.from_numpy", "torch.Tensor", "Tensor.new_tensor",
                    "torch.FloatTensor", "torch.DoubleTensor"})
#: a read that tests for None (``x.grad is None``, ``if p.grad is not None:``)
_TESTS_NONE = re.compile(r"\.grad\s+is\s+(not\s+)?None|\.grad\s*[!=]=\s*None")
#: calls that turn a tensor into plain values (what re-wrapping starts from)
_VALUE_READS = (".item()", ".numpy()", ".tolist()", ".detach()", ".data")
_DETACH = frozenset({"Tensor.detach", "torch.detach"})
_NONDIFF = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "argmax", "argmin", "isnan", "logical_not",
                      "logical_and", "logical_or", "floor_divide", "one_hot", "nonzero"})


def find(ctx: Context) -> list:
    """One diagnosis per tensor whose ``.grad`` read gave None (where that surprises)."""
    out, seen = [], set()
    for read in ctx.b.none_reads:
        if id(read.rec) in seen:
            continue
        d = _why(ctx, read)
        if d is not None:
            seen.add(id(read.rec))
            out.append(d)
    return out


def _why(ctx: Context, read: Any) -> Optional[Diagnosis]:
    rec = read.rec
    name = ctx.name(rec) or ctx.label(rec)
    read_line = ctx.line(read.src, "read")
    if read_line is not None and _TESTS_NONE.search(read_line["code"] or ""):
        return None  # ``if p.grad is not None:``: the cell expects None
    if not read.is_leaf and not read.retains_grad:
        return _not_leaf(ctx, read, name, read_line)
    if not _backward_since(ctx, read):  # None is the default, a surprise only when it broke the cell
        return _before_backward(ctx, read, name, read_line) if "NoneType" in ctx.error else None
    if read.data_of is not None:
        return _make(ctx, name, f"{name} is `{ctx.name(read.data_of) or 'a tensor'}.data`, a view without "
                     f"autograd history, so no gradient reaches it.",
                     f"use {ctx.name(read.data_of) or 'the original tensor'} itself (read its `.grad`) "
                     f"instead of its `.data`", [ctx.rec_line(rec, "first used"), read_line], [rec, read.data_of])
    if not read.requires_grad:
        cut = how_cut(ctx, rec)
        if cut is not None:
            what, line = cut
            return _make(ctx, name, f"{name} was made by {what}, which cuts it off the graph: it has no "
                         f"history and does not require grad.", _cut_fix(what, name), [line, read_line], [rec])
        return _make(ctx, name, f"{name} never had requires_grad set, so autograd does not compute its "
                     f"gradient.", f"create {name} with `requires_grad=True` (or call `{name}.requires_grad_()`) "
                     f"before using it", [_origin(ctx, rec), read_line], [rec])
    return _leaf_without_grad(ctx, read, name, read_line)


def _backward_since(ctx: Context, read: Any) -> bool:
    """Has a ``backward()`` (``autograd.grad`` fills no ``.grad``) run between the creation of the
    tensor read and the read? (One in another cell, before the tensor existed, does not count.)"""
    return any(c.kind == "backward" and read.rec.seq < c.seq <= read.seq for c in ctx.s.recent_calls)


def _before_backward(ctx: Context, read: Any, name: str, read_line: Any) -> Diagnosis:
    """The cell used ``t.grad`` (``t.grad.zero_()``) before any backward gave it a value."""
    return _make(ctx, name, f"no backward() has run yet, so {name}.grad is still None: PyTorch creates it at "
                 f"the first backward.", f"call backward() before using {name}.grad, or guard the use with "
                 f"`if {name}.grad is not None:`", [_origin(ctx, read.rec), read_line], [read.rec])


def _not_leaf(ctx: Context, read: Any, name: str, read_line: Any) -> Diagnosis:
    rec = read.rec
    label = rec.enode.name if rec.enode is not None else (rec.torch_op or "an operation")
    code = ctx.code(rec.src) or ""
    message = (f"{name} is not a leaf: it is the result of {label}, and PyTorch keeps .grad only for leaf "
               f"tensors (those created by you, not computed from others).")
    if re.match(rf"^\s*{re.escape(name)}\s*=.*\b{re.escape(name)}\b", code):
        fix = (f"update {name} in place under `torch.no_grad()` (`with torch.no_grad(): {name} -= ...`) so it "
               f"stays a leaf, instead of `{code}`")
    else:
        fix = f"call `{name}.retain_grad()` before backward() to keep the gradient of this intermediate tensor"
    return _make(ctx, name, message, fix, [ctx.rec_line(rec, "computed"), read_line], [rec])


def _leaf_without_grad(ctx: Context, read: Any, name: str, read_line: Any) -> Optional[Diagnosis]:
    rec = read.rec
    events = [ev for ev in rec.hist.events if ev.seq <= read.seq] if rec.hist is not None else []
    reached = [ev for ev in events if ev.kind == "backward"]
    if reached:
        cleared = [ev for ev in events if ev.kind == "set_none" and ev.seq > reached[-1].seq]
        if not cleared:
            return None
        ev = cleared[0]
        line = ctx.line(ev.where, "set to None", cell=ev.cell)
        code = line["code"] if line and line["code"] else "a later call"
        return _make(ctx, name, f"backward() gave {name} a gradient, but `{code}` set it to None afterwards.",
                     f"read {name}.grad before `{code}`, or zero it instead (`zero_grad(set_to_none=False)`)",
                     [ctx.line(reached[-1].where, "backward", cell=reached[-1].cell), line, read_line], [rec])
    cut = _cut_on_path(ctx, rec)
    backward = _last_backward(ctx)
    if cut is not None:
        what, line, cut_rec = cut
        return _make(ctx, name, f"no backward reached {name}: the chain from {name} to the loss was cut by "
                     f"{what}.", _cut_fix(what, name), [_origin(ctx, rec), line, backward, read_line],
                     [rec, cut_rec])
    return _make(ctx, name, f"no backward reached {name}: it is not on the path from the tensor backward() "
                 f"started from.", f"compute the loss from {name} (or call backward() on a result that uses it)",
                 [_origin(ctx, rec), backward, read_line], [rec])


def _origin(ctx: Context, rec: Any) -> Optional[dict]:
    """Where ``rec``'s tensor was created ("created"), or first seen when it came from elsewhere
    (a module's parameter: "first used")."""
    return ctx.rec_line(rec, "created" if rec.torch_op else "first used")


def how_cut(ctx: Context, rec: Any) -> Optional[tuple]:
    """``(what, line)`` when ``rec``'s tensor was made without a graph from one that had one:
    ``detach()``, re-wrapping (``torch.tensor(...)``, ``.item()``, ``.numpy()``, ``.tolist()``),
    an op without a gradient (comparison, argmax, integer cast) or gradients turned off."""
    op = rec.torch_op or ""
    if op in _DETACH:
        return "`detach()`", ctx.rec_line(rec, "cut by")
    if op in REWRAP:
        code = ctx.code(rec.src) or ""
        what = next((f"`{tok}`" for tok in _VALUE_READS if tok in code), None)
        if what is None and _wraps_a_tensor(ctx, code):
            what = f"re-wrapping with `{op.replace('Tensor.', 't.')}(...)`"
        return (what, ctx.rec_line(rec, "cut by")) if what else None
    if rec.kind != "op" or rec.et is None or rec.et.requires_grad:
        return None
    if not any(i is not None and i.et is not None and i.et.requires_grad for i in rec.inputs):
        return None
    if rec.op in _NONDIFF or rec.et.data.dtype.kind in "biu":
        return f"`{ctx.code(rec.src) or rec.torch_op}` (no gradient flows through it)", ctx.rec_line(rec, "cut by")
    off = _grad_off(ctx, rec)
    if off is not None:
        return f"`{off[1]}`", off[0]
    return None


def _wraps_a_tensor(ctx: Context, code: str) -> bool:
    """The call on ``code``'s line takes a variable that names a tensor of the report
    (``torch.tensor(w)``), not plain numbers."""
    inside = code.split("(", 1)[1] if "(" in code else ""
    known = {n.name for n in ctx.report.nodes if n.name} | {a for n in ctx.report.nodes for a in n.aliases}
    return any(word in known for word in re.findall(r"[A-Za-z_][\w.]*", inside))


def _grad_off(ctx: Context, rec: Any) -> Optional[tuple]:
    """(line dict, code) of the ``with torch.no_grad():`` around ``rec``'s line, if the source has one."""
    if rec.src is None:
        return None
    source = source_of(rec.src[0], ctx.b.finder)
    found = grad_off_at(source, rec.src[1]) if source else None
    if found is None:
        return None
    at, code = found
    return {"cell": rec.cell, "line": at, "code": code, "role": "gradients off"}, code


def _cut_on_path(ctx: Context, rec: Any) -> Optional[tuple]:
    """Where the chain from leaf ``rec`` to the last backward's root was cut:
    ``(what, line, the Rec made by the cut)``, or None."""
    for r in ctx.descendants(rec):
        cut = how_cut(ctx, r)
        if cut is not None:
            return (*cut, r)
    for past in reversed(ctx.s.recent_calls):
        roots = [r for r in (ref() for ref in past.roots) if r is not None]
        for r in sorted(ctx.ancestors(roots).values(), key=lambda r: r.seq):
            if r.kind in ("leaf", "constant") and (r.torch_op or "") in REWRAP:
                return (*how_cut(ctx, r), r)
        break
    return None


def _last_backward(ctx: Context) -> Optional[dict]:
    for past in reversed(ctx.s.recent_calls):
        return ctx.line(past.src, "backward", cell=past.cell)
    return None


def _cut_fix(what: str, name: str) -> str:
    if "no_grad" in what or "inference_mode" in what or "set_grad_enabled" in what:
        return f"compute {name} outside {what} if you need its gradient"
    if "detach" in what:
        return f"use the tensor itself instead of its detached copy where you need the gradient of {name}"
    if "no gradient flows" in what:
        return (f"use a differentiable expression (e.g. a float mask or a soft version) where the gradient "
                f"must reach {name}")
    return f"keep {name} a tensor computed with torch ops (no {what}) so the graph is not cut"


def _make(ctx: Context, name: str, message: str, fix: str, lines: list, recs: list) -> Diagnosis:
    return Diagnosis("grad_none", f"Why is {name}.grad None?", message, fix, tensor=name, lines=compact(lines),
                     nodes=ctx.node_ids(recs), severity=ctx.severity)
