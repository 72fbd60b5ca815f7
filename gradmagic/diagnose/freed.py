"""``freed_graph``: "Trying to backward through the graph a second time".

A backward without ``retain_graph=True`` frees the saved tensors of the graph it ran
through. The recorder remembers the last backward calls of the session
(``Session.recent_calls``), so the diagnosis names the earlier call that freed the graph —
also from an earlier cell — and tells a second backward through the same graph (fix:
``retain_graph=True`` or recompute the forward) from a new forward pass that reuses a tensor
of an old one, such as an RNN's hidden state or a running total (fix: ``.detach()`` it).

>>> import torch
>>> from gradmagic.recorder import Session, trace
>>> try:
...     with trace(session=Session()) as rep:
...         x = torch.ones(3, requires_grad=True)
...         y = (x * x).sum()
...         y.backward()
...         y.backward()
... except RuntimeError:
...     pass
>>> d = rep.diagnoses[0]
>>> d.kind, [ln["role"] for ln in d.lines]
('freed_graph', ['freed by', 'backward'])
"""
from __future__ import annotations

import ast
from typing import Any, Optional

from gradmagic.engine.node import FREED
from gradmagic.report import Diagnosis

from .context import Context, compact

MESSAGE = "backward through the graph a second time"


def find(ctx: Context) -> list:
    """The diagnosis of torch's freed-graph error, or [] when the cell did not raise it."""
    if MESSAGE not in ctx.error:
        return []
    failed = ctx.b.failed
    graph = ctx.failed_graph()
    freed = {k: r for k, r in graph.items() if r.enode is not None and r.enode.vsum == FREED}
    for past in reversed(ctx.s.recent_calls):
        if past.retain:
            continue
        roots = [r for r in (ref() for ref in past.roots) if r is not None]
        shared = [r for k, r in ctx.ancestors(roots).items() if k in (freed or graph)]
        if shared:
            return [_diagnosis(ctx, failed, past, graph, shared)]
    return []


def _diagnosis(ctx: Context, failed: Any, past: Any, graph: dict, shared: list) -> Diagnosis:
    freed_line = ctx.line(past.src, "freed by", cell=past.cell)
    call_code = freed_line["code"] if freed_line and freed_line["code"] else "the earlier backward()"
    backward = ctx.line(failed.src, "backward") if failed is not None else None
    carried = _carried(graph, past.seq)
    if carried is None:
        title = "the graph was already freed by an earlier backward"
        message = (f"`{call_code}` ran backward through this graph and freed the values it had saved; "
                   f"this backward needs them again.")
        fix = (f"pass `retain_graph=True` to `{call_code}` if you need a second backward through the same "
               f"graph, or recompute the forward pass before calling backward again")
        lines = [freed_line, backward]
        nodes = ctx.node_ids(sorted(shared, key=lambda r: r.seq))
        tensor = None
    else:
        old, new = carried
        name = ctx.name(old) or carried_name(ctx.code(new.src)) or ctx.name(new) or ctx.label(old)
        title = f"{name} still holds the graph that an earlier backward freed"
        message = (f"{name} was computed before `{call_code}` freed its graph, and is used again in a new "
                   f"forward pass; the backward through it reaches the freed part.")
        fix = (f"detach {name} where it is carried over (`{name} = {name}.detach()`) or compute it again "
               f"with a new forward pass, so the new graph does not reach the freed one")
        lines = [freed_line, ctx.rec_line(new, "reused"), backward]
        nodes = ctx.node_ids([old, new] + sorted(shared, key=lambda r: r.seq))
        tensor = name
    return Diagnosis("freed_graph", title, message, fix, tensor=tensor, lines=compact(lines), nodes=nodes,
                     severity=ctx.severity)


def carried_name(code: Optional[str]) -> Optional[str]:
    """The variable a statement both reads and rebinds (``h = tanh(x @ W + h @ U)``: ``h``),
    the usual shape of a state carried from one iteration to the next; None when not one.

    >>> carried_name("h = torch.tanh(x @ W + h @ U)"), carried_name("out, states = rnn(x, states)")
    ('h', 'states')
    >>> carried_name("y = x * 2") is None
    True
    """
    try:
        tree = ast.parse(code or "")
    except SyntaxError:
        return None
    stmt = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(stmt, (ast.Assign, ast.AugAssign)):
        return None
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    read = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)}
    if isinstance(stmt, ast.AugAssign):
        read |= bound
    both = sorted(bound & read)
    return both[0] if len(both) == 1 else None


def _carried(graph: dict, seq: int) -> Optional[tuple]:
    """``(old, new)``: a tensor computed before the freeing call (``old``, an op) that a node
    made after it (``new``) uses; the latest such pair, or None when the whole graph is old."""
    best = None
    for new in graph.values():
        if new.seq <= seq:
            continue
        for old in new.inputs:
            if old is not None and old.seq < seq and old.enode is not None and \
                    (best is None or (old.seq, new.seq) > (best[0].seq, best[1].seq)):
                best = (old, new)
    return best
