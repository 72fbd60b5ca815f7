"""``torch.compile`` inside a recorded block (``gradmagic/recorder/compiled.py``): dynamo skips
gradmagic's own code, so the compiled function's calls are recorded and checked, and the values
and gradients are those of a plain run. Each case runs in a fresh interpreter: whether dynamo is
already loaded when the block starts is what the two cases differ in."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PROGRAM = """
import json, warnings, torch
{preload}
from gradmagic.recorder import Session, trace

def f(x):
    return torch.sin(x) ** 2 + x.exp()

torch.manual_seed(0)
x = torch.randn(5, requires_grad=True)
f(x).sum().backward()
plain = x.grad.clone()
x.grad = None
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with trace(session=Session()) as rep:
        cf = torch.compile(f, backend="eager")
        cf(x).sum().backward()
print(json.dumps({{"same": torch.equal(plain, x.grad), "ok": rep.ok, "notes": rep.notes,
                  "unsupported": rep.unsupported, "coverage": rep.coverage,
                  "warnings": [str(w.message)[:200] for w in caught]}}))
"""


@pytest.mark.parametrize("preload", ["", "import torch._dynamo"], ids=["dynamo-loaded-by-compile",
                                                                       "dynamo-loaded-before"])
def test_a_compiled_function_is_recorded_and_checked(preload):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(PROGRAM.format(preload=preload))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["same"] and got["ok"] and got["unsupported"] == [] and got["notes"] == []
    assert got["coverage"]["values"] == {"checked": 5, "agree": 5, "differ": 0, "unchecked": 0}
    assert got["coverage"]["grads"]["agree"] == 1
    assert not [w for w in got["warnings"] if "Dynamo" in w]  # (dynamo never traced gradmagic)
