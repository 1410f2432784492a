"""The wire codec in plain Python: the twin of the native module built from native/_wire.pyx.

Accounts, transfers and ids go from the protobuf wire bytes of a request
straight into the engine's packed records, and accounts, transfers and
results from packed records straight into the wire bytes of a reply, with
no message object in between. The result is exactly that of the protobuf
library and ledger.server._convert, and so are the errors for what the
records cannot carry; bytes the library refuses are refused with a message
naming the byte. Which field of which message lands where in its record is
one table per message (ledger.server._wire_schema), read by one reader and
one writer for all of them.

The wire format as the library (upb) reads it, which both codecs follow:

- a tag is a varint of at most 5 bytes and at most 2^32 - 1; field number 0
  and wire types 6 and 7 do not exist; a length is a varint of at most 5
  bytes too; any other varint has at most 10 bytes, and bits past 64 are
  dropped;
- a field whose number is unknown, or whose wire type is not the one its
  type is written with, is skipped (a group is skipped up to its end-group
  tag, which must carry the same number); an end-group tag outside its group
  is an error; inside a skipped group, field number 0 is let through;
- a uint32 field keeps the low 32 bits of its varint; a scalar field seen
  twice keeps its last value; a sub-message seen twice is merged (each
  occurrence sets the fields it carries); every element of a repeated field
  is its own message;
- everything inside a sub-message, including its tags, ends at its length;
  sub-messages and groups nest at most DEPTH_MAX deep below the request.

Both codecs read in the same order and report the first fault they meet: the
request's own fields first (to count its elements and refuse more than a
batch before anything is allocated), then each element in turn. Over-wide
code and flags are reported after the whole request is read, for the first
element that has one.

Replies are written as protobuf writes them: fields in number order, a
scalar only when it is not zero, every Uint128 (which _convert always sets).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from ledger.records.layout import Buffer
from ledger.wallet import PaymentReply

from ._convert import ConversionError, _check_count, _check_u16
from ._wire_errors import (
    DEPTH_MAX,
    ENUM_VALUE_MAX,
    LENGTH_LIMIT,
    LENGTH_SIZE_MAX,
    TAG_SIZE_MAX,
    VARINT_SIZE_MAX,
    Malformed,
    malformed,
    records_error,
    result_error,
)
from ._wire_schema import (
    ACCOUNTS_RESPONSE,
    CREATE_ACCOUNTS_REQUEST,
    CREATE_ACCOUNTS_RESPONSE,
    CREATE_TRANSFERS_REQUEST,
    CREATE_TRANSFERS_RESPONSE,
    END_GROUP,
    I32,
    I64,
    LEN,
    LOOKUP_REQUEST,
    START_GROUP,
    TRANSFER,
    TRANSFER_STREAM_RESPONSE,
    TRANSFERS_RESPONSE,
    UINT128,
    VALUE_SIZE,
    VARINT,
    WIRE_TYPE,
    Kind,
    Message,
    Repeated,
)

implementation = "python"

_MASK32: Final = 2**32 - 1
_MASK64: Final = 2**64 - 1
_U16: Final = struct.Struct("<H")
_TOO_WIDE: Final = {Kind.CODE: "code", Kind.FLAGS: "flags"}


class _Reader:
    """The request's bytes and the part being read, for naming where a fault is."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.where = where

    def fault(self, offset: int, reason: Malformed, value: int = 0) -> ConversionError:
        return malformed(self.where, offset, reason, value)

    def varint(
        self,
        pos: int,
        end: int,
        size_max: int = VARINT_SIZE_MAX,
        truncated: Malformed = Malformed.TRUNCATED_VARINT,
        too_long: Malformed = Malformed.VARINT_TOO_LONG,
    ) -> tuple[int, int]:
        """(value, position after it) of a varint of at most `size_max` bytes; bits past 64 are dropped."""
        start, value = pos, 0
        for i in range(size_max):
            if pos >= end:
                raise self.fault(start, truncated)
            byte = self.data[pos]
            pos += 1
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                return value & _MASK64, pos
        raise self.fault(start, too_long)

    def tag(self, pos: int, end: int) -> tuple[int, int, int]:
        """(field number, wire type, position after the tag)."""
        value, after = self.varint(pos, end, TAG_SIZE_MAX, Malformed.TRUNCATED_TAG, Malformed.TAG_TOO_LONG)
        if value > _MASK32:
            raise self.fault(pos, Malformed.TAG_TOO_LARGE, value)
        return value >> 3, value & 7, after

    def length(self, pos: int, end: int) -> tuple[int, int]:
        """(length, position after it) of a length-delimited field that must end by `end`."""
        length, after = self.varint(pos, end, LENGTH_SIZE_MAX, Malformed.TRUNCATED_LENGTH, Malformed.LENGTH_TOO_LONG)
        if length >= LENGTH_LIMIT or length > end - after:
            raise self.fault(pos, Malformed.LENGTH_PAST_END, length)
        return length, after

    def skip_unknown(self, pos: int, end: int, field: int, wire_type: int, tag_start: int, depth: int) -> int:
        """Past a field its message does not know (or knows with another wire type); field number 0 is in none."""
        if field == 0:
            raise self.fault(tag_start, Malformed.FIELD_NUMBER_ZERO)
        return self.skip(pos, end, field, wire_type, tag_start, depth)

    def skip(self, pos: int, end: int, field: int, wire_type: int, tag_start: int, depth: int) -> int:
        """Past the value of a field not read, in a message or group nested `depth` deep; the position after it."""
        if wire_type == VARINT:
            return self.varint(pos, end)[1]
        if wire_type == I64:
            if end - pos < 8:
                raise self.fault(pos, Malformed.TRUNCATED_FIXED64)
            return pos + 8
        if wire_type == LEN:
            length, pos = self.length(pos, end)
            return pos + length
        if wire_type == I32:
            if end - pos < 4:
                raise self.fault(pos, Malformed.TRUNCATED_FIXED32)
            return pos + 4
        if wire_type == START_GROUP:
            return self.group(pos, end, field, tag_start, depth + 1)
        raise self.fault(tag_start, Malformed.WIRE_TYPE_INVALID, wire_type)

    def group(self, pos: int, end: int, number: int, start: int, depth: int) -> int:
        """Past an unknown group (every field in it unknown) up to its end-group tag."""
        if depth > DEPTH_MAX:
            raise self.fault(start, Malformed.TOO_DEEP)
        while pos < end:
            tag_start = pos
            field, wire_type, pos = self.tag(pos, end)
            if wire_type == END_GROUP:
                if field != number:
                    raise self.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
                return pos
            pos = self.skip(pos, end, field, wire_type, tag_start, depth)
        raise self.fault(start, Malformed.GROUP_NOT_CLOSED, number)

    def count_elements(self) -> int:
        """Read the request's own fields, its elements (field 1) skipped: how many elements there are."""
        pos, end, count = 0, len(self.data), 0
        while pos < end:
            tag_start = pos
            field, wire_type, pos = self.tag(pos, end)
            if wire_type == END_GROUP:
                raise self.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
            count += field == 1 and wire_type == LEN
            pos = self.skip_unknown(pos, end, field, wire_type, tag_start, 0)
        return count

    def message(
        self, message: Message, pos: int, end: int, record: bytearray, offset: int, wide: list[int], depth: int
    ) -> None:
        """Merge one message, nested `depth` deep, into the record at `offset`; code and flags go to `wide`."""
        while pos < end:
            tag_start = pos
            field, wire_type, pos = self.tag(pos, end)
            known = message.fields.get(field)
            if known is not None and wire_type == WIRE_TYPE[known.kind]:
                at = offset + known.offset
                if known.kind == Kind.UINT128:
                    length, pos = self.length(pos, end)
                    self.message(UINT128, pos, pos + length, record, at, wide, depth + 1)
                    pos += length
                elif known.kind == Kind.FIXED64:
                    if end - pos < 8:
                        raise self.fault(pos, Malformed.TRUNCATED_FIXED64)
                    record[at : at + 8] = self.data[pos : pos + 8]
                    pos += 8
                else:
                    value, pos = self.varint(pos, end)
                    if known.kind in _TOO_WIDE:
                        wide[known.kind - Kind.CODE] = value & _MASK32
                    else:
                        size = VALUE_SIZE[known.kind]
                        record[at : at + size] = (value & (1 << 8 * size) - 1).to_bytes(size, "little")
            elif wire_type == END_GROUP:
                raise self.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
            else:
                pos = self.skip_unknown(pos, end, field, wire_type, tag_start, depth)


