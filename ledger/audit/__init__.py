"""The journal's auditor: a read-only reader of the documented byte format and an independent money model.

`audit(open_journal(url))` replays a store's journal without the ledger's
engine or journal code and returns a verdict naming the first problem, if
any; `ledger audit --store URL` prints it.
"""

from ._audit import CommitObserver, Problem, Progress, Verdict, audit
from ._journal import (
    CheckpointHead,
    Extent,
    Journal,
    JournalDamage,
    JournalUnreadable,
    StoredCheckpoint,
    StoredCommit,
    StoredIds,
    open_journal,
)
from ._model import AccountState, Books, Hold, LedgerTotals, Tally, TransferRecord, Violation, transfer_records

__all__ = [
    "AccountState",
    "Books",
    "CheckpointHead",
    "CommitObserver",
    "Extent",
    "Hold",
    "Journal",
    "JournalDamage",
    "JournalUnreadable",
    "LedgerTotals",
    "Problem",
    "Progress",
    "StoredCheckpoint",
    "StoredCommit",
    "StoredIds",
    "Tally",
    "TransferRecord",
    "Verdict",
    "Violation",
    "audit",
    "open_journal",
    "transfer_records",
]
