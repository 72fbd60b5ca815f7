"""Test-table rows of the engine's tensorops family (merged into engine_table.TABLE)."""
from __future__ import annotations

from engine_table import Row, bi, un  # noqa: F401

TABLE: dict[str, Row] = {
}
