"""Recurrent layers: the fused calls that ``nn.RNN``/``nn.LSTM``/``nn.GRU`` make
(``torch.rnn_tanh``, ``torch.rnn_relu``, ``torch.lstm``, ``torch.gru``, also on packed
sequences), the cells (``torch.lstm_cell``, ...) and the packing of padded sequences.

They are composites of existing engine ops, unrolled one time step at a time, so every gate
of every step is a node of its own (torch's gate order: LSTM i, f, g, o; GRU r, z, n). As
torch's CPU layers do, each layer first projects its whole input sequence, x W_ihᵀ + b_ih
in one ``linear``, and takes each step's part with ``unbind`` (packed: row blocks). An LSTM
layer without projection writes its steps' values in place into scratch arrays that the next
call reuses (``_LstmBuffers``, ``engine/scratch.py``): the same nodes and values, and a
training loop's steps no longer give ~60 MB back to the C library and fault it in again::

    LSTM  i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of  x W_ihᵀ + b_ih + h W_hhᵀ + b_hh
          c' = f·c + i·g          h' = o·tanh(c')        (h' W_hrᵀ with proj_size)
    GRU   r, z = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr), σ(…)
          n = tanh(x W_inᵀ + b_in + r·(h W_hnᵀ + b_hn))   h' = (h − n)·z + n
    RNN   h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)      (relu for rnn_relu)

Arguments are torch's, positionally as ``torch._VF`` receives them::

    lstm(input, (h0, c0), params, has_biases, num_layers, dropout, train, bidirectional,
         batch_first)                                       -> (output, h_n, c_n)
    lstm(data, batch_sizes, (h0, c0), params, has_biases, num_layers, dropout, train,
         bidirectional)                                     -> (data_out, h_n, c_n)

``params`` holds, per layer and direction, ``w_ih, w_hh[, b_ih, b_hh][, w_hr]``.
Dropout between layers in training mode uses torch's masks (``engine/masks.py``: the recorder
replays torch's generator; without a source of masks the call raises ``NotImplementedError``).

>>> import numpy as np
>>> from gradmagic.engine import tensor
>>> x, h0, c0 = tensor(np.ones((2, 1, 1))), tensor(np.zeros((1, 1, 1))), tensor(np.zeros((1, 1, 1)))
>>> w = [tensor(np.full((4, 1), 0.5), requires_grad=True), tensor(np.zeros((4, 1)))]
>>> out, h, c = lstm(x, (h0, c0), w, False, 1, 0.0, True, False, False)
>>> out.shape, h.grad_fn.name
((2, 1, 1), 'StackBackward0')
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..masks import dropped
from ..registry import REGISTRY
from ..scratch import big, take
from ..tensor import Tensor, apply, run, run1, run2
from . import data as _data
from .elementwise import _sigmoid
from .linalg import transposed_product

PUBLIC: tuple[str, ...] = (
    "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
    "rnn_relu_cell", "_pack_padded_sequence", "_pad_packed_sequence")
METHODS: tuple[str, ...] = ()
_OPS = {name: REGISTRY[name] for name in ("linear", "add", "mul", "sigmoid", "tanh", "stack")}


# ---------------------------------------------------------------- building blocks
def _linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    return apply("linear", x, w) if b is None else apply("linear", x, w, b)


def _projection(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``_linear`` of a whole padded sequence, x W_ihᵀ + b_ih in one GEMM (as linear's
    forward computes it), into a scratch array that the next call reuses (``scratch.py``)."""
    arrays = (x, w) if b is None else (x, w, b)
    if x.ndim < 3 or w.ndim != 2 or x.dtype.kind != "f" or any(
            type(a) is not Tensor or a.dtype != x.dtype for a in arrays):
        return _linear(x, w, b)
    rows = math.prod(x.shape[:-1])
    out = np.matmul(x.data.reshape(rows, x.shape[-1]), w.data.T,
                    out=big((rows, w.shape[0]), x.dtype))
    if b is not None:
        out += b.data
    return run(_OPS["linear"], arrays, {}, out.reshape(x.shape[:-1] + (w.shape[0],)))


