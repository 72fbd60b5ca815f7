"""``gradmagic.diagnose.bad_grad``: a hook or a custom ``backward`` returned a bad gradient."""
from __future__ import annotations

from diagnose_helpers import kinds, roles, run

FUNCTION = """class Half(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        return x * scale

    @staticmethod
    def backward(ctx, g):
        return {ret}

x = torch.ones(3, requires_grad=True)
y = Half.apply(x, 0.5)
y.sum().backward()
"""


def test_a_function_gradient_of_the_wrong_shape():
    rep, raised, _ = run(FUNCTION.format(ret="g[:2] * 0.5, None"))
    [d] = rep.diagnoses
    assert (raised, d.kind, d.severity) == ("RuntimeError", "invalid_gradient", "error")
    assert d.title == "Half.backward returned a gradient of shape [2] for input 0, which has shape [3]"
    assert roles(d) == {"applied": "y = Half.apply(x, 0.5)", "backward defined": "def backward(ctx, g):",
                        "backward": "y.sum().backward()"}
    assert d.tensor == "y" and d.nodes


def test_a_function_returning_too_few_gradients():
    rep, _, _ = run(FUNCTION.format(ret="g * 0.5"))
    [d] = rep.diagnoses
    assert d.title == "Half.backward returned 1 gradients, but Half.forward takes 2 arguments"
    assert "None for the arguments" in d.fix


def test_a_named_hook_of_the_wrong_shape():
    rep, _, _ = run("x = torch.ones(3, requires_grad=True)\ny = x * 2\ndef squash(g):\n    return g.sum()\n"
                    "h = y.register_hook(squash)\ny.sum().backward()\n")
    [d] = rep.diagnoses
    assert d.title == "the hook `squash` on y returned a gradient of another shape"
    assert roles(d) == {"hook defined": "def squash(g):", "hook registered": "h = y.register_hook(squash)",
                        "backward": "y.sum().backward()"}


def test_a_hook_of_another_dtype():
    rep, _, _ = run("x = torch.ones(3, requires_grad=True)\ny = x * 2\nh = y.register_hook(lambda g: g.double())\n"
                    "y.sum().backward()\n")
    [d] = rep.diagnoses
    assert d.title == "the lambda hook on y returned a gradient of another dtype"
    assert roles(d) == {"hook registered": "h = y.register_hook(lambda g: g.double())",
                        "backward": "y.sum().backward()"}


def test_good_hooks_and_functions_get_nothing():
    rep, raised, _ = run(FUNCTION.format(ret="g * 0.5, None") +
                         "h = x.register_hook(lambda g: g * 2)\n(x * 3).sum().backward()\n")
    assert raised is None and "invalid_gradient" not in kinds(rep)
