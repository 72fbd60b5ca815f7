"""The check budget (``check="sample"``): which backward calls of a long loop run in lockstep.

A training loop repeats one body. Once the last iterations (the torch calls from one backward
call to the next, with their lines) repeat the ones before them (one iteration the one before
it, or a GAN's D and G steps the two before them) and at least three whole iterations were
checked, the loop's body is known; from then on only the calls of the schedule (1–4, then the
powers of two from 16: 16, 32, …, 256, nine of a 300-iteration loop) run in lockstep, so a loop
of up to three iterations, as most lessons' SGD demos, is always checked whole. Between them
the recorder leaves torch's mode stack and torch runs at full speed; gradmagic keeps only what
the report shows of those iterations, measured at every call up to 32 and then 16 calls per
doubling: the loss, each leaf's gradient size (``flow.py``), and whether ``.grad`` piled up
without being cleared. At each sampled call the twins are re-read from torch (their version
counters say what changed), so the checked iterations start from torch's exact values. Full
speed never outlives the top-level statement of the cell that began it
(``checking.mark_statement_ends``).

While a sampling block is open, ``Tensor.backward``, ``torch.autograd.backward`` and
``torch.autograd.grad`` are wrapped (restored when the block ends): a wrapper is the one
place outside the mode where a backward call can be seen, so it is where the recorder
leaves the mode after a checked call and comes back before a sampled one. A loop whose
calls bypass the wrappers (a ``grad`` imported before the block), registers hooks, or
builds double-backward graphs stays in full lockstep.

>>> [k for k in range(1, 301) if is_sampled(k)]
[1, 2, 3, 4, 16, 32, 64, 128, 256]
>>> describe_calls([1, 2, 3, 4, 16], 20)
'backward calls 1–4, 16 of 20; the other 15 ran at full speed, not checked'
"""
from __future__ import annotations

import functools
import math
import weakref
from threading import get_ident
from typing import Any, Callable, Optional

import torch

from gradmagic.checking import on_statement_end

from .block import MAX_SEGMENT
from .flow import TINY


#: the first backward calls of a block always run in lockstep
FIRST_CHECKED = 4
#: after them, the powers of two from this one on (16, 32, …, 256: nine calls of 300 in all)
FIRST_POWER = 16
#: the longest loop body, in backward calls, that is recognised (a GAN step has two: D and G)
MAX_PERIOD = 4
#: the most loss values a block keeps (evenly thinned beyond it, like ``flow.MAX_POINTS``)
MAX_LOSSES = 1000


def is_sampled(k: int) -> bool:
    """Does backward call ``k`` (1-based, in the block) run in lockstep under ``"sample"``?"""
    return k <= FIRST_CHECKED or (k >= FIRST_POWER and (k & (k - 1)) == 0)


def describe_calls(checked: list, total: int) -> str:
    """``"backward calls 1–4, 16, …, 256 of 300; …"``: which calls ran in lockstep (and were checked).

    >>> describe_calls([1, 2, 3], 3)
    'backward calls 1–3 of 3'
    """
    runs: list = []
    for k in checked:
        if runs and k == runs[-1][1] + 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    parts = [f"{a}–{b}" if b > a else str(a) for a, b in runs]
    if len(parts) > 8:
        parts = parts[:5] + ["…"] + parts[-2:]
    word = "call" if total == 1 else "calls"
    text = f"backward {word} {', '.join(parts)} of {total}"
    rest = total - len(checked)
    if rest:
        text += f"; the other {rest} ran at full speed, not checked"
    return text


