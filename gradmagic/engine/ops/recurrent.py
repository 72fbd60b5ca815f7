"""Rules of the recurrent family (see ops/__init__.py)."""
from __future__ import annotations

PUBLIC: tuple[str, ...] = ()   # torch-named functions re-exported by engine.functional
METHODS: tuple[str, ...] = ()  # those that are also Tensor methods
