"""Pins for the lowest-versions test environment, read from pyproject.toml.

Every runtime dependency with a ``>=`` lower bound in ``[project].dependencies`` becomes an
exact pin on that bound (``numpy>=1.24`` -> ``numpy==1.24``, which PEP 440 reads as 1.24.0),
so the bounds that pyproject.toml declares are the ones that scripts/compat.sh tests: there is
no second list to keep in step. ``--pin NAME==VERSION`` replaces one pin (torch: the lowest
CPU build this machine can install is not the declared floor, see scripts/compat.sh).
``--tools`` prints requirements of the named test tools from an optional-dependencies extra;
``--check FILE``, run by the venv's interpreter, fails unless what is installed there matches.

    python3 scripts/min_constraints.py --pin torch==2.13.0 > constraints.txt
    python3 scripts/min_constraints.py --tools test pytest hypothesis > tools.txt
    .venv-min/bin/python scripts/min_constraints.py --check constraints.txt
"""
from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*(?:;.*)?$")


def canonical(name: str) -> str:
    """PEP 503 normalised project name.

    >>> canonical("Pytest_Timeout")
    'pytest-timeout'
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(requirement: str) -> tuple[str, str]:
    """``(canonical name, version specifier)`` of a PEP 508 requirement (extras, markers dropped).

    >>> split_requirement("ipython>=8.0")
    ('ipython', '>=8.0')
    >>> split_requirement("anywidget[dev] >= 0.9, <1 ; python_version >= '3.10'")
    ('anywidget', '>= 0.9, <1')
    """
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canonical(match.group(1)), match.group(2)


def lower_bound(specifier: str) -> str | None:
    """The version of the one ``>=`` clause of a specifier, or None when it has none.

    >>> lower_bound(">=1.24, <3")
    '1.24'
    >>> lower_bound("~=2.0") is None
    True
    """
    bounds = [clause.strip()[2:].strip() for clause in specifier.split(",")
              if clause.strip().startswith(">=")]
    if len(bounds) > 1:
        raise ValueError(f"several >= bounds in {specifier!r}")
    return bounds[0] if bounds else None


def floor_pins(project: dict, overrides: dict[str, str]) -> list[str]:
    """``name==bound`` for each runtime dependency's ``>=`` bound; ``overrides`` replace a version.

    >>> floor_pins({"dependencies": ["numpy>=1.24", "torch>=2.1", "rich"]}, {"torch": "2.13.0"})
    ['numpy==1.24', 'torch==2.13.0']
    """
    pins = []
    for requirement in project["dependencies"]:
        name, specifier = split_requirement(requirement)
        version = overrides.get(name, lower_bound(specifier))
        if version is not None:
            pins.append(f"{name}=={version}")
    unknown = set(overrides) - {split_requirement(r)[0] for r in project["dependencies"]}
    if unknown:
        raise ValueError(f"--pin names no dependency of pyproject.toml: {sorted(unknown)}")
    return pins


def extra_requirements(project: dict, extra: str, names: list[str]) -> list[str]:
    """The requirement strings of ``names`` in the optional-dependencies ``extra``, in that order.

    >>> extra_requirements({"optional-dependencies": {"test": ["pytest>=8", "nbformat>=5.9"]}},
    ...                    "test", ["nbformat"])
    ['nbformat>=5.9']
    """
    listed = {split_requirement(r)[0]: r for r in project["optional-dependencies"][extra]}
    missing = [name for name in names if canonical(name) not in listed]
    if missing:
        raise ValueError(f"not in the {extra!r} extra of pyproject.toml: {missing}")
    return [listed[canonical(name)] for name in names]


def release(text: str) -> tuple[int, ...]:
    """The release numbers of a version, trailing zeros and any local label (``+cpu``) dropped.

    >>> release("2.13.0+cpu") == release("2.13") == (2, 13)
    True
    """
    numbers = [int(part) for part in re.match(r"\d+(?:\.\d+)*", text).group(0).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def installed_mismatches(pins: list[str]) -> list[str]:
    """One line per ``name==version`` pin that the running interpreter does not have installed.

    >>> installed_mismatches(["pip==0.0.1"])[0].startswith("pip: pinned 0.0.1, installed ")
    True
    """
    wrong = []
    for pin in pins:
        name, wanted = canonical_pin(pin)
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "nothing"
        if have == "nothing" or release(have) != release(wanted):
            wrong.append(f"{name}: pinned {wanted}, installed {have}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    """Print the floor pins (default) or the test tools' requirements, one a line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pin", action="append", default=[], metavar="NAME==VERSION",
                        help="replace the floor of one dependency (repeatable)")
    parser.add_argument("--tools", nargs="+", metavar=("EXTRA", "NAME"),
                        help="print these requirements of an optional-dependencies extra instead")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="exit 1 unless the pins in FILE are what this interpreter has installed")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    args = parser.parse_args(argv)
    try:
        lines = _lines(args)
    except ValueError as exc:  # a bad --pin, an unknown tool, a malformed requirement
        parser.error(str(exc))
    if lines is None:
        return 1
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


def _lines(args: argparse.Namespace) -> list[str] | None:
    """What main prints; None when ``--check`` found a mismatch (reported on stderr)."""
    if args.check:
        wrong = installed_mismatches(args.check.read_text(encoding="utf-8").split())
        sys.stderr.write("".join(f"min_constraints: {line}\n" for line in wrong))
        return None if wrong else []
    import tomllib  # here: --check also runs on a venv's interpreter, which may predate 3.11

    project = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))["project"]
    if args.tools:
        lines = extra_requirements(project, args.tools[0], args.tools[1:])
    else:
        overrides = dict(canonical_pin(pin) for pin in args.pin)
        lines = floor_pins(project, overrides)
        pinned = {canonical_pin(line)[0] for line in lines}
        for requirement in project["dependencies"]:
            if split_requirement(requirement)[0] not in pinned:
                sys.stderr.write(f"min_constraints: {requirement!r} has no >= bound to test\n")
    return lines


def canonical_pin(pin: str) -> tuple[str, str]:
    """``("torch", "2.13.0")`` from ``"torch==2.13.0"``.

    >>> canonical_pin("Torch==2.13.0")
    ('torch', '2.13.0')
    """
    name, sep, version = pin.partition("==")
    if not sep or not version:
        raise ValueError(f"--pin wants NAME==VERSION, got {pin!r}")
    return canonical(name), version.strip()


if __name__ == "__main__":
    sys.exit(main())
