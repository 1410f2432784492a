from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccountFlag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_FLAG_NONE: _ClassVar[AccountFlag]
    ACCOUNT_FLAG_LINKED: _ClassVar[AccountFlag]
    ACCOUNT_FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS: _ClassVar[AccountFlag]
    ACCOUNT_FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS: _ClassVar[AccountFlag]
    ACCOUNT_FLAG_HISTORY: _ClassVar[AccountFlag]
    ACCOUNT_FLAG_CLOSED: _ClassVar[AccountFlag]

class TransferFlag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_FLAG_NONE: _ClassVar[TransferFlag]
    TRANSFER_FLAG_LINKED: _ClassVar[TransferFlag]
    TRANSFER_FLAG_PENDING: _ClassVar[TransferFlag]
    TRANSFER_FLAG_POST_PENDING_TRANSFER: _ClassVar[TransferFlag]
    TRANSFER_FLAG_VOID_PENDING_TRANSFER: _ClassVar[TransferFlag]
    TRANSFER_FLAG_BALANCING_DEBIT: _ClassVar[TransferFlag]
    TRANSFER_FLAG_BALANCING_CREDIT: _ClassVar[TransferFlag]
    TRANSFER_FLAG_CLOSING_DEBIT: _ClassVar[TransferFlag]
    TRANSFER_FLAG_CLOSING_CREDIT: _ClassVar[TransferFlag]

class TransferStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_STATUS_NONE: _ClassVar[TransferStatus]
    TRANSFER_STATUS_PENDING: _ClassVar[TransferStatus]
    TRANSFER_STATUS_POSTED: _ClassVar[TransferStatus]
    TRANSFER_STATUS_VOIDED: _ClassVar[TransferStatus]
    TRANSFER_STATUS_EXPIRED: _ClassVar[TransferStatus]

class CreateAccountResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREATE_ACCOUNT_RESULT_UNSPECIFIED: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_OK: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_LINKED_EVENT_FAILED: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_LINKED_EVENT_CHAIN_OPEN: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_TIMESTAMP_MUST_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_RESERVED_FIELD: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_RESERVED_FLAG: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_ID_MUST_NOT_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_ID_MUST_NOT_BE_INT_MAX: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_FLAGS: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_128: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_64: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_32: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_LEDGER: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_CODE: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_EXISTS: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_FLAGS_ARE_MUTUALLY_EXCLUSIVE: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_DEBITS_PENDING_MUST_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_DEBITS_POSTED_MUST_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_CREDITS_PENDING_MUST_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_CREDITS_POSTED_MUST_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_LEDGER_MUST_NOT_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_CODE_MUST_NOT_BE_ZERO: _ClassVar[CreateAccountResult]
    CREATE_ACCOUNT_RESULT_ACCOUNTS_FULL: _ClassVar[CreateAccountResult]

class CreateTransferResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREATE_TRANSFER_RESULT_UNSPECIFIED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OK: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_LINKED_EVENT_FAILED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_LINKED_EVENT_CHAIN_OPEN: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_TIMESTAMP_MUST_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_RESERVED_FIELD: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_RESERVED_FLAG: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_ID_MUST_NOT_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_ID_MUST_NOT_BE_INT_MAX: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_FLAGS: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_PENDING_ID: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_TIMEOUT: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_AMOUNT: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_128: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_64: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_32: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_LEDGER: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_CODE: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXISTS: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_FLAGS_ARE_MUTUALLY_EXCLUSIVE: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_ACCOUNTS_MUST_BE_DIFFERENT: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_ID_MUST_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_ID_MUST_NOT_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_ID_MUST_NOT_BE_INT_MAX: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_ID_MUST_BE_DIFFERENT: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_CLOSING_TRANSFER_MUST_BE_PENDING: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_AMOUNT_MUST_NOT_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_AMOUNT_EXCEEDS_MAX: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_LEDGER_MUST_NOT_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_CODE_MUST_NOT_BE_ZERO: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_NOT_FOUND: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_NOT_FOUND: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_NOT_FOUND: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_NOT_PENDING: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_CODE: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXCEEDS_PENDING_TRANSFER_AMOUNT: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_ALREADY_POSTED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_ALREADY_VOIDED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFER_EXPIRED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_ALREADY_CLOSED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_ALREADY_CLOSED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OVERFLOWS_DEBITS_PENDING: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OVERFLOWS_CREDITS_PENDING: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OVERFLOWS_DEBITS_POSTED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OVERFLOWS_CREDITS_POSTED: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OVERFLOWS_DEBITS: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OVERFLOWS_CREDITS: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_OVERFLOWS_TIMEOUT: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXCEEDS_CREDITS: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_EXCEEDS_DEBITS: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_TRANSFERS_FULL: _ClassVar[CreateTransferResult]
    CREATE_TRANSFER_RESULT_PENDING_TRANSFERS_FULL: _ClassVar[CreateTransferResult]
