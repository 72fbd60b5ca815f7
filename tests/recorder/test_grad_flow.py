"""Gradient flow (issue 13, item 4): ``report.to_dict()["grad_flow"]`` and its hints.

PyTorch is the oracle: the same loop, run with the recorder, reads each parameter's ``.grad``
after every ``backward()``; the report's per-layer norm, mean |g| and max |g| must equal
those numbers (a module's parameters together). The hints (``viz.facts.flow_facts``) fire on
a deep sigmoid MLP (vanishing), a learning rate far too large (exploding) and never on a
plain MLP.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from gradmagic.recorder import Session, trace
from gradmagic.recorder import flow as gm_flow
from gradmagic.viz.facts import flow_facts


def _stats(grads: list) -> tuple:
    """(L2 norm, mean |g|, max |g|) of several gradients together, in float64."""
    flat = torch.cat([g.detach().double().reshape(-1) for g in grads])
    return (float(flat.norm()), float(flat.abs().mean()), float(flat.abs().max()))


def _layer(rep, name: str) -> dict:
    return next(lay for lay in rep.to_dict()["grad_flow"]["layers"] if lay["name"] == name)


def _close(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=1e-5, abs=1e-12)


def _hints(rep) -> list:
    facts = flow_facts(rep.to_dict())
    return [h["kind"] for h in facts["hints"]] if facts else []


def test_functional_code_names_each_variable_a_layer() -> None:
    X, y = torch.randn(32, 3), torch.randn(32)
    w = torch.zeros(3, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    seen: dict = {"w": [], "b": []}
    ns = {"w": w, "b": b}
    with trace(session=Session(), namespace=ns) as rep:
        for _ in range(3):
            loss = ((X @ w + b - y) ** 2).mean()
            loss.backward()
            seen["w"].append(_stats([w.grad]))
            seen["b"].append(_stats([b.grad]))
            with torch.no_grad():
                w -= 0.1 * w.grad
                b -= 0.1 * b.grad
                w.grad.zero_()
                b.grad.zero_()
    flow = rep.to_dict()["grad_flow"]
    assert flow["calls"] == 3 and not flow["thinned"]
    assert [lay["name"] for lay in flow["layers"]] == ["w", "b"]
    for name in ("w", "b"):
        lay = _layer(rep, name)
        assert lay["kind"] == "parameter" and lay["type"] is None and lay["parameters"] == [name]
        assert lay["calls"] == [0, 1, 2]
        _close(lay["norm"], [s[0] for s in seen[name]])
        _close(lay["mean"], [s[1] for s in seen[name]])
        _close(lay["max"], [s[2] for s in seen[name]])
    assert _hints(rep) == []
    json.dumps(rep.to_dict(), allow_nan=False)


def test_sequential_mlp_groups_parameters_by_module() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    X, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    seen: dict = {"net.1": [], "net.3": []}
    with trace(session=Session(), namespace={"net": net, "opt": opt}) as rep:
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            seen["net.1"].append(_stats([net[1].weight.grad, net[1].bias.grad]))
            seen["net.3"].append(_stats([net[3].weight.grad, net[3].bias.grad]))
            with torch.no_grad():  # the ReLU's output of this (the last) forward
                relu = torch.relu(net[1](net[0](X))).double()
            opt.step()
    flow = rep.to_dict()["grad_flow"]
    assert [lay["name"] for lay in flow["layers"]] == ["net.1", "net.3"]  # forward order
    for name in seen:
        lay = _layer(rep, name)
        assert (lay["kind"], lay["type"]) == ("module", "Linear")
        assert lay["parameters"] == [f"{name}.weight", f"{name}.bias"]
        assert lay["numel"] == sum(p.numel() for p in net[int(name[-1])].parameters())
        assert lay["calls"] == [0, 1, 2]
        _close(lay["norm"], [s[0] for s in seen[name]])
        _close(lay["mean"], [s[1] for s in seen[name]])
        _close(lay["max"], [s[2] for s in seen[name]])
    assert _hints(rep) == []  # a plain MLP: no hint
    acts = {a["module"]: a for a in flow["activations"]}
    assert [a["type"] for a in flow["activations"]] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert acts["net.2"]["shape"] == [64, 256]
    assert acts["net.2"]["mean"] == pytest.approx(float(relu.mean()))
    assert acts["net.2"]["std"] == pytest.approx(float(relu.std(correction=0)))
    assert acts["net.2"]["zeros"] == pytest.approx(float((relu == 0).double().mean()))
    assert 0.2 < acts["net.2"]["zeros"] < 0.8 and acts["net.1"]["zeros"] == 0.0


def test_functional_code_has_no_activations() -> None:
    w = torch.ones(3, requires_grad=True)
    with trace(session=Session(), namespace={"w": w}) as rep:
        (w * 2).sum().backward()
    assert rep.to_dict()["grad_flow"]["activations"] == []


def test_deep_sigmoid_mlp_vanishes() -> None:
    layers: list = []
    for _ in range(12):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    net = nn.Sequential(*layers, nn.Linear(32, 1))
    X, y = torch.randn(16, 32), torch.randn(16, 1)
    with trace(session=Session(), namespace={"net": net}) as rep:
        for _ in range(2):
            net.zero_grad()
            ((net(X) - y) ** 2).mean().backward()
    facts = flow_facts(rep.to_dict())
    assert [h["kind"] for h in facts["hints"]] == ["vanishing"]
    text = facts["hints"][0]["text"]
    assert "net.0" in text and "sigmoid" in text and "Numerical Stability and Initialization" in text
    norms = {lay["name"]: lay["norm"][-1] for lay in facts["layers"]}
    assert norms["net.0"] < 1e-6 * norms["net.24"]


def test_huge_learning_rate_explodes() -> None:
    X = torch.randn(64, 5)
    y = X @ torch.tensor([1.0, -2.0, 3.0, 0.5, -1.0])
    w = torch.zeros(5, requires_grad=True)
    with trace(session=Session(), namespace={"w": w}) as rep:
        for _ in range(6):
            loss = ((X @ w - y) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w -= 20.0 * w.grad
            w.grad = None
    norms = _layer(rep, "w")["norm"]
    assert norms[-1] > 1e4 * norms[0]
    facts = flow_facts(rep.to_dict())
    assert [h["kind"] for h in facts["hints"]] == ["exploding"]
    assert "learning rate" in facts["hints"][0]["text"]


def test_nonfinite_gradient_is_exploding_and_json_safe() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with trace(session=Session(), namespace={"w": w}) as rep:
        for scale in (1.0, float("inf")):
            (w * scale).sum().backward()
            w.grad = None
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["grad_flow"]["layers"][0]["norm"][-1] == "inf"
    assert _hints(rep) == ["exploding"]


def test_no_backward_no_flow_and_one_toy_backward_no_panel() -> None:
    with trace(session=Session()) as rep:
        torch.ones(2, requires_grad=True).sum()
    assert rep.to_dict()["grad_flow"] is None
    x = torch.arange(4.0, requires_grad=True)
    with trace(session=Session(), namespace={"x": x}) as rep:
        (2 * torch.dot(x, x)).backward()
    assert rep.to_dict()["grad_flow"]["layers"][0]["name"] == "x"
    assert flow_facts(rep.to_dict()) is None  # one tensor, one call: the views stay as they were


def test_long_loop_is_thinned_evenly_and_keeps_the_last_calls(monkeypatch) -> None:
    monkeypatch.setattr(gm_flow, "MAX_POINTS", 8)
    w = torch.ones(3, requires_grad=True)
    with trace(session=Session(), namespace={"w": w}, check="all") as rep:
        for k in range(37):
            (w * (k + 1)).sum().backward()
            w.grad = None
    flow = rep.to_dict()["grad_flow"]
    lay = flow["layers"][0]
    assert flow["calls"] == 37 and flow["thinned"]
    assert len(lay["calls"]) <= 8 + gm_flow.RECENT
    assert lay["calls"][-gm_flow.RECENT:] == [33, 34, 35, 36]  # the last calls, unthinned
    thinned = lay["calls"][:-gm_flow.RECENT]
    gaps = {b - a for a, b in zip(thinned, thinned[1:])}
    assert len(gaps) == 1  # evenly spaced
    for c, n in zip(lay["calls"], lay["norm"]):
        assert n == pytest.approx((c + 1) * math.sqrt(3))


def test_accumulated_grad_is_what_is_measured() -> None:
    """Without zero_grad the series shows .grad as the optimizer would see it (the sum)."""
    w = torch.ones(2, requires_grad=True)
    with trace(session=Session(), namespace={"w": w}) as rep:
        for _ in range(3):
            (w * 1.0).sum().backward()
    assert _layer(rep, "w")["norm"] == pytest.approx([math.sqrt(2) * k for k in (1, 2, 3)])


def test_modules_no_variable_reaches_stay_apart() -> None:
    def run() -> None:  # the model lives in a function: no variable of the namespace reaches it
        net = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
        for _ in range(2):
            net.zero_grad()
            net(torch.randn(8, 4)).pow(2).mean().backward()

    with trace(session=Session(), namespace={}) as rep:
        run()
    layers = rep.to_dict()["grad_flow"]["layers"]
    assert [(lay["name"], lay["kind"], len(lay["parameters"])) for lay in layers] == \
        [("Linear", "module", 2), ("Linear (2)", "module", 2)]


def _lenet() -> nn.Sequential:
    """d2l's LeNet (sigmoid activations, average pooling), as in its chapter on CNNs."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


