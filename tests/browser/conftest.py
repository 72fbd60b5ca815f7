"""Fixtures for the end-to-end tests: JupyterLab / Notebook 7 on 127.0.0.1, Debian's
Chromium driven by Python Playwright, screenshots under ``test-output/browser/``.

Gotchas handled here (see /work/shared/examples): ``--allow-root``; the execution indicator
reads "idle" before a kernel is attached, so a kernel name is awaited too; JupyterLab's
news pop-up is switched off by a settings file; Chromium needs the flags in ``ARGS``.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

from browser_helpers import shoot

playwright_sync = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[2]
TOKEN = "gradmagic-e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
UIS = {"lab": ("jupyterlab", "lab/tree/{}"), "notebook": ("notebook", "notebooks/{}")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module. Not per session: while Playwright's sync API is
    open its event loop counts as running, which breaks IPython's top-level ``await`` in the
    shell tests that run after the browser tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page, 1200×900; any JavaScript dialog (alert, confirm) fails the test.
    ``page.gradmagic_errors`` collects uncaught errors thrown by gradmagic's front end."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: object) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)

    def on_error(exc: object) -> None:  # only errors raised in our module (blob: in Jupyter, file: standalone)
        stack = f"{exc}\n{exc.stack}"
        if "blob:" in stack or "file://" in stack:
            errors.append(stack)

    pg.on("pageerror", on_error)
    pg.gradmagic_errors = errors
    yield pg
    try:
        shoot(pg, f"final-{request.node.name}")
    finally:
        context.close()
    assert not dialogs, f"a JavaScript dialog fired: {dialogs}"


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[Callable[[str, Path], str]]:
    """``jupyter(ui, notebook, dark=False)``: serve a fresh copy of ``notebook`` with ``ui``
    ("lab" or "notebook"), in the light or dark JupyterLab theme; returns the URL that opens
    it. The kernel imports gradmagic from this repository."""
    procs: list[subprocess.Popen] = []

    def start(ui: str, notebook: Path, dark: bool = False) -> str:
        module, path = UIS[ui]
        pytest.importorskip(module)
        root = tmp_path / f"root-{ui}"
        root.mkdir()
        shutil.copy(notebook, root / notebook.name)
        news = tmp_path / "settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
        news.parent.mkdir(parents=True, exist_ok=True)
        news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
        theme = "JupyterLab Dark" if dark else "JupyterLab Light"
        (news.parent / "themes.jupyterlab-settings").write_text(f'{{"theme": "{theme}"}}')
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
                   JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        port = _free_port()
        log = tmp_path / f"server-{ui}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
             "--LabApp.extension_manager=readonly", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
                break
            except Exception:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.25)
        return f"{base}/{path.format(notebook.name)}?token={TOKEN}"

    yield start
    for proc in procs:
        proc.terminate()  # SIGTERM: the server shuts its kernels down too
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
