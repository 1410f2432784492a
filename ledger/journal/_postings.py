"""The postings implementation, chosen as the engine is: LEDGER_ENGINE=cython needs the native
module, =python takes the pure-Python one, unset takes the native one if it was built."""

from __future__ import annotations

import os
from types import ModuleType

from ledger.engine import EngineUnavailable

from . import _postings_py


def _load_native() -> ModuleType | None:
    try:
        from . import _postings_c
    except ImportError:
        return None
    return _postings_c


def select(requested: str | None) -> ModuleType:
    requested = (requested or "").strip().lower()
    if requested == "python":
        return _postings_py
    native = _load_native()
    if requested == "cython" and native is None:
        raise EngineUnavailable(
            "LEDGER_ENGINE=cython but the native postings module (ledger.journal._postings_c) is not built"
        )
    return native or _postings_py


postings: ModuleType = select(os.environ.get("LEDGER_ENGINE"))
