"""Recurrent layers under trace(): ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (their fused
``torch.rnn_tanh``/``torch.lstm``/``torch.gru`` calls unrolled by the engine into gates per
time step), the cells, packed sequences, and d2l-style RNN language models (chapter 9).

torch is the oracle: every value and gradient must agree, every call must be mapped, and
outputs and ``.grad``s must equal those of a plain run.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from recorder_helpers import assert_clean
from recorder_helpers import assert_same as _same, plain_and_traced as _run
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace


def _layer_program(cls, batch_first=False, packed=False, state=True, **kw):
    def program():
        layer = cls(3, 4, batch_first=batch_first, **kw)
        dirs = 2 if layer.bidirectional else 1
        hout = getattr(layer, "proj_size", 0) or layer.hidden_size
        x = torch.randn((2, 5, 3) if batch_first else (5, 2, 3), requires_grad=True)
        hx = None
        if state:
            h0 = torch.randn(layer.num_layers * dirs, 2, hout, requires_grad=True)
            hx = (h0, torch.randn(layer.num_layers * dirs, 2, 4)) if cls is nn.LSTM else h0
        inp = nn.utils.rnn.pack_padded_sequence(x, torch.tensor([5, 3]), batch_first) \
            if packed else x
        out, h = layer(inp, hx)
        if packed:
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first)
        hs = h if isinstance(h, tuple) else (h,)
        loss = (out * out).sum() + sum((k * k.detach().sign()).sum() for k in hs)
        loss.backward()
        grads = [x.grad] + [p.grad for p in layer.parameters()]
        return [out.detach(), *[k.detach() for k in hs], *grads]
    return program


CASES = [
    (nn.LSTM, {}), (nn.LSTM, {"num_layers": 2, "bidirectional": True}),
    (nn.LSTM, {"bias": False, "batch_first": True}), (nn.LSTM, {"proj_size": 2, "num_layers": 2}),
    (nn.GRU, {"num_layers": 2}), (nn.GRU, {"bidirectional": True, "bias": False}),
    (nn.RNN, {"num_layers": 2, "batch_first": True}),
    (nn.RNN, {"nonlinearity": "relu", "bidirectional": True}),
]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("cls, kw", CASES, ids=[f"{c.__name__}-{kw}" for c, kw in CASES])
@pytest.mark.parametrize("state", [True, False], ids=["hx", "no-hx"])
def test_layers_agree_with_torch(cls, kw, state):
    kw = dict(kw)
    batch_first = kw.pop("batch_first", False)
    plain, traced, rep = _run(_layer_program(cls, batch_first, state=state, **kw))
    assert_clean(rep)
    _same(plain, traced)
    assert rep.leaves and all(leaf.status == "agree" for leaf in rep.leaves)


@pytest.mark.parametrize("cls, kw", [(nn.LSTM, {"num_layers": 2, "bidirectional": True}),
                                     (nn.GRU, {"batch_first": True}), (nn.RNN, {"bidirectional": True})])
def test_packed_sequences(cls, kw):
    kw = dict(kw)
    batch_first = kw.pop("batch_first", False)
    plain, traced, rep = _run(_layer_program(cls, batch_first, packed=True, **kw))
    assert_clean(rep)
    _same(plain, traced)
    names = {n.torch_op for n in rep.nodes}
    assert {"torch._pack_padded_sequence", "torch._pad_packed_sequence"} <= names


def test_lstm_gates_are_drawn_per_time_step():
    with trace(session=Session()) as rep:
        lstm = nn.LSTM(3, 4)
        out, (h, c) = lstm(torch.randn(6, 2, 3))
        out.sum().backward()
    assert_clean(rep)
    inside = [n for n in rep.nodes if n.torch_op == "torch.lstm"]
    ops = [n.op for n in inside]
    assert ops.count("sigmoid") == 3 * 6 and ops.count("tanh") == 2 * 6  # i, f, o; g, tanh(c)
    assert len(rep.leaves) == 4 and all(leaf.status == "agree" for leaf in rep.leaves)


def test_cells():
    def program():
        cells = [nn.LSTMCell(3, 4), nn.GRUCell(3, 4), nn.RNNCell(3, 4),
                 nn.RNNCell(3, 4, bias=False, nonlinearity="relu"), nn.LSTMCell(3, 4, bias=False)]
        x = torch.randn(5, 2, 3, requires_grad=True)
        total = 0
        for cell in cells:
            state = None
            for t in range(x.shape[0]):  # a loop over time steps, as in d2l
                state = cell(x[t], state)
            h = state[0] * state[1] if isinstance(state, tuple) else state
            total = total + (h * h).sum()
        total.backward()
        return [total.detach(), x.grad] + [p.grad for c in cells for p in c.parameters()]
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)
    assert {"torch.lstm_cell", "torch.gru_cell", "torch.rnn_tanh_cell",
            "torch.rnn_relu_cell"} <= {n.torch_op for n in rep.nodes}


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("opts", [{}, {"batch_first": True}, {"bidirectional": True}, {"packed": True},
                                  {"batch_first": True, "packed": True}], ids=str)
def test_dropout_between_layers_uses_torchs_masks(cls, opts):
    """Three layers with dropout 0.5 in training mode: torch drops each layer's output but the
    last's with masks from its generator (time-major, also for batch_first), replayed here."""
    _layer_program(cls, num_layers=3, dropout=0.5, **opts)