def _finish(
    message: Message, record: bytearray, offset: int, wide: list[int], field: str, index: int
) -> tuple[int, str, int] | None:
    """Write code and flags into the record; the first of them too wide for it, as (value, field, index)."""
    for kind, value in zip((Kind.CODE, Kind.FLAGS), wide, strict=True):
        if (at := message.offset_of(kind)) >= 0:
            _U16.pack_into(record, offset + at, value & 0xFFFF)
    for kind, value in zip((Kind.CODE, Kind.FLAGS), wide, strict=True):
        if value > 0xFFFF:
            return value, f"{field}.{_TOO_WIDE[kind]}", index
    return None


def _decode(request: Repeated, data: Buffer) -> bytes:
    """The packed records of the elements of a request that is `repeated <element> <field> = 1`."""
    reader = _Reader(bytes(data), request.message)
    count = reader.count_elements()
    _check_count(count, request.field)
    element = request.element
    records = bytearray(count * element.size)
    too_wide: tuple[int, str, int] | None = None
    pos, end, index = 0, len(reader.data), 0
    while pos < end:
        tag_start = pos
        field, wire_type, pos = reader.tag(pos, end)
        if field == 1 and wire_type == LEN:
            length, pos = reader.length(pos, end)
            reader.where = f"{request.field}[{index}]"
            wide = [0, 0]
            reader.message(element, pos, pos + length, records, index * element.size, wide, 1)
            too_wide = too_wide or _finish(element, records, index * element.size, wide, request.field, index)
            reader.where = request.message
            pos += length
            index += 1
        else:
            pos = reader.skip_unknown(pos, end, field, wire_type, tag_start, 0)
    if too_wide is not None:
        _check_u16(*too_wide)
    return bytes(records)


