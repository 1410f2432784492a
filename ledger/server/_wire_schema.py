"""What the wire codec knows of each message, shared by the native codec and its pure-Python twin.

Every message the codec reads or writes is one packed record
(ledger.records.layout): each of its fields is named here by number, with
its kind (how the wire carries it and what the record holds) and the
offset of its value in the record. Both codecs are driven by these tables,
so a request of accounts is read by the same code as one of transfers, and
a reply of transfers is written by the same code as one of results. A test
holds every table to the proto descriptors and to the record layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, NamedTuple

from ledger.records.layout import (
    ACCOUNT_CODE_OFFSET,
    ACCOUNT_CREDITS_PENDING_OFFSET,
    ACCOUNT_CREDITS_POSTED_OFFSET,
    ACCOUNT_DEBITS_PENDING_OFFSET,
    ACCOUNT_DEBITS_POSTED_OFFSET,
    ACCOUNT_FLAGS_OFFSET,
    ACCOUNT_ID_OFFSET,
    ACCOUNT_LEDGER_OFFSET,
    ACCOUNT_TIMESTAMP_OFFSET,
    ACCOUNT_USER_DATA_32_OFFSET,
    ACCOUNT_USER_DATA_64_OFFSET,
    ACCOUNT_USER_DATA_128_OFFSET,
    RESULT_CODE_OFFSET,
    RESULT_TIMESTAMP_OFFSET,
    TRANSFER_AMOUNT_OFFSET,
    TRANSFER_CODE_OFFSET,
    TRANSFER_CREDIT_ACCOUNT_ID_OFFSET,
    TRANSFER_DEBIT_ACCOUNT_ID_OFFSET,
    TRANSFER_FLAGS_OFFSET,
    TRANSFER_ID_OFFSET,
    TRANSFER_LEDGER_OFFSET,
    TRANSFER_PENDING_ID_OFFSET,
    TRANSFER_RESULT_AMOUNT_OFFSET,
    TRANSFER_TIMEOUT_OFFSET,
    TRANSFER_TIMESTAMP_OFFSET,
    TRANSFER_USER_DATA_32_OFFSET,
    TRANSFER_USER_DATA_64_OFFSET,
    TRANSFER_USER_DATA_128_OFFSET,
)
from ledger.records.limits import (
    ACCOUNT_RESULT_SIZE,
    ACCOUNT_SIZE,
    ID_SIZE,
    TRANSFER_RESULT_SIZE,
    TRANSFER_SIZE,
)

VARINT: Final = 0
I64: Final = 1
LEN: Final = 2
START_GROUP: Final = 3
END_GROUP: Final = 4
I32: Final = 5


class Kind(IntEnum):
    """How a field is carried on the wire, and what its record holds."""

    UNKNOWN = 0
    """Not a field of the message: skipped when read."""
    UINT128 = 1
    """A ledger.v1.Uint128 sub-message; 16 bytes, lo then hi. Written even when zero, as _convert sets every one."""
    U64 = 2
    """A uint64 varint; 8 bytes. Written only when not zero (proto3), as every scalar below."""
    U32 = 3
    """A uint32 varint, of which the low 32 bits are kept; 4 bytes."""
    CODE = 4
    """A uint32 varint; 2 bytes: wider than 16 bits is refused, naming `<field>.code[<index>]` as _convert does."""
    FLAGS = 5
    """As CODE, named `<field>.flags[<index>]`."""
    FIXED64 = 6
    """A fixed64; 8 bytes (the halves of a Uint128)."""
    RESULT = 7
    """An enum (an int32 varint); 4 bytes: past int32 it is refused, as protobuf refuses it."""


WIRE_TYPE: Final = {
    Kind.UINT128: LEN,
    Kind.U64: VARINT,
    Kind.U32: VARINT,
    Kind.CODE: VARINT,
    Kind.FLAGS: VARINT,
    Kind.FIXED64: I64,
    Kind.RESULT: VARINT,
}
"""The wire type a field of each kind is written with; read with another, the field is skipped as unknown."""

VALUE_SIZE: Final = {Kind.U64: 8, Kind.U32: 4, Kind.CODE: 2, Kind.FLAGS: 2, Kind.FIXED64: 8, Kind.RESULT: 4}
"""The bytes a value of each scalar kind takes in its record."""

FIELD_NUMBER_MAX: Final = 15
"""Field numbers up to 15 have one-byte tags; every field of these messages has one, which the writers rely on."""


class Field(NamedTuple):
    name: str
    kind: Kind
    offset: int
    """Of its value in the message's record."""


@dataclass(frozen=True)
class Message:
    name: str
    """The proto message's name."""
    size: int
    """Of its packed record."""
    fields: dict[int, Field]
    """By field number, in field-number order (the order protobuf writes them in)."""

    def __post_init__(self) -> None:
        assert list(self.fields) == sorted(self.fields) and max(self.fields) <= FIELD_NUMBER_MAX, self.name

    def offset_of(self, kind: Kind) -> int:
        """The offset of its field of this kind (CODE or FLAGS), -1 for none."""
        return next((f.offset for f in self.fields.values() if f.kind == kind), -1)


UINT128: Final = Message("Uint128", ID_SIZE, {1: Field("lo", Kind.FIXED64, 0), 2: Field("hi", Kind.FIXED64, 8)})

