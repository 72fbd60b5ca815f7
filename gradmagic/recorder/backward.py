"""``backward()`` and ``torch.autograd.grad``: run the engine beside torch and compare.

Part of the ``Recorder`` (see ``mode.py``). Before torch's backward the engine's leaf
gradients are set to torch's; after it the engine runs the same backward (recorded
step by step for the widget's replay when the graph is small) and every gradient it
accumulated is compared with torch's ``.grad``; a difference triggers a search for
the first node whose local rule disagrees with finite differences.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> with trace(session=Session()) as rep:
...     x = torch.tensor([1.0, 2.0], requires_grad=True)
...     (x ** 3).sum().backward()
>>> rep.backward_calls[0].status, [s["kind"] for s in rep.backward_calls[0].steps]
('agree', ['node', 'node', 'accumulate'])
"""
from __future__ import annotations

import weakref
from typing import Any, Optional

import numpy as np
import torch

import gradmagic.engine as ge
from gradmagic.engine import Tensor as ETensor
from gradmagic.engine.autograd import backward as engine_backward
from gradmagic.engine.records import record_backward

from .block import BackRec, FailedCall
from .crosscheck import compare, leaf_gradcheck, only_rounding, tolerances, vjp_check
from .magnitudes import rounding
from .twins import Rec, Session, copy_numpy, to_numpy

_Tensor = torch.Tensor
_BF16 = torch.bfloat16  # mirrored as float32: compared with bfloat16's tolerances
COMPLEX_NOTE = "gradients through complex operations are not mirrored (conjugate Wirtinger rules)"
#: leaves larger than this are left out of ``gradcheck=True``
GRADCHECK_LIMIT = 1_000_000
#: backward calls whose leaves hold more elements than this are not recorded step by step
STEPS_LIMIT = 1 << 18
#: backward steps examined when locating a wrong rule
LOCATE_LIMIT = 2000


