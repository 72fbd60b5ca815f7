"""Small ports of PyTorch's own autograd tests (and the tutorials' autograd examples), each
written as a user would type it into a notebook cell, to be run under ``%%grad``.

Every entry names where it comes from (test name and file in pytorch/pytorch, or the tutorial)
and what gradmagic must say: ``wrong=None`` means the cell is correct PyTorch and the report
must be ok with no mismatches; ``wrong="Cls"`` means the cell holds a custom Function whose
backward is deliberately wrong, to be caught on the node ``ClsBackward`` with a detail that
says the user's backward is off. ``tests/test_autograd_ports.py`` runs them.

Ported by hand: TestCase machinery and torch-vs-torch assertEqual are gone (the point is what
gradmagic says); what is kept are the asserts on how often hooks ran and in which order, since
mirroring must not change those.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Port:
    name: str
    source: str          #: "<file>::<test name>" in pytorch/pytorch, or the tutorial
    cell: str
    wrong: str | None = None   #: the custom Function whose backward is built to be wrong


PORTS: list[Port] = []


def port(name: str, source: str, cell: str, wrong: str | None = None) -> None:
    PORTS.append(Port(name, source, textwrap.dedent(cell).strip() + "\n", wrong))


TA = "test/test_autograd.py::TestAutograd."
TF = "test/autograd/test_functional.py::TestAutogradFunctional."
TU = "test/test_utils.py::TestCheckpoint."
TM = "test/nn/test_module_hooks.py::"

# =============================================================================== tensor hooks
port("hooks", TA + "test_hooks", """
    x = torch.ones(2, 2, requires_grad=True)
    y = (torch.ones(2, 2) * 4).requires_grad_(True)
    counter = [0]
    def bw_hook(inc, grad):
        counter[0] += inc
    z = x ** 2 + x * 2 + x * y + y
    x.register_hook(lambda g: bw_hook(0, g))
    test = z.register_hook(lambda g: bw_hook(1, g))
    z.backward(torch.ones(2, 2), retain_graph=True)
    test2 = z.register_hook(lambda g: bw_hook(2, g))
    z.backward(torch.ones(2, 2), retain_graph=True)
    test2.remove()
    z.backward(torch.ones(2, 2), retain_graph=True)
    assert counter[0] == 5
    test.remove()
    z.register_hook(lambda g: g.mul(2))
    with torch.no_grad():
        y.grad.zero_()
    z.backward(torch.ones(2, 2), retain_graph=True)
    y.register_hook(lambda g: g.mul(2))
    with torch.no_grad():
        y.grad.zero_()
    z.backward(torch.ones(2, 2))
""")

port("hooks_cpp", TA + "test_hooks_cpp", """
    bn = torch.nn.BatchNorm1d(3, affine=False)
    bn.eval()
    counter = [0]
    def bw_hook(grad):
        counter[0] += 1
        return grad * 2
    x = torch.ones(4, 3, requires_grad=True)
    z = bn(x)
    z.register_hook(bw_hook)
    z.sum().backward()
    assert counter[0] == 1
""")

port("hook_none", TA + "test_hook_none", """
    from torch.autograd import Function
    class NoneGradientFunction(Function):
        @staticmethod
        def forward(ctx, x, y):
            assert ctx.needs_input_grad[0] and not ctx.needs_input_grad[1]
            return x, y
        @staticmethod
        def backward(ctx, grad_x, grad_y):
            return grad_x, None
    was_called = [False]
    def hook(grad):
        assert grad is not None
        was_called[0] = True
    x = torch.randn(3, 3, requires_grad=True)
    y = torch.randn(3, 3)
    rx, ry = NoneGradientFunction.apply(x, y)
    rx.register_hook(hook)
    ry.register_hook(hook)
    sum(rx, ry).sum().backward()
    assert was_called[0]
""")

port("hook_with_no_name", TA + "test_hook_with_no_name", """
    class MyHookClass:
        def __call__(self, grad):
            return grad.clone()
    x = torch.randn(5, requires_grad=True).clone()
    x.register_hook(MyHookClass())
    x.sum().backward()
""")

port("grad_nonleaf_register_hook", TA + "test_grad_nonleaf_register_hook", """
    x = torch.randn(4, requires_grad=True)
    x_list = x.unbind()
    hook_results = [None]
    def hook(grad):
        hook_results[0] = grad
    x_list[0].register_hook(hook)
    x_list[0].backward()
    assert hook_results[0] is not None
    for i in range(1, 4):
        hook_results[0] = None
        x_list[i].backward()
        assert hook_results[0] is None
""")

port("retain_grad", TA + "test_retain_grad", """
    inp = torch.rand(1, 3, requires_grad=True)
    h1 = inp * 3
    out = (h1 * h1).sum()
    h1.retain_grad()
    h1.retain_grad()
    out.backward(retain_graph=True)
    out.backward(retain_graph=True)
    with torch.no_grad():
        inp.grad.zero_()
    inp.retain_grad()
    out.backward()
""")

port("retain_grad_inplace_over_view", TA + "test_retain_grad_inplace_over_view", """
    base = torch.tensor([1.0], requires_grad=True).clone()
    view = base[:]
    view2 = base[:]
    view.retain_grad()
    view2.retain_grad()
    view.mul_(2)
    (view + view2).sum().backward()
    view.grad, view2.grad
""")

port("retains_grad_observes_tensor_prehook", TA + "test_retains_grad_can_always_observe_tensor_prehook", """
    a = torch.tensor(1.0, requires_grad=True)
    b = a.clone()
    b.register_hook(lambda g: g * 2)
    b.retain_grad()
    b.register_hook(lambda g: g * 2)
    b.clone().backward()
    assert b.grad.item() == 4
""")

port("tensor_hooks_inplace", TA + "test_tensor_hooks_inplace", """
    count = [0, 0]
    def fn1(grad):
        count[0] += 1
        return grad * 2
    def fn2(grad):
        count[1] += 1
        return grad * 2
    a = torch.tensor([1.0], requires_grad=True)
    b = a.clone()
    b.register_hook(fn1)
    b.mul_(2)
    b.register_hook(fn2)
    b.sum().backward()
    assert count == [1, 1]
    a.grad
