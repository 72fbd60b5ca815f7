"""Mapping rows of the optim family (see rows/__init__.py): the calls optimizers and
``clip_grad_norm_``/``clip_grad_value_`` make, on the engine's existing ops.

``torch._foreach_*`` ops (the ``foreach=True`` optimizers, gradient clipping) are loops
of a per-element rule over their lists: a list argument gives element ``i`` its ``i``-th
item, anything else (a scalar, a 0-d tensor) is shared by every element. Out-of-place
ones are ``"op"`` rows (one engine result per element); in-place ones are ``"foreach_"``
rows, which the recorder mirrors element by element as ``Tensor.add_`` and friends
(``StateHandlers._foreach_inplace``). ``addcmul``, ``addcdiv`` and ``lerp`` are composites
of ``mul``/``div``/``add``/``sub`` in torch's order of evaluation.

>>> from gradmagic.engine import tensor
>>> out = FOREACH["torch._foreach_addcmul"](([tensor([1.0]), tensor([2.0])], [tensor([2.0]), tensor([3.0])],
...                                          [tensor([4.0]), tensor([5.0])]), {"value": 0.5})
>>> [o.tolist() for o in out]
[[5.0], [9.5]]
"""
from __future__ import annotations

from typing import Any, Callable

from gradmagic.engine import functional as EF
from gradmagic.engine.tensor import Tensor as ETensor, inplace

from ..adapters import _clean, call


# ----- one element ------------------------------------------------------------------------------
def addcmul(input: Any, tensor1: Any, tensor2: Any, value: Any = 1) -> ETensor:
    """``input + value * tensor1 * tensor2`` (torch's kernel multiplies left to right)."""
    return EF.add(input, EF.mul(EF.mul(tensor1, value), tensor2) if _not_one(value) else
                  EF.mul(tensor1, tensor2))


def addcdiv(input: Any, tensor1: Any, tensor2: Any, value: Any = 1) -> ETensor:
    """``input + value * tensor1 / tensor2``."""
    return EF.add(input, EF.div(EF.mul(tensor1, value) if _not_one(value) else tensor1, tensor2))


def lerp(input: Any, end: Any, weight: Any) -> ETensor:
    """``input + weight * (end - input)``, from the nearer end as torch computes it:
    ``end - (end - input) * (1 - weight)`` where ``|weight| >= 0.5``."""
    if isinstance(weight, ETensor):
        near = EF.lt(EF.abs(weight), 0.5)
        d = EF.sub(end, input)
        return EF.where(near, EF.add(input, EF.mul(weight, d)), EF.sub(end, EF.mul(d, EF.rsub(weight, 1))))
    d = EF.sub(end, input)
    if abs(weight) < 0.5:
        return EF.add(input, EF.mul(d, weight))
    return EF.sub(end, EF.mul(d, 1 - weight))


def vector_norm(input: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False, *,
                dtype: Any = None) -> ETensor:
    """``torch.linalg.vector_norm`` (and ``_foreach_norm``): the norm of all elements
    (or along ``dim``), computed in ``dtype`` when given."""
    x = input if dtype is None else EF.to(input, dtype)
    return EF.norm(x, ord, dim, keepdim)


def clamp_min(input: Any, min: Any) -> ETensor:  # noqa: A002
    return EF.clamp(input, min=min)


def clamp_max(input: Any, max: Any) -> ETensor:  # noqa: A002
    return EF.clamp(input, max=max)


def _not_one(value: Any) -> bool:
    return isinstance(value, ETensor) or value != 1


def _in_place(fn: Callable) -> Callable:
    """``x.fn_(...)``: the out-of-place composite written back into ``x`` (``copy_``)."""
    def fn_(input: ETensor, *args: Any, **kwargs: Any) -> ETensor:
        return EF.copy_(input, fn(input, *args, **kwargs))
    fn_.__name__ = fn.__name__ + "_"
    return fn_


def _unary_(name: str) -> Callable:
    def fn_(input: ETensor) -> ETensor:
        return inplace(input, name)
    fn_.__name__ = name + "_"
    return fn_


def _binary_(name: str) -> Callable:
    def fn_(input: ETensor, other: Any) -> ETensor:
        return inplace(input, name, other)
    fn_.__name__ = name + "_"
    return fn_


def clamp_min_(input: ETensor, min: Any) -> ETensor:  # noqa: A002
    return inplace(input, "clamp", min=min, max=None)  # (the engine keeps the old value for backward)


def clamp_max_(input: ETensor, max: Any) -> ETensor:  # noqa: A002
    return inplace(input, "clamp", min=None, max=max)


