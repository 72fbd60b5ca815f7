"""Fixtures for the recorder tests (helpers live in recorder_helpers.py)."""
from __future__ import annotations

import pytest
import torch

import recorder_helpers  # noqa: F401  (puts the repo root on sys.path)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
    assert not torch.overrides._get_current_function_mode_stack(), "a mode leaked"
