"""``Tensor.register_hook`` and ``register_post_accumulate_grad_hook``: mirrored.

Part of the ``Recorder`` (see ``mode.py``); the mechanism is in ``hooks.py``. Before torch
registers a user's hook, the recorder swaps in a logging wrapper; after, it registers a
``Replay`` on the engine twin at the same place. After each backward the replays' checks
are filed on the hooked tensor.

>>> import torch, gradmagic
>>> with gradmagic.trace() as rep:
...     x = torch.tensor([1.0, 2.0], requires_grad=True)
...     _ = x.register_hook(lambda g: g + 1)
...     (x * x).sum().backward()
>>> rep.ok, x.grad.tolist()
(True, [3.0, 5.0])
"""
from __future__ import annotations

import weakref
from typing import Any

import torch

from .block import HookSite
from .crosscheck import compare
from .functions import file_function_check
from .magnitudes import node_key, rounding
from .hooks import HookLog, Replay, describe, post_accumulate_side, torch_side
from .twins import copy_numpy

_Tensor = torch.Tensor


#: hook registrations a block remembers for ``gradmagic.diagnose`` (a loop may register many)
HOOK_SITES = 32


def hook_site(rec: Any, hook: Any, src: Any) -> HookSite:
    """Where ``hook`` (the user's function) is, registered at ``src`` on ``rec``'s tensor.

    >>> def scale(g): return g * 2
    >>> site = hook_site(None, scale, ("<cell>", 3))
    >>> site.name, site.defined[1] > 0, site.src
    ('scale', True, ('<cell>', 3))
    """
    code = getattr(hook, "__code__", None)
    defined = (code.co_filename, code.co_firstlineno) if code is not None else None
    return HookSite(rec, getattr(hook, "__name__", type(hook).__name__), defined, src)


def _copy(t: Any) -> Any:
    return copy_numpy(t) if isinstance(t, _Tensor) else None


