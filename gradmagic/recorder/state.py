"""In-place changes, ``.grad``/``.data`` access, ``requires_grad`` and optimizer steps.

Part of the ``Recorder`` (see ``mode.py``): these handlers keep the twins in step
when torch changes a tensor in place, and write the leaf events (``zero_``,
``set_none``, ``set``, ``update``) of the accumulation history.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> with trace(session=Session()) as rep:
...     w = torch.ones(2, requires_grad=True)
...     (w * w).sum().backward()
...     with torch.no_grad():
...         w -= 0.5 * w.grad
...     _ = w.grad.zero_()
>>> [e.kind for e in rep.leaf("w").events]
['created', 'backward', 'update', 'zero_']
"""
from __future__ import annotations

import math
import weakref
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import torch

import gradmagic.engine as ge
from gradmagic.engine import Tensor as ETensor
from gradmagic.engine._state import STATE

from .block import NoneRead
from .history import LAZY_VALUE_LIMIT
from .labels import note_data_write
from .naming import called_by_torch
from .twins import Twin, copy_numpy, numpy_dtype
from .values import zeros_summary

_Tensor = torch.Tensor
#: the Recs of a write through a view: torch's rebased base and the view read from it
_COPY_SLICES = SimpleNamespace(op="index_put", name="CopySlices")
_VIEW_OF_BASE = SimpleNamespace(op="getitem", name="view of CopySlices")


def _engine_op(grad: bool, name: str, *inputs: Any, **params: Any) -> ETensor:
    """``ge.apply(name, ...)`` with the engine's grad mode set to ``grad``."""
    prev = STATE.grad_enabled
    STATE.grad_enabled = grad
    try:
        return ge.apply(name, *inputs, **params)
    finally:
        STATE.grad_enabled = prev


def _writes_back_own_view(spec: Any, t: _Tensor, args: tuple) -> bool:
    """``t[i] = v`` where ``v`` is a view of ``t`` itself: Python's closing assignment of
    ``t[i] op= x``, after the in-place op already wrote through the view."""
    value = args[2] if len(args) > 2 else None
    return spec.name == "Tensor.__setitem__" and isinstance(value, _Tensor) and \
        value._base is not None and value._base is (t._base if t._base is not None else t)


def _data_written(t: _Tensor, tw: Twin) -> None:
    """``t.data`` of a computed ``t`` was written in place: torch's values saved for backward
    share that memory and its version did not move, so the twin takes the new values in place
    (the engine's saved values too: its backward then computes what torch's does, and
    ``gradmagic.diagnose.data_write`` says why); its node keeps the value it was computed with."""
    data = tw.et.data
    if tw.rec.too_large or not isinstance(data, np.ndarray) or not data.flags.writeable:
        return
    new = copy_numpy(t)
    if new.shape != data.shape or new.dtype != data.dtype:
        return
    if tw.rec.arr is data:
        tw.rec.arr = data.copy()
    np.copyto(data, new)


def view_index(view: _Tensor, base: _Tensor) -> Optional[tuple]:
    """The index (one integer array per dim of ``base``, shaped like ``view``) of the
    elements of ``base`` that the torch view ``view`` shows, from both tensors' strides
    (any dense layout of ``base``); None when they do not map one to one.

    >>> b = torch.arange(6.0).reshape(2, 3)
    >>> [a.tolist() for a in view_index(b[:, 1], b)]
    [[0, 1], [1, 1]]
    """
    offset = base.storage_offset()
    at = _storage_positions(view, offset)
    n = base.numel()
    if not base.is_contiguous():  # storage position -> base element, through base's strides
        where = _storage_positions(base, offset).reshape(-1)
        span = int(where.max()) + 1 if n else 0
        element = np.full(span, -1, np.intp)
        element[where] = np.arange(n, dtype=np.intp)
        if (element[where] != np.arange(n)).any():  # overlapping memory: no one-to-one map
            return None
        if at.size and (at.min() < 0 or at.max() >= span):
            return None
        at = element[at]
    if at.size and (at.min() < 0 or at.max() >= n):
        return None
    return np.unravel_index(at, tuple(base.shape))


def _storage_positions(t: _Tensor, offset: int) -> np.ndarray:
    """Each element's position in ``t``'s storage, less ``offset`` (shaped like ``t``)."""
    pos = np.full(tuple(t.shape), t.storage_offset() - offset, np.intp)
    for d, (n, stride) in enumerate(zip(t.shape, t.stride())):
        pos = pos + (np.arange(n, dtype=np.intp) * stride).reshape((1,) * d + (n,) + (1,) * (t.ndim - d - 1))
    return pos


