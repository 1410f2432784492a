"""The ledger's Python client: AsyncClient (asyncio) and Client (threads) over gRPC.

It needs only the generated stubs (ledger.v1) and the engine's record
layout, result codes and flags, so it runs on any host that reaches the
ledger's gRPC port. Ids are ints or uuid.UUIDs; amounts are integers in
minor units.
"""

from ledger.records.codes import (
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    TransferFlags,
)
from ledger.records.layout import Account, AccountBalance, Transfer

from ._async import AsyncClient
from ._config import MESSAGE_BYTES_MAX, ClientConfig
from ._errors import (
    LedgerCallError,
    LedgerClosed,
    LedgerError,
    LedgerInvalidArgument,
    LedgerPermissionDenied,
    LedgerTimeout,
    LedgerUnauthenticated,
    LedgerUnreachable,
)
from ._info import ServerInfo
from ._records import (
    AccountFilter,
    AccountLike,
    AccountOutcome,
    BalancesPage,
    IdLike,
    TransferLike,
    TransferOutcome,
    TransfersPage,
)
from ._sync import Client

__all__ = [
    "MESSAGE_BYTES_MAX",
    "Account",
    "AccountBalance",
    "AccountFilter",
    "AccountFlags",
    "AccountLike",
    "AccountOutcome",
    "AsyncClient",
    "BalancesPage",
    "Client",
    "ClientConfig",
    "CreateAccountResult",
    "CreateTransferResult",
    "IdLike",
    "LedgerCallError",
    "LedgerClosed",
    "LedgerError",
    "LedgerInvalidArgument",
    "LedgerPermissionDenied",
    "LedgerTimeout",
    "LedgerUnauthenticated",
    "LedgerUnreachable",
    "ServerInfo",
    "Transfer",
    "TransferFlags",
    "TransferLike",
    "TransferOutcome",
    "TransfersPage",
]
