"""gradmagic — make automatic differentiation visible in IPython and Jupyter.

In a notebook::

    %load_ext gradmagic

    %%grad
    x = torch.arange(4.0, requires_grad=True)
    y = 2 * torch.dot(x, x)
    y.backward()

In a script::

    >>> import torch, gradmagic
    >>> with gradmagic.trace() as report:
    ...     x = torch.arange(4.0, requires_grad=True)
    ...     (2 * torch.dot(x, x)).backward()
    >>> report.ok
    True

Names are resolved lazily so that ``import gradmagic.engine`` (the standalone NumPy
autograd engine) never imports torch.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "trace": ("gradmagic.recorder", "trace"),
    "last_report": ("gradmagic.recorder", "last_report"),
    "GradReport": ("gradmagic.report", "GradReport"),
    "last_widget": ("gradmagic.viz.display", "last_widget"),
    "GradMagics": ("gradmagic.magic", "GradMagics"),
    "load_ipython_extension": ("gradmagic.magic", "load_ipython_extension"),
    "unload_ipython_extension": ("gradmagic.magic", "unload_ipython_extension"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'gradmagic' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
