"""``crosscheck.compare`` on large arrays (compared block by block) against the plain
whole-array rule of its docstring, with specials and differences in any block."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from gradmagic.recorder.crosscheck import CHUNK, compare, identical, max_abs_diff


def reference(e: np.ndarray, r: np.ndarray, rtol: float, atol: float) -> str:
    """The documented rule, on whole arrays."""
    with np.errstate(all="ignore"):
        return _reference(e, r, rtol, atol)


def _reference(e: np.ndarray, r: np.ndarray, rtol: float, atol: float) -> str:
    same = (e == r) | (np.isnan(e) & np.isnan(r))
    if not same.all() and not np.isfinite(np.where(same, 0.0, e - r)).all():
        return "differ"
    err = float(np.where(same, 0.0, np.abs(e.astype(np.float64) - r)).max())
    finite = np.abs(r[np.isfinite(r)])
    scale = float(finite.max()) if finite.size else 0.0
    return "agree" if err <= atol + rtol * scale else "differ"


SIZES = st.sampled_from([CHUNK - 1, CHUNK + 1, 3 * CHUNK + 17])
EDITS = st.lists(st.tuples(st.floats(0, 0.999), st.sampled_from(["nan", "inf", "-inf", "tiny", "big"]),
                           st.booleans()), max_size=4)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=SIZES, dtype=st.sampled_from(["float32", "float64"]), edits=EDITS, seed=st.integers(0, 99))
def test_large_compare_matches_the_whole_array_rule(n, dtype, edits, seed):
    r = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    e = r.copy()
    for where, what, both in edits:
        i = int(where * n)
        value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}.get(what)
        if value is None:
            e[i] += r.dtype.type(1e-6 if what == "tiny" else 5.0)
        else:
            e[i] = value
            if both:
                r[i] = value
    rtol, atol = (1e-4, 1e-6) if dtype == "float32" else (1e-9, 1e-12)
    got = compare(e.reshape(-1, 1), r.reshape(-1, 1))
    assert got[0] == reference(e, r, rtol, atol), (got, edits)
    assert identical(e, r) == bool(np.array_equal(e, r))


def test_max_abs_diff_sees_every_block():
    r = np.zeros(3 * CHUNK + 5, np.float32)
    for i in (0, CHUNK, 2 * CHUNK + 3, r.size - 1):
        e = r.copy()
        e[i] = -2.5
        assert max_abs_diff(e, r) == 2.5
        assert not identical(e, r)
    assert np.isnan(max_abs_diff(np.full_like(r, np.nan), r))


def test_finite_differences_allow_a_float32_rule_its_own_rounding():
    """⟨vjp(g), u⟩ of (s·l) for a scalar s and l of 1,001 elements is Σ g_i·l_i: terms of size
    ~1 that cancel to ~1e-8, which float32 sums with an error ~1e-5. That is the rule's
    rounding, not a wrong rule (program 133352 of the fuzzer blamed this mul): agree. The
    same error in float64, or 1% off where the terms do not cancel, still differs."""
    from gradmagic.recorder.crosscheck import vjp_check
    import gradmagic.engine as ge

    def check(lo: float, dtype: type, off: float, scale: float = 1.0) -> str:
        s = ge.tensor(np.array(0.3, dtype), requires_grad=True)
        line = np.linspace(lo, 1.9, 1001).astype(dtype)
        g = (2 * np.cos(0.3 * line)).astype(dtype)
        exact = float(np.sum(g.astype(np.float64) * line.astype(np.float64)))
        gi = np.array(exact * scale + off, dtype)
        return vjp_check((s * ge.tensor(line)).grad_fn, g, (gi, None))[0]

    assert check(-1.9, np.float32, 1e-5) == "agree"
    assert check(-1.9, np.float64, 1e-5) == "differ"
    assert check(0.1, np.float32, 0.0, scale=1.01) == "differ"
    assert check(0.1, np.float32, 0.0) == "agree"


def test_finite_differences_through_a_cast_to_float32_are_unchecked_never_differ():
    """A step of 1e-6 is lost in float32's rounding: the finite differences of a cast (and of a
    leaf's path through one) measure the rounding, not the derivative. They say unchecked, and
    why; a path without a cast is still checked (program 52459 of the fuzzer blamed a cast)."""
    import torch
    from gradmagic.recorder import Session, trace
    from gradmagic.recorder.crosscheck import only_rounding, vjp_check
    import gradmagic.engine as ge

    x = ge.tensor(np.array([0.4772, -1.6112, -0.7499]), requires_grad=True)
    y = x.to(np.float32)
    res = vjp_check(y.grad_fn, np.ones(3, np.float32), (np.ones(3),))
    assert res[0] == "unchecked" and only_rounding(res), res
    assert not only_rounding(vjp_check((x * 2.0).grad_fn, np.ones(3), (np.full(3, 2.0), None)))

    xt = torch.tensor([0.4772, -1.6112, -0.7499], dtype=torch.float64, requires_grad=True)
    with trace(session=Session(), gradcheck=True) as rep:
        ((xt * 2).float() ** 2).sum().backward()
    checks = [c for c in rep.checks if c.what == "gradcheck"]
    assert checks and all(c.status == "unchecked" for c in checks), checks
    assert not rep.mismatches and rep.ok
    with trace(session=Session(), gradcheck=True) as rep:
        ((xt * 2) ** 2).sum().backward()
    assert [c.status for c in rep.checks if c.what == "gradcheck"] == ["agree"]
