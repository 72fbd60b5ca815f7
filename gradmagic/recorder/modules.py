"""``nn.Module`` calls in the report: which layer made which nodes.

While a block records, ``ModuleTracker`` holds torch's *global* module forward pre- and
post-hooks (``register_module_forward_pre_hook`` / ``register_module_forward_hook``), so
every module call of the block is seen without touching the user's modules. A call
remembers its module, its parent call, the session's record counter when it began and
ended (the Recs made in between are the nodes it made) and the shapes of its positional
inputs and of its output. The hooks are installed by ``trace()`` when the block starts and
removed when it ends, whatever the block raised. Measured on a small ``nn.Sequential``
inside a recorded block: about 3 µs per module call in the two hooks and 3 µs more when
the report is built, beside the 4 µs torch itself adds to every module call while any
global hook is set (its slow path), and the recorder's ~40 µs per op.

``module_calls()`` turns them into the report's ``ModuleCall`` list when the report is
built: each call gets its path under the user's variable (``net.1``, found as
``naming.py`` finds ``net.1.weight``), a short signature (``Linear 784→256``), its
parameters and the ids of its nodes.

>>> import torch
>>> from torch import nn
>>> from gradmagic.recorder import trace
>>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
>>> with trace() as rep:
...     y = net(torch.ones(2, 4))
>>> [(m.path, m.signature, m.inputs, m.outputs, m.parent) for m in rep.modules]
[('net', 'Sequential', [[2, 4]], [[2, 3]], None), ('net.0', 'Linear 4→3', [[2, 4]], [[2, 3]], 0), ('net.1', 'ReLU', [[2, 3]], [[2, 3]], 0)]
"""
from __future__ import annotations

import sys
from bisect import bisect_right
from threading import get_ident
from typing import Any, Callable, Iterable, Mapping, Optional

import torch
from torch import nn
from torch.nn.modules import module as _torch_module

from gradmagic.report import ModuleCall

#: trackers of the blocks now recording, outermost first: only the innermost records (a
#: nested ``trace()`` pauses the one around it, as it pauses its Recorder)
_ACTIVE: list = []

#: the most calls a block keeps while it records; beyond it the oldest top-level calls (with
#: everything they called) are dropped, as a long loop's old segments are
MAX_CALLS = 20_000

_Tensor = torch.Tensor
_no_torch_function = torch._C.DisableTorchFunction  # a shape read must not reach the Recorder


class RawCall:
    """One module call as recorded (``module_calls`` turns it into a ``ModuleCall``)."""

    __slots__ = ("module", "parent", "depth", "start", "end", "inputs", "outputs", "callers")

    def __init__(self, module: nn.Module, parent: Optional["RawCall"], start: int, inputs: list) -> None:
        self.module = module
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.start = start  # the session's record counter before the call's first record
        self.end = start  # ... and after its last one
        self.inputs = inputs
        self.outputs: list = []
        #: a module with backward hooks: ``(filename, line)`` of the frames that called it,
        #: innermost first (gradmagic.diagnose names the calling line should a hook fail)
        self.callers: tuple = ()


