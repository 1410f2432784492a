from ledger.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateAccountsRequest(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Account]
    def __init__(self, accounts: _Optional[_Iterable[_Union[_types_pb2.Account, _Mapping]]] = ...) -> None: ...

class CreateAccountsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CreateAccountsResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CreateAccountsResult, _Mapping]]] = ...) -> None: ...

class CreateAccountsResult(_message.Message):
    __slots__ = ("result", "timestamp")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    result: _types_pb2.CreateAccountResult
    timestamp: int
    def __init__(self, result: _Optional[_Union[_types_pb2.CreateAccountResult, str]] = ..., timestamp: _Optional[int] = ...) -> None: ...

class CreateTransfersRequest(_message.Message):
    __slots__ = ("transfers",)
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    transfers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Transfer]
    def __init__(self, transfers: _Optional[_Iterable[_Union[_types_pb2.Transfer, _Mapping]]] = ...) -> None: ...

class CreateTransfersResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CreateTransfersResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CreateTransfersResult, _Mapping]]] = ...) -> None: ...

class CreateTransfersResult(_message.Message):
    __slots__ = ("result", "timestamp", "amount")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    result: _types_pb2.CreateTransferResult
    timestamp: int
    amount: int
    def __init__(self, result: _Optional[_Union[_types_pb2.CreateTransferResult, str]] = ..., timestamp: _Optional[int] = ..., amount: _Optional[int] = ...) -> None: ...

class PackedTransfers(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: bytes
    def __init__(self, records: _Optional[bytes] = ...) -> None: ...

class PackedTransferResults(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: bytes
    def __init__(self, results: _Optional[bytes] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedCompositeFieldContainer[_types_pb2.Uint128]
    def __init__(self, ids: _Optional[_Iterable[_Union[_types_pb2.Uint128, _Mapping]]] = ...) -> None: ...

class LookupAccountsResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Account]
    def __init__(self, accounts: _Optional[_Iterable[_Union[_types_pb2.Account, _Mapping]]] = ...) -> None: ...

class LookupTransfersResponse(_message.Message):
    __slots__ = ("transfers",)
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    transfers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Transfer]
    def __init__(self, transfers: _Optional[_Iterable[_Union[_types_pb2.Transfer, _Mapping]]] = ...) -> None: ...

class AccountFilter(_message.Message):
    __slots__ = ("account_id", "timestamp_min", "timestamp_max", "limit", "exclude_debits", "exclude_credits", "code", "user_data_128", "user_data_64", "user_data_32", "reversed")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MIN_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MAX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DEBITS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_128_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_64_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_32_FIELD_NUMBER: _ClassVar[int]
    REVERSED_FIELD_NUMBER: _ClassVar[int]
    account_id: _types_pb2.Uint128
    timestamp_min: int
    timestamp_max: int
    limit: int
    exclude_debits: bool
    exclude_credits: bool
    code: int
    user_data_128: _types_pb2.Uint128
    user_data_64: int
    user_data_32: int
    reversed: bool
    def __init__(self, account_id: _Optional[_Union[_types_pb2.Uint128, _Mapping]] = ..., timestamp_min: _Optional[int] = ..., timestamp_max: _Optional[int] = ..., limit: _Optional[int] = ..., exclude_debits: _Optional[bool] = ..., exclude_credits: _Optional[bool] = ..., code: _Optional[int] = ..., user_data_128: _Optional[_Union[_types_pb2.Uint128, _Mapping]] = ..., user_data_64: _Optional[int] = ..., user_data_32: _Optional[int] = ..., reversed: _Optional[bool] = ...) -> None: ...

class GetAccountTransfersResponse(_message.Message):
    __slots__ = ("transfers", "next")
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    transfers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Transfer]
    next: AccountFilter
    def __init__(self, transfers: _Optional[_Iterable[_Union[_types_pb2.Transfer, _Mapping]]] = ..., next: _Optional[_Union[AccountFilter, _Mapping]] = ...) -> None: ...

class GetAccountBalancesResponse(_message.Message):
    __slots__ = ("balances", "next")
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[_types_pb2.AccountBalance]
    next: AccountFilter
    def __init__(self, balances: _Optional[_Iterable[_Union[_types_pb2.AccountBalance, _Mapping]]] = ..., next: _Optional[_Union[AccountFilter, _Mapping]] = ...) -> None: ...

class TransferStreamRequest(_message.Message):
    __slots__ = ("transfer",)
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    transfer: _types_pb2.Transfer
    def __init__(self, transfer: _Optional[_Union[_types_pb2.Transfer, _Mapping]] = ...) -> None: ...

class TransferStreamResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: CreateTransfersResult
    def __init__(self, result: _Optional[_Union[CreateTransfersResult, _Mapping]] = ...) -> None: ...

class SubscribeTransfersRequest(_message.Message):
    __slots__ = ("timestamp_min",)
    TIMESTAMP_MIN_FIELD_NUMBER: _ClassVar[int]
    timestamp_min: int
    def __init__(self, timestamp_min: _Optional[int] = ...) -> None: ...

class SubscribeTransfersResponse(_message.Message):
    __slots__ = ("transfers",)
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    transfers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Transfer]
    def __init__(self, transfers: _Optional[_Iterable[_Union[_types_pb2.Transfer, _Mapping]]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("version", "engine", "auth_required", "key_id", "tenant", "role", "ledgers", "operator_view", "store", "store_available", "accounts_count", "transfers_count", "pending_transfers_count", "permissions", "capacity_warnings")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LEDGERS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_VIEW_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    STORE_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_TRANSFERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_WARNINGS_FIELD_NUMBER: _ClassVar[int]
    version: str
    engine: str
    auth_required: bool
    key_id: str
    tenant: str
    role: str
    ledgers: _containers.RepeatedScalarFieldContainer[int]
    operator_view: bool
    store: str
    store_available: bool
    accounts_count: int
    transfers_count: int
    pending_transfers_count: int
    permissions: _containers.RepeatedScalarFieldContainer[str]
    capacity_warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., engine: _Optional[str] = ..., auth_required: _Optional[bool] = ..., key_id: _Optional[str] = ..., tenant: _Optional[str] = ..., role: _Optional[str] = ..., ledgers: _Optional[_Iterable[int]] = ..., operator_view: _Optional[bool] = ..., store: _Optional[str] = ..., store_available: _Optional[bool] = ..., accounts_count: _Optional[int] = ..., transfers_count: _Optional[int] = ..., pending_transfers_count: _Optional[int] = ..., permissions: _Optional[_Iterable[str]] = ..., capacity_warnings: _Optional[_Iterable[str]] = ...) -> None: ...
