"""Sections of the mapping table, one module per op family (as the engine's rules are
split over ``engine/ops/``). Each module defines ``ROWS``: rows of the same shape as
``mapping._ROWS`` — ``(kind, engine op, adapter, torch callables by public name)`` — and
``mapping.py`` appends them all to its table, so ``TORCH_OPS`` stays the one table.

>>> from gradmagic.recorder.rows import FAMILY_ROWS
>>> all(len(row) == 4 for row in FAMILY_ROWS)
True
"""
from __future__ import annotations

from . import activations, conv, mathops, norm, optim, recurrent, tensorops

FAMILY_ROWS: list = [row for family in (tensorops, mathops, activations, conv, norm, recurrent, optim)
                     for row in family.ROWS]
