"""Soak run (issue 6, "no leaked state"): many ``%%grad`` cells that complete, raise, get a real
Ctrl-C (SIGINT) at a random moment, or are interrupted inside gradmagic's own code.

Run from the repository root::

    nice -n 10 python3 benchmarks/soak.py              # 1,000 cells in a real IPython shell
    python3 benchmarks/soak.py --cells 200 --seed 3 --json out.json

Every cell runs through ``shell.run_cell("%%grad ...")`` in one ``InteractiveShell``. Its
outcome is drawn (seeded) from: **complete**; **raise** (a ``ValueError`` at a random
iteration); **sigint** (``os.kill(os.getpid(), SIGINT)`` from a timer thread after a random
delay within the cell's typical duration, so it lands anywhere: the user's code, torch,
gradmagic's recording, report or view); **internal** (a random gradmagic stage of
``tests/fault_helpers.STAGES`` raises ``KeyboardInterrupt`` once). After every cell the
process-wide state (torch's function and dispatch mode stacks, grad mode, the engine's grad
mode, the cyclic GC's freeze, torch's global optimizer hooks) must equal the state before the
soak; every completed cell's report must be ``ok``. The speed of a small torch op loop is
measured before and after (same process): the ratio should be ~1.

``tests/test_soak.py`` runs :func:`soak` on a few hundred cells.
"""
from __future__ import annotations

import _harness as h  # first: pins BLAS threads before NumPy loads

import os
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

sys.path.insert(0, str(h.REPO_ROOT / "tests"))

import torch  # noqa: E402

from fault_helpers import STAGES, global_state, injected  # noqa: E402

OUTCOMES = ("complete", "raise", "sigint", "internal")

#: one soak cell; ``{seed}`` and ``{raise_at}`` (-1: never) are filled per cell
CELL = """\
torch.manual_seed({seed})
w = torch.randn(8, 4, requires_grad=True)
xb = torch.randn(16, 8)
for step in range(4):
    loss = torch.tanh(xb @ w).pow(2).mean()
    loss.backward()
    with torch.no_grad():
        if step == {raise_at}:
            raise ValueError("soak: user error")
        w -= 0.1 * w.grad
        w.grad.zero_()
del xb
"""


class Interrupter:
    """Delivers real SIGINTs to this process; they raise KeyboardInterrupt only while armed
    (a signal arriving after the cell has ended is dropped, not raised in the harness)."""

    def __init__(self) -> None:
        self.armed = False
        self.raised = 0
        self._old: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.raised += 1
            raise KeyboardInterrupt

    def __enter__(self) -> "Interrupter":
        self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self._old)

    @contextmanager
    def after(self, delay_s: float | None) -> Iterator[None]:
        """Send one SIGINT ``delay_s`` seconds into the block (None: none)."""
        timer = None
        try:  # the signal may land at once: disarming must follow whatever happens
            if delay_s is not None:
                timer = threading.Timer(delay_s, os.kill, (os.getpid(), signal.SIGINT))
                self.armed = True
                timer.start()
            yield
        finally:
            self.armed = False
            if timer is not None:
                timer.cancel()
                timer.join()


@dataclass
class SoakResult:
    """What a soak saw: counts per outcome, the violations (cell, outcome, what), timings."""

    cells: int = 0
    outcomes: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    interrupts_raised: int = 0  # SIGINTs that became a KeyboardInterrupt somewhere
    interrupted_cells: int = 0  # cells that ended in KeyboardInterrupt
    outside_cell: int = 0  # interrupts that landed in IPython's code around the cell
    violations: list = field(default_factory=list)
    seconds: float = 0.0
    op_loop_before_s: float = 0.0
    op_loop_after_s: float = 0.0

    @property
    def speed_ratio(self) -> float:
        return self.op_loop_after_s / self.op_loop_before_s


def op_loop_time(iterations: int = 2000, repeats: int = 9) -> float:
    """Best CPU time of a small torch op loop (what a leaked mode or hook would slow down);
    CPU time, not wall time, so that other jobs on a shared machine disturb it less."""
    t = torch.ones(4)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(iterations):
            t.mul(2.0).add(1.0)
        best = min(best, time.process_time() - t0)
    return best


def fresh_process_op_loop_time() -> float:
    """:func:`op_loop_time` in a new Python process that never loaded gradmagic: the reference
    to compare this process with under the machine's load of the moment (a baseline taken
    minutes earlier, before a burst of other jobs, would call their load a leak)."""
    import subprocess

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import torch; "
            "from soak import op_loop_time; print(op_loop_time())")
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True,
                         timeout=300, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def speed_against_a_fresh_process(turns: int = 3) -> float:
    """This process's op loop over a fresh process's, measured in turns (the best of each):
    about 1 when nothing was left behind; a leaked recorder on the mode stack makes it several
    times that (a bare leaked ``TorchFunctionMode``: ~1.6, which the soak's state checks catch)."""
    here = [op_loop_time() for _ in range(turns)]
    fresh = [fresh_process_op_loop_time() for _ in range(turns)]
    return min(here) / min(fresh)


def soak_state() -> dict[str, Any]:
    """:func:`global_state` plus torch's global optimizer hooks."""
    from torch.optim import optimizer

    return {**global_state(), "optimizer pre hooks": len(optimizer._global_optimizer_pre_hooks),
            "optimizer post hooks": len(optimizer._global_optimizer_post_hooks)}


