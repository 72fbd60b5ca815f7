"""Bounded memory: what gradmagic keeps lives exactly as long as the user's tensors, and
nothing it keeps grows with the number of recorded cells beyond the session's limits.

Structural checks in a real IPython shell (``%%grad`` cells): ``del x`` frees the torch
tensor, its engine twin and the twin's array; 100 cells that each make and drop
tensors leave the session's tables and the number of live gradmagic objects flat; a leaf
trained across many cells keeps at most ``event_limit`` events. ``benchmarks/memory.py``
measures the RSS figures (1,000 such cells; a 5,000-step training loop vs a plain run).
"""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from IPython.utils.capture import capture_output

import gradmagic
from gradmagic.engine import Node
from gradmagic.engine import Tensor as ETensor
from gradmagic.recorder import Session, trace
from gradmagic.recorder.history import History, RawEvent
from gradmagic.recorder.twins import Rec, Twin

MAKE = "%%grad --quiet\nx = torch.randn(256, 1024, requires_grad=True)\ny = (x * 2).tanh().sum()\ny.backward()\n"
#: one cell that makes and drops tensors (64 kB each: x, its grad, intermediates; the
#: benchmark uses 1 MB)
CHURN = ("%%grad --quiet\nx = torch.randn(128, 128, requires_grad=True)\nh = (x * 2).tanh()\n"
         "loss = h.pow(2).mean()\nloss.backward()\nstep = x.grad.abs().max().item()\ndel x, h, loss\n")


def run(ip, source: str):
    with capture_output():
        result = ip.run_cell(source, store_history=True)
    assert result.success, result.error_in_exec
    return result


def session_of(ip) -> Session:
    return ip.find_magic("grad", "cell").__self__.session


def tables(session: Session) -> dict[str, int]:
    """Sizes of the session's tables and the live gradmagic objects of each kind."""
    gc.collect()
    kinds = (Rec, Twin, ETensor, Node, History, RawEvent)
    live = dict.fromkeys((k.__name__ for k in kinds), 0)
    for obj in gc.get_objects():
        kind = type(obj)  # not isinstance: a user's object may raise on __class__
        if kind in kinds:
            live[kind.__name__] += 1
    twin_bytes = sum(tw.et.data.nbytes for _, tw in session.twins.items())
    return {"twins": len(session.twins), "by_node": len(session.by_node), "by_tensor": len(session.by_tensor),
            "grad_owner": len(session.grad_owner), "data_alias": len(session.data_alias),
            "twin bytes": twin_bytes, **live}


@pytest.mark.parametrize("deleting_cell", ["%%grad --quiet\ndel x, y\n", "del x, y\n"])
def test_del_releases_the_tensor_and_its_twin(ip, deleting_cell):
    run(ip, MAKE)
    session = session_of(ip)
    x = ip.user_ns["x"]
    twin = session.twins.get(x)
    refs = {"x": weakref.ref(x), "x.grad": weakref.ref(x.grad), "twin": weakref.ref(twin.et),
            "twin's rec": weakref.ref(twin.rec), "twin's array": weakref.ref(twin.et.data)}
    assert twin.et.data.nbytes == 1 << 20 and not np.shares_memory(twin.et.data, x.detach().numpy())
    size = len(session.twins)
    del x, twin
    run(ip, deleting_cell)
    gc.collect()
    assert [name for name, ref in refs.items() if ref() is not None] == []
    assert len(session.twins) < size


def test_recorded_cells_do_not_accumulate(ip):
    run(ip, "%%grad --quiet\nw = torch.zeros(4, requires_grad=True)\n")
    for _ in range(20):
        run(ip, CHURN)
    early = tables(session_of(ip))
    for _ in range(80):
        run(ip, CHURN)
    late = tables(session_of(ip))
    assert late == early  # flat: nothing per cell is kept once its tensors are gone
    assert early["twin bytes"] < 1 << 16  # only w's twin (and small leftovers), no dropped MB


def test_leaf_history_is_bounded_across_cells(ip):
    magics = ip.find_magic("grad", "cell").__self__
    magics._session = Session(event_limit=20)
    run(ip, "%%grad --quiet\nw = torch.ones(3, requires_grad=True)\n")
    for _ in range(40):
        run(ip, "%%grad --quiet\n(w * 2).sum().backward()\n")
    leaf = gradmagic.last_report().leaf("w")
    assert len(leaf.events) == 20 and leaf.events_dropped == 21  # "created" + 40 backward events
    hist = magics.session.twins.get(ip.user_ns["w"]).rec.hist
    assert len(hist.events) == 20
    assert ip.user_ns["w"].grad.tolist() == [80.0, 80.0, 80.0]


def test_trace_keeps_no_tensor_after_the_block():
    session = Session()
    with trace(session=session) as rep:
        a = torch.randn(64, 64, requires_grad=True)
        b = (a @ a).relu().sum()
        b.backward()
    refs = [weakref.ref(a), weakref.ref(b), weakref.ref(a.grad)]
    del a, b
    gc.collect()
    assert [r() is not None for r in refs] == [False, False, False]
    assert len(session.twins) == 0 and len(session.by_tensor) == 0
    assert rep.ok and rep.leaf("a") is not None  # the report kept summaries, not tensors


def test_recorded_cell_memory_is_freed_without_the_cyclic_gc(ip):
    """Reference counting alone frees a dropped tensor's twin: nothing gradmagic builds per
    block is cyclic garbage (which outlives the block in the oldest GC generation, where full
    collections are rare with torch's ~10^6 long-lived objects)."""
    gc.collect()
    gc.disable()
    try:
        run(ip, MAKE)
        twin = session_of(ip).twins.get(ip.user_ns["x"])
        refs = [weakref.ref(twin.et), weakref.ref(twin.et.data), weakref.ref(twin.rec)]
        del twin
        run(ip, "del x, y\n")
        assert [r() is not None for r in refs] == [False, False, False]  # twin, its array, its record
    finally:
        gc.enable()


def test_tensors_above_the_twin_limit_get_no_engine_copy():
    from gradmagic.recorder.twins import TWIN_LIMIT

    assert Session().twin_limit == TWIN_LIMIT == 1 << 24  # 16M elements by default
    cell = "torch.manual_seed(0)\nbig = torch.randn(50, 50, requires_grad=True)\n" \
           "small = torch.randn(50, requires_grad=True)\n(big @ small).tanh().sum().backward()\n"
    plain: dict = {"torch": torch}
    exec(cell, plain)
    session = Session(twin_limit=1000)
    ns: dict = {"torch": torch}
    with trace(session=session, namespace=ns) as rep:
        exec(cell, ns)
    assert torch.equal(ns["big"].grad, plain["big"].grad) and torch.equal(ns["small"].grad, plain["small"].grad)
    stand_in = session.twins.get(ns["big"]).et.data
    assert all(stride == 0 for stride in stand_in.strides)  # no copy of the 2,500 elements
    node = rep.node("big")
    assert node.status == "unchecked"
    assert any(c.node == node.id and "too large" in (c.detail or "") for c in rep.checks)
    assert rep.ok and any("twin_limit" in note for note in rep.notes)
