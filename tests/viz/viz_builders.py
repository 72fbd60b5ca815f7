"""Synthetic report dicts (schema 2, docs/contract.md) built by a small builder, for view tests.

Values come from real torch computations, so the numbers in a synthetic report are the
ones torch gives; only the report structure is assembled by hand.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def value(array: Any, value_limit: int = 64) -> dict[str, Any]:
    """A Value dict exactly as the contract describes it."""
    arr = array.detach().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    flat = arr.reshape(-1)

    def num(x: Any) -> Any:
        if arr.dtype == np.bool_:
            return bool(x)
        if np.issubdtype(arr.dtype, np.integer):
            return int(x)
        f = float(x)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f

    def nested(a: np.ndarray) -> Any:
        return num(a) if a.ndim == 0 else [nested(sub) for sub in a]

    numeric = arr.dtype != np.bool_ and flat.size > 0
    stats = {k: (num(getattr(np, k)(flat.astype(np.float64))) if numeric else None)
             for k in ("min", "max", "mean")}
    return {"shape": list(arr.shape), "dtype": str(arr.dtype), "numel": int(flat.size),
            "data": nested(arr) if flat.size <= value_limit else None,
            "head": [num(x) for x in flat[:8]], **stats}


class ReportBuilder:
    """Assemble a report: ``leaf``/``const``/``op`` add nodes, ``backward`` a call."""

    def __init__(self, cell: int | None = 3, source: str = "") -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.leaves: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.unsupported: list[str] = []
        self.cell = cell
        self.source = source
        self.error: dict[str, str] | None = None

    def _src(self, line: int | None, code: str | None) -> dict[str, Any] | None:
        return None if line is None else {"cell": self.cell, "line": line, "code": code}

    def _node(self, kind: str, tensor: torch.Tensor, name: str | None, **extra: Any) -> str:
        nid = f"n{len(self.nodes)}"
        node = {"id": nid, "kind": kind, "name": name, "aliases": [name] if name else [],
                "op": None, "label": None, "torch_op": None, "formulas": [],
                "shape": list(tensor.shape), "dtype": str(tensor.dtype).replace("torch.", ""),
                "requires_grad": bool(tensor.requires_grad), "is_leaf": kind in ("leaf", "constant"),
                "value": value(tensor), "grad": None, "torch_grad": None, "saved": [],
                "saved_bytes": 0, "source": None, "status": "agree", "max_abs_err": 0.0}
        node.update(extra)
        self.nodes.append(node)
        self.checks.append({"node": nid, "what": "value", "status": node["status"],
                            "max_abs_err": node["max_abs_err"], "max_rel_err": 0.0,
                            "rtol": 1.3e-6, "atol": 1e-5, "dtype": node["dtype"], "detail": None})
        return nid

    def leaf(self, name: str, tensor: torch.Tensor, line: int | None = None,
             code: str | None = None) -> str:
        kind = "leaf" if tensor.requires_grad else "constant"
        return self._node(kind, tensor, name, source=self._src(line, code))

    def op(self, label: str, op: str, inputs: list[str], result: torch.Tensor,
           name: str | None = None, line: int | None = None, code: str | None = None,
           formulas: tuple[str, ...] = (), saved: tuple[tuple[str, list[int]], ...] = (),
           kind: str = "op", status: str = "agree", err: float | None = 0.0) -> str:
        saved_list = [{"name": s, "shape": shape, "dtype": "float32",
                       "bytes": 4 * int(np.prod(shape, dtype=np.int64))} for s, shape in saved]
        nid = self._node(kind, result, name, op=op if kind == "op" else None,
                         label=label if kind == "op" else None,
                         torch_op=f"torch.{op}", formulas=list(formulas), saved=saved_list,
                         saved_bytes=sum(s["bytes"] for s in saved_list),
                         source=self._src(line, code), status=status, max_abs_err=err)
        for i, src in enumerate(inputs):
            self.edges.append({"source": src, "target": nid, "input": i})
        return nid

    def backward(self, root: str, line: int, code: str, leaf_grads: dict[str, torch.Tensor],
                 before: dict[str, torch.Tensor | None] | None = None) -> int:
        """Record one backward call; each leaf in ``leaf_grads`` gets an accumulate event."""
        k = len(self.calls)
        steps = [{"k": 0, "kind": "node", "node": root,
                  "grad_output": value(torch.tensor(1.0)), "contributions": []}]
        for nid, after in leaf_grads.items():
            prior = (before or {}).get(nid)
            added = after - prior if prior is not None else after
            steps.append({"k": len(steps), "kind": "accumulate", "node": nid,
                          "before": None if prior is None else value(prior),
                          "added": value(added), "after": value(after)})
            self._leaf_event(nid, {"kind": "backward", "call": k, "cell": self.cell, "line": line,
                                   "code": code, "before": None if prior is None else value(prior),
                                   "after": value(after), "added": value(added)})
            node = self.nodes[int(nid[1:])]
            node["grad"] = node["torch_grad"] = value(after)
        self.calls.append({"index": k, "kind": "backward", "root": root,
                           "source": self._src(line, code), "gradient": None,
                           "retain_graph": False, "create_graph": False, "status": "agree",
                           "steps": steps})
        return k

    def _leaf_event(self, nid: str, event: dict[str, Any]) -> None:
        node = self.nodes[int(nid[1:])]
        for leaf in self.leaves:
            if leaf["id"] == nid:
                break
        else:
            leaf = {"id": nid, "name": node["name"], "shape": node["shape"], "dtype": node["dtype"],
                    "grad": None, "engine_grad": None, "status": "agree",
                    "accumulated_without_clearing": False, "events": [], "events_dropped": 0}
            self.leaves.append(leaf)
        if event["kind"] == "backward" and event["before"] is not None:
            leaf["accumulated_without_clearing"] = True
        leaf["events"].append(event)
        after = event["after"]
        leaf["grad"] = leaf["engine_grad"] = None if after is None else after["data"]

    def event(self, nid: str, kind: str, line: int, code: str, after: torch.Tensor | None) -> None:
        """A non-backward event (zero_, set_none, update) on a leaf's ``.grad``."""
        self._leaf_event(nid, {"kind": kind, "call": None, "cell": self.cell, "line": line,
                               "code": code, "before": None,
                               "after": None if after is None else value(after), "added": None})

    def build(self) -> dict[str, Any]:
        mismatches = [c for c in self.checks if c["status"] == "differ"]
        differ = [n["id"] for n in self.nodes if n["status"] == "differ"]
        return {"schema": 2, "ok": not mismatches, "unsupported": list(self.unsupported),
                "first_divergence": differ[0] if differ else None, "mismatches": mismatches,
                "nodes": self.nodes, "edges": self.edges, "backward_calls": self.calls,
                "leaves": self.leaves, "checks": self.checks, "notes": list(self.notes),
                "cell": None if self.cell is None else {"number": self.cell, "source": self.source},
                "error": self.error, "modules": [],
                "stats": {"nodes": len(self.nodes),
                          "ops": sum(n["kind"] in ("op", "opaque") for n in self.nodes),
                          "saved_bytes": sum(n["saved_bytes"] for n in self.nodes),
                          "elapsed_ms": 1.0}}


