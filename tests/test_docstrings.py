"""Every docstring example in the package runs and prints what it says (docstrings are docs)."""
from __future__ import annotations

import builtins
import doctest
import importlib
import pkgutil

import pytest

import gradmagic

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(gradmagic.__path__, "gradmagic.")
    if not info.name.endswith("__main__")
)


@pytest.fixture(autouse=True)
def keep_builtins_underscore_clean():
    """doctest echoes results through sys.displayhook, which sets builtins._; IPython then
    stops updating the shell's own `_` for the rest of the session, so undo it."""
    had, old = hasattr(builtins, "_"), getattr(builtins, "_", None)
    yield
    if had:
        builtins._ = old
    elif hasattr(builtins, "_"):
        del builtins._


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
