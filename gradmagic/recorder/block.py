"""What one ``trace()`` block recorded, before it becomes a ``GradReport``.

``Block`` keeps the block's records in *segments* (the ops between two backward
calls) so that a long training loop keeps full detail only for its last few
backward calls; ``BackRec`` is one backward / ``autograd.grad`` call as recorded.

>>> b = Block(cell=None, finder=None, keep_calls=1)
>>> b.add_rec("r1"); b.seal(); b.add_rec("r2"); b.seal(); b.add_rec("r3")
>>> b.kept_recs(), b.pruned
(['r2', 'r3'], 1)
"""
from __future__ import annotations

import time
import weakref
from collections import deque
from typing import Any, Optional

from .flow import FlowLog


#: records per segment; with ``keep_calls`` this bounds the nodes a report draws
MAX_SEGMENT = 2000


class BackRec:
    """One backward or ``autograd.grad`` call (raw; converted by ``build``)."""

    __slots__ = ("index", "kind", "root", "roots", "src", "gradient", "retain", "create", "status",
                 "steps", "checks", "cell", "results", "note", "root_ref", "hooks", "pos")

    def __init__(self, index: int, kind: str, roots: list, src: Any, gradient: Any,
                 retain: bool, create: bool) -> None:
        self.index = index  # session-wide
        self.kind = kind  # "backward" | "autograd.grad" (Block.raised: the torch name, "Tensor.add_")
        self.roots = roots  # Recs
        self.root = roots[0] if roots else None
        self.src = src
        self.gradient = gradient  # ndarray or None
        self.retain = retain
        self.create = create
        self.status = "unchecked"
        self.steps: Optional[list] = None  # engine BackwardStep list while kept
        self.checks: list = []  # (Rec, what, result tuple)
        self.cell: Optional[int] = None
        self.results: list = []
        self.hooks: list = []  # (Rec, gradient it received, what it returned, effect) per tensor hook
        self.note: Optional[str] = None
        self.root_ref: Any = None  # weakref to ``root`` once the call left the kept window
        self.pos = 0  # 0-based among the block's backward calls, those run at full speed included

    def forget_graph(self) -> None:
        """Out of the kept window: keep the verdicts, drop what holds the call's graph
        alive (steps, root records, autograd.grad results, checks of non-leaves), so a
        long loop in one block holds the graphs of its last few calls only."""
        self.steps = None
        if self.root is not None:
            self.root_ref = weakref.ref(self.root)
        self.root, self.roots, self.results, self.hooks = None, [], [], []
        self.checks = [c for c in self.checks if c[0] is not None and c[0].kind in ("leaf", "constant")]

    def root_rec(self) -> Any:
        """The root's record while anything still holds it, else None."""
        return self.root if self.root is not None else (self.root_ref() if self.root_ref else None)


class FailedCall:
    """A ``backward()`` / ``autograd.grad`` call that raised in torch: where it was made and
    the Recs of its roots (outputs) and ``inputs`` (what ``gradmagic.diagnose`` starts from)."""

    __slots__ = ("kind", "src", "roots", "inputs")

    def __init__(self, kind: str, src: Any, roots: list, inputs: list) -> None:
        self.kind = kind  # "backward" | "autograd.grad" (Block.raised: the torch name, "Tensor.add_")
        self.src = src  # (filename, line) or None
        self.roots = roots
        self.inputs = inputs


class HookSite:
    """A tensor hook the block registered: the hooked tensor's Rec, the hook's name, where it
    is defined (``(filename, line)`` or None) and where it was registered."""

    __slots__ = ("rec", "name", "defined", "src")

    def __init__(self, rec: Any, name: str, defined: Any, src: Any) -> None:
        self.rec = rec
        self.name = name  # ``hook.__name__`` ("<lambda>"), as torch's messages name it
        self.defined = defined
        self.src = src


class NoneRead:
    """One read of ``t.grad`` that gave None: ``t``'s Rec and its autograd state at that moment.

    ``data_of`` is the Rec of the tensor that ``t`` is the ``.data`` of, if it is one."""

    __slots__ = ("rec", "src", "is_leaf", "requires_grad", "retains_grad", "data_of", "seq")

    def __init__(self, rec: Any, src: Any, is_leaf: bool, requires_grad: bool, retains_grad: bool,
                 data_of: Any, seq: int) -> None:
        self.rec = rec
        self.src = src
        self.is_leaf = is_leaf
        self.requires_grad = requires_grad
        self.retains_grad = retains_grad
        self.data_of = data_of
        self.seq = seq  # the session's record counter at the read (events after it came later)


