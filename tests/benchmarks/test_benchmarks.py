"""Smoke tests of the benchmarks: each runs end to end with ``--quick`` and checks what it measures.

The benchmarks verify every system's gradients against torch before timing and exit non-zero
when one disagrees, so a passing run here means: hand-written NumPy, HIPS autograd and (once
importable) gradmagic's engine computed torch's gradients on every workload; the recorder's
traced cells left the plain run's values. Pieces not written yet are skipped by the scripts.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _run(script: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--quick", "--json", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "|" in proc.stdout  # a table was printed
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def bench_modules() -> dict:
    """The benchmark modules imported in this process (NumPy is already loaded: no env changes)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in ("_harness", "engine", "magic")}
    finally:
        sys.path.remove(str(BENCH))
        for name in ("_harness", "engine", "magic"):
            sys.modules.pop(name, None)


@pytest.mark.timeout(120)
def test_engine_benchmark_quick(tmp_path: Path) -> None:
    data = _run("engine", tmp_path)
    assert [r["workload"] for r in data["results"]] == ["W1", "W2", "W3", "W4", "W5", "C1", "C2", "C3"]
    for r in data["results"]:
        model = r["workload"].startswith("C")  # issue 11: gradmagic vs torch's nn modules only
        for system in ("torch", "numpy", "hips"):
            if model and system != "torch":
                assert r["status"][system].startswith("n/a"), (r["workload"], system, r["status"][system])
                assert system not in r["medians_s"]
                continue
            assert r["status"][system] == "ok", (r["workload"], system, r["status"][system])
            assert r["medians_s"][system] > 0
        gm = r["status"]["gradmagic"]
        assert gm == "ok" or gm.startswith("not importable"), (r["workload"], gm)
        assert (gm == "ok") == ("gradmagic" in r["medians_s"])
        assert {t["verdict"] for t in r["targets"]} <= ({"PASS", "MISS"} if gm == "ok" else {"n/a"})


@pytest.mark.timeout(120)
def test_recorder_benchmark_quick(tmp_path: Path) -> None:
    data = _run("recorder", tmp_path)
    assert [r["workload"] for r in data["results"]] == ["R1", "R2", "R3", "MEM"]
    for r in data["results"]:
        assert r["status"] == "ok" or "not importable" in r["status"], r
        if r["status"] == "ok":
            assert r["verdict"] in ("PASS", "MISS") and r["ratio"] > 0
            if r["workload"] != "MEM":
                assert r["mode_ratio"] > 0 and r["floor_ratio"] > 0
                assert r["checks_floor"] > 0 and r["lean_floor"] > 0
    mem = data["results"][-1]["children"]
    assert mem["plain"]["peak_rss"] >= mem["plain"]["rss_after"] > 0


def test_floor_mode_recomputes_every_op_and_backward_in_the_engine() -> None:
    """The ``floor`` column's mode does the engine's work it claims (a mode doing less would
    make the floor look lower than what recomputing every op costs)."""
    import torch
    _, engine_only, _, _ = _recorder_modes()
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    mode = engine_only()
    with mode:
        z = x * y + x
        loss = z.sum()
        loss.backward()
        ez = mode.twins[id(z)][2]
        np.testing.assert_array_equal(ez.data, z.detach().numpy())
        ex = mode.twins[id(x)][2]
        np.testing.assert_allclose(ex.grad.data, x.grad.numpy())
        assert ez.grad_fn is not None and ez.grad_fn.op == "add"
    assert not mode.twins  # released at exit


def _recorder_modes() -> tuple:
    """``benchmarks/recorder.py``'s modes: (bare, floor, checks, lean)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("recorder")._modes()
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop("recorder", None)


def test_checks_and_lean_modes_check_every_value_and_gradient() -> None:
    """The ``checks`` and ``lean`` columns bound the recorder's bookkeeping from below only if
    they do the checks they claim: every recomputed value and every accumulated gradient is
    compared with torch's (a wrong engine value is counted as a difference and replaced by
    torch's, as in lockstep), ``.grad = None`` reaches the engine, and ``lean`` keeps the
    user's line of each call."""
    import torch
    _, _, checks_only, lean = _recorder_modes()
    filename = "<lean-test>"
    source = "z = x * y + x\nloss = z.sum()\nloss.backward()\nx.grad = None\nz2 = x * y\nz2.sum().backward()\n"
    for cls in (checks_only, lean):
        x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
        mode = cls(filename)
        with mode:
            exec(compile(source, filename, "exec"), {"x": x, "y": y})
        # values: mul, add, sum, mul, sum; gradients: x and y after each backward
        assert mode.counts == [0, 9], (cls.__name__, mode.counts)
        if cls is lean:
            assert [line for _, (_, line), _, _ in mode.records] == [1, 1, 2, 5, 6]
            assert [(ev[0], ev[1][1]) for ev in mode.events] == [
                ("backward", 3), ("backward", 3), ("set", 4), ("backward", 6), ("backward", 6)]
        else:
            assert not mode.records and not mode.events
    # a wrong engine value is a counted difference, and the engine continues from torch's value
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    mode = checks_only()
    with mode:
        z = x * 2
        engine = mode.twins[id(z)][2].data
        engine[:] = 0.0  # (as if the engine's rule were wrong)
        mode.same(engine, z)
    assert mode.counts == [1, 1]
    np.testing.assert_array_equal(engine, [2.0, 4.0])


