"""d2l-style programs (autograd, linear/softmax regression, MLPs) recorded by trace().

Each program is written from the book's chapters with small synthetic data; torch is
the oracle: the report must agree everywhere and map every call.
"""
from __future__ import annotations

import random

import torch
from torch import nn

from recorder_helpers import assert_clean
from gradmagic.recorder import Session, trace


def synthetic_data(w, b, num_examples):
    X = torch.normal(0, 1, (num_examples, len(w)))
    y = torch.matmul(X, w) + b
    y += torch.normal(0, 0.01, y.shape)
    return X, y.reshape((-1, 1))


def data_iter(batch_size, features, labels):
    num_examples = len(features)
    indices = list(range(num_examples))
    random.shuffle(indices)
    for i in range(0, num_examples, batch_size):
        batch_indices = torch.tensor(indices[i: min(i + batch_size, num_examples)])
        yield features[batch_indices], labels[batch_indices]


def linreg(X, w, b):
    return torch.matmul(X, w) + b


def squared_loss(y_hat, y):
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


def sgd(params, lr, batch_size):
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def test_linear_regression_from_scratch():
    random.seed(0)
    with trace(session=Session(), check="all") as rep:
        true_w = torch.tensor([2, -3.4])
        true_b = 4.2
        features, labels = synthetic_data(true_w, true_b, 100)
        w = torch.normal(0, 0.01, size=(2, 1), requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        lr, num_epochs = 0.03, 3
        for epoch in range(num_epochs):
            for X, y in data_iter(10, features, labels):
                l = squared_loss(linreg(X, w, b), y)
                l.sum().backward()
                sgd([w, b], lr, 10)
            with torch.no_grad():
                train_l = squared_loss(linreg(features, w, b), labels)
    assert_clean(rep)
    assert len(rep.backward_calls) == 30
    assert all(c.status == "agree" for c in rep.backward_calls)
    assert rep.backward_calls[0].steps is None and rep.backward_calls[-1].steps
    wl = rep.leaf("w")
    kinds = [e.kind for e in wl.events]
    assert kinds[:4] == ["created", "backward", "update", "zero_"] and kinds.count("backward") == 30
    assert wl.grad == w.grad.tolist() and not wl.accumulated_without_clearing
    upd = [c for c in rep.checks if c.detail and "update" in c.detail]
    assert upd and all(c.status == "agree" for c in upd)
    assert torch.isfinite(train_l).all()


def test_linear_regression_concise():
    with trace(session=Session(), check="all") as rep:
        features, labels = synthetic_data(torch.tensor([2, -3.4]), 4.2, 100)
        net = nn.Sequential(nn.Linear(2, 1))
        net[0].weight.data.normal_(0, 0.01)
        net[0].bias.data.fill_(0)
        loss = nn.MSELoss()
        trainer = torch.optim.SGD(net.parameters(), lr=0.03)
        for epoch in range(2):
            for i in range(0, 100, 10):
                X, y = features[i:i + 10], labels[i:i + 10]
                l = loss(net(X), y)
                trainer.zero_grad()
                l.backward()
                trainer.step()
    assert_clean(rep)
    weight = rep.leaf("net.0.weight")
    assert weight is not None and rep.leaf("net.0.bias") is not None
    kinds = [e.kind for e in weight.events]
    assert "update" in kinds and "set_none" in kinds and kinds.count("backward") == 20
    assert weight.grad == net[0].weight.grad.tolist()
    assert any(n.label == "AddmmBackward0" or n.op == "linear" for n in rep.nodes)


def softmax(X):
    X_exp = torch.exp(X)
    partition = X_exp.sum(1, keepdim=True)
    return X_exp / partition


def cross_entropy(y_hat, y):
    return - torch.log(y_hat[range(len(y_hat)), y])


def accuracy(y_hat, y):
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def test_softmax_regression_from_scratch():
    with trace(session=Session(), check="all") as rep:
        num_inputs, num_outputs = 12, 3
        W = torch.normal(0, 0.01, size=(num_inputs, num_outputs), requires_grad=True)
        b = torch.zeros(num_outputs, requires_grad=True)

        def net(X):
            return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)

        X_all = torch.randn(40, 3, 4)
        y_all = torch.randint(0, 3, (40,))
        for epoch in range(2):
            for i in range(0, 40, 8):
                X, y = X_all[i:i + 8], y_all[i:i + 8]
                y_hat = net(X)
                l = cross_entropy(y_hat, y)
                l.sum().backward()
                sgd([W, b], 0.1, 8)
            acc = accuracy(net(X_all), y_all) / len(y_all)
    assert_clean(rep)
    assert 0.0 <= acc <= 1.0
    assert any(n.op == "getitem" and n.label == "IndexBackward0" for n in rep.nodes)
    assert rep.leaf("W").status == "agree"


def test_softmax_concise_cross_entropy():
    with trace(session=Session(), check="all") as rep:
        net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        net.apply(lambda m: nn.init.normal_(m.weight, std=0.01) if type(m) == nn.Linear else None)
        loss = nn.CrossEntropyLoss(reduction="none")
        trainer = torch.optim.SGD(net.parameters(), lr=0.1)
        X, y = torch.randn(16, 3, 4), torch.randint(0, 3, (16,))
        for _ in range(3):
            l = loss(net(X), y)
            trainer.zero_grad()
            l.mean().backward()
            trainer.step()
    assert_clean(rep)
    assert any(n.op == "cross_entropy" for n in rep.nodes)


