"""Module boxes and the gradient-flow chart (issue 13) in JupyterLab 4 and Notebook 7, with a
real kernel: a box opens and closes on click (the kernel lays the graph out again), ▶ steps
over a collapsed box as one step and into an open one, and the chart of a three-step training
loop reads back torch's own gradient norms.

One server and one notebook per front end (tests/browser/browser_notebooks.modules_notebook).
"""
from __future__ import annotations

import json
import math
import re

import pytest
from playwright.sync_api import expect

from browser_helpers import run_all_cells, shoot, wait_kernel_idle
from browser_notebooks import modules_notebook, real_stack_available

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not real_stack_available(), reason="needs the recorder and the magic")]

LABEL = re.compile(r"step (\d+) of (\d+)")


def _step_state(widget) -> tuple[int, int]:
    """(step number, total) shown by the replay (0 before the first step)."""
    text = widget.locator(".gradmagic-step-label").inner_text()
    if "not started" in text:
        return 0, int(re.search(r"(\d+) steps", text).group(1))
    k, total = LABEL.search(text).groups()
    return int(k), int(total)


def _current(widget) -> tuple[str, str]:
    """What the replay marks as current: ("module", path) for a box, ("node", name) for a node."""
    box = widget.locator("g.gradmagic-module.gradmagic-current")
    if box.count():
        return "module", box.first.get_attribute("data-module")
    node = widget.locator("g.gradmagic-node.gradmagic-current")
    return ("node", node.first.get_attribute("data-name") or "") if node.count() else ("", "")


def _replay(widget) -> list[tuple[int, str, str]]:
    """Back to the start, then ▶ until the last step: (step number, kind, name) per press."""
    while _step_state(widget)[0] > 0:
        widget.locator("button.gradmagic-prev").click()
    total = _step_state(widget)[1]
    seen: list[tuple[int, str, str]] = []
    while not seen or seen[-1][0] < total:
        before = _step_state(widget)[0]
        widget.locator("button.gradmagic-next").click()
        expect(widget.locator(".gradmagic-step-label")).not_to_have_text(
            re.compile(rf"(not started|step {before} of)"))
        seen.append((_step_state(widget)[0], *_current(widget)))
        assert len(seen) <= total
    return seen


def _check_module_boxes(page, widget, ui: str) -> None:
    graph = widget.locator("svg")
    lin = graph.locator("g.gradmagic-module[data-module='net.1']")
    expect(lin).to_have_attribute("data-module-class", "Linear")
    expect(lin).to_have_class(re.compile("gradmagic-folded"))
    expect(lin).to_contain_text("Linear 16→8")
    expect(graph.locator("g.gradmagic-module[data-module='net.3']")).to_have_attribute("data-module-class", "Linear")
    weight = graph.locator("g.gradmagic-node[data-name='net.1.weight']")
    expect(weight).to_have_count(0)

    # collapsed: ▶ lands on net.1 as one step, jumping over its two accumulations at once
    over = _replay(widget)
    total = _step_state(widget)[1]
    assert len(over) < total, over
    jumps = [(k, name) for (k, kind, name), prev in zip(over, [0] + [s[0] for s in over])
             if kind == "module" and k - prev > 1]
    assert ("net.1" in {name for _, name in jumps}), over
    assert ("node", "net.1.weight") not in {(kind, name) for _, kind, name in over}

    # a click opens the box: the kernel lays the graph out again with net.1's nodes in a frame
    lin.click()
    expect(weight).to_have_count(1, timeout=30_000)
    expect(lin).to_have_class(re.compile("gradmagic-unfolded"))
    expect(graph.locator("g.gradmagic-node[data-name='net.1.bias']")).to_have_count(1)
    shoot(page, f"modules-net1-open-{ui}", widget)

    # open: ▶ steps into it, one press per step of its own, onto its parameters
    into = _replay(widget)
    assert len(into) == len(over) + 1, (over, into)
    assert ("module", "net.1") not in {(kind, name) for _, kind, name in into}
    at = {name: k for k, kind, name in into if kind == "node"}
    assert abs(at["net.1.bias"] - at["net.1.weight"]) == 1, into  # one press each

    # the frame's title closes it again
    lin.locator("text.gradmagic-module-title").click()
    expect(weight).to_have_count(0, timeout=30_000)
    expect(lin).to_have_class(re.compile("gradmagic-folded"))