SEED_SOURCE = "x = torch.arange(4.0, requires_grad=True)\ny = 2 * torch.dot(x, x)\ny.backward()\n"


def build_seed(times: int = 1) -> dict[str, Any]:
    """The seed's ``y = 2 * torch.dot(x, x)``; ``times=2`` runs backward twice without zero_()."""
    b = ReportBuilder(source=SEED_SOURCE)
    x = torch.arange(4.0, requires_grad=True)
    xn = b.leaf("x", x, 1, "x = torch.arange(4.0, requires_grad=True)")
    d = torch.dot(x, x)
    dn = b.op("DotBackward0", "dot", [xn, xn], d, line=2, code="y = 2 * torch.dot(x, x)",
              formulas=("∂/∂a = g·b", "∂/∂b = g·a"), saved=(("self", [4]), ("other", [4])))
    y = 2 * d
    yn = b.op("MulBackward0", "mul", [dn], y, name="y", line=2, code="y = 2 * torch.dot(x, x)",
              formulas=("∂/∂a = g·2",))
    prior = None
    for _ in range(times):
        y.backward(retain_graph=True)
        b.backward(yn, 3, "y.backward()", {xn: x.grad.clone()},
                   before={xn: prior} if prior is not None else None)
        prior = x.grad.clone()
    return b.build()


