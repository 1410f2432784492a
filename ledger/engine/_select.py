"""Choose the engine implementation once, at import (psycopg's PSYCOPG_IMPL pattern).

LEDGER_ENGINE=cython loads the native engine or fails loudly; =python loads
the reference engine; unset tries the native engine and falls back to the
reference one. `IMPLEMENTATION` says which one loaded.
"""

from __future__ import annotations

import logging
import os
import time

from ._api import Clock, ColdReader, Engine, EngineConfig
from ._reference import ReferenceEngine

logger = logging.getLogger(__name__)

_CHOICES = ("cython", "python")


class EngineUnavailable(ImportError):
    """The engine named by LEDGER_ENGINE cannot be loaded."""


def _load_native() -> type[Engine] | None:
    try:
        from ._c import NativeEngine
    except ImportError:
        return None
    return NativeEngine


def select(requested: str | None) -> type[Engine]:
    """The engine class for a LEDGER_ENGINE value (None or "" = best available)."""
    if requested:
        requested = requested.strip().lower()
        if requested not in _CHOICES:
            raise EngineUnavailable(f"LEDGER_ENGINE must be one of {', '.join(_CHOICES)}, got {requested!r}")
        if requested == "python":
            return ReferenceEngine
        native = _load_native()
        if native is None:
            raise EngineUnavailable(
                "LEDGER_ENGINE=cython but the native engine (ledger.engine._c) is not built; "
                "install with a C compiler present, or set LEDGER_ENGINE=python"
            )
        return native
    return _load_native() or ReferenceEngine


def wall_clock() -> int:
    """Nanoseconds since the Unix epoch."""
    return time.time_ns()


EngineClass: type[Engine] = select(os.environ.get("LEDGER_ENGINE"))
IMPLEMENTATION: str = EngineClass.implementation
logger.debug("ledger engine: %s", IMPLEMENTATION)


def create_engine(
    config: EngineConfig | None = None, *, clock: Clock = wall_clock, cold_reader: ColdReader | None = None
) -> Engine:
    """A new, empty engine of the selected implementation; with `cold_reader`, old transfers' records are read
    back through it rather than kept in memory."""
    return EngineClass(config or EngineConfig(), clock=clock, cold_reader=cold_reader)  # type: ignore[call-arg]
