"""The seed notes' cells, verbatim, recorded in sequence with one Session."""
from __future__ import annotations

from recorder_helpers import assert_clean, run_cells
from seed_cells import SEED_SOURCES

CELLS = SEED_SOURCES


def test_seed_cells_all_agree(capsys):
    reports, ns = run_cells(CELLS)
    for rep in reports:
        assert_clean(rep)
        assert rep.diagnoses == [], rep.diagnoses  # correct cells: no false alarm
    assert "tensor(276.)" in capsys.readouterr().out


def test_seed_graph_and_gradients():
    reports, ns = run_cells(CELLS)
    rep = reports[3]  # y.backward()
    labels = [n.label for n in rep.nodes if n.kind == "op"]
    assert labels[:2] == ["DotBackward0", "MulBackward0"]
    y = rep.node("y")
    assert y.source == {"cell": 3, "line": 1, "code": "y = 2 * torch.dot(x,x)"}
    assert y.value["data"] == 28.0 and y.status == "agree"
    leaf = rep.leaf("x")
    assert leaf.grad == [0.0, 4.0, 8.0, 12.0]
    assert leaf.status == "agree"
    assert [e.kind for e in leaf.events] == ["created", "backward"]
    assert leaf.events[1].call == 0 and leaf.events[1].code == "y.backward()"
    call = rep.backward_calls[0]
    assert call.root == y.id and call.status == "agree"
    kinds = [s["kind"] for s in call.steps]
    assert kinds == ["node", "node", "accumulate"]
    acc = call.steps[-1]
    assert acc["node"] == rep.node("x").id and acc["after"]["data"] == [0.0, 4.0, 8.0, 12.0]


def test_seed_history_across_cells():
    reports, _ = run_cells(CELLS)
    leaf = reports[5].leaf("x")
    assert [e.kind for e in leaf.events] == ["created", "backward", "zero_", "backward"]
    assert [e.cell for e in leaf.events] == [2, 4, 6, 6]
    assert leaf.events[2].code == "x.grad.zero_()"
    assert leaf.grad == [1.0, 1.0, 1.0, 1.0]
    assert not leaf.accumulated_without_clearing
    assert reports[5].leaf("x").events[1].call is None  # an earlier report's call


def test_int_tensors_and_keepdims():
    reports, ns = run_cells(CELLS)
    t = reports[7].node("t")
    assert t.value["shape"] == [1, 3, 4] and t.value["dtype"] == "int64" and t.status == "agree"
    assert reports[7].node("t").op == "sum"
