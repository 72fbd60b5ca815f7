"""Report dicts built by hand, exactly to docs/contract.md, for the widget's browser tests.

The seed's ``y = 2 * torch.dot(x, x)``; ``y.backward()`` is reproduced with NumPy (values
summarised by the recorder's own ``summarize``); ``chain_report(n)`` makes an n-node graph
for the performance measurements. Real recordings (``gradmagic.trace``) are used wherever
the recorder exists; these dicts keep the front end testable on its own.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gradmagic.recorder.values import summarize


def _node(nid: str, kind: str, value: np.ndarray, **kw: Any) -> dict[str, Any]:
    node = {
        "id": nid, "kind": kind, "name": None, "aliases": [], "op": None, "label": None,
        "torch_op": None, "formulas": [], "shape": list(value.shape), "dtype": str(value.dtype),
        "requires_grad": kind != "constant", "is_leaf": kind in ("leaf", "constant"),
        "value": summarize(value), "grad": None, "torch_grad": None, "saved": [],
        "saved_bytes": 0, "source": None, "status": "agree", "max_abs_err": 0.0,
    }
    node.update(kw)
    return node


def _src(cell: int, line: int, code: str) -> dict[str, Any]:
    return {"cell": cell, "line": line, "code": code}


def seed_report(code_line: str = "y = 2 * torch.dot(x, x)", name: str = "y") -> dict[str, Any]:
    """The seed's first graph with gradients, after ``y.backward()``."""
    x = np.arange(4.0, dtype=np.float32)
    dot = np.float32(np.dot(x, x))
    two = np.float32(2.0)
    y = np.array(two * dot, dtype=np.float32)
    gx = (2 * 2 * x).astype(np.float32)
    half = (2 * x).astype(np.float32)
    nodes = [
        _node("n0", "leaf", x, name="x", aliases=["x"], grad=summarize(gx), torch_grad=summarize(gx),
              source=_src(1, 1, "x = torch.arange(4.0)")),
        _node("n1", "op", np.array(dot), op="dot", label="DotBackward0", torch_op="torch.dot",
              formulas=["∂/∂a = g·b", "∂/∂b = g·a"], is_leaf=False, source=_src(3, 1, code_line),
              saved=[{"name": "self", "shape": [4], "dtype": "float32", "bytes": 16},
                     {"name": "tensor", "shape": [4], "dtype": "float32", "bytes": 16}], saved_bytes=32),
        _node("n2", "constant", np.array(two), source=_src(3, 1, code_line)),
        _node("n3", "op", y, name=name, aliases=[name], op="mul", label="MulBackward0",
              torch_op="Tensor.__rmul__", formulas=["∂/∂a = g·b", "∂/∂b = g·a"], is_leaf=False,
              source=_src(3, 1, code_line), saved=[{"name": "other", "shape": [], "dtype": "float32", "bytes": 4}],
              saved_bytes=4),
    ]
    edges = [{"source": "n0", "target": "n1", "input": 0}, {"source": "n0", "target": "n1", "input": 1},
             {"source": "n1", "target": "n3", "input": 0}, {"source": "n2", "target": "n3", "input": 1}]
    steps = [
        {"k": 0, "kind": "node", "node": "n3", "grad_output": summarize(np.float32(1.0)),
         "contributions": [{"input": 0, "to": "n1", "formula": "∂/∂a = g·b", "value": summarize(two)}]},
        {"k": 1, "kind": "node", "node": "n1", "grad_output": summarize(two),
         "contributions": [{"input": 0, "to": "n0", "formula": "∂/∂a = g·b", "value": summarize(half)},
                           {"input": 1, "to": "n0", "formula": "∂/∂b = g·a", "value": summarize(half)}]},
        {"k": 2, "kind": "accumulate", "node": "n0", "before": None, "added": summarize(gx), "after": summarize(gx)},
    ]
    call = {"index": 0, "kind": "backward", "root": "n3", "source": _src(4, 1, "y.backward()"),
            "gradient": None, "retain_graph": False, "create_graph": False, "status": "agree", "steps": steps}
    leaf = {"id": "n0", "name": "x", "shape": [4], "dtype": "float32", "grad": gx.tolist(),
            "engine_grad": gx.tolist(), "status": "agree", "accumulated_without_clearing": False,
            "events": [{"kind": "created", "call": None, "cell": 1, "line": 1, "code": "x = torch.arange(4.0)",
                        "before": None, "after": None, "added": None},
                       {"kind": "backward", "call": 0, "cell": 4, "line": 1, "code": "y.backward()",
                        "before": None, "after": summarize(gx), "added": summarize(gx)}],
            "events_dropped": 0}
    checks = [{"node": n["id"], "what": "value", "status": "agree", "max_abs_err": 0.0, "max_rel_err": 0.0,
               "rtol": 1.3e-6, "atol": 1e-5, "dtype": "float32", "detail": None} for n in nodes]
    return {"schema": 1, "ok": True, "unsupported": [], "first_divergence": None, "mismatches": [],
            "nodes": nodes, "edges": edges, "backward_calls": [call], "leaves": [leaf], "checks": checks,
            "notes": [], "cell": {"number": 4, "source": "y.backward()"}, "error": None,
            "stats": {"nodes": 4, "ops": 2, "saved_bytes": 36, "elapsed_ms": 0.4}}


