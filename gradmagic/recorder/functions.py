"""User-defined ``torch.autograd.Function``s: "check my hand-written backward".

torch runs a Function's ``forward`` with grad mode off, and the recorder sees its ops but
not ``Function.apply`` itself. So an op arriving with grad mode off looks for an ``apply``
frame on the stack (``_APPLY_CODE``); inside one, the op is recomputed by the engine on a
private graph of the Function's own (``FunctionCall``): its inputs are fresh engine leaves.
When an output of the Function is first used, it becomes one engine node named after the
Function (``subgraph``, see ``engine/ops/subgraph.py``). Its VJP is the true VJP of the ops
inside ``forward``; a hook on torch's node logs what the user's ``backward`` received and
returned, and the engine's backward compares the two on the same upstream gradient, then
continues from the user's result (lockstep). The same mechanism mirrors torch's own
Functions that run Python ops: ``nn.Module`` full backward hooks (``BackwardHookFunction``)
and reentrant ``torch.utils.checkpoint``.

>>> import torch, gradmagic
>>> class Cube(torch.autograd.Function):
...     @staticmethod
...     def forward(ctx, x):
...         ctx.save_for_backward(x)
...         return x ** 3
...     @staticmethod
...     def backward(ctx, g):
...         (x,) = ctx.saved_tensors
...         return g * 2 * x ** 2          # wrong: should be 3·x²
>>> with gradmagic.trace() as rep:
...     x = torch.tensor([1.0, 2.0], requires_grad=True)
...     Cube.apply(x).sum().backward()
>>> rep.ok, rep.node(rep.mismatches[0].node).label
(False, 'CubeBackward')
"""
from __future__ import annotations

import sys
import weakref
from typing import Any, Optional

import numpy as np
import torch

from gradmagic.engine import Tensor as ETensor
from gradmagic.engine import apply as engine_apply
from gradmagic.engine._state import STATE
from gradmagic.engine.ops.subgraph import Subgraph

from .crosscheck import compare
from .magnitudes import node_key as _node_key, rounding
from .hooks import LOG_LIMIT, HookLog, describe
from .twins import Twin, copy_numpy, map_tensors, to_numpy
from .values import summarize
from gradmagic.viz.fmt import preview

_Tensor = torch.Tensor
_APPLY_CODE = torch.autograd.Function.apply.__func__.__code__
#: stack frames searched for a Function's ``apply`` above an op run with grad mode off
FRAME_LIMIT = 12
#: torch's Functions whose backward is the identity and whose node carries module hooks
_HOOK_FUNCTIONS = ("BackwardHookFunction",)


class FunctionCall:
    """One ``Function.apply`` in progress or done: the engine's private graph of it."""

    __slots__ = ("cls", "args", "inner", "produced", "broken", "log", "__weakref__")

    def __init__(self, cls: type, args: tuple) -> None:
        self.cls = cls
        self.args = args  # the apply's arguments (its tensors are the Function's inputs)
        self.inner: dict = {}  # id(torch input) -> engine leaf standing for it inside forward
        self.produced: dict = {}  # id(torch tensor made inside) -> (weakref, engine tensor)
        self.broken: Optional[str] = None  # why the forward could not be mirrored
        self.log: Optional[HookLog] = None  # the torch node's backward calls (once hooked)
        for a in args:
            if isinstance(a, _Tensor):
                leaf = ETensor(copy_numpy(a), requires_grad=a.requires_grad and a.is_floating_point())
                self.inner[id(a)] = leaf

    def convert(self, obj: Any) -> Any:
        """Torch tensors → this call's engine tensors (inputs, results, else constants)."""
        return map_tensors(obj, self._engine)

    def _engine(self, t: _Tensor) -> ETensor:
        got = self.produced.get(id(t))
        if got is not None and got[0]() is t:
            return got[1]
        leaf = self.inner.get(id(t))
        if leaf is not None:
            return leaf
        et = ETensor(copy_numpy(t))
        self.produced[id(t)] = (weakref.ref(t), et)
        return et

    @property
    def name(self) -> str:
        return f"{self.cls.__name__}Backward"


def function_frame() -> Optional[Any]:
    """The outermost ``Function.apply`` frame among the nearest ``FRAME_LIMIT`` callers."""
    f = sys._getframe(2)
    found = None
    for _ in range(FRAME_LIMIT):
        if f is None:
            break
        if f.f_code is _APPLY_CODE:
            found = f
        f = f.f_back
    return found