def _gate(gates: Tensor, k: int, size: int) -> Tensor:
    """The ``k``-th chunk of ``size`` along the last dim (torch's ``chunk`` of the gates)."""
    return apply("getitem", gates, index=(Ellipsis, slice(k * size, (k + 1) * size)))


def _rows(x: Tensor, start: int, stop: int) -> Tensor:
    return apply("getitem", x, index=slice(start, stop))


# ---------------------------------------------------------------- one time step (a cell)
# ``xw`` is the input's part x W_ihᵀ + b_ih; each step returns its new state tuple.
def _rnn_step(act: str) -> Callable:
    def step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, w_hr: Any = None) -> tuple:
        return (apply(act, _linear(h, w_hh, b_hh) + xw),)
    return step


def _lstm_step(xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None,
               w_hr: Tensor | None = None) -> tuple:
    gates = _linear(h, w_hh, b_hh) + xw
    n = c.shape[-1]
    i = apply("sigmoid", _gate(gates, 0, n))  # input gate
    f = apply("sigmoid", _gate(gates, 1, n))  # forget gate
    g = apply("tanh", _gate(gates, 2, n))     # cell candidate
    o = apply("sigmoid", _gate(gates, 3, n))  # output gate
    c = f * c + i * g
    h = o * apply("tanh", c)
    return (h if w_hr is None else _linear(h, w_hr), c)


def _gru_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, w_hr: Any = None) -> tuple:
    hw = _linear(h, w_hh, b_hh)
    n = h.shape[-1]
    r = apply("sigmoid", _gate(hw, 0, n) + _gate(xw, 0, n))  # reset gate
    z = apply("sigmoid", _gate(hw, 1, n) + _gate(xw, 1, n))  # update gate
    new = apply("tanh", _gate(xw, 2, n) + _gate(hw, 2, n) * r)
    return ((h - new) * z + new,)


class _LstmBuffers:
    """One layer direction's LSTM values of every step in four scratch arrays (see
    ``scratch.py``): step ``t``'s nodes get views of row ``t`` as their outputs, computed
    in place (``_lstm_step_into``). The same memory serves every call of a training loop,
    and a step allocates no array."""
    __slots__ = ("hw", "gates", "act", "cell")

    def __init__(self, steps: int, batch: int, hidden: int, dtype: np.dtype) -> None:
        self.hw = take((steps, 4 * hidden * batch), dtype)      # h W_hhᵀ, transposed
        self.gates = take((steps, batch, 4 * hidden), dtype)    # + x W_ihᵀ + b_ih
        self.act = take((steps, batch, 4 * hidden), dtype)      # σ(i), σ(f), tanh(g), σ(o)
        self.cell = take((steps, 5, batch, hidden), dtype)      # f·c, i·g, c', tanh c', h'

    @staticmethod
    def fits(xws: list, h0: tuple, weights: tuple) -> bool:
        """All arrays of one float dtype (no promotion), 2-d steps, no projection."""
        w_hh, b_hh, w_hr = weights[1], weights[3], weights[4]
        arrays = [xws[0], *h0, w_hh] + ([] if b_hh is None else [b_hh])
        dtype = xws[0].dtype
        return (w_hr is None and dtype.kind == "f" and xws[0].ndim == 2 and
                all(type(x) is Tensor and x.dtype == dtype for x in arrays))


