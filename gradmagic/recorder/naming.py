"""Names and source lines for recorded tensors.

``tensor_names(namespace)`` finds the variable names a user gave to tensors:
plain variables (``x``, ``w``), parameters and buffers of ``nn.Module`` objects
(``net.0.weight``) and items of top-level lists/tuples (``params[0]``).
``SourceFinder`` finds the line of user code that made the current torch call by
walking ``sys._getframe`` (cheap) rather than ``inspect.stack()`` (slow).

>>> import torch
>>> x = torch.zeros(2)
>>> net = torch.nn.Linear(2, 1)
>>> [name for _, name in tensor_names({"x": x, "net": net, "_hidden": x})]
['x', 'net.weight', 'net.bias']
"""
from __future__ import annotations

import linecache
import os
import re
import sys
from typing import Any, Mapping, Optional

import torch

_TORCH_DIR = os.path.dirname(torch.__file__)
_GRADMAGIC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP_PREFIXES = (_TORCH_DIR, _GRADMAGIC_DIR, os.path.dirname(os.__file__) + os.sep + "contextlib")


def tensor_names(namespace: Mapping[str, Any]) -> list[tuple[torch.Tensor, str]]:
    """``(tensor, name)`` pairs for the tensors ``namespace`` holds.

    Names starting with ``_`` (IPython's ``_``, ``_3``, ``_i``) are skipped. Plain
    names come first, then module parameters (``net.0.weight``) and list items. A value
    whose type check or length raises (a lazy proxy, a broken ``__len__``) names nothing.
    """
    plain: list[tuple[torch.Tensor, str]] = []
    derived: list[tuple[torch.Tensor, str]] = []
    for name, value in list(namespace.items()):
        if not isinstance(name, str) or name.startswith("_"):
            continue
        try:
            if isinstance(value, torch.Tensor):
                plain.append((value, name))
            else:
                derived.extend(_derived_names(name, value))
        except Exception:  # the user's object misbehaves: it just gives no name
            continue
    return plain + derived


def _derived_names(name: str, value: Any) -> list[tuple[torch.Tensor, str]]:
    """Names of the tensors inside a module or a short list/tuple bound to ``name``."""
    if isinstance(value, torch.nn.Module):
        return _module_names(name, value)
    if isinstance(value, (list, tuple)) and 0 < len(value) <= 64:
        return [(v, f"{name}[{i}]") for i, v in enumerate(value) if isinstance(v, torch.Tensor)]
    return []


def _module_names(prefix: str, module: torch.nn.Module) -> list[tuple[torch.Tensor, str]]:
    """``(tensor, "net.0.weight")`` for the parameters and buffers of ``module``."""
    try:
        params = list(module.named_parameters(prefix=prefix, remove_duplicate=False))
        buffers = list(module.named_buffers(prefix=prefix, remove_duplicate=False))
    except Exception:  # a user's Module subclass may break named_parameters
        return []
    return [(t, name) for name, t in params + buffers if isinstance(t, torch.Tensor)]


def called_by_torch(depth: int = 1) -> bool:
    """True when the innermost frame outside gradmagic, from ``depth`` frames up, is torch's
    own code (``Module.zero_grad`` reading ``p.grad``), not the user's.

    >>> called_by_torch()
    False
    """
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return False
    while frame is not None and frame.f_code.co_filename.startswith(_GRADMAGIC_DIR):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR)


class SourceFinder:
    """Locate the user's line for the torch call being recorded.

    With ``filename``, the innermost frame whose code has that filename wins (the
    recorded cell), so a call made inside a helper defined elsewhere is placed on
    the cell's line that called the helper. Without it, the innermost frame
    outside torch, gradmagic and contextlib wins.

    >>> finder = SourceFinder(None)
    >>> where = finder.find(0)
    >>> where[0] == __file__ or where[0].startswith("<doctest")
    True
    """

    __slots__ = ("filename", "lines")

    def __init__(self, filename: Optional[str], source: Optional[str] = None) -> None:
        self.filename = filename
        # Python's own line ends only: str.splitlines also breaks at \f, \x1c-\x1e, \x85, U+2028/9
        self.lines = re.split(r"\r\n|\r|\n", source) if source is not None else None

    def find(self, depth: int = 1) -> Optional[tuple[str, int]]:
        """``(filename, line)`` of the user's frame, or ``None`` when not found."""
        frame = self.frame(depth + 1)
        return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)

    def frame(self, depth: int = 1) -> Any:
        """The user's frame itself (don't keep it: it holds the user's locals)."""
        try:
            frame = sys._getframe(depth + 1)
        except ValueError:
            return None
        target = self.filename
        if target is not None:
            while frame is not None:
                if frame.f_code.co_filename == target:
                    return frame
                frame = frame.f_back
            return None
        while frame is not None:
            if not frame.f_code.co_filename.startswith(_SKIP_PREFIXES):
                return frame
            frame = frame.f_back
        return None

    def code(self, filename: str, line: int) -> Optional[str]:
        """The stripped text of ``line`` (from ``source`` when given, else linecache)."""
        if self.lines is not None and filename == self.filename:
            if 1 <= line <= len(self.lines):
                return self.lines[line - 1].strip()
            return None
        text = linecache.getline(filename, line)
        return text.strip() or None
