"""Benchmark of the ``%%grad`` magic and the static views (issue 4).

Run from the repository root::

    python3 benchmarks/magic.py                  # full run (~30 s)
    python3 benchmarks/magic.py --quick          # smoke run
    python3 benchmarks/magic.py --only SEED --json out.json

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
"""
from __future__ import annotations

import _harness as h  # first: pins BLAS threads before NumPy loads

import contextlib
import io
import statistics
import sys
import time
from typing import Any, Callable

sys.path.insert(0, str(h.REPO_ROOT / "tests"))  # the one list of the seed cells, shared with the tests
from seed_cells import SEED_SOURCES as SEED_CELLS  # noqa: E402

SEED_LIMIT_S = 0.030
GRAPH_OPS = 1998
GRAPH_LIMIT_S, HTML_LIMIT_BYTES = 1.0, 1_000_000
MODES = ("plain", "report", "html", "display")


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


# ============================================================================ main

def _kb(r: dict[str, Any], key: str) -> str:
    return f"{r[key] / 1e3:.0f} kB" if key in r else "—"


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
    chosen = h.selected(args.only, ["SEED", "GRAPH"])
    results = []
    if "SEED" in chosen:
        print("running SEED ...", file=sys.stderr, flush=True)
        results.append(bench_seed(repeats))
    if "GRAPH" in chosen:
        print("running GRAPH ...", file=sys.stderr, flush=True)
        results.append(bench_graph(max(1, repeats // 2) if args.quick else 5))
    info = h.machine_info(notes)
    print_tables(results, info)
    h.write_json(args.json, {"benchmark": "magic", "machine": info, "quick": args.quick,
                             "repeats": repeats, "results": results})
    return 1 if any(r.get("report_problems") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
