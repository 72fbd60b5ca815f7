"""Differential fuzzing: random torch programs run plain and under ``gradmagic.trace()``.

Each program (``fuzz_programs.programs()``: every ``TORCH_OPS`` row, broadcasting, reuse,
views, in-place updates, several backward calls, ``retain_graph``, second order) must
leave the user exactly the plain run's values and ``.grad``s, and its report must be ok,
list exactly the program's unsupported calls, call "agree" every gradient checked and
never one that flowed through an unsupported op. The long run is ``benchmarks/fuzz.py``.

Every bug the fuzzer found is kept below as a named regression program (the shrunk
example, as source); the ones whose fix lies outside the recorder's mapping/backward
files are strict xfails that name the fix.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import fuzz_autograd
import fuzz_programs as fp
import gradmagic
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace
from gradmagic.recorder.mapping import TORCH_OPS

AVOID = frozenset(fp.KNOWN_GAPS)


# derandomized: CI runs the same 500 programs every time (discovery is the long run's job, whose
# finds become the named regressions below); a failure still shrinks to a few statements
@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fp.programs(avoid=AVOID))
def test_random_programs_plain_vs_traced(prog):
    assert fp.check_program(prog) == []


def test_seeded_random_programs_plain_vs_traced():
    """200 larger programs drawn with ``random.Random`` (the long run's first seeds): no
    shrinking, but more diverse than hypothesis's small examples. A failure names its seed:
    ``fuzz_programs.random_program(seed)``; ``fuzz_programs.shrink`` makes it small."""
    failing = {}
    for seed in range(200):
        problems = fp.check_program(fp.random_program(seed, avoid=AVOID))
        if problems:
            failing[seed] = problems[:2]
    assert failing == {}


def test_every_table_row_is_generated():
    """The generator reaches every row of the mapping table (a row: one adapter and its
    aliases) that torch can reach, every factory and every autograd-state call (600 programs:
    the table has about 400 rows since the op families of issue 11)."""
    seen: Counter = Counter()
    for seed in range(600):
        seen.update(fp.random_program(seed).ops())
    cov = fp.coverage(seen)
    assert set(cov["rows_missing"]) == fp.UNREACHABLE
    assert cov["names_hit"] / cov["names_total"] > 0.9, cov["names_missing"]


@pytest.mark.parametrize("src", ["torch.from_numpy(np.ones(2))", "torch.range(1, 3)"])
def test_unreachable_rows_are_never_seen_by_a_torch_function_mode(src):
    counter = fp._Count()
    with counter:
        eval(src, fp.fresh_namespace())
    assert counter.names == []


def test_docstring_examples_of_the_generator():
    import doctest

    assert doctest.testmod(fp).failed == 0


def test_autograd_grad_results_pair_with_their_inputs_in_order():
    """The generator paired ``g24, g25 = autograd.grad(loss, [x13, x1])`` with its inputs sorted
    by ``str.index``, which finds ``x1`` inside ``x13``: in some processes (set order follows
    the hash seed) g24 took x1's path through ``torch.trunc``, and gradmagic's right "agree"
    on ``(g24 * g24).sum().backward()`` was counted as a difference (program 171833)."""
    code = "import fuzz_programs as fp; print(fp.check_program(fp.random_program(171833)))"
    for hash_seed in ("2", "3"):  # (both failed before the fix)
        out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": hash_seed,
                                                          "PYTHONPATH": str(Path(__file__).parent)})
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "[]"


def test_printed_program_is_the_program():
    """A failing example prints as source that runs as is (what to paste)."""
    prog = fp.program_from_source("x = torch.ones(2, requires_grad=True)\ny = (x * 3).sum()\ny.backward()")
    text = repr(prog)
    ns = fp.fresh_namespace()
    exec(text.split("\n", 2)[2].rsplit(")", 1)[0], ns)
    assert ns["x"].grad.tolist() == [3.0, 3.0]


def test_checker_sees_a_wrong_rule(monkeypatch):
    """The oracle can fail: a broken engine rule is reported as a mismatch."""
    prog = fp.program_from_source("x = torch.randn(3, requires_grad=True)\ny = (x * x).sum()\ny.backward()")
    assert fp.check_program(prog) == []
    mul = REGISTRY["mul"]
    monkeypatch.setattr(mul, "vjps", (lambda g, ans, a, b: g * b * 2, mul.vjps[1]))
    problems = fp.check_program(prog)
    assert any(p.startswith("mismatch") for p in problems) and any("expected agree" in p for p in problems)


def test_checker_sees_a_changed_user_value(monkeypatch):
    """The oracle can fail: a recorder that touched the user's tensor is caught."""
    import torch
    from gradmagic.recorder.mode import Recorder

    real = Recorder.__torch_function__

    def meddling(self, func, types, args=(), kwargs=None):
        out = real(self, func, types, args, kwargs)
        if func is torch.randn:
            with torch.no_grad():
                out.add_(1e-3)
        return out

    monkeypatch.setattr(Recorder, "__torch_function__", meddling)
    prog = fp.program_from_source("x = torch.randn(3, requires_grad=True)\n(x * 2).sum().backward()")
    assert any("variable x differs" in p for p in fp.check_program(prog))


def test_unsupported_calls_are_listed_and_never_agree():
    prog = fp.program_from_source(
        "x = torch.randn(3, requires_grad=True)\nw = torch.randn(3, requires_grad=True)\n"
        "y = torch.special.i0e(x) * w\nloss = y.sum()\nloss.backward()\n")
    assert prog.unsupported == {"torch.special.i0e"}
    facts = prog.stmts[-1].facts
    assert facts.tainted == {"x"} and facts.reached == {"x", "w"}
    assert fp.check_program(prog) == []


# ----------------------------------------------------------------------------- regressions
# The shrunk programs of the bugs the fuzzer found (source as printed by the failing example).

REGRESSIONS = {
    # recorder/backward.py: torch gives 0-d leaves summed this way views of one gradient
    # buffer; the next accumulation (and an edit of one .grad) changes both, in the engine too
    "zero_d_leaves_sharing_one_grad_buffer_accumulate_together": """
x1 = torch.tensor(0.25, requires_grad=True)
x2 = torch.tensor(0.25, requires_grad=True)
x3 = torch.randn((3, 2), requires_grad=True)
(x2.sum() + x1.sum()).backward()
loss = (x3 * (x1 + x2)).pow(2).sum()
loss.backward(retain_graph=True)
(loss * 2).backward()
""",
    "zero_d_leaves_sharing_one_grad_buffer_edit_together": """
x1 = torch.randn((), requires_grad=True)
x3 = torch.ones(()).requires_grad_()
(x1.sum() + x3.sum()).backward()
x1.grad.mul_(0.5)
x3.grad.data.zero_()
(x1 * x3).backward()
""",
    # recorder/backward.py: autograd.grad compared a float64 leaf's gradient that went
    # through float32 ops with float64's tolerances (backward() already used float32's)
    "autograd_grad_of_a_float64_leaf_through_float32_ops": """
torch.manual_seed(60193)
x1 = torch.arange(6.0).reshape((1, 2, 3)).requires_grad_()
x2 = torch.randn(()).double().requires_grad_()
x3 = torch.ones(()).requires_grad_()
t5 = x2.amin()
x6 = torch.randn((2, 4), requires_grad=True)
t7 = F.cross_entropy(x6, torch.randint(0, 4, (2,)), reduction='none')
t12 = torch.sub(x6, t5)
w13 = torch.randn((4, 2), requires_grad=True)
t16 = 2 ** (t12 @ w13).tanh()
loss = torch.log((t16.abs() + 0.5)).sum() + (x3.ceil() ** 2).mean()
g19, g20, = torch.autograd.grad(loss, [x3, x2])
""",
    # engine/ops/reduce.py: var's VJP divided by 0 in Python and took NumPy's mean of an
    # empty slice (a warning in the user's cell)
    "var_backward_of_an_empty_slice": """
x = torch.full((1, 3, 2), 0.5, requires_grad=True)
t = x[x > 0.75]
v = torch.var(t, -1, unbiased=False)
(v.sum() + t.sum()).backward()
""",
    # engine/ops/reduce.py: log_softmax of an empty tensor (max has no identity)
    "log_softmax_of_an_empty_tensor": """
x = torch.randn((2, 0), requires_grad=True)
t = x.log_softmax(dim=-1)
(t.sum() + x.sum()).backward()
""",
    # engine/ops/linalg.py: linear's weight VJP reshaped an empty input with -1
    "linear_of_an_empty_input": """
w = torch.randn((1, 0), requires_grad=True)
t = F.linear(torch.randn(0), w, bias=torch.ones(1))
t.sum().backward()
""",
    # engine/methods.py: the engine's .T of a 0-d tensor was the tensor itself
    "transpose_of_a_0d_tensor_retains_its_own_grad": """
x = torch.full((), 0.5, requires_grad=True)
x.backward(gradient=torch.randn_like(x))
t = x.T
(x * x + t).backward()
t.retain_grad()
x.backward(torch.ones_like(x))
""",
    # engine/ops/elementwise.py: fill_'s zero VJP kept a graph to the gradient (torch's
    # zeros_like(grad) is a constant), so a double backward reached leaves torch does not
    "second_order_through_fill_reaches_no_other_leaf": """
x2 = torch.arange(9.0).reshape((3, 3)).requires_grad_()
x3 = torch.full((3,), 0.5, requires_grad=True)
t4 = x3.clone()
t4.fill_(1.5)
t6 = x2 + t4
loss = (x3 * x3).mean() + (t6 * t6).mean()
g, = torch.autograd.grad(loss, [x3], create_graph=True)
(g * g).sum().backward()
""",
    # engine/ops/reduce.py: std's VJP differed from torch's std_backward at std = 0 under a
    # double backward (torch: NaN into a retained std)
    "second_order_of_std_at_zero_into_a_retained_std": """
x = torch.randn((), requires_grad=True)
s = torch.std(x, unbiased=False)
loss = (s * s).mean() + x.sum()
s.retain_grad()
g, = torch.autograd.grad(loss, [x], create_graph=True)
(g * g).sum().backward()
""",
    # recorder/twins.py: x.data = v wrote into the twin's memory, which a detached view of x
    # shares in the engine (torch gives x new memory: the view keeps the old value)
    "data_assignment_leaves_old_views_alone": """
x = torch.as_tensor([0.25]).requires_grad_()
d = x[None][0].detach()
x.data = x.data * 0.5
t = d.clip(-0.5, 0.5) + x
t.sum().backward()
""",
    # mapping.py: Tensor.where(cond, other) took its receiver for the condition
    "tensor_where_receiver_is_the_value": """
x = torch.ones(2, requires_grad=True)
c = torch.tensor([1.0, -1.0])
t = c.where(c > 0, x)
t.sum().backward()
""",
    # mapping.py: F.binary_cross_entropy_with_logits(reduction=...) passes pos_weight=None
    "bce_with_logits_with_a_reduction": """
x = torch.ones(2, requires_grad=True)
t = F.binary_cross_entropy_with_logits(x, torch.rand(2), reduction='none')
t.sum().backward()
""",
    # backward.py: autograd.grad through an unsupported op made the engine raise ("differ")
    "autograd_grad_through_an_unsupported_op": """
x = torch.randn(3, requires_grad=True)
y = torch.special.i0e(x * 2)
g, = torch.autograd.grad(y.sum(), [x], create_graph=True)
(g * g).sum().backward()
""",
    # backward.py: a leaf reached only through an unsupported op got no event and no check,
    # so its history missed the accumulation and the "not cleared" hint was wrong
    "leaf_reached_only_through_an_unsupported_op": """
x = torch.randn(3, requires_grad=True)
loss = torch.special.i0e(x).sum()
loss.backward()
loss2 = (x * 2).sum()
loss2.backward()
""",
    # backward.py: an in-place write through a view (CopySlices) hid the leaves below it:
    # gradients missing that path were compared (false "differ") or called "agree"
    "inplace_write_through_a_view": """
x = torch.randn((2, 2), requires_grad=True)
t = x.clone()
t[0].copy_(torch.tensor(-0.71))
loss = (t * t).sum() + x.sum()
loss.backward()
""",
    "inplace_write_through_a_view_then_second_order": """
x = torch.randn((2, 2), requires_grad=True)
t = x.clone()
t[0].copy_(torch.tensor(-0.71))
loss = (t * t).sum() + x.sum()
g, = torch.autograd.grad(loss, [x], create_graph=True)
(g * g).sum().backward()
""",
    # engine/broadcast.py: ``t[...] = v`` with extra leading size-1 dims in v (torch drops
    # them): the value's gradient came back with too few dims and backward raised
    "setitem_value_with_leading_ones": """
x1 = torch.randn((1, 1), requires_grad=True)
t10 = torch.randn((1,)).clone()
t10[...] = x1 * 2
t10.retain_grad()
t10.sum().backward()
""",
    # backward.py: backward(inputs=[x]) skipped the opaque node, so x (reached through it)
    # was compared without that path
    # ops/reduce.py (fixed by its owner meanwhile): std's VJP divided by std == 0 (NaN, torch: 0)
    "std_of_a_constant_input": """
x = torch.zeros(3, requires_grad=True)
y = x.std()
y.backward()
""",
    # recorder/state.py (fixed by its owner meanwhile): x.grad.data.zero_() left the engine's
    # .grad and the history unchanged (wrong "accumulated without clearing" hint)
    "grad_data_zero_is_mirrored": """
x = torch.ones(2, requires_grad=True)
loss = (x * x).sum()
loss.backward(retain_graph=True)
x.grad.data.zero_()
(loss * 2).backward()
""",
    # backward.py: a float64 leaf whose gradient passed through float32 ops was held to
    # float64's tolerance (false "differ" of 7e-8 relative)
    "float64_leaf_through_float32_ops": """
x = torch.randn((3, 2), dtype=torch.float64, requires_grad=True)
loss = (x.float().tanh() * 3).pow(2).sum() + x.sum()
loss.backward()
""",
    # backward.py: backward(inputs=[x1]) recorded an accumulation for a leaf reached only
    # through an unsupported op although torch left it alone (wrong "not cleared" hint)
    "backward_inputs_leaves_other_leaves_alone": """
x1 = torch.randn((1,), requires_grad=True)
x3 = torch.randn((1,), requires_grad=True)
loss = x1.sum() + torch.special.i0e(x3).sum()
loss.backward()
loss2 = torch.special.i0e(x3).sum() + x1.sum()
loss2.backward(inputs=[x1])
""",
    "backward_inputs_through_an_unsupported_op": """
x = torch.randn(3, requires_grad=True)
y = torch.hypot(x, x * 0.5 + 1) * 0.25 + x
loss = (y * y).sum()
loss.backward(inputs=[x])
""",
    # the fuzz runs of 2026-12-06 (seeds 50000 and 70000), each a false "differ" before its fix.
    # engine/ops/nn.py: var = inf gave NaN (var + (max(var, eps) − var) is inf − inf), torch inf
    "gaussian_nll_loss_with_an_infinite_variance": """
x = torch.tensor([3.0, 1.0], requires_grad=True)
var = torch.tensor([float('inf'), 2.0], requires_grad=True)
loss = F.gaussian_nll_loss(x, torch.zeros(2), var, full=True)
each = F.gaussian_nll_loss(x, torch.zeros(2), var, reduction='none')
loss.backward()
""",
    # recorder/magnitudes.py: GroupNorm's x·(rstd·w) overflows in torch's order (NaN), not in NumPy's
    "group_norm_with_weights_at_float32s_largest_value": """
x = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 2.0]).reshape(1, 3, 2).requires_grad_()
w = torch.full((3,), 3.4028234663852886e38)
y = F.group_norm(x, 1, w, w)
""",
    # engine/ops/nn.py: torch adds the margin first: 1 + 3.4e38 − 3.4e38 is 0, 3.4e38 − 3.4e38 + 1 is 1
    "triplet_margin_loss_in_torchs_order": """
a = torch.full((2, 1), 3.4028234663852886e38, requires_grad=True)
loss = F.triplet_margin_loss(a, torch.tensor([[2.45], [-1.26]]), torch.tensor([[0.26], [-0.35]]))
""",
    # engine/ops/elementwise.py: torch's sign(NaN) is 0 (NumPy's NaN), so is abs's gradient there
    "sign_of_nan_is_zero": """
x = torch.tensor([float('nan'), 2.0, -1.0], requires_grad=True)
l = [x.clone(), x * 0.5]
torch._foreach_sign_(l)
s = torch.sign(x)
x.abs().sum().backward()
""",
    # recorder/hook_handlers.py: a leaf checked by its post-accumulate-grad hook did not continue
    # from torch's .grad (lockstep), so its create_graph .grad, used again, was off by rounding
    "post_accumulate_hooked_grad_used_again_starts_from_torchs": """
x3 = torch.linspace(-1, 1, 1).reshape((1,)).requires_grad_()
t6 = (x3.sum() * torch.linspace(-2.88, 2.88, 2000)).sin().sum()
x3.register_post_accumulate_grad_hook(lambda p: None)
t6.backward(create_graph=True)
loss9 = (x3.grad * x3.grad).sum()
loss9.backward(inputs=[x3])
x3.grad = None
""",
    # recorder/hooks.py: g + 1 at one element g = 1.8e-10 also fits 5.4e9·g, which blew the engine's
    # own rounding of g up to 4.06
    "hook_shift_on_one_tiny_gradient_with_create_graph": """
x3 = torch.full((), 0.5, requires_grad=True)
h = x3.register_hook(lambda g: g + 1.0)
t15 = (x3.sum() * torch.linspace(-2.85, 2.85, 2000)).sin().sum()
g, = torch.autograd.grad(t15.float().pow(2).sum(), [x3], create_graph=True)
""",
    # recorder/hooks.py: g + 1 where g is 7.5e37 leaves g as it is (float32): still a shift
    "hook_shift_absorbed_by_huge_gradients_with_create_graph": """
x1 = torch.randn((1, 1), requires_grad=True)
t10 = F.unfold(x1.reshape(-1, 1, 1, 1), 1, padding=1)
t12 = (1 / t10).nan_to_num(neginf=-2.0)
t14 = torch.addcdiv(t12, t12.sin(), (t12.cos() + 2), value=-2)
h15 = t14.register_hook(lambda g: g + 1.0)
loss20 = (t14 * t14).mean() + t12.sum()
loss20.backward(create_graph=True)
loss21 = (x1.grad * x1.grad).sum()
loss21.backward(inputs=[x1])
x1.grad = None
""",
    # recorder/functions.py: the gradient reaching a custom Function's node, float64 through
    # float32 ops (xlogy of a float32 tensor and a float64 0-d one is float32), takes float32's tolerances
    "function_node_gradient_through_float32_ops": """
torch.manual_seed(22912)
x1 = torch.randn(()).double().requires_grad_()
t10 = torch.rand(1, 2, 2) * 3 - 1
t20 = FzCube.apply(x1.tanh())
t21 = torch.xlogy(t10, (t20 ** 2 + 0.5))
loss22 = t20.sum() + t21.sum() + x1.sum()
loss22.backward(retain_graph=True)
""",
    # recorder/backward.py: autograd.grad's result, a broadcast view (x.sum()'s gradient), was not
    # put in lockstep (not writeable): the next op on it started from the engine's rounding
    "autograd_grad_result_of_a_sum_in_lockstep": """
x3 = torch.zeros((1, 1, 3), requires_grad=True)
t4 = (x3.sum() * torch.linspace(-2.78, 2.78, 1001)).sin().sum()
g15, = torch.autograd.grad(t4, [x3], create_graph=True)
t19 = g15.to(torch.float64)
""",
    # engine/ops/activations.py: torch's prelu backward chooses by x > 0, its double backward by
    # x >= 0: at x = 0 the second-order gradients of x and of the slope were the other branch's
    "prelu_second_order_at_zero": """
x1 = torch.zeros((1, 1), requires_grad=True)
w13 = torch.full((1,), 0.33, requires_grad=True)
t14 = F.prelu(x1, w13)
g19, g20, = torch.autograd.grad((t14 * t14).mean() + t14.sum(), [x1, w13], create_graph=True)
loss21 = (g19 * g19).sum() + (g20 * g20).sum()
loss21.backward()
""",
    # recorder/state.py, mode.py: a write through x.data (its own version counter) left the twins
    # of x's views made before it stale
    "views_of_a_leaf_written_through_data": """
x1 = torch.full((1,), 0.5, requires_grad=True)
t10 = x1.reshape(1, -1).diagonal(0, -1, 0)
(x1 * x1).sum().backward()
x1.data.add_(x1.grad.data, alpha=-0.31)
loss = t10.float().pow(2).sum()
loss.backward()
""",
    # recorder/magnitudes.py: Σ|terms| through a custom Function's node re-ran its replay on
    # absolute values (NaN): a cancelling sum below it had no rounding bound
    "cancelling_sum_below_a_custom_function": """
torch.manual_seed(20239)
x2 = torch.normal(0.0, 1.0, (1, 1)).requires_grad_(True)
x3 = torch.randn((), requires_grad=True)
t8 = (x2.sum() * torch.linspace(-2.14, 2.14, 999)).sin().sum()
loss9 = t8.sum() + (x3 * x3).mean()
t11 = FzMulAdd.apply(loss9, loss9)
t11.sum().backward()
""",
    # recorder/magnitudes.py: an input a node computed is kept as its bare array, whose .data is
    # a memoryview: the rules ran on signed values (or not at all), so Σ|terms| of the
    # cancelling sum above an LSTM shrank to |g| below it (program 133352)
    "cancelling_sum_above_an_lstm": """
torch.manual_seed(3)
x1 = torch.randn((3, 3, 3), requires_grad=True)
w2 = torch.randn((2, 8, 8), requires_grad=True)
t3 = torch.lstm(x1, (torch.randn(2, 3, 2), torch.randn(2, 3, 2)), [w2[0, :, :3], w2[0, :, 4:6], w2[1, :, :3], w2[1, :, 4:6]], False, 1, 0.0, False, True, False)[1]
t4 = (t3.sum() * torch.linspace(-1.9, 1.9, 1001)).sin().sum()
(t4 + (t3 * t3).mean()).backward()
""",
    # recorder/magnitudes.py: maximum's rule ran on |x1| and |x2| only, and routed Σ|terms| of a
    # cancelling sum to the other input where |x1| > x2 > x1 (program 137961)
    "cancelling_sum_above_a_maximum_of_a_negative_input": """
torch.manual_seed(37444)
x1 = torch.randn((1,), requires_grad=True)
x2 = torch.rand((1, 3, 1), requires_grad=True)
t6 = torch.maximum(x1, x2)
t10 = (t6.sum() * torch.linspace(-2.88, 2.88, 2000)).sin().sum()
loss11 = x1.sum() + t10.sum()
loss11.backward()
""",
    # recorder/state.py: ``x.data = v`` gives x new memory; a view made before keeps the old
    # values (in torch and the engine), but was re-derived from x's new value (program 155549)
    "view_made_before_data_is_rebound_keeps_the_old_values": """
x1 = torch.full((2,), 0.5, requires_grad=True)
t5 = x1[0]
x1.data = x1.data * 0.5
loss19 = t5.sum()
""",
    # recorder/precision.py: cosine_similarity of float32 and float64 divides the float32 side
    # by its float32 norm before promoting: float32 rounding in a float64 value (program 157657)
    "cosine_similarity_of_float32_and_float64_rounds_in_float32": """
torch.manual_seed(0)
x1 = torch.randn((4, 3), requires_grad=True)
c2 = torch.ones(3, dtype=torch.float64)
t3 = F.cosine_similarity(x1, c2, dim=1)
t3.sum().backward()
""",
    # engine/ops/norm.py: embedding's gradient reshaped g to (-1, 0) for a weight of width 0,
    # which NumPy cannot infer: the autograd.grad went unmirrored (program 171119)
    "embedding_of_width_zero_under_create_graph": """
x1 = torch.ones((1,)).requires_grad_()
t5 = torch.diagonal(x1.reshape(1, -1), offset=-1, dim1=1, dim2=0)
t7 = torch.embedding(t5.reshape(1, -1), torch.zeros((3, 3), dtype=torch.long), -1)
loss11 = (t7 * t7).mean()
g12, = torch.autograd.grad(loss11, [x1], create_graph=True)
loss13 = (g12 * g12).sum()
loss13.backward()
w = torch.ones((1, 0), requires_grad=True)
e = F.embedding(torch.zeros((3, 3), dtype=torch.long), w, scale_grad_by_freq=True)
g, = torch.autograd.grad((e * e).sum(), [w], create_graph=True)
(g * g).sum().backward()
""",
    # recorder/state.py + twins.py: a write through x.data is not autograd's (torch's version
    # counter of x stays, and a backward that saved x reads the new values); the engine bumped
    # its leaf's version and refused the backward (program 195859)
    "write_through_data_after_the_forward_is_not_a_version_change": """
x = torch.ones(2, requires_grad=True)
y = (x * x).sum()
x.data.mul_(2)
y.backward()
x2 = torch.randn((2,), requires_grad=True)
t4 = torch.special.xlogy(x2, torch.full((1, 2, 2), 0.5))
x2.data.add_(torch.ones(2), alpha=-0.21)
t4.backward(gradient=torch.randn_like(t4))
""",
    # engine/ops/activations.py: the slope's gradient is a node with w among its inputs in torch,
    # so a backward through it gives w a zero gradient; the engine's gave none (program 216058)
    "backward_through_prelus_slope_gradient_zeroes_the_slope": """
x2 = torch.randn((1, 1), requires_grad=True)
w8 = torch.full((1,), 0.18, requires_grad=True)
t9 = x2.prelu(w8)
g11, = torch.autograd.grad(t9.sum(), [w8], create_graph=True)
loss12 = (g11 * g11).sum()
loss12.backward()
""",
    # recorder/backward.py: a backward whose every path has a zero derivative left torch's x1.grad
    # as it was (the same tensor, the same version); the engine added zeros and the report said
    # x1.grad "summed the gradients of two backward calls" (program 230430)
    "zero_derivative_backward_that_leaves_grad_alone_is_no_accumulation": """
x1 = torch.tensor([0.25, 0.75], requires_grad=True)
c2 = torch.randn((3, 2))
t8 = torch.batch_norm(c2, torch.rand(2, requires_grad=True), x1, torch.zeros(2), torch.ones(2), False, 0.1, 1e-05, False) * torch.linspace(0.5, 1.5, 6).reshape((3, 2))
loss9 = t8.sum()
loss9.backward(create_graph=True)
loss10 = (x1.grad * x1.grad).sum()
loss10.backward(inputs=[x1])
""",
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression(name):
    assert fp.check_program(fp.program_from_source(REGRESSIONS[name])) == []


# engine/backward.py (fixed by its owner meanwhile): autograd.grad fills the .grad of retain_grad()
# tensors it passes, as torch >= 2 does
def test_regression_retain_grad_is_filled_by_autograd_grad():
    prog = fp.program_from_source("""
x = torch.randn((1, 1, 1), requires_grad=True)
t = x.tanh().exp()
loss = (t * t).mean()
t.retain_grad()
g, = torch.autograd.grad(loss, [x], create_graph=True)
loss2 = (g * g).sum()
loss2.backward()
""")
    assert fp.check_program(prog) == []


def test_regression_std_of_a_constant_input():
    prog = fp.program_from_source("""
x = torch.ones(3, requires_grad=True)
s = x.std() + x.sum()
s.backward()
""")
    assert fp.check_program(prog) == []


def test_regression_grad_data_zero_is_mirrored():
    prog = fp.program_from_source("""
x = torch.ones(2, requires_grad=True)
loss = (x * x).sum()
loss.backward(retain_graph=True)
x.grad.data.zero_()
(loss * 2).backward()
""")
    assert fp.check_program(prog) == []


def test_regression_cumsum_of_a_0d_tensor():
    prog = fp.program_from_source("x = torch.ones((), requires_grad=True)\nt = torch.cumsum(x, 0)\nt.backward()")
    assert fp.check_program(prog) == []


def test_regression_var_of_an_empty_slice_adds_no_warning():
    prog = fp.program_from_source("x = torch.randn((0, 2), requires_grad=True)\ny = torch.std(x, 0, unbiased=False)")
    assert fp.check_program(prog) == []


def test_regression_index_put_on_a_0d_tensor():
    prog = fp.program_from_source("""
x1 = torch.rand((1, 3), requires_grad=True)
x2 = torch.full((3,), 0.5, requires_grad=True)
x3 = torch.as_tensor(0.25).requires_grad_()
t5 = x2.absolute()
t7 = x3.clone()
t7[t7 > 0] = 0.5
t8 = t7 / (t5 * t5 + 0.5)
t10 = x2.reshape((1, 3))
t12 = torch.roll(t10, 1, 0)
loss13 = t12.sum() + t8.float().pow(2).sum() + t7.sum()
loss13.backward(retain_graph=True)
""")
    assert fp.check_program(prog) == []


# ops/shape.py: torch selects with an int first, so an index list apart from it keeps its dims
# in place (NumPy moves them to the front)
def test_regression_getitem_with_separated_advanced_indices():
    prog = fp.program_from_source("x = torch.randn((2, 2), requires_grad=True)\nt = x[..., 0, None, [0, 0]]\n"
                                  "t.sum().backward()")
    assert fp.check_program(prog) == []


def test_regression_second_order_through_abs():
    prog = fp.program_from_source("""
x1 = torch.randn((1, 1), requires_grad=True)
t4 = x1.__abs__()
loss8 = t4.sum()
g9, = torch.autograd.grad(loss8, [x1], create_graph=True)
loss10 = (g9 * g9).sum()
loss10.backward()
""")
    assert fp.check_program(prog) == []


# engine/ops: the gradient of a piecewise op keeps torch's (zero) graph to x, so differentiating
# it again works (relu: threshold_backward; leaky_relu: leaky_relu_backward; sign(x) in the
# p-norms; floor in remainder); the 2-norm's masked quotient at 0 gives torch's NaN at order 2
SECOND_ORDER = {
    "relu": "torch.relu(x1).sum()",
    "leaky_relu": "F.leaky_relu(x1, 0.1).sum()",
    "relu_of_a_computed_tensor": "(x1 * 2 - 0.5).relu().pow(2).sum()",
    "l1_norm": "x1.norm(p=1)",
    "inf_norm": "x1.norm(p=float('inf'))",
    "remainder_wrt_divisor": "(torch.ones(2, 2) % (x1.abs() + 0.5)).sum()",
    "norm_at_zero": "(x1 - x1).norm()",
    "norm_at_zero_along_a_dim": "(x1 * torch.tensor([[0.0], [1.0]])).norm(dim=1).sum()",
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_regression_second_order_through_piecewise_ops(name):
    prog = fp.program_from_source(f"""
x1 = torch.randn((2, 2), requires_grad=True)
loss8 = {SECOND_ORDER[name]}
g9, = torch.autograd.grad(loss8, [x1], create_graph=True)
loss10 = (g9 * g9).sum()
loss10.backward()
""")
    assert fp.check_program(prog) == []


def test_regression_second_order_of_norm_at_zero():
    prog = fp.program_from_source("""
x = torch.randn((1, 2), requires_grad=True)
t = (x - x).norm()
g, = torch.autograd.grad(t, [x], create_graph=True)
loss = (g * g).sum() + x.sum()
loss.backward()
""")
    assert fp.check_program(prog) == []


# recorder/backward.py (_zero_path): torch keeps a gradient of a linear op connected to its
# input with a derivative that is identically zero; the engine's graph has no such edge. The
# next backward is mirrored as "no leaf changed", not left unchecked (fuzz seeds 3116, 1510)
ZERO_PATH = {
    "autograd_grad_of_conv1d": """
x6 = torch.randn((2, 2, 4, 5), dtype=torch.float64, requires_grad=True)
t7 = torch.conv1d(x6.flatten(2), torch.randn(2, 2, 2, dtype=torch.float64), None)
g10, = torch.autograd.grad(t7.sum(), [x6], create_graph=True)
loss11 = (g10 * g10).sum()
loss11.backward()
""",
    "grad_of_conv_transpose3d_with_inputs": """
x16 = torch.randn((2, 2, 4, 5), requires_grad=True)
t17 = torch.conv_transpose3d(x16.unsqueeze(2), torch.randn(2, 2, 1, 1, 2), dilation=2)
t17.sum().backward(create_graph=True)
loss19 = (x16.grad * x16.grad).sum()
loss19.backward(inputs=[x16])
""",
}


@pytest.mark.parametrize("name", sorted(ZERO_PATH))
def test_regression_backward_through_a_zero_derivative_path(name):
    prog = fp.program_from_source(ZERO_PATH[name])
    assert fp.check_program(prog) == []
    rep = gradmagic.last_report()
    assert rep.backward_calls[-1].status == "agree", rep.notes
    assert any("identically zero" in n for n in rep.notes), rep.notes


GAP_TESTS: dict = {}  # none open now; a new one: its name in fp.KNOWN_GAPS -> its strict xfail


def test_known_gaps_have_strict_xfails():
    """Every construct the CI fuzzing avoids has its strict-xfail regression test above."""
    assert set(GAP_TESTS) == set(fp.KNOWN_GAPS)
    for test in GAP_TESTS.values():
        (mark,) = [m for m in test.pytestmark if m.name == "xfail"]
        assert mark.kwargs["strict"] is True and "needs fix in" in mark.kwargs["reason"]


@pytest.mark.parametrize("mutant", sorted(fuzz_autograd.MUTANTS))
@pytest.mark.parametrize("seed", [3, 11, 42])
def test_every_mutated_backward_is_caught_on_its_node(mutant, seed):
    """Random programs with a custom Function whose backward is wrong (a sign, a missing factor,
    a wrong power): the report differs, on that Function's node and only there."""
    prog = fp.random_program(seed)
    src = prog.source() + (f"m_in = torch.linspace(-1.0, 1.0, 5, requires_grad=True)\n"
                           f"m_out = {mutant}.apply(m_in * 1.5)\n(m_out * m_out.tanh()).sum().backward()\n")
    ns = fp.fresh_namespace()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with trace(session=Session(), namespace=ns, check="all") as rep:
            exec(compile(src, "<fuzz>", "exec"), ns)
    labels = {n.id: n.label for n in rep.nodes}
    assert not rep.ok
    caught = [m for m in rep.mismatches if labels.get(m.node) == f"{mutant}Backward"]
    assert caught and all(f"your {mutant}.backward is off" in (m.detail or "") for m in caught
                          if m.what == "grad"), rep.mismatches
    assert all(labels.get(m.node) == f"{mutant}Backward" for m in rep.mismatches), rep.mismatches
