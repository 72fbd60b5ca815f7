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

from gradmagic._lazy import lazy_attributes

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


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
