"""The ``%%grad`` cell magic, the ``%grad on|off|status`` line magic and the extension hooks.

``%%grad`` runs a cell exactly as IPython would (prints, ``Out[n]`` and ``_``, a trailing
``;``, tracebacks that point at the user's line) while :func:`gradmagic.trace` records
it, then shows the report through IPython's display system::

    In [1]: %load_ext gradmagic
    In [2]: %%grad --format text
       ...: x = torch.arange(4.0, requires_grad=True)
       ...: y = 2 * torch.dot(x, x)
       ...: y.backward()
       ...: x.grad
    Out[2]: tensor([ 0.,  4.,  8., 12.])

From Python (what the tests do)::

    >>> from IPython.testing.globalipapp import get_ipython
    >>> ip = get_ipython()
    >>> ip.extension_manager.load_extension("gradmagic") in (None, "already loaded")
    True
    >>> ip.run_cell_magic("grad", "--quiet", "import torch\\ntorch.ones(2, requires_grad=True).sum()")
    tensor(2., grad_fn=<SumBackward0>)

gradmagic's own failures never break a cell: the user's code runs, its result and output
stand, and a one-line note goes to stderr.
"""
from __future__ import annotations

import argparse
import ast
import bdb
import inspect
import os
import sys
import types
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from IPython.core import magic_arguments
from IPython.core.displayhook import DisplayHook
from IPython.core.error import InputRejected, UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Union, validate
from traitlets.config import Configurable

from gradmagic.checking import CHECK_MODES, check_mode, mark_statement_ends

__all__ = [
    "FORMATS",
    "GradMagic",
    "GradMagics",
    "Recorded",
    "clean_exception",
    "compile_cell",
    "load_ipython_extension",
    "option_problem",
    "recorded_anything",
    "run_recorded",
    "unload_ipython_extension",
    "user_traceback",
]

FORMATS = ("auto", "widget", "html", "text")

_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep
_TORCH_OVERRIDES = ("torch/overrides.py", "torch\\overrides.py")

_EXAMPLES = """\
Examples
--------
Record a cell, cross-check it against gradmagic's own autograd and show the graph::

  %%grad
  x = torch.arange(4.0, requires_grad=True)
  y = 2 * torch.dot(x, x)
  y.backward()
  x.grad

Plain-text report, looser tolerances, plus a finite-difference check::

  %%grad --format text --rtol 1e-4 --atol 1e-6 --gradcheck

Check every iteration of a training loop, not only a sample of them::

  %%grad --check all

Record without showing anything (``gradmagic.last_report()`` still has it)::

  %%grad --quiet

Record every following cell, then stop::

  %grad on
  %grad status
  %grad off

Change the defaults for this session::

  %config GradMagic.rtol = 1e-4
  %config GradMagic.format = 'text'
"""


