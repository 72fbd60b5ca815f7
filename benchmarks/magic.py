"""Benchmark of the ``%%grad`` magic and the static views (issues 4 and 13).

Run from the repository root::

    python3 benchmarks/magic.py                  # full run (~45 s)
    python3 benchmarks/magic.py --quick          # smoke run
    python3 benchmarks/magic.py --only SEED --json out.json
    python3 benchmarks/magic.py --only RESNET,RENDER  # issue 13: ResNet-18 views, Chromium

SEED   The seed notes' cells, in order, through a real ``InteractiveShell`` (``%load_ext
       gradmagic``), each run plain and under ``%%grad``; per cell, the time from cell start to
       the report object (``%%grad --quiet`` then ``last_report()``), to the HTML string
       (``+ to_dict()`` + ``gradmagic.viz.html.render_html``) and with the magic's own default
       display (captured by a ``CapturingDisplayPublisher``). Plain and magic sequences take
       turns on fresh namespaces; medians per cell. Target: ≤ 30 ms added per cell.
GRAPH  A 2,000-op graph (1,998 chained tanh/mul/add ops on 16 floats, then ``sum().backward()``,
       recorded by ``gradmagic.trace()``; a synthetic report dict of the same shape when the
       recorder is not importable): ``layout`` + ``render_svg`` ≤ 1 s with the default folding
       (unfolded reported too), and the HTML report ≤ 1 MB.
RESNET A ResNet-18 (torchvision's layers, written here in plain ``torch.nn``; CIFAR-size input
       2×3×32×32), recorded by ``trace()``: one forward + backward (~170 nodes), and
       ``RESNET_MICROBATCHES`` micro-batches through the same net with one backward of the summed
       loss (~1,000 nodes). Default view (collapsed by module): ``layout``, ``render_svg``, both
       ≤ 0.3 s (issue 13); also the widget's payload (``GradWidget.from_report``) and the layout
       with every module box open.
RENDER The widget's first render in headless Chromium (Playwright, Debian's Chromium, as
       tests/browser): ``static/graph.js`` on a page of its own, given exactly the state
       ``GradWidget.from_report`` syncs for each RESNET graph; from the ``render()`` call to the
       first frame painted after it ≤ 1 s (issue 13). ``JSON.parse`` of the state and the
       synchronous ``render()`` are shown too. Skipped with a note without Playwright/Chromium.
"""
from __future__ import annotations

import _harness as h  # first: pins BLAS threads before NumPy loads

import contextlib
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(h.REPO_ROOT / "tests"))  # the one list of the seed cells, shared with the tests
from seed_cells import SEED_SOURCES as SEED_CELLS  # noqa: E402

SEED_LIMIT_S = 0.030
GRAPH_OPS = 1998
GRAPH_LIMIT_S, HTML_LIMIT_BYTES = 1.0, 1_000_000
MODES = ("plain", "report", "html", "display")
RESNET_LIMIT_S, RENDER_LIMIT_S = 0.3, 1.0
RESNET_MICROBATCHES = 10  # ~1,000 nodes (one pass records ~170)


# ============================================================================ seed cells

class Shell:
    """A real ``InteractiveShell`` with gradmagic loaded (when it can be)."""

    def __init__(self) -> None:
        from IPython.core.displaypub import CapturingDisplayPublisher
        from IPython.core.interactiveshell import InteractiveShell
        self.ip = InteractiveShell.instance()
        self.capture = CapturingDisplayPublisher()
        self.ip.display_pub = self.capture
        self.problem: str | None = None
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.ip.run_line_magic("load_ext", "gradmagic")
        except Exception as exc:
            self.problem = f"%load_ext gradmagic failed: {type(exc).__name__}: {exc}"
        if self.problem is None and "grad" not in self.ip.magics_manager.magics["cell"]:
            self.problem = "%load_ext gradmagic did not register %%grad"
        gm, why = h.try_import("gradmagic")
        self.last_report = getattr(gm, "last_report", None) if gm else None
        html, why = h.try_import("gradmagic.viz.html")
        self.render_html = getattr(html, "render_html", None) if html else None
        self.html_problem = None if self.render_html else (why or "gradmagic.viz.html has no render_html")

    def fresh(self) -> None:
        self.ip.reset(new_session=False)
        self.capture.outputs.clear()

    def run(self, source: str) -> tuple[float, Any]:
        """Run one cell; ``(seconds, result)``. Output goes nowhere (it is not the point)."""
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            t0 = time.perf_counter()
            result = self.ip.run_cell(source, store_history=True)
            return time.perf_counter() - t0, result


