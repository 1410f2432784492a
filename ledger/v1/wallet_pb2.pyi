import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WalletResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WALLET_RESULT_UNSPECIFIED: _ClassVar[WalletResult]
    WALLET_RESULT_OK: _ClassVar[WalletResult]
    WALLET_RESULT_IDEMPOTENCY_KEY_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_IDEMPOTENCY_KEY_REUSED: _ClassVar[WalletResult]
    WALLET_RESULT_TENANT_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_TENANT_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_TENANT_EXISTS: _ClassVar[WalletResult]
    WALLET_RESULT_CURRENCY_MISMATCH: _ClassVar[WalletResult]
    WALLET_RESULT_CUSTOMER_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_WALLET_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_WALLET_CLOSED: _ClassVar[WalletResult]
    WALLET_RESULT_WALLET_FROZEN: _ClassVar[WalletResult]
    WALLET_RESULT_AMOUNT_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_REFERENCE_REQUIRED: _ClassVar[WalletResult]
    WALLET_RESULT_EXPIRY_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_SELF_TOPUP_DISABLED: _ClassVar[WalletResult]
    WALLET_RESULT_AMOUNT_NOT_ALLOWED: _ClassVar[WalletResult]
    WALLET_RESULT_MAX_BALANCE_EXCEEDED: _ClassVar[WalletResult]
    WALLET_RESULT_PARTIAL_PAYMENT_DISABLED: _ClassVar[WalletResult]
    WALLET_RESULT_INSUFFICIENT_FUNDS: _ClassVar[WalletResult]
    WALLET_RESULT_PAYMENT_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_REFUND_EXCEEDS_PAYMENT: _ClassVar[WalletResult]
    WALLET_RESULT_REFUND_TO_CREDIT_DISABLED: _ClassVar[WalletResult]
    WALLET_RESULT_HOLD_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_HOLD_NOT_PENDING: _ClassVar[WalletResult]
    WALLET_RESULT_CAPTURE_EXCEEDS_HOLD: _ClassVar[WalletResult]
    WALLET_RESULT_WALLET_NOT_EMPTY: _ClassVar[WalletResult]
    WALLET_RESULT_BOOKING_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_BOOKING_ALREADY_REVERSED: _ClassVar[WalletResult]
    WALLET_RESULT_LEDGER_REFUSED: _ClassVar[WalletResult]
    WALLET_RESULT_VOUCHER_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_VOUCHER_EXPIRED: _ClassVar[WalletResult]
    WALLET_RESULT_VOUCHER_DEACTIVATED: _ClassVar[WalletResult]
    WALLET_RESULT_VOUCHER_EMPTY: _ClassVar[WalletResult]
    WALLET_RESULT_GRANT_RUN_REFUSED: _ClassVar[WalletResult]
    WALLET_RESULT_CODE_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_CODE_USED: _ClassVar[WalletResult]
    WALLET_RESULT_DEVICE_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_PIN_REQUIRED: _ClassVar[WalletResult]
    WALLET_RESULT_PIN_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_PIN_LOCKED: _ClassVar[WalletResult]
    WALLET_RESULT_PAYMENT_CANCELLED: _ClassVar[WalletResult]
    WALLET_RESULT_CANCEL_TOO_LATE: _ClassVar[WalletResult]
    WALLET_RESULT_LIMIT_EXCEEDED: _ClassVar[WalletResult]
    WALLET_RESULT_REQUEST_NOT_FOUND: _ClassVar[WalletResult]
    WALLET_RESULT_REQUEST_EXPIRED: _ClassVar[WalletResult]
    WALLET_RESULT_REQUEST_NOT_OPEN: _ClassVar[WalletResult]
    WALLET_RESULT_CHALLENGE_INVALID: _ClassVar[WalletResult]
    WALLET_RESULT_CONTACT_INVALID: _ClassVar[WalletResult]

class TopUpSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOP_UP_SOURCE_UNSPECIFIED: _ClassVar[TopUpSource]
    TOP_UP_SOURCE_PURCHASE: _ClassVar[TopUpSource]
    TOP_UP_SOURCE_OPERATOR: _ClassVar[TopUpSource]
    TOP_UP_SOURCE_GIFT: _ClassVar[TopUpSource]
    TOP_UP_SOURCE_RETURN: _ClassVar[TopUpSource]
    TOP_UP_SOURCE_BENEFIT: _ClassVar[TopUpSource]

class WalletStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WALLET_STATUS_UNSPECIFIED: _ClassVar[WalletStatus]
    WALLET_STATUS_ACTIVE: _ClassVar[WalletStatus]
    WALLET_STATUS_FROZEN: _ClassVar[WalletStatus]
    WALLET_STATUS_CLOSED: _ClassVar[WalletStatus]

class BookingDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BOOKING_DIRECTION_UNSPECIFIED: _ClassVar[BookingDirection]
    BOOKING_DIRECTION_CREDIT: _ClassVar[BookingDirection]
    BOOKING_DIRECTION_DEBIT: _ClassVar[BookingDirection]

