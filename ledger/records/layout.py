"""The packed record layout: the one byte format of accounts, transfers and results.

Both engines take and return these records; the journal stores them and the
wire carries them. All integers are little-endian and unsigned; a 128-bit
value is stored as its low 64 bits followed by its high 64 bits. Amounts and
balances are in minor units of the ledger's currency.

Account (128 bytes)::

    offset size field
         0   16 id
        16    8 debits_pending
        24    8 debits_posted
        32    8 credits_pending
        40    8 credits_posted
        48    4 ledger
        52    2 code
        54    2 flags            (AccountFlags)
        56    8 timestamp        (set by the engine; zero in requests)
        64   16 user_data_128
        80    8 user_data_64
        88    4 user_data_32
        92    4 reserved         (zero)
        96   32 reserved         (zero)

Everything a transfer reads or writes of an account lies in its first
64 bytes, so applying a transfer touches one cache line per account.

Transfer (128 bytes)::

    offset size field
         0   16 id               (chosen by the caller: the idempotency key)
        16   16 debit_account_id
        32   16 credit_account_id
        48    8 amount           (in requests: the amount, or the most to move for
                                  balancing transfers, or 0 to post a hold in full;
                                  in stored transfers: the amount moved)
        56   16 pending_id
        72   16 user_data_128
        88    8 user_data_64
        96    4 user_data_32
       100    4 timeout          (seconds, pending transfers only; 0 = never expires)
       104    4 ledger
       108    2 code
       110    2 flags            (TransferFlags)
       112    8 timestamp        (set by the engine; zero in requests)
       120    8 reserved         (zero)

Account balance (64 bytes), the balances of an account with the HISTORY
flag right after a transfer that touched it: account id u128, timestamp u64
(the transfer's), debits_pending, debits_posted, credits_pending,
credits_posted (u64 each), reserved u64 (zero).

Account result (16 bytes): result u32, reserved u32, timestamp u64 (of the
account created, or of the existing one for EXISTS and EXISTS_WITH_DIFFERENT_*;
0 otherwise).

Transfer result (24 bytes): result u32, reserved u32, timestamp u64, amount
u64. For OK: the transfer's timestamp and the amount actually moved; for
EXISTS and EXISTS_WITH_DIFFERENT_*: the original's timestamp and amount;
0 and 0 otherwise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .limits import (
    ACCOUNT_BALANCE_SIZE,
    ACCOUNT_RESULT_SIZE,
    ACCOUNT_SIZE,
    ID_SIZE,
    TRANSFER_RESULT_SIZE,
    TRANSFER_SIZE,
)

_U64_MASK: Final = 2**64 - 1

Buffer = bytes | bytearray | memoryview
"""Any contiguous bytes: what the engines take and the journal hands over."""

ACCOUNT_STRUCT: Final = struct.Struct("<QQQQQQIHHQQQQII32s")
TRANSFER_STRUCT: Final = struct.Struct("<QQQQQQQQQQQQIIIHHQQ")
ACCOUNT_RESULT_STRUCT: Final = struct.Struct("<IIQ")
TRANSFER_RESULT_STRUCT: Final = struct.Struct("<IIQQ")
ID_STRUCT: Final = struct.Struct("<QQ")
ACCOUNT_BALANCE_STRUCT: Final = struct.Struct("<QQQQQQQQ")

assert ACCOUNT_STRUCT.size == ACCOUNT_SIZE
assert TRANSFER_STRUCT.size == TRANSFER_SIZE
assert ACCOUNT_RESULT_STRUCT.size == ACCOUNT_RESULT_SIZE
assert TRANSFER_RESULT_STRUCT.size == TRANSFER_RESULT_SIZE
assert ID_STRUCT.size == ID_SIZE
assert ACCOUNT_BALANCE_STRUCT.size == ACCOUNT_BALANCE_SIZE

_ACCOUNT_RESERVED: Final = bytes(32)

# Where each field starts, in bytes from the start of its record (the tables above). Code that reads or
# writes one field of packed records names it by these, never by a number of its own.
ACCOUNT_ID_OFFSET: Final = 0
ACCOUNT_DEBITS_PENDING_OFFSET: Final = 16
ACCOUNT_DEBITS_POSTED_OFFSET: Final = 24
ACCOUNT_CREDITS_PENDING_OFFSET: Final = 32
ACCOUNT_CREDITS_POSTED_OFFSET: Final = 40
ACCOUNT_LEDGER_OFFSET: Final = 48
ACCOUNT_CODE_OFFSET: Final = 52
ACCOUNT_FLAGS_OFFSET: Final = 54
ACCOUNT_TIMESTAMP_OFFSET: Final = 56
ACCOUNT_USER_DATA_128_OFFSET: Final = 64
ACCOUNT_USER_DATA_64_OFFSET: Final = 80
ACCOUNT_USER_DATA_32_OFFSET: Final = 88

TRANSFER_ID_OFFSET: Final = 0
TRANSFER_DEBIT_ACCOUNT_ID_OFFSET: Final = 16
TRANSFER_CREDIT_ACCOUNT_ID_OFFSET: Final = 32
TRANSFER_AMOUNT_OFFSET: Final = 48
TRANSFER_PENDING_ID_OFFSET: Final = 56
TRANSFER_USER_DATA_128_OFFSET: Final = 72
TRANSFER_USER_DATA_64_OFFSET: Final = 88
TRANSFER_USER_DATA_32_OFFSET: Final = 96
TRANSFER_TIMEOUT_OFFSET: Final = 100
TRANSFER_LEDGER_OFFSET: Final = 104
TRANSFER_CODE_OFFSET: Final = 108
TRANSFER_FLAGS_OFFSET: Final = 110
TRANSFER_TIMESTAMP_OFFSET: Final = 112

RESULT_CODE_OFFSET: Final = 0
"""In account and transfer results alike: the result code (u32), then the timestamp (u64)."""
RESULT_TIMESTAMP_OFFSET: Final = 8
TRANSFER_RESULT_AMOUNT_OFFSET: Final = 16


def _field_offsets(record: struct.Struct, widths: str) -> list[int]:
    """The offset of each field of `record`, whose fields span these struct codes (a 128-bit id is "QQ")."""
    offsets, at = [], 0
    for width in widths.split():
        offsets.append(at)
        at += struct.calcsize("<" + width)
    assert at == record.size
    return offsets


assert _field_offsets(ACCOUNT_STRUCT, "QQ Q Q Q Q I H H Q QQ Q I I 32s")[:12] == [
    ACCOUNT_ID_OFFSET, ACCOUNT_DEBITS_PENDING_OFFSET, ACCOUNT_DEBITS_POSTED_OFFSET, ACCOUNT_CREDITS_PENDING_OFFSET,
    ACCOUNT_CREDITS_POSTED_OFFSET, ACCOUNT_LEDGER_OFFSET, ACCOUNT_CODE_OFFSET, ACCOUNT_FLAGS_OFFSET,
    ACCOUNT_TIMESTAMP_OFFSET, ACCOUNT_USER_DATA_128_OFFSET, ACCOUNT_USER_DATA_64_OFFSET, ACCOUNT_USER_DATA_32_OFFSET,
]  # fmt: skip
assert _field_offsets(ACCOUNT_RESULT_STRUCT, "I I Q") == [RESULT_CODE_OFFSET, 4, RESULT_TIMESTAMP_OFFSET]  # 4: reserved
assert _field_offsets(TRANSFER_RESULT_STRUCT, "I I Q Q") == [
    RESULT_CODE_OFFSET, 4, RESULT_TIMESTAMP_OFFSET, TRANSFER_RESULT_AMOUNT_OFFSET,
]  # fmt: skip
assert _field_offsets(TRANSFER_STRUCT, "QQ QQ QQ Q QQ QQ Q I I I H H Q Q")[:13] == [
    TRANSFER_ID_OFFSET, TRANSFER_DEBIT_ACCOUNT_ID_OFFSET, TRANSFER_CREDIT_ACCOUNT_ID_OFFSET, TRANSFER_AMOUNT_OFFSET,
    TRANSFER_PENDING_ID_OFFSET, TRANSFER_USER_DATA_128_OFFSET, TRANSFER_USER_DATA_64_OFFSET,
    TRANSFER_USER_DATA_32_OFFSET, TRANSFER_TIMEOUT_OFFSET, TRANSFER_LEDGER_OFFSET, TRANSFER_CODE_OFFSET,
    TRANSFER_FLAGS_OFFSET, TRANSFER_TIMESTAMP_OFFSET,
]  # fmt: skip
assert _field_offsets(ACCOUNT_RESULT_STRUCT, "I I Q") == [RESULT_CODE_OFFSET, 4, RESULT_TIMESTAMP_OFFSET]  # 4: reserved
assert _field_offsets(TRANSFER_RESULT_STRUCT, "I I Q Q") == [
    RESULT_CODE_OFFSET, 4, RESULT_TIMESTAMP_OFFSET, TRANSFER_RESULT_AMOUNT_OFFSET,
]  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """One account record, as a value. Balances are in minor units."""

    id: int
    ledger: int = 0
    code: int = 0
    flags: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timestamp: int = 0
    reserved: int = 0

    def pack(self) -> bytes:
        return ACCOUNT_STRUCT.pack(
            self.id & _U64_MASK,
            self.id >> 64,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
            self.ledger,
            self.code,
            self.flags,
            self.timestamp,
            self.user_data_128 & _U64_MASK,
            self.user_data_128 >> 64,
            self.user_data_64,
            self.user_data_32,
            self.reserved,
            _ACCOUNT_RESERVED,
        )

    @classmethod
    def unpack(cls, buffer: Buffer, offset: int = 0) -> Account:
        (id_lo, id_hi, dp, dpo, cp, cpo, ledger, code, flags, timestamp, u128_lo, u128_hi, u64, u32,
         reserved, tail) = ACCOUNT_STRUCT.unpack_from(buffer, offset)  # fmt: skip
        return cls(
            id=id_lo | id_hi << 64,
            debits_pending=dp,
            debits_posted=dpo,
            credits_pending=cp,
            credits_posted=cpo,
            user_data_128=u128_lo | u128_hi << 64,
            user_data_64=u64,
            user_data_32=u32,
            ledger=ledger,
            code=code,
            flags=flags,
            reserved=reserved | (1 if tail != _ACCOUNT_RESERVED else 0),
            timestamp=timestamp,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """One transfer record, as a value. The amount is in minor units."""

    id: int
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int = 0
    ledger: int = 0
    code: int = 0
    flags: int = 0
    pending_id: int = 0
    timeout: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timestamp: int = 0
    reserved: int = 0

    def pack(self) -> bytes:
        return TRANSFER_STRUCT.pack(
            self.id & _U64_MASK,
            self.id >> 64,
            self.debit_account_id & _U64_MASK,
            self.debit_account_id >> 64,
            self.credit_account_id & _U64_MASK,
            self.credit_account_id >> 64,
            self.amount,
            self.pending_id & _U64_MASK,
            self.pending_id >> 64,
            self.user_data_128 & _U64_MASK,
            self.user_data_128 >> 64,
            self.user_data_64,
            self.user_data_32,
            self.timeout,
            self.ledger,
            self.code,
            self.flags,
            self.timestamp,
            self.reserved,
        )

    @classmethod
    def unpack(cls, buffer: Buffer, offset: int = 0) -> Transfer:
        (id_lo, id_hi, dr_lo, dr_hi, cr_lo, cr_hi, amount, p_lo, p_hi, u128_lo, u128_hi, u64, u32,
         timeout, ledger, code, flags, timestamp, reserved) = TRANSFER_STRUCT.unpack_from(buffer, offset)  # fmt: skip
        return cls(
            id=id_lo | id_hi << 64,
            debit_account_id=dr_lo | dr_hi << 64,
            credit_account_id=cr_lo | cr_hi << 64,
            amount=amount,
            pending_id=p_lo | p_hi << 64,
            user_data_128=u128_lo | u128_hi << 64,
            user_data_64=u64,
            user_data_32=u32,
            timeout=timeout,
            ledger=ledger,
            code=code,
            flags=flags,
            timestamp=timestamp,
            reserved=reserved,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountBalance:
    """An account's balances right after a transfer (at its timestamp), in minor units."""

    account_id: int
    timestamp: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    def pack(self) -> bytes:
        return ACCOUNT_BALANCE_STRUCT.pack(
            self.account_id & _U64_MASK,
            self.account_id >> 64,
            self.timestamp,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
            0,
        )