def build_loop(iterations: int, body: int = 4) -> dict[str, Any]:
    """``for i in range(iterations): h = tanh(h * w + b)`` style chain, ``body`` ops per step."""
    b = ReportBuilder(source="for i in range(n):\n    h = torch.tanh(h * w + b)\n")
    w = torch.tensor([0.5, -0.25], requires_grad=True)
    wn = b.leaf("w", w, 1, "w = torch.tensor([0.5, -0.25], requires_grad=True)")
    h = torch.ones(2)
    hn = b.leaf("h0", h)
    labels = ("MulBackward0", "AddBackward0", "TanhBackward0", "SinBackward0")
    for _ in range(iterations):
        for j in range(body):
            label = labels[j % len(labels)]
            h = torch.tanh(h * w) if j == 0 else torch.sin(h)
            inputs = [hn, wn] if j == 0 else [hn]
            hn = b.op(label, label[:-9].lower(), inputs, h, line=3 + j % 2,
                      code="h = torch.tanh(h * w + b)")
    loss = h.sum()
    b.op("SumBackward0", "sum", [hn], loss, name="loss", line=5, code="loss = h.sum()")
    return b.build()


def record_sgd_loop() -> dict[str, Any]:
    """A recorded report (not a synthetic one): three SGD steps of a small ``nn.Sequential``,
    a training loop the views draw one iteration at a time."""
    import gradmagic
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    X, y = torch.randn(4, 3, 4), torch.tensor([0, 1, 2, 1])
    with gradmagic.trace() as rep:
        for _ in range(3):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(X), y)
            loss.backward()
            opt.step()
    return rep.to_dict()


def build_mixed() -> dict[str, Any]:
    """A constant, an opaque op, a mismatch, an unsupported op, a note and the user's error."""
    b = ReportBuilder(cell=7, source="z = (a * c).exp()\n")
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = torch.tensor([2.0, 2.0, 2.0])
    an, cn = b.leaf("a", a, 1, "a = torch.tensor([1., 2., 3.], requires_grad=True)"), b.leaf("c", c)
    m = a * c
    mn = b.op("MulBackward0", "mul", [an, cn], m, line=2, code="z = (a * c).exp()",
              status="differ", err=0.25)
    f = torch.fft.fft(m).real
    fn = b.op("", "fft.fft", [mn], f, name="f", line=3, code="f = torch.fft.fft(m).real",
              kind="opaque", status="unchecked", err=None)
    s = f.sum()
    sn = b.op("SumBackward0", "sum", [fn], s, name="s", line=4, code="s = f.sum()",
              status="unchecked", err=None)
    s.backward()
    b.backward(sn, 5, "s.backward()", {an: a.grad.clone()})
    b.leaves[0]["status"] = "unchecked"
    b.unsupported.append("torch.fft.fft")
    b.notes.append("torch.fft.fft has no gradmagic rule: its gradients are unchecked.")
    b.error = {"type": "RuntimeError", "message": "boom: <b>not bold</b>"}
    return b.build()


# ---------------------------------------------------------------- diagnoses (issue 15)

def diagnosis(kind: str, title: str, message: str, fix: str,
              lines: list[tuple[int, int, str, str]] = (), nodes: list[str] = (),
              severity: str = "error", tensor: str | None = None) -> dict[str, Any]:
    """A Diagnosis dict as ``GradReport.to_dict()`` writes it; ``lines`` are
    ``(cell, line, code, role)`` tuples."""
    from dataclasses import asdict

    from gradmagic.report import Diagnosis

    return asdict(Diagnosis(kind, title, message, fix, tensor=tensor,
                            lines=[{"cell": c, "line": n, "code": code, "role": role}
                                   for c, n, code, role in lines],
                            nodes=list(nodes), severity=severity))


