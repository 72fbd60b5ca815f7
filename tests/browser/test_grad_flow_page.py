"""The gradient-flow chart (issue 13, item 4) in the standalone page, read in Chromium: one
line per layer of a recorded MLP training loop, the vanishing hint of a deep sigmoid MLP, and
a hostile layer name shown as text."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from playwright.sync_api import expect
from torch import nn

from browser_helpers import shoot
from gradmagic.recorder import Session, trace
from gradmagic.viz.standalone import render_standalone_html

pytestmark = pytest.mark.browser

XSS = "<img id=pwn src=x onerror=alert(1)>"


def _mlp(depth: int, act: type, steps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    layers: list = []
    for _ in range(depth):
        layers += [nn.Linear(32, 32), act()]
    net = nn.Sequential(*layers, nn.Linear(32, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    X, y = torch.randn(16, 32), torch.randint(0, 2, (16,))
    with trace(session=Session(), namespace={"net": net, "opt": opt}) as rep:
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    return rep.to_dict()


def _open(page, tmp_path: Path, reports: list[dict[str, Any]]) -> None:
    path = tmp_path / "flow.html"
    path.write_text(render_standalone_html(reports, title="gradient flow"), encoding="utf-8")
    page.goto(path.as_uri())


def test_gradient_flow_chart_in_standalone_page(page, tmp_path) -> None:
    healthy = _mlp(2, nn.ReLU, 3)
    deep = _mlp(12, nn.Sigmoid, 2)
    hostile = _mlp(1, nn.ReLU, 2)
    for lay in hostile["grad_flow"]["layers"]:
        lay["name"] = XSS + lay["name"]
    _open(page, tmp_path, [healthy, deep, hostile])
    widgets = page.locator(".gradmagic-widget")
    expect(widgets).to_have_count(3)
    # the healthy MLP: one line per Linear, calls 0..2 on the x axis, no hint
    chart = widgets.nth(0).locator("svg.gradmagic-flow")
    expect(chart).to_have_count(1)
    lines = chart.locator("g.gradmagic-flow-line")
    expect(lines).to_have_count(3)
    assert [lines.nth(i).get_attribute("data-layer") for i in range(3)] == ["net.0", "net.2", "net.4"]
    assert chart.locator("polyline").count() == 3
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    expect(widgets.nth(0).locator(".gradmagic-flow-hint")).to_have_count(0)
    table = widgets.nth(0).locator(".gradmagic-flow-table tbody tr")
    expect(table).to_have_count(3)
    expect(table.first).to_contain_text("Linear")
    relu = widgets.nth(0).locator(".gradmagic-flow-acts tr[data-module='net.1']")
    expect(relu).to_contain_text("ReLU")
    expect(relu).to_contain_text("%")
    # the deep sigmoid MLP: the vanishing hint, worded as d2l teaches it
    hint = widgets.nth(1).locator(".gradmagic-flow-hint[data-hint='vanishing']")
    expect(hint).to_have_count(1)
    expect(hint).to_contain_text("Numerical Stability and Initialization")
    # a layer name that is markup stays text
    legend = widgets.nth(2).locator("svg.gradmagic-flow text.gradmagic-flow-label").first
    expect(legend).to_contain_text("<img")
    assert page.locator("#pwn").count() == 0
    assert not page.gradmagic_errors, page.gradmagic_errors
    shoot(page, "standalone-grad-flow")
