"""The standalone ``--html`` page: self-contained, inert user strings, same front end.
(It is opened from file:// in a real browser in tests/browser/test_standalone_page.py.)"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gradmagic.viz.html import render_html
from gradmagic.viz.iterations import view_report
from gradmagic.viz.layout import layout
from gradmagic.viz.standalone import inline_json, render_standalone_html
from viz_builders import build_inplace, build_loop

STATIC = Path(__file__).resolve().parents[2] / "gradmagic" / "static"
EVIL = '</script><script>alert(1)</script><!-- <img src=x onerror=alert(2)>'


class _Scripts(HTMLParser):
    """Collects every <script> element (type, data attributes, text) as a browser parses them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._current = {"attrs": dict(attrs), "text": ""}
        elif self._current is None and tag in ("img", "iframe", "link") \
                and dict(attrs).get("class") != "gradmagic-graph-img":  # the static graph's picture
            self.scripts.append({"attrs": {"__tag__": tag, **dict(attrs)}, "text": ""})

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.scripts.append(self._current)
            self._current = None


def _parse(page: str) -> list[dict[str, Any]]:
    parser = _Scripts()
    parser.feed(page)
    return parser.scripts


def _evil(report: dict[str, Any]) -> dict[str, Any]:
    report = json.loads(json.dumps(report))
    for node in report["nodes"]:
        if node.get("source"):
            node["source"]["code"] = EVIL
    report["nodes"][0]["name"] = EVIL
    return report


def test_page_holds_each_report_with_the_front_end_inlined(seed_report, mixed_report) -> None:
    page = render_standalone_html([seed_report, mixed_report], title="Autograd <notes>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Autograd &lt;notes&gt;</title>" in page
    scripts = _parse(page)
    data = [s for s in scripts if s["attrs"].get("type") == "application/json"]
    modules = [s for s in scripts if s["attrs"].get("type") == "module"]
    assert len(data) == 2 and len(modules) == 1 and len(scripts) == 3
    js = (STATIC / "graph.js").read_text(encoding="utf-8")
    boot = (STATIC / "standalone.js").read_text(encoding="utf-8")
    assert modules[0]["text"].strip() == (js + "\n" + boot).strip()
    assert (STATIC / "graph.css").read_text(encoding="utf-8") in page
    first = json.loads(data[0]["text"])
    assert first["graph"]["layout"] == layout(view_report(seed_report))
    assert [n["id"] for n in first["graph"]["report"]["nodes"]] == [n["id"] for n in seed_report["nodes"]]
    assert render_html(seed_report) in page  # the static fragment, readable without JavaScript
    for i, d in enumerate(data):
        assert f'id="{d["attrs"]["data-mount"]}"' in page and d["attrs"]["data-mount"] == f"gradmagic-mount-{i}"


def test_nothing_is_fetched_from_the_network(seed_report) -> None:
    page = render_standalone_html([seed_report])
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"""import\s*(\(|[^;]*from\s*)["']https?:""", page)
    assert "@import" not in page


def test_user_strings_cannot_end_or_open_elements(seed_report) -> None:
    page = render_standalone_html([_evil(seed_report)])
    scripts = _parse(page)
    assert [s["attrs"].get("type") for s in scripts] == ["application/json", "module"]
    data = json.loads(scripts[0]["text"])  # the JSON survives intact, the string round-trips
    assert data["graph"]["report"]["nodes"][0]["name"] == EVIL
    assert EVIL not in page and "<img src=x" not in page


def test_inline_json_escapes_markup_but_round_trips() -> None:
    value = {"a": "</script>", "b": "<!--", "c": "\u2028"}
    text = inline_json(value)
    assert "<" not in text and "\u2028" not in text
    assert json.loads(text) == value


def test_folded_groups_get_precomputed_layouts() -> None:
    report = build_loop(iterations=120, body=4)
    page = render_standalone_html([report])
    data = json.loads(_parse(page)[0]["text"])
    folded = [g["id"] for g in data["graph"]["layout"]["groups"] if g["folded"]]
    assert folded
    layouts = data["layouts"]
    assert layouts["*"]["layout"] == layout(view_report(report), expanded=tuple(folded))
    for gid in folded:
        assert layouts[gid]["layout"] == layout(view_report(report), expanded=(gid,))


def test_empty_page_says_so() -> None:
    page = render_standalone_html([])
    assert "No recorded cells." in page and "</html>" in page


def test_report_objects_are_accepted() -> None:
    pytest.importorskip("torch")
    from gradmagic.report import GradReport, NodeInfo

    rep = GradReport(nodes=[NodeInfo(id="n0", kind="leaf", name="x", shape=[4], dtype="float32")])
    data = json.loads(_parse(render_standalone_html([rep]))[0]["text"])
    assert data["graph"]["report"]["nodes"][0]["name"] == "x"


def test_page_carries_the_diagnoses_for_both_copies() -> None:
    """The interactive copy gets them in its data (graph.js draws the panel); the static copy
    starts with its ``gradmagic-diagnosis`` block."""
    rep = build_inplace()
    page = render_standalone_html([rep])
    data = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S).group(1)
    assert json.loads(data)["graph"]["report"]["diagnoses"] == rep["diagnoses"]
    static = page[page.index('<details class="gradmagic-static"'):]
    static = static.split("</style>", 1)[1]
    assert static.lstrip().startswith('<div class="gradmagic-diagnoses">')
    assert "function diagnosisPanel(" in page


def test_page_headline_says_which_calls_were_checked() -> None:
    """The interactive copy shows the same headline as every view: under check="sample" it names
    the checked backward calls, never a bare "agrees"."""
    torch = pytest.importorskip("torch")
    from gradmagic.recorder import Session, trace
    from gradmagic.viz.facts import verdict

    w = torch.ones(2, requires_grad=True)
    with trace(session=Session(), namespace={"w": w}) as rep:
        for i in range(20):
            w.grad = None
            (w * float(i)).sum().backward()
    report = rep.to_dict()
    data = json.loads(_parse(render_standalone_html([report]))[0]["text"])
    headline = data["graph"]["report"]["verdict"]["headline"]
    assert headline == verdict(report)["headline"]
    assert "backward calls 1–4, 16 of 20; the other 15 ran at full speed, not checked" in headline
