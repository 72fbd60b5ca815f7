"""Process-wide engine state: grad mode and the active backward recorders.

Kept in one tiny object so the hot path reads a single attribute.
"""
from __future__ import annotations


class _State:
    __slots__ = ("grad_enabled", "recorders")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.recorders: list | None = None  # list of open record_backward() lists, or None


STATE = _State()
