"""The wire codec in plain Python: the twin of the native module built from native/_wire.pyx.

Transfers go from the protobuf wire bytes of a request straight into the
engine's packed 128-byte records, and results from packed 24-byte records
straight into the wire bytes of a reply, with no message object in between.
The result is exactly that of the protobuf library followed by
ledger.server._convert, and so are the errors for what the records cannot
carry; bytes the library refuses are refused with a message naming the byte.

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
request's own fields first (to count the transfers before anything is
allocated), then each transfer in turn. Over-wide code and flags are reported
after the whole request is read, for the first transfer that has one.
"""

from __future__ import annotations

import struct
from typing import Final

from ledger.engine._layout import TRANSFER_RESULT_STRUCT, Buffer
from ledger.engine._limits import TRANSFER_RESULT_SIZE, TRANSFER_SIZE

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
    result_code_error,
    result_size_error,
    results_size_error,
)

implementation = "python"

_MASK32: Final = 2**32 - 1
_MASK64: Final = 2**64 - 1

VARINT: Final = 0
I64: Final = 1
LEN: Final = 2
START_GROUP: Final = 3
END_GROUP: Final = 4
I32: Final = 5

# Where each field of ledger.v1.Transfer lands in the record (ledger.engine._layout).
_UINT128_OFFSETS: Final = {1: 0, 2: 16, 3: 32, 5: 56, 6: 72}
_U64_OFFSETS: Final = {4: 48, 7: 88, 13: 112}
_U32_OFFSETS: Final = {8: 96, 9: 100, 10: 104}
_CODE: Final = 11
_FLAGS: Final = 12
_CODE_OFFSET: Final = 108
_U64: Final = struct.Struct("<Q")
_U32: Final = struct.Struct("<I")
_U16_PAIR: Final = struct.Struct("<HH")


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

    def count_transfers(self) -> int:
        """Read the request's own fields, the transfers skipped: how many transfers there are."""
        pos, end, count = 0, len(self.data), 0
        while pos < end:
            tag_start = pos
            field, wire_type, pos = self.tag(pos, end)
            if wire_type == END_GROUP:
                raise self.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
            count += field == 1 and wire_type == LEN
            pos = self.skip_unknown(pos, end, field, wire_type, tag_start, 0)
        return count

    def transfer(self, pos: int, end: int, record: bytearray, offset: int, code_flags: list[int]) -> None:
        """Merge one ledger.v1.Transfer into the record at `offset`; code and flags go to `code_flags`."""
        while pos < end:
            tag_start = pos
            field, wire_type, pos = self.tag(pos, end)
            if wire_type == VARINT and field in _U64_OFFSETS:
                value, pos = self.varint(pos, end)
                _U64.pack_into(record, offset + _U64_OFFSETS[field], value)
            elif wire_type == VARINT and field in _U32_OFFSETS:
                value, pos = self.varint(pos, end)
                _U32.pack_into(record, offset + _U32_OFFSETS[field], value & _MASK32)
            elif wire_type == VARINT and field in (_CODE, _FLAGS):
                value, pos = self.varint(pos, end)
                code_flags[field - _CODE] = value & _MASK32
            elif wire_type == LEN and field in _UINT128_OFFSETS:
                length, pos = self.length(pos, end)
                self.uint128(pos, pos + length, record, offset + _UINT128_OFFSETS[field])
                pos += length
            elif wire_type == END_GROUP:
                raise self.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
            else:
                pos = self.skip_unknown(pos, end, field, wire_type, tag_start, 1)

    def uint128(self, pos: int, end: int, record: bytearray, offset: int) -> None:
        """Merge one ledger.v1.Uint128 (fixed64 lo = 1, hi = 2) into the 16 bytes at `offset`."""
        while pos < end:
            tag_start = pos
            field, wire_type, pos = self.tag(pos, end)
            if wire_type == I64 and field in (1, 2):
                if end - pos < 8:
                    raise self.fault(pos, Malformed.TRUNCATED_FIXED64)
                half = offset + 8 * (field - 1)
                record[half : half + 8] = self.data[pos : pos + 8]
                pos += 8
            elif wire_type == END_GROUP:
                raise self.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
            else:
                pos = self.skip_unknown(pos, end, field, wire_type, tag_start, 2)


