"""Fuzzer families of the optim ops (registered into fuzz_programs.FAMILIES on import):
chains of ``torch._foreach_*`` calls on lists of pool tensors (as optimizers and gradient
clipping make them), and the single-tensor ``addcmul``/``addcdiv``/``lerp``/``sqrt_``/
``linalg.vector_norm`` of the optimizers' for-loops."""
from __future__ import annotations

from fuzz_programs import Builder, Stmt, _choose, _lit, _op, aliases, family, spell  # noqa: F401

#: foreach op -> argument templates ({L}: the list, {O}: another list of its shapes, {D}: a
#: list of denominators >= 1, {S}: one scalar per element)
_FOREACH = {
    "add": ["{L}, {O}", "{L}, {O}, alpha=0.5", "{L}, 1.5", "{L}, {S}", "{L}, torch.tensor(0.5)"],
    "sub": ["{L}, {O}", "{L}, {O}, alpha=-2", "{L}, 0.25", "{L}, {S}"],
    "mul": ["{L}, {O}", "{L}, 0.5", "{L}, {S}", "{L}, torch.tensor(-1.5)"],
    "div": ["{L}, {D}", "{L}, 4.0", "{L}, {S}"],
    "maximum": ["{L}, {O}"], "minimum": ["{L}, {O}"],
    "pow": ["{L}, 2", "{L}, [2, 3, 2]"],
    "addcmul": ["{L}, {O}, {D}", "{L}, {O}, {D}, value=0.5", "{L}, {O}, {O}, -0.25", "{L}, {O}, {D}, {S}"],
    "addcdiv": ["{L}, {O}, {D}", "{L}, {O}, {D}, value=-0.5", "{L}, {O}, {D}, {S}"],
    "lerp": ["{L}, {O}, 0.3", "{L}, {O}, 0.8"],
    "clamp_min": ["{L}, 0.1"], "clamp_max": ["{L}, -0.2"],
    "sqrt": ["{P}"], "reciprocal": ["{P}"],
    "neg": ["{L}"], "sign": ["{L}"], "abs": ["{L}"], "exp": ["{T}"],
}
_NORM = ["{L}", "{L}, 1", "{L}, 2.0"]
_ONLY_INPLACE = {"copy": ["{L}, {O}"], "zero": ["{L}"]}


def _args(template: str, lst: str, n: int, b: Builder) -> str:
    scalars = "[" + ", ".join(_lit(b.float(-2, 2)) for _ in range(n)) + "]"
    return template.format(
        L=lst, O=f"[x.sin() for x in {lst}]", D=f"[x.cos() + 2 for x in {lst}]", S=scalars,
        P=f"torch._foreach_add(torch._foreach_abs({lst}), 0.5)", T=f"[x.tanh() for x in {lst}]").replace(
        "[2, 3, 2]", "[" + ", ".join(["2", "3"][i % 2] for i in range(n)) + "]")


def _foreach_line(b: Builder, lst: str, n: int) -> str:
    """One foreach call on the list ``lst`` (``n`` tensors): in place or not."""
    kind = b.choice(["op", "op", "inplace", "inplace", "norm"])
    if kind == "norm":
        return f"{lst} = torch._foreach_norm({_args(b.choice(_NORM), lst, n, b)})"
    if kind == "op":
        op = b.choice(sorted(_FOREACH))
        return f"{lst} = torch._foreach_{op}({_args(b.choice(_FOREACH[op]), lst, n, b)})"
    table = {**_FOREACH, **_ONLY_INPLACE}
    op = b.choice(sorted(table))
    line = f"{lst} = [x.clone() for x in {lst}]\ntorch._foreach_{op}_({_args(b.choice(table[op]), lst, n, b)})"
    if op == "zero":
        line += f"\ntorch._foreach_add_({lst}, 0.5)"
    return line


@family(*[f"torch._foreach_{n}" for n in [*_FOREACH, "norm"]],
        *[f"torch._foreach_{n}_" for n in [*_FOREACH, *_ONLY_INPLACE]], weight=4)
def foreach(b: Builder) -> bool:
    """A chain of two to five foreach calls on a list of one to three tensors made from one
    pool tensor (torch's foreach backward is one node for the whole list: elements of
    different leaves would make the fuzzer's graph facts name leaves torch never reaches)."""
    a = b.pick_float()
    if a is None:
        return False
    items = [a, f"{a} * 0.5", f"{a}.tanh()"][:b.int(1, 3)]
    lst, var = b.name("l"), b.name()
    lines = [f"{lst} = [{', '.join(items)}]"]
    lines += [_foreach_line(b, lst, len(items)) for _ in range(b.int(2, 5))]
    lines.append(f"{var} = {lst}[{b.int(0, len(items) - 1)}]\ndel {lst}")
    return b.add(Stmt("\n".join(lines), "op", var), (a,))


@family(*aliases("Tensor.addcmul"), *aliases("Tensor.addcdiv"), *aliases("Tensor.lerp"),
        *aliases("Tensor.addcmul_"), *aliases("Tensor.addcdiv_"), *aliases("Tensor.lerp_"),
        *aliases("Tensor.sqrt_"), *aliases("torch.linalg.vector_norm"), weight=2)
def optim_pointwise(b: Builder) -> bool:
    """The single-tensor ops of the optimizers' for-loops, out of place or on a clone."""
    a = b.pick_float()
    if a is None:
        return False
    row = b.choice(["addcmul", "addcdiv", "lerp", "sqrt_", "vector_norm"])
    o, d = f"{a}.sin()", f"({a}.cos() + 2)"
    if row == "vector_norm":
        args = b.choice(["", ", 1", ", 2.0, -1", ", 2, 0, True", ", dim=-1, keepdim=True"])
        return _op(b, f"torch.linalg.vector_norm({a}{args})", (a,))
    if row == "sqrt_":
        return _op(b, f"({a}.abs() + 0.5).sqrt_()", (a,))
    second = d if row == "addcdiv" else o
    rest = {"addcmul": [f"{o}, {d}", f"{o}, {d}, value=0.5"], "addcdiv": [f"{o}, {d}", f"{o}, {d}, value=-2"],
            "lerp": [f"{o}, 0.3", f"{o}, 0.9", f"{o}, {a}.tanh()"]}[row]
    args = b.choice(rest)
    del second
    if b.bool():  # in place, on a clone
        return _op(b, f"{a}.clone().{row}_({args})", (a,))
    name = _choose(b, aliases(f"Tensor.{row}"))
    return _op(b, spell(name, a, args), (a,))
