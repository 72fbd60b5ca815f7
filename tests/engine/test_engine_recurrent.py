"""The recurrent composites (``lstm``, ``gru``, ``rnn_tanh``/``rnn_relu``, on padded and
packed input, the cells, ``_pack_padded_sequence``/``_pad_packed_sequence``) against torch:
values and gradients of every weight, input and initial state in float32 and float64,
second order through a tiny RNN, the gates as nodes, and the errors.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gradmagic.engine as ge
from gradmagic.engine import functional as EF

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}
KIND = {nn.LSTM: "lstm", nn.GRU: "gru"}


def twin(t: torch.Tensor) -> ge.Tensor:
    return ge.Tensor(t.detach().numpy().copy(), requires_grad=t.requires_grad)


def close(e, t, dtype) -> None:
    got = e.data if isinstance(e, ge.Tensor) else e
    np.testing.assert_allclose(got, t.detach().numpy(), **TOL[dtype])


def _kind(layer) -> str:
    return KIND.get(type(layer)) or ("rnn_" + layer.nonlinearity)


def _state(layer, batch, dtype, requires_grad=True):
    dirs = 2 if layer.bidirectional else 1
    hout = getattr(layer, "proj_size", 0) or layer.hidden_size
    h = torch.randn(layer.num_layers * dirs, batch, hout, dtype=dtype, requires_grad=requires_grad)
    if isinstance(layer, nn.LSTM):
        return h, torch.randn(layer.num_layers * dirs, batch, layer.hidden_size, dtype=dtype,
                              requires_grad=requires_grad)
    return h


def _compare(layer, x, hx, dtype, batch_sizes=None) -> None:
    """Run torch's layer and the engine on the same weights; compare outputs and gradients."""
    kind, ws = _kind(layer), [twin(w) for w in layer._flat_weights]
    hxs = hx if isinstance(hx, tuple) else (hx,)
    ehx = tuple(twin(h) for h in hxs)
    ex = twin(x)
    if batch_sizes is None:
        out = layer(x, hx)
        eout = getattr(EF, kind)(ex, ehx if len(ehx) > 1 else ehx[0], ws, layer.bias,
                                 layer.num_layers, 0.0, True, layer.bidirectional,
                                 layer.batch_first)
    else:
        packed = nn.utils.rnn.PackedSequence(x, batch_sizes)
        out = layer(packed, hx)
        out = (out[0].data, out[1])
        eout = getattr(EF, kind)(ex, ge.Tensor(batch_sizes.numpy()), ehx if len(ehx) > 1
                                 else ehx[0], ws, layer.bias, layer.num_layers, 0.0, True,
                                 layer.bidirectional)
    touts = (out[0], *out[1]) if isinstance(out[1], tuple) else tuple(out)
    assert len(eout) == len(touts)
    for e, t in zip(eout, touts):
        assert e.shape == tuple(t.shape) and e.dtype == t.detach().numpy().dtype
        close(e, t, dtype)
    seeds = [torch.randn_like(t) for t in touts]
    torch.autograd.backward(touts, seeds)
    sum((e * ge.Tensor(s.numpy())).sum() for e, s in zip(eout, seeds)).backward()
    for e, t in zip([ex, *ehx, *ws], [x, *hxs, *layer._flat_weights]):
        close(e.grad, t.grad, dtype)


