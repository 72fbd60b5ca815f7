"""Turn what a block recorded into a ``GradReport`` (plain, JSON-ready data).

The graph holds the nodes created in the block's kept segments, the earlier nodes
they used, and the ancestors of every kept backward root; nodes from earlier blocks
keep their own ``source.cell``. Node ids (``n0``, ``n1``, …) follow forward order.

>>> import torch
>>> from gradmagic.recorder import trace
>>> with trace() as rep:
...     x = torch.arange(4.0, requires_grad=True)
...     y = 2 * torch.dot(x, x)
...     y.backward()
>>> [n.label or n.kind for n in rep.nodes], rep.leaves[0].grad
(['leaf', 'DotBackward0', 'MulBackward0'], [0.0, 4.0, 8.0, 12.0])
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from gradmagic.diagnose import collect_module_hooks, diagnose
from gradmagic.engine import Tensor as ETensor
from gradmagic.report import BackwardCall, Check, Edge, Event, GradReport, Leaf, NodeInfo

from .block import BackRec, Block
from .flow import activation_stats, grad_flow
from .modules import module_calls, module_paths
from .labels import relabel
from .naming import tensor_names
from .crosscheck import identical
from .twins import Rec, Session, to_numpy
from .values import dtype_name, grad_field, summarize


def build_report(s: Session, b: Block, report: GradReport, namespace: Any,
                 source: Optional[str]) -> GradReport:
    """Fill ``report`` from block ``b`` of session ``s``."""
    if namespace is not None:
        _name(s, b, namespace)
    recs = _select(s, b)
    _freeze_sources(b, recs)
    ids = {id(r): f"n{i}" for i, r in enumerate(recs)}
    finder = b.finder
    sm = Summaries(s.value_limit)
    report.nodes = [_node(s, r, ids, finder, sm) for r in recs]
    relabel(report.nodes, recs, finder)  # detach(), .data, re-wrapped values: say what they are
    report.edges = [Edge(ids[id(i)], ids[id(r)], k) for r in recs for k, i in enumerate(r.inputs)
                    if i is not None and id(i) in ids]
    acts = activation_stats(b.modules, namespace) if b.flow.series else []  # before module_calls
    # the modules' backward hooks, for the diagnosis of a bad gradient (before module_calls lets the modules go)
    hooks = collect_module_hooks(b.modules, lambda: module_paths(namespace), b.note) if b.error else []
    report.modules = module_calls(b, namespace, recs, ids, s.twins)
    report.grad_flow = grad_flow(b.flow, report.modules, ids, acts)
    kept = {id(c) for c in b.calls[-b.keep_calls:]}
    report.backward_calls = [_call(s, c, k, ids, finder, id(c) in kept, sm) for k, c in enumerate(b.calls)]
    report.leaves = _leaves(s, b, recs, ids, finder, sm)
    report.checking = b.sampler.summary() if b.sampler is not None else None
    if report.checking:
        _sampled_leaves(report, b.sampler, ids)
    report.checks, report.mismatches, report.first_divergence = _checks(b, recs, ids)
    _grad_status(report)
    report.coverage = coverage(b)
    checked = sum(c["checked"] for c in report.coverage.values() if isinstance(c, dict))
    unchecked = sum(c["unchecked"] for c in report.coverage.values() if isinstance(c, dict))
    # nothing differed, and something was checked unless there was nothing to check
    report.ok = b.counts.get("differ", 0) == 0 and (checked > 0 or unchecked == 0)
    report.unsupported = list(b.unsupported)
    report.notes = list(b.notes) + [f"hook on {_who(rec, ids, report)}: {effect}"
                                    for rec, effect in b.hook_effects.values()]
    if b.pruned:
        report.notes.append(f"{b.pruned} nodes from earlier backward calls are summarised, not drawn "
                            f"(the graphs of the last {b.keep_calls} backward calls are kept).")
    hidden = b.counts.get("agree", 0) - sum(1 for c in report.checks if c.status == "agree")
    if hidden > 0:
        report.notes.append(f"{hidden} further checks of earlier ops and backward calls agreed.")
    report.cell = {"number": b.cell, "source": source} if (b.cell is not None or source is not None) else None
    report.error = b.error
    report.diagnoses = diagnose(s, b, report, ids, hooks)
    report.stats = {"nodes": len(report.nodes), "ops": b.ops,
                    "saved_bytes": int(sum(n.saved_bytes for n in report.nodes)),
                    "elapsed_ms": round(b.elapsed_ms, 3)}
    return report


def _who(rec: Rec, ids: dict, report: GradReport) -> str:
    """How a note names the tensor ``rec`` stands for: its variable, else its node."""
    if rec.name:
        return rec.name
    node = report.node(ids[id(rec)]) if id(rec) in ids else None
    return (node.label or node.torch_op or node.id) if node is not None else "a tensor"


def coverage(b: Block) -> dict:
    """How much of the block was checked: per kind (values, gradients), checked and unchecked
    counts, and how many tensors were too large to mirror.

    >>> from gradmagic.recorder.block import Block
    >>> b = Block(cell=None, finder=None); b.count("agree", 1, None, "value", None)
    >>> coverage(b)["values"]
    {'checked': 1, 'agree': 1, 'differ': 0, 'unchecked': 0}
    """
    out: dict = {}
    for kind, whats in (("values", ("value",)), ("grads", ("grad", "gradcheck"))):
        agree = sum(b.tally.get((w, "agree"), 0) for w in whats)
        differ = sum(b.tally.get((w, "differ"), 0) for w in whats)
        unchecked = sum(b.tally.get((w, "unchecked"), 0) for w in whats)
        out[kind] = {"checked": agree + differ, "agree": agree, "differ": differ, "unchecked": unchecked}
    out["too_large"] = b.too_large
    return out


# ----- names ---------------------------------------------------------------------------------
def _name(s: Session, b: Block, namespace: Any) -> None:
    """Label twins with the user's variable names (plain names before dotted ones)."""
    found: dict[int, tuple[Rec, list]] = {}
    for t, name in tensor_names(namespace):
        tw = s.twins.get(t)
        if tw is None:
            continue
        entry = found.setdefault(id(tw.rec), (tw.rec, []))
        if name not in entry[1]:
            entry[1].append(name)
    for rec, names in found.values():
        if rec.name is None or rec.seq > b.first_seq or rec.name not in names:
            rec.name = names[0]
        rec.aliases = names + [a for a in rec.aliases if a not in names and rec.seq <= b.first_seq]
    for r in b.kept_recs():
        if r.grad_owner is not None and r.name is None and r.grad_owner.name:
            r.name = r.grad_owner.name + ".grad"


