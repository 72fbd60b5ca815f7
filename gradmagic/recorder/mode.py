"""``Recorder``: the ``TorchFunctionMode`` that mirrors each torch call into the engine.

For every call the cell makes, the real torch function runs first and its result is
always returned unchanged; then, guarded, the recorder looks the callable up in the
one mapping table (``mapping.lookup``) and handles it by kind: recompute an op from
the twins of its inputs, copy a factory's value, mirror an in-place change, run the
engine's backward beside torch's and compare, record ``.grad`` events, or draw an
opaque node. Inside ``__torch_function__`` torch has popped the mode, so the torch
calls made here are not recorded again.

>>> import torch
>>> from gradmagic.recorder.twins import Session
>>> from gradmagic.recorder.block import Block
>>> s = Session(); b = Block(cell=None, finder=None)
>>> with Recorder(s, b):
...     x = torch.arange(3.0, requires_grad=True)
...     (x * x).sum().backward()
>>> [r.torch_op for r in b.kept_recs()]
['torch.arange', 'Tensor.mul', 'Tensor.sum']
>>> b.calls[0].status
'agree'
"""
from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from gradmagic.engine._quiet import quiet_enter, quiet_exit
from gradmagic._warnings_capture import call_recording
from gradmagic.engine import Tensor as ETensor
from gradmagic.engine._state import STATE
from gradmagic.engine.masks import mask_source
import gradmagic.engine as ge

from . import mapping
from .backward import BackwardHandlers
from .functions import FunctionHandlers
from .hook_handlers import HookHandlers
from .block import Block
from .crosscheck import compare, identical
from .history import LAZY_VALUE_LIMIT
from .magnitudes import SUMMING_OPS, moments_overflow, value_terms, within_rounding
from .masks import TorchMasks, call_dtype, feature_noise_shape, only_cpu, replayed
from .state import StateHandlers, _first_tensor
from .twins import Rec, Session, TooLarge, Twin, copy_numpy, map_tensors, numpy_dtype, to_numpy
from .values import summarize
from .precision import internal_steps, working_dtype

_Tensor = torch.Tensor
_BF16 = torch.bfloat16  # mirrored as float32: compared with bfloat16's tolerances


