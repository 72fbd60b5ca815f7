"""Hostile strings from user code are shown as text in every view, never interpreted.

Each payload of ``xss_payloads.CORPUS`` goes (a) into every string field of a synthetic
report and (b) through a real ``%%grad`` cell in an IPython shell, via variable names,
module parameter names, op (class) names, source lines, notes and an exception message.
The static HTML and SVG are parsed (``htmlcheck``): nothing that runs or loads, the same
elements and attribute names as for a harmless name, and the payload readable as text.
The text report holds no control character; the widget state and the standalone page
encode to UTF-8 and give the payload back unchanged. The same payloads are rendered by a
real browser in tests/browser/test_xss_browser.py.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any, Iterator

import pytest
from IPython.utils.capture import capture_output

from gradmagic.viz.escape import no_lone_surrogates
from gradmagic.viz.html import render_html
from gradmagic.viz.layout import layout
from gradmagic.viz.standalone import render_standalone_html
from gradmagic.viz.svg import render_svg
from gradmagic.viz.text import render_text
from htmlcheck import assert_safe, assert_svg_safe, parse, structure, visible_text
from shell_helpers import torch_function_modes
from xss_payloads import (BENIGN, CORPUS, SETUP, Payload, forget, hostile_cell, marker,
                          poisoned, prepare)

PARAMS = [pytest.param(p, id=p.id) for p in CORPUS]
#: characters the text report must never contain (it is printed to terminals)
_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b\u200e\u200f\u202a-\u202e"
                            "\u2060-\u2064\u2066-\u2069\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff"
                            "\U000e0000-\U000e007f]")


def _assert_inert_html(page: str, benign: str, payload: str) -> None:
    """No script can run, the markup is the benign page's, the payload reads as text."""
    assert_safe(page)
    assert structure(page) == structure(benign), "the payload changed the page's markup"
    assert marker(payload) in visible_text(page)
    page.encode("utf-8")  # no lone surrogate left: the page can be saved and sent


def _assert_clean_text(text: str, payload: str) -> None:
    found = _TEXT_CONTROLS.search(text)
    assert found is None, f"raw {ascii(found.group())} in the text report"
    assert marker(payload) in text
    text.encode("utf-8")


# ---------------------------------------------------------------- synthetic reports


@pytest.fixture(scope="module")
def benign_views() -> dict[str, str]:
    rep = poisoned(BENIGN)
    return {"html": render_html(rep), "svg": render_svg(rep, layout(rep))}


@pytest.mark.parametrize("payload", PARAMS)
def test_static_html_and_svg_are_inert(payload: Payload, benign_views: dict[str, str]) -> None:
    rep = poisoned(payload.text)
    page = render_html(rep)
    _assert_inert_html(page, benign_views["html"], payload.text)
    assert page.count("<svg") == 1
    svg = render_svg(rep, layout(rep))
    root = assert_svg_safe(svg)
    assert structure(svg) == structure(benign_views["svg"])
    names = {g.get("data-name") for g in root.iter() if g.get("data-node-id")}
    assert len(names) == 1 and marker(payload.text) in visible_text(svg)


@pytest.mark.parametrize("payload", PARAMS)
def test_text_report_has_no_control_characters(payload: Payload) -> None:
    _assert_clean_text(render_text(poisoned(payload.text)), payload.text)


@pytest.mark.parametrize("payload", PARAMS)
def test_standalone_page_keeps_payloads_in_its_data(payload: Payload) -> None:
    """The payload is also the page title (the CLI names the page after the script)."""
    page = render_standalone_html([poisoned(payload.text)], title=payload.text)
    page.encode("utf-8")
    doc = parse(page)
    scripts = [attrs.get("type") for tag, attrs in doc.tags if tag == "script"]
    assert scripts == ["application/json", "module"], scripts
    data = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S).group(1)
    assert "<" not in data
    report = json.loads(data)["graph"]["report"]
    # given back exactly (a lone surrogate either as it is or as its visible escape)
    sent = no_lone_surrogates(payload.text)
    assert no_lone_surrogates(report["error"]["message"]) == sent
    assert [no_lone_surrogates(n["name"]) for n in report["nodes"]] == [sent] * len(report["nodes"])
    assert no_lone_surrogates(report["diagnoses"][1]["lines"][1]["code"]) == sent
    static = re.search(r'<details class="gradmagic-static".*?</details>', page, re.S).group()
    assert_safe(static)
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)
    assert marker(payload.text) in visible_text(heading) and "<" not in heading


