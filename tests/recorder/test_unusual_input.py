"""Unusual input under ``gradmagic.trace()`` (issue 6, item 5).

NaN and ±inf, integer/bool/complex tensors, float16/bfloat16/float64, 0-d and empty
tensors, non-contiguous views and ``as_strided``, CUDA tensors, ops in another thread or
in a generator consumed later, names that shadow torch or gradmagic, and a ``trace()``
inside a ``trace()``. In each case the user's values and ``.grad``s are bit for bit
those of a plain run (torch is the oracle), nothing crashes, no mode is left on the
stack, and every check is either right or ``unchecked`` with a reason: never a false
``agree``.
"""
from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import pytest
import torch

from recorder_helpers import assert_clean, run_cells
import gradmagic.engine as ge
from gradmagic.engine import REGISTRY, record_backward
from gradmagic.recorder import Session, crosscheck, trace
from gradmagic.recorder.crosscheck import (DEFAULT_TOLERANCES, GRADCHECK_TOLERANCES, compare, fd_tolerances,
                                           leaf_gradcheck, tolerances, vjp_check)
from gradmagic.recorder.twins import to_numpy
from gradmagic.recorder.values import summarize
from gradmagic.viz.fmt import preview
from gradmagic.viz.html import render_html
from gradmagic.viz.text import render_text
from gradmagic.viz.widget import compact_report

NAN, INF = float("nan"), float("inf")


# ---------------------------------------------------------------- helpers


def same(a, b) -> bool:
    """Bit-for-bit equal tensors (NaN equal to NaN), or equal other values."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape or a.device != b.device:
            return False
        try:
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
        except AssertionError:
            return False
        return same(a.grad, b.grad) if a.is_leaf else True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and (not isinstance(a, (int, float, bool)) or a == b or a != a and b != b)


def recorded(src: str, **kw) -> tuple:
    """Run ``src`` plain and as one recorded cell from the same seed; assert the user sees
    the same variables (values and ``.grad``), and return (report, recorded namespace)."""
    torch.manual_seed(0)
    plain = {"torch": torch, "nn": torch.nn}
    exec(compile(src, "<plain>", "exec"), plain)
    torch.manual_seed(0)
    [rep], ns = run_cells([src], **kw)
    names = [k for k, v in plain.items() if not k.startswith("__") and isinstance(v, (torch.Tensor, list, tuple))]
    diff = [k for k in names if not same(plain[k], ns.get(k))]
    assert diff == [], f"recording changed {diff}"
    data = rep.to_dict()
    json.dumps(data, allow_nan=False)
    render_text(data)  # the views cope with every value
    render_html(data)
    json.dumps(compact_report(data), allow_nan=False)  # the widget's state
    return rep, ns


def checks_of(rep, name: str, what: str = "value") -> list:
    node = rep.node(name)
    assert node is not None, name
    return [c for c in rep.checks if c.node == node.id and c.what == what]


def statuses(rep, what: str) -> set:
    return {c.status for c in rep.checks if c.what == what}


def leaf_dict(rep, name: str) -> dict:
    return next(leaf for leaf in rep.to_dict()["leaves"] if leaf["name"] == name)


# ---------------------------------------------------------------- NaN and ±inf

NONFINITE_PROGRAMS = {
    "values": """
x = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.5], requires_grad=True)
y = x * 2 - 1
z = torch.exp(-x)
s = (y + z).sum()
s.backward()
""",
    "grad_inf": """
x = torch.tensor([0.0, 4.0, 1.0], requires_grad=True)
r = torch.sqrt(x)
l = torch.log(x)
s = (r + l).sum()
s.backward()
""",
    "grad_nan": """
x = torch.tensor([-1.0, 4.0, 0.0], requires_grad=True)
r = torch.sqrt(x)
q = x / x
s = r.sum() + q.sum()
s.backward()
""",
    "inf_minus_inf": """
