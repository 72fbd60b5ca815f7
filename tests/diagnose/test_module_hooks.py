"""``gradmagic.diagnose.module_hooks``: an ``nn.Module`` backward hook returned a bad gradient.

torch's message for a full backward (pre-)hook names only its own wrapper ("hook 'hook' has
changed the size of value"); the diagnosis names the user's hook, where it is defined and the
line that called the module.
"""
from __future__ import annotations

import pytest

from diagnose_helpers import kinds, roles, run

MODULE = """torch.manual_seed(0)
lin = torch.nn.Linear(3, 2)
{define}
h = lin.{register}({hook})
x = torch.randn(4, 3, requires_grad=True)
out = lin(x)
out.sum().backward()
"""
FULL = "def bad(module, grad_input, grad_output):\n    return {ret}"
PRE = "def bad(module, grad_output):\n    return {ret}"


@pytest.mark.parametrize("register, define, ret, title", [
    ("register_full_backward_hook", FULL, "(grad_input[0].sum(0),)",
     "the full backward hook `bad` on lin (Linear) returned a gradient of another shape"),
    ("register_full_backward_hook", FULL, "(grad_input[0].double(),)",
     "the full backward hook `bad` on lin (Linear) returned a gradient of another dtype"),
    ("register_full_backward_hook", FULL, "(grad_input[0], grad_input[0])",
     "the full backward hook `bad` on lin (Linear) returned 2 gradients where 1 was expected"),
    ("register_full_backward_pre_hook", PRE, "(grad_output[0].sum(0),)",
     "the backward pre-hook `bad` on lin (Linear) returned a gradient of another shape"),
    ("register_full_backward_pre_hook", PRE, "(grad_output[0].double(),)",
     "the backward pre-hook `bad` on lin (Linear) returned a gradient of another dtype"),
    ("register_full_backward_pre_hook", PRE, "(grad_output[0], grad_output[0])",
     "the backward pre-hook `bad` on lin (Linear) returned 2 gradients where 1 was expected"),
    ("register_backward_hook", FULL, "tuple(None if g is None else g.sum(0) for g in grad_input)",
     "the backward hook `bad` on lin (Linear) returned a gradient of another shape"),
    ("register_backward_hook", FULL, "(grad_output[0],)",
     "the backward hook `bad` on lin (Linear) returned 1 gradient where 3 were expected"),
])
def test_a_module_hook_that_returns_a_bad_gradient(register, define, ret, title):
    rep, raised, _ = run(MODULE.format(define=define.format(ret=ret), register=register, hook="bad"))
    [d] = rep.diagnoses
    assert (raised, d.kind, d.severity, d.title) == ("RuntimeError", "invalid_gradient", "error", title)
    assert roles(d) == {"hook defined": define.splitlines()[0], "module called": "out = lin(x)",
                        "backward": "out.sum().backward()"}
    nodes = {n.id: n for n in rep.nodes}
    assert d.nodes and all(n in nodes for n in d.nodes)
    if register != "register_backward_hook":  # the node torch checks the hook's result at
        assert all(nodes[n].label == "BackwardHookFunctionBackward" for n in d.nodes)
    assert "grad_input" in d.fix or "grad_output" in d.fix or "register_full_backward_hook" in d.fix


def test_a_lambda_pre_hook_is_found_by_its_line():
    rep, _, _ = run(MODULE.format(define="", register="register_full_backward_pre_hook",
                                  hook="lambda m, go: (go[0].double(),)"))
    [d] = rep.diagnoses
    assert d.title == "the lambda backward pre-hook on lin (Linear) returned a gradient of another dtype"
    assert roles(d)["hook defined"] == "h = lin.register_full_backward_pre_hook(lambda m, go: (go[0].double(),))"


def test_a_hook_on_a_layer_inside_a_model_points_at_the_models_call():
    rep, _, _ = run("torch.manual_seed(0)\n"
                    "net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))\n"
                    "def halve(module, grad_input, grad_output):\n"
                    "    return (grad_input[0][:, :2],)\n"
                    "_ = net[2].register_full_backward_hook(halve)\n"
                    "loss = net(torch.randn(5, 3)).pow(2).mean()\n"
                    "loss.backward()\n")
    [d] = rep.diagnoses
    assert d.title == "the full backward hook `halve` on net.2 (Linear) returned a gradient of another shape"
    assert roles(d) == {"hook defined": "def halve(module, grad_input, grad_output):",
                        "module called": "loss = net(torch.randn(5, 3)).pow(2).mean()",
                        "backward": "loss.backward()"}
    assert "[5, 4]" in d.message  # what grad_input should have been shaped like


def test_two_hooked_modules_are_both_named():
    rep, _, _ = run("torch.manual_seed(0)\n"
                    "a, b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)\n"
                    "def squash(module, grad_input, grad_output):\n"
                    "    return (grad_input[0].sum(0),)\n"
                    "def keep(module, grad_input, grad_output):\n"
                    "    return None\n"
                    "_ = a.register_full_backward_hook(squash)\n"
                    "_ = b.register_full_backward_hook(keep)\n"
                    "y = b(a(torch.randn(2, 3, requires_grad=True)))\n"
                    "y.sum().backward()\n")
    [d] = rep.diagnoses
    # torch names neither: both hooks could have been it, and the diagnosis says so
    assert d.title == "one of the backward hooks on a, b returned a gradient of another shape"
    assert [ln["code"] for ln in d.lines if ln["role"] == "hook defined"] == [
        "def squash(module, grad_input, grad_output):", "def keep(module, grad_input, grad_output):"]


def test_good_module_hooks_get_nothing():
    rep, raised, _ = run("torch.manual_seed(0)\n"
                         "lin = torch.nn.Linear(3, 2)\n"
                         "_ = lin.register_full_backward_hook(lambda m, gi, go: (gi[0] * 2,))\n"
                         "_ = lin.register_full_backward_pre_hook(lambda m, go: (go[0] * 3,))\n"
                         "_ = lin.register_full_backward_hook(lambda m, gi, go: None)\n"
                         "x = torch.randn(4, 3, requires_grad=True)\n"
                         "lin(x).sum().backward()\n"
                         "print(x.grad)\n")
    assert raised is None and rep.diagnoses == []


def test_a_tensor_hook_named_hook_is_still_a_tensor_hook():
    """torch's wrapper for module hooks is named ``hook`` too: with no module hook on the
    graph, the user's tensor hook of that name is the one."""
    rep, _, _ = run("x = torch.ones(3, requires_grad=True)\ny = x * 2\ndef hook(g):\n    return g[:2]\n"
                    "_ = y.register_hook(hook)\ny.sum().backward()\n")
    [d] = rep.diagnoses
    assert d.title == "the hook `hook` on y returned a gradient of another shape"
    assert "invalid_gradient" in kinds(rep)
