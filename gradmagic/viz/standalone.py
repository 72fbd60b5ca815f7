"""The standalone ``--html`` report: one self-contained page, interactive from ``file://``.

For each report the page holds the static fragment (:func:`gradmagic.viz.html.render_html`,
readable without JavaScript and when printed) and the same front end as the notebook
widget (``static/graph.js``), driven by a small in-page model shim (``static/standalone.js``)
instead of a kernel. The data sits in ``<script type="application/json">`` elements; no
server, no network, no CDN.

Expanding a folded group needs a new layout; the page cannot run Python, so the layouts
for "each group alone expanded" and "all expanded" are computed here and inlined.

>>> page = render_standalone_html([])
>>> page.startswith("<!DOCTYPE html>") and "</html>" in page
True
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from gradmagic.viz.escape import esc
from gradmagic.viz.iterations import view_report
from gradmagic.viz.modules import default_expanded
from gradmagic.viz.widget import compact_report, widget_graph

__all__ = ["render_standalone_html", "inline_json"]

_STATIC = Path(__file__).resolve().parent.parent / "static"
#: folded groups up to which each one's "expanded alone" layout is inlined
MAX_SINGLE_EXPANSIONS = 12
#: characters written as ``\\uXXXX`` inside inline JSON: ``<`` (no ``</script>``), the JS
#: line separators and lone surrogates (not encodable as UTF-8)
_JSON_UNSAFE = re.compile("[<\u2028\u2029\ud800-\udfff]")


def inline_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``.

    Every ``<`` becomes ``\\u003c`` (valid JSON, parsed back to ``<``), so neither
    ``</script>`` nor ``<!--`` in user strings can end or confuse the element. Lone
    surrogates (a name made with ``globals()["\\ud800"]``) are written as JSON escapes
    too, so the page still encodes to UTF-8 and the browser gets the string unchanged.

    >>> inline_json({"code": "</script><!--"})
    '{"code": "\\\\u003c/script>\\\\u003c!--"}'
    >>> inline_json(["a\\ud800"]) == '["a' + chr(92) + 'ud800"]'
    True
    """
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _script_source(*names: str) -> str:
    """The front-end files as one inline module (they are ours: no ``</script`` inside)."""
    text = "\n".join((_STATIC / name).read_text(encoding="utf-8") for name in names)
    lowered = text.lower()
    if "</script" in lowered or "<!--" in lowered:
        raise ValueError("front-end source must not contain '</script' or '<!--' to be inlined")
    return text


def _layouts(report: Mapping[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    """Precomputed layouts keyed by the sorted expanded group ids ("*" = all expanded)."""
    if report.get("modules"):
        return _module_layouts(report, graph)
    groups = [g["id"] for g in graph["layout"].get("groups") or [] if g.get("folded")]
    if not groups:
        return {}
    out: dict[str, Any] = {}
    if len(groups) <= MAX_SINGLE_EXPANSIONS:
        for gid in groups:
            g = widget_graph(report, (gid,))
            out[gid] = {"layout": g["layout"], "labels": g["labels"]}
    g = widget_graph(report, tuple(groups))
    out["*"] = {"layout": g["layout"], "labels": g["labels"]}
    out[""] = {"layout": graph["layout"], "labels": graph["labels"]}
    return out


#: module boxes up to which the "opened from the default view" layout of each is inlined
MAX_MODULE_EXPANSIONS = 40


def _module_layouts(report: Mapping[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    """With module boxes: the default view, every depth of the depth control, each box
    opened from the default view (its enclosing boxes open too), each loop group opened,
    and everything open ("*"). Keys are the sorted open ids joined by ","; the page shows
    the nearest precomputed state for any other combination."""
    lay = graph["layout"]
    default = default_expanded(dict(report))
    levels = lay.get("levels") or []
    parent = {f"m{m['index']}": (None if m.get("parent") is None else f"m{m['parent']}")
              for m in report.get("modules") or []}
    states = [list(default), *([i for level in levels[:d] for i in level]
                               for d in range(len(levels) + 1))]
    for info in (lay.get("modules") or [])[:MAX_MODULE_EXPANSIONS]:
        chain, gid = [], info["id"]
        while gid is not None:
            chain.append(gid)
            gid = parent.get(gid)
        states.append(sorted(set(default) | set(chain)))
    loops = [g["id"] for g in lay.get("groups") or [] if g.get("kind") != "module"]
    states += [[*default, gid] for gid in loops[:MAX_SINGLE_EXPANSIONS]]
    out: dict[str, Any] = {}
    for state in states:
        key = ",".join(sorted(set(state)))
        if key not in out:
            g = widget_graph(report, sorted(set(state)))
            out[key] = {"layout": g["layout"], "labels": g["labels"]}
    every = sorted({*parent, *loops})
    g = widget_graph(report, every)
    out["*"] = out.get(",".join(every)) or {"layout": g["layout"], "labels": g["labels"]}
    return out


#: iterations of a training loop besides the default one whose views are inlined
MAX_ITERATIONS = 12


def _view_data(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the page needs to show one view report: its graph, precomputed layouts and the
    module boxes open at first."""
    graph = widget_graph(report)
    # no kernel will resend hidden nodes after an expand: keep every node in full
    graph["report"] = {**compact_report(report), "verdict": graph["report"].get("verdict")}
    data = {"graph": graph, "layouts": _layouts(report, graph)}
    if report.get("modules"):
        data["expanded"] = default_expanded(dict(report))
    return data


def _section(i: int, report: Mapping[str, Any]) -> str:
    from gradmagic.viz.html import render_html

    view = view_report(dict(report))
    data = _view_data(view)
    plan = view.get("iterations")
    if plan:  # a training loop: every kept iteration, for the selector (issue 13 item 3)
        shown = plan["shown"]
        others = [k for k in range(plan["count"]) if k != shown][-MAX_ITERATIONS:]
        data["iterations"] = {str(k): _view_data(view_report(dict(report), k)) for k in others}
    cell = (report.get("cell") or {}).get("number")
    heading = f"Report {i + 1}" + (f" · cell [{cell}]" if cell is not None else "")
    return (
        f'<section class="gradmagic-report-section" id="gradmagic-report-{i}">\n'
        f"<h2>{esc(heading)}</h2>\n"
        f'<div class="gradmagic-mount" id="gradmagic-mount-{i}"></div>\n'
        f'<details class="gradmagic-static" id="gradmagic-static-{i}" open>'
        f"<summary>Static report (no JavaScript needed)</summary>\n{render_html(dict(report))}\n</details>\n"
        f'<script type="application/json" class="gradmagic-data" data-mount="gradmagic-mount-{i}" '
        f'data-static="gradmagic-static-{i}">{inline_json(data)}</script>\n'
        "</section>"
    )


def render_standalone_html(report_dicts: Sequence[Mapping[str, Any]], title: str = "gradmagic report") -> str:
    """A complete HTML page showing every report interactively, with no network access.

    ``report_dicts`` are ``GradReport.to_dict()`` dicts (or reports, converted here).
    """
    dicts = [r if isinstance(r, Mapping) else r.to_dict() for r in report_dicts]
    sections = "\n".join(_section(i, r) for i, r in enumerate(dicts))
    empty = "" if dicts else "<p>No recorded cells.</p>"
    css = (_STATIC / "graph.css").read_text(encoding="utf-8")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>\n{css}\n</style>\n</head>\n"
        f'<body class="gradmagic-page">\n<h1>{esc(title)}</h1>\n{empty}{sections}\n'
        f'<script type="module">\n{_script_source("graph.js", "standalone.js")}\n</script>\n'
        "</body>\n</html>\n"
    )
