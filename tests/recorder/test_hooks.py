"""Tensor hooks in the report (issue 12): each hook the engine replays is a ``hook`` step of
the backward's replay, right before the step that uses the hooked gradient, and its effect
is described as the learner wrote it. The hooks' checks themselves are covered by the ports
of ``test_autograd.py`` (tests/recorder/autograd_ports.py) and the fuzzer's hook generators."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from recorder_helpers import assert_clean
from gradmagic.recorder import Session, trace
from gradmagic.recorder.hooks import describe


def _steps(rep) -> list:
    return rep.to_dict()["backward_calls"][-1]["steps"]


def test_hook_steps_come_before_the_step_that_uses_the_gradient():
    with trace(session=Session()) as rep:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        z = x * 3
        z.register_hook(lambda g: g * 2)
        x.register_hook(lambda g: g + 1)
        z.sum().backward()
    assert_clean(rep)
    assert x.grad.tolist() == [7.0, 7.0]
    steps = _steps(rep)
    assert [st["k"] for st in steps] == list(range(len(steps)))
    hooks = [(k, st) for k, st in enumerate(steps) if st["kind"] == "hook"]
    assert [st["effect"] for _, st in hooks] == ["g → 2·g", "g → g + 1"]
    for k, st in hooks:
        nxt = steps[k + 1]
        assert nxt["node"] == st["node"] and nxt["kind"] in ("node", "accumulate")
    (k_z, z_hook), (k_x, x_hook) = hooks
    assert rep.node(z_hook["node"]).name == "z" and rep.node(x_hook["node"]).name == "x"
    assert z_hook["before"]["data"] == [1.0, 1.0] and z_hook["after"]["data"] == [2.0, 2.0]
    assert x_hook["before"]["data"] == [6.0, 6.0] and x_hook["after"]["data"] == [7.0, 7.0]
    assert steps[k_x + 1]["added"]["data"] == [7.0, 7.0]


def test_a_hook_that_only_looks_is_a_step_too():
    seen = []
    with trace(session=Session()) as rep:
        w = torch.tensor([0.5, -1.0], requires_grad=True)
        h = w.register_hook(lambda g: seen.append(g.clone()))
        (w * w).sum().backward()
        h.remove()
        (w * w).sum().backward()
    assert_clean(rep)
    first = rep.to_dict()["backward_calls"][0]["steps"]
    assert [st["effect"] for st in first if st["kind"] == "hook"] == [
        "g → g (the hook returned None: it only looked)"]
    assert not any(st["kind"] == "hook" for st in _steps(rep))  # removed: no step


@pytest.mark.parametrize("received, returned, text", [
    ([6.0, 6.0], [7.0, 7.0], "g → g + 1"),  # a constant g fits 7/6·g too: the plainer reading
    ([3.0, 3.0], [6.0, 6.0], "g → 2·g"),
    ([1.0, 2.0], [0.5, 1.0], "g → 0.5·g"),
    ([1.0, 2.0], [1.0, 5.0], "g → hook(g)"),
])
def test_describe_reads_the_hook_as_written(received, returned, text):
    assert describe(np.array(received), np.array(returned)) == text


def test_post_accumulate_hook_check_of_a_float64_leaf_through_float32_ops_uses_float32_tolerances():
    """A float64 leaf whose gradient flowed through float32 ops carries float32's rounding: the
    hook's check takes float32's tolerances, as the accumulation check does (a false "differ"
    the fuzzer found, program 52459: 4.8180568 vs 4.8180561 against float64's 1e-9)."""
    torch.manual_seed(21721)
    x = torch.randn((3, 1)).to(torch.float64).requires_grad_()
    w = torch.linspace(0.5, 1.5, 3).reshape(1, 1, 1, 3)
    F = torch.nn.functional
    with trace(session=Session()) as rep:
        t = (x.double() * 2).float().reshape(1, 1, 1, -1)
        t = F.max_unpool2d(*F.max_pool2d(t, (1, 2), return_indices=True), (1, 2), output_size=t.shape)
        z = F.group_norm(t, 1, None, None, 1e-05) * w
        x.register_post_accumulate_grad_hook(lambda p: None)
        loss = (z * z).mean() + t.pow(2).sum() + x.sum()
        with warnings.catch_warnings():  # (torch's "reference cycle" warning, once per process)
            warnings.simplefilter("ignore", UserWarning)
            loss.backward(create_graph=True)  # (the engine's float32 sums round as torch's do not)
    x.grad = None
    assert not rep.mismatches, rep.mismatches
    assert rep.backward_calls[-1].status == "agree"
    [hook_check] = [c for c in rep.checks if c.detail and "post-accumulate-grad hook" in c.detail]
    assert hook_check.status == "agree" and hook_check.max_abs_err > 1e-9  # (float32's rounding)
    leaf = rep.leaves[0]
    assert leaf.status == "agree" and leaf.grad == leaf.engine_grad  # (then lockstep: torch's value)
