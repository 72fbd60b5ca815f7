"""Benchmark of the recorder (issues 3 and 14): the same cell run plain vs inside ``gradmagic.trace()``.

Run from the repository root::

    python3 benchmarks/recorder.py               # full run (~1 min)
    python3 benchmarks/recorder.py --quick       # smoke run
    python3 benchmarks/recorder.py --only R1,MEM --json out.json

Each cell is compiled with its own file name (as IPython does) and run on a fresh namespace;
its set-up (data, parameters) runs untimed before it. Plain, traced (the default,
``check="sample"``: a loop's backward calls 1–4 and the powers of two from 16 in lockstep, the others at
full speed), "all" (``check="all"``: every call in lockstep) and "bare mode" runs take turns;
the median of each is reported. Targets (issue 14): traced ≤ 1.5× plain, all ≤ 1.3× floor.
"bare mode" runs the cell under a ``TorchFunctionMode`` that only calls each function: the cost of being called on every torch call at all, the
floor under any recorder built on ``TorchFunctionMode`` (the ``mode`` column, as a ratio to
plain). "floor" adds the engine's recomputation of every op and backward call and nothing
else (``EngineOnly``): no checks, records or report; the recorder's own cost is the
difference between ``all`` and ``floor``. Two more runs bound that cost from below (as ratios
to the floor): "checks" adds to the floor the value and gradient comparisons alone (the least
any checking recorder does), "lean" adds the least the report needs of each call (the user's
line, its warnings recorded, a record per call, an event per ``.grad`` change). Before timing, both traced runs must leave exactly the
values the plain run leaves (the recorder must not change the user's results) and its report should be
``ok`` with nothing unsupported.

Workloads
    R1   W1-style tiny-op loop: 300 × ``(x*y + x).sum().backward()`` on 4 floats
    R2   d2l linear regression from scratch: 1,000 synthetic examples, batch 10, 3 epochs
    R3   30 W4-size MLP training steps (batch 256, 1024-1024-1024-10, cross-entropy, SGD)
    MEM  RSS after 500 recorded W3-size training steps (784-256-10, batch 64) vs the peak RSS
         of the same 500 steps run plain, each in a fresh subprocess (psutil RSS; peak = VmHWM)
"""
from __future__ import annotations

import _harness as h  # first: pins BLAS threads before NumPy loads

import argparse
import contextlib
import io
import json
import linecache
import subprocess
import sys
import textwrap
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

# ============================================================================ cells

R1_SETUP = """
import torch
torch.manual_seed(0)
x = torch.randn(4, requires_grad=True)
y = torch.randn(4, requires_grad=True)
"""
R1_CELL = """
for _ in range(n_iter):
    x.grad = None
    y.grad = None
    (x * y + x).sum().backward()
"""

R2_SETUP = """
import random
import torch
random.seed(0)
torch.manual_seed(0)
"""
# d2l 3.2 "Linear Regression Implementation from Scratch", as a learner types it.
R2_CELL = """
def synthetic_data(w, b, num_examples):
    X = torch.normal(0, 1, (num_examples, len(w)))
    y = torch.matmul(X, w) + b
    y += torch.normal(0, 0.01, y.shape)
    return X, y.reshape((-1, 1))

true_w = torch.tensor([2, -3.4])
true_b = 4.2
features, labels = synthetic_data(true_w, true_b, 1000)

def data_iter(batch_size, features, labels):
    num_examples = len(features)
    indices = list(range(num_examples))
    random.shuffle(indices)
    for i in range(0, num_examples, batch_size):
        batch_indices = torch.tensor(indices[i: min(i + batch_size, num_examples)])
        yield features[batch_indices], labels[batch_indices]

w = torch.normal(0, 0.01, size=(2, 1), requires_grad=True)
b = torch.zeros(1, requires_grad=True)

def linreg(X, w, b):
    return torch.matmul(X, w) + b

def squared_loss(y_hat, y):
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2

def sgd(params, lr, batch_size):
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()

lr = 0.03
batch_size = 10
net = linreg
loss = squared_loss
for epoch in range(num_epochs):
    for X, y in data_iter(batch_size, features, labels):
        l = loss(net(X, w, b), y)
        l.sum().backward()
        sgd([w, b], lr, batch_size)
    with torch.no_grad():
        train_l = loss(net(features, w, b), labels)
        print(f'epoch {epoch + 1}, loss {float(train_l.mean()):f}')
"""