class FunctionHandlers:
    """Mixin of ``Recorder``: ops inside a Function's forward, and its outputs' nodes."""

    def _function_call(self) -> Optional[FunctionCall]:
        """The Function whose forward makes the current call (None: not inside one)."""
        frame = function_frame()
        if frame is None:
            return None
        loc = frame.f_locals
        args, cls = loc.get("args"), loc.get("cls")
        del frame, loc
        if not isinstance(args, tuple) or not isinstance(cls, type):
            return None
        fc = self.fn_current
        if fc is None or fc.args is not args:
            fc = self.fn_current = FunctionCall(cls, args)
        return fc

    def _in_function(self, fc: FunctionCall, spec: Any, args: tuple, kwargs: dict, out: Any) -> None:
        """Mirror one call made by a Function's forward on the Function's private graph."""
        kind = spec.kind
        if kind == "ignore" or fc.broken:
            return
        outs = [out] if isinstance(out, _Tensor) else \
            [o for o in out if isinstance(o, _Tensor)] if isinstance(out, (tuple, list)) else []
        if kind == "factory":
            for t in outs:
                fc.produced[id(t)] = (weakref.ref(t), ETensor(copy_numpy(t)))
            self._note_outputs(fc, outs)
            return
        if kind != "op" or spec.adapt is None:
            if outs or kind in ("inplace", "random", "auto"):
                fc.broken = f"its forward calls {spec.name}, which gradmagic does not mirror there"
            return
        prev = STATE.grad_enabled
        STATE.grad_enabled = True  # the private graph is differentiable, whatever torch's mode
        try:
            eout = spec.adapt(fc.convert(args), {k: fc.convert(v) for k, v in kwargs.items()})
        except Exception as exc:
            fc.broken = f"the engine could not recompute {spec.name} in its forward ({type(exc).__name__})"
            return
        finally:
            STATE.grad_enabled = prev
        eouts = eout if isinstance(eout, (tuple, list)) else (eout,)
        for t, e in zip(outs, eouts):
            if not isinstance(e, ETensor):
                continue
            ref = to_numpy(t)
            res = compare(e.data, ref, self.b.rtol, self.b.atol)
            if res[0] != "agree":
                fc.broken = f"the engine's {spec.name} in its forward differs from torch's"
                return
            if e.data.shape == ref.shape and e.data.dtype == ref.dtype and e.data.flags.writeable:
                np.copyto(e.data, ref)  # lockstep inside the Function too
            fc.produced[id(t)] = (weakref.ref(t), e)
        self._note_outputs(fc, outs)

    def _note_outputs(self, fc: FunctionCall, outs: list) -> None:
        """Remember which Function made ``outs`` (any may turn out to be its output)."""
        for t in outs:
            self.fn_outputs[id(t)] = (weakref.ref(t), fc)

    def _function_output(self, t: _Tensor, src: Any) -> Optional[Twin]:
        """The twin of ``t`` when it is an output of a mirrored Function (else None)."""
        entry = self.fn_outputs.get(id(t))
        if entry is None or entry[0]() is not t:
            return None
        fc = entry[1]
        node = t.grad_fn
        if node is None or not hasattr(node, "_forward_cls"):
            return None
        got = fc.produced.get(id(t))
        if fc.broken or got is None or got[0]() is not t:
            self.b.note(f"{fc.cls.__name__}: {fc.broken or 'its output is not a result of its forward'}; "
                        f"its backward is taken as given (unchecked).")
            return None
        inputs = [a for a in fc.args if isinstance(a, _Tensor)]
        recs: list = []
        outer = self.convert(tuple(inputs), recs, src)
        hooked = fc.cls.__name__ in _HOOK_FUNCTIONS
        if fc.log is None:
            fc.log = HookLog(function=True)
            node.register_hook(_node_logger(fc.log))
            self.s.hook_logs.append(weakref.ref(fc.log))
        single = sum(1 for ref, _ in fc.produced.values() if (o := ref()) is not None and o.grad_fn is node) == 1
        # one inner leaf per tensor: a tensor passed twice gets the whole true VJP at its
        # first position (the engine sums positions at the outer input, as torch does)
        firsts, seen = [], set()
        for x in inputs:
            firsts.append(x.requires_grad and id(x) not in seen)
            seen.add(id(x))
        body = Subgraph(fc.name, [fc.inner.get(id(x)) if first else None
                                  for x, first in zip(inputs, firsts)], got[1])
        rec_box: list = []
        if single:
            body.replay = _Replay(fc, body, rec_box, self.s.hook_seen, hooked)
        prev = STATE.grad_enabled
        STATE.grad_enabled = True
        try:
            et = engine_apply("subgraph", *outer, body=body)
        finally:
            STATE.grad_enabled = prev
        spec = _FunctionSpec(fc.cls)
        rec = self.new_op("op", et, et.data, spec, recs, src)
        rec_box.append(rec)
        self.check_value(rec, et.data, t)
        return self.s.set_twin(t, et, rec)


