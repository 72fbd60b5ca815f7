"""Running a corpus cell plain and under ``%grad on`` in a real IPython shell, and comparing
(``tests/test_d2l_course.py``, ``tests/test_tutorials_corpus.py``).

A cell leaves ``outputs`` (tensors it computed) and ``params`` (tensors whose ``.grad`` is
compared) in the shell's namespace; both runs start from ``torch.manual_seed(SEED)``.
"""
from __future__ import annotations

import torch
from IPython.utils.capture import capture_output

import gradmagic
from shell_helpers import torch_function_modes

SEED = 0


def run(ip, source: str):
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=True)
    assert torch_function_modes() == 0, "a TorchFunctionMode was left on the stack"
    return result, cap


def snapshot(ip) -> tuple[list, list]:
    """Copies of the cell's ``outputs`` and of each ``params`` tensor's ``.grad``."""
    ns = ip.user_ns
    outputs = [t.detach().clone() for t in ns["outputs"]]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in ns["params"]]
    return outputs, grads


def run_cell_twice(ip, source: str):
    """(plain outputs, plain grads, recorded outputs, recorded grads, report, cell number)."""
    for name in ("outputs", "params"):
        ip.user_ns.pop(name, None)
    result, cap = run(ip, f"torch.manual_seed({SEED})\n" + source)
    assert result.success, f"plain run failed: {result.error_in_exec!r}\n{cap.stdout}{cap.stderr}"
    plain = snapshot(ip)
    for name in ("outputs", "params"):
        ip.user_ns.pop(name, None)

    run(ip, "%grad on --quiet")
    try:
        n = ip.execution_count
        result, cap = run(ip, f"torch.manual_seed({SEED})\n" + source)
    finally:
        run(ip, "%grad off")
    assert result.success, f"recorded run failed: {result.error_in_exec!r}\n{cap.stdout}{cap.stderr}"
    assert "gradmagic:" not in cap.stderr, cap.stderr
    report = gradmagic.last_report()
    assert report is not None and report.cell["number"] == n, "no report for the recorded cell"
    return (*plain, *snapshot(ip), report)


def assert_same(plain: list, recorded: list, what: str) -> None:
    assert len(plain) == len(recorded), what
    for i, (a, b) in enumerate(zip(plain, recorded)):
        if a is None or b is None:
            assert a is None and b is None, f"{what}[{i}]: {a!r} vs {b!r}"
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, f"{what}[{i}]: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        assert torch.equal(a, b), f"{what}[{i}] differs: max |diff| {(a.double() - b.double()).abs().max().item()}"


def assert_recorded_as_plain(ip, source: str) -> object:
    """Run ``source`` plain and under ``%grad on``: a clean report (no error, nothing
    unsupported, no mismatch, no diagnosis) and outputs and ``.grad``s bit for bit the plain
    run's. Returns the report."""
    plain_out, plain_grads, rec_out, rec_grads, report = run_cell_twice(ip, source)
    assert report.error is None, report.error
    assert report.unsupported == [], f"torch calls without an engine rule: {report.unsupported}"
    assert report.mismatches == [], f"mismatches: {report.mismatches}"
    assert report.diagnoses == [], f"a correct cell diagnosed: {report.diagnoses}"
    assert report.ok
    assert_same(plain_out, rec_out, "outputs")
    assert any(g is not None for g in plain_grads), "the cell computed no gradient"
    assert_same(plain_grads, rec_grads, "grads")
    return report
