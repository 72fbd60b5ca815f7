"""Random torch programs for differential fuzzing of the recorder, and their runner.

A :class:`Program` is plain Python source (``torch.manual_seed(..)``, factories, ops over
every ``TORCH_OPS`` row, views, in-place updates under ``no_grad``, several ``backward``
calls, ``retain_graph``, ``autograd.grad(create_graph=True)``, ``.grad`` zeroing) plus the
facts the generator learnt while building it: which torch callables each statement calls,
which calls are unsupported (no engine rule), and which leaves each backward call reaches
(directly, or through an unsupported op). ``repr(program)`` is its source, so a failing
hypothesis example can be pasted into a notebook as is.

The generator runs every statement on real torch while it builds the program (so shapes,
dtypes, ``requires_grad``, freed graphs and data-dependent shapes are always right) and
drops a statement that raises. :func:`check_program` then runs the program twice from the
same seed, plain and inside ``gradmagic.trace()``, and lists every difference.

>>> prog = random_program(0, avoid=frozenset(KNOWN_GAPS))
>>> prog.source().splitlines()[0].startswith("torch.manual_seed(")
True
>>> check_program(prog)
[]
"""
from __future__ import annotations

import json
import math
import random
import warnings
from collections import Counter
from dataclasses import dataclass, replace, field
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from torch.overrides import TorchFunctionMode

import recorder_helpers  # noqa: F401  (puts the repository root on sys.path)
from gradmagic.recorder import Session, trace
from gradmagic.recorder.crosscheck import compare
from gradmagic.recorder.mapping import TORCH_OPS, lookup

# ----------------------------------------------------------------------------- the program model

#: statements that call ``backward`` or ``autograd.grad`` (one report BackwardCall each)
CALL_KINDS = ("backward", "autograd_grad")


@dataclass(frozen=True)
class CallFacts:
    """What a ``backward``/``autograd.grad`` statement reaches, read from torch's graph.

    ``reached``: leaf variables whose gradient the call computes. ``tainted``: those whose
    gradient flows through an unsupported (opaque) op: gradmagic must never call them
    "agree". ``maybe``: data ancestors of an opaque op the call reaches (gradmagic may
    conservatively leave them unchecked). ``accumulated``: reached leaves that a second
    ``backward`` adds to with no zeroing/``= None``/``=``/edit of ``.grad`` in between (the
    report's "accumulated without clearing" hint, ``gradmagic.recorder.history``).
    """

    reached: frozenset = frozenset()
    tainted: frozenset = frozenset()
    maybe: frozenset = frozenset()
    accumulated: frozenset = frozenset()  # reached leaves flagged "accumulated without clearing"
    had_grad: frozenset = frozenset()  # reached leaves whose .grad was not None before the call
    #: reached leaves whose .grad the call left as it was (the same tensor, the same version):
    #: torch's edges to them carried no gradient (a derivative that is identically zero)
    untouched: frozenset = frozenset()


@dataclass(frozen=True)
class Stmt:
    """One statement (one or more source lines) of a program."""

    src: str
    kind: str  # setup | op | opaque | inplace | update | grad | backward | autograd_grad
    target: Optional[str] = None  # the variable it binds or changes
    ops: tuple = ()  # torch callables it called (recorder display names), filled by the generator
    facts: Optional[CallFacts] = None  # for backward / autograd_grad
    inputs: tuple = ()  # the variables it reads (for the data-ancestry bookkeeping)


@dataclass(frozen=True)
class Program:
    """A generated program: ``source()`` runs as is with ``torch``, ``F`` and ``np`` imported."""

    seed: int
    stmts: tuple
    unsupported: frozenset = frozenset()  # recorder names of the opaque calls it makes

    def source(self) -> str:
        return "\n".join(s.src for s in self.stmts) + "\n"

    def ops(self) -> Counter:
        """How often each torch callable is called (by the generator's run)."""
        return Counter(op for s in self.stmts for op in s.ops)

    def __repr__(self) -> str:
        return ("Program(\n# import torch, torch.nn.functional as F, numpy as np\n"
                + self.source() + ")")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # hypothesis prints examples this way
        p.text(repr(self))


PRELUDE = "import torch\nimport torch.nn.functional as F\nimport numpy as np\n"


#: more names a program may use (the families' helpers: custom Functions, ...), filled by
#: the family modules on import
NAMESPACE_EXTRAS: dict = {}


def fresh_namespace() -> dict:
    """The globals a program runs in."""
    return {"torch": torch, "F": F, "np": np, "__name__": "__fuzz__", **NAMESPACE_EXTRAS}


# ----------------------------------------------------------------------------- counting mode

