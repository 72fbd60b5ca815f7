"""The table of op rules: every op is declared once with ``defop``.

An op has a forward on ndarrays, one VJP per input (``None``: not differentiable),
its torch-style node name, one human-readable formula per input and the names of
what each VJP reads (``saves``), which is what the node keeps for backward.
VJPs have the fixed signature ``vjp(g, ans, *inputs, **params)`` and are written with
operators, NumPy ufuncs and :func:`gradmagic.engine.ops.call`, so the same code runs on
ndarrays (fast, plain backward) and on Tensors (``create_graph=True``, differentiable).

>>> import numpy as np
>>> op = REGISTRY["mul"]
>>> op.node_name, op.formulas
('MulBackward0', ('∂/∂a = g·b', '∂/∂b = g·a'))
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from ._quiet import quiet_enter, quiet_exit

VJP = Callable[..., Any]


@dataclass(eq=False)
class OpDef:
    """One row of the op table."""
    name: str
    fwd: Callable[..., Any]
    vjps: tuple[VJP | None, ...]
    node_name: str | Callable[[tuple, dict], str]
    formulas: tuple[str, ...]
    nondiff: bool = False
    saves: tuple[tuple[str, ...], ...] = ()   # per input: names its VJP reads ("ans" = output)
    promote: str | None = None                # None | "same" (torch promotion) | "float"
    variadic: bool = False                    # inputs are a list (cat, stack): one VJP template
    arg_names: tuple[str, ...] = ()
    saves_ans: bool = False
    diff: tuple[bool, ...] = ()               # per input: has a VJP
    scatter: Callable[[dict], Any] | None = None  # see ``defop``
    outer: dict[int, VJP] = field(default_factory=dict)  # see ``defop``
    special: bool = False                     # has ``scatter`` or ``outer``
    saved_by_mask: dict = field(default_factory=dict, repr=False)

    def saved_indices(self, mask: int, n: int) -> tuple[int, ...]:
        """Inputs kept for backward when the inputs in bit ``mask`` need a gradient."""
        names = {name for i in range(n) if mask >> i & 1 and i < len(self.saves)
                 for name in self.saves[i]}
        got = tuple(i for i, a in enumerate(self.arg_names) if a in names)
        self.saved_by_mask[mask] = got
        return got

    def vjp(self, i: int) -> VJP:
        rule = self.vjps[0] if self.variadic else (self.vjps[i] if i < len(self.vjps) else None)
        if rule is None:
            raise NotImplementedError(f"VJP of {self.name} wrt arg {i} not defined")
        return rule


REGISTRY: dict[str, OpDef] = {}


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        token = quiet_enter()
        try:
            return fn(*args, **kwargs)
        finally:
            quiet_exit(token)
    return quiet


def defop(name: str, fwd: Callable[..., Any], node_name: str | Callable, *,
          vjp: tuple[VJP | None, ...] = (), formulas: tuple[str, ...] = (),
          saves: tuple[str, ...] = (), nondiff: bool = False, promote: str | None = None,
          variadic: bool = False, quiet: bool = False,
          scatter: Callable[[dict], Any] | None = None,
          outer: dict[int, VJP] | None = None) -> OpDef:
    """Declare an op. ``saves`` holds, per VJP, a space-separated list of what it reads.

    ``quiet``: run forward and VJPs without NumPy's floating-point warnings (log(0),
    x/0, ...), since torch gives inf/nan silently.
    ``scatter``: for a one-input op that picks a view of its input (a slice), a function of
    the params giving the basic index its VJP scatters ``g`` to (None: not basic), so that a
    plain backward adds ``g`` there in place instead of summing zero-filled arrays.
    ``outer``: per input whose VJP is a matrix product ``Aᵀ·B`` (a weight's gradient), a
    function with the VJP's signature giving ``(A, B)`` (None: not that case), so that a
    plain backward sums the gradients of a weight used many times (an RNN's, once per
    step) as one product of the stacked factors.
    """
    if name in REGISTRY:
        raise ValueError(f"op {name!r} declared twice")
    if quiet:
        fwd, vjp = _quiet(fwd), tuple(None if v is None else _quiet(v) for v in vjp)
    arg_names: tuple[str, ...] = ()
    for rule in vjp:
        if rule is not None:
            params = list(inspect.signature(rule).parameters.values())[2:]
            arg_names = tuple(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD
                              and p.default is p.empty)
            break
    split = tuple(tuple(s.split()) for s in saves)
    diff = tuple(rule is not None for rule in vjp) + (False,) * 8
    op = OpDef(name, fwd, tuple(vjp), node_name, tuple(formulas), nondiff, split, promote,
               variadic, arg_names, any("ans" in s for s in split), diff, scatter=scatter,
               outer=dict(outer or {}), special=bool(scatter or outer))
    REGISTRY[name] = op
    return op
