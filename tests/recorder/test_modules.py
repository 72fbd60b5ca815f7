"""``nn.Module`` calls in the report (issue 13, item 1): ``report.to_dict()["modules"]``.

PyTorch is the oracle for shapes: the same model, run plain with torch's own per-module
hooks, gives each call's path and input/output shapes in the order the calls began; the
recorded list must say the same. The global hooks that record them exist only while a block
runs, also when it raises or is interrupted.
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module

from recorder_helpers import assert_clean, run_cells
from gradmagic.recorder import Session, trace
from gradmagic.recorder import modules as gm_modules
from gradmagic.recorder.modules import module_paths, signature

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
from d2l_course import CELLS  # noqa: E402


# ----- helpers ----------------------------------------------------------------------------------
def hook_counts() -> tuple:
    return (len(torch_module._global_forward_pre_hooks), len(torch_module._global_forward_hooks),
            len(torch_module._global_forward_hooks_always_called))


def flat_shapes(obj) -> list:
    """The oracle's own flattening: tensors inside tuples/lists, in order."""
    if isinstance(obj, torch.Tensor):
        return [list(obj.shape)]
    if isinstance(obj, (tuple, list)):
        return [s for o in obj for s in flat_shapes(o)]
    return []


def torch_oracle(model: nn.Module, name: str, *inputs) -> list:
    """(path, input shapes, output shapes) of every module call of ``model(*inputs)``, in the
    order the calls began, from torch's per-module hooks (no gradmagic involved)."""
    calls, handles = [], []
    for path, m in model.named_modules(prefix=name):
        def pre(mod, args, path=path):
            calls.append([path, flat_shapes(args), None])
            mod._oracle_open = getattr(mod, "_oracle_open", []) + [len(calls) - 1]

        def post(mod, args, out):
            calls[mod._oracle_open.pop()][2] = flat_shapes(out)
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return [tuple(c) for c in calls]


def recorded(rep, start: int = 0) -> list:
    """(path, inputs, outputs) of the call at ``start`` and every call inside it."""
    mods = rep.to_dict()["modules"]
    inside = {start}
    out = []
    for m in mods[start:]:
        if m["index"] == start or m["parent"] in inside:
            inside.add(m["index"])
            out.append((m["path"], m["inputs"], m["outputs"]))
    return out


def assert_ids_drawn(rep) -> None:
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    ids = {n["id"] for n in d["nodes"]}
    for m in d["modules"]:
        assert set(m["nodes"]) <= ids, m
        assert all(p["node"] is None or p["node"] in ids for p in m["parameters"]), m
        if m["parent"] is not None:
            parent = d["modules"][m["parent"]]
            assert parent["index"] < m["index"] and m["depth"] == parent["depth"] + 1
            assert set(m["nodes"]) <= set(parent["nodes"])


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.proj(x)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.block(x)))


# ----- nesting, paths, signatures -------------------------------------------------------------------
def test_nested_modules_paths_parents_and_shapes():
    model, x = Model(), torch.randn(5, 4)
    with trace(session=Session(), namespace={"model": model, "x": x}) as rep:
        model(x).sum().backward()
    assert_clean(rep)
    assert_ids_drawn(rep)
    mods = rep.modules
    assert [(m.path, m.type, m.signature, m.parent, m.depth) for m in mods] == [
        ("model", "Model", "Model", None, 0),
        ("model.block", "Block", "Block", 0, 1),
        ("model.block.proj", "Sequential", "Sequential", 1, 2),
        ("model.block.proj.0", "Linear", "Linear 4→8", 2, 3),
        ("model.block.proj.1", "ReLU", "ReLU", 2, 3),
        ("model.block.proj.2", "Linear", "Linear 8→3", 2, 3),
        ("model.head", "Linear", "Linear 3→2", 0, 1),
    ]
    assert recorded(rep) == torch_oracle(model, "model", x)
    ids = {n.id: n for n in rep.nodes}
    lin = mods[3]
    assert [p["name"] for p in lin.parameters] == ["model.block.proj.0.weight", "model.block.proj.0.bias"]
    assert [p["shape"] for p in lin.parameters] == [[8, 4], [8]]
    assert [ids[p["node"]].name for p in lin.parameters] == ["model.block.proj.0.weight", "model.block.proj.0.bias"]
    assert [ids[n].label for n in lin.nodes] == ["AddmmBackward0"]
    assert mods[0].parameters == [] and len(mods[0].nodes) == 5  # 3 layers' ops, relu, tanh
    assert "TanhBackward0" in [ids[n].label for n in mods[0].nodes]


