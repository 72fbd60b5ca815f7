"""The check budget (``check="sample"``, issue 14): a long loop's backward calls 1–3 and the
powers of two run in lockstep, the others at full speed; what was not checked is never
reported as agreeing, and the user's values are those of a plain run, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace
from gradmagic.recorder.sampling import describe_calls, is_sampled
from gradmagic.viz.facts import verdict

from recorder_helpers import assert_clean, run_cells

POWERS = [1, 2, 3, 4, 16, 32, 64, 128, 256]
#: ``from torch.autograd import grad`` run before any block: no wrapper sees calls made with it
GRAD_IMPORTED_BEFORE = torch.autograd.grad

LOOP = """
w = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
for i in range(1, n + 1):
    w.grad = None
    (w * float(i)).sum().backward()
"""


def _loop(n: int, check: str | None = None, source: str = LOOP) -> tuple:
    kw = {} if check is None else {"check": check}
    (rep,), ns = run_cells([source], namespace={"torch": torch, "n": n}, **kw)
    return rep, ns


def _mode_stack_empty() -> bool:
    return not torch.overrides._get_current_function_mode_stack()


def test_the_schedule_checks_about_ten_calls_of_three_hundred():
    assert [k for k in range(1, 301) if is_sampled(k)] == POWERS
    assert describe_calls(POWERS, 300) == ("backward calls 1–4, 16, 32, 64, 128, 256 of 300; "
                                           "the other 291 ran at full speed, not checked")


def test_a_long_loop_checks_the_schedule_and_says_so():
    rep, ns = _loop(300)
    assert_clean(rep)
    checking = rep.checking
    assert checking["mode"] == "sample" and checking["calls"] == 300
    assert checking["checked"] == POWERS
    assert checking["skipped"][:3] == [[5, 15], [17, 31], [33, 63]] and checking["skipped"][-1] == [257, 300]
    # only checked calls are listed, each with its number in the loop, none of the others
    assert [c.call + 1 for c in rep.backward_calls][-3:] == [64, 128, 256]
    assert {c.call + 1 for c in rep.backward_calls} <= set(POWERS)
    headline = verdict(rep.to_dict())["headline"]
    assert "256 of 300" in headline and "the other 291 ran at full speed, not checked" in headline
    # the loss and the gradient flow of the loop: every call up to 32, then 16 per doubling
    loss = checking["loss"]
    assert loss["calls"][:32] == list(range(32)) and len(loss["calls"]) < 100
    assert {k - 1 for k in POWERS} <= set(loss["calls"])
    assert loss["values"] == pytest.approx([1.5 * (c + 1) for c in loss["calls"]])
    flow = rep.grad_flow["layers"][0]  # (measured at every call up to 32, then 16 per doubling)
    assert flow["name"] == "w" and flow["calls"][:32] == list(range(32)) and len(flow["calls"]) < 100
    assert {k - 1 for k in POWERS} <= set(flow["calls"]) and flow["calls"][-1] >= 300 - 16
    for call, norm in zip(flow["calls"], flow["norm"]):
        assert norm == pytest.approx((call + 1) * np.sqrt(3), rel=1e-6)
    assert _mode_stack_empty() and torch.Tensor.backward.__module__ == "torch._tensor"


def test_values_are_bit_for_bit_those_of_a_plain_run():
    src = """
torch.manual_seed(0)
X, y = torch.randn(64, 3), torch.randn(64, 1)
net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
for step in range(40):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(net(X), y)
    loss.backward()
    opt.step()
"""
    plain: dict = {"torch": torch}
    exec(compile(src, "<plain>", "exec"), plain)
    rep, ns = _loop(0, source=src)
    assert_clean(rep)
    for (name, p), q in zip(ns["net"].named_parameters(), plain["net"].parameters()):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad), name
    assert rep.checking["checked"] == [1, 2, 3, 4, 16, 32]
    assert rep.checking["loss"]["values"][-1] == pytest.approx(plain["loss"].item())


def _break_mul_above(limit: float, monkeypatch) -> None:
    """Make the engine's rule for ``a * b`` wrong once ``b`` is larger than ``limit``."""
    mul = REGISTRY["mul"]
    good_a, good_b = mul.vjps

    def wrong_a(g, ans, a, b):
        return good_a(g, ans, a, b) * (2.0 if np.max(np.abs(b)) > limit else 1.0)
    monkeypatch.setattr(mul, "vjps", (wrong_a, good_b))


