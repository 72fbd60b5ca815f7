"""``GradReport``: the one plain data model behind every view (no rendering here).

A report is filled in by the recorder when a ``gradmagic.trace()`` block exits.
``to_dict()`` gives the versioned, JSON-safe *report dict* (``"schema": 2``)
documented in ``docs/contract.md``; every view renders from that dict.

Values (``NodeInfo.value``, ``Event.before`` …) are stored already summarised as
the contract's **Value** dicts (see ``gradmagic.recorder.values.summarize``), so a
report holds no arrays and no references to tensors.

>>> import json
>>> rep = GradReport()
>>> rep.ok, rep.unsupported
(True, [])
>>> d = rep.to_dict()
>>> d["schema"], sorted(d)[:4]
(2, ['backward_calls', 'cell', 'checking', 'checks'])
>>> json.loads(json.dumps(d, allow_nan=False)) == d
True
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

SCHEMA = 2  # 2: ``modules`` (the nn.Module calls)

Value = dict  # the contract's Value dict: shape, dtype, numel, data, head, min, max, mean
Source = dict  # {"cell": int | None, "line": int | None, "code": str | None}


@dataclass
class Check:
    """One comparison of gradmagic's engine against torch (or finite differences)."""

    node: str
    what: str  # "value" | "grad" | "gradcheck"
    status: str  # "agree" | "differ" | "unchecked"
    max_abs_err: Optional[float] = None
    max_rel_err: Optional[float] = None
    rtol: Optional[float] = None
    atol: Optional[float] = None
    dtype: Optional[str] = None
    detail: Optional[str] = None


@dataclass
class NodeInfo:
    """One node of the drawn graph: a leaf, a constant, a recorded op or an opaque call."""

    id: str
    kind: str  # "leaf" | "op" | "opaque" | "constant"
    name: Optional[str] = None
    aliases: list = field(default_factory=list)
    op: Optional[str] = None
    label: Optional[str] = None
    torch_op: Optional[str] = None
    formulas: list = field(default_factory=list)
    shape: list = field(default_factory=list)
    dtype: Optional[str] = None
    requires_grad: bool = False
    is_leaf: bool = True
    value: Optional[Value] = None
    grad: Optional[Value] = None
    torch_grad: Optional[Value] = None
    saved: list = field(default_factory=list)
    saved_bytes: int = 0
    source: Optional[Source] = None
    status: str = "unchecked"  # "agree" | "differ" | "unchecked" | "disabled"
    max_abs_err: Optional[float] = None


@dataclass
class Edge:
    """``source``'s value is input number ``input`` of ``target``."""

    source: str
    target: str
    input: int


@dataclass
class BackwardCall:
    """One ``backward()`` or ``torch.autograd.grad`` call; ``steps`` is the replay
    (a list of the contract's Step dicts) or ``None`` when only a summary was kept."""

    index: int
    kind: str  # "backward" | "autograd.grad"
    root: Optional[str]
    #: 0-based among all of the block's backward calls, those that ran at full speed
    #: (``check="sample"``) included: the call numbers of ``grad_flow`` and ``checking``
    call: int = 0
    source: Optional[Source] = None
    gradient: Optional[Value] = None
    retain_graph: bool = False
    create_graph: bool = False
    status: str = "unchecked"
    steps: Optional[list] = None


@dataclass
class Event:
    """One change of a leaf's ``.grad`` (or, for ``update``, of its value)."""

    kind: str  # "created" | "backward" | "zero_" | "set_none" | "set" | "update"
    call: Optional[int] = None
    cell: Optional[int] = None
    line: Optional[int] = None
    code: Optional[str] = None
    before: Optional[Value] = None
    after: Optional[Value] = None
    added: Optional[Value] = None


@dataclass
class Leaf:
    """A leaf tensor that requires grad, with its accumulation history."""

    id: str
    name: Optional[str]
    shape: list
    dtype: str
    grad: Any = None  # nested lists | Value | None: torch's .grad at the end
    engine_grad: Any = None
    status: str = "unchecked"
    accumulated_without_clearing: bool = False
    events: list = field(default_factory=list)
    events_dropped: int = 0


@dataclass
class Diagnosis:
    """Why a cell failed or surprised: shown first in every view.

    ``kind`` is one of ``"inplace_saved"`` (a tensor saved for backward was modified in
    place), ``"freed_graph"`` (backward through a graph an earlier call freed),
    ``"grad_none"`` (a ``.grad`` the cell reads is None), ``"nonfinite_grad"`` (a gradient
    became NaN or ±inf at one node while its inputs were finite), ``"zero_grad"`` (a
    piecewise-constant op or a dead ReLU made a gradient exactly zero), ``"nonscalar_backward"``
    (``y.backward()`` on a tensor of more than one number), ``"no_grad_fn"`` (backward from a
    tensor without a graph: where the chain was cut), ``"leaf_inplace"`` (a leaf that requires
    grad was changed in place), ``"int_requires_grad"`` (an integer or boolean tensor was asked to
    require grad) and ``"invalid_gradient"`` (a hook or a custom ``backward`` returned a gradient
    of the wrong shape, dtype or number).

    >>> d = Diagnosis("grad_none", "Why is h.grad None?", "h is not a leaf.",
    ...               "call h.retain_grad() before backward()", tensor="h")
    >>> d.kind, d.lines, d.nodes
    ('grad_none', [], [])
    """

    kind: str
    title: str  # the heading: "b was modified in place after SigmoidBackward0 saved it"
    message: str  # one or two sentences saying what happened
    fix: str  # the fix, in one sentence
    tensor: Optional[str] = None  # the variable the diagnosis is about, if any
    #: the lines involved, in the order they happened: Source dicts plus a "role"
    #: ("saved by", "modified in place", "backward", "freed by", "cut by", ...)
    lines: list = field(default_factory=list)
    nodes: list = field(default_factory=list)  # node ids the graph highlights
    severity: str = "error"  # "error" (the cell raised) | "warning" (it ran, but surprises)


