"""Finite-difference check of a function's VJP: ⟨v, J u⟩ against ⟨Jᵀ v, u⟩ (HIPS ``check_vjp``).

>>> from gradmagic.engine import tensor, gradcheck
>>> x = tensor([0.3, -1.2, 2.0], dtype="float64", requires_grad=True)
>>> gradcheck(lambda a: (a.tanh() * a).sum(), (x,))
True
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .autograd import grad
from .grad_mode import no_grad
from .tensor import Tensor


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0,
              raise_exception: bool = True) -> bool:
    """Compare the engine's VJP with central differences along one random direction.

    ``inputs`` that require grad are perturbed; use float64 inputs.
    """
    rng = np.random.default_rng(seed)
    xs = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    out = fn(*inputs)
    v = rng.standard_normal(out.shape)
    us = [rng.standard_normal(x.shape) for x in xs]
    vjps = grad(out, xs, grad_outputs=Tensor(v.astype(out.dtype)), allow_unused=True)
    analytic = sum(float((g.data * u).sum()) for g, u in zip(vjps, us) if g is not None)
    with no_grad():
        saved = [x.data.copy() for x in xs]
        plus, minus = _shifted(fn, inputs, xs, us, eps), _shifted(fn, inputs, xs, us, -eps)
        for x, s in zip(xs, saved):
            x.data[...] = s
    numeric = float((v * (plus - minus) / (2 * eps)).sum())
    ok = abs(analytic - numeric) <= atol + rtol * abs(numeric)
    if not ok and raise_exception:
        raise AssertionError(f"gradcheck failed: ⟨Jᵀv, u⟩ = {analytic!r}, ⟨v, Ju⟩ ≈ {numeric!r}")
    return ok


def _shifted(fn: Callable, inputs: Sequence[Any], xs: list, us: list, step: float) -> np.ndarray:
    originals = [x.data.copy() for x in xs]
    for x, u in zip(xs, us):
        x.data[...] = x.data + step * u
    out = np.array(fn(*inputs).data, dtype=np.float64)
    for x, o in zip(xs, originals):
        x.data[...] = o
    return out
