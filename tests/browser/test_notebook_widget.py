"""End to end: the demo notebook in JupyterLab 4 (all checks) and Notebook 7 (seed cells).

Run with ``python3 -m pytest tests/browser -x``. Screenshots: test-output/browser/.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from browser_helpers import rerun_cell, run_all_cells, shoot, wait_kernel_idle
from browser_notebooks import (XSS, Scenario, demo_notebook, diagnosis_notebook, real_stack_available,
                               synthetic_notebook)

pytestmark = pytest.mark.browser

SEED_GRAD = re.compile(r"\[0\.?,\s*4\.?,\s*8\.?,\s*12\.?\]")


def _scenario(tmp_path: Path, seed_only: bool = False) -> Scenario:
    if real_stack_available():
        return demo_notebook(tmp_path / "demo.ipynb", seed_only=seed_only)
    return synthetic_notebook(tmp_path / "demo.ipynb")


def _open_and_run(page, url: str, scenario: Scenario) -> None:
    page.goto(url)
    wait_kernel_idle(page)
    run_all_cells(page, scenario.n_code_cells)


def _assert_all_widgets(page, scenario: Scenario) -> None:
    """Every report cell shows the interactive widget, not the static fallback."""
    cells = page.locator(".jp-CodeCell")
    for k in scenario.widget_cells:
        widget = cells.nth(k).locator(".gradmagic-widget")
        expect(widget, f"code cell {k} shows no widget").to_have_count(1, timeout=30_000)
        expect(widget.locator("g.gradmagic-node").first).to_be_visible()
    expect(page.locator(".jp-OutputArea-output .gradmagic-widget")).to_have_count(len(scenario.widget_cells))


def _first_graph_with_x_grad(page):
    """Click ``x`` in each widget in order; return the first widget whose panel shows a gradient."""
    widgets = page.locator(".gradmagic-widget")
    for i in range(widgets.count()):
        w = widgets.nth(i)
        x = w.locator("g.gradmagic-node[data-name='x']")
        if x.count() == 0:
            continue
        x.first.click()
        details = w.locator(".gradmagic-details")
        expect(details).to_contain_text("x")
        if "grad (gradmagic)" in details.inner_text():
            return w
    raise AssertionError("no widget shows a gradient for x")


def _step_to_end(widget, shot: str | None = None) -> int:
    """Press ▶ until the replay's last step; return the number of steps. With ``shot``, the
    widget is photographed at the step before the last (mid-backward, an edge in use)."""
    label = widget.locator(".gradmagic-step .gradmagic-step-label")
    expect(label).to_contain_text("not started")
    total = int(re.search(r"(\d+) steps", label.inner_text()).group(1))
    for k in range(1, total + 1):
        widget.locator(".gradmagic-step .gradmagic-next").click()
        expect(label).to_have_text(f"step {k} of {total}")
        if shot and k == total - 1:
            expect(widget.locator(".gradmagic-edge-label").first).to_contain_text("×")
            shoot(widget.page, shot, widget)
    return total


def test_demo_in_jupyterlab(jupyter, page, tmp_path):
    t0 = time.monotonic()
    scenario = _scenario(tmp_path)
    _open_and_run(page, jupyter("lab", scenario.path), scenario)
    _assert_all_widgets(page, scenario)

    # clicking x in the seed's first graph with gradients shows x.grad = [0, 4, 8, 12]
    seed = _first_graph_with_x_grad(page)
    expect(seed.locator(".gradmagic-details")).to_contain_text(SEED_GRAD)
    seed.locator("g.gradmagic-node[data-name='x']").first.focus()
    # stepping the backward to its end reproduces the leaf gradient
    total = _step_to_end(seed, shot="lab-seed-mid-backward")
    narration = seed.locator(".gradmagic-narration")
    expect(narration).to_contain_text(f"Backward step {total} of {total}")
    expect(narration.locator("dd").last).to_have_text(SEED_GRAD)
    expect(seed.locator("g.gradmagic-node.gradmagic-current")).to_have_attribute("data-name", "x")
    seed.scroll_into_view_if_needed()
    shoot(page, "lab-seed-stepped", seed)

    if scenario.real:  # the demo's "backward twice without zero_()" cell
        twice = page.locator(".gradmagic-widget").filter(has=page.locator("select.gradmagic-call:visible")).first
        expect(twice.locator(".gradmagic-accum .gradmagic-warn")).to_contain_text("accumulated without clearing")
        expect(twice.locator(".gradmagic-event-accumulated").last).to_contain_text("backward")
        twice.locator("select.gradmagic-call").select_option("1")
        twice.locator(".gradmagic-step .gradmagic-next").click()
        expect(twice.locator(".gradmagic-step-label")).to_contain_text("step 1 of")
        shoot(page, "lab-backward-twice", twice)

    if scenario.real:  # a folded loop expands on click: the kernel recomputes the layout
        k = page.evaluate("""() => [...document.querySelectorAll('.gradmagic-widget')]
            .findIndex(w => w.querySelector('g.gradmagic-group.gradmagic-folded'))""")
        assert k >= 0, "the loop's graph should be folded"
        loop = page.locator(".gradmagic-widget").nth(k)
        before = loop.locator("g.gradmagic-node").count()
        loop.locator("g.gradmagic-group.gradmagic-folded").first.click()
        expect(loop.locator("g.gradmagic-group.gradmagic-unfolded").first).to_be_attached(timeout=30_000)
        assert loop.locator("g.gradmagic-node").count() > before
        shoot(page, "lab-loop-expanded", loop)

    # the injection attempt in a source line is shown as text, never parsed
    last = page.locator(".gradmagic-widget").last
    z = last.locator("g.gradmagic-node[data-name='z']")
    z.click()
    expect(last.locator(".gradmagic-details")).to_contain_text(XSS)
    assert last.locator("img").count() == 0
    assert page.locator("img[src='x']").count() == 0

    # selection: page -> kernel, then kernel (gradmagic.last_widget().selected) -> page
    other = last.locator("g.gradmagic-node:not([data-name='z'])").first
    other.click()
    expect(other).to_have_class(re.compile("gradmagic-selected"))
    other_id = other.get_attribute("data-node-id")
    out = page.locator(".jp-CodeCell").nth(scenario.readback_cell).locator(".jp-OutputArea-output")
    rerun_cell(page, scenario.readback_cell)
    expect(out).to_have_text(f"SELECTED={other_id!r}", timeout=30_000)
    rerun_cell(page, scenario.select_cell)
    expect(last.locator("g.gradmagic-node.gradmagic-selected")).to_have_attribute("data-name", "z", timeout=30_000)
    expect(other).not_to_have_class(re.compile("gradmagic-selected"))
    shoot(page, "lab-injection-cell", last)
    assert not page.gradmagic_errors, page.gradmagic_errors
    print(f"\nJupyterLab demo ({'real' if scenario.real else 'synthetic'}): {time.monotonic() - t0:.1f}s")


def test_seed_in_notebook7_dark_theme(jupyter, page, tmp_path):
    scenario = _scenario(tmp_path, seed_only=True)
    _open_and_run(page, jupyter("notebook", scenario.path, dark=True), scenario)
    _assert_all_widgets(page, scenario)
    seed = _first_graph_with_x_grad(page)
    expect(seed.locator(".gradmagic-details")).to_contain_text(SEED_GRAD)
    _step_to_end(seed)
    expect(seed.locator(".gradmagic-narration dd").last).to_have_text(SEED_GRAD)
    # the widget follows the theme: JupyterLab Dark's variables reach it
    background = seed.evaluate("el => getComputedStyle(el).backgroundColor")
    assert sum(int(v) for v in re.findall(r"\d+", background)[:3]) < 150, background
    shoot(page, "notebook7-seed-dark", seed)
    assert not page.gradmagic_errors, page.gradmagic_errors


def test_diagnosis_in_jupyterlab_widget(jupyter, page, tmp_path):
    """The widget of a failed cell explains it above its graph and rings the nodes involved;
    a widget without a diagnosis shows none."""
    page.goto(jupyter("lab", diagnosis_notebook(tmp_path / "diagnosis.ipynb")))
    wait_kernel_idle(page)
    run_all_cells(page, 3)
    cells = page.locator(".jp-CodeCell")
    failed, fine = (cells.nth(k).locator(".gradmagic-widget") for k in (1, 2))
    expect(failed).to_have_count(1, timeout=30_000)
    expect(fine).to_have_count(1, timeout=30_000)
    block = failed.locator(".gradmagic-diagnosis")
    expect(block).to_be_visible()
    expect(block).to_have_attribute("data-diagnosis", "inplace_saved")
    expect(block).to_contain_text("Why it failed")
    expect(block).to_contain_text("Fix: write b = b * 2 instead of b.mul_(2)")
    graph = failed.locator(".gradmagic-graph").bounding_box()
    box = block.bounding_box()
    assert box["y"] + box["height"] <= graph["y"]
    marked = failed.locator("g.gradmagic-node[data-diagnosis='inplace_saved']")
    expect(marked).to_have_count(2)
    block.locator(".gradmagic-diagnosis-line").first.click()  # line 2: b = a.sigmoid()
    expect(failed.locator("g.gradmagic-node.gradmagic-selected")).to_have_attribute("data-name", "b")
    expect(fine.locator("g.gradmagic-node").first).to_be_visible()
    assert fine.locator(".gradmagic-diagnosis, [data-diagnosis]").count() == 0
    failed.scroll_into_view_if_needed()
    shoot(page, "lab-diagnosis", failed)
    failed.screenshot(path="/tmp/gradmagic-lab-diagnosis.png")
    assert not page.gradmagic_errors, page.gradmagic_errors
