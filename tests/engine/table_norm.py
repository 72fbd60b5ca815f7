"""Test-table rows of the engine's norm family (merged into engine_table.TABLE)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF

import gradmagic.engine as ge
from engine_table import Row, bi, un  # noqa: F401


def _F(m: Any) -> Any:
    """torch.nn.functional or the engine (whose names are torch's)."""
    return ge if m is ge else TF


IDX = np.array([[0, 2, 1], [5, 1, 1]])
BAG = np.array([0, 2, 2, 5, 1, 3, 3])
OFFSETS = np.array([0, 2, 2, 5])


def _bag(m: Any, w: Any, psw: Any) -> Any:
    idx, off = m.tensor(BAG), m.tensor(OFFSETS)
    f = _F(m).embedding_bag
    return (f(idx, w, off, mode="sum", per_sample_weights=psw) * 2
            + f(idx, w, off, mode="mean")
            + f(idx, w, off, mode="max") ** 2)


TABLE: dict[str, Row] = {
    "batch_norm": Row(lambda m, x, w, b: _F(m).batch_norm(x, None, None, w, b, training=True) ** 2, 3,
                      shapes=[((3, 4), (4,), (4,)), ((2, 3, 4), (3,), (3,)),
                              ((2, 2, 2, 3), (2,), (2,))]),
    "batch_norm_eval": Row(lambda m, x, mu, var, w, b: _F(m).batch_norm(x, mu, var, w, b) ** 2, 5,
                           shapes=[((3, 4), (4,), (4,), (4,), (4,)),
                                   ((2, 3, 4), (3,), (3,), (3,), (3,))],
                           domains=("real", "real", "positive", "real", "real"),
                           diff=(True, False, False, True, True)),
    "layer_norm": Row(lambda m, x, w, b: _F(m).layer_norm(x, tuple(w.shape), w, b) ** 2, 3,
                      shapes=[((3, 4), (4,), (4,)), ((2, 3, 4), (3, 4), (3, 4)), ((5,), (5,), (5,))]),
    "group_norm": Row(lambda m, x, w, b: _F(m).group_norm(x, 2, w, b) ** 2, 3,
                      shapes=[((2, 4, 3), (4,), (4,)), ((3, 6), (6,), (6,)), ((1, 2, 2, 2), (2,), (2,))]),
    # local_response_norm's zero padding of the channel axis (torch's constant_pad_nd)
    "pad_constant": un(lambda m, x: _F(m).local_response_norm(x, 3, alpha=0.5, k=2.0),
                       shapes=[((2, 4, 3),), ((2, 3, 2, 2),)]),
    # (padding_idx and scale_grad_by_freq change the gradient on purpose: test_engine_norm.py)
    "embedding": un(lambda m, w: _F(m).embedding(m.tensor(IDX), w) ** 2, shapes=[((6, 3),)]),
    # torch's EmbeddingBagBackward0 has no derivative of its own: no second order
    "embedding_bag": bi(_bag, shapes=[((6, 3), (7,))], second=False),
}


_EMB_IDX = np.array([0, 2, 2, 1])


def _emb_dense_backward(m: Any, g: Any) -> Any:
    """The gradient of embedding(scale_grad_by_freq=True) as an op of its own (its double
    backward follows torch's, which looks rows up again without the frequency scale)."""
    if m is ge:
        return ge.apply("embedding_dense_backward", g, _EMB_IDX, num_weights=3) ** 2
    return torch.ops.aten.embedding_dense_backward(g, torch.from_numpy(_EMB_IDX), 3, -1, True) ** 2


# gradcheck=False: torch's derivative leaves the frequency scale out (not the true derivative)
TABLE["embedding_dense_backward"] = un(_emb_dense_backward, shapes=[((4, 2),), ((4, 3),)], gradcheck=False)
