"""Normalization layers, embeddings and attention under trace(): ``nn.BatchNorm*`` (training
and eval, running statistics), ``nn.LayerNorm``, ``nn.GroupNorm``, ``nn.InstanceNorm*``,
``nn.LocalResponseNorm``, ``nn.Embedding``/``nn.EmbeddingBag``, ``F.scaled_dot_product_attention``,
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (its ``F.multi_head_attention_forward``
recomputed by the engine as a composite).

torch is the oracle: every value and gradient must agree, every call must be mapped, and
outputs, ``.grad``s and running statistics must equal those of a plain run.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recorder_helpers import assert_clean
from recorder_helpers import assert_same as _same, plain_and_traced as _run
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace


def _step(model, *inputs, loss=lambda y: y.pow(3).mean()):
    """One forward and backward: (output, every parameter's .grad, every buffer)."""
    out = model(*inputs)
    y = out[0] if isinstance(out, tuple) else out
    loss(y).backward()
    return (out, [p.grad for p in model.parameters()], [b.clone() for b in model.buffers()])


# ----------------------------------------------------------------------------- transformer
def _encoder_step(batch_first=True, norm_first=False, mask=False):
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0,
                                       batch_first=batch_first, norm_first=norm_first)
    layer.train()
    x = torch.randn((2, 5, 16) if batch_first else (5, 2, 16), requires_grad=True)
    kw = {}
    if mask:
        kw = dict(src_mask=nn.Transformer.generate_square_subsequent_mask(5),
                  src_key_padding_mask=torch.tensor([[0.0] * 5, [0.0] * 3 + [-torch.inf] * 2]))
    out = layer(x, **kw)
    out.pow(3).mean().backward()  # (not Σ out²: a layer norm's output makes that nearly constant)
    return out, [p.grad for p in layer.parameters()], x.grad


@pytest.mark.parametrize("opts", [{}, {"batch_first": False}, {"norm_first": True}, {"mask": True}],
                         ids=["batch_first", "seq_first", "norm_first", "masks"])
def test_transformer_encoder_layer_training_step(opts):
    """d_model 16, 4 heads, sequence 5, batch 2, no dropout, training mode."""
    plain, traced, rep = _run(lambda: _encoder_step(**opts))
    assert_clean(rep)
    _same(plain, traced)
    names = {n.torch_op for n in rep.nodes}
    assert "torch.nn.functional.multi_head_attention_forward" in names
    assert "torch.nn.functional.layer_norm" in names
    assert all(leaf.status == "agree" for leaf in rep.leaves if leaf.status != "no grad")


def test_multihead_attention_weights_and_key_padding_mask():
    def program():
        mha = nn.MultiheadAttention(8, 2, batch_first=True)
        q = torch.randn(2, 3, 8, requires_grad=True)
        kv = torch.randn(2, 4, 8, requires_grad=True)
        pad = torch.tensor([[False, False, False, True], [False, True, False, False]])
        out, weights = mha(q, kv, kv, key_padding_mask=pad)
        out2, per_head = mha(q, q, q, need_weights=True, average_attn_weights=False)
        ((out * out).sum() + weights.pow(2).sum() + out2.sum() + per_head.sum()).backward()
        return out, weights, per_head, q.grad, kv.grad, [p.grad for p in mha.parameters()]
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


# ----------------------------------------------------------------------------- normalizations
def test_batch_norm_training_then_eval_keeps_the_running_statistics():
    def program():
        bn = nn.BatchNorm2d(3)
        bn1 = nn.BatchNorm1d(4, momentum=None)
        x = torch.randn(2, 3, 4, 4, requires_grad=True)
        outs = []
        for _ in range(2):
            outs.append(_step(bn, x))
            outs.append(_step(bn1, torch.randn(5, 4)))
        bn.eval()
        outs.append(_step(bn, x))
        return outs, x.grad, bn.running_mean.clone(), bn.running_var.clone(), bn1.running_var.clone()
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)
    assert {n.label for n in rep.nodes if n.op in ("batch_norm", "batch_norm_eval")} == \
        {"NativeBatchNormBackward0"}