LAYERS = {
    "lstm": lambda: nn.LSTM(3, 4),
    "lstm-2-bi": lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True),
    "lstm-nobias-bf": lambda: nn.LSTM(3, 4, bias=False, batch_first=True),
    "lstm-proj": lambda: nn.LSTM(3, 5, num_layers=2, proj_size=2),
    "lstm-proj-bi-nobias": lambda: nn.LSTM(3, 5, bidirectional=True, proj_size=3, bias=False),
    "gru": lambda: nn.GRU(3, 4),
    "gru-3-bi-bf": lambda: nn.GRU(3, 4, num_layers=3, bidirectional=True, batch_first=True),
    "gru-nobias": lambda: nn.GRU(3, 4, bias=False),
    "rnn-tanh-2": lambda: nn.RNN(3, 4, num_layers=2),
    "rnn-relu-bi": lambda: nn.RNN(3, 4, nonlinearity="relu", bidirectional=True),
}


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_match_torch(name, dtype):
    torch.manual_seed(0)
    layer = LAYERS[name]().to(dtype)
    x = torch.randn((2, 5, 3) if layer.batch_first else (5, 2, 3), dtype=dtype, requires_grad=True)
    _compare(layer, x, _state(layer, 2, dtype), dtype)


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["lstm-2-bi", "lstm-proj", "gru-nobias", "rnn-relu-bi"])
def test_packed_layers_match_torch(name, dtype):
    torch.manual_seed(1)
    layer = LAYERS[name]().to(dtype)
    batch_sizes = torch.tensor([3, 3, 2, 1, 1])  # lengths 5, 3, 2
    x = torch.randn(int(batch_sizes.sum()), 3, dtype=dtype, requires_grad=True)
    _compare(layer, x, _state(layer, 3, dtype), dtype, batch_sizes)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch(cell, bias, dtype):
    torch.manual_seed(2)
    x = torch.randn(3, 4, dtype=dtype, requires_grad=True)
    gates = {"lstm": 4, "gru": 3}.get(cell, 1)
    w_ih = torch.randn(gates * 5, 4, dtype=dtype, requires_grad=True)
    w_hh = torch.randn(gates * 5, 5, dtype=dtype, requires_grad=True)
    bs = [torch.randn(gates * 5, dtype=dtype, requires_grad=True) for _ in range(2)] if bias \
        else [None, None]
    h = torch.randn(3, 5, dtype=dtype, requires_grad=True)
    state = (h, torch.randn(3, 5, dtype=dtype, requires_grad=True)) if cell == "lstm" else h
    tin = [x, *(state if cell == "lstm" else (state,)), w_ih, w_hh, *[b for b in bs if b is not None]]
    e = {id(t): twin(t) for t in tin}
    estate = tuple(e[id(s)] for s in state) if cell == "lstm" else e[id(state)]
    fn = cell + "_cell"
    out = getattr(torch, fn)(x, state, w_ih, w_hh, *bs)
    eout = getattr(EF, fn)(e[id(x)], estate, e[id(w_ih)], e[id(w_hh)],
                           *[None if b is None else e[id(b)] for b in bs])
    outs, eouts = (out, eout) if cell == "lstm" else ((out,), (eout,))
    for a, b in zip(eouts, outs):
        close(a, b, dtype)
    sum((o * o).sum() for o in outs).backward()
    sum((o * o).sum() for o in eouts).backward()
    for t in tin:
        close(e[id(t)].grad, t.grad, dtype)


def test_lstm_gates_are_nodes_in_torch_order():
    """A step: linear(h, W_hh, b_hh) + (x W_ihᵀ + b_ih)[t] → i, f, g, o → c, h."""
    torch.manual_seed(3)
    lstm = nn.LSTM(2, 3).double()
    w = [twin(p) for p in lstm._flat_weights]
    x = ge.Tensor(np.random.default_rng(0).normal(size=(1, 1, 2)))  # one step from h0 = 0
    h0 = ge.zeros(1, 1, 3, dtype=ge.float64)
    out, h, c = EF.lstm(x, (h0, h0), w, True, 1, 0.0, False, False, False)
    c_last = c.grad_fn.parents[0]  # stack of the final c: the add f·c + i·g
    assert c_last.name == "AddBackward0"
    fc, ig = c_last.parents
    assert fc.name == ig.name == "MulBackward0"
    i, g = ig.parents
    assert (i.name, g.name) == ("SigmoidBackward0", "TanhBackward0")
    # i is the first quarter of the gates: torch's order i, f, g, o
    assert i.parents[0].params["index"] == (Ellipsis, slice(0, 3))
    assert g.parents[0].params["index"] == (Ellipsis, slice(6, 9))
    # the same numbers as torch's gates, computed by hand
    W_ih, W_hh, b_ih, b_hh = (p.detach() for p in lstm._flat_weights)
    gates = x.data[0] @ W_ih.numpy().T + b_ih.numpy() + b_hh.numpy()
    np.testing.assert_allclose(i.ans, 1 / (1 + np.exp(-gates[:, :3])))