def test_dropout_between_layers_draws_nothing_in_eval():
    def program():
        lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5).eval()
        x = torch.randn(4, 2, 3, requires_grad=True)
        lstm(x)[0].sum().backward()
        return x.grad, torch.rand(2)
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


def test_wrong_gate_rule_is_located(monkeypatch):
    """A deliberately wrong sigmoid VJP inside the unrolled LSTM is caught at a gate."""
    sigmoid = REGISTRY["sigmoid"]
    monkeypatch.setattr(sigmoid, "vjps", (lambda g, ans, a: 2 * g * ans * (1 - ans),))
    with trace(session=Session()) as rep:
        lstm = nn.LSTM(3, 4)
        x = torch.randn(3, 2, 3, requires_grad=True)
        lstm(x)[0].sum().backward()
    assert not rep.ok
    assert any(leaf.status == "differ" for leaf in rep.leaves)
    first = rep.node(rep.first_divergence)
    assert first.op == "sigmoid" and first.torch_op == "torch.lstm"


# ----------------------------------------------------------------------------- d2l chapter 9
class RNNModel(nn.Module):
    """d2l's concise RNN language model (``RNNModel``), one-hot inputs via ``torch.eye``."""

    def __init__(self, rnn_layer, vocab_size):
        super().__init__()
        self.rnn = rnn_layer
        self.vocab_size = vocab_size
        self.num_hiddens = self.rnn.hidden_size
        self.num_directions = 2 if self.rnn.bidirectional else 1
        self.linear = nn.Linear(self.num_hiddens * self.num_directions, self.vocab_size)

    def forward(self, inputs, state):
        X = torch.eye(self.vocab_size)[inputs.T.long()]
        Y, state = self.rnn(X, state)
        output = self.linear(Y.reshape((-1, Y.shape[-1])))
        return output, state

    def begin_state(self, batch_size=1):
        shape = (self.num_directions * self.rnn.num_layers, batch_size, self.num_hiddens)
        if not isinstance(self.rnn, nn.LSTM):
            return torch.zeros(shape)
        return torch.zeros(shape), torch.zeros(shape)


def grad_clipping(net, theta):
    params = [p for p in net.parameters() if p.requires_grad]
    norm = torch.sqrt(sum(torch.sum((p.grad ** 2)) for p in params))
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm


def _train_lm(make_layer, vocab_size=28, steps=3, batch_size=2, num_steps=5):
    net = RNNModel(make_layer(vocab_size), vocab_size)
    updater = torch.optim.SGD(net.parameters(), lr=1.0)
    loss = nn.CrossEntropyLoss()
    corpus = torch.randint(0, vocab_size, (steps, batch_size, num_steps + 1))
    state, losses = None, []
    for i in range(steps):
        X, Y = corpus[i, :, :-1], corpus[i, :, 1:]
        if state is None:
            state = net.begin_state(batch_size=X.shape[0])
        elif isinstance(state, tuple):
            for s in state:
                s.detach_()
        else:
            state.detach_()
        y = Y.T.reshape(-1)
        y_hat, state = net(X, state)
        l = loss(y_hat, y.long()).mean()
        updater.zero_grad()
        l.backward()
        grad_clipping(net, 1)
        updater.step()
        losses.append(l.item())
    with torch.no_grad():  # d2l's predict_ch8: feed a prefix, then predict
        state = net.begin_state(batch_size=1)
        outputs = [3]
        for _ in range(4):
            y, state = net(torch.tensor([[outputs[-1]]]), state)
            outputs.append(int(y.argmax(dim=1).reshape(1)))
    return [torch.tensor(losses), *[p.detach().clone() for p in net.parameters()],
            torch.tensor(outputs)]


LANGUAGE_MODELS = {
    "rnn": lambda v: nn.RNN(v, 32),
    "gru": lambda v: nn.GRU(v, 32),
    "lstm": lambda v: nn.LSTM(v, 32),
    "deep-lstm": lambda v: nn.LSTM(v, 32, num_layers=2),
    "birnn": lambda v: nn.LSTM(v, 32, bidirectional=True),
}


@pytest.mark.parametrize("name", list(LANGUAGE_MODELS))
def test_d2l_language_model(name):
    plain, traced, rep = _run(lambda: _train_lm(LANGUAGE_MODELS[name]))
    assert_clean(rep)
    _same(plain, traced)
    assert len(rep.backward_calls) == 3
    assert all(c.status == "agree" for c in rep.backward_calls)
    assert all(math.isfinite(v) for v in plain[0].tolist())
