"""Twins: the engine tensor that mirrors each torch tensor, and what was recorded.

* ``Rec`` — one recorded node (a leaf, a constant, an op, an opaque call or a node
  internal to the engine), session-wide, in forward order (``seq``).
* ``Twin`` — per torch tensor (in an ``IdentityMap``: weak and keyed by identity, as
  ``torch.utils.weak.WeakIdKeyDictionary``): its engine tensor, the torch ``_version``
  it was synced at and the ``Rec`` that produced its current value.
* ``Session`` — twins, records and leaf histories shared by the ``trace()`` blocks of
  one shell.

>>> import torch
>>> s = Session()
>>> x = torch.arange(3.0)
>>> tw = s.twin(x)
>>> tw.rec.kind, tw.et.data.tolist()
('constant', [0.0, 1.0, 2.0])
>>> s.twin(x) is tw
True
"""
from __future__ import annotations

import weakref
from collections import deque
from typing import Any, Optional

import numpy as np
import torch

from gradmagic.engine import Tensor as ETensor

from .history import History
from .labels import note_data_of

_BF16 = torch.bfloat16
#: tensors with more elements than this get no engine copy (``Session.twin_limit``): a
#: zero-strided stand-in takes their place and everything computed from them is
#: reported "unchecked: too large", so recording never doubles a huge tensor's memory
TWIN_LIMIT = 1 << 24


class TooLarge(Exception):
    """An op touches a tensor above the twin limit: it is drawn, not recomputed."""


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """torch's value as an ndarray (shares memory when it can; bf16 becomes float32).

    Read through DLPack, not ``Tensor.numpy()``: ``numpy()`` marks the tensor's storage
    as never resizable again, so merely looking at a tensor would make a later
    ``t.resize_(...)`` in the user's code fail.

    >>> t = torch.ones(2, requires_grad=True)
    >>> to_numpy(t).tolist()
    [1.0, 1.0]
    >>> t.untyped_storage().resizable()
    True
    """
    if t.is_cpu and not t.is_conj() and not t.is_neg() and not _is_zerotensor(t):  # the common case
        try:
            return _from_dlpack(_Capsule(_to_dlpack(t)))
        except (TypeError, RuntimeError, BufferError, ValueError, AttributeError):
            pass
    d = t.detach()
    if _is_zerotensor(d):  # torch's storage-less zeros (backward of sign, ...): no memory to read
        d = torch.zeros(d.shape, dtype=d.dtype)
    if d.device.type != "cpu":
        d = d.cpu()
    if d.dtype is _BF16:
        d = d.float()
    if d.is_conj():
        d = d.resolve_conj()
    if d.is_neg():
        d = d.resolve_neg()
    return d.numpy()


_from_dlpack = np.from_dlpack
_is_zerotensor = getattr(torch.Tensor, "_is_zerotensor", lambda t: False)
# torch's C-level exporter: what ``Tensor.__dlpack__`` calls after checks that cost
# three times more than the export itself (this module only reads the array)
_to_dlpack = getattr(torch._C, "_to_dlpack", None)


class _Capsule:
    """A ready DLPack capsule, in the shape ``np.from_dlpack`` takes (CPU only)."""

    __slots__ = ("capsule",)

    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, **_: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple:
        return (1, 0)  # kDLCPU


_DTYPES: dict = {}


def numpy_dtype(dt: torch.dtype) -> np.dtype:
    """NumPy's dtype for a torch dtype, as the twins hold it (bfloat16 becomes float32).

    >>> numpy_dtype(torch.int64), numpy_dtype(torch.bfloat16)
    (dtype('int64'), dtype('float32'))
    """
    got = _DTYPES.get(dt)
    if got is None:
        got = _DTYPES[dt] = to_numpy(torch.empty((), dtype=dt)).dtype
    return got


def copy_numpy(t: torch.Tensor) -> np.ndarray:
    """An owned copy of torch's value (twins never share memory with torch)."""
    return np.array(to_numpy(t), copy=True)