def test_initializing_parameters_after_a_first_forward():
    """d2l 6.3 "Parameter Initialization" (chapter_builders-guide/init-param.md): lazy layers
    get their shapes from a first forward, then ``net.apply(init_normal)`` redraws them.
    ``nn.init.normal_`` writes the leaves under ``no_grad`` itself: an update of each leaf
    (not an opaque node that leaves the gradients below it unchecked)."""
    with trace(session=Session(), check="all") as rep:
        net = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(1))
        X = torch.rand(size=(2, 4))
        net(X).shape

        def init_normal(module):
            if type(module) == nn.Linear:
                nn.init.normal_(module.weight, mean=0, std=0.01)
                nn.init.zeros_(module.bias)
        net.apply(init_normal)
        net(X).sum().backward()
    assert_clean(rep)
    assert rep.coverage["grads"]["checked"] == 4 and rep.coverage["grads"]["unchecked"] == 0
    weight = next(lf for lf in rep.to_dict()["leaves"] if lf["name"] and lf["name"].endswith("0.weight"))
    assert [ev["kind"] for ev in weight["events"]][:2] == ["created", "update"]


def relu(X):
    a = torch.zeros_like(X)
    return torch.max(X, a)


def test_mlp_from_scratch():
    with trace(session=Session(), check="all") as rep:
        num_inputs, num_outputs, num_hiddens = 12, 3, 16
        W1 = nn.Parameter(torch.randn(num_inputs, num_hiddens, requires_grad=True) * 0.01)
        b1 = nn.Parameter(torch.zeros(num_hiddens, requires_grad=True))
        W2 = nn.Parameter(torch.randn(num_hiddens, num_outputs, requires_grad=True) * 0.01)
        b2 = nn.Parameter(torch.zeros(num_outputs, requires_grad=True))
        params = [W1, b1, W2, b2]

        def net(X):
            X = X.reshape((-1, num_inputs))
            H = relu(X @ W1 + b1)
            return (H @ W2 + b2)

        loss = nn.CrossEntropyLoss(reduction="none")
        updater = torch.optim.SGD(params, lr=0.1)
        X, y = torch.randn(20, 3, 4), torch.randint(0, 3, (20,))
        for _ in range(3):
            updater.zero_grad()
            l = loss(net(X), y)
            l.mean().backward()
            updater.step()
    assert_clean(rep)
    assert {lf.name for lf in rep.leaves} >= {"W1", "b1", "W2", "b2"}


def test_mlp_concise_adam_and_dropout():
    with trace(session=Session(), check="all") as rep:
        net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(16, 3))
        loss = nn.CrossEntropyLoss()
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        X, y = torch.randn(20, 3, 4), torch.randint(0, 3, (20,))
        net.train()
        for _ in range(4):
            opt.zero_grad()
            l = loss(net(X), y)
            l.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            out = net(X)
    assert_clean(rep)
    assert any(n.op == "dropout" for n in rep.nodes)
    w = rep.leaf("net.1.weight")
    assert [e.kind for e in w.events].count("update") == 4


def dropout_layer(X, dropout):
    assert 0 <= dropout <= 1
    if dropout == 1:
        return torch.zeros_like(X)
    mask = (torch.rand(X.shape) > dropout).float()
    return mask * X / (1.0 - dropout)


def test_dropout_from_scratch():
    with trace(session=Session(), check="all") as rep:
        X = torch.arange(16, dtype=torch.float32).reshape((2, 8)).requires_grad_()
        out = dropout_layer(X, 0.5).sum()
        out.backward()
        dropout_layer(X, 0.0), dropout_layer(X, 1.0)
    assert_clean(rep)
    assert rep.leaf("X").grad == X.grad.tolist()


def test_hessian_vector_product():
    with trace(session=Session(), check="all") as rep:
        x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        v = torch.tensor([0.5, -1.0, 2.0])
        y = (x ** 3).sum()
        g, = torch.autograd.grad(y, x, create_graph=True)
        hv = (g * v).sum()
        hv.backward()
    assert_clean(rep)
    assert torch.allclose(x.grad, 6 * x.detach() * v)
    kinds = [c.kind for c in rep.backward_calls]
    assert kinds == ["autograd.grad", "backward"]
    assert rep.leaf("x").grad == x.grad.tolist()
    assert rep.node("g").status == "agree"


def test_detach_and_nonscalar_backward():
    with trace(session=Session(), check="all") as rep:
        x = torch.arange(4.0, requires_grad=True)
        y = x * x
        u = y.detach()
        z = u * x
        z.sum().backward()
        assert (x.grad == u).all()
        x.grad.zero_()
        y = x * x
        y.backward(gradient=torch.ones(len(y)))
    assert_clean(rep)
    assert rep.leaf("x").grad == [0.0, 2.0, 4.0, 6.0]
    assert rep.node("u").kind == "op" and rep.node("u").requires_grad is False


def f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    if b.sum() > 0:
        c = b
    else:
        c = 100 * b
    return c


def test_control_flow():
    with trace(session=Session(), check="all") as rep:
        a = torch.randn(size=(), requires_grad=True)
        d = f(a)
        d.backward()
    assert_clean(rep)
    assert torch.allclose(a.grad, d / a)
    assert rep.leaf("a").status == "agree"


def test_backward_twice_hint():
    s = Session()
    with trace(session=s) as rep:
        x = torch.arange(4.0, requires_grad=True)
        y = 2 * torch.dot(x, x)
        y.backward(retain_graph=True)
        y.backward()
    assert_clean(rep)
    leaf = rep.leaf("x")
    assert leaf.accumulated_without_clearing and leaf.grad == [0.0, 8.0, 16.0, 24.0]
    assert any("without being cleared" in n for n in rep.notes)
    ev = leaf.events[-1]
    assert ev.kind == "backward" and ev.before["data"] == [0.0, 4.0, 8.0, 12.0]
    assert ev.added["data"] == [0.0, 4.0, 8.0, 12.0] and ev.call == 1
