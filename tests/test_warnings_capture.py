"""``gradmagic._warnings_capture.call_recording``: warnings recorded, nothing leaked, on
both the fast path and the ``catch_warnings`` fallback."""
from __future__ import annotations

import warnings

import pytest
import torch

from gradmagic import _warnings_capture as wc


@pytest.fixture(params=["fast", "fallback"])
def path(request, monkeypatch):
    if request.param == "fast" and not wc._FAST:
        pytest.skip("this Python has no fast path (catch_warnings is used)")
    monkeypatch.setattr(wc, "_FAST", request.param == "fast")
    return request.param


def _state():
    return list(warnings.filters), warnings.showwarning, getattr(warnings, "_showwarnmsg_impl", None)


def test_records_python_and_torch_c_warnings_without_showing_them(path):
    y = torch.ones(2, requires_grad=True) * 2  # a non-leaf: reading .grad warns from C++

    def body():
        warnings.warn("from python", UserWarning)
        warnings.warn("deprecated", DeprecationWarning)  # hidden by the default filters
        return y.grad

    before = _state()
    caught: list = []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("error")  # the user's strictest filter does not apply inside
        assert wc.call_recording(body, (), {}, caught) is None
    assert shown == []
    messages = [str(w.message) for w in caught]
    assert messages[:2] == ["from python", "deprecated"]
    assert any(".grad attribute of a Tensor that is not a leaf" in m for m in messages[2:])
    assert _state() == before


def test_the_same_warning_twice_is_recorded_twice(path):
    caught: list = []
    wc.call_recording(lambda: [warnings.warn("again") for _ in range(2)], (), {}, caught)
    assert [str(w.message) for w in caught] == ["again", "again"]


def test_an_exception_passes_through_with_its_warnings_recorded(path):
    def body(a, *, b):
        warnings.warn(f"{a}{b}")
        raise ValueError("boom")

    before = _state()
    caught: list = []
    with pytest.raises(ValueError, match="boom"):
        wc.call_recording(body, (1,), {"b": 2}, caught)
    assert [str(w.message) for w in caught] == ["12"]
    assert _state() == before


def test_a_replaced_showwarning_is_bypassed_and_restored(path, monkeypatch):
    seen = []
    monkeypatch.setattr(warnings, "showwarning", lambda *a, **k: seen.append(a))
    caught: list = []
    wc.call_recording(warnings.warn, ("quiet",), {}, caught)
    assert seen == [] and len(caught) == 1
    warnings.warn("shown")  # the user's hook is back
    assert len(seen) == 1
