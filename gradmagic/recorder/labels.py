"""Labels for nodes that are what they are because of where their values came from:
``detach()``, ``x.data``, ``torch.tensor(y)`` and ``.item()`` numbers made into tensors.

Such a node has no backward node to name it (``MulBackward0``), so the report used to draw
it as a nameless "op" or an anonymous constant. ``relabel`` gives it a ``label`` that says
what it is and that no gradient flows through it. It runs once per report, over the nodes
only; during recording the costs are ``note_data_of`` when a ``.data`` alias is first seen and
``note_data_write`` when values are written through one (``w.data.mul_(2)``, ``w.data = v``):
autograd never sees such a write, so ``gradmagic.diagnose.data_write`` tells when a backward
used the new values.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> with trace(session=Session()) as rep:
...     x = torch.ones(2, requires_grad=True)
...     y = x * 2
...     d = y.detach()
...     a = y.data + 1
...     c = torch.tensor(y.sum().item())
>>> [n.label for n in rep.nodes if n.name in ("d", "c")]
['detached copy of y (no gradient flows back)', 'y.sum().item() as a constant (no history)']
>>> next(n.label for n in rep.nodes if n.torch_op is None and n.kind == "constant")
"y.data (shares y's values, no history)"
"""
from __future__ import annotations

import hashlib
import linecache
import re
import weakref
from typing import Any, Iterable, Optional

import numpy as np

#: torch calls whose result is a copy of a tensor's values without its history
DETACH = frozenset({"Tensor.detach", "torch.detach"})
REWRAP = frozenset({"torch.tensor", "torch.as_tensor", "torch.Tensor", "Tensor.new_tensor", "torch.FloatTensor",
                    "torch.DoubleTensor"})
#: Rec of a ``x.data`` alias -> Rec of ``x`` (weak: gone with the alias's record)
DATA_OF: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
#: Rec of ``x`` -> ``DataWrites``: writes into x through ``x.data`` that autograd never saw
#: (weak: gone with x's record; read by ``gradmagic.diagnose.data_write``)
DATA_WRITES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
#: the most ``.data`` writes remembered per tensor (a training loop writes every parameter each step)
MAX_DATA_WRITES = 8
_NAME = re.compile(r"[A-Za-z_]\w*")
_ITEM = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<expr>.+?)\.item\(\)\s*$")


def note_data_of(rec: Any, base_rec: Any) -> None:
    """``rec`` is the record of ``x.data`` for the ``x`` recorded as ``base_rec``."""
    if base_rec is not None:
        DATA_OF[rec] = base_rec


class DataWrite:
    """One write into ``x`` through ``x.data`` (``x.data.mul_(2)``, ``x.data = v``): where, when
    (the session's record and backward counters then) and x's values before and after it
    (``fingerprint``s: equal fingerprints, equal values)."""

    __slots__ = ("src", "cell", "seq", "calls", "rebind", "before", "after")

    def __init__(self, src: Any, cell: Optional[int], seq: int, calls: int, rebind: bool,
                 before: Any, after: Any) -> None:
        self.src = src
        self.cell = cell
        self.seq = seq  # records up to this one were made before the write
        self.calls = calls  # backward calls from this index on ran after it
        self.rebind = rebind  # ``x.data = v``: x got new memory (what saved x's old memory keeps it)
        self.before = before
        self.after = after


class DataWrites:
    """The last ``MAX_DATA_WRITES`` ``DataWrite`` of one tensor; ``dropped_seq``: the ``seq``
    of the newest one dropped (-1: none)."""

    __slots__ = ("writes", "dropped_seq")

    def __init__(self) -> None:
        self.writes: list = []
        self.dropped_seq = -1


def note_data_write(session: Any, rec: Any, tensor: Any, src: Any, cell: Optional[int],
                    rebind: bool = False) -> None:
    """``tensor`` (recorded as ``rec``, whose twin still holds the values before the write) was
    just written through ``tensor.data`` at ``src``; ``rebind``: by ``tensor.data = v``.
    Called by the recorder before it re-syncs the twin; costs a copy of the tensor's values."""
    if rec is None or rec.too_large or rec.et is None:
        return
    from .twins import copy_numpy  # (twins imports this module)
    entry = DATA_WRITES.get(rec)
    if entry is None:
        entry = DATA_WRITES[rec] = DataWrites()
    if len(entry.writes) >= MAX_DATA_WRITES:
        entry.dropped_seq = entry.writes.pop(0).seq
    entry.writes.append(DataWrite(src, cell, session.seq, session.calls, rebind,
                                  fingerprint(rec.et.data), fingerprint(copy_numpy(tensor))))


