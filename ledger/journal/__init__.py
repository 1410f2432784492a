"""The durable journal: group-committed commits of engine entries in PostgreSQL or SQLite."""

from ._format import EXPIRED_SIZE, EXPIRED_STRUCT, Checkpoint, Commit, JournalCorrupt, JournalError
from ._history import (
    READ_STEP_RECORDS,
    AccountFilter,
    BalancesPage,
    HistoryIndex,
    HistoryStats,
    Steps,
    TransfersPage,
    run_steps,
)
from ._postgres import PostgresStore
from ._sqlite import SqliteStore
from ._store import CHECKPOINTS_KEPT, Store, StoreLocked, StoreUnavailable, open_store, seq_before
from ._writer import GroupCommitWriter, WriterStats

__all__ = [
    "PostgresStore",
    "SqliteStore",
    "AccountFilter",
    "BalancesPage",
    "HistoryIndex",
    "HistoryStats",
    "READ_STEP_RECORDS",
    "Steps",
    "TransfersPage",
    "CHECKPOINTS_KEPT",
    "EXPIRED_SIZE",
    "EXPIRED_STRUCT",
    "Checkpoint",
    "Commit",
    "GroupCommitWriter",
    "JournalCorrupt",
    "JournalError",
    "Store",
    "StoreLocked",
    "StoreUnavailable",
    "WriterStats",
    "open_store",
    "run_steps",
    "seq_before",
]