@pytest.mark.parametrize("batch_first", [False, True])
def test_each_layer_projects_its_whole_input_once(batch_first):
    """x W_ihᵀ + b_ih of all steps is one linear node per layer (torch's CPU layers), each
    step's part an ``unbind`` of it; h W_hhᵀ + b_hh stays one node per step."""
    torch.manual_seed(4)
    lstm = nn.LSTM(2, 3, num_layers=2, batch_first=batch_first).double()
    w = [twin(p) for p in lstm._flat_weights]
    x = ge.Tensor(np.random.default_rng(1).normal(size=(4, 2, 2)), requires_grad=True)
    h0 = ge.zeros(2, 4 if batch_first else 2, 3, dtype=ge.float64)
    out, h, c = EF.lstm(x, (h0, h0), w, True, 2, 0.0, True, False, batch_first)
    seen, stack, projections, steps = set(), [out.grad_fn], {}, 0
    while stack:
        v = stack.pop()
        if v is None or id(v) in seen or not hasattr(v, "parents"):
            continue
        seen.add(id(v))
        if v.op == "unbind":
            proj = v.parents[0]
            assert proj.op == "linear" and v.params["axis"] == (1 if batch_first else 0)
            projections[id(proj)] = proj
            steps += 1
        stack.extend(v.parents)
    assert len(projections) == 2 and steps == 2 * (2 if batch_first else 4)  # layers × steps
    first = [p for p in projections.values() if p.parents[0] is x]
    assert len(first) == 1 and first[0].parents[1] is w[0] and first[0].parents[2] is w[2]

def test_gru_new_gate_resets_the_hidden_part_with_its_bias():
    """n = tanh(W_in x + b_in + r·(W_hn h + b_hn)): b_hn is inside the reset (torch's GRU)."""
    torch.manual_seed(4)
    gru = nn.GRU(2, 3).double()
    with torch.no_grad():
        gru.bias_hh_l0[6:] = 5.0  # b_hn large: where r ≈ 0 it must vanish
        gru.bias_hh_l0[:3] = -50.0  # r = σ(−50 + …) ≈ 0
    x, h0 = torch.randn(2, 1, 2, dtype=torch.float64), torch.randn(1, 1, 3, dtype=torch.float64)
    out, h = EF.gru(twin(x), twin(h0), [twin(p) for p in gru._flat_weights], True, 1, 0.0, False,
                    False, False)
    close(out, gru(x, h0)[0], torch.float64)


def test_second_order_through_a_tiny_rnn():
    """Hessian-vector products of a 2-step RNN and LSTM through create_graph, against torch."""
    torch.manual_seed(5)
    for layer in (nn.RNN(2, 2).double(), nn.LSTM(2, 2).double(), nn.GRU(2, 2).double()):
        x = torch.randn(2, 1, 2, dtype=torch.float64, requires_grad=True)
        hx = _state(layer, 1, torch.float64, requires_grad=False)
        params = list(layer._flat_weights)
        ex, ws = twin(x), [twin(p) for p in params]
        ehx = tuple(twin(h) for h in hx) if isinstance(hx, tuple) else twin(hx)
        out = layer(x, hx)[0]
        eout = getattr(EF, _kind(layer))(ex, ehx, ws, True, 1, 0.0, True, False, False)[0]
        loss, eloss = (out ** 3).sum(), (eout ** 3).sum()
        gs = torch.autograd.grad(loss, [x, *params], create_graph=True)
        egs = ge.grad(eloss, [ex, *ws], create_graph=True)
        v = [torch.randn_like(g) for g in gs]
        hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(gs, v)), [x, *params])
        ehv = ge.grad(sum((g * ge.Tensor(u.numpy())).sum() for g, u in zip(egs, v)), [ex, *ws])
        for a, b in zip(egs + ehv, list(gs) + list(hv)):
            close(a, b, torch.float64)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("total_length", [0, 7])
def test_pack_and_pad_match_torch(batch_first, total_length):
    torch.manual_seed(6)
    x = torch.randn((3, 5, 2) if batch_first else (5, 3, 2), dtype=torch.float64,
                    requires_grad=True)
    lengths = torch.tensor([5, 3, 1])
    data, sizes = torch._pack_padded_sequence(x, lengths, batch_first)
    ex = twin(x)
    edata, esizes = EF._pack_padded_sequence(ex, ge.Tensor(lengths.numpy()), batch_first)
    close(edata, data, torch.float64)
    assert esizes.data.tolist() == sizes.tolist() and esizes.dtype == np.int64
    length = max(total_length, int(sizes.numel()))
    padded, lens = torch._pad_packed_sequence(data * 2, sizes, batch_first, -1.5, length)
    epadded, elens = EF._pad_packed_sequence(edata * 2, esizes, batch_first, -1.5, length)
    close(epadded, padded, torch.float64)
    assert elens.data.tolist() == lens.tolist()
    seed = torch.randn_like(padded)
    padded.backward(seed)
    epadded.backward(ge.Tensor(seed.numpy()))
    close(ex.grad, x.grad, torch.float64)