TRANSFER: Final = Message(
    "Transfer",
    TRANSFER_SIZE,
    {
        1: Field("id", Kind.UINT128, TRANSFER_ID_OFFSET),
        2: Field("debit_account_id", Kind.UINT128, TRANSFER_DEBIT_ACCOUNT_ID_OFFSET),
        3: Field("credit_account_id", Kind.UINT128, TRANSFER_CREDIT_ACCOUNT_ID_OFFSET),
        4: Field("amount", Kind.U64, TRANSFER_AMOUNT_OFFSET),
        5: Field("pending_id", Kind.UINT128, TRANSFER_PENDING_ID_OFFSET),
        6: Field("user_data_128", Kind.UINT128, TRANSFER_USER_DATA_128_OFFSET),
        7: Field("user_data_64", Kind.U64, TRANSFER_USER_DATA_64_OFFSET),
        8: Field("user_data_32", Kind.U32, TRANSFER_USER_DATA_32_OFFSET),
        9: Field("timeout", Kind.U32, TRANSFER_TIMEOUT_OFFSET),
        10: Field("ledger", Kind.U32, TRANSFER_LEDGER_OFFSET),
        11: Field("code", Kind.CODE, TRANSFER_CODE_OFFSET),
        12: Field("flags", Kind.FLAGS, TRANSFER_FLAGS_OFFSET),
        13: Field("timestamp", Kind.U64, TRANSFER_TIMESTAMP_OFFSET),
    },
)

ACCOUNT: Final = Message(
    "Account",
    ACCOUNT_SIZE,
    {
        1: Field("id", Kind.UINT128, ACCOUNT_ID_OFFSET),
        2: Field("debits_pending", Kind.U64, ACCOUNT_DEBITS_PENDING_OFFSET),
        3: Field("debits_posted", Kind.U64, ACCOUNT_DEBITS_POSTED_OFFSET),
        4: Field("credits_pending", Kind.U64, ACCOUNT_CREDITS_PENDING_OFFSET),
        5: Field("credits_posted", Kind.U64, ACCOUNT_CREDITS_POSTED_OFFSET),
        6: Field("user_data_128", Kind.UINT128, ACCOUNT_USER_DATA_128_OFFSET),
        7: Field("user_data_64", Kind.U64, ACCOUNT_USER_DATA_64_OFFSET),
        8: Field("user_data_32", Kind.U32, ACCOUNT_USER_DATA_32_OFFSET),
        9: Field("ledger", Kind.U32, ACCOUNT_LEDGER_OFFSET),
        10: Field("code", Kind.CODE, ACCOUNT_CODE_OFFSET),
        11: Field("flags", Kind.FLAGS, ACCOUNT_FLAGS_OFFSET),
        12: Field("timestamp", Kind.U64, ACCOUNT_TIMESTAMP_OFFSET),
    },
)

TRANSFER_RESULT: Final = Message(
    "CreateTransfersResult",
    TRANSFER_RESULT_SIZE,
    {
        1: Field("result", Kind.RESULT, RESULT_CODE_OFFSET),
        2: Field("timestamp", Kind.U64, RESULT_TIMESTAMP_OFFSET),
        3: Field("amount", Kind.U64, TRANSFER_RESULT_AMOUNT_OFFSET),
    },
)

ACCOUNT_RESULT: Final = Message(
    "CreateAccountsResult",
    ACCOUNT_RESULT_SIZE,
    {1: Field("result", Kind.RESULT, RESULT_CODE_OFFSET), 2: Field("timestamp", Kind.U64, RESULT_TIMESTAMP_OFFSET)},
)

MESSAGES: Final = (UINT128, TRANSFER, ACCOUNT, TRANSFER_RESULT, ACCOUNT_RESULT)
"""Every message the codec knows; the native codec keeps a C table of each, at its index here."""


@dataclass(frozen=True)
class Repeated:
    """A request or reply whose field 1, `repeated <element> <field>`, is all the codec reads or writes of it."""

    message: str
    """The request's or reply's name: a fault in its own fields is named by it."""
    field: str
    """The field's name: a fault in an element is named `<field>[<index>]`, and so is the count."""
    element: Message
    single: bool = False
    """Field 1 is one `<element> <field>`, not repeated (a stream's message): named `<field>`, written once."""


CREATE_TRANSFERS_REQUEST: Final = Repeated("CreateTransfersRequest", "transfers", TRANSFER)
CREATE_ACCOUNTS_REQUEST: Final = Repeated("CreateAccountsRequest", "accounts", ACCOUNT)
LOOKUP_REQUEST: Final = Repeated("LookupRequest", "ids", UINT128)
TRANSFERS_RESPONSE: Final = Repeated("LookupTransfersResponse", "transfers", TRANSFER)
"""Also GetAccountTransfersResponse and SubscribeTransfersResponse: theirs is field 1 too."""
ACCOUNTS_RESPONSE: Final = Repeated("LookupAccountsResponse", "accounts", ACCOUNT)
CREATE_TRANSFERS_RESPONSE: Final = Repeated("CreateTransfersResponse", "results", TRANSFER_RESULT)
CREATE_ACCOUNTS_RESPONSE: Final = Repeated("CreateAccountsResponse", "results", ACCOUNT_RESULT)
TRANSFER_STREAM_RESPONSE: Final = Repeated("TransferStreamResponse", "result", TRANSFER_RESULT, single=True)
