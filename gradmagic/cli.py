"""``python -m gradmagic FILE.py|FILE.ipynb [--html OUT.html]``: gradmagic outside Jupyter.

A script runs under :func:`gradmagic.trace` and its text report is printed. A notebook's
code cells run in order in a kernel-free IPython shell with the extension loaded, so
``%%grad`` and ``%grad on`` work as in Jupyter; each recorded cell prints its text report.
``--html`` writes one self-contained page (interactive from ``file://``, no network).

Exit status, for teachers' CI::

    0  every checked value and gradient agreed with torch
    1  the cross-check found a difference
    2  bad command line (file missing, unknown option)
    3  the script or a notebook cell raised (the traceback is printed)
    4  gradmagic itself failed to record (a note says why)

>>> main(["--help"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
SystemExit: 0
"""
from __future__ import annotations

import argparse
import ast
import builtins
import os
import sys
import tokenize
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from gradmagic.checking import CHECK_MODES, mark_statement_ends

__all__ = ["EXIT_OK", "EXIT_DIFFER", "EXIT_USAGE", "EXIT_RAISED", "EXIT_INTERNAL", "Outcome", "main",
           "run_notebook", "run_script"]

EXIT_OK, EXIT_DIFFER, EXIT_USAGE, EXIT_RAISED, EXIT_INTERNAL = 0, 1, 2, 3, 4