def _lstm_step_into(buf: _LstmBuffers, t: int, xw: Tensor, h: Tensor, c: Tensor,
                    w_hh: Tensor, b_hh: Tensor | None) -> tuple:
    """``_lstm_step`` with every output written into row ``t`` of ``buf``: the same nodes
    and values, each op's forward computed in place (the four activations in one pass)."""
    bs, n = c.shape
    hd, wd, cd = h.data, w_hh.data, c.data
    hw_rows = transposed_product(wd, hd, buf.hw[t, :4 * n * bs].reshape(4 * n, bs))
    if hw_rows is None:  # the shapes linear's forward multiplies the other way round
        hw = _linear(h, w_hh, b_hh)
    else:
        hw_data = hw_rows.T  # the F-ordered array linear's forward gives
        if b_hh is not None:
            hw_data += b_hh.data
        hw = run(_OPS["linear"], (h, w_hh) if b_hh is None else (h, w_hh, b_hh), {}, hw_data)
    gd = np.add(hw.data, xw.data, out=buf.gates[t, :bs])
    gates = run2(_OPS["add"], hw, xw, None, gd)
    act = _sigmoid(gd, buf.act[t, :bs])
    np.tanh(gd[:, 2 * n:3 * n], out=act[:, 2 * n:3 * n])
    i, f, g, o = (run1(_OPS["tanh" if k == 2 else "sigmoid"], _gate(gates, k, n), None,
                       act[:, k * n:(k + 1) * n]) for k in range(4))
    fc_, ig_, c_, tc_, h_ = buf.cell[t, :, :bs]
    fc = run2(_OPS["mul"], f, c, None, np.multiply(f.data, cd, out=fc_))
    ig = run2(_OPS["mul"], i, g, None, np.multiply(i.data, g.data, out=ig_))
    c = run2(_OPS["add"], fc, ig, None, np.add(fc_, ig_, out=c_))
    tc = run1(_OPS["tanh"], c, None, np.tanh(c_, out=tc_))
    return run2(_OPS["mul"], o, tc, None, np.multiply(o.data, tc_, out=h_)), c


_STEPS = {"lstm": _lstm_step, "gru": _gru_step, "rnn_tanh": _rnn_step("tanh"),
          "rnn_relu": _rnn_step("relu")}


# ---------------------------------------------------------------- one layer, one direction
def _direction(step: Callable, xws: list, h0: tuple, weights: tuple, reverse: bool) -> tuple:
    """Run ``step`` over the projected inputs ``xws`` (x W_ihᵀ + b_ih, one per time step,
    batch sizes non-increasing as in a packed sequence) from state ``h0``: (outputs per
    step, final state).

    Forward in time, rows whose sequence ended are set aside and put back at the end;
    backward in time, rows join from ``h0`` when their sequence starts (torch's packed
    layers)."""
    w_hh, b_hh, w_hr = weights[1], weights[3], weights[4]
    full, state, done = h0[0].shape[0], h0, []
    buf = None
    if step is _lstm_step and _LstmBuffers.fits(xws, h0, weights):
        buf = _LstmBuffers(len(xws), max(x.shape[0] for x in xws), h0[1].shape[-1],
                           xws[0].dtype)
    if reverse:
        state = tuple(_rows(s, 0, xws[-1].shape[0]) if xws[-1].shape[0] < full else s for s in h0)
    outs: list = [None] * len(xws)
    for t in (range(len(xws) - 1, -1, -1) if reverse else range(len(xws))):
        bs, have = xws[t].shape[0], state[0].shape[0]
        if bs < have:  # sequences that ended: keep their final state aside
            done.append(tuple(_rows(s, bs, have) for s in state))
            state = tuple(_rows(s, 0, bs) for s in state)
        elif bs > have:  # (reverse) sequences that start here join with their h0
            state = tuple(apply("cat", s, _rows(s0, have, bs), axis=0) for s, s0 in zip(state, h0))
        if buf is None:
            state = step(xws[t], *state, w_hh, b_hh, w_hr)
        else:
            state = _lstm_step_into(buf, t, xws[t], *state, w_hh, b_hh)
        outs[t] = state[0]
    if done:
        state = tuple(apply("cat", *parts, axis=0) for parts in zip(state, *reversed(done)))
    return outs, state


def _weights(params: Sequence, has_biases: bool, layers: int, dirs: int) -> list:
    """Per layer and direction: (w_ih, w_hh, b_ih, b_hh, w_hr), absent ones None."""
    per = len(params) // (layers * dirs)
    base = 4 if has_biases else 2
    if per not in (base, base + 1) or per * layers * dirs != len(params):
        raise RuntimeError(f"rnn: expected {base} or {base + 1} parameters per layer and "
                           f"direction, got {len(params)} for {layers * dirs}")
    out = []
    for k in range(layers * dirs):
        p = list(params[k * per:(k + 1) * per])
        w_ih, w_hh = p[0], p[1]
        b_ih, b_hh = (p[2], p[3]) if has_biases else (None, None)
        out.append((w_ih, w_hh, b_ih, b_hh, p[base] if per > base else None))
    return out