class _Count(TorchFunctionMode):
    """Collects the recorder's display name of every torch callable called."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list = []
        self.opaque: set = set()
        self.fns: list = []  # autograd nodes made by the unsupported calls

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        spec = lookup(func)
        out = func(*args, **(kwargs or {}))
        if spec.kind != "ignore":
            self.names.append(spec.name)
            if spec.kind == "auto" and _has_tensor(out):
                self.opaque.add(spec.name)
                outs = out if isinstance(out, (tuple, list)) else (out,)
                self.fns.extend(o.grad_fn for o in outs if isinstance(o, torch.Tensor) and o.grad_fn is not None)
        return out


def _has_tensor(out: Any) -> bool:
    return isinstance(out, torch.Tensor) or (isinstance(out, (tuple, list))
                                             and any(isinstance(o, torch.Tensor) for o in out))


def is_unsupported(name: str) -> bool:
    """A callable the recorder has no row for (it becomes an opaque node).

    >>> is_unsupported("torch.special.i0e"), is_unsupported("Tensor.add")
    (True, False)
    """
    return name not in _TABLE_NAMES


_TABLE_NAMES = {s.name for s in TORCH_OPS.values()}


# ----------------------------------------------------------------------------- known gaps
#: constructs that expose a known, not yet fixed bug outside the fuzzer's files: the CI test
#: avoids them (each has a strict-xfail regression test in test_fuzz_differential.py), the long
#: run (benchmarks/fuzz.py) keeps them unless told ``--avoid-known-gaps``.
KNOWN_GAPS: dict = {}  # name -> what goes wrong and where; none open now


# ----------------------------------------------------------------------------- the generator

class Choices:
    """Where a program's random choices come from: a hypothesis ``draw`` (shrinkable) or a
    seeded ``random.Random`` (fast and diverse, for the long run).

    >>> c = Choices(rng=random.Random(1))
    >>> c.int(0, 3) in range(4), c.choice("ab") in "ab", len(c.subset([1, 2, 3], 1, 2)) in (1, 2)
    (True, True, True)
    """

    def __init__(self, draw: Optional[Callable] = None, rng: Optional[random.Random] = None) -> None:
        self.draw = draw
        self.rng = rng

    def choice(self, items: Any) -> Any:
        items = list(items)
        return self.draw(st.sampled_from(items)) if self.draw else self.rng.choice(items)

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi)) if self.draw else self.rng.randint(lo, hi)

    def bool(self) -> bool:
        return self.draw(st.booleans()) if self.draw else self.rng.random() < 0.5

    def float(self, lo: float, hi: float) -> float:
        return self.draw(st.floats(lo, hi, allow_nan=False)) if self.draw else self.rng.uniform(lo, hi)

    def perm(self, items: list) -> list:
        if self.draw:
            return self.draw(st.permutations(items))
        out = list(items)
        self.rng.shuffle(out)
        return out

    def subset(self, items: list, lo: int, hi: int) -> list:
        if self.draw:
            return self.draw(st.lists(st.sampled_from(items), min_size=lo, max_size=hi, unique=True))
        return self.rng.sample(items, min(len(items), self.rng.randint(lo, hi)))

    def shapes(self, n: int, max_dims: int = 3, max_side: int = 3) -> list:
        """``n`` mutually broadcastable shapes (0-d to ``max_dims``-d, sides 1 to ``max_side``)."""
        if self.draw:
            return list(self.draw(mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=max_dims,
                                                                 min_side=1, max_side=max_side)).input_shapes)
        base = [self.int(1, max_side) for _ in range(max_dims)]
        out = []
        for _ in range(n):
            nd = self.int(0, max_dims)
            out.append(tuple(1 if self.int(0, 3) == 0 else s for s in base[max_dims - nd:]))
        return out


class Reject(Exception):
    """A statement that torch itself refused while the program was built."""


class Builder:
    """Builds a program statement by statement, running each on real torch as it goes."""

    def __init__(self, choices: Optional[Choices], seed: int, avoid: frozenset = frozenset()) -> None:
        self.c = choices
        self.avoid = avoid  # names of KNOWN_GAPS not to generate
        self.seed = seed
        self.stmts: list = []
        self.env = fresh_namespace()
        self.count = 0
        self.anc: dict = {}  # var -> frozenset of leaf vars it was computed from (any edge)
        self.opaque_fns: dict = {}  # id(grad_fn) -> (grad_fn, var, hard) of opaque outputs
        # (hard: torch's gradient below surely bypasses the engine; soft: it may)
        self.dead: set = set()  # vars whose graph was freed or whose saved inputs changed
        self.leaves: list = []
        self.since_clear: dict = {}  # leaf -> backward calls summed into .grad since it was cleared
        self.rejected = 0
        self.opaque: set = set()  # unsupported callables the program called (tensor results)
        self.add(Stmt(f"torch.manual_seed({seed})", "setup"))

    # ----- random choices (see Choices)
    def choice(self, items: Any) -> Any:
        return self.c.choice(items)

    def int(self, lo: int, hi: int) -> int:
        return self.c.int(lo, hi)

    def bool(self) -> bool:
        return self.c.bool()

    def float(self, lo: float, hi: float) -> float:
        return self.c.float(lo, hi)

    def perm(self, items: list) -> list:
        return self.c.perm(items)

    def subset(self, items: list, lo: int, hi: int) -> list:
        return self.c.subset(items, lo, hi)

    # ----- names and lookups
    def name(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def tensors(self, pred: Callable[[torch.Tensor], bool] = lambda t: True,
                alive: bool = True) -> list:
        out = []
        for k, v in self.env.items():
            if isinstance(v, torch.Tensor) and not (alive and k in self.dead):
                try:
                    if pred(v):
                        out.append(k)
                except RuntimeError:  # a view whose base changed in place: unusable
                    self.dead.add(k)
        return out

    def pick(self, pred: Callable[[torch.Tensor], bool] = lambda t: True) -> Optional[str]:
        cands = self.tensors(pred)
        return self.choice(cands) if cands else None

    def pick_float(self, pred: Callable[[torch.Tensor], bool] = lambda t: True) -> Optional[str]:
        return self.pick(lambda t: t.dtype in (torch.float32, torch.float64) and pred(t))

    def ancestors(self, *names: str) -> frozenset:
        out: frozenset = frozenset()
        for n in names:
            out |= self.anc.get(n, frozenset())
        return out

    # ----- running statements
    def add(self, stmt: Stmt, inputs: tuple = ()) -> bool:
        """Run ``stmt``; keep it (with the callables it called) unless torch raised."""
        facts = self._call_facts(stmt) if stmt.kind in CALL_KINDS else None
        grads = {x: (self.env[x].grad, self.env[x].grad._version) for x in facts.had_grad} if facts else {}
        mode = _Count()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with mode:
                    exec(compile(stmt.src, "<fuzz>", "exec"), self.env)
        except Exception:
            self.rejected += 1
            self._rebuild()
            return False
        self.opaque |= mode.opaque
        if facts is not None and stmt.kind == "backward":  # a leaf in torch's graph that the
            # call left without a gradient (a double-backward node with no path to it) was not reached
            got = frozenset(x for x in facts.reached if self.env[x].grad is not None)
            same = frozenset(x for x, (g, v) in grads.items() if self.env[x].grad is g and g._version == v)
            facts = replace(facts, reached=got, tainted=facts.tainted & got,
                            accumulated=(facts.accumulated & got) - same, untouched=same)
        kind = "opaque" if mode.opaque and stmt.kind == "op" else stmt.kind
        stmt = Stmt(stmt.src, kind, stmt.target, tuple(mode.names), facts, tuple(inputs))
        self.stmts.append(stmt)
        self._after(stmt, mode.fns)
        return True

    def _after(self, stmt: Stmt, opaque_fns: Any = None) -> None:
        """Bookkeeping after ``stmt`` ran: ancestry, leaves, opaque nodes, freed graphs.
        ``opaque_fns``: the autograd nodes its unsupported calls made (None: find them again)."""
        for fn in opaque_fns or ():
            self.opaque_fns[id(fn)] = (fn, stmt.target, True)
        target = stmt.target
        if target is not None:
            t = self.env.get(target)
            self.anc[target] = self.anc.get(target, frozenset()) | self.ancestors(*stmt.inputs)
            if isinstance(t, torch.Tensor) and t.is_leaf and t.requires_grad and self.leaf_name(target) is None:
                self.anc[target] = frozenset({target})
                self.leaves.append(target)
        if stmt.kind == "autograd_grad":
            self._opaque_grads(stmt)
        if stmt.kind == "backward":
            for x in stmt.facts.reached - stmt.facts.untouched:
                self.since_clear[x] = self.since_clear.get(x, 0) + 1 if x in stmt.facts.had_grad else 1
        if stmt.kind == "grad" and any(p in stmt.src for p in _CLEARING):
            self.since_clear[self.leaf_name(target) or target] = 0
        if stmt.kind in CALL_KINDS and not ("retain_graph=True" in stmt.src or "create_graph=True" in stmt.src):
            self._free(stmt)
        if stmt.kind == "update" and target is not None:
            self._kill_dependents(target)

    def _rebuild(self) -> None:
        """Re-run the kept statements on a fresh namespace (a rejected one may have
        changed state before it raised)."""
        stmts, self.stmts = self.stmts, []
        self.env, self.anc, self.opaque_fns, self.dead, self.leaves = fresh_namespace(), {}, {}, set(), []
        self.since_clear = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in stmts:
                mode = _Count()
                with mode:
                    exec(compile(s.src, "<fuzz>", "exec"), self.env)
                self.stmts.append(s)
                self._after(s, mode.fns)

    def leaf_name(self, var: Optional[str]) -> Optional[str]:
        """The leaf variable naming the same tensor as ``var`` (``t = x.type_as(x)`` is ``x``)."""
        t = self.env.get(var) if var is not None else None
        return next((k for k in self.leaves if self.env.get(k) is t), None) if t is not None else None

    def reached(self, var: str) -> list:
        """Leaf variables whose gradient a backward from ``var`` computes (torch's graph)."""
        return sorted({x for n in self._graph(self.env[var]) for x in [self._leaf_var(n)] if x is not None})

    # ----- graph facts
    def _graph(self, t: torch.Tensor) -> list:
        """Every autograd node reachable from ``t``."""
        fn = t.grad_fn
        if fn is None:
            return []
        seen, stack, out = {id(fn)}, [fn], []
        while stack:
            n = stack.pop()
            out.append(n)
            for nxt, _ in n.next_functions:
                if nxt is not None and id(nxt) not in seen:
                    seen.add(id(nxt))
                    stack.append(nxt)
        return out

    def _leaf_var(self, node: Any) -> Optional[str]:
        var = getattr(node, "variable", None)
        if var is None:
            return None
        for k in self.leaves:
            if self.env.get(k) is var:
                return k
        return None

    def _call_facts(self, stmt: Stmt) -> CallFacts:
        roots = [self.env[r] for r in stmt.target.split(",")] if stmt.target else []
        reached, tainted, maybe = set(), set(), set()
        for root in roots:
            for node in self._graph(root):
                leaf = self._leaf_var(node)
                if leaf is not None:
                    reached.add(leaf)
                hit = self.opaque_fns.get(id(node))
                if hit is not None and hit[0] is node:
                    maybe |= self.anc.get(hit[1], frozenset())
                    for below in self._graph_from(node):
                        leaf = self._leaf_var(below)
                        if leaf is not None:
                            (tainted if hit[2] else maybe).add(leaf)
        only = _inputs_of(stmt.src)
        if only is not None:
            reached &= only
            tainted &= only
        for root in roots:
            leaf = next((k for k in self.leaves if self.env[k] is root), None)
            if leaf is not None and stmt.kind == "backward":
                reached.add(leaf)
        had = {x for x in reached if self.env[x].grad is not None} if stmt.kind == "backward" else set()
        acc = {x for x in had if self.since_clear.get(x, 0) >= 1}
        return CallFacts(frozenset(reached), frozenset(tainted), frozenset(maybe | tainted), frozenset(acc),
                         frozenset(had))

    def _opaque_grads(self, stmt: Stmt) -> None:
        """``g, = torch.autograd.grad(loss, [x], create_graph=True)`` through an opaque op:
        gradmagic draws ``g`` as opaque too (its graph below is torch's only)."""
        outs = [o.strip() for o in stmt.src.split("= torch.autograd.grad(")[0].split(",") if o.strip()]
        ins = _input_list(stmt.src) or []  # (in order: sorting by str.index found x1 inside x13)
        for g, x in zip(outs, ins):
            t = self.env.get(g)
            if isinstance(t, torch.Tensor) and t.grad_fn is not None and x in stmt.facts.maybe:
                self.opaque_fns[id(t.grad_fn)] = (t.grad_fn, g, x in stmt.facts.tainted)
                self.anc[g] = self.anc.get(g, frozenset()) | stmt.facts.maybe

    def _graph_from(self, fn: Any) -> list:
        class _Holder:
            grad_fn = fn
        return self._graph(_Holder)  # type: ignore[arg-type]

    def _free(self, stmt: Stmt) -> None:
        """After a backward that frees its graph, no variable sharing a node of it is usable."""
        roots = [self.env[r] for r in (stmt.target or "").split(",") if r]
        freed = {id(n) for r in roots for n in self._graph(r) if not hasattr(n, "variable")}
        for k in self.tensors(lambda t: t.grad_fn is not None):
            if any(id(n) in freed for n in self._graph(self.env[k])):
                self.dead.add(k)

    def _kill_dependents(self, leaf: str) -> None:
        """A leaf changed in place: graphs that saved it can no longer run backward."""
        for k in self.tensors(lambda t: t.grad_fn is not None):
            if leaf in self.anc.get(k, ()):
                self.dead.add(k)


#: edits of ``x.grad`` that count as clearing it (history.CLEARING: zero_, = None, = t, edits)
_CLEARING = (".grad.zero_()", ".grad = ", ".grad.mul_(", ".grad.data.zero_()")


def _words(src: str) -> set:
    out, word = set(), []
    for ch in src + " ":
        if ch.isalnum() or ch == "_":
            word.append(ch)
        elif word:
            out.add("".join(word))
            word = []
    return out


def _inputs_of(src: str) -> Optional[set]:
    """The variables named in ``inputs=[...]`` of a backward or autograd.grad statement."""
    names = _input_list(src)
    return None if names is None else set(names)


def _input_list(src: str) -> Optional[list]:
    """``_inputs_of`` in the order written (``autograd.grad``'s results come in that order).

    >>> _input_list("g1, g2, = torch.autograd.grad(loss, [x13, x1], create_graph=True)")
    ['x13', 'x1']
    """
    key = "inputs=[" if "backward" in src else "grad("
    if key not in src:
        return None
    if key == "grad(":
        inner = src.split("[", 1)[1].split("]", 1)[0]
    else:
        inner = src.split(key, 1)[1].split("]", 1)[0]
    return [w.strip() for w in inner.split(",") if w.strip()]


# ----------------------------------------------------------------------------- spelling helpers

_ROWS: dict = {}
for _func, _spec in TORCH_OPS.items():
    if _spec.kind in ("op", "inplace", "random"):
        _ROWS.setdefault((_spec.kind, id(_spec.adapt)), []).append(_spec.name)
_ROW_OF = {n: names for names in _ROWS.values() for n in names}


def aliases(name: str) -> list:
    """Every recorder name of the table row ``name`` belongs to (same adapter).

    >>> sorted(aliases("Tensor.mul"))[:3]
    ['Tensor.__mul__', 'Tensor.__rmul__', 'Tensor.mul']
    """
    return sorted(_ROW_OF[name])


def aliases_of_kind(kind: str) -> list:
    """Every recorder name of the table's rows of ``kind`` (``"exposed"``, ``"detach_"`` ...)."""
    return sorted(s.name for s in TORCH_OPS.values() if s.kind == kind)


#: table rows torch never hands to ``__torch_function__`` (no tensor argument reaches the
#: mode): their results are first seen, later, as constants
UNREACHABLE = frozenset({"torch.from_numpy", "torch.range"})


def coverage(seen: Counter) -> dict:
    """How much of the mapping table the callables in ``seen`` exercise.

    A *row* is one adapter with its aliases (``Tensor.mul``, ``torch.mul``, ``Tensor.__rmul__`` ...);
    each factory and each autograd-state callable is a row of its own.

    >>> cov = coverage(Counter({"Tensor.mul": 1}))
    >>> cov["rows_hit"], "Tensor.mul" in cov["rows_missing"]
    (1, False)
    """
    rows: dict = {}
    for spec in TORCH_OPS.values():
        if spec.kind == "ignore":
            continue
        key = (spec.kind, id(spec.adapt)) if spec.kind in ("op", "inplace", "random") else spec.name
        rows.setdefault(key, []).append(spec.name)
    names = {n for group in rows.values() for n in group}
    missing_rows = sorted(min(g) for g in rows.values() if not any(seen.get(n) for n in g))
    hit = {n for n in names if seen.get(n)}
    return {"rows_total": len(rows), "rows_hit": len(rows) - len(missing_rows), "rows_missing": missing_rows,
            "names_total": len(names), "names_hit": len(hit), "names_missing": sorted(names - hit)}


def spell(name: str, recv: str, args: str = "") -> str:
    """Source of calling callable ``name`` on ``recv`` with ``args`` (text).

    >>> spell("torch.add", "a", "b"), spell("Tensor.T", "a"), spell("torch.nn.functional.relu", "a")
    ('torch.add(a, b)', 'a.T', 'F.relu(a)')
    """
    if name in ("Tensor.T", "Tensor.mT"):
        return f"{recv}.{name[7:]}"
    if name.startswith("Tensor."):
        return f"{recv}.{name[7:]}({args})"
    fn = "F." + name[len("torch.nn.functional."):] if name.startswith("torch.nn.functional.") else name
    return f"{fn}({recv}, {args})" if args else f"{fn}({recv})"


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _bcast(a: tuple, b: tuple) -> bool:
    try:
        torch.broadcast_shapes(a, b)
        return True
    except RuntimeError:
        return False


def _lit(x: float) -> str:
    return repr(round(x, 2))


# ----------------------------------------------------------------------------- op families
# Each family is a function (builder) -> bool that adds one or a few statements; it returns
# False when the pool has nothing it applies to. Families pick an alias of their table row
# with ``b.choice(aliases(...))`` so every spelling of every row is exercised.

Family = Callable[[Builder], bool]
FAMILIES: dict = {}


def family(*names: str, weight: int = 1) -> Callable[[Family], Family]:
    """Register a family under the table names it covers (``weight``: relative frequency)."""
    def deco(fn: Family) -> Family:
        FAMILIES[fn.__name__] = (fn, names, weight)
        return fn
    return deco


def _op(b: Builder, expr: str, inputs: tuple, kind: str = "op") -> bool:
    var = b.name()
    return b.add(Stmt(f"{var} = {expr}", kind, var), inputs)


def _choose(b: Builder, names: list) -> str:
    return b.choice(sorted(set(names)))


def _second(b: Builder, a: str) -> tuple:
    """A second operand broadcastable with ``a``: a pool tensor or a literal."""
    sa = _shape(b.env[a])
    other = b.pick_float(lambda t: _bcast(sa, _shape(t)))
    if other is None or b.int(0, 4) == 0:
        return _lit(b.float(-2, 2)), ()
    return other, (other,)


_BINARY = {  # row name -> operator spelling (None: calls only)
    "Tensor.__add__": "{a} + {b}", "Tensor.__sub__": "{a} - {b}", "Tensor.__mul__": "{a} * {b}",
    "Tensor.maximum": None, "Tensor.minimum": None,
}


@family(*[n for r in _BINARY for n in aliases(r)], weight=6)
def binary(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    row = b.choice(sorted(_BINARY))
    other, ins = _second(b, a)
    if row in ("Tensor.maximum", "Tensor.minimum") and not ins:
        other = f"torch.tensor({other})"
    name = _choose(b, aliases(row) + ([row] if _BINARY[row] else []))
    if _BINARY[row] and b.bool():
        expr = _BINARY[row].format(a=a, b=other)
    else:
        expr = spell(name, a, other)
    return _op(b, expr, (a, *ins))


@family(*aliases("Tensor.__rsub__"), *aliases("Tensor.__truediv__"), *aliases("Tensor.__rtruediv__"),
        *aliases("Tensor.__pow__"), *aliases("Tensor.__rpow__"), *aliases("Tensor.__floordiv__"),
        *aliases("Tensor.__mod__"), weight=3)
def arithmetic(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    other, ins = _second(b, a)
    kind = b.choice(["rsub", "div", "rdiv", "pow", "rpow", "floordiv", "mod"])
    pos = f"({a}.abs() + 0.5)"
    safe = f"({other} * {other} + 0.5)" if ins else repr(abs(float(other)) + 0.5)
    forms = {
        "rsub": [f"1.5 - {a}", spell(_choose(b, aliases("Tensor.__rsub__")), a, other)],
        "div": [f"{a} / {safe}", spell(_choose(b, aliases("Tensor.__truediv__")), a, safe)],
        "rdiv": [f"2.0 / {pos}", spell(_choose(b, aliases("Tensor.__rtruediv__")), pos, "2.0")],
        "pow": [f"{a} ** 2", f"{a} ** 3", f"{pos} ** 0.5", f"{pos} ** -1.5", f"{pos} ** {safe}",
                spell(_choose(b, aliases("Tensor.__pow__")), a, "2")],
        "rpow": [f"2 ** {a}.tanh()", spell(_choose(b, aliases("Tensor.__rpow__")), f"{a}.tanh()", "3.0")],
        "floordiv": [f"{a} // {safe}", spell(_choose(b, aliases("Tensor.__floordiv__")), a, safe)],
        "mod": [f"{a} % {safe}", spell(_choose(b, aliases("Tensor.__mod__")), a, safe)],
    }[kind]
    return _op(b, b.choice(forms), (a, *ins))


_UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "sign", "sin", "cos", "tan",
          "reciprocal", "floor", "ceil", "round", "erf", "tanh", "sigmoid", "relu", "neg", "abs"]
#: input domains: the argument is wrapped so values stay where the function is smooth and finite
_DOMAIN = {"log": "({a}.abs() + 0.5)", "sqrt": "({a}.abs() + 0.5)", "rsqrt": "({a}.abs() + 0.5)",
           "reciprocal": "({a}.abs() + 0.5)", "log1p": "{a}.abs()", "tan": "{a}.tanh()",
           "exp": "{a}.tanh()", "expm1": "{a}.tanh()"}


@family(*[n for u in _UNARY for n in aliases(f"Tensor.{u}" if f"Tensor.{u}" in _ROW_OF else f"torch.{u}")],
        *aliases("torch.nn.functional.leaky_relu"), *aliases("torch.nn.functional.gelu"),
        *aliases("torch.nn.functional.softplus"), weight=6)
def unary(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    u = b.choice(_UNARY + ["leaky_relu", "gelu", "softplus"])
    recv = _DOMAIN.get(u, "{a}").format(a=a)
    if u in ("leaky_relu", "gelu", "softplus"):
        extra = {"leaky_relu": ["", "0.2", "negative_slope=0.05"], "gelu": ["", "approximate='tanh'"],
                 "softplus": ["", "beta=2.0"]}[u]
        expr = spell(f"torch.nn.functional.{u}", recv, b.choice(extra))
    else:
        row = f"Tensor.{u}" if f"Tensor.{u}" in _ROW_OF else f"torch.{u}"
        expr = spell(_choose(b, aliases(row)), recv)
        if u == "neg" and b.bool():
            expr = f"-{recv}"
        if u == "abs" and b.bool():
            expr = f"abs({recv})"
    return _op(b, expr, (a,))


@family(*aliases("Tensor.clamp"), *aliases("Tensor.where"), *aliases("torch.where"), weight=2)
def clamp_where(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    if b.bool():
        args = b.choice(["-0.5, 0.5", "min=-0.3", "max=0.2", "-1.0"])
        return _op(b, spell(_choose(b, aliases("Tensor.clamp")), a, args), (a,))
    other, ins = _second(b, a)
    form = _choose(b, aliases("Tensor.where") + aliases("torch.where"))
    cond = f"{a} > 0"
    expr = f"torch.where({cond}, {a}, {other})" if form.startswith("torch") else f"{a}.where({cond}, {other})"
    if not ins and form.startswith("torch"):
        expr = f"torch.where({cond}, {a}, torch.tensor({other}))"
    return _op(b, expr, (a, *ins))


_COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"]


@family(*[n for c in _COMPARE for n in aliases(f"Tensor.{c}")], *aliases("Tensor.logical_not"),
        *aliases("Tensor.logical_and"), *aliases("Tensor.logical_or"), *aliases("Tensor.isnan"),
        *aliases("Tensor.all"), *aliases("Tensor.any"), weight=2)
def logic(b: Builder) -> bool:
    """Comparisons and boolean logic (not differentiable), sometimes used as a 0/1 factor."""
    a = b.pick_float()
    if a is None:
        return False
    other, ins = _second(b, a)
    mask = spell(_choose(b, [n for c in _COMPARE for n in aliases(f"Tensor.{c}")]), a, other)
    step = b.choice(["mask", "not", "and", "or", "isnan", "all", "any", "float"])
    if step == "not":
        mask = b.choice([f"~({mask})", spell(_choose(b, aliases("Tensor.logical_not")), f"({mask})")])
    elif step in ("and", "or"):
        op = "&" if step == "and" else "|"
        mask = b.choice([f"({mask}) {op} ({a} < 1.0)",
                                       spell(_choose(b, aliases(f"Tensor.logical_{step}")), f"({mask})",
                                             f"{a} < 1.0")])
    elif step == "isnan":
        mask = spell(_choose(b, aliases("Tensor.isnan")), a)
    elif step in ("all", "any"):
        dim = b.choice(["", "0"]) if b.env[a].dim() else ""
        mask = spell(_choose(b, aliases(f"Tensor.{step}")), f"({mask})", dim)
    elif step == "float":
        mask = f"({mask}).float() * {a}"
    return _op(b, mask, (a, *ins))


_REDUCE = ["sum", "mean", "prod", "var", "std", "amax", "amin", "logsumexp", "norm", "max", "min",
           "argmax", "argmin", "softmax", "log_softmax", "cumsum"]


@family(*[n for r in _REDUCE for n in aliases(f"Tensor.{r}")], weight=5)
def reduce(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    t = b.env[a]
    r = b.choice(_REDUCE)
    name = _choose(b, aliases(f"Tensor.{r}"))
    dims = [str(d) for d in range(-t.dim(), t.dim())] if t.dim() else []
    keep = b.choice(["", ", keepdim=True", ", keepdim=False"])
    needs_dim = r in ("softmax", "log_softmax", "cumsum", "logsumexp")
    if needs_dim and not dims:
        dims = ["0"] if r != "logsumexp" else []
        if r == "logsumexp":
            return False
    dim = b.choice(dims) if dims and (needs_dim or b.bool()) else None
    if r in ("softmax", "log_softmax", "cumsum"):
        args = f"dim={dim}" if name.startswith("torch.nn") or b.bool() else dim
    elif r in ("max", "min"):
        if dim is None:
            args = ""
        else:
            pick = b.choice([".values", ".indices", "[0]"])
            return _op(b, spell(name, a, dim + keep) + pick, (a,))
    elif r in ("var", "std"):
        extra = b.choice(["", ", unbiased=False", ", correction=0"])
        if t.numel() < 2 or (dim is not None and t.shape[int(dim)] < 2):
            extra = ", unbiased=False"
        args = (dim + keep + extra) if dim is not None else extra.lstrip(", ")
    elif r == "norm":
        p = b.choice(["", "p=2", "p=1"])
        args = ", ".join(x for x in (p, f"dim={dim}{keep}" if dim is not None else "") if x)
    elif r == "prod":
        return _op(b, spell(name, f"{a}.tanh()", (dim + keep) if dim is not None else ""), (a,))
    else:
        args = (dim + keep) if dim is not None else ""
    return _op(b, spell(name, a, args), (a,))


@family(*aliases("Tensor.__matmul__"), *aliases("Tensor.__rmatmul__"), *aliases("Tensor.dot"),
        *aliases("Tensor.mv"), *aliases("Tensor.mm"), *aliases("Tensor.bmm"), *aliases("Tensor.outer"),
        *aliases("torch.nn.functional.linear"), weight=3)
def matmul(b: Builder) -> bool:
    a = b.pick_float(lambda t: 1 <= t.dim() <= 3 and t.dtype == torch.float32)
    if a is None:
        return False
    t = b.env[a]
    n = t.shape[-1]
    m = b.int(1, 3)
    by_ndim = {1: ["dot", "outer"], 2: ["mv", "mm"], 3: ["bmm"]}[t.dim()]
    kind = b.choice(["matmul", "rmatmul", "linear"] + by_ndim * 2)
    wshape = {"matmul": (n, m), "rmatmul": (n, m), "dot": (n,), "mv": (n,), "mm": (n, m),
              "bmm": (t.shape[0], n, m) if t.dim() == 3 else None, "outer": (m,), "linear": (m, n)}[kind]
    w = b.name("w")
    b.add(Stmt(f"{w} = torch.randn({wshape}, requires_grad=True)", "setup", w))
    if kind == "rmatmul":
        expr = f"{w}.__rmatmul__({a})"
    elif kind == "matmul":
        expr = b.choice([f"{a} @ {w}", spell(_choose(b, aliases("Tensor.__matmul__")), a, w)])
    elif kind == "linear":
        bias = b.choice(["", f", torch.zeros({m})", f", bias=torch.ones({m})"])
        expr = f"F.linear({a}, {w}{bias})"
    else:
        expr = spell(_choose(b, aliases(f"Tensor.{kind}")), a, w)
    return _op(b, expr, (a, w))


# ----- shapes, views, indexing
@family(*aliases("Tensor.reshape"), *aliases("Tensor.view_as"), *aliases("Tensor.flatten"),
        *aliases("Tensor.squeeze"), *aliases("Tensor.unsqueeze"), *aliases("Tensor.transpose"),
        *aliases("Tensor.t"), *aliases("Tensor.T"), *aliases("Tensor.mT"), *aliases("Tensor.permute"),
        *aliases("Tensor.expand"), *aliases("Tensor.expand_as"), *aliases("Tensor.broadcast_to"),
        *aliases("Tensor.repeat"), *aliases("Tensor.flip"), weight=5)
def view(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    t = b.env[a]
    nd, shape = t.dim(), _shape(t)
    kind = b.choice(["reshape", "view_as", "flatten", "squeeze", "unsqueeze", "transpose",
                                   "t", "T", "mT", "permute", "expand", "expand_as", "broadcast_to",
                                   "repeat", "flip"])
    d = b.int(-nd, nd - 1) if nd else 0
    if kind == "reshape":
        target = b.choice([(-1,), tuple(reversed(shape)), (1, *shape), (t.numel(), 1)])
        args = ", ".join(map(str, target)) if b.bool() else repr(tuple(target))
        name = _choose(b, aliases("Tensor.reshape"))
        if name == "Tensor.view":
            a = f"{a}.contiguous()" if not t.is_contiguous() else a
        expr = spell(name, a, args)
    elif kind == "view_as":
        other = b.pick_float(lambda u: u.numel() == t.numel())
        expr = spell(_choose(b, aliases("Tensor.view_as")), f"{a}.contiguous()", other)
    elif kind == "flatten":
        expr = spell(_choose(b, aliases("Tensor.flatten")), a, b.choice(["", "0", "-1"]) if nd else "")
    elif kind == "squeeze":
        expr = spell(_choose(b, aliases("Tensor.squeeze")), a, str(d) if nd and b.bool() else "")
    elif kind == "unsqueeze":
        expr = spell(_choose(b, aliases("Tensor.unsqueeze")), a, str(b.int(-nd - 1, nd)))
    elif kind == "transpose" and nd >= 2:
        expr = spell(_choose(b, aliases("Tensor.transpose")), a, f"{d}, {b.int(-nd, nd - 1)}")
    elif kind == "t" and nd <= 2:
        expr = spell(_choose(b, aliases("Tensor.t")), a)
    elif kind == "T" and nd in (0, 2):
        expr = f"{a}.T"
    elif kind == "mT" and nd >= 2:
        expr = f"{a}.mT"
    elif kind == "permute" and nd >= 1:
        perm = b.perm(list(range(nd)))
        name = _choose(b, aliases("Tensor.permute"))
        expr = spell(name, a, ", ".join(map(str, perm)) if name.startswith("Tensor") else repr(tuple(perm)))
    elif kind in ("expand", "broadcast_to"):
        target = (2, *[s if s != 1 else 3 for s in shape])
        expr = spell(_choose(b, aliases(f"Tensor.{kind}")), a,
                     repr(target) if kind == "broadcast_to" else ", ".join(map(str, target)))
    elif kind == "expand_as":
        other = b.pick_float(lambda u: u.dim() >= nd and _bcast(shape, _shape(u))
                             and torch.broadcast_shapes(shape, _shape(u)) == _shape(u))
        expr = spell(_choose(b, aliases("Tensor.expand_as")), a, other)
    elif kind == "repeat":
        reps = (2,) * max(nd, 1)
        expr = spell(_choose(b, aliases("Tensor.repeat")), a, ", ".join(map(str, reps)))
    elif kind == "flip" and nd >= 1:
        expr = spell(_choose(b, aliases("Tensor.flip")), a, f"[{d}]" if b.bool() else f"({d},)")
    else:
        return False
    return _op(b, expr, (a,))


def _index(b: Builder, t: torch.Tensor) -> Optional[str]:
    """A random NumPy-style index for ``t`` (ints, slices, None, Ellipsis, lists, masks)."""
    if t.dim() == 0:
        return b.choice(["...", "None", "()"])
    if 0 in t.shape:
        return "..."
    if t.dim() >= 2 and b.int(0, 3) == 0:
        return _apart_index(b, t)
    parts = []
    for size in t.shape[: b.int(1, t.dim())]:
        parts.append(b.choice([
            str(b.int(-size, size - 1)), ":", "1:", "::2", "-1:", ":-1" if size > 1 else ":",
            f"[{b.int(0, size - 1)}, 0]", "None", "..."]))
    if parts.count("...") > 1:
        parts = [p for p in parts if p != "..."] or [":"]
    lists = [p for p in parts if p.startswith("[")]
    if len(lists) > 1:  # advanced indices must broadcast: keep one
        parts = [p if not p.startswith("[") or p is lists[0] else ":" for p in parts]
    return ", ".join(parts)


def _apart_index(b: Builder, t: torch.Tensor) -> str:
    """An int and an index list with a slice, None or Ellipsis between them (``x[0, :, [1, 0]]``):
    torch selects with the int first, so the list's dims stay in place (NumPy's go first)."""
    sep = b.choice([":", "None", "..."] if t.dim() >= 3 else ["None", "..."])
    second = {":": 2, "None": 1, "...": t.dim() - 1}[sep]
    first_int = b.bool()
    int_dim, list_dim = (0, second) if first_int else (second, 0)
    i = str(b.int(-t.shape[int_dim], t.shape[int_dim] - 1))
    lst = f"[{b.int(0, t.shape[list_dim] - 1)}, 0]"
    return ", ".join([i, sep, lst] if first_int else [lst, sep, i])


@family(*aliases("Tensor.__getitem__"), *aliases("Tensor.narrow"), *aliases("Tensor.select"),
        *aliases("Tensor.gather"), *aliases("Tensor.index_select"), *aliases("torch.cat"),
        *aliases("torch.stack"), *aliases("Tensor.split"), *aliases("Tensor.chunk"), weight=5)
def index(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    t = b.env[a]
    nd = t.dim()
    kind = b.choice(["getitem", "mask", "tensor_index", "narrow", "select", "gather",
                     "index_select", "cat", "stack", "split", "chunk"])
    if 0 in t.shape and kind not in ("mask", "cat", "stack"):
        kind = "getitem"
    if kind == "getitem" or nd == 0 and kind not in ("cat", "stack"):
        expr = f"{a}[{_index(b, t)}]"
    elif kind == "mask":
        expr = f"{a}[{a} > {_lit(b.float(-1, 1))}]"
    elif kind == "tensor_index":
        idx = [b.int(-t.shape[0], t.shape[0] - 1) for _ in range(b.int(1, 3))]
        expr = f"{a}[torch.tensor({idx}){b.choice(['', '.long()'])}]"  # as index tensors are often made
    elif kind in ("narrow", "select"):
        d = b.int(0, nd - 1)
        start = b.int(0, t.shape[d] - 1)
        args = f"{d}, {start}, {t.shape[d] - start}" if kind == "narrow" else f"{d}, {start}"
        expr = spell(_choose(b, aliases(f"Tensor.{kind}")), a, args)
    elif kind == "gather":
        d = b.int(0, nd - 1)
        ishape = tuple(t.shape)
        expr = spell(_choose(b, aliases("Tensor.gather")), a, f"{d}, torch.randint(0, {t.shape[d]}, {ishape})")
    elif kind == "index_select":
        d = b.int(0, nd - 1)
        idx = [b.int(0, t.shape[d] - 1) for _ in range(b.int(1, 3))]
        expr = spell(_choose(b, aliases("Tensor.index_select")), a, f"{d}, torch.tensor({idx})")
    elif kind in ("cat", "stack"):
        others = b.tensors(lambda u: _shape(u) == _shape(t) and u.dtype == t.dtype)
        other = b.choice(others)
        d = b.int(0, max(nd - 1, 0)) if kind == "cat" else b.int(0, nd)
        if kind == "cat" and nd == 0:
            return False
        name = _choose(b, aliases(f"torch.{kind}"))
        expr = f"{name}([{a}, {other}], {'dim=' if b.bool() else ''}{d})"
        return _op(b, expr, (a, other))
    else:
        d = b.int(0, nd - 1)
        size = b.int(1, max(t.shape[d], 1))
        pick = b.choice(["[0]", "[-1]"])
        args = f"{size}, {d}" if kind == "split" else f"{size}, dim={d}"
        expr = spell(_choose(b, aliases(f"Tensor.{kind}")), a, args) + pick
    return _op(b, expr, (a,))


_CASTS = ["float", "double", "half", "long", "int", "short", "bool", "byte"]


@family(*aliases("Tensor.clone"), *aliases("Tensor.detach"), *aliases("Tensor.contiguous"),
        *aliases("Tensor.to"), *aliases("Tensor.type"), *aliases("Tensor.type_as"),
        *[n for c in _CASTS for n in aliases(f"Tensor.{c}")], weight=3)
def copies(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    kind = b.choice(["clone", "detach", "contiguous", "to", "type", "type_as", "cast", "cast", "cast",
                     "roundtrip"])
    if kind in ("clone", "detach", "contiguous"):
        expr = spell(_choose(b, aliases(f"Tensor.{kind}")), a)
    elif kind == "to":
        to = ["torch.float64", "dtype=torch.float32", "torch.float16", "torch.int64", "'cpu'"]
        expr = f"{a}.to({b.choice(to)})"
    elif kind == "type":
        expr = f"{a}.type(torch.float64)"
    elif kind == "type_as":
        other = b.pick(lambda t: t.dtype in (torch.float32, torch.float64))
        expr = f"{a}.type_as({other})"
    elif kind == "cast":
        expr = f"{a}.{b.choice(_CASTS)}()"
    else:  # a float64 / float16 detour that comes back
        expr = f"({a}.{b.choice(['double', 'half'])}() * 2).float()"
    return _op(b, expr, (a,))


@family(*aliases("torch.nn.functional.mse_loss"), *aliases("torch.nn.functional.cross_entropy"),
        *aliases("torch.nn.functional.nll_loss"), *aliases("torch.nn.functional.binary_cross_entropy"),
        *aliases("torch.nn.functional.binary_cross_entropy_with_logits"), *aliases("torch.nn.functional.dropout"),
        weight=2)
def losses(b: Builder) -> bool:
    kind = b.choice(["mse", "ce", "ce_probs", "nll", "bce", "bcel", "dropout"])
    if kind in ("ce", "ce_probs", "nll"):
        a = b.pick_float(lambda t: t.dim() == 2 and t.dtype == torch.float32)
        if a is None:  # logits of their own
            a = b.name("x")
            b.add(Stmt(f"{a} = torch.randn({(b.int(1, 3), b.int(2, 4))}, "
                       f"requires_grad=True)", "setup", a))
        n, c = b.env[a].shape
        red = b.choice(["", ", reduction='sum'", ", reduction='none'", ", reduction='mean'"])
        target = f"torch.randint(0, {c}, ({n},))" if kind != "ce_probs" else f"torch.rand({n}, {c}).softmax(1)"
        if kind == "nll":
            return _op(b, f"F.nll_loss(F.log_softmax({a}, dim=1), {target}{red})", (a,))
        return _op(b, f"F.cross_entropy({a}, {target}{red})", (a,))
    a = b.pick_float(lambda t: t.dtype == torch.float32)
    if a is None:
        return False
    shape = _shape(b.env[a])
    red = b.choice(["", ", reduction='sum'", ", reduction='none'"])
    if kind == "mse":
        return _op(b, f"F.mse_loss({a}, torch.randn({shape}){red})", (a,))
    if kind == "bce":
        return _op(b, f"F.binary_cross_entropy(torch.sigmoid({a}), torch.rand({shape}){red})", (a,))
    if kind == "bcel":
        return _op(b, f"F.binary_cross_entropy_with_logits({a}, torch.rand({shape}){red})", (a,))
    form = b.choice([f"F.dropout({a}, p=0.3)", f"F.dropout({a}, 0.5, training=True)",
                                   f"torch.dropout({a}, 0.25, True)", f"F.dropout({a}, p=0.5, training=False)"])
    return _op(b, form, (a,))


@family(*aliases("torch.nn.functional.dropout1d"), *aliases("torch.nn.functional.dropout2d"),
        *aliases("torch.nn.functional.dropout3d"), *aliases("torch.feature_dropout"), weight=1)
def channel_dropout(b: Builder) -> bool:
    """Channel dropout (one mask value per sample and channel), batched and unbatched."""
    a = b.pick_float(lambda t: t.dtype == torch.float32)
    if a is None:
        return False
    form = b.choice([f"F.dropout1d({a}.reshape(1, -1, 1), 0.5)", f"F.dropout1d({a}.reshape(-1, 1), p=0.3)",
                     f"F.dropout2d({a}.reshape(1, -1, 1, 1), 0.4)", f"F.dropout2d({a}.reshape(-1, 1, 1, 1), training=False)",
                     f"F.dropout3d({a}.reshape(-1, 1, 1, 1), 0.5)", f"F.dropout3d({a}.reshape(1, 1, -1, 1, 1), 0.25)",
                     f"torch.feature_dropout({a}.reshape(1, -1, 1), 0.25, True)"])
    return _op(b, form, (a,))


# ----- in-place changes
_INPLACE = {  # row name -> argument text ("{o}": a broadcastable operand)
    "Tensor.add_": "{o}", "Tensor.sub_": "{o}", "Tensor.mul_": "{o}", "Tensor.div_": "2.0",
    "Tensor.pow_": "2", "Tensor.clamp_": "-0.5, 0.5", "Tensor.relu_": "", "Tensor.exp_": "",
    "Tensor.neg_": "", "Tensor.sigmoid_": "", "Tensor.tanh_": "", "Tensor.zero_": "",
    "Tensor.fill_": "1.5", "Tensor.copy_": "{o}",
}
_AUGMENTED = {"Tensor.__iadd__": "+=", "Tensor.__isub__": "-=", "Tensor.__imul__": "*=",
              "Tensor.__itruediv__": "/=", "Tensor.__ipow__": "**="}


@family(*[n for r in _INPLACE for n in aliases(r)], *aliases("Tensor.__setitem__"), weight=4)
def inplace(b: Builder) -> bool:
    """An in-place op recorded by autograd: on a fresh clone, or on a view of one."""
    a = b.pick_float()
    if a is None:
        return False
    t = b.env[a]
    var = b.name()
    row = b.choice(sorted(_INPLACE) + ["setitem", "setitem", "relu_inplace"])
    other, ins = _second(b, a)
    view = t.dim() > 0 and b.int(0, 3) == 0
    target = f"{var}[{b.choice(['0', ':', '-1:', '...'])}]" if view else var
    if view or (row == "Tensor.copy_" and not ins):
        other, ins = _lit(b.float(-2, 2)), ()
        if row == "Tensor.copy_":
            other = f"torch.tensor({other})"
    if row == "setitem":
        form = b.choice(["index", "mask", "tensor"])
        if form == "mask":
            line = f"{var}[{var} > 0] = 0.5"
        elif form == "tensor" and ins:
            line = f"{var}[...] = {other} * 2"
        else:
            line = f"{var}[{_index(b, t)}] = {_lit(b.float(-1, 1))}"
        ins = ins if form == "tensor" else ()
    elif row == "relu_inplace":
        line = b.choice([f"F.relu({target}, inplace=True)", f"torch.relu_({target})"])
    elif row == "Tensor.exp_":
        line = f"{target}.clamp_(-3, 3).exp_()"
    else:
        name = _choose(b, aliases(row))
        args = _INPLACE[row].format(o=other)
        if name in _AUGMENTED and b.bool():
            line = f"{target} {_AUGMENTED[name]} {args}"
        else:
            line = spell(name, target, args)
    return b.add(Stmt(f"{var} = {a}.clone()\n{line}", "op", var), (a, *ins))


# ----- autograd state and values leaving torch
@family(*aliases_of_kind("detach_"), *aliases_of_kind("exposed"), *aliases_of_kind("data_get"),
        *aliases_of_kind("requires_grad"), weight=1)
def state(b: Builder) -> bool:
    a = b.pick_float()
    if a is None:
        return False
    var = b.name()
    form = b.choice(["detach_", "numpy", "array", "data", "requires_grad", "item"])
    if form == "detach_":
        return b.add(Stmt(f"{var} = {a}.clone()\n{var}.detach_()", "op", var), (a,))
    if form == "numpy":
        return b.add(Stmt(f"{var} = {a}.detach().numpy().sum()", "op", var), (a,))
    if form == "array":
        return b.add(Stmt(f"{var} = np.asarray({a}.detach()) * 2", "op", var), (a,))
    if form == "data":
        return _op(b, f"{a}.data * 2", (a,))
    if form == "item":
        return b.add(Stmt(f"{var} = {a}.sum().item()", "op", var), (a,))
    leaf = b.name("x")  # a constant that starts requiring grad (a new leaf)
    return b.add(Stmt(f"{leaf} = {a}.detach().clone()\n{leaf}.requires_grad = True", "setup", leaf), (a,))


# ----- unsupported ops (no table row: opaque nodes, "unchecked")
_OPAQUE = ["torch.special.i0e({a})", "torch.lgamma({a}.abs() + 0.5)", "torch.digamma({a}.abs() + 0.5)",
           "torch.logit({a}.sigmoid())", "torch.special.erfcx({a}.tanh())", "torch.special.i1({a})",
           "torch.special.log_ndtr({a})", "torch.i0({a})", "torch.trunc({a})", "torch.frac({a})"]


@family(weight=1)
def opaque(b: Builder) -> bool:
    a = b.pick_float(lambda t: t.dim() >= 1)
    if a is None:
        return False
    expr = b.choice(_OPAQUE).format(a=a)
    return _op(b, expr, (a,), kind="opaque")


# ----------------------------------------------------------------------------- setup and grad phases

_LEAF_FORMS = [
    "torch.randn({s}, requires_grad=True)", "torch.rand({s}, requires_grad=True)",
    "torch.zeros({s}, requires_grad=True)", "torch.ones({s}).requires_grad_()",
    "torch.full({s}, 0.5, requires_grad=True)", "torch.normal(0.0, 1.0, {s}).requires_grad_(True)",
    "torch.randn({s}).double().requires_grad_()", "torch.tensor({v}, requires_grad=True)",
    "torch.as_tensor({v}).requires_grad_()", "torch.from_numpy(np.array({v}, dtype=np.float32)).requires_grad_()",
    "torch.linspace(-1, 1, {n}).reshape({s}).requires_grad_()",
    "torch.arange({n}.0).reshape({s}).requires_grad_()",
    "torch.randn({s}).to(torch.float64).requires_grad_()",
]
_CONST_FORMS = [
    "torch.randn({s})", "torch.rand({s})", "torch.ones({s})", "torch.zeros({s})", "torch.full({s}, -1.5)",
    "torch.empty({s}).fill_(0.25)", "torch.empty({s}).zero_()", "torch.eye({n})[0].reshape({s})",
    "torch.logspace(-1, 1, {n}).reshape({s})",
    "torch.range(1, {n}).reshape({s})", "torch.randint(-3, 3, {s}).float()",
    "torch.randperm({n}).float().reshape({s})",
    "torch.bernoulli(torch.full({s}, 0.5))", "torch.multinomial(torch.ones({n}), {n}).float().reshape({s})",
    "torch.poisson(torch.ones({s}))", "torch.randn({s}).requires_grad_(False)",
    "torch.tensor({v})", "torch.zeros_like(torch.ones({s}))",
]
_LIKE_FORMS = ["torch.ones_like({a})", "torch.full_like({a}, 2.0)", "torch.randn_like({a})",
               "torch.rand_like({a})",
               "torch.empty_like({a}).fill_(1.0)", "torch.randint_like({a}, 0, 4)", "{a}.new_zeros({s})",
               "{a}.new_ones({s})", "{a}.new_full({s}, 3.0)", "{a}.new_tensor({v})",
               "{a}.new_empty({s}).fill_(0.5)",
               "{a}.detach().clone().requires_grad_()"]


def _nested(shape: tuple, start: float = 0.25) -> Any:
    if not shape:
        return start
    return [_nested(shape[1:], start + i * 0.5) for i in range(shape[0])]


def _fill(form: str, shape: tuple, a: str = "") -> str:
    n = int(math.prod(shape))
    return form.format(s=shape, n=max(n, 1), k=shape[-1] if shape else 1, v=_nested(shape), a=a)


def add_leaves(b: Builder, shapes: list) -> None:
    """Leaves (requires_grad) and constants of the drawn broadcastable shapes."""
    for i, shape in enumerate(shapes):
        shape = tuple(shape)
        if i == 0 or b.int(0, 3):
            var = b.name("x")
            form = b.choice(_LEAF_FORMS)
            if "linspace" in form or "arange" in form or "from_numpy" in form or "as_tensor" in form:
                form = form if shape else form.replace(".reshape({s})", "")
            b.add(Stmt(f"{var} = {_fill(form, shape)}", "setup", var))
        else:
            var = b.name("c")
            form = b.choice(_CONST_FORMS)
            b.add(Stmt(f"{var} = {_fill(form, shape)}", "setup", var))
    if b.bool():
        a = b.pick_float()
        if a is not None:
            var = b.name("c")
            form = b.choice(_LIKE_FORMS)
            b.add(Stmt(f"{var} = {_fill(form, _shape(b.env[a]), a)}", "setup", var))


def add_grad_phase(b: Builder) -> None:
    """A root and a backward / autograd.grad call, then maybe zeroing and an update."""
    roots = b.tensors(lambda t: t.requires_grad and t.dtype.is_floating_point)
    if not roots:
        return
    picks = b.subset(roots, 1, 3)
    loss = b.name("loss")
    terms = " + ".join(b.choice([f"{p}.sum()", f"({p} * {p}).mean()", f"{p}.float().pow(2).sum()"])
                       for p in picks)
    if not b.add(Stmt(f"{loss} = {terms}", "op", loss), tuple(picks)):
        return
    if b.int(0, 3) == 0:
        nonleaf = [p for p in picks if not b.env[p].is_leaf and b.env[p].requires_grad]
        if nonleaf:
            b.add(Stmt(f"{nonleaf[0]}.retain_grad()", "grad", nonleaf[0]))
    kind = b.choice(["backward", "backward", "retain", "retain_twice", "function", "nonscalar",
                     "inputs", "grad", "grad2", "create", "grad_of_grad"])
    leaves = b.reached(loss)
    if kind == "backward":
        b.add(Stmt(f"{loss}.backward()", "backward", loss))
    elif kind == "retain":
        b.add(Stmt(f"{loss}.backward(retain_graph=True)", "backward", loss))
    elif kind == "retain_twice":
        if b.add(Stmt(f"{loss}.backward(retain_graph=True)", "backward", loss)):
            b.add(Stmt(f"({loss} * 2).backward()", "backward", loss))
    elif kind == "function":
        b.add(Stmt(f"torch.autograd.backward({loss})", "backward", loss))
    elif kind == "nonscalar":
        p = picks[0]
        g = b.choice([f"torch.ones_like({p})", f"gradient=torch.randn_like({p})"])
        b.add(Stmt(f"{p}.backward({g})", "backward", p))
    elif kind == "inputs" and leaves:
        b.add(Stmt(f"{loss}.backward(inputs=[{leaves[0]}])", "backward", loss))
    elif kind in ("grad", "grad2") and leaves:
        ins = b.subset(leaves, 1, 2)
        outs = ", ".join(b.name("g") for _ in ins)
        create = ", create_graph=True" if kind == "grad2" else b.choice(["", ", retain_graph=True"])
        line = f"{outs}, = torch.autograd.grad({loss}, [{', '.join(ins)}]{create})"
        if b.add(Stmt(line, "autograd_grad", loss)):
            for g, x in zip(outs.split(", "), ins):
                b.anc[g] = b.ancestors(loss)
            if kind == "grad2":  # second order: differentiate the gradient itself
                g0 = outs.split(", ")[0]
                if b.env[g0].requires_grad:
                    l2 = b.name("loss")
                    if b.add(Stmt(f"{l2} = ({g0} * {g0}).sum()", "op", l2), (g0, ins[0])):
                        b.add(Stmt(f"{l2}.backward()", "backward", l2))
    elif kind == "create":
        if b.add(Stmt(f"{loss}.backward(create_graph=True)", "backward", loss)):
            for x in leaves:  # .grad with a graph: drop it before it is reused
                b.add(Stmt(f"{x}.grad = None", "grad", x))
    elif kind == "grad_of_grad" and leaves:  # backward through a .grad that carries a graph
        x = leaves[0]
        for v in leaves:
            b.add(Stmt(f"{v}.grad = None", "grad", v))
        if b.add(Stmt(f"{loss}.backward(create_graph=True)", "backward", loss)) \
                and b.env[x].grad is not None and b.env[x].grad.requires_grad:
            l2 = b.name("loss")
            if b.add(Stmt(f"{l2} = ({x}.grad * {x}.grad).sum()", "op", l2), (x,)):
                # inputs=: torch's double-backward graph may reach other leaves with zeros
                b.add(Stmt(f"{l2}.backward(inputs=[{x}])", "backward", l2))
            for v in leaves:
                b.add(Stmt(f"{v}.grad = None", "grad", v))
    else:
        b.add(Stmt(f"{loss}.backward()", "backward", loss))
    add_after(b)


def add_after(b: Builder) -> None:
    """Zero, set or use the leaves' gradients (several forms), and update leaves under no_grad."""
    for x in list(b.leaves):
        t = b.env[x]
        if t.grad is None or not b.bool():
            continue
        forms = ["zero", "none", "data_zero", "set", "mul", "update", "update_sub", "data", "data_set", "keep"]
        form = b.choice(forms)
        lr = _lit(b.float(0.01, 0.5))
        src, kind = {
            "zero": (f"{x}.grad.zero_()", "grad"), "none": (f"{x}.grad = None", "grad"),
            "data_zero": (f"{x}.grad.data.zero_()", "grad"), "set": (f"{x}.grad = torch.zeros_like({x})", "grad"),
            "mul": (f"{x}.grad.mul_(0.5)", "grad"),
            "update": (f"with torch.no_grad():\n    {x} -= {lr} * {x}.grad", "update"),
            "update_sub": (f"with torch.no_grad():\n    {x}.sub_({x}.grad, alpha={lr})", "update"),
            "data": (f"{x}.data.add_({x}.grad.data, alpha=-{lr})", "update"),
            "data_set": (f"{x}.data = {x}.data * 0.5", "update"),
            "keep": (f"with torch.no_grad():\n    {x}.clamp_(-2.0, 2.0)", "update"),
        }[form]
        b.add(Stmt(src, kind, x))


def add_ops(b: Builder, n: int) -> None:
    names = sorted(FAMILIES)
    weights = [FAMILIES[k][2] for k in names]
    pool = [k for k, w in zip(names, weights) for _ in range(w)]
    for _ in range(n):
        for _attempt in range(4):
            if FAMILIES[b.choice(pool)][0](b):
                break


def build_program(c: Choices, max_rounds: int = 3, max_ops: int = 8, avoid: frozenset = frozenset()) -> Program:
    """One random program from the choices ``c``: leaves and constants of broadcastable
    shapes, then ``1..max_rounds`` rounds of ``1..max_ops`` ops and a backward phase."""
    seed = c.int(0, 2**16)
    b = Builder(c, seed, frozenset(avoid))
    add_leaves(b, c.shapes(3))
    for _ in range(c.int(1, max_rounds)):
        add_ops(b, c.int(1, max_ops))
        add_grad_phase(b)
    return Program(seed, tuple(b.stmts), frozenset(b.opaque))


@st.composite
def programs(draw: Callable, max_rounds: int = 3, max_ops: int = 8, avoid: frozenset = frozenset()) -> Program:
    """Hypothesis strategy of random :class:`Program` s (see :func:`build_program`);
    ``avoid``: names of :data:`KNOWN_GAPS` not to generate."""
    return build_program(Choices(draw=draw), max_rounds, max_ops, avoid)


def random_program(seed: int, avoid: frozenset = frozenset(), **kw: Any) -> Program:
    """The program of ``seed`` drawn with ``random.Random`` (reproducible, no shrinking).

    >>> random_program(3).source() == random_program(3).source()
    True
    """
    return build_program(Choices(rng=random.Random(seed)), avoid=avoid, **kw)


# ----------------------------------------------------------------------------- the runner

@dataclass
class Outcome:
    """What a run left for the user: every variable, each tensor's value, ``.grad`` and flags."""

    values: dict = field(default_factory=dict)
    error: Optional[str] = None
    report: Any = None
    warnings: list = field(default_factory=list)  # (category, message, filename, line) shown to the user


def snapshot(obj: Any) -> Any:
    """A comparable, bit-exact picture of a namespace value (tensors by their bytes)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        value = (str(t.dtype), tuple(t.shape),  # force: torch's ZeroTensor grads refuse a plain .numpy()
                 (t if t.dtype != torch.bfloat16 else t.float()).numpy(force=True).tobytes())
        try:
            grad = obj.grad if obj.is_leaf or obj.retains_grad else None
            fn = obj.grad_fn
            flags = (obj.requires_grad, obj.is_leaf, type(fn).__name__ if fn is not None else None)
        except RuntimeError as exc:  # a view of a base changed in place: torch refuses
            grad, flags = None, (f"RuntimeError: {exc}",)
        return ("tensor", *value, *flags, snapshot(grad) if grad is not None else None)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(snapshot(o) for o in obj))
    if isinstance(obj, (int, float, bool, str, type(None), np.generic)):
        return repr(obj)
    return type(obj).__name__


def run(prog: Program, traced: bool) -> Outcome:
    """Run ``prog`` on a fresh namespace, plain or inside ``trace()`` (fresh ``Session``)."""
    ns = fresh_namespace()
    src = prog.source()
    code = compile(src, "<fuzz-program>", "exec")
    out = Outcome()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if traced:
                with trace(session=Session(), namespace=ns, filename="<fuzz-program>", source=src, check="all") as rep:
                    out.report = rep
                    exec(code, ns)
            else:
                exec(code, ns)
        except Exception as exc:  # the program's own exception: both runs must raise the same
            out.error = f"{type(exc).__name__}: {exc}"
    out.values = {k: snapshot(v) for k, v in ns.items()
                  if k not in ("torch", "F", "np", "__builtins__", "__name__", "__warningregistry__")}
    out.warnings = [(w.category.__name__, str(w.message), w.filename, w.lineno) for w in caught]
    return out


def check_program(prog: Program) -> list:
    """Every problem of ``prog`` run plain vs traced; ``[]`` when gradmagic is transparent and right."""
    plain = run(prog, traced=False)
    traced = run(prog, traced=True)
    problems = []
    if plain.error != traced.error:
        problems.append(f"exception differs: plain {plain.error!r}, traced {traced.error!r}")
    for k in sorted(set(plain.values) | set(traced.values)):
        if plain.values.get(k) != traced.values.get(k):
            problems.append(f"variable {k} differs between the plain and the traced run")
    if [w[:2] for w in plain.warnings] != [w[:2] for w in traced.warnings]:
        problems.append(f"warnings differ: plain {[w[1][:60] for w in plain.warnings]}, "
                        f"traced {[w[1][:60] for w in traced.warnings]}")
    rep = traced.report
    if rep is None:
        return problems + ["no report"]
    return problems + check_report(prog, rep, plain_error=plain.error)


def check_report(prog: Program, rep: Any, plain_error: Optional[str] = None) -> list:
    """The report's own claims: ok, nothing unsupported but the program's opaque calls,
    each backward call agreeing exactly where no unsupported op lies between, never where
    one does, and leaf gradients matching torch's."""
    problems = []
    try:
        json.dumps(rep.to_dict(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"report dict is not strict JSON: {exc}")
    for c in rep.mismatches:
        problems.append(f"mismatch: {c.node} {c.what} err={c.max_abs_err} {c.detail or ''}".strip())
    cov = rep.coverage or {}
    checked = sum(c.get("checked", 0) for c in cov.values() if isinstance(c, dict))
    if not rep.ok and not rep.mismatches and checked:
        problems.append("report not ok")
    for note in rep.notes:
        if ("internal error" in note or "could not recompute" in note or "raised" in note
                or "could not mirror" in note or "did not reach" in note
                or "could not finish its diagnosis" in note):
            problems.append(f"note: {note}")
    if set(rep.unsupported) != set(prog.unsupported):
        problems.append(f"unsupported {sorted(rep.unsupported)} != expected {sorted(prog.unsupported)}")
    if plain_error is not None:
        return problems  # call facts describe complete runs only
    calls = [s for s in prog.stmts if s.kind in CALL_KINDS]
    limited = _documented_limit(rep)
    if len(calls) != len(rep.backward_calls):
        return problems + [f"{len(rep.backward_calls)} backward calls reported, {len(calls)} made"]
    last: dict = {}
    for k, (stmt, call) in enumerate(zip(calls, rep.backward_calls)):
        facts = stmt.facts
        clean = facts.reached - facts.maybe
        if facts.tainted and call.status == "agree":
            problems.append(f"`{stmt.src}` went through an unsupported op but says agree")
        if not facts.maybe and facts.reached and call.status != "agree" and not (
                call.status == "unchecked" and limited):
            problems.append(f"`{stmt.src}`: status {call.status}, expected agree")
        for leaf in facts.reached:
            last[leaf] = (leaf in facts.tainted, leaf in clean, stmt.src, k)
    ever_tainted = {x for s in calls for x in s.facts.maybe}
    piled = {x for s in calls for x in s.facts.accumulated}
    for lf in rep.leaves:
        if lf.name in _reached_leaves(calls) and lf.accumulated_without_clearing != (lf.name in piled):
            problems.append(f"leaf {lf.name}: accumulated_without_clearing is "
                            f"{lf.accumulated_without_clearing}, torch's .grad says {lf.name in piled}")
    kept = len(calls) - Session().keep_calls  # graphs of older calls are summarised, not drawn
    for leaf, (tainted, clean, src, k) in last.items():
        lf = rep.leaf(leaf)
        if lf is None:
            if k >= kept:
                problems.append(f"leaf {leaf} missing from the report")
            continue
        if tainted and lf.status == "agree":
            problems.append(f"leaf {leaf}: agree although `{src}` reached it through an unsupported op")
        if clean and lf.status != "agree" and not (lf.status == "unchecked" and limited):
            problems.append(f"leaf {leaf}: status {lf.status} after `{src}`, expected agree")
        if leaf not in ever_tainted:
            problems.extend(_engine_grad_problems(lf))
    return problems


#: reasons for "unchecked" that README.md's limitations document: a call left unchecked for
#: one of them is honest, not a problem (anything else unchecked where agree is due still is)
DOCUMENTED_LIMITS = (
    "replayed as torch ran it",                          # a hook reached again by a double backward
    "a hook on a path through a call gradmagic has no rule for",
    "the retained gradient of a custom Function's output after a double backward",
)


def _documented_limit(rep: Any) -> bool:
    texts = list(rep.notes) + [c.detail or "" for c in rep.checks]
    return any(limit in t for t in texts for limit in DOCUMENTED_LIMITS)


def _reached_leaves(calls: list) -> set:
    """Every leaf some call reached."""
    return {x for s in calls for x in s.facts.reached}


def _engine_grad_problems(lf: Any) -> list:
    """gradmagic's own accumulated ``.grad`` agrees with torch's (documented tolerance)."""
    tg, eg = lf.grad, lf.engine_grad
    if isinstance(tg, dict) or isinstance(eg, dict):
        return []
    if (tg is None) != (eg is None):
        return [f"leaf {lf.name}: torch .grad {'None' if tg is None else 'set'}, engine's "
                f"{'None' if eg is None else 'set'}"]
    if tg is None:
        return []
    dtype = np.float64 if lf.dtype == "float64" else np.float32
    status = compare(np.asarray(eg, dtype), np.asarray(tg, dtype))[0]
    return [] if status == "agree" else [f"leaf {lf.name}: engine .grad {eg} vs torch {tg}"]


def program_from_source(src: str, seed: int = 0) -> Program:
    """A :class:`Program` for a hand-written (regression) source, its facts found by running it.

    >>> p = program_from_source("x = torch.ones(2, requires_grad=True)\\n(x * 3).sum().backward()")
    >>> [s.kind for s in p.stmts], check_program(p)
    (['setup', 'setup', 'backward'], [])
    """
    b = Builder(None, seed)
    for chunk in _chunks(src):
        kind, target = _classify(chunk)
        inputs = tuple(w for w in _words(chunk) if isinstance(b.env.get(w), torch.Tensor) and w != target)
        if not b.add(Stmt(chunk, kind, target), inputs):
            raise Reject(f"torch raised on {chunk!r}")
    return Program(seed, tuple(b.stmts), frozenset(b.opaque))


def shrink(prog: Program, keep: Callable[[list], bool], budget: int = 200) -> str:
    """The smallest source (statement by statement, greedily) whose problems still satisfy
    ``keep(problems)``; ``budget`` bounds the re-runs. Used on failing long-run programs.

    >>> p = program_from_source("a = torch.ones(2)\\nx = torch.ones(2, requires_grad=True)\\n(x * 2).sum().backward()")
    >>> shrink(p, lambda problems: True).strip()
    'x = torch.ones(2, requires_grad=True)'
    """
    chunks = _chunks(prog.source())[1:]  # the seed line is re-added by program_from_source

    def fails(ch: list) -> bool:
        try:
            return bool(keep(check_program(program_from_source("\n".join(ch), prog.seed))))
        except Exception:
            return False

    i = 0
    while i < len(chunks) and budget > 0:
        budget -= 1
        trial = chunks[:i] + chunks[i + 1:]
        if trial and fails(trial):
            chunks = trial
        else:
            i += 1
    return "\n".join(chunks) + "\n"


def _chunks(src: str) -> list:
    """Top-level statements of ``src`` (an indented block stays with its header)."""
    out: list = []
    for line in src.strip("\n").splitlines():
        if line.startswith((" ", "\t")) and out:
            out[-1] += "\n" + line
        elif line.strip():
            out.append(line)
    return out


def _first_name(text: str) -> Optional[str]:
    for w in text.replace("(", " ").replace(")", " ").replace("[", " ").replace(".", " ").split():
        if w.isidentifier() and w not in ("torch", "with", "F", "np"):
            return w
    return None


def _classify(chunk: str) -> tuple:
    """(kind, target) of a hand-written statement, by its shape: the root of a backward or
    ``autograd.grad``, the variable an assignment binds or a ``no_grad`` block updates."""
    if "torch.autograd.grad(" in chunk:
        return "autograd_grad", _first_name(chunk.split("torch.autograd.grad(", 1)[1])
    if "autograd.backward(" in chunk:
        return "backward", _first_name(chunk.split("autograd.backward(", 1)[1])
    if ".backward(" in chunk:
        return "backward", _first_name(chunk.split(".backward(", 1)[0])
    if chunk.startswith("with torch.no_grad():"):
        return "update", _first_name(chunk.split("\n", 1)[1])
    first = chunk.split("\n")[0]
    if " = " in first and first.split(" = ")[0].strip().isidentifier():
        return "setup" if "requires_grad" in first else "op", first.split(" = ")[0].strip()
    return ("grad" if ".grad" in first else "op"), _first_name(first)


# ----------------------------------------------------------------------------- op-family generators
# one module per family of the mapping table (gradmagic/recorder/rows/), each registering its
# families with ``@family`` on import
import fuzz_activations, fuzz_conv, fuzz_mathops, fuzz_norm, fuzz_optim, fuzz_recurrent, fuzz_tensorops  # noqa: E402,F401
import fuzz_autograd  # noqa: E402,F401  (hooks, custom Functions, cancelling float32 sums)
