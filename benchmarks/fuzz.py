"""Long differential-fuzzing run (issue 6): random torch programs, plain vs ``gradmagic.trace()``.

Run from the repository root::

    python3 benchmarks/fuzz.py --programs 10000            # the long run (~20 min on 2 shared cores)
    python3 benchmarks/fuzz.py --programs 200 --seed 7     # another stream of programs
    python3 benchmarks/fuzz.py --programs 500 --avoid-known-gaps --shrink --json out.json

Program ``k`` of a run is ``tests/recorder/fuzz_programs.random_program(seed + k)`` (no
hypothesis: fast, diverse, reproducible). Each runs plain and traced; ``check_program`` lists
every difference (user values, ``.grad``s, exceptions, report mismatches, unsupported calls,
"agree" through an unsupported op, leaf statuses and hints). Prints programs/s, crashes (the
checker itself raised), failing programs (and of those, the wrong answers) grouped by their first problem, the unsupported calls
met, and per-op coverage of the mapping table; writes each failing program to
``--out DIR`` (default ``test-output/fuzz``) as a runnable ``.py`` file with its problems
as comments. Exit status 1 when a program failed.
"""
from __future__ import annotations

import _harness as h  # first: pins BLAS threads before NumPy loads

import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(h.REPO_ROOT / "tests" / "recorder"))

import fuzz_programs as fp  # noqa: E402


def main(argv: list | None = None) -> int:
    parser = h.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000, help="how many programs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="first program seed (default 0)")
    parser.add_argument("--out", type=Path, default=h.REPO_ROOT / "test-output" / "fuzz",
                        help="folder for the failing programs")
    parser.add_argument("--shrink", action="store_true",
                        help="also write each failing program shrunk (statement by statement) as program_N.min.py")
    parser.add_argument("--avoid-known-gaps", action="store_true",
                        help="do not generate the constructs of fuzz_programs.KNOWN_GAPS (as CI does)")
    args = parser.parse_args(argv)
    n = 50 if args.quick else args.programs
    avoid = frozenset(fp.KNOWN_GAPS) if args.avoid_known_gaps else frozenset()
    notes = h.limit_threads()
    info = h.machine_info(notes)
    print(h.describe_machine(info))

    seen: Counter = Counter()
    problems: Counter = Counter()
    unsupported: Counter = Counter()
    failed: list = []
    differences: list = []
    gen_s = check_s = 0.0
    crashes = 0
    t0 = time.perf_counter()
    for k in range(n):
        seed = args.seed + k
        g0 = time.perf_counter()
        try:
            prog = fp.random_program(seed, avoid=avoid)
        except Exception:
            crashes += 1
            _write(args.out, seed, None, ["generator crashed:\n" + traceback.format_exc()])
            failed.append(seed)
            continue
        g1 = time.perf_counter()
        try:
            found = fp.check_program(prog)
        except Exception:
            crashes += 1
            found = ["crash:\n" + traceback.format_exc()]
        check_s += time.perf_counter() - g1
        gen_s += g1 - g0
        seen.update(prog.ops())
        unsupported.update(prog.unsupported)
        if found:
            failed.append(seed)
            if _is_difference(found):
                differences.append(seed)
            problems[_kind(found[0])] += 1
            _write(args.out, seed, prog, found)
            if args.shrink:
                _write_shrunk(args.out, seed, prog, found)
        if (k + 1) % 500 == 0:
            rate = (k + 1) / (time.perf_counter() - t0)
            print(f"  {k + 1} programs, {rate:.1f}/s, {len(failed)} failing", flush=True)
    elapsed = time.perf_counter() - t0
    cov = fp.coverage(seen)
    _print(n, elapsed, gen_s, check_s, crashes, failed, differences, problems, unsupported, seen, cov,
           args.out)
    h.write_json(args.json, {
        "machine": info, "programs": n, "seed": args.seed, "avoid": sorted(avoid), "elapsed_s": elapsed,
        "generate_s": gen_s, "check_s": check_s, "crashes": crashes, "failing_seeds": failed, "difference_seeds": differences,
        "problems": dict(problems), "unsupported": dict(unsupported), "calls": dict(seen),
        "coverage": cov})
    return 1 if failed else 0


#: problems that are wrong answers (gradmagic disagreeing with torch, calling something agree
#: that it could not check, or changing what the user's code does), as opposed to honest
#: "unchecked" verdicts and missed hints
_WRONG = ("mismatch:", "status differ", "differs", "agree although", "says agree", "crash")


def _is_difference(found: list) -> bool:
    """Does a failing program show a wrong answer, not only an honest "unchecked"?"""
    return any(any(w in p for w in _WRONG) for p in found)


def _kind(problem: str) -> str:
    """A problem's kind, without the variable/node names and numbers that differ between programs."""
    words = problem.split("\n", 1)[0].split()
    return " ".join(w for w in words if not any(ch.isdigit() for ch in w))[:90]


def _write(out: Path, seed: int, prog: "fp.Program | None", found: list) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = "# " + "\n# ".join(line for p in found for line in p.splitlines()) + "\n"
    text += f"# reproduce: fuzz_programs.random_program({seed}) in tests/recorder\n"
    if prog is not None:
        text += fp.PRELUDE + prog.source()
    (out / f"program_{seed}.py").write_text(text)


def _write_shrunk(out: Path, seed: int, prog: "fp.Program", found: list) -> None:
    """The failing program cut down to the statements its first problem needs."""
    kind = _kind(found[0])
    try:
        small = fp.shrink(prog, lambda problems: bool(problems) and _kind(problems[0]) == kind, budget=150)
    except Exception:  # a program the hand-written path cannot replay: keep the full one only
        return
    (out / f"program_{seed}.min.py").write_text(f"# {found[0]}\n" + fp.PRELUDE
                                                   + f"torch.manual_seed({prog.seed})\n" + small)


def _print(n: int, elapsed: float, gen_s: float, check_s: float, crashes: int, failed: list,
           differences: list, problems: Counter, unsupported: Counter, seen: Counter, cov: dict,
           out: Path) -> None:
    print()
    print(h.format_table(["programs", "time", "programs/s", "generate", "plain + traced + check",
                          "crashes", "failing", "differences", "calls"],
                         [[n, h.fmt_time(elapsed), f"{n / elapsed:.1f}", h.fmt_time(gen_s), h.fmt_time(check_s),
                           crashes, len(failed) - crashes, len(differences), sum(seen.values())]]))
    print("(failing: the report is not what the generator expected; differences: of those, the ones "
          "with a wrong answer — a value or gradient gradmagic calls different from torch's, 'agree' "
          "where it could not check, or a change to what the program does — seeds: "
          f"{differences[:20]}{' …' if len(differences) > 20 else ''})")
    if problems:
        print("\nfailing programs by their first problem (files in " + str(out) + "):")
        print(h.format_table(["problem", "programs"], problems.most_common()))
    print("\nunsupported calls met (opaque nodes; must be listed, never 'agree'):")
    print(h.format_table(["call", "programs"], sorted(unsupported.items())))
    print(f"\ncoverage of the mapping table: {cov['rows_hit']}/{cov['rows_total']} rows, "
          f"{cov['names_hit']}/{cov['names_total']} callables; rows never reached: {cov['rows_missing']}")
    rows = sorted(((name, c) for name, c in seen.items() if not fp.is_unsupported(name)), key=lambda x: -x[1])
    print("\ncalls per callable (most and least frequent):")
    print(h.format_table(["callable", "calls"], rows[:10] + [("…", "")] + rows[-10:]))


if __name__ == "__main__":
    sys.exit(main())
