"""Between the caller's values and the wire: checked packing of records, proto messages, typed results.

The client checks only what the records cannot carry (a value wider than its
field, a wrong type, an unknown field), naming the field, before anything is
sent; every business rule is the ledger's, answered per item.
"""

from __future__ import annotations

import operator
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ledger.records.codes import CreateAccountResult, CreateTransferResult
from ledger.records.layout import (
    TRANSFER_FLAGS_OFFSET,
    TRANSFER_RESULT_STRUCT,
    TRANSFER_STRUCT,
    Account,
    AccountBalance,
    Buffer,
    Transfer,
)
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_RESULT_SIZE, TRANSFER_SIZE
from ledger.v1 import ledger_pb2, types_pb2

from ._errors import LedgerError

IdLike: TypeAlias = int | uuid.UUID
"""A 128-bit id (or user_data_128): an int in [0, 2**128 - 1] or a uuid.UUID."""
TransferLike: TypeAlias = Transfer | Mapping[str, Any]
"""A transfer: the engine's dataclass, or a mapping of its fields (`dict(id=…, amount=…)`); missing fields are 0."""
AccountLike: TypeAlias = Account | Mapping[str, Any]

_U64_MASK: Final = 2**64 - 1
LINKED: Final = 1
"""The LINKED bit, the same for transfers and accounts."""

TRANSFER_WIDTHS: Final = {
    "id": 128, "debit_account_id": 128, "credit_account_id": 128, "amount": 64, "pending_id": 128,
    "user_data_128": 128, "user_data_64": 64, "user_data_32": 32, "timeout": 32, "ledger": 32, "code": 16,
    "flags": 16, "timestamp": 64, "reserved": 64,
}  # fmt: skip
"""Every field of a transfer and its width in bits, in the order of the packed record."""
ACCOUNT_WIDTHS: Final = {
    "id": 128, "debits_pending": 64, "debits_posted": 64, "credits_pending": 64, "credits_posted": 64,
    "ledger": 32, "code": 16, "flags": 16, "timestamp": 64, "user_data_128": 128, "user_data_64": 64,
    "user_data_32": 32, "reserved": 32,
}  # fmt: skip


def field_value(raw: object, width: int, where: str) -> int:
    """`raw` as an unsigned integer of `width` bits; TypeError or ValueError naming `where` otherwise."""
    if type(raw) is int and raw >= 0 and not raw >> width:
        return raw
    if isinstance(raw, uuid.UUID) and width == 128:
        return raw.int
    if isinstance(raw, bool) or not isinstance(raw, int):
        kind = "an integer or a UUID" if width == 128 else "an integer"
        raise TypeError(f"{where}: expected {kind}, got {type(raw).__name__} {raw!r}")
    if not 0 <= raw < 1 << width:
        raise ValueError(f"{where}: {raw} is out of range (0 to 2**{width} - 1)")
    return int(raw)


def id_value(raw: object, where: str) -> int:
    return field_value(raw, 128, where)


def _values(item: object, widths: Mapping[str, int], record: type, where: str) -> list[int]:
    if isinstance(item, record):
        values = [getattr(item, name) for name in widths]
        # The common case, checked at once: plain non-negative ints that fit (names are built only for errors).
        if all(type(v) is int and v >= 0 and not v >> w for v, w in zip(values, widths.values(), strict=True)):
            return values
        fields = zip(values, widths.items(), strict=True)
        return [field_value(v, width, f"{where}.{name}") for v, (name, width) in fields]
    if not isinstance(item, Mapping):
        raise TypeError(f"{where}: expected a {record.__name__} or a mapping of its fields, got {type(item).__name__}")
    unknown = [name for name in item if name not in widths]
    if unknown:
        raise ValueError(f"{where}: unknown field {', '.join(map(str, unknown))} (fields: {', '.join(widths)})")
    if "id" not in item:
        raise ValueError(f"{where}.id: missing")
    return [field_value(item.get(name, 0), width, f"{where}.{name}") for name, width in widths.items()]


def pack_transfers(items: Sequence[TransferLike], what: str = "transfers") -> bytes:
    """Packed 128-byte records of checked transfers, in order."""
    if len(items) == 1:
        return pack_transfer(items[0], what, 0)
    return b"".join([pack_transfer(item, what, index) for index, item in enumerate(items)])


def pack_transfer(item: TransferLike, what: str = "transfers", index: int = 0) -> bytes:
    """The packed 128-byte record of one checked transfer, item `index` of `what` in an error's message."""
    if type(item) is Transfer:
        record = _plain_transfer_record(item)
        if record is not None:
            return record
    (id_, debit, credit, amount, pending, ud128, ud64, ud32, timeout, ledger, code, flags, timestamp,
     reserved) = _values(item, TRANSFER_WIDTHS, Transfer, f"{what}[{index}]")  # fmt: skip
    return TRANSFER_STRUCT.pack(
        id_ & _U64_MASK, id_ >> 64, debit & _U64_MASK, debit >> 64, credit & _U64_MASK, credit >> 64, amount,
        pending & _U64_MASK, pending >> 64, ud128 & _U64_MASK, ud128 >> 64, ud64, ud32, timeout, ledger, code, flags,
        timestamp, reserved,
    )  # fmt: skip


