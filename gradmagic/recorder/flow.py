"""Gradient flow: per backward call, how large each layer's gradient is (the report's ``grad_flow``).

While a block records, ``FlowLog.add`` takes torch's accumulated ``.grad`` of every leaf a
backward call reached (``backward.py``'s ``_check_accumulations`` hands it over) and keeps
three numbers: its L2 norm, mean |g| and max |g| — a few NumPy reductions per leaf per
call. A long loop keeps every call's numbers until a leaf has ``MAX_POINTS``; then every
other call is dropped and only every ``stride``-th call is kept from there on (evenly
thinned), while the last ``RECENT`` calls are always kept (the hints read them).

``grad_flow()`` groups the leaves by layer when the report is built: a parameter of a
module the block called belongs to that module's path (``net.1``: the norm of all its
parameters together); any other leaf (functional code's ``w``) is a layer of its own.

>>> import torch
>>> from gradmagic.recorder import trace
>>> w = torch.tensor([3.0, 4.0], requires_grad=True)
>>> with trace() as rep:
...     for _ in range(2):
...         (w * 1.0).sum().backward()
>>> [(l["name"], l["calls"], l["norm"]) for l in rep.grad_flow["layers"]]
[('w', [0, 1], [1.4142135623730951, 2.8284271247461903])]
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch

from .modules import module_paths
from .twins import to_numpy
from .values import json_scalar

#: the most points a leaf's series keeps (evenly thinned beyond it)
MAX_POINTS = 1000
#: the last calls always kept unthinned
RECENT = 4
#: gradients with at most this many elements are measured later, many calls at once
SMALL = 4096
#: ... and at most this many (kept as lists: ``Tensor.tolist`` is the cheapest copy there is)
TINY = 64
#: pending gradients a leaf keeps before measuring them
PENDING = 256


class Series:
    """One leaf's gradient sizes over the block's backward calls."""

    __slots__ = ("rec", "numel", "points", "recent", "stride", "pending")

    def __init__(self, rec: Any, numel: int) -> None:
        self.rec = rec
        self.numel = numel
        self.points: list = []  # (call, norm, mean|g|, max|g|), every stride-th call
        self.recent: list = []  # the last RECENT points, whatever the stride
        self.stride = 1
        self.pending: list = []  # (call, copy of a small gradient) whose sizes are not computed yet

    def add(self, point: tuple) -> None:
        self.recent.append(point)
        if len(self.recent) > RECENT:
            del self.recent[0]
        if point[0] % self.stride:
            return
        self.points.append(point)
        if len(self.points) > MAX_POINTS:
            self.stride *= 2
            self.points = [p for p in self.points if p[0] % self.stride == 0]

    def pend(self, call: int, grad: Any) -> None:
        """Keep a copy of a small gradient (an array, or a list), measured with the others later."""
        self.pending.append((call, grad))
        if len(self.pending) >= PENDING:
            self.flush()

    def flush(self) -> None:
        """Compute the sizes of the pending gradients, all at once (one NumPy pass for the lot)."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            rows = np.asarray([g for _, g in pending], dtype=np.float64).reshape(len(pending), -1)
        except ValueError:  # (the leaf changed size between calls)
            for call, g in pending:
                self.add((call, *sizes(np.asarray(g, dtype=np.float64).ravel())))
            return
        a = np.abs(rows)
        top = a.max(axis=1)
        mean = a.sum(axis=1) / max(a.shape[1], 1)
        norm = np.sqrt(np.einsum("ij,ij->i", a, a))
        for (call, g), n, m, t in zip(pending, norm.tolist(), mean.tolist(), top.tolist()):
            if math.isinf(n) and math.isfinite(t):  # Σg² overflowed: measure it scaled
                n = sizes(np.asarray(g, dtype=np.float64).ravel())[0]
            self.add((call, n, m, t))

    def merged(self) -> list:
        self.flush()
        got = {p[0]: p for p in self.points}
        got.update((p[0], p) for p in self.recent)
        return [got[k] for k in sorted(got)]


def sizes(a: np.ndarray) -> tuple:
    """(L2 norm, mean |g|, max |g|) of a flat floating array."""
    a = np.abs(a)
    top = float(a.max())
    mean = float(a.sum(dtype=np.float32 if a.itemsize < 8 else None)) / a.size  # pairwise sum
    norm = float(math.sqrt(float(np.dot(a, a))))
    if math.isinf(norm) and math.isfinite(top) and top > 0:  # float32 overflow of Σg²
        norm = top * float(np.linalg.norm(a / top))
    return norm, mean, top


class FlowLog:
    """The block's series, one per leaf (kept by ``Block.flow``).

    Gradients of up to ``SMALL`` elements are copied and measured together when the report is
    built (or every ``PENDING`` calls): one NumPy pass over many calls costs less than three
    reductions per call, which matters in a loop of tiny steps."""

    def __init__(self) -> None:
        self.series: dict = {}  # id(Rec) -> Series
        self.calls = 0  # backward calls seen
        self.thinned = False

    def series_of(self, rec: Any, numel: int) -> Series:
        """Leaf ``rec``'s series (made on first use)."""
        s = self.series.get(id(rec))
        if s is None:
            s = self.series[id(rec)] = Series(rec, numel)
        return s

    def add(self, call: int, rec: Any, grad: np.ndarray) -> None:
        """Record torch's ``.grad`` of leaf ``rec`` after block call ``call`` (a NumPy array)."""
        if grad.dtype.kind != "f" or not grad.size:
            return
        s = self.series_of(rec, int(grad.size))
        self.calls = max(self.calls, call + 1)
        if grad.size <= SMALL:
            s.pend(call, grad.copy())
        else:
            s.add((call, *sizes(grad.ravel())))

    def add_tensor(self, call: int, rec: Any, g: torch.Tensor) -> None:
        """``add`` for torch's ``.grad`` itself (a loop running at full speed: ``sampling.py``);
        a tiny gradient is kept as a list, the cheapest copy torch makes."""
        n = g.numel()
        if n <= TINY and n and g.dtype.is_floating_point and not g.is_complex() and g.is_cpu:
            self.calls = max(self.calls, call + 1)
            self.series_of(rec, n).pend(call, g.tolist())
        else:
            self.add(call, rec, to_numpy(g))


