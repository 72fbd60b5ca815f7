"""Helpers of the browser tests: screenshots, and driving a notebook in JupyterLab / Notebook 7."""
from __future__ import annotations

import re
from pathlib import Path

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
