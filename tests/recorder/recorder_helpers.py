"""Helpers for the recorder tests: run code like notebook cells under trace()."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gradmagic.recorder import Session, trace  # noqa: E402


def run_cells(cells: list[str], session: Session | None = None, namespace: dict | None = None,
              **kw) -> tuple[list, dict]:
    """Run each source string as one recorded cell; return (reports, namespace)."""
    session = session or Session()
    ns = namespace if namespace is not None else {"torch": torch, "nn": torch.nn}
    reports = []
    for i, src in enumerate(cells, 1):
        fn = f"<cell-{i}>"
        code = compile(src, fn, "exec")
        with trace(session=session, namespace=ns, filename=fn, cell=i, source=src, **kw) as rep:
            exec(code, ns)
        reports.append(rep)
    return reports, ns


def assert_clean(rep) -> None:
    """ok, nothing unsupported, and the dict is strict JSON."""
    assert rep.unsupported == [], rep.unsupported
    assert rep.ok, [(c.node, c.what, c.detail, c.max_abs_err) for c in rep.mismatches] + rep.notes
    assert not any("internal error" in n or "could not finish its diagnosis" in n for n in rep.notes), rep.notes
    json.dumps(rep.to_dict(), allow_nan=False)



def plain_and_traced(program, seed: int = 0) -> tuple:
    """``program()`` plain and traced from the same seed: (plain result, traced result, report)."""
    torch.manual_seed(seed)
    plain = program()
    torch.manual_seed(seed)
    with trace(session=Session()) as rep:
        traced = program()
    return plain, traced, rep


def assert_same(a, b) -> None:
    """Two results bit for bit: tensors with ``torch.equal``, containers item by item."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b
