"""Issue 13 items 3, 6, 7 in the Python views: one iteration of a training loop, titles that
lead with what the learner wrote, the step-over line, and what a learner sees first."""
from __future__ import annotations

from typing import Any

import pytest
import torch

import gradmagic
from gradmagic.viz.display import ReportDisplay
from gradmagic.viz.facts import call_rows
from gradmagic.viz.html import render_html
from gradmagic.viz.iterations import start_call, view_report
from gradmagic.viz.text import render_text
from gradmagic.viz.widget import GradWidget
from viz_builders import record_sgd_loop


@pytest.fixture(scope="module")
def loop_report() -> dict[str, Any]:
    return record_sgd_loop()


def test_a_loop_is_shown_one_iteration_at_a_time(loop_report: dict[str, Any]) -> None:
    view = view_report(loop_report)
    plan = view["iterations"]
    assert (plan["count"], plan["shown"], plan["label"]) == (3, 2, "iteration 3 of 3")
    ops = [n for n in view["nodes"] if n["kind"] == "op"]
    assert len(ops) == 5  # one forward pass, not three
    names = {n.get("name") for n in view["nodes"]}
    assert {"net.1.weight", "net.3.bias", "X", "y", "loss"} <= names  # shared inputs stay
    first = view_report(loop_report, iteration=0)
    assert "loss" not in {n.get("name") for n in first["nodes"]}
    assert {m["call"] for m in first["modules"]} == {0} and {m["call"] for m in view["modules"]} == {2}
    assert start_call(view) == 2 and start_call(first) == 0


def test_every_view_shows_the_same_iteration(loop_report: dict[str, Any]) -> None:
    text = render_text(loop_report)
    assert "showing iteration 3 of 3" in text and text.count("▸ net.3 · Linear") == 1
    page = render_html(loop_report)
    assert 'data-iteration="2"' in page and "showing iteration 3 of 3" in page
    w = GradWidget.from_report(loop_report)
    assert w.graph["report"]["iterations"]["shown"] == 2 and w.call == 2
    ids = set(w.graph["layout"]["nodes"])
    w.iteration = 0
    assert w.call == 0 and w.step == -1 and set(w.graph["layout"]["nodes"]) != ids
    assert w.graph["report"]["iterations"]["label"] == "iteration 1 of 3"
    assert all(m.startswith("m") for m in w.expanded) and w.expanded  # that iteration's model open


def test_a_leaf_shows_the_value_the_forward_used(loop_report: dict[str, Any]) -> None:
    view = view_report(loop_report)
    weight = next(n for n in view["nodes"] if n.get("name") == "net.1.weight")
    leaf = next(lf for lf in loop_report["leaves"] if lf["name"] == "net.1.weight")
    last_update = [ev for ev in leaf["events"] if ev["kind"] == "update"][-1]
    assert weight["value"] == last_update["before"] and weight["value_after"] == last_update["after"]


def test_step_over_line_of_a_collapsed_layer(loop_report: dict[str, Any]) -> None:
    graph = GradWidget.from_report(loop_report).graph
    lines = set(graph["step_over"].values())
    assert "net.3 Linear: g [4, 3] → g [4, 8]; ∂W = gᵀ·x; ∂b = Σ g" in lines
    assert "net.2 ReLU: g [4, 8] → g [4, 8]; ∂/∂a = g·[out > 0]" in lines


def test_titles_lead_with_what_the_learner_wrote() -> None:
    with gradmagic.trace() as rep:
        a = torch.tensor(2.0, requires_grad=True)
        b = torch.tensor(3.0, requires_grad=True)
        c = a * b + b * 2
        c.backward()
        g = a.grad  # noqa: F841 - a read of .grad: no floating node
    view = view_report(rep.to_dict())
    exprs = [n.get("expr") for n in view["nodes"] if n["kind"] == "op"]
    assert exprs == ["a * b", "b * 2", None]  # c is titled by its name
    assert not any(n.get("torch_op") == "Tensor.grad" for n in view["nodes"])
    text = render_text(rep.to_dict())
    assert "a * b  MulBackward0" in text and "b * 2  MulBackward0" in text


def test_a_cell_without_tensors_is_one_line() -> None:
    with gradmagic.trace() as rep:
        _ = 1 + 2
    bundle = ReportDisplay(rep, format="widget")._repr_mimebundle_()
    assert bundle["text/plain"].strip().count("\n") == 0 and "no tensors" in bundle["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" not in bundle


def test_the_header_says_gradmagic_once() -> None:
    with gradmagic.trace() as rep:
        x = torch.arange(4.0, requires_grad=True)
        (2 * torch.dot(x, x)).backward()
    first = render_text(rep.to_dict()).splitlines()[0]
    assert first.count("gradmagic") == 1, first


def test_the_call_list_names_every_root_of_a_sampled_loop() -> None:
    """Forty SGD steps under the default check budget: the first calls' graphs are summarised and
    the other kept iterations are not the one shown; the call list says so ("— not drawn", "in
    iteration 16"), never a bare "?" (the views' glyph for "unchecked")."""
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    X, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    with gradmagic.trace(session=gradmagic.recorder.Session()) as rep:
        for _ in range(40):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    report = rep.to_dict()
    assert [c["call"] for c in report["backward_calls"]] == [0, 1, 2, 3, 15, 31]
    roots = [row["root"] for row in call_rows(view_report(report))]
    assert roots[:3] == ["— not drawn"] * 3
    assert roots[3:5] == ["in iteration 4", "in iteration 16"]
    assert roots[5] == "NllLossBackward0"
    text, page = render_text(report), render_html(report)
    assert "in iteration 16" in text and "in iteration 16" in page and "— not drawn" in page
