"""``trace()``: the recording context manager, and ``last_report()``.

>>> import torch
>>> with trace() as rep:
...     a = torch.ones(2, requires_grad=True)
...     (a * 3).sum().backward()
>>> rep.ok, last_report() is rep
(True, True)
"""
from __future__ import annotations

import gc
import sys
import time
from typing import Any, Mapping, Optional

import torch

from gradmagic._memory import release_free_memory
from gradmagic.checking import check_mode
from gradmagic.engine import scratch
from gradmagic.report import GradReport

from .compiled import skip_gradmagic_in_dynamo
from .block import Block
from .build import build_report
from .mode import Recorder
from .modules import ModuleTracker, remove_trackers
from .naming import SourceFinder
from .sampling import Sampler, close_sampler, drop_leaked_samplers, open_sampler
from .twins import Session

_DEFAULT: Optional[Session] = None
_LAST: Optional[GradReport] = None


def default_session() -> Session:
    """The process-wide session used when ``trace()`` gets none."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Session()
    return _DEFAULT


def last_report() -> Optional[GradReport]:
    """The ``GradReport`` of the most recent recorded block, or None."""
    return _LAST


#: Recorders of the ``trace()`` blocks now open, outermost first (a nested block pauses
#: the one around it; anything else of ours on torch's mode stack has leaked)
_OPEN: list = []


def _take_recorders_off() -> list:
    """Take every gradmagic ``Recorder`` off torch's mode stack (other modes stay, in
    order); return them, bottom first."""
    stack = torch.overrides._get_current_function_mode_stack()
    if not any(isinstance(m, Recorder) for m in stack):
        return []
    for _ in stack:
        torch._C._pop_torch_function_stack()
    removed = []
    for m in stack:
        if isinstance(m, Recorder):
            removed.append(m)
        else:
            torch._C._push_on_torch_function_stack(m)
    return removed


def remove_leaked_modes() -> int:
    """Take any gradmagic ``Recorder`` of no open block off torch's mode stack; return
    how many (the Recorders of open, paused blocks are put back on top)."""
    removed = _take_recorders_off()
    kept = [m for m in removed if any(m is o for o in _OPEN)]
    for m in kept:
        torch._C._push_on_torch_function_stack(m)
    remove_trackers([m.b.modules for m in _OPEN])  # and their global module hooks
    drop_leaked_samplers(_OPEN)  # and their wrappers of torch's backward functions
    return len(removed) - len(kept)


def _caller_names(frame: Any) -> dict:
    """The globals and locals of ``frame``, without keeping its locals alive.

    On Python < 3.13 reading ``f_locals`` of a function frame stores a snapshot dict
    on the frame, which would keep every local tensor alive after a ``del``; the
    snapshot is emptied again (CPython refreshes it from the real locals before any
    write-back, so this never changes a variable).
    """
    names = dict(frame.f_globals)
    local = frame.f_locals
    if local is not frame.f_globals:
        names.update(local)
        if sys.version_info < (3, 13):
            local.clear()
    return names


class trace:
    """Context manager recording torch calls; yields a ``GradReport`` filled at exit.

    ``session``: twins and histories shared across blocks (default: one per process);
    ``namespace``: where variable names come from (default: the caller's globals and
    locals); ``filename``: the code filename of the recorded cell (to find lines);
    ``cell``: the execution count; ``source``: the cell text; ``check``: how much to
    compare with torch (``"sample"``: a long loop's calls 1–4 and powers of two from 16, the others at
    full speed; ``"all"`` or ``True``: every call; ``"none"`` or ``False``: nothing; see
    ``gradmagic.checking``); ``rtol``/``atol``: override the tolerances of ``crosscheck``;
    ``gradcheck``: also check leaf gradients by float64 finite differences.
    """

    def __init__(self, *, session: Optional[Session] = None, namespace: Optional[Mapping[str, Any]] = None,
                 filename: Optional[str] = None, cell: Optional[int] = None, source: Optional[str] = None,
                 check: Any = "sample", rtol: Optional[float] = None, atol: Optional[float] = None,
                 gradcheck: bool = False) -> None:
        self.session = session if session is not None else default_session()
        self.namespace = namespace
        self.frame = sys._getframe(1) if namespace is None else None
        self.source = source
        self.report = GradReport()
        finder = SourceFinder(filename, source)
        self.mode = check_mode(check)
        self.block = Block(cell, finder, self.session.keep_calls, rtol, atol, self.mode != "none", gradcheck)
        self.recorder: Optional[Recorder] = None
        self.paused: list = []  # Recorders of enclosing blocks, paused while this one runs
        self.froze = False
        self.sampling = False  # open_sampler ran (close_sampler must)

    def __enter__(self) -> GradReport:
        # Objects that exist before the block are moved out of the cyclic collector's
        # way while it runs (undone at exit): with torch imported a full collection
        # walks ~10^6 objects (~70 ms), and recording allocates enough to trigger them.
        self.froze = gc.get_freeze_count() == 0
        if self.froze:
            gc.freeze()
        try:
            self._start()
        except Exception as exc:  # gradmagic's failure: the user's block runs unrecorded
            self._abandon()
            self.block.disabled = True
            self.block.note(f"gradmagic could not start recording ({type(exc).__name__}: {exc}); "
                            f"the block ran unrecorded.")
        except BaseException:  # Ctrl-C while starting: leave everything as it was
            self._abandon()
            raise
        return self.report

    def _start(self) -> None:
        skip_gradmagic_in_dynamo()  # (torch.compile in the block: its calls recorded, not compiled)
        removed = _take_recorders_off()
        self.paused = [m for m in removed if any(m is o for o in _OPEN)]
        leaked = len(removed) - len(self.paused)
        if leaked:
            self.block.note(f"removed {leaked} gradmagic recorder(s) left active by an earlier block.")
        if self.paused:
            self.block.note("this block is nested in another recorded block, which paused while it "
                            "ran: the calls made here are in this report only.")
        self.block.first_seq = self.session.seq
        self.session.blocks += 1
        self.recorder = Recorder(self.session, self.block)
        _OPEN.append(self.recorder)
        remove_trackers([m.b.modules for m in _OPEN])  # global module hooks of leaked blocks
        drop_leaked_samplers(_OPEN)  # ... and their samplers
        self.block.modules = ModuleTracker(lambda: self.session.seq, self.block.note).install()
        self.recorder.__enter__()
        self.block.sampler = Sampler(self.recorder, self.block, self.mode)
        open_sampler(self.block.sampler)
        self.sampling = True

    def _abandon(self) -> None:
        """Undo a start that failed half-way (``__exit__`` may not run)."""
        if self.sampling:
            close_sampler(self.block.sampler)
            self.sampling = False
        if self.block.modules is not None:
            self.block.modules.remove()
        _OPEN[:] = [m for m in _OPEN if m is not self.recorder]
        for m in _take_recorders_off():
            if any(m is o for o in _OPEN):
                torch._C._push_on_torch_function_stack(m)
        self._resume()
        if self.froze:
            gc.unfreeze()
            self.froze = False

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            self._pop()
        finally:
            try:
                self._finish(exc_type, exc)
            finally:
                if self.froze:
                    gc.unfreeze()
                self._resume()
                scratch.clear()  # the engine's reusable buffers of this block's loop
                release_free_memory()
        return False

    def _pop(self) -> None:
        """Leave torch's mode stack as it was, whatever happened inside the block (a
        paused outer block records again)."""
        try:
            if self.sampling:  # (back on torch's mode stack, if it left it)
                close_sampler(self.block.sampler)
                self.sampling = False
            self.recorder.__exit__(None, None, None)
        except Exception:
            pass
        finally:
            if self.block.modules is not None:
                self.block.modules.remove()  # torch's global module hooks
            _OPEN[:] = [m for m in _OPEN if m is not self.recorder]
            for m in _take_recorders_off():  # open blocks this one did not pause stay on
                if any(m is o for o in _OPEN) and not any(m is p for p in self.paused):
                    torch._C._push_on_torch_function_stack(m)

    def _resume(self) -> None:
        """Give the paused enclosing blocks their Recorders back (after this block's
        report is built, so that the outer block does not record the report's reads)."""
        for m in self.paused:
            if any(m is o for o in _OPEN):
                torch._C._push_on_torch_function_stack(m)
        self.paused = []

    def _finish(self, exc_type: Any, exc: Any) -> None:
        global _LAST
        b = self.block
        b.elapsed_ms = (time.perf_counter() - b.t0) * 1000.0
        if exc_type is not None:
            b.error = {"type": exc_type.__name__, "message": str(exc)}
        namespace = self.namespace
        if namespace is None and self.frame is not None:
            namespace = _caller_names(self.frame)
        self.frame = None
        try:
            build_report(self.session, b, self.report, namespace, self.source)
        except Exception as err:  # the report must never break the user's code
            self.report.notes.append(f"gradmagic could not build the full report ({type(err).__name__}: {err}).")
            self.report.error = b.error
        finally:
            if b.sampler is not None:  # (a cycle: the sampler holds the block that holds it)
                b.sampler.release()
                b.sampler = None
        self.session.last_report = self.report
        _LAST = self.report
