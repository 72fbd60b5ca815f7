"""The standalone HTML report opened from file:// (no server, no network), and the
front end's performance on a 2,000-node graph (printed, not asserted)."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.session import json_packer
from playwright.sync_api import expect

from browser_helpers import shoot
from browser_synthetic import chain_report, seed_report
from gradmagic.viz.standalone import render_standalone_html
from gradmagic.viz.widget import GradWidget

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from viz_builders import build_inplace, diagnosis, with_diagnoses  # noqa: E402

pytestmark = pytest.mark.browser

SEED_GRAD = re.compile(r"\[0\.?,\s*4\.?,\s*8\.?,\s*12\.?\]")
XSS = "<img src=x onerror=alert(1)>"


def _recorded_seed(code_suffix: str = "") -> dict[str, Any]:
    """The seed recorded by gradmagic.trace when the recorder exists, else the hand-made dict."""
    import gradmagic

    try:
        trace = gradmagic.trace
    except AttributeError:
        return seed_report(code_line=f"y = 2 * torch.dot(x, x){code_suffix}")
    import torch

    with trace() as rep:
        x = torch.arange(4.0, requires_grad=True)
        y = 2 * torch.dot(x, x)  # "<img src=x onerror=alert(1)>"
        y.backward()
    return rep.to_dict()


def _open(page, tmp_path: Path, reports: list[dict[str, Any]], name: str = "report.html"):
    path = tmp_path / name
    path.write_text(render_standalone_html(reports, title="gradmagic <b>report</b>"), encoding="utf-8")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    return path, requests


def test_standalone_page_from_file_is_interactive(page, tmp_path) -> None:
    rep = _recorded_seed(code_suffix=f'  # "{XSS}"')
    path, requests = _open(page, tmp_path, [rep, rep])
    widgets = page.locator(".gradmagic-widget")
    expect(widgets).to_have_count(2)
    expect(page.locator("h1")).to_have_text("gradmagic <b>report</b>")
    first = widgets.first
    x = first.locator("g.gradmagic-node[data-name='x']")
    x.click()
    details = first.locator(".gradmagic-details")
    expect(details).to_contain_text(SEED_GRAD)
    expect(x).to_have_class(re.compile("gradmagic-selected"))
    # keyboard: Tab focus + Enter selects too
    y = first.locator("g.gradmagic-node[data-name='y']")
    y.focus()
    page.keyboard.press("Enter")
    expect(y).to_have_class(re.compile("gradmagic-selected"))
    expect(details).to_contain_text("MulBackward0")
    expect(details).to_contain_text(XSS)  # the comment in the source line, as text
    # pan (drag the background), zoom (button, wheel), fit
    svg = first.locator("svg.gradmagic-svg")
    fitted = svg.get_attribute("viewBox")
    first.locator("button[title='zoom in']").click()
    zoomed = [float(v) for v in svg.get_attribute("viewBox").split()]
    assert zoomed[2] < float(fitted.split()[2])  # a narrower window on the layout
    box = first.locator(".gradmagic-graph").bounding_box()
    page.mouse.move(box["x"] + 8, box["y"] + box["height"] - 8)
    page.mouse.down()
    page.mouse.move(box["x"] + 60, box["y"] + box["height"] - 40, steps=4)
    page.mouse.up()
    panned = [float(v) for v in svg.get_attribute("viewBox").split()]
    assert panned[0] < zoomed[0] and panned[1] > zoomed[1] and panned[2:] == zoomed[2:]  # right, up
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 300)  # a plain wheel scrolls the page, it does not zoom
    page.wait_for_timeout(100)
    assert [float(v) for v in svg.get_attribute("viewBox").split()] == panned
    box = first.locator(".gradmagic-graph").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, 300)  # ctrl + wheel (a trackpad's pinch) zooms
    page.keyboard.up("Control")
    assert float(svg.get_attribute("viewBox").split()[2]) > panned[2]
    first.locator("button[title='fit graph to view']").click()
    refit = [float(v) for v in svg.get_attribute("viewBox").split()]
    assert all(abs(a - b) < 1 for a, b in zip(refit, map(float, fitted.split()))), (refit, fitted)
    # step through the backward; the static copy folded away once the widget rendered
    next_btn = first.locator(".gradmagic-step .gradmagic-next")
    next_btn.click()
    next_btn.click()
    expect(first.locator(".gradmagic-edge-label").first).to_contain_text("×")
    assert page.locator("details.gradmagic-static[open]").count() == 0
    assert page.locator("img:not(.gradmagic-graph-img)").count() == 0
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    shoot(page, "standalone-seed", first)
    assert not page.gradmagic_errors, page.gradmagic_errors


def test_standalone_page_follows_a_dark_colour_scheme(browser, tmp_path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_standalone_html([_recorded_seed()]), encoding="utf-8")
    context = browser.new_context(color_scheme="dark", viewport={"width": 900, "height": 700})
    try:
        pg = context.new_page()
        pg.goto(path.as_uri())
        widget = pg.locator(".gradmagic-widget")
        expect(widget).to_have_count(1)
        rgb = widget.evaluate("el => getComputedStyle(el).backgroundColor")
        text = widget.evaluate("el => getComputedStyle(el).color")
        lum = lambda c: sum(int(v) for v in re.findall(r"\d+", c)[:3])  # noqa: E731
        assert lum(rgb) < 150 < lum(text), (rgb, text)
        shoot(pg, "standalone-dark", widget)
    finally:
        context.close()


def test_standalone_page_renders_without_javascript(browser, tmp_path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_standalone_html([_recorded_seed()]), encoding="utf-8")
    context = browser.new_context(java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(path.as_uri())
        expect(pg.locator("details.gradmagic-static[open] svg").first).to_be_visible()
        assert pg.locator(".gradmagic-widget").count() == 0
    finally:
        context.close()


def diagnosed_report() -> dict[str, Any]:
    """``b.mul_(2)`` after ``b = a.sigmoid()`` (an error), and a warning about ``a``."""
    return with_diagnoses(build_inplace(), diagnosis(
        "zero_grad", "a.grad is exactly zero", "round() has a zero derivative everywhere.",
        "use a smooth function instead of round()", lines=[(5, 1, "a = torch.tensor(...)", "created")],
        nodes=["n0"], severity="warning", tensor="a"))


def test_standalone_page_shows_the_diagnosis_above_the_graph(page, tmp_path) -> None:
    _open(page, tmp_path, [diagnosed_report()], "diagnosis.html")
    widget = page.locator(".gradmagic-widget")
    expect(widget).to_have_count(1)
    blocks = widget.locator(".gradmagic-diagnosis")
    expect(blocks).to_have_count(2)
    first = blocks.first
    expect(first).to_be_visible()
    expect(first).to_have_attribute("data-diagnosis", "inplace_saved")
    expect(first.locator(".gradmagic-diagnosis-heading")).to_have_text("✗ Why it failed")
    expect(first).to_contain_text("b was modified in place after SigmoidBackward0 saved it")
    expect(first.locator(".gradmagic-diagnosis-line")).to_have_text(
        [re.compile(r"line 2\s*saved by\s*b = a\.sigmoid\(\)"), re.compile(r"line 3\s*modified in place"),
         re.compile(r"line 4\s*backward")])
    expect(first.locator(".gradmagic-diagnosis-fix")).to_have_text(re.compile(r"^Fix: write b = b \* 2"))
    expect(blocks.nth(1).locator(".gradmagic-diagnosis-heading")).to_have_text("⚠ a.grad is exactly zero")
    # above everything else: the verdict, the toolbar and the graph come after it
    bottom = blocks.last.bounding_box()
    for below in (".gradmagic-header", ".gradmagic-toolbar", ".gradmagic-graph"):
        assert bottom["y"] + bottom["height"] <= widget.locator(below).bounding_box()["y"], below
    # the graph marks its nodes, in the most important diagnosis's kind
    marked = widget.locator("g.gradmagic-node[data-diagnosis]")
    expect(marked).to_have_count(3)
    assert {g.get_attribute("data-node-id"): g.get_attribute("data-diagnosis") for g in marked.all()} == {
        "n0": "zero_grad", "n1": "inplace_saved", "n2": "inplace_saved"}
    expect(widget.locator("g.gradmagic-node[data-node-id='n1'] .gradmagic-diagnosis-ring")).to_be_visible()
    # a line selects the node it names; "show in the graph" the diagnosis's first node
    first.locator(".gradmagic-diagnosis-line").nth(1).click()
    expect(widget.locator("g.gradmagic-node.gradmagic-selected")).to_have_attribute("data-node-id", "n2")
    first.locator(".gradmagic-diagnosis-show").click()
    expect(widget.locator("g.gradmagic-node.gradmagic-selected")).to_have_attribute("data-node-id", "n1")
    expect(widget.locator(".gradmagic-details")).to_contain_text("SigmoidBackward0")
    shoot(page, "standalone-diagnosis", widget)
    page.screenshot(path="/tmp/gradmagic-standalone-diagnosis.png", full_page=True)
    assert not page.gradmagic_errors, page.gradmagic_errors


def test_standalone_page_without_diagnoses_has_no_diagnosis_block(page, tmp_path) -> None:
    _open(page, tmp_path, [_recorded_seed()])
    expect(page.locator(".gradmagic-widget g.gradmagic-node").first).to_be_visible()
    assert page.locator(".gradmagic-diagnosis, .gradmagic-diagnoses, [data-diagnosis]").count() == 0


def _frame_ms(page, action_js: str) -> float:
    """Run ``action_js``; return the ms of its script plus the style and layout it forces
    (a frame's paint comes on top, at the display's rhythm)."""
    return page.evaluate(f"""async () => {{
        await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
        const t0 = performance.now();
        {action_js}
        document.querySelector('.gradmagic-svg').getBoundingClientRect();
        document.body.offsetHeight;
        return performance.now() - t0; }}""")


def test_performance_2000_nodes(page, tmp_path) -> None:
    report = chain_report(2000)
    state = GradWidget.from_report(report).get_state(["graph", "selected", "step", "call", "expanded"])
    payload = len(json_packer(state))  # as the kernel's comm message packs it
    _open(page, tmp_path, [report], "big.html")
    widget = page.locator(".gradmagic-widget")
    expect(widget).to_have_count(1)
    timings = page.evaluate("""() => Object.fromEntries(performance.getEntriesByType('measure')
        .map(m => [m.name.split(':')[1], m.duration]))""")
    folded = page.locator("g.gradmagic-group.gradmagic-folded")
    n_drawn = page.locator("g.gradmagic-node").count()
    step_ms = [_frame_ms(page, """const s = document.querySelector('.gradmagic-slider');
        s.value = String(Number(s.value) + 1); s.dispatchEvent(new Event('input'));""") for _ in range(5)]
    jump_ms = _frame_ms(page, """const s = document.querySelector('.gradmagic-slider');
        s.value = s.max; s.dispatchEvent(new Event('input'));""")
    expand_ms = None
    if folded.count():
        expand_ms = _frame_ms(page, "document.querySelector('g.gradmagic-group.gradmagic-folded').dispatchEvent(new MouseEvent('click', {bubbles: true}));")
    n_full = page.locator("g.gradmagic-node").count()
    full_step_ms = _frame_ms(page, """const s = document.querySelector('.gradmagic-slider');
        s.value = String(Number(s.value) - 1); s.dispatchEvent(new Event('input'));""")
    shoot(page, "standalone-2000-nodes")
    print(f"\n2,000-node chain: synced payload {payload / 1e6:.2f} MB; JSON.parse {timings.get('parse', -1):.0f} ms; "
          f"first render {timings.get('render', -1):.0f} ms ({n_drawn} nodes drawn, folded); "
          f"slider step {sorted(step_ms)[2]:.1f} ms (median of 5), jump to last step {jump_ms:.1f} ms; "
          f"expand group -> {n_full} nodes drawn in {expand_ms if expand_ms is None else round(expand_ms)} ms; "
          f"slider step with all nodes drawn {full_step_ms:.1f} ms")
    expect(page.locator("g.gradmagic-node.gradmagic-current")).to_have_count(1)
    assert not page.gradmagic_errors, page.gradmagic_errors


def test_a_tensor_hook_is_a_step_of_the_replay(page, tmp_path) -> None:
    # issue 12: "the step-through shows a hook for what it is (hook on z: g → 2·g)"
    import torch

    import gradmagic

    with gradmagic.trace() as rep:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        z = x * 3
        z.register_hook(lambda g: g * 2)
        z.sum().backward()
    steps = rep.to_dict()["backward_calls"][0]["steps"]
    k = next(i for i, st in enumerate(steps) if st["kind"] == "hook")
    _open(page, tmp_path, [rep.to_dict()])
    widget = page.locator(".gradmagic-widget").first
    next_btn = widget.locator(".gradmagic-step .gradmagic-next")
    for _ in range(k + 1):
        next_btn.click()
    narration = widget.locator(".gradmagic-narration")
    expect(narration).to_contain_text("hook on z: g → 2·g")
    expect(narration.locator(".gradmagic-hook-step")).to_contain_text("[2., 2.]")
    expect(widget.locator("g.gradmagic-node.gradmagic-current[data-name='z']")).to_have_count(1)
    assert not page.gradmagic_errors, page.gradmagic_errors


def test_optimizer_updates_have_their_own_timeline_row(page, tmp_path) -> None:
    # issue 13 item 5: the .grad timeline holds .grad events only; an optimizer step's new
    # value is in a row of its own, shown as its step Δ
    import torch

    import gradmagic

    with gradmagic.trace() as rep:
        w = torch.tensor([1.0, 2.0], requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        (w * w).sum().backward()
        opt.step()
    _open(page, tmp_path, [rep.to_dict()])
    leaf = page.locator(".gradmagic-widget .gradmagic-leaf[data-leaf-name='w']")
    grad_line = leaf.locator("ol.gradmagic-timeline:not(.gradmagic-updates)")
    expect(grad_line.locator(".gradmagic-event-update")).to_have_count(0)
    expect(leaf.locator("ol.gradmagic-updates .gradmagic-event-update")).to_have_count(1)
    expect(leaf.locator("ol.gradmagic-updates")).to_contain_text("Δ [-0.2000, -0.4000]")
    assert not page.gradmagic_errors, page.gradmagic_errors