class IdentityMap:
    """A weak map keyed by object identity (the semantics of
    ``torch.utils.weak.WeakIdKeyDictionary``, with ~10× cheaper lookups on the hot path).

    An entry goes away when its key is deallocated (a weakref callback, run before the
    key's id can be reused), and every lookup checks that the stored weak reference
    still points at the very object asked for, so an id alone is never trusted.

    >>> m = IdentityMap(); t = torch.zeros(1); m[t] = "twin"
    >>> m.get(t), t in m, len(m)
    ('twin', True, 1)
    >>> del t; len(m)
    0
    """

    __slots__ = ("_d", "_cb")

    def __init__(self) -> None:
        d: dict = {}
        self._d = d

        def drop(ref: Any, d: dict = d) -> None:
            entry = d.get(ref.key)
            if entry is not None and entry[0] is ref:
                del d[ref.key]
        self._cb = drop

    def get(self, key: Any, default: Any = None) -> Any:
        entry = self._d.get(id(key))
        if entry is not None and entry[0]() is key:
            return entry[1]
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        self._d[id(key)] = (weakref.KeyedRef(key, self._cb, id(key)), value)

    def __delitem__(self, key: Any) -> None:
        entry = self._d.get(id(key))
        if entry is None or entry[0]() is not key:
            raise KeyError(key)
        del self._d[id(key)]

    def __contains__(self, key: Any) -> bool:
        entry = self._d.get(id(key))
        return entry is not None and entry[0]() is key

    def __len__(self) -> int:
        return len(self._d)

    def items(self) -> list:
        """Live ``(key, value)`` pairs."""
        out = []
        for ref, value in list(self._d.values()):
            key = ref()
            if key is not None:
                out.append((key, value))
        return out


class WeakValueIndex:
    """``key -> value`` with the value held weakly: the semantics of
    ``weakref.WeakValueDictionary`` (an entry goes when its value is freed) at a third
    of the cost per lookup, for the per-op indexes engine node/tensor id -> ``Rec``
    (a ``Rec`` keeps its node and tensor alive, so their ids stay unique meanwhile).

    >>> class V: pass
    >>> index, v = WeakValueIndex(), V()
    >>> index[7] = v
    >>> index.get(7) is v, 7 in index, len(index)
    (True, True, 1)
    >>> del v; index.get(7), len(index)
    (None, 0)
    """

    __slots__ = ("_d", "_cb")

    def __init__(self) -> None:
        d: dict = {}
        self._d = d

        def drop(ref: Any, d: dict = d) -> None:
            if d.get(ref.key) is ref:
                del d[ref.key]
        self._cb = drop

    def __setitem__(self, key: Any, value: Any) -> None:
        self._d[key] = weakref.KeyedRef(value, self._cb, key)

    def get(self, key: Any, default: Any = None) -> Any:
        ref = self._d.get(key)
        if ref is None:
            return default
        value = ref()
        return default if value is None else value

    def __contains__(self, key: Any) -> bool:
        ref = self._d.get(key)
        return ref is not None and ref() is not None

    def __len__(self) -> int:
        return len(self._d)


def map_tensors(obj: Any, fn: Any) -> Any:
    """``obj`` with each torch tensor replaced by ``fn(tensor)``, through lists and tuples,
    and torch dtypes by NumPy's (the engine-side arguments of a call).

    >>> map_tensors((torch.ones(1), [2, torch.float32]), lambda t: "T")
    ('T', [2, dtype('float32')])
    """
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if type(obj) in (list, tuple):
        conv = [map_tensors(o, fn) for o in obj]
        return conv if type(obj) is list else tuple(conv)
    if isinstance(obj, torch.dtype):
        return numpy_dtype(obj)
    return obj


