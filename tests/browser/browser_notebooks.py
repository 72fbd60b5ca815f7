"""The notebooks the browser tests open.

``demo_notebook`` is a fresh copy of the repository's ``demo.ipynb`` (the seed's cells under
``%%grad`` first) with four cells added at the end: a long loop (its graph is folded), one
whose source line holds an HTML injection attempt, one that moves the selection from Python through
``gradmagic.last_widget()`` to the node ``z`` of the injection cell, one that prints the
selection back. Until the demo, the
recorder and the magic exist, ``synthetic_notebook`` shows ``GradWidget``s built from
hand-made report dicts (tests/browser/browser_synthetic.py) with the same three extra cells.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo.ipynb"
XSS = "<img src=x onerror=alert(1)>"
XSS_CELL = f'%%grad\nw3 = torch.ones(3, requires_grad=True)\nz = (w3 * 3).sum(); tag = "{XSS}"\nz.backward()'
#: a loop long enough for the layout to fold its repeated body into a group
LOOP_CELL = ("%%grad\nh0 = torch.ones(2, requires_grad=True)\nh = h0\nfor i in range(200):\n"
             "    h = torch.tanh(h * 0.9)\nh.sum().backward()")
SEED_CELLS = [
    "%%grad\nx = torch.arange(4.0)",
    "%%grad\nx.requires_grad_(True)",
    "%%grad\ny = 2 * torch.dot(x, x)",
    "%%grad\ny.backward()",
    "%%grad\nx.grad",
]


@dataclass
class Scenario:
    """A notebook plus what the test should find in it."""

    path: Path
    real: bool  # True: demo.ipynb with the real magic; False: synthetic widgets
    widget_cells: list[int] = field(default_factory=list)  # code-cell indices that show a widget
    select_cell: int = -1  # code-cell index of the cell that sets the selection from Python
    readback_cell: int = -1  # code-cell index of the cell printing SELECTED=...

    @property
    def n_code_cells(self) -> int:
        nb = nbformat.read(self.path, as_version=4)
        return sum(c.cell_type == "code" for c in nb.cells)


def real_stack_available() -> bool:
    """The demo can run for real: the notebook, the magic, the recorder and last_widget exist."""
    if not DEMO.exists():
        return False
    try:
        import gradmagic
        return all(importlib.util.find_spec(m) is not None for m in
                   ("gradmagic.magic", "gradmagic.recorder", "gradmagic.viz.display")) \
            and callable(getattr(gradmagic, "trace")) and callable(getattr(gradmagic, "last_widget"))
    except Exception:
        return False


def _code(src: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(src)


def _widget_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices (among code cells) of ``%%grad`` cells that show the widget view."""
    out, k = [], 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        if first.startswith("%%grad") and not any(f in first for f in ("text", "html", "--quiet", "-q")):
            out.append(k)
        k += 1
    return out


def demo_notebook(dest: Path, seed_only: bool = False) -> Scenario:
    """``demo.ipynb`` (or just its setup and the seed's cells) + the three extra cells."""
    nb = nbformat.read(DEMO, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if seed_only:  # the setup and the seed's cells, up to its `y.backward(); x.grad`
        last = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                    and c.source.lstrip().startswith("%%grad") and "backward()" in c.source)
        nb.cells = nb.cells[: last + 1]
    else:
        nb.cells += [_code(LOOP_CELL), _code(XSS_CELL),
                     _code('import gradmagic\ngradmagic.last_widget().selected = "z"'),
                     _code('print("SELECTED=" + repr(gradmagic.last_widget().selected))')]
    nbformat.write(nb, dest)
    n = sum(c.cell_type == "code" for c in nb.cells)
    return Scenario(dest, True, _widget_cells(nb), n - 2, n - 1)


def synthetic_notebook(dest: Path) -> Scenario:
    """Widgets from hand-made report dicts, shaped like the demo (seed graph first)."""
    setup = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
             "from browser_synthetic import seed_report\nfrom gradmagic.viz.widget import GradWidget")
    cells = [
        _code(setup),
        _code("w1 = GradWidget.from_report(seed_report())\nw1"),
        _code(f"w2 = GradWidget.from_report(seed_report(code_line={XSS_CELL.splitlines()[2]!r}, name='z'))\nw2"),
        _code('w2.selected = "z"'),
        _code('print("SELECTED=" + repr(w2.selected))'),
    ]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = cells
    nbformat.write(nb, dest)
    return Scenario(dest, False, [1, 2], 3, 4)


def diagnosis_notebook(dest: Path) -> Path:
    """Two widgets built from hand-made reports (tests/viz/viz_builders.py): one whose cell
    failed (``b.mul_(2)`` after ``b = a.sigmoid()``, an ``inplace_saved`` diagnosis), then
    the seed, which has no diagnosis."""
    setup = (f"import sys; sys.path.insert(0, {str(REPO / 'tests' / 'viz')!r}); "
             f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
             "from viz_builders import build_inplace\nfrom browser_synthetic import seed_report\n"
             "from gradmagic.viz.widget import GradWidget")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [_code(setup), _code("GradWidget.from_report(build_inplace())"),
                _code("GradWidget.from_report(seed_report())")]
    nbformat.write(nb, dest)
    return dest