class GradMagic(Configurable):
    """Defaults of ``%%grad``; each one can be overridden per cell by its option.

    >>> from traitlets.config import Config
    >>> GradMagic(config=Config({"GradMagic": {"rtol": 1e-4}})).rtol
    0.0001
    """

    format = CaselessStrEnum(
        FORMATS, default_value="auto", help="How the report is shown: auto, widget, html or text."
    ).tag(config=True)
    rtol = Float(None, allow_none=True, help="Relative tolerance of the cross-check (None: by dtype).").tag(
        config=True
    )
    atol = Float(None, allow_none=True, help="Absolute tolerance of the cross-check (None: by dtype).").tag(
        config=True
    )
    check = Union([CaselessStrEnum(CHECK_MODES), Bool()], default_value="sample",
                  help="How much to cross-check against torch: 'sample' (a long loop's backward calls "
                  "1-4 and powers of two from 16; the others run at full speed), 'all' (every call; True) "
                  "or 'none' (False).").tag(config=True)
    gradcheck = Bool(False, help="Also check gradients by float64 finite differences.").tag(config=True)
    max_nodes = Int(300, help="Graphs larger than this are summarised (loops folded).").tag(config=True)
    quiet = Bool(False, help="Record without showing the report.").tag(config=True)
    # the default is gradmagic.recorder.twins.TWIN_LIMIT (not imported: this module loads without torch)
    twin_limit = Int(1 << 24, help="Tensors with more elements get no engine copy: they are drawn "
                     "but unchecked ('too large').").tag(config=True)

    @validate("check")
    def _valid_check(self, proposal: dict) -> Any:
        try:
            return check_mode(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    @validate("rtol", "atol", "max_nodes")
    def _valid(self, proposal: dict) -> Any:
        problem = option_problem(proposal["trait"].name, proposal["value"])
        if problem:
            raise TraitError(problem)
        return proposal["value"]


def option_problem(name: str, value: Any) -> str | None:
    """Why a tolerance or ``max_nodes`` value is unusable, or None when it is fine."""
    if name in ("rtol", "atol") and value is not None and not value >= 0:
        return f"{name} must be a number >= 0, got {value!r}"
    if name == "max_nodes" and value < 1:
        return f"max_nodes must be >= 1, got {value!r}"
    return None


# ---------------------------------------------------------------- tracebacks


def _is_internal(frame: types.FrameType) -> bool:
    filename = frame.f_code.co_filename
    return filename.startswith(_PACKAGE_DIR) or filename.endswith(_TORCH_OVERRIDES)


def user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Return ``tb`` without gradmagic's frames (and torch's dispatch frames that only the
    recording added), so a traceback reads as it would without gradmagic.

    >>> def boom():
    ...     raise ValueError("x")
    >>> try:
    ...     boom()
    ... except ValueError as e:
    ...     tb = user_traceback(e.__traceback__)
    >>> tb.tb_next.tb_frame.f_code.co_name
    'boom'
    """
    kept = []
    while tb is not None:
        if not _is_internal(tb.tb_frame):
            kept.append(tb)
        tb = tb.tb_next
    result = None
    for entry in reversed(kept):
        result = types.TracebackType(result, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return result


def clean_exception(exc: BaseException, tb: types.TracebackType | None) -> types.TracebackType | None:
    """Strip internal frames from ``exc`` and the exceptions chained to it; return its new tb."""
    seen: set[int] = set()
    current: BaseException | None = exc
    first = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cleaned = user_traceback(tb if current is exc else current.__traceback__)
        current.__traceback__ = cleaned
        if current is exc:
            first = cleaned
        current = current.__cause__ or current.__context__
    return first


# ---------------------------------------------------------------- compiling a cell


@dataclass
class CompiledCell:
    """A cell body compiled the way IPython compiles a cell (``%%time`` does the same).

    ``source`` is the text the line numbers refer to: the ``%%grad`` line (``header_lines``
    of them, none under ``%grad on``) then the transformed body; it is what tracebacks and
    the report show. ``body`` runs everything but a trailing expression; ``tail`` evaluates
    that expression, or is None.
    """

    filename: str
    source: str
    header_lines: int
    body: types.CodeType
    tail: types.CodeType | None

    @property
    def body_source(self) -> str:
        """The transformed cell without the header lines."""
        return self.source.split("\n", self.header_lines)[-1]


def compile_cell(shell: Any, cell: str, header: str = "") -> CompiledCell:
    """Transform, parse, AST-transform and compile ``cell`` with the shell's machinery.

    ``header`` (e.g. ``"%%grad --format text\\n"``) is shown in tracebacks and shifts line
    numbers so that they match the cell as the user sees it. Raises SyntaxError (and
    InputRejected from an AST transformer) like IPython does.

    >>> from IPython.testing.globalipapp import get_ipython
    >>> c = compile_cell(get_ipython(), "a = 1\\na + 1", header="%%grad\\n")
    >>> c.tail is not None, c.source.splitlines()[1]
    (True, 'a = 1')
    """
    transformed = shell.transform_cell(cell)
    offset = header.count("\n")
    source = header + transformed
    filename = shell.compile.cache(source, cell_number(shell), raw_code=source)
    tree = shell.compile.ast_parse("\n" * offset + transformed, filename=filename)
    tree = shell.transform_ast(tree)
    nodes = list(tree.body)
    tail_expr = _tail_expression(nodes, shell.ast_node_interactivity)
    if tail_expr is not None and nodes and nodes[-1] is tail_expr:
        nodes.pop()
    nodes = mark_statement_ends(nodes)  # (check="sample": full speed ends with its statement)
    body = shell.compile(ast.Module(body=nodes, type_ignores=[]), filename, "exec")
    tail = None
    if tail_expr is not None:
        tail = shell.compile(ast.Expression(body=tail_expr.value), filename, "eval")
    return CompiledCell(filename=filename, source=source, header_lines=offset, body=body, tail=tail)


def cell_number(shell: Any) -> int:
    """The ``In[n]`` number of the cell being run.

    IPython 8 increments ``shell.execution_count`` after a cell ran and IPython 9 before it
    runs; the running cell's ``ExecutionResult`` knows its own number in both.

    >>> from IPython.testing.globalipapp import get_ipython
    >>> cell_number(get_ipython()) >= 1
    True
    """
    result = getattr(shell.displayhook, "exec_result", None)
    number = getattr(result, "execution_count", None)
    return number if isinstance(number, int) else shell.execution_count


def _tail_expression(nodes: list[ast.stmt], interactivity: str) -> ast.Expr | None:
    """The expression whose value becomes ``Out[n]`` (IPython's ``ast_node_interactivity``)."""
    if not nodes or interactivity == "none":
        return None
    last = nodes[-1]
    if isinstance(last, ast.Expr):
        return last
    if interactivity == "last_expr_or_assign":
        target = None
        if isinstance(last, ast.Assign) and len(last.targets) == 1:
            target = last.targets[0]
        elif isinstance(last, (ast.AugAssign, ast.AnnAssign)):
            target = last.target
        if isinstance(target, ast.Name):
            expr = ast.Expr(value=ast.Name(id=target.id, ctx=ast.Load()))
            ast.copy_location(expr, last)
            ast.copy_location(expr.value, last)
            ast.fix_missing_locations(expr)
            return expr
    return None


# ---------------------------------------------------------------- running under trace()


def _note(message: str) -> None:
    """Tell the user gradmagic could not do something, without a traceback."""
    print(f"gradmagic: {message}", file=sys.stderr)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass
class Recorded:
    """What :func:`run_recorded` saw: the report (None when gradmagic itself failed, after a
    note), the value ``run()`` returned, and what it raised (traceback already cleaned)."""

    report: Any
    value: Any = None
    error: BaseException | None = None


def run_recorded(run: Callable[[], Any], make_trace: Callable[[], ContextManager[Any]]) -> Recorded:
    """Call ``run()`` inside the ``trace()`` that ``make_trace()`` builds.

    The user's exception is caught and returned (its traceback without gradmagic frames),
    never raised; a failure of gradmagic itself only costs the report, never the run.

    >>> from contextlib import nullcontext
    >>> r = run_recorded(lambda: 1 / 0, lambda: nullcontext("report"))
    >>> r.report, type(r.error).__name__
    ('report', 'ZeroDivisionError')
    >>> run_recorded(lambda: 42, lambda: 1 / 0).value  # gradmagic broken: the code still runs
    42
    """
    manager = None
    try:
        manager = make_trace()
        report = manager.__enter__()
    except BaseException as exc:
        _abandon(manager, exc)  # undo what a half-entered trace() did (mode stack, GC freeze)
        if not isinstance(exc, Exception):
            raise  # a Ctrl-C before the cell started: the cell does not run, as without gradmagic
        _note(f"could not record this code ({_describe(exc)}); it ran without gradmagic.")
        manager = report = None
    outcome = Recorded(report=report)
    tb = None
    try:
        outcome.value = run()
    except BaseException as exc:  # the user's exception, for the caller to show
        outcome.error, tb = exc, exc.__traceback__
    if manager is not None:
        error = outcome.error
        try:
            manager.__exit__(type(error) if error else None, error, tb)
        except BaseException as exc:
            if exc is not error:
                _note(f"could not finish the report ({_describe(exc)}).")
                outcome.report = None
    if outcome.error is not None:
        try:
            clean_exception(outcome.error, tb)
        except Exception as exc:  # the user's exception still shows, with gradmagic's frames
            _note(f"could not tidy the traceback ({_describe(exc)}).")
    return outcome


def _abandon(manager: Any, exc: BaseException) -> None:
    """Let a context manager whose ``__enter__`` failed clean up after itself (``trace()``'s
    ``__exit__`` pops its recorder and undoes ``gc.freeze()``); its own failure is ignored."""
    if manager is None:
        return
    try:
        manager.__exit__(type(exc), exc, exc.__traceback__)
    except BaseException:
        pass


# ---------------------------------------------------------------- %grad on


def _top_level_await(source: str) -> bool:
    """Whether ``source`` uses ``await`` at top level (IPython runs it as a coroutine; such
    cells are left to IPython, unrecorded)."""
    if "await" not in source and "async" not in source:
        return False
    try:
        code = compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return bool(code.co_flags & inspect.CO_COROUTINE)


class AutoGrad:
    """What ``%grad on`` installs: an input transformer that puts ``%%grad`` on top of every
    cell, and the ``pre_run_cell``/``post_run_cell`` callbacks that tell it when a cell runs.

    Only the cell a front end sends is wrapped: cells that start with an IPython command
    (``%``, ``%%``, ``!``) are left alone (line magics, other cell magics, explicit
    ``%%grad``), and so is every ``transform_cell`` made while a cell runs (``%time``,
    ``%timeit``, the ``%%grad`` body itself, a nested ``run_cell``), as are cells with a
    top-level ``await``.

    >>> auto = AutoGrad("--format text")
    >>> auto(["y = x * 2\\n"])
    ['%%grad --auto --format text\\n', 'y = x * 2\\n']
    >>> auto(["%timeit x\\n"])
    ['%timeit x\\n']
    >>> auto.pre_run_cell(None); auto(["y = x * 2\\n"])
    ['y = x * 2\\n']
    """

    # IPython skips transformers with side effects in check_complete(): the terminal's and
    # the kernel's "is this input complete?" must not see the added %%grad line.
    has_side_effects = True

    def __init__(self, options: str) -> None:
        self.options = options.strip()
        self.depth = 0  # run_cell calls under way (pre_run_cell seen, post_run_cell not yet)

    def pre_run_cell(self, info: Any) -> None:
        self.depth += 1

    def post_run_cell(self, result: Any) -> None:
        self.depth = max(0, self.depth - 1)  # the "%grad on" cell ends without having started

    def __call__(self, lines: list[str]) -> list[str]:
        first = next((line.strip() for line in lines if line.strip()), "")
        if not first or first.startswith(("%", "!")) or self.depth or _top_level_await("".join(lines)):
            return lines
        header = f"%%grad --auto {self.options}".rstrip() + "\n"
        return [header, *lines]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No wrapping inside: a ``%%grad`` cell's own body and what it runs."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def install(self, shell: Any) -> None:
        shell.input_transformers_cleanup.append(self)
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)

    def uninstall(self, shell: Any) -> None:
        if self in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.remove(self)
        for event, callback in (("pre_run_cell", self.pre_run_cell), ("post_run_cell", self.post_run_cell)):
            if callback in shell.events.callbacks[event]:
                shell.events.unregister(event, callback)

    def __repr__(self) -> str:
        return f"AutoGrad({self.options!r})"