def _stack_layers(seq: Tensor, steps: "_Steps", hx: tuple, params: Sequence, kind: str,
                  has_biases: bool, layers: int, dropout: float, train: bool,
                  bidirectional: bool) -> tuple:
    """All layers over the sequence ``seq`` (cut into time steps by ``steps``): (the last
    layer's output sequence, final states). Each layer projects its whole input sequence
    at once, x W_ihᵀ + b_ih in one GEMM (as torch's CPU layers do), and runs the steps."""
    dirs = 2 if bidirectional else 1
    weights = _weights(params, has_biases, layers, dirs)
    step, finals = _STEPS[kind], []
    for layer in range(layers):
        if layer and dropout and train:  # torch drops each layer's output but the last's
            seq = steps.dropped(seq, dropout)
        runs = []
        for d in range(dirs):
            k = layer * dirs + d
            h0 = tuple(apply("getitem", h, index=k) for h in hx)
            xws = steps.cut(_projection(seq, weights[k][0], weights[k][2]))
            outs, state = _direction(step, xws, h0, weights[k], reverse=d == 1)
            runs.append(outs)
            finals.append(state)
        seq = steps.join(runs[0] if dirs == 1 else
                         [apply("cat", f, b, axis=-1) for f, b in zip(*runs)])
    return seq, tuple(apply("stack", *parts, axis=0) for parts in zip(*finals))


class _Steps:
    """How a sequence is cut into time steps and joined back: along the time dim of a
    padded input (``sizes`` None), or into the row blocks of a packed one."""

    def __init__(self, axis: int, count: int, sizes: list | None = None) -> None:
        self.axis, self.count, self.sizes = axis, count, sizes

    def cut(self, seq: Tensor) -> list:
        if self.sizes is None:  # torch's ``unbind`` of the projected inputs
            return [apply("unbind", seq, axis=self.axis, index=t) for t in range(self.count)]
        starts = np.cumsum([0] + self.sizes[:-1])
        return [_rows(seq, int(s), int(s) + n) for s, n in zip(starts, self.sizes)]

    def dropped(self, seq: Tensor, p: float) -> Tensor:
        """A layer's output sequence after dropout with torch's mask: torch draws it on the
        time-major (steps, batch, features) output, also of a batch-first layer."""
        if self.sizes is None and self.axis == 1:
            shape = (seq.shape[1], seq.shape[0], *seq.shape[2:])
            return dropped(seq, p, shape, (1, 0, *range(2, seq.ndim)))
        return dropped(seq, p)

    def join(self, outs: list) -> Tensor:
        if self.sizes is None:
            dtype = outs[0].dtype
            if any(o.dtype != dtype for o in outs):
                return apply("stack", *outs, axis=self.axis)
            shape = list(outs[0].shape)
            shape.insert(self.axis, len(outs))
            out = np.stack([o.data for o in outs], self.axis, out=big(tuple(shape), dtype))
            return run(_OPS["stack"], tuple(outs), {"axis": self.axis}, out)
        return apply("cat", *outs, axis=0)


def _check_input(x: Tensor, ndim: int, name: str) -> None:
    if x.ndim != ndim:
        raise RuntimeError(f"{name}: input must have {ndim} dimensions, got {x.ndim}")


def _layers(kind: str, input: Tensor, second: Any, *rest: Any) -> tuple:
    """Both overloads: (input, hx, params, ..., batch_first) and packed (data, batch_sizes,
    hx, params, ...)."""
    packed = isinstance(second, (Tensor, np.ndarray)) and np.asarray(_data(second)).dtype.kind in "iu"
    if packed:
        hx, params, has_biases, layers, dropout, train, bidirectional = rest
        _check_input(input, 2, kind)
        sizes = [int(n) for n in np.asarray(_data(second))]
        steps = _Steps(0, len(sizes), sizes)
    else:
        hx = second
        params, has_biases, layers, dropout, train, bidirectional, batch_first = rest
        _check_input(input, 3, kind)
        axis = 1 if batch_first else 0
        steps = _Steps(axis, input.shape[axis])
    hx = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
    output, finals = _stack_layers(input, steps, hx, params, kind, has_biases, int(layers),
                                   dropout, train, bidirectional)
    return (output, *finals)


