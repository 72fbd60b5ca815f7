"""``gradmagic.diagnose.grad_mode``: the statement that turned gradients off around a line."""
from __future__ import annotations

import pytest

from gradmagic.diagnose.grad_mode import grad_off_at


@pytest.mark.parametrize("head", ["with torch.no_grad():", "with torch.inference_mode():",
                                  "with torch.set_grad_enabled(False):", "with no_grad(), open('f') as f:"])
def test_with_statements(head):
    assert grad_off_at(f"a = 1\n{head}\n    b = 2\n", 3) == (2, head)


@pytest.mark.parametrize("head", ["with torch.enable_grad():", "with torch.set_grad_enabled(True):",
                                  "with torch.inference_mode(False):"])
def test_statements_that_leave_gradients_on(head):
    assert grad_off_at(f"{head}\n    b = 2\n", 2) is None


def test_the_innermost_and_decorators():
    src = "with torch.no_grad():\n    with torch.no_grad():\n        x = 1\n@torch.no_grad()\ndef f():\n    y = 2\n"
    assert grad_off_at(src, 3) == (2, "with torch.no_grad():")
    assert grad_off_at(src, 6) == (4, "@torch.no_grad()")
    assert grad_off_at("not python (", 1) is None