class Rec:
    """One recorded node. ``kind``: leaf, constant, op, opaque or internal."""

    __slots__ = (
        "seq", "kind", "op", "torch_op", "inputs", "et", "enode", "arr", "tref", "src", "cell",
        "status", "err", "check", "name", "aliases", "label", "hist", "grad_owner", "retained",
        "upstream_opaque", "grad_sync", "too_large", "tdtype", "grad_unchecked", "__weakref__",
    )

    def __init__(self, seq: int, kind: str, et: Optional[ETensor], arr: Any, src: Any,
                 cell: Optional[int], op: Optional[str] = None, torch_op: Optional[str] = None,
                 inputs: tuple = ()) -> None:
        self.seq = seq
        self.kind = kind
        self.op = op
        self.torch_op = torch_op
        self.inputs = inputs  # Recs (or None) in the order of the call's tensor arguments
        self.et = et
        self.enode = et.grad_fn if et is not None else None
        self.arr = arr  # the value when recorded (snapshot for later in-place changes)
        self.tref = None  # weakref to the torch tensor (leaves, retained tensors)
        self.src = src  # (filename, line) or None
        self.cell = cell
        self.status = "unchecked"
        self.err = None
        self.check = None  # the value Check tuple, when one was made
        self.name: Optional[str] = None
        self.aliases: list = []
        self.label: Optional[str] = None
        self.hist: Optional[History] = None
        self.grad_owner = None  # for a ``x.grad`` constant: the Rec of x
        self.grad_unchecked = False  # its .grad came (partly) through what the engine does not mirror
        self.retained = False
        self.upstream_opaque = False  # an opaque or unrecorded node lies above (gradients unchecked)
        self.grad_sync = None  # (weakref to torch's .grad, its _version) when the engine's equals it
        self.too_large = False  # a stand-in above the twin limit: no value, never recomputed
        self.tdtype: Optional[str] = None  # torch's dtype where the twin's differs (bfloat16)

    def mark_grad_synced(self, g: Optional[torch.Tensor]) -> None:
        """The engine's ``.grad`` now equals torch's ``g`` bit for bit (None: unknown).
        ``grad_sync`` False (torch's .grad memory was handed out) is never overwritten."""
        if self.grad_sync is not False:
            self.grad_sync = None if g is None else (weakref.ref(g), g._version)

    def grad_synced(self, g: torch.Tensor) -> bool:
        """True while torch's ``g`` is unchanged since ``mark_grad_synced(g)``: the
        engine's ``.grad`` need not be copied from it again."""
        s = self.grad_sync
        return bool(s) and s[0]() is g and s[1] == g._version

    def __repr__(self) -> str:
        return f"<Rec {self.seq} {self.kind} {self.op or self.torch_op} {self.name}>"


class PastCall:
    """A backward call as ``Session.recent_calls`` keeps it (no arrays, roots held weakly)."""

    __slots__ = ("kind", "src", "cell", "retain", "seq", "roots")

    def __init__(self, kind: str, src: Any, cell: Optional[int], retain: bool, seq: int,
                 roots: list) -> None:
        self.kind = kind  # "backward" | "autograd.grad"
        self.src = src  # (filename, line, code) or None
        self.cell = cell
        self.retain = retain
        self.seq = seq  # the session's record counter when the call was made
        self.roots = roots  # weakrefs to the root Recs


class Twin:
    """The engine side of one torch tensor."""

    __slots__ = ("et", "version", "rec", "exposed")

    def __init__(self, et: ETensor, version: int, rec: Rec) -> None:
        self.et = et
        self.version = version
        self.rec = rec
        self.exposed = False  # torch's memory was handed out (.numpy()): compare values on use


