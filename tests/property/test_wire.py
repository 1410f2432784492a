"""The wire codec against the protobuf library: both implementations, on random and damaged wire bytes.

Requests (CreateTransfers, TransferStream, CreateAccounts, Lookup) are written
here by hand, with what the library must accept and a plain serializer never
writes: fields in any order, scalars and sub-messages repeated, unknown fields
of every wire type (groups too, nested) at every level, known field numbers
with another wire type, padded varints, tags and lengths (a tag or a length in
at most 5 bytes, as the library reads them), uint32 fields given 64-bit
values, bits past 64. Then some are damaged (bytes flipped, inserted, deleted,
cut off). Whatever the library makes of the bytes, the codec must make the
same: the records `_convert` builds from the parsed message (ids packed as
the servicer packs them), or the same error text; where the library refuses
the bytes, a ConversionError naming the byte, the request and the element.
The twin and the native module must agree word for word on everything, so
each example is decoded by both. What each message holds is read from the
proto descriptors, not from the codec's tables.

Replies are written by the codec from packed records with edge values (zeros
that protobuf leaves out, the largest values, reserved bytes it ignores) and
must be byte for byte what protobuf writes from _convert's messages.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from types import ModuleType

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import event, given
from hypothesis import strategies as st

from ledger.engine import pack_ids
from ledger.records.layout import ACCOUNT_RESULT_STRUCT, ACCOUNT_STRUCT, TRANSFER_RESULT_STRUCT, TRANSFER_STRUCT
from ledger.records.limits import ACCOUNT_RESULT_SIZE, ACCOUNT_SIZE, TRANSFER_RESULT_SIZE, TRANSFER_SIZE
from ledger.server import _wire_py
from ledger.server._convert import (
    ConversionError,
    account_results_from_packed,
    accounts_from_packed,
    accounts_to_packed,
    transfer_results_from_packed,
    transfers_from_packed,
    transfers_to_packed,
)
from ledger.v1 import ledger_pb2, types_pb2

try:
    from ledger.server import _wire_c
except ImportError:
    _wire_c = None  # type: ignore[assignment]

if _wire_c is None and (os.environ.get("CI") == "true" or os.environ.get("LEDGER_ENGINE") == "cython"):
    raise RuntimeError("the native wire codec (ledger.server._wire_c) is not built")

IMPLEMENTATIONS: list[ModuleType] = [_wire_py] + ([_wire_c] if _wire_c is not None else [])
codecs = pytest.mark.parametrize("codec", IMPLEMENTATIONS, ids=lambda m: m.implementation)
"""Decoding runs every implementation on each example instead (as the engines' differential test does)."""

VARINT, I64, LEN, START_GROUP, END_GROUP, I32 = 0, 1, 2, 3, 4, 5

EDGES = [0, 1, 2, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
u64 = st.sampled_from(EDGES) | st.integers(0, 2**64 - 1)
u16 = st.sampled_from([0, 1, 65535]) | st.integers(0, 65535)
too_wide = st.sampled_from([65536, 70000, 2**32 - 1, 2**32, 2**32 + 5, 2**64 - 1])
code_or_flags = st.one_of(u16, u16, u16, too_wide)


def fields_of(message: type[Message]) -> dict[int, str]:
    """A message's field numbers and what each is, as its proto descriptor says (code and flags: 16 bits wide)."""
    kinds = {FieldDescriptor.TYPE_MESSAGE: "uint128", FieldDescriptor.TYPE_UINT64: "u64",
             FieldDescriptor.TYPE_UINT32: "u32", FieldDescriptor.TYPE_FIXED64: "fixed64"}  # fmt: skip
    return {f.number: "u16" if f.name in ("code", "flags") else kinds[f.type] for f in message.DESCRIPTOR.fields}


TRANSFER_FIELDS = fields_of(types_pb2.Transfer)
ACCOUNT_FIELDS = fields_of(types_pb2.Account)
UINT128_FIELDS = fields_of(types_pb2.Uint128)
REQUEST_FIELDS = {1: "uint128", 2: "uint128", 3: "uint128"}
"""A request's field 1 (its elements) with other wire types, and unknown fields 2 and 3, which it must skip."""
WIRE_TYPE_OF = {"uint128": LEN, "u64": VARINT, "u32": VARINT, "u16": VARINT, "fixed64": I64}


def varint(value: int, padding: int = 0) -> bytes:
    """`value` as a varint, with `padding` redundant bytes (0x80 ... 0x00) that a reader must accept."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    if padding:
        out[-1] |= 0x80
        out += b"\x80" * (padding - 1) + b"\x00"
    return bytes(out)


# The request is drawn by plain methods from these few strategies, built once.
paddings = st.sampled_from([0, 0, 0, 1, 99])  # 99: as many bytes as a reader takes
occurrences = st.sampled_from([0, 1, 1, 1, 2])
unknown_numbers = st.sampled_from([14, 15, 16, 100, 2**29 - 1]) | st.integers(14, 2**29 - 1)
group_numbers = unknown_numbers | st.sampled_from([0, 1, 2])  # upb lets field number 0 through inside a group
eight_bytes = st.binary(min_size=8, max_size=8)
four_bytes = st.binary(min_size=4, max_size=4)
unknown_counts = st.sampled_from([0, 0, 1, 2, 3])
# Wire types of an unknown field, by the one it must not have (-1: none) and whether a group may nest further.
wire_type_choices = {
    (avoid, nest): st.sampled_from(
        [w for w in (VARINT, I64, LEN, I32) + ((START_GROUP,) if nest else ()) if w != avoid]
    )
    for avoid in (-1, VARINT, I64, LEN)
    for nest in (False, True)
}
overflows = st.sampled_from([False] * 15 + [True])
garbage = st.binary(max_size=12)
known_numbers = {
    id(fields): st.sampled_from(sorted(fields))
    for fields in (TRANSFER_FIELDS, ACCOUNT_FIELDS, UINT128_FIELDS, REQUEST_FIELDS)
}
one_in_three = st.sampled_from([True, False, False])
element_counts = st.integers(0, 3)

OVERFLOWING = bytes([0xFF] * 9 + [0x7F])
"""2**64 - 1 with bits past 64 set in its tenth byte, which the library drops."""


class Writer:
    """Writes the parts of a request as drawn. Only some requests pad their varints (each padding is a draw)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.padded = draw(one_in_three)

    def varint(self, value: int, size_max: int = 10) -> bytes:
        if not self.padded:
            return varint(value)
        return varint(value, min(self.draw(paddings), size_max - len(varint(value))))

    def tag(self, field: int, wire_type: int) -> bytes:
        return self.varint(field << 3 | wire_type, size_max=5)

    def length(self, size: int) -> bytes:
        return self.varint(size, size_max=5)

    def delimited(self, field: int, payload: bytes) -> bytes:
        return self.tag(field, LEN) + self.length(len(payload)) + payload

    def value(self, values: st.SearchStrategy[int]) -> bytes:
        return OVERFLOWING if self.draw(overflows) else self.varint(self.draw(values))

    def shuffled(self, chunks: list[bytes]) -> bytes:
        return b"".join(self.draw(st.permutations(chunks)))

    def unknown_field(self, field: int, avoid: int = -1, depth: int = 0) -> bytes:
        """A field of any wire type but `avoid`; a group holds more of them, nested."""
        wire_type = self.draw(wire_type_choices[avoid, depth < 3])
        if wire_type == VARINT:
            payload = self.value(u64)
        elif wire_type == I64:
            payload = self.draw(eight_bytes)
        elif wire_type == I32:
            payload = self.draw(four_bytes)
        elif wire_type == LEN:
            content = self.draw(garbage)
            payload = self.length(len(content)) + content
        else:
            count = self.draw(unknown_counts)
            inner = [self.unknown_field(self.draw(group_numbers), depth=depth + 1) for _ in range(count)]
            payload = b"".join(inner) + self.tag(field, END_GROUP)
        return self.tag(field, wire_type) + payload

    def unknown_fields(self, known: dict[int, str]) -> list[bytes]:
        """Unknown fields, and known field numbers with a wire type their type is not written with (skipped too)."""
        fields = []
        for _ in range(self.draw(unknown_counts)):
            if self.draw(st.booleans()):
                fields.append(self.unknown_field(self.draw(unknown_numbers)))
            else:
                field = self.draw(known_numbers[id(known)])
                fields.append(self.unknown_field(field, avoid=WIRE_TYPE_OF[known[field]]))
        return fields

    def message(self, known: dict[int, str]) -> bytes:
        """A message with these fields: each known one 0 to 2 times, unknown ones among them, in any order."""
        chunks = []
        for field, kind in known.items():
            for _ in range(self.draw(occurrences)):
                if kind == "uint128":
                    chunks.append(self.delimited(field, self.message(UINT128_FIELDS)))
                elif kind == "fixed64":
                    chunks.append(self.tag(field, I64) + self.draw(eight_bytes))
                else:
                    chunks.append(self.tag(field, VARINT) + self.value(code_or_flags if kind == "u16" else u64))
        return self.shuffled(chunks + self.unknown_fields(known))


ELEMENT_FIELDS = {"transfers": TRANSFER_FIELDS, "accounts": ACCOUNT_FIELDS, "ids": UINT128_FIELDS}
"""What a request of each kind carries as field 1: CreateTransfers (and TransferStream), CreateAccounts, Lookup."""
REQUEST_KINDS = list(ELEMENT_FIELDS)
request_kinds = pytest.mark.parametrize("kind", REQUEST_KINDS)


@st.composite
def request(draw: st.DrawFn, kind: str = "transfers") -> bytes:
    """A request carrying 0 to 3 elements of this kind as field 1, and unknown fields."""
    writer = Writer(draw)
    chunks = [writer.delimited(1, writer.message(ELEMENT_FIELDS[kind])) for _ in range(draw(element_counts))]
    return writer.shuffled(chunks + writer.unknown_fields(REQUEST_FIELDS))


@st.composite
def damaged(draw: st.DrawFn, kind: str = "transfers") -> bytes:
    data = bytearray(draw(request(kind)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut", "overwrite"]))
        if action == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 3))]
        elif action == "cut":
            del data[at:]
        elif at < len(data):
            data[at] = draw(st.sampled_from([0x00, 0x04, 0x06, 0x07, 0x0B, 0x0C, 0x80, 0xFF]) | st.integers(0, 255))
    return bytes(data)


# What protobuf (with _convert, or as the servicer packs ids) makes of the bytes, and where the codec names a fault.
LIBRARY = {
    "transfers": lambda data: transfers_to_packed(list(ledger_pb2.CreateTransfersRequest.FromString(data).transfers)),
    "stream": lambda data: transfers_to_packed([ledger_pb2.TransferStreamRequest.FromString(data).transfer]),
    "accounts": lambda data: accounts_to_packed(list(ledger_pb2.CreateAccountsRequest.FromString(data).accounts)),
    "ids": lambda data: pack_ids([i.lo | i.hi << 64 for i in ledger_pb2.LookupRequest.FromString(data).ids]),
}
DECODER = {
    "transfers": "decode_create_transfers",
    "stream": "decode_transfer_stream_request",
    "accounts": "decode_create_accounts",
    "ids": "decode_lookup_request",
}
MALFORMED = {
    "transfers": re.compile(r"^(CreateTransfersRequest|transfers\[\d+\]): malformed at byte \d+: "),
    "stream": re.compile(r"^(TransferStreamRequest|transfer): malformed at byte \d+: "),
    "accounts": re.compile(r"^(CreateAccountsRequest|accounts\[\d+\]): malformed at byte \d+: "),
    "ids": re.compile(r"^(LookupRequest|ids\[\d+\]): malformed at byte \d+: "),
}


def library(data: bytes, kind: str) -> bytes | ConversionError | None:
    """What protobuf and _convert make of the bytes: records, their error, or None where protobuf refuses them."""
    try:
        return LIBRARY[kind](data)
    except DecodeError:
        return None
    except ConversionError as exc:
        return exc


def decode(codec: ModuleType, data: bytes, kind: str) -> bytes | ConversionError:
    try:
        return getattr(codec, DECODER[kind])(data)  # type: ignore[no-any-return]
    except ConversionError as exc:
        return exc


def check_against_library(data: bytes, kind: str) -> None:
    """Every implementation makes of the bytes what the library does, and all say it in the same words."""
    expected = library(data, kind)
    event("refused by the library" if expected is None else "too wide" if isinstance(expected, Exception) else "parsed")
    outcomes = [decode(codec, data, kind) for codec in IMPLEMENTATIONS]
    for got in outcomes:
        if expected is None:
            assert isinstance(got, ConversionError), "the library refuses these bytes"
            assert MALFORMED[kind].match(str(got)), str(got)
        elif isinstance(expected, ConversionError):
            assert isinstance(got, ConversionError)
            assert str(got) == str(expected)
        else:
            assert got == expected
    assert len({repr(got) if isinstance(got, ConversionError) else got for got in outcomes}) == 1


REQUESTS = {kind: request(kind) for kind in REQUEST_KINDS}


@request_kinds
@given(data=st.data())
def test_requests_decode_as_the_library_parses_them(kind: str, data: st.DataObject) -> None:
    check_against_library(data.draw(REQUESTS[kind]), kind)


damaged_requests = st.sampled_from(REQUEST_KINDS).flatmap(
    lambda kind: st.tuples(st.just(kind), damaged(kind) | st.binary(max_size=40))
)
"""A request of any kind, damaged, or bytes at random: each kind is named by its own request and element."""


@given(damaged_requests)
def test_damaged_requests_decode_or_fail_as_the_library_does(kind_and_data: tuple[str, bytes]) -> None:
    check_against_library(kind_and_data[1], kind_and_data[0])


@given(request() | damaged())
def test_stream_requests_merge_their_transfers_as_the_library_does(data: bytes) -> None:
    check_against_library(data, "stream")


FORMAT_SIZES = {"Q": 8, "I": 4, "H": 2}


def packed_records(layout: struct.Struct) -> st.SearchStrategy[bytes]:
    """Records as the engine packs them, reserved bytes included (a reply ignores them), each field drawn as zero
    (which protobuf leaves out), all ones (the largest), small (a one-byte varint) or any: two draws a record."""
    fields, offset = [], 0
    for count, code in re.findall(r"(\d*)([QIHs])", layout.format):
        width = int(count) if code == "s" else FORMAT_SIZES[code]
        fields.append((offset, width))
        offset += width

    def shaped(raw: bytes, shapes: int) -> bytes:
        record = bytearray(raw)
        for at, width in fields:
            shape, shapes = shapes & 3, shapes >> 2
            if shape == 0:
                record[at : at + width] = bytes(width)
            elif shape == 1:
                record[at : at + width] = b"\xff" * width
            elif shape == 2:
                record[at : at + width] = bytes([raw[at] & 0x7F]) + bytes(width - 1)
        return bytes(record)

    return st.builds(
        shaped, st.binary(min_size=layout.size, max_size=layout.size), st.integers(0, 4 ** len(fields) - 1)
    )


RECORD_REPLIES: dict[str, tuple[st.SearchStrategy[bytes], Callable[[bytes], Message]]] = {
    "encode_transfers": (
        packed_records(TRANSFER_STRUCT),
        lambda packed: ledger_pb2.LookupTransfersResponse(transfers=transfers_from_packed(packed)),
    ),
    "encode_accounts": (
        packed_records(ACCOUNT_STRUCT),
        lambda packed: ledger_pb2.LookupAccountsResponse(accounts=accounts_from_packed(packed)),
    ),
}
"""Each codec function writing records, with records to write and the message _convert makes of them."""


@pytest.mark.parametrize("encoder", list(RECORD_REPLIES))
@given(data=st.data())
def test_replies_of_records_are_what_protobuf_writes(encoder: str, data: st.DataObject) -> None:
    records, message_of = RECORD_REPLIES[encoder]
    packed = b"".join(data.draw(st.lists(records, max_size=6)))
    response = message_of(packed)
    expected = response.SerializeToString()
    assert expected == response.SerializeToString(deterministic=True)
    for codec in IMPLEMENTATIONS:
        wire = getattr(codec, encoder)(packed)
        assert wire == expected
    assert type(response).FromString(expected) == response


result_codes = st.sampled_from([0, 1, 20, 64, 2**31 - 1]) | st.integers(0, 127) | st.sampled_from([2**31, 2**32 - 1])
packed_result = st.builds(TRANSFER_RESULT_STRUCT.pack, result_codes, st.integers(0, 2**32 - 1), u64, u64)
packed_account_result = st.builds(ACCOUNT_RESULT_STRUCT.pack, result_codes, st.integers(0, 2**32 - 1), u64)

RESULT_REPLIES: dict[str, tuple[st.SearchStrategy[bytes], Callable[[bytes], Message]]] = {
    "encode_create_transfers_response": (
        packed_result,
        lambda packed: ledger_pb2.CreateTransfersResponse(results=transfer_results_from_packed(packed)),
    ),
    "encode_create_accounts_response": (
        packed_account_result,
        lambda packed: ledger_pb2.CreateAccountsResponse(results=account_results_from_packed(packed)),
    ),
}


def encode(codec: ModuleType, encoder: str, packed: bytes) -> bytes | ConversionError:
    try:
        return getattr(codec, encoder)(packed)  # type: ignore[no-any-return]
    except ConversionError as exc:
        return exc


@pytest.mark.parametrize("encoder", list(RESULT_REPLIES))
@given(data=st.data())
def test_responses_are_what_protobuf_writes(encoder: str, data: st.DataObject) -> None:
    results, message_of = RESULT_REPLIES[encoder]
    packed = b"".join(data.draw(st.lists(results, max_size=20)))
    outcomes = [encode(codec, encoder, packed) for codec in IMPLEMENTATIONS]
    try:
        response = message_of(packed)
    except ValueError:  # a result code past int32: protobuf cannot hold it in the enum either
        size = TRANSFER_RESULT_SIZE if encoder == "encode_create_transfers_response" else ACCOUNT_RESULT_SIZE
        codes = [int.from_bytes(packed[offset : offset + 4], "little") for offset in range(0, len(packed), size)]
        index, code = next((i, code) for i, code in enumerate(codes) if code > 2**31 - 1)
        for got in outcomes:
            assert str(got) == f"results[{index}].result: {code} exceeds 2147483647, the largest enum value"
        return
    assert response.SerializeToString() == response.SerializeToString(deterministic=True)
    for got in outcomes:
        assert got == response.SerializeToString()
    assert type(response).FromString(response.SerializeToString()) == response


@codecs
@given(packed_result)
def test_stream_responses_are_what_protobuf_writes(codec: ModuleType, result: bytes) -> None:
    try:
        message = transfer_results_from_packed(result)[0]
    except ValueError:
        with pytest.raises(ConversionError, match=r"^result\.result: \d+ exceeds 2147483647"):
            codec.encode_transfer_stream_response(result)
        return
    response = ledger_pb2.TransferStreamResponse(result=message)
    wire = codec.encode_transfer_stream_response(result)
    assert wire == response.SerializeToString()
    assert ledger_pb2.TransferStreamResponse.FromString(wire) == response


WHOLE_RECORDS = {
    "encode_transfers": ("transfers", TRANSFER_SIZE),
    "encode_accounts": ("accounts", ACCOUNT_SIZE),
    "encode_create_transfers_response": ("results", TRANSFER_RESULT_SIZE),
    "encode_create_accounts_response": ("results", ACCOUNT_RESULT_SIZE),
}


@pytest.mark.parametrize("encoder", list(WHOLE_RECORDS))
@given(st.binary(max_size=300))
def test_records_that_are_not_whole_are_refused(encoder: str, packed: bytes) -> None:
    field, size = WHOLE_RECORDS[encoder]
    packed += b"\x00" * (len(packed) % size == 0)
    for codec in IMPLEMENTATIONS:
        assert str(encode(codec, encoder, packed)) == (
            f"{field}: {len(packed)} bytes is not a whole number of {size}-byte {field}"
        )


@codecs
@given(st.binary(max_size=100).filter(lambda b: len(b) != TRANSFER_RESULT_SIZE))
def test_a_stream_result_that_is_not_one_record_is_refused(codec: ModuleType, packed: bytes) -> None:
    with pytest.raises(ConversionError, match=rf"^result: {len(packed)} bytes where one 24-byte result was expected$"):
        codec.encode_transfer_stream_response(packed)
