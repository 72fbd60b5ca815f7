"""Wrong engine rules are caught and located; the user's code is never affected;
the mode stack is always left empty."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace
from gradmagic.recorder.block import Block
from gradmagic.recorder.mode import Recorder
from gradmagic.recorder.session import remove_leaked_modes


def _program():
    x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = x.exp()
    z = y * 3.0
    w = (z + x).sum()
    w.backward()
    return x


def test_broken_vjp_rule_is_located(monkeypatch):
    mul = REGISTRY["mul"]
    good_a, good_b = mul.vjps
    monkeypatch.setattr(mul, "vjps", (lambda g, ans, a, b: g * b * 2, good_b))
    with trace(session=Session()) as rep:
        x = _program()
    assert x.grad is not None and torch.allclose(x.grad, 3 * x.detach().exp() + 1)  # torch unaffected
    assert not rep.ok
    assert rep.leaf("x").status == "differ"
    first = rep.node(rep.first_divergence)
    assert first.op == "mul" and first.label == "MulBackward0"
    assert any(c.what == "gradcheck" and c.node == first.id for c in rep.mismatches)
    assert rep.to_dict()["first_divergence"] == first.id


def test_broken_forward_rule_is_located(monkeypatch):
    monkeypatch.setattr(REGISTRY["exp"], "fwd", lambda a: np.exp(a) * 1.01)
    with trace(session=Session()) as rep:
        _program()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "exp" and first.status == "differ"
    assert first.label == "ExpBackward0" and rep.nodes[0].kind == "leaf"
    # lockstep: downstream nodes are checked on torch's values, so only exp's value differs
    assert [c.node for c in rep.mismatches if c.what == "value"] == [first.id]


def test_engine_failure_becomes_opaque(monkeypatch):
    def boom(a):
        raise FloatingPointError("engine broke")
    monkeypatch.setattr(REGISTRY["tanh"], "fwd", boom)
    with trace(session=Session()) as rep:
        x = torch.tensor([0.1, 0.2], requires_grad=True)
        y = torch.tanh(x) * 2
        y.sum().backward()
    assert torch.allclose(x.grad, 2 * (1 - torch.tanh(x.detach()) ** 2))
    assert rep.unsupported == ["torch.tanh"]
    assert any("engine broke" in n for n in rep.notes)
    assert rep.node("x") is not None and rep.leaf("x").status == "unchecked"
    assert rep.ok  # unchecked is not a disagreement


def test_internal_error_disables_with_note(monkeypatch):
    def broken(self, *a, **k):
        raise RuntimeError("bookkeeping bug")
    monkeypatch.setattr(Recorder, "_register", broken)
    with trace(session=Session()) as rep:
        x = torch.ones(3, requires_grad=True)
        y = (x * 4).sum()
        y.backward()
    assert x.grad.tolist() == [4.0, 4.0, 4.0]
    assert any("internal error" in n and "bookkeeping bug" in n for n in rep.notes)


@pytest.mark.parametrize("exc", [ValueError("bad cell"), KeyboardInterrupt()])
def test_exception_propagates_and_stack_is_empty(exc):
    with pytest.raises(type(exc)):
        with trace(session=Session()) as rep:
            x = torch.arange(3.0, requires_grad=True)
            y = x * 2
            raise exc
    assert not torch.overrides._get_current_function_mode_stack()
    assert rep.error["type"] == type(exc).__name__
    assert rep.node("y") is not None and rep.node("y").status == "agree"


def test_exception_from_torch_itself():
    with pytest.raises(RuntimeError, match="does not require grad"):
        with trace(session=Session()) as rep:
            x = torch.arange(3.0)
            x.sum().backward()
    assert rep.error["type"] == "RuntimeError"
    assert not torch.overrides._get_current_function_mode_stack()


def test_leaked_mode_is_removed_at_next_entry():
    s = Session()
    leaked = Recorder(s, Block(cell=None, finder=None))
    leaked.__enter__()  # as if a block had been torn down without its exit
    try:
        with trace(session=s) as rep:
            y = torch.ones(2) * 2
        assert not torch.overrides._get_current_function_mode_stack()
        assert any("removed 1" in n for n in rep.notes)
    finally:
        remove_leaked_modes()


def test_other_modes_survive():
    from torch.overrides import TorchFunctionMode

    class Other(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Other() as other:
        with trace(session=Session()):
            torch.ones(2) + 1
        assert torch.overrides._get_current_function_mode_stack() == [other]


def test_dropped_tensors_are_freed():
    import gc
    import weakref
    s = Session()
    with trace(session=s):
        x = torch.randn(100, requires_grad=True)
        y = (x * 2).sum()
        y.backward()
    ref = weakref.ref(x)
    del x, y
    gc.collect()
    assert ref() is None
    assert len(s.twins) == 0


def test_unrecorded_history_is_reported_not_guessed():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3  # computed before recording started
    with trace(session=Session()) as rep:
        z = (y * y).sum()
        z.backward()
    assert x.grad.tolist() == [18.0, 36.0]
    node = rep.node("y")
    assert node.kind == "opaque" and node.label == "unrecorded MulBackward0"
    assert any("outside gradmagic" in n for n in rep.notes)
    assert rep.ok and rep.unsupported == []
    assert rep.node("z").status == "agree"


def test_looking_at_a_tensor_leaves_it_resizable():
    """Reading values must not pin torch's storage (``Tensor.numpy()`` would: a later
    ``resize_`` in the user's code then fails only under gradmagic)."""
    with trace(session=Session()) as rep:
        w = torch.ones(3, requires_grad=True)
        t = torch.zeros(3)
        (t * w).sum().backward()
        t.resize_(5)
        t.fill_(1.0)
        u = torch.arange(4.0) * 2
        u.resize_(8)
        (t[:3] * w).sum().backward()
    assert rep.ok and t.shape == (5,) and u.shape == (8,)
    assert torch.equal(w.grad, torch.ones(3))


def test_torch_warnings_name_the_users_line():
    """torch's warnings from a recorded call (a non-leaf's ``.grad``, ``torch.tensor(t)``,
    a plain tensor method: ``std`` of one element) point at the user's line, as in a plain run,
    not at gradmagic's file."""
    import warnings

    src = ("x = torch.ones(2, requires_grad=True)\ny = x * 2\n"
           "g = y.grad\nt = torch.tensor(x)\nv = x[:1].std()\n")
    code = compile(src, "<cell-w>", "exec")
    seen = {}
    for traced in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ns = {"torch": torch, "__name__": "__main__"}
            if traced:
                with trace(session=Session(), namespace=ns, filename="<cell-w>") as rep:
                    exec(code, ns)
                assert rep.ok
            else:
                exec(code, ns)
        seen[traced] = [(w.filename, w.lineno, w.category.__name__, str(w.message)[:40]) for w in caught]
    assert [(f, n) for f, n, *_ in seen[False]] == [("<cell-w>", 3), ("<cell-w>", 4), ("<cell-w>", 5)]
    assert seen[True] == seen[False]