def test_a_rule_broken_after_iteration_50_is_found_by_check_all(monkeypatch):
    _break_mul_above(50, monkeypatch)
    rep, _ = _loop(60, check="all")
    assert not rep.ok
    differ = [c.call + 1 for c in rep.backward_calls if c.status == "differ"]
    assert differ[0] == 51 and differ[-1] == 60
    assert rep.checking["checked"] == list(range(1, 61)) and rep.checking["skipped"] == []


def test_the_default_reports_those_iterations_not_checked_never_agree(monkeypatch):
    _break_mul_above(50, monkeypatch)
    rep, ns = _loop(60)
    assert rep.checking["checked"] == [1, 2, 3, 4, 16, 32]
    assert rep.checking["skipped"][-1] == [33, 60]
    assert all(c.call + 1 in rep.checking["checked"] for c in rep.backward_calls)
    assert rep.ok  # nothing that was checked differs ...
    v = verdict(rep.to_dict())
    assert "the other 54 ran at full speed, not checked" in v["headline"]  # ... and it says so
    leaf = rep.leaf("w")  # w.grad now comes from call 60, which was not checked
    assert leaf.status == "unchecked" and leaf.engine_grad is None
    assert any("last checked them at call 32" in n for n in rep.notes)
    # a longer loop reaches call 64, which is checked: the broken rule shows there
    rep, _ = _loop(70)
    assert not rep.ok
    assert [c.call + 1 for c in rep.backward_calls if c.status == "differ"] == [64]


def test_gradients_that_pile_up_get_the_hint_in_a_long_loop():
    piling = LOOP.replace("    w.grad = None\n", "")
    rep, _ = _loop(300, source=piling)
    assert rep.leaf("w").accumulated_without_clearing
    assert rep.checking["piled_up"] == ["w"]
    assert any("without being cleared" in n for n in rep.notes)
    rep, _ = _loop(300)  # cleared every iteration: no hint
    assert not rep.leaf("w").accumulated_without_clearing and rep.checking["piled_up"] == []


def test_a_loop_that_breaks_early_reports_what_was_checked():
    src = LOOP.replace("    (w * float(i))", "    if i > 100:\n        break\n    (w * float(i))")
    rep, _ = _loop(300, source=src)
    assert_clean(rep)
    assert rep.checking["calls"] == 100 and rep.checking["checked"] == [1, 2, 3, 4, 16, 32, 64]
    assert rep.checking["skipped"][-1] == [65, 100]
    assert _mode_stack_empty()


def test_a_loop_that_raises_reports_what_was_checked():
    src = LOOP.replace("    (w * float(i))", "    if i == 40:\n        raise KeyError('stop')\n    (w * float(i))")
    ns = {"torch": torch, "n": 300}
    with pytest.raises(KeyError):
        with trace(session=Session(), namespace=ns) as rep:
            exec(compile(src, "<raising>", "exec"), ns)
    assert rep.checking["calls"] == 39 and rep.checking["skipped"][-1] == [33, 39]
    assert rep.error["type"] == "KeyError"
    assert _mode_stack_empty() and torch.Tensor.backward.__module__ == "torch._tensor"


def test_an_error_in_a_backward_at_full_speed_is_the_users_and_lockstep_resumes():
    src = """
w = torch.ones(3, requires_grad=True)
for i in range(20):
    y = (w * 2).sum()
    y.backward()
    if i == 10:
        y.backward()
"""
    ns = {"torch": torch}
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        with trace(session=Session(), namespace=ns) as rep:
            exec(compile(src, "<twice>", "exec"), ns)
    assert rep.checking["calls"] == 12 and rep.checking["skipped"][-1] == [5, 12]
    assert _mode_stack_empty()


def test_a_loop_whose_body_changes_stays_in_lockstep():
    """Each iteration makes one more product than the last: no two alike, never sampled."""
    src = LOOP.replace("    (w * float(i)).sum().backward()",
                       "    y = w\n    for j in range(i):\n        y = y * 1.5\n    y.sum().backward()")
    rep, _ = _loop(20, source=src)
    assert_clean(rep)
    assert rep.checking["checked"] == list(range(1, 21))


