"""Shared helpers of the gradmagic benchmarks: process set-up, interleaved timing, checks, tables.

Import this module *before* NumPy in a benchmark script: when NumPy is not loaded yet it pins
the BLAS/OpenMP pools to one thread through environment variables (threadpoolctl is used as
well when it is installed) and unsets ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` together (they
slow a current NumPy; see the env notes). Imported after NumPy (in tests) it changes nothing.

Example (from the ``benchmarks/`` folder)::

    >>> import _harness as h
    >>> res = h.time_interleaved({"a": lambda: sum(range(10))}, repeats=3, target_s=1e-3)
    >>> res["a"].median_s > 0
    True
"""
from __future__ import annotations

import os
import sys

_PROCESS_NOTES: list[str] = []
if "numpy" not in sys.modules:  # only a fresh benchmark process is configured
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"
    _dropped = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.pop(v, None)]
    if _dropped:
        _PROCESS_NOTES.append("unset " + " and ".join(_dropped) + " for this process")
    _PROCESS_NOTES.append("BLAS/OpenMP pools pinned to 1 thread via environment")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Iterable, Mapping, Sequence  # noqa: E402

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from anywhere: gradmagic is not pip-installed
    sys.path.insert(0, str(REPO_ROOT))


# ----------------------------------------------------------------------------- process set-up

def limit_threads() -> list[str]:
    """Pin torch and (if threadpoolctl is installed) every BLAS pool to one thread.

    Returns human-readable notes about what was done (they go into the JSON output).
    """
    notes = list(_PROCESS_NOTES)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(1)
        notes.append("torch.set_num_threads(1)")
    try:
        import threadpoolctl
    except ImportError:
        notes.append("threadpoolctl not installed")
    else:
        threadpoolctl.threadpool_limits(1)
        apis = sorted({f"{p['internal_api']}:{p.get('architecture')}:{p['num_threads']}"
                       for p in threadpoolctl.threadpool_info()})
        notes.append("threadpoolctl: " + ", ".join(apis))
    return notes


def try_import(module: str) -> tuple[Any, str | None]:
    """Import ``module``; return ``(module, None)`` or ``(None, reason)`` without raising."""
    try:
        return importlib.import_module(module), None
    except Exception as exc:  # a half-written module may raise anything at import
        return None, f"{module} not importable: {type(exc).__name__}: {exc}"


def machine_info(notes: Iterable[str] = ()) -> dict[str, Any]:
    """The date, machine and library versions that a table of numbers must carry."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "notes": list(notes),
    }
    for name in ("torch", "autograd", "psutil", "IPython"):
        if name in sys.modules:
            try:
                info[name] = importlib.metadata.version(name.lower())
            except importlib.metadata.PackageNotFoundError:
                info[name] = getattr(sys.modules[name], "__version__", "?")
    return info


def describe_machine(info: Mapping[str, Any]) -> str:
    """One line for the top of a printed table."""
    versions = ", ".join(f"{k} {info[k]}" for k in ("python", "numpy", "torch", "autograd", "IPython")
                         if k in info)
    return (f"{info['date_utc']} UTC · {info['cpu']} · {info['cores']} cores · "
            f"load {info['load_avg'][0]} · {versions}")


# ----------------------------------------------------------------------------- timing

@dataclass
class Timing:
    """Per-iteration times of one system, from interleaved repeats."""

    name: str
    number: int                      # iterations per timed batch
    times_s: list[float] = field(default_factory=list)  # per-iteration time of each batch
    gc_collections: int = 0          # cyclic-GC collections (all generations) while timed
    gc_gen2: int = 0                 # full collections while timed
    iterations: int = 0

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def mean_s(self) -> float:
        """Mean per-iteration time: unlike the median, it includes the rare full GC pauses."""
        return statistics.fmean(self.times_s)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["median_s"], d["mean_s"] = self.median_s, self.mean_s
        return d


def _gc_counts() -> tuple[int, int]:
    stats = gc.get_stats()
    return sum(s["collections"] for s in stats), stats[2]["collections"]


def calibrate(fn: Callable[[], Any], target_s: float, max_number: int = 100_000) -> int:
    """How many calls of ``fn`` take about ``target_s`` (at least 1)."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= target_s / 4 or number >= max_number:
            per_call = elapsed / number
            return max(1, min(max_number, int(target_s / max(per_call, 1e-9))))
        number *= 4


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int, target_s: float,
                     warmup: int = 2) -> dict[str, Timing]:
    """Time every function in turns: each repeat runs one batch of each, in a rotating order.

    Interleaving spreads the noise of a shared machine over all systems alike; the median of
    the batches is the reported time. The cyclic GC stays enabled (it is part of the cost).
    """
    timings: dict[str, Timing] = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        timings[name] = Timing(name, calibrate(fn, target_s))
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, t = fns[name], timings[name]
            all0, full0 = _gc_counts()
            t0 = time.perf_counter()
            for _ in range(t.number):
                fn()
            elapsed = time.perf_counter() - t0
            all1, full1 = _gc_counts()
            t.times_s.append(elapsed / t.number)
            t.iterations += t.number
            t.gc_collections += all1 - all0
            t.gc_gen2 += full1 - full0
    return timings