def test_other_norm_layers():
    def program():
        layers = [nn.LayerNorm([4, 4]), nn.GroupNorm(3, 6), nn.InstanceNorm2d(6, affine=True),
                  nn.InstanceNorm2d(6, track_running_stats=True), nn.LocalResponseNorm(3)]
        x = torch.randn(2, 6, 4, 4, requires_grad=True)
        outs = [_step(layer, x) for layer in layers]
        layers[3].eval()
        outs.append(_step(layers[3], x))
        return outs, x.grad
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


def test_torch_spellings():
    def program():
        x = torch.randn(3, 4, 5, requires_grad=True)
        w, b = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
        rm, rv = torch.zeros(4), torch.ones(4)
        y = (torch.batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5, False)
             + torch.instance_norm(x, w, b, None, None, True, 0.1, 1e-5, False)
             + torch.group_norm(x, 2, w, b, 1e-5, False)
             + torch.layer_norm(x, (5,), None, None, 1e-5, False))
        table = torch.randn(6, 5, requires_grad=True)
        e = torch.embedding(table, torch.tensor([[0, 2, 5]]), 2)
        (y.pow(2).sum() + (e * y[0, :1]).sum()).backward()
        return y, x.grad, w.grad, b.grad, rm, rv, table.grad
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


# ----------------------------------------------------------------------------- embeddings
def test_embeddings():
    def program():
        emb = nn.Embedding(10, 4, padding_idx=0)
        capped = nn.Embedding(10, 4, max_norm=1.0)
        bags = [nn.EmbeddingBag(10, 4, mode=m) for m in ("sum", "mean", "max")]
        idx = torch.tensor([[0, 3, 3, 7], [1, 0, 9, 2]])
        outs = [_step(emb, idx), _step(capped, idx)]
        flat, offsets = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.tensor([0, 4, 4])
        outs += [_step(bag, flat, offsets) for bag in bags] + [_step(bags[0], idx)]
        w = torch.rand(8, requires_grad=True)
        out = F.embedding_bag(flat, bags[0].weight, offsets, mode="sum", per_sample_weights=w)
        out.sum().backward()
        return outs, capped.weight.detach().clone(), w.grad
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)
    assert not traced[0][0][1][0][0].any()  # padding row: no gradient


# ----------------------------------------------------------------------------- attention
def test_scaled_dot_product_attention():
    def program():
        q = torch.randn(2, 2, 3, 4, requires_grad=True)
        k = torch.randn(2, 2, 5, 4, requires_grad=True)
        v = torch.randn(2, 2, 5, 4, requires_grad=True)
        keep = torch.rand(3, 5) > 0.3
        keep[:, 0] = True
        bias = torch.randn(3, 5, requires_grad=True)
        outs = [F.scaled_dot_product_attention(q, k, v),
                F.scaled_dot_product_attention(q, k, v, attn_mask=keep),
                F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.5),
                F.scaled_dot_product_attention(q, q, q, is_causal=True)]
        sum(o.pow(2).sum() for o in outs).backward()
        return outs, q.grad, k.grad, v.grad, bias.grad
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attention_dropout_is_checked_with_torchs_mask(dtype):
    """torch draws the attention weights' dropout mask inside the fused call; the recorder
    replays its generator, so the engine drops the very same weights: checked, and the user's
    random numbers after the call are those of a plain run."""
    def program():
        q = torch.randn(2, 3, 4, dtype=dtype, requires_grad=True)
        out = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
        out.sum().backward()
        return out, q.grad, torch.rand(3)
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