def test_nn_sequential_at_top_level():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    X = torch.randn(8, 1, 28, 28)
    with trace(session=Session(), namespace={"net": net, "X": X}) as rep:
        net(X).sum().backward()
    assert_clean(rep)
    assert_ids_drawn(rep)
    assert [(m.path, m.signature) for m in rep.modules] == [
        ("net", "Sequential"), ("net.0", "Flatten"), ("net.1", "Linear 784→256"), ("net.2", "ReLU"),
        ("net.3", "Linear 256→10")]
    assert recorded(rep) == torch_oracle(net, "net", X)
    assert all(m.call == 0 and m.calls == 1 for m in rep.modules)


def test_module_called_twice_has_both_calls():
    lin, x = nn.Linear(3, 3), torch.randn(2, 3)
    with trace(session=Session(), namespace={"lin": lin, "x": x}) as rep:
        y = lin(lin(x))
        y.sum().backward()
    assert_clean(rep)
    first, second = rep.modules
    assert (first.path, first.call, first.calls, first.parent) == ("lin", 0, 2, None)
    assert (second.path, second.call, second.calls, second.parent) == ("lin", 1, 2, None)
    assert first.nodes and second.nodes and not set(first.nodes) & set(second.nodes)
    assert first.parameters == second.parameters  # the same leaves, drawn once


def test_module_list_iterated_in_forward():
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

        def forward(self, x):
            for layer in self.layers:
                x = torch.relu(layer(x))
            return x

    model, x = Stack(), torch.randn(2, 4)
    with trace(session=Session(), namespace={"model": model, "x": x}) as rep:
        model(x).sum().backward()
    assert_clean(rep)
    assert_ids_drawn(rep)
    assert [(m.path, m.parent) for m in rep.modules] == [
        ("model", None), ("model.layers.0", 0), ("model.layers.1", 0), ("model.layers.2", 0)]
    assert recorded(rep) == torch_oracle(model, "model", x)


def test_functional_code_has_no_module_entries():
    src = ("import torch.nn.functional as F\nw = torch.randn(3, 2, requires_grad=True)\n"
           "x = torch.randn(4, 3)\nF.relu(x @ w).sum().backward()\n")
    (rep,), _ = run_cells([src])
    assert_clean(rep)
    assert rep.modules == [] and rep.to_dict()["modules"] == []


def test_recurrent_and_conv_shapes_follow_torch():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.rnn = nn.LSTM(16, 5, num_layers=2, batch_first=True)

        def forward(self, x):
            h = self.pool(self.conv(x)).flatten(2)  # [B, 4, 16]
            out, (h_n, c_n) = self.rnn(h)
            return out.sum() + h_n.sum()

    net, x = Net(), torch.randn(2, 1, 8, 8)
    with trace(session=Session(), namespace={"net": net, "x": x}) as rep:
        net(x).backward()
    assert_ids_drawn(rep)
    assert recorded(rep) == torch_oracle(net, "net", x)
    assert [m.signature for m in rep.modules] == ["Net", "Conv2d 1→4 k3 p1", "MaxPool2d k2", "LSTM 16→5 ×2"]
    assert rep.modules[3].outputs == [[2, 4, 5], [2, 2, 5], [2, 2, 5]]


