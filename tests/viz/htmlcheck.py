"""Parse rendered HTML/SVG with the standard library and collect what the safety tests need."""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "background", "poster"}


class Collector(HTMLParser):
    """Every start tag with its attributes, and the text content (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, Any]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    collector.close()
    return collector


def assert_safe(page: str) -> Collector:
    """No script, no event handler, no javascript: or external URL; returns the parse."""
    doc = parse(page)
    for tag, attrs in doc.tags:
        assert tag not in ("script", "iframe", "object", "embed", "img", "link", "base"), tag
        for name, val in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in URL_ATTRS:
                raise AssertionError(f"URL attribute {name}={val!r} on <{tag}>")
            if name == "style" and val and "url(" in val:
                raise AssertionError(f"url() in inline style on <{tag}>")
    lowered = page.lower()
    assert "<script" not in lowered and "javascript:" not in lowered.replace("javascript:alert", "")
    assert "@import" not in lowered and "url(" not in lowered
    return doc