def decode_create_transfers(data: Buffer) -> bytes:
    """The packed transfer records of a ledger.v1.CreateTransfersRequest's wire bytes."""
    return _decode(CREATE_TRANSFERS_REQUEST, data)


def decode_create_accounts(data: Buffer) -> bytes:
    """The packed account records of a ledger.v1.CreateAccountsRequest's wire bytes."""
    return _decode(CREATE_ACCOUNTS_REQUEST, data)


def decode_lookup_request(data: Buffer) -> bytes:
    """The packed 16-byte ids of a ledger.v1.LookupRequest's wire bytes."""
    return _decode(LOOKUP_REQUEST, data)


def decode_transfer_stream_request(data: Buffer) -> bytes:
    """The one packed transfer record of a ledger.v1.TransferStreamRequest's wire bytes (zeros if it has none)."""
    reader = _Reader(bytes(data), "TransferStreamRequest")
    record = bytearray(TRANSFER.size)
    wide = [0, 0]
    pos, end = 0, len(reader.data)
    while pos < end:
        tag_start = pos
        field, wire_type, pos = reader.tag(pos, end)
        if field == 1 and wire_type == LEN:
            length, pos = reader.length(pos, end)
            reader.where = "transfer"
            reader.message(TRANSFER, pos, pos + length, record, 0, wide, 1)
            reader.where = "TransferStreamRequest"
            pos += length
        elif wire_type == END_GROUP:
            raise reader.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
        else:
            pos = reader.skip_unknown(pos, end, field, wire_type, tag_start, 0)
    too_wide = _finish(TRANSFER, record, 0, wide, CREATE_TRANSFERS_REQUEST.field, 0)
    if too_wide is not None:
        _check_u16(*too_wide)
    return bytes(record)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(field: int, body: bytes) -> bytes:
    return _varint(field << 3 | LEN) + _varint(len(body)) + body