_transfer_fields: Final = operator.attrgetter(*TRANSFER_WIDTHS)


def _plain_transfer_record(transfer: Transfer) -> bytes | None:
    """The record of a Transfer whose fields are all plain ints that fit, or None: then the checked path
    packs it or names the field that does not fit.

    The common case at a quarter of the checked path's cost. The struct refuses every value out of its
    field's range (a negative one, or a 128-bit one whose high half is negative or wider than 64 bits); the
    type checks refuse what the struct would take and the checked path would not (a bool, an object with
    __index__) or would convert first (an int subclass such as a flag enum).
    """
    (id_, debit, credit, amount, pending, ud128, ud64, ud32, timeout, ledger, code, flags, timestamp,
     reserved) = _transfer_fields(transfer)  # fmt: skip
    if not (
        type(id_) is int and type(debit) is int and type(credit) is int and type(amount) is int
        and type(pending) is int and type(ud128) is int and type(ud64) is int and type(ud32) is int
        and type(timeout) is int and type(ledger) is int and type(code) is int and type(flags) is int
        and type(timestamp) is int and type(reserved) is int
    ):  # fmt: skip
        return None
    try:
        return TRANSFER_STRUCT.pack(
            id_ & _U64_MASK, id_ >> 64, debit & _U64_MASK, debit >> 64, credit & _U64_MASK, credit >> 64, amount,
            pending & _U64_MASK, pending >> 64, ud128 & _U64_MASK, ud128 >> 64, ud64, ud32, timeout, ledger, code,
            flags, timestamp, reserved,
        )  # fmt: skip
    except struct.error:
        return None


def check_packed_transfers(records: Buffer) -> memoryview:
    view = memoryview(records).cast("B")
    if len(view) % TRANSFER_SIZE:
        raise ValueError(f"records: {len(view)} bytes is not a whole number of {TRANSFER_SIZE}-byte transfer records")
    return view


def checked_results(records: Buffer, results: bytes) -> bytes:
    """The server's packed results for `records`, checked to be one per record."""
    if len(results) != len(records) // TRANSFER_SIZE * TRANSFER_RESULT_SIZE:
        raise LedgerError(
            f"the server answered {len(results)} bytes of results for {len(records) // TRANSFER_SIZE} transfers"
        )
    return results


def packed_linked(records: bytes | memoryview, index: int) -> bool:
    """Whether the transfer record at `index` has the LINKED flag."""
    return bool(records[index * TRANSFER_SIZE + TRANSFER_FLAGS_OFFSET] & LINKED)


def _uint128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & _U64_MASK, hi=value >> 64)


def _int(value: types_pb2.Uint128) -> int:
    return value.lo | value.hi << 64


def account_messages(items: Sequence[AccountLike], what: str = "accounts") -> list[types_pb2.Account]:
    messages = []
    for index, item in enumerate(items):
        (id_, dp, dpo, cp, cpo, ledger, code, flags, timestamp, ud128, ud64, ud32,
         _reserved) = _values(item, ACCOUNT_WIDTHS, Account, f"{what}[{index}]")  # fmt: skip
        messages.append(
            types_pb2.Account(
                id=_uint128(id_), debits_pending=dp, debits_posted=dpo, credits_pending=cp, credits_posted=cpo,
                user_data_128=_uint128(ud128), user_data_64=ud64, user_data_32=ud32, ledger=ledger, code=code,
                flags=flags, timestamp=timestamp,
            )
        )  # fmt: skip
    return messages


def account_linked(message: types_pb2.Account) -> bool:
    return bool(message.flags & LINKED)


def id_messages(ids: Iterable[int]) -> list[types_pb2.Uint128]:
    return [_uint128(i) for i in ids]


def account_from_message(m: types_pb2.Account) -> Account:
    return Account(
        id=_int(m.id), debits_pending=m.debits_pending, debits_posted=m.debits_posted,
        credits_pending=m.credits_pending, credits_posted=m.credits_posted, user_data_128=_int(m.user_data_128),
        user_data_64=m.user_data_64, user_data_32=m.user_data_32, ledger=m.ledger, code=m.code, flags=m.flags,
        timestamp=m.timestamp,
    )  # fmt: skip


