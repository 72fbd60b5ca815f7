"""Hypothesis: random small torch programs over the mapped ops agree with torch.

Programs mix broadcasting shapes, reuse of tensors, several backward calls (with and
without clearing), and in-place updates of leaves under ``no_grad``.
"""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from recorder_helpers import assert_clean
from gradmagic.recorder import Session, trace

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "rsub": lambda a, b: 1.5 - a * b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "max": lambda a, b: torch.maximum(a, b),
    "where": lambda a, b: torch.where(a > b, a, b * 2),
}
UNARY = {
    "tanh": torch.tanh,
    "sigmoid": lambda a: a.sigmoid(),
    "exp": lambda a: torch.exp(torch.tanh(a)),
    "relu": torch.relu,
    "square": lambda a: a ** 2,
    "neg": lambda a: -a,
    "rpow": lambda a: 2 ** torch.tanh(a),
    "sum_keep": lambda a: a.sum(-1, keepdim=True),
    "mean": lambda a: a.mean(),
    "softmax": lambda a: torch.softmax(a.reshape(-1), dim=0).reshape(a.shape),  # keeps shapes broadcastable
    "log": lambda a: torch.log(a * a + 1),
    "clone": lambda a: a.clone(),
}

step = st.one_of(
    st.tuples(st.just("binary"), st.sampled_from(sorted(BINARY)), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY)), st.integers(0, 30), st.just(0)),
)


@st.composite
def programs(draw):
    shapes = draw(mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=2, max_side=3))
    steps = draw(st.lists(step, min_size=1, max_size=8))
    rounds = draw(st.integers(1, 3))
    clear = draw(st.booleans())
    update = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return shapes.input_shapes, steps, rounds, clear, update, seed


def run(shapes, steps, rounds, clear, update, seed):
    torch.manual_seed(seed)
    leaves = [torch.randn(s, requires_grad=True) for s in shapes]
    for _ in range(rounds):
        pool = list(leaves)
        for kind, name, i, j in steps:
            a = pool[i % len(pool)]
            if kind == "binary":
                pool.append(BINARY[name](a, pool[j % len(pool)]))
            else:
                pool.append(UNARY[name](a))
        loss = sum(t.sum() for t in pool[len(leaves):]) + sum((x * x).sum() for x in leaves)
        loss.backward()
        with torch.no_grad():
            if update:
                for x in leaves:
                    x -= 0.1 * x.grad
        if clear:
            for x in leaves:
                x.grad.zero_()
    return leaves


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_agree(prog):
    with trace(session=Session()) as rep:
        leaves = run(*prog)
    assert_clean(rep)
    assert all(c.status == "agree" for c in rep.backward_calls)
    for lf, x in zip(rep.leaves, leaves):
        assert lf.status == "agree"
        expected = x.grad.tolist() if x.grad is not None else None
        got = lf.grad
        if isinstance(got, list) or got is None or not isinstance(got, dict):
            assert got == expected
    rounds, clear = prog[2], prog[3]
    assert any(lf.accumulated_without_clearing for lf in rep.leaves) == (rounds >= 2 and not clear)