def run_sequence(shell: Shell, mode: str) -> list[float]:
    """Per-cell seconds of the seed cells run in ``mode`` on a fresh namespace."""
    shell.fresh()
    times = []
    for i, cell in enumerate(SEED_CELLS):
        prefix = {"plain": "", "display": "%%grad\n"}.get(mode, "%%grad --quiet\n")
        elapsed, result = shell.run(prefix + cell)
        if not result.success:
            raise RuntimeError(f"seed cell {i} failed in mode {mode}: {result.error_in_exec!r}")
        if mode in ("report", "html"):
            t0 = time.perf_counter()
            report = shell.last_report()
            if report is None:
                raise RuntimeError(f"no report after seed cell {i}")
            if mode == "html":
                shell.render_html(report.to_dict())
            elapsed += time.perf_counter() - t0
        elif mode == "display" and not any("text/html" in o["data"] for o in shell.capture.outputs):
            raise RuntimeError(f"%%grad displayed no text/html for seed cell {i}")
        times.append(elapsed)
        shell.capture.outputs.clear()
    return times


def check_reports(shell: Shell) -> list[str]:
    """Run the seed cells under ``%%grad --quiet`` once; problems of their reports."""
    shell.fresh()
    problems = []
    for i, cell in enumerate(SEED_CELLS):
        _, result = shell.run("%%grad --quiet\n" + cell)
        report = shell.last_report()
        if not result.success:
            problems.append(f"cell {i}: raised {result.error_in_exec!r}")
        elif report is None:
            problems.append(f"cell {i}: no report")
        elif not report.ok or report.unsupported:
            problems.append(f"cell {i}: ok={report.ok} unsupported={list(report.unsupported)}")
    return problems


def seed_modes(shell: Shell, result: dict[str, Any]) -> list[str]:
    """The modes that can run here, after a checked, warmed-up first pass of each."""
    modes = ["plain"]
    if shell.problem is None and shell.last_report is not None:
        try:
            result["report_problems"] = check_reports(shell)
        except Exception as exc:
            result["report_problems"] = [f"{type(exc).__name__}: {exc}"]
        modes += ["report", "display"] + (["html"] if shell.render_html else [])
        if shell.html_problem:
            result["notes"].append(f"HTML column skipped: {shell.html_problem}")
    else:
        result["notes"].append(f"%%grad skipped: {shell.problem or 'gradmagic.last_report missing'}")
    for mode in list(modes):  # warm-up (imports, first-call caches); a failing mode is dropped
        try:
            run_sequence(shell, mode)
        except Exception as exc:
            modes.remove(mode)
            result.setdefault("report_problems", []).append(f"{mode}: {type(exc).__name__}: {exc}")
    return modes