def fingerprint(arr: Any) -> tuple:
    """What tells two arrays' values apart: shape, dtype and the bytes (a 16-byte digest of
    them beyond 1 KiB, so that the writes a training loop makes stay small).

    >>> import numpy as np
    >>> fingerprint(np.ones(2)) == fingerprint(np.ones(2)), fingerprint(np.ones(2)) == fingerprint(np.zeros(2))
    (True, False)
    """
    a = np.ascontiguousarray(arr)
    data = a.tobytes()
    return (a.shape, a.dtype.str, data if len(data) <= 1024 else hashlib.blake2b(data, digest_size=16).digest())


def relabel(nodes: list, recs: list, finder: Any) -> None:
    """Give each node of ``nodes`` (made from ``recs``, in order) that has no label one that
    says what it is, when it is a detached copy, a ``.data`` alias or re-wrapped values."""
    known: Optional[set] = None
    for node, rec in zip(nodes, recs):
        if node.label is not None:
            continue
        if (rec.torch_op or "") in REWRAP and known is None:
            known = {n.name for n in nodes if n.name} | {a for n in nodes for a in n.aliases}
        node.label = origin_label(rec, known or set(), finder)


def origin_label(rec: Any, known: set, finder: Any = None) -> Optional[str]:
    """What ``rec`` is, said through where its values came from (None: nothing to say).

    ``known`` holds the names of the report's tensors (to tell ``torch.tensor(y)`` from
    ``torch.tensor(s)`` of a number).
    """
    op = rec.torch_op or ""
    if op in DETACH:
        return f"detached copy of {who(rec.inputs[0] if rec.inputs else None)} (no gradient flows back)"
    base = DATA_OF.get(rec)
    if base is not None:
        name = who(base)
        return f"{name}.data (shares {name}'s values, no history)"
    if op in REWRAP:
        return _rewrap_label(rec, op, known, finder)
    return None


def who(rec: Any) -> str:
    """How a label names ``rec``: its variable, else its backward node, else its torch call.

    >>> who(None)
    'a tensor'
    """
    if rec is None:
        return "a tensor"
    node = rec.enode
    return rec.name or (rec.aliases[0] if rec.aliases else None) or (node.name if node is not None else None) \
        or rec.torch_op or "a tensor"


def _rewrap_label(rec: Any, op: str, known: set, finder: Any) -> Optional[str]:
    code = _code(rec.src, finder)
    arg = call_argument(code or "", op.rsplit(".", 1)[-1])
    if arg is None:
        return None
    call = f"{op.replace('Tensor.', 't.')}({arg})"
    if ".item()" in arg:
        return f"{arg} as a constant (no history)"
    if _NAME.fullmatch(arg):
        if arg in known:
            return f"{call}: a copy without history"
        item = _item_source(rec.src, arg, finder)
        if item is not None:
            return f"{item}.item() as a constant (no history)"
        return None
    if ".numpy()" in arg or ".tolist()" in arg or ".detach()" in arg or ".data" in arg:
        return f"{call}: values without history"
    return None


def call_argument(code: str, func: str) -> Optional[str]:
    """The text of the first argument of the call ``func(...)`` in ``code`` (balanced brackets).

    >>> call_argument("c = torch.tensor(y.sum().item(), dtype=torch.float32)", "tensor")
    'y.sum().item()'
    >>> call_argument("z = x * 2", "tensor") is None
    True
    """
    m = re.search(rf"\b{re.escape(func)}\(", code)
    if m is None:
        return None
    depth, start = 0, m.end()
    for k in range(start, len(code)):
        ch = code[k]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return code[start:k].strip() or None
            depth -= 1
        elif ch == "," and depth == 0:
            return code[start:k].strip() or None
    return None


def _code(src: Any, finder: Any) -> Optional[str]:
    if src is None:
        return None
    if len(src) > 2:
        return src[2]
    return finder.code(src[0], src[1]) if finder is not None else None


def _item_source(src: Any, name: str, finder: Any) -> Optional[str]:
    """``expr`` when a line above ``src`` reads ``name = expr.item()`` (the nearest one)."""
    if src is None:
        return None
    lines = _lines(src[0], finder)
    for text in reversed(lines[: max(0, src[1] - 1)]):
        m = _ITEM.match(text)
        if m is not None and m.group("name") == name:
            return m.group("expr").strip()
        if re.match(rf"^\s*{re.escape(name)}\s*=", text):
            return None  # rebound by something else first
    return None


def _lines(filename: str, finder: Any) -> Iterable[str]:
    if finder is not None and finder.lines is not None and filename == finder.filename:
        return list(finder.lines)
    return linecache.getlines(filename)