class HookHandlers:
    """Mixin of ``Recorder``: hook registration and the checks of replayed hooks."""

    def _pre_hook(self, spec: Any, args: tuple, kwargs: dict) -> Any:
        """Before torch registers the hook: ``(log, args with the wrapper)``."""
        if len(args) < 2 or kwargs or not isinstance(args[0], _Tensor) or not callable(args[1]):
            return None
        log = HookLog(tensor=args[0])
        wrap = post_accumulate_side if spec.op == "post" else torch_side
        return log, (args[0], wrap(args[1], log, _copy), *args[2:])

    def _hook_registered(self, spec: Any, args: tuple, kwargs: dict, out: Any, pre: Any) -> None:
        if pre is None:
            return
        log = pre[0]
        src = self.where()
        tw = self.tw(args[0], src)
        if len(self.b.hook_sites) < HOOK_SITES:  # where it is, should its gradient break the backward
            self.b.hook_sites.append(hook_site(tw.rec, getattr(args[1], "__wrapped__", args[1]), src))
        et = tw.et
        if et is None or not et.requires_grad or tw.rec.too_large:
            self.b.note("a hook was registered on a tensor gradmagic does not mirror with a graph; "
                        "the gradients it changes are unchecked.")
            return
        replay = Replay(log, tw.rec, self.s.hook_seen, spec.op)
        if spec.op == "post":
            et.register_post_accumulate_grad_hook(replay)
            self.s.post_hooked.add(id(tw.rec))
        else:
            et.register_hook(replay)
        self.s.hook_logs.append(weakref.ref(log))

    def _clear_hook_logs(self) -> None:
        """Before a recorded backward: the logs keep only what this backward's hooks see."""
        for log in self.s.live_hook_logs():
            log.calls.clear()

    def _file_hook_check(self, call: Any, rec: Any, res: tuple) -> None:
        call.checks.append((rec, "grad", res))
        self.b.count(res[0], rec.seq, rec, "grad", res)

    def _file_hooks(self, call: Any) -> None:
        """After the engine's backward: one check per hook call (the gradient that reached
        the hook, engine against torch), and a note when torch ran a hook the engine did not."""
        seen, self.s.hook_seen[:] = list(self.s.hook_seen), []
        if seen:
            self._file_replays(call, seen)
        for ref in self.s.hook_logs:
            log = ref()
            if log is not None and log.calls:
                log.calls.clear()
                if log.function:  # torch's double backward reaches a Function's node again
                    continue      # through the tensors it saved; the engine's has no need to
                self.b.note("torch ran a hook on a path through a call gradmagic has no rule for; "
                            "gradients below it are unchecked." if self.s.opaque else
                            "torch ran a hook that gradmagic's backward did not reach; gradients "
                            "below it are unchecked.")
                if call.status == "agree":
                    call.status = "unchecked"

    def _file_replays(self, call: Any, seen: list) -> None:
        below: Any = ()
        mags: dict = {}  # Σ|terms| of this backward, computed on first need
        loose: list = []  # the backward's loosest dtype, computed on first need
        if self.s.opaque:  # a gradient that also flows through an opaque node is torch's only
            from .backward import _below_opaque
            below = _below_opaque(self.s, call.steps or [], tuple(
                r.et for r in call.roots if r is not None and r.et is not None))
        for replay, engine, received, returned in seen:
            rec = replay.rec
            if rec is not None and id(rec) in below:
                self._file_hook_check(call, rec, ("unchecked", None, None, None, None,
                                                  "an opaque or unrecorded node lies between"))
                continue
            if replay.kind == "function":  # a custom Function's node: see functions.py
                for res in file_function_check(self, call, replay, engine, received, returned, mags):
                    self._file_hook_check(call, rec, res)
                continue
            if engine is None and replay.kind != "post" and received is not None:
                res = ("unchecked", None, None, None, None, "a hook reached again after a double "
                       "backward through it: replayed as torch ran it, not checked")
                self.b.note("a hook reached again by a backward through a create_graph gradient is "
                            "replayed as torch ran it; the gradient reaching it there is unchecked.")
            elif received is None or engine is None:
                res = ("unchecked", None, None, None, None, "the hook saw no gradient")
            else:
                # a float64 gradient that flowed through float32 ops: float32's tolerances, as
                # the accumulation checks (``_grad_tolerances``)
                rt, at = self._grad_tolerances(call.steps or [], getattr(received, "dtype", None), loose)
                res = compare(engine, received, rt, at)
                if res[0] == "differ" and call.steps:
                    res = rounding(res, engine, received, call.steps, node_key(rec), mags, self.s.output_of)
                effect = describe(received, returned)
                what = ("post-accumulate-grad hook: the accumulated .grad it saw"
                        if replay.kind == "post" else f"hook: {effect}; checked: the gradient reaching it")
                if replay.kind != "post":
                    self.b.hook_effects.setdefault((id(rec), effect), (rec, effect))
                    call.hooks.append((rec, received, returned, effect))  # a step of the replay
                res = res[:5] + ((res[5] + "; " if res[5] else "") + what,)
                if replay.kind == "post" and res[0] == "agree":
                    _lock_post_hooked(rec, res)
            self._file_hook_check(call, rec, res)
        statuses = {c[2][0] for c in call.checks}
        call.status = "differ" if "differ" in statuses else "agree" if statuses == {"agree"} else "unchecked"


def _lock_post_hooked(rec: Any, res: tuple) -> None:
    """A leaf with a post-accumulate-grad hook is checked by the hook's replay, not by the
    accumulation check: after it agrees, the engine's ``.grad`` continues from torch's exact
    value (lockstep), as an accumulation check's does (``backward._lock_grad``), so a ``.grad``
    built with create_graph and used again starts from torch's value, not from one off by the
    rounding the check allowed (program 71290 of the fuzzer)."""
    from .backward import _lock_grad, torch_grad
    from .twins import to_numpy

    t = rec.tref() if rec is not None and rec.tref is not None else None
    tg = torch_grad(t) if t is not None else None
    if tg is not None and rec.et is not None and rec.et.grad is not None:
        _lock_grad(rec, rec.et, tg, to_numpy(tg), res)