# ---------------------------------------------------------------- hostile strings (XSS)

#: text/html output saved next to the reports: its ``onclick`` survives only if the
#: notebook is trusted, so the test can tell that JupyterLab's sanitizer ran
CANARY = '<b id="gradmagic-canary" onclick="void 0">canary</b>'


@dataclass
class XssScenario:
    """A notebook of ``%%grad`` cells with hostile strings and saved (untrusted) outputs."""

    path: Path
    families: list[str]  # one hostile code cell per family, in this order, after the setup cell
    payloads: dict[str, str]  # family -> the string its cell puts everywhere
    raises: str  # the family whose cell raises (the last one: Run All stops at an error)
    saved_html: dict[str, str]  # family -> the text/html output saved in the notebook


def xss_notebook(dest: Path) -> XssScenario:
    """One setup cell, then one ``%%grad`` cell per payload family of
    ``tests/viz/xss_payloads.py``. Their outputs are saved as a Jupyter front end would
    save them (widget view, static HTML, text), made by running the cells in IPython's
    test shell; the notebook is not signed, so JupyterLab opens it untrusted.
    Call this before Playwright starts (IPython's shell cannot run inside its loop)."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "viz"))
    from IPython.testing.globalipapp import get_ipython
    from IPython.utils.capture import capture_output

    from xss_payloads import FAMILIES, SETUP, family_payload, forget, hostile_cell, prepare

    families = list(FAMILIES)
    payloads = {f: family_payload(f) for f in families}
    setup = "%load_ext gradmagic\n" + SETUP + "".join(f"{prepare(f, p)}\n" for f, p in payloads.items())
    cells = [_code(setup)] + [_code(hostile_cell(f, p, fmt=None, raises=f == families[-1]))
                              for f, p in payloads.items()]
    ip, saved = get_ipython(), {}
    ip.extension_manager.load_extension("gradmagic")
    try:
        assert ip.run_cell(setup.split("\n", 1)[1]).success
        for cell, (family, payload) in zip(cells[1:], payloads.items()):
            with capture_output() as cap:  # as saved from a front end with widgets
                ip.run_cell(hostile_cell(family, payload, fmt="widget", raises=False))
            cell.outputs = [nbformat.v4.new_output("display_data", data=out.data) for out in cap.outputs]
            assert len(cell.outputs) == 1, f"one report expected for family {family}"
            saved[family] = cell.outputs[0].data["text/html"]
    finally:
        ip.extension_manager.unload_extension("gradmagic")
        forget(ip.user_ns, list(payloads.values()))
    cells[0].outputs = [nbformat.v4.new_output("display_data", data={"text/html": CANARY, "text/plain": "canary"})]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = cells
    nbformat.write(nb, dest)
    return XssScenario(dest, families, payloads, families[-1], saved)


# ---------------------------------------------------------------- module boxes and gradient flow

#: the d2l MLP (issue 13's example) at a small size, its data, and the initial weights
MODULES_SETUP = """%load_ext gradmagic
import copy, json
import torch
from torch import nn
torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
X, y = torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
init = copy.deepcopy(net.state_dict())"""
#: one forward and backward: the widget shows net's layers as collapsed module boxes
MODULES_CELL = "%%grad\nloss = nn.functional.cross_entropy(net(X), y)\nloss.backward()"
#: three SGD steps: the widget's gradient-flow chart has one line per Linear, three calls
FLOW_CELL = """%%grad
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for _ in range(3):
    opt.zero_grad()
    nn.functional.cross_entropy(net(X), y).backward()
    opt.step()"""
#: torch's own numbers for the chart: the same three steps replayed plainly from ``init``
FLOW_READBACK = """net2 = copy.deepcopy(net); net2.load_state_dict(init)
opt2 = torch.optim.SGD(net2.parameters(), lr=0.1)
norms = {"net.1": [], "net.3": []}
for _ in range(3):
    opt2.zero_grad()
    nn.functional.cross_entropy(net2(X), y).backward()
    for i in (1, 3):
        norms[f"net.{i}"].append(torch.cat([p.grad.flatten() for p in net2[i].parameters()]).norm().item())
    opt2.step()
print("NORMS=" + json.dumps(norms))"""


def modules_notebook(dest: Path) -> Path:
    """Setup, the module-box cell, the training-loop cell, the cell printing torch's norms
    (code cells 0-3)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [_code(MODULES_SETUP), _code(MODULES_CELL), _code(FLOW_CELL), _code(FLOW_READBACK)]
    nbformat.write(nb, dest)
    return dest
