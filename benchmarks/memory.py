"""Memory benchmark (issue 6, "bounded memory"): RSS of long ``%%grad`` sessions.

Run from the repository root::

    nice -n 10 python3 benchmarks/memory.py            # full run (~1 min)
    python3 benchmarks/memory.py --quick --json out.json

Workloads (each measurement in a fresh subprocess with a real IPython shell, gradmagic loaded)
    CHURN  1,000 cells that each make and drop ~1 MB of tensors (a 256×1024 leaf, its grad and
           intermediates; forward, backward, ``del``): RSS growth from after the first 50 cells
           to after the last, under ``%%grad --quiet`` and plain. Target: ≤ 200 MB under %%grad.
           A run that grows past 3 GB is stopped early (the table gives the cells it ran).
    LOOP   one cell running a 5,000-step training loop (MLP 20-32-1, batch 64, MSE, SGD):
           peak RSS (``VmHWM``) under ``%%grad --quiet`` ÷ peak RSS of the same cell run plain.
           Target: ≤ 1.5×. The traced run must end with the plain run's loss, bit for bit,
           and an ``ok`` report.
"""
from __future__ import annotations

import _harness as h  # first: pins BLAS threads before NumPy loads

import argparse
import json
import subprocess
import sys
from typing import Any

from recorder import peak_rss

CHURN_CELL = """\
x = torch.randn(256, 1024, requires_grad=True)
h = (x * 2).tanh()
loss = h.pow(2).mean()
loss.backward()
step = x.grad.abs().max().item()
del x, h, loss
"""
CHURN_WARMUP = 50
CHURN_LIMIT_MB = 200
CHURN_ABORT_MB = 3000  # a run growing past this is stopped early (and misses the target)

LOOP_SETUP = """\
import torch
torch.manual_seed(0)
X = torch.randn(256, 20)
Y = (X @ torch.randn(20, 1)).tanh()
net = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
opt = torch.optim.SGD(net.parameters(), lr=0.05)
"""
LOOP_CELL = """\
for step in range(n_steps):
    i = step % 4
    loss = torch.nn.functional.mse_loss(net(X[64 * i:64 * (i + 1)]), Y[64 * i:64 * (i + 1)])
    opt.zero_grad()
    loss.backward()
    opt.step()
final_loss = loss.item()
"""
LOOP_LIMIT = 1.5


def _shell() -> Any:
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.extension_manager.load_extension("gradmagic")
    return ip


def _run(ip: Any, source: str) -> None:
    from IPython.utils.capture import capture_output

    with capture_output():
        result = ip.run_cell(source, store_history=True)
    if not result.success:
        raise RuntimeError(f"benchmark cell failed: {result.error_in_exec!r}")


def churn_child(mode: str, cells: int) -> dict[str, Any]:
    """RSS (bytes) after the warm-up cells and after all ``cells`` churn cells."""
    import psutil

    proc = psutil.Process()
    ip = _shell()
    _run(ip, "import torch\ntorch.manual_seed(0)")
    h.limit_threads()
    source = ("%%grad --quiet\n" if mode == "traced" else "") + CHURN_CELL
    rss_warm = rss = 0
    done = 0
    for done in range(1, cells + 1):
        _run(ip, source)
        if done == CHURN_WARMUP:
            rss_warm = proc.memory_info().rss
        elif done % 10 == 0 and done > CHURN_WARMUP:  # stop a runaway run (the machine is shared)
            rss = proc.memory_info().rss
            if rss - rss_warm > CHURN_ABORT_MB * 2**20:
                break
    import gradmagic

    report = gradmagic.last_report()
    return {"mode": mode, "cells": cells, "cells_run": done, "rss_warm": rss_warm,
            "rss_end": proc.memory_info().rss, "peak_rss": peak_rss(proc),
            "report_ok": None if report is None else bool(report.ok)}