def transfer_from_message(m: types_pb2.Transfer) -> Transfer:
    return Transfer(
        id=_int(m.id), debit_account_id=_int(m.debit_account_id), credit_account_id=_int(m.credit_account_id),
        amount=m.amount, pending_id=_int(m.pending_id), user_data_128=_int(m.user_data_128),
        user_data_64=m.user_data_64, user_data_32=m.user_data_32, timeout=m.timeout, ledger=m.ledger, code=m.code,
        flags=m.flags, timestamp=m.timestamp,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """One transfer's result: OK with its timestamp and the amount moved (minor units); EXISTS* with the
    original's; otherwise the reason, with timestamp and amount 0."""

    result: CreateTransferResult
    timestamp: int
    amount: int


@dataclass(frozen=True, slots=True)
class AccountOutcome:
    """One account's result, with the account's timestamp for OK and EXISTS*, 0 otherwise."""

    result: CreateAccountResult
    timestamp: int


_TRANSFER_RESULTS: Final = {member.value: member for member in CreateTransferResult}
_ACCOUNT_RESULTS: Final = {member.value: member for member in CreateAccountResult}


def _unknown(kind: type[CreateTransferResult] | type[CreateAccountResult], value: int) -> LedgerError:
    return LedgerError(f"the server answered {kind.__name__} {value}, unknown to this client")


def transfer_outcomes(results: Buffer) -> list[TransferOutcome]:
    # The members by value from a dict: calling the enum per result costs more than the rest of the outcome.
    members = _TRANSFER_RESULTS
    try:
        return [
            TransferOutcome(members[result], timestamp, amount)
            for result, _, timestamp, amount in TRANSFER_RESULT_STRUCT.iter_unpack(results)
        ]
    except KeyError as exc:
        raise _unknown(CreateTransferResult, exc.args[0]) from None


def account_outcomes(results: Iterable[ledger_pb2.CreateAccountsResult]) -> list[AccountOutcome]:
    members = _ACCOUNT_RESULTS
    try:
        return [AccountOutcome(members[r.result], r.timestamp) for r in results]
    except KeyError as exc:
        raise _unknown(CreateAccountResult, exc.args[0]) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFilter:
    """Which of an account's transfers (or balances) to return: the fields of ledger.v1.AccountFilter.

    0 in a filter field means "any". Timestamps are inclusive bounds in nanoseconds since the Unix epoch;
    timestamp_max 0 means no upper bound. `limit` is the page size, at most 8190 (0: 8190).
    """

    account_id: IdLike
    timestamp_min: int = 0
    timestamp_max: int = 0
    limit: int = 0
    exclude_debits: bool = False
    exclude_credits: bool = False
    code: int = 0
    user_data_128: IdLike = 0
    user_data_64: int = 0
    user_data_32: int = 0
    reversed: bool = False

    def to_message(self) -> ledger_pb2.AccountFilter:
        """The proto filter; TypeError or ValueError naming the field that does not fit."""
        limit = field_value(self.limit, 32, "filter.limit")
        if limit > BATCH_EVENTS_MAX:
            raise ValueError(f"filter.limit: {limit} exceeds the page size limit of {BATCH_EVENTS_MAX}")
        for name in ("exclude_debits", "exclude_credits", "reversed"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"filter.{name}: expected a bool, got {type(getattr(self, name)).__name__}")
        return ledger_pb2.AccountFilter(
            account_id=_uint128(id_value(self.account_id, "filter.account_id")),
            timestamp_min=field_value(self.timestamp_min, 64, "filter.timestamp_min"),
            timestamp_max=field_value(self.timestamp_max, 64, "filter.timestamp_max"),
            limit=limit,
            exclude_debits=self.exclude_debits,
            exclude_credits=self.exclude_credits,
            code=field_value(self.code, 16, "filter.code"),
            user_data_128=_uint128(id_value(self.user_data_128, "filter.user_data_128")),
            user_data_64=field_value(self.user_data_64, 64, "filter.user_data_64"),
            user_data_32=field_value(self.user_data_32, 32, "filter.user_data_32"),
            reversed=self.reversed,
        )

    @classmethod
    def from_message(cls, m: ledger_pb2.AccountFilter) -> AccountFilter:
        return cls(
            account_id=_int(m.account_id), timestamp_min=m.timestamp_min, timestamp_max=m.timestamp_max,
            limit=m.limit, exclude_debits=m.exclude_debits, exclude_credits=m.exclude_credits, code=m.code,
            user_data_128=_int(m.user_data_128), user_data_64=m.user_data_64, user_data_32=m.user_data_32,
            reversed=m.reversed,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TransfersPage:
    """Transfers in the filter's order, and the filter for the next page (None: there is no more)."""

    transfers: list[Transfer]
    next: AccountFilter | None


@dataclass(frozen=True, slots=True)
class BalancesPage:
    """An account's balances after each transfer in the filter's order, and the filter for the next page."""

    balances: list[AccountBalance]
    next: AccountFilter | None


def transfers_page(response: ledger_pb2.GetAccountTransfersResponse) -> TransfersPage:
    following = AccountFilter.from_message(response.next) if response.HasField("next") else None
    return TransfersPage([transfer_from_message(t) for t in response.transfers], following)


def balances_page(account_id: int, response: ledger_pb2.GetAccountBalancesResponse) -> BalancesPage:
    following = AccountFilter.from_message(response.next) if response.HasField("next") else None
    balances = [
        AccountBalance(
            account_id=account_id, timestamp=b.timestamp, debits_pending=b.debits_pending,
            debits_posted=b.debits_posted, credits_pending=b.credits_pending, credits_posted=b.credits_posted,
        )
        for b in response.balances
    ]  # fmt: skip
    return BalancesPage(balances, following)
