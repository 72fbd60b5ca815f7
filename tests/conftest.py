"""Shared fixtures for the magic, CLI and demo tests: a real IPython shell with gradmagic loaded."""
from __future__ import annotations

import pytest

from shell_helpers import torch_function_modes


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
