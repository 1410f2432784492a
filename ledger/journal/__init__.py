"""The durable journal: group-committed commits of engine entries (and opaque domain records) in PostgreSQL
or SQLite."""

from ._domain import DomainState
from ._format import (
    EXPIRED_SIZE,
    EXPIRED_STRUCT,
    Blob,
    Checkpoint,
    Commit,
    CommitRow,
    JournalCorrupt,
    JournalError,
    check_commit_row,
)
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
from ._store import (
    CHECKPOINTS_KEPT,
    Store,
    StoreLocked,
    StoreUnavailable,
    open_store,
    save_transfer_ids,
    seq_before,
    sqlite_file,
    transfer_ids_of,
)
from ._writer import GroupCommitWriter, WriterStats

__all__ = [
    "PostgresStore",
    "save_transfer_ids",
    "transfer_ids_of",
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
    "Blob",
    "Checkpoint",
    "Commit",
    "CommitRow",
    "DomainState",
    "GroupCommitWriter",
    "JournalCorrupt",
    "JournalError",
    "Store",
    "StoreLocked",
    "StoreUnavailable",
    "WriterStats",
    "check_commit_row",
    "open_store",
    "sqlite_file",
    "run_steps",
    "seq_before",
]