# ----- node selection ---------------------------------------------------------------------------
def _select(s: Session, b: Block) -> list:
    """The Recs drawn, in forward order."""
    chosen: dict[int, Rec] = {}
    for r in b.kept_recs():
        if r.kind in ("op", "opaque", "internal") or r.name or r.kind == "leaf" or r.grad_owner is not None:
            chosen[id(r)] = r
    for r in (*b.used.values(), *b.touched.values()):
        chosen[id(r)] = r
    for r in list(chosen.values()):
        for i in r.inputs:
            if i is not None:
                chosen.setdefault(id(i), i)
    kept_calls = b.calls[-b.keep_calls:]
    stack = [r for c in kept_calls for r in c.roots if r is not None]
    while stack:
        r = stack.pop()
        chosen[id(r)] = r
        for i in r.inputs:
            if i is not None and id(i) not in chosen:
                chosen[id(i)] = i
                stack.append(i)
    for c in kept_calls:
        for step in c.steps or ():
            r = s.rec_of_engine(step.node if step.kind == "node" else step.tensor)
            if r is not None:
                chosen.setdefault(id(r), r)
        for r, _, _ in c.checks:
            chosen.setdefault(id(r), r)
    return sorted(chosen.values(), key=lambda r: r.seq)


# ----- nodes -------------------------------------------------------------------------------------
def _freeze_sources(b: Block, recs: list) -> None:
    """Store the code text with this block's locations, so later blocks (whose
    source text differs) still show it."""
    finder = b.finder
    if finder is None:
        return
    for r in recs:
        if r.src is not None and len(r.src) == 2 and r.seq > b.first_seq:
            r.src = (*r.src, finder.code(*r.src))
        hist = r.hist
        if hist is not None:
            for ev in hist.events:
                if ev.where is not None and len(ev.where) == 2 and ev.seq > b.first_seq:
                    ev.where = (*ev.where, finder.code(*ev.where))
    for c in b.calls:
        if c.src is not None and len(c.src) == 2:
            c.src = (*c.src, finder.code(*c.src))


def _code(src: Any, finder: Any) -> Optional[str]:
    if len(src) > 2:
        return src[2]
    return finder.code(src[0], src[1]) if finder is not None else None