""")

port("grad_nonleaf_many_outputs", TA + "test_grad_nonleaf_many_outputs", """
    x = torch.randn(4, 2, requires_grad=True)
    a, b = x.chunk(2)
    hook_called = [False]
    def hook(*grads):
        hook_called[0] = True
    x.register_hook(hook)
    go = torch.randn(2, 2)
    grad_a, grad_b = torch.autograd.grad((a + 2 * b), [a, b], grad_outputs=go, create_graph=True)
    assert not hook_called[0] and x.grad is None
""")

port("post_accumulate_grad_hook_multiple_hooks", TA + "test_post_accumulate_grad_hook_multiple_hooks", """
    def hook1(tensor):
        tensor.sub_(tensor.grad)
    def hook2(tensor):
        tensor.mul_(4.0)
    tensor = torch.rand(3, requires_grad=True)
    tensor.register_post_accumulate_grad_hook(hook1)
    tensor.register_post_accumulate_grad_hook(hook2)
    tensor.sum().backward()
    tensor
""")

port("post_accumulate_grad_hook_multiple_tensors", TA + "test_post_accumulate_grad_hook_multiple_tensors", """
    def hook(tensor):
        tensor.sub_(tensor.grad)
    tensor1 = torch.rand(3, requires_grad=True)
    tensor2 = torch.rand(5, requires_grad=True)
    tensor1.register_post_accumulate_grad_hook(hook)
    tensor2.register_post_accumulate_grad_hook(hook)
    tensor1.sum().backward()
    tensor2.sum().backward()
""")

port("post_accumulate_grad_hook_e2e", TA + "test_post_accumulate_grad_hook_e2e", """
    model = torch.nn.Linear(3, 2)
    inp = torch.rand(2, 3)
    optims, handles = {}, []
    def optim_step_hook(param):
        optims[param].step()
        optims[param].zero_grad()
    for p in model.parameters():
        optims[p] = torch.optim.Adam([p])
        handles.append(p.register_post_accumulate_grad_hook(optim_step_hook))
    for _ in range(2):
        model(inp).sum().backward()
    for h in handles:
        h.remove()
    for _ in range(2):
        model(inp).sum().backward()
""")

port("post_accumulate_grad_hook_ordering", TA + "test_post_accumulate_grad_hook_ordering", """
    tensor = torch.rand(3, requires_grad=True)
    def pre_hook(grad):
        return grad.sub(2.0)
    def post_acc_grad_hook(tensor):
        tensor.grad.add_(0.5)
    tensor.register_hook(pre_hook)
    tensor.register_post_accumulate_grad_hook(post_acc_grad_hook)
    tensor.sum().backward()
    tensor.grad
""")

port("prehook_ordering", TA + "test_prehook_ordering", """
    log = []
    def hook1(g):
        log.append(1)
        return g * 3
    def hook2(gs):
        log.append(2)
        return tuple(g * 2 for g in gs)
    a = torch.tensor(1.0, requires_grad=True)
    b = a.clone()
    b.grad_fn.register_prehook(hook2)
    b.register_hook(hook1)
    b.grad_fn.register_prehook(hook2)
    a.register_hook(hook1)
    b.sum().backward()
    assert log == [1, 2, 2, 1], log
    a.grad
""")

port("register_hook_docstring", "torch/_tensor.py::Tensor.register_hook docstring example", """
    v = torch.tensor([0., 0., 0.], requires_grad=True)
    h = v.register_hook(lambda grad: grad * 2)
    v.backward(torch.tensor([1., 2., 3.]))
    h.remove()
    v.grad
""")

port("post_accumulate_grad_hook_create_graph", TA + "test_post_accumulate_grad_hook_multiple_hooks (after an autograd.grad with create_graph)", """
    x = torch.randn(3, requires_grad=True)
    calls = []
    x.register_post_accumulate_grad_hook(lambda p: calls.append(p.grad.clone()))
    g, = torch.autograd.grad(x.exp().sum(), x, create_graph=True)
    g.sum().backward()
    assert len(calls) == 1
""")

# =============================================================================== module hooks
port("module_forward_and_full_backward_hooks", TM + "TestModuleHookNN.test_hooks", """
    module = torch.nn.Sigmoid()
    inp = torch.ones(3, 3, requires_grad=True)
    counter = {"forwards": 0, "backwards": 0}
    def fw_hook(inc, h_module, input, output):
        counter["forwards"] += inc
    def bw_hook(inc, h_module, grad_input, grad_output):
        counter["backwards"] += inc
    test_fwd = module.register_forward_hook(lambda *args: fw_hook(1, *args))
    module(inp)
    module(inp)
    test_bwd = module.register_full_backward_hook(lambda *args: bw_hook(1, *args))
    output = module(inp)
    output.backward(torch.ones(3, 3) * 2, retain_graph=True)
    test_fwd.remove()
    test_bwd.remove()
    module(inp).backward(torch.ones(3, 3) * 2)
    assert counter == {"forwards": 3, "backwards": 1}, counter
""")

port("module_full_backward_pre_hook_scales", TM + "TestModuleHooks.test_full_backward_pre_hooks", """
    net = torch.nn.Linear(3, 2)
    def pre_hook(module, grad_output):
        return (grad_output[0] * 0.5,)
    h = net.register_full_backward_pre_hook(pre_hook)
    x = torch.randn(4, 3, requires_grad=True)
    net(x).pow(2).sum().backward()
    h.remove()
    x.grad
""")

port("module_full_backward_hook_writeable", TM + "TestModuleHookNN.test_hook_backward_writeable", """
    module = torch.nn.Sigmoid()
    inp = torch.randn(3, 3, requires_grad=True)
    def bw_hook(module, grad_input, grad_output):
        assert all(isinstance(g, torch.Tensor) for g in grad_input)
        return tuple(gi * 2 for gi in grad_input)
    module.register_full_backward_hook(bw_hook)
    module(inp).backward(torch.ones(3, 3))
    inp.grad
