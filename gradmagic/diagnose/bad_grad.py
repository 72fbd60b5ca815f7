"""``invalid_gradient``: a hook or a custom ``autograd.Function``'s ``backward`` returned a
gradient of the wrong shape, dtype or number (an ``nn.Module``'s backward hooks: see
``module_hooks``).

torch names only the hook's function name ("hook '<lambda>' has changed the size of value")
or the node ("Function ScaleBackward returned an invalid gradient at index 0 - got [2] but
expected shape compatible with [3]"). The diagnosis says which tensor the hook was
registered on and where, or which ``Function`` it is and where its ``backward`` is defined.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> try:
...     with trace(session=Session()) as rep:
...         x = torch.ones(3, requires_grad=True)
...         y = x * 2
...         _ = y.register_hook(lambda g: g.sum())
...         y.sum().backward()
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('invalid_gradient', 'the lambda hook on y returned a gradient of another shape')
>>> [ln["role"] for ln in d.lines]
['hook registered', 'backward']
"""
from __future__ import annotations

import ast
import re
from typing import Any, Optional

from gradmagic.report import Diagnosis

from . import module_hooks
from .context import Context, compact
from .grad_mode import source_of

_HOOK = re.compile(r"hook '(?P<name>[^']*)' has (?P<what>changed the size|changed the type|returned an incorrect "
                   r"number)")
_FUNCTION = re.compile(r"[Ff]unction (?P<node>\w+) returned an (?P<what>invalid gradient at index (?P<i>\d+)|"
                       r"incorrect number of gradients)")
_SHAPES = re.compile(r"got \[(?P<got>[^\]]*)\] but expected shape compatible with \[(?P<want>[^\]]*)\]")
_COUNTS = re.compile(r"expected (\d+), got (\d+)")
_GOT = re.compile(r"got (\d+), but expected (\d+)")
_MODULE_COUNT = re.compile(r"Backward (?P<pre>pre )?hook returned an invalid number of grad_(?:input|output), "
                           r"got (?P<got>\d+), but expected (?P<want>\d+)")
_WHAT = {"changed the size": "of another shape", "changed the type": "of another dtype",
         "returned an incorrect number": "in the wrong number of values"}


def find(ctx: Context) -> list:
    """The diagnosis of a hook's or a custom Function's bad gradient, or [] when the cell did not raise one."""
    m = _HOOK.search(ctx.error)
    if m is not None:
        return _hook(ctx, m.group("name"), m.group("what"))
    m = _MODULE_COUNT.search(ctx.error)
    if m is not None:  # a full backward (pre-)hook of a module returned a tuple of the wrong length
        graph = ctx.failed_graph()
        hooks = module_hooks.candidates(ctx, graph, None, ("pre",) if m.group("pre") else ("full",))
        return module_hooks.diagnosis(ctx, graph, hooks, module_hooks.count(m.group("got"), m.group("want")))
    m = _FUNCTION.search(ctx.error)
    if m is not None and m.group("node") != "BackwardHookFunctionBackward":  # (torch's, for module hooks)
        return _function(ctx, m)
    return []


def _hook(ctx: Context, name: str, what: str) -> list:
    sites = [h for h in ctx.b.hook_sites if h.name == name]
    graph = ctx.ancestors(ctx.b.failed.roots) if ctx.b.failed is not None else {}
    on_graph = [h for h in sites if id(h.rec) in graph]
    modules = module_hooks.candidates(ctx, graph, name, ("full", "pre", "old"))
    if modules:  # a module's backward hook (a tensor hook of the same name would leave it open)
        counts = _GOT.search(ctx.error)
        said = module_hooks.count(*counts.groups()) if what.startswith("returned") and counts else \
            f"a gradient {_WHAT[what]}"
        return [] if sites else module_hooks.diagnosis(ctx, graph, modules, said)
    site = on_graph[-1] if on_graph else (sites[-1] if sites else None)
    if site is None:
        return []
    tensor = ctx.name(site.rec)
    on = tensor or ctx.label(site.rec)
    shape = list(site.rec.et.data.shape) if site.rec.et is not None else None
    shown = "the lambda hook" if name == "<lambda>" else f"the hook `{name}`"
    title = f"{shown} on {on} returned a gradient {_WHAT[what]}"
    message = (f"a tensor hook receives the gradient of {on}"
               f"{f' (shape {shape}, dtype {site.rec.et.data.dtype})' if shape is not None else ''} and must "
               f"return a tensor of the same shape and dtype, or None; {shown} returned something else "
               f"({ctx.error.strip()}).")
    fix = (f"make {shown} return a gradient shaped like the one it receives (`lambda g: g * 2`, not a sum or a "
           f"slice of it), or None to leave it unchanged")
    defined = ctx.line(site.defined, "hook defined") if site.defined and site.defined != site.src[:2] else None
    lines = [defined, ctx.line(site.src, "hook registered"), _backward(ctx)]
    return [Diagnosis("invalid_gradient", title, message, fix, tensor=tensor, lines=compact(lines),
                      nodes=ctx.node_ids([site.rec]), severity=ctx.severity)]