ACCOUNT_FLAG_NONE: AccountFlag
ACCOUNT_FLAG_LINKED: AccountFlag
ACCOUNT_FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS: AccountFlag
ACCOUNT_FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS: AccountFlag
ACCOUNT_FLAG_HISTORY: AccountFlag
ACCOUNT_FLAG_CLOSED: AccountFlag
TRANSFER_FLAG_NONE: TransferFlag
TRANSFER_FLAG_LINKED: TransferFlag
TRANSFER_FLAG_PENDING: TransferFlag
TRANSFER_FLAG_POST_PENDING_TRANSFER: TransferFlag
TRANSFER_FLAG_VOID_PENDING_TRANSFER: TransferFlag
TRANSFER_FLAG_BALANCING_DEBIT: TransferFlag
TRANSFER_FLAG_BALANCING_CREDIT: TransferFlag
TRANSFER_FLAG_CLOSING_DEBIT: TransferFlag
TRANSFER_FLAG_CLOSING_CREDIT: TransferFlag
TRANSFER_STATUS_NONE: TransferStatus
TRANSFER_STATUS_PENDING: TransferStatus
TRANSFER_STATUS_POSTED: TransferStatus
TRANSFER_STATUS_VOIDED: TransferStatus
TRANSFER_STATUS_EXPIRED: TransferStatus
CREATE_ACCOUNT_RESULT_UNSPECIFIED: CreateAccountResult
CREATE_ACCOUNT_RESULT_OK: CreateAccountResult
CREATE_ACCOUNT_RESULT_LINKED_EVENT_FAILED: CreateAccountResult
CREATE_ACCOUNT_RESULT_LINKED_EVENT_CHAIN_OPEN: CreateAccountResult
CREATE_ACCOUNT_RESULT_TIMESTAMP_MUST_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_RESERVED_FIELD: CreateAccountResult
CREATE_ACCOUNT_RESULT_RESERVED_FLAG: CreateAccountResult
CREATE_ACCOUNT_RESULT_ID_MUST_NOT_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_ID_MUST_NOT_BE_INT_MAX: CreateAccountResult
CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_FLAGS: CreateAccountResult
CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_128: CreateAccountResult
CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_64: CreateAccountResult
CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_32: CreateAccountResult
CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_LEDGER: CreateAccountResult
CREATE_ACCOUNT_RESULT_EXISTS_WITH_DIFFERENT_CODE: CreateAccountResult
CREATE_ACCOUNT_RESULT_EXISTS: CreateAccountResult
CREATE_ACCOUNT_RESULT_FLAGS_ARE_MUTUALLY_EXCLUSIVE: CreateAccountResult
CREATE_ACCOUNT_RESULT_DEBITS_PENDING_MUST_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_DEBITS_POSTED_MUST_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_CREDITS_PENDING_MUST_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_CREDITS_POSTED_MUST_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_LEDGER_MUST_NOT_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_CODE_MUST_NOT_BE_ZERO: CreateAccountResult
CREATE_ACCOUNT_RESULT_ACCOUNTS_FULL: CreateAccountResult
CREATE_TRANSFER_RESULT_UNSPECIFIED: CreateTransferResult
CREATE_TRANSFER_RESULT_OK: CreateTransferResult
CREATE_TRANSFER_RESULT_LINKED_EVENT_FAILED: CreateTransferResult
CREATE_TRANSFER_RESULT_LINKED_EVENT_CHAIN_OPEN: CreateTransferResult
CREATE_TRANSFER_RESULT_TIMESTAMP_MUST_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_RESERVED_FIELD: CreateTransferResult
CREATE_TRANSFER_RESULT_RESERVED_FLAG: CreateTransferResult
CREATE_TRANSFER_RESULT_ID_MUST_NOT_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_ID_MUST_NOT_BE_INT_MAX: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_FLAGS: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_PENDING_ID: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_TIMEOUT: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_AMOUNT: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_128: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_64: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_USER_DATA_32: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_LEDGER: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_CODE: CreateTransferResult
CREATE_TRANSFER_RESULT_EXISTS: CreateTransferResult
CREATE_TRANSFER_RESULT_FLAGS_ARE_MUTUALLY_EXCLUSIVE: CreateTransferResult
CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX: CreateTransferResult
CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX: CreateTransferResult
CREATE_TRANSFER_RESULT_ACCOUNTS_MUST_BE_DIFFERENT: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_ID_MUST_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_ID_MUST_NOT_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_ID_MUST_NOT_BE_INT_MAX: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_ID_MUST_BE_DIFFERENT: CreateTransferResult
CREATE_TRANSFER_RESULT_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER: CreateTransferResult
CREATE_TRANSFER_RESULT_CLOSING_TRANSFER_MUST_BE_PENDING: CreateTransferResult
CREATE_TRANSFER_RESULT_AMOUNT_MUST_NOT_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_AMOUNT_EXCEEDS_MAX: CreateTransferResult
CREATE_TRANSFER_RESULT_LEDGER_MUST_NOT_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_CODE_MUST_NOT_BE_ZERO: CreateTransferResult
CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_NOT_FOUND: CreateTransferResult
CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_NOT_FOUND: CreateTransferResult
CREATE_TRANSFER_RESULT_ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER: CreateTransferResult
CREATE_TRANSFER_RESULT_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_NOT_FOUND: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_NOT_PENDING: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_CODE: CreateTransferResult
CREATE_TRANSFER_RESULT_EXCEEDS_PENDING_TRANSFER_AMOUNT: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_ALREADY_POSTED: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_ALREADY_VOIDED: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFER_EXPIRED: CreateTransferResult
CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_ALREADY_CLOSED: CreateTransferResult
CREATE_TRANSFER_RESULT_CREDIT_ACCOUNT_ALREADY_CLOSED: CreateTransferResult
CREATE_TRANSFER_RESULT_OVERFLOWS_DEBITS_PENDING: CreateTransferResult
CREATE_TRANSFER_RESULT_OVERFLOWS_CREDITS_PENDING: CreateTransferResult
CREATE_TRANSFER_RESULT_OVERFLOWS_DEBITS_POSTED: CreateTransferResult
CREATE_TRANSFER_RESULT_OVERFLOWS_CREDITS_POSTED: CreateTransferResult
CREATE_TRANSFER_RESULT_OVERFLOWS_DEBITS: CreateTransferResult
CREATE_TRANSFER_RESULT_OVERFLOWS_CREDITS: CreateTransferResult
CREATE_TRANSFER_RESULT_OVERFLOWS_TIMEOUT: CreateTransferResult
CREATE_TRANSFER_RESULT_EXCEEDS_CREDITS: CreateTransferResult
CREATE_TRANSFER_RESULT_EXCEEDS_DEBITS: CreateTransferResult
CREATE_TRANSFER_RESULT_TRANSFERS_FULL: CreateTransferResult
CREATE_TRANSFER_RESULT_PENDING_TRANSFERS_FULL: CreateTransferResult

