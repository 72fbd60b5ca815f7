"""Run a snippet under ``gradmagic.trace`` as a cell would be (its own filename and source, so
lines carry their code) and return its report (imported by name, as ``recorder_helpers``)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from gradmagic.recorder import Session, trace  # noqa: E402


def run(source: str, session: Optional[Session] = None, name: str = "<cell>") -> tuple:
    """(report, the type name of what the snippet raised or None, its namespace)."""
    ns = {"torch": torch, "__name__": "__main__"}
    code = compile(source, name, "exec")
    raised = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "non-leaf .grad accessed" and friends
        try:
            with trace(session=session or Session(), namespace=ns, filename=name, source=source) as rep:
                exec(code, ns)
        except Exception as exc:  # the snippet's own error: the report is still filled in
            raised = type(exc).__name__
    return rep, raised, ns


def kinds(rep) -> list:
    return [d.kind for d in rep.diagnoses]


def roles(diagnosis) -> dict:
    """role -> code of the line with that role."""
    return {ln["role"]: ln["code"] for ln in diagnosis.lines}