@dataclass
class Outcome:
    """What a run produced: the reports in order, and whether the user's code raised."""

    reports: list = field(default_factory=list)
    raised: bool = False
    failed: bool = False  # gradmagic itself could not record (a note said why)

    @property
    def exit_code(self) -> int:
        if self.raised:
            return EXIT_RAISED
        if self.failed:
            return EXIT_INTERNAL
        return EXIT_OK if all(report.ok for report in self.reports) else EXIT_DIFFER


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradmagic",
        usage="%(prog)s [options] FILE.py|FILE.ipynb [-- SCRIPT_ARGS ...]",
        description="Run a PyTorch script or notebook while gradmagic recomputes every value and\n"
        "gradient with its own autograd engine; print the report; exit non-zero when anything\n"
        "differs from torch.",
        epilog="exit status: 0 all agree, 1 a difference was found, 2 usage error, 3 the code raised,\n"
        "4 gradmagic failed.\n"
        "examples:\n  python -m gradmagic train.py --html report.html\n"
        "  python -m gradmagic train.py -- --epochs 3\n"
        "  python -m gradmagic lesson.ipynb --all-cells",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a .py script or a .ipynb notebook")
    parser.add_argument("--html", type=Path, metavar="OUT.html", help="also write a standalone HTML report")
    parser.add_argument("--rtol", type=float, help="relative tolerance of the cross-check")
    parser.add_argument("--atol", type=float, help="absolute tolerance of the cross-check")
    parser.add_argument("--check", choices=CHECK_MODES, default="sample", type=str.lower,
                        help="how much to cross-check: sample (a long loop's backward calls 1-4 and "
                        "powers of two from 16, the others at full speed; the default), all, or none")
    parser.add_argument("--no-check", dest="check", action="store_const", const="none",
                        help="record without cross-checking (--check none)")
    parser.add_argument("--gradcheck", action="store_true", help="also check gradients by finite differences")
    parser.add_argument(
        "--all-cells", action="store_true", help="notebooks: record every code cell, as after %%grad on"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gradmagic`` and the ``gradmagic`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.args = argv[split + 1:]  # the script's own sys.argv[1:]
    from gradmagic.magic import option_problem

    for name in ("rtol", "atol"):
        problem = option_problem(name, getattr(args, name))
        if problem:
            parser.error(f"--{problem}")
    if not args.file.is_file():
        parser.error(f"no such file: {args.file}")
    if args.file.suffix == ".ipynb":
        outcome = run_notebook(args.file, args)
    else:
        outcome = run_script(args.file, args)
    if args.html is not None:
        _write_html(args.html, outcome.reports, args.file.name)
    _summarise(outcome)
    return outcome.exit_code


# ---------------------------------------------------------------- scripts


@contextmanager
def _as_main(path: Path, argv: list[str]) -> Iterator[types.ModuleType]:
    """A fresh ``__main__`` module for ``path``, with ``sys.argv``/``sys.path`` as Python sets them."""
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    module.__builtins__ = builtins
    saved = sys.modules.get("__main__"), sys.argv, list(sys.path)
    sys.modules["__main__"], sys.argv = module, [str(path), *argv]
    sys.path.insert(0, str(path.parent))
    try:
        yield module
    finally:
        main_module, sys.argv, sys.path[:] = saved
        if main_module is not None:
            sys.modules["__main__"] = main_module


def run_script(path: Path, args: argparse.Namespace) -> Outcome:
    """Run a script under ``gradmagic.trace()`` and print its text report."""
    from gradmagic.magic import run_recorded
    from gradmagic.recorder import trace
    from gradmagic.viz.text import render_text

    path = path.resolve()
    with tokenize.open(path) as f:  # honours a PEP 263 coding line
        source = f.read()
    filename = str(path)
    try:
        tree = mark_statement_ends(ast.parse(source, filename).body)  # (check="sample": full speed ends with its statement)
        code = compile(ast.Module(body=tree, type_ignores=[]), filename, "exec")
    except SyntaxError as exc:
        traceback.print_exception(type(exc), exc, None)
        return Outcome(raised=True)
    with _as_main(path, list(args.args)) as module:
        namespace = module.__dict__
        recorded = run_recorded(
            lambda: exec(code, namespace),
            lambda: trace(namespace=namespace, filename=filename, source=source, check=args.check,
                          rtol=args.rtol, atol=args.atol, gradcheck=args.gradcheck),
        )
    error = recorded.error
    if isinstance(error, SystemExit) and error.code in (None, 0):
        error = None
    elif error is not None:
        traceback.print_exception(type(error), error, error.__traceback__)
    if recorded.report is None:
        return Outcome(raised=error is not None, failed=True)
    print(render_text(recorded.report.to_dict()))
    return Outcome(reports=[recorded.report], raised=error is not None)


# ---------------------------------------------------------------- notebooks


def _shell(args: argparse.Namespace) -> Any:
    """The process's InteractiveShell; the command-line options become ``GradMagic`` defaults."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # never write to the user's history
    config.InteractiveShell.colors = "Neutral" if sys.stdout.isatty() else "NoColor"
    config.GradMagic.format = "text"  # a terminal shows text/plain; skip the widget and HTML
    config.GradMagic.check = args.check
    config.GradMagic.gradcheck = args.gradcheck
    config.GradMagic.rtol = args.rtol
    config.GradMagic.atol = args.atol
    return InteractiveShell.instance(config=config)


def _loads_gradmagic(source: str) -> bool:
    return any(line.strip().startswith(("%load_ext gradmagic", "%reload_ext gradmagic"))
               for line in source.splitlines())


def run_notebook(path: Path, args: argparse.Namespace) -> Outcome:
    """Run the notebook's code cells in order (stopping at the first error, like Run All)."""
    import nbformat

    import gradmagic
    from gradmagic.magic import recorded_anything

    notebook = nbformat.read(path, as_version=4)
    shell = _shell(args)
    outcome = Outcome()
    auto_on = False
    previous = gradmagic.last_report()
    cwd = os.getcwd()
    os.chdir(path.resolve().parent)  # a kernel starts in the notebook's folder
    sys.path.insert(0, "")
    try:
        for cell in notebook.cells:
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if "gradmagic" not in shell.extension_manager.loaded and not _loads_gradmagic(cell.source):
                shell.extension_manager.load_extension("gradmagic")
            if args.all_cells and "gradmagic" in shell.extension_manager.loaded and not auto_on:
                shell.run_line_magic("grad", "on")
                auto_on = True
            result = shell.run_cell(cell.source, store_history=True)
            latest = gradmagic.last_report()
            if latest is not None and latest is not previous and recorded_anything(latest):
                outcome.reports.append(latest)
            previous = latest
            if not result.success:
                outcome.raised = True
                break
    finally:
        sys.path.remove("")
        os.chdir(cwd)
    return outcome


# ---------------------------------------------------------------- output


def _write_html(out: Path, reports: list, name: str) -> None:
    from gradmagic.viz.standalone import render_standalone_html

    page = render_standalone_html([report.to_dict() for report in reports], title=f"gradmagic report: {name}")
    out.write_text(page, encoding="utf-8")
    print(f"gradmagic: wrote {out}", file=sys.stderr)


def _summarise(outcome: Outcome) -> None:
    differ = [i for i, report in enumerate(outcome.reports, 1) if not report.ok]
    total = len(outcome.reports)
    if outcome.raised:
        verdict = "the code raised an exception"
    elif differ:
        verdict = f"{len(differ)} of {total} reports found a difference (report {', '.join(map(str, differ))})"
    else:
        verdict = f"{total} report{'s' if total != 1 else ''}, every checked value and gradient agrees"
    print(f"gradmagic: {verdict}", file=sys.stderr)
