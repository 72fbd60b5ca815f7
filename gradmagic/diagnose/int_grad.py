"""``int_requires_grad``: "Only Tensors of floating point and complex dtype can require gradients".

Gradients are defined for real-valued (floating-point or complex) tensors only;
``torch.arange(4)`` and ``torch.tensor([1, 2, 3])`` make integer tensors. The diagnosis
names the line that made the integer tensor and writes it with a float dtype.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> try:
...     with trace(session=Session()) as rep:
...         x = torch.arange(4)
...         x.requires_grad_()
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('int_requires_grad', 'x is an integer tensor (int64), and only floating-point tensors can require gradients')
>>> d.fix
'make it a float tensor: `x = torch.arange(4.0)` (or pass `dtype=torch.float32`)'
"""
from __future__ import annotations

import re
from typing import Any, Optional

from gradmagic.report import Diagnosis

from .context import Context, compact

#: torch's messages ("Only Tensors of floating point and complex dtype ...", "only Tensors of floating point dtype ...")
_MESSAGE = re.compile(r"only Tensors of floating point.* can require gradients", re.IGNORECASE)
_ARANGE = re.compile(r"\barange\(")
_INT_LITERAL = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


def find(ctx: Context) -> list:
    """The diagnosis of torch's integer-requires-grad error, or [] when the cell did not raise it."""
    if not _MESSAGE.search(ctx.error):
        return []
    raised = ctx.b.raised
    if raised is not None:
        rec = raised.roots[0] if raised.roots else None
    else:  # torch refused outside a call the recorder sees (``nn.Parameter(t)``): the last integer tensor
        rec = next((r for r in reversed(ctx.b.kept_recs()) if _dtype(r) is not None and
                    _dtype(r).startswith(("int", "uint", "bool"))), None)
        if rec is None:
            return []
    made = ctx.rec_line(rec, "created") if rec is not None else ctx.line(raised.src, "created")
    asked = ctx.line(raised.src, "requires grad") if rec is not None and raised is not None else None
    code = made["code"] if made and made["code"] else ""
    name = ctx.name(rec) or _assigned(code)
    dtype = _dtype(rec)
    who = name or "this tensor"
    kind = "a boolean" if dtype == "bool" else "an integer" if dtype else "an integer (or boolean)"
    title = f"{who} is {kind} tensor{f' ({dtype})' if dtype else ''}, and only floating-point tensors can " \
            f"require gradients"
    message = (f"gradients are defined for floating-point (and complex) tensors only; "
               f"`{code or 'the call'}` makes {kind} tensor, as `torch.arange(4)` and `torch.tensor([1, 2])` do.")
    fix = float_fix(code)
    if rec is not None and rec.inputs:  # computed by an op (``torch.max(...)`` indices, a comparison)
        fix = (f"`{code}` gives integer results, which carry no gradient: differentiate through float values "
               f"instead (the max values, or `softmax` for a soft choice), or take a float copy with `.float()`")
    return [Diagnosis("int_requires_grad", title, message, fix, tensor=name,
                      lines=compact([made, asked]), nodes=ctx.node_ids([rec]), severity=ctx.severity)]


def float_fix(code: str) -> str:
    """How to write line ``code`` so that it makes a float tensor.

    >>> float_fix("x = torch.arange(4, requires_grad=True)")
    'make it a float tensor: `x = torch.arange(4.0, requires_grad=True)` (or pass `dtype=torch.float32`)'
    >>> float_fix("x = torch.tensor([1, 2, 3], requires_grad=True)")
    'make it a float tensor: `x = torch.tensor([1., 2., 3.], requires_grad=True)` (or pass `dtype=torch.float32`)'
    >>> float_fix("p = torch.nn.Parameter(idx)")
    'make it a float tensor: pass `dtype=torch.float32` where it is created, or convert it with `.float()`'
    """
    code = code.strip()
    m = _ARANGE.search(code)
    if m is not None and "dtype" not in code:
        start = m.end()
        end = code.find(")", start)
        head = code[start:end if end >= 0 else len(code)].split(",")[0]
        lit = _INT_LITERAL.fullmatch(head.strip())
        if lit is not None:
            new = code[:start] + code[start:].replace(head.strip(), head.strip() + ".0", 1)
            return f"make it a float tensor: `{new}` (or pass `dtype=torch.float32`)"
    if "torch.tensor(" in code and "dtype" not in code:
        head, inside = code.split("torch.tensor(", 1)
        lit = re.match(r"(\d+)(?=\s*[,)])", inside)
        if lit is not None:  # ``torch.tensor(1, requires_grad=True)``
            return f"make it a float tensor: `{head}torch.tensor({lit.group(1)}.{inside[lit.end():]}` (or pass " \
                   f"`dtype=torch.float32`)"
        args = inside.split("]", 1)
        if len(args) == 2 and "." not in args[0] and _INT_LITERAL.search(args[0]):
            new = "torch.tensor(" + _INT_LITERAL.sub(r"\1.", args[0]) + "]" + args[1]
            return f"make it a float tensor: `{code.split('torch.tensor(', 1)[0]}{new}` (or pass `dtype=torch.float32`)"
    return ("make it a float tensor: pass `dtype=torch.float32` where it is created, or convert it with "
            "`.float()`")


def _assigned(code: str) -> Optional[str]:
    """The plain name ``code`` assigns to (``x = torch.arange(4)``: ``x``).

    >>> _assigned("x = torch.arange(4)"), _assigned("f(x)")
    ('x', None)
    """
    m = re.match(r"^([A-Za-z_]\w*)\s*=[^=]", code)
    return m.group(1) if m else None


def _dtype(rec: Optional[Any]) -> Optional[str]:
    if rec is None or rec.et is None:
        return None
    return rec.tdtype or str(rec.et.data.dtype)