@dataclass
class ModuleCall:
    """One call of an ``nn.Module`` inside the recorded block (a module called twice has two).

    >>> m = ModuleCall(index=1, path="net.0", type="Linear", signature="Linear 4→3",
    ...                inputs=[[2, 4]], outputs=[[2, 3]], parent=0, depth=1)
    >>> m.path, m.nodes, m.call, m.calls
    ('net.0', [], 0, 1)
    """

    index: int  # position in ``GradReport.modules`` (calls in the order they began)
    path: str  # "net.1", "model.block.proj"; the class name when no variable reaches the module
    type: str  # the module's class name: "Linear"
    signature: str  # "Linear 784→256", "Conv2d 1→6 k5 p2", "Sequential"
    inputs: list = field(default_factory=list)  # shapes of the tensors passed positionally
    outputs: list = field(default_factory=list)  # shapes of the tensors returned
    #: the module's own parameters: {"name": "net.1.weight", "shape": [...], "node": "n3" | None}
    parameters: list = field(default_factory=list)
    nodes: list = field(default_factory=list)  # ids of the drawn nodes made during the call
    parent: Optional[int] = None  # index of the call this one ran inside
    depth: int = 0  # 0 for a call made by the block's own code
    call: int = 0  # which call of this module it is (0: its first in the block)
    calls: int = 1  # how many times the block called this module


@dataclass
class GradReport:
    """Everything one recorded block produced; ``to_dict()`` is the report dict."""

    ok: bool = True
    unsupported: list = field(default_factory=list)
    first_divergence: Optional[str] = None
    mismatches: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    backward_calls: list = field(default_factory=list)
    leaves: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    cell: Optional[dict] = None
    error: Optional[dict] = None
    #: how much was checked: {"values": {"checked", "agree", "differ", "unchecked"}, "grads": {...},
    #: "too_large": n}
    coverage: dict = field(default_factory=dict)
    #: why the cell failed or surprised (Diagnosis), most important first; empty when fine
    diagnoses: list = field(default_factory=list)
    #: the nn.Module calls of the block (ModuleCall), in the order they began; [] in functional code
    modules: list = field(default_factory=list)
    #: per backward call, each layer's gradient norm, mean |g| and max |g| (None without gradients)
    grad_flow: Optional[dict] = None
    #: which backward calls ran in lockstep (``check="sample"``: a loop's calls 1–3 and powers of
    #: two): {"mode", "calls", "checked" (1-based), "skipped" ([first, last] ranges), "summary",
    #: "loss": {"calls", "values"}, "piled_up"}; None when nothing was recorded
    checking: Optional[dict] = None
    stats: dict = field(default_factory=lambda: {"nodes": 0, "ops": 0, "saved_bytes": 0, "elapsed_ms": 0.0})

    def node(self, key: str) -> Optional[NodeInfo]:
        """The node with id ``key``, or the first node named (or aliased) ``key``.

        >>> GradReport(nodes=[NodeInfo(id="n0", kind="leaf", name="x")]).node("x").id
        'n0'
        """
        for n in self.nodes:
            if n.id == key:
                return n
        for n in self.nodes:
            if n.name == key or key in n.aliases:
                return n
        return None

    def leaf(self, name: str) -> Optional[Leaf]:
        """The leaf named ``name`` (or with id ``name``), else ``None``."""
        for lf in self.leaves:
            if lf.name == name or lf.id == name:
                return lf
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe report dict, ``"schema": 2`` (see ``docs/contract.md``)."""
        out: dict[str, Any] = {"schema": SCHEMA}
        for f in fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def __repr__(self) -> str:
        return (
            f"<GradReport ok={self.ok} nodes={len(self.nodes)} "
            f"backward_calls={len(self.backward_calls)} leaves={len(self.leaves)} "
            f"mismatches={len(self.mismatches)} unsupported={self.unsupported!r}>"
        )


def _plain(obj: Any) -> Any:
    """Dataclasses → dicts, recursively through lists and dicts."""
    if type(obj) in _SCALARS:  # most values: returned before the slower dataclass test
        return obj
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, list):
        return [_plain(o) for o in obj]
    if isinstance(obj, tuple):
        return [_plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


_SCALARS = frozenset({str, int, float, bool, type(None)})