@pytest.mark.parametrize("payload", PARAMS)
def test_diagnoses_show_payloads_as_text(payload: Payload) -> None:
    """Titles, messages, fixes, roles and code of the diagnoses (issue 15), in each view."""
    rep = poisoned(payload.text)
    page = render_html(rep)
    blocks = re.search(r'<div class="gradmagic-diagnoses">.*?(?=<div class="gradmagic-verdict)',
                       page, re.S).group()
    assert_safe(blocks)
    assert visible_text(blocks).count(marker(payload.text)) >= 2 * 6  # two diagnoses
    svg = render_svg(rep, layout(rep))
    marked = [g for g in assert_svg_safe(svg).iter() if g.get("data-diagnosis") is not None]
    assert len(marked) == 2
    text = render_text(rep)
    _assert_clean_text(text, payload.text)
    head = text.split("gradmagic · cell", 1)[0]
    assert head.startswith("✗ Why it failed") and "⚠ " in head and marker(payload.text) in head


def test_bidi_override_is_shown_as_an_escape() -> None:
    page = render_html(poisoned("a\u202eevil"))
    assert "a\\u202eevil" in page and "\u202e" not in page


def test_zero_width_and_tag_characters_are_visible() -> None:
    text = render_text(poisoned("x\u200by\U000e0041"))
    assert "x\\u200by\\U000e0041" in text


# ---------------------------------------------------------------- the widget's state

@pytest.mark.parametrize("payload", PARAMS)
def test_widget_state_is_valid_utf8_json(payload: Payload) -> None:
    """What the kernel sends to the browser: jupyter_client's packer, strict UTF-8."""
    from jupyter_client.session import json_packer

    from gradmagic.viz.widget import GradWidget

    widget = GradWidget.from_report(poisoned(payload.text))
    packed = json_packer(widget.get_state(["graph"]))
    graph = json.loads(packed.decode("utf-8"))["graph"]  # strict: no surrogate bytes
    # sent as it is (the front end makes invisible characters visible), lone surrogates
    # written as escapes
    assert graph["report"]["error"]["message"] == no_lone_surrogates(payload.text)
    diag = graph["report"]["diagnoses"][0]
    assert {diag[k] for k in ("kind", "title", "message", "fix", "tensor")} == {
        no_lone_surrogates(payload.text)}
    box_text = " ".join(text for lines in graph["labels"].values() for _, text in lines)
    assert _TEXT_CONTROLS.search(box_text) is None


# ---------------------------------------------------------------- real %%grad cells


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    """IPython's test shell with gradmagic loaded and ``xss_payloads.SETUP`` run."""
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.extension_manager.load_extension("gradmagic")
    assert ip.run_cell(SETUP).success
    yield ip
    ip.extension_manager.unload_extension("gradmagic")
    assert torch_function_modes() == 0
    forget(ip.user_ns, [p.text for p in CORPUS] + [BENIGN])
    ip.run_cell("pass")  # the last cell's exception (and the frames it holds) goes
    sys.last_type = sys.last_value = sys.last_traceback = None


