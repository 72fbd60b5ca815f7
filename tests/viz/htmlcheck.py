"""Parse rendered HTML/SVG with the standard library and check that nothing in it can run.

``assert_safe(page)`` is the check every static view passes: no element that runs or loads
anything, no ``on*`` attribute, no URL attribute (the graph's own ``<img>`` copy, a
``data:image/svg+xml`` URL, is decoded and checked the same way), no ``javascript:`` or
CSS ``url()``/``expression()`` anywhere, every ``<svg>`` well-formed XML with no
``<foreignObject>``. ``structure(page)`` is the page's markup without its text, so a test
can assert that hostile strings changed no element and no attribute name.
"""
from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

#: attributes that hold a URL (HTML and SVG)
URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "background", "poster",
             "data", "codebase", "srcset", "cite", "longdesc", "manifest", "ping", "icon"}
#: elements that run script, load something, take input or embed another document
FORBIDDEN_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "link",
                  "base", "meta", "form", "input", "button", "textarea", "select", "a",
                  "foreignobject", "use", "image", "animate", "set", "animatetransform",
                  "animatemotion", "audio", "video", "source", "track", "math", "template",
                  "portal", "noscript", "xmp", "plaintext", "marquee"}
#: the one image a report holds: its graph, as an SVG data URL (see html.graph_block)
GRAPH_IMG_CLASS = "gradmagic-graph-img"
GRAPH_IMG_PREFIX = "data:image/svg+xml;base64,"
_DANGEROUS_CSS = re.compile(r"url\s*\(|expression\s*\(|@import|behavior\s*:|-moz-binding|javascript:",
                            re.I)
_SCHEME_JUNK = re.compile(r"[\x00-\x20\x7f]+")


class Collector(HTMLParser):
    """Every start tag with its attributes, the text content (entities decoded) and the
    contents of ``<style>`` elements (kept apart from the text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, Any]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    collector.close()
    return collector


def visible_text(page: str) -> str:
    """What a reader sees of ``page``: its text with entities decoded, styles left out."""
    return "".join(parse(page).text)


def structure(page: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each element of ``page`` in order, as (tag, sorted attribute names): the markup
    without its text and attribute values."""
    return [(tag, tuple(sorted(attrs))) for tag, attrs in parse(page).tags]


def is_script_url(value: str) -> bool:
    """A URL a browser would run: ``javascript:``/``vbscript:``, or an HTML ``data:`` URL;
    whitespace and control characters inside the scheme are ignored, as browsers do."""
    url = _SCHEME_JUNK.sub("", value).lower()
    return url.startswith(("javascript:", "vbscript:", "data:text/html", "data:application"))


def _check_css(css: str, where: str) -> None:
    match = _DANGEROUS_CSS.search(css)
    assert match is None, f"{match.group()!r} in CSS of {where}"


def _check_attrs(tag: str, attrs: dict[str, Any]) -> None:
    for name, val in attrs.items():
        assert not name.startswith("on"), f"event handler {name}= on <{tag}>"
        if name == "style":
            _check_css(val or "", f"<{tag} style>")
        if name in URL_ATTRS:
            assert not is_script_url(val or ""), f"script URL in {name}= on <{tag}>"
            graph_img = tag == "img" and name == "src" and attrs.get("class") == GRAPH_IMG_CLASS
            assert graph_img and (val or "").startswith(GRAPH_IMG_PREFIX), \
                f"URL attribute {name}={val!r:.80} on <{tag}>"


def assert_svg_safe(svg: str) -> ET.Element:
    """``svg`` is one well-formed SVG document with nothing that runs or loads; returns it."""
    root = ET.fromstring(svg)  # fails on any unescaped < & or quote
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1].lower()
        assert tag not in FORBIDDEN_TAGS and tag != "style", f"<{tag}> inside the SVG"
        _check_attrs(tag, {k.rsplit("}", 1)[-1]: v for k, v in el.attrib.items()})
    return root


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


def assert_safe(page: str) -> Collector:
    """Nothing in ``page`` (an HTML fragment, a page or an SVG) can run script or load
    anything; returns the parse."""
    doc = parse(page)
    images = 0
    for tag, attrs in doc.tags:
        assert tag not in FORBIDDEN_TAGS, f"<{tag}> element"
        _check_attrs(tag, attrs)
        if tag == "img":
            images += 1
            encoded = attrs["src"][len(GRAPH_IMG_PREFIX):]
            assert_svg_safe(base64.b64decode(encoded, validate=True).decode("utf-8"))
    assert images <= len(_svgs(page)), "more graph images than graphs"
    for css in doc.styles:
        _check_css(css, "<style>")
    for svg in _svgs(page):
        assert_svg_safe(svg)
    lowered = page.lower()
    assert "<script" not in lowered and "<foreignobject" not in lowered
    return doc