def loop_child(mode: str, steps: int) -> dict[str, Any]:
    """Peak RSS (bytes) of the training-loop cell, the final loss and the report's verdict."""
    import psutil

    proc = psutil.Process()
    ip = _shell()
    _run(ip, LOOP_SETUP)
    h.limit_threads()
    ip.user_ns["n_steps"] = steps
    rss_before = proc.memory_info().rss
    _run(ip, ("%%grad --quiet\n" if mode == "traced" else "") + LOOP_CELL)
    import gradmagic

    report = gradmagic.last_report()
    return {"mode": mode, "steps": steps, "rss_before": rss_before, "rss_after": proc.memory_info().rss,
            "peak_rss": peak_rss(proc), "final_loss": ip.user_ns["final_loss"],
            "report_ok": None if report is None else bool(report.ok)}


def _child(kind: str, mode: str, size: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, mode, str(size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {mode} child failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_churn(cells: int) -> dict[str, Any]:
    runs = {mode: _child("churn", mode, cells) for mode in ("plain", "traced")}
    growth = {mode: (r["rss_end"] - r["rss_warm"]) / 2**20 for mode, r in runs.items()}
    ok = growth["traced"] <= CHURN_LIMIT_MB and runs["traced"]["report_ok"] and runs["traced"]["cells_run"] == cells
    return {"workload": "CHURN", "runs": runs, "growth_mb": growth, "limit_mb": CHURN_LIMIT_MB,
            "verdict": "PASS" if ok else "MISS"}


def bench_loop(steps: int) -> dict[str, Any]:
    runs = {mode: _child("loop", mode, steps) for mode in ("plain", "traced")}
    ratio = runs["traced"]["peak_rss"] / runs["plain"]["peak_rss"]
    same = runs["traced"]["final_loss"] == runs["plain"]["final_loss"]
    ok = ratio <= LOOP_LIMIT and same and runs["traced"]["report_ok"]
    return {"workload": "LOOP", "runs": runs, "ratio": ratio, "limit": LOOP_LIMIT,
            "same_loss": same, "verdict": "PASS" if ok else "MISS"}


def print_table(churn: dict[str, Any], loop: dict[str, Any], info: dict[str, Any]) -> None:
    mib = 2**20
    print(f"\ngradmagic memory benchmark · {h.describe_machine(info)}")
    c, lp = churn["runs"], loop["runs"]
    rows = [
        ["CHURN", f"{c['traced']['cells_run']} cells × ~1 MB made and dropped: RSS growth after cell "
                  f"{CHURN_WARMUP}", f"{churn['growth_mb']['plain']:+.1f} MB",
         f"{churn['growth_mb']['traced']:+.1f} MB", "—", f"≤ {CHURN_LIMIT_MB} MB", churn["verdict"]],
        ["LOOP", f"{lp['traced']['steps']}-step training loop in one cell: peak RSS",
         f"{lp['plain']['peak_rss'] / mib:.0f} MiB", f"{lp['traced']['peak_rss'] / mib:.0f} MiB",
         h.fmt_ratio(loop["ratio"]), f"≤ {LOOP_LIMIT}×", loop["verdict"]],
    ]
    print(h.format_table(["", "workload", "plain", "%%grad", "ratio", "target", "verdict"], rows))
    print(f"LOOP: same final loss plain/traced: {loop['same_loss']}; traced report ok: "
          f"{lp['traced']['report_ok']}; CHURN traced report ok: {c['traced']['report_ok']}")


def main(argv: list[str] | None = None) -> int:
    parser = h.make_parser(__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("KIND", "MODE", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--cells", type=int, default=1000, help="CHURN cells (default 1,000)")
    parser.add_argument("--steps", type=int, default=5000, help="LOOP steps (default 5,000)")
    args = parser.parse_args(argv)
    if args.child:
        kind, mode, size = args.child
        child = churn_child if kind == "churn" else loop_child
        print(json.dumps(child(mode, int(size))))
        return 0
    notes = h.limit_threads()
    cells, steps = (CHURN_WARMUP + 50, 300) if args.quick else (args.cells, args.steps)
    print(f"running CHURN ({cells} cells, two subprocesses) ...", file=sys.stderr, flush=True)
    churn = bench_churn(cells)
    print(f"running LOOP ({steps} steps, two subprocesses) ...", file=sys.stderr, flush=True)
    loop = bench_loop(steps)
    info = h.machine_info(notes)
    print_table(churn, loop, info)
    h.write_json(args.json, {"benchmark": "memory", "machine": info, "quick": args.quick,
                             "results": [churn, loop]})
    return 0 if churn["verdict"] == loop["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