def test_d2l_lenet_paths_and_signatures():
    cell = next(c for c in CELLS if c.name == "lenet")
    (rep,), ns = run_cells([cell.source])
    assert_ids_drawn(rep)
    forward = next(m for m in rep.modules if m.path == "model")
    lenet = [(m.path, m.signature) for m in rep.modules[forward.index:forward.index + 14]]
    assert lenet == [
        ("model", "LeNet"), ("model.net", "Sequential"),
        ("model.net.0", "Conv2d 1→6 k5 p2"), ("model.net.1", "Sigmoid"), ("model.net.2", "AvgPool2d k2"),
        ("model.net.3", "Conv2d 6→16 k5"), ("model.net.4", "Sigmoid"), ("model.net.5", "AvgPool2d k2"),
        ("model.net.6", "Flatten"), ("model.net.7", "Linear 400→120"), ("model.net.8", "Sigmoid"),
        ("model.net.9", "Linear 120→84"), ("model.net.10", "Sigmoid"), ("model.net.11", "Linear 84→10")]
    X = ns["batches"][0][0]
    assert recorded(rep, forward.index) == torch_oracle(ns["model"], "model", X)
    # layer_summary calls the layers one by one (top level); then model(X), fit (two steps), model(X)
    summary = [m for m in rep.modules[:forward.index]]
    assert [m.path for m in summary] == [f"model.net.{i}" for i in range(12)]
    assert all(m.parent is None for m in summary)
    conv = next(m for m in rep.modules if m.path == "model.net.0")
    assert conv.calls == 5 and [p["shape"] for p in conv.parameters] == [[6, 1, 5, 5], [6]]


# ----- hooks: the user's, and ours leaving no trace ---------------------------------------------------
def test_users_module_hooks_still_run():
    seen = []
    lin, x = nn.Linear(3, 2), torch.randn(4, 3)
    lin.register_forward_pre_hook(lambda m, args: seen.append("pre"))
    lin.register_forward_hook(lambda m, args, out: out * 2)
    handle = torch_module.register_module_forward_hook(lambda m, args, out: seen.append("global"))
    try:
        plain = lin(x)
        with trace(session=Session(), namespace={"lin": lin, "x": x}) as rep:
            y = lin(x)
            y.sum().backward()
    finally:
        handle.remove()
    assert seen == ["pre", "global"] * 2
    assert torch.equal(y, plain)
    assert rep.ok and [m.path for m in rep.modules] == ["lin"]


def test_hooks_exist_only_while_recording():
    before = hook_counts()
    inside = []
    lin = nn.Linear(2, 2)
    with trace(session=Session()) as rep:
        inside.append(hook_counts())
        lin(torch.ones(1, 2))
    assert hook_counts() == before
    assert inside[0] == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert len(rep.modules) == 1


class Boom(nn.Module):
    def __init__(self, exc):
        super().__init__()
        self.lin, self.exc = nn.Linear(2, 2), exc

    def forward(self, x):
        self.lin(x)
        raise self.exc


@pytest.mark.parametrize("exc", [ValueError("bad shape"), KeyboardInterrupt()], ids=["raises", "interrupted"])
def test_hooks_removed_when_the_cell_raises(exc):
    before = hook_counts()
    boom, lin = Boom(exc), nn.Linear(2, 2)
    with pytest.raises(type(exc)):
        with trace(session=Session(), namespace={"boom": boom}) as rep:
            boom(torch.ones(1, 2))
    assert hook_counts() == before
    assert not torch.overrides._get_current_function_mode_stack()
    assert [(m.path, m.outputs) for m in rep.modules] == [("boom", []), ("boom.lin", [[1, 2]])]
    with trace(session=Session(), namespace={"lin": lin}) as rep:  # the next block records as usual
        lin(torch.ones(1, 2))
    assert [m.path for m in rep.modules] == ["lin"]


def test_a_module_call_that_raises_inside_a_caught_exception_keeps_the_stack_right():
    outer, boom = nn.Sequential(nn.Linear(2, 2)), Boom(ValueError("no"))
    with trace(session=Session(), namespace={"outer": outer, "boom": boom}) as rep:
        try:
            boom(torch.ones(1, 2))
        except ValueError:
            pass
        outer(torch.ones(1, 2))
    assert [(m.path, m.parent) for m in rep.modules] == [
        ("boom", None), ("boom.lin", 0), ("outer", None), ("outer.0", 2)]