x = torch.tensor([float("inf"), -float("inf"), 2.0], requires_grad=True)
d = x - x
m = x * 0
t = torch.tanh(x)
s = d.sum() + m.sum() + t.sum()
s.backward()
""",
}


@pytest.mark.parametrize("name", sorted(NONFINITE_PROGRAMS))
def test_nan_and_inf_agree_with_the_same_special(name):
    rep, ns = recorded(NONFINITE_PROGRAMS[name])
    assert rep.ok and statuses(rep, "value") == {"agree"} and statuses(rep, "grad") == {"agree"}
    x = ns["x"]
    leaf = leaf_dict(rep, "x")
    assert leaf["status"] == "agree"
    assert leaf["grad"] == leaf["engine_grad"]
    # the report carries torch's specials as the contract's strings, exactly where torch has them
    expected = [("nan" if g != g else ("inf" if g == INF else "-inf")) if abs(g) == INF or g != g else g
                for g in x.grad.tolist()]
    assert leaf["grad"] == expected
    tensors = [v.detach() for v in ns.values() if isinstance(v, torch.Tensor)] + [x.grad]
    assert not all(bool(torch.isfinite(t).all()) for t in tensors), "the program must produce NaN or inf"


def test_nonfinite_values_appear_in_the_report_and_text():
    rep, _ = recorded(NONFINITE_PROGRAMS["values"])
    value = next(n for n in rep.to_dict()["nodes"] if n["name"] == "y")["value"]
    assert value["data"] == [1.0, "nan", "inf", "-inf", 0.0]
    assert value["min"] == "nan" and value["max"] == "nan" and value["mean"] == "nan"
    text = render_text(rep.to_dict())
    assert "tensor([1., nan, inf, -inf, 0.])" in text


@pytest.mark.parametrize("patch, expected", [
    ("nan_to_zero", "NaN/inf where torch differs"),
    ("inf_sign", "NaN/inf where torch differs"),
    ("finite_beside_nan", None),
])
def test_a_real_mismatch_next_to_specials_is_caught(monkeypatch, patch, expected):
    good = REGISTRY["exp"].fwd
    wrong = {
        "nan_to_zero": lambda a: np.nan_to_num(good(a), nan=0.0, posinf=np.inf, neginf=-np.inf),
        "inf_sign": lambda a: np.where(np.isposinf(good(a)), -np.inf, good(a)).astype(good(a).dtype),
        "finite_beside_nan": lambda a: np.where(np.isfinite(a) & (a > 1), good(a) * 1.5, good(a)).astype(good(a).dtype),
    }[patch]
    monkeypatch.setattr(REGISTRY["exp"], "fwd", wrong)
    rep, _ = recorded("x = torch.tensor([float('nan'), float('inf'), 2.0, 0.0])\ne = torch.exp(x)\n")
    assert not rep.ok
    [check] = checks_of(rep, "e")
    assert check.status == "differ" and check.detail == expected
    assert rep.first_divergence == rep.node("e").id


def test_a_wrong_infinite_gradient_is_caught(monkeypatch):
    sqrt = REGISTRY["sqrt"]
    monkeypatch.setattr(sqrt, "vjps", (lambda g, ans, a: -g / (2 * ans),))
    rep, ns = recorded("x = torch.tensor([0.0, 4.0], requires_grad=True)\nr = torch.sqrt(x)\nr.sum().backward()\n")
    assert ns["x"].grad.tolist() == [INF, 0.25]
    assert leaf_dict(rep, "x")["status"] == "differ" and not rep.ok


@pytest.mark.parametrize("engine, ref, status", [
    ([NAN, 1.0], [NAN, 1.0], "agree"),
    ([INF, -INF], [INF, -INF], "agree"),
    ([INF, 1.0], [-INF, 1.0], "differ"),
    ([NAN, 1.0], [INF, 1.0], "differ"),
    ([0.0, 1.0], [NAN, 1.0], "differ"),
    ([NAN, 1.0], [0.0, 1.0], "differ"),
    ([NAN, 1.0], [NAN, 1.5], "differ"),
    ([INF, 1e30], [INF, 1e30 * (1 + 1e-12)], "agree"),
])
def test_compare_specials(engine, ref, status):
    for dtype in (np.float16, np.float32, np.float64, np.complex64):
        e, r = np.array(engine, dtype), np.array(ref, dtype)
        if dtype is np.float16 and np.isinf(r.astype(np.float64)).sum() != np.isinf(np.array(ref)).sum():
            continue  # 1e30 overflows float16
        got = compare(e, r)
        assert got[0] == status, (dtype, got)
        assert got[1] is None or np.isfinite(got[1])  # report dicts carry no NaN


def test_nan_through_relu_and_max_agrees():
    rep, _ = recorded("x = torch.tensor([float('nan'), -1.0, 2.0], requires_grad=True)\n"
                      "s = torch.relu(x).sum() + x.max() + x.min()\ns.backward()\n")
    assert rep.ok and leaf_dict(rep, "x")["status"] == "agree"


def test_finite_differences_do_not_judge_at_nan():
    """``gradcheck`` on a NaN leaf cannot prove anything: unchecked, not differ."""
    rep, _ = recorded("x = torch.tensor([float('nan'), 1.0, 2.0], requires_grad=True)\n"
                      "y = (torch.exp(x) * 3).sum()\ny.backward()\n", gradcheck=True)
    [fd] = checks_of(rep, "x", "gradcheck")
    assert fd.status == "unchecked" and "nan" in fd.detail
    assert rep.ok and leaf_dict(rep, "x")["status"] == "agree"


def test_finite_differences_locate_the_wrong_rule_without_blaming_a_nan_node(monkeypatch):
    tanh = REGISTRY["tanh"]
    monkeypatch.setattr(tanh, "vjps", (lambda g, ans, a: 2 * g * (1 - ans * ans),))
    rep, _ = recorded("x = torch.tensor([float('nan'), 0.5], requires_grad=True)\n"
                      "e = torch.exp(x)\nt = torch.tanh(e)\nt.sum().backward()\n")
    assert not rep.ok
    blamed = [c for c in rep.mismatches if c.what == "gradcheck"]
    assert all(c.node != rep.node("e").id for c in blamed), "exp is right; its finite differences are NaN"


def test_nonfinite_arithmetic_warns_no_more_than_plain():
    src = NONFINITE_PROGRAMS["inf_minus_inf"] + (
        "z = torch.zeros(0).mean()\n"
        "f = torch.tensor([60000.0], dtype=torch.float16) * 2\n"
        "m = torch.tensor([float('nan'), 1.0], requires_grad=True)\nm.amax().backward()\n")
    with warnings.catch_warnings(record=True) as plain:
        warnings.simplefilter("always")
        exec(compile(src, "<plain>", "exec"), {"torch": torch})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_cells([src])
    assert [str(w.message) for w in seen] == [str(w.message) for w in plain]


# ---------------------------------------------------------------- integer, bool, complex

INTEGER_PROGRAM = """
a = torch.tensor([5, -3, 7, 0])
b = a * 3 + 1
c = b // 2
d = b % 3
e = torch.tensor([1, 2, 100], dtype=torch.int8) * 100
f = torch.tensor([200, 100], dtype=torch.uint8) + 100
g = a.to(torch.int32) * a.to(torch.int32)
p = a > 0
q = p & (a < 7)
r = torch.tensor([True, False, True]) | torch.tensor([False, False, True])
n = q.sum()
h = a.float() / 2
k = (a > 0).float().mean()
"""


def test_integer_and_bool_ops_are_checked_exactly():
    rep, ns = recorded(INTEGER_PROGRAM)
    assert_clean(rep)
    exact = [n for n in rep.to_dict()["nodes"] if n["kind"] == "op" and n["dtype"].startswith(("int", "uint", "bool"))]
    assert {n["name"] for n in exact} >= {"b", "c", "d", "e", "f", "g", "p", "q", "r", "n"}
    for node in exact:
        [check] = [c for c in rep.checks if c.node == node["id"] and c.what == "value"]
        assert check.status == "agree" and check.max_abs_err == 0.0
    assert ns["e"].tolist() == [100, -56, 16]  # int8 wraps around, in both


@pytest.mark.parametrize("op, name", [("floor_divide", "c"), ("logical_and", "q")])
def test_a_wrong_integer_or_bool_rule_is_caught(monkeypatch, op, name):
    good = REGISTRY[op].fwd
    monkeypatch.setattr(REGISTRY[op], "fwd", lambda *a, **k: (good(*a, **k) ^ 1) if good(*a, **k).dtype == bool
                        else good(*a, **k) + 1)
    rep, _ = recorded(INTEGER_PROGRAM)
    [check] = checks_of(rep, name)
    assert check.status == "differ" and check.max_abs_err == 1.0
    assert rep.first_divergence == rep.node(name).id


COMPLEX_PROGRAM = """
z = torch.tensor([1 + 2j, 3 - 1j, -0.5j])
w = z * z + z
v = torch.exp(w / 4)
m = v.abs()
re = w.real
ri = torch.view_as_real(w)
"""


def test_complex_values_are_checked_and_unmapped_calls_marked_unchecked():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning from gradmagic in the user's cell
        rep, _ = recorded(COMPLEX_PROGRAM)
    assert rep.ok
    for name in ("w", "v", "m"):
        [check] = checks_of(rep, name)
        assert check.status == "agree", (name, check)
    assert checks_of(rep, "w")[0].dtype == "complex64"
    assert set(rep.unsupported) == {"Tensor.real", "torch.view_as_real"}
    for name in ("re", "ri"):
        assert rep.node(name).kind == "opaque" and rep.node(name).status == "unchecked"
        assert checks_of(rep, name) == []


def test_a_wrong_complex_rule_is_caught(monkeypatch):
    good = REGISTRY["mul"].fwd
    monkeypatch.setattr(REGISTRY["mul"], "fwd", lambda a, b: np.conj(good(a, b)))
    rep, _ = recorded(COMPLEX_PROGRAM)
    assert checks_of(rep, "w")[0].status == "agree"  # add of a wrong product: lockstep keeps w right...
    first = rep.node(rep.first_divergence)
    assert first.op == "mul" and first.status == "differ"  # ...and the product itself is flagged


def test_complex_gradcheck_is_unchecked_with_a_reason():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep, _ = recorded("z = torch.tensor([1 + 2j, 3 - 1j], requires_grad=True)\n"
                          "s = (z * 2).abs().sum()\ns.backward()\n", gradcheck=True)
    [fd] = checks_of(rep, "z", "gradcheck")
    assert fd.status == "unchecked" and "complex64" in fd.detail


def test_complex_gradients_are_never_a_false_verdict():
    rep, ns = recorded("z = torch.tensor([1 + 2j, 3 - 1j], requires_grad=True)\n"
                       "x = torch.tensor([0.5, -1.0], requires_grad=True)\n"
                       "s = (z * z).abs().sum() + (x * (1 + 1j)).abs().sum()\ns.backward()\n")
    for name in ("z", "x"):
        leaf = leaf_dict(rep, name)
        assert leaf["status"] == "unchecked", (name, leaf["status"], ns[name].grad, leaf["engine_grad"])


# ---------------------------------------------------------------- float16, bfloat16, float64

MLP = """
X = torch.randn(16, 4).to(DT)
Y = torch.randn(16, 1).to(DT)
W1 = (torch.randn(4, 8) * 0.5).to(DT).requires_grad_()
W2 = (torch.randn(8, 1) * 0.5).to(DT).requires_grad_()
h = torch.tanh(X @ W1)
p = torch.sigmoid(h @ W2)
loss = ((p - Y) ** 2).mean() + torch.softmax(h, dim=1).max()
loss.backward()
"""
DTYPES = [torch.float16, torch.float64, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_low_and_high_precision_programs_agree(dtype):
    rep, ns = recorded(MLP.replace("DT", str(dtype)))
    assert_clean(rep)
    assert ns["W1"].grad.dtype == dtype
    rtol = DEFAULT_TOLERANCES[str(dtype).replace("torch.", "")][0]
    assert all(c.max_rel_err is None or c.max_rel_err < rtol / 4 for c in rep.checks), "too little margin"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_wrong_rule_is_caught_in_every_precision(monkeypatch, dtype):
    good = REGISTRY["tanh"].fwd
    monkeypatch.setattr(REGISTRY["tanh"], "fwd", lambda a: (good(a) * 1.1).astype(good(a).dtype))
    rep, _ = recorded(MLP.replace("DT", str(dtype)))
    assert rep.node(rep.first_divergence).op == "tanh"




@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_finite_differences_in_low_precision(monkeypatch, dtype):
    rep, _ = recorded(MLP.replace("DT", str(dtype)), gradcheck=True)
    fd = [c for c in rep.checks if c.what == "gradcheck"]
    assert len(fd) == 2 and {c.status for c in fd} == {"agree"} and rep.ok
    monkeypatch.setattr(REGISTRY["tanh"], "vjps", (lambda g, ans, a: 1.5 * g * (1 - ans * ans),))
    rep, _ = recorded(MLP.replace("DT", str(dtype)))
    assert rep.node(rep.first_divergence).op == "tanh"  # a wrong rule is still located


def test_finite_difference_tolerance_follows_the_dtype():
    """A bfloat16 rule runs on torch's rounded values (lockstep): exact finite differences
    see that rounding, which is not a wrong rule; a wrong factor still is."""
    def bf16(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(torch.bfloat16).float().numpy()

    def tanh_step(scale_vjp: float):
        x = ge.tensor(bf16(np.linspace(-2, 2, 64, dtype=np.float32)), requires_grad=True)
        t = x.tanh()
        np.copyto(t.data, bf16(t.data))  # what lockstep leaves in a bfloat16 twin
        s = (t * 3).sum()
        with record_backward() as calls:
            s.backward()
        step = next(st for st in calls[0].steps if st.kind == "node" and st.node.name == "TanhBackward0")
        added = next(st for st in calls[0].steps if st.kind == "accumulate").added
        return s, x, step, added * scale_vjp

    s, x, step, added = tanh_step(1.0)
    assert vjp_check(step.node, step.grad_output, step.input_grads)[0] == "differ"  # float32 tolerance
    assert vjp_check(step.node, step.grad_output, step.input_grads, dtype="bfloat16")[0] == "agree"
    assert leaf_gradcheck(s, None, x, added)[0] == "differ"
    assert leaf_gradcheck(s, None, x, added, dtype=torch.bfloat16)[0] == "agree"
    s, x, step, added = tanh_step(1.2)
    assert leaf_gradcheck(s, None, x, added, dtype=torch.bfloat16)[0] == "differ"
    assert fd_tolerances("float64") == fd_tolerances("float32") == GRADCHECK_TOLERANCES


def test_bfloat16_is_reported_as_bfloat16():
    rep, _ = recorded(MLP.replace("DT", "torch.bfloat16"))
    data = rep.to_dict()
    assert {n["dtype"] for n in data["nodes"] if n["name"] in ("W1", "h", "loss")} == {"bfloat16"}
    assert {leaf["dtype"] for leaf in data["leaves"]} == {"bfloat16"}


def test_a_bfloat16_twin_is_an_exact_float32_copy():
    t = torch.linspace(-3, 3, 11).to(torch.bfloat16)
    twin = Session().twin(t)
    assert twin.et.data.dtype == np.float32
    assert np.array_equal(twin.et.data, t.float().numpy())


def test_tolerances_per_dtype_are_documented():
    doc = crosscheck.__doc__
    for name, (rt, at) in DEFAULT_TOLERANCES.items():
        assert name in doc
        assert tolerances(name) == (rt, at)
    assert {"float16", "bfloat16", "float32", "float64", "complex64", "complex128"} <= set(DEFAULT_TOLERANCES)
    for name in ("int64", "int8", "uint8", "bool"):
        assert tolerances(name) == (0.0, 0.0)


def test_bfloat16_tolerance_is_chosen_by_torch_dtype():
    t = torch.linspace(-3, 3, 50, dtype=torch.bfloat16)
    exact = np.linspace(-3, 3, 50, dtype=np.float32) * np.float32(1.01)
    ref = (t * 1.01).float().numpy()  # torch rounds to 8 significant bits
    engine = t.float().numpy() * np.float32(1.01)  # the twin computes in float32
    assert compare(engine, ref)[0] == "differ"  # as float32 this would be a false alarm
    assert compare(engine, ref, dtype=torch.bfloat16)[0] == "agree"
    assert compare(engine, ref, dtype="bfloat16")[0] == "agree"
    assert compare(engine * np.float32(1.1), ref, dtype=torch.bfloat16)[0] == "differ"
    assert compare(exact, exact, dtype="bfloat16")[1] == 0.0


@pytest.mark.parametrize("make", [
    lambda: torch.tensor([1 + 2j, 3 - 1j]),
    lambda: torch.tensor(2 + 1j),
    lambda: torch.tensor([1.5 + 2j, 1 + 0.25j], dtype=torch.complex128),
    lambda: torch.zeros(3, 0),
    lambda: torch.zeros(0),
    lambda: torch.tensor([float("nan"), float("inf")]),
    lambda: torch.tensor(True),
    lambda: torch.tensor(-7),
], ids=["complex", "complex0d", "complex128", "empty2d", "empty", "specials", "bool", "int0d"])
def test_odd_values_are_written_as_torch_writes_them(make):
    t = make()
    value = summarize(to_numpy(t))
    expected = repr(t).replace(", dtype=torch.complex128", "")
    assert preview(value, max_chars=80) == expected


# ---------------------------------------------------------------- 0-d and empty tensors

EMPTY_PROGRAM = """
s = torch.tensor(3.0, requires_grad=True)
t = s * s + s.exp()
e = torch.zeros(0, requires_grad=True)
m = torch.zeros(3, 0, requires_grad=True)
es, em, ep = e.sum(), e.mean(), e.prod()
m0, m1, mm = m.sum(0), m.sum(1), m.mean(1)
mt = (m * 2).t()
total = t + es + ep + m0.sum() + m1.sum() + mm.sum() + mt.sum()
total.backward()
k = torch.tensor(7)
kk = k * k
"""


def test_zero_dim_and_empty_tensors_and_their_reductions():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the engine's 0/0 stays as silent as torch's
        rep, ns = recorded(EMPTY_PROGRAM)
    assert_clean(rep)
    assert ns["em"].isnan() and ns["ep"].item() == 1.0 and list(ns["mm"].shape) == [3]
    assert checks_of(rep, "em")[0].status == "agree"  # NaN (0/0) in both
    assert leaf_dict(rep, "e")["grad"] == [] and leaf_dict(rep, "m")["grad"] == [[], [], []]
    assert leaf_dict(rep, "s")["status"] == leaf_dict(rep, "e")["status"] == leaf_dict(rep, "m")["status"] == "agree"
    nodes = {n["name"]: n for n in rep.to_dict()["nodes"]}
    assert nodes["m1"]["shape"] == [3] and nodes["m0"]["shape"] == [0] and nodes["kk"]["shape"] == []
    assert nodes["e"]["value"]["min"] is None and nodes["kk"]["value"]["data"] == 49
    text = render_text(rep.to_dict())
    assert "tensor([], size=(3, 0))" in text and "tensor(49)" in text and "tensor(nan)" in text


EMPTY_CONTRACTIONS = """
a = torch.rand(0, 2, requires_grad=True)
b = torch.rand(1, 2, requires_grad=True)
dot = torch.einsum('ij,ij->', a, a)
rows = torch.einsum('ij,ij->i', b, a)
logits = torch.zeros(2, 0, requires_grad=True)
probs = torch.rand(2, 0).softmax(1)
ce = torch.nn.functional.cross_entropy(logits, probs)
ce_sum = torch.nn.functional.cross_entropy(logits, probs, reduction="sum", label_smoothing=0.1)
(dot + rows.sum() + ce_sum).backward()
"""


def test_empty_contractions_and_zero_classes_are_mirrored():
    """The fuzzer's programs 6414 and 4263: einsum of an operand with a zero dimension (size 1
    broadcasts to 0, not 0 to 1) and cross_entropy over zero classes (torch: NaN for the mean,
    0 for the sum) are recomputed, not copied from torch."""
    rep, ns = recorded(EMPTY_CONTRACTIONS)
    assert_clean(rep)
    assert ns["ce"].isnan() and ns["dot"].item() == 0.0 and list(ns["rows"].shape) == [0]


def test_reduction_that_torch_refuses_on_empty_raises_unchanged():
    with pytest.raises(RuntimeError) as plain:
        torch.zeros(0).amax()
    with pytest.raises(RuntimeError) as seen:
        with trace(session=Session()) as rep:
            e = torch.zeros(0)
            e.amax()
    assert str(seen.value) == str(plain.value)
    assert rep.error["type"] == "RuntimeError" and rep.node("e") is not None


# ---------------------------------------------------------------- non-contiguous views, as_strided

VIEWS_PROGRAM = """
x = torch.arange(12.0).reshape(3, 4).requires_grad_()
t = x.t()
s = x[:, ::2]
e = x[:1].expand(3, 4)
p = x.reshape(2, 6).permute(1, 0)[::3]
u = (t * 2).sum() + (s * s).sum() + (e * x).sum() + p.sum()
u.backward()
"""


def test_non_contiguous_views_agree():
    rep, ns = recorded(VIEWS_PROGRAM)
    assert_clean(rep)
    assert not ns["t"].is_contiguous() and not ns["s"].is_contiguous() and ns["e"].stride()[0] == 0
    assert leaf_dict(rep, "x")["status"] == "agree"


def test_a_non_contiguous_tensor_from_before_the_block_is_copied_right():
    base = torch.arange(24.0).reshape(4, 6)
    for view in (base.t(), base[::2, 1::3], base[:1].expand(5, 6), torch.as_strided(base, (3, 3), (1, 0))):
        with trace(session=Session()) as rep:
            w = view * 1.5
        assert rep.ok and rep.node("w").status == "agree"
        assert rep.node("view").value["data"] == view.tolist()


def test_as_strided_is_copied_and_its_gradients_unchecked():
    rep, ns = recorded("x = torch.arange(6.0, requires_grad=True)\n"
                       "a = torch.as_strided(x, (2, 3), (1, 2))\n"
                       "b = (a * a).sum()\nb.backward()\n")
    assert rep.ok and rep.unsupported == ["torch.as_strided"]
    node = next(n for n in rep.to_dict()["nodes"] if n["name"] == "a")
    assert node["kind"] == "opaque" and node["value"]["data"] == ns["a"].tolist()
    assert rep.leaf("x").status == "unchecked"
    assert all(c.status == "unchecked" and "opaque" in c.detail for c in checks_of(rep, "x", "grad"))
    assert [c.status for c in rep.backward_calls] == ["unchecked"]
    assert checks_of(rep, "b")[0].status == "agree"  # below the opaque node values are still checked
    assert "as_strided" in render_text(rep.to_dict())


# ---------------------------------------------------------------- CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_are_copied_to_host_for_the_twin():
    rep, ns = recorded("x = torch.linspace(-1, 1, 8, device='cuda', requires_grad=True)\n"
                       "w = torch.randn(8, 3, device='cuda', requires_grad=True)\n"
                       "h = torch.tanh(x @ w)\nl = (h ** 2).mean()\nl.backward()\nc = l.detach().cpu()\n")
    assert rep.ok, [(c.node, c.what, c.detail) for c in rep.mismatches]
    assert ns["x"].grad.is_cuda and leaf_dict(rep, "w")["status"] == "agree"
    h = next(n for n in rep.to_dict()["nodes"] if n["name"] == "h")
    assert np.allclose(h["value"]["data"], ns["h"].detach().cpu().numpy(), rtol=0, atol=0)


# ---------------------------------------------------------------- threads and generators


def test_ops_in_another_thread_are_not_recorded_and_change_nothing():
    seen_modes = []
    out = {}

    def work(x):
        seen_modes.append(torch._C._len_torch_function_stack())
        out["y"] = (x * 4).sum()
        out["y"].backward()

    with trace(session=Session()) as rep:
        x = torch.ones(3, requires_grad=True)
        worker = threading.Thread(target=work, args=(x,))
        worker.start()
        worker.join()
        z = x * 2
    assert seen_modes == [0]  # torch's mode stack is per thread
    assert x.grad.tolist() == [4.0, 4.0, 4.0] and out["y"].item() == 12.0
    assert [n.torch_op for n in rep.nodes if n.kind == "op"] == ["Tensor.mul"]  # z only
    assert rep.leaf("x").status == "unchecked" and rep.backward_calls == []


def test_a_generator_consumed_after_the_block_is_not_recorded():
    s = Session()
    with trace(session=s) as first:
        x = torch.ones(3, requires_grad=True)

        def gen():
            for i in range(1, 4):
                yield (x * i).sum()

        g = gen()
        a = next(g)
    rest = list(g)  # runs outside any recording
    assert [r.item() for r in rest] == [6.0, 9.0]
    with trace(session=s) as later:
        for r in rest:
            r.backward()
    assert x.grad.tolist() == [5.0, 5.0, 5.0]
    assert first.ok and first.node("a").status == "agree"
    assert any("outside gradmagic" in n for n in later.notes)
    assert [c.status for c in later.backward_calls] == ["unchecked", "unchecked"]  # never a false agree
    assert later.leaf("x") is None or later.leaf("x").status == "unchecked"
    assert all(c.status == "unchecked" for c in later.checks if c.what == "grad")
    assert not torch.overrides._get_current_function_mode_stack()


# ---------------------------------------------------------------- names that shadow torch or gradmagic


def test_cells_that_rebind_torch_and_gradmagic_names():
    ns = {"torch": torch}
    reps, ns = run_cells([
        "x = torch.ones(3, requires_grad=True)\ny = (x * 2).sum()\ny.backward()\n"
        "trace = gradmagic = get_ipython = _ = x\ntorch = None\n",
        "import numpy as torch\na = torch.ones(3) * 2\n",
        "import torch\nz = (x * 3).sum()\nz.backward()\n",
    ], namespace=ns)
    assert all(r.ok for r in reps) and reps[1].nodes == []
    assert reps[0].node("x").name == "x" and reps[2].leaf("x").status == "agree"
    assert ns["x"].grad.tolist() == [5.0, 5.0, 5.0]


# ---------------------------------------------------------------- trace() inside trace()


def test_nested_trace_leaves_no_mode_and_records_the_inner_block():
    s = Session()
    with trace(session=s) as outer:
        a = torch.ones(2, requires_grad=True)
        b = a * 2
        with trace(session=s) as inner:
            c = (b * 3).sum()
            c.backward(retain_graph=True)
        d = (b * 5).sum()
        d.backward()
    assert not torch.overrides._get_current_function_mode_stack()
    assert a.grad.tolist() == [16.0, 16.0]
    assert inner.ok and inner.node("c").status == "agree" and inner.leaf("a").status == "agree"


def test_nested_trace_pauses_and_resumes_the_outer_block():
    s = Session()
    with trace(session=s) as outer:
        a = torch.ones(2, requires_grad=True)
        b = a * 2
        with trace(session=s) as inner:
            c = b * 3
        d = (b * 5).sum()
        d.backward()
    assert outer.node("d") is not None and outer.node("d").status == "agree"
    assert len(outer.backward_calls) == 1 and outer.leaf("a").status == "agree"
    assert not any("left active" in n for n in inner.notes)
    assert any("nested" in n for n in outer.notes + inner.notes)


def test_the_inner_report_is_not_recorded_by_the_outer_block():
    s = Session()
    with trace(session=s) as outer:
        a = torch.ones(2, requires_grad=True)
        with trace(session=s):
            (a * 3).sum().backward()
        d = a * 5
    assert [n.name for n in outer.nodes if n.kind == "constant"] == []  # the user never read a.grad
    assert outer.node("d").status == "agree"

