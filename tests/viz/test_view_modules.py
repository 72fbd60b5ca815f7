"""Module boxes (issue 13 item 2): every nn.Module call of a report is a group of the shared
layout, nested as the modules are; the static SVG draws them with ``data-module`` and
``data-module-class``, the text tree puts module headings above their nodes, and reports
without modules render exactly as before."""
from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch import nn

import gradmagic
from gradmagic.viz.labels import group_lines
from gradmagic.viz.layout import layout
from gradmagic.viz.modules import default_expanded, group_plan, module_groups
from gradmagic.viz.svg import render_svg
from gradmagic.viz.text import render_text
from gradmagic.viz.widget import GradWidget
from htmlcheck import assert_svg_safe


def record(net: nn.Module, *inputs: torch.Tensor) -> dict[str, Any]:
    """The report of ``net(*inputs).sum().backward()``: module paths start with ``net``."""
    with gradmagic.trace() as rep:
        net(*inputs).sum().backward()
    return rep.to_dict()


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 3)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.proj(x))


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x))


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.relu(self.lin(x)))


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def by_path(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {g["module"]: g for g in groups if g.get("kind") == "module"}


def test_nested_modules_nest_and_an_outer_box_hides_the_inner_ones() -> None:
    torch.manual_seed(0)
    model = Model()
    rep = record(model, torch.randn(2, 3))
    groups = by_path(module_groups(rep))
    assert set(groups) == {"net", "net.block", "net.block.proj", "net.block.act", "net.head"}
    assert set(groups["net.block.proj"]["members"]) < set(groups["net.block"]["members"])
    assert set(groups["net.block"]["members"]) < set(groups["net"]["members"])
    # the module's own parameters are inside its box (a module called once)
    names = {n["id"]: n.get("name") for n in rep["nodes"]}
    assert {names[m] for m in groups["net.head"]["members"]} >= {"net.head.weight", "net.head.bias"}
    # default view: the model open, its children collapsed
    lay = layout(rep)
    drawn = by_path(lay["groups"])
    assert not drawn["net"]["folded"] and drawn["net.block"]["folded"] and drawn["net.head"]["folded"]
    assert "net.block.proj" not in drawn  # inside a collapsed box
    assert lay["levels"][0] == [drawn["net"]["id"]] and len(lay["levels"]) == 3
    # everything collapsed: one box, nothing of the model drawn as a node
    lay0 = layout(rep, expanded=())
    assert [g["module"] for g in lay0["groups"]] == ["net"]
    assert set(lay0["hidden"]) == set(groups["net"]["members"])
    # all open: every box is a frame holding its members' boxes
    lay_all = layout(rep, expanded=[g["id"] for g in groups.values()])
    frames = by_path(lay_all["groups"])
    assert not any(g["folded"] for g in frames.values()) and not lay_all["hidden"]
    outer, inner = frames["net"], frames["net.block"]
    assert outer["x"] < inner["x"] and outer["y"] < inner["y"]
    assert outer["x"] + outer["w"] > inner["x"] + inner["w"]
    for m in inner["members"]:
        box = lay_all["nodes"][m]
        assert inner["x"] <= box["x"] and box["x"] + box["w"] <= inner["x"] + inner["w"]
        assert inner["y"] <= box["y"] and box["y"] + box["h"] <= inner["y"] + inner["h"]


def test_module_called_twice_gets_two_boxes_and_shares_its_parameters() -> None:
    torch.manual_seed(0)
    twice = Twice()
    rep = record(twice, torch.randn(2, 3))
    calls = [g for g in module_groups(rep) if g["module"] == "net.lin"]
    assert [(g["call"], g["calls"]) for g in calls] == [(0, 2), (1, 2)]
    assert not set(calls[0]["members"]) & set(calls[1]["members"])
    lay = layout(rep, expanded=default_expanded(rep))
    params = [n["id"] for n in rep["nodes"] if (n.get("name") or "").startswith("net.lin.")]
    assert params and all(p in lay["nodes"] for p in params)  # shared leaves stay outside
    texts = [text for g in lay["groups"] if g["module"] == "net.lin" for _, text in group_lines(g)]
    assert any("call 1 of 2" in t for t in texts) and any("call 2 of 2" in t for t in texts)


def test_sequential_box_lines_show_signature_shapes_and_gradient_norm() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    rep = record(net, torch.randn(5, 4))
    groups = by_path(module_groups(rep))
    lines = dict(group_lines(groups["net.0"]))
    assert lines["title"] == "net.0 · Linear 4→3"
    assert lines["shape"] == "[5, 4] → [5, 3]"
    norm = math.sqrt(float(net[0].weight.grad.norm()) ** 2 + float(net[0].bias.grad.norm()) ** 2)
    assert lines["grad"] == f"‖∇θ‖ {norm:.4g}"
    assert lines["detail"].endswith("nodes")
    assert "grad" not in dict(group_lines(groups["net.1"]))  # ReLU: no parameters
    # the container's norm covers its layers' parameters
    total = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in net.parameters()))
    assert groups["net"]["grad"]["norm"] == pytest_approx(total)


def pytest_approx(x: float) -> Any:
    import pytest

    return pytest.approx(x, rel=1e-5)


def test_large_gradients_show_their_largest_entry_instead_of_a_norm() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(40, 30))
    rep = record(net, torch.randn(2, 40))
    box = by_path(module_groups(rep))["net.0"]
    grads = torch.cat([net[0].weight.grad.flatten(), net[0].bias.grad])
    assert box["grad"] == {"max_abs": pytest_approx(float(grads.abs().max()))}
    assert dict(group_lines(box))["grad"].startswith("max |∇θ| ")


