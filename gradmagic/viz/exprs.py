"""What the learner wrote for each unnamed node: ``b * 2``, ``torch.dot(x, x)``, ``net.1``.

A node bound to a variable is titled by that name. Any other node is titled by the part of
its source line that made it, found by matching the torch call (``Tensor.__mul__`` ↔ ``*``,
``torch.dot`` ↔ ``….dot(…)``) against the line's expressions in evaluation order, else by
the path of the module call that made it (``net.1``). Torch's node name (``MulBackward0``)
stays the box's second line (:func:`gradmagic.viz.labels.node_lines`).

>>> src = {"cell": 1, "line": 3, "code": "c = a * b + b * 2"}
>>> nodes = [{"id": "n2", "kind": "op", "torch_op": "Tensor.mul", "source": src},
...          {"id": "n3", "kind": "op", "torch_op": "Tensor.__mul__", "source": src},
...          {"id": "n4", "kind": "op", "torch_op": "Tensor.add", "name": "c", "source": src}]
>>> node_exprs({"nodes": nodes})
{'n2': 'a * b', 'n3': 'b * 2'}
"""
from __future__ import annotations

import ast
from typing import Any

__all__ = ["node_exprs"]

MAX_CHARS = 28
_BINOPS = {"mul": ast.Mult, "add": ast.Add, "sub": ast.Sub, "div": ast.Div, "truediv": ast.Div,
           "matmul": ast.MatMult, "pow": ast.Pow, "floordiv": ast.FloorDiv, "mod": ast.Mod,
           "true_divide": ast.Div, "multiply": ast.Mult, "subtract": ast.Sub, "divide": ast.Div,
           "rsub": ast.Sub, "rmul": ast.Mult, "radd": ast.Add, "rtruediv": ast.Div,
           "rdiv": ast.Div, "rpow": ast.Pow, "rmatmul": ast.MatMult}
_UNARY = {"neg": ast.USub, "negative": ast.USub}


def _op_word(torch_op: str) -> str:
    """``Tensor.__rmul__`` → ``rmul``, ``torch.nn.functional.relu`` → ``relu``."""
    return torch_op.rsplit(".", 1)[-1].strip("_")


def _candidates(code: str) -> list[tuple[ast.AST, str]]:
    """The expressions of one source line in evaluation order (children first), with their text."""
    text = code.strip()
    for attempt in (text, text.rstrip(":") + ": pass", text.rstrip(":")):
        try:
            tree = ast.parse(attempt)
            break
        except (SyntaxError, ValueError):  # not one whole statement; lone surrogates
            continue
    else:
        return []
    out: list[tuple[ast.AST, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            visit(child)
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call, ast.Subscript)):
            segment = ast.get_source_segment(attempt, node)
            if segment:
                out.append((node, segment))

    visit(tree)
    return out


def _matches(node: ast.AST, word: str) -> bool:
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, _BINOPS.get(word, ()))
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, _UNARY.get(word, ()))
    if isinstance(node, ast.Subscript):
        return word in ("getitem", "index")
    func = node.func  # ast.Call
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name.strip("_") == word


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"


def node_exprs(report: dict[str, Any]) -> dict[str, str]:
    """Node id → the learner's expression (or module path) for every unnamed node that has one."""
    nodes = report.get("nodes") or []
    per_line: dict[tuple, list[dict[str, Any]]] = {}
    for nd in nodes:
        src = nd.get("source") or {}
        if src.get("code") and nd.get("torch_op"):
            per_line.setdefault((src.get("cell"), src.get("line"), src["code"]), []).append(nd)
    out: dict[str, str] = {}
    for (_, _, code), on_line in per_line.items():
        candidates = _candidates(code)
        used: set[int] = set()
        for nd in on_line:
            word = _op_word(nd["torch_op"])
            for k, (expr, text) in enumerate(candidates):
                if k not in used and _matches(expr, word):
                    used.add(k)
                    if not nd.get("name"):
                        out[nd["id"]] = _short(text)
                    break
    for path, members in _module_nodes(report):
        for nid in members:
            out.setdefault(nid, _short(path))
    named = {nd["id"] for nd in nodes if nd.get("name")}
    return {nid: text for nid, text in out.items() if nid not in named}


def _module_nodes(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(path, nodes) of each module call, innermost calls first (so they win ``setdefault``)."""
    calls = sorted(report.get("modules") or [], key=lambda m: -int(m.get("depth") or 0))
    return [(str(m.get("path") or ""), list(m.get("nodes") or [])) for m in calls if m.get("path")]