def _source(rec_cell: Optional[int], src: Any, finder: Any) -> Optional[dict]:
    if src is None:
        return None
    return {"cell": rec_cell, "line": src[1], "code": _code(src, finder)}


def _saved(node: Any) -> list:
    """What an engine node keeps for backward (also after backward freed it)."""
    items = node.saved
    if not items and node.saved_idx:
        names = node.opdef.arg_names
        raw = node.raw_inputs()  # Tensors, scalars, or arrays (inputs computed by a node)
        items = [(names[i] if i < len(names) else f"input{i}",
                  raw[i].data if isinstance(raw[i], ETensor) else raw[i]) for i in node.saved_idx]
    out = []
    for name, arr in items:
        if isinstance(arr, np.ndarray):
            out.append({"name": name, "shape": list(arr.shape), "dtype": dtype_name(arr.dtype),
                        "bytes": int(arr.nbytes)})
    return out


def _node(s: Session, r: Rec, ids: dict, finder: Any, sm: "Summaries") -> NodeInfo:
    node = r.enode
    arr = r.et.data if r.kind in ("leaf", "constant") and r.et is not None else r.arr
    value = sm(arr) if arr is not None else None
    kind = "op" if r.kind == "internal" else r.kind
    if kind in ("leaf", "constant") and r.et is not None:
        kind = "leaf" if r.et.requires_grad else "constant"
    n = NodeInfo(id=ids[id(r)], kind=kind, name=r.name, aliases=list(r.aliases),
                 op=node.op if node is not None else r.op,
                 label=node.name if node is not None else r.label, torch_op=r.torch_op)
    if node is not None:
        n.formulas = list(node.formulas[: len(node.parents)])
        n.saved = _saved(node)
        n.saved_bytes = int(sum(x["bytes"] for x in n.saved))
    if value is not None:
        if r.tdtype:
            value = {**value, "dtype": r.tdtype}
        n.shape, n.dtype = value["shape"], value["dtype"]
    elif r.et is not None:  # a stand-in above the twin limit keeps its real shape
        n.shape, n.dtype = list(r.et.data.shape), r.tdtype or dtype_name(r.et.data.dtype)
    n.value = value
    n.requires_grad = bool(r.et.requires_grad) if r.et is not None else True
    n.is_leaf = r.kind in ("leaf", "constant")
    if r.hist is not None or r.retained:
        t = r.tref() if r.tref is not None else None
        tg = t.grad if t is not None else None
        if tg is not None:
            n.torch_grad = sm.torch(tg)
        if r.et is not None and r.et.grad is not None:
            n.grad = sm.engine(r.et.grad.data, tg)
    n.source = _source(r.cell, r.src, finder)
    n.status, n.max_abs_err = r.status, r.err
    return n


# ----- backward calls -------------------------------------------------------------------------------
def _sampled_leaves(report: GradReport, sampler: Any, ids: dict) -> None:
    """Leaves after a loop that ran at full speed (``check="sample"``): a ``.grad`` that piled
    up there gets the hint; one changed there after its last check is "unchecked" now, with
    no engine gradient (the engine's is from the last checked call)."""
    piled = set(report.checking["piled_up"])
    stale = {ids.get(id(rec)) for rec in sampler.stale.values()}
    for leaf in report.leaves:
        if leaf.name in piled:
            leaf.accumulated_without_clearing = True
        if leaf.id in stale:
            leaf.status = "unchecked"
            leaf.engine_grad = None
    if stale & {leaf.id for leaf in report.leaves}:
        last = sampler.checked[-1] if sampler.checked else 0
        sampler.b.note(f"the .grad values shown are torch's after backward call {report.checking['calls']}; "
                       f"gradmagic last checked them at call {last} (the calls after it ran at full speed).")


def _call(s: Session, c: BackRec, k: int, ids: dict, finder: Any, keep_steps: bool,
          sm: "Summaries") -> BackwardCall:
    root_rec = c.root_rec()
    root = ids.get(id(root_rec)) if root_rec is not None else None
    call = BackwardCall(index=k, call=c.pos, kind=c.kind, root=root, source=_source(c.cell, c.src, finder),
                        gradient=sm(c.gradient) if c.gradient is not None else None,
                        retain_graph=c.retain, create_graph=c.create, status=c.status)
    if keep_steps and c.steps is not None:
        call.steps = _steps(s, c, ids, sm)
    return call


