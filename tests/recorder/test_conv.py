"""Convolution and pooling layers under trace(): LeNet-5 and the nn layers of the conv
family, each compared with a plain run; a broken rule is located."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recorder_helpers import assert_clean
from gradmagic.engine import REGISTRY
from gradmagic.recorder import Session, trace


def lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


def _lenet_step(seed: int = 0):
    torch.manual_seed(seed)
    net = lenet()
    opt = torch.optim.SGD(net.parameters(), lr=0.9)
    X, y = torch.randn(2, 1, 28, 28), torch.tensor([3, 7])
    loss = F.cross_entropy(net(X), y)
    opt.zero_grad()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()]


def test_lenet_forward_backward_agrees():
    plain_loss, plain_grads = _lenet_step()
    with trace(session=Session()) as rep:
        loss, grads = _lenet_step()
    assert_clean(rep)
    assert torch.equal(loss, plain_loss) and all(torch.equal(a, b) for a, b in zip(grads, plain_grads))
    labels = {n.label for n in rep.nodes}
    assert {"ConvolutionBackward0", "AvgPool2DBackward0"} <= labels


class _To3d(nn.Module):
    def forward(self, x):
        return x.reshape(2, 2, 5, 2, 3)


LAYERS = {
    "conv2d": lambda: nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=1, groups=2),
    "conv2d_same": lambda: nn.Conv2d(2, 3, (2, 3), padding="same", dilation=(1, 2)),
    "conv2d_valid": lambda: nn.Conv2d(2, 3, 3, padding="valid", bias=False),
    "conv1d": lambda: nn.Sequential(nn.Flatten(2), nn.Conv1d(2, 3, 3, stride=2, padding=1)),
    "conv3d": lambda: nn.Sequential(_To3d(), nn.Conv3d(2, 2, 2, padding=(1, 0, 1))),
    "conv_transpose2d": lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1, groups=2),
    "conv_transpose1d": lambda: nn.Sequential(nn.Flatten(2), nn.ConvTranspose1d(2, 3, 3, stride=2, dilation=2)),
    "max_pool2d": lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
    "max_pool2d_dilated": lambda: nn.MaxPool2d(2, stride=1, dilation=2),
    "max_pool1d": lambda: nn.Sequential(nn.Flatten(2), nn.MaxPool1d(3, stride=2, ceil_mode=True)),
    "avg_pool2d": lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    "avg_pool2d_divisor": lambda: nn.AvgPool2d(2, stride=1, divisor_override=3),
    "avg_pool1d": lambda: nn.Sequential(nn.Flatten(2), nn.AvgPool1d(2)),
    "adaptive_avg_pool2d": lambda: nn.AdaptiveAvgPool2d((4, None)),
    "adaptive_avg_pool2d_1": lambda: nn.AdaptiveAvgPool2d(1),
    "adaptive_avg_pool1d": lambda: nn.Sequential(nn.Flatten(2), nn.AdaptiveAvgPool1d(4)),
    "adaptive_max_pool2d": lambda: nn.AdaptiveMaxPool2d((2, 4)),
    "adaptive_max_pool1d": lambda: nn.Sequential(nn.Flatten(2), nn.AdaptiveMaxPool1d(5)),
}


def _layer_run(name: str):
    torch.manual_seed(1)
    layer = LAYERS[name]()
    x = torch.randn(2, 2, 5, 6, requires_grad=True)
    y = layer(x)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return y.detach(), x.grad.clone(), [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_agree_with_a_plain_run(name):
    plain = _layer_run(name)
    with trace(session=Session()) as rep:
        traced = _layer_run(name)
    assert_clean(rep)
    assert torch.equal(traced[0], plain[0]) and torch.equal(traced[1], plain[1])
    assert all(torch.equal(a, b) for a, b in zip(traced[2], plain[2]))


def test_return_indices_and_unpool():
    with trace(session=Session()) as rep:
        x = torch.randn(2, 3, 6, 6, requires_grad=True)
        pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        y, idx = pool(x)
        z = unpool(y * 2, idx)
        v, vi = F.adaptive_max_pool2d(x, 3, return_indices=True)
        w, wi = torch.adaptive_max_pool1d(x.flatten(2), 4)
        u, ui = F.max_pool1d(x.flatten(2), 3, return_indices=True)
        (z.sum() + v.sum() + (w * w).sum() + u.sum() + torch.max_pool2d(x, 2).sum()).backward()
    assert_clean(rep)


def test_second_order_through_conv_and_pool():
    with trace(session=Session()) as rep:
        torch.manual_seed(3)
        x = torch.randn(1, 2, 5, 5, requires_grad=True)
        conv = nn.Conv2d(2, 3, 3, padding=1)
        loss = F.max_pool2d(torch.tanh(conv(x)), 2).pow(2).sum()
        gx, = torch.autograd.grad(loss, x, create_graph=True)
        gx.pow(2).sum().backward()
    assert_clean(rep)


def test_a_broken_conv_weight_rule_is_located(monkeypatch):
    conv = REGISTRY["conv"]
    good_x, good_w, good_b = conv.vjps
    monkeypatch.setattr(conv, "vjps", (good_x, lambda g, ans, x, w, b=None, **geo: good_w(
        g, ans, x, w, b, **geo) * 1.5, good_b))
    with trace(session=Session()) as rep:
        torch.manual_seed(0)
        layer = nn.Conv2d(1, 2, 3)
        layer(torch.randn(1, 1, 5, 5)).square().sum().backward()
    assert not rep.ok
    first = rep.node(rep.first_divergence)
    assert first.op == "conv" and first.label == "ConvolutionBackward0"
