"""``GradWidget``: the interactive computation graph (anywidget).

The front end lives in ``gradmagic/static/graph.js`` and ``graph.css``; this module only
prepares the synced state. ``graph`` holds the report dict (``GradReport.to_dict()``,
schema 2) next to its layout (``gradmagic.viz.layout.layout``): the browser draws the
layout as given and never computes one of its own.

Synced traits
    ``graph``    ``{"report": report_dict, "layout": layout_dict, "labels": {id: lines}}``;
                 the report's ``diagnoses`` become the panel above the graph and the ring
                 around their nodes (``diagnosisPanel`` and ``markDiagnosedNodes`` in graph.js)
    ``selected`` node id (``""`` = nothing); a variable name set from Python is resolved
                 to its node, so ``w.selected = "y"`` works
    ``step``     step of the backward replay (``-1`` = no replay); clamped to the call's steps
    ``call``     which backward call the replay walks (index into ``backward_calls``)
    ``expanded`` ids of the open groups (loop groups the user opened, module boxes open:
                 the calls at depth 0 to begin with); changing it recomputes the layout
    ``iteration`` which iteration of a training loop is drawn (``-1`` = the last checked
                 one; ``graph.report.iterations`` lists them); changing it redraws the graph,
                 opens that iteration's default module boxes and starts its replay

Example::

    >>> from gradmagic.viz.widget import GradWidget
    >>> report = {"schema": 2, "nodes": [], "edges": [], "backward_calls": [], "leaves": []}
    >>> w = GradWidget(graph={"report": report, "layout": {"width": 0, "height": 0,
    ...     "direction": "TB", "nodes": {}, "edges": [], "groups": [], "hidden": []}})
    >>> w.step
    -1
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import anywidget
import traitlets

from gradmagic.viz.escape import no_lone_surrogates
from gradmagic.viz.facts import verdict
from gradmagic.viz.modules import default_expanded

__all__ = ["GradWidget", "widget_graph", "compact_report", "resolve_node"]

_STATIC = Path(__file__).resolve().parent.parent / "static"

#: significant digits kept for floats in the synced payload (display needs ~4, float32 ~7)
FLOAT_DIGITS = 7


#: node fields a folded (hidden) node keeps on the wire: enough to name it in the replay
_HIDDEN_KEEP = ("id", "kind", "name", "aliases", "op", "label", "shape", "dtype", "status",
                "requires_grad", "is_leaf")
_STATS = ("head", "min", "max", "mean")


def _slim(obj: Any, digits: int) -> Any:
    """Round floats to ``digits`` significant digits; a Value whose ``data`` is present
    loses ``head``/``min``/``max``/``mean`` (derivable from ``data``)."""
    if isinstance(obj, float):
        if obj == 0.0 or not math.isfinite(obj):
            return obj
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, str):
        return no_lone_surrogates(obj)
    if isinstance(obj, list):
        return [_slim(v, digits) for v in obj]
    if isinstance(obj, dict):
        drop = _STATS if "numel" in obj and obj.get("data") is not None else ()
        return {k: _slim(v, digits) for k, v in obj.items() if k not in drop}
    return obj


_OPTIONAL_LISTS = ("aliases", "formulas", "saved")


def _slim_node(node: Mapping[str, Any], hidden: bool) -> dict[str, Any]:
    keep = _HIDDEN_KEEP if hidden else node.keys()
    return {k: node[k] for k in keep if k in node and node[k] is not None
            and not (k in _OPTIONAL_LISTS and node[k] == [])}


def compact_report(
    report: Mapping[str, Any], hidden: Iterable[str] = (), digits: int = FLOAT_DIGITS
) -> dict[str, Any]:
    """The report dict as the widget receives it: the same schema, minus what it never reads.

    - floats rounded to ``digits`` significant digits (JSON writes float32 with 17);
    - a Value with ``data`` drops ``head`` and ``min/max/mean`` (the front end derives them);
    - ``checks`` is emptied (each node's ``status`` and ``max_abs_err`` carry the verdict);
    - ``modules`` is left out (no panel of the front end draws module calls yet);
    - ``grad_flow`` is left out (``widget_graph`` sends the chart's facts as ``flow``);
    - node fields that are ``None`` (and empty ``aliases``/``formulas``/``saved``) are left out;
    - nodes in ``hidden`` (inside a folded group) keep only what names them, and backward
      steps at them drop their values (expanding the group resends them).

    >>> rep = {"schema": 2, "checks": [{"node": "n0"}], "nodes": [{"id": "n0", "grad": None,
    ...        "value": {"numel": 1, "data": 0.30000001192092896, "head": [0.3], "min": 0.3}}]}
    >>> compact_report(rep)
    {'schema': 2, 'checks': [], 'nodes': [{'id': 'n0', 'value': {'numel': 1, 'data': 0.3}}]}
    """
    hidden = set(hidden)
    out = dict(report)
    if "checks" in out:
        out["checks"] = []
    out.pop("modules", None)
    out.pop("grad_flow", None)  # the chart's facts travel as ``graph["flow"]`` (flow_payload)
    if "nodes" in out:
        out["nodes"] = [_slim_node(n, n.get("id") in hidden) for n in out["nodes"] or []]
    if hidden and out.get("backward_calls"):
        out["backward_calls"] = [_slim_call(c, hidden) for c in out["backward_calls"]]
    return _slim(out, digits)


def _slim_call(call: Mapping[str, Any], hidden: set[str]) -> dict[str, Any]:
    """Steps at folded nodes keep their structure (what to highlight) but not their values."""
    if not call.get("steps"):
        return dict(call)
    steps = []
    for st in call["steps"]:
        if st.get("kind") == "node" and st.get("node") in hidden:
            st = {**st, "grad_output": None,
                  "contributions": [{**c, "value": None} for c in st.get("contributions") or []]}
        elif st.get("kind") == "hook" and st.get("node") in hidden:
            st = {**st, "before": None, "after": None}
        steps.append(st)
    return {**call, "steps": steps}


def widget_graph(
    report: Mapping[str, Any], expanded: Iterable[str] | None = None, max_nodes: int = 300,
    iteration: int | None = None,
) -> dict[str, Any]:
    """Build the synced ``graph`` value: the compacted report, its shared layout and the
    text of every visible box (the static SVG's own ``node_lines``/``group_lines``, so both
    views label nodes identically), and ``start_call``, the backward call a replay starts on.

    A training loop shows one iteration (``iteration``; ``None`` = the last checked one): the
    report is :func:`gradmagic.viz.iterations.view_report`'s, whose ``iterations`` entry
    the front end turns into its iteration selector.

    >>> g = widget_graph({"nodes": [{"id": "a", "kind": "leaf", "name": "x"}], "edges": []})
    >>> sorted(g), g["labels"]["a"][0]
    (['labels', 'layout', 'report', 'start_call'], ['title', 'x'])
    """
    from gradmagic.viz.iterations import start_call, view_report

    report = view_report(dict(report), iteration)
    from gradmagic.viz.flowchart import flow_payload
    from gradmagic.viz.labels import group_lines, node_lines, step_over_lines
    from gradmagic.viz.layout import layout  # the one layout shared with the SVG view

    lay = layout(dict(report), max_nodes=max_nodes,
                 expanded=None if expanded is None else tuple(expanded))
    visible = lay.get("nodes") or {}
    labels: dict[str, list[list[str]]] = {
        n["id"]: [list(line) for line in node_lines(n)]
        for n in report.get("nodes") or [] if n["id"] in visible
    }
    for group in lay.get("groups") or []:
        labels[group["id"]] = [list(line) for line in group_lines(group)]
    slim = compact_report(report, hidden=lay.get("hidden") or ())
    v = verdict(dict(report))
    slim["verdict"] = {"level": v["level"], "headline": v["headline"]}  # the views' one headline
    out = {"report": slim, "layout": lay, "labels": labels, "start_call": start_call(report)}
    step_over = step_over_lines(dict(report), lay.get("groups") or [])
    if step_over:  # the narration of ▶ over a collapsed module box (stepOver in graph.js)
        out["step_over"] = step_over
    flow = flow_payload(dict(report))  # the gradient-flow chart's facts (viz/flowchart.py)
    if flow is not None:
        out["flow"] = flow
    return out


def resolve_node(report: Mapping[str, Any], key: str) -> str:
    """Map a node id, variable name or alias to a node id (``""`` stays ``""``).

    A name bound several times resolves to its most recent node.

    >>> rep = {"nodes": [{"id": "n0", "name": "x", "aliases": ["x"]},
    ...                  {"id": "n3", "name": "y", "aliases": ["y", "out"]}]}
    >>> resolve_node(rep, "y"), resolve_node(rep, "out"), resolve_node(rep, "n0")
    ('n3', 'n3', 'n0')
    """
    if key == "":
        return ""
    nodes = report.get("nodes") or []
    if any(n.get("id") == key for n in nodes):
        return key
    for field in ("name", "aliases"):
        for node in reversed(nodes):
            value = node.get(field)
            if value == key or (isinstance(value, list) and key in value):
                return str(node["id"])
    names = sorted({n["name"] for n in nodes if n.get("name")})
    raise traitlets.TraitError(
        f"no node named {key!r} in this graph; known names: {', '.join(names) or '(none)'}"
    )


class GradWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """Interactive computation graph of one recorded cell.

    >>> GradWidget.from_report  # doctest: +ELLIPSIS
    <bound method GradWidget.from_report of <class '...GradWidget'>>
    """

    _esm = _STATIC / "graph.js"
    _css = _STATIC / "graph.css"

    graph = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    step = traitlets.Int(-1).tag(sync=True)
    call = traitlets.Int(0).tag(sync=True)
    expanded = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: which iteration of a training loop is drawn (-1 = the last checked one)
    iteration = traitlets.Int(-1).tag(sync=True)
    #: node budget of the layout before groups are folded (not synced)
    max_nodes = traitlets.Int(300)
    #: the uncompacted report (Python side only), kept to recompute the graph on expand
    _full_report: dict[str, Any] | None = None
    #: the ``expanded`` list the current ``graph`` was laid out with (Python side only)
    _shown_expanded: list[str] | None = None

    @classmethod
    def from_report(cls, report: Any, **kwargs: Any) -> "GradWidget":
        """Make a widget from a ``GradReport`` or its ``to_dict()`` dict."""
        from gradmagic.viz.iterations import view_report

        report_dict = report if isinstance(report, Mapping) else report.to_dict()
        max_nodes = int(kwargs.pop("max_nodes", 300))
        # module boxes open at first (depth 0) in the iteration shown
        opened = default_expanded(view_report(dict(report_dict)))
        graph = widget_graph(report_dict, opened, max_nodes=max_nodes)
        widget = cls(graph=graph, max_nodes=max_nodes, **kwargs)
        widget._full_report = dict(report_dict)
        widget._shown_expanded = opened
        widget.expanded = opened  # the graph above already shows it: no second layout
        widget.call = graph["start_call"]  # a call with steps: the step controls work at once
        return widget

    def _iteration_arg(self) -> int | None:
        return None if self.iteration < 0 else self.iteration

    # -- helpers -------------------------------------------------------------------
    @property
    def report(self) -> dict[str, Any]:
        """The report dict the widget shows."""
        return self.graph.get("report") or {}

    def _steps(self, call: int) -> list[Any]:
        calls = self.report.get("backward_calls") or []
        if 0 <= call < len(calls):
            return calls[call].get("steps") or []
        return []

    # -- validation ----------------------------------------------------------------
    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> str:
        return resolve_node(self.report, proposal["value"])

    @traitlets.validate("call")
    def _valid_call(self, proposal: Any) -> int:
        value = int(proposal["value"])
        n_calls = len(self.report.get("backward_calls") or [])
        if value != 0 and not 0 <= value < n_calls:
            raise traitlets.TraitError(f"call must be in 0..{max(n_calls - 1, 0)}, got {value}")
        return value

    @traitlets.validate("step")
    def _valid_step(self, proposal: Any) -> int:
        last = len(self._steps(self.call)) - 1
        return max(-1, min(int(proposal["value"]), last))

    # -- reactions -----------------------------------------------------------------
    @traitlets.observe("call")
    def _call_changed(self, change: Any) -> None:
        self.step = -1

    @traitlets.observe("expanded")
    def _expanded_changed(self, change: Any) -> None:
        if list(change["new"]) == self._shown_expanded:
            return
        self._shown_expanded = list(change["new"])
        full = self._full_report or self.report
        if full:
            self.graph = widget_graph(full, change["new"], self.max_nodes, self._iteration_arg())

    @traitlets.observe("iteration")
    def _iteration_changed(self, change: Any) -> None:
        from gradmagic.viz.iterations import view_report

        full = self._full_report or self.report
        if not full or not self.report.get("iterations"):
            return
        opened = default_expanded(view_report(dict(full), self._iteration_arg()))
        self._shown_expanded = opened
        graph = widget_graph(full, opened, self.max_nodes, self._iteration_arg())
        with self.hold_sync():
            self.graph = graph
            self.expanded = opened
            self.call = graph["start_call"]
            self.step = -1

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> Any:
        """The widget view plus a static ``text/html`` fallback (saved notebooks, GitHub).

        ``exclude=["text/html"]`` skips the fallback (a caller that renders it itself).
        """
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None or not self.report:
            return bundle
        data, metadata = bundle
        if "text/html" in (exclude or ()) or (include is not None and "text/html" not in include):
            return data, metadata
        try:
            from gradmagic.viz.html import render_html
        except ImportError:  # static view not installed: the widget alone still works
            return data, metadata
        return {**data, "text/html": render_html(self._full_report or self.report)}, metadata
