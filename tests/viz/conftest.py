"""Fixtures of the view tests: synthetic reports from ``viz_builders`` (see its docstring)."""
from __future__ import annotations

from typing import Any

import pytest

from viz_builders import build_mixed, build_seed


@pytest.fixture
def seed_report() -> dict[str, Any]:
    return build_seed()


@pytest.fixture
def twice_report() -> dict[str, Any]:
    return build_seed(times=2)


@pytest.fixture
def mixed_report() -> dict[str, Any]:
    return build_mixed()