def bench_seed(repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {"workload": "SEED", "limit_s": SEED_LIMIT_S, "notes": []}
    shell = Shell()
    modes = seed_modes(shell, result)
    if "plain" not in modes:
        result.update(per_cell_s={}, added_s={}, worst_added_s={}, judged_on=None, verdict="n/a")
        return result
    samples: dict[str, list[list[float]]] = {m: [] for m in modes}
    for r in range(repeats):
        for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
            samples[mode].append(run_sequence(shell, mode))
    per_cell = {m: [statistics.median(col) for col in zip(*runs)] for m, runs in samples.items()}
    result["per_cell_s"] = per_cell
    result["added_s"] = {m: [t - p for t, p in zip(v, per_cell["plain"])]
                         for m, v in per_cell.items() if m != "plain"}
    worst = {m: max(v) for m, v in result["added_s"].items()}
    result["worst_added_s"] = worst
    judged = "html" if "html" in worst else ("report" if "report" in worst else None)
    result["judged_on"] = judged
    result["verdict"] = "n/a" if judged is None else (
        "PASS" if max(worst[judged], worst.get("display", 0.0)) <= SEED_LIMIT_S else "MISS")
    return result


# ============================================================================ 2,000-node graph

def traced_chain_report(n_ops: int) -> dict[str, Any]:
    """A real report dict: ``n_ops`` chained tanh/mul/add ops recorded by ``gradmagic.trace()``."""
    import torch

    import gradmagic
    torch.manual_seed(0)
    x = torch.rand(16, requires_grad=True)
    w = torch.rand(16, requires_grad=True)
    with gradmagic.trace(namespace={"x": x, "w": w}) as report:
        z = x
        for i in range(n_ops):
            k = i % 3
            z = torch.tanh(z) if k == 0 else (z * w if k == 1 else z + x)
        z.sum().backward()
    return report.to_dict()


def _value(arr: Any) -> dict[str, Any]:
    flat = [float(v) for v in arr.ravel()]
    return {"shape": list(arr.shape), "dtype": str(arr.dtype), "numel": arr.size,
            "data": arr.tolist() if arr.size <= 64 else None, "head": flat[:8],
            "min": min(flat), "max": max(flat), "mean": sum(flat) / len(flat)}


def synthetic_chain_report(n_ops: int) -> dict[str, Any]:
    """A schema-1 report dict of the same graph, built by hand (when the recorder is missing)."""
    import numpy as np
    rng = np.random.default_rng(0)
    arr = lambda: rng.standard_normal(16).astype(np.float32)  # noqa: E731
    kinds = [("tanh", "TanhBackward0", ["∂/∂a = g·(1 − ans²)"]),
             ("mul", "MulBackward0", ["∂/∂a = g·b", "∂/∂b = g·a"]),
             ("add", "AddBackward0", ["∂/∂a = g", "∂/∂b = g"])]

    def node(i: int, kind: str, name: str | None, op: tuple | None) -> dict[str, Any]:
        return {"id": f"n{i}", "kind": kind, "name": name, "aliases": [name] if name else [],
                "op": op[0] if op else None, "label": op[1] if op else None,
                "torch_op": f"torch.{op[0]}" if op else None, "formulas": op[2] if op else [],
                "shape": [16], "dtype": "float32", "requires_grad": True, "is_leaf": op is None,
                "value": _value(arr()), "grad": _value(arr()) if op is None else None,
                "torch_grad": _value(arr()) if op is None else None,
                "saved": [{"name": "self", "shape": [16], "dtype": "float32", "bytes": 64}] if op else [],
                "saved_bytes": 64 if op else 0,
                "source": {"cell": 1, "line": 4, "code": "z = torch.tanh(z) if k == 0 else ..."},
                "status": "agree", "max_abs_err": 0.0}

    nodes = [node(0, "leaf", "x", None), node(1, "leaf", "w", None)]
    edges, prev = [], "n0"
    for i in range(n_ops):
        op = kinds[i % 3]
        nid = f"n{i + 2}"
        nodes.append(node(i + 2, "op", "z" if i == n_ops - 1 else None, op))
        edges.append({"source": prev, "target": nid, "input": 0})
        if i % 3:
            edges.append({"source": "n1" if i % 3 == 1 else "n0", "target": nid, "input": 1})
        prev = nid
    total = node(n_ops + 2, "op", None, ("sum", "SumBackward0", ["∂/∂a = g·1"]))
    nodes.append(total)
    edges.append({"source": prev, "target": total["id"], "input": 0})
    steps = [{"k": k, "kind": "node", "node": n["id"], "grad_output": _value(arr()),
              "contributions": [{"input": 0, "to": "n0", "formula": "∂/∂a = g", "value": _value(arr())}]}
             for k, n in enumerate(reversed(nodes[2:]))]
    leaves = [{"id": f"n{i}", "name": nm, "shape": [16], "dtype": "float32", "grad": arr().tolist(),
               "engine_grad": arr().tolist(), "status": "agree", "accumulated_without_clearing": False,
               "events": [{"kind": "backward", "call": 0, "cell": 1, "line": 5, "code": "z.sum().backward()",
                           "before": None, "after": _value(arr()), "added": _value(arr())}],
               "events_dropped": 0} for i, nm in enumerate(("x", "w"))]
    checks = [{"node": n["id"], "what": "value", "status": "agree", "max_abs_err": 0.0, "max_rel_err": 0.0,
               "rtol": 1.3e-6, "atol": 1e-5, "dtype": "float32", "detail": None} for n in nodes]
    return {"schema": 1, "ok": True, "unsupported": [], "first_divergence": None, "mismatches": [],
            "nodes": nodes, "edges": edges,
            "backward_calls": [{"index": 0, "kind": "backward", "root": total["id"],
                                "source": {"cell": 1, "line": 5, "code": "z.sum().backward()"},
                                "gradient": None, "retain_graph": False, "create_graph": False,
                                "status": "agree", "steps": steps}],
            "leaves": leaves, "checks": checks, "notes": [], "cell": {"number": 1, "source": "..."},
            "error": None, "stats": {"nodes": len(nodes), "ops": n_ops + 1, "saved_bytes": 64 * n_ops,
                                     "elapsed_ms": 0.0}}


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def chain_report(result: dict[str, Any]) -> dict[str, Any]:
    """The 2,000-op report dict: recorded by ``trace()`` when possible, else synthetic."""
    recorder, why = h.try_import("gradmagic.recorder")
    if recorder is not None and hasattr(recorder, "trace"):
        try:
            result["record_s"], report = _median_time(lambda: traced_chain_report(GRAPH_OPS), 1)
            result["source"] = "gradmagic.trace()"
            return report
        except Exception as exc:
            result["notes"].append(f"recording failed ({type(exc).__name__}: {exc}); synthetic report used")
    else:
        result["notes"].append(f"recorder not importable ({why or 'no trace()'}); synthetic report used")
    result["source"] = "synthetic"
    return synthetic_chain_report(GRAPH_OPS)


def time_views(report: dict[str, Any], result: dict[str, Any], repeats: int) -> None:
    """Layout + SVG (folded by default, and unfolded) and the HTML report: times and sizes."""
    layout_mod, why_l = h.try_import("gradmagic.viz.layout")
    svg_mod, why_s = h.try_import("gradmagic.viz.svg")
    html_mod, why_h = h.try_import("gradmagic.viz.html")
    if layout_mod and svg_mod and hasattr(layout_mod, "layout") and hasattr(svg_mod, "render_svg"):
        def layout_svg(**kw: Any) -> int:
            return len(svg_mod.render_svg(report, layout_mod.layout(report, **kw)).encode("utf-8"))
        result["layout_svg_s"], result["svg_bytes"] = _median_time(layout_svg, repeats)
        result["layout_svg_unfolded_s"], result["svg_unfolded_bytes"] = _median_time(
            lambda: layout_svg(max_nodes=10 * len(report["nodes"])), max(1, repeats // 2))
    else:
        result["notes"].append(f"layout/SVG skipped: {why_l or why_s or 'layout() or render_svg() missing'}")
    if html_mod and hasattr(html_mod, "render_html"):
        result["html_s"], html = _median_time(lambda: html_mod.render_html(report), repeats)
        result["html_bytes"] = len(html.encode("utf-8"))
    else:
        result["notes"].append(f"HTML skipped: {why_h or 'render_html() missing'}")


def bench_graph(repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {"workload": "GRAPH", "limit_s": GRAPH_LIMIT_S,
                              "html_limit_bytes": HTML_LIMIT_BYTES, "notes": []}
    report = chain_report(result)
    result["nodes"] = len(report["nodes"])
    time_views(report, result, repeats)
    verdicts = []
    if "layout_svg_s" in result:
        verdicts.append(result["layout_svg_s"] <= GRAPH_LIMIT_S)
    if "html_bytes" in result:
        verdicts.append(result["html_bytes"] <= HTML_LIMIT_BYTES)
    result["verdict"] = "n/a" if not verdicts else ("PASS" if all(verdicts) else "MISS")
    return result


# ============================================================================ ResNet-18 (issue 13)

def resnet18(num_classes: int = 10) -> Any:
    """torchvision's ResNet-18 (BasicBlock ×2 per stage, 64-128-256-512), in plain ``torch.nn``.

    The module paths are torchvision's (``layer2.0.downsample.0``), so the boxes read as there.
    """
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
            for i, (cin, cout, stride) in enumerate(widths, 1):
                setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride),
                                                         BasicBlock(cout, cout, 1)))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18()


def traced_resnet_report(microbatches: int, batch: int = 2, size: int = 32) -> dict[str, Any]:
    """A recorded ResNet-18 cell: ``microbatches`` forward passes of ``batch`` images, the
    summed cross-entropy, one ``backward()``. Raises when the report is not ``ok``."""
    import torch
    from torch import nn

    import gradmagic
    torch.manual_seed(0)
    net = resnet18()
    images = torch.randn(microbatches, batch, 3, size, size)
    labels = torch.arange(batch) % 10
    with gradmagic.trace(namespace={"net": net, "images": images, "labels": labels}) as report:
        loss = sum(nn.functional.cross_entropy(net(xb), labels) for xb in images)
        loss.backward()
    data = report.to_dict()
    if not data.get("ok") or not data.get("modules"):
        raise RuntimeError(f"ResNet-18 report: ok={data.get('ok')}, {len(data.get('modules') or [])} "
                           f"module calls, mismatches {data.get('mismatches', [])[:2]}")
    return data


def resnet_reports(quick: bool, result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, report dict)]``: one pass, and the micro-batched ~1,000-node graph."""
    k = 3 if quick else RESNET_MICROBATCHES
    out = []
    for name, mb in (("1 pass", 1), (f"×{k} micro-batches", k)):
        t0 = time.perf_counter()
        out.append((name, traced_resnet_report(mb)))
        result.setdefault("record_s", {})[name] = time.perf_counter() - t0
    return out


def _drawn(lay: dict[str, Any]) -> tuple[int, int]:
    """(visible node boxes, collapsed group boxes) of a layout."""
    return len(lay.get("nodes") or {}), sum(1 for g in lay.get("groups") or [] if g.get("folded"))


def time_resnet_views(name: str, report: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Medians over interleaved turns: layout, SVG, both; the widget's payload; all boxes open."""
    from gradmagic.viz.layout import layout
    from gradmagic.viz.svg import render_svg
    from gradmagic.viz.widget import GradWidget

    every = [f"m{m['index']}" for m in report["modules"]]
    lay = layout(report)
    svg = render_svg(report, lay)
    row: dict[str, Any] = {"graph": name, "nodes": len(report["nodes"]), "module_calls": len(every),
                           "drawn": _drawn(lay), "svg_bytes": len(svg.encode("utf-8"))}
    if not any(g.get("kind") == "module" and g.get("folded") for g in lay.get("groups") or []):
        raise RuntimeError(f"{name}: the default view shows no collapsed module box")

    def timed(fn: Callable[[], Any]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return run

    runs = {"layout": timed(lambda: layout(report)),
            "svg": timed(lambda: render_svg(report, lay)),
            "layout_svg": timed(lambda: render_svg(report, layout(report))),
            "widget": timed(lambda: GradWidget.from_report(report)),
            "all_open": timed(lambda: layout(report, expanded=every))}
    timings = h.time_turns(runs, repeats)
    row["median_s"] = {k: t.median_s for k, t in timings.items()}
    row["drawn_all_open"] = _drawn(layout(report, expanded=every))
    row["ratio_to_limit"] = row["median_s"]["layout_svg"] / RESNET_LIMIT_S
    return row


def bench_resnet(repeats: int, reports: list[tuple[str, dict[str, Any]]] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"workload": "RESNET", "limit_s": RESNET_LIMIT_S, "notes": [], "rows": []}
    if reports is None:
        result["verdict"] = "n/a"
        return result
    for name, report in reports:
        result["rows"].append(time_resnet_views(name, report, repeats))
    big = result["rows"][-1]  # judged on the ~1,000-node graph
    result["judged_on"] = big["graph"]
    result["verdict"] = "PASS" if big["median_s"]["layout_svg"] <= RESNET_LIMIT_S else "MISS"
    return result


# ---------------------------------------------------------------------------- first render

_RENDER_BOOT = """
const state = JSON.parse(document.getElementById("gm-state").textContent);
window.__gm = {};
const t0 = performance.now();
const parsed = JSON.parse(document.getElementById("gm-state-copy").textContent);
window.__gm.parse = performance.now() - t0;
const listeners = new Map();
const model = {
  get: (name) => state[name],
  set(name, value) { state[name] = value; (listeners.get(`change:${name}`) || []).forEach((cb) => cb()); },
  on(event, cb) { if (!listeners.has(event)) listeners.set(event, []); listeners.get(event).push(cb); },
  off(event, cb) { const l = listeners.get(event) || []; const i = l.indexOf(cb); if (i >= 0) l.splice(i, 1); },
  save_changes() {},
};
void parsed;
const el = document.getElementById("gm-mount");
const start = performance.now();
render({ model, el });
window.__gm.render = performance.now() - start;
requestAnimationFrame(() => setTimeout(() => {
  window.__gm.painted = performance.now() - start;
  window.__gm.nodes = el.querySelectorAll("g.gradmagic-node").length;
  window.__gm.boxes = el.querySelectorAll("g.gradmagic-group.gradmagic-folded").length;
  window.__gm.done = true;
}, 0));
"""


def render_page(state: dict[str, Any]) -> str:
    """A page holding only the widget's front end (graph.js, graph.css) and one synced state."""
    from gradmagic.viz.standalone import inline_json

    static = h.REPO_ROOT / "gradmagic" / "static"
    js = (static / "graph.js").read_text(encoding="utf-8")
    css = (static / "graph.css").read_text(encoding="utf-8")
    data = inline_json(state)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>" + css + "</style></head>"
            "<body><div id='gm-mount' style='width:1100px'></div>"
            f"<script type='application/json' id='gm-state'>{data}</script>"
            f"<script type='application/json' id='gm-state-copy'>{data}</script>"
            f"<script type='module'>\n{js}\n{_RENDER_BOOT}\n</script></body></html>")