""")

port("module_forward_pre_hook_writable", TM + "TestModuleHookNN.test_hook_forward_preforward_writable", """
    module = torch.nn.Sigmoid()
    inp = torch.randn(3, 3, requires_grad=True)
    def forward_pre_hook(m, input):
        return torch.nn.functional.relu(input[0])
    def forward_hook(m, input, output):
        return -output
    module.register_forward_pre_hook(forward_pre_hook)
    module.register_forward_hook(forward_hook)
    output = module(inp)
    output.backward(torch.ones(3, 3) * 2)
    inp.grad
""")

port("module_full_backward_hook_two_inputs", TM + "TestModuleHooks.test_full_backward_hooks (a module with two inputs)", """
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = torch.nn.Linear(3, 3)
        def forward(self, a, b):
            return self.l1(a) * b
    net = Net()
    got = []
    net.register_full_backward_hook(lambda m, gi, go: got.append(len(gi)))
    a = torch.randn(2, 3, requires_grad=True)
    b = torch.randn(2, 3, requires_grad=True)
    net(a, b).sum().backward()
    assert got == [2]
""")

# =============================================================================== grad of grad
port("hessian_vector", TA + "test_hessian_vector", """
    x = torch.randn(2, 2, requires_grad=True)
    y = torch.randn(2, 2, requires_grad=True)
    z = x ** 2 + y * x + y ** 2
    z.backward(torch.ones(2, 2), create_graph=True)
    grad_sum = 2 * x.grad + y.grad
    grad_sum.backward(torch.ones(2, 2))
    x.grad, y.grad
""")

port("grad_create_graph", TA + "test_grad", """
    x = torch.randn(2, 2, requires_grad=True)
    y = torch.randn(2, 2, requires_grad=True)
    z = x ** 2 + y * x + y ** 2
    z.backward(torch.ones(2, 2), create_graph=True)
    grad_sum = 2 * x.grad + y.grad
    x_hv = torch.autograd.grad(outputs=[grad_sum], grad_outputs=[torch.ones(2, 2)],
                               inputs=[x], create_graph=True)
    x_hv
""")

port("grad_nonleaf", TA + "test_grad_nonleaf", """
    x_init = torch.randn(2, 2, requires_grad=True)
    x = x_init
    y = torch.randn(2, 2, requires_grad=True)
    grad_output = torch.ones(2, 2)
    def fn(x):
        return x ** 2 + y * x + y ** 2
    for _ in range(5):
        grad_x, = torch.autograd.grad(fn(x), x, grad_outputs=grad_output, create_graph=True)
        x = x + 0.05 * grad_x
    x.backward(grad_output)
    assert y.grad is not None and x_init.grad is not None
""")

port("grad_materialize_grads", TA + "test_grad_materialize_grads", """
    x = torch.tensor(0.5, requires_grad=True)
    a = torch.tensor(1.0, requires_grad=True)
    y = x * a
    dydx = torch.autograd.grad(y, x, create_graph=True)
    d2ydx2_none = torch.autograd.grad(dydx, x, create_graph=True, allow_unused=True)
    d2ydx2 = torch.autograd.grad(dydx, x, create_graph=True, allow_unused=True, materialize_grads=True)
    d3ydx3 = torch.autograd.grad(d2ydx2, x, materialize_grads=True)
    assert d2ydx2_none[0] is None
""")

port("accumulate_grad_create_graph", TA + "test_accumulate_grad", """
    x = torch.randn(3, 3, requires_grad=True)
    y = x + 2
    y.backward(torch.ones(3, 3), retain_graph=True)
    x_grad = x.grad
    y.backward(torch.ones(3, 3), create_graph=True)
    x.grad
""")

port("grad_unreachable", TA + "test_grad_unreachable", """
    x = torch.ones(1, requires_grad=True)
    y = torch.ones(1, requires_grad=True)
    z = x * 2
    w = y * 2
    grad_x, grad_y = torch.autograd.grad(x * 2, [x, y], allow_unused=True)
    assert grad_y is None
""")

port("sharded_grad", TA + "test_sharded_grad", """
    leaves = [torch.zeros(2, 2, requires_grad=True) for _ in range(4)]
    intermediates = [l * i + l * l for i, l in enumerate(leaves)]
    loss = sum(v * i for i, v in enumerate(intermediates)).sum()
    d_intermediates = [d for k in range(0, 4, 2)
                       for d in torch.autograd.grad(loss, intermediates[k:k + 2], retain_graph=True)]
    torch.autograd.backward(intermediates, d_intermediates)
""")

port("multi_backward", TA + "test_multi_backward", """
    x = torch.randn(3, 3, requires_grad=True)
    y = torch.randn(3, 3, requires_grad=True)
    q = torch.randn(3, 3, requires_grad=True)
    a = torch.randn(3, 3, requires_grad=True)
    b = torch.randn(3, 3, requires_grad=True)
    q2 = q * 2
    z = x + y + q2
    c = a * b + q2
    torch.autograd.backward([z, c], [torch.randn(3, 3), torch.randn(3, 3)])
""")

port("dependent_backward", TA + "test_dependent_backward", """
    x = torch.randn(5, requires_grad=True)
    y = x ** 2
    z = y ** 3
    torch.autograd.backward([y, z], [torch.randn(5), torch.randn(5)])
""")

port("duplicate_backward_root", TA + "test_duplicate_backward_root", """
    a = torch.randn(3, 3, requires_grad=True)
    b = torch.randn(3, 3, requires_grad=True)
    x = a * b
    grad_output = torch.randn_like(x)
    torch.autograd.backward([x, x], [grad_output, grad_output])
""")

port("grad_chain_third_order", "torch.autograd.grad docs (create_graph=True: higher-order derivatives); cf. " + TA + "test_grad", """
    x = torch.tensor([0.5, -1.5, 2.0], requires_grad=True)
    y = (x ** 4 + x.sin()).sum()
    g1, = torch.autograd.grad(y, x, create_graph=True)
    g2, = torch.autograd.grad(g1.sum(), x, create_graph=True)
    g3, = torch.autograd.grad(g2.sum(), x)
    g3