class Sampler:
    """The sampled checking of one block: counts its backward calls, decides which run in
    lockstep, and keeps the loss and the gradient sizes of those that do not.

    ``recorder``: the block's ``Recorder`` (a ``TorchFunctionMode``); ``block``: its ``Block``;
    ``mode``: ``gradmagic.checking``'s mode (only ``"sample"`` ever leaves lockstep).
    """

    def __init__(self, recorder: Any, block: Any, mode: str = "sample") -> None:
        self.r = recorder
        self.b = block
        self.mode = mode
        self.thread = get_ident()
        self.depth = 0  # > 0 while a wrapper runs torch's function (re-entry passes through)
        self.fast = False
        self.eligible = True  # False once a call bypassed the wrappers
        #: (call, what it did: ``_signature``) of the last checked calls in a row
        self.recent: list = []
        self.period = 0  # the loop body's length in backward calls, once known (0: not known)
        self.phases: dict = {}  # call number % period -> what that call of the body does
        self.checked: list = []  # 1-based numbers of the calls that ran in lockstep
        self.spans: list = []  # [first, last] call numbers of each full-speed stretch
        #: the leaves followed at full speed: [Rec, torch tensor, its flow series if tiny,
        #: weakref to its .grad when last looked at, that .grad's _version]
        self.watch: list = []
        self.piled: dict = {}  # id(Rec) -> Rec whose .grad piled up at full speed
        self.losses: list = []  # (call, value), every ``loss_stride``-th call
        self.loss_stride = 1
        #: id(Rec) -> Rec of leaves whose .grad changed at full speed after their last check
        #: (the engine's gradient is stale: the report says "not checked", never "agree")
        self.stale: dict = {}
        self.next_check = 0  # at full speed: the next call of the schedule (``is_sampled``)
        self.next_measure = 0  # ... and the next whose gradient sizes and loss are kept

    # ----- the wrappers' entry point ------------------------------------------------------
    def call(self, orig: Callable, args: tuple, kwargs: dict, roots: Any) -> Any:
        """Run ``orig`` (torch's backward / grad) as call number ``b.ncalls + 1``."""
        b = self.b
        if not self.fast and not self._recording():  # inside the recorder's own dispatch of a
            return orig(*args, **kwargs)  # call made through a reference no wrapper saw (bypassed)
        b.ncalls += 1
        k = b.ncalls
        if self.fast:
            return self._fast_call(orig, args, kwargs, roots, k)
        made = len(b.calls)
        self.depth += 1
        try:
            out = orig(*args, **kwargs)
        finally:
            self.depth -= 1
        self.checked.append(k)  # (in lockstep, whatever its verdict)
        try:
            self._loss(k, roots)
            if len(b.calls) > made:
                if self.stale:  # checked again: the engine's gradients were re-read from torch
                    for rec, what, _ in b.calls[-1].checks:
                        self.stale.pop(id(rec), None)
                self._after_checked(k)
            else:
                self.forget_body()
        except Exception as exc:  # gradmagic's failure never breaks the user's call
            self._failed(exc)
        return out

    def _failed(self, exc: Exception) -> None:
        """An internal error: back to lockstep for the rest of the block, with a note."""
        self.eligible = False
        self.b.note(f"gradmagic stopped sampling backward calls because of an internal error "
                    f"({type(exc).__name__}: {exc}); the rest of the block ran in lockstep.")
        try:
            self.resume()
        except Exception:
            pass

    def _recording(self) -> bool:
        """Is the recorder on top of torch's mode stack (not inside its own dispatch)?"""
        n = _stack_len()
        return n > 0 and _stack_at(n - 1) is self.r

    def bypassed(self) -> None:
        """The recorder mirrored a backward call that no wrapper saw: count it, and stay in
        lockstep from now on (such calls cannot be seen at full speed)."""
        self.b.ncalls += 1
        self.eligible = False
        self.checked.append(self.b.ncalls)

    # ----- lockstep -> full speed ---------------------------------------------------------
    def _after_checked(self, k: int) -> None:
        if self.mode != "sample":
            return
        if not self._knows_body(k, self._signature()) or is_sampled(k + 1) or not self._can_leave():
            return
        if k <= 3 * self.period:  # a loop of up to three iterations is always checked whole
            return
        self._leave(k)

    def _knows_body(self, k: int, sig: Any) -> bool:
        """Is the loop's body known after checked call ``k`` that did ``sig``? It is once the last
        P calls did what the P before them did (P ≤ ``MAX_PERIOD``: a GAN's D and G steps make
        P = 2); a checked call that does not do what its place in the body did forgets it."""
        if sig is None:
            self.forget_body()
            return False
        if self.period:
            if self.phases.get(k % self.period) == sig:
                return True
            self.forget_body()
        recent = self.recent
        if recent and recent[-1][0] != k - 1:  # (calls at full speed in between)
            recent.clear()
        recent.append((k, sig))
        del recent[:-2 * MAX_PERIOD]
        sigs = [s for _, s in recent]
        for p in range(1, MAX_PERIOD + 1):
            if len(sigs) >= 2 * p and sigs[-p:] == sigs[-2 * p:-p]:
                self.period = p
                self.phases = {c % p: s for c, s in recent[-p:]}
                return True
        return False

    def forget_body(self) -> None:
        """A loop must show its body again before it may run at full speed."""
        self.recent, self.period, self.phases = [], 0, {}

    def _signature(self) -> Any:
        """What the iteration that just ended did: the torch calls and lines of its records and
        of its backward call; None when it cannot be compared (cut, or not via a wrapper)."""
        b = self.b
        if not self.eligible or len(b.segments) < 2 or not b.calls:
            return None
        seg = b.segments[-2]
        if len(seg) >= MAX_SEGMENT:
            return None
        call = b.calls[-1]
        return (tuple((r.torch_op, r.kind, r.src) for r in seg), call.kind, call.src, call.create)

    def _can_leave(self) -> bool:
        b, r = self.b, self.r
        if b.disabled or not self.eligible or b.hook_sites or _live_hooks(r.s):
            return False
        if r.in_optimizer or r.fn_current is not None or (b.modules is not None and b.modules.stack):
            return False
        if b.calls[-1].create:
            return False
        stack = torch.overrides._get_current_function_mode_stack()
        return bool(stack) and stack[-1] is r

    def _leave(self, k: int) -> None:
        """Take the recorder off torch's mode stack: the next calls run at full speed."""
        call = self.b.calls[-1]
        torch._C._pop_torch_function_stack()  # (first: the reads below are not the user's)
        watch = []
        for rec, what, _ in call.checks:
            t = rec.tref() if what == "grad" and rec.kind == "leaf" and rec.tref is not None else None
            if t is not None and t.dtype.is_floating_point and not t.is_complex():
                tiny = t.numel() <= TINY and t.is_cpu
                watch.append([rec, t, self.b.flow.series_of(rec, t.numel()) if tiny else None, *_grad_state(t)])
        self.watch = watch
        self.stale.update((id(w[0]), w[0]) for w in watch)
        if self.b.modules is not None:
            self.b.modules.pause()
        self.fast = True
        self.spans.append([k + 1, k])
        self.next_check = k + 1 if k < FIRST_CHECKED else max(FIRST_POWER, 1 << k.bit_length())  # (is_sampled's next)
        self.next_measure = k + 1

    # ----- full speed ---------------------------------------------------------------------
    def _fast_call(self, orig: Callable, args: tuple, kwargs: dict, roots: Any, k: int) -> Any:
        measure = k == self.next_measure  # (the others cost a few integer compares)
        watch = self.watch
        if measure:
            for w in watch:  # [Rec, tensor, its flow series if tiny, weakref to .grad, its _version]
                g = w[1].grad
                if g is not None and w[3] is not None and w[3]() is g and g._version == w[4]:
                    self.piled[id(w[0])] = w[0]  # not cleared since the call before
        self.depth += 1
        try:
            out = orig(*args, **kwargs)
        except BaseException:
            self.spans[-1][1] = k
            self.resume()
            raise
        finally:
            self.depth -= 1
        self.spans[-1][1] = k
        try:
            if measure:
                self._measure(k, roots)
            if k + 1 == self.next_measure:  # what .grad is now, to see whether it is cleared
                for w in watch:
                    g = w[1].grad
                    w[3], w[4] = (None, None) if g is None else (_ref(g), g._version)
            if k + 1 == self.next_check:
                self.resume()
        except Exception as exc:  # gradmagic's failure never breaks the user's call
            self._failed(exc)
        return out

    def _measure(self, k: int, roots: Any) -> None:
        """The gradient sizes and the loss of call ``k``, run at full speed."""
        flow = self.b.flow
        for w in self.watch:
            g = w[1].grad
            if g is None:
                continue
            if w[2] is not None:
                w[2].pend(k - 1, g.tolist())
            else:
                flow.add_tensor(k - 1, w[0], g)
        flow.calls = max(flow.calls, k)
        self._loss(k, roots)
        m = k + 1
        while m & (_flow_stride(m) - 1):
            m += 1
        self.next_measure = m

    def statement_ended(self) -> None:
        """A top-level statement of the cell ended (``checking.mark_statement_ends``): the code
        after it runs in lockstep, and a loop must show its body again before it may run at
        full speed (full speed never crosses the end of the statement that began it)."""
        self.resume()
        self.forget_body()

    def finish(self) -> None:
        """The block ends: back in lockstep, saying what ran unrecorded after the last call."""
        if self.fast and self.spans:
            self.b.note(f"whatever ran after backward call {self.spans[-1][1]} (the rest of its loop, and "
                        f"the block's code after the loop) ran at full speed too: its torch calls are not in "
                        f"the graph. %%grad cells and scripts run by the CLI check again after each "
                        f"top-level statement; trace(check=\"all\") checks everything.")
        self.resume()

    def resume(self) -> None:
        """Put the recorder back on torch's mode stack: the next calls run in lockstep."""
        if not self.fast:
            return
        self.fast = False
        self.watch = []
        torch._C._push_on_torch_function_stack(self.r)
        if self.b.modules is not None:
            self.b.modules.resume()

    def _loss(self, k: int, roots: Any) -> None:
        """Keep the root's value when it is one number (thinned beyond ``MAX_LOSSES``)."""
        if k % self.loss_stride:
            return
        root = roots[0] if isinstance(roots, (tuple, list)) and roots else roots
        if type(root) is not torch.Tensor or root.numel() != 1:
            return
        if self.fast:
            value = root.item()
        else:
            with torch._C.DisableTorchFunction():  # (gradmagic's read, not the user's)
                value = root.item()
        if type(value) is not float:  # (an integer or complex root is no loss)
            return
        self.losses.append((k - 1, value if math.isfinite(value) else None))
        if len(self.losses) > MAX_LOSSES:
            self.loss_stride *= 2
            self.losses = [p for p in self.losses if (p[0] + 1) % self.loss_stride == 0]

    def release(self) -> None:
        """Let go of the block and its recorder once the report is built (they hold this sampler:
        a cycle that only the cyclic collector would free, late)."""
        self.r = self.b = None
        self.watch, self.stale, self.piled = [], {}, {}

    # ----- the report ---------------------------------------------------------------------
    def summary(self) -> dict:
        """The report's ``checking`` dict (``docs/contract.md``)."""
        total = self.b.ncalls
        skipped = [[a, b] for a, b in self.spans if b >= a]
        return {"mode": self.mode, "calls": total, "checked": list(self.checked),
                "skipped": skipped, "summary": describe_calls(self.checked, total) if total else "",
                "loss": {"calls": [c for c, _ in self.losses], "values": [v for _, v in self.losses]},
                "piled_up": sorted({rec.name or "?" for rec in self.piled.values()})}


