"""The optimizer step, recomputed: ``StepMirror`` follows the calls torch makes inside
``Optimizer.step`` on private engine copies, so each parameter update can be checked.

Inside a step the recorder draws nothing (an optimizer's bookkeeping is not the
learner's graph): every mapped call torch makes (``param.add_(grad, alpha=-lr)``,
``torch._foreach_addcdiv_(params, exp_avgs, denoms, step_sizes)``, ``torch.zeros_like``
for a new ``exp_avg``...) is rerun by the engine under no-grad on *shadows*: engine
tensors that start, on first use in the step, from torch's value at that moment (the
gradient, an ``exp_avg`` from the previous step), so each step is checked on torch's own
inputs (lockstep, as every op is). When the step ends, each changed parameter's shadow
is its engine update, compared with torch's.

A call without an engine rule that may write into a tensor (an unmapped in-place op,
``out=``, the ``fused=True`` kernels) *taints* its tensors: their updates are reported
unchecked, never guessed. A failure of the engine only ever taints; torch's step runs
as it would without gradmagic.

>>> import torch
>>> from gradmagic.recorder.mapping import lookup
>>> m = StepMirror()
>>> p, g = torch.ones(2), torch.full((2,), 0.5)
>>> m.run(lookup(torch.Tensor.add_), torch.Tensor.add_, (p, g), {"alpha": -0.1}) is p
True
>>> m.value(p).tolist(), p.tolist()
([0.949999988079071, 0.949999988079071], [0.949999988079071, 0.949999988079071])
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from gradmagic.engine import Tensor as ETensor
from gradmagic.engine._quiet import quiet_enter, quiet_exit
from gradmagic.engine._state import STATE

from .twins import TWIN_LIMIT, TooLarge, copy_numpy, map_tensors

_Tensor = torch.Tensor
#: kinds whose calls the mirror reruns (an adapter on the shadows)
_MIRRORED = frozenset({"op", "inplace", "foreach_"})
#: kinds that never write into a tensor the step uses (factories make new ones, read
#: on first use; ``.grad`` reads, profiler markers, grad mode)
_HARMLESS = frozenset({"ignore", "factory", "grad_get", "data_get", "profiler_enter", "profiler_exit",
                       "requires_grad", "retain_grad", "exposed"})


class StepMirror:
    """Shadows of the tensors one optimizer step uses (see module docstring)."""

    __slots__ = ("shadow", "tainted", "name", "limit", "check")

    def __init__(self, name: str = "Optimizer.step", limit: int = TWIN_LIMIT, check: bool = True) -> None:
        self.name = name  # "Adam.step", for notes and check details
        self.limit = limit  # tensors with more elements get no shadow (the twin limit)
        self.check = check  # False: no shadows, only note the tensors unmirrored calls write
        self.shadow: dict[int, tuple] = {}  # id(torch tensor) -> (tensor, its engine shadow)
        self.tainted: dict[int, tuple] = {}  # id(torch tensor) -> (tensor, why its update is unchecked)

    # ----- the calls of the step
    def run(self, spec: Any, func: Any, args: tuple, kwargs: dict) -> Any:
        """Call torch's ``func`` and mirror it; returns torch's result unchanged."""
        prep = None
        if self.check and spec.kind in _MIRRORED and spec.adapt is not None:
            try:
                prep = self._before(args, kwargs)
            except TooLarge as exc:
                self._taint_all((args, kwargs), f"too large: {exc}")
            except Exception as exc:  # gradmagic's failure never breaks the user's step
                self._taint_all((args, kwargs), f"{spec.name} failed in the engine ({type(exc).__name__}: {exc})")
        out = func(*args, **kwargs)
        if prep is not None:
            token = quiet_enter()
            try:
                self._after(spec, prep, args, out)
            except Exception as exc:
                self._taint_all((args, kwargs, out), f"{spec.name} failed in the engine "
                                f"({type(exc).__name__}: {exc})")
            finally:
                quiet_exit(token)
        elif spec.kind not in _MIRRORED and spec.kind not in _HARMLESS and _may_write(spec, args, kwargs, out):
            self._taint_all((args, kwargs), f"{spec.name} has no engine rule")
        return out

    def _before(self, args: tuple, kwargs: dict) -> tuple:
        """Shadows of the arguments, taken before torch writes into any of them."""
        out_t = kwargs.get("out") if kwargs else None
        if out_t is not None:
            kwargs = {k: v for k, v in kwargs.items() if k != "out"}
        sargs = self._convert(args)
        skw = {k: self._convert(v) for k, v in kwargs.items()} if kwargs else kwargs
        return sargs, skw, out_t

    def _after(self, spec: Any, prep: tuple, args: tuple, out: Any) -> None:
        sargs, skw, out_t = prep
        res = engine_call(spec.adapt, sargs, skw)  # an optimizer's arithmetic is never differentiated
        if out_t is not None:
            out = out_t
        if spec.kind != "op":  # in place: the adapter wrote into the shadows themselves
            for t in _tensors(args[0] if args else ()):
                if t._base is not None:  # torch wrote into the base too
                    self._taint(t._base, f"{spec.name} wrote into it through a view")
            return
        if isinstance(out, _Tensor) and isinstance(res, ETensor):
            self._bind(out, res)
        elif isinstance(out, (tuple, list)) and isinstance(res, (tuple, list)):
            for t, e in zip(out, res):
                if isinstance(t, _Tensor) and isinstance(e, ETensor):
                    self._bind(t, e)

    def _bind(self, t: _Tensor, et: ETensor) -> None:
        if tuple(t.shape) != et.data.shape:
            self._taint(t, "the engine's result has another shape")
            return
        self.shadow[id(t)] = (t, et)

    def _convert(self, obj: Any) -> Any:
        return map_tensors(obj, self._shadow_of)

    def _shadow_of(self, t: _Tensor) -> ETensor:
        hit = self.shadow.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        if t.numel() > self.limit:
            raise TooLarge(f"more than {self.limit:,} elements")
        et = ETensor(copy_numpy(t))  # torch's value now: first use in this step
        self.shadow[id(t)] = (t, et)
        return et

    # ----- what can't be followed
    def _taint(self, t: _Tensor, why: str) -> None:
        self.tainted.setdefault(id(t), (t, why))
        self.shadow.pop(id(t), None)
        base = t._base
        if base is not None:  # a write through a view changes its base
            self.tainted.setdefault(id(base), (base, why))
            self.shadow.pop(id(base), None)

    def _taint_all(self, obj: Any, why: str) -> None:
        for t in _tensors(obj):
            self._taint(t, why)

    # ----- the result
    def value(self, t: _Tensor) -> Optional[np.ndarray]:
        """The engine's value of ``t`` after the step (None: not followed)."""
        if id(t) in self.tainted:
            return None
        hit = self.shadow.get(id(t))
        return hit[1].data if hit is not None and hit[0] is t else None

    def written(self, t: _Tensor) -> bool:
        """True when a call the engine did not follow may have written into ``t`` (torch's
        fused kernels change parameters without bumping their version counter)."""
        hit = self.tainted.get(id(t))
        return hit is not None and hit[0] is t

    def why_not(self, t: _Tensor) -> str:
        """Why ``t``'s update was not followed."""
        hit = self.tainted.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        return "it changed through a call gradmagic did not see"


def _may_write(spec: Any, args: tuple, kwargs: dict, out: Any) -> bool:
    """A call without a mirror may have written into its arguments: an in-place name
    (``x.foo_()``), ``out=``, or a result that is one of its arguments."""
    if spec.name.endswith("_") or (kwargs and "out" in kwargs):
        return True
    if isinstance(out, _Tensor):
        return any(out is a for a in args)
    return False


def _tensors(obj: Any) -> Any:
    """Every torch tensor in ``obj`` (nested tuples, lists and dicts)."""
    if isinstance(obj, _Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def engine_call(adapt: Any, args: tuple, kwargs: dict) -> Any:
    """``adapt(args, kwargs)`` with the engine's grad mode off (an edit, not a graph)."""
    prev = STATE.grad_enabled
    STATE.grad_enabled = False
    try:
        return adapt(args, kwargs)
    finally:
        STATE.grad_enabled = prev
