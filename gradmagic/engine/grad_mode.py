"""Grad mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``is_grad_enabled``.

>>> from gradmagic.engine import tensor, no_grad
>>> x = tensor([1.0], requires_grad=True)
>>> with no_grad():
...     y = x * 2
>>> y.requires_grad
False
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from ._state import STATE


def is_grad_enabled() -> bool:
    """True when new operations are recorded for backward."""
    return STATE.grad_enabled


class set_grad_enabled:
    """Context manager (and decorator) that sets grad mode to ``mode`` and restores it."""

    def __init__(self, mode: bool) -> None:
        self.prev = STATE.grad_enabled
        self.mode = bool(mode)
        STATE.grad_enabled = self.mode  # like torch: also takes effect as a plain call

    def __enter__(self) -> None:
        STATE.grad_enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = self.prev


class _GradMode:
    mode = True

    def __enter__(self) -> None:
        self.prev = STATE.grad_enabled
        STATE.grad_enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = self.prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager / decorator: operations inside are not recorded."""
    mode = False


class enable_grad(_GradMode):
    """Context manager / decorator: re-enable recording inside ``no_grad``."""
    mode = True
