"""The XSS corpus: hostile strings, and the ways user code can put them into a report.

``CORPUS`` holds the payloads, one family per way an attacker could break out of where
gradmagic puts user text (markup, attributes, URLs, SVG, the JSON inlined in the standalone
page, JavaScript templates, CSS, encodings, bidi and invisible characters, sheer length).
Most payloads that ran would create an element with ``id="pwn"`` or open a dialog, so a
browser test can look for both.

User strings reach a report through the variable names of tensors, module parameter names,
source lines and comments, op names (an ``autograd.Function`` subclass made outside the
recorded cell shows as an opaque node named after its class), notes, the message of an
exception the cell raises and the diagnoses that quote all of these. ``hostile_cell``
writes a ``%%grad`` cell that uses all of them at once; ``poisoned`` puts a payload into
every string field of a synthetic report, its diagnoses and module calls included.

>>> [p.family for p in CORPUS][:2]
['markup', 'markup']
>>> marker("<img id=pwn src=x onerror=alert(1)>")
'onerror=alert(1)>'
"""
from __future__ import annotations

import copy
from typing import Any, NamedTuple

from gradmagic.viz.escape import clean_text
from viz_builders import build_mixed, diagnosis

#: id of the element most payloads would create if any view parsed them as markup
PROBE_ID = "pwn"
#: a harmless name, rendered the same way, for comparing markup with and without payloads
BENIGN = "benign_name"


class Payload(NamedTuple):
    family: str
    text: str

    @property
    def id(self) -> str:
        """A short printable test id."""
        return f"{self.family}:{ascii(self.text)[1:33]}"


_BROKEN_UTF8 = b"ok\xff\xfe\xc0\xafend".decode("utf-8", "surrogateescape")

CORPUS: list[Payload] = [Payload(family, text) for family, texts in {
    "markup": ["<script>alert(1)</script>",
               "<img id=pwn src=x onerror=alert(1)>",
               "<svg/onload=alert(1) id=pwn>",
               '<iframe id=pwn srcdoc="<script>alert(1)</script>"></iframe>',
               "<b>bold?</b><!--"],
    "attribute": ['" onmouseover="alert(1)" id="pwn',
                  "' autofocus onfocus='alert(1)' id='pwn",
                  '"><img id=pwn src=x onerror=alert(1)>'],
    "url": ["javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "java\tscript:alert(1)",
            '<a id=pwn href="javascript:alert(1)">click</a>',
            "data:text/html,<script>alert(1)</script>"],
    "svg": ["</text><foreignObject><div id=pwn>x</div></foreignObject><text>",
            "</title></g></svg><svg id=pwn onload=alert(1)>",
            "<![CDATA[</text><script>alert(1)</script>]]>",
            '<animate attributeName="href" to="javascript:alert(1)"/>'],
    "json": ["</script><script>alert(1)</script>",
             "<!--<script>alert(1)//",
             "</SCRIPT ><img id=pwn src=x onerror=alert(1)>",
             '"}]}</script><script>alert(1)</script>'],
    "template": ["${alert(1)}",
                 "`;alert(1);`",
                 "{{constructor.constructor('alert(1)')()}}",
                 "\\u003cimg id=pwn src=x onerror=alert(1)\\u003e"],
    "css": ["</style><img id=pwn src=x onerror=alert(1)>",
            "x;background:url(javascript:alert(1))",
            "width:expression(alert(1))",
            "@import url(http://127.0.0.1:9/x.css);"],
    "encoding": ["lone\ud800surrogate",
                 "trail\udfff",
                 _BROKEN_UTF8,
                 "nul\x00byte",
                 "\ufffd\ufffe"],
    "bidi": ["a\u202eevil\u202c",
             "\u2067isAdmin\u2069\u2066",
             "rtl\u200f\u061cmark"],
    "invisible": ["zero\u200bwidth",
                  "word\u2060joiner\ufeff",
                  "tag\U000e0041\U000e0042chars",
                  "\x1b[31mred\x1b[0m",
                  "bell\x07back\x08cr\rff\x0c",
                  "line\u2028sep\u2029para"],
    "long": ["A" * 5_000,
             "<img id=pwn src=x onerror=alert(1)>" * 120],
}.items() for text in texts]

FAMILIES: dict[str, list[str]] = {}
for _p in CORPUS:
    FAMILIES.setdefault(_p.family, []).append(_p.text)


def marker(payload: str) -> str:
    """What a reader must find in every view: the longest whitespace-free piece of the
    payload as the views show it (invisible characters written as escapes), up to 20
    characters.

    >>> marker("a\\u202eevil"), marker("A" * 50)
    ('a\\\\u202eevil', 'AAAAAAAAAAAAAAAAAAAA')
    """
    return max(clean_text(payload).split(), key=len)[:20]


def family_payload(family: str) -> str:
    """All payloads of ``family`` in one string (one cell per family in the browser)."""
    return " ".join(FAMILIES[family])


# ---------------------------------------------------------------- hostile cells