class _FunctionSpec:
    """What ``new_op`` reads of a mapping ``Spec``, for a Function's node."""

    __slots__ = ("op", "name")

    def __init__(self, cls: type) -> None:
        self.op = "subgraph"
        self.name = f"{cls.__qualname__}.apply"


def _node_logger(log: HookLog) -> Any:
    """A post-hook on torch's Function node: logs (grads of the inputs, grads of the outputs)."""
    def logger(grad_inputs: tuple, grad_outputs: tuple) -> None:
        if len(log.calls) < LOG_LIMIT:
            log.calls.append((tuple(None if g is None else copy_numpy(g) for g in grad_inputs),
                              tuple(None if g is None else copy_numpy(g) for g in grad_outputs)))
    return logger


class _Replay:
    """The Subgraph's replay: checks the user's backward against the true VJP on torch's
    upstream gradient, then hands the engine the user's result (lockstep)."""

    __slots__ = ("fc", "body", "rec_box", "seen", "hooked")
    kind = "function"

    def __init__(self, fc: FunctionCall, body: Subgraph, rec_box: list, seen: list, hooked: bool) -> None:
        self.fc, self.body, self.rec_box, self.seen, self.hooked = fc, body, rec_box, seen, hooked

    @property
    def rec(self) -> Any:
        return self.rec_box[0] if self.rec_box else None

    def __call__(self, g: np.ndarray, true: list) -> Optional[list]:
        log = self.fc.log
        if log is None or not log.calls:
            return None
        gin, gout = log.calls.pop(0)
        upstream = gout[0] if gout else None
        if upstream is None:
            return None
        exact = self.body.true_vjp(upstream)  # the true VJP once more, on torch's upstream gradient
        user = list(gin) + [None] * (len(true) - len(gin))
        self.seen.append((self, g, upstream, (exact, _by_tensor(self.fc, user))))
        # the user's gradients, position by position (None: no gradient, as torch has it)
        return user[:len(true)]


def _by_tensor(fc: FunctionCall, user: list) -> list:
    """The user's gradients summed over positions holding one tensor (the true VJP gives a
    tensor's total at its first position, None at the others)."""
    tensors = [a for a in fc.args if isinstance(a, _Tensor)]
    out: list = []
    first: dict = {}
    for x, u in zip(tensors, user):
        k = id(x)
        if k in first:
            i = first[k]
            if u is not None:
                out[i] = u if out[i] is None else out[i] + u
            out.append(None)
        else:
            first[k] = len(out)
            out.append(u)
    return out


def file_function_check(recorder: Any, call: Any, replay: _Replay, engine_g: np.ndarray,
                        upstream: np.ndarray, pair: tuple, mags: dict) -> list:
    """Checks of one Function node after a backward: the gradient that reached it, then each
    input's gradient from the user's backward against the true VJP. Returns the results."""
    rec, out = replay.rec, []
    # a float64 gradient that flowed through float32 ops: float32's tolerances (program 79871)
    rt, at = recorder._grad_tolerances(call.steps or [], getattr(upstream, "dtype", None), [])
    res = compare(engine_g, upstream, rt, at)
    if res[0] == "differ" and call.steps:
        res = rounding(res, engine_g, upstream, call.steps, _node_key(rec), mags, recorder.s.output_of)
    res = res[:5] + ((res[5] + "; " if res[5] else "") + "checked: the gradient reaching "
                     f"{replay.fc.name}",)
    out.append(res)
    true, user = pair
    name = replay.fc.cls.__name__
    for i, (t, u) in enumerate(zip(true, user)):
        if t is None:
            continue
        if replay.hooked:  # torch's identity backward; the difference is the module hook's
            what = describe(t, u if u is not None else np.zeros_like(t))
            out.append(("agree", 0.0, 0.0, None, None, f"module backward hook on input {i}: {what}"))
            continue
        mine = np.zeros_like(t) if u is None else u
        r = compare(mine, t, recorder.b.rtol, recorder.b.atol)
        if r[0] == "differ":
            detail = (f"your {name}.backward is off for input {i}: max |Δ| {r[1]:.3g} from the true "
                      f"VJP of its forward; true {_preview(t)} vs yours {_preview(mine)}")
        else:
            detail = f"{name}.backward for input {i} matches the VJP of its forward"
        out.append(r[:5] + (detail,))
    return out


def _preview(a: np.ndarray) -> str:
    """The numbers as every view prints a tensor (``[6.0000, 0.3750, …]``)."""
    return preview(summarize(np.asarray(a)), max_chars=48, prefix="")