def _repair() -> None:
    """Put a leaked state right so that one violation does not cause the next ones."""
    import gc

    from gradmagic.recorder.session import remove_leaked_modes

    remove_leaked_modes()
    if gc.get_freeze_count():
        gc.unfreeze()
    torch.set_grad_enabled(True)


def _run(ip: Any, source: str) -> Any:
    from IPython.utils.capture import capture_output

    with capture_output():
        return ip.run_cell(source, store_history=True)


def cell_duration(ip: Any, n: int = 20) -> float:
    """Median seconds of a completing soak cell under ``%%grad`` (sizes the SIGINT delays)."""
    times = []
    for k in range(n):
        t0 = time.perf_counter()
        _run(ip, "%%grad --quiet\n" + CELL.format(seed=k, raise_at=-1))
        times.append(time.perf_counter() - t0)
    return sorted(times)[n // 2]


def soak(ip: Any, cells: int, seed: int = 0) -> SoakResult:
    """Run ``cells`` random soak cells in shell ``ip`` (gradmagic loaded); see module doc."""
    import gradmagic

    rng = random.Random(seed)
    stages = [s for s in STAGES if not s.on_error]
    duration = cell_duration(ip)
    baseline = soak_state()
    res = SoakResult(op_loop_before_s=op_loop_time())
    t0 = time.perf_counter()
    with Interrupter() as interrupter:
        for k in range(cells):
            outcome = rng.choice(OUTCOMES)
            res.outcomes[outcome] += 1
            fmt = "--quiet" if rng.random() < 0.75 else "--format text"
            stage = rng.choice(stages) if outcome == "internal" else None
            if stage is not None:
                fmt = f"--format {stage.format}"
            source = f"%%grad {fmt}\n" + CELL.format(seed=k, raise_at=rng.randrange(4) if outcome == "raise" else -1)
            delay = rng.uniform(0, 1.2 * duration) if outcome == "sigint" else None
            result = None
            try:
                with interrupter.after(delay):
                    if stage is not None:
                        with injected(stage, exc=KeyboardInterrupt, times=1):
                            result = _run(ip, source)
                    else:
                        result = _run(ip, source)
            except KeyboardInterrupt:
                res.outside_cell += 1
            problems = _check(outcome, result, gradmagic.last_report(), soak_state(), baseline)
            if problems:
                res.violations.append((k, outcome, stage.name if stage else None, problems))
                _repair()
            if result is not None and isinstance(result.error_in_exec, KeyboardInterrupt):
                res.interrupted_cells += 1
        res.interrupts_raised = interrupter.raised
    res.seconds = time.perf_counter() - t0
    res.cells = cells
    res.op_loop_after_s = op_loop_time()
    return res


def _check(outcome: str, result: Any, report: Any, state: dict, baseline: dict) -> list[str]:
    problems = [f"{key}: {state[key]!r} (was {baseline[key]!r})" for key in baseline if state[key] != baseline[key]]
    if result is None:
        return problems
    if outcome == "complete":
        if not result.success:
            problems.append(f"a completing cell failed: {result.error_in_exec!r}")
        elif report is None or not report.ok or report.cell["number"] != result.execution_count:
            problems.append(f"the report of a completing cell is missing or not ok: {report!r}")
    if outcome == "raise" and not isinstance(result.error_in_exec, ValueError):
        problems.append(f"a raising cell ended with {result.error_in_exec!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = h.make_parser(__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1000, help="cells to run (default 1,000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    notes = h.limit_threads()
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.extension_manager.load_extension("gradmagic")
    _run(ip, "import torch")
    res = soak(ip, 100 if args.quick else args.cells, args.seed)
    info = h.machine_info(notes)
    print(f"\ngradmagic soak · {h.describe_machine(info)}")
    print(h.format_table(["", "value"], [
        ["cells (IPython shell, %%grad)", res.cells],
        ["outcomes", ", ".join(f"{k} {v}" for k, v in res.outcomes.items())],
        ["SIGINTs raised / cells ended by KeyboardInterrupt / landed outside the cell",
         f"{res.interrupts_raised} / {res.interrupted_cells} / {res.outside_cell}"],
        ["cells with leaked state or a bad report", len(res.violations)],
        ["wall time", f"{res.seconds:.1f} s ({res.seconds / res.cells * 1e3:.1f} ms per cell)"],
        ["op loop before → after", f"{h.fmt_time(res.op_loop_before_s)} → {h.fmt_time(res.op_loop_after_s)}"],
        ["speed ratio after / before", h.fmt_ratio(res.speed_ratio)],
    ]))
    for violation in res.violations[:20]:
        print("violation:", violation, file=sys.stderr)
    h.write_json(args.json, {"benchmark": "soak", "machine": info, "cells": res.cells, "seed": args.seed,
                             "outcomes": res.outcomes, "interrupts_raised": res.interrupts_raised,
                             "interrupted_cells": res.interrupted_cells, "outside_cell": res.outside_cell,
                             "violations": [list(map(str, v)) for v in res.violations],
                             "seconds": res.seconds, "speed_ratio": res.speed_ratio})
    return 1 if res.violations else 0


if __name__ == "__main__":
    sys.exit(main())
