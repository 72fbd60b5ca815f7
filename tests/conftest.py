"""Shared fixtures for the magic, CLI and demo tests: a real IPython shell with gradmagic loaded."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def torch_function_modes() -> int:
    """How many TorchFunctionModes are active (must be 0 between cells)."""
    import torch

    return torch._C._len_torch_function_stack()


@pytest.fixture
def ip():
    """IPython's test shell with gradmagic loaded; unloaded (and checked clean) afterwards."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("colors", "NoColor")
    shell.extension_manager.load_extension("gradmagic")
    shell.run_cell("import torch", store_history=True)
    yield shell
    shell.extension_manager.unload_extension("gradmagic")
    assert torch_function_modes() == 0
