"""Views of a gradmagic report: shared layout, static SVG/HTML, text, the MIME bundle, the widget.

Every view is a pure function of the report dict (``GradReport.to_dict()``, schema 2)::

    >>> from gradmagic.viz import render_text
    >>> rep = {"ok": True, "nodes": [], "edges": [], "leaves": [], "checks": []}
    >>> render_text(rep).splitlines()[0]
    'gradmagic · no tensors were recorded in this cell.'

Names are imported lazily, so importing one view does not import the others (nor anywidget).
"""
from __future__ import annotations

from gradmagic._lazy import lazy_attributes

_LAZY = {
    "layout": ("gradmagic.viz.layout", "layout"),
    "render_svg": ("gradmagic.viz.svg", "render_svg"),
    "render_html": ("gradmagic.viz.html", "render_html"),
    "render_text": ("gradmagic.viz.text", "render_text"),
    "ReportDisplay": ("gradmagic.viz.display", "ReportDisplay"),
    "show": ("gradmagic.viz.display", "show"),
    "last_widget": ("gradmagic.viz.display", "last_widget"),
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
