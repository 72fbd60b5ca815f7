"""Fault injection and leak checks shared by the fault, soak and memory tests and ``benchmarks/soak.py``.

A *stage* is one step of gradmagic's own work (recompute an op in the engine, look a torch
callable up, compare, name, build the report, lay out, render, make the widget ...), named by
the module-level callables that do it. ``injected(stage)`` makes those callables raise, so a
test can check that gradmagic's failure never reaches the user's cell. ``global_state()`` is
what a recorded cell must leave exactly as it found it (torch's mode stacks, grad mode, the
engine's grad mode, the cyclic GC's freeze).

>>> import torch
>>> stage = STAGES_BY_NAME["cross-check"]
>>> with injected(stage) as fired:
...     with trace_quietly() as rep:
...         x = torch.ones(2, requires_grad=True)
...         (x * 3).sum().backward()
>>> fired[0] > 0, any("injected fault in cross-check" in n for n in rep.notes), x.grad.tolist()
(True, True, [3.0, 3.0])
"""
from __future__ import annotations

import gc
import importlib
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

import shell_helpers  # noqa: F401  (puts the repo root on sys.path)


class InjectedFault(RuntimeError):
    """The exception a stage raises under :func:`injected` (an ordinary gradmagic bug)."""


@dataclass(frozen=True)
class Stage:
    """One stage of gradmagic's work.

    ``targets``: ``"module:attr"`` or ``"module:Class.attr"`` callables that do it;
    ``recording``: it runs while a block is recorded (also under ``trace()``), else only when
    ``%%grad`` shows a report; ``format``: the ``--format`` that makes it run; ``on_error``:
    it runs only when the cell raised.
    """

    name: str
    targets: tuple[str, ...]
    recording: bool
    format: str = "text"
    on_error: bool = False


STAGES = (
    Stage("twin op", ("gradmagic.engine.tensor:run", "gradmagic.engine.tensor:run1",
                      "gradmagic.engine.tensor:run2", "gradmagic.engine.functional:run1",
                      "gradmagic.engine.functional:run2", "gradmagic.engine.methods:run2"),
          recording=True),
    Stage("mapping lookup", ("gradmagic.recorder.mapping:lookup",), recording=True),
    Stage("cross-check", ("gradmagic.recorder.mode:compare", "gradmagic.recorder.backward:compare"),
          recording=True),
    Stage("naming", ("gradmagic.recorder.build:tensor_names",), recording=True),
    Stage("source lines", ("gradmagic.recorder.naming:SourceFinder.find",), recording=True),
    Stage("report building", ("gradmagic.recorder.session:build_report",), recording=True),
    Stage("recorder start", ("gradmagic.recorder.session:Recorder",), recording=True),
    Stage("module calls", ("gradmagic.recorder.modules:ModuleTracker._open",
                           "gradmagic.recorder.modules:ModuleTracker._close",
                           "gradmagic.recorder.modules:module_paths"), recording=True),
    Stage("report dict", ("gradmagic.report:_plain",), recording=False),
    Stage("layout", ("gradmagic.viz.layout:layout", "gradmagic.viz.html:layout"), recording=False,
          format="html"),
    Stage("SVG rendering", ("gradmagic.viz.html:render_svg",), recording=False, format="html"),
    Stage("HTML rendering", ("gradmagic.viz.html:render_html",), recording=False, format="html"),
    Stage("text rendering", ("gradmagic.viz.text:render_text",), recording=False),
    Stage("widget creation", ("gradmagic.viz.widget:widget_graph",), recording=False, format="widget"),
    Stage("display", ("gradmagic.viz.display:show",), recording=False, format="html"),
    Stage("traceback cleaning", ("gradmagic.magic:user_traceback",), recording=False, on_error=True),
)
STAGES_BY_NAME = {s.name: s for s in STAGES}


def _resolve(target: str) -> tuple[Any, str]:
    """``"pkg.mod:Class.attr"`` → (the object holding ``attr``, ``attr``)."""
    module, _, path = target.partition(":")
    owner: Any = importlib.import_module(module)
    *parents, attr = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    return owner, attr