def unpack_account_balances(buffer: Buffer) -> list[AccountBalance]:
    return [
        AccountBalance(
            account_id=lo | hi << 64,
            timestamp=timestamp,
            debits_pending=dp,
            debits_posted=dpo,
            credits_pending=cp,
            credits_posted=cpo,
        )
        for lo, hi, timestamp, dp, dpo, cp, cpo, _ in ACCOUNT_BALANCE_STRUCT.iter_unpack(buffer)
    ]


@dataclass(frozen=True, slots=True)
class AccountResult:
    result: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class TransferResult:
    result: int
    timestamp: int
    amount: int


def pack_accounts(accounts: list[Account]) -> bytes:
    return b"".join(account.pack() for account in accounts)


def pack_transfers(transfers: list[Transfer]) -> bytes:
    return b"".join(transfer.pack() for transfer in transfers)


def pack_ids(ids: list[int]) -> bytes:
    return b"".join(ID_STRUCT.pack(i & _U64_MASK, i >> 64) for i in ids)


def unpack_accounts(buffer: Buffer) -> list[Account]:
    return [Account.unpack(buffer, offset) for offset in range(0, len(buffer), ACCOUNT_SIZE)]


def unpack_transfers(buffer: Buffer) -> list[Transfer]:
    return [Transfer.unpack(buffer, offset) for offset in range(0, len(buffer), TRANSFER_SIZE)]


def unpack_ids(buffer: Buffer) -> list[int]:
    return [lo | hi << 64 for lo, hi in ID_STRUCT.iter_unpack(buffer)]


def unpack_account_results(buffer: Buffer) -> list[AccountResult]:
    return [AccountResult(result, timestamp) for result, _, timestamp in ACCOUNT_RESULT_STRUCT.iter_unpack(buffer)]


def unpack_transfer_results(buffer: Buffer) -> list[TransferResult]:
    return [
        TransferResult(result, timestamp, amount)
        for result, _, timestamp, amount in TRANSFER_RESULT_STRUCT.iter_unpack(buffer)
    ]