def activation_stats(tracker: Any, namespace: Any) -> list:
    """Per module without submodules whose last call returned one floating tensor, in the
    order of their first calls: the mean, standard deviation and fraction of exact zeros of
    that output (three reductions per module, once per block). Lets go of the outputs."""
    if tracker is None or not tracker.last_out:
        return []
    outs, tracker.last_out = tracker.last_out, {}
    paths = module_paths(namespace)
    out, seen = [], set()
    with torch._C.DisableTorchFunction():  # gradmagic's own reads are not the user's ops
        for c in tracker.calls:
            key = id(c.module)
            if key in seen or key not in outs:
                continue
            seen.add(key)
            m, t = outs[key]
            if next(iter(m.children()), None) is not None or not t.is_floating_point() or not t.numel():
                continue
            with torch.no_grad():
                a = t.detach().double()
                out.append({"module": paths.get(key, type(m).__name__), "type": type(m).__name__,
                            "shape": list(t.shape), "mean": json_scalar(float(a.mean())),
                            "std": json_scalar(float(a.std(correction=0))),
                            "zeros": float((a == 0).double().mean())})
    return out


def grad_flow(log: Optional[FlowLog], modules: list, ids: dict, activations: list = ()) -> Optional[dict]:
    """The report's ``grad_flow`` dict (``docs/contract.md``), or None without gradients.
    The log lets go of its Recs (the report never keeps the user's tensors' records)."""
    if log is None or not log.series:
        return None
    try:
        return {**_grad_flow(log, modules, ids), "activations": list(activations)}
    finally:
        log.series = {}


def _owners(modules: list) -> dict:
    """Node id or parameter name → (module path, class name, the module's key) of each
    parameter of a called module. Two modules no variable reaches share a path (their class
    name) but not their parameters, so the key is the parameters themselves."""
    owner: dict = {}
    for m in modules:
        mkey = tuple((p.get("name"), p.get("node")) for p in m.parameters)
        for p in m.parameters:
            for key in (p.get("node"), p.get("name")):
                if key is not None:
                    owner.setdefault(key, (m.path, m.type, mkey))
    return owner


def _grad_flow(log: FlowLog, modules: list, ids: dict) -> dict:
    owner = _owners(modules)
    layers: dict = {}
    for s in log.series.values():
        name = s.rec.name or ids.get(id(s.rec)) or "?"
        mod = owner.get(ids.get(id(s.rec))) or owner.get(name)
        key = ("module", mod[2]) if mod else ("parameter", name)
        layer = layers.get(key)
        if layer is None:
            layer = layers[key] = {"name": mod[0] if mod else name, "kind": key[0],
                                   "type": mod[1] if mod else None, "parameters": [], "numel": 0,
                                   "_points": {}, "_seq": s.rec.seq}
        layer["_seq"] = min(layer["_seq"], s.rec.seq)
        layer["parameters"].append(name)
        layer["numel"] += s.numel
        for call, norm, mean, top in s.merged():
            acc = layer["_points"].setdefault(call, [0.0, 0.0, 0.0, 0])
            acc[0] += norm * norm
            acc[1] += mean * s.numel
            acc[2] = top if math.isnan(top) or math.isnan(acc[2]) else max(acc[2], top)
            acc[3] += s.numel
    out = [_finish(layer) for layer in sorted(layers.values(), key=lambda lay: lay["_seq"])]
    seen: dict = {}
    for layer in out:  # a name twice (modules without a variable): "Linear", "Linear (2)"
        n = seen[layer["name"]] = seen.get(layer["name"], 0) + 1
        if n > 1:
            layer["name"] += f" ({n})"
    return {"calls": log.calls, "thinned": any(s.stride > 1 for s in log.series.values()),
            "max_points": MAX_POINTS, "layers": out}


def _finish(layer: dict) -> dict:
    """A layer's sums per call → its JSON-safe series (norm = √Σ‖g‖², mean weighted by size)."""
    del layer["_seq"]
    pts = layer.pop("_points")
    calls = sorted(pts)
    layer["calls"] = calls
    acc = np.array([pts[c] for c in calls], dtype=np.float64).reshape(len(calls), 4)
    with np.errstate(all="ignore"):
        layer["norm"] = _json_list(np.sqrt(acc[:, 0]))
        layer["mean"] = _json_list(acc[:, 1] / acc[:, 3])
    layer["max"] = _json_list(acc[:, 2])
    return layer


def _json_list(a: np.ndarray) -> list:
    """``a`` as a JSON-safe list (non-finite numbers as ``json_scalar`` writes them)."""
    out = a.tolist()
    if not np.isfinite(a).all():
        out = [json_scalar(v) for v in out]
    return out
