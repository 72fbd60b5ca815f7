"""``Tensor`` and ``apply``: running one registered op and recording its node.

>>> from gradmagic.engine import tensor
>>> x = tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
>>> y = 2 * x.dot(x)
>>> y
tensor(28., grad_fn=<MulBackward0>)
>>> y.backward()
>>> x.grad
tensor([ 0.,  4.,  8., 12.])
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import dtypes
from ._state import STATE
from .node import ABSENT, MODIFIED, Node
from .registry import REGISTRY, OpDef

ndarray = np.ndarray
_new = object.__new__
_ALIASES = {"dim": "axis", "keepdim": "keepdims"}
RETAINED: "dict[int, weakref.ref]" = {}  # id(node) -> tensor that retains its grad


class Tensor:
    """An ndarray with autograd metadata. ``Tensor(array)`` wraps the array as is (no copy,
    dtype kept); Python data becomes float32 as with ``torch.Tensor``. ``.data`` is the
    ndarray itself (not a Tensor as in torch)."""

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_version", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if not isinstance(data, (ndarray, np.generic)):  # Python data: torch.Tensor's float32
            data = np.asarray(data, dtype=dtypes.float32)
        self.data = data if type(data) is ndarray else np.asarray(data)
        self.grad: Tensor | None = None
        self.requires_grad = False
        self.grad_fn: Node | None = None
        self._version = 0
        if requires_grad:
            self.requires_grad_(True)

    # ----- metadata -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    is_leaf = property(lambda self: self.grad_fn is None)
    retains_grad = property(lambda self: retained(self.grad_fn) is self)
    device = property(lambda self: "cpu")

    def size(self, dim: int | None = None) -> Any:
        return self.data.shape if dim is None else self.data.shape[dim]

    def cpu(self) -> "Tensor":
        return self

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        if not self.data.ndim:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def item(self) -> Any:
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.data.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.data.item())

    def __hash__(self) -> int:
        return id(self)

    def __iter__(self) -> Any:
        if not self.data.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __repr__(self) -> str:
        from .printing import tensor_repr
        return tensor_repr(self)

    # ----- autograd state ---------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        if self.grad_fn is None:
            self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            key = id(self.grad_fn)
            RETAINED[key] = weakref.ref(self, lambda _, key=key: RETAINED.pop(key, None))

    def detach(self) -> "Tensor":
        """A new tensor sharing the data, cut from the graph."""
        return wrap(self.data)

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def register_hook(self, hook: Any) -> Any:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a Tensor it returns
        replaces the gradient. Returns a handle with ``remove()`` (see ``engine.hooks``)."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        from .hooks import HOOKS, add_hook
        return add_hook(HOOKS, self.grad_fn if self.grad_fn is not None else self, hook)

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """Call ``hook(self)`` after a gradient was accumulated into this leaf's ``.grad``."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        from .hooks import POST_ACCUMULATE, add_hook
        return add_hook(POST_ACCUMULATE, self, hook)


def retained(node: Node | None) -> "Tensor | None":
    """The tensor whose ``retain_grad()`` asked for this node's output gradient."""
    ref = RETAINED.get(id(node))
    t = ref() if ref is not None else None
    return t if t is not None and t.grad_fn is node else None


def wrap(arr: np.ndarray, requires_grad: bool = False, grad_fn: Node | None = None) -> Tensor:
    """Build a Tensor around ``arr`` without any checks (the hot path)."""
    t = _new(Tensor)
    t.data = arr
    t.grad = None
    t.requires_grad = requires_grad
    t.grad_fn = grad_fn
    t._version = 0
    return t


def apply(op_name: str, *inputs: Any, **params: Any) -> Tensor:
    """Run the registered op ``op_name`` on ``inputs`` and record a node when needed.

    >>> from gradmagic.engine import tensor
    >>> apply("mul", tensor([2.0]), 3.0)
    tensor([6.])
    """
    try:
        op = REGISTRY[op_name]
    except KeyError:
        raise NotImplementedError(f"gradmagic engine has no op {op_name!r}") from None
    if "dim" in params or "keepdim" in params:
        params = {_ALIASES.get(k, k): v for k, v in params.items()}
    return run(op, inputs, params)


def run(op: OpDef, inputs: tuple, params: dict, out: ndarray | None = None) -> Tensor:
    """Forward of ``op``; records a Node when grad mode is on and an input requires grad.

    ``out``: the forward's result, already computed by the caller (a composite that
    computes several ops at once into buffers of its own, see ops/recurrent.py); it must
    be what ``op.fwd`` gives on the inputs, which need no dtype promotion."""
    if not op.variadic:
        if len(inputs) == 2:
            return run2(op, inputs[0], inputs[1], params, out)
        if len(inputs) == 1:
            return run1(op, inputs[0], params, out)
    if out is None:
        arrays = _arrays(op, inputs)
        out = op.fwd(*arrays, **params) if params else op.fwd(*arrays)
    t = _result(out)
    if not STATE.grad_enabled or op.nondiff or t.data.dtype.kind not in "fc":
        return t
    parents, mask = _edges(op, inputs)
    if not mask:
        return t
    saved = op.saved_by_mask.get(mask)
    if saved is None:
        saved = op.saved_indices(mask, len(inputs))
    vsum = 0  # as Node.version_sum: a computed input's version lives on its node
    for i in saved:
        if type(parents[i]) is Node:
            vsum += parents[i].outv
        elif type(inputs[i]) is Tensor:
            vsum += inputs[i]._version
    t.grad_fn = Node.of(op, inputs, parents, params or None,
                        t.data if op.saves_ans else None, saved, vsum)
    t.requires_grad = True
    return t


