"""The durable journal: group-committed commits of engine entries in PostgreSQL or SQLite."""

from ._format import EXPIRED_SIZE, EXPIRED_STRUCT, Checkpoint, Commit, JournalCorrupt, JournalError
from ._history import AccountFilter, BalancesPage, HistoryIndex, TransfersPage
from ._store import CHECKPOINTS_KEPT, Store, StoreLocked, StoreUnavailable, open_store, seq_before
from ._writer import GroupCommitWriter, WriterStats

__all__ = [
    "AccountFilter",
    "BalancesPage",
    "HistoryIndex",
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
    "seq_before",
]