def widget_state(report: dict[str, Any]) -> dict[str, Any]:
    """The synced traits of ``GradWidget.from_report(report)``: what the kernel sends."""
    import json

    from gradmagic.viz.widget import GradWidget

    state = GradWidget.from_report(report).get_state()
    return json.loads(json.dumps({k: v for k, v in state.items() if not k.startswith("_")}))


def bench_render(repeats: int, reports: list[tuple[str, dict[str, Any]]] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"workload": "RENDER", "limit_s": RENDER_LIMIT_S, "notes": [], "rows": []}
    sync_api, why = h.try_import("playwright.sync_api")
    sys.path.insert(0, str(h.REPO_ROOT / "tests" / "browser"))
    helpers, why_h = h.try_import("browser_helpers")
    if reports is None or sync_api is None or helpers is None:
        result["notes"].append(f"skipped: {why or why_h or 'no ResNet-18 report'}")
        result["verdict"] = "n/a"
        return result
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix="gradmagic-render-"))
    pages = []
    for i, (name, report) in enumerate(reports):
        state = widget_state(report)
        path = folder / f"render-{i}.html"
        path.write_text(render_page(state), encoding="utf-8")
        lay = state["graph"]["layout"]
        pages.append((name, path, _drawn(lay), len(path.read_bytes())))
    with sync_api.sync_playwright() as pw:
        try:
            browser = helpers.launch_chromium(pw)
        except Exception as exc:
            result["notes"].append(f"skipped: {type(exc).__name__}: {exc}")
            result["verdict"] = "n/a"
            return result
        samples: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in pages}
        for r in range(repeats + 1):  # the first turn warms Chromium up and is not counted
            for name, path, drawn, _ in pages[r % len(pages):] + pages[:r % len(pages)]:
                sample = _render_once(browser, path, drawn, name)
                if r:
                    samples[name].append(sample)
        browser.close()
    for name, path, drawn, size in pages:
        med = {k: statistics.median(s[k] for s in samples[name]) / 1e3
               for k in ("parse", "render", "painted", "load")}
        result["rows"].append({"graph": name, "drawn": drawn, "page_bytes": size, "median_s": med,
                               "ratio_to_limit": med["painted"] / RENDER_LIMIT_S})
    worst = max(row["median_s"]["painted"] for row in result["rows"])
    result["verdict"] = "PASS" if worst <= RENDER_LIMIT_S else "MISS"
    return result


