"""Paths and checks shared by the magic, CLI and demo tests (imported by name: conftest modules clash)."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def torch_function_modes() -> int:
    """How many TorchFunctionModes are active (must be 0 between cells)."""
    import torch

    return torch._C._len_torch_function_stack()