def test_errors():
    x = ge.zeros(3, 2, 1)
    w = [ge.zeros(4, 1), ge.zeros(4, 1)]
    with pytest.raises(NotImplementedError, match="dropout"):
        EF.lstm(x, (ge.zeros(2, 2, 1), ge.zeros(2, 2, 1)), w * 2, False, 2, 0.5, True, False, False)
    EF.lstm(x, (ge.zeros(2, 2, 1), ge.zeros(2, 2, 1)), w * 2, False, 2, 0.5, False, False, False)
    with pytest.raises(RuntimeError, match="parameters"):
        EF.lstm(x, (ge.zeros(1, 2, 1), ge.zeros(1, 2, 1)), w[:1], False, 1, 0.0, True, False, False)
    with pytest.raises(RuntimeError, match="input must have 3 dimensions"):
        EF.gru(ge.zeros(3, 2), ge.zeros(1, 2, 1), w, False, 1, 0.0, True, False, False)
    with pytest.raises(RuntimeError, match="decreasing order"):
        EF._pack_padded_sequence(x, ge.tensor([1, 3]), False)
    with pytest.raises(RuntimeError, match="greater than 0"):
        EF._pack_padded_sequence(x, ge.tensor([3, 0]), False)


def _lstm_run(seed, dtype, batch_first=False):
    rng = np.random.default_rng(seed)
    T, B, I, H = 4, 3, 5, 6
    ws = [ge.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
          for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,), (4 * H, H), (4 * H, H),
                    (4 * H,), (4 * H,))]
    x = ge.tensor(rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype),
                  requires_grad=True)
    h0, c0 = (ge.tensor(rng.standard_normal((2, B, H)).astype(dtype), requires_grad=True)
              for _ in range(2))
    out, h, c = ge.lstm(x, (h0, c0), ws, True, 2, 0.0, True, False, batch_first)
    return out, h, c, [x, h0, c0, *ws]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_in_scratch_buffers_is_the_unrolled_graph_exactly(dtype, batch_first, monkeypatch):
    """The LSTM steps computed in place into scratch buffers (``_LstmBuffers``) give the
    very values and gradients of the op-by-op graph, and a graph still alive keeps its
    buffers: the next call takes others, so the first graph's values stay as they were."""
    from gradmagic.engine.ops import recurrent
    runs = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(recurrent._LstmBuffers, "fits", staticmethod(lambda *a: False))
        out, h, c, leaves = _lstm_run(0, dtype, batch_first)
        kept = [n.ans.copy() for n in _nodes(out) if n.ans is not None]
        other = _lstm_run(1, dtype, batch_first)[0]  # a second call while the first is alive
        assert not np.array_equal(other.data, out.data)
        assert all(np.array_equal(k, n.ans) for k, n in
                   zip(kept, [n for n in _nodes(out) if n.ans is not None]))
        (out * out).sum().backward()
        runs.append([out.data, h.data, c.data] + [t.grad.data for t in leaves])
    for a, b in zip(*runs):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def _nodes(t):
    seen, stack, out = set(), [t.grad_fn], []
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen or not isinstance(n, ge.Node):
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(n.parents)
    return sorted(out, key=lambda n: n.seq)


def test_scratch_buffers_are_reused_only_once_free():
    from gradmagic.engine import scratch
    first = scratch.take((3, 7), np.dtype(np.float64))
    view, key = first[1:], id(first)
    del first
    assert scratch.take((3, 7), np.dtype(np.float64)) is not view.base
    del view
    assert id(scratch.take((3, 7), np.dtype(np.float64))) == key
    small = scratch.big((2,), np.float32, zero=True)  # under BIG: plain NumPy
    assert small.tolist() == [0.0, 0.0]