def _steps(s: Session, c: BackRec, ids: dict, sm: "Summaries") -> list:
    out = []
    for step in c.steps:
        if step.kind == "node":
            node = step.node
            rec = s.by_node.get(id(node))
            formulas = node.formulas
            contribs = []
            for i, g in enumerate(step.input_grads):
                if g is None:
                    continue
                p = node.parents[i]
                prec = s.rec_of_engine(p) if p is not None else None
                contribs.append({"input": i, "to": ids.get(id(prec)) if prec is not None else None,
                                 "formula": formulas[i] if i < len(formulas) else None,
                                 "value": sm(g)})
            out.append({"k": len(out), "kind": "node", "node": ids.get(id(rec)) if rec else None,
                        "grad_output": sm(step.grad_output), "contributions": contribs})
        else:
            rec = s.by_tensor.get(id(step.tensor))
            out.append({"k": len(out), "kind": "accumulate", "node": ids.get(id(rec)) if rec else None,
                        "before": sm(step.before) if step.before is not None else None,
                        "added": sm(step.added), "after": sm(step.after)})
    for rec, arr in c.results:
        v = sm(arr)
        out.append({"k": len(out), "kind": "accumulate", "node": ids.get(id(rec)),
                    "before": None, "added": v, "after": v})
    if c.hooks:
        out = _with_hook_steps(out, c.hooks, ids, sm)
    return out


def _with_hook_steps(steps: list, hooks: list, ids: dict, sm: "Summaries") -> list:
    """A ``hook`` step before the step that uses the hooked tensor's gradient (its node's step,
    or a leaf's accumulation): what the hook received, what it handed on ("hook on z: g → 2·g")."""
    first: dict = {}
    for i, st in enumerate(steps):
        first.setdefault(st["node"], i)
    before: dict = {}
    for rec, received, returned, effect in hooks:
        node = ids.get(id(rec))
        if node is None or node not in first:
            continue
        after = received if returned is None else returned
        before.setdefault(first[node], []).append({
            "kind": "hook", "node": node, "effect": effect,
            "before": sm(np.asarray(received)), "after": sm(np.asarray(after))})
    out = []
    for i, st in enumerate(steps):
        out.extend(before.get(i, ()))
        out.append(st)
    for k, st in enumerate(out):
        st["k"] = k
    return out


# ----- leaves and events ------------------------------------------------------------------------------
def _leaves(s: Session, b: Block, recs: list, ids: dict, finder: Any, sm: "Summaries") -> list:
    call_index = {c.index: k for k, c in enumerate(b.calls)}
    last_check: dict[int, str] = {}
    for c in b.calls:
        for r, what, res in c.checks:
            if what == "grad":
                last_check[id(r)] = res[0]
    out = []
    for r in recs:
        if r.hist is None or r.kind != "leaf":
            continue
        t = r.tref() if r.tref is not None else None
        tg = t.grad if t is not None else None
        eg = r.et.grad.data if r.et is not None and r.et.grad is not None else None
        events = [_event(ev, call_index, finder, s.value_limit) for ev in r.hist.events]
        flagged = any(ev.accumulated and ev.seq > b.first_seq for ev in r.hist.events)
        out.append(Leaf(id=ids[id(r)], name=r.name, shape=list(r.et.data.shape), dtype=r.tdtype or dtype_name(r.et.data.dtype),
                        grad=sm.torch(tg, field=True) if tg is not None else None,
                        engine_grad=sm.engine(eg, tg, field=True) if eg is not None else None,
                        status=last_check.get(id(r), "unchecked"), accumulated_without_clearing=flagged,
                        events=events, events_dropped=r.hist.dropped))
        if flagged:
            b.note(f"hint: {r.name or ids[id(r)]}.grad summed the gradients of two or more backward calls "
                   f"without being cleared in between (PyTorch accumulates; call .grad.zero_() or "
                   f"optimizer.zero_grad() between backward calls if that was not intended).")
    return out


def _event(ev: Any, call_index: dict, finder: Any, value_limit: int) -> Event:
    where = ev.where
    line = where[1] if where else None
    code = _code(where, finder) if where else None
    if ev.kind == "update" and ev.added is None and isinstance(ev.before, np.ndarray) \
            and isinstance(ev.after, np.ndarray) and ev.before.shape == ev.after.shape \
            and ev.after.dtype.kind in "fc":
        ev.added = np.asarray(ev.after - ev.before)  # an update's step: the optimizer's Δ
    for field in ("before", "after", "added"):  # summarise lazily kept arrays, once
        v = getattr(ev, field)
        if isinstance(v, np.ndarray):
            setattr(ev, field, summarize(v, value_limit))
    return Event(kind=ev.kind, call=call_index.get(ev.call) if ev.call is not None else None,
                 cell=ev.cell, line=line, code=code, before=ev.before, after=ev.after, added=ev.added)