@pytest.mark.parametrize("layer, shape", [
    (lambda: nn.Dropout1d(0.5), (4, 3, 5)), (lambda: nn.Dropout1d(0.3), (3, 5)),  # (C, L) unbatched
    (lambda: nn.Dropout2d(0.4), (2, 3, 4, 4)), (lambda: nn.Dropout3d(0.5), (3, 2, 2, 2)),  # (C, D, H, W)
    (lambda: nn.Dropout3d(0.25), (2, 3, 2, 2, 2)), (lambda: nn.Dropout2d(1.0), (2, 3, 4, 4)),
    (lambda: nn.Dropout2d(0.4).eval(), (2, 3, 4, 4)), (lambda: nn.Dropout1d(0.4).eval(), (3, 5))],
    ids=["1d", "1d-unbatched", "2d", "3d-unbatched", "3d", "2d-p1", "2d-eval", "1d-unbatched-eval"])
def test_channel_dropout_uses_torchs_mask(layer, shape):
    """``nn.Dropout1d/2d/3d`` zero whole channels: one mask value per sample and channel, drawn
    as torch draws it (``make_feature_noise``), replayed here."""
    def program():
        drop = layer()
        x = torch.randn(shape, requires_grad=True)
        y = drop(x * 2)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        return y, x.grad, torch.rand(2)
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_dropout_in_training(need_weights):
    def program():
        m = nn.MultiheadAttention(8, 2, dropout=0.3)
        x = torch.randn(4, 2, 8, requires_grad=True)
        out, weights = m(x, x, x, need_weights=need_weights)
        out.pow(2).sum().backward()
        return out, weights, x.grad, [p.grad for p in m.parameters()]
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


def test_transformer_encoder_with_torchs_default_dropout():
    """``nn.TransformerEncoder`` as a learner builds it (dropout 0.1, two layers copied by
    ``copy.deepcopy``, a causal mask), three AdamW steps: every value and gradient checked."""
    def program():
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
        enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        opt = torch.optim.AdamW(enc.parameters(), lr=1e-3)
        src, mask = torch.randn(3, 5, 16), nn.Transformer.generate_square_subsequent_mask(5)
        for _ in range(3):
            loss = enc(src, mask=mask, is_causal=True).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss, [p.detach().clone() for p in enc.parameters()]
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)
    assert rep.coverage["grads"]["unchecked"] == 0


def test_wrong_layer_norm_rule_is_located(monkeypatch):
    """A deliberately wrong layer-norm VJP inside a transformer layer is caught there."""
    op = REGISTRY["layer_norm"]
    good = op.vjps
    monkeypatch.setattr(op, "vjps", (lambda *a, **k: good[0](*a, **k) * 1.5, *good[1:]))
    torch.manual_seed(0)
    with trace(session=Session()) as rep:
        _encoder_step()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "layer_norm" and first.label == "NativeLayerNormBackward0"


def test_wrong_attention_composite_is_located(monkeypatch):
    """A wrong softmax rule: the divergence is found inside multi-head attention's composite."""
    op = REGISTRY["softmax"]
    monkeypatch.setattr(op, "vjps", (lambda g, ans, a, axis: ans * g,))
    torch.manual_seed(0)
    with trace(session=Session()) as rep:
        _encoder_step()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "softmax"
    assert first.torch_op == "torch.nn.functional.multi_head_attention_forward"


def test_running_statistics_of_modules_built_before_the_trace():
    """torch's batch norm updates its running statistics without bumping ``_version``: the
    engine mirrors the update (skipping the first one, which the twins already hold), so
    eval-mode calls are checked on the right statistics, in a fresh session each time."""
    torch.manual_seed(0)
    bn, inorm = nn.BatchNorm2d(3), nn.InstanceNorm1d(3, track_running_stats=True)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    bn(x), inorm(x[:, :, 0])
    for _ in range(2):
        with trace(session=Session()) as rep:
            for _ in range(2):
                bn(x).pow(3).mean().backward()
                inorm(x[:, :, 0]).pow(3).mean().backward()
            bn.eval(), inorm.eval()
            bn(x).pow(3).mean().backward()
            inorm(x[:, :, 0]).pow(3).mean().backward()
            bn.train(), inorm.train()
        assert_clean(rep)
        evals = [n for n in rep.nodes if n.op == "batch_norm_eval"]
        assert len(evals) == 2 and all(n.status == "agree" for n in evals)


