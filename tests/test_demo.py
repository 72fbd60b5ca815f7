"""demo.ipynb run headless by nbclient in a real kernel: no errors, every report ok.

After each ``%%grad`` cell, a check runs in the same kernel (through the nbclient client,
not as a cell of the demo) and reads ``gradmagic.last_report()``.
"""
from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from seed_cells import SEED_SOURCES
from shell_helpers import REPO

DEMO = REPO / "demo.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
CHECK = (
    "(lambda r: print('GRADMAGIC-CHECK ' + __import__('json').dumps({k: r[k] for k in "
    "('ok', 'cell', 'error', 'mismatches', 'unsupported', 'leaves', 'nodes', 'diagnoses')})))"
    "(__import__('gradmagic').last_report().to_dict())"
)


def code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def run_extra(client, nb, source, **kwargs):
    """Run a cell that is not part of the demo in the same kernel; return it with its outputs."""
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1, **kwargs)
    finally:
        nb.cells.pop()
    return cell


def test_demo_is_committed_clean_and_starts_with_the_seed():
    nb = nbformat.read(DEMO, as_version=4)
    nbformat.validate(nb)
    cells = [c for _, c in code_cells(nb)]
    assert all(c.outputs == [] and c.execution_count is None for c in cells)
    assert cells[0].source == "import torch\n%load_ext gradmagic"
    assert [c.source for c in cells[1:6]] == ["%%grad\n" + source for source in SEED_SOURCES[:5]]
    assert all(c.source.startswith("%%grad\n") for c in cells[1:])


@pytest.fixture(scope="module")
def kernel_run():
    """Run the demo in a kernel (cwd = repo root), probing ``last_report()`` after each
    ``%%grad`` cell; then, in the same kernel, ``%grad on|off`` cells and a failing cell."""
    nb = nbformat.read(DEMO, as_version=4)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}})
    run = {"checks": [], "demo_cells": code_cells(nb)}
    with client.setup_kernel(env=env, cwd=str(REPO)):
        for index, cell in run["demo_cells"]:
            client.execute_cell(cell, index)  # raises CellExecutionError on any error
            if not cell.source.startswith("%%grad"):
                continue
            probe = run_extra(client, nb, CHECK, store_history=False)
            stdout = "".join(o.text for o in probe.outputs if o.output_type == "stream" and o.name == "stdout")
            [line] = [ln for ln in stdout.splitlines() if ln.startswith("GRADMAGIC-CHECK ")]
            run["checks"].append((cell, json.loads(line.removeprefix("GRADMAGIC-CHECK "))))
        run["auto"] = [run_extra(client, nb, src) for src in (
            "%grad on", "w2 = torch.ones(2, requires_grad=True)\nw2.sum().backward()\nw2.grad",
            "plain = 1 + 1\nplain", "%grad off", "w2 * 1")]
        failing = run["failing"] = nbformat.v4.new_code_cell("%%grad\nq = x * 2\nq.sum() / undefined_name")
        nb.cells.append(failing)
        try:
            client.execute_cell(failing, len(nb.cells) - 1)
        except CellExecutionError:  # the kernel reported status "error", as for a plain cell
            run["failing_status"] = "error"
    return run


def test_demo_runs_in_a_kernel_and_every_report_is_ok(kernel_run):
    checks = kernel_run["checks"]
    assert len(checks) == len(kernel_run["demo_cells"]) - 1
    for cell, report in checks:
        where = cell.source.splitlines()[1]
        assert report["cell"]["number"] == cell.execution_count, where
        assert report["ok"] and report["error"] is None and report["mismatches"] == [], (where, report)
        assert report["nodes"], where
        stderr = [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert stderr == [], (where, stderr)  # no gradmagic note, no warning leaking into the cell
        kinds = [o.output_type for o in cell.outputs]
        assert kinds.count("display_data") == 1 and kinds[-1] == "display_data", (where, kinds)  # below Out
        data = cell.outputs[-1]["data"]
        html = data["text/html"]  # one graph (a training loop also has its gradient-flow chart)
        assert WIDGET_MIME in data and html.count("<svg") - html.count('<svg class="gradmagic-flow"') == 1, where
        for leaf in report["leaves"]:
            assert leaf["name"] is None or leaf["name"] in data["text/html"], (where, leaf["name"])
    seed_backward = next(r for c, r in checks if c.source.startswith("%%grad\ny.backward()"))
    x = next(leaf for leaf in seed_backward["leaves"] if leaf["name"] == "x")
    assert x["grad"] == [0.0, 4.0, 8.0, 12.0]
    twice = next(r for c, r in checks if "retain_graph=True" in c.source)
    x = next(leaf for leaf in twice["leaves"] if leaf["name"] == "x")
    assert x["accumulated_without_clearing"] and x["grad"] == [0.0, 8.0, 16.0, 24.0]
    nan = next(r for c, r in checks if "s.sqrt()" in c.source)
    [diagnosis] = nan["diagnoses"]
    assert diagnosis["kind"] == "nonfinite_grad" and diagnosis["tensor"] == "s", diagnosis
    assert all(r["diagnoses"] == [] for c, r in checks if "s.sqrt()" not in c.source)


def test_grad_on_and_off_in_a_kernel(kernel_run):
    # (a loaded kernel may flush one print as two stream messages: count runs of streams once)
    kinds = [[k for i, k in enumerate(ks) if not (k == "stream" and i and ks[i - 1] == "stream")]
             for ks in ([o.output_type for o in cell.outputs] for cell in kernel_run["auto"])]
    streams = [[(o.name, o.text) for o in cell.outputs if o.output_type == "stream"]
               for cell in kernel_run["auto"]]
    assert kinds == [["stream"], ["execute_result", "display_data"], ["execute_result"], ["stream"],
                     ["execute_result"]], (kinds, streams)


def test_failing_cell_in_a_kernel(kernel_run):
    failing = kernel_run["failing"]
    assert kernel_run.get("failing_status") == "error"
    error, report = failing.outputs[0], failing.outputs[-1]
    assert error.output_type == "error" and error.ename == "NameError"
    traceback = "\n".join(error.traceback)
    assert "line 3" in traceback and "undefined_name" in traceback and "gradmagic" not in traceback
    assert report.output_type == "display_data" and "NameError" in report.data["text/plain"]