INPLACE_SOURCE = ("a = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)\nb = a.sigmoid()\n"
                  "b.mul_(2)\nb.sum().backward()\n")


def build_inplace() -> dict[str, Any]:
    """``b = a.sigmoid(); b.mul_(2); b.sum().backward()``: the backward raised, and the
    report explains it (an ``inplace_saved`` error diagnosing the sigmoid and the mul_ nodes)."""
    rec = ReportBuilder(cell=5, source=INPLACE_SOURCE)
    a = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    an = rec.leaf("a", a, 1, "a = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)")
    b = a.sigmoid()
    bn = rec.op("SigmoidBackward0", "sigmoid", [an], b, name="b", line=2, code="b = a.sigmoid()",
                formulas=("∂/∂a = g·b·(1−b)",), saved=(("result", [3]),))
    b2 = b.detach() * 2
    mn = rec.op("MulBackward0", "mul", [bn], b2, line=3, code="b.mul_(2)", formulas=("∂/∂a = g·2",))
    rec.op("SumBackward0", "sum", [mn], b2.sum(), line=4, code="b.sum().backward()")
    rec.error = {"type": "RuntimeError", "message": (
        "one of the variables needed for gradient computation has been modified by an inplace "
        "operation: [torch.FloatTensor [3]], which is output 0 of SigmoidBackward0, is at "
        "version 1; expected version 0 instead.")}
    rep = rec.build()
    rep["diagnoses"] = [diagnosis(
        "inplace_saved", "b was modified in place after SigmoidBackward0 saved it",
        "SigmoidBackward0 saved its output b to compute its gradient; b.mul_(2) changed b "
        "afterwards, so backward() found a different b than the one saved.",
        "write b = b * 2 instead of b.mul_(2), or use b.clone() before the in-place op",
        lines=[(5, 2, "b = a.sigmoid()", "saved by"), (5, 3, "b.mul_(2)", "modified in place"),
               (5, 4, "b.sum().backward()", "backward")],
        nodes=[bn, mn], tensor="b")]
    return rep


def build_grad_none() -> dict[str, Any]:
    """``h = w * 2; h.sum().backward(); h.grad``: a warning, "Why is h.grad None?"."""
    rec = ReportBuilder(cell=6, source="w = torch.ones(2, requires_grad=True)\nh = w * 2\n"
                                       "h.sum().backward()\nh.grad\n")
    w = torch.ones(2, requires_grad=True)
    wn = rec.leaf("w", w, 1, "w = torch.ones(2, requires_grad=True)")
    h = w * 2
    hn = rec.op("MulBackward0", "mul", [wn], h, name="h", line=2, code="h = w * 2",
                formulas=("∂/∂a = g·2",))
    loss = h.sum()
    sn = rec.op("SumBackward0", "sum", [hn], loss, line=3, code="h.sum().backward()")
    loss.backward()
    rec.backward(sn, 3, "h.sum().backward()", {wn: w.grad.clone()})
    rep = rec.build()
    rep["diagnoses"] = [diagnosis(
        "grad_none", "Why is h.grad None?",
        "h is not a leaf: it was computed from w on line 2, and PyTorch keeps .grad only for "
        "leaves.", "call h.retain_grad() before backward(), or read w.grad",
        lines=[(6, 2, "h = w * 2", "computed here (not a leaf)"), (6, 4, "h.grad", "read")],
        nodes=[hn], severity="warning", tensor="h")]
    return rep


def with_diagnoses(report: dict[str, Any], *diagnoses: dict[str, Any]) -> dict[str, Any]:
    """``report`` (copied) with ``diagnoses`` appended to its own."""
    import copy

    out = copy.deepcopy(report)
    out["diagnoses"] = list(out.get("diagnoses") or []) + list(diagnoses)
    return out
