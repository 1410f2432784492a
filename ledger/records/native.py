"""A native module or its pure-Python twin, chosen as the engine is: LEDGER_ENGINE=cython needs the native
module, =python takes the twin, and unset (or anything else) takes the native module if it was built."""

from __future__ import annotations

import importlib
from types import ModuleType


class NativeUnavailable(ImportError):
    """LEDGER_ENGINE=cython names a native module that is not built."""


def choose(
    requested: str | None, native: str, twin: ModuleType, what: str, unavailable: type[ImportError] = NativeUnavailable
) -> ModuleType:
    """The module `native` (a dotted name) or `twin`, as `requested` (LEDGER_ENGINE's value) says; `what`
    names the native module in the error."""
    requested = (requested or "").strip().lower()
    if requested == "python":
        return twin
    try:
        module: ModuleType | None = importlib.import_module(native)
    except ImportError:
        module = None
    if requested == "cython" and module is None:
        raise unavailable(f"LEDGER_ENGINE=cython but {what} ({native}) is not built")
    return module or twin
