"""The gradient-flow panel (issue 13, item 4) in the text, static HTML/SVG and widget views.

Reports are real recordings (``gradmagic.trace``) or a synthetic report with a hand-made
``grad_flow``; every view words the hints alike (``viz.facts.flow_facts``), the chart is
``svg.gradmagic-flow`` and every layer name is escaped.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import torch
from torch import nn

from gradmagic.recorder import Session, trace
from gradmagic.viz.facts import flow_facts
from gradmagic.viz.flowchart import flow_payload, flow_svg
from gradmagic.viz.html import render_html
from gradmagic.viz.text import render_text
from gradmagic.viz.widget import widget_graph
from htmlcheck import assert_safe, assert_svg_safe, structure, visible_text
from viz_builders import build_mixed
from xss_payloads import BENIGN, CORPUS, marker

_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _flow(names: list[str], norms: list[list[Any]]) -> dict[str, Any]:
    calls = max(len(n) for n in norms)
    return {"calls": calls, "thinned": False, "max_points": 1000, "layers": [
        {"name": name, "kind": "parameter", "type": None, "parameters": [name], "numel": 4,
         "calls": list(range(len(ns))), "norm": ns, "mean": ns, "max": ns}
        for name, ns in zip(names, norms)]}


def _with_flow(names: list[str], norms: list[list[Any]]) -> dict[str, Any]:
    rep = build_mixed()
    rep["grad_flow"] = _flow(names, norms)
    rep["grad_flow"]["activations"] = [{"module": names[0], "type": "ReLU", "shape": [2, 3],
                                        "mean": 0.5, "std": 0.25, "zeros": 0.5}]
    return rep


@pytest.fixture(scope="module")
def mlp_report() -> dict[str, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    X, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    with trace(session=Session(), namespace={"net": net, "opt": opt}) as rep:
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    return rep.to_dict()


def test_mlp_in_every_view(mlp_report: dict[str, Any]) -> None:
    text = render_text(mlp_report)
    assert "Gradient flow" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith(("net.0 ", "net.2 "))]
    assert [r[:2] for r in rows[:2]] == [["net.0", "Linear"], ["net.2", "Linear"]]  # then activations
    page = render_html(mlp_report)
    assert_safe(page)
    charts = [svg for svg in re.findall(r"<svg.*?</svg>", page, re.S) if 'class="gradmagic-flow"' in svg]
    assert len(charts) == 1
    root = assert_svg_safe(charts[0])
    layers = [g.get("data-layer") for g in root.iter() if g.get("class") == "gradmagic-flow-line"]
    assert layers == ["net.0", "net.2"]
    assert "gradmagic-flow-hint" not in page  # a healthy MLP: no hint
    assert 'class="gradmagic-table gradmagic-flow-acts"' in page and 'data-module="net.1"' in page
    acts = [line.split() for line in text.splitlines() if line.strip().startswith("net.1 ")]
    assert acts and acts[-1][1] == "ReLU" and acts[-1][-1].endswith("%")
    graph = widget_graph(mlp_report)
    assert [lay["name"] for lay in graph["flow"]["layers"]] == ["net.0", "net.2"]
    json.dumps(graph, allow_nan=False)


def test_one_call_draws_bars() -> None:
    rep = _with_flow(["net.0", "net.2"], [[0.5], [2e-3]])
    assert flow_facts(rep) is None  # two plain tensors, one call: no panel
    for lay in rep["grad_flow"]["layers"]:
        lay["kind"], lay["type"] = "module", "Linear"
    svg = flow_svg(flow_facts(rep))
    root = assert_svg_safe(svg)
    bars = [r.get("data-layer") for r in root.iter() if r.get("class") == "gradmagic-flow-bar"]
    assert bars == ["net.0", "net.2"] and "<polyline" not in svg


def test_hints_read_alike_in_every_view() -> None:
    rep = _with_flow(["net.0", "net.4"], [[1e-9, 2e-9], [0.3, 0.2]])
    facts = flow_facts(rep)
    assert [h["kind"] for h in facts["hints"]] == ["vanishing"]
    sentence = facts["hints"][0]["text"]
    assert "net.0" in sentence and "Xavier" in sentence
    assert " ".join(render_text(rep, width=1000).split()).count(sentence) == 1
    assert visible_text(render_html(rep)).count(sentence) == 1
    assert widget_graph(rep)["flow"]["hints"][0]["text"] == sentence


def test_exploding_and_nonfinite_hints() -> None:
    growing = flow_facts(_with_flow(["w", "b"], [[1.0, 20.0, 500.0, 9000.0], [1.0, 1.1, 1.0, 1.2]]))
    assert [h["kind"] for h in growing["hints"]] == ["exploding"]
    assert "grew more than 10×" in growing["hints"][0]["text"]
    bad = _with_flow(["w", "b"], [[1.0, "inf"], [1.0, "nan"]])
    facts = flow_facts(bad)
    assert [h["kind"] for h in facts["hints"]] == ["exploding"]
    assert facts["layers"][0]["last_norm"] == "inf"
    payload = widget_graph(bad)["flow"]
    assert payload["layers"][0]["norm"] == [1.0, None]
    json.dumps(payload, allow_nan=False)
    assert_svg_safe(flow_svg(facts))


def test_no_panel_leaves_the_views_byte_identical() -> None:
    plain = build_mixed()
    toy = copy.deepcopy(plain)
    toy["grad_flow"] = _flow(["x"], [[4.0]])  # one tensor, one call: no panel
    assert flow_facts(toy) is None and flow_payload(toy) is None
    assert render_text(toy) == render_text(plain)
    assert render_html(toy) == render_html(plain)
    assert widget_graph(toy) == widget_graph(plain)


@pytest.mark.parametrize("payload", [pytest.param(p, id=p.id) for p in CORPUS])
def test_layer_names_are_escaped(payload: Any) -> None:
    benign = render_html(_with_flow([BENIGN, "b"], [[1.0, 2.0], [0.5, 0.4]]))
    rep = _with_flow([payload.text, "b"], [[1.0, 2.0], [0.5, 0.4]])
    page = render_html(rep)
    assert_safe(page)
    assert structure(page) == structure(benign)
    assert marker(payload.text) in visible_text(page)
    text = render_text(rep)
    assert _TEXT_CONTROLS.search(text) is None
    assert widget_graph(rep)["flow"]["layers"][0]["name"] == marker(payload.text) or \
        marker(payload.text) in widget_graph(rep)["flow"]["layers"][0]["name"]  # text, for textContent