# ----- value summaries --------------------------------------------------------------------------------
class Summaries:
    """The **Value** summaries of one report, each array summarised once: a leaf's
    gradient appears on its node and in ``leaves``, and the engine's gradient (after the
    lockstep) usually holds torch's very values, so one pass over a large array serves
    all of them. Arrays (and torch tensors) stay referenced while the report is built,
    so their ids are not reused meanwhile.

    >>> sm = Summaries(value_limit=64)
    >>> a = np.arange(100.0)
    >>> sm(a) is sm(a), sm.engine(a.copy(), None, field=True)["mean"]
    (True, 49.5)
    """

    def __init__(self, value_limit: int) -> None:
        self.value_limit = value_limit
        self.memo: dict = {}

    def __call__(self, arr: Any) -> dict:
        got = self.memo.get(id(arr))
        if got is None:
            got = self.memo[id(arr)] = (arr, summarize(arr, self.value_limit))
        return got[1]

    def _field(self, arr: np.ndarray, summary: Any) -> Any:
        """``values.grad_field``: nested lists when small, else the summary."""
        return grad_field(arr, self.value_limit) if arr.size <= self.value_limit else summary

    def torch(self, t: Any, field: bool = False) -> Any:
        """Summary of torch tensor ``t`` (``field``: as a leaf's ``grad`` entry)."""
        got = self.memo.get(id(t))
        if got is None:
            arr = to_numpy(t)
            got = self.memo[id(t)] = (t, summarize(arr, self.value_limit), arr)
        return self._field(got[2], got[1]) if field else got[1]

    def engine(self, arr: np.ndarray, t: Any, field: bool = False) -> Any:
        """Summary of the engine's gradient ``arr``: torch's (``t``) when they are equal."""
        if t is not None and id(arr) not in self.memo:
            self.torch(t)
            ref = self.memo[id(t)][2]
            if ref.shape == arr.shape and ref.dtype == arr.dtype and identical(ref, arr):
                self.memo[id(arr)] = (arr, self.memo[id(t)][1])
        summary = self(arr)
        return self._field(arr, summary) if field else summary


# ----- checks ---------------------------------------------------------------------------------------------
def _check(node_id: str, what: str, res: tuple) -> Check:
    status, abs_err, rel_err, rtol, atol, detail = res
    return Check(node=node_id, what=what, status=status, max_abs_err=abs_err, max_rel_err=rel_err,
                 rtol=rtol, atol=atol, detail=detail)


def _checks(b: Block, recs: list, ids: dict) -> tuple[list, list, Optional[str]]:
    checks = []
    for r in recs:
        if r.check is not None and r.seq > b.first_seq:
            checks.append(_check(ids[id(r)], "value", r.check))
            checks[-1].dtype = r.tdtype or (dtype_name(r.arr.dtype) if isinstance(r.arr, np.ndarray) else None)
    for c in b.calls[-b.keep_calls:]:
        for r, what, res in c.checks:
            if id(r) in ids:
                checks.append(_check(ids[id(r)], what, res))
    mismatches = [c for c in checks if c.status == "differ"]
    listed = {(c.node, c.what) for c in mismatches}
    first: Optional[tuple] = None
    for seq, r, what, res in sorted(b.differ, key=lambda e: (e[0], e[2] != "value")):
        node_id = ids.get(id(r))
        if node_id is None:
            continue
        if (node_id, what) not in listed and res is not None:
            mismatches.append(_check(node_id, what, res))
            listed.add((node_id, what))
        if first is None or _rank(what, seq) < first[0]:
            first = (_rank(what, seq), node_id)
    return checks, mismatches, first[1] if first else None


def _rank(what: str, seq: int) -> tuple:
    """Forward order, a node's own value/rule failures before leaf-gradient symptoms."""
    return (0 if what in ("value", "gradcheck") else 1, seq)


def _grad_status(report: GradReport) -> None:
    """Fold each node's grad checks into its status (value check already there)."""
    worst: dict[str, str] = {}
    for c in report.checks:
        if c.what in ("grad", "gradcheck") and c.status != "unchecked" and worst.get(c.node) != "differ":
            worst[c.node] = c.status
    for n in report.nodes:
        g = worst.get(n.id)
        if g == "differ":
            n.status = "differ"
        elif g == "agree" and n.status == "unchecked":
            n.status = "agree"
