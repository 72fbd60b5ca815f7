"""Unusual input through ``%%grad`` in a real IPython shell (issue 6, item 5).

A representative subset of ``tests/recorder/test_unusual_input.py`` as notebook cells:
each cell runs plain and then with ``%%grad`` from the same seed, and must print the
same, return the same ``Out``, leave the same variables and ``.grad``s, leave no mode on
torch's stack, and show a report that is right or says ``unchecked``. Also: cells that
rebind ``torch`` or gradmagic's names, ops in threads and generators, and a ``%%grad``
started from inside a ``%%grad`` cell with ``get_ipython().run_cell_magic``.
"""
from __future__ import annotations

import re

import pytest
import torch
from IPython.utils.capture import capture_output

import gradmagic
from shell_helpers import torch_function_modes


def run(ip, source: str):
    """Run one cell as a front end does; return (ExecutionResult, captured output)."""
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=True)
    assert torch_function_modes() == 0, "a TorchFunctionMode was left on the stack"
    return result, cap


def same(a, b) -> bool:
    """Bit-for-bit equal tensors (NaN equal to NaN, ``.grad`` included), lists of them and
    plain numbers; other objects (threads, generators) only need the same type."""
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if not isinstance(a, torch.Tensor):
        plain = isinstance(a, (int, float, str, type(None)))
        return type(a) is type(b) and (not plain or a == b or a != a and b != b)
    try:
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    except (AssertionError, TypeError):
        return False
    return not a.is_leaf or (a.grad is None and b.grad is None) or (
        a.grad is not None and b.grad is not None and same(a.grad, b.grad))


def _stdout(cap) -> str:
    return re.sub(r"Out\[\d+\]", "Out[n]", cap.stdout)


def like_plain(ip, body: str, options: str = "--format text"):
    """Run ``body`` plain, then under ``%%grad``; assert the user sees the same: stdout,
    ``Out``, success, and every tensor variable it binds. Returns (result, capture)."""
    names = set(re.findall(r"^(\w+)\s*=", body, re.M)) - {"torch"}
    for name in names:
        ip.user_ns.pop(name, None)
    torch.manual_seed(0)
    plain, p_cap = run(ip, body)
    values = {n: ip.user_ns.get(n) for n in names}
    for name in names:
        ip.user_ns.pop(name, None)
    ip.user_ns["torch"] = torch  # the cell may have rebound it
    torch.manual_seed(0)
    result, cap = run(ip, f"%%grad {options}\n{body}")
    assert result.success == plain.success and _stdout(cap) == _stdout(p_cap)
    assert same(result.result, plain.result)
    changed = [n for n in names if not same(values[n], ip.user_ns.get(n))]
    assert changed == [], f"%%grad changed {changed}"
    return result, cap


def shown_text(cap) -> str:
    [out] = cap.outputs
    return out.data["text/plain"]


def leaf(name: str) -> dict:
    return next(x for x in gradmagic.last_report().to_dict()["leaves"] if x["name"] == name)


# ---------------------------------------------------------------- values


def test_nan_and_inf_cell(ip):
    _, cap = like_plain(ip, "x = torch.tensor([1.0, float('nan'), float('inf'), -float('inf'), 0.0], "
                            "requires_grad=True)\ny = torch.exp(-x) + x * 2\ny.sum().backward()\n"
                            "r = torch.sqrt(torch.tensor([0.0, -1.0], requires_grad=True))\nx.grad\n")
    report = gradmagic.last_report()
    assert report.ok and leaf("x")["status"] == "agree" and leaf("x")["grad"] == [
        "-inf" if g == float("-inf") else ("nan" if g != g else g) for g in ip.user_ns["x"].grad.tolist()]
    text = shown_text(cap)
    assert "tensor([1., nan, inf, -inf, 0.])" in text and "✓ agrees" in text


def test_integer_bool_and_complex_cell(ip):
    _, cap = like_plain(ip, "a = torch.arange(6) * 3 // 2\nb = (a % 4 > 1) & (a < 7)\nn = b.sum()\n"
                            "z = torch.tensor([1 + 2j, -0.5j])\nw = z * z + 1\nre = w.real\nw\n")
    report = gradmagic.last_report()
    assert report.ok and report.unsupported == ["Tensor.real"]
    by_name = {n["name"]: n for n in report.to_dict()["nodes"]}
    assert {by_name[k]["status"] for k in ("a", "b", "n", "w")} == {"agree"}
    assert by_name["re"]["status"] == "unchecked"
    text = shown_text(cap)
    assert "tensor([1.+2.0000j, 0.-0.5000j])" in text  # z, as torch prints it




@pytest.mark.parametrize("dtype", ["float16", "float64", "bfloat16"])
def test_precision_cell(ip, dtype):
    like_plain(ip, f"w = torch.randn(4, 3, dtype=torch.{dtype}, requires_grad=True)\n"
                   f"x = torch.randn(5, 4, dtype=torch.{dtype})\n"
                   "loss = torch.tanh(x @ w).pow(2).mean()\nloss.backward()\nw.grad.sum()\n")
    report = gradmagic.last_report()
    assert report.ok, [(c.node, c.what, c.max_abs_err) for c in report.mismatches]
    assert leaf("w")["status"] == "agree"


def test_zero_dim_and_empty_cell(ip):
    _, cap = like_plain(ip, "s = torch.tensor(2.0, requires_grad=True)\ne = torch.zeros(3, 0, requires_grad=True)\n"
                            "t = s * s + e.sum() + e.sum(1).sum()\nt.backward()\n"
                            "k = torch.tensor(5) * 2\n(s.grad, e.grad.shape)\n")
    report = gradmagic.last_report()
    assert report.ok and leaf("s")["status"] == leaf("e")["status"] == "agree"
    text = shown_text(cap)
    assert "tensor(10)" in text and "[3, 0]" in text