def test_sigmoid_lenet_vanishes_toward_the_input_and_does_not_explode() -> None:
    # small near the input (lenet.0), large near the output (lenet.11): d2l's vanishing case,
    # which the ratio rule once called "Exploding gradients"
    torch.manual_seed(0)
    lenet = _lenet()
    X, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    with trace(session=Session(), namespace={"lenet": lenet}) as rep:
        for _ in range(3):
            lenet.zero_grad()
            nn.functional.cross_entropy(lenet(X), y).backward()
    facts = flow_facts(rep.to_dict())
    norms = {lay["name"]: lay["norm"][-1] for lay in facts["layers"]}
    assert norms["lenet.0"] * 1e3 < norms["lenet.11"]
    assert [h["kind"] for h in facts["hints"]] == ["vanishing"]
    text = facts["hints"][0]["text"]
    assert "lenet.0" in text and "lenet.11" in text and "toward the input" in text and "sigmoid" in text


def test_deep_net_with_large_init_explodes() -> None:
    # d2l's exploding case: a product of many large matrices, here trained by SGD, so the
    # loss and every gradient blow up from one call to the next
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Linear(32, 32) for _ in range(6)])
    for lay in net:
        nn.init.normal_(lay.weight, std=1.0)
    X, y = torch.randn(16, 32), torch.randn(16, 32)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    with trace(session=Session(), namespace={"net": net}) as rep:
        for _ in range(4):
            opt.zero_grad()
            (net(X) - y).pow(2).mean().backward()
            opt.step()
    facts = flow_facts(rep.to_dict())
    assert [h["kind"] for h in facts["hints"]] == ["exploding"]


def _flow(norms: dict) -> dict:
    layers = [{"name": k, "kind": "module", "type": "Linear", "calls": [0], "norm": [v],
               "mean": [v], "max": [v]} for k, v in norms.items()]
    return {"grad_flow": {"calls": 1, "layers": layers}}


def test_the_ratio_hint_reads_the_layers_order() -> None:
    # the same two norms: small at the input is vanishing, small at the output is exploding
    up = flow_facts(_flow({"net.0": 2.4e-4, "net.2": 0.1, "net.4": 1.83}))["hints"]
    down = flow_facts(_flow({"net.0": 1.83, "net.2": 0.1, "net.4": 2.4e-4}))["hints"]
    assert [h["kind"] for h in up] == ["vanishing"] and "toward the input" in up[0]["text"]
    assert [h["kind"] for h in down] == ["exploding"] and "grows as it flows back" in down[0]["text"]
    assert flow_facts(_flow({"net.0": 0.5, "net.2": 20.0, "net.4": 1.0})) is not None
    assert flow_facts(_flow({"net.0": 0.5, "net.2": 20.0, "net.4": 1.0}))["hints"] == []
