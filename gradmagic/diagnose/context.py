"""``Context``: what every detector reads — the session, the block, the report being built
and its node ids — with the few lookups they share (lines, names, the recorded graph).

>>> from gradmagic.recorder.block import Block
>>> from gradmagic.recorder.twins import Session
>>> from gradmagic.report import GradReport
>>> ctx = Context(Session(), Block(cell=3, finder=None), GradReport(), {})
>>> ctx.line(("<cell>", 2, "y = x * 2"), "backward", cell=3)
{'cell': 3, 'line': 2, 'code': 'y = x * 2', 'role': 'backward'}
>>> ctx.severity
'warning'
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from gradmagic.report import GradReport


class Context:
    """One block's recording, seen by the detectors of ``gradmagic.diagnose``."""

    def __init__(self, session: Any, block: Any, report: GradReport, ids: dict,
                 module_hooks: Iterable[Any] = ()) -> None:
        self.s = session
        self.b = block
        self.report = report
        self.ids = ids  # id(Rec) -> report node id
        self.module_hooks = list(module_hooks)  # ``module_hooks.ModuleHook`` of the modules called
        error = block.error or {}
        self.error_type: Optional[str] = error.get("type")
        self.error: str = error.get("message") or ""

    @property
    def severity(self) -> str:
        """"error" when the recorded code raised, else "warning"."""
        return "error" if self.error_type else "warning"

    # ----- nodes and names -----------------------------------------------------------------
    def node_id(self, rec: Any) -> Optional[str]:
        """The report node id of ``rec`` (None when the report does not draw it)."""
        return self.ids.get(id(rec)) if rec is not None else None

    def node_ids(self, recs: Iterable[Any]) -> list:
        """The drawn node ids of ``recs``, each once, in the order given."""
        out: list = []
        for r in recs:
            n = self.node_id(r)
            if n is not None and n not in out:
                out.append(n)
        return out

    def name(self, rec: Any) -> Optional[str]:
        """The variable name the user gave ``rec``'s tensor, if any."""
        if rec is None:
            return None
        return rec.name or (rec.aliases[0] if rec.aliases else None)

    def label(self, rec: Any) -> str:
        """How a sentence names ``rec``: its variable, else its backward node or torch call."""
        node = rec.enode if rec is not None else None
        return self.name(rec) or (node.name if node is not None else None) or \
            (rec.torch_op if rec is not None and rec.torch_op else "a tensor")

    def grad_of(self, rec: Any) -> str:
        """``"x.grad"``, or ``"the gradient of <what made it>"`` for an unnamed tensor."""
        name = self.name(rec)
        return f"{name}.grad" if name else f"the gradient of {self.label(rec)}"

    # ----- lines -------------------------------------------------------------------------------
    def code(self, src: Any) -> Optional[str]:
        """The stripped text of a ``(filename, line[, code])`` location."""
        if src is None:
            return None
        if len(src) > 2:
            return src[2]
        finder = self.b.finder
        return finder.code(src[0], src[1]) if finder is not None else None

    def line(self, src: Any, role: str, cell: Any = "block") -> Optional[dict]:
        """The contract's Source dict of ``src`` plus ``role`` (None when ``src`` is None);
        ``cell`` defaults to this block's cell."""
        if src is None:
            return None
        return {"cell": self.b.cell if cell == "block" else cell, "line": src[1], "code": self.code(src),
                "role": role}

    def rec_line(self, rec: Any, role: str) -> Optional[dict]:
        """The line where ``rec`` was computed, with ``role``."""
        return self.line(rec.src, role, cell=rec.cell) if rec is not None else None

    # ----- the recorded graph ------------------------------------------------------------------
    def ancestors(self, roots: Iterable[Any]) -> dict:
        """``id(Rec) -> Rec`` of ``roots`` and every Rec they were computed from."""
        seen: dict = {}
        stack = [r for r in roots if r is not None]
        while stack:
            r = stack.pop()
            if id(r) in seen:
                continue
            seen[id(r)] = r
            stack.extend(i for i in r.inputs if i is not None and id(i) not in seen)
        return seen

    def failed_graph(self) -> dict:
        """``id(Rec) -> Rec`` of the graph behind the backward call torch refused: its roots'
        ancestors, or every kept Rec when the failed call's roots are not known."""
        failed = self.b.failed
        if failed is not None and failed.roots:
            return self.ancestors(failed.roots)
        return {id(r): r for r in self.b.kept_recs()}

    def descendants(self, rec: Any) -> list:
        """The kept Recs of this block computed (directly or not) from ``rec``, in forward order."""
        found = {id(rec)}
        out = []
        for r in self.b.kept_recs():
            if any(i is not None and id(i) in found for i in r.inputs):
                found.add(id(r))
                out.append(r)
        return out


def compact(lines: Iterable[Optional[dict]]) -> list:
    """``lines`` without the missing ones and without repeating a (cell, line, role).

    >>> compact([None, {"cell": 1, "line": 2, "code": "a", "role": "r"},
    ...          {"cell": 1, "line": 2, "code": "a", "role": "r"}])
    [{'cell': 1, 'line': 2, 'code': 'a', 'role': 'r'}]
    """
    out: list = []
    seen = set()
    for ln in lines:
        if ln is None:
            continue
        key = (ln["cell"], ln["line"], ln["role"])
        if key not in seen:
            seen.add(key)
            out.append(ln)
    return out