def test_non_contiguous_views_and_as_strided_cell(ip):
    like_plain(ip, "x = torch.arange(12.0).reshape(3, 4).requires_grad_()\n"
                   "v = x.t()[::2] * x[:1, :3].expand(2, 3)\na = torch.as_strided(x, (2, 2), (1, 4))\n"
                   "(v.sum() + a.sum()).backward()\nx.grad\n")
    report = gradmagic.last_report()
    assert report.ok and report.unsupported == ["torch.as_strided"]
    assert leaf("x")["status"] == "unchecked"  # a gradient passed through the opaque as_strided


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_cell(ip):
    like_plain(ip, "w = torch.randn(4, 3, device='cuda', requires_grad=True)\n"
                   "loss = torch.tanh(torch.ones(2, 4, device='cuda') @ w).sum()\nloss.backward()\nw.grad.cpu()\n")
    assert gradmagic.last_report().ok and leaf("w")["status"] == "agree"


# ---------------------------------------------------------------- threads, generators


def test_thread_and_generator_cells(ip):
    like_plain(ip, "import threading\nx = torch.ones(3, requires_grad=True)\nbox = []\n"
                   "worker = threading.Thread(target=lambda: box.append((x * 4).sum()))\n"
                   "worker.start()\nworker.join()\nbox[0].backward()\n"
                   "g = ((x * i).sum() for i in range(1, 4))\nfirst = next(g)\nx.grad\n")
    report = gradmagic.last_report()
    assert leaf("x")["status"] == "unchecked" and report.backward_calls[0].status == "unchecked"
    result, _ = run(ip, "rest = [v.item() for v in g]\nrest")
    assert result.result == [6.0, 9.0]
    result, _ = run(ip, "%%grad --quiet\ny = (x * 5).sum()\ny.backward()\nx.grad")
    assert result.result.tolist() == [9.0, 9.0, 9.0]
    assert gradmagic.last_report().node("y").status == "agree"


def test_generator_consumed_in_a_later_grad_cell_is_recorded_there(ip):
    run(ip, "%%grad --quiet\nx = torch.ones(3, requires_grad=True)\n"
            "g = ((x * i).sum() for i in range(3))\n")
    result, _ = run(ip, "%%grad --quiet\nvals = list(g)\nvals[2].backward()\nx.grad")
    assert result.result.tolist() == [2.0, 2.0, 2.0]
    report = gradmagic.last_report()
    assert report.ok and report.leaf("x").status == "agree" and report.node("vals[2]").status == "agree"


# ---------------------------------------------------------------- names


def test_cells_that_rebind_torch(ip):
    like_plain(ip, "x = torch.ones(3, requires_grad=True)\ny = (x * 2).sum()\ny.backward()\ntorch = None\n")
    assert ip.user_ns["torch"] is None and gradmagic.last_report().ok
    ip.run_cell("import torch")
    like_plain(ip, "import numpy as torch\nz = torch.ones(3) * 2\nz\n")
    assert gradmagic.last_report().nodes == []
    ip.run_cell("import torch")
    result, _ = run(ip, "%%grad --quiet\ny2 = (x * 3).sum()\ny2.backward()\nx.grad")
    assert result.result.tolist() == [5.0, 5.0, 5.0] and gradmagic.last_report().leaf("x").status == "agree"


def test_cells_that_shadow_gradmagic_names(ip):
    ip.run_cell("x = torch.ones(2, requires_grad=True)")
    body = "trace = gradmagic = get_ipython = 'user'\n_ = 3\ny = (x * 2).sum()\ny\n"
    torch.manual_seed(0)
    run(ip, body)
    plain_underscore = ip.user_ns["_"]
    ip.run_cell("del trace, gradmagic, get_ipython, _")
    result, cap = run(ip, "%%grad --format text\n" + body)
    assert result.success and ip.user_ns["trace"] == ip.user_ns["gradmagic"] == "user"
    assert same(ip.user_ns["_"], plain_underscore)  # IPython stops updating a user's own _
    assert gradmagic.last_report().ok and "SumBackward0" in shown_text(cap)
    ip.run_cell("del trace, gradmagic, get_ipython, _")
    result, _ = run(ip, "%%grad --quiet\n(x * 3).sum().backward()\nx.grad")
    assert result.result.tolist() == [3.0, 3.0]


# ---------------------------------------------------------------- %%grad inside %%grad

NESTED = ("a = torch.ones(2, requires_grad=True)\nb = a * 2\n"
          "get_ipython().run_cell_magic('grad', '--format text', 'c = (b * 3).sum()\\nc.backward(retain_graph=True)')\n"
          "d = (b * 5).sum()\nd.backward()\na.grad\n")


def test_grad_cell_run_from_inside_a_grad_cell(ip):
    result, cap = like_plain(ip, NESTED)
    assert result.result.tolist() == [16.0, 16.0]
    inner, outer = (out.data["text/plain"] for out in cap.outputs)
    assert "c  SumBackward0" in inner and "✓ agrees with PyTorch" in inner
    assert "Traceback" not in outer + cap.stderr
    assert gradmagic.last_report().error is None


def test_outer_grad_cell_keeps_recording_after_a_nested_one(ip):
    _, cap = run(ip, "%%grad --format text\n" + NESTED)
    report = gradmagic.last_report()
    assert report.node("d") is not None and report.leaf("a").status == "agree"
    inner = cap.outputs[0].data["text/plain"]
    assert "left active" not in inner