def _body(message: Message, record: bytes, offset: int, reply: Repeated, index: int) -> bytes:
    """The fields of one message (element `index` of the reply) written from the record at `offset`."""
    body = b""
    for number, known in message.fields.items():
        at = offset + known.offset
        if known.kind == Kind.UINT128:
            body += _delimited(number, _body(UINT128, record, at, reply, index))
            continue
        raw = record[at : at + VALUE_SIZE[known.kind]]
        if known.kind == Kind.FIXED64:
            if any(raw):
                body += _varint(number << 3 | I64) + raw
            continue
        value = int.from_bytes(raw, "little")
        if known.kind == Kind.RESULT and value > ENUM_VALUE_MAX:
            raise result_error(reply, index, value)
        if value:
            body += _varint(number << 3 | VARINT) + _varint(value)
    return body


def _encode(reply: Repeated, records: Buffer) -> bytes:
    """The wire bytes of a reply whose field 1 is `repeated <element> <field>` (or one), from packed records."""
    data, size = bytes(records), reply.element.size
    if len(data) % size or (reply.single and len(data) != size):
        raise records_error(reply, len(data))
    return b"".join(
        _delimited(1, _body(reply.element, data, offset, reply, index))
        for index, offset in enumerate(range(0, len(data), size))
    )


def encode_transfers(records: Buffer) -> bytes:
    """The wire bytes of a ledger.v1.LookupTransfersResponse carrying these packed transfer records."""
    return _encode(TRANSFERS_RESPONSE, records)


def encode_accounts(records: Buffer) -> bytes:
    """The wire bytes of a ledger.v1.LookupAccountsResponse carrying these packed account records."""
    return _encode(ACCOUNTS_RESPONSE, records)


def encode_create_transfers_response(results: Buffer) -> bytes:
    """The wire bytes of the ledger.v1.CreateTransfersResponse carrying these packed transfer results."""
    return _encode(CREATE_TRANSFERS_RESPONSE, results)


def encode_create_accounts_response(results: Buffer) -> bytes:
    """The wire bytes of the ledger.v1.CreateAccountsResponse carrying these packed account results."""
    return _encode(CREATE_ACCOUNTS_RESPONSE, results)


def encode_transfer_stream_response(result: Buffer) -> bytes:
    """The wire bytes of the ledger.v1.TransferStreamResponse carrying this one packed transfer result."""
    return _encode(TRANSFER_STREAM_RESPONSE, result)


# -- wallet.v1.PayBatchReply ------------------------------------------------------------------------------


def _int64(field: int, value: int) -> bytes:
    """An int64 field unless zero; a negative one as its 64-bit two's complement (ten bytes)."""
    if not value:
        return b""
    if not -(2**63) <= value < 2**63:
        raise OverflowError(f"field {field}: {value} is past int64")
    return _varint(field << 3 | VARINT) + _varint(value & 2**64 - 1)


def _pay_reply(reply: PaymentReply) -> bytes:
    """A wallet.v1.PayReply's fields in number order, each only when set (ledger.server._convert.pay_reply)."""
    result = int(reply.result)
    if not 0 <= result <= ENUM_VALUE_MAX:
        raise ValueError(f"a wallet result past the enum's range: {result}")
    body = _varint(1 << 3 | VARINT) + _varint(result) if result else b""
    if reply.message:
        body += _delimited(2, reply.message.encode())
    if reply.payment_id:
        body += _delimited(3, f"{reply.payment_id:032x}".encode()) + _delimited(4, f"{reply.wallet_id:032x}".encode())
        if reply.payment_id >> 128 or reply.wallet_id >> 128:
            raise OverflowError("a payment or wallet id past 128 bits")
    for field, value in (
        (5, reply.requested),
        (6, reply.paid),
        (7, reply.remainder),
        (8, reply.fee),
        (9, reply.balance),
    ):
        body += _int64(field, value)
    if reply.timestamp:
        seconds, nanos = divmod(reply.timestamp, 1_000_000_000)
        body += _delimited(10, _int64(1, seconds) + _int64(2, nanos))
    if reply.replayed:
        body += _varint(11 << 3 | VARINT) + b"\x01"
    return body


def encode_pay_batch_reply(replies: Sequence[PaymentReply]) -> bytes:
    """The wire bytes of a wallet.v1.PayBatchReply carrying these replies: each is field 1 (a PayReply)."""
    return b"".join(_delimited(1, _pay_reply(reply)) for reply in replies)
