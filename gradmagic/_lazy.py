"""PEP 562 lazy attributes for package ``__init__`` modules, written once.

>>> import types
>>> mod = types.ModuleType("demo")
>>> mod.__getattr__, mod.__dir__ = lazy_attributes("demo", vars(mod), {"sqrt": ("math", "sqrt")})
>>> mod.sqrt(9.0)
3.0
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_attributes(
    package: str, namespace: dict[str, Any], table: dict[str, tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` that import ``table[name] = (module, attr)`` on first
    use and cache the value in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        try:
            module_name, attr = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module_name), attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace.get("__all__", ()), *table})

    return __getattr__, __dir__