class Block:
    """Per-``trace()`` state (see module docstring)."""

    def __init__(self, cell: Optional[int], finder: Any, keep_calls: int = 3,
                 rtol: Optional[float] = None, atol: Optional[float] = None,
                 check: bool = True, gradcheck: bool = False) -> None:
        self.cell = cell
        self.finder = finder
        self.keep_calls = max(1, keep_calls)
        self.rtol = rtol
        self.atol = atol
        self.check = check
        self.gradcheck = gradcheck
        self.segments: deque = deque([[]])
        self.pruned = 0  # records dropped with old segments
        self.calls: list = []  # BackRec of each call mirrored in this block
        self.ncalls = 0  # backward / autograd.grad calls, those run at full speed included
        self.sampler: Any = None  # the check budget (sampling.Sampler) under check="sample"
        self.used: dict = {}  # id(Rec) -> Rec of earlier records used as inputs here
        self.touched: dict = {}  # id(Rec) -> leaf Rec that got an event in this block
        self.notes: list = []
        self.unsupported: dict = {}  # torch name -> None (ordered set)
        self.differ: list = []  # (seq, Rec, what, result) of every disagreement, capped
        self.counts = {"agree": 0, "differ": 0, "unchecked": 0}
        self.tally: dict = {}  # (what, status) -> checks, for the report's coverage
        self.hook_effects: dict = {}  # (id(rec), effect) -> (rec, effect, kind) of mirrored hooks
        self.too_large = 0  # tensors above the twin limit drawn in this block
        self.disabled = False
        self.t0 = time.perf_counter()
        self.elapsed_ms = 0.0
        self.error: Optional[dict] = None
        self.failed: Optional[FailedCall] = None  # the backward / autograd.grad call torch refused
        self.none_reads: list = []  # NoneRead of each ``t.grad`` read that gave None
        self.raised: Optional[FailedCall] = None  # the last other torch call that raised (kind: its name)
        self.hook_sites: list = []  # HookSite of each tensor hook registered here (for the diagnosis)
        self.first_seq = 0
        self.ops = 0
        self.modules: Any = None  # the ModuleTracker of the block's nn.Module calls (modules.py)
        self.flow = FlowLog()  # each leaf's gradient size per backward call (flow.py)

    def add_rec(self, rec: Any) -> None:
        """Record created in this block, in forward order (a segment holds at most
        ``MAX_SEGMENT`` records: a long loop without backward is cut the same way)."""
        seg = self.segments[-1]
        seg.append(rec)
        if len(seg) >= MAX_SEGMENT:
            self.seal()

    def seal(self) -> None:
        """Close the current segment (a backward call happened); drop the oldest."""
        self.segments.append([])
        while len(self.segments) > self.keep_calls + 1:
            self.pruned += len(self.segments.popleft())

    def kept_recs(self) -> list:
        """Records of the kept segments, in forward order."""
        return [r for seg in self.segments for r in seg]

    def add_call(self, call: BackRec) -> None:
        """A new backward call; older calls beyond ``keep_calls`` drop their steps."""
        call.cell = self.cell
        self.calls.append(call)
        if len(self.calls) > self.keep_calls:
            self.calls[-self.keep_calls - 1].forget_graph()

    def note(self, text: str) -> None:
        """Add a human sentence to the report (once)."""
        if text not in self.notes and len(self.notes) < 50:
            self.notes.append(text)

    def downgrade(self, results: list, detail: str) -> list:
        """Turn the ``differ`` results in ``results`` (``(rec, what, result)`` triples, as in
        ``BackRec.checks``) into ``unchecked`` ones saying ``detail``; the tallies and the
        kept disagreements follow. Returns the new triples."""
        out = []
        for rec, what, res in results:
            if res is not None and res[0] == "differ":
                self.counts["differ"] -= 1
                self.counts["unchecked"] = self.counts.get("unchecked", 0) + 1
                self.tally[(what, "differ")] -= 1
                self.tally[(what, "unchecked")] = self.tally.get((what, "unchecked"), 0) + 1
                self.differ = [d for d in self.differ if d[3] is not res]
                res = ("unchecked", res[1], res[2], res[3], res[4],
                       (res[5] + "; " if res[5] else "") + detail)
            out.append((rec, what, res))
        return out

    def count(self, status: str, seq: int, rec: Any, what: str, result: Any) -> None:
        """Tally one check; keep disagreements (the first 100) for the report."""
        self.counts[status] = self.counts.get(status, 0) + 1
        key = (what, status)
        self.tally[key] = self.tally.get(key, 0) + 1
        if status == "differ" and len(self.differ) < 100:
            self.differ.append((seq, rec, what, result))
