"""The seed notes' cells (D2L "autograd" chapter), written against the engine API, give
torch's numbers."""
from __future__ import annotations

import numpy as np
import torch

import gradmagic.engine as ge


def node_name(m, t) -> str:
    return type(t.grad_fn).__name__ if m is torch else t.grad_fn.name


def run_cells(m):
    """The notes' cells In[2]..In[13] with ``m`` in place of torch; returns what they show."""
    shown = {}
    x = m.arange(4.0)
    shown["x"] = x.tolist()
    x.requires_grad_(True)
    shown["grad0"] = x.grad
    y = 2 * m.dot(x, x)
    shown["y"] = (y.item(), node_name(m, y))
    y.backward()
    shown["grad1"] = x.grad.tolist()
    shown["eq"] = (x.grad == 4 * x).tolist()
    x.grad.zero_()
    y = x.sum()
    y.backward()
    shown["grad2"] = x.grad.tolist()
    A = m.arange(24).reshape(2, 3, 4)
    t = A.sum(axis=0, keepdims=True)
    shown["t"] = (t.tolist(), str(t.dtype).replace("torch.", ""))
    A = m.arange(24).reshape(3, 8)
    B = m.ones(3, 8)
    shown["AB"] = ((A * B).tolist(), str((A * B).dtype).replace("torch.", ""))
    shown["sumAB"] = m.sum(A * B).item()
    x.grad.zero_()
    y = x * x
    shown["y2"] = (y.tolist(), node_name(m, y))
    return shown


def test_seed_cells_match_torch():
    got, want = run_cells(ge), run_cells(torch)
    assert got == want
    assert want["grad1"] == [0.0, 4.0, 8.0, 12.0] and want["sumAB"] == 276.0


def test_seed_reprs_match_the_notes():
    x = ge.arange(4.0)
    assert repr(x) == "tensor([0., 1., 2., 3.])"
    x.requires_grad_(True)
    y = 2 * ge.dot(x, x)
    assert repr(y) == "tensor(28., grad_fn=<MulBackward0>)"
    y.backward()
    assert repr(x.grad) == "tensor([ 0.,  4.,  8., 12.])"
    assert repr(x.grad == 4 * x) == "tensor([True, True, True, True])"
    assert repr(x * x) == "tensor([0., 1., 4., 9.], grad_fn=<MulBackward0>)"
    A = ge.arange(24).reshape(2, 3, 4)
    assert repr(A.sum(axis=0, keepdims=True)) == repr(torch.arange(24).reshape(2, 3, 4).sum(
        axis=0, keepdims=True))
    np.testing.assert_array_equal(ge.sum(ge.arange(24).reshape(3, 8) * ge.ones(3, 8)).data, 276.0)