class EmptyDestination(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMPTY_DESTINATION_UNSPECIFIED: _ClassVar[EmptyDestination]
    EMPTY_DESTINATION_PAYOUT: _ClassVar[EmptyDestination]
    EMPTY_DESTINATION_BREAKAGE: _ClassVar[EmptyDestination]

class StatementKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATEMENT_KIND_UNSPECIFIED: _ClassVar[StatementKind]
    STATEMENT_KIND_TOP_UP: _ClassVar[StatementKind]
    STATEMENT_KIND_PAYMENT: _ClassVar[StatementKind]
    STATEMENT_KIND_REFUND: _ClassVar[StatementKind]
    STATEMENT_KIND_HOLD: _ClassVar[StatementKind]
    STATEMENT_KIND_CAPTURE: _ClassVar[StatementKind]
    STATEMENT_KIND_VOID: _ClassVar[StatementKind]
    STATEMENT_KIND_HOLD_EXPIRED: _ClassVar[StatementKind]
    STATEMENT_KIND_EXPIRY: _ClassVar[StatementKind]
    STATEMENT_KIND_BOOKING: _ClassVar[StatementKind]
    STATEMENT_KIND_REVERSAL: _ClassVar[StatementKind]
    STATEMENT_KIND_PAYOUT: _ClassVar[StatementKind]
    STATEMENT_KIND_WRITE_OFF: _ClassVar[StatementKind]
    STATEMENT_KIND_OTHER: _ClassVar[StatementKind]
WALLET_RESULT_UNSPECIFIED: WalletResult
WALLET_RESULT_OK: WalletResult
WALLET_RESULT_IDEMPOTENCY_KEY_INVALID: WalletResult
WALLET_RESULT_IDEMPOTENCY_KEY_REUSED: WalletResult
WALLET_RESULT_TENANT_INVALID: WalletResult
WALLET_RESULT_TENANT_NOT_FOUND: WalletResult
WALLET_RESULT_TENANT_EXISTS: WalletResult
WALLET_RESULT_CURRENCY_MISMATCH: WalletResult
WALLET_RESULT_CUSTOMER_INVALID: WalletResult
WALLET_RESULT_WALLET_NOT_FOUND: WalletResult
WALLET_RESULT_WALLET_CLOSED: WalletResult
WALLET_RESULT_WALLET_FROZEN: WalletResult
WALLET_RESULT_AMOUNT_INVALID: WalletResult
WALLET_RESULT_REFERENCE_REQUIRED: WalletResult
WALLET_RESULT_EXPIRY_INVALID: WalletResult
WALLET_RESULT_SELF_TOPUP_DISABLED: WalletResult
WALLET_RESULT_AMOUNT_NOT_ALLOWED: WalletResult
WALLET_RESULT_MAX_BALANCE_EXCEEDED: WalletResult
WALLET_RESULT_PARTIAL_PAYMENT_DISABLED: WalletResult
WALLET_RESULT_INSUFFICIENT_FUNDS: WalletResult
WALLET_RESULT_PAYMENT_NOT_FOUND: WalletResult
WALLET_RESULT_REFUND_EXCEEDS_PAYMENT: WalletResult
WALLET_RESULT_REFUND_TO_CREDIT_DISABLED: WalletResult
WALLET_RESULT_HOLD_NOT_FOUND: WalletResult
WALLET_RESULT_HOLD_NOT_PENDING: WalletResult
WALLET_RESULT_CAPTURE_EXCEEDS_HOLD: WalletResult
WALLET_RESULT_WALLET_NOT_EMPTY: WalletResult
WALLET_RESULT_BOOKING_NOT_FOUND: WalletResult
WALLET_RESULT_BOOKING_ALREADY_REVERSED: WalletResult
WALLET_RESULT_LEDGER_REFUSED: WalletResult
WALLET_RESULT_VOUCHER_NOT_FOUND: WalletResult
WALLET_RESULT_VOUCHER_EXPIRED: WalletResult
WALLET_RESULT_VOUCHER_DEACTIVATED: WalletResult
WALLET_RESULT_VOUCHER_EMPTY: WalletResult
WALLET_RESULT_GRANT_RUN_REFUSED: WalletResult
WALLET_RESULT_CODE_INVALID: WalletResult
WALLET_RESULT_CODE_USED: WalletResult
WALLET_RESULT_DEVICE_NOT_FOUND: WalletResult
WALLET_RESULT_PIN_REQUIRED: WalletResult
WALLET_RESULT_PIN_INVALID: WalletResult
WALLET_RESULT_PIN_LOCKED: WalletResult
WALLET_RESULT_PAYMENT_CANCELLED: WalletResult
WALLET_RESULT_CANCEL_TOO_LATE: WalletResult
WALLET_RESULT_LIMIT_EXCEEDED: WalletResult
WALLET_RESULT_REQUEST_NOT_FOUND: WalletResult
WALLET_RESULT_REQUEST_EXPIRED: WalletResult
WALLET_RESULT_REQUEST_NOT_OPEN: WalletResult
WALLET_RESULT_CHALLENGE_INVALID: WalletResult
WALLET_RESULT_CONTACT_INVALID: WalletResult
TOP_UP_SOURCE_UNSPECIFIED: TopUpSource
TOP_UP_SOURCE_PURCHASE: TopUpSource
TOP_UP_SOURCE_OPERATOR: TopUpSource
TOP_UP_SOURCE_GIFT: TopUpSource
TOP_UP_SOURCE_RETURN: TopUpSource
TOP_UP_SOURCE_BENEFIT: TopUpSource
WALLET_STATUS_UNSPECIFIED: WalletStatus
WALLET_STATUS_ACTIVE: WalletStatus
WALLET_STATUS_FROZEN: WalletStatus
WALLET_STATUS_CLOSED: WalletStatus
BOOKING_DIRECTION_UNSPECIFIED: BookingDirection
BOOKING_DIRECTION_CREDIT: BookingDirection
BOOKING_DIRECTION_DEBIT: BookingDirection
EMPTY_DESTINATION_UNSPECIFIED: EmptyDestination
EMPTY_DESTINATION_PAYOUT: EmptyDestination
EMPTY_DESTINATION_BREAKAGE: EmptyDestination
STATEMENT_KIND_UNSPECIFIED: StatementKind
STATEMENT_KIND_TOP_UP: StatementKind
STATEMENT_KIND_PAYMENT: StatementKind
STATEMENT_KIND_REFUND: StatementKind
STATEMENT_KIND_HOLD: StatementKind
STATEMENT_KIND_CAPTURE: StatementKind
STATEMENT_KIND_VOID: StatementKind
STATEMENT_KIND_HOLD_EXPIRED: StatementKind
STATEMENT_KIND_EXPIRY: StatementKind
STATEMENT_KIND_BOOKING: StatementKind
STATEMENT_KIND_REVERSAL: StatementKind
STATEMENT_KIND_PAYOUT: StatementKind
STATEMENT_KIND_WRITE_OFF: StatementKind
STATEMENT_KIND_OTHER: StatementKind

class TenantSettings(_message.Message):
    __slots__ = ("name", "self_topup", "topup_amounts", "topup_min", "topup_max", "partial_payment", "fee_fixed", "fee_per_mille", "max_balance", "credit_expiry_seconds", "low_balance_threshold", "refund_to_credit", "pin_above", "pin_attempts", "pin_lock_seconds", "code_payment_max", "wallet_hour_amount", "wallet_hour_count", "wallet_day_amount", "wallet_day_count", "terminal_hour_amount", "terminal_day_amount", "terminal_declines_flag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SELF_TOPUP_FIELD_NUMBER: _ClassVar[int]
    TOPUP_AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    TOPUP_MIN_FIELD_NUMBER: _ClassVar[int]
    TOPUP_MAX_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_PAYMENT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIXED_FIELD_NUMBER: _ClassVar[int]
    FEE_PER_MILLE_FIELD_NUMBER: _ClassVar[int]
    MAX_BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_EXPIRY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOW_BALANCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REFUND_TO_CREDIT_FIELD_NUMBER: _ClassVar[int]
    PIN_ABOVE_FIELD_NUMBER: _ClassVar[int]
    PIN_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PIN_LOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CODE_PAYMENT_MAX_FIELD_NUMBER: _ClassVar[int]
    WALLET_HOUR_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WALLET_HOUR_COUNT_FIELD_NUMBER: _ClassVar[int]
    WALLET_DAY_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WALLET_DAY_COUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_HOUR_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_DAY_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_DECLINES_FLAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    self_topup: bool
    topup_amounts: _containers.RepeatedScalarFieldContainer[int]
    topup_min: int
    topup_max: int
    partial_payment: bool
    fee_fixed: int
    fee_per_mille: int
    max_balance: int
    credit_expiry_seconds: int
    low_balance_threshold: int
    refund_to_credit: bool
    pin_above: int
    pin_attempts: int
    pin_lock_seconds: int
    code_payment_max: int
    wallet_hour_amount: int
    wallet_hour_count: int
    wallet_day_amount: int
    wallet_day_count: int
    terminal_hour_amount: int
    terminal_day_amount: int
    terminal_declines_flag: int
    def __init__(self, name: _Optional[str] = ..., self_topup: _Optional[bool] = ..., topup_amounts: _Optional[_Iterable[int]] = ..., topup_min: _Optional[int] = ..., topup_max: _Optional[int] = ..., partial_payment: _Optional[bool] = ..., fee_fixed: _Optional[int] = ..., fee_per_mille: _Optional[int] = ..., max_balance: _Optional[int] = ..., credit_expiry_seconds: _Optional[int] = ..., low_balance_threshold: _Optional[int] = ..., refund_to_credit: _Optional[bool] = ..., pin_above: _Optional[int] = ..., pin_attempts: _Optional[int] = ..., pin_lock_seconds: _Optional[int] = ..., code_payment_max: _Optional[int] = ..., wallet_hour_amount: _Optional[int] = ..., wallet_hour_count: _Optional[int] = ..., wallet_day_amount: _Optional[int] = ..., wallet_day_count: _Optional[int] = ..., terminal_hour_amount: _Optional[int] = ..., terminal_day_amount: _Optional[int] = ..., terminal_declines_flag: _Optional[int] = ...) -> None: ...

class CreateTenantRequest(_message.Message):
    __slots__ = ("tenant", "currency", "settings")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    currency: str
    settings: TenantSettings
    def __init__(self, tenant: _Optional[str] = ..., currency: _Optional[str] = ..., settings: _Optional[_Union[TenantSettings, _Mapping]] = ...) -> None: ...

class ConfigureTenantRequest(_message.Message):
    __slots__ = ("tenant", "settings")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    settings: TenantSettings
    def __init__(self, tenant: _Optional[str] = ..., settings: _Optional[_Union[TenantSettings, _Mapping]] = ...) -> None: ...

class GetTenantRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class TenantReply(_message.Message):
    __slots__ = ("result", "message", "tenant", "currency", "currency_scale", "ledger", "settings", "accounts", "currency_number")
    class AccountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_SCALE_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    tenant: str
    currency: str
    currency_scale: int
    ledger: int
    settings: TenantSettings
    accounts: _containers.ScalarMap[str, str]
    currency_number: int
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., tenant: _Optional[str] = ..., currency: _Optional[str] = ..., currency_scale: _Optional[int] = ..., ledger: _Optional[int] = ..., settings: _Optional[_Union[TenantSettings, _Mapping]] = ..., accounts: _Optional[_Mapping[str, str]] = ..., currency_number: _Optional[int] = ...) -> None: ...

class WalletRequest(_message.Message):
    __slots__ = ("tenant", "customer")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ...) -> None: ...