def run_hostile(ip: Any, key: str, payload: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Run the hostile cell for ``payload``: (result, MIME bundle shown, report dict)."""
    import gradmagic

    assert ip.run_cell(prepare(key, payload)).success
    with capture_output() as cap:
        result = ip.run_cell(hostile_cell(key, payload))
    assert torch_function_modes() == 0
    bundles = [out.data for out in cap.outputs if "text/html" in out.data]
    assert len(bundles) == 1, cap.stdout + cap.stderr
    return result, bundles[0], gradmagic.last_report().to_dict()


@pytest.fixture(scope="module")
def benign_cell(shell: Any) -> dict[str, Any]:
    return run_hostile(shell, "benign", BENIGN)[1]


@pytest.mark.parametrize("payload", PARAMS)
def test_magic_cell_with_payload_everywhere(shell: Any, benign_cell: dict[str, Any],
                                            payload: Payload) -> None:
    result, bundle, report = run_hostile(shell, "k", payload.text)
    # the user's cell ran as without gradmagic: its exception, its variables
    assert isinstance(result.error_in_exec, ValueError)
    assert result.error_in_exec.args == (payload.text,)
    assert shell.user_ns[payload.text].grad.tolist() == [2.0, 2.0, 2.0]
    # every channel carried the payload into the report
    names = {n["name"] for n in report["nodes"]}
    param = payload.text.replace(".", "_")
    assert {payload.text, f"net_k.{param}"} <= names
    opaque = [n for n in report["nodes"] if n["kind"] == "opaque"]
    cls = payload.text.encode("utf-8", "replace").decode().replace("\x00", "?")
    assert len(opaque) == 1 and cls in opaque[0]["label"]
    assert any(cls in note for note in report["notes"])
    assert report["error"]["message"] == payload.text
    # and every view shows it as text
    _assert_inert_html(bundle["text/html"], benign_cell["text/html"], payload.text)
    _assert_clean_text(bundle["text/plain"], payload.text)


def test_graph_picture_is_the_inline_graph_without_tooltips() -> None:
    """The ``<img>`` copy that survives HTML sanitizers draws the same boxes and labels."""
    import base64
    import xml.etree.ElementTree as ET

    page = render_html(poisoned(CORPUS[1].text))
    inline = re.search(r"<svg\b.*?</svg>", page, re.S).group()
    src = next(a["src"] for t, a in parse(page).tags if t == "img")
    picture = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
    texts = [[el.text for el in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
             for svg in (inline, picture)]
    assert texts[0] == texts[1] and len(texts[0]) > 10
    assert "<title>" not in picture and CORPUS[1].text[:20] in visible_text(picture)  # boxes cut at 30 columns


@pytest.mark.parametrize("separator", ["\u2028", "\x0c", "\x85"])
def test_line_separators_in_a_comment_keep_source_lines(shell: Any, separator: str) -> None:
    """A comment may hold characters that str.splitlines takes for line ends; the lines
    shown for later statements must still be the cell's own."""
    import gradmagic

    cell = (f"%%grad --format text\nx = torch.ones(2, requires_grad=True)  # a{separator}b\n"
            "y = (x * 3).sum()\ny.backward()")
    with capture_output():
        assert shell.run_cell(cell).success
    codes = {n["name"]: n["source"]["code"] for n in gradmagic.last_report().to_dict()["nodes"]}
    assert codes["y"] == "y = (x * 3).sum()"


def test_fallback_notes_are_cleaned_like_any_user_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure message may quote user text; the note that reports it is user text too."""
    from gradmagic.viz import widget
    from gradmagic.viz.display import ReportDisplay

    def shown_when_widget_fails_with(message: str) -> dict[str, Any]:
        def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError(message)

        monkeypatch.setattr(widget.GradWidget, "from_report", broken)
        return ReportDisplay(poisoned(BENIGN), format="widget")._repr_mimebundle_()

    hostile = "a\u202eb\ud800<img id=pwn>"
    benign, bundle = shown_when_widget_fails_with(BENIGN), shown_when_widget_fails_with(hostile)
    assert "interactive view unavailable" in bundle["text/html"]
    _assert_inert_html(bundle["text/html"], benign["text/html"], hostile)
    _assert_clean_text(bundle["text/plain"], hostile)
