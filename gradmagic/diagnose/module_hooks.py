"""``invalid_gradient`` from an ``nn.Module`` backward hook: ``register_full_backward_hook``,
``register_full_backward_pre_hook`` or the old ``register_backward_hook`` returned a
gradient of the wrong shape, dtype or number.

torch's message names no module and, for the full hooks, not even the user's function:
"hook 'hook' has changed the size of value" (``hook`` is torch's own wrapper in
``torch/utils/hooks.py``), or "Backward hook returned an invalid number of grad_input, got
2, but expected 1". The diagnosis names the hook, the line that defines it and the line that
called the module.

The hooks live on the user's modules, which the report must not keep: ``collect`` reads them
from the block's module calls (``recorder/modules.py``) before the report lets the modules
go, and keeps names and lines only. It runs only when the block raised.

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> lin = torch.nn.Linear(3, 2)
>>> _ = lin.register_full_backward_hook(lambda m, gi, go: (gi[0].sum(0),))
>>> try:
...     with trace(session=Session(), namespace={"lin": lin}) as rep:
...         x = torch.ones(4, 3, requires_grad=True)
...         lin(x).sum().backward()
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, d.title
('invalid_gradient', 'the lambda full backward hook on lin (Linear) returned a gradient of another shape')
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from gradmagic.report import Diagnosis

from .context import Context, compact

#: the most module hooks a block remembers (a loop calls the same hooked module many times)
MAX_HOOKS = 32
#: torch's name for its wrapper around the user's full backward (pre-)hooks
TORCH_WRAPPER = "hook"
_KIND_WORDS = {"full": "full backward hook", "pre": "backward pre-hook", "old": "backward hook"}
_HOOK_APPLY = "BackwardHookFunction.apply"


class ModuleHook:
    """One backward hook of a module the block called: its kind (``full``, ``pre``, ``old``),
    its function's name and where it is defined, the module's path and class, and the call's
    span of the session's record counter and its tensors' shapes."""

    __slots__ = ("kind", "name", "defined", "path", "type", "start", "end", "inputs", "outputs", "callers")

    def __init__(self, kind: str, fn: Any, path: str, type_name: str, call: Any) -> None:
        self.kind = kind
        self.name = getattr(fn, "__name__", type(fn).__name__)
        code = getattr(fn, "__code__", None)
        self.defined = (code.co_filename, code.co_firstlineno) if code is not None else None
        self.path = path
        self.type = type_name
        self.start, self.end = call.start, call.end
        self.inputs = [list(s) for s in call.inputs]
        self.outputs = [list(s) for s in call.outputs]
        self.callers = call.callers  # ((filename, line), ...) of the frames that called the module

    def key(self) -> tuple:
        return (self.kind, self.name, self.defined, self.path)


def collect(tracker: Any, paths: Callable[[], dict], note: Callable[[str], None]) -> list:
    """The ``ModuleHook`` of every backward hook on the modules ``tracker`` saw called
    (``paths()``: ``id(module) -> "net.1"``, asked only when a hooked module is found)."""
    if tracker is None or not tracker.calls:
        return []
    try:
        return _collect(tracker.calls, paths)
    except Exception as exc:  # a user's module may misbehave: the diagnosis just has less to say
        note(f"gradmagic could not read the modules' backward hooks ({type(exc).__name__}: {exc}).")
        return []


def _collect(calls: Iterable[Any], paths: Callable[[], dict]) -> list:
    out: list = []
    named: Optional[dict] = None
    for c in calls:
        m = c.module
        hooks, pre = getattr(m, "_backward_hooks", None), getattr(m, "_backward_pre_hooks", None)
        if not hooks and not pre:
            continue
        if named is None:
            named = paths()
        path, type_name = named.get(id(m), type(m).__name__), type(m).__name__
        full = "full" if getattr(m, "_is_full_backward_hook", None) else "old"
        out += [ModuleHook(full, fn, path, type_name, c) for fn in (hooks or {}).values()]
        out += [ModuleHook("pre", fn, path, type_name, c) for fn in (pre or {}).values()]
        if len(out) >= MAX_HOOKS:
            break
    return out[:MAX_HOOKS]


def candidates(ctx: Context, graph: dict, name: Optional[str], kinds: Iterable[str]) -> list:
    """The module hooks of ``kinds`` that torch's message may be about: called on the graph
    of the failed backward, and named ``name`` (the full hooks: torch names its wrapper),
    each once (the module's last call on the graph)."""
    found: dict = {}
    for h in ctx.module_hooks:
        if h.kind not in kinds:
            continue
        if name is not None and (h.name if h.kind == "old" else TORCH_WRAPPER) != name:
            continue
        if _recs_of(h, graph) or _hook_recs(ctx, h, graph):
            found[h.key()] = h
    return list(found.values())


def _recs_of(h: ModuleHook, graph: dict) -> list:
    """The Recs of ``graph`` made during the module call of ``h``, in forward order."""
    return sorted((r for r in graph.values() if h.start < r.seq <= h.end), key=lambda r: r.seq)


def _hook_recs(ctx: Context, h: ModuleHook, graph: dict) -> list:
    """The ``BackwardHookFunction`` nodes of ``graph`` that torch put around the call of ``h``
    (a full hook or pre-hook): the recorder meets them where they are first used, during the
    call or after it, before the next call of a hooked module began."""
    if h.kind == "old":
        return []
    later = [x.start for x in ctx.module_hooks if x.start > h.start]
    until = min(later) if later else float("inf")
    return sorted((r for r in graph.values() if r.torch_op == _HOOK_APPLY and h.start < r.seq <= max(until, h.end)),
                  key=lambda r: r.seq)


def diagnosis(ctx: Context, graph: dict, hooks: list, what: str) -> list:
    """The diagnosis for ``hooks`` (one of them returned a bad gradient); ``what``: what it
    returned, in words ("a gradient of another shape")."""
    if not hooks:
        return []
    lines: list = []
    nodes: list = []
    for h in hooks:
        recs = _recs_of(h, graph)
        hook_recs = _hook_recs(ctx, h, graph)
        lines += [_defined(ctx, h), _called(ctx, h, hook_recs + recs)]
        nodes += hook_recs or [r for r in recs if r.torch_op is not None][-1:]  # (old: on the last op)
    if ctx.b.failed is not None:
        lines.append(ctx.line(ctx.b.failed.src, "backward"))
    h = hooks[0]
    if len(hooks) == 1:
        title = f"the {_shown(h)} on {h.path} ({h.type}) returned {what}"
        message = _message(h, ctx.error.strip())
    else:
        title = f"one of the backward hooks on {', '.join(sorted({x.path for x in hooks}))} returned {what}"
        message = " ".join(_message(x, None) for x in hooks) + f" torch says: {ctx.error.strip()}"
    return [Diagnosis("invalid_gradient", title, message, _fix(h if len(hooks) == 1 else None), tensor=None,
                      lines=compact(lines), nodes=ctx.node_ids(nodes), severity=ctx.severity)]


def count(got: str, want: str) -> str:
    """What a hook returned, when it returned the wrong number of gradients.

    >>> count("1", "2"), count("2", "1")
    ('1 gradient where 2 were expected', '2 gradients where 1 was expected')
    """
    return f"{got} gradient{'' if got == '1' else 's'} where {want} {'was' if want == '1' else 'were'} expected"


def _shown(h: ModuleHook) -> str:
    kind = _KIND_WORDS[h.kind]
    return f"lambda {kind}" if h.name == "<lambda>" else f"{kind} `{h.name}`"


def _defined(ctx: Context, h: ModuleHook) -> Optional[dict]:
    """The line defining ``h``'s function, when it is in the recorded cell or script."""
    finder = ctx.b.finder
    if h.defined is None or finder is None or h.defined[0] != finder.filename:
        return None
    return ctx.line(h.defined, "hook defined")


def _called(ctx: Context, h: ModuleHook, recs: list) -> Optional[dict]:
    """The line that called the module: the innermost calling frame in the recorded cell or
    script, else the line of a node the call made."""
    finder = ctx.b.finder
    where = next((w for w in h.callers if finder is not None and w[0] == finder.filename), None)
    if where is not None:
        return ctx.line(where, "module called")
    return ctx.rec_line(next((r for r in recs if r.src is not None), None), "module called")


def _message(h: ModuleHook, error: Optional[str]) -> str:
    said = f" ({error})" if error else ""
    if h.kind == "pre":
        return (f"a backward pre-hook on {h.path} receives (module, grad_output) and may return a new grad_output: "
                f"a tuple with one gradient per output of forward, each shaped like that output "
                f"({_shapes(h.outputs)}) and of its dtype, or None; {_shown(h)} returned something else{said}.")
    if h.kind == "full":
        return (f"a full backward hook on {h.path} receives (module, grad_input, grad_output) and may return a new "
                f"grad_input: a tuple with one gradient per input of forward, each shaped like that input "
                f"({_shapes(h.inputs)}) and of its dtype, or None; {_shown(h)} returned something else{said}.")
    return (f"a backward hook registered with register_backward_hook on {h.path} receives the gradients of the "
            f"inputs of the module's last operation only, and must return gradients of the same shapes and dtypes, "
            f"or None; {_shown(h)} returned something else{said}.")


def _shapes(shapes: list) -> str:
    return ", ".join(str(s) for s in shapes) if shapes else "no tensors"


def _fix(h: Optional[ModuleHook]) -> str:
    if h is None:
        return ("make each hook return gradients shaped like the ones it receives (`tuple(g * 2 for g in "
                "grad_input)`), or None to leave them unchanged")
    if h.kind == "pre":
        return (f"make {_shown(h)} return a tuple shaped like the grad_output it receives (`tuple(g * 2 for g in "
                f"grad_output)`), or None to leave it unchanged")
    if h.kind == "full":
        return (f"make {_shown(h)} return a tuple shaped like the grad_input it receives (`tuple(g * 2 for g in "
                f"grad_input)`), or None to leave it unchanged")
    return (f"register it with `register_full_backward_hook` (the old hook sees only the module's last "
            f"operation) and return a tuple shaped like grad_input, or None")
