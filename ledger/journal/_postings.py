"""The postings implementation, chosen as the engine is: LEDGER_ENGINE=cython needs the native
module, =python takes the pure-Python one, unset takes the native one if it was built."""

from __future__ import annotations

import os
from types import ModuleType

from ledger.engine import EngineUnavailable
from ledger.records.native import choose

from . import _postings_py
from ._store import HistoryRow


def select(requested: str | None) -> ModuleType:
    return choose(
        requested, "ledger.journal._postings_c", _postings_py, "the native postings module", EngineUnavailable
    )


postings: ModuleType = select(os.environ.get("LEDGER_ENGINE"))


def account_rows(run: bytes) -> list[HistoryRow]:
    """The run's accounts as history rows, one per account (what postings.copy_rows writes for COPY)."""
    rows = []
    for lo, hi, start, end in postings.groups(run):
        entries = postings.entries(run, start, end)
        count = end - start
        first = int.from_bytes(entries[:8], "little")
        last = int.from_bytes(entries[(count - 1) * 8 : count * 8], "little")
        rows.append(HistoryRow(lo, hi, first, last, count, entries))
    return rows
