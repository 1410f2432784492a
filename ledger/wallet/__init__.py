"""The wallet domain: tenants, customer wallets, expiring credit, top-ups, payments, holds and refunds.

Pure domain code: it expresses every operation as a chain of core transfers applied through a ledger
`Operation` (the engine's single writer), and journals its own state as domain records in the same commit.
It knows the engine's contract and the journal's domain records; nothing of gRPC or HTTP.
"""

from ._codes import SYSTEM_ACCOUNTS, AccountCode, TopUpSource, TransferCode, WalletResult
from ._currencies import CURRENCIES, Currency, currency
from ._domain import (
    CUSTOMER_LENGTH_MAX,
    GRANT_RUN_ITEMS_MAX,
    Balance,
    BookingReply,
    CodePayment,
    CodePaymentStatus,
    DeviceReply,
    GrantItem,
    HoldReply,
    Operation,
    Payment,
    PaymentReply,
    PinReply,
    Refund,
    RefundReply,
    Reply,
    StatusReply,
    TenantReply,
    TopUp,
    TopUpReply,
    VoucherReply,
    Wallets,
)
from ._events import TYPES as EVENT_TYPES_ALL
from ._events import WalletEvent, cursor_after_commit, events_of, parse_cursor
from ._ids import fingerprint, operation_id, system_account_id, wallet_id
from ._paycodes import GRACE_STEPS as CODE_GRACE_STEPS
from ._paycodes import STEP_SECONDS as CODE_STEP_SECONDS
from ._pins import hash_pin, pin_matches, pin_problem
from ._state import Booking, WalletState, decode_records, encode_record
from ._statements import (
    STATEMENT_LIMIT_DEFAULT,
    STATEMENT_LIMIT_MAX,
    HistoryPage,
    HistoryRead,
    Movement,
    Settlement,
    SettlementLine,
    StatementKind,
    StatementPage,
    day_range,
    decode_cursor,
    encode_cursor,
    format_time,
    run_reads,
    settlement,
    settlement_csv,
    statement,
)
from ._tenants import WALLET_LEDGER_FIRST, Tenant, TenantSettings
from ._vouchers import normalized as normalized_voucher_code

__all__ = [
    "EVENT_TYPES_ALL",
    "CODE_GRACE_STEPS",
    "hash_pin",
    "pin_matches",
    "pin_problem",
    "CODE_STEP_SECONDS",
    "CodePayment",
    "CodePaymentStatus",
    "DeviceReply",
    "PinReply",
    "WalletEvent",
    "events_of",
    "parse_cursor",
    "cursor_after_commit",
    "CUSTOMER_LENGTH_MAX",
    "GRANT_RUN_ITEMS_MAX",
    "CURRENCIES",
    "SYSTEM_ACCOUNTS",
    "WALLET_LEDGER_FIRST",
    "AccountCode",
    "Balance",
    "Booking",
    "BookingReply",
    "Currency",
    "GrantItem",
    "HoldReply",
    "Operation",
    "Payment",
    "PaymentReply",
    "Refund",
    "RefundReply",
    "Reply",
    "StatusReply",
    "Tenant",
    "TenantReply",
    "TenantSettings",
    "TopUp",
    "TopUpReply",
    "TopUpSource",
    "TransferCode",
    "WalletResult",
    "WalletState",
    "VoucherReply",
    "Wallets",
    "currency",
    "decode_records",
    "encode_record",
    "fingerprint",
    "operation_id",
    "system_account_id",
    "normalized_voucher_code",
    "wallet_id",
    # statements and settlement
    "STATEMENT_LIMIT_DEFAULT",
    "STATEMENT_LIMIT_MAX",
    "HistoryPage",
    "HistoryRead",
    "Movement",
    "Settlement",
    "SettlementLine",
    "StatementKind",
    "StatementPage",
    "day_range",
    "decode_cursor",
    "encode_cursor",
    "format_time",
    "run_reads",
    "settlement",
    "settlement_csv",
    "statement",
]