#: plain cell run before the hostile cells: ``make_hostile(key, payload)`` defines the
#: globals ``net_<key>`` (an nn.Module subclass named ``payload`` with a parameter named
#: ``payload``) and ``v_<key>`` (made by an autograd.Function subclass named ``payload``,
#: outside ``%%grad``, so the recorder shows it as an opaque node named after the class)
SETUP = '''\
import torch

def make_hostile(key, payload):
    cls_name = payload.encode("utf-8", "replace").decode().replace("\\x00", "?") or "_"
    param = payload.replace(".", "_") or "_"
    fn = type(cls_name, (torch.autograd.Function,), {
        "forward": staticmethod(lambda ctx, x: x * 2),
        "backward": staticmethod(lambda ctx, g: g * 2)})
    net_cls = type(cls_name, (torch.nn.Module,), {
        "forward": lambda self, x: x * getattr(self, param)})
    net = net_cls()
    setattr(net, param, torch.nn.Parameter(torch.ones(3)))
    globals()["net_" + key] = net
    globals()["v_" + key] = fn.apply(torch.ones(3, requires_grad=True))
'''


def _comment(payload: str) -> str:
    """``payload`` as it can stand in a Python comment (one line, encodable, no NUL)."""
    text = payload.encode("utf-8", "replace").decode()
    for ch in "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029":
        text = text.replace(ch, " ")
    return text


def hostile_cell(key: str, payload: str, fmt: str | None = "html", raises: bool = True) -> str:
    """A ``%%grad`` cell putting ``payload`` into a variable name, a module parameter name,
    an opaque op's name, a source line (string and comment), a note and, with ``raises``,
    the message of the exception the cell raises. Needs ``SETUP`` and then
    ``make_hostile(key, payload)`` to have run.

    >>> print(hostile_cell("k", "<b>", raises=False))  # doctest: +NORMALIZE_WHITESPACE
    %%grad --format html
    globals()['<b>'] = torch.ones(3, requires_grad=True)
    w = net_k(globals()['<b>'] * v_k)  # <b>
    tag = '<b>'; loss = w.sum()
    loss.backward()
    """
    lines = [f"%%grad --format {fmt}" if fmt else "%%grad",
             f"globals()[{payload!r}] = torch.ones(3, requires_grad=True)",
             f"w = net_{key}(globals()[{payload!r}] * v_{key})  # {_comment(payload)}",
             f"tag = {payload!r}; loss = w.sum()",
             "loss.backward()"]
    if raises:
        lines.append(f"raise ValueError({payload!r})")
    return "\n".join(lines)


def prepare(key: str, payload: str) -> str:
    """The plain cell that makes ``net_<key>`` and ``v_<key>`` for ``payload``."""
    return f"make_hostile({key!r}, {payload!r})"


def forget(namespace: dict[str, Any], payloads: list[str]) -> None:
    """Delete what ``SETUP`` and the hostile cells of ``payloads`` defined in ``namespace``
    (a shared test shell keeps its namespace, and with it every recorded tensor's twin),
    and ``x``/``y`` of the small cells run next to them."""
    made = {"make_hostile", "w", "tag", "loss", "x", "y", *payloads}
    for name in list(namespace):
        if name in made or name.startswith(("net_", "v_")):
            del namespace[name]


# ---------------------------------------------------------------- synthetic reports

def poisoned(payload: str) -> dict[str, Any]:
    """A synthetic report (viz_builders.build_mixed) with ``payload`` in every string field
    that comes from user code."""
    rep = copy.deepcopy(build_mixed())
    for node in rep["nodes"]:
        node["name"] = payload
        node["aliases"] = [payload]
        node["dtype"] = payload
        node["formulas"] = [payload]
        node["torch_op"] = payload
        if node["kind"] in ("op", "opaque"):
            node["label"] = payload
        if node["source"]:
            node["source"]["code"] = payload
        node["saved"] = [{"name": payload, "shape": [1], "dtype": payload, "bytes": 4}]
        node["saved_bytes"] = 4
    for leaf in rep["leaves"]:
        leaf["name"] = payload
        for event in leaf["events"]:
            event["code"] = payload
        leaf["accumulated_without_clearing"] = True
    for call in rep["backward_calls"]:
        call["source"]["code"] = payload
    rep["unsupported"] = [payload]
    rep["notes"] = [payload]
    rep["error"] = {"type": payload, "message": payload}
    rep["cell"]["source"] = payload
    rep["diagnoses"] = [_poisoned_diagnosis(payload, severity, rep["nodes"])
                        for severity in ("error", "warning")]
    rep["modules"] = _poisoned_modules(payload, rep["nodes"])
    return rep


def _poisoned_modules(payload: str, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two module calls (issue 13) with ``payload`` as path, class and signature: an open one
    at depth 0 around the mul and fft nodes, and a collapsed one inside it around the mul."""
    ops = [n["id"] for n in nodes if n["kind"] in ("op", "opaque")]
    call = {"type": payload, "signature": payload, "inputs": [[3]], "outputs": [[3]],
            "parameters": [], "call": 0, "calls": 1}
    return [{**call, "index": 0, "path": payload, "nodes": ops[:2], "parent": None, "depth": 0},
            {**call, "index": 1, "path": payload + ".0", "nodes": ops[:1], "parent": 0, "depth": 1}]


def _poisoned_diagnosis(payload: str, severity: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A diagnosis (issue 15) with ``payload`` in every string, naming the first two nodes;
    its second line is in another cell, so views also print that cell."""
    cell = 7
    return diagnosis(payload, payload, payload, payload, tensor=payload, severity=severity,
                     lines=[(cell, 2, payload, payload), (cell + 1, 1, payload, payload)],
                     nodes=[n["id"] for n in nodes[:2]])
