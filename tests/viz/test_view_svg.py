"""The static SVG graph: well-formed, one element, hooks for the widget, kinds and states visible."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from gradmagic.viz.layout import layout
from gradmagic.viz.svg import render_svg
from htmlcheck import assert_safe
from viz_builders import build_grad_none, build_inplace, build_loop, diagnosis, with_diagnoses

NS = "{http://www.w3.org/2000/svg}"


def svg_of(report: dict[str, Any], **kw: Any) -> str:
    return render_svg(report, layout(report, **kw))


def node_groups(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.get("data-node-id"): g for g in root.iter(f"{NS}g") if g.get("data-node-id")}


def test_seed_svg_is_one_wellformed_svg(seed_report: dict[str, Any]) -> None:
    svg = svg_of(seed_report)
    root = ET.fromstring(svg)  # well-formed XML: every string escaped
    assert root.tag == f"{NS}svg" and svg.count("<svg") == 1
    assert float(root.get("width")) > 0 and root.get("viewBox")
    assert_safe(svg)


def test_nodes_carry_ids_names_classes_and_tooltips(seed_report: dict[str, Any]) -> None:
    groups = node_groups(svg_of(seed_report))
    assert set(groups) == {"n0", "n1", "n2"}
    x, y = groups["n0"], groups["n2"]
    assert x.get("data-name") == "x" and y.get("data-name") == "y"
    assert x.get("class").split() == ["gradmagic-node", "gradmagic-kind-leaf",
                                      "gradmagic-status-agree"]
    assert "gradmagic-kind-op" in y.get("class")
    tip = x.find(f"{NS}title").text
    assert "x" in tip and "grad (gradmagic) tensor([0., 4., 8., 12.])" in tip
    texts = ["".join(t.itertext()) for t in y.iter(f"{NS}text")]
    assert {"y", "MulBackward0", "scalar float32", "tensor(28.)"} <= set(texts)
    assert "DotBackward0" in ["".join(t.itertext()) for t in groups["n1"].iter(f"{NS}text")]
    leaf_texts = ["".join(t.itertext()) for t in x.iter(f"{NS}text")]
    assert "grad [0., 4., 8., 12.]" in leaf_texts


def test_edges_have_arrowheads(seed_report: dict[str, Any]) -> None:
    root = ET.fromstring(svg_of(seed_report))
    edges = [g for g in root.iter(f"{NS}g") if g.get("class") == "gradmagic-edge"]
    assert len(edges) == 3
    for edge in edges:
        assert edge.find(f"{NS}path[@class='gradmagic-arrow']") is not None


def _box(group: ET.Element) -> ET.Element:
    return next(el for el in group if el.get("class") == "gradmagic-box")


def test_kinds_differ_by_shape_and_fill(mixed_report: dict[str, Any]) -> None:
    groups = node_groups(svg_of(mixed_report))
    kinds = {g.get("class").split()[1]: g for g in groups.values()}
    assert set(kinds) == {"gradmagic-kind-leaf", "gradmagic-kind-constant", "gradmagic-kind-op",
                          "gradmagic-kind-opaque"}
    looks = {k: (_box(g).tag, _box(g).get("rx"), _box(g).get("fill"),
                 len(g.findall(f"{NS}rect"))) for k, g in kinds.items()}
    assert len(set(looks.values())) == 4  # every kind looks different without colour too
    assert len({tag_rx[:2] + (tag_rx[3],) for tag_rx in looks.values()}) == 4
    assert len({v[2] for v in looks.values()}) == 4


def test_states_differ_without_colour(mixed_report: dict[str, Any]) -> None:
    groups = node_groups(svg_of(mixed_report))
    status = {g.get("data-node-id"): g for g in groups.values()}
    differ, unchecked, agree = status["n2"], status["n3"], status["n0"]
    assert "gradmagic-status-differ" in differ.get("class")
    assert _box(differ).get("stroke-width") == "3" and _box(differ).get("stroke") == "#dc2626"
    assert _box(unchecked).get("stroke-dasharray") and not _box(agree).get("stroke-dasharray")

    def badge(g: ET.Element) -> str:
        b = next(el for el in g if el.get("class") == "gradmagic-badge")
        return "".join(b.itertext())

    assert (badge(agree), badge(differ), badge(unchecked)) == ("✓", "✗", "?")


def test_presentation_attributes_survive_without_css(seed_report: dict[str, Any]) -> None:
    root = ET.fromstring(svg_of(seed_report))
    assert root.find(f".//{NS}style") is None
    for el in root.iter():
        if el.tag in (f"{NS}rect", f"{NS}polygon", f"{NS}circle"):
            assert el.get("fill") and el.get("fill") != "none" or el.get("stroke"), el.attrib
        assert el.get("style") is None


def test_folded_group_is_drawn_as_one_stack() -> None:
    report = build_loop(500)
    svg = svg_of(report)
    root = ET.fromstring(svg)
    groups = [g for g in root.iter(f"{NS}g") if g.get("data-group-id")]
    assert len(groups) == 1 and groups[0].get("data-members") == "2000"
    assert "loop body ×500" in "".join(groups[0].itertext())
    assert len(node_groups(svg)) == 3  # w, h0 and loss stay visible
    assert len(svg) < 100_000


def test_empty_report_still_gives_one_svg_with_a_message() -> None:
    report = {"nodes": [], "edges": []}
    svg = svg_of(report)
    root = ET.fromstring(svg)
    assert "No tensor operations were recorded." in "".join(root.itertext())
    assert svg.count("<svg") == 1


# ---------------------------------------------------------------- diagnoses (issue 15)

def test_diagnosis_nodes_get_a_ring_and_the_hook() -> None:
    rep = with_diagnoses(build_inplace(), *build_grad_none()["diagnoses"])
    rep["diagnoses"][1]["nodes"] = ["n2", "n0"]  # n2 is the error's too: the first one wins
    groups = node_groups(svg_of(rep))
    marks = {nid: g.get("data-diagnosis") for nid, g in groups.items()}
    assert marks == {"n0": "grad_none", "n1": "inplace_saved", "n2": "inplace_saved", "n3": None}
    ring = groups["n1"].find(f"{NS}rect")
    assert ring.get("class") == "gradmagic-diagnosis-ring" and ring.get("stroke") == "#dc2626"
    assert groups["n0"].find(f"{NS}rect").get("stroke") == "#d97706"  # a warning
    assert groups["n3"].find(f"{NS}rect[@class='gradmagic-diagnosis-ring']") is None
    assert "b was modified in place" in groups["n1"].find(f"{NS}title").text


def test_folded_group_holding_a_diagnosis_node_is_marked() -> None:
    rep = build_loop(500)
    member = rep["nodes"][10]["id"]
    rep["diagnoses"] = [diagnosis("nonfinite_grad", "the gradient became nan at TanhBackward0",
                                  "m", "f", nodes=[member])]
    root = ET.fromstring(svg_of(rep))
    marked = [g for g in root.iter(f"{NS}g") if g.get("data-diagnosis")]
    assert [g.get("data-group-id") for g in marked] == ["g0"]


def test_no_diagnoses_changes_nothing(seed_report: dict[str, Any]) -> None:
    without = {k: v for k, v in seed_report.items() if k != "diagnoses"}
    svg = svg_of(with_diagnoses(seed_report))
    assert svg == svg_of(without) and "diagnos" not in svg