# ---------------------------------------------------------------- the magics


def recorded_anything(report: Any) -> bool:
    """Whether a report holds any tensor op or backward call (a cell that used torch)."""
    data = report.to_dict()
    return bool(data.get("nodes") or data.get("backward_calls"))


@magics_class
class GradMagics(Magics):
    """``%%grad`` and ``%grad``; settings live in the ``GradMagic`` configurable (``.settings``)."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.settings = GradMagic(parent=shell)
        self.auto: AutoGrad | None = None
        self._session: Any = None
        self._pending: list[tuple[Any, argparse.Namespace]] = []  # shown at post_run_cell

    @property
    def session(self) -> Any:
        """The ``gradmagic.recorder.Session`` of this shell (created on first use)."""
        if self._session is None:
            from gradmagic.recorder import Session

            self._session = Session()
        self._session.twin_limit = self.settings.twin_limit  # %config may change it any time
        return self._session

    # ------------------------------------------------------------ %%grad

    @magic_arguments.magic_arguments(name="%grad")
    @magic_arguments.kwds(epilog=_EXAMPLES)
    @magic_arguments.argument(
        "--format", "-f", choices=FORMATS, default=None,
        help="How to show the report: auto (widget where it can render, else static HTML/text), "
        "widget, html (static HTML/SVG) or text. Default: %%config GradMagic.format ('auto').",
    )
    @magic_arguments.argument("--rtol", type=float, default=None, help="Relative tolerance of the cross-check.")
    @magic_arguments.argument("--atol", type=float, default=None, help="Absolute tolerance of the cross-check.")
    @magic_arguments.argument(
        "--check", choices=CHECK_MODES, default=None, type=str.lower,
        help="How much to cross-check: sample (a long loop's backward calls 1-4 and powers of two from 16 "
        "in lockstep, the others at full speed), all (every call) or none. "
        "Default: %%config GradMagic.check ('sample').",
    )
    @magic_arguments.argument(
        "--no-check", dest="check", action="store_const", const="none",
        help="Record and draw the graph, but do not cross-check against torch (--check none).",
    )
    @magic_arguments.argument(
        "--gradcheck", action="store_true", default=None,
        help="Also check every gradient by float64 finite differences (slower).",
    )
    @magic_arguments.argument(
        "--max-nodes", type=int, default=None, metavar="N",
        help="Summarise graphs with more than N nodes (fold repeated loop iterations).",
    )
    @magic_arguments.argument(
        "--quiet", "-q", action="store_true", default=None,
        help="Show no report; gradmagic.last_report() still has it.",
    )
    @magic_arguments.argument("--auto", action="store_true", help=argparse.SUPPRESS)
    @cell_magic("grad")
    def grad_cell(self, line: str, cell: str) -> Any:
        """Run the cell as usual while gradmagic records it; show the computation graph,
        the gradients of every leaf next to PyTorch's, their accumulation history, and
        the cross-check of every value and gradient against gradmagic's own autograd.
        """
        opts = self._options(line)
        auto = self.auto
        # "%grad on" wraps only what a front end runs: pre_run_cell was seen (depth > 0);
        # a silent execution (no pre_run_cell) runs unrecorded.
        opts.record = not opts.auto or (auto is not None and auto.depth > 0)
        with auto.paused() if auto is not None else nullcontext():
            return self._compile_and_run(line, cell, opts)

    def _compile_and_run(self, line: str, cell: str, opts: argparse.Namespace) -> Any:
        header = "" if opts.auto else f"%%grad {line}".rstrip() + "\n"
        try:
            compiled = compile_cell(self.shell, cell, header)
        except InputRejected:
            self.shell.showtraceback()
            self._mark_error(sys.exc_info()[1])
            return None
        except (OverflowError, SyntaxError, ValueError, TypeError, MemoryError) as exc:
            if isinstance(exc, IndentationError):
                self.shell.showindentationerror()
            else:
                self.shell.showsyntaxerror()
            self._mark_error(exc)
            return None
        value = self._run(compiled, opts)
        if compiled.tail is None or DisplayHook.semicolon_at_end_of_expression(compiled.body_source):
            return None
        return value

    def _options(self, line: str) -> argparse.Namespace:
        """Parse the ``%%grad`` line and fill unset options from the settings."""
        try:
            opts = magic_arguments.parse_argstring(self.grad_cell, line)
        except UsageError as exc:
            raise UsageError(f"%%grad: {exc}. See %%grad? for the options.") from None
        for name in ("format", "rtol", "atol", "check", "gradcheck", "max_nodes", "quiet"):
            if getattr(opts, name) is None:
                setattr(opts, name, getattr(self.settings, name))
        for name in ("rtol", "atol", "max_nodes"):
            problem = option_problem(name, getattr(opts, name))
            if problem:
                raise UsageError(f"%%grad: --{problem.replace('_', '-')}")
        return opts

    def _run(self, compiled: CompiledCell, opts: argparse.Namespace) -> Any:
        glob, loc = self.shell.user_global_ns, self.shell.user_ns

        def run() -> Any:
            exec(compiled.body, glob, loc)
            return None if compiled.tail is None else eval(compiled.tail, glob, loc)

        outcome = run_recorded(run, lambda: self._trace(compiled, opts))
        error = outcome.error
        if isinstance(error, (SystemExit, bdb.BdbQuit)):  # IPython shows these its own way
            self._show_report(outcome.report, opts)
            raise error
        if error is not None:
            self.shell.showtraceback((type(error), error, error.__traceback__), tb_offset=0)
            self._mark_error(error)
        self._show_report(outcome.report, opts)
        return outcome.value

    def _trace(self, compiled: CompiledCell, opts: argparse.Namespace) -> ContextManager[Any]:
        if not opts.record:
            return nullcontext(None)
        from gradmagic.recorder import trace

        return trace(
            session=self.session, namespace=self.shell.user_ns, filename=compiled.filename,
            cell=cell_number(self.shell), source=compiled.source,
            check=opts.check, rtol=opts.rtol, atol=opts.atol, gradcheck=opts.gradcheck,
        )

    def _show_report(self, report: Any, opts: argparse.Namespace) -> None:
        """Show the report below the cell's output: queued until ``post_run_cell`` (after
        ``Out[n]``) inside a cell a front end runs, else shown now."""
        if report is None or opts.quiet:
            return
        result = getattr(self.shell.displayhook, "exec_result", None)
        if result is not None and not result.info.silent:
            self._pending.append((report, opts))
        else:
            self._display(report, opts)

    def show_pending(self, result: Any = None) -> None:
        """``post_run_cell`` callback: show the reports of the cell that just ran."""
        pending, self._pending = self._pending, []
        for report, opts in pending:
            self._display(report, opts)

    @staticmethod
    def _display(report: Any, opts: argparse.Namespace) -> None:
        try:
            if opts.auto and not recorded_anything(report):
                return
            from gradmagic.viz.display import show

            show(report, format=opts.format, max_nodes=opts.max_nodes)
        except BaseException as exc:  # a failing or interrupted view must not break the cell
            _note(f"could not show the report ({_describe(exc)}); gradmagic.last_report() has it.")

    def _mark_error(self, error: BaseException) -> None:
        """Make ``run_cell`` report failure (kernel status "error"), as for a plain cell."""
        result = getattr(self.shell.displayhook, "exec_result", None)
        if result is not None:
            result.error_in_exec = error

    # ------------------------------------------------------------ %grad on|off|status

    @line_magic("grad")
    def grad_line(self, line: str) -> None:
        """Record every cell as if it had ``%%grad``.

        Usage::

          %grad on [%%grad options]   record every following cell (e.g. %grad on --format text)
          %grad off                   stop; the shell is exactly as before %grad on
          %grad status                say whether it is on, and with which options

        Cells that start with ``%``, ``%%`` or ``!`` run untouched, and cells that do not
        use torch show nothing.
        """
        command, _, rest = line.strip().partition(" ")
        if command == "on":
            self._options(rest)  # a bad option fails now, not in every later cell
            self._auto_off()
            self.auto = AutoGrad(rest)
            self.auto.install(self.shell)
            print(f"gradmagic: recording every cell{' with ' + rest.strip() if rest.strip() else ''}.")
        elif command == "off" and not rest.strip():
            was_on = self.auto is not None
            self._auto_off()
            print("gradmagic: stopped recording every cell." if was_on else "gradmagic: %grad was already off.")
        elif command in ("status", "") and not rest.strip():
            if self.auto is None:
                print("gradmagic: %grad is off (only %%grad cells are recorded).")
            else:
                options = f" with {self.auto.options}" if self.auto.options else ""
                print(f"gradmagic: %grad is on: every cell is recorded{options}.")
        else:
            raise UsageError(f"%grad: expected 'on [options]', 'off' or 'status', got {line.strip()!r}")

    def _auto_off(self) -> None:
        if self.auto is not None:
            self.auto.uninstall(self.shell)
            self.auto = None


# ---------------------------------------------------------------- extension hooks


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext gradmagic``: register ``%%grad``/``%grad``, the ``GradMagic`` settings and
    the ``post_run_cell`` callback that shows each report below its cell's output."""
    unload_ipython_extension(ip)  # a second load replaces, never doubles, what we added
    magics = GradMagics(shell=ip)
    ip.register_magics(magics)
    ip.configurables.append(magics.settings)
    ip.events.register("post_run_cell", magics.show_pending)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext gradmagic``: remove exactly what :func:`load_ipython_extension` added."""
    manager = ip.magics_manager
    magics = manager.registry.get(GradMagics.__name__)
    if magics is None:
        return
    magics._auto_off()
    if magics.show_pending in ip.events.callbacks["post_run_cell"]:
        ip.events.unregister("post_run_cell", magics.show_pending)
    for kind in ("line", "cell"):
        table = manager.magics[kind]
        registered = table.get("grad")
        if getattr(registered, "__self__", None) is magics:
            del table["grad"]
    del manager.registry[GradMagics.__name__]
    for configurable in (magics, magics.settings):  # Magics.__init__ appended the first
        if configurable in ip.configurables:
            ip.configurables.remove(configurable)
