"""What a server says about itself (GetServerInfo) and its health, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger.v1 import ledger_pb2

CONNECTED: Final = "READY"
"""The channel state of a connection made (grpc.ChannelConnectivity's name)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerInfo:
    """GetServerInfo's answer. `store` and the counts are None unless the caller sees every ledger."""

    version: str
    engine: str
    auth_required: bool
    key_id: str
    tenant: str
    role: str
    ledgers: tuple[int, ...]
    store: str | None
    store_available: bool | None
    accounts_count: int | None
    transfers_count: int | None
    pending_transfers_count: int | None

    @classmethod
    def from_message(cls, message: ledger_pb2.GetServerInfoResponse) -> ServerInfo:
        operator = message.operator_view
        return cls(
            version=message.version,
            engine=message.engine,
            auth_required=message.auth_required,
            key_id=message.key_id,
            tenant=message.tenant,
            role=message.role,
            ledgers=tuple(message.ledgers),
            store=message.store if operator else None,
            store_available=message.store_available if operator else None,
            accounts_count=message.accounts_count if operator else None,
            transfers_count=message.transfers_count if operator else None,
            pending_transfers_count=message.pending_transfers_count if operator else None,
        )
