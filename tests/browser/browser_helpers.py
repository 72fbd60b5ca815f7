"""Helpers of the browser tests: screenshots, and driving a notebook in JupyterLab / Notebook 7."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "browser"


def shoot(page: object, name: str, locator: object | None = None) -> Path:
    """Save a screenshot (of ``locator`` if given) as ``test-output/browser/<name>.png``."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / (re.sub(r"[^\w.-]+", "_", name) + ".png")
    (locator or page).screenshot(path=str(path))
    return path


def wait_kernel_idle(page: object, timeout: int = 60_000) -> None:
    """Idle AND attached (the indicator also says idle while no kernel is attached yet)."""
    page.wait_for_function("""() => { const i = document.querySelector('.jp-Notebook-ExecutionIndicator');
        const k = document.querySelector('.jp-Toolbar-kernelName')?.textContent || '';
        return i?.dataset.status === 'idle' && /\\S/.test(k) && !/No Kernel/.test(k); }""", timeout=timeout)


def run_all_cells(page: object, n: int, timeout: int = 90_000) -> None:
    """Run → Run All Cells, then wait until all ``n`` code cells have an execution count."""
    prompts = "[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent)"
    for attempt in range(3):  # retry if the click landed before the session was wired up
        page.keyboard.press("Escape")
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        try:
            page.wait_for_function(f"{prompts}.some(t => /\\[[*\\d]/.test(t))", timeout=10_000)
            break
        except Exception:
            if attempt == 2:
                raise
    try:
        page.wait_for_function(f"(p => p.length === {n} && p.every(t => /\\[\\d+\\]/.test(t)))({prompts})",
                               timeout=timeout)
    except Exception as exc:
        raise AssertionError(f"cells did not all run; prompts: {page.evaluate(prompts)}") from exc
    wait_kernel_idle(page, timeout)


def rerun_cell(page: object, index: int) -> None:
    """Run code cell ``index`` again in place (Ctrl+Enter adds no cell)."""
    page.locator(".jp-CodeCell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    wait_kernel_idle(page)


#: JavaScript: what in ``root`` (default: the whole document) could only be there because a
#: user string was parsed as markup: the probe element ``#pwn`` (JupyterLab's sanitizer
#: renames ids to ``data-jupyter-id``), ``on*`` attributes, ``javascript:`` URLs, elements
#: that run or embed, and images other than the static report's graph picture.
INJECTION_PROBE = """(root) => {
  root = root || document;
  const found = [];
  for (const el of root.querySelectorAll('#pwn, [data-jupyter-id="pwn"], iframe, object, embed,'
      + ' foreignObject, script:not([type="application/json"]):not([type="module"]),'
      + ' img:not(.gradmagic-graph-img)')) found.push(el.outerHTML.slice(0, 120));
  for (const el of root.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on') || (/^\\s*javascript:/i.test(a.value) && /href|src|action/.test(a.name)))
        found.push(`${el.tagName} ${a.name}=${a.value.slice(0, 60)}`);
    }
  }
  return found;
}"""


def injected(page: object, selector: str | None = None) -> list[str]:
    """Elements and attributes in ``selector`` (each match; default: the page) that only a
    parsed payload could have made; ``[]`` when the page is clean."""
    if selector is None:
        return page.evaluate(INJECTION_PROBE)
    return [hit for el in page.locator(selector).all() for hit in el.evaluate(INJECTION_PROBE)]


def collect_console_errors(page: object, only: tuple[str, ...] = ()) -> list[str]:
    """Start collecting ``console.error`` messages of ``page`` (with ``only``: those whose
    text or source URL contains one of these strings); returns the list, filled as they
    happen."""
    errors: list[str] = []

    def on_console(msg: object) -> None:
        if msg.type != "error":
            return
        text = f"{msg.text} @ {msg.location.get('url', '')}"
        if not only or any(s in text for s in only):
            errors.append(text)

    page.on("console", on_console)
    return errors


# ---------------------------------------------------------------- Chromium outside pytest


#: Debian's Chromium (``apt-get install chromium``), or ``$CHROMIUM``
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: the flags Chromium needs here (root, no GPU, no network chatter)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def launch_chromium(playwright: object) -> object:
    """A headless Chromium from a started ``sync_playwright()`` (the tests' fixture, the benchmark,
    docs/screenshots.py); raises ``FileNotFoundError`` when Chromium is not installed."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def jupyter_server(ui: str, notebook: Path, workdir: Path, dark: bool = False) -> Iterator[str]:
    """Serve a copy of ``notebook`` with ``ui`` ("lab" or "notebook") from ``workdir`` (scripts,
    and conftest's ``jupyter`` fixture); yields the URL that opens it. The kernel imports
    gradmagic from this repository."""
    module, path = {"lab": ("jupyterlab", "lab/tree/{}"), "notebook": ("notebook", "notebooks/{}")}[ui]
    token = "gradmagic-script"
    root = workdir / f"root-{ui}"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook, root / notebook.name)
    settings = workdir / "settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    theme = "JupyterLab Dark" if dark else "JupyterLab Light"
    (settings / "themes.jupyterlab-settings").write_text(f'{{"theme": "{theme}"}}')
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(workdir / "rt"), JUPYTER_CONFIG_DIR=str(workdir / "cfg"),
               JUPYTERLAB_SETTINGS_DIR=str(workdir / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(workdir / "ws"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = workdir / f"server-{ui}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
             "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except Exception:
                if proc.poll() is not None:
                    raise RuntimeError(f"jupyter {ui} exited: {log.read_text()[-2000:]}") from None
                time.sleep(0.25)
        yield f"{base}/{path.format(notebook.name)}?token={token}"
    finally:
        proc.terminate()  # SIGTERM: the server shuts its kernels down too
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