class ExpiringCredit(_message.Message):
    __slots__ = ("expires_at", "amount")
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    expires_at: _timestamp_pb2.Timestamp
    amount: int
    def __init__(self, expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount: _Optional[int] = ...) -> None: ...

class BalanceReply(_message.Message):
    __slots__ = ("result", "message", "wallet_id", "currency", "status", "available", "held", "posted", "expiring")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    POSTED_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    wallet_id: str
    currency: str
    status: WalletStatus
    available: int
    held: int
    posted: int
    expiring: _containers.RepeatedCompositeFieldContainer[ExpiringCredit]
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., wallet_id: _Optional[str] = ..., currency: _Optional[str] = ..., status: _Optional[_Union[WalletStatus, str]] = ..., available: _Optional[int] = ..., held: _Optional[int] = ..., posted: _Optional[int] = ..., expiring: _Optional[_Iterable[_Union[ExpiringCredit, _Mapping]]] = ...) -> None: ...

class SetWalletStatusRequest(_message.Message):
    __slots__ = ("tenant", "customer", "status", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    status: WalletStatus
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., status: _Optional[_Union[WalletStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class WalletStatusReply(_message.Message):
    __slots__ = ("result", "message", "wallet_id", "status")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    wallet_id: str
    status: WalletStatus
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., wallet_id: _Optional[str] = ..., status: _Optional[_Union[WalletStatus, str]] = ...) -> None: ...

class TopUpRequest(_message.Message):
    __slots__ = ("tenant", "customer", "amount", "key", "source", "currency", "reference", "operator", "expires_at", "never_expires")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    NEVER_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    amount: int
    key: str
    source: TopUpSource
    currency: str
    reference: str
    operator: str
    expires_at: _timestamp_pb2.Timestamp
    never_expires: bool
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ..., source: _Optional[_Union[TopUpSource, str]] = ..., currency: _Optional[str] = ..., reference: _Optional[str] = ..., operator: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., never_expires: _Optional[bool] = ...) -> None: ...

class TopUpReply(_message.Message):
    __slots__ = ("result", "message", "operation_id", "wallet_id", "amount", "expires_at", "balance", "created_at", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    operation_id: str
    wallet_id: str
    amount: int
    expires_at: _timestamp_pb2.Timestamp
    balance: int
    created_at: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., operation_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., amount: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., balance: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class PayRequest(_message.Message):
    __slots__ = ("tenant", "customer", "amount", "key", "order_reference", "partial", "currency")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    amount: int
    key: str
    order_reference: str
    partial: bool
    currency: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ..., order_reference: _Optional[str] = ..., partial: _Optional[bool] = ..., currency: _Optional[str] = ...) -> None: ...

class PayReply(_message.Message):
    __slots__ = ("result", "message", "payment_id", "wallet_id", "requested", "paid", "remainder", "fee", "balance", "created_at", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    REMAINDER_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    payment_id: str
    wallet_id: str
    requested: int
    paid: int
    remainder: int
    fee: int
    balance: int
    created_at: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., payment_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., requested: _Optional[int] = ..., paid: _Optional[int] = ..., remainder: _Optional[int] = ..., fee: _Optional[int] = ..., balance: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class PayBatchRequest(_message.Message):
    __slots__ = ("payments",)
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[PayRequest]
    def __init__(self, payments: _Optional[_Iterable[_Union[PayRequest, _Mapping]]] = ...) -> None: ...

class PayBatchReply(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[PayReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[PayReply, _Mapping]]] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("tenant", "payment_id", "amount", "key", "to_credit", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TO_CREDIT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    payment_id: str
    amount: int
    key: str
    to_credit: bool
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., payment_id: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ..., to_credit: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RefundReply(_message.Message):
    __slots__ = ("result", "message", "refund_id", "payment_id", "wallet_id", "amount", "to_credit", "refundable", "balance", "created_at", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TO_CREDIT_FIELD_NUMBER: _ClassVar[int]
    REFUNDABLE_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    refund_id: str
    payment_id: str
    wallet_id: str
    amount: int
    to_credit: bool
    refundable: int
    balance: int
    created_at: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., refund_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., amount: _Optional[int] = ..., to_credit: _Optional[bool] = ..., refundable: _Optional[int] = ..., balance: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class AuthorizeHoldRequest(_message.Message):
    __slots__ = ("tenant", "customer", "amount", "key", "seconds", "reference")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    amount: int
    key: str
    seconds: int
    reference: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ..., seconds: _Optional[int] = ..., reference: _Optional[str] = ...) -> None: ...

class CaptureHoldRequest(_message.Message):
    __slots__ = ("tenant", "hold_id", "amount", "key")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    hold_id: str
    amount: int
    key: str
    def __init__(self, tenant: _Optional[str] = ..., hold_id: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ...) -> None: ...

class VoidHoldRequest(_message.Message):
    __slots__ = ("tenant", "hold_id", "key")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    hold_id: str
    key: str
    def __init__(self, tenant: _Optional[str] = ..., hold_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class HoldReply(_message.Message):
    __slots__ = ("result", "message", "hold_id", "wallet_id", "amount", "expires_at", "balance", "created_at", "status", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    hold_id: str
    wallet_id: str
    amount: int
    expires_at: _timestamp_pb2.Timestamp
    balance: int
    created_at: _timestamp_pb2.Timestamp
    status: str
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., hold_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., amount: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., balance: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class BookRequest(_message.Message):
    __slots__ = ("tenant", "customer", "amount", "key", "direction", "operator", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    amount: int
    key: str
    direction: BookingDirection
    operator: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ..., direction: _Optional[_Union[BookingDirection, str]] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReverseBookingRequest(_message.Message):
    __slots__ = ("tenant", "booking_id", "key", "operator", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    booking_id: str
    key: str
    operator: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., booking_id: _Optional[str] = ..., key: _Optional[str] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BookingReply(_message.Message):
    __slots__ = ("result", "message", "booking_id", "wallet_id", "direction", "amount", "reverses", "balance", "created_at", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REVERSES_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    booking_id: str
    wallet_id: str
    direction: BookingDirection
    amount: int
    reverses: str
    balance: int
    created_at: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., booking_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., direction: _Optional[_Union[BookingDirection, str]] = ..., amount: _Optional[int] = ..., reverses: _Optional[str] = ..., balance: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ListBookingsRequest(_message.Message):
    __slots__ = ("tenant", "customer", "operator", "since", "until", "starting_after", "limit")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    STARTING_AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    operator: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    starting_after: str
    limit: int
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., operator: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., starting_after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class BookingEntry(_message.Message):
    __slots__ = ("booking_id", "wallet_id", "direction", "amount", "operator", "reason", "created_at", "reverses", "reversed_by")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVERSES_FIELD_NUMBER: _ClassVar[int]
    REVERSED_BY_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    wallet_id: str
    direction: BookingDirection
    amount: int
    operator: str
    reason: str
    created_at: _timestamp_pb2.Timestamp
    reverses: str
    reversed_by: str
    def __init__(self, booking_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., direction: _Optional[_Union[BookingDirection, str]] = ..., amount: _Optional[int] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reverses: _Optional[str] = ..., reversed_by: _Optional[str] = ...) -> None: ...

class ListBookingsReply(_message.Message):
    __slots__ = ("result", "message", "bookings", "next_starting_after")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BOOKINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STARTING_AFTER_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    bookings: _containers.RepeatedCompositeFieldContainer[BookingEntry]
    next_starting_after: str
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., bookings: _Optional[_Iterable[_Union[BookingEntry, _Mapping]]] = ..., next_starting_after: _Optional[str] = ...) -> None: ...

class IssueVoucherRequest(_message.Message):
    __slots__ = ("tenant", "amount", "key", "expires_at", "never_expires")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    NEVER_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    amount: int
    key: str
    expires_at: _timestamp_pb2.Timestamp
    never_expires: bool
    def __init__(self, tenant: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., never_expires: _Optional[bool] = ...) -> None: ...

class VoucherRequest(_message.Message):
    __slots__ = ("tenant", "code")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    code: str
    def __init__(self, tenant: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class RedeemVoucherRequest(_message.Message):
    __slots__ = ("tenant", "code", "customer", "key")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    code: str
    customer: str
    key: str
    def __init__(self, tenant: _Optional[str] = ..., code: _Optional[str] = ..., customer: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class SpendVoucherRequest(_message.Message):
    __slots__ = ("tenant", "code", "amount", "key", "order_reference")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    code: str
    amount: int
    key: str
    order_reference: str
    def __init__(self, tenant: _Optional[str] = ..., code: _Optional[str] = ..., amount: _Optional[int] = ..., key: _Optional[str] = ..., order_reference: _Optional[str] = ...) -> None: ...

class DeactivateVoucherRequest(_message.Message):
    __slots__ = ("tenant", "code", "key", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    code: str
    key: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., code: _Optional[str] = ..., key: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class VoucherReply(_message.Message):
    __slots__ = ("result", "message", "code", "voucher_id", "amount", "remaining", "expires_at", "status", "wallet_id", "balance", "requested", "created_at", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    code: str
    voucher_id: str
    amount: int
    remaining: int
    expires_at: _timestamp_pb2.Timestamp
    status: str
    wallet_id: str
    balance: int
    requested: int
    created_at: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., code: _Optional[str] = ..., voucher_id: _Optional[str] = ..., amount: _Optional[int] = ..., remaining: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., wallet_id: _Optional[str] = ..., balance: _Optional[int] = ..., requested: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GrantItem(_message.Message):
    __slots__ = ("customer", "amount", "expires_at", "never_expires")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    NEVER_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    customer: str
    amount: int
    expires_at: _timestamp_pb2.Timestamp
    never_expires: bool
    def __init__(self, customer: _Optional[str] = ..., amount: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., never_expires: _Optional[bool] = ...) -> None: ...

class GrantRunRequest(_message.Message):
    __slots__ = ("tenant", "run_id", "items", "all_or_nothing", "open_wallets", "source")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ALL_OR_NOTHING_FIELD_NUMBER: _ClassVar[int]
    OPEN_WALLETS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    run_id: str
    items: _containers.RepeatedCompositeFieldContainer[GrantItem]
    all_or_nothing: bool
    open_wallets: bool
    source: TopUpSource
    def __init__(self, tenant: _Optional[str] = ..., run_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[GrantItem, _Mapping]]] = ..., all_or_nothing: _Optional[bool] = ..., open_wallets: _Optional[bool] = ..., source: _Optional[_Union[TopUpSource, str]] = ...) -> None: ...

class GrantRunReply(_message.Message):
    __slots__ = ("result", "message", "replies", "granted", "granted_amount")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    replies: _containers.RepeatedCompositeFieldContainer[TopUpReply]
    granted: int
    granted_amount: int
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., replies: _Optional[_Iterable[_Union[TopUpReply, _Mapping]]] = ..., granted: _Optional[int] = ..., granted_amount: _Optional[int] = ...) -> None: ...

class SubscribeEventsRequest(_message.Message):
    __slots__ = ("tenant", "after", "types", "from_now")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    FROM_NOW_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    after: str
    types: _containers.RepeatedScalarFieldContainer[str]
    from_now: bool
    def __init__(self, tenant: _Optional[str] = ..., after: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., from_now: _Optional[bool] = ...) -> None: ...

class WalletEvent(_message.Message):
    __slots__ = ("id", "cursor", "type", "tenant", "wallet_id", "operation_id", "amount", "created_at", "data_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    cursor: str
    type: str
    tenant: str
    wallet_id: str
    operation_id: str
    amount: int
    created_at: _timestamp_pb2.Timestamp
    data_json: str
    def __init__(self, id: _Optional[str] = ..., cursor: _Optional[str] = ..., type: _Optional[str] = ..., tenant: _Optional[str] = ..., wallet_id: _Optional[str] = ..., operation_id: _Optional[str] = ..., amount: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_json: _Optional[str] = ...) -> None: ...

class GetEventCursorRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class EventCursorReply(_message.Message):
    __slots__ = ("result", "message", "cursor")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    cursor: str
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., cursor: _Optional[str] = ...) -> None: ...

class GetCallerRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class CallerReply(_message.Message):
    __slots__ = ("result", "message", "auth_required", "key_id", "role", "permissions")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    auth_required: bool
    key_id: str
    role: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., auth_required: _Optional[bool] = ..., key_id: _Optional[str] = ..., role: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ...) -> None: ...

class EmptyWalletRequest(_message.Message):
    __slots__ = ("tenant", "customer", "key", "destination", "operator", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    key: str
    destination: EmptyDestination
    operator: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., key: _Optional[str] = ..., destination: _Optional[_Union[EmptyDestination, str]] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetStatementRequest(_message.Message):
    __slots__ = ("tenant", "customer", "since", "until", "kinds", "limit", "starting_after")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STARTING_AFTER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    kinds: _containers.RepeatedScalarFieldContainer[StatementKind]
    limit: int
    starting_after: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kinds: _Optional[_Iterable[_Union[StatementKind, str]]] = ..., limit: _Optional[int] = ..., starting_after: _Optional[str] = ...) -> None: ...

class StatementRow(_message.Message):
    __slots__ = ("operation_id", "kind", "created_at", "amount", "fee", "total", "balance", "held", "held_change", "requested", "source", "to_credit", "related_id", "code")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    HELD_CHANGE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TO_CREDIT_FIELD_NUMBER: _ClassVar[int]
    RELATED_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    kind: StatementKind
    created_at: _timestamp_pb2.Timestamp
    amount: int
    fee: int
    total: int
    balance: int
    held: int
    held_change: int
    requested: int
    source: TopUpSource
    to_credit: bool
    related_id: str
    code: int
    def __init__(self, operation_id: _Optional[str] = ..., kind: _Optional[_Union[StatementKind, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount: _Optional[int] = ..., fee: _Optional[int] = ..., total: _Optional[int] = ..., balance: _Optional[int] = ..., held: _Optional[int] = ..., held_change: _Optional[int] = ..., requested: _Optional[int] = ..., source: _Optional[_Union[TopUpSource, str]] = ..., to_credit: _Optional[bool] = ..., related_id: _Optional[str] = ..., code: _Optional[int] = ...) -> None: ...

class StatementReply(_message.Message):
    __slots__ = ("result", "message", "wallet_id", "currency", "rows", "has_more", "next_cursor")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    wallet_id: str
    currency: str
    rows: _containers.RepeatedCompositeFieldContainer[StatementRow]
    has_more: bool
    next_cursor: str
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., wallet_id: _Optional[str] = ..., currency: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[StatementRow, _Mapping]]] = ..., has_more: _Optional[bool] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GetSettlementRequest(_message.Message):
    __slots__ = ("tenant", "day", "since", "until", "csv")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    CSV_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    day: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    csv: bool
    def __init__(self, tenant: _Optional[str] = ..., day: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., csv: _Optional[bool] = ...) -> None: ...

class SettlementLine(_message.Message):
    __slots__ = ("section", "line", "amount", "transfers")
    SECTION_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    section: str
    line: str
    amount: int
    transfers: int
    def __init__(self, section: _Optional[str] = ..., line: _Optional[str] = ..., amount: _Optional[int] = ..., transfers: _Optional[int] = ...) -> None: ...

class SettlementReply(_message.Message):
    __slots__ = ("result", "message", "tenant", "currency", "currency_scale", "since", "until", "as_of", "opening_liability", "lines", "movements", "closing_liability", "difference", "opening_vouchers", "closing_vouchers", "csv")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_SCALE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    OPENING_LIABILITY_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    MOVEMENTS_FIELD_NUMBER: _ClassVar[int]
    CLOSING_LIABILITY_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    OPENING_VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    CLOSING_VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    CSV_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    tenant: str
    currency: str
    currency_scale: int
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    as_of: _timestamp_pb2.Timestamp
    opening_liability: int
    lines: _containers.RepeatedCompositeFieldContainer[SettlementLine]
    movements: int
    closing_liability: int
    difference: int
    opening_vouchers: int
    closing_vouchers: int
    csv: str
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., tenant: _Optional[str] = ..., currency: _Optional[str] = ..., currency_scale: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., opening_liability: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[SettlementLine, _Mapping]]] = ..., movements: _Optional[int] = ..., closing_liability: _Optional[int] = ..., difference: _Optional[int] = ..., opening_vouchers: _Optional[int] = ..., closing_vouchers: _Optional[int] = ..., csv: _Optional[str] = ...) -> None: ...

class EnrollDeviceRequest(_message.Message):
    __slots__ = ("tenant", "customer", "name", "key")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    name: str
    key: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., name: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeviceReply(_message.Message):
    __slots__ = ("result", "message", "device_id", "wallet_id", "customer", "name", "enrolled_at", "revoked_at", "seed", "code_key", "number", "step_seconds", "grace_steps", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CODE_KEY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GRACE_STEPS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    device_id: str
    wallet_id: str
    customer: str
    name: str
    enrolled_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    seed: bytes
    code_key: bytes
    number: int
    step_seconds: int
    grace_steps: int
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., device_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., customer: _Optional[str] = ..., name: _Optional[str] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seed: _Optional[bytes] = ..., code_key: _Optional[bytes] = ..., number: _Optional[int] = ..., step_seconds: _Optional[int] = ..., grace_steps: _Optional[int] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("tenant", "customer")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ...) -> None: ...

class ListDevicesReply(_message.Message):
    __slots__ = ("result", "message", "devices")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    devices: _containers.RepeatedCompositeFieldContainer[DeviceReply]
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., devices: _Optional[_Iterable[_Union[DeviceReply, _Mapping]]] = ...) -> None: ...

class RevokeDeviceRequest(_message.Message):
    __slots__ = ("tenant", "device_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    device_id: str
    def __init__(self, tenant: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class PayByCodeRequest(_message.Message):
    __slots__ = ("tenant", "code", "amount", "terminal", "transaction", "order_reference", "partial", "currency", "pin")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    ORDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    code: str
    amount: int
    terminal: str
    transaction: str
    order_reference: str
    partial: bool
    currency: str
    pin: str
    def __init__(self, tenant: _Optional[str] = ..., code: _Optional[str] = ..., amount: _Optional[int] = ..., terminal: _Optional[str] = ..., transaction: _Optional[str] = ..., order_reference: _Optional[str] = ..., partial: _Optional[bool] = ..., currency: _Optional[str] = ..., pin: _Optional[str] = ...) -> None: ...

class PayByCodeBatchRequest(_message.Message):
    __slots__ = ("payments",)
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[PayByCodeRequest]
    def __init__(self, payments: _Optional[_Iterable[_Union[PayByCodeRequest, _Mapping]]] = ...) -> None: ...

class PayByCodeBatchReply(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[PayReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[PayReply, _Mapping]]] = ...) -> None: ...

class AuthorizeHoldByCodeRequest(_message.Message):
    __slots__ = ("tenant", "code", "amount", "terminal", "transaction", "reference", "seconds", "currency", "pin")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    code: str
    amount: int
    terminal: str
    transaction: str
    reference: str
    seconds: int
    currency: str
    pin: str
    def __init__(self, tenant: _Optional[str] = ..., code: _Optional[str] = ..., amount: _Optional[int] = ..., terminal: _Optional[str] = ..., transaction: _Optional[str] = ..., reference: _Optional[str] = ..., seconds: _Optional[int] = ..., currency: _Optional[str] = ..., pin: _Optional[str] = ...) -> None: ...

class CodePaymentRequest(_message.Message):
    __slots__ = ("tenant", "terminal", "transaction")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    terminal: str
    transaction: str
    def __init__(self, tenant: _Optional[str] = ..., terminal: _Optional[str] = ..., transaction: _Optional[str] = ...) -> None: ...

class CancelCodePaymentRequest(_message.Message):
    __slots__ = ("tenant", "terminal", "transaction", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    terminal: str
    transaction: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., terminal: _Optional[str] = ..., transaction: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CodePaymentReply(_message.Message):
    __slots__ = ("result", "message", "status", "payment", "refund_id")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    status: str
    payment: PayReply
    refund_id: str
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., status: _Optional[str] = ..., payment: _Optional[_Union[PayReply, _Mapping]] = ..., refund_id: _Optional[str] = ...) -> None: ...

class CreatePaymentRequestRequest(_message.Message):
    __slots__ = ("tenant", "terminal", "amount", "reference", "seconds", "key", "currency")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    terminal: str
    amount: int
    reference: str
    seconds: int
    key: str
    currency: str
    def __init__(self, tenant: _Optional[str] = ..., terminal: _Optional[str] = ..., amount: _Optional[int] = ..., reference: _Optional[str] = ..., seconds: _Optional[int] = ..., key: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class PaymentRequestRequest(_message.Message):
    __slots__ = ("tenant", "request_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    request_id: str
    def __init__(self, tenant: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ConfirmPaymentRequestRequest(_message.Message):
    __slots__ = ("tenant", "request_id", "customer", "pin")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    request_id: str
    customer: str
    pin: str
    def __init__(self, tenant: _Optional[str] = ..., request_id: _Optional[str] = ..., customer: _Optional[str] = ..., pin: _Optional[str] = ...) -> None: ...

class PaymentRequestReply(_message.Message):
    __slots__ = ("result", "message", "request_id", "terminal", "amount", "reference", "status", "expires_at", "created_at", "payment_id", "wallet_id", "replayed")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    request_id: str
    terminal: str
    amount: int
    reference: str
    status: str
    expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    payment_id: str
    wallet_id: str
    replayed: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., request_id: _Optional[str] = ..., terminal: _Optional[str] = ..., amount: _Optional[int] = ..., reference: _Optional[str] = ..., status: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payment_id: _Optional[str] = ..., wallet_id: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class CreatePayLinkRequest(_message.Message):
    __slots__ = ("tenant", "amount", "reference", "description", "contact", "customer", "seconds", "reusable", "partial", "key", "currency", "send", "page_url")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    REUSABLE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    PAGE_URL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    amount: int
    reference: str
    description: str
    contact: str
    customer: str
    seconds: int
    reusable: bool
    partial: bool
    key: str
    currency: str
    send: bool
    page_url: str
    def __init__(self, tenant: _Optional[str] = ..., amount: _Optional[int] = ..., reference: _Optional[str] = ..., description: _Optional[str] = ..., contact: _Optional[str] = ..., customer: _Optional[str] = ..., seconds: _Optional[int] = ..., reusable: _Optional[bool] = ..., partial: _Optional[bool] = ..., key: _Optional[str] = ..., currency: _Optional[str] = ..., send: _Optional[bool] = ..., page_url: _Optional[str] = ...) -> None: ...

class PayLinkRequest(_message.Message):
    __slots__ = ("tenant", "link_id", "token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    link_id: str
    token: str
    def __init__(self, tenant: _Optional[str] = ..., link_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class PayLinkReply(_message.Message):
    __slots__ = ("result", "message", "link_id", "tenant", "token", "amount", "currency", "reference", "description", "contact", "customer", "reusable", "partial", "status", "expires_at", "created_at", "paid", "payments", "payment_id", "replayed", "sent")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    REUSABLE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    link_id: str
    tenant: str
    token: str
    amount: int
    currency: str
    reference: str
    description: str
    contact: str
    customer: str
    reusable: bool
    partial: bool
    status: str
    expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    paid: int
    payments: int
    payment_id: str
    replayed: bool
    sent: bool
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., link_id: _Optional[str] = ..., tenant: _Optional[str] = ..., token: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., reference: _Optional[str] = ..., description: _Optional[str] = ..., contact: _Optional[str] = ..., customer: _Optional[str] = ..., reusable: _Optional[bool] = ..., partial: _Optional[bool] = ..., status: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid: _Optional[int] = ..., payments: _Optional[int] = ..., payment_id: _Optional[str] = ..., replayed: _Optional[bool] = ..., sent: _Optional[bool] = ...) -> None: ...

class StartPayLinkPaymentRequest(_message.Message):
    __slots__ = ("token", "customer", "pin")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    token: str
    customer: str
    pin: str
    def __init__(self, token: _Optional[str] = ..., customer: _Optional[str] = ..., pin: _Optional[str] = ...) -> None: ...

class PayLinkChallengeReply(_message.Message):
    __slots__ = ("result", "message", "challenge_id", "sent_to", "expires_at")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_TO_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    challenge_id: str
    sent_to: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., challenge_id: _Optional[str] = ..., sent_to: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PayPayLinkRequest(_message.Message):
    __slots__ = ("token", "challenge_id", "code")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    token: str
    challenge_id: str
    code: str
    def __init__(self, token: _Optional[str] = ..., challenge_id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class SetPinRequest(_message.Message):
    __slots__ = ("tenant", "customer", "pin")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    pin: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., pin: _Optional[str] = ...) -> None: ...

class UnlockPinRequest(_message.Message):
    __slots__ = ("tenant", "customer", "operator", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    customer: str
    operator: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., customer: _Optional[str] = ..., operator: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PinReply(_message.Message):
    __slots__ = ("result", "message", "wallet_id", "pin_set", "failures", "locked_until")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WALLET_ID_FIELD_NUMBER: _ClassVar[int]
    PIN_SET_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LOCKED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    result: WalletResult
    message: str
    wallet_id: str
    pin_set: bool
    failures: int
    locked_until: _timestamp_pb2.Timestamp
    def __init__(self, result: _Optional[_Union[WalletResult, str]] = ..., message: _Optional[str] = ..., wallet_id: _Optional[str] = ..., pin_set: _Optional[bool] = ..., failures: _Optional[int] = ..., locked_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
