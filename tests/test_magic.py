"""``%%grad`` and ``%grad`` in a real IPython shell, against the real recorder and views.

Every cell runs through ``ip.run_cell(..., store_history=True)`` exactly as a front end
sends it, so Out/_/execution count/history are IPython's own.
"""
from __future__ import annotations

import sys

import pytest
import torch
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import gradmagic
from shell_helpers import torch_function_modes

SEED = "x = torch.arange(4.0, requires_grad=True)\ny = 2 * torch.dot(x, x)\ny.backward()\n"


def run(ip, source):
    """Run one cell; return (ExecutionResult, captured stdout/stderr/display outputs)."""
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=True)
    assert torch_function_modes() == 0, "a TorchFunctionMode was left on the stack"
    return result, cap


def reports_shown(cap):
    """The gradmagic reports among the captured display outputs (text/plain of each)."""
    return [out.data["text/plain"] for out in cap.outputs]


def report_dict():
    return gradmagic.last_report().to_dict()


def node_named(report, name):
    return next(n for n in report["nodes"] if n["name"] == name or name in n.get("aliases", []))


def frames_of(tb):
    while tb is not None:
        yield tb.tb_frame.f_code.co_filename
        tb = tb.tb_next


# ---------------------------------------------------------------- cell semantics


def test_trailing_expression_becomes_out_and_underscore(ip):
    n = ip.execution_count
    result, cap = run(ip, "%%grad --format text\n" + SEED + "print('printed', y.item())\nx.grad")
    expected = torch.tensor([0.0, 4.0, 8.0, 12.0])
    assert result.success and torch.equal(result.result, expected)
    assert ip.execution_count == n + 1
    assert torch.equal(ip.user_ns["Out"][n], expected) and ip.user_ns["_"] is ip.user_ns["Out"][n]
    assert f"Out[{n}]" in cap.stdout and "printed 28.0" in cap.stdout
    assert ip.history_manager.input_hist_raw[n].startswith("%%grad --format text\nx = torch.arange")
    assert ip.user_ns[f"_i{n}"].startswith("%%grad") and ip.user_ns["In"][n].startswith("get_ipython().run_cell_magic")
    assert len(reports_shown(cap)) == 1
    report = report_dict()
    assert report["ok"] and report["cell"]["number"] == n
    leaf = next(leaf for leaf in report["leaves"] if leaf["name"] == "x")
    assert leaf["grad"] == [0.0, 4.0, 8.0, 12.0]
    assert node_named(report, "y")["source"] == {"cell": n, "line": 3, "code": "y = 2 * torch.dot(x, x)"}


def test_report_is_displayed_not_printed(ip):
    _, cap = run(ip, "%%grad --format html\n" + SEED)
    [out] = cap.outputs
    assert "<svg" in out.data["text/html"] and out.data["text/plain"]
    assert "<svg" not in cap.stdout


def test_trailing_semicolon_suppresses_out(ip):
    ip.run_cell("41", store_history=True)
    n = ip.execution_count
    result, cap = run(ip, "%%grad --format text\n" + SEED + "side = y.item()\nx.grad.sum();  # no Out")
    assert result.success and result.result is None
    assert n not in ip.user_ns["Out"] and ip.user_ns["_"] == 41
    assert f"Out[{n}]" not in cap.stdout
    assert len(reports_shown(cap)) == 1


def test_no_trailing_expression_no_out(ip):
    n = ip.execution_count
    result, _ = run(ip, "%%grad --quiet\n" + SEED)
    assert result.success and result.result is None and n not in ip.user_ns["Out"]
    assert torch.equal(ip.user_ns["x"].grad, torch.tensor([0.0, 4.0, 8.0, 12.0]))


def test_quiet_shows_nothing_but_keeps_the_report(ip):
    n = ip.execution_count
    _, cap = run(ip, "%%grad -q\n" + SEED)
    assert cap.outputs == [] and cap.stdout == ""
    assert report_dict()["cell"]["number"] == n


def test_graph_spans_cells_of_one_shell(ip):
    run(ip, "%%grad --quiet\nx = torch.arange(4.0)\nx.requires_grad_(True)\ny = 2 * torch.dot(x, x)")
    result, _ = run(ip, "%%grad --format text\ny.backward()\nx.grad")
    report = report_dict()
    assert result.success and report["ok"]
    assert report["backward_calls"] and node_named(report, "x")["grad"]["data"] == [0.0, 4.0, 8.0, 12.0]


