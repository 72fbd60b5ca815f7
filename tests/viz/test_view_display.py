"""The MIME bundle: which renderings appear for each format, and graceful fallbacks."""
from __future__ import annotations

import sys
from typing import Any

import pytest

import gradmagic.viz.display as display_mod
from gradmagic.viz.display import WIDGET_MIME, ReportDisplay, last_widget, show


class FakeReport:
    """Stands in for GradReport: only ``to_dict`` is used by the views."""

    def __init__(self, data: dict[str, Any] | None) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        if self.data is None:
            raise RuntimeError("report exploded")
        return self.data


def test_text_format_is_text_only(seed_report: dict[str, Any]) -> None:
    bundle = ReportDisplay(seed_report, format="text")._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    assert "MulBackward0" in bundle["text/plain"]


def test_html_format_has_html_and_text(seed_report: dict[str, Any]) -> None:
    bundle = ReportDisplay(FakeReport(seed_report), format="html")._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert bundle["text/html"].count("<svg") == 1 and "<script" not in bundle["text/html"]


def test_auto_outside_a_kernel_is_static(seed_report: dict[str, Any]) -> None:
    bundle = ReportDisplay(seed_report)._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}


def test_widget_format_adds_the_widget_and_remembers_it(seed_report: dict[str, Any]) -> None:
    shown = ReportDisplay(seed_report, format="widget")
    bundle = shown._repr_mimebundle_()
    assert set(bundle) == {WIDGET_MIME, "text/html", "text/plain"}
    widget = last_widget()
    assert widget is shown.widget and widget is not None
    assert bundle[WIDGET_MIME]["model_id"] == widget.model_id
    assert widget.graph["report"]["nodes"][2]["name"] == "y"
    assert "interactive view unavailable" not in bundle["text/plain"]


def test_broken_widget_falls_back_with_a_note(seed_report: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from gradmagic.viz import widget as widget_mod

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("front end broke")

    monkeypatch.setattr(widget_mod.GradWidget, "from_report", classmethod(boom))
    monkeypatch.setattr(display_mod, "_last_widget", None)
    bundle = ReportDisplay(seed_report, format="widget")._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert "interactive view unavailable (ValueError: front end broke)" in bundle["text/plain"]
    assert "interactive view unavailable" in bundle["text/html"]
    assert last_widget() is None


def test_missing_widget_module_falls_back(seed_report: dict[str, Any],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gradmagic.viz.widget", None)  # import raises ImportError
    bundle = ReportDisplay(seed_report, format="widget")._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert "ImportError" in bundle["text/plain"] or "ModuleNotFoundError" in bundle["text/plain"]


def test_broken_html_falls_back_to_text(seed_report: dict[str, Any],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import gradmagic.viz.html as html_mod

    monkeypatch.setattr(html_mod, "render_html", lambda *a, **k: 1 / 0)
    bundle = ReportDisplay(seed_report, format="html")._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    assert "could not render its HTML report (ZeroDivisionError" in bundle["text/plain"]
    assert "MulBackward0" in bundle["text/plain"]


def test_broken_report_never_raises() -> None:
    bundle = ReportDisplay(FakeReport(None), format="auto")._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    assert "report exploded" in bundle["text/plain"]
    assert "report exploded" in repr(ReportDisplay(FakeReport(None)))


def test_include_and_exclude(seed_report: dict[str, Any]) -> None:
    shown = ReportDisplay(seed_report, format="html")
    assert list(shown._repr_mimebundle_(include={"text/plain"})) == ["text/plain"]
    assert list(shown._repr_mimebundle_(exclude={"text/plain"})) == ["text/html"]


def test_bad_format_is_rejected(seed_report: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        ReportDisplay(seed_report, format="svg")


def test_show_goes_through_ipython_display(seed_report: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown_objects: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown_objects.append(obj))
    result = show(seed_report, format="text")
    assert shown_objects == [result] and isinstance(result, ReportDisplay)
    assert result.format == "text"


def test_package_level_last_widget_is_the_same_function() -> None:
    import gradmagic

    assert gradmagic.last_widget is last_widget


@pytest.mark.parametrize("fmt", ["html", "text"])
def test_diagnosis_leads_every_rendering(fmt: str) -> None:
    """Issue 15: the explanation of a failed cell comes first in each MIME type."""
    from gradmagic.report import Diagnosis, GradReport
    from viz_builders import build_inplace

    rep = GradReport(diagnoses=[Diagnosis(**d) for d in build_inplace()["diagnoses"]])
    bundle = ReportDisplay(rep, format=fmt)._repr_mimebundle_()
    assert bundle["text/plain"].startswith("✗ Why it failed: b was modified in place")
    if fmt == "html":
        page = bundle["text/html"].split("</style>", 1)[1]
        assert page.lstrip().startswith('<div class="gradmagic-diagnoses"><div class="gradmagic-diagnosis ')
