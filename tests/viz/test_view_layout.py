"""The shared layout: deterministic, layered along data flow, no overlaps, folding of loops."""
from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest

from gradmagic.viz.layout import layout
from gradmagic.viz.svg import render_svg
from viz_builders import build_loop


def random_dag(n: int, seed: int, fan_in: int = 3) -> dict[str, Any]:
    """A random DAG in creation order, with names and labels of varying length."""
    rng = random.Random(seed)
    nodes, edges = [], []
    for i in range(n):
        kind = "leaf" if i < 3 or rng.random() < 0.1 else "op"
        nodes.append({"id": f"n{i}", "kind": kind, "name": f"v{i}" * rng.randint(0, 3) or None,
                      "label": "MulBackward0" if kind == "op" else None, "shape": [rng.randint(1, 9)],
                      "dtype": "float32", "status": rng.choice(["agree", "differ", "unchecked"])})
        if kind == "op":
            for port in range(rng.randint(1, fan_in)):
                edges.append({"source": f"n{rng.randrange(i)}", "target": f"n{i}", "input": port})
    return {"nodes": nodes, "edges": edges}


def boxes(lay: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = dict(lay["nodes"])
    out.update({g["id"]: g for g in lay["groups"] if g["folded"]})
    return out


def assert_no_overlap(lay: dict[str, Any]) -> None:
    by_layer: dict[int, list[dict[str, Any]]] = {}
    for box in boxes(lay).values():
        by_layer.setdefault(box["layer"], []).append(box)
    previous_bottom = -1.0
    for layer in sorted(by_layer):
        row = sorted(by_layer[layer], key=lambda b: b["x"])
        for a, b in zip(row, row[1:]):
            assert a["x"] + a["w"] <= b["x"] + 1e-6, (a, b)
        top = min(b["y"] for b in row)
        assert top > previous_bottom  # layers are horizontal bands that do not overlap
        previous_bottom = max(b["y"] + b["h"] for b in row)
    for box in boxes(lay).values():
        assert box["x"] >= 0 and box["y"] >= 0
        assert box["x"] + box["w"] <= lay["width"] and box["y"] + box["h"] <= lay["height"]


def assert_edges_follow_layers(lay: dict[str, Any]) -> None:
    all_boxes = boxes(lay)
    for edge in lay["edges"]:
        src, dst = all_boxes[edge["source"]], all_boxes[edge["target"]]
        assert src["layer"] < dst["layer"], edge
        (x0, y0), (x1, y1) = edge["points"][0], edge["points"][-1]
        assert y0 == pytest.approx(src["y"] + src["h"], abs=0.11)
        assert src["x"] <= x0 <= src["x"] + src["w"]
        assert y1 == pytest.approx(dst["y"], abs=0.11)
        assert dst["x"] <= x1 <= dst["x"] + dst["w"]
        ys = [p[1] for p in edge["points"]]
        assert ys == sorted(ys)  # edges run downwards


def test_seed_layout_puts_inputs_above_outputs(seed_report: dict[str, Any]) -> None:
    lay = layout(seed_report)
    x, dot, y = (lay["nodes"][f"n{i}"] for i in range(3))
    assert x["layer"] < dot["layer"] < y["layer"]
    assert lay["direction"] == "TB" and lay["groups"] == [] and lay["hidden"] == []
    assert len(lay["edges"]) == 3  # dot(x, x): two edges from x, one port each
    ports = sorted(e["points"][-1][0] for e in lay["edges"] if e["target"] == "n1")
    assert ports[0] < ports[1]
    assert_no_overlap(lay)
    assert_edges_follow_layers(lay)


def test_box_sizes_follow_labels() -> None:
    short = {"nodes": [{"id": "a", "kind": "leaf", "name": "x"}], "edges": []}
    long = {"nodes": [{"id": "a", "kind": "leaf", "name": "a_much_longer_variable_name"}],
            "edges": []}
    assert layout(long)["nodes"]["a"]["w"] > layout(short)["nodes"]["a"]["w"]


@pytest.mark.parametrize("seed", range(12))
def test_random_dags_are_layered_without_overlap(seed: int) -> None:
    report = random_dag(60 + 10 * seed, seed)
    lay = layout(report)
    assert set(lay["nodes"]) == {n["id"] for n in report["nodes"]}
    assert len(lay["edges"]) == len(report["edges"])
    assert_no_overlap(lay)
    assert_edges_follow_layers(lay)


def test_layout_is_deterministic_and_json_safe() -> None:
    report = random_dag(150, 7)
    first = layout(report)
    again = layout(copy.deepcopy(report))
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert json.loads(json.dumps(first)) == first


def test_layout_does_not_modify_its_input() -> None:
    report = random_dag(40, 3)
    before = copy.deepcopy(report)
    layout(report, max_nodes=10)
    assert report == before


def test_barycenter_ordering_removes_avoidable_crossings() -> None:
    # a0 feeds c1, a1 feeds c0: created in the "wrong" order, the sweeps must uncross them
    nodes = [{"id": i, "kind": "leaf" if i[0] == "a" else "op", "name": i}
             for i in ("a0", "a1", "c0", "c1")]
    edges = [{"source": "a0", "target": "c1", "input": 0},
             {"source": "a1", "target": "c0", "input": 0}]
    lay = layout({"nodes": nodes, "edges": edges})
    n = lay["nodes"]
    assert (n["a0"]["x"] < n["a1"]["x"]) == (n["c1"]["x"] < n["c0"]["x"])


def test_cycles_in_a_broken_report_do_not_hang() -> None:
    nodes = [{"id": f"n{i}", "kind": "op"} for i in range(3)]
    edges = [{"source": "n0", "target": "n1"}, {"source": "n1", "target": "n2"},
             {"source": "n2", "target": "n0"}, {"source": "n9", "target": "n0"}]
    lay = layout({"nodes": nodes, "edges": edges})
    assert set(lay["nodes"]) == {"n0", "n1", "n2"}
    assert len(lay["edges"]) == 3  # the edge from an unknown node is dropped


def test_small_graph_is_never_folded() -> None:
    lay = layout(build_loop(10), max_nodes=300)
    assert lay["groups"] == [] and lay["hidden"] == [] and lay["notes"] == []


def test_two_thousand_node_loop_is_folded() -> None:
    report = build_loop(500)  # 2,003 nodes
    assert len(report["nodes"]) == 2003
    lay = layout(report)
    [group] = lay["groups"]
    assert group["label"] == "loop body ×500" and group["folded"] and group["count"] == 500
    assert len(group["members"]) == 2000 and set(lay["hidden"]) == set(group["members"])
    assert set(lay["nodes"]) == {"n0", "n1", "n2002"}
    assert "loop body ×500" in lay["notes"][0]
    w_edge = [e for e in lay["edges"] if e["source"] == "n0"]
    assert w_edge == [{**w_edge[0], "target": "g0", "count": 500}]
    assert_no_overlap(lay)
    assert_edges_follow_layers(lay)


def test_expanding_a_group_shows_its_members_and_keeps_ids() -> None:
    report = build_loop(100)
    folded = layout(report, max_nodes=50)
    opened = layout(report, max_nodes=50, expanded=["g0"])
    assert [g["id"] for g in opened["groups"]] == [g["id"] for g in folded["groups"]] == ["g0"]
    assert opened["groups"][0]["folded"] is False and opened["hidden"] == []
    assert set(opened["nodes"]) == {n["id"] for n in report["nodes"]}
    box = opened["groups"][0]
    for member in box["members"]:
        m = opened["nodes"][member]
        assert box["x"] <= m["x"] and m["x"] + m["w"] <= box["x"] + box["w"] + 1e-6
    assert_no_overlap(opened)


def test_prologue_and_two_loops_give_two_groups() -> None:
    def chain(start: int, count: int, labels: tuple[str, ...], line: int) -> list[dict[str, Any]]:
        return [{"id": f"n{start + i}", "kind": "op", "label": labels[i % len(labels)],
                 "source": {"cell": 1, "line": line + i % len(labels)}} for i in range(count)]

    nodes = chain(0, 3, ("ExpBackward0",), 1) + chain(3, 300, ("MulBackward0", "AddBackward0",
                                                           "TanhBackward0"), 5) \
        + chain(303, 200, ("SinBackward0", "CosBackward0"), 20)
    edges = [{"source": f"n{i}", "target": f"n{i + 1}", "input": 0} for i in range(502)]
    lay = layout({"nodes": nodes, "edges": edges}, max_nodes=100)
    labels = [(g["label"], len(g["members"])) for g in lay["groups"]]
    assert labels == [("loop body ×100", 300), ("loop body ×100", 200)]
    assert {"n0", "n1", "n2"} <= set(lay["nodes"])


def test_benchmark_2000_nodes_layout_and_svg(capsys: pytest.CaptureFixture[str]) -> None:
    """Printed, not asserted (the target is ≤ 1 s for layout + SVG on 2,000 nodes)."""
    report = build_loop(500)
    timings = {}
    for label, max_nodes in (("folded", 300), ("unfolded", 10_000)):
        start = time.perf_counter()
        lay = layout(report, max_nodes=max_nodes)
        svg = render_svg(report, lay)
        timings[label] = time.perf_counter() - start
        assert svg.count("<svg") == 1
    assert len(lay["nodes"]) == 2003
    assert_no_overlap(lay)
    with capsys.disabled():
        print("\n[benchmark] 2,003-node loop: layout + SVG "
              + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))
