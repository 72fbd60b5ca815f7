"""Fuzzer families of the mathops ops (registered into fuzz_programs.FAMILIES on import)."""
from __future__ import annotations

from fuzz_programs import Builder, _choose, _op, aliases, family, spell  # noqa: F401