def test_exception_traceback_has_no_gradmagic_frames_and_partial_report(ip):
    n = ip.execution_count
    source = "%%grad --format text\n" + SEED + "def f(t):\n    return t * 2 + undefined_name\nz = f(y)\n"
    result, cap = run(ip, source)
    assert not result.success and isinstance(result.error_in_exec, NameError)
    assert f"Cell In[{n}], line 7" in cap.stdout and f"Cell In[{n}], line 6, in f" in cap.stdout
    assert "undefined_name" in cap.stdout
    assert "magic.py" not in cap.stdout and "gradmagic" not in cap.stdout.split("NameError")[0]
    assert not any("gradmagic" in f for f in frames_of(sys.last_traceback))
    assert len(reports_shown(cap)) == 1
    report = report_dict()
    assert report["error"]["type"] == "NameError" and report["cell"]["number"] == n
    assert node_named(report, "y") and report["backward_calls"]  # what ran before the error


def test_error_inside_a_torch_call_is_shown_at_the_users_line(ip):
    n = ip.execution_count
    result, cap = run(ip, "%%grad --format text\na = torch.ones(3, requires_grad=True)\nb = torch.dot(a, torch.ones(4))")
    assert isinstance(result.error_in_exec, RuntimeError)
    assert f"Cell In[{n}], line 3" in cap.stdout
    assert not any("gradmagic" in f or f.endswith("overrides.py") for f in frames_of(sys.last_traceback))
    assert len(reports_shown(cap)) == 1