def chain_report(n: int, width: int = 16) -> dict[str, Any]:
    """``h = tanh(h * w)`` repeated: ``n`` nodes in all, one backward call with every step."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal(width).astype(np.float32)
    nodes = [_node("n0", "leaf", h, name="h0", aliases=["h0"], source=_src(1, 1, "h0 = torch.randn(16)"))]
    edges: list[dict[str, Any]] = []
    values = [h]
    for i in range(1, n):
        op = "tanh" if i % 2 == 0 else "mul"
        h = (np.tanh(h) if op == "tanh" else h * np.float32(0.9)).astype(np.float32)
        values.append(h)
        nodes.append(_node(f"n{i}", "op", h, op=op, label="TanhBackward0" if op == "tanh" else "MulBackward0",
                           formulas=["∂/∂a = g·(1 − ans²)"] if op == "tanh" else ["∂/∂a = g·b"],
                           is_leaf=False, source=_src(1, 3, "h = torch.tanh(h * 0.9)"), status="agree",
                           name="h" if i == n - 1 else None, aliases=["h"] if i == n - 1 else []))
        edges.append({"source": f"n{i - 1}", "target": f"n{i}", "input": 0})
    g = np.ones(width, dtype=np.float32)
    steps = []
    for i in range(n - 1, 0, -1):
        local = (1 - values[i] ** 2) if nodes[i]["op"] == "tanh" else np.float32(0.9)
        contrib = (g * local).astype(np.float32)
        steps.append({"k": len(steps), "kind": "node", "node": f"n{i}", "grad_output": summarize(g),
                      "contributions": [{"input": 0, "to": f"n{i - 1}", "formula": nodes[i]["formulas"][0],
                                         "value": summarize(contrib)}]})
        g = contrib
    steps.append({"k": len(steps), "kind": "accumulate", "node": "n0", "before": None,
                  "added": summarize(g), "after": summarize(g)})
    nodes[0]["grad"] = nodes[0]["torch_grad"] = summarize(g)
    call = {"index": 0, "kind": "backward", "root": f"n{n - 1}", "source": _src(1, 4, "h.sum().backward()"),
            "gradient": summarize(np.ones(width, dtype=np.float32)), "retain_graph": False,
            "create_graph": False, "status": "agree", "steps": steps}
    leaf = {"id": "n0", "name": "h0", "shape": [width], "dtype": "float32", "grad": g.tolist(),
            "engine_grad": g.tolist(), "status": "agree", "accumulated_without_clearing": False,
            "events": [], "events_dropped": 0}
    return {"schema": 1, "ok": True, "unsupported": [], "first_divergence": None, "mismatches": [],
            "nodes": nodes, "edges": edges, "backward_calls": [call], "leaves": [leaf], "checks": [],
            "notes": [], "cell": None, "error": None,
            "stats": {"nodes": n, "ops": n - 1, "saved_bytes": 0, "elapsed_ms": 0.0}}
