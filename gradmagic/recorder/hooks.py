"""Tensor hooks, mirrored: what a user's hook did in torch's backward, replayed at the same
point of the engine's.

A user's hook cannot be called a second time (it may print, append to a list, count), so
the recorder hands torch a wrapper that calls the user's hook once and logs what it saw and
returned. The engine's twin gets a *replay* hook at the same place: when the engine's
backward reaches it, the gradient the engine computed is checked against the one torch's
hook received, and the engine continues from what the hook returned (lockstep, as values
are after each op check). Upstream of a hook everything is checked; the hook itself is
shown for what it did ("g → 2·g").

>>> import torch, gradmagic
>>> with gradmagic.trace() as rep:
...     x = torch.tensor([1.0, 2.0], requires_grad=True)
...     z = x * 3
...     _ = z.register_hook(lambda g: g * 2)
...     z.sum().backward()
>>> rep.ok, x.grad.tolist()
(True, [6.0, 6.0])
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, Optional

import numpy as np

#: the most torch calls a wrapper logs before the engine consumes them (unrecorded
#: backward calls between recorded cells must not grow memory without bound)
LOG_LIMIT = 64


class HookLog:
    """The torch-side calls of one hook: ``(gradient received, gradient returned or None)``;
    ``tensor``: a weak reference to the torch tensor the hook is on (None: not known)."""

    __slots__ = ("calls", "function", "tensor", "__weakref__")

    def __init__(self, function: bool = False, tensor: Any = None) -> None:
        self.calls: list = []
        self.function = function  # a custom Function's node (its calls check, never steer)
        self.tensor = None if tensor is None else weakref.ref(tensor)

    def live(self) -> bool:
        """Can the hook still run (its tensor not freed)?"""
        return self.tensor is None or self.tensor() is not None


def torch_side(hook: Callable, log: HookLog, copy: Callable[[Any], np.ndarray]) -> Callable:
    """The wrapper torch stores instead of ``hook``: calls it once, logs its input/output."""
    @functools.wraps(hook)
    def wrapper(grad: Any) -> Any:
        seen = copy(grad) if len(log.calls) < LOG_LIMIT else None
        out = hook(grad)
        if seen is not None:
            log.calls.append((seen, None if out is None else copy(out)))
        return out
    return wrapper


def post_accumulate_side(hook: Callable, log: HookLog, copy: Callable[[Any], np.ndarray]) -> Callable:
    """The wrapper of a post-accumulate-grad hook: logs the leaf's ``.grad`` as accumulated."""
    @functools.wraps(hook)
    def wrapper(tensor: Any) -> Any:
        g = tensor.grad
        if len(log.calls) < LOG_LIMIT:
            log.calls.append((None if g is None else copy(g), None))
        return hook(tensor)
    return wrapper


class Replay:
    """The engine-side hook: checks what reaches it against torch's log, then returns what
    torch's hook returned. ``seen`` collects ``(replay, engine gradient, torch's, returned)``
    for the recorder to file as checks after the backward."""

    __slots__ = ("log", "rec", "seen", "kind", "doubled")

    def __init__(self, log: HookLog, rec: Any, seen: list, kind: str = "tensor") -> None:
        self.log, self.rec, self.seen, self.kind = log, rec, seen, kind
        #: the hook ran inside a create_graph backward: torch's double backward may reach it
        #: again by other paths than the engine's, so later calls are replayed, not checked
        self.doubled = False

    def __call__(self, g: Any) -> Optional[Any]:
        if not self.log.calls:
            return None  # torch did not call it (removed, or not reached)
        received, returned = self.log.calls.pop(0)
        if self.kind == "post":  # g is the leaf: its accumulated gradient is what is checked
            grad = g.grad
            self.seen.append((self, None if grad is None else np.array(grad.data), received, None))
            return None
        from gradmagic.engine import Tensor
        self.seen.append((self, None if self.doubled else np.array(getattr(g, "data", g)), received, returned))
        if isinstance(g, Tensor) and g.requires_grad:
            self.doubled = True
        if returned is None:
            return None
        if isinstance(g, Tensor) and g.requires_grad:  # create_graph: keep the graph through it
            kind, c = effect(received, returned)
            if kind == "scale":
                return g * c
            if kind == "shift":
                return g + c
            if kind == "same":
                return None
        return Tensor(returned.copy())


def effect(received: Optional[np.ndarray], returned: Optional[np.ndarray]) -> tuple:
    """What a hook did, as data: ``("none"|"same"|"scale"|"shift"|"other", constant)``.

    >>> effect(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    ('scale', 2.0)
    >>> effect(np.array([6.0, 6.0]), np.array([7.0, 7.0]))
    ('shift', 1.0)
    >>> effect(np.array([7.5e37, 0.25], np.float32), np.array([7.5e37, 1.25], np.float32))
    ('shift', 1.0)
    """
    if returned is None:
        return ("none", None)
    if received is None or received.shape != returned.shape or received.dtype.kind not in "fc":
        return ("other", None)
    with np.errstate(all="ignore"):
        if np.array_equal(received, returned):
            return ("same", None)
        flat_r, flat_o = received.ravel(), returned.ravel()
        fits = []
        nz = flat_r != 0
        if nz.any():
            c = flat_o[nz][0] / flat_r[nz][0]
            if np.allclose(flat_o, c * flat_r, rtol=1e-5, atol=1e-7):
                fits.append(("scale", float(np.real(c))))
        if flat_r.size:  # the shift read where it is least absorbed: 7.5e37 + 1 is 7.5e37
            k = int(np.argmin(np.abs(flat_r)))
            d = flat_o[k] - flat_r[k]
            if np.allclose(flat_o, flat_r + d, rtol=1e-5, atol=1e-7):
                fits.append(("shift", float(np.real(d))))
    # a constant gradient fits both (g + 1 at g = 6 is also 1.167·g): take the plainer constant
    return min(fits, key=lambda f: not _plain(f[1])) if fits else ("other", None)


def _plain(c: float) -> bool:
    """A constant someone would write in a hook (2, 0.5, 1e-3: three significant digits at
    most), not a ratio like 1.1667 or 5.43e9 (``g + 1`` at g = 1.8e-10 is also 5.43e9·g).

    >>> [_plain(c) for c in (2.0, 0.5, 1e-3, 0.99999999982, 1.1667, 5.4296e9)]
    [True, True, True, True, False, False]
    """
    return abs(c - float(f"{c:.3g}")) <= 1e-6 * max(1.0, abs(c))


def describe(received: Optional[np.ndarray], returned: Optional[np.ndarray]) -> str:
    """What a hook did to the gradient, in a learner's words.

    >>> describe(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    'g → 2·g'
    >>> describe(np.array([1.0, 2.0]), np.array([2.0, 3.0]))
    'g → g + 1'
    >>> describe(np.array([1.0]), None)
    'g → g (the hook returned None: it only looked)'
    """
    kind, c = effect(received, returned)
    if kind == "none":
        return "g → g (the hook returned None: it only looked)"
    if kind == "same":
        return "g → g (unchanged)"
    if kind == "scale":
        return f"g → {_num(c)}·g"
    if kind == "shift":
        return f"g → g {'+' if c >= 0 else '−'} {_num(abs(c))}"
    return "g → hook(g)"


def _num(c: Any) -> str:
    c = float(np.real(c))
    return str(int(c)) if c == int(c) and abs(c) < 1e6 else f"{c:.4g}"
