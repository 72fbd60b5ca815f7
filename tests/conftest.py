"""Shared fixtures for the magic, CLI and demo tests: a real IPython shell with gradmagic loaded."""
from __future__ import annotations

import builtins

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


@pytest.fixture(autouse=True)
def keep_builtins_underscore_clean():
    """Code run in "single" mode (doctests, the fuzzer's programs) echoes through
    ``sys.displayhook``, which sets ``builtins._``; IPython then stops updating the shell's
    own ``_`` for the rest of the session. Undo it after every test."""
    had, old = hasattr(builtins, "_"), getattr(builtins, "_", None)
    yield
    if had:
        builtins._ = old
    elif hasattr(builtins, "_"):
        del builtins._
