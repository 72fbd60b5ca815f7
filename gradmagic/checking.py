"""How much of a cell is checked against torch: the ``check`` option's three modes.

* ``"sample"`` (the default): every backward call runs in lockstep until a loop's body is
  known; then only calls 1–4 and the powers of two from 16 do, and the others run at full speed
  (``gradmagic.recorder.sampling``);
* ``"all"``: every call runs in lockstep (the slowest, the most thorough);
* ``"none"``: record and draw, compare nothing.

Torch-free, so that ``%%grad``'s options can be read without importing torch.

>>> check_mode(True), check_mode("Sample"), check_mode(False), check_mode(None)
('all', 'sample', 'none', 'sample')
"""
from __future__ import annotations

import ast
from typing import Any

#: the values ``trace(check=...)``, ``%%grad --check`` and ``GradMagic.check`` take
CHECK_MODES = ("sample", "all", "none")


def check_mode(check: Any) -> str:
    """The mode ``check`` names: one of ``CHECK_MODES`` in any case, or ``True`` (``"all"``,
    as before the modes existed), ``False`` (``"none"``) or ``None`` (the default, ``"sample"``)."""
    if check is None:
        return "sample"
    if check is True or check is False:
        return "all" if check else "none"
    mode = str(check).strip().lower() if isinstance(check, str) else None
    if mode not in CHECK_MODES:
        raise ValueError(f"check must be one of {', '.join(map(repr, CHECK_MODES))}, not {check!r}")
    return mode


# ----- the end of a cell's statements --------------------------------------------------------
#: called (no arguments) after each top-level statement of a recorded cell: a block that ran a
#: loop's iterations at full speed goes back to lockstep for the code after that statement
_STATEMENT_END: list = []


def on_statement_end(listener: Any) -> None:
    """Call ``listener()`` whenever a marked statement ends (see ``mark_statement_ends``)."""
    _STATEMENT_END.append(listener)


def statement_ended() -> None:
    """A marked statement ended (never raises: the user's cell goes on)."""
    for listener in _STATEMENT_END:
        try:
            listener()
        except Exception:
            pass


def mark_statement_ends(body: list) -> list:
    r"""The statements of a cell, each followed by a call of ``statement_ended()`` (a few µs per
    top-level statement; a loop is one statement). Nothing follows ``from __future__`` imports,
    which must stay first. The call takes the statement's last line, so tracebacks and line
    numbers stay as written.

    >>> import ast
    >>> tree = ast.parse("for i in range(3):\n    pass\nx = 1")
    >>> [type(n).__name__ for n in mark_statement_ends(tree.body)]
    ['For', 'Expr', 'Assign', 'Expr']
    """
    out = []
    for node in body:
        out.append(node)
        if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            out.append(_end_call(node))
    return out


def _end_call(statement: ast.AST) -> ast.stmt:
    """``__import__('gradmagic.checking', fromlist=('statement_ended',)).statement_ended()`` at
    ``statement``'s last line (no name is added to the user's namespace)."""
    imp = ast.Call(func=ast.Name(id="__import__", ctx=ast.Load()),
                   args=[ast.Constant(value=__name__)],
                   keywords=[ast.keyword(arg="fromlist", value=ast.Tuple(elts=[ast.Constant("statement_ended")],
                                                                        ctx=ast.Load()))])
    call = ast.Expr(value=ast.Call(func=ast.Attribute(value=imp, attr="statement_ended", ctx=ast.Load()),
                                   args=[], keywords=[]))
    line = getattr(statement, "end_lineno", None) or statement.lineno
    for n in ast.walk(call):
        n.lineno, n.end_lineno, n.col_offset, n.end_col_offset = line, line, 0, 0
    return call
