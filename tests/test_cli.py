"""``python -m gradmagic`` on scripts and notebooks, run as a user would (a subprocess)."""
from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat

import gradmagic

from shell_helpers import DATA, REPO

DEMO = REPO / "demo.ipynb"


def cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "gradmagic", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


class SvgCounter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svgs = 0
        self.scripts = []

    def handle_starttag(self, tag, attrs):
        # graphs only: a report with gradient flow also has its chart (svg.gradmagic-flow)
        self.svgs += tag == "svg" and dict(attrs).get("class") != "gradmagic-flow"
        if tag == "script":
            self.scripts.append(dict(attrs))


def test_script_runs_under_trace_and_prints_the_text_report(tmp_path):
    out = tmp_path / "report.html"
    proc = cli(DATA / "seed_script.py", "--html", out, "--", "--epochs", "3")
    assert proc.returncode == 0, proc.stderr
    assert "argv ['--epochs', '3']" in proc.stdout
    printed = "grad [0.0, 4.0, 8.0, 12.0]\ngrad [1.0, 1.0, 1.0, 1.0]\n"
    assert printed in proc.stdout
    report_text = proc.stdout.split(printed, 1)[1]  # the text report follows the script's output
    assert "DotBackward0" in report_text and "Accumulation history of x.grad" in report_text
    assert "1 report, every checked value and gradient agrees" in proc.stderr
    parser = SvgCounter()
    parser.feed(out.read_text(encoding="utf-8"))
    assert parser.svgs == 1


def test_script_that_raises_exits_3_with_a_clean_traceback():
    proc = cli(DATA / "raises.py")
    assert proc.returncode == 3
    assert 'raises.py", line 9, in <module>' in proc.stderr and "ValueError: the script failed here" in proc.stderr
    # no frame of gradmagic's own code (the package's folder; the checkout itself may be named
    # "gradmagic", as a clone is by default)
    package = str(Path(gradmagic.__file__).resolve().parent) + os.sep
    frames = [line for line in proc.stderr.split("ValueError")[0].splitlines() if line.strip().startswith("File ")]
    assert frames and not any(package in line for line in frames), frames
    assert "MulBackward0" in proc.stdout  # the partial report of what ran


def test_cross_check_difference_exits_1(tmp_path):
    # float32 sums of many terms: NumPy and torch add in different orders, so with zero
    # tolerance the last bits differ somewhere; teachers' CI must see that as a failure.
    script = tmp_path / "sums.py"
    script.write_text("import torch\ntorch.manual_seed(0)\nw = torch.randn(100000, requires_grad=True)\n"
                      "loss = (w.exp() * w.sin()).sum() / 3\nloss.backward()\n")
    proc = cli(script, "--rtol", "0", "--atol", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "found a difference" in proc.stderr
    assert cli(script).returncode == 0


def test_usage_errors_exit_2(tmp_path):
    proc = cli(tmp_path / "missing.py")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert cli(DATA / "seed_script.py", "--rtol", "-1").returncode == 2


def test_demo_notebook_with_html(tmp_path):
    out = tmp_path / "demo.html"
    proc = cli(DEMO, "--html", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    notebook = nbformat.read(DEMO, as_version=4)
    recorded = sum(c.cell_type == "code" and c.source.startswith("%%grad") for c in notebook.cells)
    assert f"{recorded} reports, every checked value and gradient agrees" in proc.stderr
    assert "tensor([ 0.,  4.,  8., 12.])" in proc.stdout  # the cells' own outputs are there
    page = out.read_text(encoding="utf-8")
    parser = SvgCounter()
    parser.feed(page)
    assert parser.svgs == recorded
    assert all(s.get("src") is None for s in parser.scripts)  # everything inline, no network


def test_notebook_that_raises_stops_and_exits_3():
    proc = cli(DATA / "raises.ipynb")
    assert proc.returncode == 3
    assert "NameError" in proc.stdout and "not reached" not in proc.stdout
    assert "gradmagic/magic.py" not in proc.stdout


def test_notebook_all_cells_records_cells_without_the_magic():
    proc = cli(DATA / "plain.ipynb", "--all-cells")
    assert proc.returncode == 0, proc.stderr
    assert "1 report, every checked value and gradient agrees" in proc.stderr  # the print cell adds none
    assert "tensor([2., 2., 2.])" in proc.stdout and "no torch here" in proc.stdout
    assert "0 reports" in cli(DATA / "plain.ipynb").stderr


def test_check_option_samples_or_checks_every_call(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text("import torch\nw = torch.ones(2, requires_grad=True)\n"
                      "for i in range(20):\n    w.grad = None\n    (w * i).sum().backward()\n"
                      "(w * 3).sum().backward()\n")
    sampled = cli(script)
    assert sampled.returncode == 0, sampled.stderr
    flat = " ".join(sampled.stdout.split())
    assert "backward calls 1–4, 16, 21 of 21; the other 15 ran at full speed, not checked" in flat
    every = cli(script, "--check", "all")
    assert every.returncode == 0 and "full speed" not in every.stdout
    assert cli(script, "--check", "most").returncode == 2
