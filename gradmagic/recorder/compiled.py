"""``torch.compile`` inside a recorded block: dynamo must not compile gradmagic itself.

Dynamo traces into the functions a compiled function reaches, a ``TorchFunctionMode``'s
``__torch_function__`` included: it would try to compile the recorder (its frame lookups and
DLPack reads fail there), and each call would end up opaque with dynamo's error in the notes.
With gradmagic's folder on dynamo's skip list, dynamo instead breaks its graph at every call
the recorder sees and lets the recorder run as Python: the compiled function's calls are
recorded and checked like any others (while a block records, they run eagerly).

gradmagic never imports dynamo (it takes over a second): the listing happens when dynamo is
already loaded, else through a one-shot import hook that fires when ``torch.compile`` loads
it.

>>> skip_gradmagic_in_dynamo()  # (no dynamo loaded: a hook waits for it)
>>> "torch._dynamo" in sys.modules or any(isinstance(f, _WhenLoaded) for f in sys.meta_path)
True
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Any, Optional

_RULES = "torch._dynamo.trace_rules"
_listed = False


def skip_gradmagic_in_dynamo() -> None:
    """Put gradmagic on dynamo's skip list now, or as soon as dynamo is loaded."""
    if _listed:
        return
    rules = sys.modules.get(_RULES)
    if rules is not None and hasattr(rules, "add"):
        _list(rules)
    elif not any(isinstance(f, _WhenLoaded) for f in sys.meta_path):
        sys.meta_path.insert(0, _WhenLoaded())


def _list(rules: Any) -> None:
    global _listed
    _listed = True
    try:
        rules.add("gradmagic")
    except Exception:  # another torch: compiled code may then show dynamo's error in the notes
        pass


class _WhenLoaded(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when dynamo's trace rules are imported, it lets the normal finders
    find them and lists gradmagic once the module has run, then leaves ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Optional[Any]:
        if name != _RULES:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            _list(module)
        loader.exec_module = exec_module
        return spec