def test_keyboard_interrupt_is_shown_like_a_normal_cell(ip):
    n = ip.execution_count
    result, cap = run(ip, "%%grad --format text\n" + SEED + "raise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "KeyboardInterrupt" in cap.stdout and f"Cell In[{n}], line 5" in cap.stdout
    assert len(reports_shown(cap)) == 1 and report_dict()["error"]["type"] == "KeyboardInterrupt"
    assert ip.execution_count == n + 1


def test_syntax_error_points_at_the_cell_line(ip):
    n = ip.execution_count
    result, cap = run(ip, "%%grad\na = 1\nb = (a +\n")
    assert not result.success and isinstance(result.error_in_exec, SyntaxError)
    assert f"Cell In[{n}], line 3" in cap.stdout and "SyntaxError" in cap.stdout


@pytest.mark.parametrize("line, message", [
    ("--format svg", "invalid choice: 'svg'"),
    ("--rtol -1", "--rtol must be a number >= 0"),
    ("--max-nodes 0", "--max-nodes must be >= 1"),
    ("--max-nodes lots", "invalid int value: 'lots'"),
    ("--colour red", "unrecognized arguments: --colour red"),
])
def test_bad_option_raises_usage_error(ip, line, message):
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("grad", line, "1")
    assert str(info.value).startswith("%%grad: ") and message in str(info.value)
    result, cap = run(ip, f"%%grad {line}\n1")
    assert isinstance(result.error_in_exec, UsageError) and "UsageError" in cap.stderr + cap.stdout


def test_help_lists_every_option_and_examples(ip):
    with capture_output() as cap:
        ip.run_cell("%%grad?")
    text = cap.stdout
    for option in ("--format", "auto,widget,html,text", "--rtol", "--atol", "--no-check", "--gradcheck",
                   "--max-nodes", "--quiet", "Examples", "%grad on", "%config GradMagic.rtol"):
        assert option in text, option
    assert "--auto" not in text


def test_options_reach_the_recorder(ip):
    run(ip, "%%grad --quiet --rtol 0.25 --atol 0.5\n" + SEED)
    checks = [c for c in report_dict()["checks"] if c["what"] == "grad"]
    assert checks and all(c["rtol"] == 0.25 and c["atol"] == 0.5 for c in checks)
    run(ip, "%%grad --quiet --no-check\n" + SEED)
    report = report_dict()
    assert report["nodes"] and all(c["status"] == "unchecked" for c in report["checks"])


def test_config_sets_defaults(ip):
    run(ip, "%config GradMagic.rtol = 1e-3")
    run(ip, "%config GradMagic.quiet = True")
    try:
        _, cap = run(ip, "%%grad\n" + SEED)
        assert cap.outputs == []
        checks = [c for c in report_dict()["checks"] if c["what"] == "grad"]
        assert checks and all(c["rtol"] == 1e-3 for c in checks)
        result, _ = run(ip, "%config GradMagic.rtol = -1")
        assert ip.find_magic("grad", "cell").__self__.settings.rtol == 1e-3
    finally:
        run(ip, "%config GradMagic.rtol = None")
        run(ip, "%config GradMagic.quiet = False")


def test_config_twin_limit_reaches_the_session(ip):
    from gradmagic.recorder.twins import TWIN_LIMIT

    magics = ip.find_magic("grad", "cell").__self__
    assert magics.settings.twin_limit == TWIN_LIMIT
    run(ip, "%config GradMagic.twin_limit = 3")
    try:
        result, _ = run(ip, "%%grad --format text\nbig = torch.ones(5, requires_grad=True)\n(big * 2).sum().backward()")
        assert result.success and torch.equal(ip.user_ns["big"].grad, torch.full((5,), 2.0))
        assert any("too large" in note for note in gradmagic.last_report().notes)
    finally:
        run(ip, f"%config GradMagic.twin_limit = {TWIN_LIMIT}")
    assert magics.session.twin_limit == TWIN_LIMIT


def test_gradmagic_failure_never_breaks_the_cell(ip, monkeypatch):
    import gradmagic.viz.display as display

    def broken(*args, **kwargs):
        raise RuntimeError("view exploded")

    monkeypatch.setattr(display, "show", broken)
    n = ip.execution_count
    result, cap = run(ip, "%%grad\n" + SEED + "x.grad")
    assert result.success and torch.equal(ip.user_ns["Out"][n], torch.tensor([0.0, 4.0, 8.0, 12.0]))
    assert "gradmagic: could not show the report (RuntimeError: view exploded)" in cap.stderr
    assert "Traceback" not in cap.stdout + cap.stderr

    import gradmagic.recorder as recorder

    monkeypatch.setattr(recorder, "trace", broken)
    result, cap = run(ip, "%%grad\nz = 7\nz * 6")
    assert result.success and result.result == 42
    assert "could not record this code (RuntimeError: view exploded)" in cap.stderr


# ---------------------------------------------------------------- extension lifecycle


def shell_state(ip):
    """What the extension may touch, as comparable values."""
    return {
        "line": dict(ip.magics_manager.magics["line"]),
        "cell": dict(ip.magics_manager.magics["cell"]),
        "registry": dict(ip.magics_manager.registry),
        "configurables": list(ip.configurables),
        "cleanup": list(ip.input_transformers_cleanup),
        "post": list(ip.input_transformers_post),
        "ast": list(ip.ast_transformers),
        "events": {name: list(cbs) for name, cbs in ip.events.callbacks.items()},
    }


def test_unload_removes_exactly_what_load_added(ip):
    ip.extension_manager.unload_extension("gradmagic")
    before = shell_state(ip)
    ip.extension_manager.load_extension("gradmagic")
    loaded = shell_state(ip)
    assert set(loaded["line"]) - set(before["line"]) == {"grad"}
    assert set(loaded["cell"]) - set(before["cell"]) == {"grad"}
    assert [type(c).__name__ for c in loaded["configurables"][len(before["configurables"]):]] == [
        "GradMagics", "GradMagic"]
    ip.run_line_magic("grad", "on")
    ip.extension_manager.unload_extension("gradmagic")
    assert shell_state(ip) == before
    ip.extension_manager.load_extension("gradmagic")


def test_reload_ext(ip):
    run(ip, "%%grad --quiet\n" + SEED)
    result, cap = run(ip, "%reload_ext gradmagic")
    assert result.success
    assert sum(type(c).__name__ == "GradMagic" for c in ip.configurables) == 1
    result, cap = run(ip, "%%grad --format text\n" + SEED + "x.grad")
    assert result.success and len(reports_shown(cap)) == 1 and report_dict()["ok"]


# ---------------------------------------------------------------- %grad on | off | status


def test_grad_on_records_every_cell_and_off_restores_the_shell(ip):
    before = shell_state(ip)
    _, cap = run(ip, "%grad status")
    assert "off" in cap.stdout
    run(ip, "%grad on --format text")
    _, cap = run(ip, "%grad status")
    assert "is on" in cap.stdout and "--format text" in cap.stdout

    n = ip.execution_count
    result, cap = run(ip, SEED + "x.grad")
    assert torch.equal(result.result, torch.tensor([0.0, 4.0, 8.0, 12.0])) and ip.user_ns["_"] is result.result
    assert len(reports_shown(cap)) == 1 and report_dict()["cell"]["number"] == n
    assert node_named(report_dict(), "y")["source"]["line"] == 2  # no %%grad line added to the count

    result, cap = run(ip, "plain = 20\nplain + 1")
    assert result.result == 21 and cap.outputs == []  # no torch: nothing shown

    n = ip.execution_count
    result, cap = run(ip, "q = torch.ones(2, requires_grad=True)\nq.sum().backward()\nfoo(q)")
    assert isinstance(result.error_in_exec, NameError) and f"Cell In[{n}], line 3" in cap.stdout
    assert len(reports_shown(cap)) == 1

    result, cap = run(ip, "%%grad --quiet\n" + SEED)  # explicit %%grad is not wrapped twice
    assert result.success and cap.outputs == []

    run(ip, "%grad off")
    assert shell_state(ip) == before
    result, cap = run(ip, SEED + "x.grad")
    assert result.success and cap.outputs == []


def test_grad_on_leaves_line_magics_alone(ip):
    run(ip, "%grad on")
    try:
        previous = gradmagic.last_report()
        result, cap = run(ip, "%time t = torch.ones(3) * 2")
        assert result.success and gradmagic.last_report() is previous and cap.outputs == []
        result, cap = run(ip, "%%time\nt = torch.ones(3) * 2\nt.sum()")
        assert result.result == 6 and gradmagic.last_report() is previous
        n = ip.execution_count  # a nested run_cell is not wrapped again: one report
        result, cap = run(ip, "u = torch.ones(2)\nget_ipython().run_cell('u * 3')\nu + 1")
        assert torch.equal(ip.user_ns["Out"][n], torch.tensor([2.0, 2.0])) and len(reports_shown(cap)) == 1
        result, cap = run(ip, "import asyncio\nawait asyncio.sleep(0)\ntorch.ones(2).sum()")
        assert result.result == 2 and cap.outputs == []  # top-level await: left to IPython
        silent = ip.run_cell("v = torch.ones(2) * 5", silent=True)
        assert silent.success and torch.equal(ip.user_ns["v"], torch.tensor([5.0, 5.0]))
        assert gradmagic.last_report().cell["source"].startswith("u = torch.ones(2)")
    finally:
        run(ip, "%grad off")


def test_grad_line_usage_errors(ip):
    for line in ("maybe", "on --format svg", "off now"):
        with pytest.raises(UsageError):
            ip.run_line_magic("grad", line)
    assert ip.input_transformers_cleanup == [t for t in ip.input_transformers_cleanup
                                             if type(t).__name__ != "AutoGrad"]


def test_report_comes_below_prints_and_out(ip, capsys):
    n = ip.execution_count
    capsys.readouterr()
    ip.run_cell("%%grad --format text\n" + SEED + "print('PRINTED')\nx.grad", store_history=True)
    out = capsys.readouterr().out
    from gradmagic.viz.text import render_text

    heading = render_text(report_dict()).splitlines()[0]
    assert out.index("PRINTED") < out.index(f"Out[{n}]") < out.index(heading)


# ---------------------------------------------------------------- check budget (issue 14)

LONG_LOOP = """w = torch.ones(3, requires_grad=True)
for i in range(40):
    w.grad = None
    (w * float(i)).sum().backward()
"""


def test_a_long_loop_is_sampled_by_default_and_check_all_checks_every_call(ip):
    run(ip, "%%grad --quiet\n" + LONG_LOOP)
    checking = report_dict()["checking"]
    assert checking["mode"] == "sample" and checking["checked"] == [1, 2, 3, 4, 16, 32]
    run(ip, "%%grad --quiet --check all\n" + LONG_LOOP)
    assert report_dict()["checking"]["checked"] == list(range(1, 41))
    run(ip, "%config GradMagic.check = 'all'")
    try:
        run(ip, "%%grad --quiet\n" + LONG_LOOP)
        assert report_dict()["checking"]["mode"] == "all"
        run(ip, "%%grad --quiet --check sample\n" + LONG_LOOP)
        assert report_dict()["checking"]["mode"] == "sample"
    finally:
        run(ip, "%config GradMagic.check = 'sample'")
    result, _ = run(ip, "%%grad --check most\n1")
    assert isinstance(result.error_in_exec, UsageError)


def test_the_code_after_a_sampled_loop_is_checked_again(ip):
    _, cap = run(ip, "%%grad --format text\n" + LONG_LOOP + "(w * 7).sum().backward()\nw.grad\n")
    report = report_dict()
    checking = report["checking"]
    assert checking["calls"] == 41 and checking["checked"][-1] == 41  # after the loop: lockstep
    assert checking["skipped"][-1] == [33, 40]
    last = report["backward_calls"][-1]
    assert last["call"] == 40 and last["status"] == "agree"
    text = reports_shown(cap)[0]
    assert "the other 34 ran at full speed, not checked" in " ".join(text.split())
    assert torch.equal(ip.user_ns["w"].grad, torch.full((3,), 39.0 + 7.0))


def test_help_names_the_check_modes(ip):
    with capture_output() as cap:
        ip.run_cell("%%grad?")
    assert "--check" in cap.stdout and "sample" in cap.stdout and "--check all" in cap.stdout