def run2(op: OpDef, a: Any, b: Any, params: dict | None = None,
         out: ndarray | None = None) -> Tensor:
    """``run(op, (a, b), params)`` for a two-input op (the operators), without the tuples
    and loops of the general path."""
    xa = a.data if type(a) is Tensor else a
    xb = b.data if type(b) is Tensor else b
    mode = op.promote
    if mode is not None and not (type(xa) is ndarray and type(xb) is ndarray and
                                 xa.dtype is xb.dtype and xa.dtype.kind == "f") \
            and not _same_float(xa, xb, mode):  # (two arrays of one float dtype: no cast)
        xa, xb = promote(mode, [xa, xb])
    t = _result(out if out is not None else
                op.fwd(xa, xb, **params) if params else op.fwd(xa, xb))
    if not STATE.grad_enabled or op.nondiff or t.data.dtype.kind not in "fc":
        return t
    diff = op.diff
    pa = (a.grad_fn or a) if type(a) is Tensor and a.requires_grad and diff[0] else None
    pb = (b.grad_fn or b) if type(b) is Tensor and b.requires_grad and diff[1] else None
    if pa is None and pb is None:
        return t
    mask = (pa is not None) | (pb is not None) << 1
    saved = op.saved_by_mask.get(mask)
    if saved is None:
        saved = op.saved_indices(mask, 2)
    vsum = 0  # as Node.version_sum: a computed input's version lives on its node
    for i in saved:
        if i == 0:
            p, x = pa, a
        else:
            p, x = pb, b
        if type(p) is Node:
            vsum += p.outv
        elif type(x) is Tensor:
            vsum += x._version
    t.grad_fn = Node(op, a.data if type(pa) is Node else a, b.data if type(pb) is Node else b,
                     pa, pb, params or None, t.data if op.saves_ans else None, saved, vsum)
    t.requires_grad = True
    return t


def run1(op: OpDef, a: Any, params: dict | None = None, out: ndarray | None = None) -> Tensor:
    """``run(op, (a,), params)`` for a one-input op."""
    xa = a.data if type(a) is Tensor else a
    mode = op.promote
    if mode is not None and not (type(xa) is ndarray and (mode != "float" or xa.dtype.kind == "f")):
        (xa,) = promote(mode, [xa])
    t = _result(out if out is not None else op.fwd(xa, **params) if params else op.fwd(xa))
    if not STATE.grad_enabled or op.nondiff or t.data.dtype.kind not in "fc":
        return t
    if not (type(a) is Tensor and a.requires_grad and op.diff[0]):
        return t
    pa = a.grad_fn or a
    saved = op.saved_by_mask.get(1)
    if saved is None:
        saved = op.saved_indices(1, 1)
    vsum = (pa.outv if type(pa) is Node else a._version) if saved else 0
    t.grad_fn = Node(op, a.data if type(pa) is Node else a, ABSENT, pa, None, params or None,
                     t.data if op.saves_ans else None, saved, vsum)
    t.requires_grad = True
    return t


def _result(out: Any) -> Tensor:
    """A fresh tensor (no grad) around an op's output."""
    t = _new(Tensor)
    t.data = out if type(out) is ndarray else np.asarray(out)
    t.grad = t.grad_fn = None
    t._version = 0
    t.requires_grad = False
    return t


def _arrays(op: OpDef, inputs: tuple) -> list:
    """The inputs' arrays, cast to the op's result dtype where torch would promote."""
    mode = op.promote
    if len(inputs) == 1:
        a = inputs[0]
        xa = a.data if type(a) is Tensor else a
        if mode is None or type(xa) is ndarray and (mode != "float" or xa.dtype.kind == "f"):
            return [xa]
        return promote(mode, [xa])
    if len(inputs) == 2:
        a, b = inputs
        xa, xb = (a.data if type(a) is Tensor else a), (b.data if type(b) is Tensor else b)
        if mode is None or _same_float(xa, xb, mode):
            return [xa, xb]
        return promote(mode, [xa, xb])
    arrays = [x.data if type(x) is Tensor else x for x in inputs]
    return arrays if mode is None else promote(mode, arrays)


