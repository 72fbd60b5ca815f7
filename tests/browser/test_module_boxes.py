"""Module boxes (issue 13 item 2) on the standalone page: a LeNet recorded by gradmagic.trace
starts with its layers collapsed; a box opens and closes on click, the depth control opens
every box of a level, and ▶/◀ step over a collapsed box as one step."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from browser_helpers import shoot
from gradmagic.viz.standalone import render_standalone_html

pytestmark = pytest.mark.browser


def _lenet_report() -> dict[str, Any]:
    import torch
    from torch import nn

    import gradmagic

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Sequential(nn.Linear(400, 120), nn.Sigmoid()), nn.Linear(120, 10))
    x = torch.randn(2, 1, 28, 28)
    with gradmagic.trace() as rep:
        loss = nn.functional.cross_entropy(net(x), torch.tensor([1, 2]))
        loss.backward()
    return rep.to_dict()


def test_module_boxes_open_close_and_follow_the_depth_control(page, tmp_path: Path) -> None:
    path = tmp_path / "lenet.html"
    path.write_text(render_standalone_html([_lenet_report()], title="LeNet"), encoding="utf-8")
    page.goto(path.as_uri())
    widget = page.locator(".gradmagic-widget")
    expect(widget).to_have_count(1)
    graph = widget.locator("svg.gradmagic-svg")
    # default view: the model (depth 0) open, its layers collapsed boxes
    outer = graph.locator("g.gradmagic-module[data-module='net']")
    expect(outer).to_have_class(re.compile("gradmagic-unfolded"))
    conv = graph.locator("g.gradmagic-module[data-module='net.0']")
    expect(conv).to_have_attribute("data-module-class", "Conv2d")
    expect(conv).to_have_class(re.compile("gradmagic-folded"))
    expect(conv).to_contain_text("net.0 · Conv2d 1→6 k5 p2")
    expect(conv).to_contain_text("[2, 1, 28, 28] → [2, 6, 28, 28]")
    expect(graph.locator("g.gradmagic-node[data-name='net.0.weight']")).to_have_count(0)
    depth = widget.locator("select.gradmagic-depth")
    expect(depth).to_have_value("1")
    shoot(page, "lenet-collapsed-modules", widget)
    # click opens the box: its parameters and op appear, the box becomes a frame
    conv.click()
    expect(graph.locator("g.gradmagic-node[data-name='net.0.weight']")).to_have_count(1)
    expect(conv).to_have_class(re.compile("gradmagic-unfolded"))
    expect(depth).to_have_value("")  # a custom state
    # clicking the frame's title closes it again
    conv.locator("text.gradmagic-module-title").click()
    expect(conv).to_have_class(re.compile("gradmagic-folded"))
    expect(graph.locator("g.gradmagic-node[data-name='net.0.weight']")).to_have_count(0)
    # depth 0: everything in one box; depth 2: the nested Sequential open too
    depth.select_option("0")
    expect(outer).to_have_class(re.compile("gradmagic-folded"))
    expect(graph.locator("g.gradmagic-module")).to_have_count(1)
    depth.select_option("2")
    expect(graph.locator("g.gradmagic-module[data-module='net.7']")).to_have_class(
        re.compile("gradmagic-unfolded"))
    expect(graph.locator("g.gradmagic-module[data-module='net.7.0']")).to_have_attribute(
        "data-module-class", "Linear")
    expect(graph.locator("g.gradmagic-module[data-module='net.7.0']")).to_have_class(
        re.compile("gradmagic-folded"))
    depth.select_option("1")
    expect(graph.locator("g.gradmagic-module[data-module='net.7']")).to_have_class(
        re.compile("gradmagic-folded"))
    assert not page.gradmagic_errors, page.gradmagic_errors


def test_stepping_goes_over_a_collapsed_module_and_into_an_open_one(page, tmp_path: Path) -> None:
    path = tmp_path / "lenet.html"
    path.write_text(render_standalone_html([_lenet_report()], title="LeNet"), encoding="utf-8")
    page.goto(path.as_uri())
    widget = page.locator(".gradmagic-widget")
    total = int(re.search(r"(\d+) steps", widget.locator(".gradmagic-step").inner_text()).group(1))

    def presses_to_end() -> tuple[int, int]:
        presses, on_box = 0, 0
        while f"step {total} of {total}" not in widget.locator(".gradmagic-step").inner_text():
            widget.locator("button.gradmagic-next").click()
            presses += 1
            on_box += widget.locator("g.gradmagic-module.gradmagic-current").count()
            assert presses <= total
        return presses, on_box

    collapsed, on_box = presses_to_end()
    assert collapsed < total and on_box > 0  # each collapsed layer was one step
    # back to the start, then open everything: every step is its own again
    while "not started" not in widget.locator(".gradmagic-step").inner_text():
        widget.locator("button.gradmagic-prev").click()
    widget.locator("select.gradmagic-depth").select_option(label="all")
    opened, on_box = presses_to_end()
    assert opened == total and on_box == 0
    assert not page.gradmagic_errors, page.gradmagic_errors
