"""The recorder: run real PyTorch, mirror every op into gradmagic's engine, compare.

``trace()`` records a block of PyTorch code and yields a ``GradReport`` that is
filled in when the block exits (also when it raised: then ``report.error`` is set
and the exception propagates unchanged). ``Session`` holds twins, graphs and leaf
histories across blocks (one per IPython shell); ``last_report()`` is the newest.

>>> import torch
>>> from gradmagic.recorder import trace
>>> with trace() as report:
...     x = torch.arange(4.0, requires_grad=True)
...     y = 2 * torch.dot(x, x)
...     y.backward()
>>> report.ok, report.leaves[0].name, report.leaves[0].grad
(True, 'x', [0.0, 4.0, 8.0, 12.0])
"""
from __future__ import annotations

from .session import Session, last_report, trace

__all__ = ["Session", "last_report", "trace"]