def mlp_setup(sizes: tuple[int, ...], batch: int) -> str:
    """Set-up source: data ``X``, ``labels`` and He-initialised ``layers = [(W, b), ...]``."""
    return textwrap.dedent(f"""
        import torch
        torch.manual_seed(0)
        sizes, batch, lr = {sizes!r}, {batch}, 0.01
        X = torch.randn(batch, sizes[0])
        labels = torch.randint(0, sizes[-1], (batch,))
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            W = (torch.randn(fan_in, fan_out) * (2.0 / fan_in) ** 0.5).requires_grad_()
            layers.append((W, torch.zeros(fan_out, requires_grad=True)))
        """)


MLP_STEP = """
z = X
for i, (W, b) in enumerate(layers):
    z = z @ W + b
    if i < len(layers) - 1:
        z = torch.relu(z)
l = torch.nn.functional.cross_entropy(z, labels)
l.backward()
with torch.no_grad():
    for W, b in layers:
        for p in (W, b):
            p -= lr * p.grad
            p.grad.zero_()
"""
MLP_LOOP = "for step in range(n_steps):\n" + textwrap.indent(MLP_STEP.strip("\n"), "    ") + "\n"


@dataclass
class Cell:
    name: str
    title: str
    setup: str
    source: str
    params: Callable[[bool], dict[str, Any]]   # quick -> loop sizes put in the namespace
    outputs: Callable[[dict], dict[str, Any]]  # namespace -> tensors to compare plain vs traced
    limit: float
    #: timed turns of each system by default: more for the short cells, whose medians a shared
    #: machine's noise moves most (R1's plain runs spread from 24 to 45 ms within one run)
    repeats: int = 9


def _layers_out(ns: dict) -> dict[str, Any]:
    return {f"{kind}{i}": t for i, (W, b) in enumerate(ns["layers"]) for kind, t in (("W", W), ("b", b))}


CELLS = [
    Cell("R1", "tiny-op loop, 300 × (x*y+x).sum().backward()", R1_SETUP, R1_CELL,
         lambda quick: {"n_iter": 20 if quick else 300},
         lambda ns: {"x.grad": ns["x"].grad, "y.grad": ns["y"].grad}, 1.5, repeats=31),
    Cell("R2", "d2l linear regression, 1,000 examples, batch 10, 3 epochs", R2_SETUP, R2_CELL,
         lambda quick: {"num_epochs": 1 if quick else 3},
         lambda ns: {"w": ns["w"], "b": ns["b"]}, 1.5, repeats=19),
    Cell("R3", "30 W4-size MLP steps (256 × 1024-1024-1024-10)",
         mlp_setup((1024, 1024, 1024, 10), 256), MLP_LOOP,
         lambda quick: {"n_steps": 3 if quick else 30}, _layers_out, 1.5),
]
#: check="all" must stay within this factor of the floor (the recorder's own bookkeeping)
ALL_LIMIT = 1.3
MEM_SIZES, MEM_BATCH, MEM_STEPS, MEM_LIMIT = (784, 256, 10), 64, 500, 1.5


# ============================================================================ running one cell

