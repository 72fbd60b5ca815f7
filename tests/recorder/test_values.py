"""``values.zeros_summary`` is ``summarize`` of a zeros array, value for value and type for type."""
from __future__ import annotations

import numpy as np
import pytest

from gradmagic.recorder.values import summarize, zeros_summary


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.uint8, np.bool_,
                                   np.complex64])
@pytest.mark.parametrize("shape", [(5000,), (70, 80), (3,), (), (0,), (9,), (64,), (65,)])
@pytest.mark.parametrize("value_limit", [64, 10_000])
def test_zeros_summary_is_the_summary_of_zeros(dtype, shape, value_limit):
    fast = zeros_summary(shape, dtype, value_limit)
    full = summarize(np.zeros(shape, dtype), value_limit)
    assert fast == full
    assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in full.items()}