def _live_hooks(session: Any) -> bool:
    """Does a tensor hook gradmagic mirrors still exist? Hooks of tensors freed since keep no
    later loop in lockstep."""
    return any(log.live() for log in session.live_hook_logs())


def _grad_state(t: torch.Tensor) -> list:
    """[weakref to ``t.grad``, its ``_version``] (a weak reference: a ``.grad`` set to None
    must be freed as without gradmagic)."""
    g = t.grad
    return [None, None] if g is None else [_ref(g), g._version]


_ref = weakref.ref
_stack_len = torch._C._len_torch_function_stack
_stack_at = torch._C._get_function_stack_at


def _flow_stride(k: int) -> int:
    """Calls run at full speed measure their gradients every this many calls: every call up
    to 32, then 16 calls per doubling (the chart's points thin out as the loop goes on).

    >>> [_flow_stride(k) for k in (1, 31, 32, 64, 300)]
    [1, 1, 2, 4, 16]
    """
    return max(1, (1 << (k.bit_length() - 1)) >> 4)


# ----- the wrappers -----------------------------------------------------------------------------
#: the samplers of the open sampling blocks, innermost last
_OPEN: list = []
_ORIGINALS: dict = {}


def _active() -> Optional[Sampler]:
    """The innermost open block's sampler, unless a wrapper of it is running already."""
    if not _OPEN:
        return None
    sm = _OPEN[-1]
    return sm if sm is not None and sm.depth == 0 and sm.thread == get_ident() else None