class BackwardHandlers:
    """Mixin of ``Recorder``: handlers for ``Tensor.backward`` and ``autograd.grad``."""

    def _pre_backward(self, args: tuple, kwargs: dict) -> Any:
        """Before torch's backward: make the engine's leaf gradients equal torch's."""
        if self.s.hook_logs:
            self._clear_hook_logs()
        b = _backward_args(args, kwargs)
        roots = b.get("tensors")
        roots = [roots] if isinstance(roots, _Tensor) else roots
        if not isinstance(roots, (list, tuple)) or not roots or \
                not all(isinstance(t, _Tensor) for t in roots):
            self.b.note("a backward call whose roots are not a tensor or a list of tensors is "
                        "not mirrored; its gradients are unchecked.")
            return None
        tws = [self.tw(t) for t in roots]
        if any(tw.rec.too_large for tw in tws):
            self.note_too_large()
            return None
        if not any(tw.et.requires_grad for tw in tws):
            zero = self._zero_path_leaves(roots, b.get("inputs"))
            if zero:  # (torch's path has a derivative that is identically zero)
                _sync_leaf_grads(zero)
                return tws, zero, [], {**b, "zero_path": True, "torch_grads": _grad_states(zero)}
        leaves = _graph_leaves(self.s, tws[0].et)
        if len(tws) > 1:  # the union of the roots' leaves, each once
            seen = {id(et) for et, _ in leaves}
            for tw in tws[1:]:
                for et, rec in _graph_leaves(self.s, tw.et):
                    if id(et) not in seen:
                        seen.add(id(et))
                        leaves.append((et, rec))
        _sync_leaf_grads(leaves)
        b["torch_grads"] = _grad_states(leaves)
        bypassed = []
        for t in roots:
            known = {id(rec) for rec, _, _ in bypassed}
            bypassed += [x for x in self._bypassed(t, leaves, b.get("inputs")) if id(x[0]) not in known]
        return tws, leaves, bypassed, b

    def _bypassed(self, root: _Tensor, leaves: list, inputs: Any = None) -> list:
        """Leaves torch's backward reaches but the engine's cannot (only through an opaque
        or unrecorded node): ``(rec, tensor, .grad before)`` each, so that the call still
        records their accumulation (unchecked). Costs nothing while nothing is opaque."""
        if not self.s.opaque or root.grad_fn is None:
            return []
        known = {id(rec) for _, rec in leaves}
        only = None if inputs is None else {id(x) for x in ([inputs] if isinstance(inputs, _Tensor) else inputs)}
        out = []
        for t in _torch_leaves(root):
            if only is not None and id(t) not in only:
                continue  # backward(inputs=[...]) leaves the other leaves alone
            tw = self.s.twins.get(t)
            if tw is None or id(tw.rec) in known or tw.rec.hist is None:
                continue
            g = torch_grad(t)
            out.append((tw.rec, t, None if g is None else copy_numpy(g)))
        return out

    def _zero_path_leaves(self, roots: list, inputs: Any) -> list:
        """The engine's roots are constants, torch's are not: every path torch keeps to a
        leaf has a derivative that is identically zero (``autograd.grad(lin(x).sum(), x,
        create_graph=True)`` stays connected to ``x`` in torch; the engine's graph has no such
        edge). The watched leaves torch's backward reaches (and those ``inputs=`` names), as
        ``(engine tensor, Rec)``; empty when there are none or one is not a plain watched leaf."""
        if not any(t.grad_fn is not None for t in roots):
            return []
        given = None if inputs is None else list([inputs] if isinstance(inputs, _Tensor) else inputs)
        only = None if given is None else {id(x) for x in given}
        out, seen = [], set()
        reached = [t for root in roots if root.grad_fn is not None for t in _torch_leaves(root)]
        for t in reached + (given or []):  # (inputs= names leaves torch may not reach at all)
            if (only is not None and id(t) not in only) or id(t) in seen:
                continue
            seen.add(id(t))
            tw = self.s.twins.get(t) if isinstance(t, _Tensor) else None
            if tw is None or tw.rec.hist is None or tw.rec.tref is None or not tw.et.requires_grad:
                return []
            out.append((tw.et, tw.rec))
        return out

    def _zero_path(self, call: BackRec, src: Any, leaves: list, torch_before: Optional[dict] = None) -> bool:
        """Mirror a backward whose every path has a zero derivative (``_zero_path_leaves``):
        torch either leaves a reached leaf's ``.grad`` as it was (its zero-derivative edges
        carry no tensor) or accumulates exact zeros; the engine does the same. False (the
        caller says unchecked) when torch's gradients changed by anything else."""
        accs, kept = [], []
        for et, rec in leaves:
            g = torch_grad(rec.tref())
            now = None if g is None else to_numpy(g)
            before = None if et.grad is None else et.grad.data.copy()
            if now is None and before is None:
                kept.append(rec)  # nothing reached it, on either side
            elif now is None or (before is None and np.any(now != 0)) or \
                    (before is not None and not np.array_equal(now, before)):
                return False
            else:
                if et.grad is None:
                    et.grad = ETensor(np.zeros(now.shape, now.dtype))
                accs.append(_Acc(et, before))
        self.b.note(f"backward at {self._loc(src)}: every path from its root has a derivative that is "
                    f"identically zero, so no leaf's gradient changed, in torch as in the engine.")
        self._check_accumulations(call, src, accs, before=torch_before)
        res = ("agree", 0.0, 0.0, None, None, "no gradient reached it: every path has a zero derivative")
        for rec in kept:
            call.checks.append((rec, "grad", res))
            self.b.count("agree", rec.seq, rec, "grad", res)
        if call.status == "unchecked" and not accs:
            call.status = "agree"
        return True

    def _backward(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        if pre is None:
            return
        src = self.where()
        tws, leaves, bypassed, b = pre
        root_tw = tws[0]
        recs: list = []
        gradient = b.get("gradient", b.get("grad_tensors"))
        if len(tws) == 1 and isinstance(gradient, (list, tuple)) and len(gradient) == 1:
            gradient = gradient[0]
        grad = self.convert(gradient, recs, src)
        inputs = self.convert(b.get("inputs"), recs, src)
        create = bool(b.get("create_graph") or False)
        retain = b.get("retain_graph")
        call = self._new_call("backward", [tw.rec for tw in tws], src, grad, retain, create)
        roots = tuple(tw.et for tw in tws)
        if b.get("zero_path") and self._zero_path(call, src, leaves, b.get("torch_grads")):
            self.b.seal()
            return
        # small graphs are replayable step by step; big ones keep per-leaf summaries only
        record = sum(et.data.size for et, _ in leaves) <= STEPS_LIMIT
        befores = None if record else [(et, self.snap(et.grad.data) if et.grad is not None else None)
                                        for et, _ in leaves]
        try:
            if record:
                with record_backward() as calls:
                    _engine_backward(roots, grad, retain, create, inputs)
            else:
                _engine_backward(roots, grad, retain, create, inputs)
        except Exception as exc:  # gradmagic's limit, not the user's error: unchecked
            call.status = "unchecked"
            call.note = f"gradmagic could not mirror this backward ({type(exc).__name__}: {exc})"
            self.b.note(f"backward at {self._loc(src)}: {call.note}; its gradients are unchecked.")
            self.b.count("unchecked", root_tw.rec.seq, root_tw.rec, "grad",
                         ("unchecked", None, None, None, None, call.note))
            self.s.hook_seen.clear()
            for et, rec in leaves:  # the engine may have stopped half-way: re-read torch's
                rec.mark_grad_synced(None)
                if rec.tref is not None and rec.tref() is not None and rec.hist is not None:
                    bypassed.append((rec, rec.tref(), None))
            _sync_leaf_grads(leaves)
            self._record_bypassed(call, src, bypassed)
            self.b.seal()
            return
        if record:
            call.steps = calls[0].steps if calls else []
            accs = call.steps
        else:
            accs = [_Acc(et, before) for et, before in befores if et.grad is not None]
            self.b.note("backward steps of large graphs are summarised per leaf, not recorded "
                        "step by step.")
        self._check_accumulations(call, src, accs, roots, b.get("torch_grads"))
        if self.s.hook_logs:
            self._file_hooks(call)
        _sync_leaf_grads(leaves)  # torch may have given leaves one buffer: share it here too
        if self.s.post_hooked:
            self._after_post_hooks(leaves, src)
        if bypassed:
            self._record_bypassed(call, src, bypassed)
        if self.b.gradcheck and record and len(roots) == 1:
            self._gradcheck(call, root_tw.et, grad)
        if call.status == "differ" and record and not self._locate(call):
            self._unexplained(call)
        self.b.seal()

    def _after_post_hooks(self, leaves: list, src: Any) -> None:
        """A post-accumulate-grad hook may have changed its leaf (an optimizer step inside
        backward): re-sync the twins of those leaves from torch, with an update event."""
        for et, rec in leaves:
            if id(rec) not in self.s.post_hooked:
                continue
            t = rec.tref() if rec.tref is not None else None
            tw = self.s.twins.get(t) if t is not None else None
            if tw is not None and tw.version != t._version:
                self._update(t, tw, src)

    def _new_call(self, kind: str, roots: list, src: Any, gradient: Any, retain: Any, create: bool) -> BackRec:
        idx = self.s.calls
        self.s.calls += 1
        g = gradient.data if isinstance(gradient, ETensor) else None
        call = BackRec(idx, kind, roots, src, g, bool(retain if retain is not None else create), create)
        sm = self.b.sampler
        if sm is None:
            self.b.ncalls += 1
        elif sm.depth == 0:  # not through sampling's wrappers
            sm.bypassed()
        call.pos = self.b.ncalls - 1
        self.b.add_call(call)
        self.s.remember_call(call, self.b.finder)
        for r in roots:
            if r is not None and r.seq <= self.b.first_seq:
                self.b.used[id(r)] = r
        return call

    def _backward_raised(self, kind: str, args: tuple, kwargs: dict) -> None:
        """torch refused a backward / autograd.grad: remember where, and from which roots, for
        ``gradmagic.diagnose`` (never raises: the user's exception is what propagates)."""
        try:
            if kind == "backward":
                b = _backward_args(args, kwargs)
                roots, inputs = b.get("tensors"), b.get("inputs")
            else:
                b = _bind(args, kwargs, ("outputs", "inputs"))
                roots, inputs = b.get("outputs"), b.get("inputs")
            self.b.failed = FailedCall("backward" if kind == "backward" else "autograd.grad", self.where(),
                                       self._known_recs(roots), self._known_recs(inputs))
        except Exception as exc:  # the diagnosis's bookkeeping never hides the user's error
            self.b.note(f"gradmagic could not note the failed {kind} call ({type(exc).__name__}: {exc}).")

    def _call_raised(self, spec: Any, args: tuple) -> None:
        """Another torch call raised (an in-place op on a leaf, ``requires_grad`` on an integer
        tensor): remember which, where and on which tensor, for ``gradmagic.diagnose``. Runs
        only when torch raised, so it costs nothing on the normal path."""
        try:
            src = self.where()
            first = next((a for a in args[:2] if isinstance(a, _Tensor)), None)  # (``_make_subclass(cls, t)``)
            recs = self._known_recs(first)
            if first is not None and (first.requires_grad or not first.is_floating_point()):
                recs = recs or [self.tw(first, src).rec]  # a leaf that requires grad, an integer tensor:
                self.b.used.setdefault(id(recs[0]), recs[0])  # drawn for the diagnosis, even if first seen here
            self.b.raised = FailedCall(spec.name, src, recs, [])
        except Exception as exc:  # the diagnosis's bookkeeping never hides the user's error
            self.b.note(f"gradmagic could not note the failed {spec.name} call ({type(exc).__name__}: {exc}).")

    def _known_recs(self, tensors: Any) -> list:
        """The Recs of the torch tensors in ``tensors`` (one tensor or a sequence) that have twins."""
        if tensors is None:
            return []
        out = []
        for t in ([tensors] if isinstance(tensors, _Tensor) else tensors):
            tw = self.s.twins.get(t) if isinstance(t, _Tensor) else None
            if tw is not None:
                out.append(tw.rec)
        return out

    def _check_accumulations(self, call: BackRec, src: Any, steps: list, roots: tuple = (),
                             before: Optional[dict] = None) -> None:
        """Compare every gradient the engine accumulated with torch's .grad (``roots``: the
        engine roots, whose opaque leaves count also when ``inputs=`` skipped them). ``before``
        (``_grad_states``): torch's ``.grad`` of each leaf before the call; one this call left
        as it was (the same tensor, the same version) records no accumulation event, although
        the engine may have added zeros through an edge torch's graph does not have."""
        unchecked = _below_opaque(self.s, steps, roots) if self.s.opaque else ()
        complex_path = _through_complex(steps)
        recorded = bool(steps) and type(steps[0]) is not _Acc  # BackwardSteps: magnitudes known
        mags: dict = {}  # Σ|terms| per gradient, computed on first need (magnitudes.rounding)
        loose: list = []  # the steps' loosest dtype, computed on first need
        statuses = []
        for step in steps:
            if step.kind != "accumulate":
                continue
            rec = self.s.by_tensor.get(id(step.tensor))
            tt = rec.tref() if rec is not None and rec.tref is not None else None
            if tt is None:
                continue
            tg = torch_grad(tt)
            if rec.kind in ("opaque",):
                continue
            tg_np = None if tg is None else to_numpy(tg)
            if tg_np is not None and rec.kind == "leaf":  # the gradient-flow panel's numbers (flow.py)
                self.b.flow.add(call.pos, rec, tg_np)
            if not self.b.check:
                res = ("unchecked", None, None, None, None, "checking is off")
            elif _differentiated_function(rec):
                res = ("unchecked", None, None, None, None, "the retained gradient of a custom Function's "
                       "output after a double backward through it: torch reaches this node also through "
                       "the output its backward saved, the engine through its forward's ops")
            elif id(rec) in self.s.post_hooked:
                res = None  # its post-accumulate-grad hook's replay checks the .grad it saw
            elif tg is None:
                res = ("differ", None, None, None, None, "torch left .grad None")
            elif id(rec) in unchecked:
                res = ("unchecked", None, None, None, None, "an opaque or unrecorded node lies between")
            elif complex_path:
                res = ("unchecked", None, None, None, None, COMPLEX_NOTE)
            else:
                rt, at = self._grad_tolerances(steps, tg_np.dtype, loose)
                eg = step.tensor.grad  # now: a leaf sharing torch's buffer with another (see
                mine = eg.data if eg is not None else step.after  # _sync_leaf_grads) got both adds
                res = compare(mine, tg_np, rt, at, _BF16 if tg.dtype is _BF16 else None)
                if res[0] == "differ" and (res[1] is not None or recorded):  # (±inf/NaN: overflow?)
                    res = rounding(res, mine, tg_np, steps, id(step.tensor), mags, self.s.output_of) if recorded \
                        else _unbounded(res)
                _lock_grad(rec, step.tensor, tg, tg_np, res)
            if tg is not None and tg.requires_grad:
                self.s.grad_owner[tg] = rec
            if res is not None:
                rec.grad_unchecked = res[0] != "agree"  # a .grad with a graph: not a twin to trust
                call.checks.append((rec, "grad", res))
                statuses.append(res[0])
                self.b.count(res[0], rec.seq, rec, "grad", res)
            if rec.hist is not None and not _untouched(before, rec, tg):
                after = self.snap(step.after, True)
                added = after if step.added is step.after else self.snap(step.added, True)
                self.event(rec, "backward", src, call=call.index, before=self.snap(step.before, True),
                           added=added, after=after)
        call.status = _fold(statuses)

    def _grad_tolerances(self, steps: list, dtype: np.dtype, loose: list) -> tuple:
        """(rtol, atol) for a gradient of ``dtype``: the block's, except that a float64
        gradient that flowed through lower-precision ops carries their rounding and gets
        that dtype's defaults (``loose`` caches the steps' loosest dtype)."""
        rt, at = self.b.rtol, self.b.atol
        if dtype == np.float64 and rt is None and at is None:
            if not loose:
                loose.append(_loosest_dtype(steps))
            if loose[0] is not None:
                rt, at = tolerances(loose[0])
        return rt, at

    def _record_bypassed(self, call: BackRec, src: Any, bypassed: list) -> None:
        """torch accumulated into these leaves through a node the engine has no rule for:
        an unchecked check and a ``backward`` event each (the history stays complete)."""
        res = ("unchecked", None, None, None, None, "an opaque or unrecorded node lies between")
        for rec, t, before in bypassed:
            g = torch_grad(t)
            if g is None:
                continue
            rec.grad_unchecked = True
            after = copy_numpy(g)
            if rec.kind == "leaf":
                self.b.flow.add(call.pos, rec, after)
            call.checks.append((rec, "grad", res))
            self.b.count("unchecked", rec.seq, rec, "grad", res)
            added = after if before is None else None
            self.event(rec, "backward", src, call=call.index, before=self.snap(before, True),
                       added=self.snap(added, True), after=self.snap(after, True))
        if call.status == "agree":
            call.status = "unchecked"

    def _gradcheck(self, call: BackRec, root: ETensor, grad: Any) -> None:
        """float64 finite-difference check of each leaf's gradient (``gradcheck=True``)."""
        if root.grad_fn is None:
            return
        seed_grad = grad.data if isinstance(grad, ETensor) else grad
        for step in call.steps:
            if step.kind != "accumulate":
                continue
            rec = self.s.by_tensor.get(id(step.tensor))
            if rec is None or rec.kind != "leaf" or rec.upstream_opaque or step.tensor.data.size > GRADCHECK_LIMIT:
                continue
            res = leaf_gradcheck(root, seed_grad, step.tensor, step.added, dtype=rec.tdtype)
            call.checks.append((rec, "gradcheck", res))
            self.b.count(res[0], rec.seq, rec, "gradcheck", res)

    def _unexplained(self, call: BackRec) -> None:
        """A gradient differs, yet every local rule the backward used was verified against
        finite differences: the difference comes from something the engine did not see (a
        hook on a graph node), not from a rule. Say unchecked, and why, rather than cry wolf."""
        why = ("not explained by any rule: each local rule of this backward agrees with finite "
               "differences, so something gradmagic does not mirror (a hook registered on a "
               "graph node, grad_fn.register_hook/register_prehook, or torch.autocast's lower "
               "precision) changed torch's gradient")
        call.checks = self.b.downgrade(call.checks, why)
        call.status = "unchecked"
        self.b.note(f"backward at {self._loc(call.src)}: gradmagic and torch disagree, but every local "
                    f"rule checks out against finite differences; the gradients are marked unchecked "
                    f"(something outside the recorded graph, such as a hook on a graph node or "
                    f"torch.autocast's lower precision, changed torch's result).")

    def _locate(self, call: BackRec) -> bool:
        """A gradient differs: check each node's local rule (finite differences) and
        report the first failing node in forward order. True when the difference is
        explained: a failing rule was found, a custom Function's backward differs, or some
        node could not be verified (then it may be the cause: the differ stands)."""
        found = []
        verified = len(call.steps) <= LOCATE_LIMIT
        for step in call.steps[:LOCATE_LIMIT]:
            if step.kind != "node":
                continue
            rec = self.s.by_node.get(id(step.node))
            if rec is None:
                verified = False
                continue
            try:
                res = vjp_check(step.node, step.grad_output, step.input_grads, dtype=rec.tdtype)
            except Exception:
                verified = False
                continue
            if res is None:
                verified = verified and all(g is None for g in step.input_grads)
            elif only_rounding(res):  # a cast: its rule is not what made the gradients differ
                continue
            elif res[0] == "differ":
                found.append((rec.seq, rec, res, step.node.name))
            elif res[0] != "agree":
                verified = False
        if found:
            seq, rec, res, label = min(found, key=lambda f: f[0])
            call.checks.append((rec, "gradcheck", res))
            self.b.count("differ", seq, rec, "gradcheck", res)
            self.b.note(f"the first node whose local gradient rule disagrees with finite differences "
                        f"is {label} ({rec.torch_op}).")
        function_differs = any(res is not None and res[0] == "differ" and rec is not None
                               and rec.op == "subgraph" for rec, _, res in call.checks)
        return bool(found) or function_differs or not verified

    def _autograd_grad(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        b = _bind(args, kwargs, ("outputs", "inputs", "grad_outputs", "retain_graph", "create_graph",
                                 "only_inputs", "allow_unused", "is_grads_batched", "materialize_grads"))
        src = self.where()
        if b.get("is_grads_batched"):
            self.b.note("torch.autograd.grad(is_grads_batched=True) is not mirrored; its results are unchecked.")
            self._opaque(spec, (), {}, out, src)
            return
        orecs: list = []
        outs = self.convert(_as_list(b["outputs"]), orecs, src)
        irecs: list = []
        ins = self.convert(_as_list(b["inputs"]), irecs, src)
        gout = b.get("grad_outputs")
        grecs: list = []
        gout = self.convert(list(gout) if isinstance(gout, (list, tuple)) else gout, grecs, src)
        if self.s.stand_ins and any(r is not None and r.too_large for r in (*orecs, *irecs, *grecs)):
            self.note_too_large()
            return
        create = bool(b.get("create_graph") or False)
        retain = b.get("retain_graph")
        call = self._new_call("autograd.grad", orecs, src, None, retain, create)
        try:
            with record_backward() as calls:
                # allow_unused: an input reached only through an opaque node has no engine
                # gradient; torch's is then unchecked, not an engine failure
                res = ge.grad(outs, ins, grad_outputs=gout, retain_graph=retain, create_graph=create,
                              allow_unused=True, materialize_grads=bool(b.get("materialize_grads")))
        except Exception as exc:  # gradmagic's limit, not the user's error: unchecked
            call.status = "unchecked"
            call.note = f"gradmagic could not mirror this autograd.grad ({type(exc).__name__}: {exc})"
            self.b.note(f"autograd.grad at {self._loc(src)}: {call.note}; its results are unchecked.")
            root = orecs[0] if orecs else None
            self.s.hook_seen.clear()
            self.b.count("unchecked", root.seq if root is not None else self.s.seq, root, "grad",
                         ("unchecked", None, None, None, None, call.note))
            for t, irec in zip(out, irecs):
                if isinstance(t, _Tensor):
                    self._opaque_result(t, spec, [*orecs, irec], src)
            self.b.seal()
            return
        call.steps = calls[0].steps if calls else []
        complex_path = _through_complex(call.steps)
        statuses = []
        loose: list = []
        mags: dict = {}
        unchecked = _below_opaque(self.s, [], outs) if self.s.opaque else ()
        for t, e, ein, irec in zip(out, res, ins, irecs):
            if not isinstance(t, _Tensor):
                continue
            if e is None and not self.s.opaque:
                e = ETensor(np.zeros(t.shape, to_numpy(t).dtype))  # compared: torch's is non-zero
            if e is None or irec.upstream_opaque or id(irec) in unchecked:
                # torch's path runs through a node the engine has no rule for
                r = ("unchecked", None, None, None, None, "an opaque or unrecorded node lies between")
                call.checks.append((irec, "grad", r))
                statuses.append(r[0])
                self.b.count(r[0], irec.seq, irec, "grad", r)
                self._opaque_result(t, spec, [*orecs, irec], src)
                continue
            if complex_path:
                r = ("unchecked", None, None, None, None, COMPLEX_NOTE)
            else:
                ref = to_numpy(t)
                rt, at = self._grad_tolerances(call.steps, ref.dtype, loose)
                r = compare(e.data, ref, rt, at, _BF16 if t.dtype is _BF16 else None)
                if r[0] == "differ" and call.steps:
                    r = rounding(r, e.data, ref, call.steps, id(ein), mags, self.s.output_of)
            call.checks.append((irec, "grad", r))
            call.results.append((irec, e.data))
            statuses.append(r[0])
            self.b.count(r[0], irec.seq, irec, "grad", r)
            rec = self.new_op("op", e, e.data, spec, [*orecs, irec], src)
            rec.status, rec.err, rec.check = r[0], r[1], r
            if e.data.shape == t.shape and e.data.dtype == to_numpy(t).dtype:  # lockstep, as for values
                if e.data.flags.writeable:
                    np.copyto(e.data, to_numpy(t))
                else:  # (a broadcast view, as x.sum()'s gradient): torch's values in an array of its own
                    e.data = rec.arr = to_numpy(t).copy()
            self.s.set_twin(t, e, rec)
        call.status = _fold(statuses)
        if self.s.hook_logs:
            self._file_hooks(call)
        self.b.seal()

    def _opaque_result(self, t: _Tensor, spec: Any, recs: list, src: Any) -> None:
        """A result the engine could not compute: torch's value, drawn opaque (unchecked)."""
        et = ETensor(copy_numpy(t))
        if t.requires_grad and et.data.dtype.kind in "fc":
            et.requires_grad_(True)
        rec = self.s.new_rec("opaque", et, et.data, src, self.b.cell, torch_op=spec.name, inputs=tuple(recs))
        rec.upstream_opaque = True
        self.s.opaque += 1
        self.s.watch(rec, t)
        self.b.add_rec(rec)
        self.b.count("unchecked", rec.seq, rec, "value", None)
        self.s.set_twin(t, et, rec)

    @staticmethod
    def _loc(src: Any) -> str:
        return f"line {src[1]}" if src else "an unknown line"


#: an unrecorded call's gradient off by less than this many times the norm-wise tolerance may
#: be rounding: without its steps, the size of the terms summed into it is unknown
UNBOUNDED_MARGIN = 100


def _unbounded(res: tuple) -> tuple:
    """The check of a gradient from a call too large to record step by step (``STEPS_LIMIT``):
    a difference of rounding size (at most ``UNBOUNDED_MARGIN`` × rtol, relative to the
    gradient's largest element) is "unchecked", never "differ" — float32 sums of millions of
    terms, or a batch norm over two values per channel, round that much in torch itself; a
    wrong rule (a sign, a factor, a transposition) is off by far more and still differs.

    >>> _unbounded(("differ", 2e-4, 2e-4, 1e-4, 1e-6, None))[0]
    'unchecked'
    >>> _unbounded(("differ", 0.5, 0.5, 1e-4, 1e-6, None))[0]
    'differ'
    """
    rel, rtol = res[2], res[3]
    if res[5] or rel is None or rtol is None or not rel <= UNBOUNDED_MARGIN * rtol:
        return res  # (a shape or dtype difference is never rounding)
    return ("unchecked", res[1], res[2], res[3], res[4],
            f"off by {rel:.2g} of its largest element, more than the tolerance ({rtol:g}) but within "
            f"what rounding can do here: this backward was too large to record step by step, so the "
            f"size of the terms summed into the gradient (which tells rounding from a wrong rule) is unknown")


def _grad_states(leaves: list) -> dict:
    """id(Rec) -> (weakref to torch's ``.grad``, its ``_version``) of each leaf that has one."""
    out = {}
    for _, rec in leaves:
        tt = rec.tref() if rec.tref is not None else None
        g = torch_grad(tt) if tt is not None else None
        if g is not None:
            out[id(rec)] = (weakref.ref(g), g._version)
    return out


def _untouched(before: Optional[dict], rec: Rec, g: Optional[_Tensor]) -> bool:
    """Is torch's ``.grad`` ``g`` of leaf ``rec`` the one it had before the call, unchanged?"""
    state = before.get(id(rec)) if before else None
    return state is not None and g is not None and state[0]() is g and g._version == state[1]


def _sync_leaf_grads(leaves: list) -> None:
    """Make each leaf's engine ``.grad`` equal torch's before a backward (no copy while
    they are known to be equal). Leaves whose torch gradients share one memory region —
    torch hands 0-d leaves views of one buffer after ``(a.sum() + b.sum()).backward()`` —
    share one engine gradient too, so the coming accumulations add up as torch's do."""
    shared: dict = {}
    for et, rec in leaves:
        tt = rec.tref() if rec.tref is not None else None
        if tt is None:
            continue
        g = torch_grad(tt)
        if g is None:
            et.grad = None
            continue
        if g.requires_grad and et.grad is not None and et.grad.grad_fn is not None:
            continue  # a gradient with a graph (create_graph=True): the engine's mirrors torch's
        key = (g.data_ptr(), g.dtype, tuple(g.shape), g.stride()) if g.numel() else None
        same = shared.get(key) if key is not None else None
        if same is not None:
            et.grad = same
            continue
        if et.grad is None or not rec.grad_synced(g):
            et.grad = ETensor(copy_numpy(g))
            rec.mark_grad_synced(g)
        if key is not None:
            shared[key] = et.grad


def _engine_backward(roots: tuple, grad: Any, retain: Any, create: bool, inputs: Any) -> None:
    """The engine's ``t.backward(...)`` (one root) or ``autograd.backward(roots, ...)``."""
    if len(roots) == 1:
        roots[0].backward(gradient=grad, retain_graph=retain, create_graph=create, inputs=inputs)
    else:
        engine_backward(list(roots), grad_tensors=grad, retain_graph=retain, create_graph=create,
                        inputs=inputs)


def _through_complex(steps: list) -> bool:
    """True when a gradient of this backward passed through complex values."""
    for st in steps:
        arr = st.grad_output if st.kind == "node" else st.after
        if arr is not None and arr.dtype.kind == "c":  # steps hold ndarrays (snapshots)
            return True
    return False


class _Acc:
    """A leaf's accumulation when the backward was not recorded step by step."""

    __slots__ = ("kind", "tensor", "before", "added", "after")

    def __init__(self, et: ETensor, before: Any) -> None:
        self.kind = "accumulate"
        self.tensor = et
        self.before = before
        self.after = et.grad.data
        self.added = self.after if before is None else None


def _as_list(x: Any) -> list:
    return [x] if isinstance(x, _Tensor) else list(x)


def _bind(args: tuple, kwargs: dict, names: tuple) -> dict:
    """Positional + keyword arguments as a dict by parameter name."""
    out = dict(zip(names, args))
    out.update(kwargs)
    return out


def _backward_args(args: tuple, kwargs: dict) -> dict:
    """Arguments of ``Tensor.backward(self, gradient, ...)`` or of
    ``torch.autograd.backward(tensors, grad_tensors, ...)`` by name (root: ``tensors``)."""
    if not kwargs and len(args) == 1 and isinstance(args[0], _Tensor):
        return {"tensors": args[0]}  # the common ``loss.backward()``
    if "tensors" in kwargs or (args and not isinstance(args[0], _Tensor)):
        return _bind(args, kwargs, ("tensors", "grad_tensors", "retain_graph", "create_graph",
                                    "grad_variables", "inputs"))
    out = _bind(args[1:], kwargs, ("gradient", "retain_graph", "create_graph", "inputs"))
    out["tensors"] = args[0] if args else kwargs.get("self")
    return out


def _lock_grad(rec: Any, et: ETensor, tg: _Tensor, tg_np: np.ndarray, res: tuple) -> None:
    """After a check: continue from torch's exact ``.grad`` (lockstep, as for values),
    and remember that the two are equal so the next backward needn't copy it."""
    eg = et.grad
    if res[0] != "agree" or eg is None or eg.requires_grad:
        rec.mark_grad_synced(None)
        if res[0] == "agree" and eg is not None and res[1] and eg.data.shape == tg_np.shape \
                and eg.data.dtype == tg_np.dtype:  # a .grad with a graph: its value in lockstep too
            if eg.data.flags.writeable:
                np.copyto(eg.data, tg_np)
            else:  # (a broadcast view): torch's values in an array of its own
                eg.data = tg_np.copy()
        return
    if res[1] != 0.0 or eg.data.dtype != tg_np.dtype:
        if eg.data.shape != tg_np.shape or eg.data.dtype != tg_np.dtype or not eg.data.flags.writeable:
            rec.mark_grad_synced(None)
            return
        np.copyto(eg.data, tg_np)
    rec.mark_grad_synced(tg)


def _differentiated_function(rec: Any) -> bool:
    """``rec`` is the output of a custom Function whose VJP was built with create_graph."""
    node = rec.enode
    return node is not None and node.opdef.name == "subgraph" and node.params["body"].differentiated


def _fold(statuses: list) -> str:
    if "differ" in statuses:
        return "differ"
    if statuses and all(s == "agree" for s in statuses):
        return "agree"
    return "unchecked"


def _graph_leaves(s: Session, root: ETensor) -> list:
    """(engine tensor, Rec) of every leaf and retained tensor reachable from ``root``."""
    out = []
    fn = root.grad_fn
    if fn is None:
        rec = s.by_tensor.get(id(root))
        return [(root, rec)] if rec is not None and root.requires_grad else []
    stack, seen = [fn], {id(fn)}
    by_tensor, by_node = s.by_tensor, s.by_node
    while stack:
        node = stack.pop()
        r = by_node.get(id(node))
        if r is not None and r.retained and r.et is not None and r.tref is not None:
            out.append((r.et, r))
        for p in node.parents:
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            if type(p) is ETensor:
                rec = by_tensor.get(id(p))
                if rec is not None:
                    out.append((p, rec))
            else:
                stack.append(p)
    return out


def _loosest_dtype(steps: list) -> Any:
    """The float dtype with the widest tolerance among a backward's cotangents (None when
    they are all float64 or absent): gradients that passed through it carry its rounding."""
    dtypes = {getattr(step.grad_output, "dtype", None) for step in steps if step.kind == "node"}
    names = [d.name for d in dtypes if d is not None and d.kind == "f" and d != np.float64]
    return max(names, key=lambda n: tolerances(n)[0]) if names else None


def _torch_leaves(root: _Tensor) -> list:
    """The leaf tensors torch's backward from ``root`` accumulates into (its graph's
    ``AccumulateGrad`` nodes)."""
    out, stack, seen = [], [root.grad_fn], {id(root.grad_fn)}
    while stack:
        node = stack.pop()
        var = getattr(node, "variable", None)
        if var is not None:
            out.append(var)
        for nxt, _ in node.next_functions:
            if nxt is not None and id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append(nxt)
    return out


def _below_opaque(s: Session, steps: list, roots: tuple = ()) -> set:
    """ids of Recs whose torch gradient also flows through an opaque/unrecorded node.

    The engine stops at an opaque node (a leaf on its side), so every leaf upstream
    of one that the backward reached (an ``accumulate`` step, or for ``autograd.grad``
    a leaf of the engine graph of ``roots``) gets a gradient the engine cannot know.
    """
    starts = []
    for step in steps:
        if step.kind == "accumulate":
            rec = s.by_tensor.get(id(step.tensor))
            if rec is not None and rec.kind == "opaque":
                starts.append(rec)
    for root in roots:
        if isinstance(root, ETensor):
            starts.extend(rec for _, rec in _graph_leaves(s, root) if rec is not None and rec.kind == "opaque")
    out: set = set()
    stack = list(starts)
    while stack:
        rec = stack.pop()
        for r in rec.inputs:
            if r is not None and id(r) not in out:
                out.add(id(r))
                stack.append(r)
    for rec in starts:  # an unrecorded node (an in-place write through a view) has no inputs:
        t = rec.tref() if rec.tref is not None else None  # torch's graph below it says which
        if t is not None and t.grad_fn is not None:         # leaves it feeds
            for leaf in _torch_leaves(t):
                tw = s.twins.get(leaf)
                if tw is not None:
                    out.add(id(tw.rec))
    return out


def torch_grad(t: Any) -> Any:
    """``t.grad`` read without torch's "non-leaf .grad accessed" warning: gradmagic's own
    look must not print into the user's cell (a non-leaf without retain_grad has None).

    >>> import torch
    >>> x = torch.ones(2, requires_grad=True)
    >>> torch_grad(x * 2) is None
    True
    """
    if not t.is_leaf and not t.retains_grad:
        return None
    return t.grad

