"""Value previews match torch's own printing; escaping and widths are safe."""
from __future__ import annotations

import re

import pytest
import torch

from viz_builders import value
from gradmagic.viz.escape import clean_text, display_width, esc, truncate
from gradmagic.viz.fmt import as_value, format_bytes, format_err, format_shape, preview


def torch_style(t: torch.Tensor) -> str:
    """torch's repr without its column padding: ``tensor([ 0.,  4.])`` → ``tensor([0., 4.])``."""
    text = re.sub(r"\s+", " ", repr(t))
    return text.replace("[ ", "[").replace("( ", "(")


@pytest.mark.parametrize("t", [
    torch.arange(4.0),
    torch.tensor([0.0, 4.0, 8.0, 12.0]),
    torch.tensor([0.1, 0.25, -3.5]),
    torch.tensor(28.0),
    torch.tensor(0.5),
    torch.arange(6),
    torch.tensor([True, False]),
    torch.tensor([1e-5, 1.0]),
    torch.tensor([1e9, 2.0]),
    torch.tensor([float("nan"), 1.0, float("inf")]),
    torch.tensor([float("-inf"), 2.0]),
    torch.arange(6.0).reshape(2, 3),
    torch.arange(24).reshape(3, 8),
], ids=lambda t: str(list(t.shape)) + str(t.dtype))
def test_preview_matches_torch_repr(t: torch.Tensor) -> None:
    assert preview(value(t), max_chars=400) == torch_style(t)


def test_preview_of_large_tensor_uses_head_and_ellipsis() -> None:
    v = value(torch.arange(1000.0))
    assert v["data"] is None
    text = preview(v, max_chars=30)
    assert text.startswith("tensor([0., 1., 2.") and text.endswith("…])")
    assert len(text) <= 30


def test_preview_truncates_rows_of_a_matrix() -> None:
    text = preview(value(torch.arange(24).reshape(3, 8)), max_chars=30)
    assert text == "tensor([[0, 1, 2, 3, …], …])"


def test_bare_preview_and_none() -> None:
    assert preview(value(torch.tensor([0.0, 4.0])), prefix="") == "[0., 4.]"
    assert preview(value(torch.tensor(28.0)), prefix="") == "28."
    assert preview(None) == "None"


def test_as_value_accepts_nested_lists_values_and_none() -> None:
    v = as_value([[1.0, 2.0]], [1, 2], "float32")
    assert v["shape"] == [1, 2] and v["numel"] == 2 and preview(v) == "tensor([[1., 2.]])"
    assert as_value(None) is None
    full = value(torch.ones(2))
    assert as_value(full) is full


def test_small_formatters() -> None:
    assert format_shape([2, 3, 4]) == "[2, 3, 4]" and format_shape([]) == "scalar"
    assert format_err(0.0) == "0" and format_err(None) == "—" and format_err("nan") == "nan"
    assert format_err(3.2e-7) == "3.2e-07" and format_err(0.25) == "0.25"
    assert format_bytes(48) == "48 B" and format_bytes(3 * 1024 * 1024) == "3.0 MiB"


def test_clean_text_makes_controls_visible_and_encodable() -> None:
    nasty = "a\u202eb\ud800c\x00d\ne"
    out = clean_text(nasty)
    assert "\u202e" not in out and "\ud800" not in out and "\x00" not in out
    assert "\\u202e" in out and "\\ud800" in out and "\\x00" in out
    out.encode("utf-8")
    assert "\n" not in out and "\n" in clean_text("a\nb", keep_newlines=True)


def test_esc_escapes_quotes_and_tags() -> None:
    assert esc("<a href='x'>\"") == "&lt;a href=&#x27;x&#x27;&gt;&quot;"


def test_widths_count_wide_characters() -> None:
    assert display_width("默认") == 4
    cut = truncate("x.grad # 默认是none", 12)
    assert display_width(cut) <= 12 and cut.endswith("…")
