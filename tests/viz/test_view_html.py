"""The static HTML report: self-contained, safe, and stating every fact a learner needs."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest

from gradmagic.viz.fmt import as_value, preview
from gradmagic.viz.html import report_css, render_html
from htmlcheck import assert_safe, parse, visible_text
from viz_builders import build_grad_none, build_inplace, build_loop, with_diagnoses


def test_fragment_is_self_contained(seed_report: dict[str, Any]) -> None:
    page = render_html(seed_report)
    doc = assert_safe(page)
    assert [t for t, _ in doc.tags].count("svg") == 1
    assert [t for t, _ in doc.tags].count("style") == 1 and report_css() in page
    assert page.startswith('<div class="gradmagic-report')
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_css_rules_are_scoped() -> None:
    css = report_css()
    body = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    selectors = [block.split("{")[0] for block in body.split("}") if "{" in block]
    for group in selectors:
        for selector in group.split(","):
            assert selector.strip().startswith(".gradmagic-report"), selector
    assert "var(--jp-ui-font-color1" in css and "var(--jp-layout-color0" in css


def grads_in_table(page: str) -> dict[str, str]:
    """leaf id → the unescaped markup of its row in the gradient table."""
    leaves = [a["data-leaf"] for t, a in parse(page).tags if t == "tr" and "data-leaf" in a]
    rows = {}
    for leaf in leaves:
        start = page.index(f'data-leaf="{leaf}"')
        rows[leaf] = html.unescape(page[start:page.index("</tr>", start)])
    return rows


@pytest.mark.parametrize("fixture", ["seed_report", "twice_report", "mixed_report"])
def test_every_leaf_gradient_is_present(fixture: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(fixture)
    page = render_html(report)
    rows = grads_in_table(page)
    assert set(rows) == {leaf["id"] for leaf in report["leaves"]}
    for leaf in report["leaves"]:
        expected = preview(as_value(leaf["grad"], leaf["shape"], leaf["dtype"]), 60, prefix="")
        assert rows[leaf["id"]].count(expected) >= 1, (expected, rows[leaf["id"]])


def test_seed_facts_are_shown(seed_report: dict[str, Any]) -> None:
    text = html.unescape(render_html(seed_report))
    assert "✓ gradmagic agrees with PyTorch" in text
    assert "[0., 4., 8., 12.]" in text  # x.grad as torch prints it
    assert "MulBackward0" in text and "DotBackward0" in text
    assert "the forward pass stores intermediates so backward can use them" in text
    assert "y.backward()" in text and "∂/∂a = g·b" in text
    assert "without clearing" not in text


def test_accumulation_hint_after_two_backward_calls(twice_report: dict[str, Any]) -> None:
    page = render_html(twice_report)
    doc = parse(page)
    hints = [a for t, a in doc.tags if a.get("class") == "gradmagic-hint"]
    assert len(hints) == 1
    text = html.unescape(page)
    assert "accumulated over several backward calls without clearing" in text
    assert "[0., 4., 8., 12.] → [0., 8., 16., 24.]" in text


def test_mismatch_unsupported_error_and_notes(mixed_report: dict[str, Any]) -> None:
    page = render_html(mixed_report)
    text = html.unescape(page)
    assert "gradmagic-verdict-differ" in page
    assert "✗ 1 mismatch between gradmagic and PyTorch." in text  # the HTML headline
    assert "First divergent node: a * c (MulBackward0), line 2: z = (a * c).exp()" in text
    assert "torch.fft.fft" in text and "has no gradmagic rule" in text
    assert "The cell raised RuntimeError: boom: <b>not bold</b>" in text
    assert "<b>not bold</b>" not in page  # shown, not interpreted


def test_nonfinite_values_show_as_nan_and_inf() -> None:
    report = build_loop(2)
    report["nodes"][2]["value"]["data"] = ["nan", "inf"]
    report["nodes"][2]["value"]["head"] = ["nan", "inf"]
    text = html.unescape(render_html(report))
    assert "tensor([nan, inf])" in text


def test_large_graph_html_is_small_and_folded() -> None:
    page = render_html(build_loop(500))
    assert len(page.encode()) < 1_000_000
    assert page.count("<svg") == 1 and "loop body ×500" in page
    assert "more nodes not listed" in page  # the node table stops at 300 rows
    assert_safe(page)


def test_large_leaf_gradient_shows_head_and_statistics(seed_report: dict[str, Any]) -> None:
    import torch

    from viz_builders import value

    big = value(torch.arange(1000.0))
    seed_report["leaves"][0]["grad"] = big
    seed_report["leaves"][0]["shape"] = [1000]
    text = html.unescape(render_html(seed_report))
    assert "[0., 1., 2., 3.," in text and "min 0. · max 999. · mean 499.5000" in text


# ---------------------------------------------------------------- diagnoses (issue 15)

def _blocks(page: str) -> list[dict[str, Any]]:
    return [a for t, a in parse(page).tags if "gradmagic-diagnosis" in (a.get("class") or "").split()]


def test_diagnosis_is_the_first_thing_shown() -> None:
    page = render_html(build_inplace())
    assert_safe(page)
    [block] = _blocks(page)
    assert block["data-diagnosis"] == "inplace_saved" and block["role"] == "alert"
    after_style = page.split("</style>", 1)[1]
    assert after_style.lstrip().startswith('<div class="gradmagic-diagnoses">')
    assert after_style.index("gradmagic-verdict") < after_style.index("<svg")
    text = visible_text(after_style.split('<div class="gradmagic-verdict', 1)[0])
    assert "Why it failed" in text and "b was modified in place after SigmoidBackward0 saved it" in text
    assert "SigmoidBackward0 saved its output b" in text
    assert "Fix: write b = b * 2 instead of b.mul_(2)" in text


def test_diagnosis_lines_are_a_table_in_order() -> None:
    page = render_html(build_inplace())
    rows = [a["data-line"] for t, a in parse(page).tags if t == "tr"
            and a.get("class") == "gradmagic-diagnosis-line"]
    assert rows == ["2", "3", "4"]
    table = page[page.index("gradmagic-diagnosis-lines"):]
    table = table[:table.index("</table>")]
    cells = [visible_text(c) for c in re.findall(r"<td>(.*?)</td>", table)]
    assert cells == ["line 2", "saved by", "b = a.sigmoid()", "line 3", "modified in place",
                     "b.mul_(2)", "line 4", "backward", "b.sum().backward()"]


def test_warning_heading_is_its_title_and_several_keep_their_order() -> None:
    both = with_diagnoses(build_inplace(), *build_grad_none()["diagnoses"])
    page = render_html(both)
    assert [b["data-diagnosis"] for b in _blocks(page)] == ["inplace_saved", "grad_none"]
    warning = page[page.index('class="gradmagic-diagnosis gradmagic-diagnosis-warning"'):]
    heading = re.search(r'gradmagic-diagnosis-heading">(.*?)</div>', warning).group(1)
    assert html.unescape(heading) == "⚠ Why is h.grad None?"
    assert "gradmagic-diagnosis-title" not in warning.split("</div></div>")[0]


def test_static_graph_marks_the_diagnosis_nodes() -> None:
    page = render_html(build_inplace())
    marked = {a["data-node-id"]: a["data-diagnosis"] for t, a in parse(page).tags
              if t == "g" and "data-diagnosis" in a}
    assert marked == {"n1": "inplace_saved", "n2": "inplace_saved"}


def test_no_diagnoses_changes_nothing(seed_report: dict[str, Any]) -> None:
    without = {k: v for k, v in seed_report.items() if k != "diagnoses"}
    page = render_html(with_diagnoses(seed_report))
    assert page == render_html(without) and "gradmagic-diagnos" not in page.split("</style>")[1]


def test_optimizer_updates_are_kept_out_of_the_grad_history():
    import torch

    import gradmagic

    with gradmagic.trace() as rep:
        w = torch.tensor([1.0, 2.0], requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        (w * w).sum().backward()
        opt.step()
    html = render_html(rep.to_dict())
    grad_part, update_part = html.split('class="gradmagic-history gradmagic-updates"')
    assert "gradmagic-event-update" not in grad_part
    assert "[1., 2.] → [0.8000, 1.6000]" in update_part and "[-0.2000, -0.4000]" in update_part