def _finish(record: bytearray, offset: int, code_flags: list[int], index: int) -> tuple[int, str, int] | None:
    """Write code and flags into the record; the first of them too wide for it, as (value, field, index)."""
    code, flags = code_flags
    _U16_PAIR.pack_into(record, offset + _CODE_OFFSET, code & 0xFFFF, flags & 0xFFFF)
    if code > 0xFFFF:
        return code, "transfers.code", index
    if flags > 0xFFFF:
        return flags, "transfers.flags", index
    return None


def decode_create_transfers(data: Buffer) -> bytes:
    """The packed transfer records of a ledger.v1.CreateTransfersRequest's wire bytes."""
    reader = _Reader(bytes(data), "CreateTransfersRequest")
    count = reader.count_transfers()
    _check_count(count, "transfers")
    records = bytearray(count * TRANSFER_SIZE)
    too_wide: tuple[int, str, int] | None = None
    pos, end, index = 0, len(reader.data), 0
    while pos < end:
        tag_start = pos
        field, wire_type, pos = reader.tag(pos, end)
        if field == 1 and wire_type == LEN:
            length, pos = reader.length(pos, end)
            reader.where = f"transfers[{index}]"
            code_flags = [0, 0]
            reader.transfer(pos, pos + length, records, index * TRANSFER_SIZE, code_flags)
            wide = _finish(records, index * TRANSFER_SIZE, code_flags, index)
            too_wide = too_wide or wide
            reader.where = "CreateTransfersRequest"
            pos += length
            index += 1
        else:
            pos = reader.skip_unknown(pos, end, field, wire_type, tag_start, 0)
    if too_wide is not None:
        _check_u16(*too_wide)
    return bytes(records)


def decode_transfer_stream_request(data: Buffer) -> bytes:
    """The one packed transfer record of a ledger.v1.TransferStreamRequest's wire bytes (zeros if it has none)."""
    reader = _Reader(bytes(data), "TransferStreamRequest")
    record = bytearray(TRANSFER_SIZE)
    code_flags = [0, 0]
    pos, end = 0, len(reader.data)
    while pos < end:
        tag_start = pos
        field, wire_type, pos = reader.tag(pos, end)
        if field == 1 and wire_type == LEN:
            length, pos = reader.length(pos, end)
            reader.where = "transfer"
            reader.transfer(pos, pos + length, record, 0, code_flags)
            reader.where = "TransferStreamRequest"
            pos += length
        elif wire_type == END_GROUP:
            raise reader.fault(tag_start, Malformed.END_GROUP_UNMATCHED, field)
        else:
            pos = reader.skip_unknown(pos, end, field, wire_type, tag_start, 0)
    too_wide = _finish(record, 0, code_flags, 0)
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


def _result(result: int, timestamp: int, amount: int, where: str) -> bytes:
    """A ledger.v1.CreateTransfersResult as protobuf writes it: fields in order, zeros left out."""
    if result > ENUM_VALUE_MAX:
        raise result_code_error(where, result)
    body = b""
    for field, value in ((1, result), (2, timestamp), (3, amount)):
        if value:
            body += _varint(field << 3 | VARINT) + _varint(value)
    return _varint(1 << 3 | LEN) + _varint(len(body)) + body


def encode_create_transfers_response(results: Buffer) -> bytes:
    """The wire bytes of the ledger.v1.CreateTransfersResponse carrying these packed transfer results."""
    size = memoryview(results).nbytes
    if size % TRANSFER_RESULT_SIZE:
        raise results_size_error(size)
    return b"".join(
        _result(result, timestamp, amount, f"results[{index}].result")
        for index, (result, _, timestamp, amount) in enumerate(TRANSFER_RESULT_STRUCT.iter_unpack(results))
    )


def encode_transfer_stream_response(result: Buffer) -> bytes:
    """The wire bytes of the ledger.v1.TransferStreamResponse carrying this one packed transfer result."""
    size = memoryview(result).nbytes
    if size != TRANSFER_RESULT_SIZE:
        raise result_size_error(size)
    code, _, timestamp, amount = TRANSFER_RESULT_STRUCT.unpack(result)
    return _result(code, timestamp, amount, "result.result")