# (the composites never save ``input`` itself: it may be written back into)
addcmul_, addcdiv_, lerp_ = _in_place(addcmul), _in_place(addcdiv), _in_place(lerp)


# ----- lists ------------------------------------------------------------------------------------
def element(args: Any, kwargs: dict, i: int) -> tuple:
    """The arguments of element ``i`` of a foreach call: lists give their ``i``-th item,
    anything else is shared (``_foreach_mul_(grads, coef)``)."""
    eargs = tuple(a[i] if isinstance(a, (list, tuple)) else a for a in args)
    ekw = {k: (v[i] if isinstance(v, (list, tuple)) else v) for k, v in kwargs.items()}
    return eargs, ekw


def _foreach(fn: Callable) -> Callable[[Any, dict], Any]:
    """Adapter of a foreach op: ``fn`` on each element, a list of the results."""
    def adapt(args: Any, kwargs: dict) -> list:
        kw = _clean(kwargs)
        return [fn(*ea, **ekw) for ea, ekw in (element(args, kw, i) for i in range(len(args[0])))]
    adapt.__name__ = f"foreach_{getattr(fn, '__name__', 'fn')}"
    adapt.elem = call(fn)  # type: ignore[attr-defined]  (the recorder mirrors in-place ones one by one)
    return adapt


#: foreach op -> (engine op it is drawn as, per-element function); "_" at the end: in place
_FOREACH_RULES: dict[str, tuple[str, Callable]] = {
    "add": ("add", EF.add), "add_": ("add", EF.add_), "sub": ("sub", EF.sub), "sub_": ("sub", EF.sub_),
    "mul": ("mul", EF.mul), "mul_": ("mul", EF.mul_), "div": ("div", EF.div), "div_": ("div", EF.div_),
    "maximum": ("maximum", EF.maximum), "maximum_": ("maximum", _binary_("maximum")),
    "minimum": ("minimum", EF.minimum), "minimum_": ("minimum", _binary_("minimum")),
    "pow": ("pow", EF.pow), "pow_": ("pow", EF.pow_),
    "addcmul": ("add", addcmul), "addcmul_": ("add", addcmul_),
    "addcdiv": ("add", addcdiv), "addcdiv_": ("add", addcdiv_),
    "lerp": ("add", lerp), "lerp_": ("add", lerp_),
    "clamp_min": ("clamp", clamp_min), "clamp_min_": ("clamp", clamp_min_),
    "clamp_max": ("clamp", clamp_max), "clamp_max_": ("clamp", clamp_max_),
    "norm": ("norm", vector_norm),
    "copy_": ("copy", EF.copy_), "zero_": ("zero", EF.zero_),
    **{u: (u, getattr(EF, u)) for u in ("sqrt", "neg", "sign", "abs", "exp", "reciprocal")},
    **{u + "_": (u, _unary_(u)) for u in ("sqrt", "neg", "sign", "abs", "exp", "reciprocal")},
}

#: torch name -> adapter, for the recorder's optimizer mirror and the tests
FOREACH: dict[str, Callable[[Any, dict], Any]] = {
    f"torch._foreach_{n}": _foreach(fn) for n, (_, fn) in _FOREACH_RULES.items()}


ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
    # the single-tensor for-loop of the optimizers (their default on CPU) and clip_grad_norm_
    ("op", "add", call(addcmul), ("Tensor.addcmul", "torch.addcmul")),
    ("op", "add", call(addcdiv), ("Tensor.addcdiv", "torch.addcdiv")),
    ("op", "add", call(lerp), ("Tensor.lerp", "torch.lerp")),
    ("op", "norm", call(vector_norm), ("torch.linalg.vector_norm",)),
    ("inplace", "add", call(addcmul_), ("Tensor.addcmul_",)),
    ("inplace", "add", call(addcdiv_), ("Tensor.addcdiv_",)),
    ("inplace", "add", call(lerp_), ("Tensor.lerp_",)),
    ("inplace", "sqrt", call(_unary_("sqrt")), ("Tensor.sqrt_",)),
    # torch._foreach_*: out of place, one result per element ...
    *[("op", op, FOREACH[f"torch._foreach_{n}"], (f"torch._foreach_{n}",))
      for n, (op, _) in _FOREACH_RULES.items() if not n.endswith("_")],
    # ... and in place, mirrored element by element
    *[("foreach_", op, FOREACH[f"torch._foreach_{n}"], (f"torch._foreach_{n}",))
      for n, (op, _) in _FOREACH_RULES.items() if n.endswith("_")],
]
