"""Fuzzer families of the conv ops (registered into fuzz_programs.FAMILIES on import).

The input is a pool tensor reshaped to one channel and unit leading spatial sides
(``a.reshape(1, 1, 1, -1)``: kernels are ``(1, k)``), or a fresh ``(2, 2, 4, 5)`` leaf;
options are drawn freely and a statement torch rejects is dropped by the builder.
"""
from __future__ import annotations

import torch

from fuzz_programs import Builder, Stmt, _choose, _op, aliases, family, spell  # noqa: F401

_CONV = {  # {x1}/{x2}/{x3}: the 1d/2d/3d input, {c} its channels, {b} a bias or nothing, {d} the dtype
    "torch.conv1d": "{fn}({x1}, torch.randn(2, {c}, 2{d}){b}{opt})",
    "torch.conv2d": "{fn}({x2}, torch.randn(2, {c}, 1, 2{d}){b}{opt})",
    "torch.conv3d": "{fn}({x3}, torch.randn(2, {c}, 1, 1, 2{d}){b}{opt})",
    "torch.conv_transpose1d": "{fn}({x1}, torch.randn({c}, 2, 2{d}){b}{topt})",
    "torch.conv_transpose2d": "{fn}({x2}, torch.randn({c}, 2, 1, 2{d}){b}{topt})",
    "torch.conv_transpose3d": "{fn}({x3}, torch.randn({c}, 2, 1, 1, 2{d}){b}{topt})",
}
_CONV_OPTS = ["", ", stride=2", ", padding=1", ", padding='same'", ", padding='valid'", ", dilation=2",
              ", 2, 1, 1, 1"]
_CONV_T_OPTS = ["", ", stride=2, output_padding=1", ", padding=1", ", dilation=2", ", 2, 0, 1, 1, 1"]

_POOL = {  # row name -> templates
    "torch.max_pool2d": ["F.max_pool2d({x2}, (1, 2){opt})", "torch.max_pool2d({x2}, (1, 2))",
                         "F.max_pool2d({x2}, (1, 3), (1, 2), (0, 1), ceil_mode=True)"],
    "torch.nn.functional.max_pool2d_with_indices": ["F.max_pool2d_with_indices({x2}, (1, 2){opt})[0]",
                                                    "F.max_pool2d({x2}, (1, 2), return_indices=True)[0]"],
    "torch.max_pool1d": ["F.max_pool1d({x1}, 2{opt1})", "F.max_pool1d({x1}, 2)", "torch.max_pool1d({x1}, 3, 1, 1)",
                         "torch.max_pool1d({x1}, 2)"],
    "torch.max_pool1d_with_indices": ["torch.max_pool1d_with_indices({x1}, 2)[0]",
                                      "F.max_pool1d({x1}, 2, return_indices=True)[0]"],
    "torch.nn.functional.avg_pool2d": ["F.avg_pool2d({x2}, (1, 2){aopt})"],
    "torch.avg_pool1d": ["F.avg_pool1d({x1}, 2{aopt1})", "torch.avg_pool1d({x1}, 3, 2, 1, True, False)"],
    "torch.nn.functional.adaptive_avg_pool2d": ["F.adaptive_avg_pool2d({x2}, (1, 3))",
                                                "F.adaptive_avg_pool2d({x2}, 1)",
                                                "F.adaptive_avg_pool2d({x2}, (None, 2))"],
    "torch.adaptive_avg_pool1d": ["F.adaptive_avg_pool1d({x1}, 3)", "torch.adaptive_avg_pool1d({x1}, 1)"],
    "torch.nn.functional.adaptive_max_pool2d": ["F.adaptive_max_pool2d({x2}, (1, 3))"],
    "torch.nn.functional.adaptive_max_pool2d_with_indices": [
        "F.adaptive_max_pool2d({x2}, (None, 2), return_indices=True)[0]"],
    "torch.nn.functional.adaptive_max_pool1d": ["F.adaptive_max_pool1d({x1}, 3)"],
    "torch.adaptive_max_pool1d": ["torch.adaptive_max_pool1d({x1}, 2)[0]",
                                  "F.adaptive_max_pool1d_with_indices({x1}, 3)[0]",
                                  "F.adaptive_max_pool1d({x1}, 4, return_indices=True)[0]"],
    "torch.nn.functional.max_unpool2d": [
        "F.max_unpool2d(*F.max_pool2d({x2}, (1, 2), return_indices=True), (1, 2), output_size={x2}.shape)",
        "F.max_unpool2d(*F.max_pool2d({x2}, (1, 2), (1, 2), (0, 1), return_indices=True), (1, 2), (1, 2), "
        "(0, 1), {x2}.shape[-2:])"],
}
_POOL_OPTS = ["", ", stride=1", ", padding=(0, 1)", ", ceil_mode=True", ", dilation=(1, 2)"]
_AVG_OPTS = ["", ", stride=1", ", padding=(0, 1)", ", ceil_mode=True, count_include_pad=False",
             ", divisor_override=3", ", (1, 3), (0, 1), True, True"]


def _input(b: Builder) -> tuple:
    """(1d, 2d, 3d input expressions, channels, the variable read)."""
    a = b.pick_float(lambda t: t.numel() >= 3)
    if a is None or b.int(0, 2) == 0:
        a = b.name("x")
        dtype = b.choice(["", ", dtype=torch.float64"])
        b.add(Stmt(f"{a} = torch.randn((2, 2, 4, 5){dtype}, requires_grad=True)", "setup", a))
        return f"{a}.flatten(2)", a, f"{a}.unsqueeze(2)", 2, a
    return f"{a}.reshape(1, 1, -1)", f"{a}.reshape(1, 1, 1, -1)", f"{a}.reshape(1, 1, 1, 1, -1)", 1, a


@family(*[n for r in _CONV for n in aliases(r)], weight=2)
def convolutions(b: Builder) -> bool:
    x1, x2, x3, c, a = _input(b)
    row = b.choice(sorted(_CONV))
    fn = b.choice(["torch.", "F."]) + row.split(".", 1)[1]
    d = ", dtype=torch.float64" if b.env[a].dtype == torch.float64 else ""
    bias = b.choice(["", f", torch.randn(2{d})", ", None"])
    expr = _CONV[row].format(fn=fn, x1=x1, x2=x2, x3=x3, c=c, b=bias, d=d, opt=b.choice(_CONV_OPTS),
                             topt=b.choice(_CONV_T_OPTS))
    return _op(b, expr, (a,))


@family(*[n for r in _POOL for n in aliases(r)], weight=3)
def pooling(b: Builder) -> bool:
    x1, x2, x3, c, a = _input(b)
    row = b.choice(sorted(_POOL))
    expr = b.choice(_POOL[row]).format(x1=x1, x2=x2, opt=b.choice(_POOL_OPTS), aopt=b.choice(_AVG_OPTS),
                                       aopt1=b.choice(["", ", 1", ", 3, 2, 1, True, False", ", ceil_mode=True"]),
                                       opt1=b.choice(["", ", 1", ", padding=1", ", ceil_mode=True", ", dilation=2"]))
    return _op(b, expr, (a,))
