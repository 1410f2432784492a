"""What a server says about itself (GetServerInfo) and its health, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import grpc

from ledger.v1 import ledger_pb2

FAILED_CONNECTION_GRACE_SECONDS: Final = 0.5
"""How long wait_for_server lets a channel whose connection attempt failed try again before it calls the
server unreachable: a first attempt can fail for a moment (seen when another channel to the same server
had just closed), while one that keeps failing (nothing listens there) is told at once."""


def wait_limit(state: grpc.ChannelConnectivity, since: float, deadline: float) -> float:
    """Until when wait_for_server waits for a connection, in `state` since `since` (one clock for all three)."""
    if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
        return min(deadline, since + FAILED_CONNECTION_GRACE_SECONDS)
    if state is grpc.ChannelConnectivity.SHUTDOWN:
        return since
    return deadline


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
    permissions: frozenset[str] = frozenset()
    """What the key may do (its role's permissions); empty when no key was needed."""
    capacity_warnings: tuple[str, ...] = ()
    """Each engine table past 80 % of its limit, in words (operator view only)."""

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
            permissions=frozenset(message.permissions),
            capacity_warnings=tuple(message.capacity_warnings),
        )