@pytest.mark.timeout(120)
def test_magic_benchmark_quick(tmp_path: Path) -> None:
    data = _run("magic", tmp_path)
    seed, graph, resnet, render = data["results"]
    assert len(seed["per_cell_s"]["plain"]) == 11 and min(seed["per_cell_s"]["plain"]) > 0
    assert not seed.get("report_problems"), seed["report_problems"]
    assert graph["nodes"] >= 2000
    # issue 13: a recorded ResNet-18, collapsed by module; its first render in Chromium
    assert [r["graph"] for r in resnet["rows"]] == ["1 pass", "×3 micro-batches"], resnet["notes"]
    one, more = resnet["rows"]
    assert 150 < one["nodes"] < more["nodes"] and more["drawn"][1] > one["drawn"][1] > 0
    assert all(t > 0 for t in more["median_s"].values()) and resnet["verdict"] in ("PASS", "MISS")
    if render["verdict"] != "n/a":  # without Playwright or Chromium it is skipped with a note
        assert [r["drawn"] for r in render["rows"]] == [r["drawn"] for r in resnet["rows"]]
        assert all(0 < r["median_s"]["render"] <= r["median_s"]["painted"] for r in render["rows"])


def test_compare_arrays_flags_every_kind_of_difference(bench_modules: dict) -> None:
    h = bench_modules["_harness"]
    ref = {"a": np.ones(3, np.float32), "b": np.zeros((2, 2), np.float32)}
    assert h.compare_arrays(ref, {k: v.copy() for k, v in ref.items()}, 1e-6, 1e-6) == []
    problems = h.compare_arrays(ref, {"a": np.ones(3, np.float64), "b": np.zeros(4, np.float32)}, 1e-6, 1e-6)
    assert [p.split(":")[1].split()[0] for p in problems] == ["dtype", "shape"]
    problems = h.compare_arrays(ref, {"a": np.full(3, 1.1, np.float32)}, 1e-6, 1e-6)
    assert "max |Δ| 0.1" in problems[0] and problems[1] == "b: missing"


def test_a_system_with_wrong_gradients_is_not_timed(bench_modules: dict) -> None:
    eng = bench_modules["engine"]
    wl = next(w for w in eng.WORKLOADS if w.name == "W5")

    def broken(ctx: object, d: dict) -> "eng.Impl":
        good = eng.np_w5(ctx, d)
        return eng.Impl(good.step, lambda: {**good.gradients(), "w": good.gradients()["w"] * 1.001})

    wl = eng.Workload(wl.name, wl.title, wl.make_data, wl.rtol, wl.atol, {**wl.builders, "numpy": broken})
    contexts, skipped = eng.load_systems("gradmagic.engine")
    impls, status = eng.prepare(wl, contexts, skipped, seed=0)
    assert status["numpy"].startswith("gradients differ from torch: w: max |Δ|")
    assert "numpy" not in impls and status["hips"] == "ok" and "hips" in impls


def test_targets_and_timing_helpers(bench_modules: dict) -> None:
    h = bench_modules["_harness"]
    target = h.Target("gm/torch", "gm", "torch", 0.35)
    assert target.evaluate({"gm": 1.0, "torch": 4.0}) == (0.25, "PASS")
    assert target.evaluate({"gm": 2.0, "torch": 4.0}) == (0.5, "MISS")
    assert target.evaluate({"torch": 4.0}) == (None, "n/a")
    timings = h.time_interleaved({"a": lambda: None, "b": lambda: sum(range(100))}, repeats=3, target_s=1e-3)
    assert all(len(t.times_s) == 3 and t.median_s > 0 for t in timings.values())
    assert timings["b"].median_s > timings["a"].median_s
    assert h.fmt_time(3.6e-6) == "3.6 µs" and h.fmt_time(0.82e-3) == "820 µs" and h.fmt_time(None) == "—"


def test_synthetic_report_follows_the_contract(bench_modules: dict) -> None:
    rep = bench_modules["magic"].synthetic_chain_report(30)
    json.dumps(rep)  # JSON-safe
    ids = {n["id"] for n in rep["nodes"]}
    assert len(ids) == len(rep["nodes"]) == 33
    assert all(e["source"] in ids and e["target"] in ids for e in rep["edges"])
    assert {"schema", "ok", "unsupported", "nodes", "edges", "backward_calls", "leaves", "checks"} <= set(rep)
    assert [leaf["name"] for leaf in rep["leaves"]] == ["x", "w"]
