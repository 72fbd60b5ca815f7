"""Compare gradmagic's engine against torch, value by value.

Tolerance rule (documented, configurable through ``trace(rtol=, atol=)``):
an engine array ``e`` agrees with torch's ``t`` when shapes match and

    max |e - t|  <=  atol + rtol * max |t|     (norm-wise, per tensor)

with NaN matching NaN and infinities matching the same infinity. After each value
check the twin continues from torch's exact value (lockstep), so every node is
checked on the same inputs torch used: errors do not accumulate along a chain and a
value near a kink (relu at 0, ties of max) cannot flip between the two. The scale is the
tensor's magnitude rather than each element's, because the engine recomputes
every value from its own inputs: reductions and matrix products summed in another
order differ by a few ulps *of the terms*, which can be large relative to an
element that cancels to almost zero. Defaults per dtype (``DEFAULT_TOLERANCES``)
leave room for that reordering and for errors growing along a chain of ops, while
a wrong rule (a missing factor, a sign, a transposed product) is off by O(1).
Integer and boolean results must match exactly.

Per dtype (``rtol`` is ~800 float32 ulps, ~20 float16 ulps, ~6 bfloat16 ulps; ``atol``
only matters for a tensor that is almost zero everywhere, where rounding of large terms
that cancel dominates; it grows with the dtype's epsilon like ``rtol``, so a tensor whose
entries all lie below ``atol`` is not checked more finely than that: pass ``atol=`` to
tighten):

* float64 ``1e-9, 1e-12``; float32 and complex64 ``1e-4, 1e-6``; complex128 as float64.
* float16 ``2e-2, 1e-3``: NumPy computes float16 itself, torch accumulates in float32.
* bfloat16 ``5e-2, 1e-2``: NumPy has no bfloat16, so the twin holds float32 (an exact
  copy of torch's bfloat16 values) and the engine computes in float32, while torch rounds
  every result to 8 significant bits (relative error 2^-9). Callers pass torch's dtype
  name (``compare(..., dtype="bfloat16")``) because the float32 arrays cannot tell.
* Gradients use the same rule; they are not lockstepped node by node, so a gradient
  collects the rounding of every op between it and the root.

A NaN in torch's result agrees only with a NaN at the same position, ``inf`` only with
``inf`` of the same sign; a finite value where torch has NaN or inf (or the reverse)
differs whatever the tolerances. Complex arrays use ``|e - t|`` and ``max |t|``.
Finite differences (``vjp_check``, ``leaf_gradcheck``) cannot judge a rule where the
function or the engine's gradient is not finite: such a check is ``unchecked``. They
use ``GRADCHECK_TOLERANCES``, or looser ``FD_LOW_PRECISION`` ones for rules that ran on
values rounded to float16 or bfloat16 (``fd_tolerances``).

>>> import numpy as np
>>> compare(np.float32([1.0, 2.0]), np.float32([1.0, 2.0 + 1e-7]))[0]
'agree'
>>> compare(np.float32([1.0, 2.0]), np.float32([1.0, 4.0]))[0]
'differ'
>>> compare(np.float32([np.nan, -np.inf]), np.float32([np.nan, -np.inf]))[0]
'agree'
>>> compare(np.float32([1.0, 2.0]), np.float32([1.0, 2.004]), dtype="bfloat16")[0]
'agree'
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .magnitudes import input_terms

#: dtype name → (rtol, atol), applied as described in the module docstring.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (2e-2, 1e-3),
    "bfloat16": (5e-2, 1e-2),
    "float32": (1e-4, 1e-6),
    "float64": (1e-9, 1e-12),
    "complex64": (1e-4, 1e-6),
    "complex128": (1e-9, 1e-12),
}
#: tolerances for the float64 finite-difference check (central differences, h=1e-6),
#: relative to |vjp|·|u| (see ``vjp_check``).
GRADCHECK_TOLERANCES = (1e-4, 1e-6)
#: the same for rules that ran on values rounded to a low precision (lockstep): two unit
#: roundoffs of that dtype (2^-11 for float16, 2^-8 for bfloat16); a factor 1.2 in a rule
#: still differs.
FD_LOW_PRECISION: dict[str, tuple[float, float]] = {"float16": (5e-4, 1e-6), "bfloat16": (4e-3, 1e-5)}

Result = tuple  # (status, max_abs_err, max_rel_err, rtol, atol, detail)


_BY_DTYPE: dict = {}


def tolerances(dtype_name: str, rtol: Optional[float] = None, atol: Optional[float] = None) -> tuple[float, float]:
    """(rtol, atol) for a dtype, user overrides first; exact (0, 0) for ints and bools.

    >>> tolerances("float32"), tolerances("int64"), tolerances("float32", rtol=1e-3)
    ((0.0001, 1e-06), (0.0, 0.0), (0.001, 1e-06))
    """
    base = DEFAULT_TOLERANCES.get(dtype_name, (0.0, 0.0))
    return (base[0] if rtol is None else rtol, base[1] if atol is None else atol)


def compare(
    engine: np.ndarray, ref: np.ndarray, rtol: Optional[float] = None, atol: Optional[float] = None,
    dtype: Any = None,
) -> Result:
    """Check ``engine`` against ``ref`` (torch's array) with the module's rule.

    Returns ``(status, max_abs_err, max_rel_err, rtol, atol, detail)`` where status
    is ``"agree"`` or ``"differ"`` and detail explains a shape or dtype mismatch.
    ``dtype`` is torch's dtype (``torch.bfloat16`` or its name) for a tensor that
    ``ref`` cannot carry exactly (bfloat16 is mirrored as float32); it picks the default
    tolerances.
    """
    e = np.asarray(engine)
    r = np.asarray(ref)
    key = r.dtype if dtype is None else dtype
    base = _BY_DTYPE.get(key)
    if base is None:
        name = r.dtype.name if dtype is None else str(dtype).replace("torch.", "")
        base = _BY_DTYPE[key] = tolerances(name)
    rt = base[0] if rtol is None else rtol
    at = base[1] if atol is None else atol
    if e.shape == r.shape and e.dtype == r.dtype and e.size <= 4096 and e.tobytes() == r.tobytes():
        return ("agree", 0.0, 0.0, rt, at, None)
    if e.shape != r.shape:
        return ("differ", None, None, rt, at, f"shape {list(e.shape)} vs torch {list(r.shape)}")
    detail = None
    if e.dtype != r.dtype:
        detail = f"dtype {e.dtype.name} vs torch {r.dtype.name}"
    if r.size == 0:
        return ("differ" if detail else "agree", 0.0, 0.0, rt, at, detail)
    kind = r.dtype.kind
    if kind in "biu" and e.dtype.kind in "biu":
        err = 0.0 if np.array_equal(e, r) else float(np.max(np.abs(e.astype(np.float64) - r)))
        status = "agree" if err == 0.0 and detail is None else "differ"
        return (status, err, err, rt, at, detail)
    return _compare_float(e, r, rt, at, detail)


def _compare_float(e: np.ndarray, r: np.ndarray, rt: float, at: float, detail: Optional[str]) -> Result:
    """Float (or mixed) comparison: norm-wise tolerance, NaN/inf aware."""
    with np.errstate(all="ignore"):
        diff = None
        if e.size > CHUNK and e.dtype == r.dtype and r.dtype.kind == "f":
            err = max_abs_diff(e, r)
        else:
            diff = np.subtract(e, r)
            if type(diff) is np.ndarray and diff.dtype.kind in "fc" and diff.dtype == diff.real.dtype:
                np.abs(diff, out=diff)
            else:
                diff = np.abs(diff)
            err = float(diff.max())
        if err == 0.0 and detail is None:
            return ("agree", 0.0, 0.0, rt, at, None)
        if err != err or err == np.inf:  # NaN or inf somewhere: equal specials agree
            if diff is None:
                diff = np.abs(np.subtract(e, r))
            same = (e == r) | (np.isnan(e) & np.isnan(r))
            err = float(np.where(same, 0.0, diff).max())
            if err != err or err == np.inf:
                return ("differ", None, None, rt, at, detail or "NaN/inf where torch differs")
            finite = np.abs(r[np.isfinite(r)])
            scale = float(finite.max()) if finite.size else 0.0
        elif r.dtype.kind == "c":
            scale = float(np.abs(r).max())
        else:
            scale = max(float(r.max()), -float(r.min()))
    rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
    ok = err <= at + rt * scale
    status = "agree" if ok and detail is None else "differ"
    return (status, _f(err), _f(rel), rt, at, detail)


#: elements per block in ``max_abs_diff``/``identical``: blocks stay in cache and the
#: comparison of a large tensor allocates no array of its size (fresh pages of a large
#: temporary cost more than the subtraction itself)
CHUNK = 1 << 16


def _blocks(e: np.ndarray, r: np.ndarray) -> Any:
    """Matching flat blocks of two arrays of one shape."""
    fe, fr = e.reshape(-1), r.reshape(-1)
    for i in range(0, fe.size, CHUNK):
        yield fe[i:i + CHUNK], fr[i:i + CHUNK]


def max_abs_diff(e: np.ndarray, r: np.ndarray) -> float:
    """``max |e - r|`` of two real float arrays of one shape and dtype, block by block
    (NaN when either holds a NaN, inf for infinities that differ).

    >>> max_abs_diff(np.arange(5.0), np.arange(5.0) + [0, 0, 0.5, 0, 0])
    0.5
    """
    buf = np.empty(min(CHUNK, e.size), e.dtype)
    err = 0.0
    for a, b in _blocks(e, r):
        d = buf[:a.size]
        np.subtract(a, b, out=d)
        np.abs(d, out=d)
        m = float(d.max()) if d.size else 0.0
        if m != m:
            return m
        if m > err:
            err = m
    return err


def identical(e: np.ndarray, r: np.ndarray) -> bool:
    """True when two arrays of one shape and dtype hold equal values (NaN never equals),
    compared block by block for large arrays.

    >>> identical(np.zeros(100_000), np.zeros(100_000)), identical(np.ones(3), np.zeros(3))
    (True, False)
    """
    if e.size <= 4096:
        return e.tobytes() == r.tobytes() or bool(np.array_equal(e, r))
    for a, b in _blocks(e, r):
        if not np.array_equal(a, b):
            return False
    return True


def _f(x: float) -> Optional[float]:
    """Finite float or None (report dicts carry no NaN)."""
    return x if x == x and x not in (np.inf, -np.inf) else None


# ----- finite differences (float64) ---------------------------------------------------------
def _f64(x: Any) -> Any:
    """float64 copy of a float array; other inputs unchanged."""
    a = getattr(x, "data", x)
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return a.astype(np.float64)
    return a


def fd_tolerances(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) of a finite-difference check for a tensor of ``dtype`` (a NumPy or torch
    dtype, or a name): ``GRADCHECK_TOLERANCES``, or ``FD_LOW_PRECISION`` for float16 and
    bfloat16. The finite differences are exact (float64), but a float16 or bfloat16 rule
    runs on values rounded to that precision (lockstep), so it is off by their rounding.

    >>> fd_tolerances("float32"), fd_tolerances("float16"), fd_tolerances("torch.bfloat16")
    ((0.0001, 1e-06), (0.0005, 1e-06), (0.004, 1e-05))
    """
    name = getattr(dtype, "name", None) or str(dtype).replace("torch.", "")
    return FD_LOW_PRECISION.get(name, GRADCHECK_TOLERANCES)


def _agrees(lhs: float, rhs: float, scale: float,
            tol: tuple[float, float] = GRADCHECK_TOLERANCES) -> tuple[str, float, Optional[float]]:
    """Finite-difference verdict; ``unchecked`` when either side is NaN or infinite
    (differences of a function that is not finite there prove nothing about the rule)."""
    rt, at = tol
    if not (np.isfinite(lhs) and np.isfinite(rhs)):
        return ("unchecked", None, None)
    err = abs(lhs - rhs)
    rel = err / abs(lhs) if lhs else None
    return ("agree" if err <= at + rt * scale else "differ", err, rel)


def vjp_check(node: Any, grad_output: np.ndarray, input_grads: tuple, seed: int = 0,
              dtype: Any = None) -> Optional[Result]:
    """Check one engine node's vector-Jacobian products by central differences.

    For each differentiable float input ``i``: ⟨g, J_i u⟩ (finite differences of the
    op's forward, float64) against ⟨vjp_i(g), u⟩ (what the engine computed), for a
    random direction ``u``. Returns the worst result, or None when nothing applies. A
    rule that ran in float32 is allowed its own rounding: rtol times Σ|terms|·|u| of the
    sums it made (``magnitudes.input_terms``), besides rtol·|vjp|·|u|.
    ``dtype``: torch's dtype of the node when its arrays cannot tell (bfloat16); it
    picks ``fd_tolerances`` (default: the dtype of ``grad_output``).
    """
    if np.iscomplexobj(grad_output):
        return None  # real directions cannot probe a complex function
    tol = fd_tolerances(np.asarray(grad_output).dtype if dtype is None else dtype)
    op, params = node.opdef, node.params or {}
    xs = [_f64(x) for x in node.inputs]
    g = np.asarray(grad_output, np.float64)
    rng = np.random.default_rng(seed)
    worst: Optional[Result] = None
    terms: Optional[list] = None
    for i, gi in enumerate(input_grads):
        x = xs[i]
        if gi is None or not isinstance(x, np.ndarray) or x.dtype != np.float64 or not x.size:
            continue
        u = rng.standard_normal(x.shape)
        h = 1e-6 * max(1.0, float(np.abs(x).max()))
        plus, minus = list(xs), list(xs)
        plus[i], minus[i] = x + h * u, x - h * u
        with np.errstate(all="ignore"):
            fp, fm = np.asarray(op.fwd(*plus, **params)), np.asarray(op.fwd(*minus, **params))
            if _rounds(fp):  # (a cast to float32, sum(dtype=...)): h·u is lost in its rounding
                res = ("unchecked", None, None, *tol, f"input {i}: {_ROUNDED}")
                worst = res if worst is None else worst
                continue
            jvp = (fp.astype(np.float64) - fm.astype(np.float64)) / (2 * h)
            lhs = float(np.sum(g * jvp))
            gi64 = np.asarray(gi, np.float64)
            rhs = float(np.sum(gi64 * u))
            scale = float(np.linalg.norm(gi64) * np.linalg.norm(u)) + abs(lhs)
            if np.asarray(gi).dtype.itemsize < 8:  # the rule ran in float32: its own rounding
                if terms is None:
                    terms = _input_terms(node, g, input_grads)
                if terms[i] is not None and np.shape(terms[i]) == u.shape:
                    scale += float(np.sum(terms[i] * np.abs(u)))
        status, err, rel = _agrees(lhs, rhs, scale, tol)
        res = (status, _f(err), None if rel is None else _f(rel), *tol,
               f"input {i}: <g, J u> = {lhs:.6g} by finite differences, engine <vjp(g), u> = {rhs:.6g}")
        if worst is None or (status == "differ" and worst[0] != "differ"):
            worst = res
    return worst


def _input_terms(node: Any, g: np.ndarray, input_grads: tuple) -> list:
    """Σ|terms| of each input's gradient by ``node``'s rule from ``g`` (magnitudes.py): a rule
    that sums many terms in float32 rounds by up to rtol times their size, which may be far
    above the result where they cancel (Σ g_i·l_i over a linspace of 1,001)."""
    try:
        return input_terms(node, np.abs(g), input_grads)
    except Exception:  # (no bound: the plain tolerance)
        return [None] * len(input_grads)


#: why a finite-difference check through an op that rounds its float64 inputs proves nothing
_ROUNDED = ("the op rounds to a lower precision (a cast to float32, a sum with dtype=...), so a "
            "finite difference of step 1e-6 through it measures that rounding, not the derivative")


def _rounds(out: np.ndarray) -> bool:
    """Did a forward run on float64 inputs give a lower-precision float result?"""
    return out.dtype.kind in "fc" and out.dtype.itemsize < (8 if out.dtype.kind == "f" else 16)


def only_rounding(res: Optional[Result]) -> bool:
    """Is ``res`` a finite-difference check left undone because its op rounds (``_ROUNDED``)?
    Such an op (a cast) has a rule finite differences cannot probe, and no other."""
    return res is not None and res[0] == "unchecked" and bool(res[5]) and res[5].endswith(_ROUNDED)


class Rounded(Exception):
    """``replay`` met an op whose float64 inputs gave a lower-precision result."""


def replay(root: Any, leaf: Any, value: np.ndarray) -> np.ndarray:
    """Re-run the engine graph of ``root`` in float64 with ``leaf``'s value replaced; raise
    ``Rounded`` when an op on the way rounds to a lower precision."""
    from gradmagic.engine.backward import toposort

    order = toposort([root.grad_fn])
    vals: dict = {}
    reached: set = set()  # ids of the nodes the leaf's value flows into
    for v in reversed(order):
        if not hasattr(v, "opdef"):
            continue
        args = []
        for x, p in zip(v.inputs, v.parents):
            if p is leaf:
                args.append(value)
                reached.add(id(v))
            elif p is not None and id(p) in vals:
                args.append(vals[id(p)])
                if id(p) in reached:
                    reached.add(id(v))
            else:
                args.append(_f64(x))
        with np.errstate(all="ignore"):
            out = vals[id(v)] = np.asarray(v.opdef.fwd(*args, **(v.params or {})))
        if id(v) in reached and _rounds(out):
            raise Rounded(v.name)
    return vals[id(root.grad_fn)]


def leaf_gradcheck(root: Any, seed_grad: Optional[np.ndarray], leaf: Any, added: np.ndarray,
                   seed: int = 0, dtype: Any = None) -> Result:
    """Directional finite-difference check of d⟨v, root⟩/d leaf (float64 replay).

    ``added`` is the gradient the engine accumulated into ``leaf`` for this call.
    A complex leaf is ``unchecked`` (a real direction cannot probe it). ``dtype``: the
    leaf's torch dtype when its array cannot tell (bfloat16); it picks ``fd_tolerances``.
    """
    tol = fd_tolerances(leaf.data.dtype if dtype is None else dtype)
    if leaf.data.dtype.kind != "f":
        return ("unchecked", None, None, *GRADCHECK_TOLERANCES,
                f"finite differences check real floating-point leaves only, not {leaf.data.dtype.name}")
    rng = np.random.default_rng(seed)
    x = leaf.data.astype(np.float64)
    u = rng.standard_normal(x.shape)
    h = 1e-6 * max(1.0, float(np.abs(x).max()) if x.size else 1.0)
    v = np.ones(root.data.shape) if seed_grad is None else np.asarray(seed_grad, np.float64)
    try:
        with np.errstate(all="ignore"):
            fp = float(np.sum(v * replay(root, leaf, x + h * u)))
            fm = float(np.sum(v * replay(root, leaf, x - h * u)))
    except Rounded as exc:
        return ("unchecked", None, None, *tol, f"on the way from the leaf, {exc}: {_ROUNDED}")
    lhs = (fp - fm) / (2 * h)
    a = np.asarray(added, np.float64)
    rhs = float(np.sum(a * u))
    status, err, rel = _agrees(lhs, rhs, float(np.linalg.norm(a) * np.linalg.norm(u)) + abs(lhs), tol)
    return (status, _f(err), None if rel is None else _f(rel), *tol,
            f"directional derivative {lhs:.6g} by finite differences, engine gradient gives {rhs:.6g}")
