"""Mapping rows of the conv family (see rows/__init__.py)."""
from __future__ import annotations

from typing import Any

from gradmagic.engine import functional as EF

from ..adapters import _clean, call, swapped  # noqa: F401

ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
]
