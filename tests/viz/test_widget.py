"""Python side of ``GradWidget``: synced traits, name resolution, layout recomputation,
payload size and the MIME bundle. The front end itself is tested in tests/browser/."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import traitlets

from gradmagic.viz.iterations import view_report
from gradmagic.viz.layout import layout
from gradmagic.viz.widget import GradWidget, compact_report, resolve_node, widget_graph
from viz_builders import build_inplace, build_loop, diagnosis, with_diagnoses

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SYNCED = {"graph", "selected", "step", "call", "expanded"}


def _node_id(report: dict[str, Any], name: str) -> str:
    return next(n["id"] for n in report["nodes"] if n["name"] == name)


def _state_bytes(w: GradWidget) -> int:
    """Bytes of the widget's synced state as the kernel's comm message packs it."""
    from jupyter_client.session import json_packer

    return len(json_packer(w.get_state(sorted(SYNCED))))


def test_front_end_is_loaded_from_files() -> None:
    static = Path(__file__).resolve().parents[2] / "gradmagic" / "static"
    w = GradWidget()
    assert w._esm == (static / "graph.js").read_text(encoding="utf-8")
    assert w._css == (static / "graph.css").read_text(encoding="utf-8")
    assert "export default { render }" in w._esm
    assert SYNCED <= set(w.keys)


def test_from_report_dict_holds_report_and_shared_layout(seed_report: dict[str, Any]) -> None:
    w = GradWidget.from_report(seed_report)
    assert set(w.graph) == {"report", "layout", "labels", "start_call"}
    # exactly the static SVG's layout (of the report as the views show it)
    assert w.graph["layout"] == layout(view_report(seed_report))
    assert [n["id"] for n in w.graph["report"]["nodes"]] == [n["id"] for n in seed_report["nodes"]]
    assert set(w.graph["labels"]) == set(w.graph["layout"]["nodes"])
    assert (w.selected, w.step, w.call, w.expanded) == ("", -1, 0, [])


def test_from_report_object() -> None:
    from gradmagic.report import GradReport, NodeInfo

    rep = GradReport(nodes=[NodeInfo(id="n0", kind="leaf", name="x", shape=[4], dtype="float32")])
    w = GradWidget.from_report(rep)
    assert w.graph["report"]["nodes"][0]["name"] == "x"
    w.selected = "x"
    assert w.selected == "n0"


def test_selected_by_name_resolves_to_node(seed_report: dict[str, Any]) -> None:
    w = GradWidget.from_report(seed_report)
    w.selected = "y"
    assert w.selected == _node_id(seed_report, "y")
    w.selected = "x"
    assert w.selected == _node_id(seed_report, "x")
    node_id = seed_report["nodes"][1]["id"]
    w.selected = node_id
    assert w.selected == node_id
    w.selected = ""
    assert w.selected == ""
    with pytest.raises(traitlets.TraitError, match="no node named 'nope'.*x, y"):
        w.selected = "nope"


def test_name_bound_twice_resolves_to_latest_node() -> None:
    report = {"nodes": [{"id": "n0", "name": "h", "aliases": ["h"]}, {"id": "n1", "name": None, "aliases": ["h"]},
                        {"id": "n2", "name": "h", "aliases": ["h", "out"]}]}
    assert resolve_node(report, "h") == "n2"
    assert resolve_node(report, "out") == "n2"


def test_step_is_clamped_to_the_calls_steps(seed_report: dict[str, Any]) -> None:
    w = GradWidget.from_report(seed_report)
    n_steps = len(seed_report["backward_calls"][0]["steps"])
    w.step = 1
    assert w.step == 1
    w.step = 10_000
    assert w.step == n_steps - 1
    w.step = -7
    assert w.step == -1


def test_call_selects_a_backward_call_and_resets_the_replay(twice_report: dict[str, Any]) -> None:
    w = GradWidget.from_report(twice_report)
    assert len(twice_report["backward_calls"]) == 2
    w.step = 2
    w.call = 1
    assert (w.call, w.step) == (1, -1)
    with pytest.raises(traitlets.TraitError, match="call must be in 0..1"):
        w.call = 2


def test_expanding_a_group_recomputes_the_layout() -> None:
    report = build_loop(iterations=120, body=4)
    w = GradWidget.from_report(report)
    groups = [g for g in w.graph["layout"]["groups"] if g["folded"]]
    assert groups, "a 480-op loop should be folded"
    hidden_before = set(w.graph["layout"]["hidden"])
    gid = groups[0]["id"]
    w.expanded = [gid]
    lay = w.graph["layout"]
    assert lay == layout(view_report(report), expanded=(gid,))
    assert not next(g for g in lay["groups"] if g["id"] == gid)["folded"]
    shown = set(groups[0]["members"]) & set(lay["nodes"])
    assert shown and shown <= hidden_before
    assert shown <= set(w.graph["labels"])
    w.expanded = []
    assert set(w.graph["layout"]["hidden"]) == hidden_before


def test_payload_of_a_2000_node_graph_is_under_1_mb() -> None:
    report = build_loop(iterations=500, body=4)
    assert len(report["nodes"]) >= 2000
    w = GradWidget.from_report(report)
    size = _state_bytes(w)
    raw = len(json.dumps(report, separators=(",", ":")).encode())
    print(f"\nsynced payload, {len(report['nodes'])} nodes: {size / 1e6:.2f} MB (report JSON alone {raw / 1e6:.2f} MB)")
    assert size <= 1_000_000


def test_compaction_keeps_what_the_front_end_reads(seed_report: dict[str, Any]) -> None:
    report = json.loads(json.dumps(seed_report))
    x = report["nodes"][0]
    x["value"]["data"] = [0.30000001192092896, 1.0, 2.0, 3.0]
    small = compact_report(report, hidden=[report["nodes"][1]["id"]])
    sx = small["nodes"][0]
    assert sx["value"] == {"shape": [4], "dtype": "float32", "numel": 4, "data": [0.3, 1.0, 2.0, 3.0]}
    assert sx["grad"]["data"] == x["grad"]["data"] and sx["source"] == x["source"]
    assert "value" not in small["nodes"][1] and small["nodes"][1]["label"] == report["nodes"][1]["label"]
    assert set(small) == set(report) - {"modules"} and small["checks"] == []  # modules: unread
    assert all("shape" in n for n in small["nodes"])  # [] is a scalar's shape, never dropped
    big = {"numel": 100, "data": None, "head": [0.5] * 8, "min": 0.0, "max": 1.0, "mean": 0.5}
    assert compact_report({"v": big})["v"] == big  # summaries keep head and statistics
    assert compact_report({"v": "nan", "w": float("inf")}) == {"v": "nan", "w": float("inf")}


def test_mimebundle_has_widget_view_and_static_fallbacks(seed_report: dict[str, Any]) -> None:
    w = GradWidget.from_report(seed_report)
    data, _meta = w._repr_mimebundle_()
    assert data[WIDGET_MIME]["model_id"] == w.model_id
    assert "text/plain" in data
    assert "<svg" in data["text/html"] and "x" in data["text/html"]
    lean, _ = w._repr_mimebundle_(exclude=["text/html"])  # for a caller with its own HTML
    assert set(lean) == {WIDGET_MIME, "text/plain"}


def test_widget_graph_labels_match_the_static_view(mixed_report: dict[str, Any]) -> None:
    from gradmagic.viz.labels import node_lines

    g = widget_graph(mixed_report)
    for node in view_report(mixed_report)["nodes"]:
        assert g["labels"][node["id"]] == [list(line) for line in node_lines(node)]


# ---------------------------------------------------------------- diagnoses (issue 15)

def test_diagnoses_reach_the_front_end_in_order() -> None:
    rep = with_diagnoses(build_inplace(), diagnosis("zero_grad", "a.grad is all zeros", "m",
                                                    "f", severity="warning", nodes=["n0"]))
    sent = GradWidget.from_report(rep).graph["report"]["diagnoses"]
    assert sent == rep["diagnoses"]  # every field, unrounded, most important first
    assert [d["kind"] for d in sent] == ["inplace_saved", "zero_grad"]


def test_diagnosis_of_a_folded_node_keeps_its_node_ids() -> None:
    rep = build_loop(500)
    member = rep["nodes"][10]["id"]
    rep["diagnoses"] = [diagnosis("nonfinite_grad", "nan", "m", "f", nodes=[member])]
    graph = widget_graph(rep)
    assert member in graph["layout"]["hidden"]  # the front end marks its group instead
    assert graph["report"]["diagnoses"][0]["nodes"] == [member]


def test_static_fallback_shows_the_diagnosis() -> None:
    data, _meta = GradWidget.from_report(build_inplace())._repr_mimebundle_()
    fallback = data["text/html"].split("</style>", 1)[1]
    assert fallback.lstrip().startswith('<div class="gradmagic-diagnoses">')
    assert 'data-diagnosis="inplace_saved"' in fallback


def test_no_diagnoses_sends_the_same_state(seed_report: dict[str, Any]) -> None:
    without = {k: v for k, v in seed_report.items() if k != "diagnoses"}
    graph = widget_graph(with_diagnoses(seed_report))
    assert graph["report"].pop("diagnoses") == [] and graph == widget_graph(without)


def test_diagnosis_panel_lives_outside_render() -> None:
    """graph.js keeps the panel in functions of its own, before the render() closure."""
    js = GradWidget()._esm
    render_at = js.index("\nfunction render(")
    for name in ("diagnosisPanel", "diagnosisBlock", "markDiagnosedNodes"):
        assert -1 < js.index(f"\nfunction {name}(") < render_at, name