@contextmanager
def injected(stage: Stage, exc: Callable[[], BaseException] | None = None,
             times: int | None = None) -> Iterator[list[int]]:
    """Make every target of ``stage`` raise ``exc()`` (default :class:`InjectedFault`).

    ``times``: raise only on the first ``times`` calls, then behave normally (a single
    Ctrl-C). Yields a one-item list counting the faults raised; restores the originals.
    """
    make = exc or (lambda: InjectedFault(f"injected fault in {stage.name}"))
    fired = [0]
    resolved = [_resolve(target) for target in stage.targets]  # import all before patching any
    saved = [(owner, attr, owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr))
             for owner, attr in resolved]
    for owner, attr in resolved:
        setattr(owner, attr, _faulty(getattr(owner, attr), make, fired, times))
    try:
        yield fired
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def _faulty(real: Callable, make: Callable[[], BaseException], fired: list[int],
            times: int | None) -> Callable:
    def fault(*args: Any, **kwargs: Any) -> Any:
        if times is None or fired[0] < times:
            fired[0] += 1
            raise make()
        return real(*args, **kwargs)
    return fault


@contextmanager
def trace_quietly(**kw: Any) -> Iterator[Any]:
    """``gradmagic.trace()`` with a fresh session (a doctest helper)."""
    from gradmagic.recorder import Session, trace

    with trace(session=Session(), **kw) as rep:
        yield rep


# ----------------------------------------------------------------- what a cell must not change


def global_state() -> dict[str, Any]:
    """Process-wide state a recorded cell must leave as it found it.

    >>> global_state()["torch function modes"]
    0
    """
    from gradmagic.engine._state import STATE
    from gradmagic.recorder.mode import Recorder
    from torch.nn.modules import module

    stack = torch.overrides._get_current_function_mode_stack()
    return {
        "torch function modes": len(stack),
        "gradmagic modes": sum(isinstance(m, Recorder) for m in stack),
        "torch dispatch modes": torch._C._len_torch_dispatch_stack(),
        "torch grad enabled": torch.is_grad_enabled(),
        "engine grad enabled": STATE.grad_enabled,
        "engine backward recorders": STATE.recorders,
        "gc frozen objects": gc.get_freeze_count(),
        "global module forward hooks": (len(module._global_forward_pre_hooks), len(module._global_forward_hooks),
                                        len(module._global_forward_hooks_always_called)),
    }


_MISSING = ("missing",)


def snapshot(value: Any) -> Any:
    """A comparable deep copy of a user value: tensors with requires_grad and ``.grad``,
    modules as their named parameters and buffers, anything else as is."""
    if isinstance(value, torch.Tensor):
        grad = value.grad if value.is_leaf and value.grad is not None else None
        return ("tensor", value.detach().clone(), value.requires_grad,
                None if grad is None else grad.detach().clone())
    if isinstance(value, torch.nn.Module):
        named = [*value.named_parameters(), *value.named_buffers()]
        return ("module", [(name, snapshot(t)) for name, t in named])
    return ("value", value)


def user_state(ns: dict, names: tuple[str, ...]) -> dict[str, Any]:
    """Snapshots of ``names`` in ``ns`` (missing names included as such)."""
    return {name: snapshot(ns[name]) if name in ns else _MISSING for name in names}


def same(a: Any, b: Any) -> bool:
    """Exact equality of two snapshots (tensors bit for bit, NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
                and torch.equal(a.isnan(), b.isnan()))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def differences(a: dict, b: dict) -> list[str]:
    """Names whose snapshots differ between two :func:`user_state` results."""
    return [name for name in a if not same(a[name], b.get(name, _MISSING))]


def normalise_stdout(text: str) -> str:
    """Cell output with the execution counts taken out (``Out[7]`` → ``Out[n]``)."""
    return re.sub(r"(Out|In)\[\d+\]", r"\1[n]", text)