def time_turns(runs: Mapping[str, Callable[[], float]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Like :func:`time_interleaved` for runs that time themselves.

    Each callable does its own untimed set-up and returns the seconds of its timed part (one
    sample per call), e.g. a notebook cell run on a fresh namespace.
    """
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    timings = {name: Timing(name, 1) for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = timings[name]
            all0, full0 = _gc_counts()
            t.times_s.append(runs[name]())
            all1, full1 = _gc_counts()
            t.iterations += 1
            t.gc_collections += all1 - all0
            t.gc_gen2 += full1 - full0
    return timings


def fmt_time(seconds: float | None) -> str:
    """``3.6e-06`` → ``'3.6 µs'``; ``None`` → ``'—'``."""
    if seconds is None:
        return "—"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


# ----------------------------------------------------------------------------- checks

def compare_arrays(reference: Mapping[str, np.ndarray], got: Mapping[str, Any],
                   rtol: float, atol: float) -> list[str]:
    """Problems of ``got`` against ``reference``: missing names, shape, dtype, values.

    An empty list means every array agrees (``np.allclose`` with the given tolerances and the
    same dtype, since a gradient must keep its parameter's dtype).
    """
    problems = []
    for key, ref in reference.items():
        if key not in got or got[key] is None:
            problems.append(f"{key}: missing")
            continue
        arr = np.asarray(got[key])
        if arr.shape != ref.shape:
            problems.append(f"{key}: shape {arr.shape} != {ref.shape}")
        elif arr.dtype != ref.dtype:
            problems.append(f"{key}: dtype {arr.dtype} != {ref.dtype}")
        elif not np.allclose(arr, ref, rtol=rtol, atol=atol):
            err = float(np.max(np.abs(arr.astype(np.float64) - ref)))
            problems.append(f"{key}: max |Δ| {err:.3g} (rtol {rtol}, atol {atol})")
    return problems


@dataclass
class Target:
    """A ratio target: ``numerator / denominator <= limit`` (on median times)."""

    label: str
    numerator: str
    denominator: str
    limit: float

    def evaluate(self, medians: Mapping[str, float | None]) -> tuple[float | None, str]:
        """``(ratio, "PASS" | "MISS" | "n/a")`` from the medians of one workload."""
        num, den = medians.get(self.numerator), medians.get(self.denominator)
        if num is None or den is None:
            return None, "n/a"
        ratio = num / den
        return ratio, "PASS" if ratio <= self.limit else "MISS"


# ----------------------------------------------------------------------------- output

def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table (Markdown pipe syntax, so it can be pasted into the README)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def make_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark accepts: ``--quick``, ``--json OUT``, ``--repeats``, ``--only``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="few repeats and short batches (smoke test; numbers are noisy)")
    parser.add_argument("--json", metavar="OUT", type=Path, help="also write the results as JSON")
    parser.add_argument("--repeats", type=int, default=None, help="timed batches per system")
    parser.add_argument("--only", metavar="NAMES", default=None,
                        help="comma-separated workload names to run (default: all)")
    return parser


def selected(only: str | None, names: Iterable[str]) -> list[str]:
    """The workload names chosen by ``--only`` (case-insensitive), in their declared order."""
    names = list(names)
    if not only:
        return names
    wanted = {n.strip().upper() for n in only.split(",") if n.strip()}
    unknown = wanted - {n.upper() for n in names}
    if unknown:
        raise SystemExit(f"unknown workload(s) {sorted(unknown)}; choose from {names}")
    return [n for n in names if n.upper() in wanted]


def write_json(path: Path | None, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` to ``path`` (if given) as indented JSON."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"results written to {path}")