def test_a_gan_step_of_two_backward_calls_is_one_body():
    """d2l's GAN loop: a discriminator step and a generator step, two backward calls per
    iteration. The pair repeats, so the loop is sampled; each checked call is checked whole."""
    src = """
torch.manual_seed(0)
net_D, net_G = torch.nn.Linear(2, 1), torch.nn.Linear(2, 2)
opt_D = torch.optim.SGD(net_D.parameters(), lr=0.05)
opt_G = torch.optim.SGD(net_G.parameters(), lr=0.005)
loss = torch.nn.BCEWithLogitsLoss()
X, Z = torch.randn(8, 2), torch.randn(8, 2)
ones, zeros = torch.ones(8, 1), torch.zeros(8, 1)
for step in range(n):
    opt_D.zero_grad()
    fake = net_G(Z)
    loss_D = (loss(net_D(X), ones) + loss(net_D(fake.detach()), zeros)) / 2
    loss_D.backward()
    opt_D.step()
    opt_G.zero_grad()
    loss_G = loss(net_D(net_G(Z)), ones)
    loss_G.backward()
    opt_G.step()
"""
    plain: dict = {"torch": torch, "n": 20}
    exec(compile(src, "<plain>", "exec"), plain)
    rep, ns = _loop(20, source=src)
    assert_clean(rep)
    checking = rep.checking
    assert checking["calls"] == 40
    assert checking["checked"] == [1, 2, 3, 4, 5, 6, 7, 16, 32]  # (three whole steps at least)
    assert checking["skipped"] == [[8, 15], [17, 31], [33, 40]]
    for name in ("net_D", "net_G"):
        for p, q in zip(ns[name].parameters(), plain[name].parameters()):
            assert torch.equal(p, q) and torch.equal(p.grad, q.grad)
    rep, _ = _loop(3, source=src)  # three steps: checked whole
    assert rep.checking["checked"] == [1, 2, 3, 4, 5, 6] and rep.checking["skipped"] == []


def test_calls_that_bypass_the_wrappers_keep_the_block_in_lockstep():
    src = LOOP.replace("    (w * float(i)).sum().backward()", "    grad((w * float(i)).sum(), w)")
    (rep,), _ = run_cells([src], namespace={"torch": torch, "n": 20, "grad": GRAD_IMPORTED_BEFORE})
    assert rep.checking["calls"] == 20 and rep.checking["checked"] == list(range(1, 21))
    via_module = LOOP.replace("    (w * float(i)).sum().backward()", "    torch.autograd.grad((w * float(i)).sum(), w)")
    rep, _ = _loop(20, source=via_module)
    assert rep.checking["checked"] == [1, 2, 3, 4, 16] and rep.ok


def test_hooks_keep_the_block_in_lockstep():
    src = LOOP.replace("for i in", "w.register_hook(lambda g: g * 2)\nfor i in")
    rep, ns = _loop(20, source=src)
    assert_clean(rep)
    assert rep.checking["checked"] == list(range(1, 21))
    assert torch.equal(ns["w"].grad, torch.full((3,), 40.0))


def test_a_hook_gone_with_its_tensor_keeps_no_later_loop_in_lockstep():
    """A notebook registers a hook in one cell; once its tensor is gone (or the hook removed),
    a later cell's loop runs at full speed again, while a live hook still keeps it in lockstep."""
    first = "h = torch.ones(2, requires_grad=True)\nh.register_hook(lambda g: g * 2)\n(h * 3).sum().backward()\n"
    cells = [first, LOOP, "del h\n", LOOP]
    reps, _ = run_cells(cells, namespace={"torch": torch, "n": 40})
    assert reps[1].checking["checked"] == list(range(1, 41))  # the hook's tensor lives: lockstep
    assert reps[3].checking["checked"] == [1, 2, 3, 4, 16, 32]  # gone: sampled again
    assert_clean(reps[3])


def test_check_all_and_none():
    rep, _ = _loop(20, check="all")
    assert rep.checking["mode"] == "all" and rep.checking["checked"] == list(range(1, 21))
    assert "full speed" not in verdict(rep.to_dict())["headline"]
    rep, _ = _loop(20, check="none")
    assert rep.checking["mode"] == "none" and rep.coverage["grads"]["agree"] == 0
    with pytest.raises(ValueError, match="check must be one of"):
        trace(check="some")


def test_nested_blocks_count_their_own_calls():
    w = torch.ones(2, requires_grad=True)
    with trace(session=Session()) as outer:
        for _ in range(10):
            (w * 3).sum().backward()
        with trace(session=Session(), check="all") as inner:
            for _ in range(6):
                (w * 2).sum().backward()
        (w * 4).sum().backward()
    assert inner.checking["calls"] == 6 and inner.checking["checked"] == list(range(1, 7))
    assert inner.ok and outer.ok
    assert outer.checking["calls"] == 11
    assert _mode_stack_empty() and torch.Tensor.backward.__module__ == "torch._tensor"