""")

port("hook_with_create_graph", TA + "test_hessian_vector (with a tensor hook on the leaf)", """
    x = torch.randn(3, requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.requires_grad))
    y = (x ** 3).sum()
    g, = torch.autograd.grad(y, x, create_graph=True)
    (g * x).sum().backward()
    assert seen == [True, False], seen
    x.grad
""")

# =============================================================================== functional API
port("functional_vjp", TF + "test_vjp_output", """
    import torch.autograd.functional as autogradF
    def reducer(x):
        return x.sum(dim=1)
    res = autogradF.vjp(reducer, torch.rand(4, 4), torch.ones(4))
    def adder(x, y):
        return 2 * x + 3 * y
    out, vjp_val = autogradF.vjp(adder, (torch.rand(2), torch.rand(2)), torch.ones(2))
""")

port("functional_jvp", TF + "test_jvp_output", """
    import torch.autograd.functional as autogradF
    def reducer(x):
        return x.sum(dim=1)
    res = autogradF.jvp(reducer, torch.rand(4, 4), torch.ones(4, 4))
    def adder(x, y):
        return 2 * x + 3 * y
    out, jvp_val = autogradF.jvp(adder, (torch.rand(2), torch.rand(2)), (torch.ones(2), torch.ones(2)))
""")

port("functional_jacobian", TF + "test_jacobian_output", """
    import torch.autograd.functional as autogradF
    def exp_reducer(x):
        return x.exp().sum(dim=1)
    res = autogradF.jacobian(exp_reducer, torch.rand(4, 4))
    def identity(x):
        return x.clone()
    res = autogradF.jacobian(identity, torch.rand(4))
    def add_exp_reducer(x, y):
        return (x + y.exp()).sum(dim=1)
    res = autogradF.jacobian(add_exp_reducer, (torch.rand(4, 4), torch.rand(4, 4)))
""")

port("functional_jacobian_vectorize", TF + "test_jacobian_output (vectorize=True)", """
    import torch.autograd.functional as autogradF
    def exp_reducer(x):
        return x.exp().sum(dim=1)
    res = autogradF.jacobian(exp_reducer, torch.rand(3, 3), vectorize=True)
""")

port("functional_jacobian_create_graph", TF + "test_jacobian_create_graph", """
    import torch.autograd.functional as autogradF
    def exp_reducer(x):
        return x.exp().sum(dim=1)
    inputs = torch.rand(3, 3, requires_grad=True)
    res = autogradF.jacobian(exp_reducer, inputs, create_graph=True)
    g, = torch.autograd.grad(res.sum(), inputs)
""")

port("functional_hessian", TF + "test_hessian_output", """
    import torch.autograd.functional as autogradF
    def pow_reducer(x):
        return x.pow(3).sum()
    res = autogradF.hessian(pow_reducer, torch.rand(2, 2))
    def add_pow_reducer(x, y):
        return (x + y).pow(3).sum()
    res = autogradF.hessian(add_pow_reducer, (torch.rand(2, 2), torch.rand(2, 2)))
""")

port("functional_vhp", TF + "test_vhp_output", """
    import torch.autograd.functional as autogradF
    def foo(a):
        return 3 * a.narrow(0, 0, 3).exp().sum()
    res = autogradF.vhp(foo, torch.rand(4, 4), torch.ones(4, 4))
    def bar(a, b):
        return (a + 3 * b.narrow(0, 0, 3)).exp().sum()
    out, vhp_val = autogradF.vhp(bar, (torch.rand(3), torch.rand(4)), (torch.ones(3), torch.ones(4)))
""")

port("functional_hvp", TF + "test_hvp_output", """
    import torch.autograd.functional as autogradF
    def foo(a):
        return 3 * a.narrow(0, 0, 3).exp().sum()
    res = autogradF.hvp(foo, torch.rand(4, 4), torch.ones(4, 4))
    def bar(a, b):
        return (a + 3 * b.narrow(0, 0, 3)).exp().sum()
    out, hvp_val = autogradF.hvp(bar, (torch.rand(3), torch.rand(4)), (torch.ones(3), torch.ones(4)))
""")

port("functional_hessian_match_vhp_hvp", TF + "test_hessian_match_vhp_hvp", """
    import torch.autograd.functional as autogradF
    def foo(a):
        return 3 * a.narrow(0, 0, 3).exp().sum()
    inputs = torch.rand(4)
    v = torch.rand(4)
    res = autogradF.hessian(foo, inputs)
    res_vhp = autogradF.vhp(foo, inputs, v)[1]
    res_hvp = autogradF.hvp(foo, inputs, v)[1]
""")

port("functional_hessian_vectorize", TF + "test_hessian_output (vectorize=True)", """
    import torch.autograd.functional as autogradF
    def pow_reducer(x):
        return x.pow(3).sum()
    res = autogradF.hessian(pow_reducer, torch.rand(2, 2), vectorize=True)
""")

port("functional_jacobian_forward_mode", TF + "test_jacobian_vectorize_correctness (strategy='forward-mode')", """
    import torch.autograd.functional as autogradF
    def f(x):
        return x.exp().sum(dim=1)
    res = autogradF.jacobian(f, torch.rand(3, 3), vectorize=True, strategy="forward-mode")
""")

port("functional_hvp_create_graph", TF + "test_hvp_create_graph", """
    import torch.autograd.functional as autogradF
    def foo(a):
        return 3 * a.narrow(0, 0, 3).exp().sum()
    inputs = torch.rand(4, 4, dtype=torch.double, requires_grad=True)
    v = torch.ones(4, 4, dtype=torch.double, requires_grad=True)
    res = autogradF.hvp(foo, inputs, v, create_graph=True)
    (res[1].sum() + res[0]).backward()
    inputs.grad, v.grad