class ModuleTracker:
    """Records the ``nn.Module`` calls of one block through torch's global module hooks.

    ``seq`` reads the session's record counter; ``note`` adds a sentence to the report.

    >>> counter = [0]
    >>> tracker = ModuleTracker(lambda: counter[0], print).install()
    >>> lin = nn.Linear(2, 1)
    >>> _ = lin(torch.ones(3, 2))
    >>> tracker.remove()
    >>> [(type(c.module).__name__, c.inputs, c.outputs) for c in tracker.calls]
    [('Linear', [torch.Size([3, 2])], [torch.Size([3, 1])])]
    """

    def __init__(self, seq: Callable[[], int], note: Callable[[str], None]) -> None:
        self.seq = seq
        self.note = note
        self.calls: list = []  # RawCall, in the order the calls began
        self.stack: list = []  # the calls now running, outermost first
        #: id(module) -> (module, calls of it dropped to stay under MAX_CALLS)
        self.dropped: dict = {}
        self.failed = False
        self.thread = get_ident()
        self.handles: list = []
        #: id(module) -> (module, the output of its last call) when that is one tensor: the
        #: gradient-flow panel's activation statistics (flow.py), let go when the report is built
        self.last_out: dict = {}

    # ----- install / remove ------------------------------------------------------------
    def install(self) -> "ModuleTracker":
        """Set the global hooks (and make this the tracker that records); returns self."""
        _ACTIVE.append(self)
        self.resume()  # (always_call: the post-hook also runs when forward raised, so the stack stays right)
        return self

    def pause(self) -> None:
        """Take the global hooks off while a loop runs at full speed (``sampling.py``)."""
        handles, self.handles = self.handles, []
        for h in handles:
            h.remove()

    def resume(self) -> None:
        """Put the global hooks back after ``pause``."""
        if not self.handles and self in _ACTIVE:
            self.handles.append(_torch_module.register_module_forward_pre_hook(self._pre_hook))
            self.handles.append(_torch_module.register_module_forward_hook(self._post_hook, always_call=True))

    def remove(self) -> None:
        """Remove the hooks; calls still open (an interrupted forward) end here."""
        handles, self.handles = self.handles, []
        for h in handles:
            h.remove()
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        end = self.seq()
        for call in self.stack:
            call.end = end
        self.stack = []
        # the callbacks reach back to the block that holds this tracker: let it go without the
        # cyclic GC (tests/test_memory_bounds.py)
        self.seq, self.note = (lambda: end), _ignore

    # ----- the hooks ---------------------------------------------------------------------
    def _records(self) -> bool:
        """Is this call this tracker's to record (its thread, the innermost open block)?"""
        return not self.failed and get_ident() == self.thread and bool(_ACTIVE) and _ACTIVE[-1] is self

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        if not self._records():
            return
        try:
            self._open(module, args)
        except Exception as exc:  # gradmagic's failure never breaks the user's call
            self._fail(exc)

    def _post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self._records():
            return
        try:
            self._close(module, output)
        except Exception as exc:  # gradmagic's failure never breaks the user's call
            self._fail(exc)

    def _open(self, module: nn.Module, args: tuple) -> None:
        """A module call begins: remember it, under the call now running."""
        stack = self.stack
        call = RawCall(module, stack[-1] if stack else None, self.seq(), shapes(args))
        if getattr(module, "_backward_hooks", None) or getattr(module, "_backward_pre_hooks", None):
            call.callers = callers()
        self.calls.append(call)
        stack.append(call)
        if len(self.calls) > MAX_CALLS and len(stack) == 1:
            self._trim()

    def _close(self, module: nn.Module, output: Any) -> None:
        """A module call ended: its output shapes, and where its records end. Calls above it
        on the stack (their post-hook never ran: an exception torch did not report) end too."""
        stack = self.stack
        if stack and stack[-1].module is module:  # the usual case
            call = stack.pop()
            call.end = self.seq()
            call.outputs = shapes(output)
            if isinstance(output, _Tensor):
                self.last_out[id(module)] = (module, output)
            return
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].module is module:
                break
        else:
            return
        end = self.seq()
        for call in stack[i:]:
            call.end = end
        stack[i].outputs = shapes(output)
        del stack[i:]

    def _trim(self) -> None:
        """Drop the older half of the calls, cutting before a top-level call (so every
        kept call's parent is kept)."""
        calls = self.calls
        cut = next((k for k in range(len(calls) // 2, len(calls)) if calls[k].parent is None), len(calls) - 1)
        dropped = self.dropped
        for c in calls[:cut]:
            dropped[id(c.module)] = (c.module, dropped.get(id(c.module), (None, 0))[1] + 1)
        del calls[:cut]

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        self.note(f"gradmagic stopped recording module calls because of an internal error "
                  f"({type(exc).__name__}: {exc}); the report lists the calls before it.")


def callers(limit: int = 48) -> tuple:
    """``(filename, line)`` of the frames above this one, innermost first (at most ``limit``).

    >>> callers()[0][0] == __file__ or callers()[0][0].startswith("<doctest")
    True
    """
    out = []
    frame = sys._getframe(1)
    while frame is not None and len(out) < limit:
        out.append((frame.f_code.co_filename, frame.f_lineno))
        frame = frame.f_back
    return tuple(out)


def shapes(obj: Any) -> list:
    """Shapes (``torch.Size``) of the tensors in ``obj`` (a tensor, or tuples/lists/dicts of
    them, two levels deep), flattened in order: what a module call took or gave.

    >>> shapes((torch.ones(2, 3), (torch.ones(1), 5)))
    [torch.Size([2, 3]), torch.Size([1])]
    """
    if type(obj) is tuple and len(obj) == 1:  # (the usual positional arguments: one tensor)
        obj = obj[0]
    with _no_torch_function():
        if isinstance(obj, _Tensor):
            return [obj.shape]
        out: list = []
        _collect(obj, out, 2)
    return out


def _collect(obj: Any, out: list, depth: int) -> None:
    if isinstance(obj, _Tensor):
        out.append(obj.shape)
    elif depth and isinstance(obj, (tuple, list)):
        for o in obj[:16]:
            _collect(o, out, depth - 1)
    elif depth and isinstance(obj, dict):
        for o in list(obj.values())[:16]:
            _collect(o, out, depth - 1)


# ----- signatures --------------------------------------------------------------------------
def _dims(v: Any) -> str:
    """``5`` or ``(5, 5)`` → ``"5"``; ``(3, 5)`` → ``"3×5"``."""
    if isinstance(v, (tuple, list)):
        return str(v[0]) if len(set(v)) == 1 else "×".join(str(x) for x in v)
    return str(v)


def _nondefault(m: nn.Module, fields: Iterable[tuple[str, str, Any]]) -> list:
    """``prefix + value`` for each attribute of ``m`` that differs from its usual value."""
    out = []
    for attr, prefix, usual in fields:
        v = getattr(m, attr, usual)
        if _dims(v) != _dims(usual):
            out.append(prefix + ("=" if isinstance(v, str) else "") + _dims(v))  # padding="same"
    return out


def _linear(m: nn.Module) -> list:
    return [f"{m.in_features or '?'}→{m.out_features}"]


def _conv(m: nn.Module) -> list:
    return [f"{m.in_channels or '?'}→{m.out_channels}", "k" + _dims(m.kernel_size),
            *_nondefault(m, (("stride", "s", 1), ("padding", "p", 0), ("dilation", "d", 1),
                             ("groups", "g", 1)))]


def _pool(m: nn.Module) -> list:
    return ["k" + _dims(m.kernel_size),
            *_nondefault(m, (("stride", "s", m.kernel_size), ("padding", "p", 0)))]


def _size(v: Any) -> str:
    """``16`` → ``"16"``; ``(4, 4)`` → ``"4×4"`` (a shape, never shortened)."""
    return "×".join(str(x) for x in v) if isinstance(v, (tuple, list)) else str(v)


def _adaptive_pool(m: nn.Module) -> list:
    return ["→" + _size(m.output_size)]


def _features(attr: str) -> Callable[[nn.Module], list]:
    """The formatter showing ``attr``: ``16``, or ``4×4`` for a LayerNorm's shape."""
    return lambda m: [_size(getattr(m, attr))]


def _group_norm(m: nn.Module) -> list:
    return [str(m.num_channels), f"g{m.num_groups}"]


def _embedding(m: nn.Module) -> list:
    return [f"{m.num_embeddings}→{m.embedding_dim}"]


def _rnn(m: nn.Module) -> list:
    out = [f"{m.input_size or '?'}→{m.hidden_size}"]
    if getattr(m, "num_layers", 1) > 1:
        out.append(f"×{m.num_layers}")
    if getattr(m, "bidirectional", False):
        out.append("bi")
    return out


def _dropout(m: nn.Module) -> list:
    return [f"p{m.p:g}"]


def _attention(m: nn.Module) -> list:
    return [str(m.embed_dim), f"h{m.num_heads}"]


#: class → formatter of what follows the class name; the nearest class in a module's MRO wins
#: (so ``_ConvNd`` serves Conv1d…ConvTranspose3d and a user's subclass of Linear is a Linear)
SIGNATURES: dict[type, Callable[[nn.Module], list]] = {
    nn.Linear: _linear,
    nn.Bilinear: lambda m: [f"{m.in1_features}×{m.in2_features}→{m.out_features}"],
    nn.modules.conv._ConvNd: _conv,
    nn.modules.pooling._MaxPoolNd: _pool,
    nn.modules.pooling._AvgPoolNd: _pool,
    nn.modules.pooling._AdaptiveAvgPoolNd: _adaptive_pool,
    nn.modules.pooling._AdaptiveMaxPoolNd: _adaptive_pool,
    nn.modules.batchnorm._NormBase: _features("num_features"),
    nn.LayerNorm: _features("normalized_shape"),
    nn.GroupNorm: _group_norm,
    nn.Embedding: _embedding,
    nn.RNNBase: _rnn,
    nn.modules.rnn.RNNCellBase: _rnn,
    nn.modules.dropout._DropoutNd: _dropout,
    nn.MultiheadAttention: _attention,
}


def signature(module: nn.Module) -> str:
    """A short description of ``module``: its class name and its sizes.

    >>> signature(nn.Conv2d(1, 6, kernel_size=5, padding=2)), signature(nn.LSTM(28, 256, 2))
    ('Conv2d 1→6 k5 p2', 'LSTM 28→256 ×2')
    >>> signature(nn.Linear(784, 256)), signature(nn.Sequential()), signature(nn.ReLU())
    ('Linear 784→256', 'Sequential', 'ReLU')
    """
    name = type(module).__name__
    for cls in type(module).__mro__:
        fmt = SIGNATURES.get(cls)
        if fmt is not None:
            try:
                return " ".join([name, *fmt(module)])
            except Exception:  # a user's subclass without the usual attributes
                return name
    return name


# ----- paths ----------------------------------------------------------------------------------
def module_paths(namespace: Optional[Mapping[str, Any]]) -> dict[int, str]:
    """``id(module) → "net.1"`` for every module reachable from ``namespace``'s variables.

    A module is named under the outermost module that holds it (``model.net.0`` even when
    ``net = model.net`` is bound too), in the namespace's order; names starting with ``_``
    are skipped, as in ``naming.tensor_names``.

    >>> model = nn.Sequential(nn.Linear(2, 2))
    >>> paths = module_paths({"layer": model[0], "model": model})
    >>> paths[id(model[0])], paths[id(model)]
    ('model.0', 'model')
    """
    if not namespace:
        return {}
    bound = _namespace_modules(namespace)
    inside: set = set()
    for _, m in bound:
        inside.update(id(sub) for _, sub in _named_modules(m, "") if sub is not m)
    paths: dict[int, str] = {}
    outermost = [(name, m) for name, m in bound if id(m) not in inside]
    for name, m in outermost + bound:  # (the rest: modules that hold each other in a cycle)
        for path, sub in _named_modules(m, name):
            paths.setdefault(id(sub), path)
    return paths


def _namespace_modules(namespace: Mapping[str, Any]) -> list:
    out = []
    for name, value in list(namespace.items()):
        try:
            if isinstance(name, str) and not name.startswith("_") and isinstance(value, nn.Module):
                out.append((name, value))
        except Exception:  # the user's object misbehaves: it just gives no name
            continue
    return out


def _named_modules(module: nn.Module, prefix: str) -> list:
    try:
        return list(module.named_modules(prefix=prefix))
    except Exception:  # a user's Module subclass may break named_modules
        return [(prefix, module)]


# ----- the report's list ------------------------------------------------------------------------
def module_calls(b: Any, namespace: Optional[Mapping[str, Any]], recs: list, ids: dict,
                 twins: Any) -> list:
    """The report's ``ModuleCall`` list from what block ``b``'s tracker recorded.

    ``recs`` are the drawn Recs in forward (``seq``) order and ``ids`` their node ids;
    ``twins`` maps a torch tensor to its Twin (for the parameters' node ids). When the block
    pruned a long loop's old segments, the top-level calls that ended before its oldest kept
    record are left out (their nodes are not drawn). The tracker lets go of the modules. A
    failure here is a note, never the report's end.
    """
    tracker = b.modules
    if tracker is None or not tracker.calls:
        return []
    try:
        first_kept = next((seg[0].seq for seg in b.segments if seg), None) if b.pruned else None
        return _module_calls(tracker, namespace, recs, ids, twins, first_kept)
    except Exception as exc:  # the report must never break the user's code
        b.note(f"gradmagic could not list the module calls ({type(exc).__name__}: {exc}).")
        return []
    finally:
        tracker.calls, tracker.dropped = [], {}  # the report never keeps the user's modules
        tracker.last_out = {}


def _module_calls(tracker: ModuleTracker, namespace: Optional[Mapping[str, Any]], recs: list, ids: dict,
                  twins: Any, first_kept: Optional[int]) -> list:
    numbers, counts = _numbers(tracker.calls, tracker.dropped)
    raw = _kept(tracker.calls, first_kept)
    paths = module_paths(namespace)
    seqs = [r.seq for r in recs]
    index = {id(c): k for k, c in enumerate(raw)}
    described: dict[int, tuple] = {}
    out = []
    for k, c in enumerate(raw):
        m = c.module
        about = described.get(id(m))
        if about is None:
            about = described[id(m)] = _describe(m, paths, ids, twins)
        path, kind, sig, params = about
        out.append(ModuleCall(
            index=k, path=path, type=kind, signature=sig, inputs=[list(s) for s in c.inputs],
            outputs=[list(s) for s in c.outputs],
            parameters=[dict(p) for p in params], nodes=_nodes(c, recs, seqs, ids),
            parent=index.get(id(c.parent)) if c.parent is not None else None,
            depth=c.depth, call=numbers[id(c)], calls=counts[id(m)]))
    return out


def _numbers(calls: list, dropped: dict) -> tuple[dict, dict]:
    """``id(call) → which call of its module it is`` and ``id(module) → how many calls``
    (counting those dropped while recording)."""
    counts = {key: n for key, (_, n) in dropped.items()}
    numbers = {}
    for c in calls:
        key = id(c.module)
        n = numbers[id(c)] = counts.get(key, 0)
        counts[key] = n + 1
    return numbers, counts


def _kept(calls: list, first_kept: Optional[int]) -> list:
    """The calls whose top-level call ended at or after ``first_kept``."""
    if first_kept is None:
        return list(calls)
    out, keep = [], True
    for c in calls:
        if c.parent is None:
            keep = c.end >= first_kept
        if keep:
            out.append(c)
    return out


def _describe(m: nn.Module, paths: dict, ids: dict, twins: Any) -> tuple:
    """(path, class name, signature, parameters) of module ``m``."""
    kind = type(m).__name__
    path = paths.get(id(m), kind)
    try:
        own = list(m.named_parameters(recurse=False))
    except Exception:  # a user's Module subclass may break named_parameters
        own = []
    params = []
    for name, p in own:
        if not isinstance(p, _Tensor):
            continue
        tw = twins.get(p)
        rec = tw.rec if tw is not None else None
        with _no_torch_function():
            shape = list(p.shape)
        params.append({"name": f"{path}.{name}", "shape": shape,
                       "node": ids.get(id(rec)) if rec is not None else None})
    return path, kind, signature(m), params


def _nodes(c: RawCall, recs: list, seqs: list, ids: dict) -> list:
    """Ids of the drawn nodes a torch call made during call ``c`` (tensors first seen there,
    such as its parameters, were not made by it)."""
    lo, hi = bisect_right(seqs, c.start), bisect_right(seqs, c.end)
    return [ids[id(r)] for r in recs[lo:hi] if r.torch_op is not None]


def _ignore(_text: str) -> None:
    """A removed tracker's note callback."""


def remove_trackers(keep: Iterable[Any]) -> int:
    """Remove the hooks of every installed tracker not in ``keep`` (those of blocks that are no
    longer open: their ``__exit__`` never ran); return how many.

    >>> tracker = ModuleTracker(lambda: 0, print).install()
    >>> remove_trackers([]), _ACTIVE
    (1, [])
    """
    leaked = [t for t in _ACTIVE if not any(t is k for k in keep)]
    for t in leaked:
        t.remove()
    return len(leaked)
