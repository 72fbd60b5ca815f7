"""Find the ``with torch.no_grad():`` (or ``inference_mode``, ``set_grad_enabled(False)``, or a
``@torch.no_grad()`` decorator) around a line of the user's code, from its source text.

torch switches grad mode without a ``__torch_function__`` call, so the recorder never sees
the switch itself; the source says where it happened.

>>> src = "x = 1\\nwith torch.no_grad():\\n    y = w * 2\\nz = 3\\n"
>>> grad_off_at(src, 3)
(2, 'with torch.no_grad():')
>>> grad_off_at(src, 4) is None
True
>>> grad_off_at("%%grad --format text\\n" + src, 4)
(3, 'with torch.no_grad():')
"""
from __future__ import annotations

import ast
import linecache
from typing import Any, Optional

#: what switches gradient recording off, as it appears in the source
_OFF = ("no_grad", "inference_mode")


def grad_off_at(source: str, line: int) -> Optional[tuple[int, str]]:
    """``(line, code)`` of the innermost statement that turned gradients off around ``line``
    of ``source`` (a ``with`` or a decorated ``def``), or None."""
    try:  # a cell's magic header (``%%grad``) is not Python: blank it, keeping line numbers
        tree = ast.parse("\n".join("" if ln.lstrip().startswith("%") else ln for ln in source.split("\n")))
    except (SyntaxError, ValueError):
        return None
    lines = source.splitlines()
    best: Optional[ast.AST] = None
    for node in ast.walk(tree):
        if not _contains(node, line) or not _turns_grad_off(node):
            continue
        if best is None or node.lineno >= best.lineno:
            best = node
    if best is None:
        return None
    at = best.lineno if isinstance(best, ast.With) else best.decorator_list[0].lineno
    code = lines[at - 1].strip() if 0 < at <= len(lines) else ""
    return at, code


def source_of(filename: str, finder: Any) -> Optional[str]:
    """The text of ``filename``: the recorded cell's source, else the file (linecache)."""
    if finder is not None and finder.lines is not None and filename == finder.filename:
        return "\n".join(finder.lines)
    text = "".join(linecache.getlines(filename))
    return text or None


def _contains(node: ast.AST, line: int) -> bool:
    if not isinstance(node, (ast.With, ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = node.body
    return body[0].lineno <= line <= (getattr(body[-1], "end_lineno", None) or body[-1].lineno)


def _turns_grad_off(node: ast.AST) -> bool:
    if isinstance(node, ast.With):
        return any(_is_off(item.context_expr) for item in node.items)
    return any(_is_off(d) for d in node.decorator_list)


def _is_off(expr: ast.AST) -> bool:
    """``torch.no_grad()``, ``no_grad()``, ``torch.inference_mode()``, ``set_grad_enabled(False)``."""
    call = expr if isinstance(expr, ast.Call) else None
    func = call.func if call is not None else expr
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in _OFF:
        if name == "inference_mode" and call is not None and call.args:
            return not _is_false(call.args[0])
        return True
    if name == "set_grad_enabled" and call is not None and call.args:
        return _is_false(call.args[0])
    return False


def _is_false(expr: ast.AST) -> bool:
    return isinstance(expr, ast.Constant) and expr.value is False