def _function(ctx: Context, m: Any) -> list:
    node = m.group("node")
    cls = node[: -len("Backward")] if node.endswith("Backward") else node
    graph = ctx.ancestors(ctx.b.failed.roots) if ctx.b.failed is not None else \
        {id(r): r for r in ctx.b.kept_recs()}
    rec = next((r for r in sorted(graph.values(), key=lambda r: -r.seq)
                if (r.torch_op or "").rsplit(".", 1)[0].rsplit(".", 1)[-1] == cls and
                (r.torch_op or "").endswith(".apply")), None)
    title, message, fix = _function_text(cls, m, ctx.error)
    src = rec.src if rec is not None else None
    source = (source_of(src[0], ctx.b.finder) or "") if src else ""
    found = def_line(source, cls, "backward")
    defined = ctx.line((src[0], found[0], found[1]), "backward defined", cell=rec.cell) if found else None
    # the recorder meets a Function's output where it is first used: find the ``apply`` line above it
    at = apply_line(source, cls, src[1]) if src else None
    applied = ctx.line((src[0], *at), "applied", cell=rec.cell) if at else ctx.rec_line(rec, "applied")
    lines = [applied, defined, _backward(ctx)]
    return [Diagnosis("invalid_gradient", title, message, fix, tensor=ctx.name(rec), lines=compact(lines),
                      nodes=ctx.node_ids([rec]), severity=ctx.severity)]


def _function_text(cls: str, m: Any, error: str) -> tuple:
    """(title, message, fix) for torch's message ``error`` about ``cls.backward`` (``m``: its match)."""
    shapes = _SHAPES.search(error)
    if m.group("i") is not None:
        i = int(m.group("i"))
        got = f" of shape [{shapes.group('got')}]" if shapes else ""
        want = f" (shape [{shapes.group('want')}])" if shapes else ""
        title = (f"{cls}.backward returned a gradient{got} for input {i}, which has shape [{shapes.group('want')}]"
                 if shapes else f"{cls}.backward returned an invalid gradient for input {i}")
        message = (f"{cls}.backward must return, for each input of forward, a gradient of that input's shape; "
                   f"for input {i}{want} it returned one{got}.")
        fix = (f"return a gradient shaped like input {i} of {cls}.forward{want}: sum over the broadcast dimensions "
               f"(`grad.sum(0)`) or reshape it (`grad.reshape(x.shape)`)")
    else:
        counts = _COUNTS.search(error)
        want, got = counts.groups() if counts else ("one per argument", "another number")
        title = f"{cls}.backward returned {got} gradients, but {cls}.forward takes {want} arguments"
        message = (f"{cls}.backward must return one value per argument of {cls}.forward ({want}), None for the "
                   f"arguments that need no gradient; it returned {got}.")
        fix = (f"return one gradient per argument of {cls}.forward, in order, with None for the arguments that "
               f"need none (numbers, flags)")
    return title, message, fix


def _backward(ctx: Context) -> Optional[dict]:
    return ctx.line(ctx.b.failed.src, "backward") if ctx.b.failed is not None else None


def apply_line(source: str, cls: str, before: int) -> Optional[tuple]:
    """``(line, code)`` of the last line at or above line ``before`` of ``source`` that calls
    ``cls.apply(`` (None when there is none).

    >>> apply_line("y = F.apply(x)\\nz = y.sum()\\n", "F", 2)
    (1, 'y = F.apply(x)')
    """
    lines = source.splitlines()
    for k in range(min(before, len(lines)), 0, -1):
        if f"{cls}.apply(" in lines[k - 1]:
            return k, lines[k - 1].strip()
    return None


def def_line(source: str, cls: str, method: str) -> Optional[tuple]:
    """``(line, code)`` of ``def method`` in ``class cls`` of ``source`` (None when not there).

    >>> def_line("class F:\\n    @staticmethod\\n    def backward(ctx, g):\\n        return g\\n", "F", "backward")
    (3, 'def backward(ctx, g):')
    """
    try:
        tree = ast.parse("\n".join("" if ln.lstrip().startswith("%") else ln for ln in source.split("\n")))
    except (SyntaxError, ValueError):
        return None
    lines = source.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == method:
                    return item.lineno, lines[item.lineno - 1].strip()
    return None
