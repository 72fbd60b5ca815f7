"""Hostile strings from user code are shown as text in every view, never interpreted."""
from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from gradmagic.viz.html import render_html
from gradmagic.viz.layout import layout
from gradmagic.viz.svg import render_svg
from gradmagic.viz.text import render_text
from htmlcheck import assert_safe
from viz_builders import build_mixed

CORPUS = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "javascript:alert(1)",
    "\" onmouseover=\"alert(1)",
    "' onfocus='alert(1)",
    "a\u202eevil\u202c",
    "lone\ud800surrogate",
    "</svg><svg onload=alert(1)>",
    "]]><!--",
    "&amp; &lt;",
]


def poisoned(payload: str) -> dict[str, Any]:
    """A report with ``payload`` in every user-derived string field."""
    rep = copy.deepcopy(build_mixed())
    for node in rep["nodes"]:
        node["name"] = payload
        node["aliases"] = [payload]
        node["dtype"] = payload
        node["formulas"] = [payload]
        node["torch_op"] = payload
        if node["kind"] == "op":
            node["label"] = payload
        if node["source"]:
            node["source"]["code"] = payload
        node["saved"] = [{"name": payload, "shape": [1], "dtype": payload, "bytes": 4}]
        node["saved_bytes"] = 4
    for leaf in rep["leaves"]:
        leaf["name"] = payload
        for event in leaf["events"]:
            event["code"] = payload
        leaf["accumulated_without_clearing"] = True
    for call in rep["backward_calls"]:
        call["source"]["code"] = payload
    rep["unsupported"] = [payload]
    rep["notes"] = [payload]
    rep["error"] = {"type": payload, "message": payload}
    rep["cell"]["source"] = payload
    return rep


def _raw_markup_absent(page: str, payload: str) -> None:
    for fragment in ("<img", "<script", "</script", "<svg onload", "\u202e", "\ud800"):
        if fragment in payload:
            assert fragment not in page.replace('<svg xmlns="http://www.w3.org/2000/svg"', ""), \
                fragment
    page.encode("utf-8")  # lone surrogates were made visible, so the page encodes


@pytest.mark.parametrize("payload", CORPUS)
def test_html_escapes_everything(payload: str) -> None:
    page = render_html(poisoned(payload))
    assert_safe(page)
    assert page.count("<svg") == 1
    _raw_markup_absent(page, payload)


@pytest.mark.parametrize("payload", CORPUS)
def test_svg_stays_wellformed(payload: str) -> None:
    rep = poisoned(payload)
    svg = render_svg(rep, layout(rep))
    root = ET.fromstring(svg)  # would fail on any unescaped < & or quote
    names = {g.get("data-name") for g in root.iter() if g.get("data-node-id")}
    assert len(names) == 1
    assert_safe(svg)
    _raw_markup_absent(svg, payload)


@pytest.mark.parametrize("payload", CORPUS)
def test_text_has_no_invisible_controls(payload: str) -> None:
    text = render_text(poisoned(payload))
    assert "\u202e" not in text and "\ud800" not in text
    text.encode("utf-8")
    if payload.isascii():
        assert payload[:20] in text  # shown literally, as the user wrote it


def test_bidi_override_is_shown_as_an_escape() -> None:
    page = render_html(poisoned("a\u202eevil"))
    assert "a\\u202eevil" in page