def test_embedding_bag_with_create_graph():
    """torch's EmbeddingBagBackward0 has no double backward: its gradient carries no graph."""
    def program():
        table = torch.randn(3, 2, requires_grad=True)
        w = torch.rand(4, requires_grad=True)
        grads = []
        for mode in ("sum", "mean", "max"):
            out = F.embedding_bag(torch.tensor([0, 2, 1, 1]), table, torch.tensor([0, 1]), mode=mode,
                                  per_sample_weights=w if mode == "sum" else None)
            grads.append(torch.autograd.grad(out.pow(2).sum(), [table], create_graph=True)[0])
        return grads
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)


class _BasicBlock(nn.Module):
    """ResNet's basic block: conv-BN-ReLU-conv-BN, plus the identity, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + x)


def test_resnet_block_training_steps_then_eval():
    from gradmagic.recorder.mapping import lookup
    if lookup(F.conv2d).kind != "op":
        pytest.skip("the conv family has no rule for F.conv2d yet")

    def program():
        block = _BasicBlock(3)
        opt = torch.optim.SGD(block.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(2, 3, 5, 5)
        target = torch.randn(2, 3, 5, 5)
        for _ in range(2):
            opt.zero_grad()
            F.mse_loss(block(x), target).backward()
            opt.step()
        block.eval()
        return block(x), [p.detach().clone() for p in block.parameters()], \
            [b.clone() for b in block.buffers()]
    plain, traced, rep = _run(program)
    assert_clean(rep)
    _same(plain, traced)
    assert any(n.op == "batch_norm_eval" and n.status == "agree" for n in rep.nodes)


def test_transformer_encoder_eval_takes_no_fused_path_under_the_recorder():
    """In eval mode under no_grad, nn.TransformerEncoderLayer would call the fused
    ``torch._transformer_encoder_layer_fwd``; under a TorchFunctionMode torch skips that
    fast path ("some Tensor argument has_torch_function"), so the recorder still sees
    ``F.multi_head_attention_forward`` and checks every value. (So a traced run's values
    differ from a plain run's by float32 rounding there: torch's own choice of kernel.)"""
    torch.manual_seed(0)  # (built outside: its deepcopy of the layer calls clone(memory_format=))
    layer = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=True),
        num_layers=2, enable_nested_tensor=False).eval()

    def program():
        with torch.no_grad():
            return layer(torch.randn(2, 5, 16))
    plain, traced, rep = _run(program)
    assert_clean(rep)
    # the plain run takes the fused path, the traced one the composite: equal up to rounding
    assert torch.allclose(plain, traced, rtol=1e-5, atol=1e-5)
    ops = [n.torch_op for n in rep.nodes]
    assert ops.count("torch.nn.functional.multi_head_attention_forward") == 2
    assert not any("_transformer_encoder_layer_fwd" in (o or "") for o in ops)


@pytest.mark.parametrize("make", ["lazy", "factory"])
def test_running_statistics_first_seen_in_a_training_call(make):
    # d2l's concise batch norm (nn.LazyBatchNorm2d materialized inside the cell) and
    # F.batch_norm on statistics made by a factory in the cell: the eval-mode value uses the
    # statistics after exactly one update, as torch's does
    torch.manual_seed(0)
    with trace(session=Session()) as rep:
        x = torch.randn(8, 3, requires_grad=True)
        if make == "lazy":
            bn = nn.LazyBatchNorm1d()
            y = bn(x)
            bn.eval()
            z = bn(x)
        else:
            rm, rv = torch.zeros(3), torch.ones(3)
            y = F.batch_norm(x, rm, rv, training=True)
            z = F.batch_norm(x, rm, rv, training=False)
        (y * z).sum().backward()
    assert_clean(rep)
    assert rep.coverage["values"]["unchecked"] == 0