def _edges(op: OpDef, inputs: tuple) -> tuple[tuple, int]:
    """Per input, where its gradient goes (its grad_fn, itself as a leaf, or None), and
    the bit mask of the inputs that need one."""
    diff = op.diff  # (one and two inputs of a non-variadic op go through run1/run2)
    parents, mask = [], 0
    for i, x in enumerate(inputs):
        if type(x) is Tensor and x.requires_grad and (op.variadic or diff[i]):
            parents.append(x.grad_fn or x)
            mask |= 1 << i
        else:
            parents.append(None)
    return tuple(parents), mask


def _same_float(xa: Any, xb: Any, mode: str) -> bool:
    """Fast check that nothing needs a cast: two arrays of one dtype, or a float array with
    a Python number (weak, as in torch: ``float32 * 2`` stays float32)."""
    if type(xa) is not ndarray:
        xa, xb = xb, xa
        if type(xa) is not ndarray:
            return False
    kind = xa.dtype.kind
    if mode == "float" and kind != "f":
        return False
    if type(xb) is ndarray:
        return xa.dtype == xb.dtype
    return kind == "f" and (type(xb) is float or type(xb) is int)


def promote(mode: str, arrays: list) -> list:
    """Cast array operands to torch's result dtype (``mode``: "same", "float" or "where")."""
    ops = arrays[1:] if mode == "where" else arrays
    first = ops[0]
    if type(first) is ndarray and (mode != "float" or first.dtype.kind == "f"):
        if len(ops) == 1:
            return arrays
        if len(ops) == 2:  # the common case: same dtype, or a float scalar with a float array
            b = ops[1]
            if type(b) is ndarray and b.dtype == first.dtype or (
                    type(b) is float and first.dtype.kind == "f"):
                return arrays
    dt = dtypes.float_result_type(*ops) if mode == "float" else dtypes.result_type(*ops)
    out = [a.astype(dt) if isinstance(a, (ndarray, np.generic)) and a.dtype != dt else a
           for a in ops]
    return [arrays[0], *out] if mode == "where" else out


def as_tensor(x: Any) -> Tensor:
    """Tensors pass through; arrays and scalars are wrapped (no grad)."""
    return x if isinstance(x, Tensor) else wrap(np.asarray(x))


# ----- in-place operations ------------------------------------------------------------
def check_inplace(t: Tensor) -> None:
    if STATE.grad_enabled and t.requires_grad and t.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")


def inplace(t: Tensor, op_name: str, *args: Any, **params: Any) -> Tensor:
    """``t.op_(...)``: compute ``op(t, ...)`` out of place, write it into ``t.data``, rebase ``t``.

    The node records a snapshot of ``t``'s old value, as torch saves ``original_self``.
    """
    check_inplace(t)
    recording = STATE.grad_enabled and (t.requires_grad or any(
        isinstance(a, Tensor) and a.requires_grad for a in args))
    ufunc = _INPLACE_UFUNCS.get(op_name)
    if not recording and ufunc is not None and not params and len(args) == 1:
        _ufunc_inplace(t, ufunc, args[0])  # e.g. ``w -= lr * w.grad`` without a temporary
        return t
    old = t
    if recording:
        old = wrap(t.data.copy(), t.requires_grad, t.grad_fn)
        old._version = t._version
    out = apply(op_name, old, *args, **params)
    if not np.can_cast(out.data.dtype, t.data.dtype, "same_kind"):
        raise RuntimeError(f"result type {out.data.dtype} can't be cast to the desired output "
                           f"type {t.data.dtype}")
    if out.data.shape != t.data.shape:
        raise RuntimeError(f"output with shape {list(t.data.shape)} doesn't match the broadcast "
                           f"shape {list(out.data.shape)}")
    mark_modified(t)
    np.copyto(t.data, out.data, casting="unsafe")
    if recording and out.grad_fn is not None:
        # the new node saved the snapshot ``old``, not the version bump it causes itself
        out.grad_fn.vsum = out.grad_fn.version_sum()
    if recording:
        t.grad_fn, t.requires_grad = out.grad_fn, out.requires_grad
    return t


_INPLACE_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}


def _ufunc_inplace(t: Tensor, ufunc: np.ufunc, other: Any) -> None:
    other = other.data if isinstance(other, Tensor) else other
    dt = t.data.dtype
    if not (type(other) is ndarray and other.dtype == dt and dt.kind in "fc"):  # else: no cast
        want = dtypes.float_result_type(t.data, other) if ufunc is np.true_divide else \
            dtypes.result_type(t.data, other)
        if not np.can_cast(want, dt, "same_kind"):
            raise RuntimeError(f"result type {want} can't be cast to the desired output type {dt}")
    try:
        ufunc(t.data, other, out=t.data, casting="unsafe")
    except ValueError as e:  # broadcasting the other operand to a larger shape
        raise RuntimeError(f"output with shape {list(t.data.shape)} doesn't match the "
                           f"broadcast shape: {e}") from None
    mark_modified(t)


def mark_modified(t: Tensor) -> None:
    """Bump the version counter; a node that saved ``t`` as its output learns it changed."""
    t._version += 1
    fn = t.grad_fn
    if fn is not None:
        fn.outv += 1
        if fn.ans is not None and fn.ans is t.data:
            fn.vsum = MODIFIED
