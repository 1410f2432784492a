"""The gRPC front door: the Ledger and Wallet services, their assembly, and conversion to the engine's packed
records."""

from ._convert import (
    ConversionError,
    account_filter_from_proto,
    account_filter_to_proto,
    account_results_from_packed,
    accounts_from_packed,
    accounts_to_packed,
    transfer_results_from_packed,
    transfers_from_packed,
    transfers_to_packed,
)
from ._metrics import LedgerMetrics, count_results
from ._serve import run_event_loop, serve, start_server
from ._servicer import PERMISSIONS, SERVICE_NAME, LedgerService, add_ledger_service, ledger_service
from ._services import Service
from ._wallet import sweep_expiries, wallet_service

__all__ = [
    "SERVICE_NAME",
    "LedgerMetrics",
    "PERMISSIONS",
    "LedgerService",
    "Service",
    "add_ledger_service",
    "ledger_service",
    "run_event_loop",
    "serve",
    "start_server",
    "sweep_expiries",
    "wallet_service",
    "ConversionError",
    "account_filter_from_proto",
    "account_filter_to_proto",
    "count_results",
    "account_results_from_packed",
    "accounts_from_packed",
    "accounts_to_packed",
    "transfer_results_from_packed",
    "transfers_from_packed",
    "transfers_to_packed",
]
