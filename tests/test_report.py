"""GradReport.to_dict(): strict JSON and exactly the keys of docs/contract.md (schema 2)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradmagic.recorder import Session, trace  # noqa: E402
from gradmagic.report import GradReport  # noqa: E402

TOP = {"schema", "ok", "unsupported", "first_divergence", "mismatches", "nodes", "edges",
       "backward_calls", "leaves", "checks", "notes", "cell", "error", "coverage", "diagnoses", "modules",
       "grad_flow", "checking", "stats"}
VALUE = {"shape", "dtype", "numel", "data", "head", "min", "max", "mean"}
NODE = {"id", "kind", "name", "aliases", "op", "label", "torch_op", "formulas", "shape", "dtype",
        "requires_grad", "is_leaf", "value", "grad", "torch_grad", "saved", "saved_bytes", "source",
        "status", "max_abs_err"}
EDGE = {"source", "target", "input"}
CALL = {"index", "call", "kind", "root", "source", "gradient", "retain_graph", "create_graph", "status", "steps"}
NODE_STEP = {"k", "kind", "node", "grad_output", "contributions"}
ACC_STEP = {"k", "kind", "node", "before", "added", "after"}
CONTRIB = {"input", "to", "formula", "value"}
LEAF = {"id", "name", "shape", "dtype", "grad", "engine_grad", "status", "accumulated_without_clearing",
        "events", "events_dropped"}
EVENT = {"kind", "call", "cell", "line", "code", "before", "after", "added"}
CHECK = {"node", "what", "status", "max_abs_err", "max_rel_err", "rtol", "atol", "dtype", "detail"}
SOURCE = {"cell", "line", "code"}
STATS = {"nodes", "ops", "saved_bytes", "elapsed_ms"}
MODULE = {"index", "path", "type", "signature", "inputs", "outputs", "parameters", "nodes", "parent",
          "depth", "call", "calls"}
PARAM = {"name", "shape", "node"}


def _value(v, nullable=True):
    if v is None:
        assert nullable
        return
    assert set(v) == VALUE, set(v) ^ VALUE
    assert v["numel"] == (len(v["head"]) if v["numel"] <= 8 else v["numel"])


def _recorded():
    src = "x = torch.tensor([1.0, float('nan'), 3.0], requires_grad=True)\n" \
          "y = 2 * torch.dot(x, x) + torch.ones(100).sum()\ny.backward()\nz = x.grad * 2"
    ns = {"torch": torch}
    with trace(session=Session(), namespace=ns, filename="<c>", cell=7, source=src) as rep:
        exec(compile(src, "<c>", "exec"), ns)
    return rep


def test_schema_keys_and_strict_json():
    d = _recorded().to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert set(d) == TOP and d["schema"] == 2
    assert d["modules"] == []  # functional code
    assert d["cell"] == {"number": 7, "source": d["cell"]["source"]}
    assert set(d["stats"]) == STATS
    for n in d["nodes"]:
        assert set(n) == NODE, set(n) ^ NODE
        assert n["kind"] in ("leaf", "op", "opaque", "constant")
        assert n["status"] in ("agree", "differ", "unchecked", "disabled")
        _value(n["value"]), _value(n["grad"]), _value(n["torch_grad"])
        assert n["source"] is None or set(n["source"]) == SOURCE
        for s in n["saved"]:
            assert set(s) == {"name", "shape", "dtype", "bytes"}
    ids = {n["id"] for n in d["nodes"]}
    for e in d["edges"]:
        assert set(e) == EDGE and e["source"] in ids and e["target"] in ids
    for c in d["backward_calls"]:
        assert set(c) == CALL
        for s in c["steps"]:
            if s["kind"] == "node":
                assert set(s) == NODE_STEP
                _value(s["grad_output"], False)
                for ct in s["contributions"]:
                    assert set(ct) == CONTRIB and (ct["to"] is None or ct["to"] in ids)
            else:
                assert set(s) == ACC_STEP
    for lf in d["leaves"]:
        assert set(lf) == LEAF and lf["id"] in ids
        for ev in lf["events"]:
            assert set(ev) == EVENT
    for c in d["checks"] + d["mismatches"]:
        assert set(c) == CHECK and c["node"] in ids


def test_non_finite_and_large_values_are_encoded():
    d = _recorded().to_dict()
    x = next(n for n in d["nodes"] if n["name"] == "x")
    assert x["value"]["data"] == [1.0, "nan", 3.0]
    big = next(n for n in d["nodes"] if n["value"] and n["value"]["numel"] == 100)
    assert big["value"]["data"] is None and len(big["value"]["head"]) == 8
    assert big["value"]["min"] == 1.0 and big["value"]["mean"] == 1.0
    leaf = d["leaves"][0]
    assert leaf["grad"] == [4.0, "nan", 12.0]


def test_empty_report_is_valid():
    d = GradReport().to_dict()
    assert set(d) == TOP and d["ok"] is True and d["nodes"] == []
    json.dumps(d, allow_nan=False)


def test_module_calls_keys_and_strict_json():
    src = "net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())\nnet(torch.ones(4, 3)).sum().backward()"
    ns = {"torch": torch}
    with trace(session=Session(), namespace=ns, filename="<m>", cell=1, source=src) as rep:
        exec(compile(src, "<m>", "exec"), ns)
    d = rep.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    ids = {n["id"] for n in d["nodes"]}
    assert [m["path"] for m in d["modules"]] == ["net", "net.0", "net.1"]
    for k, m in enumerate(d["modules"]):
        assert set(m) == MODULE and m["index"] == k
        assert m["parent"] is None or m["parent"] < k
        assert set(m["nodes"]) <= ids
        for p in m["parameters"]:
            assert set(p) == PARAM and p["node"] in ids