def _render_once(browser: Any, path: Path, drawn: tuple[int, int], name: str) -> dict[str, float]:
    """One fresh page: times in ms; checks that every box of the layout was drawn."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        t0 = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("window.__gm && window.__gm.done === true", timeout=60_000)
        load = (time.perf_counter() - t0) * 1e3
        got = page.evaluate("window.__gm")
    finally:
        context.close()
    if errors:
        raise RuntimeError(f"{name}: the page raised {errors[:2]}")
    if (got["nodes"], got["boxes"]) != drawn:
        raise RuntimeError(f"{name}: drew {got['nodes']} nodes and {got['boxes']} collapsed boxes, "
                           f"the layout has {drawn} (nodes, collapsed groups)")
    return {"parse": got["parse"], "render": got["render"], "painted": got["painted"], "load": load}


# ============================================================================ main

def _kb(r: dict[str, Any], key: str) -> str:
    return f"{r[key] / 1e3:.0f} kB" if key in r else "—"


def print_resnet(r: dict[str, Any]) -> None:
    if not r["rows"]:
        print("RESNET: no timings")
        return
    recorded = ", ".join(f"{name} in {h.fmt_time(t)}" for name, t in r.get("record_s", {}).items())
    print(f"RESNET: ResNet-18, input 2×3×32×32, recorded by trace() ({recorded}); default view "
          f"(collapsed by module), medians")
    rows = []
    for row in r["rows"]:
        m = row["median_s"]
        rows.append([row["graph"], row["nodes"], f"{row['drawn'][0]} + {row['drawn'][1]}",
                     h.fmt_time(m["layout"]), h.fmt_time(m["svg"]), h.fmt_time(m["layout_svg"]),
                     h.fmt_ratio(row["ratio_to_limit"]), h.fmt_time(m["widget"]),
                     f"{h.fmt_time(m['all_open'])} ({row['drawn_all_open'][0]} + {row['drawn_all_open'][1]})",
                     f"{row['svg_bytes'] / 1e3:.0f} kB"])
    print(h.format_table(["graph", "nodes", "drawn (nodes + boxes)", "layout", "SVG", "layout + SVG",
                          f"÷ {RESNET_LIMIT_S} s", "widget payload", "layout, all boxes open", "SVG size"],
                         rows))
    print(f"RESNET verdict (layout + SVG of the {r.get('judged_on')} graph ≤ {RESNET_LIMIT_S} s): "
          f"{r['verdict']}")


def print_render(r: dict[str, Any]) -> None:
    if not r["rows"]:
        print(f"RENDER: no timings; verdict {r['verdict']}")
        return
    print("RENDER: the widget's first render in headless Chromium (graph.js given "
          "GradWidget.from_report's synced state), medians over fresh pages")
    rows = []
    for row in r["rows"]:
        m = row["median_s"]
        rows.append([row["graph"], f"{row['drawn'][0]} + {row['drawn'][1]}", f"{row['page_bytes'] / 1e3:.0f} kB",
                     h.fmt_time(m["parse"]), h.fmt_time(m["render"]), h.fmt_time(m["painted"]),
                     h.fmt_ratio(row["ratio_to_limit"]), h.fmt_time(m["load"])])
    print(h.format_table(["graph", "drawn (nodes + boxes)", "state", "JSON.parse", "render()",
                          "render → first frame", f"÷ {RENDER_LIMIT_S:.0f} s", "page open → frame"], rows))
    print(f"RENDER verdict (render → first frame ≤ {RENDER_LIMIT_S:.0f} s): {r['verdict']}")


def print_tables(results: list[dict[str, Any]], info: dict[str, Any]) -> None:
    print(f"\ngradmagic magic/views benchmark · {h.describe_machine(info)}")
    for r in results:
        for note in r.get("notes", []):
            print(f"  note: {note}")
        if r["workload"] == "SEED" and not r["per_cell_s"]:
            print("SEED: no timings (" + "; ".join(r.get("report_problems", [])) + ")")
        elif r["workload"] == "SEED":
            per_cell, added = r["per_cell_s"], r["added_s"]
            headers = ["cell", "first line", "plain"] + [f"+{m}" for m in MODES[1:] if m in added]
            rows = []
            for i, cell in enumerate(SEED_CELLS):
                first = cell.splitlines()[0].split(" #")[0][:34]
                rows.append([i, first, h.fmt_time(per_cell["plain"][i]),
                             *(f"+{added[m][i] * 1e3:.1f} ms" for m in MODES[1:] if m in added)])
            print(h.format_table(headers, rows))
            worst = ", ".join(f"{m} +{v * 1e3:.1f} ms" for m, v in r["worst_added_s"].items())
            print(f"SEED worst added per cell: {worst or '—'} (target ≤ {SEED_LIMIT_S * 1e3:.0f} ms, "
                  f"judged on {r['judged_on']} and display): {r['verdict']}")
            if r.get("report_problems"):
                print("SEED report problems: " + "; ".join(r["report_problems"][:5]))
        elif r["workload"] == "RESNET":
            print_resnet(r)
        elif r["workload"] == "RENDER":
            print_render(r)
        else:
            rows = [["record (trace + to_dict)", h.fmt_time(r.get("record_s")), "", ""],
                    ["layout + SVG (default folding)", h.fmt_time(r.get("layout_svg_s")),
                     f"≤ {GRAPH_LIMIT_S:.0f} s", _kb(r, "svg_bytes")],
                    ["layout + SVG (unfolded)", h.fmt_time(r.get("layout_svg_unfolded_s")), "",
                     _kb(r, "svg_unfolded_bytes")],
                    ["render_html", h.fmt_time(r.get("html_s")), f"≤ {HTML_LIMIT_BYTES / 1e6:.0f} MB",
                     _kb(r, "html_bytes")]]
            print(f"GRAPH: {r['nodes']} nodes ({r['source']})")
            print(h.format_table(["step", "time", "target", "size"], rows))
            print(f"GRAPH verdict: {r['verdict']}")
        print()


def main(argv: list[str] | None = None) -> int:
    args = h.make_parser(__doc__.split("\n")[0]).parse_args(argv)
    import torch  # noqa: F401  (before limit_threads, so torch is pinned too)
    notes = h.limit_threads()
    repeats = args.repeats or (2 if args.quick else 9)
    chosen = h.selected(args.only, ["SEED", "GRAPH", "RESNET", "RENDER"])
    results = []
    if "SEED" in chosen:
        print("running SEED ...", file=sys.stderr, flush=True)
        results.append(bench_seed(repeats))
    if "GRAPH" in chosen:
        print("running GRAPH ...", file=sys.stderr, flush=True)
        results.append(bench_graph(max(1, repeats // 2) if args.quick else 5))
    if "RESNET" in chosen or "RENDER" in chosen:
        print("recording ResNet-18 ...", file=sys.stderr, flush=True)
        record: dict[str, Any] = {"notes": []}
        try:
            reports = resnet_reports(args.quick, record)
        except Exception as exc:
            reports = None
            record["notes"].append(f"ResNet-18 not recorded: {type(exc).__name__}: {exc}")
        if "RESNET" in chosen:
            print("running RESNET ...", file=sys.stderr, flush=True)
            res = bench_resnet(2 if args.quick else 7, reports)
            res["notes"] += record["notes"]
            res["record_s"] = record.get("record_s", {})
            results.append(res)
        if "RENDER" in chosen:
            print("running RENDER ...", file=sys.stderr, flush=True)
            res = bench_render(2 if args.quick else 7, reports)
            res["notes"] += record["notes"]
            results.append(res)
    info = h.machine_info(notes)
    print_tables(results, info)
    h.write_json(args.json, {"benchmark": "magic", "machine": info, "quick": args.quick,
                             "repeats": repeats, "results": results})
    broken = any(r["workload"] in ("RESNET", "RENDER") and r["verdict"] == "n/a" and
                 any(n.startswith("ResNet-18 not recorded") for n in r["notes"]) for r in results)
    return 1 if broken or any(r.get("report_problems") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
