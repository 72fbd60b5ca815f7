"""``torch.func`` transforms inside a recorded block (issue 12, "torch.func where it runs
through the mode"): functorch's wrapped tensors have no storage and the engine has no
transforms, so the calls inside ``grad``/``vmap``/``jacrev``/``hessian``/``vjp``/``jvp`` run in
torch only. They must give torch's results, be counted as unchecked (never as agreeing), say so
in a note, and leave the rest of the block checked. Examples follow the torch.func tutorial
("torch.func Whirlwind Tour", pytorch.org/docs/stable/func.whirlwind_tour.html). Inference
tensors (``torch.inference_mode``) have no version counter and are left out the same way."""
from __future__ import annotations

import torch
from torch.func import grad, hessian, jacrev, jvp, vjp, vmap

from gradmagic.recorder import Session, trace


def _no_internal_error(rep) -> None:
    assert not any("internal error" in n or "could not build" in n for n in rep.notes), rep.notes
    assert any("torch.func" in n for n in rep.notes), rep.notes


def test_func_grad_and_hessian_give_torchs_results_and_are_unchecked():
    with trace(session=Session()) as rep:
        x = torch.tensor([1.0, 2.0, 3.0])
        g = grad(lambda x: (x ** 3).sum())(x)
    assert torch.equal(g, 3 * x ** 2)
    _no_internal_error(rep)
    assert rep.coverage["values"] == {"checked": 0, "agree": 0, "differ": 0, "unchecked": 1}
    assert not rep.ok  # nothing else was checked: never "everything agrees"
    with trace(session=Session()) as rep:
        H = hessian(lambda x: (x ** 3).sum())(x)
    assert torch.equal(H, torch.diag(6 * x))
    _no_internal_error(rep)
    assert rep.coverage["values"]["unchecked"] >= 1


def test_code_after_a_transform_is_still_checked():
    torch.manual_seed(0)
    with trace(session=Session()) as rep:
        W = torch.randn(3, 2)
        batched = vmap(lambda v: W @ v)(torch.randn(4, 2))
        J = jacrev(lambda x: x.sin() * x)(torch.tensor([0.5, 1.0]))
        w = torch.randn(2, requires_grad=True)
        ((W @ w).tanh() ** 2).sum().backward()
    assert batched.shape == (4, 3) and J.shape == (2, 2)
    _no_internal_error(rep)
    assert rep.ok and rep.coverage["grads"]["agree"] == 1
    assert rep.coverage["values"]["unchecked"] >= 2


def test_vjp_and_jvp_results_used_later_are_drawn_as_unrecorded():
    with trace(session=Session()) as rep:
        x = torch.tensor([1.0, 2.0])
        out, fn = vjp(lambda x: x.exp(), x)
        (v,) = fn(torch.ones(2))
        _, t = jvp(lambda x: x ** 2, (x,), (torch.ones(2),))
        total = v + t
    assert torch.allclose(total, x.exp() + 2 * x)
    _no_internal_error(rep)
    assert rep.coverage["values"]["unchecked"] >= 2


def test_inference_tensors_are_left_out_not_an_internal_error():
    # torch.inference_mode() (also as a decorator): its tensors have no version counter
    @torch.inference_mode()
    def predict(x):
        return x * 2

    with trace(session=Session()) as rep:
        w = torch.ones(3, requires_grad=True)
        (w * w).sum().backward()
        with torch.inference_mode():
            y = w * 3
        z = predict(w)
        u = (y + z).sum()
        v = (w * 4).sum()
        v.backward()
    assert torch.equal(u, torch.tensor(15.0)) and w.grad.tolist() == [6.0, 6.0, 6.0]
    assert not any("internal error" in n for n in rep.notes), rep.notes
    assert any("inference_mode" in n for n in rep.notes), rep.notes
    assert rep.ok and rep.coverage["grads"]["agree"] == 2 and rep.coverage["values"]["unchecked"] >= 1