""")

# =============================================================================== custom Functions
port("function", TA + "test_function", """
    from torch.autograd import Function
    class MyFunction(Function):
        @staticmethod
        def forward(ctx, tensor1, pyscalar, tensor2):
            ctx.pyscalar = pyscalar
            ctx.save_for_backward(tensor1, tensor2)
            return tensor1 + pyscalar * tensor2 + tensor1 * tensor2
        @staticmethod
        def backward(ctx, grad_output):
            var1, var2 = ctx.saved_tensors
            return (grad_output + grad_output * var2, None,
                    grad_output * ctx.pyscalar + grad_output * var1)
    x = torch.randn(3, 3, requires_grad=True)
    y = torch.randn(3, 3, requires_grad=True)
    result = MyFunction.apply(x, 2, y)
    go = torch.ones((), requires_grad=True)
    result.sum().backward(go, create_graph=True)
    x.grad, y.grad
""")

port("once_differentiable", TA + "test_once_differentiable", """
    from torch.autograd import Function
    from torch.autograd.function import once_differentiable
    class MyFunction(Function):
        @staticmethod
        def forward(ctx, tensor1, pyscalar, tensor2):
            ctx.pyscalar = pyscalar
            ctx.save_for_backward(tensor1, tensor2)
            return tensor1 + pyscalar * tensor2 + tensor1 * tensor2
        @staticmethod
        @once_differentiable
        def backward(ctx, grad_output):
            assert not torch.is_grad_enabled()
            t1, t2 = ctx.saved_tensors
            return (grad_output + grad_output * t2, None,
                    grad_output * ctx.pyscalar + grad_output * t1)
    x = torch.randn(3, 3, requires_grad=True)
    y = torch.randn(3, 3, requires_grad=True)
    MyFunction.apply(x, 2, y).sum().backward(torch.ones(()), create_graph=True)
    x.grad, y.grad
""")

# PyTorch's test uses a backward that is not the VJP of its forward (identity forward, grad * 2
# backward) to check that autograd runs the user's backward: gradmagic must say so, on that node.
port("function_returns_input", TA + "test_function_returns_input", """
    from torch.autograd import Function
    class MyFunction(Function):
        @staticmethod
        def forward(ctx, x):
            return x
        @staticmethod
        def backward(ctx, grad):
            return grad * 2
    for shape in [(1,), ()]:
        v = torch.ones(shape, requires_grad=True)
        MyFunction.apply(v).backward()
        with torch.no_grad():
            v.grad.zero_()
        MyFunction.apply(v.clone()).backward()