# ---------------------------------------------------------------- torch's fused calls
def lstm(input: Tensor, hx: Any, *args: Any) -> tuple:
    """``torch.lstm`` → (output, h_n, c_n), unrolled into gates per step."""
    return _layers("lstm", input, hx, *args)


def gru(input: Tensor, hx: Any, *args: Any) -> tuple:
    """``torch.gru`` → (output, h_n), unrolled into gates per step."""
    return _layers("gru", input, hx, *args)


def rnn_tanh(input: Tensor, hx: Any, *args: Any) -> tuple:
    """``torch.rnn_tanh`` → (output, h_n): h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)."""
    return _layers("rnn_tanh", input, hx, *args)


def rnn_relu(input: Tensor, hx: Any, *args: Any) -> tuple:
    """``torch.rnn_relu`` → (output, h_n): h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)."""
    return _layers("rnn_relu", input, hx, *args)


# ---------------------------------------------------------------- cells
def lstm_cell(input: Tensor, hx: Sequence[Tensor], w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> tuple:
    """``torch.lstm_cell`` (``nn.LSTMCell``) → (h', c')."""
    h, c = hx
    return _lstm_step(_linear(input, w_ih, b_ih), h, c, w_hh, b_hh)


def gru_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    """``torch.gru_cell`` (``nn.GRUCell``) → h'."""
    return _gru_step(_linear(input, w_ih, b_ih), hx, w_hh, b_hh)[0]


def rnn_tanh_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    """``torch.rnn_tanh_cell`` (``nn.RNNCell``) → h'."""
    return _STEPS["rnn_tanh"](_linear(input, w_ih, b_ih), hx, w_hh, b_hh)[0]


def rnn_relu_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    """``torch.rnn_relu_cell`` (``nn.RNNCell(nonlinearity="relu")``) → h'."""
    return _STEPS["rnn_relu"](_linear(input, w_ih, b_ih), hx, w_hh, b_hh)[0]


# ---------------------------------------------------------------- packed sequences
def _pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False) -> tuple:
    """``torch._pack_padded_sequence`` → (data, batch_sizes): the rows of each time step
    whose sequence is still running, time step after time step."""
    lens = np.asarray(_data(lengths)).astype(np.int64).reshape(-1)
    if lens.size and lens.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    if (np.diff(lens) > 0).any():
        raise RuntimeError("`lengths` array must be sorted in decreasing order when "
                           "`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
                           "pack_padded_sequence and/or pack_sequence to sidestep this "
                           "requirement if you do not need ONNX exportability.")
    steps = int(lens[0]) if lens.size else 0
    sizes = (lens[None, :] > np.arange(steps)[:, None]).sum(axis=1).astype(np.int64)
    parts = [apply("getitem", input, index=(slice(0, int(n)), t) if batch_first
                   else (t, slice(0, int(n)))) for t, n in enumerate(sizes)]
    return apply("cat", *parts, axis=0), Tensor(sizes)


def _pad_packed_sequence(data: Tensor, batch_sizes: Any, batch_first: bool = False,
                         padding_value: float = 0.0, total_length: int = 0) -> tuple:
    """``torch._pad_packed_sequence`` → (padded, lengths): each time step's rows, padded
    with ``padding_value`` to the full batch, stacked over time."""
    sizes = [int(n) for n in np.asarray(_data(batch_sizes))]
    full, rest = sizes[0], tuple(data.shape[1:])
    steps = max(int(total_length), len(sizes))

    def pad(n: int) -> Tensor:
        return Tensor(np.full((n,) + rest, padding_value, data.dtype))
    rows, start = [], 0
    for n in sizes:
        part = _rows(data, start, start + n)
        rows.append(part if n == full else apply("cat", part, pad(full - n), axis=0))
        start += n
    rows += [pad(full) for _ in range(steps - len(sizes))]
    lengths = (np.asarray(sizes)[None, :] > np.arange(full)[:, None]).sum(axis=1)
    return apply("stack", *rows, axis=1 if batch_first else 0), Tensor(lengths.astype(np.int64))
