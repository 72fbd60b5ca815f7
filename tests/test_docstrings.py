"""Every docstring example in the package runs and prints what it says (docstrings are docs)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gradmagic

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(gradmagic.__path__, "gradmagic.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