class Session:
    """State shared by the recorded blocks of one shell (see module docstring).

    ``keep_calls``: backward calls per block whose full graph and steps are kept;
    ``event_limit``: events kept per leaf; ``value_limit``: see ``values.summarize``;
    ``twin_limit``: tensors with more elements get a stand-in, not a copy (``TWIN_LIMIT``).
    """

    def __init__(self, keep_calls: int = 3, event_limit: int = 200, value_limit: int = 64,
                 twin_limit: int = TWIN_LIMIT) -> None:
        self.keep_calls = keep_calls
        self.event_limit = event_limit
        self.value_limit = value_limit
        self.twin_limit = twin_limit
        self.stand_ins = 0  # stand-in twins made so far (0: no op can touch one)
        self.twins = IdentityMap()  # torch tensor -> Twin
        self.grad_owner = IdentityMap()  # torch .grad tensor -> Rec of its leaf
        self.data_alias = IdentityMap()  # result of t.data -> weakref(t)
        #: tensor written through its ``.data`` -> ``seq`` then: the twins of its views made
        #: before are stale (``.data`` has a version counter of its own, so theirs did not move)
        self.data_written = IdentityMap()
        self.by_node = WeakValueIndex()  # id(engine Node) -> Rec
        self.by_tensor = WeakValueIndex()  # id(engine Tensor) -> Rec
        self.seq = 0
        self.opaque = 0  # opaque records made so far (0: no gradient can bypass the engine)
        self.calls = 0  # session-wide backward call counter
        self.blocks = 0
        self.last_report: Any = None
        self.hook_logs: list = []  # weak references to the HookLogs of mirrored torch hooks
        self.hook_seen: list = []  # (Replay, engine gradient, torch's, returned) of one backward
        self.post_hooked: set = set()  # ids of leaf Recs with a post-accumulate-grad hook
        #: the last backward / autograd.grad calls, across blocks (``remember_call``)
        self.recent_calls: deque = deque(maxlen=16)

    # ----- records -------------------------------------------------------------------
    def new_rec(self, kind: str, et: Optional[ETensor], arr: Any, src: Any, cell: Optional[int],
                **kw: Any) -> Rec:
        """A new ``Rec`` in forward order, registered for lookups from engine nodes."""
        self.seq += 1
        rec = Rec(self.seq, kind, et, arr, src, cell, **kw)
        if rec.enode is not None:
            self.by_node[id(rec.enode)] = rec
        return rec

    def leaf_rec(self, t: torch.Tensor, et: ETensor, src: Any, cell: Optional[int],
                 torch_op: Optional[str] = None) -> Rec:
        """A leaf (requires grad) or constant record for torch tensor ``t``."""
        kind = "leaf" if et.requires_grad else "constant"
        rec = self.new_rec(kind, et, et.data, src, cell, torch_op=torch_op)
        self.watch(rec, t)
        if et.requires_grad:
            self.make_leaf(rec, src, cell)
        return rec

    def watch(self, rec: Rec, t: torch.Tensor) -> None:
        """Remember torch's tensor (weakly) and map the engine tensor back to ``rec``."""
        rec.tref = weakref.ref(t)
        self.by_tensor[id(rec.et)] = rec

    def make_leaf(self, rec: Rec, src: Any, cell: Optional[int], code: Optional[str] = None) -> None:
        """Turn ``rec`` into a leaf that requires grad, with a ``created`` event."""
        rec.kind = "leaf"
        if rec.hist is None:
            rec.hist = History(self.event_limit)
            self.seq += 1
            rec.hist.add("created", cell=cell, where=src, seq=self.seq)

    def remember_call(self, call: Any, finder: Any) -> None:
        """Keep a light record of a backward call (weak references to its roots, its line and
        whether it kept the graph), so a later "backward through the graph a second time" can
        name the call that freed the graph, also from an earlier cell."""
        src = call.src
        if src is not None and len(src) == 2 and finder is not None:
            src = (*src, finder.code(*src))
        self.recent_calls.append(PastCall(call.kind, src, call.cell, call.retain, self.seq,
                                          [weakref.ref(r) for r in call.roots if r is not None]))

    # ----- twins ---------------------------------------------------------------------
    def twin(self, t: torch.Tensor, src: Any = None, cell: Optional[int] = None) -> Twin:
        """The up-to-date twin of ``t``, made (as a leaf or constant) on first sight."""
        tw = self.twins.get(t)
        if tw is not None:
            if tw.version == t._version and not tw.exposed:
                return tw
            if not tw.exposed or not _same(tw.et.data, t):
                return self.resync(t, tw, src, cell)
            return tw
        return self.first_sight(t, src, cell)

    def too_large(self, t: torch.Tensor) -> bool:
        """True when ``t`` has more elements than the twin limit."""
        return t.numel() > self.twin_limit

    def stand_in(self, t: torch.Tensor, src: Any, cell: Optional[int],
                 torch_op: Optional[str] = None) -> Twin:
        """The twin of a tensor above the twin limit: a read-only, zero-strided array of
        its shape and dtype (no memory), drawn as an opaque node "too large".

        >>> s = Session(twin_limit=10)
        >>> tw = s.twin(torch.ones(4, 5))
        >>> tw.rec.too_large, tw.rec.label, tw.et.data.strides
        (True, 'too large (20 elements)', (0, 0))
        """
        arr = np.broadcast_to(np.zeros((), numpy_dtype(t.dtype)), tuple(t.shape))
        et = ETensor(arr)
        rec = self.new_rec("opaque", et, None, src, cell, torch_op=torch_op)
        rec.label = f"too large ({t.numel():,} elements)"
        rec.upstream_opaque = rec.too_large = True
        rec.check = ("unchecked", None, None, None, None,
                     f"too large: more than {self.twin_limit:,} elements get no engine twin")
        self.opaque += 1
        self.stand_ins += 1
        return self.set_twin(t, et, rec)

    def first_sight(self, t: torch.Tensor, src: Any, cell: Optional[int],
                    torch_op: Optional[str] = None) -> Twin:
        """A twin for a tensor with no recorded history: a leaf/constant, or an
        unrecorded non-leaf (drawn as opaque, gradients below it unchecked)."""
        if self.too_large(t):
            return self.stand_in(t, src, cell, torch_op)
        et = ETensor(copy_numpy(t))
        if t.grad_fn is None:
            if t.requires_grad:
                et.requires_grad_(True)
            rec = self.leaf_rec(t, et, src, cell, torch_op)
            base = self.data_alias.get(t)  # ``x.data``: its label says whose values it shares
            if base is not None and base() is not None:
                note_data_of(rec, getattr(self.twins.get(base()), "rec", None))
        else:
            et.requires_grad_(True)
            rec = self.new_rec("opaque", et, et.data, src, cell, torch_op=torch_op)
            rec.label = f"unrecorded {type(t.grad_fn).__name__}"
            rec.upstream_opaque = True
            self.opaque += 1
            self.watch(rec, t)
        return self.set_twin(t, et, rec)

    def resync(self, t: torch.Tensor, tw: Twin, src: Any, cell: Optional[int],
               rebound: bool = False, tracked: bool = True) -> Twin:
        """torch changed ``t`` behind the twin's back: copy its value.

        A leaf keeps its engine tensor (and gradient); anything else becomes a fresh,
        unrecorded value. A leaf's new value is written into its array, which engine views
        of it share as torch's views share its memory; ``rebound`` (``t.data = v`` gave
        ``t`` new memory, its old views keep the old values) gives it a new array instead.
        ``tracked`` False: a write through ``t.data``, which autograd does not see (torch's
        version counter of ``t`` stays, and a backward that saved ``t`` reads the new values
        without complaint); the engine's version stays too.
        """
        rec = tw.rec
        if self.too_large(t):  # grown past the limit (resize_), or a stand-in
            if not rec.too_large or tuple(t.shape) != tw.et.data.shape:
                return self.stand_in(t, src, cell)
            tw.version = t._version  # nothing to copy: a stand-in has no value
            return tw
        if rec.kind in ("leaf", "constant") and t.grad_fn is None:
            arr = copy_numpy(t)
            if not rebound and arr.shape == tw.et.data.shape and arr.dtype == tw.et.data.dtype:
                np.copyto(tw.et.data, arr)
                tw.et._version += tracked
            else:
                tw.et.data = arr
            rec.arr = tw.et.data
            tw.version = t._version
            return tw
        del self.twins[t]
        return self.first_sight(t, src, cell)

    def set_twin(self, t: torch.Tensor, et: ETensor, rec: Rec) -> Twin:
        """Register ``et`` as the twin of ``t`` (the result of a recorded op)."""
        tw = Twin(et, t._version, rec)
        self.twins[t] = tw
        if t.dtype is _BF16:
            rec.tdtype = "bfloat16"
        return tw

    def rec_of_engine(self, v: Any) -> Optional[Rec]:
        """The Rec of an engine ``Node`` or tensor (None when unknown)."""
        return self.by_node.get(id(v)) if not isinstance(v, ETensor) else self.by_tensor.get(id(v))

    def live_hook_logs(self) -> list:
        """The logs of the mirrored hooks torch still holds (``hook_logs`` keeps only them)."""
        logs = [ref() for ref in self.hook_logs]
        self.hook_logs = [ref for ref, log in zip(self.hook_logs, logs) if log is not None]
        return [log for log in logs if log is not None]

    def output_of(self, node: Any) -> Optional[np.ndarray]:
        """The value engine ``node`` computed, as its record keeps it (None when not recorded):
        what a VJP that reads the output needs after the backward freed it (``magnitudes.py``)."""
        rec = self.by_node.get(id(node))
        arr = rec.arr if rec is not None else None
        return arr if isinstance(arr, np.ndarray) else None


def _same(arr: np.ndarray, t: torch.Tensor) -> bool:
    """True when torch's value still equals the twin's (used for exposed tensors)."""
    try:
        other = to_numpy(t)
        return arr.shape == other.shape and bool(np.array_equal(arr, other, equal_nan=True))
    except Exception:
        return False
