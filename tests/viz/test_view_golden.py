"""Golden files: the text, SVG and HTML views of real reports of the seed notebook's cells.

The cells of /work/shared/seed/autograd-notes.md run one after another in one recording
session (as in one notebook), each under ``gradmagic.trace()``. Each cell's report is
rendered and compared with ``tests/viz/golden/seed_<n>.{txt,svg,html}``.

Regenerate after an intended change of a view (or of the recorder's labels), then review
the diff::

    GRADMAGIC_REGEN_GOLDEN=1 python3 -m pytest tests/viz/test_view_golden.py -q
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from gradmagic.viz.escape import display_width
from gradmagic.viz.html import render_html
from gradmagic.viz.layout import layout
from gradmagic.viz.svg import render_svg
from gradmagic.viz.text import render_text
from htmlcheck import assert_safe
from seed_cells import SEED_CELLS

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("GRADMAGIC_REGEN_GOLDEN") == "1"



def _trace() -> Any:
    import gradmagic

    try:
        return gradmagic.trace
    except AttributeError:
        pytest.skip("gradmagic.trace() has not landed yet")


@pytest.fixture(scope="module")
def seed_reports() -> dict[int, dict[str, Any]]:
    """Report dicts of every seed cell, recorded in one session like one notebook."""
    trace = _trace()
    from gradmagic.recorder import Session

    session, namespace, reports = Session(), {"__name__": "__main__"}, {}
    for number, source in ((n, src + "\n") for n, src in SEED_CELLS):
        filename = f"<seed-cell-{number}>"
        with trace(session=session, namespace=namespace, filename=filename, cell=number,
                   source=source) as report:
            exec(compile(source, filename, "exec"), namespace)
        reports[number] = report.to_dict()
    return reports


def _strip_style(page: str) -> str:
    """The inlined stylesheet is tested elsewhere; goldens hold the markup only."""
    return re.sub(r"<style>.*?</style>", "<style>…report.css…</style>", page, flags=re.S)


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"missing golden file {path}; regenerate with GRADMAGIC_REGEN_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} changed; if intended, regenerate (see module docstring)"


@pytest.mark.parametrize("number", [n for n, _ in SEED_CELLS])
def test_seed_cell_views_match_golden(number: int, seed_reports: dict[int, Any]) -> None:
    report = seed_reports[number]
    text = render_text(report)
    assert all(display_width(line) <= 100 for line in text.splitlines())
    svg = render_svg(report, layout(report))
    page = render_html(report)
    assert page.count("<svg") == 1
    assert_safe(page)
    _check(f"seed_{number}.txt", text)
    _check(f"seed_{number}.svg", svg + "\n")
    _check(f"seed_{number}.html", _strip_style(page) + "\n")


def test_seed_story_facts(seed_reports: dict[int, Any]) -> None:
    """What the seed teaches is visible: x.grad = 4x after In [5], ones after In [7]."""
    after_backward = render_text(seed_reports[5])
    assert "[0., 4., 8., 12.]" in after_backward and "MulBackward0" in after_backward
    after_sum = render_text(seed_reports[7])
    assert "[1., 1., 1., 1.]" in after_sum
    assert "zero_()" in after_sum