def _modes() -> tuple[type, type]:
    """The ``mode`` and ``floor`` TorchFunctionModes (made once, at first use: torch is
    imported after the thread limits are set)."""
    global _MODES
    if _MODES is not None:
        return _MODES
    import torch
    from torch.overrides import TorchFunctionMode

    import gradmagic.engine as ge
    from gradmagic.engine._state import STATE
    import numpy as np

    from gradmagic._warnings_capture import call_recording
    from gradmagic.recorder import mapping
    from gradmagic.recorder.crosscheck import identical
    from gradmagic.recorder.twins import copy_numpy, numpy_dtype, to_numpy

    class Bare(TorchFunctionMode):
        """Only calls each function (the ``mode`` column)."""

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
            return func(*args, **(kwargs or {}))

    class EngineOnly(TorchFunctionMode):
        """The ``floor`` column: recomputes every mapped op and backward call with
        gradmagic's engine (as the recorder must) and does nothing else — no value or
        gradient checks, records, events, names or report. What the recorder spends beyond
        this is its bookkeeping; this much no recorder that recomputes each op in the
        engine can avoid."""

        def __init__(self) -> None:
            super().__init__()
            self.twins: dict = {}  # id(torch tensor) -> (weakref to it, its version, engine tensor)

        def __exit__(self, *exc: Any) -> None:
            super().__exit__(*exc)
            self.twins.clear()

        def twin(self, t: Any) -> Any:
            got = self.twins.get(id(t))
            if got is None or got[0]() is not t or got[1] != t._version:
                et = ge.tensor(copy_numpy(t), requires_grad=bool(t.requires_grad and t.grad_fn is None))
                got = self.twins[id(t)] = (weakref.ref(t), t._version, et)
            return got[2]

        def convert(self, obj: Any) -> Any:
            if isinstance(obj, torch.Tensor):
                return self.twin(obj)
            if type(obj) in (list, tuple):
                return type(obj)(self.convert(o) for o in obj)
            if type(obj) is dict:
                return {k: self.convert(v) for k, v in obj.items()}
            return numpy_dtype(obj) if isinstance(obj, torch.dtype) else obj

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
            out = func(*args, **kwargs) if kwargs else func(*args)
            spec = mapping.lookup(func)
            if spec.kind == "op" and type(out) is torch.Tensor and spec.adapt is not None:
                cargs = tuple([self.twin(a) if type(a) is torch.Tensor else self.convert(a) for a in args])
                prev, STATE.grad_enabled = STATE.grad_enabled, torch.is_grad_enabled()
                try:
                    et = spec.adapt(cargs, self.convert(kwargs) if kwargs else {})
                finally:
                    STATE.grad_enabled = prev
                self.twins[id(out)] = (weakref.ref(out), out._version, et)
            elif spec.kind == "backward" and args and isinstance(args[0], torch.Tensor):
                with ge.record_backward():
                    self.twin(args[0]).backward()
            return out

    class ChecksOnly(EngineOnly):
        """The ``checks`` column: the floor plus the checks themselves and nothing else. Each
        recomputed value is compared with torch's (bit for bit, then lockstep: torch's value
        is copied into the engine's on a difference), ``.grad = None`` reaches the engine's
        leaf, and after each backward every gradient the engine accumulated is compared with
        torch's ``.grad`` (copied over on a difference). Results are only counted. The least
        any recorder that checks each call can do; no recorder can cost less than this."""

        def __init__(self, filename: str | None = None) -> None:
            super().__init__()
            self.filename = filename
            self.leaves: dict = {}  # id(engine leaf) -> its torch tensor
            self.counts = [0, 0]  # checks that differed, that agreed
            self.records: list = []  # (``lean``) one record per call ...
            self.events: list = []  # ... and one event per accumulation and .grad change

        def twin(self, t: Any) -> Any:
            et = super().twin(t)
            if et.requires_grad:
                self.leaves[id(et)] = t
            return et

        def same(self, engine: Any, torch_value: Any) -> None:
            """Count one check; on a difference continue from torch's value (lockstep)."""
            ref = to_numpy(torch_value)
            ok = engine.shape == ref.shape and engine.dtype == ref.dtype and identical(engine, ref)
            self.counts[ok] += 1
            if not ok and engine.shape == ref.shape and engine.flags.writeable:
                np.copyto(engine, ref, casting="unsafe")

        def where(self) -> Any:
            return None

        def call(self, func: Any, args: tuple, kwargs: Any) -> Any:
            return func(*args, **kwargs) if kwargs else func(*args)

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
            out = self.call(func, args, kwargs)
            spec = mapping.lookup(func)
            kind = spec.kind
            if kind == "op" and type(out) is torch.Tensor and spec.adapt is not None:
                src = self.where()
                cargs = tuple([self.twin(a) if type(a) is torch.Tensor else self.convert(a) for a in args])
                prev, STATE.grad_enabled = STATE.grad_enabled, torch.is_grad_enabled()
                try:
                    et = spec.adapt(cargs, self.convert(kwargs) if kwargs else {})
                finally:
                    STATE.grad_enabled = prev
                self.same(et.data, out)
                self.twins[id(out)] = (weakref.ref(out), out._version, et)
                self.record((spec.name, src, et, cargs))
            elif kind == "backward" and args and isinstance(args[0], torch.Tensor):
                src = self.where()
                with ge.record_backward() as calls:
                    self.twin(args[0]).backward()
                for step in calls[0].steps if calls else ():
                    t = self.leaves.get(id(step.tensor)) if step.kind == "accumulate" else None
                    if t is not None and t.grad is not None and step.tensor.grad is not None:
                        self.same(step.tensor.grad.data, t.grad)
                        self.event(("backward", src, step.before, step.after))
            elif kind == "grad_set" and args and isinstance(args[0], torch.Tensor):
                got = self.twins.get(id(args[0]))
                value = args[1] if len(args) > 1 else None
                if got is not None:
                    got[2].grad = None if value is None else ge.tensor(copy_numpy(value))
                self.event(("set", self.where()))
            return out

        def record(self, rec: tuple) -> None:
            pass

        def event(self, ev: tuple) -> None:
            pass

    class Lean(ChecksOnly):
        """The ``lean`` column: ``checks`` plus the least of what the report needs from each
        call: the user's line (a walk up the stack to the cell's frame), the call's warnings
        recorded (to re-issue them at that line), a record per recomputed call (a tuple in a
        list) and an event per ``.grad`` change. No names, graph, histories, hooks, modules,
        gradient statistics, sampling or report."""

        def where(self) -> Any:
            frame = sys._getframe(2)
            while frame is not None and frame.f_code.co_filename != self.filename:
                frame = frame.f_back
            return None if frame is None else (self.filename, frame.f_lineno)

        def call(self, func: Any, args: tuple, kwargs: Any) -> Any:
            return call_recording(func, args, kwargs or {}, [])

        def record(self, rec: tuple) -> None:
            self.records.append(rec)

        def event(self, ev: tuple) -> None:
            self.events.append(ev)

    _MODES = (Bare, EngineOnly, ChecksOnly, Lean)
    return _MODES


