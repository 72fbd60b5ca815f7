"""Fuzzer families of the recurrent ops (registered into fuzz_programs.FAMILIES on import).

One family writes the fused calls as ``nn.RNN``/``nn.LSTM``/``nn.GRU`` make them (``torch.lstm``
with ``(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
batch_first)``, or on a packed sequence between ``torch._pack_padded_sequence`` and
``torch._pad_packed_sequence``), or a cell (``torch.lstm_cell`` ...). The weights are views of one
leaf, so every weight's gradient is checked through that leaf's.
"""
from __future__ import annotations

import torch

from fuzz_programs import Builder, Stmt, _choose, _lit, _op, aliases, family, spell  # noqa: F401

_LAYERS = ("torch.lstm", "torch.gru", "torch.rnn_tanh", "torch.rnn_relu")
_CELLS = ("torch.lstm_cell", "torch.gru_cell", "torch.rnn_tanh_cell", "torch.rnn_relu_cell")
_GATES = {"lstm": 4, "gru": 3}


def _input(b: Builder, ndim: int) -> str:
    """A float pool tensor with ``ndim`` dims (no empty ones), or a new leaf."""
    x = b.pick_float(lambda t: t.dim() == ndim and t.numel() > 0)
    if x is None or b.int(0, 2) == 0:
        x = b.name("x")
        shape = tuple(b.int(1, 3) for _ in range(ndim))
        b.add(Stmt(f"{x} = torch.randn({shape}, requires_grad=True)", "setup", x))
    return x


def _weights(b: Builder, rows: int, cols: int, mats: int, dtype: str) -> str:
    """A leaf holding every layer's and direction's weights side by side."""
    w = b.name("w")
    b.add(Stmt(f"{w} = torch.randn({(mats, rows, cols)}, dtype={dtype}, requires_grad=True)",
               "setup", w))
    return w


def _cell(b: Builder, fn: str) -> bool:
    x = _input(b, 2)
    t = b.env[x]
    dtype = str(t.dtype)
    n, size, hidden = t.shape[0], t.shape[1], b.int(1, 3)
    kind = fn[len("torch."):-len("_cell")]
    w = _weights(b, _GATES.get(kind, 1) * hidden, size + hidden + 2, 1, dtype)
    h = f"torch.randn({n}, {hidden}, dtype={dtype})"
    state = f"({h}, {h})" if kind == "lstm" else h
    bias = f", {w}[0, :, -2], {w}[0, :, -1]" if b.bool() else ""
    call = f"{fn}({x}, {state}, {w}[0, :, :{size}], {w}[0, :, {size}:{size + hidden}]{bias})"
    return _op(b, call + (f"[{b.int(0, 1)}]" if kind == "lstm" else ""), (x, w))


def _layer(b: Builder, fn: str) -> bool:
    x = _input(b, 3)
    t = b.env[x]
    dtype = str(t.dtype)
    kind = fn[len("torch."):]
    batch_first, packed = b.bool(), b.int(0, 2) == 0
    steps, n = (t.shape[1], t.shape[0]) if batch_first else (t.shape[0], t.shape[1])
    size, hidden, layers, dirs = t.shape[2], b.int(1, 3), b.int(1, 2), b.int(1, 2)
    bias = b.bool()
    width = max(size, hidden * dirs) + hidden + 2
    w = _weights(b, _GATES.get(kind, 1) * hidden, width, layers * dirs, dtype)
    params = []
    for k in range(layers * dirs):
        inp = size if k < dirs else hidden * dirs
        params += [f"{w}[{k}, :, :{inp}]", f"{w}[{k}, :, {width - hidden - 2}:{width - 2}]"]
        params += [f"{w}[{k}, :, -2]", f"{w}[{k}, :, -1]"] if bias else []
    h = f"torch.randn({layers * dirs}, {n}, {hidden}, dtype={dtype})"
    hx = f"({h}, {h})" if kind == "lstm" else h
    dropout, train = b.choice([("0.0", "True"), ("0.0", "False"), ("0.5", "False"), ("0.5", "True")])
    rest = f"[{', '.join(params)}], {bias}, {layers}, {dropout}, {train}, {dirs == 2}"
    if not packed:
        out = b.int(0, 2 if kind == "lstm" else 1)
        return _op(b, f"{fn}({x}, {hx}, {rest}, {batch_first})[{out}]", (x, w))
    lengths = sorted((b.int(1, steps) for _ in range(n)), reverse=True)
    sizes = [sum(1 for m in lengths if m > s) for s in range(lengths[0])]
    pack = f"*torch._pack_padded_sequence({x}, torch.tensor({lengths}), {batch_first})"
    pad = f"torch.tensor({sizes}), {batch_first}, {_lit(b.float(-1, 1))}, {len(sizes) + b.int(0, 1)}"
    return _op(b, f"torch._pad_packed_sequence({fn}({pack}, {hx}, {rest})[0], {pad})[0]", (x, w))


@family(*[n for f in _LAYERS + _CELLS for n in aliases(f)],
        *aliases("torch._pack_padded_sequence"), *aliases("torch._pad_packed_sequence"), weight=2)
def recurrent(b: Builder) -> bool:
    fn = b.choice(_LAYERS + _CELLS)
    return _cell(b, fn) if fn in _CELLS else _layer(b, fn)