""", wrong="MyFunction")

# Same: the backward returns None for a differentiable input (forward x * 2) on purpose.
port("function_returns_undefined_tensor", TA + "test_function_returns_undefined_tensor", """
    from torch.autograd import Function
    class MyFunction(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2
        @staticmethod
        def backward(ctx, grad):
            return None
    x = torch.ones(1, requires_grad=True)
    MyFunction.apply(x).backward()
    MyFunction.apply(x ** 2).backward()
    MyFunction.apply(x).sum().backward()
    assert x.grad is None
    assert torch.autograd.grad(MyFunction.apply(x), x, allow_unused=True)[0] is None
""", wrong="MyFunction")

port("dont_materialize_grads", TA + "test_dont_materialize_grads (UndefinedGrad replaced by an unused output)", """
    from torch.autograd import Function
    class TwoOut(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x.clone(), x.clone()
        @staticmethod
        def backward(ctx, g1, g2):
            assert g2 is None
            return g1
    x = torch.randn(3, requires_grad=True)
    a, b = TwoOut.apply(x)
    (a * 3).sum().backward()
    x.grad
""")

port("materialize_grads", TA + "test_materialize_grads (UndefinedGrad replaced by an unused output)", """
    from torch.autograd import Function
    class TwoOut(Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone(), x.clone()
        @staticmethod
        def backward(ctx, g1, g2):
            assert torch.equal(g2, torch.zeros_like(g2))
            return g1 + g2
    x = torch.randn(3, requires_grad=True)
    a, b = TwoOut.apply(x)
    (a * 3).sum().backward()
    x.grad
""")

port("mark_non_differentiable", TA + "test_mark_non_differentiable", """
    from torch.autograd import Function
    class MyFunction(Function):
        @staticmethod
        def forward(ctx, input):
            output = input > 0
            ctx.mark_non_differentiable(output)
            return output
        @staticmethod
        def backward(ctx, grad_output):
            return (grad_output * 0).to(torch.double)
    x = torch.randn(3, 3, requires_grad=True)
    mask = MyFunction.apply(x)
    assert not mask.requires_grad
    y = x.masked_fill(mask, 0)
    y.sum().backward()
""")

port("mark_non_differentiable_mixed", TA + "test_mark_non_differentiable_mixed", """
    from torch.autograd import Function
    class MyFunction(Function):
        @staticmethod
        def forward(ctx, input):
            a = input + 1
            b = input + 2
            ctx.mark_non_differentiable(a)
            return a, b
        @staticmethod
        def backward(ctx, grad_a, grad_b):
            assert (grad_a == 0).all() and (grad_b == 1).all()
            return grad_b
    x = torch.randn(3, 3, requires_grad=True)
    a, b = MyFunction.apply(x)
    assert not a.requires_grad and b.requires_grad
    b.sum().backward()
""")

port("mark_non_differentiable_none", TA + "test_mark_non_differentiable_none", """
    from torch.autograd import Function
    class MyFunction(Function):
        @staticmethod
        def forward(ctx, input):
            output = input.clone()
            ctx.mark_non_differentiable(output)
            return output
        @staticmethod
        def backward(ctx, grad_output):
            return None
    x = torch.randn(3, 3, requires_grad=True)
    r = MyFunction.apply(x * x)
    (r * x).sum().backward()
""")

port("return_duplicate", TA + "test_return_duplicate", """
    from torch.autograd import Function
    class DoubleDuplicate(Function):
        @staticmethod
        def forward(ctx, x):
            output = x * 2
            return output, output
        @staticmethod
        def backward(ctx, grad1, grad2):
            return grad1 * 2 + grad2 * 2
    x = torch.randn(3, 3, requires_grad=True)
    a, b = DoubleDuplicate.apply(x)
    assert a is b
    (a + b).sum().backward()
""")

port("return_duplicate_inplace", TA + "test_return_duplicate_inplace", """
    from torch.autograd import Function
    class DoubleInplace(Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x, x
        @staticmethod
        def backward(ctx, grad1, grad2):
            return grad1 * 2 + grad2 * 2
    x = torch.randn(3, 3, requires_grad=True)
    a, b = DoubleInplace.apply(x.clone())
    assert a is b
    (a + b).sum().backward()
""")

port("save_output_nr", TA + "test_save_output_nr", """
    from torch.autograd import Function
    class MultiOutputFn(Function):
        @staticmethod
        def forward(ctx, x):
            return x[:3], x[3:]
        @staticmethod
        def backward(ctx, *grad):
            return torch.cat(grad)
    class TestFn(Function):
        @staticmethod
        def forward(ctx, b):
            ctx.save_for_backward(b)
            return b * 2
        @staticmethod
        def backward(ctx, grad_b):
            b, = ctx.saved_tensors
            assert b.output_nr == 1
            return grad_b * 2
    x = torch.randn(6, requires_grad=True)
    a, b = MultiOutputFn.apply(x)
    TestFn.apply(b).sum().backward()
""")

port("no_grad_python_function", TA + "test_no_grad_python_function", """
    from torch.autograd import Function
    class MyOp(Function):
        @staticmethod
        def forward(self, x):
            return x + 1
        @staticmethod
        def backward(self, dy):
            return dy
    x = torch.ones(3, 3, requires_grad=True)
    with torch.no_grad():
        y = MyOp.apply(x)
    assert not y.requires_grad
    MyOp.apply(x).sum().backward()
""")

port("saved_output_exp", "torch/autograd/function.py::Function docstring (Exp example)", """
    from torch.autograd import Function
    class Exp(Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result
        @staticmethod
        def backward(ctx, grad_output):
            result, = ctx.saved_tensors
            return grad_output * result
    x = torch.randn(4, requires_grad=True)
    Exp.apply(x).sum().backward()
""")

port("setup_context_linear", "docs/source/notes/extending.rst (LinearFunction, setup_context + needs_input_grad)", """
    from torch.autograd import Function
    class LinearFunction(Function):
        @staticmethod
        def forward(input, weight, bias):
            output = input.mm(weight.t())
            if bias is not None:
                output += bias.unsqueeze(0).expand_as(output)
            return output
        @staticmethod
        def setup_context(ctx, inputs, output):
            input, weight, bias = inputs
            ctx.save_for_backward(input, weight, bias)
        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output.mm(weight)
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.t().mm(input)
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(2, 3, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    LinearFunction.apply(x, w, b).pow(2).sum().backward()
    LinearFunction.apply(x.detach(), w, None).sum().backward()
""")

port("setup_context_mul_constant", "docs/source/notes/extending.rst (MulConstant, non-tensor argument)", """
    from torch.autograd import Function
    class MulConstant(Function):
        @staticmethod
        def forward(tensor, constant):
            return tensor * constant
        @staticmethod
        def setup_context(ctx, inputs, output):
            tensor, constant = inputs
            ctx.constant = constant
        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.constant, None
    x = torch.randn(3, requires_grad=True)
    MulConstant.apply(x, 5.5).sum().backward()
""")

port("double_backward_custom_square", "intermediate_source/custom_function_double_backward_tutorial.rst (Square)", """
    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 2
        @staticmethod
        def backward(ctx, grad_out):
            x, = ctx.saved_tensors
            return grad_out * 2 * x
    x = torch.rand(3, 3, dtype=torch.double, requires_grad=True)
    y = Square.apply(x)
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    g.sum().backward()
    x.grad
""")

port("legendre_polynomial3", "beginner_source/examples_autograd/polynomial_custom_function.py", """
    import math
    class LegendrePolynomial3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)
        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)
    x = torch.linspace(-math.pi, math.pi, 20)
    y = torch.sin(x)
    a = torch.full((), 0.0, requires_grad=True)
    b = torch.full((), -1.0, requires_grad=True)
    c = torch.full((), 0.0, requires_grad=True)
    d = torch.full((), 0.3, requires_grad=True)
    for t in range(3):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            for p in (a, b, c, d):
                p -= 5e-6 * p.grad
                p.grad = None
""")

port("broadcast_grad_left_unreduced", "torch autograd engine: a custom backward's gradient that is expandable to "
     "the input is summed down by the engine (validate_outputs); cf. " + TA + "test_invalid_gradients", """
    class AddBias(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, bias):
            return x + bias
        @staticmethod
        def backward(ctx, g):
            return g, g          # torch sums g down to bias's shape itself
    x = torch.randn(4, 3, requires_grad=True)
    bias = torch.randn(3, requires_grad=True)
    AddBias.apply(x, bias).pow(2).sum().backward()
    bias.grad
""")

port("numpy_forward", "advanced_source/numpy_extensions_tutorial.py (a Function computed with NumPy; np.sin for rfft2)", """
    import numpy as np
    class NpSin(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.from_numpy(np.sin(x.detach().numpy()))
        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * x.cos()
    x = torch.randn(4, requires_grad=True)
    NpSin.apply(x).sum().backward()
""")

# =============================================================================== checkpoint
port("checkpoint_sequential_reentrant", TU + "test_checkpoint (use_reentrant=True)", """
    from torch.utils.checkpoint import checkpoint_sequential
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.ReLU())
    inp = torch.randn(1, 6, requires_grad=True)
    out = checkpoint_sequential(model, 2, inp, use_reentrant=True)
    out.sum().backward()
    model.zero_grad()
    out = checkpoint_sequential(list(model.children()), 2, inp.detach().requires_grad_(), use_reentrant=True)
    out.sum().backward()
""")

port("checkpoint_sequential_non_reentrant", TU + "test_checkpoint (use_reentrant=False)", """
    from torch.utils.checkpoint import checkpoint_sequential
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.ReLU())
    inp = torch.randn(1, 6, requires_grad=True)
    out = checkpoint_sequential(model, 2, inp, use_reentrant=False)
    out.sum().backward()
""")

port("checkpoint_valid_create_graph", TU + "test_checkpoint_valid", """
    from torch.utils.checkpoint import checkpoint_sequential
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    input_var = torch.randn(1, 6, requires_grad=True)
    out_checkpoint = checkpoint_sequential(list(model.children()), 2, input_var, use_reentrant=False)
    grads, = torch.autograd.grad(outputs=[out_checkpoint], grad_outputs=[torch.ones(1, 2)],
                                 inputs=[input_var], create_graph=True)
    grads.pow(2).sum().backward()
""")

port("checkpoint_non_tensor", TU + "test_checkpoint_non_tensor", """
    from torch.utils.checkpoint import checkpoint
    def run_fn(tensor1, tensor2):
        if tensor2 is None:
            return tensor1
        return tensor1 + tensor2
    input_var = torch.randn(1, 8, requires_grad=True)
    out = checkpoint(run_fn, input_var, None, use_reentrant=True)
    out.sum().backward()
""")

port("checkpoint_non_tensor_inputs_outputs", TU + "test_checkpoint_non_tensor_inputs_outputs", """
    from torch.utils.checkpoint import checkpoint
    def foo(t1, t2, scale, t3):
        t4 = t1 + t2 * t3
        t5 = t1 * t2 + t3
        t4 *= scale
        t5 *= scale
        return scale, t4, None, True, t5, "bar", t1
    t1 = torch.rand(5, requires_grad=True)
    t2 = torch.rand(5, requires_grad=True)
    t3 = torch.rand(5)
    res = checkpoint(foo, t1, t2, 3, t3, use_reentrant=True)
    res[1].sum().backward(retain_graph=True)
    res[4].sum().backward(retain_graph=True)
    res[6].sum().backward()
""")

port("checkpoint_partial_grad", TU + "test_checkpoint_partial_grad", """
    from torch.utils.checkpoint import checkpoint
    def run_fn(tensor1, tensor2):
        return tensor1, tensor2
    input_var = torch.randn(1, 4, requires_grad=True)
    input_var2 = torch.randn(1, 4, requires_grad=False)
    out = checkpoint(run_fn, input_var, input_var2, use_reentrant=True)
    out[0].sum().backward()
""")

port("checkpoint_rng_cpu", TU + "test_checkpoint_rng_cpu", """
    from torch.utils.checkpoint import checkpoint
    inp = torch.randn(16).requires_grad_()
    phase1 = torch.nn.Dropout()
    phase2 = torch.nn.Dropout()
    def run_fn(input):
        return phase2(input)
    out = phase1(inp)
    out = checkpoint(run_fn, out, use_reentrant=True)
    out.sum().backward()
    inp.grad = None
    out = checkpoint(run_fn, phase1(inp), use_reentrant=False)
    out.sum().backward()
""")

port("checkpoint_hook_inside", TU + "test_checkpoint_non_tensor (a tensor hook registered inside the checkpointed function)", """
    from torch.utils.checkpoint import checkpoint
    calls = []
    def run_fn(t, w):
        h = t * w
        h.register_hook(lambda g: calls.append(1) or g * 2)
        return h.tanh()
    t = torch.randn(4, requires_grad=True)
    w = torch.randn(4, requires_grad=True)
    checkpoint(run_fn, t, w, use_reentrant=False).sum().backward()
    t.grad, w.grad
""")

port("checkpoint_batchnorm_train", TU + "test_checkpoint (use_reentrant=False, with a BatchNorm1d in training mode)", """
    from torch.utils.checkpoint import checkpoint
    bn = torch.nn.BatchNorm1d(3)
    lin = torch.nn.Linear(3, 3)
    x = torch.randn(5, 3, requires_grad=True)
    out = checkpoint(lambda t: bn(lin(t)).relu(), x, use_reentrant=False)
    out.sum().backward()
""")

# =============================================================================== grad modes
port("no_grad_decorator_and_context", TA + "test_no_grad", """
    x = torch.ones(3, 3, requires_grad=True)
    y = torch.ones(3, 3) * 4
    with torch.no_grad():
        w = x + y
    @torch.no_grad()
    def adder(x, y):
        return x + y
    z = adder(x, y)
    assert not w.requires_grad and not z.requires_grad
    with torch.no_grad():
        w = adder(x, y)
    (x * y + adder(x, y)).sum().backward()
""")

port("set_grad_generator_functions", TA + "test_set_grad_generator_functions", """
    @torch.no_grad()
    def gen_no_grad():
        for i in range(3):
            assert not torch.is_grad_enabled()
            yield i
    @torch.enable_grad()
    def gen_enable_grad():
        for i in range(3):
            assert torch.is_grad_enabled()
            yield i
    x = torch.randn(3, requires_grad=True)
    total = 0
    with torch.enable_grad():
        for i in gen_no_grad():
            total = total + x * i
    with torch.no_grad():
        for i in gen_enable_grad():
            assert not (x * i).requires_grad
    total.sum().backward()
""")

port("set_grad_enabled", TA + "test_set_grad_enabled", """
    x = torch.tensor([1.0], requires_grad=True)
    with torch.set_grad_enabled(False):
        y = x * 2
    assert not y.requires_grad
    with torch.set_grad_enabled(True):
        y = x * 2
    assert y.requires_grad
    with torch.set_grad_enabled(False):
        torch.set_grad_enabled(True)
        y = x * 2
    assert y.requires_grad
    torch.set_grad_enabled(True)
    @torch.set_grad_enabled(False)
    def f(t):
        return t * 3
    assert not f(x).requires_grad
    (y * x).sum().backward()
""")

port("enable_grad_inside_no_grad", TA + "test_no_grad (torch.enable_grad nested in no_grad)", """
    x = torch.randn(3, requires_grad=True)
    with torch.no_grad():
        a = x * 2
        with torch.enable_grad():
            b = x * 3
    assert not a.requires_grad and b.requires_grad
    (b * a).sum().backward()
""")

port("inference_mode", TA + "test_inference_mode_context_manager / test_inference_mode_decorator", """
    a = torch.randn(3, requires_grad=True)
    with torch.inference_mode():
        c = a * 2
    assert torch.is_inference(c) and not c.requires_grad
    @torch.inference_mode()
    def func(x):
        return x * x
    d = func(a)
    assert not d.requires_grad
    (a * c.clone()).sum().backward()
""")

port("no_grad_bare_decorator", TA + "test_no_grad (the bare @torch.no_grad form)", """
    x = torch.randn(3, requires_grad=True)
    @torch.no_grad
    def doubler(t):
        return t * 2
    assert not doubler(x).requires_grad
    (x * doubler(x)).sum().backward()
    x.grad
""")

port("inference_mode_nested_false", TA + "test_inference_mode_context_manager (inference_mode(False) inside)", """
    a = torch.randn(3, requires_grad=True)
    with torch.inference_mode():
        with torch.inference_mode(False):
            b = a * a
    assert b.requires_grad
    b.sum().backward()
    a.grad
""")

# =============================================================================== tutorials
port("autogradqs_tutorial", "beginner_source/basics/autogradqs_tutorial.py", """
    x = torch.ones(5)
    y = torch.zeros(3)
    w = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    z = torch.matmul(x, w) + b
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    loss.backward()
    with torch.no_grad():
        z = torch.matmul(x, w) + b
    z_det = (torch.matmul(x, w) + b).detach()
    inp = torch.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    out.backward(torch.ones_like(out), retain_graph=True)
    out.backward(torch.ones_like(out), retain_graph=True)
    inp.grad.zero_()
    out.backward(torch.ones_like(out), retain_graph=True)
    inp.grad
""")

port("blitz_autograd_tutorial", "beginner_source/blitz/autograd_tutorial.py", """
    a = torch.tensor([2., 3.], requires_grad=True)
    b = torch.tensor([6., 4.], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1., 1.])
    Q.backward(gradient=external_grad)
    a.grad, b.grad
""")

# =============================================================================== built to be wrong
port("wrong_sign", "mutant of the Exp example in torch/autograd/function.py (sign flipped)", """
    class WrongSignExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result
        @staticmethod
        def backward(ctx, grad_output):
            result, = ctx.saved_tensors
            return -grad_output * result
    x = torch.randn(4, requires_grad=True)
    WrongSignExp.apply(x).sum().backward()
""", wrong="WrongSignExp")

port("wrong_missing_factor_2", "mutant of Square in custom_function_double_backward_tutorial (factor 2 dropped)", """
    class SquareNo2(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 2
        @staticmethod
        def backward(ctx, grad_out):
            x, = ctx.saved_tensors
            return grad_out * x
    x = torch.randn(3, 3, requires_grad=True)
    SquareNo2.apply(x).sum().backward()
""", wrong="SquareNo2")

port("wrong_transposed_matmul", "a matmul Function whose backward uses b instead of b.T (square, so shapes pass)", """
    class MyMatmul(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a @ b
        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return g @ b, a.t() @ g
    a = torch.randn(3, 3, requires_grad=True)
    b = torch.randn(3, 3, requires_grad=True)
    (MyMatmul.apply(a, b) * torch.randn(3, 3)).sum().backward()
""", wrong="MyMatmul")

port("wrong_transposed_weight_setup_context", "mutant of LinearFunction in docs/source/notes/extending.rst "
     "(grad_weight transposed: input.t() @ grad_output)", """
    class LinearT(torch.autograd.Function):
        @staticmethod
        def forward(input, weight):
            return input.mm(weight.t())
        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)
        @staticmethod
        def backward(ctx, grad_output):
            input, weight = ctx.saved_tensors
            return grad_output.mm(weight), input.t().mm(grad_output)
    x = torch.randn(4, 3)
    w = torch.randn(3, 3, requires_grad=True)
    LinearT.apply(x, w).pow(2).sum().backward()
""", wrong="LinearT")

port("wrong_broadcast_sum_axis", "a bias-add Function whose backward sums the broadcast over the wrong axis", """
    class AddBiasWrongAxis(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, bias):
            return x + bias
        @staticmethod
        def backward(ctx, g):
            return g, g.sum(1)
    x = torch.randn(3, 3, requires_grad=True)
    bias = torch.randn(3, requires_grad=True)
    AddBiasWrongAxis.apply(x, bias).pow(2).sum().backward()
""", wrong="AddBiasWrongAxis")

port("wrong_broadcast_mean", "a bias-add Function whose backward averages the broadcast instead of summing it", """
    class AddBiasMean(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, bias):
            return x + bias
        @staticmethod
        def backward(ctx, g):
            return g, g.mean(0)
    x = torch.randn(4, 3, requires_grad=True)
    bias = torch.randn(3, requires_grad=True)
    AddBiasMean.apply(x, bias).pow(2).sum().backward()
""", wrong="AddBiasMean")

port("wrong_once_differentiable", "mutant of " + TA + "test_once_differentiable (grad of tensor2 misses the scalar)", """
    from torch.autograd.function import once_differentiable
    class Mixed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t1, pyscalar, t2):
            ctx.pyscalar = pyscalar
            ctx.save_for_backward(t1, t2)
            return t1 + pyscalar * t2 + t1 * t2
        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            t1, t2 = ctx.saved_tensors
            return g + g * t2, None, g + g * t1
    x = torch.randn(3, requires_grad=True)
    y = torch.randn(3, requires_grad=True)
    Mixed.apply(x, 2.0, y).sum().backward()
""", wrong="Mixed")

port("wrong_inside_checkpoint", "a wrong custom backward inside " + TU + "test_checkpoint_non_tensor's run_fn", """
    from torch.utils.checkpoint import checkpoint
    class CubeNo3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3
        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * x ** 2
    x = torch.randn(5, requires_grad=True)
    out = checkpoint(lambda t: CubeNo3.apply(t.tanh()), x, use_reentrant=False)
    out.sum().backward()
""", wrong="CubeNo3")

NAMES = [p.name for p in PORTS]
assert len(NAMES) == len(set(NAMES)), "port names must be unique"