class Uint128(_message.Message):
    __slots__ = ("lo", "hi")
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    lo: int
    hi: int
    def __init__(self, lo: _Optional[int] = ..., hi: _Optional[int] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("id", "debits_pending", "debits_posted", "credits_pending", "credits_posted", "user_data_128", "user_data_64", "user_data_32", "ledger", "code", "flags", "timestamp")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEBITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DEBITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    CREDITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_128_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_64_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_32_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    id: Uint128
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    user_data_128: Uint128
    user_data_64: int
    user_data_32: int
    ledger: int
    code: int
    flags: int
    timestamp: int
    def __init__(self, id: _Optional[_Union[Uint128, _Mapping]] = ..., debits_pending: _Optional[int] = ..., debits_posted: _Optional[int] = ..., credits_pending: _Optional[int] = ..., credits_posted: _Optional[int] = ..., user_data_128: _Optional[_Union[Uint128, _Mapping]] = ..., user_data_64: _Optional[int] = ..., user_data_32: _Optional[int] = ..., ledger: _Optional[int] = ..., code: _Optional[int] = ..., flags: _Optional[int] = ..., timestamp: _Optional[int] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("id", "debit_account_id", "credit_account_id", "amount", "pending_id", "user_data_128", "user_data_64", "user_data_32", "timeout", "ledger", "code", "flags", "timestamp")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_ID_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_128_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_64_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_32_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    id: Uint128
    debit_account_id: Uint128
    credit_account_id: Uint128
    amount: int
    pending_id: Uint128
    user_data_128: Uint128
    user_data_64: int
    user_data_32: int
    timeout: int
    ledger: int
    code: int
    flags: int
    timestamp: int
    def __init__(self, id: _Optional[_Union[Uint128, _Mapping]] = ..., debit_account_id: _Optional[_Union[Uint128, _Mapping]] = ..., credit_account_id: _Optional[_Union[Uint128, _Mapping]] = ..., amount: _Optional[int] = ..., pending_id: _Optional[_Union[Uint128, _Mapping]] = ..., user_data_128: _Optional[_Union[Uint128, _Mapping]] = ..., user_data_64: _Optional[int] = ..., user_data_32: _Optional[int] = ..., timeout: _Optional[int] = ..., ledger: _Optional[int] = ..., code: _Optional[int] = ..., flags: _Optional[int] = ..., timestamp: _Optional[int] = ...) -> None: ...

class AccountBalance(_message.Message):
    __slots__ = ("timestamp", "debits_pending", "debits_posted", "credits_pending", "credits_posted")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    DEBITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DEBITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    CREDITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    def __init__(self, timestamp: _Optional[int] = ..., debits_pending: _Optional[int] = ..., debits_posted: _Optional[int] = ..., credits_pending: _Optional[int] = ..., credits_posted: _Optional[int] = ...) -> None: ...