_MODES: tuple | None = None


class BareMode:
    """Runs a cell under ``_modes()``'s ``Bare`` (the ``mode`` column)."""

    def __call__(self, ns: dict, filename: str, source: str) -> Any:
        return _modes()[0]()


class EngineOnly:
    """Runs a cell under ``_modes()``'s ``EngineOnly`` (the ``floor`` column)."""

    def __call__(self, ns: dict, filename: str, source: str) -> Any:
        return _modes()[1]()


class ChecksOnly:
    """Runs a cell under ``_modes()``'s ``ChecksOnly`` (the ``checks`` column)."""

    def __call__(self, ns: dict, filename: str, source: str) -> Any:
        return _modes()[2](filename)


class Lean:
    """Runs a cell under ``_modes()``'s ``Lean`` (the ``lean`` column)."""

    def __call__(self, ns: dict, filename: str, source: str) -> Any:
        return _modes()[3](filename)


class Tracer:
    """``gradmagic.trace`` with a fresh ``Session`` per run (as one new shell would have);
    ``check``: its check mode (None: the default)."""

    def __init__(self, check: str | None = None) -> None:
        import gradmagic.recorder as rec
        self.trace = rec.trace
        self.Session = getattr(rec, "Session", None)
        self.check = check

    def __call__(self, ns: dict, filename: str, source: str) -> Any:
        session = self.Session() if self.Session is not None else None
        extra = {} if self.check is None else {"check": self.check}
        return self.trace(session=session, namespace=ns, filename=filename, source=source, **extra)


def run_cell(cell: Cell, quick: bool, tracer: Tracer | BareMode | EngineOnly | None) -> tuple[float, dict, Any]:
    """Run ``cell`` once on a fresh namespace: ``(seconds of the cell, namespace, report)``."""
    ns: dict[str, Any] = {"__name__": "__main__", **cell.params(quick)}
    exec(compile(cell.setup, "<bench-setup>", "exec"), ns)
    filename = f"<bench-cell-{cell.name}>"
    linecache.cache[filename] = (len(cell.source), None, cell.source.splitlines(True), filename)
    code = compile(cell.source, filename, "exec")
    report = None
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        if tracer is None:
            exec(code, ns)
        else:
            with tracer(ns, filename, cell.source) as report:
                exec(code, ns)
        elapsed = time.perf_counter() - t0
    return elapsed, ns, report


def describe_report(report: Any) -> str:
    """``"ok"`` or what is wrong with a report (not ok / unsupported ops)."""
    problems = []
    if not getattr(report, "ok", False):
        problems.append(f"report not ok (first divergence {getattr(report, 'first_divergence', None)!r})")
    unsupported = list(getattr(report, "unsupported", []) or [])
    if unsupported:
        problems.append(f"unsupported: {', '.join(map(str, unsupported[:5]))}")
    return "; ".join(problems) or "ok"


