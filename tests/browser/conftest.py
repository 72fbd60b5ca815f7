"""Fixtures for the end-to-end tests: JupyterLab / Notebook 7 on 127.0.0.1, Debian's
Chromium driven by Python Playwright, screenshots under ``test-output/browser/``.

Gotchas handled here (see /work/shared/examples): ``--allow-root``; the execution indicator
reads "idle" before a kernel is attached, so a kernel name is awaited too; JupyterLab's
news pop-up is switched off by a settings file; Chromium needs the flags in ``browser_helpers.CHROMIUM_ARGS``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

import pytest

from browser_helpers import CHROMIUM, jupyter_server, launch_chromium, shoot

playwright_sync = pytest.importorskip("playwright.sync_api")

UIS = {"lab": "jupyterlab", "notebook": "notebook"}  # the package each UI needs


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module. Not per session: while Playwright's sync API is
    open its event loop counts as running, which breaks IPython's top-level ``await`` in the
    shell tests that run after the browser tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        b = launch_chromium(p)
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
    it. The kernel imports gradmagic from this repository (``browser_helpers.jupyter_server``)."""
    with contextlib.ExitStack() as servers:
        def start(ui: str, notebook: Path, dark: bool = False) -> str:
            pytest.importorskip(UIS[ui])
            return servers.enter_context(jupyter_server(ui, notebook, tmp_path, dark))
        yield start
