"""Render the README's screenshots: LeNet, an LSTM and a transformer encoder layer under ``%%grad``.

Run from the repository root with the project's Python (JupyterLab, Playwright and Debian's
Chromium installed, as for the browser tests)::

    python docs/screenshots.py                 # all three → docs/images/{lenet,lstm,transformer}.png
    python docs/screenshots.py --only lstm     # one of them
    python docs/screenshots.py --out /tmp/shots --dark

A notebook with the three cells (synthetic data, fixed seeds) runs in a real Notebook 7 (or
JupyterLab, ``--ui lab``) with a real kernel; each cell's widget is photographed in headless
Chromium, as a learner sees it, from its top to its gradient-flow table. Nothing is drawn by
hand, so re-running the script after a change to the widget's look refreshes the pictures.
Takes about half a minute.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from browser_helpers import jupyter_server, launch_chromium, run_all_cells, wait_kernel_idle  # noqa: E402

SETUP = """%load_ext gradmagic
import torch
from torch import nn
torch.manual_seed(0)

# d2l's LeNet (sigmoid, average pooling) on a batch of 8 random 28×28 images
lenet = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
    nn.Linear(84, 10))
images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))

# a character-level LSTM language model: 12 steps of one-hot tokens, vocabulary 10
class CharLSTM(nn.Module):
    def __init__(self, vocab=10, hidden=16):
        super().__init__()
        self.lstm = nn.LSTM(vocab, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)

model = CharLSTM()
tokens = torch.randint(0, 10, (13, 4))
inputs, targets = nn.functional.one_hot(tokens[:-1], 10).float(), tokens[1:]

# one post-norm transformer encoder layer, sequence 6 × batch 2, width 16
encoder = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0)
src, target = torch.randn(6, 2, 16), torch.randn(6, 2, 16)"""


@dataclass
class Shot:
    """One ``%%grad`` cell and what to do with its widget before the picture."""

    name: str
    cell: str
    steps: int = 0  # ▶ presses before the picture (0: the view as it opens)


SHOTS = [
    Shot("lenet", "%%grad\nloss = nn.functional.cross_entropy(lenet(images), labels)\nloss.backward()",
         steps=4),
    Shot("lstm", "%%grad\nlogits = model(inputs)\nloss = nn.functional.cross_entropy(logits.reshape(-1, 10), "
                 "targets.reshape(-1))\nloss.backward()"),
    Shot("transformer", "%%grad\nout = encoder(src)\nloss = nn.functional.mse_loss(out, target)\nloss.backward()"),
]


def notebook(shots: list[Shot], dest: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [nbformat.v4.new_code_cell(s.cell) for s in shots]
    nbformat.write(nb, dest)
    return dest


def photograph(page: object, index: int, shot: Shot, out: Path, width: int) -> Path:
    """Put the widget of code cell ``index`` in the state ``shot`` asks for; save its picture."""
    widget = page.locator(".jp-CodeCell").nth(index).locator(".gradmagic-widget")
    widget.wait_for(state="visible", timeout=60_000)
    widget.locator("svg g.gradmagic-node, svg g.gradmagic-group").first.wait_for(timeout=30_000)
    label = widget.locator(".gradmagic-step-label")
    for k in range(1, shot.steps + 1):
        widget.locator("button.gradmagic-next").click()
        page.wait_for_function("([el, k]) => /step \\d+ of/.test(el.textContent) && "
                               "+el.textContent.match(/step (\\d+)/)[1] >= k", arg=[label.element_handle(), k])
    # the notebook scrolls inside its own panel: make the window taller than the widget, so
    # that the whole widget is on screen for the picture (then back to the usual size)
    height = widget.bounding_box()["height"]
    page.set_viewport_size({"width": width, "height": int(max(900, height + 300))})
    widget.scroll_into_view_if_needed()
    page.wait_for_timeout(400)  # the widget refits to the new size
    path = out / f"{shot.name}.png"
    # from the widget's top to its gradient-flow table (or its graph and side panel): the
    # activation table and the per-leaf .grad timelines below are left out of the picture
    top = widget.bounding_box()
    parts = [".gradmagic-graph", ".gradmagic-side", ".gradmagic-flow-table"]
    bottom = max(b["y"] + b["height"] for sel in parts for loc in widget.locator(sel).all()
                 if (b := loc.bounding_box()))
    page.screenshot(path=str(path), clip={"x": top["x"], "y": top["y"], "width": top["width"],
                                          "height": min(top["height"], bottom - top["y"] + 4)})
    page.set_viewport_size({"width": width, "height": 900})
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(s.name for s in SHOTS))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder of the PNGs")
    parser.add_argument("--dark", action="store_true", help="JupyterLab's dark theme")
    parser.add_argument("--width", type=int, default=1000, help="browser viewport width (px)")
    parser.add_argument("--ui", choices=("notebook", "lab"), default="notebook",
                        help="Notebook 7 (default: the notebook alone, full width) or JupyterLab")
    args = parser.parse_args(argv)
    wanted = set((args.only or ",".join(s.name for s in SHOTS)).split(","))
    unknown = wanted - {s.name for s in SHOTS}
    if unknown:
        parser.error(f"unknown screenshot(s) {sorted(unknown)}")
    shots = [s for s in SHOTS if s.name in wanted]
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gradmagic-shots-") as tmp:
        work = Path(tmp)
        nb = notebook(shots, work / "screenshots.ipynb")
        with jupyter_server(args.ui, nb, work, dark=args.dark) as url, sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page(viewport={"width": args.width, "height": 900}, device_scale_factor=1)
            errors: list[str] = []
            # gradmagic's front end runs from a blob: URL in Jupyter; Notebook 7's own errors are not ours
            page.on("pageerror", lambda exc: "blob:" in f"{exc.stack}" and errors.append(f"{exc}\n{exc.stack}"))
            page.goto(url)
            wait_kernel_idle(page, timeout=120_000)
            run_all_cells(page, len(shots) + 1, timeout=240_000)
            failed = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            for i, shot in enumerate(shots, 1):
                path = photograph(page, i, shot, args.out, args.width)
                print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
            if errors:
                print("page errors: " + "; ".join(errors[:3]), file=sys.stderr)
            tracebacks = [t for t in failed.all_inner_texts() if re.search(r"Error|Traceback", t)]
            browser.close()
    if tracebacks:
        print("a cell failed:\n" + "\n".join(tracebacks[:2]), file=sys.stderr)
        return 1
    print(f"{len(shots)} screenshot(s) in {time.monotonic() - t0:.0f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