def verify(cell: Cell, quick: bool, tracer: Tracer) -> tuple[str, str]:
    """``(values, report)`` statuses: traced values must equal plain ones exactly."""
    _, plain_ns, _ = run_cell(cell, quick, None)
    _, traced_ns, report = run_cell(cell, quick, tracer)
    plain = {k: v.detach().numpy() for k, v in cell.outputs(plain_ns).items()}
    traced = {k: v.detach().numpy() for k, v in cell.outputs(traced_ns).items()}
    problems = h.compare_arrays(plain, traced, rtol=0.0, atol=0.0)
    values = "ok" if not problems else "traced run changed the user's values: " + "; ".join(problems[:3])
    return values, describe_report(report)


def bench_cell(cell: Cell, quick: bool, tracer: Tracer | None, repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {"workload": cell.name, "title": cell.title, "limit": cell.limit}
    runs = {"plain": lambda: run_cell(cell, quick, None)[0]}
    if tracer is None:
        result["status"] = "traced run skipped: gradmagic.recorder not importable"
    else:
        try:
            values, report_status = verify(cell, quick, tracer)
        except Exception as exc:
            values, report_status = f"traced run failed: {type(exc).__name__}: {exc}", "n/a"
        result["status"], result["report"] = values, report_status
        everything = Tracer("all")
        if values == "ok":
            values, all_report = verify(cell, quick, everything)
            if all_report != "ok":
                result["report"] = f"{report_status}; check='all': {all_report}"
        result["status"] = values
        if values == "ok":
            runs["traced"] = lambda: run_cell(cell, quick, tracer)[0]
            runs["all"] = lambda: run_cell(cell, quick, everything)[0]
            runs["mode"] = lambda: run_cell(cell, quick, BareMode())[0]
            runs["floor"] = lambda: run_cell(cell, quick, EngineOnly())[0]
            runs["checks"] = lambda: run_cell(cell, quick, ChecksOnly())[0]
            runs["lean"] = lambda: run_cell(cell, quick, Lean())[0]
    timings = h.time_turns(runs, repeats=repeats)
    result["timings"] = {k: t.to_dict() for k, t in timings.items()}
    medians = {k: t.median_s for k, t in timings.items()}
    ratio, verdict = h.Target(cell.name, "traced", "plain", cell.limit).evaluate(medians)
    result.update(ratio=ratio, verdict=verdict)
    result["all_floor"], result["all_verdict"] = h.Target(cell.name, "all", "floor", ALL_LIMIT).evaluate(medians)
    for run in ("all", "mode", "floor"):
        if run in timings and timings["plain"].median_s:
            result[f"{run}_ratio"] = timings[run].median_s / timings["plain"].median_s
    for run in ("checks", "lean"):  # (ratios to the floor: the least bookkeeping there can be)
        if run in timings and timings["floor"].median_s:
            result[f"{run}_floor"] = timings[run].median_s / timings["floor"].median_s
    return result


# ============================================================================ memory (subprocesses)

def peak_rss(proc: Any) -> int:
    """Peak RSS of this process image in bytes: ``VmHWM`` where Linux has it, else current RSS.

    (``ru_maxrss`` is no good here: Linux carries the parent's peak across fork + exec.)
    """
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return proc.memory_info().rss


def memory_child(mode: str, steps: int) -> dict[str, Any]:
    """Run ``steps`` W3-size training steps plain or traced in this process; RSS figures in bytes."""
    import psutil
    proc = psutil.Process()
    cell = Cell("MEM", "", mlp_setup(MEM_SIZES, MEM_BATCH), MLP_LOOP, lambda q: {"n_steps": steps},
                _layers_out, MEM_LIMIT)
    ns: dict[str, Any] = {"__name__": "__main__", "n_steps": steps}
    exec(compile(cell.setup, "<bench-setup>", "exec"), ns)
    h.limit_threads()
    rss_before = proc.memory_info().rss
    tracer = Tracer() if mode == "traced" else None
    _, ns, report = run_cell(cell, False, tracer)
    rss_after = proc.memory_info().rss
    return {"mode": mode, "steps": steps, "rss_before": rss_before, "rss_after": rss_after,
            "peak_rss": peak_rss(proc),
            "report": describe_report(report) if report is not None else None}


def bench_memory(quick: bool, traced_ok: bool) -> dict[str, Any]:
    steps = 30 if quick else MEM_STEPS
    result: dict[str, Any] = {"workload": "MEM", "limit": MEM_LIMIT,
                              "title": f"RSS after {steps} recorded W3-size steps / plain peak RSS"}
    children = {}
    for mode in ("plain", "traced") if traced_ok else ("plain",):
        cmd = [sys.executable, __file__, "--memory-child", mode, "--steps", str(steps)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            result["status"] = f"{mode} child failed: {proc.stderr.strip().splitlines()[-1:]}"
            break
        children[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["children"] = children
    if "traced" in children and "plain" in children:
        result["ratio"] = children["traced"]["rss_after"] / children["plain"]["peak_rss"]
        result["verdict"] = "PASS" if result["ratio"] <= MEM_LIMIT else "MISS"
        result["report"] = children["traced"]["report"]
        result.setdefault("status", "ok")
    else:
        result.update(ratio=None, verdict="n/a")
        result.setdefault("status", "traced run skipped: gradmagic.recorder not importable")
    return result


# ============================================================================ main

def print_table(results: list[dict[str, Any]], info: dict[str, Any]) -> None:
    print(f"\ngradmagic recorder benchmark · {h.describe_machine(info)}")
    rows = []
    for r in results:
        if r["workload"] == "MEM":
            ch = r["children"]
            plain = f"peak {ch['plain']['peak_rss'] / 2**20:.0f} MiB" if "plain" in ch else "—"
            traced = f"after {ch['traced']['rss_after'] / 2**20:.0f} MiB" if "traced" in ch else "—"
        else:
            med = {k: t["median_s"] for k, t in r["timings"].items()}
            plain, traced = h.fmt_time(med.get("plain")), h.fmt_time(med.get("traced"))
        every, mode, floor = (h.fmt_ratio(r[k]) if r.get(k) else "—" for k in ("all_ratio", "mode_ratio", "floor_ratio"))
        all_floor = (f"{h.fmt_ratio(r['all_floor'])} (≤ {ALL_LIMIT:.1f}×: {r['all_verdict']})"
                     if r.get("all_floor") else "—")
        checks, lean = (h.fmt_ratio(r[k]) if r.get(k) else "—" for k in ("checks_floor", "lean_floor"))
        rows.append([r["workload"], r["title"], plain, traced, h.fmt_ratio(r["ratio"]),
                     f"≤ {r['limit']:.1f}×", r["verdict"], every, mode, floor, all_floor, checks, lean,
                     r.get("report", "n/a")])
    print(h.format_table(["", "workload", "plain", "traced", "ratio", "target", "verdict", "all", "mode",
                          "floor", "all / floor", "checks / floor", "lean / floor", "report"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = h.make_parser(__doc__.split("\n")[0])
    parser.add_argument("--memory-child", choices=("plain", "traced"), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=MEM_STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.steps)))
        return 0
    import torch  # noqa: F401  (before limit_threads, so torch is pinned too)
    notes = h.limit_threads()
    recorder, why = h.try_import("gradmagic.recorder")
    tracer = None
    if recorder is not None and hasattr(recorder, "trace"):
        tracer = Tracer()
    else:
        print(f"traced runs skipped: {why or 'gradmagic.recorder has no trace() yet'}", file=sys.stderr)
    repeats = args.repeats or (2 if args.quick else None)  # None: each cell's own (Cell.repeats)
    chosen = h.selected(args.only, [c.name for c in CELLS] + ["MEM"])
    results = []
    for cell in CELLS:
        if cell.name in chosen:
            print(f"running {cell.name}: {cell.title} ...", file=sys.stderr, flush=True)
            results.append(bench_cell(cell, args.quick, tracer, repeats or cell.repeats))
    if "MEM" in chosen:
        print("running MEM (two subprocesses) ...", file=sys.stderr, flush=True)
        results.append(bench_memory(args.quick, tracer is not None))
    info = h.machine_info(notes)
    print_table(results, info)
    for r in results:
        if r.get("status", "ok") != "ok":
            print(f"{r['workload']}: {r['status']}", file=sys.stderr)
    h.write_json(args.json, {"benchmark": "recorder", "machine": info, "quick": args.quick,
                             "repeats": repeats or {c.name: c.repeats for c in CELLS if c.name in chosen},
                             "results": results})
    failed = any(r.get("status", "ok") != "ok" and "not importable" not in r["status"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