def _tick_scale(chart) -> tuple[list[tuple[float, float]], dict[str, float]]:
    """The chart's y grid as (decade, y) and its x ticks as {label: x}, read from the SVG."""
    grid = [float(y) for y in chart.locator("line.gradmagic-flow-grid").evaluate_all(
        "els => els.map(e => e.getAttribute('y1'))")]
    ticks = chart.locator("text.gradmagic-flow-tick").evaluate_all(
        "els => els.map(e => [e.textContent, +e.getAttribute('x'), +e.getAttribute('y')])")
    decades = [float(t[2:]) for t, _, _ in ticks if re.fullmatch(r"1e-?\d+", t)]
    xs = {t: x for t, x, _ in ticks if re.fullmatch(r"\d+", t)}
    return list(zip(decades, grid)), xs


def _check_flow_chart(widget, norms: dict[str, list[float]]) -> None:
    chart = widget.locator("svg.gradmagic-flow")
    expect(chart).to_have_count(1)
    lines = chart.locator("g.gradmagic-flow-line")
    expect(lines).to_have_count(2)
    assert lines.evaluate_all("els => els.map(e => e.dataset.layer)") == ["net.1", "net.3"]
    grid, xs = _tick_scale(chart)
    (d0, y0), (d1, y1) = grid[0], grid[-1]
    assert sorted(xs) == ["0", "1", "2"]
    for layer, series in norms.items():
        points = chart.locator(f"g.gradmagic-flow-line[data-layer='{layer}'] polyline").get_attribute("points")
        pts = [tuple(map(float, p.split(","))) for p in points.split()]
        assert [x for x, _ in pts] == pytest.approx([xs["0"], xs["1"], xs["2"]], abs=0.2)
        want = [y0 + (math.log10(v) - d0) * (y1 - y0) / (d1 - d0) for v in series]
        assert [y for _, y in pts] == pytest.approx(want, abs=0.6), (layer, pts, series)
    rows = widget.locator(".gradmagic-flow-table tbody tr")
    expect(rows).to_have_count(2)
    for layer, series in norms.items():
        row = rows.filter(has=widget.page.locator(f"code:text-is('{layer}')"))
        expect(row).to_contain_text("Linear")
        last = float(row.locator("td").nth(2).inner_text())
        assert last == pytest.approx(series[-1], rel=5e-3), (layer, last, series)
    expect(widget.locator(".gradmagic-flow-hint")).to_have_count(0)  # healthy: no hint


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_module_boxes_and_flow_chart_in_jupyter(jupyter, page, tmp_path, ui):
    page.goto(jupyter(ui, modules_notebook(tmp_path / "modules.ipynb")))
    wait_kernel_idle(page)
    run_all_cells(page, 4)
    cells = page.locator(".jp-CodeCell")
    widget = cells.nth(1).locator(".gradmagic-widget")
    expect(widget).to_have_count(1, timeout=30_000)
    widget.scroll_into_view_if_needed()
    _check_module_boxes(page, widget, ui)

    out = cells.nth(3).locator(".jp-OutputArea-output")
    expect(out).to_contain_text("NORMS=", timeout=30_000)
    text = out.text_content()
    assert "NORMS=" in text, text
    norms = json.loads(text.split("NORMS=", 1)[1])
    loop = cells.nth(2).locator(".gradmagic-widget")
    expect(loop).to_have_count(1, timeout=30_000)
    loop.locator(".gradmagic-flow").scroll_into_view_if_needed()
    _check_flow_chart(loop, norms)
    shoot(page, f"modules-flow-{ui}", loop.locator(".gradmagic-flow-panel"))
    assert not page.gradmagic_errors, page.gradmagic_errors
