"""The one table from torch callables (and their aliases) to engine ops: ``TORCH_OPS``.

Each row names the torch callables exactly as ``__torch_function__`` receives them
(operator forms arrive inconsistently: ``2*x`` as ``Tensor.mul``, ``1-x`` as
``Tensor.__rsub__``, ``x+=1`` as ``Tensor.add_``), the engine op it becomes, and the
adapter that runs it on the twins. Adapters call the engine's torch-named functions
(``gradmagic.engine.functional``), which accept torch's argument spellings
(``dim``/``axis``, ``keepdim``/``keepdims``, ``alpha=``); keyword arguments that
torch fills with ``None`` defaults (``weight=None``, ``size_average=None``) are
dropped first. ``lookup(func)`` gives the ``Spec`` of any callable; callables
without a row are classified once (getters, profiler markers, everything else is
``auto``: nothing for non-tensor results, an opaque node otherwise).

>>> import torch
>>> lookup(torch.Tensor.mul).op, lookup(torch.Tensor.__rsub__).op
('mul', 'sub')
>>> lookup(torch.Tensor.grad.__get__).kind
'grad_get'
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as TF

from gradmagic.engine import Tensor as ETensor
from gradmagic.engine import functional as EF

from .adapters import _clean, call, swapped
from .rows import FAMILY_ROWS


class Spec(NamedTuple):
    """How the recorder treats one torch callable."""

    kind: str  # op | factory | inplace | random | grad_get | ... | auto | ignore
    name: str  # torch-side name shown in reports ("Tensor.mul", "torch.nn.functional.relu")
    op: Optional[str] = None  # engine registry op
    adapt: Optional[Callable[[Any, dict], Any]] = None  # (engine args, kwargs) -> engine result
    pre: bool = False  # needs a look before torch runs (backward, RNG state)
    draws: bool = False  # a fused call that may draw dropout masks (``_DRAWS_MASKS``)


# ----- adapters ---------------------------------------------------------------------------
def _engine(name: str) -> Callable:
    return getattr(EF, name)


def _identity(args: Any, kwargs: dict) -> Any:
    return args[0]


def _view_as(args: Any, kwargs: dict) -> Any:
    return EF.reshape(args[0], tuple(args[1].shape))


def _relu(args: Any, kwargs: dict) -> Any:
    return EF.relu_(args[0]) if kwargs.get("inplace") else EF.relu(args[0])


def _t_property(args: Any, kwargs: dict) -> Any:
    return args[0].T


def _mt_property(args: Any, kwargs: dict) -> Any:
    return args[0].mT


def _linear(args: Any, kwargs: dict) -> Any:
    return EF.linear(*args, **_clean(kwargs))


def _softmax(name: str) -> Callable[[Any, dict], Any]:
    """``F.softmax(x, dim, _stacklevel=3, dtype=None)`` and ``x.softmax(dim)``."""
    fn = getattr(EF, name)

    def adapt(args: Any, kwargs: dict) -> Any:
        kw = {k: v for k, v in kwargs.items() if k not in ("_stacklevel",) and v is not None}
        dim = kw.pop("dim", args[1] if len(args) > 1 else None)
        return fn(args[0], dim, **kw)
    return adapt


def _cross_entropy(args: Any, kwargs: dict) -> Any:
    kw = _clean(kwargs)
    if "reduction" not in kw:
        kw["reduction"] = "mean"
    return EF.cross_entropy(*args, **kw)


def _mse(args: Any, kwargs: dict) -> Any:
    return EF.mse_loss(*args, **_clean(kwargs))


def _sum_like(name: str) -> Callable[[Any, dict], Any]:
    """``sum``/``mean`` with an optional ``dtype=`` (cast first, as torch does)."""
    fn = getattr(EF, name)

    def adapt(args: Any, kwargs: dict) -> Any:
        kw = _clean(kwargs)
        dtype = kw.pop("dtype", None)
        x = args[0] if dtype is None else EF.to(args[0], dtype)
        return fn(x, *args[1:], **kw)
    return adapt


def _norm(args: Any, kwargs: dict) -> Any:
    kw = _clean(kwargs)
    kw.pop("dtype", None)
    return EF.norm(*args, **kw)


def _to(args: Any, kwargs: dict) -> Any:
    kw = {k: v for k, v in _clean(kwargs).items() if k == "dtype"}
    rest = [a for a in args[1:] if not isinstance(a, (str, torch.device))]
    return EF.to(args[0], *rest, **kw)


def _type(args: Any, kwargs: dict) -> Any:
    dtype = args[1] if len(args) > 1 else kwargs.get("dtype")
    if dtype is None or isinstance(dtype, str):
        raise NotImplementedError("Tensor.type() with a string type")
    return EF.to(args[0], dtype)


def _cast(dtype: Any) -> Callable[[Any, dict], Any]:
    return lambda args, kwargs: EF.to(args[0], dtype)


def _dropout(args: Any, kwargs: dict) -> Any:
    raise NotImplementedError("dropout is handled by the recorder (torch's mask)")


def _all(args: Any, kwargs: dict) -> Any:
    """``x.all(dim)``: no element is zero (``logical_not`` → ``sum`` → ``eq``)."""
    return EF.eq(EF.sum(EF.logical_not(args[0]), *args[1:], **_clean(kwargs)), 0)


def _any(args: Any, kwargs: dict) -> Any:
    """``x.any(dim)``: some element is non-zero (``ne`` → ``sum`` → ``gt``)."""
    return EF.gt(EF.sum(EF.ne(args[0], 0), *args[1:], **_clean(kwargs)), 0)


def _tensor_where(args: Any, kwargs: dict) -> Any:
    """``x.where(condition, y)`` is ``torch.where(condition, x, y)``: the receiver is the
    value taken where the condition holds, not the condition."""
    cond = args[1] if len(args) > 1 else kwargs["condition"]
    other = args[2] if len(args) > 2 else kwargs["other"]
    return EF.where(cond, args[0], other)


def _getitem(args: Any, kwargs: dict) -> Any:
    return EF.getitem(args[0], args[1])


def _setitem(args: Any, kwargs: dict) -> Any:
    return EF.setitem(args[0], args[1], args[2])


def _sub_inplace(args: Any, kwargs: dict) -> Any:
    return EF.sub_(*args, **_clean(kwargs))


def _add_inplace(args: Any, kwargs: dict) -> Any:
    return EF.add_(*args, **_clean(kwargs))


# ----- the table ----------------------------------------------------------------------------
# (kind, engine op, adapter, torch callables by their public names)
_T = "Tensor."
_ROWS: list[tuple[str, Optional[str], Any, tuple[str, ...]]] = [
    # arithmetic (operator forms first: they name the node in reports)
    ("op", "add", call(EF.add), ("Tensor.__add__", "Tensor.add", "torch.add", "Tensor.__radd__")),
    ("op", "sub", call(EF.sub), ("Tensor.__sub__", "Tensor.sub", "torch.sub", "Tensor.subtract",
                                  "torch.subtract")),
    ("op", "sub", swapped(EF.sub), ("Tensor.__rsub__", "torch.rsub")),
    ("op", "mul", call(EF.mul), ("Tensor.__mul__", "Tensor.mul", "torch.mul", "Tensor.__rmul__",
                                  "Tensor.multiply", "torch.multiply")),
    ("op", "div", call(EF.div), ("Tensor.__truediv__", "Tensor.div", "torch.div", "Tensor.true_divide",
                                  "torch.true_divide", "Tensor.divide", "torch.divide")),
    ("op", "div", swapped(EF.div), ("Tensor.__rtruediv__", "Tensor.__rdiv__")),
    ("op", "pow", call(EF.pow), ("Tensor.__pow__", "Tensor.pow", "torch.pow")),
    ("op", "pow", swapped(EF.pow), ("Tensor.__rpow__",)),
    ("op", "floor_divide", call(lambda a, b: a.__floordiv__(b) if isinstance(a, ETensor) else
                                 ETensor.__rfloordiv__(b, a)),
     ("Tensor.__floordiv__", "Tensor.floor_divide", "torch.floor_divide")),
    ("op", "remainder", call(lambda a, b: ETensor.__mod__(a, b)),
     ("Tensor.__mod__", "Tensor.remainder", "torch.remainder")),
    ("op", "matmul", call(EF.matmul), ("Tensor.__matmul__", "Tensor.matmul", "torch.matmul")),
    ("op", "matmul", swapped(EF.matmul), ("Tensor.__rmatmul__",)),
    ("op", "dot", call(EF.dot), ("Tensor.dot", "torch.dot", "Tensor.inner", "torch.inner")),
    ("op", "mv", call(EF.mv), ("Tensor.mv", "torch.mv")),
    ("op", "mm", call(EF.mm), ("Tensor.mm", "torch.mm")),
    ("op", "bmm", call(EF.bmm), ("Tensor.bmm", "torch.bmm")),
    ("op", "outer", call(EF.outer), ("Tensor.outer", "torch.outer", "Tensor.ger", "torch.ger")),
    ("op", "neg", call(EF.neg), ("Tensor.__neg__", "Tensor.neg", "torch.neg", "Tensor.negative",
                                  "torch.negative")),
    ("op", "abs", call(EF.abs), ("Tensor.__abs__", "Tensor.abs", "torch.abs", "Tensor.absolute",
                                  "torch.absolute")),
    ("op", "maximum", call(EF.maximum), ("Tensor.maximum", "torch.maximum")),
    ("op", "minimum", call(EF.minimum), ("Tensor.minimum", "torch.minimum")),
    ("op", "clamp", call(EF.clamp), ("Tensor.clamp", "torch.clamp", "Tensor.clip", "torch.clip")),
    ("op", "where", call(EF.where), ("torch.where",)),
    ("op", "where", _tensor_where, ("Tensor.where",)),
    # comparisons and logic (not differentiable)
    ("op", "eq", call(EF.eq), ("Tensor.__eq__", "Tensor.eq", "torch.eq")),
    ("op", "ne", call(EF.ne), ("Tensor.__ne__", "Tensor.ne", "torch.ne", "Tensor.not_equal")),
    ("op", "lt", call(EF.lt), ("Tensor.__lt__", "Tensor.lt", "torch.lt", "Tensor.less")),
    ("op", "le", call(EF.le), ("Tensor.__le__", "Tensor.le", "torch.le", "Tensor.less_equal")),
    ("op", "gt", call(EF.gt), ("Tensor.__gt__", "Tensor.gt", "torch.gt", "Tensor.greater")),
    ("op", "ge", call(EF.ge), ("Tensor.__ge__", "Tensor.ge", "torch.ge", "Tensor.greater_equal")),
    ("op", "logical_not", call(EF.logical_not), ("Tensor.__invert__", "Tensor.logical_not",
                                                  "torch.logical_not")),
    ("op", "logical_and", call(EF.logical_and), ("Tensor.__and__", "Tensor.logical_and",
                                                  "torch.logical_and")),
    ("op", "logical_or", call(EF.logical_or), ("Tensor.__or__", "Tensor.logical_or", "torch.logical_or")),
    ("op", "isnan", call(EF.isnan), ("Tensor.isnan", "torch.isnan")),
    ("op", "eq", _all, ("Tensor.all", "torch.all")),
    ("op", "gt", _any, ("Tensor.any", "torch.any")),
    # reductions
    ("op", "sum", _sum_like("sum"), ("Tensor.sum", "torch.sum")),
    ("op", "mean", _sum_like("mean"), ("Tensor.mean", "torch.mean")),
    ("op", "prod", call(EF.prod), ("Tensor.prod", "torch.prod")),
    ("op", "var", call(EF.var), ("Tensor.var", "torch.var")),
    ("op", "std", call(EF.std), ("Tensor.std", "torch.std")),
    ("op", "max", call(EF.max), ("Tensor.max", "torch.max")),
    ("op", "min", call(EF.min), ("Tensor.min", "torch.min")),
    ("op", "amax", call(EF.amax), ("Tensor.amax", "torch.amax")),
    ("op", "amin", call(EF.amin), ("Tensor.amin", "torch.amin")),
    ("op", "argmax", call(EF.argmax), ("Tensor.argmax", "torch.argmax")),
    ("op", "argmin", call(EF.argmin), ("Tensor.argmin", "torch.argmin")),
    ("op", "norm", _norm, ("Tensor.norm", "torch.norm")),
    ("op", "logsumexp", call(EF.logsumexp), ("Tensor.logsumexp", "torch.logsumexp")),
    ("op", "softmax", _softmax("softmax"), ("Tensor.softmax", "torch.softmax", "F.softmax")),
    ("op", "log_softmax", _softmax("log_softmax"), ("Tensor.log_softmax", "torch.log_softmax",
                                                     "F.log_softmax")),
    ("op", "cumsum", call(EF.cumsum), ("Tensor.cumsum", "torch.cumsum")),
    # elementwise functions
    *[("op", n, call(_engine(n)), (_T + n, "torch." + n)) for n in (
        "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "sign", "sin", "cos", "tan",
        "reciprocal", "floor", "ceil", "round", "erf")],
    ("op", "tanh", call(EF.tanh), ("Tensor.tanh", "torch.tanh", "F.tanh")),
    ("op", "sigmoid", call(EF.sigmoid), ("Tensor.sigmoid", "torch.sigmoid", "F.sigmoid")),
    ("op", "relu", _relu, ("Tensor.relu", "torch.relu", "F.relu")),
    ("op", "leaky_relu", call(EF.leaky_relu), ("F.leaky_relu",)),
    ("op", "gelu", call(EF.gelu), ("F.gelu",)),
    ("op", "softplus", call(EF.softplus), ("F.softplus",)),
    # shapes and copies
    ("op", "reshape", call(EF.reshape), ("Tensor.reshape", "torch.reshape", "Tensor.view")),
    ("op", "reshape", _view_as, ("Tensor.view_as", "Tensor.reshape_as")),
    ("op", "reshape", call(EF.flatten), ("Tensor.flatten", "torch.flatten")),
    ("op", "squeeze", call(EF.squeeze), ("Tensor.squeeze", "torch.squeeze")),
    ("op", "unsqueeze", call(EF.unsqueeze), ("Tensor.unsqueeze", "torch.unsqueeze")),
    ("op", "transpose", call(EF.transpose), ("Tensor.transpose", "torch.transpose", "Tensor.swapaxes",
                                              "Tensor.swapdims", "torch.swapaxes")),
    ("op", "t", call(EF.t), ("Tensor.t", "torch.t")),
    ("op", "permute", _t_property, ("Tensor.T.__get__",)),
    ("op", "transpose", _mt_property, ("Tensor.mT.__get__",)),
    ("op", "permute", call(EF.permute), ("Tensor.permute", "torch.permute")),
    ("op", "expand", call(EF.expand), ("Tensor.expand",)),
    ("op", "expand", call(EF.expand_as), ("Tensor.expand_as",)),
    ("op", "expand", call(EF.broadcast_to), ("Tensor.broadcast_to", "torch.broadcast_to")),
    ("op", "repeat", call(EF.repeat), ("Tensor.repeat",)),
    ("op", "flip", call(EF.flip), ("Tensor.flip", "torch.flip")),
    ("op", "getitem", _getitem, ("Tensor.__getitem__",)),
    ("op", "getitem", call(EF.narrow), ("Tensor.narrow", "torch.narrow")),
    ("op", "getitem", call(EF.select), ("Tensor.select", "torch.select")),
    ("op", "gather", call(EF.gather), ("Tensor.gather", "torch.gather")),
    ("op", "index_select", call(EF.index_select), ("Tensor.index_select", "torch.index_select")),
    ("op", "cat", call(EF.cat), ("torch.cat", "torch.concat", "torch.concatenate")),
    ("op", "stack", call(EF.stack), ("torch.stack",)),
    ("op", "getitem", call(EF.split), ("Tensor.split", "torch.split")),
    ("op", "getitem", call(EF.chunk), ("Tensor.chunk", "torch.chunk")),
    ("op", "clone", call(EF.clone), ("Tensor.clone", "torch.clone")),
    ("op", None, lambda a, k: a[0].detach(), ("Tensor.detach", "torch.detach")),
    ("op", None, _identity, ("Tensor.contiguous", "Tensor.cpu")),
    ("op", "to", _to, ("Tensor.to",)),
    ("op", "to", _type, ("Tensor.type",)),
    ("op", "to", call(EF.type_as), ("Tensor.type_as",)),
    *[("op", "to", _cast(dt), (_T + n,)) for n, dt in (
        ("float", np.float32), ("double", np.float64), ("half", np.float16), ("long", np.int64),
        ("int", np.int32), ("short", np.int16), ("bool", np.bool_), ("byte", np.uint8))],
    # linear algebra and nn
    ("op", "linear", _linear, ("F.linear",)),
    ("op", "mse_loss", _mse, ("F.mse_loss",)),
    ("op", "cross_entropy", _cross_entropy, ("F.cross_entropy",)),
    ("op", "nll_loss", call(EF.nll_loss), ("F.nll_loss",)),
    ("op", "binary_cross_entropy", call(EF.binary_cross_entropy), ("F.binary_cross_entropy",)),
    ("op", "binary_cross_entropy_with_logits", call(EF.binary_cross_entropy_with_logits),
     ("F.binary_cross_entropy_with_logits",)),
    ("random", "dropout", _dropout, ("F.dropout", "torch.dropout")),
    ("random", "dropout", _dropout, ("F.dropout1d", "F.dropout2d", "F.dropout3d", "torch.feature_dropout")),
    # in-place (mirrored on the twin; an update event on a leaf)
    ("inplace", "add", _add_inplace, ("Tensor.add_", "Tensor.__iadd__")),
    ("inplace", "sub", _sub_inplace, ("Tensor.sub_", "Tensor.__isub__", "Tensor.subtract_")),
    ("inplace", "mul", call(EF.mul_), ("Tensor.mul_", "Tensor.__imul__", "Tensor.multiply_")),
    ("inplace", "div", call(EF.div_), ("Tensor.div_", "Tensor.__itruediv__", "Tensor.divide_")),
    ("inplace", "pow", call(EF.pow_), ("Tensor.pow_", "Tensor.__ipow__")),
    ("inplace", "clamp", call(EF.clamp_), ("Tensor.clamp_", "Tensor.clip_")),
    ("inplace", "leaky_relu", call(EF.leaky_relu_), ("F.leaky_relu_",)),
    ("inplace", "relu", call(EF.relu_), ("Tensor.relu_", "torch.relu_", "F.relu_")),
    ("inplace", "exp", call(EF.exp_), ("Tensor.exp_",)),
    ("inplace", "neg", call(EF.neg_), ("Tensor.neg_",)),
    ("inplace", "sigmoid", call(EF.sigmoid_), ("Tensor.sigmoid_",)),
    ("inplace", "tanh", call(EF.tanh_), ("Tensor.tanh_",)),
    ("inplace", "zero", call(EF.zero_), ("Tensor.zero_",)),
    ("inplace", "fill", call(EF.fill_), ("Tensor.fill_",)),
    ("inplace", "copy", call(EF.copy_), ("Tensor.copy_",)),
    ("inplace", "index_put", _setitem, ("Tensor.__setitem__",)),
    # factories and random values: torch's values are copied
    *[("factory", None, None, ("torch." + n,)) for n in (
        "tensor", "as_tensor", "from_numpy", "arange", "range", "linspace", "logspace", "zeros",
        "ones", "full", "empty", "eye", "rand", "randn", "randint", "randperm", "normal",
        "bernoulli", "multinomial", "zeros_like", "ones_like", "full_like", "empty_like",
        "rand_like", "randn_like", "randint_like", "poisson")],
    *[("factory", None, None, (_T + n,)) for n in (
        "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor")],
    # autograd
    ("backward", None, None, ("Tensor.backward", "torch.autograd.backward")),
    ("autograd_grad", "grad", None, ("torch.autograd.grad",)),
    ("grad_get", None, None, ("Tensor.grad.__get__",)),
    ("grad_set", None, None, ("Tensor.grad.__set__",)),
    ("data_get", None, None, ("Tensor.data.__get__",)),
    ("data_set", None, None, ("Tensor.data.__set__",)),
    ("requires_grad", None, None, ("Tensor.requires_grad_", "Tensor.requires_grad.__set__")),
    ("retain_grad", None, None, ("Tensor.retain_grad",)),
    ("register_hook", "tensor", None, ("Tensor.register_hook",)),
    ("register_hook", "post", None, ("Tensor.register_post_accumulate_grad_hook",)),
    ("detach_", None, None, ("Tensor.detach_",)),
    ("exposed", None, None, ("Tensor.numpy", "Tensor.__array__")),
    # nothing to record (fast path)
    ("ignore", None, None, tuple(_T + n for n in (
        "__repr__", "__format__", "__str__", "__len__", "__bool__", "__float__", "__int__",
        "__index__", "__hash__", "__iter__", "__contains__", "__reduce_ex__", "__deepcopy__",
        "size", "dim", "numel", "item", "tolist", "is_complex", "is_floating_point", "element_size",
        "data_ptr", "stride", "storage_offset", "is_contiguous", "nelement", "ndimension",
        "shape.__get__", "dtype.__get__", "device.__get__", "requires_grad.__get__",
        "is_leaf.__get__", "grad_fn.__get__", "ndim.__get__", "_version.__get__",
        "is_cuda.__get__", "layout.__get__", "names.__get__", "_base.__get__",
        "retains_grad.__get__", "output_nr.__get__", "_cdata.__get__"))
     + ("torch.is_tensor", "torch.is_complex", "torch.is_floating_point", "torch.numel",
        "torch._C._set_grad_enabled", "torch.is_grad_enabled", "torch.get_default_dtype")),
    # the op families of recorder/rows/ (one section each: convolution, normalization, ...)
    *FAMILY_ROWS,
]


def _resolve(path: str) -> Any:
    """The object named ``path`` (``Tensor.`` = torch.Tensor, ``F.`` = torch.nn.functional)."""
    head, _, rest = path.partition(".")
    obj: Any = {"Tensor": torch.Tensor, "F": TF, "torch": torch}[head]
    for part in rest.split("."):
        obj = getattr(obj, part)
    return obj


def _display(path: str) -> str:
    if path.startswith("F."):
        return "torch.nn.functional." + path[2:]
    if path.endswith(".__get__"):
        return path[: -len(".__get__")]
    if path.endswith(".__set__"):
        return path[: -len(".__set__")] + " ="
    return path


#: ops whose kernels write into an argument without bumping its ``_version`` (batch_norm's
#: running statistics): their arguments get twins before torch runs (``Recorder._pre``)
_PRE_OPS = ("batch_norm",)
#: fused calls that draw dropout masks inside (attention, recurrent layers with dropout between
#: layers): torch's generator state is saved before them, so the engine replays their masks
#: (``recorder/masks.py``)
_DRAWS_MASKS = ("F.scaled_dot_product_attention", "F.multi_head_attention_forward", "torch.lstm",
                "torch.gru", "torch.rnn_tanh", "torch.rnn_relu")


def _build() -> dict[Any, Spec]:
    table: dict[Any, Spec] = {}
    for kind, op, adapt, names in _ROWS:
        pre = kind in ("backward", "random", "inplace", "register_hook", "autograd_grad") or op in _PRE_OPS
        for path in names:
            try:
                func = _resolve(path)
            except AttributeError:
                continue  # not in this torch version
            if func not in table:
                draws = path in _DRAWS_MASKS
                table[func] = Spec(kind, _display(path), op, adapt, pre or draws, draws)
    return table


TORCH_OPS: dict[Any, Spec] = _build()
_CACHE: dict[Any, Spec] = dict(TORCH_OPS)


def lookup(func: Any) -> Spec:
    """The ``Spec`` for ``func`` (cached; unknown callables are classified once)."""
    try:
        spec = _CACHE.get(func)
    except TypeError:  # unhashable callable
        return _classify(func)
    if spec is None:
        spec = _CACHE[func] = _classify(func)
    return spec


def alias(func: Any, original: Any) -> None:
    """Make ``func`` (a wrapper gradmagic put in place of torch's ``original``) map as
    ``original`` does (``sampling.py`` wraps torch's backward entry points)."""
    _CACHE[func] = lookup(original)


def _classify(func: Any) -> Spec:
    name = torch_name(func)
    if "_record_function_enter" in name:
        return Spec("profiler_enter", name)
    if "_record_function_exit" in name:
        return Spec("profiler_exit", name)
    return Spec("auto", name)


def torch_name(func: Any) -> str:
    """A readable dotted name for a torch callable (``Tensor.mul``, ``torch.fft.fft``).

    >>> torch_name(torch.Tensor.add_), torch_name(torch.nn.functional.relu)
    ('Tensor.add_', 'torch.nn.functional.relu')
    """
    owner = getattr(func, "__self__", None)
    fname = getattr(func, "__name__", None) or type(func).__name__
    if fname in ("__get__", "__set__") and owner is not None and hasattr(owner, "__objclass__"):
        return f"Tensor.{owner.__name__}" + (" =" if fname == "__set__" else "")
    qual = getattr(func, "__qualname__", fname) or fname
    module = getattr(func, "__module__", None) or ""
    if qual.startswith(("TensorBase.", "Tensor.", "_TensorBase.")):
        return "Tensor." + qual.split(".", 1)[1]
    if qual.startswith("_VariableFunctionsClass."):
        return "torch." + qual.split(".", 1)[1]
    if module == "torch._C._nn":
        return "torch.nn.functional." + fname
    if module.startswith("torch._C._"):  # torch._C._fft.fft_fft -> torch.fft.fft
        sub = module[len("torch._C._"):]
        return f"torch.{sub}.{fname[len(sub) + 1:] if fname.startswith(sub + '_') else fname}"
    packet = getattr(func, "_qualified_op_name", None)
    if packet:
        return "torch.ops." + packet.replace("::", ".")
    if module in ("", "torch._C", "builtins") and hasattr(torch, fname):
        return "torch." + fname
    return f"{module}.{qual}" if module else qual


def registry_targets() -> set[str]:
    """Every engine op named by the table (a test asserts each exists in ``REGISTRY``)."""
    return {op for kind, op, _, _ in _ROWS if op is not None and kind not in ("autograd_grad", "register_hook")}
