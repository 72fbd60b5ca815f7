"""Hostile strings in a real browser: the standalone page, an untrusted notebook's saved
outputs after JupyterLab's sanitizer, and the live widget in JupyterLab.

Every payload family of ``tests/viz/xss_payloads.py`` is batched into one report (one
string holding all its payloads). Each check: no JavaScript dialog (the ``page`` fixture),
no console error, nothing in the DOM that only a parsed payload could have made
(``browser_helpers.injected``) and every payload readable as text.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from browser_helpers import collect_console_errors, injected, run_all_cells, shoot, wait_kernel_idle
from browser_notebooks import XssScenario, xss_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from xss_payloads import FAMILIES, family_payload, marker, poisoned  # noqa: E402

from gradmagic.viz.escape import no_lone_surrogates  # noqa: E402
from gradmagic.viz.standalone import render_standalone_html  # noqa: E402

pytestmark = pytest.mark.browser

_SURROGATE = re.compile("[\ud800-\udfff]")


def widget_sends_surrogates() -> bool:
    """Whether a widget whose report holds a lone surrogate can be sent to the browser
    (gradmagic/viz/widget.py escapes them); until then such a cell shows the static report."""
    from jupyter_client.session import json_packer

    from gradmagic.viz.widget import GradWidget

    try:
        json_packer(GradWidget.from_report(poisoned("\ud800")).get_state(["graph"])).decode("utf-8")
    except (UnicodeError, ValueError):
        return False
    return True


def _markers(family: str) -> list[str]:
    return [marker(p) for p in FAMILIES[family]]


def _assert_readable(text: str, family: str, where: str) -> None:
    missing = [m for m in _markers(family) if m not in text]
    assert not missing, f"{where}: not shown as text: {missing}"


# ---------------------------------------------------------------- JupyterLab


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> XssScenario:
    """Made before the browser starts (see ``xss_notebook``): the first test asks for it
    before ``page``."""
    return xss_notebook(tmp_path_factory.mktemp("xss") / "hostile.ipynb")


def _check_sanitized_outputs(page, scenario: XssScenario) -> None:
    """The saved outputs of the untrusted notebook, as JupyterLab's sanitizer left them."""
    canary = page.locator("[data-jupyter-id='gradmagic-canary'], #gradmagic-canary")
    expect(canary).to_have_count(1, timeout=60_000)
    assert canary.get_attribute("onclick") is None, "the notebook was trusted: nothing sanitized"
    cells = page.locator(".jp-CodeCell")
    for k, family in enumerate(scenario.families, start=1):
        out = cells.nth(k).locator(".jp-OutputArea-output")
        report = out.locator(".gradmagic-report")
        expect(report).to_have_count(1)  # untrusted: the static HTML, not the widget
        report.scroll_into_view_if_needed()  # JupyterLab lays out only the cells in view
        image = report.locator("img.gradmagic-graph-img")
        expect(image).to_be_visible()  # the graph, although <svg> was sanitized away
        assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0, family
        saved = scenario.saved_html[family]  # every table and row kept
        assert report.locator("table").count() == saved.count("<table") >= 5, family
        assert report.locator("tr").count() == saved.count("<tr"), family
        assert "<script" not in out.inner_html().lower()
        _assert_readable(report.inner_text(), family, f"saved output {family}")
    assert injected(page, ".jp-OutputArea-output") == []


def _check_live_widgets(page, scenario: XssScenario) -> None:
    """After Run All: the widget of every hostile cell (the static report where a widget
    cannot be sent yet), its details panel, the error of the raising cell."""
    cells = page.locator(".jp-CodeCell")
    with_widget = widget_sends_surrogates()
    for k, family in enumerate(scenario.families, start=1):
        out = cells.nth(k).locator(".jp-OutputArea")
        out.scroll_into_view_if_needed()
        if not with_widget and _SURROGATE.search(scenario.payloads[family]):
            expect(out.locator(".gradmagic-report")).to_have_count(1, timeout=30_000)
            _assert_readable(out.inner_text(), family, f"static fallback {family}")
            continue
        widget = out.locator(".gradmagic-widget")
        expect(widget).to_have_count(1, timeout=30_000)
        expect(widget.locator("g.gradmagic-node").first).to_be_visible()
        name = no_lone_surrogates(scenario.payloads[family])  # the variable's name
        k_leaf = widget.evaluate(
            "(w, name) => [...w.querySelectorAll('g.gradmagic-node')].findIndex(g => g.dataset.name === name)", name)
        assert k_leaf >= 0, f"no node named after the payload in the widget of {family}"
        leaf = widget.locator("g.gradmagic-node").nth(k_leaf)
        leaf.click()  # its details panel shows the name, the source line, the gradient
        expect(leaf).to_have_class(re.compile("gradmagic-selected"))
        _assert_readable(widget.locator(".gradmagic-details").text_content(), family, f"details {family}")
        _assert_readable(widget.text_content(), family, f"widget {family}")
    # the raising cell: its traceback next to the report
    expect(cells.nth(len(scenario.families)).locator(".jp-OutputArea")).to_contain_text("ValueError")
    assert injected(page, ".jp-OutputArea") == []


def test_untrusted_notebook_then_live_widgets_in_jupyterlab(hostile, jupyter, page) -> None:
    t0 = time.monotonic()
    console = collect_console_errors(page, only=("gradmagic", "blob:"))  # JupyterLab's own aside
    page.goto(jupyter("lab", hostile.path))
    wait_kernel_idle(page)
    _check_sanitized_outputs(page, hostile)
    shoot(page, "xss-lab-untrusted")
    run_all_cells(page, len(hostile.families) + 1)
    _check_live_widgets(page, hostile)
    shoot(page, "xss-lab-widgets")
    assert not console and not page.gradmagic_errors, (console, page.gradmagic_errors)
    print(f"\nJupyterLab hostile notebook: {time.monotonic() - t0:.1f}s")


# ---------------------------------------------------------------- the standalone page


def test_standalone_page_shows_payloads_as_text(page, tmp_path) -> None:
    console = collect_console_errors(page)
    path = tmp_path / "hostile.html"
    reports = [poisoned(family_payload(f)) for f in FAMILIES]
    path.write_text(render_standalone_html(reports, title=family_payload("markup")), encoding="utf-8")
    page.goto(path.as_uri())
    widgets = page.locator(".gradmagic-widget")
    expect(widgets).to_have_count(len(FAMILIES))
    expect(page.locator("h1")).to_contain_text("<script>alert(1)</script>")
    for k, family in enumerate(FAMILIES):
        widget = widgets.nth(k)
        node = widget.locator("g.gradmagic-node").first
        node.click()  # the details panel draws every field of the node
        expect(node).to_have_class(re.compile("gradmagic-selected"))
        _assert_readable(widget.text_content(), family, f"widget {family}")
        _assert_readable(widget.locator(".gradmagic-details").text_content(), family, f"details {family}")
        # the diagnoses (issue 15) quote the payload in their title, message, lines and fix
        expect(widget.locator(".gradmagic-diagnosis")).to_have_count(2)
        _assert_readable(widget.locator(".gradmagic-diagnoses").text_content(), family, f"diagnoses {family}")
        expect(widget.locator("g.gradmagic-node[data-diagnosis]")).to_have_count(2)
    assert injected(page) == []
    assert not console and not page.gradmagic_errors, (console, page.gradmagic_errors)
    shoot(page, "xss-standalone")
