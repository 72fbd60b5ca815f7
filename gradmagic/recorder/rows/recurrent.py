"""Mapping rows of the recurrent family (see rows/__init__.py).

``nn.RNN``/``nn.LSTM``/``nn.GRU`` call ``torch._VF.rnn_tanh``/``rnn_relu``/``lstm``/``gru``,
which the mode receives as ``torch.rnn_tanh``, ... with ``(input, hx, flat_weights,
has_biases, num_layers, dropout, training, bidirectional, batch_first)``, or on a packed
sequence ``(data, batch_sizes, hx, flat_weights, has_biases, num_layers, dropout,
training, bidirectional)``; the cells call ``torch.lstm_cell``, ... and
``nn.utils.rnn.pack_padded_sequence``/``pad_packed_sequence`` call
``torch._pack_padded_sequence``/``torch._pad_packed_sequence``. The engine's functions take
the same positional arguments and unroll each call into gates per time step; the engine op
named here is that of the call's (first) output node.
"""
from __future__ import annotations

from typing import Any

from gradmagic.engine import functional as EF

from ..adapters import call

ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
    ("op", "stack", call(EF.lstm), ("torch.lstm",)),
    ("op", "stack", call(EF.gru), ("torch.gru",)),
    ("op", "stack", call(EF.rnn_tanh), ("torch.rnn_tanh",)),
    ("op", "stack", call(EF.rnn_relu), ("torch.rnn_relu",)),
    ("op", "mul", call(EF.lstm_cell), ("torch.lstm_cell",)),
    ("op", "add", call(EF.gru_cell), ("torch.gru_cell",)),
    ("op", "tanh", call(EF.rnn_tanh_cell), ("torch.rnn_tanh_cell",)),
    ("op", "relu", call(EF.rnn_relu_cell), ("torch.rnn_relu_cell",)),
    ("op", "cat", call(EF._pack_padded_sequence), ("torch._pack_padded_sequence",)),
    ("op", "stack", call(EF._pad_packed_sequence), ("torch._pad_packed_sequence",)),
]
