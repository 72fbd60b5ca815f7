"""Make user-derived strings safe to show: visible control characters, HTML escaping, widths.

Every string that comes from user data (variable names, source lines, reprs, messages)
passes through :func:`clean_text` before any view shows it, and through :func:`esc`
before it lands in HTML or SVG.

>>> esc('<img src=x onerror="alert(1)">')
'&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
>>> clean_text("abc\\u202edef")
'abc\\\\u202edef'
>>> display_width("x.grad # 默认")
13
>>> truncate("abcdefgh", 5)
'abcd…'
"""
from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

# Bidirectional controls can make a source line read differently from what it does
# ("Trojan Source"), so they are shown as escapes, never applied.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Invisible characters that make two different names look the same (zero-width space, word
# joiner and invisible operators, the Mongolian vowel separator, Unicode tag characters used
# to smuggle hidden text). The joiners U+200C/U+200D stay: real scripts and emoji need them.
_ZERO_WIDTH = "\u180e\u200b\u2060-\u2064\U000e0000-\U000e007f"
# U+FFFE/U+FFFF are not characters at all: XML (and so an inline SVG) may not contain them.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + _ZERO_WIDTH
    + "\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def no_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\ud800``), so it encodes
    to UTF-8 and can travel as JSON to a browser; everything else is left as it is.

    >>> no_lone_surrogates("a\\ud800b"), no_lone_surrogates("ok ✓")
    ('a\\\\ud800b', 'ok ✓')
    """
    return _SURROGATE.sub(_visible, text)


def clean_text(value: Any, keep_newlines: bool = False) -> str:
    """``str(value)`` with control, bidi-override and lone-surrogate characters made visible.

    Tabs become spaces; newlines are kept only when ``keep_newlines`` (else shown as ``⏎``).
    The result always encodes to UTF-8.
    """
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    if not keep_newlines:
        text = text.replace("\n", " ⏎ ")
    return _INVISIBLE.sub(_visible, text.replace("\r", "\n") if keep_newlines else text)


def esc(value: Any, keep_newlines: bool = False) -> str:
    """Clean ``value`` and escape it for HTML/SVG text and attribute values (quotes included)."""
    return html.escape(clean_text(value, keep_newlines), quote=True)


def char_width(ch: str) -> int:
    """Terminal columns of one character: 2 for wide East Asian, 0 for combining marks."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns taken by ``text`` (ASCII fast path)."""
    if text.isascii():
        return len(text)
    return sum(char_width(ch) for ch in text)


def truncate(text: str, width: int, ellipsis: str = "…") -> str:
    """Cut ``text`` to at most ``width`` columns, ending with ``ellipsis`` when cut."""
    if display_width(text) <= width:
        return text
    room = max(0, width - display_width(ellipsis))
    out, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > room:
            break
        out.append(ch)
        used += w
    return "".join(out) + ellipsis


def pad(text: str, width: int, align: str = "<") -> str:
    """Pad ``text`` with spaces to ``width`` columns (``align`` is ``<`` or ``>``)."""
    fill = " " * max(0, width - display_width(text))
    return text + fill if align == "<" else fill + text
