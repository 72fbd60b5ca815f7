"""Accumulation history of one leaf: every change of its ``.grad`` and value.

A ``History`` lives as long as its leaf (across the cells of one session). It keeps
the newest ``limit`` events and counts the dropped ones, and it knows whether the
gradient summed contributions of two or more backward calls without being cleared
in between — the classic "ran backward twice" surprise, reported as a hint.

>>> h = History(limit=3)
>>> _ = h.add("backward", call=0, before=None)
>>> ev = h.add("backward", call=1, before=[1.0])
>>> ev.accumulated, h.accumulated_since_clear
(True, 2)
>>> _ = h.add("zero_"); h.accumulated_since_clear
0
>>> _ = h.add("update"); len(h.events), h.dropped
(3, 1)
"""
from __future__ import annotations

from collections import deque
from typing import Any, Optional

#: event values up to this many elements are kept as arrays and summarised when a
#: report is built; larger ones are summarised at once (histories stay small)
LAZY_VALUE_LIMIT = 4096
#: events kinds that leave ``.grad`` cleared (zeroed, removed or replaced).
CLEARING = frozenset({"zero_", "set_none", "set"})


class RawEvent:
    """One event as recorded: values are already **Value** dicts (or None)."""

    __slots__ = ("kind", "call", "cell", "where", "before", "after", "added", "accumulated", "seq")

    def __init__(self, kind: str, call: Optional[int], cell: Optional[int], where: Any,
                 before: Any, after: Any, added: Any, accumulated: bool, seq: int) -> None:
        self.kind = kind
        self.call = call  # session-wide backward index, or None
        self.cell = cell
        self.where = where  # (filename, line, code) or None
        self.before = before
        self.after = after
        self.added = added
        self.accumulated = accumulated  # summed onto a previous backward without clearing
        self.seq = seq  # session-wide order, to select a block's events


class History:
    """Bounded event list of one leaf (see module docstring)."""

    __slots__ = ("events", "dropped", "accumulated_since_clear", "_seq")

    def __init__(self, limit: int = 200) -> None:
        self.events: deque = deque(maxlen=limit)
        self.dropped = 0
        self.accumulated_since_clear = 0  # backward calls summed into the current .grad
        self._seq = 0

    def add(self, kind: str, call: Optional[int] = None, cell: Optional[int] = None,
            where: Any = None, before: Any = None, after: Any = None, added: Any = None,
            seq: Optional[int] = None) -> RawEvent:
        """Append one event and update the accumulation counter."""
        accumulated = False
        if kind == "backward":
            if before is None:
                self.accumulated_since_clear = 1
            else:
                self.accumulated_since_clear += 1
                accumulated = self.accumulated_since_clear >= 2
        elif kind in CLEARING:
            self.accumulated_since_clear = 0
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self._seq += 1
        ev = RawEvent(kind, call, cell, where, before, after, added, accumulated,
                      self._seq if seq is None else seq)
        self.events.append(ev)
        return ev
