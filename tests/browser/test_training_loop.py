"""Training loops (issue 13 item 3) on the standalone page: a three-step SGD loop is drawn one
iteration at a time, the last by default, with a selector for the others; the replay starts
on a call that has steps; stepping over a collapsed module names its gradient shapes."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from browser_helpers import shoot
from gradmagic.viz.standalone import render_standalone_html

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from viz_builders import record_sgd_loop  # noqa: E402

pytestmark = pytest.mark.browser


FIT_FACTS = """() => {
    const svg = document.querySelector('.gradmagic-widget svg.gradmagic-svg');
    const frame = svg.getBoundingClientRect();
    const boxes = [...svg.querySelectorAll('g.gradmagic-node, g.gradmagic-module.gradmagic-folded')]
        .map((g) => g.getBoundingClientRect());
    const clipped = boxes.filter((b) => b.left < frame.left - 0.5 || b.right > frame.right + 0.5
        || b.top < frame.top - 0.5 || b.bottom > frame.bottom + 0.5).length;
    return {clipped, boxes: boxes.length, px: 12 * frame.width / svg.viewBox.baseVal.width,
            height: frame.height};
}"""


def _open(page: Any, tmp_path: Path) -> Any:
    path = tmp_path / "loop.html"
    path.write_text(render_standalone_html([record_sgd_loop()], title="SGD loop"), encoding="utf-8")
    page.goto(path.as_uri())
    widget = page.locator(".gradmagic-widget")
    expect(widget).to_have_count(1)
    return widget


def test_the_loop_shows_one_iteration_with_a_selector(page, tmp_path: Path) -> None:
    widget = _open(page, tmp_path)
    graph = widget.locator("svg.gradmagic-svg")
    select = widget.locator("select.gradmagic-iteration")
    expect(select).to_have_value("2")
    expect(select.locator("option:checked")).to_have_text("iteration 3 of 3")
    expect(select.locator("option")).to_have_count(3)
    # one copy of the network, not three side by side
    expect(graph.locator("g.gradmagic-module[data-module='net.1']")).to_have_count(1)
    expect(graph.locator("g.gradmagic-module[data-module='net.1']")).to_contain_text("call 3 of 3")
    expect(graph.locator("g.gradmagic-node[data-name='loss']")).to_have_count(1)
    # at "Fit": the whole graph in view (no box clipped) and node text at the body size
    fit = page.evaluate(FIT_FACTS)
    assert fit["boxes"] >= 8 and fit["clipped"] == 0, fit
    assert fit["px"] >= 13, fit
    shoot(page, "training-loop-last-iteration", widget)
    select.select_option("0")
    expect(graph.locator("g.gradmagic-module[data-module='net.1']")).to_contain_text("call 1 of 3")
    expect(graph.locator("g.gradmagic-module[data-module='net.1']")).to_have_count(1)
    expect(graph.locator("g.gradmagic-node[data-name='loss']")).to_have_count(0)  # named only in the last
    # the replay follows the iteration: its own backward call, with steps
    expect(widget.locator(".gradmagic-step-label")).to_contain_text("not started")
    expect(widget.locator("button.gradmagic-next")).to_be_enabled()
    select.select_option("2")
    expect(graph.locator("g.gradmagic-node[data-name='loss']")).to_have_count(1)
    assert not page.gradmagic_errors, page.gradmagic_errors


def test_stepping_over_a_collapsed_layer_names_its_gradient_shapes(page, tmp_path: Path) -> None:
    widget = _open(page, tmp_path)
    narration = widget.locator(".gradmagic-narration")
    seen = []
    for _ in range(12):
        widget.locator("button.gradmagic-next").click()
        seen.append(narration.inner_text())
        if "net.3 Linear" in seen[-1]:
            break
    text = seen[-1]
    assert "net.3 Linear: g [4, 3] → g [4, 8]; ∂W = gᵀ·x; ∂b = Σ g" in text, seen
    # the first step, at the loss: the local derivative alone, then the product, rounded
    widget.locator("input.gradmagic-slider").fill("0")
    first = narration.inner_text()
    assert "local derivative" in first and "upstream" in first
    assert not re.search(r"e-0\d.*e-0\d.*e-0\d", first), first  # not a wall of e-notation
    assert not page.gradmagic_errors, page.gradmagic_errors



def test_a_tall_network_is_readable_at_fit_and_the_page_still_scrolls(page, tmp_path: Path) -> None:
    """d2l's LeNet: a column of module boxes far taller than a screen. At "Fit" every box is in
    view at the notebook's body size (the graph box grows), and a plain wheel scrolls the page."""
    import torch
    from torch import nn

    import gradmagic

    torch.manual_seed(0)
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
                          nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
                          nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))
    with gradmagic.trace(namespace={"lenet": lenet}) as rep:
        nn.functional.cross_entropy(lenet(torch.randn(2, 1, 28, 28)), torch.tensor([1, 2])).backward()
    path = tmp_path / "lenet.html"
    path.write_text(render_standalone_html([rep.to_dict()], title="LeNet"), encoding="utf-8")
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(path.as_uri())
    expect(page.locator(".gradmagic-widget")).to_have_count(1)
    fit = page.evaluate(FIT_FACTS)
    assert fit["boxes"] >= 12 and fit["clipped"] == 0 and fit["px"] >= 13, fit
    assert fit["height"] > 900, fit  # taller than the window: the page scrolls past it
    graph = page.locator(".gradmagic-graph").first.bounding_box()
    page.mouse.move(graph["x"] + graph["width"] / 2, 400)
    before = page.evaluate("window.scrollY")
    page.mouse.wheel(0, 400)
    page.wait_for_function(f"window.scrollY > {before}")
    assert not page.gradmagic_errors, page.gradmagic_errors