def test_recorder_failure_in_a_hook_is_a_note(monkeypatch):
    def broken(self, module, args):
        raise RuntimeError("hook bug")
    monkeypatch.setattr(gm_modules.ModuleTracker, "_open", broken)
    before, lin = hook_counts(), nn.Linear(2, 1)
    with trace(session=Session(), namespace={"lin": lin}) as rep:
        y = lin(torch.ones(3, 2))
    assert y.shape == (3, 1) and rep.modules == []
    assert any("stopped recording module calls" in n and "hook bug" in n for n in rep.notes)
    assert hook_counts() == before


def test_hooks_of_a_block_that_never_exited_are_removed_with_leaked_modes():
    import gc

    from gradmagic.recorder.session import _OPEN, remove_leaked_modes

    before = hook_counts()
    block = trace(session=Session())
    block.__enter__()  # never exited (a generator dropped half-way, say)
    try:
        assert hook_counts() != before
        _OPEN.remove(block.recorder)  # the block is gone
        remove_leaked_modes()
        assert hook_counts() == before and not gm_modules._ACTIVE
    finally:
        if block.froze:
            gc.unfreeze()


# ----- inside custom Functions, no_grad, threads, nested blocks ----------------------------------------
def test_module_call_inside_a_custom_function():
    act = nn.Tanh()

    class MyTanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = act(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y * y)

    x = torch.randn(3, requires_grad=True)
    with trace(session=Session(), namespace={"act": act, "x": x}) as rep:
        MyTanh.apply(x).sum().backward()
    assert rep.ok
    assert_ids_drawn(rep)
    assert [(m.path, m.inputs, m.outputs, m.nodes) for m in rep.modules] == [("act", [[3]], [[3]], [])]


def test_module_calls_under_no_grad():
    net, x = nn.Sequential(nn.Linear(3, 2), nn.ReLU()), torch.randn(4, 3)
    with trace(session=Session(), namespace={"net": net, "x": x}) as rep:
        with torch.no_grad():
            y = net(x)
    assert_ids_drawn(rep)
    assert [m.path for m in rep.modules] == ["net", "net.0", "net.1"]
    assert recorded(rep) == torch_oracle(net, "net", x)
    assert rep.modules[1].nodes and rep.modules[0].nodes == rep.modules[1].nodes + rep.modules[2].nodes


def test_calls_from_other_threads_are_not_listed():
    lin = nn.Linear(2, 2)
    with trace(session=Session(), namespace={"lin": lin}) as rep:
        t = threading.Thread(target=lambda: lin(torch.ones(1, 2)))
        t.start()
        t.join()
        lin(torch.ones(5, 2))
    assert [(m.path, m.inputs) for m in rep.modules] == [("lin", [[5, 2]])]


def test_nested_block_has_its_own_calls():
    a, b = nn.Linear(2, 2), nn.ReLU()
    ns = {"a": a, "b": b}
    with trace(session=Session(), namespace=ns) as outer:
        a(torch.ones(1, 2))
        with trace(session=Session(), namespace=ns) as inner:
            b(torch.ones(1, 2))
        a(torch.ones(1, 2))
    assert [(m.path, m.call) for m in outer.modules] == [("a", 0), ("a", 1)]
    assert [m.path for m in inner.modules] == ["b"]
    assert not gm_modules._ACTIVE


# ----- long loops ------------------------------------------------------------------------------------
def test_long_loop_keeps_the_kept_iterations_and_counts_all():
    net, x = nn.Sequential(nn.Linear(3, 3), nn.Tanh()), torch.randn(2, 3)
    with trace(session=Session(keep_calls=2), namespace={"net": net, "x": x}, check="all") as rep:
        for _ in range(6):
            net.zero_grad()
            net(x).sum().backward()
    assert_ids_drawn(rep)
    paths = [(m.path, m.call, m.calls) for m in rep.modules]
    assert paths[-3:] == [("net", 5, 6), ("net.0", 5, 6), ("net.1", 5, 6)]
    assert 3 <= len(paths) < 18 and paths[0][0] == "net"