def test_module_list_layers_are_boxes_of_their_own() -> None:
    torch.manual_seed(0)
    stack = Stack()
    rep = record(stack, torch.randn(2, 3))
    paths = [g["module"] for g in layout(rep)["groups"]]
    assert paths == ["net", "net.layers.0", "net.layers.1", "net.layers.2"]
    lay = layout(rep)
    tanh = [n["id"] for n in rep["nodes"] if n.get("label") == "TanhBackward0"]
    assert tanh and all(t in lay["nodes"] for t in tanh)  # functional calls stay visible


def test_loops_fold_first_and_hold_the_module_calls_made_inside_them() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(2, 2)
    x = torch.randn(1, 2)
    with gradmagic.trace() as rec:
        h = x
        for _ in range(12):
            h = torch.tanh(lin(h))
        h.sum().backward()
    rep = rec.to_dict()
    plan = group_plan(rep, max_nodes=10)
    loops = [g for g in plan["groups"] if g.get("kind") != "module"]
    assert len(loops) == 1 and loops[0]["folded"]
    loop = set(loops[0]["members"])
    for group in module_groups(rep, loops):  # every box lies inside the loop or outside it
        assert set(group["members"]) <= loop or not set(group["members"]) & loop
    inside = [g for g in module_groups(rep, loops) if set(g["members"]) <= loop]
    assert inside
    drawn = {g["id"] for g in plan["groups"]}
    assert not drawn & {g["id"] for g in inside}  # hidden in the folded loop box
    opened = group_plan(rep, max_nodes=10, expanded=[loops[0]["id"]])
    shown = {g["id"]: g for g in opened["groups"]}
    assert all(g["id"] in shown and shown[g["id"]]["folded"] for g in inside)
    lay = layout(rep, max_nodes=10, expanded=[loops[0]["id"]])
    assert {g["id"] for g in lay["groups"]} == set(shown)


def test_static_svg_draws_module_boxes_and_frames_with_test_hooks() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2))
    rep = record(net, torch.randn(3, 1, 3, 4))
    svg = render_svg(rep, layout(rep))
    root = assert_svg_safe(svg)
    boxes = {g.get("data-module"): g for g in root.iter() if g.get("data-module") is not None}
    assert set(boxes) == {"net", "net.0", "net.1", "net.2", "net.3"}
    assert boxes["net.1"].get("data-module-class") == "Linear"
    assert "gradmagic-folded" in boxes["net.1"].get("class")
    assert "gradmagic-unfolded" in boxes["net"].get("class")
    assert "net.1 · Linear 12→4" in svg and "[3, 12] → [3, 4]" in svg
    # opening a box draws its nodes, and its frame keeps the hooks
    lay = layout(rep, expanded=["m0", "m2"])
    svg2 = render_svg(rep, lay)
    assert 'data-module="net.1" data-module-class="Linear"' in svg2
    assert 'data-name="net.1.weight"' in svg2 and 'data-name="net.1.weight"' not in svg


def test_text_tree_puts_module_headings_above_their_nodes() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    rep = record(net, torch.randn(5, 4))
    text = render_text(rep)
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if "▸ net.2 · Linear 3→2  [5, 3] → [5, 2]" in line]
    assert len(heads) == 1 and "AddmmBackward0" in lines[heads[0] + 1]
    assert any("▸ net · Sequential" in line for line in lines)
    assert text.index("▸ net.2") < text.index("▸ net.1 · ReLU") < text.index("▸ net.0 · Linear 4→3")


def test_reports_without_modules_are_untouched(seed_report: dict[str, Any]) -> None:
    assert "modules" not in seed_report or not seed_report["modules"]
    lay = layout(seed_report)
    assert "modules" not in lay and "levels" not in lay and lay["groups"] == []
    assert layout(seed_report, expanded=()) == lay
    assert "▸" not in render_text(seed_report)
    assert "data-module" not in render_svg(seed_report, lay)


def test_widget_starts_with_the_default_boxes_open_and_recomputes_on_expand() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    rep = record(net, torch.randn(5, 4))
    widget = GradWidget.from_report(rep)
    assert widget.expanded == ["m0"]
    folded = {g["id"]: g["folded"] for g in widget.graph["layout"]["groups"]}
    assert folded == {"m0": False, "m1": True, "m2": True}
    assert widget.graph["labels"]["m1"][0] == ["title", "net.0 · Linear 4→3"]
    widget.expanded = ["m0", "m1"]
    assert {g["id"]: g["folded"] for g in widget.graph["layout"]["groups"]}["m1"] is False
    widget.expanded = []
    assert [g["id"] for g in widget.graph["layout"]["groups"]] == ["m0"]
    json.dumps(widget.graph)


def test_module_paths_and_classes_stay_text_in_the_svg() -> None:
    """Every XSS payload as a module path, class and signature (xss_payloads.poisoned)."""
    from xss_payloads import CORPUS, marker, poisoned

    from htmlcheck import visible_text

    for payload in CORPUS:
        rep = poisoned(payload.text)
        svg = render_svg(rep, layout(rep))
        root = assert_svg_safe(svg)
        boxes = [g for g in root.iter() if g.get("data-module") is not None]
        assert len(boxes) == 2, payload.id  # the open outer call and its collapsed inner one
        assert all(g.get("data-module-class") is not None for g in boxes)
        assert marker(payload.text)[:8] in visible_text(svg), payload.id
        json.dumps(GradWidget.from_report(rep).get_state()["graph"]).encode("utf-8")