class StateHandlers:
    """Mixin of ``Recorder``: handlers for in-place and autograd-state calls."""

    # ----- kinds: in-place ---------------------------------------------------------------
    def _inplace(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        t = args[0] if args else _first_tensor(args, kwargs)
        if not isinstance(t, _Tensor):
            return
        src = self.where()
        if self._grad_tensor_changed(t, spec, src) or self._alias_changed(t, spec, src):
            return
        if not torch.is_grad_enabled() and _writes_back_own_view(spec, t, args):
            tw = self.s.twins.get(t)  # ``w[0] -= g``'s closing ``w[0] = view``: nothing new
            if tw is not None and tw.version == pre:
                tw.version = t._version
            return
        base = t._base
        if base is not None and not torch.is_grad_enabled():
            tw_b = self.s.twins.get(base)
            if tw_b is not None and tw_b.rec.kind == "leaf" and base.grad_fn is None:
                # ``w[0] -= lr * g`` under no_grad: an update of the leaf w (torch forbids
                # even reading such a view's grad_fn afterwards)
                self._leaf_resynced(base, tw_b, src)
                return
        tw = self.s.twins.get(t)
        if tw is None or (pre is not None and tw.version != pre) or tw.rec.too_large:
            self.tw(t, src)  # unseen or changed behind our back: take torch's value as is
            return
        tw.version = t._version  # the twin was current before this call; mirror it now
        if t.is_leaf and t.requires_grad:
            self._leaf_update(t, tw, src, spec, args, kwargs)
            return
        old_rec = tw.rec
        rebased = self._rebased_base(t, pre)
        if rebased is not None:  # through a view: a private copy (the engine's view of the
            tw.et.data = tw.et.data.copy()  # base twin may share its memory)
        elif old_rec.arr is tw.et.data:
            old_rec.arr = tw.et.data.copy()  # keep the value the earlier node had
        try:
            _, recs = self.run_engine(spec, args, kwargs, src)
        except Exception as exc:
            self._resync_opaque(t, spec, src, exc)
            return
        rec = self.new_op("op", tw.et, tw.et.data, spec, recs, src)
        self.check_value(rec, tw.et.data, t)
        tw.rec = rec
        tw.version = t._version
        if rebased is not None:
            self._copy_slices(t, tw, *rebased, src)

    def _rebased_base(self, view: _Tensor, pre: Any) -> Optional[tuple]:
        """``(base, its twin, the view's index into it)`` when an in-place op through the
        torch view ``view`` made torch rebase the base's history (``CopySlices``) and the
        base's twin was current before it; else None (the base re-syncs on its next use)."""
        base = view._base
        if base is None or base.grad_fn is None or not torch.is_grad_enabled():
            return None
        tw_b = self.s.twins.get(base)
        if tw_b is None or tw_b.rec.too_large or (pre is not None and tw_b.version != pre):
            return None
        index = view_index(view, base)
        return None if index is None else (base, tw_b, index)

    def _view_of_current_base(self, view: _Tensor, src: Any) -> Optional[Twin]:
        """A torch view whose twin went stale because its base was written through another
        view: read it again from the base's (current) twin, so gradients through it keep
        flowing into the base's history. None when that is not possible."""
        base = view._base
        tw_b = self.s.twins.get(base)
        if tw_b is None or tw_b.version != base._version or tw_b.rec.too_large:
            return None
        index = view_index(view, base)
        if index is None:
            return None
        return self._read_view(view, tw_b.et, tw_b.rec, index, src, bool(view.requires_grad))

    def _copy_slices(self, view: _Tensor, tw_v: Twin, base: _Tensor, tw_b: Twin, index: tuple,
                     src: Any) -> None:
        """torch's ``CopySlices``: the base's new value is its old one with the view's new
        value written at ``index`` (gradients: the rest to the old base, the slice to the
        in-place op), and the view reads from that new base."""
        new_base = _engine_op(True, "index_put", tw_b.et, tw_v.et, index=index)
        rec_b = self.new_op("op", new_base, new_base.data, _COPY_SLICES, [tw_b.rec, tw_v.rec], src)
        self.check_value(rec_b, new_base.data, base)
        self.s.set_twin(base, new_base, rec_b)
        self._read_view(view, new_base, rec_b, index, src, True)

    def _read_view(self, view: _Tensor, base_et: ETensor, base_rec: Any, index: tuple, src: Any,
                   grad: bool) -> Twin:
        """The twin of ``view`` as the elements ``index`` of the base's twin, checked."""
        new_view = _engine_op(grad, "getitem", base_et, index=index)
        rec = self.new_op("op", new_view, new_view.data, _VIEW_OF_BASE, [base_rec], src)
        self.check_value(rec, new_view.data, view)
        return self.s.set_twin(view, new_view, rec)

    def _inplace_unknown(self, spec: Any, t: _Tensor) -> None:
        """An in-place call without a rule: re-sync (and an update event for a leaf)."""
        src = self.where()
        if self._grad_tensor_changed(t, spec, src) or self._alias_changed(t, spec, src):
            return
        tw = self.s.twins.get(t)
        if tw is None:
            return  # never used yet: its twin is made, with this value, on first use
        if t.is_leaf:  # (a leaf that requires grad changed without torch's in-place error: the
            # call wrote it under no_grad itself, as ``nn.init.normal_`` does: an update)
            self._leaf_resynced(t, tw, src)
        else:
            self._resync_opaque(t, spec, src, None)

    def _leaf_resynced(self, t: _Tensor, tw: Twin, src: Any) -> None:
        """torch changed the leaf ``t`` (not through a mirrored op): copy its value into
        the twin, with an ``update`` event."""
        before = tw.et.data.copy() if tw.rec.hist is not None else None
        self.s.resync(t, tw, src, self.b.cell)
        self.event(tw.rec, "update", src, before=self.snap(before), after=self.snap(tw.et.data))

    def _resync_opaque(self, t: _Tensor, spec: Any, src: Any, exc: Optional[BaseException]) -> None:
        """Replace the twin of a changed non-leaf by an opaque copy of torch's value."""
        tw = self.s.twins.get(t)
        prev = tw.rec if tw is not None else None
        self._opaque(spec, (), {}, t, src, exc)
        new = self.s.twins.get(t)
        if new is not None and prev is not None and new.rec is not prev:
            new.rec.inputs = (prev,)

    def _leaf_update(self, t: _Tensor, tw: Twin, src: Any, spec: Any, args: tuple, kwargs: dict) -> None:
        """``p -= lr * p.grad`` under no_grad: check the engine's update, then re-sync."""
        rec = tw.rec
        before = self.snap(tw.et.data)  # before the engine changes it in place
        synced = False
        if spec.adapt is not None and self.b.check:
            try:
                self.run_engine(spec, args, kwargs, src)
            except Exception as exc:
                self.b.note(f"{spec.name}: the engine could not recompute this update ({exc}).")
            else:
                synced = self.check_value(rec, tw.et.data, t, detail=f"update by {spec.name}")
        if synced:  # the engine's value is torch's already: no copy of a (maybe large) leaf
            tw.version = t._version
            rec.arr = tw.et.data
        else:
            self.s.resync(t, tw, src, self.b.cell)
        self.event(rec, "update", src, before=before, after=self.snap(tw.et.data))

    def _grad_tensor_changed(self, t: _Tensor, spec: Any, src: Any) -> bool:
        """``x.grad.zero_()`` and friends: an event on x, nothing recomputed."""
        owner = self.s.grad_owner.get(t)
        if owner is None:
            return False
        if owner.too_large:
            return True  # a stand-in has no gradient to follow
        zeroed = spec.name == "Tensor.zero_"
        kind = "zero_" if zeroed else "set"
        tw_owner = owner.et
        eg = tw_owner.grad if tw_owner is not None else None
        before = self.snap(eg.data) if eg is not None else None
        shape, dtype = tuple(t.shape), numpy_dtype(t.dtype)
        new = None if zeroed else copy_numpy(t)  # zero_ needs no copy of torch's memory
        if eg is not None and eg.data.shape == shape and eg.data.dtype == dtype and \
                eg.data.flags.writeable and not eg.requires_grad:
            if zeroed:  # in place: a leaf sharing this .grad (see
                eg.data.fill(0)  # backward._sync_leaf_grads) follows, as in torch
            else:
                np.copyto(eg.data, new)
            owner.mark_grad_synced(t)
        elif eg is not None and eg.requires_grad and eg.data.shape == shape and eg.data.dtype == dtype:
            # a .grad with a graph edited through .data: new values, the same graph (as torch)
            eg.data = np.zeros(shape, dtype) if zeroed else new.copy()
            owner.mark_grad_synced(None)
        elif tw_owner is not None:  # the user edited .grad directly: the engine's .grad follows
            tw_owner.grad = ETensor(np.zeros(shape, dtype) if zeroed else new)
            owner.mark_grad_synced(t)
        if not zeroed:
            after = self.snap(new)  # (a copy when small: ``new`` may be the engine's .grad now)
        elif math.prod(shape) > LAZY_VALUE_LIMIT:
            after = zeros_summary(shape, dtype, self.s.value_limit)
        else:
            after = np.zeros(shape, dtype)
        self.event(owner, kind, src, before=before, after=after)
        return True

    def _alias_changed(self, t: _Tensor, spec: Any, src: Any) -> bool:
        """A write through ``x.data``: x changed; re-sync it (an update for a leaf). A
        write through ``x.grad.data`` is an edit of x's gradient (``zero_``/``set``)."""
        ref = self.s.data_alias.get(t)
        if ref is None:
            return False
        base = ref()
        if base is not None and self.s.grad_owner.get(base) is not None:
            self._grad_tensor_changed(base, spec, src)
        if base is not None:
            tw = self.s.twins.get(base)
            if tw is not None:
                if self.s.grad_owner.get(base) is None:  # autograd never sees it (gradmagic.diagnose)
                    note_data_write(self.s, tw.rec, base, src, self.b.cell)
                before = tw.et.data.copy() if tw.rec.hist is not None else None
                if base.grad_fn is None:  # (autograd does not see a write through .data)
                    tw = self.s.resync(base, tw, src, self.b.cell, tracked=False)
                else:
                    _data_written(base, tw)
                if before is not None:
                    self.event(tw.rec, "update", src, before=self.snap(before), after=self.snap(tw.et.data))
                self.s.data_written[base] = self.s.seq  # (its views read it again: ``tw``)
        return True

    # ----- kinds: autograd state -------------------------------------------------------------
    def _grad_get(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        if not isinstance(out, _Tensor):
            if out is None and not self.in_zero_grad and isinstance(args[0], _Tensor):
                self._grad_none_read(args[0])  # why is it None? (gradmagic.diagnose)
            return
        owner_t = args[0]
        otw = self.tw(owner_t)
        self.s.grad_owner[out] = otw.rec
        if self.in_zero_grad:
            return  # optimizer.zero_grad() reading .grad: only its zero_/None events matter
        tw = self.s.twins.get(out)
        if tw is not None and tw.version == out._version:
            return
        src = self.where()
        eg = otw.et.grad
        if out.requires_grad and otw.rec.grad_unchecked:  # its graph runs (partly) through
            self._opaque_result(out, spec, [otw.rec], src)  # what the engine does not mirror
            self.b.note("a .grad built with create_graph through calls gradmagic does not mirror "
                        "was used again: what is computed from it is unchecked.")
            return
        if out.requires_grad and eg is not None and eg.grad_fn is not None:
            rec = self.new_op("op", eg, eg.data, spec, [], src)  # x.grad built with create_graph
            self.check_value(rec, eg.data, out)
        elif self.s.too_large(out):
            self._stand_in(out, src, spec.name)
            return
        else:
            et = ETensor(copy_numpy(out))
            rec = self.s.new_rec("constant", et, et.data, src, self.b.cell, torch_op=spec.name)
            self.b.add_rec(rec)
            eg = et
        rec.grad_owner = otw.rec
        self.s.set_twin(out, eg, rec)

    def _grad_none_read(self, t: _Tensor) -> None:
        """Remember a ``t.grad`` read of the user's code that gave None, with ``t``'s autograd
        state now (reads by torch itself, as ``Module.zero_grad`` makes, are not the user's)."""
        if len(self.b.none_reads) >= 20 or called_by_torch(2):
            return
        try:
            alias = self.s.data_alias.get(t)
            base = alias() if alias is not None else None
            base_tw = self.s.twins.get(base) if base is not None else None
            self.b.none_reads.append(NoneRead(self.tw(t).rec, self.where(), t.is_leaf, t.requires_grad,
                                              t.retains_grad, base_tw.rec if base_tw is not None else None,
                                              self.s.seq))
        except Exception as exc:  # the diagnosis's bookkeeping never stops the recording
            self.b.note(f"gradmagic could not note a None .grad read ({type(exc).__name__}: {exc}).")

    def _grad_set(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        t, value = args[0], args[1] if len(args) > 1 else None
        tw = self.s.twins.get(t)
        if tw is None or tw.rec.too_large:
            return
        src = self.where()
        old = tw.et.grad.data if tw.et.grad is not None else None
        if value is None:
            tw.et.grad = None
            self.event(tw.rec, "set_none", src, before=self.snap(old))
        else:
            tw.et.grad = ETensor(copy_numpy(value))
            tw.rec.mark_grad_synced(value)
            self.s.grad_owner[value] = tw.rec
            self.event(tw.rec, "set", src, before=self.snap(old), after=self.snap(tw.et.grad.data))

    def _data_get(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        if isinstance(out, _Tensor) and isinstance(args[0], _Tensor):
            self.s.data_alias[out] = weakref.ref(args[0])

    def _data_set(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        value = args[1] if len(args) > 1 else None
        ref = self.s.data_alias.get(value) if isinstance(value, _Tensor) else None
        if ref is not None and ref() is args[0]:
            return  # ``w.data -= ...`` assigns back the alias its in-place op already updated
        self._alias_changed_base(args[0])

    def _alias_changed_base(self, base: _Tensor) -> None:
        tw = self.s.twins.get(base)
        if tw is None:
            return
        src = self.where()
        note_data_write(self.s, tw.rec, base, src, self.b.cell, rebind=True)  # (gradmagic.diagnose)
        before = tw.et.data.copy() if tw.rec.hist is not None else None
        tw = self.s.resync(base, tw, src, self.b.cell, rebound=True)
        if before is not None:
            self.event(tw.rec, "update", src, before=self.snap(before), after=self.snap(tw.et.data))
        # (not ``data_written``: its views made before keep the old memory and values, in torch
        # as in the engine, where ``rebound`` gave the leaf a new array)

    def _requires_grad(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        t = args[0]
        if not isinstance(t, _Tensor):
            return
        src = self.where()
        tw = self.tw(t, src)
        rec = tw.rec
        if t.requires_grad and not tw.et.requires_grad and t.grad_fn is None:
            tw.et.requires_grad_(True)
            self.s.watch(rec, t)
            self.s.make_leaf(rec, src, self.b.cell)
            if rec.seq <= self.b.first_seq:
                self.b.used[id(rec)] = rec
        elif not t.requires_grad and tw.et.requires_grad and tw.et.grad_fn is None:
            tw.et.requires_grad_(False)
            rec.kind = "constant"

    def _retain_grad(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        t = args[0]
        tw = self.tw(t)
        if tw.et.requires_grad:
            tw.et.retain_grad()
            tw.rec.retained = True
            self.s.watch(tw.rec, t)

    def _detach_(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        t = args[0]
        if isinstance(t, _Tensor) and t in self.s.twins:
            del self.s.twins[t]
            self.tw(t, self.where())

    def _exposed(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        t = args[0] if args else None
        if isinstance(t, _Tensor):
            tw = self.s.twins.get(t)
            if tw is not None:
                tw.exposed = True
            owner = self.s.grad_owner.get(t)
            if owner is not None:  # ``x.grad.numpy()``: its memory may change at any time
                owner.grad_sync = False

    # ----- kinds: optimizers -------------------------------------------------------------------
    def _optimizer_call(self, func: Any, spec: Any, args: tuple, kwargs: dict) -> Any:
        """A call inside ``Optimizer.step``: torch's, mirrored on the step's engine shadows
        (``optim.StepMirror``); or an in-place ``torch._foreach_*`` op outside a step."""
        if not self.in_optimizer:
            return self._foreach_inplace(func, spec, args, kwargs)
        mirror = getattr(self, "step_mirror", None)
        if mirror is None or self.b.disabled:
            return func(*args, **kwargs)
        return mirror.run(spec, func, args, kwargs)

    def _foreach_inplace(self, func: Any, spec: Any, args: tuple, kwargs: dict) -> Any:
        """``torch._foreach_mul_(grads, coef)`` and friends: each element as its own
        in-place op (``_inplace``: a gradient edit, a checked update, a recomputed op)."""
        targets = args[0] if args and isinstance(args[0], (list, tuple)) else ()
        pres = [t._version if isinstance(t, _Tensor) else None for t in targets]
        out = self._call_with_users_warnings(func, args, kwargs)
        if self.b.disabled or not targets:
            return out
        from gradmagic.engine._quiet import quiet_enter, quiet_exit
        from .rows.optim import element
        elem = getattr(spec.adapt, "elem", None)
        one = spec._replace(kind="inplace", adapt=elem,  # (a zeroed .grad is a zero_ event)
                            name="Tensor.zero_" if spec.name == "torch._foreach_zero_" else spec.name)
        token = quiet_enter()
        try:
            for i, t in enumerate(targets):
                if not isinstance(t, _Tensor):
                    continue
                if elem is None:
                    self._inplace_unknown(spec, t)
                    continue
                eargs, ekw = element(args, kwargs, i)
                self._check_grad_edit(one, eargs, ekw, t, pres[i])
                self._inplace(one, eargs, ekw, t, pres[i])
        except Exception as exc:  # gradmagic's failure never breaks the user's call
            self._fail(exc, spec)
        finally:
            quiet_exit(token)
        return out

    def _check_grad_edit(self, spec: Any, args: tuple, kwargs: dict, g: _Tensor, pre: Any) -> None:
        """``clip_grad_norm_`` scaling a ``.grad`` in place: the engine's rule on a copy of
        the gradient's twin, checked against torch's new gradient (on the ``x.grad`` node)."""
        tw = self.s.twins.get(g)
        owner = self.s.grad_owner.get(g)
        if owner is None or owner.too_large or tw is None or tw.version != pre or not self.b.check:
            return
        recs: list = []
        rest = self.convert(args[1:], recs, None)
        ckw = {k: self.convert(v, recs, None) for k, v in kwargs.items()}
        if any(r is not None and r.too_large for r in recs):
            return
        from .optim import engine_call
        edited = ETensor(tw.et.data.copy())
        try:
            engine_call(spec.adapt, (edited, *rest), ckw)
        except Exception as exc:
            self.b.note(f"{spec.name}: the engine could not recompute this gradient edit ({exc}).")
            return
        self.check_value(tw.rec, edited.data, g, detail=f"gradient edit by {spec.name}")

    def _profiler_enter(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        name = args[0] if args and isinstance(args[0], str) else ""
        if name.startswith("Optimizer.step#"):
            self.in_optimizer += 1
            self.opt_handles.append(out)
            if self.in_optimizer == 1:  # the outermost step: its calls are mirrored, then checked
                from .optim import StepMirror
                self.step_mirror = StepMirror(name.split("#", 1)[1], self.s.twin_limit, self.b.check)
        elif name.startswith("Optimizer.zero_grad#"):
            self.in_zero_grad += 1
            self.zero_handles.append(out)

    def _profiler_exit(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        if self.zero_handles and args and args[0] is self.zero_handles[-1]:
            self.zero_handles.pop()
            self.in_zero_grad -= 1
            return
        if not self.opt_handles or (args and args[0] is not self.opt_handles[-1]):
            return
        self.opt_handles.pop()
        self.in_optimizer -= 1
        if self.in_optimizer:
            return
        mirror, self.step_mirror = getattr(self, "step_mirror", None), None
        src = self.where()
        for t, tw in list(self.s.twins.items()):
            rec = tw.rec
            if rec.hist is not None and rec.kind == "leaf" and (
                    tw.version != t._version or (mirror is not None and mirror.written(t))):
                self._update(t, tw, src, mirror)

    def _update(self, t: _Tensor, tw: Twin, src: Any, mirror: Any = None) -> None:
        """Re-sync a leaf whose value torch changed (optimizer, ``.data``) with an
        ``update`` event (large leaves: the new value's summary only); after an optimizer
        step, first check the engine's recomputed update against torch's."""
        small = tw.et.data.size <= LAZY_VALUE_LIMIT
        before = tw.et.data.copy() if small else None
        if mirror is not None and mirror.check and not tw.rec.too_large:
            self._check_update(t, tw, mirror)
        self.s.resync(t, tw, src, self.b.cell)
        self.event(tw.rec, "update", src, before=before, after=self.snap(tw.et.data))

    def _check_update(self, t: _Tensor, tw: Twin, mirror: Any) -> None:
        """The engine's value of ``t`` after the step vs torch's (an unchecked note when
        the step made a call the engine could not follow)."""
        value = mirror.value(t)
        if value is None:
            self.b.note(f"{mirror.name}: some parameter updates were not recomputed "
                        f"({mirror.why_not(t)}); they are unchecked.")
            self.b.count("unchecked", tw.rec.seq, tw.rec, "value", None)
            return
        self.check_value(tw.rec, value, t, detail=f"update by {mirror.name}")


def _first_tensor(args: tuple, kwargs: dict) -> Optional[_Tensor]:
    for a in args:
        if isinstance(a, _Tensor):
            return a
    for a in kwargs.values():
        if isinstance(a, _Tensor):
            return a
    return None
