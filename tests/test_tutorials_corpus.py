"""Code nobody here wrote, beyond the d2l book: programs from the official PyTorch tutorials
and examples, nanoGPT and d2l's builders' guide (``tests/corpus/tutorials.py``, each citing its
source), run plain and under ``%grad on`` in a real IPython shell.

Recording must not change a program (outputs and ``.grad``s bit for bit), and its report must be
clean: nothing unsupported, no mismatch, no diagnosis, every gradient checked (these programs
are where attention dropout, ``nn.LeakyReLU(inplace=True)``, ``nn.init`` after a first forward
and ``copy.deepcopy``'d parameters were once opaque).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from corpus_runner import assert_recorded_as_plain

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus"))
from tutorials import PROGRAMS  # noqa: E402


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_program_under_grad_on(ip, program):
    coverage = assert_recorded_as_plain(ip, program.source).coverage
    assert coverage["values"]["unchecked"] == 0 and coverage["grads"]["unchecked"] == 0, coverage


def test_every_program_cites_its_source():
    for program in PROGRAMS:
        assert program.citation.split()[0] in ("pytorch/tutorials", "pytorch/examples",
                                               "karpathy/nanoGPT", "d2l-ai/d2l-en"), program.name