class Recorder(StateHandlers, BackwardHandlers, HookHandlers, FunctionHandlers, TorchFunctionMode):
    """Mirror torch calls into ``session``'s twins, recording into ``block``."""

    def __init__(self, session: Session, block: Block) -> None:
        super().__init__()
        self.s = session
        self.b = block
        self.in_optimizer = 0
        self.opt_handles: list = []
        self.in_zero_grad = 0
        self.zero_handles: list = []
        self.fn_current = None  # the custom Function whose forward runs now (functions.py)
        self.fn_outputs: dict = {}  # id(torch tensor) -> (weakref, FunctionCall) made inside one
        self.last_call: Any = None  # (spec, args, kwargs) of the op whose value is being checked
        self.left_out: set = set()  # (reason, line) of calls left out unmirrored (noted once each)

    # ----- dispatch --------------------------------------------------------------------
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        if kwargs is None:
            kwargs = {}
        try:
            spec = mapping.lookup(func)
        except Exception as exc:  # gradmagic's failure never breaks the user's call
            self._fail(exc, SimpleNamespace(name=getattr(func, "__name__", "a torch call")))
            spec = _IGNORED  # (the call runs outside the except: no chained context)
        kind = spec.kind
        if (self.in_optimizer or kind == "foreach_") and kind != "profiler_exit":  # optimizer steps
            return self._optimizer_call(func, spec, args, kwargs)  # and torch._foreach_*_ (state.py)
        if kind == "ignore" or self.b.disabled:
            return self._call_with_users_warnings(func, args, kwargs)
        if kind in _FUNCTION_KINDS and not _grad_enabled():  # inside a custom Function's forward?
            fc = self._function_call()
            if fc is not None:
                out = self._call_with_users_warnings(func, args, kwargs)
                try:
                    self._in_function(fc, spec, args, kwargs, out)
                except Exception as exc:  # gradmagic's failure never breaks the user's call
                    fc.broken = f"gradmagic failed inside it ({type(exc).__name__}: {exc})"
                return out
        pre = None
        if spec.pre:
            token = quiet_enter()  # the engine's NumPy stays as silent as torch on inf/nan
            try:
                pre = self._pre(kind, args, kwargs, spec)
            except Exception as exc:  # gradmagic's failure never breaks the user's call
                self._fail(exc, spec)
            finally:
                quiet_exit(token)
            if kind == "register_hook" and pre is not None:
                args = pre[1]  # torch gets a wrapper that logs what the user's hook does
        try:
            out = self._call_with_users_warnings(func, args, kwargs)
        except BaseException:
            if kind in _BACKWARD_KINDS:  # which call raised, from which roots (the diagnosis)
                self._backward_raised(kind, args, kwargs)
            else:  # which op raised, on which tensor (the diagnosis)
                self._call_raised(spec, args)
            raise
        if not self.b.disabled:
            token = quiet_enter()
            try:
                HANDLERS[kind](self, spec, args, kwargs, out, pre)
            except Exception as exc:
                self._fail(exc, spec, (*args, out), kwargs)
            finally:
                quiet_exit(token)
        return out

    def _call_with_users_warnings(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """``func(*args, **kwargs)``, its warnings re-issued at the user's line: called from
        here, torch's warnings (``x.grad`` of a non-leaf, ``torch.tensor(t)``, ``std`` of one
        element, deprecated ``F.*``) would name gradmagic's file and pass IPython's filters as
        library code. Recording them costs about 0.3 µs (``_warnings_capture``)."""
        caught: list = []
        try:
            return call_recording(func, args, kwargs, caught)
        finally:  # after the recording ended, so the user's filters apply
            self._reissue(caught)

    def _reissue(self, caught: list) -> None:
        if not caught:
            return
        finder = self.b.finder
        frame = finder.frame(3) if finder is not None else None
        for w in caught:
            if frame is None:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
                continue
            names = frame.f_globals
            warnings.warn_explicit(w.message, w.category, frame.f_code.co_filename, frame.f_lineno,
                                   module=names.get("__name__"),
                                   registry=names.setdefault("__warningregistry__", {}),
                                   module_globals=names, source=w.source)
        del frame

    def _fail(self, exc: BaseException, spec: Any, args: tuple = (), kwargs: Any = None) -> None:
        """An internal error: stop mirroring for the rest of the block, with a note (a call on
        tensors gradmagic cannot mirror is only left out: see ``_left_out``)."""
        reason = _unmirrorable(args, kwargs)
        if reason is not None:
            self._left_out(reason)
            return
        self.b.disabled = True
        self.b.note(f"gradmagic stopped checking at {spec.name} because of an internal error "
                    f"({type(exc).__name__}: {exc}); the rest of the block ran unchecked.")

    def _pre(self, kind: str, args: tuple, kwargs: dict, spec: Any = None) -> Any:
        if kind == "backward":
            return self._pre_backward(args, kwargs)
        if kind == "random":
            return torch.get_rng_state()
        if kind == "register_hook":
            return self._pre_hook(spec, args, kwargs)
        if kind == "autograd_grad":
            self._clear_hook_logs()
            return None
        if kind == "inplace" and args and isinstance(args[0], _Tensor):
            return args[0]._version
        if kind == "op" and spec is not None and spec.draws:  # torch's generator, to replay its masks
            return torch.get_rng_state()
        if kind == "op":  # (mapping._PRE_OPS) twins of the values torch is about to overwrite
            src = self.where()
            self.convert((args, tuple(kwargs.values())), [], src)
        return None

    def _left_out(self, reason: str) -> None:
        """A call on tensors gradmagic cannot mirror (``_UNMIRRORABLE``): ``torch.func``'s
        wrapped tensors (inside ``grad``, ``vmap``, ``jacrev``, ``hessian``, ``vjp``, ``jvp``),
        which have no storage, and inference tensors, which have no version counter. The call
        runs as torch runs it and is left out of the graph; each line that makes such calls is
        one unchecked value and one note, so the report never reads as if its results had
        been checked."""
        src = self.where()
        if (reason, src) in self.left_out:
            return
        self.left_out.add((reason, src))
        self.b.count("unchecked", self.s.seq, None, "value", ("unchecked", None, None, None, None, reason))
        self.b.note(f"{_UNMIRRORABLE[reason]} at {self._loc(src)} are not mirrored: the calls on them ran "
                    f"in torch only, and their results are unchecked (used later, they are drawn as "
                    f"tensors computed outside gradmagic).")

    # ----- helpers -------------------------------------------------------------------
    def where(self) -> Any:
        """(filename, line) of the user's code making the current call."""
        finder = self.b.finder
        return finder.find(3) if finder is not None else None

    def tw(self, t: _Tensor, src: Any = None) -> Twin:
        """Up-to-date twin of ``t``; earlier records used here are remembered."""
        tw = self.s.twins.get(t)
        if tw is None and self.fn_outputs:  # an output of a custom Function (functions.py)
            tw = self._function_output(t, src)
        if tw is not None and tw.version != t._version and t._base is not None:
            tw = self._view_of_current_base(t, src)  # a write through another view
        elif tw is not None and self.s.data_written and t._base is not None:
            written = self.s.data_written.get(t._base)  # the base written through its .data
            if written is not None and tw.rec.seq < written:  # since this view's twin was made
                tw = self._view_of_current_base(t, src)
        if tw is None or tw.version != t._version or tw.exposed:
            tw = self.s.twin(t, src, self.b.cell)
        rec = tw.rec
        if rec.seq <= self.b.first_seq:
            self.b.used[id(rec)] = rec
        elif rec.kind == "opaque" and rec.torch_op is None and rec.label and id(rec) not in self.b.used:
            self.b.used[id(rec)] = rec  # drawn, and noted once
            self.b.note(f"a tensor computed outside gradmagic ({rec.label[len('unrecorded '):]}) was "
                        f"used here: its history was not recorded, so gradients below it are unchecked.")
        return tw

    def convert(self, obj: Any, recs: list, src: Any) -> Any:
        """Replace torch tensors in ``obj`` (args, nested lists/tuples) by their twins,
        torch dtypes by NumPy's; ``recs`` collects the Recs of the tensors, in order."""
        if isinstance(obj, _Tensor):
            tw = self.tw(obj, src)
            recs.append(tw.rec)
            return tw.et
        cls = type(obj)
        if cls is tuple or cls is list:
            conv = [self.convert(o, recs, src) if isinstance(o, _CONVERTED) else o for o in obj]
            return conv if cls is list else tuple(conv)
        if cls is torch.dtype:
            return numpy_dtype(obj)
        return obj

    def run_engine(self, spec: Any, args: tuple, kwargs: dict, src: Any) -> tuple[Any, list]:
        """The engine's result for a mapped call, with the Recs of its tensor inputs."""
        recs: list = []
        cargs = self.convert(args, recs, src)
        ckw = {k: self.convert(v, recs, src) for k, v in kwargs.items()} if kwargs else kwargs
        if self.s.stand_ins:
            self.check_size(recs)
        prev = STATE.grad_enabled
        STATE.grad_enabled = torch.is_grad_enabled()
        try:
            return spec.adapt(cargs, ckw), recs
        finally:
            STATE.grad_enabled = prev

    def check_size(self, recs: list, out: Any = None) -> None:
        """Raise ``TooLarge`` when an input is a stand-in or ``out`` is above the twin limit."""
        for r in recs:
            if r is not None and r.too_large:
                raise TooLarge(f"an input has more than {self.s.twin_limit:,} elements")
        if isinstance(out, _Tensor) and self.s.too_large(out):
            raise TooLarge(f"the result has more than {self.s.twin_limit:,} elements")

    def note_too_large(self) -> None:
        self.b.note(f"tensors with more than {self.s.twin_limit:,} elements get no engine twin "
                    f"(twin_limit): the calls that use them are drawn but unchecked (too large).")

    def check_value(self, rec: Rec, engine: np.ndarray, t: _Tensor, detail: Optional[str] = None) -> bool:
        """Compare a recomputed value with torch's, file the result on ``rec``, then
        continue from torch's exact value (lockstep). True when ``engine`` now holds
        torch's value bit for bit (nothing left to re-sync)."""
        if not self.b.check:
            return False
        ref = to_numpy(t)
        same_layout = engine.shape == ref.shape and engine.dtype == ref.dtype
        exact = same_layout and _equal(engine, ref)
        if exact:
            res = ("agree", 0.0, 0.0, None, None, detail)
        else:
            res = compare(engine, ref, self.b.rtol, self.b.atol, _BF16 if t.dtype is _BF16 else None)
            if res[0] == "differ" and ref.dtype.kind == "f":  # a composite working in float32?
                res = self._within_working_precision(res, rec, engine, ref)
            if res[0] == "differ" and rec.enode is not None:  # a variance beyond float32's range?
                res = self._variance_overflow(res, rec)
            if res[0] == "differ" and self.last_call is not None:  # (also ±inf/NaN: overflow?)
                res = within_rounding(res, engine, ref, self._value_terms(rec),  # a sum whose terms
                                      summed=rec.op in SUMMING_OPS)  # cancel (or overflow)
            if detail:
                res = res[:5] + ((res[5] + "; " if res[5] else "") + detail,)
            if same_layout and engine.flags.writeable:
                # lockstep: the next ops start from torch's exact value, so each node is
                # checked on the same inputs as torch's (no drift, no kink flips)
                np.copyto(engine, ref)
                exact = True
        rec.status, rec.err, rec.check = res[0], res[1], res
        self.b.count(res[0], rec.seq, rec, "value", res)
        return exact

    def _within_working_precision(self, res: tuple, rec: Rec, engine: np.ndarray, ref: np.ndarray) -> tuple:
        """``res`` judged at the precision the call worked in: a composite whose own steps
        compute in a narrower float than its result (``cosine_similarity`` of a float32 and a
        float64 tensor divides the float32 one by its float32 norm, then promotes) carries that
        precision's rounding in torch as in the engine. Unchanged for a call without such steps
        (a primitive op promotes exactly first: its result keeps the wider dtype's rounding)."""
        narrow = working_dtype(rec.enode, self.s.by_node) if rec.enode is not None else None
        if narrow is None or narrow.itemsize >= ref.dtype.itemsize:
            return res
        again = compare(engine, ref, self.b.rtol, self.b.atol, narrow)
        if again[0] != "agree":
            return res
        return again[:5] + (f"within {narrow.name} rounding: torch computes part of this call in "
                            f"{narrow.name} before promoting to {ref.dtype.name}",)

    def _variance_overflow(self, res: tuple, rec: Rec) -> tuple:
        """``res`` made ``unchecked``, with why, when the call normalizes (itself, or a step of it:
        instance_norm is batch_norm between reshapes) an input whose variance leaves its dtype's
        range (``magnitudes.moments_overflow``); unchanged otherwise."""
        nodes = [rec.enode, *(step for step, _ in internal_steps(rec.enode, self.s.by_node))]
        why = next((w for w in map(moments_overflow, nodes) if w is not None), None)
        return res if why is None else ("unchecked", None, None, res[3], res[4], why)

    def _value_terms(self, rec: Rec) -> Any:
        """Σ|terms| of the value just computed: the same call on the absolute values of its
        inputs' twins (for a sum Σ|x|, for a product |A|·|B|); None when that cannot run."""
        if rec.enode is not None:  # normalizations: a bound from their signed inputs (magnitudes.py)
            bound = value_terms(rec.enode)
            if bound is not None:
                return bound
        spec, args, kwargs = self.last_call
        if spec.op != rec.op or spec.adapt is None:
            return None

        def absolute(t: _Tensor) -> Any:
            tw = self.s.twins.get(t)
            return None if tw is None else ETensor(np.abs(tw.et.data))
        prev, STATE.grad_enabled = STATE.grad_enabled, False
        try:
            out = spec.adapt(map_tensors(args, absolute), {k: map_tensors(v, absolute) for k, v in kwargs.items()})
            out = out[0] if isinstance(out, (tuple, list)) else out
            return np.abs(np.asarray(out.data, np.float64))
        except Exception:
            return None
        finally:
            STATE.grad_enabled = prev

    def new_op(self, kind: str, et: ETensor, arr: Any, spec: Any, recs: list, src: Any) -> Rec:
        rec = self.s.new_rec(kind, et, arr, src, self.b.cell, op=spec.op, torch_op=spec.name,
                             inputs=tuple(recs))
        for r in recs:
            if r.upstream_opaque:
                rec.upstream_opaque = True
                break
        self.b.add_rec(rec)
        self.b.ops += 1
        if rec.enode is not None:
            self._adopt_internal(rec, recs, src)
        return rec

    def _adopt_internal(self, rec: Rec, recs: list, src: Any) -> None:
        """Give a Rec to engine nodes made inside one call (a composite, a
        double-backward graph) so every node a backward reaches is drawn."""
        by_node = self.s.by_node
        for p in rec.enode.parents:  # fast path: every parent already known
            if p is not None and type(p) is not ETensor and id(p) not in by_node:
                break
        else:
            return
        known_et = {id(r.et): r for r in recs if r is not None and r.et is not None}
        fresh = []
        stack = [rec.enode]
        seen = {id(rec.enode)}
        while stack:
            node = stack.pop()
            for p in node.parents:
                if type(p) is ETensor or p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                if id(p) not in by_node:
                    fresh.append(p)
                    stack.append(p)
        if not fresh:
            return
        made = {}
        for node in reversed(fresh):  # parents before children, roughly forward order
            r = self.s.new_rec("internal", None, None, src, self.b.cell, op=node.op,
                               torch_op=rec.torch_op)
            r.enode = node
            by_node[id(node)] = r
            made[id(node)] = r
            self.b.add_rec(r)
        for node_rec in [*made.values(), rec]:
            node_rec.inputs = tuple(self._input_rec(node_rec.enode, i, known_et)
                                    for i in range(len(node_rec.enode.parents)))
        rec.seq = self.s.seq = self.s.seq + 1  # the call's output comes after its internals

    def _input_rec(self, node: Any, i: int, known_et: dict) -> Optional[Rec]:
        """The Rec feeding input ``i`` of engine ``node`` (None for plain constants)."""
        p = node.parents[i]
        if p is not None:
            return self.s.rec_of_engine(p)
        x = node.raw_inputs()[i]  # (an input without a parent is kept as given)
        if isinstance(x, ETensor):
            return known_et.get(id(x)) or self.s.by_tensor.get(id(x))
        return None

    def snap(self, arr: Any, owned: bool = False) -> Any:
        """An event value: small arrays are kept (summarised when a report is built),
        large ones summarised now so that histories stay small. ``owned``: the array
        is a private copy nobody mutates (else small ones are copied)."""
        if arr is None or isinstance(arr, dict):
            return arr
        if arr.size <= LAZY_VALUE_LIMIT:
            return arr if owned else arr.copy()
        return summarize(arr, self.s.value_limit)

    def event(self, rec: Rec, kind: str, src: Any, call: Optional[int] = None, before: Any = None,
              after: Any = None, added: Any = None) -> None:
        """Add an accumulation/update event to a leaf's history."""
        hist = rec.hist
        if hist is None:
            return
        self.b.touched[id(rec)] = rec
        self.s.seq = seq = self.s.seq + 1
        hist.add(kind, call, self.b.cell, src, before, after, added, seq)

    # ----- kinds: ops and values ---------------------------------------------------------
    def _op(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        if kwargs and kwargs.get("inplace") and args and out is args[0]:
            self._inplace(spec, args, kwargs, out, None)  # F.relu(x, inplace=True)
            return
        src = self.where()
        try:
            self.check_size((), out)
            if spec.draws and pre is not None and only_cpu((args, kwargs)):
                with mask_source(TorchMasks(pre, call_dtype((args, kwargs)) or torch.float32)):
                    eout, recs = self.run_engine(spec, args, kwargs, src)
            else:  # (no masks to replay: a call that draws one stays opaque, see engine/masks.py)
                eout, recs = self.run_engine(spec, args, kwargs, src)
        except Exception as exc:
            self._opaque(spec, args, kwargs, out, src, exc)
            return
        self.last_call = (spec, args, kwargs)  # what check_value re-runs on |inputs| if it must
        try:
            if isinstance(out, _Tensor):
                self._register(out, eout, spec, recs, src, args)
            elif isinstance(out, (tuple, list)):
                outs = eout if isinstance(eout, (tuple, list)) else (eout,)
                for t, e in zip(out, outs):
                    if isinstance(t, _Tensor) and isinstance(e, ETensor):
                        self._register(t, e, spec, recs, src, args)
        finally:
            self.last_call = None

    def _register(self, t: _Tensor, et: ETensor, spec: Any, recs: list, src: Any, args: tuple) -> None:
        for a in args:
            if a is t:
                return  # returned an input unchanged (e.g. dropout in eval mode)
        rec = self.new_op("op", et, et.data, spec, recs, src)
        self.check_value(rec, et.data, t)
        self.s.set_twin(t, et, rec)

    def _factory(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        if not isinstance(out, _Tensor):
            return
        src = self.where()
        if self.s.too_large(out):
            self._stand_in(out, src, spec.name)
            return
        et = ETensor(copy_numpy(out), requires_grad=bool(out.requires_grad and out.grad_fn is None))
        rec = self.s.leaf_rec(out, et, src, self.b.cell, torch_op=spec.name)
        self.b.add_rec(rec)
        self.s.set_twin(out, et, rec)

    def _random(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        """Dropout: replay torch's mask from the saved RNG state, recompute the rest. Channel
        dropout (``F.dropout1d/2d/3d``) draws one value per sample and channel (``masks.py``)."""
        if not isinstance(out, _Tensor) or pre is None:
            return
        x = args[0] if args else kwargs.get("input")
        if out is x or not isinstance(x, _Tensor):
            return
        p = float(kwargs.get("p", args[1] if len(args) > 1 else 0.5))
        training = kwargs.get("training", kwargs.get("train", args[2] if len(args) > 2 else True))
        src = self.where()
        if not x.is_cpu:  # its mask comes from that device's generator, which is not replayed
            self._opaque(spec, args, kwargs, out, src, NotImplementedError(
                f"dropout on {x.device.type}: torch's mask comes from that device's generator, "
                f"which gradmagic does not replay"))
            return
        noise = feature_noise_shape(spec.name, tuple(x.shape))
        if not training or p <= 0 or p >= 1 or not x.numel():  # nothing drawn (p = 1: zeros)
            mask = np.full(noise or x.shape, p < 1 or not training)
            p = p if training else 0.0
        elif noise is None:
            mask = to_numpy(replayed(pre, lambda: torch.empty_like(x).bernoulli_(1 - p))[0]) != 0
        else:
            mask = TorchMasks(pre, x.dtype)(noise, None, p)
        recs: list = []
        ex = self.convert(x, recs, src)
        try:
            self.check_size(recs, out)
        except TooLarge as exc:
            self._opaque(spec, args, kwargs, out, src, exc)
            return
        prev = STATE.grad_enabled
        STATE.grad_enabled = torch.is_grad_enabled()
        try:
            et = ge.apply("dropout", ex, mask, p=p)
        finally:
            STATE.grad_enabled = prev
        self._register(out, et, spec, recs, src, (x,))

    def _opaque(self, spec: Any, args: tuple, kwargs: dict, out: Any, src: Any,
                exc: Optional[BaseException] = None) -> None:
        """A call without an engine rule: copy torch's value, gradients below unchecked."""
        outs = [out] if isinstance(out, _Tensor) else [o for o in out if isinstance(o, _Tensor)] \
            if isinstance(out, (tuple, list)) else []
        if not outs:
            return
        recs: list = []
        self.convert((args, kwargs), recs, src)
        too_large = isinstance(exc, TooLarge)
        if too_large:
            self.note_too_large()
        else:
            self.b.unsupported.setdefault(spec.name, None)
            if exc is not None:
                self.b.note(f"{spec.name}: the engine could not recompute this call "
                            f"({type(exc).__name__}: {exc}); its value was copied from torch.")
        for t in outs:
            if any(t is a for a in args if isinstance(a, _Tensor)):
                continue
            if self.s.too_large(t):
                self._stand_in(t, src, spec.name, tuple(recs))
                continue
            et = ETensor(copy_numpy(t))
            if t.requires_grad and et.data.dtype.kind in "fc":
                et.requires_grad_(True)
            rec = self.s.new_rec("opaque", et, et.data, src, self.b.cell, torch_op=spec.name,
                                 inputs=tuple(recs))
            rec.upstream_opaque = True
            if too_large:
                rec.check = ("unchecked", None, None, None, None, f"too large: {exc}")
            self.s.opaque += 1
            self.s.watch(rec, t)
            self.b.add_rec(rec)
            self.b.count("unchecked", rec.seq, rec, "value", rec.check)
            self.s.set_twin(t, et, rec)

    def _stand_in(self, t: _Tensor, src: Any, torch_op: str, inputs: tuple = ()) -> None:
        """Register a stand-in twin (no copy) for ``t``, above the twin limit."""
        rec = self.s.stand_in(t, src, self.b.cell, torch_op).rec
        rec.inputs = inputs
        self.b.too_large += 1
        self.b.add_rec(rec)
        self.b.count("unchecked", rec.seq, rec, "value", rec.check)
        self.note_too_large()

    def _auto(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        """An unmapped callable: nothing for non-tensor results, else in-place or opaque."""
        if isinstance(out, _Tensor) or (isinstance(out, (tuple, list)) and any(isinstance(o, _Tensor) for o in out)):
            target = _first_tensor(args, kwargs)
            if spec.name.endswith("_") and target is not None and (out is target or out is None):
                self._inplace_unknown(spec, target)
            else:
                self._opaque(spec, args, kwargs, out, self.where())
        elif out is None and spec.name.endswith("_"):
            target = _first_tensor(args, kwargs)
            if target is not None:
                self._inplace_unknown(spec, target)


#: kind (``mapping.Spec.kind``) -> handler. Plain functions in a module table, not bound
#: methods kept on the Recorder: those would make each Recorder a reference cycle that
#: holds its block's records and arrays until a full cyclic collection.
HANDLERS = {
    "op": Recorder._op, "factory": Recorder._factory, "inplace": Recorder._inplace,
    "random": Recorder._random, "grad_get": Recorder._grad_get, "grad_set": Recorder._grad_set,
    "data_get": Recorder._data_get, "data_set": Recorder._data_set,
    "requires_grad": Recorder._requires_grad, "retain_grad": Recorder._retain_grad,
    "detach_": Recorder._detach_, "backward": Recorder._backward, "autograd_grad": Recorder._autograd_grad,
    "register_hook": Recorder._hook_registered,
    "exposed": Recorder._exposed, "profiler_enter": Recorder._profiler_enter,
    "profiler_exit": Recorder._profiler_exit, "auto": Recorder._auto,
}


_IGNORED = SimpleNamespace(kind="ignore", name="a torch call", pre=False)
#: kinds that a custom Function's forward may call (mirrored on its private graph)
_FUNCTION_KINDS = frozenset({"op", "factory", "inplace", "random", "auto"})
#: kinds whose failure in torch is remembered for ``gradmagic.diagnose`` (``Block.failed``)
_BACKWARD_KINDS = frozenset({"backward", "autograd_grad"})
_grad_enabled = torch.is_grad_enabled



# ----- module helpers -------------------------------------------------------------------------
_CONVERTED = (_Tensor, tuple, list, torch.dtype)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values (same shape and dtype already checked)."""
    try:
        if a.size <= 4096:
            return a.tobytes() == b.tobytes()
        return identical(a, b)
    except Exception:
        return False


#: why a call's tensors cannot be mirrored -> what the note calls them
_UNMIRRORABLE = {
    "torch.func": "torch.func transforms (grad, vmap, jacrev, hessian, vjp, jvp)",
    "inference": "tensors made under torch.inference_mode() (they have no version counter)",
}


def _unmirrorable(args: tuple, kwargs: Any) -> Optional[str]:
    """Why a tensor argument cannot be mirrored (a key of ``_UNMIRRORABLE``), or None. Asked
    only after a handler failed, so it costs nothing on the normal path."""
    is_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    stack = [*args, *(kwargs or {}).values()]
    while stack:
        a = stack.pop()
        if isinstance(a, _Tensor):
            if is_wrapped is not None and is_wrapped(a):
                return "torch.func"
            if a.is_inference():
                return "inference"
        elif isinstance(a, (list, tuple)):
            stack.extend(a)
    return None
