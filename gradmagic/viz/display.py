"""One MIME bundle per report: the widget view, static ``text/html`` and ``text/plain``.

``ReportDisplay`` is what the magic hands to IPython's ``display``. Front ends pick the
richest representation they can show: JupyterLab the widget, GitHub and nbconvert the
static HTML, a terminal the text. Rendering never raises into the user's cell: a failing
widget falls back to HTML, a failing HTML view to text, with a note saying so.

>>> rep = {"ok": True, "nodes": [], "edges": [], "leaves": [], "checks": []}
>>> sorted(ReportDisplay(rep, format="html")._repr_mimebundle_())
['text/html', 'text/plain']
>>> list(ReportDisplay(rep, format="text")._repr_mimebundle_())
['text/plain']
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

from gradmagic.viz.escape import clean_text, esc

FORMATS = ("auto", "widget", "html", "text")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

_last_widget: Any = None


def last_widget() -> Any:
    """The ``GradWidget`` most recently shown, or None (``last_widget().selected = "y"``)."""
    return _last_widget


def _report_dict(report: Any) -> dict[str, Any]:
    if isinstance(report, Mapping):
        return dict(report)
    return report.to_dict()


def _in_kernel() -> bool:
    """True inside a Jupyter kernel, where a widget front end may exist (not terminal IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _is_empty(report: dict[str, Any]) -> bool:
    from gradmagic.viz.text import is_empty

    return is_empty(report)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ReportDisplay:
    """Displayable wrapper of a ``GradReport`` (or its dict) in one of ``FORMATS``.

    ``format="auto"`` shows the widget inside a Jupyter kernel and the static views
    elsewhere; ``"widget"`` always tries the widget; ``"html"`` gives HTML and text;
    ``"text"`` text only.
    """

    def __init__(self, report: Any, format: str = "auto", max_nodes: int = 300) -> None:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        self.report = report
        self.format = format
        self.max_nodes = max_nodes
        self.widget: Any = None
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return self._text()

    def _dict(self) -> dict[str, Any] | None:
        try:
            return _report_dict(self.report)
        except Exception as exc:  # a broken report object must not break the cell
            self.notes.append(f"gradmagic could not read its report ({_describe(exc)}).")
            return None

    def _text(self) -> str:
        from gradmagic.viz.text import render_text

        report = self._dict()
        notes = "".join(f"({clean_text(n)})\n" for n in self.notes)
        if report is None:
            return notes or "gradmagic: no report.\n"
        try:
            return render_text(report, max_nodes=self.max_nodes) + notes
        except Exception as exc:
            return f"{notes}gradmagic could not render its text report ({_describe(exc)}).\n"

    def _html(self, report: dict[str, Any]) -> str | None:
        from gradmagic.viz.html import render_html

        try:
            return render_html(report, max_nodes=self.max_nodes)
        except Exception as exc:
            self.notes.append(f"gradmagic could not render its HTML report ({_describe(exc)}); "
                              "showing text instead.")
            return None

    def _widget_bundle(self) -> dict[str, Any] | None:
        global _last_widget
        try:
            from gradmagic.viz.widget import GradWidget

            widget = GradWidget.from_report(self._dict(), max_nodes=self.max_nodes)
            bundle = widget._repr_mimebundle_()
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            if not data or WIDGET_MIME not in data:
                raise RuntimeError("the widget produced no view")
        except Exception as exc:  # widget missing or broken: the static views still show
            self.notes.append(f"interactive view unavailable ({_describe(exc)}); "
                              "showing the static report.")
            return None
        self.widget = _last_widget = widget
        return {WIDGET_MIME: data[WIDGET_MIME]}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """``text/plain`` always; ``text/html`` unless text-only; the widget view when asked."""
        try:
            return self._bundle(include, exclude)
        except Exception as exc:  # last resort: never raise into the user's cell
            return {"text/plain": f"gradmagic could not show its report ({_describe(exc)})."}

    def _bundle(self, include: Any, exclude: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        report = self._dict()
        if report is not None and _is_empty(report):  # one line, not an empty widget
            bundle = {"text/plain": self._text()}
            if self.format != "text":
                bundle["text/html"] = (f'<p class="gradmagic-empty-note">'
                                       f'{esc(bundle["text/plain"].strip())}</p>')
            return bundle
        want_widget = self.format == "widget" or (self.format == "auto" and _in_kernel())
        if report is not None and want_widget:
            bundle.update(self._widget_bundle() or {})
        if report is not None and self.format != "text":
            page = self._html(report)
            if page is not None:
                bundle["text/html"] = page + "".join(
                    f'<p class="gradmagic-fallback-note">{esc(n)}</p>' for n in self.notes)
        bundle["text/plain"] = self._text()
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle


def show(report: Any, format: str = "auto", max_nodes: int = 300) -> ReportDisplay:
    """Display ``report`` in the current IPython front end and return the wrapper."""
    from IPython.display import display

    shown = ReportDisplay(report, format=format, max_nodes=max_nodes)
    try:
        display(shown)
    except Exception as exc:  # display itself failing must not break the cell either
        warnings.warn(f"gradmagic could not show its report: {_describe(exc)}", stacklevel=2)
    return shown
