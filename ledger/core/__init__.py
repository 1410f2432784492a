"""The durable ledger: engine and journal composed by the durability protocol, and recovery."""

from ._ledger import (
    Ledger,
    LedgerError,
    LedgerFailed,
    LedgerOverloaded,
    LedgerReserved,
    LedgerStats,
    LedgerUnavailable,
    Operation,
)
from ._local import LocalCallError, LocalClient, Op, Status, serve_local
from ._recovery import RecoveryReport, recover, replay_commit

__all__ = [
    "Ledger",
    "LedgerError",
    "LedgerFailed",
    "LedgerOverloaded",
    "LedgerReserved",
    "LedgerStats",
    "LedgerUnavailable",
    "LocalCallError",
    "LocalClient",
    "Op",
    "Operation",
    "RecoveryReport",
    "Status",
    "recover",
    "replay_commit",
    "serve_local",
]