def _wrapper(name: str, roots: str) -> Callable:
    """The wrapper put in place of torch's ``name`` (a key of ``_WRAPPERS``): calls the innermost
    open block's sampler with the original, or the original alone. ``roots``: the name of the
    original's first parameter (the call's roots; it may come as a keyword)."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # (IPython leaves this frame out of the user's traceback)
        orig = _ORIGINALS[name]
        sm = _active()
        if sm is None:
            return orig(*args, **kwargs)
        return sm.call(orig, args, kwargs, args[0] if args else kwargs.get(roots))
    return wrapper


#: torch's backward entry points: name -> (owner, attribute, the wrapper put there)
_WRAPPERS = {name: (owner, attr, _wrapper(name, roots)) for name, owner, attr, roots in (
    ("Tensor.backward", torch.Tensor, "backward", "self"),
    ("torch.autograd.backward", torch.autograd, "backward", "tensors"),
    ("torch.autograd.grad", torch.autograd, "grad", "outputs"))}


def open_sampler(sm: Optional[Sampler]) -> None:
    """Start a block: ``sm`` is its sampler (None: the calls of this block are no sampler's).
    The first sampler wraps torch's backward entry points."""
    if sm is not None and not any(s is not None for s in _OPEN):
        from . import mapping
        for name, (owner, attr, wrapper) in _WRAPPERS.items():
            orig = getattr(owner, attr)
            if getattr(orig, "__gradmagic_wrapper__", False):  # left by a block that died: keep its original
                orig = _ORIGINALS.get(name, orig)
            _ORIGINALS[name] = orig
            if not hasattr(wrapper, "__wrapped__"):
                functools.update_wrapper(wrapper, orig)
                wrapper.__gradmagic_wrapper__ = True
            mapping.alias(wrapper, orig)
            setattr(owner, attr, wrapper)
    _OPEN.append(sm)


def close_sampler(sm: Optional[Sampler]) -> None:
    """End a block (its sampler back in lockstep, so its recorder is on the mode stack); when
    no sampling block is left open, torch's functions are restored."""
    if sm is not None:
        sm.finish()
    for i in range(len(_OPEN) - 1, -1, -1):
        if _OPEN[i] is sm:
            del _OPEN[i]
            break
    _restore_if_none_open()


def drop_leaked_samplers(recorders: list) -> int:
    """Forget the samplers of blocks that never exited (their recorder is not in ``recorders``,
    the open blocks' recorders): a dead block's sampler must not take the calls of later code.
    Returns how many were dropped; torch's functions are restored when no sampler is left."""
    keep = [s for s in _OPEN if s is not None and any(s.r is r for r in recorders)]
    dropped = len(_OPEN) - len(keep)
    _OPEN[:] = keep
    _restore_if_none_open()
    return dropped


def _restore_if_none_open() -> None:
    if not any(s is not None for s in _OPEN):
        for name, (owner, attr, wrapper) in _WRAPPERS.items():
            if getattr(owner, attr) is wrapper and name in _ORIGINALS:
                setattr(owner, attr, _ORIGINALS[name])


def _statement_ended() -> None:
    sm = _active()
    if sm is not None:
        sm.statement_ended()


on_statement_end(_statement_ended)