LESSON = """
w = torch.tensor([1.0, -1.0], requires_grad=True)
for i in range(n):
    (w * w).sum().backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
        w.grad.zero_()
"""


def test_a_lesson_sized_loop_is_checked_whole():
    """A three-step SGD demo (the autograd chapter's) never leaves lockstep: the last
    iteration's update and zero_() are recorded and the leaf's gradient is checked."""
    rep, _ = _loop(3, source=LESSON)
    assert_clean(rep)
    assert rep.checking["checked"] == [1, 2, 3] and rep.checking["skipped"] == []
    leaf = rep.leaf("w")
    assert leaf.status == "agree" and [e.kind for e in leaf.events][-2:] == ["update", "zero_"]


def test_what_ran_after_the_last_checked_call_is_never_shown_as_checked():
    """Four steps: full speed begins after call 4, where this loop ends, so its last update and
    zero_() ran unrecorded; the leaf says unchecked, and a note says what happened."""
    rep, ns = _loop(4, source=LESSON)
    assert rep.checking["checked"] == [1, 2, 3, 4] and rep.checking["calls"] == 4
    leaf = rep.leaf("w")
    assert leaf.status == "unchecked" and leaf.engine_grad is None
    assert leaf.grad == ns["w"].grad.tolist() == [0.0, 0.0]
    assert any("ran at full speed too" in n for n in rep.notes)


def test_a_failure_of_the_sampler_never_breaks_the_users_loop(monkeypatch):
    from gradmagic.recorder import sampling

    def broken(self, k):
        raise RuntimeError("boom")
    monkeypatch.setattr(sampling.Sampler, "_after_checked", broken)
    rep, ns = _loop(20)
    assert torch.equal(ns["w"].grad, torch.full((3,), 20.0))
    assert rep.ok and rep.checking["checked"] == list(range(1, 21))
    assert any("stopped sampling" in n and "boom" in n for n in rep.notes)
    assert _mode_stack_empty()


def test_the_wrappers_take_keyword_roots_as_torch_does():
    """``torch.autograd.grad(outputs=..., inputs=...)`` and ``backward(tensors=...)`` keep working
    while the wrappers are in place, and are counted and sampled like positional calls."""
    src = LOOP.replace("    (w * float(i)).sum().backward()",
                       "    torch.autograd.grad(outputs=(w * float(i)).sum(), inputs=w)\n"
                       "    torch.autograd.backward(tensors=(w * float(i)).sum())")
    rep, ns = _loop(20, source=src)
    assert_clean(rep)
    assert rep.checking["calls"] == 40 and rep.checking["skipped"]
    assert torch.equal(ns["w"].grad, torch.full((3,), 20.0))
    assert rep.checking["loss"]["values"][:2] == [1.5, 1.5]


def test_a_block_that_never_exited_leaves_no_wrapper_behind():
    """A block entered and never exited (a generator dropped half-way) must not keep torch's
    backward functions wrapped, nor take later calls into its dead sampler."""
    import gc

    from gradmagic.recorder import sampling
    from gradmagic.recorder.session import _OPEN, remove_leaked_modes

    originals = (torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad)
    block = trace(session=Session())
    block.__enter__()
    try:
        assert torch.autograd.grad is not originals[2]
        _OPEN.remove(block.recorder)  # the block is gone
        remove_leaked_modes()
        assert (torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad) == originals
        assert not sampling._OPEN
    finally:
        if block.froze:
            gc.unfreeze()
    w = torch.ones(2, requires_grad=True)
    with trace(session=Session(), check="all") as report:
        (w * w).sum().backward()
    assert [(c.call, c.status) for c in report.backward_calls] == [(0, "agree")]


def test_a_wrapper_kept_after_its_block_is_torchs_function():
    """``from torch.autograd import grad`` inside a recorded cell keeps the wrapper: after the
    block it passes every call, keywords included, straight to torch."""
    w = torch.ones(2, requires_grad=True)
    with trace(session=Session()):
        from torch.autograd import grad
    assert grad is not torch.autograd.grad  # the wrapper, kept by the user's name
    (g,) = grad(outputs=(w * 3).sum(), inputs=w)
    assert torch.equal(g, torch.full((2,), 3.0)) and grad.__name__ == "grad"