def test_many_calls_are_trimmed_at_a_top_level_call(monkeypatch):
    monkeypatch.setattr(gm_modules, "MAX_CALLS", 10)
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with trace(session=Session(), namespace={"net": net}) as rep:
        with torch.no_grad():
            for _ in range(20):
                net(torch.ones(1, 2))
    assert len(rep.modules) <= 12
    assert rep.modules[0].path == "net" and rep.modules[0].parent is None
    assert [(m.path, m.call, m.calls) for m in rep.modules[-3:]] == [
        ("net", 19, 20), ("net.0", 19, 20), ("net.1", 19, 20)]
    assert all(m.parent is None or 0 <= m.parent < m.index for m in rep.modules)


# ----- names and signatures -----------------------------------------------------------------------------
def test_paths_prefer_the_outermost_variable_and_fall_back_to_the_class_name():
    model = Model()
    paths = module_paths({"block": model.block, "model": model, "_hidden": nn.ReLU()})
    assert paths[id(model.block.proj[0])] == "model.block.proj.0"
    assert paths[id(model.block)] == "model.block"
    lone = nn.GELU()
    with trace(session=Session(), namespace={"model": model}) as rep:
        lone(torch.ones(2))
    assert [(m.path, m.type) for m in rep.modules] == [("GELU", "GELU")]


@pytest.mark.parametrize("module, expected", [
    (nn.Linear(784, 256), "Linear 784→256"),
    (nn.LazyLinear(10), "LazyLinear ?→10"),
    (nn.Conv2d(1, 6, kernel_size=5, padding=2), "Conv2d 1→6 k5 p2"),
    (nn.Conv2d(3, 8, (3, 5), stride=2, groups=1, bias=False), "Conv2d 3→8 k3×5 s2"),
    (nn.Conv1d(4, 4, 3, padding="same", dilation=2, groups=4), "Conv1d 4→4 k3 p=same d2 g4"),
    (nn.ConvTranspose2d(16, 8, 2, stride=2), "ConvTranspose2d 16→8 k2 s2"),
    (nn.MaxPool2d(2), "MaxPool2d k2"),
    (nn.AvgPool2d(3, stride=1, padding=1), "AvgPool2d k3 s1 p1"),
    (nn.AdaptiveAvgPool2d((1, 1)), "AdaptiveAvgPool2d →1×1"),
    (nn.BatchNorm2d(16), "BatchNorm2d 16"),
    (nn.LayerNorm((4, 4)), "LayerNorm 4×4"),
    (nn.GroupNorm(8, 32), "GroupNorm 32 g8"),
    (nn.Embedding(1000, 64), "Embedding 1000→64"),
    (nn.LSTM(28, 256, 2), "LSTM 28→256 ×2"),
    (nn.GRU(8, 16, bidirectional=True), "GRU 8→16 bi"),
    (nn.RNN(4, 4), "RNN 4→4"),
    (nn.LSTMCell(3, 5), "LSTMCell 3→5"),
    (nn.Dropout(0.5), "Dropout p0.5"),
    (nn.MultiheadAttention(512, 8), "MultiheadAttention 512 h8"),
    (nn.Sequential(), "Sequential"),
    (nn.ReLU(), "ReLU"),
])
def test_signature(module, expected):
    assert signature(module) == expected


def test_signature_of_a_subclass_without_the_usual_attributes():
    class Odd(nn.Linear):
        def __init__(self):
            nn.Module.__init__(self)

    assert signature(Odd()) == "Odd"


# ----- the views render schema 2 --------------------------------------------------------------------------
def test_views_render_a_report_with_modules():
    from gradmagic.viz.html import render_html
    from gradmagic.viz.standalone import render_standalone_html
    from gradmagic.viz.text import render_text
    from gradmagic.viz.widget import widget_graph

    net, x = nn.Sequential(nn.Linear(3, 2), nn.ReLU()), torch.randn(4, 3)
    with trace(session=Session(), namespace={"net": net, "x": x}) as rep:
        net(x).sum().backward()
    d = rep.to_dict()
    assert d["schema"] == 2 and len(d["modules"]) == 3
    assert "net" in render_text(d)
    assert "<svg" in render_html(d)
    assert "<html" in render_standalone_html([d]).lower()
    assert widget_graph(d)["report"]["schema"] == 2
