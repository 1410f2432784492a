"""GetServerInfo's answer: what the server is, and who is asking; the store and volumes only to an operator."""

from __future__ import annotations

from ledger import __version__
from ledger.auth import Principal
from ledger.core import Ledger
from ledger.v1 import ledger_pb2


def server_info(ledger: Ledger, principal: Principal | None) -> ledger_pb2.GetServerInfoResponse:
    """The answer for `principal` (None: no key was needed). Never a secret: keys by id, the store without
    its password; a key bound to ledgers learns nothing of the store or of other tenants' volume."""
    stats = ledger.stats()
    info = ledger_pb2.GetServerInfoResponse(
        version=__version__, engine=stats.implementation, auth_required=principal is not None
    )
    if principal is not None:
        info.key_id, info.tenant, info.role = principal.key_id, principal.tenant, principal.role.value
        info.ledgers.extend(sorted(principal.ledgers or ()))
        info.permissions.extend(sorted(principal.permissions))
    if principal is None or principal.ledgers is None:
        info.operator_view = True
        info.store, info.store_available = stats.store, stats.available
        info.accounts_count = stats.engine.accounts_count
        info.transfers_count = stats.engine.transfers_count
        info.pending_transfers_count = stats.engine.pending_transfers_count
        info.capacity_warnings.extend(stats.capacity_warnings)
    return info
