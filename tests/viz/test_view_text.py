"""The text report: same facts as the HTML, within the column budget."""
from __future__ import annotations

from typing import Any

import pytest

from gradmagic.viz.escape import display_width
from gradmagic.viz.text import render_text, table
from viz_builders import (build_grad_none, build_inplace, build_loop, build_mixed, build_seed,
                          with_diagnoses)


def two_diagnoses() -> dict[str, Any]:
    """The in-place error, then a warning from another cell."""
    return with_diagnoses(build_inplace(), *build_grad_none()["diagnoses"])


@pytest.mark.parametrize("report", [build_seed(), build_seed(2), build_mixed(), build_loop(500),
                                    build_inplace(), two_diagnoses()],
                         ids=["seed", "twice", "mixed", "loop", "inplace", "two-diagnoses"])
@pytest.mark.parametrize("width", [100, 72])
def test_lines_fit_the_width(report: dict[str, Any], width: int) -> None:
    text = render_text(report, width=width)
    assert text.endswith("\n")
    for line in text.splitlines():
        assert display_width(line) <= width, line


def test_seed_text_tree_and_tables(seed_report: dict[str, Any]) -> None:
    text = render_text(seed_report)
    lines = text.splitlines()
    assert lines[0].startswith("gradmagic · cell [3] ✓ agrees with PyTorch")
    tree = lines[lines.index("Graph (each node lists its inputs below it; data flows up, "
                             "gradients flow down)") + 1:][:4]
    assert tree[0].startswith("y  MulBackward0  scalar float32  tensor(28.)")
    assert tree[1].startswith("└─ torch.dot(x, x)  DotBackward0")  # what the learner wrote first
    assert tree[2].startswith("   ├─ x  leaf") and "grad [0., 4., 8., 12.]" in tree[2]
    assert tree[3] == "   └─ x  (shown above)"
    grads = [ln for ln in lines if ln.startswith("  x ")]
    assert grads and "[0., 4., 8., 12.]" in grads[0] and "✓ agrees" in grads[0]
    assert "the forward pass stores intermediates so backward can use them" in " ".join(text.split())
    assert "Accumulation history of x.grad" in text and "None → [0., 4., 8., 12.]" in text


def test_accumulation_hint(twice_report: dict[str, Any]) -> None:
    text = " ".join(render_text(twice_report).split())
    assert "x.grad accumulated over several backward calls without clearing" in text


def test_mixed_verdict_lines(mixed_report: dict[str, Any]) -> None:
    text = render_text(mixed_report)
    assert "✗ 1 mismatch with PyTorch." in text.splitlines()[0]  # "gradmagic" said once
    assert "The cell raised RuntimeError: boom: <b>not bold</b>" in text
    assert "First divergent node: a * c (MulBackward0), line 2" in text
    assert "opaque torch.fft.fft" in text


def test_folded_loop_in_the_tree() -> None:
    text = render_text(build_loop(500))
    assert "└─ [loop body ×500: MulBackward0 → AddBackward0 → TanhBackward0 → SinBackward0]" in text
    assert len(text.splitlines()) < 40


def test_unfolded_deep_chain_is_cut_not_endless() -> None:
    text = render_text(build_loop(100), max_nodes=10_000)
    lines = text.splitlines()
    assert any(ln.startswith("… ") and "more nodes not shown" in ln for ln in lines)
    assert all(display_width(ln) <= 100 for ln in lines)


def test_table_shrinks_widest_column_with_ellipsis() -> None:
    rows = [["a", "x" * 200], ["bb", "short"]]
    out = table(["k", "v"], rows, width=40)
    assert all(display_width(line) <= 40 for line in out)
    assert out[2].rstrip().endswith("…") and out[3].split() == ["bb", "short"]


# ---------------------------------------------------------------- diagnoses (issue 15)

def test_diagnosis_comes_before_everything_else() -> None:
    lines = render_text(build_inplace()).splitlines()
    assert lines[0] == "✗ Why it failed: b was modified in place after SigmoidBackward0 saved it"
    assert lines[1].startswith("  SigmoidBackward0 saved its output b")
    verdict = next(i for i, ln in enumerate(lines) if ln.startswith("gradmagic · cell [5]"))
    fix = lines.index("  Fix: write b = b * 2 instead of b.mul_(2), or use b.clone() before the "
                      "in-place op")
    assert fix < verdict and lines[fix + 1] == ""


def test_diagnosis_lines_have_roles_and_code_in_order() -> None:
    lines = render_text(build_inplace()).splitlines()
    rows = [ln.split("  ") for ln in lines if ln.startswith("  line ")]
    assert [[c.strip() for c in row if c.strip()] for row in rows] == [
        ["line 2", "saved by", "b = a.sigmoid()"],
        ["line 3", "modified in place", "b.mul_(2)"],
        ["line 4", "backward", "b.sum().backward()"]]


def test_warning_is_headed_by_its_title() -> None:
    text = render_text(build_grad_none())
    assert text.startswith("⚠ Why is h.grad None?\n  h is not a leaf")
    assert "Why it failed" not in text
    assert "  Fix: call h.retain_grad() before backward(), or read w.grad" in text


def test_several_diagnoses_all_shown_in_their_order() -> None:
    text = render_text(two_diagnoses())
    first, second = text.index("✗ Why it failed"), text.index("⚠ Why is h.grad None?")
    assert first == 0 < second < text.index("gradmagic · cell [5]")
    # a line of another cell than the report's says which cell
    assert "cell 6, line 2  computed here (not a leaf)  h = w * 2" in text


def test_no_diagnoses_changes_nothing(seed_report: dict[str, Any]) -> None:
    without = {k: v for k, v in seed_report.items() if k != "diagnoses"}
    assert render_text(with_diagnoses(seed_report)) == render_text(without)
    assert render_text(build_inplace()).endswith(render_text({**build_inplace(), "diagnoses": []}))


def test_optimizer_updates_have_a_table_of_their_own():
    # issue 13 item 5: an optimizer step changes the value, never .grad
    import torch

    import gradmagic

    with gradmagic.trace() as rep:
        w = torch.tensor([1.0, 2.0], requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        for _ in range(2):
            (w * w).sum().backward()
            opt.step()
            opt.zero_grad()
    text = render_text(rep.to_dict(), width=120)
    grads, updates = text.split("Accumulation history of w.grad")[1].split("Updates of w (its value, not its .grad)")
    assert "updated" not in grads and "[0.8000, 1.6000]" not in grads
    assert updates.count("updated") == 2
    assert "[1., 2.] → [0.8000, 1.6000]" in updates and "[-0.2000, -0.4000]" in updates
