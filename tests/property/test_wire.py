"""The wire codec against the protobuf library: both implementations, on random and damaged wire bytes.

Requests are written here by hand, with what the library must accept and a
plain serializer never writes: fields in any order, scalars and sub-messages
repeated, unknown fields of every wire type (groups too, nested) at every
level, known field numbers with another wire type, padded varints, tags and
lengths (a tag or a length in at most 5 bytes, as the library reads them),
uint32 fields given 64-bit values, bits past 64. Then some are damaged (bytes flipped,
inserted, deleted, cut off). Whatever the library makes of the bytes, the
codec must make the same: the records `_convert` builds from the parsed
message, or the same error text; where the library refuses the bytes, a
ConversionError naming the byte. The twin and the native module must agree
word for word on everything, so each example is decoded by both.
"""

from __future__ import annotations

import os
import re
from types import ModuleType

import pytest
from google.protobuf.message import DecodeError
from hypothesis import event, given
from hypothesis import strategies as st

from ledger.engine._layout import TRANSFER_RESULT_STRUCT
from ledger.engine._limits import TRANSFER_RESULT_SIZE
from ledger.server import _wire_py
from ledger.server._convert import ConversionError, transfer_results_from_packed, transfers_to_packed
from ledger.v1 import ledger_pb2

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
MALFORMED = re.compile(
    r"^(CreateTransfersRequest|TransferStreamRequest|transfers\[\d+\]|transfer): malformed at byte \d+: "
)

EDGES = [0, 1, 2, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
u64 = st.sampled_from(EDGES) | st.integers(0, 2**64 - 1)
u16 = st.sampled_from([0, 1, 65535]) | st.integers(0, 65535)
too_wide = st.sampled_from([65536, 70000, 2**32 - 1, 2**32, 2**32 + 5, 2**64 - 1])
code_or_flags = st.one_of(u16, u16, u16, too_wide)

# ledger.v1.Transfer: field number -> what it is.
TRANSFER_FIELDS = {1: "uint128", 2: "uint128", 3: "uint128", 4: "u64", 5: "uint128", 6: "uint128", 7: "u64",
                   8: "u32", 9: "u32", 10: "u32", 11: "u16", 12: "u16", 13: "u64"}  # fmt: skip
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
transfer_numbers = st.sampled_from(sorted(TRANSFER_FIELDS))
one_in_three = st.sampled_from([True, False, False])

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
                field = self.draw(st.sampled_from(sorted(known)) if len(known) < 4 else transfer_numbers)
                fields.append(self.unknown_field(field, avoid=WIRE_TYPE_OF[known[field]]))
        return fields

    def uint128(self) -> bytes:
        chunks = [self.tag(f, I64) + self.draw(eight_bytes) for f in (1, 2) for _ in range(self.draw(occurrences))]
        return self.shuffled(chunks + self.unknown_fields({1: "fixed64", 2: "fixed64"}))

    def transfer(self) -> bytes:
        chunks = []
        for field, kind in TRANSFER_FIELDS.items():
            for _ in range(self.draw(occurrences)):
                if kind == "uint128":
                    chunks.append(self.delimited(field, self.uint128()))
                else:
                    chunks.append(self.tag(field, VARINT) + self.value(code_or_flags if kind == "u16" else u64))
        return self.shuffled(chunks + self.unknown_fields(TRANSFER_FIELDS))


@st.composite
def request(draw: st.DrawFn) -> bytes:
    """A CreateTransfersRequest or a TransferStreamRequest: both carry ledger.v1.Transfer as field 1."""
    writer = Writer(draw)
    chunks = [writer.delimited(1, writer.transfer()) for _ in range(draw(st.integers(0, 3)))]
    return writer.shuffled(chunks + writer.unknown_fields({1: "uint128", 2: "uint128", 3: "uint128"}))


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(request()))
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


def library(data: bytes, stream: bool) -> bytes | ConversionError | None:
    """What protobuf and _convert make of the bytes: records, their error, or None where protobuf refuses them."""
    try:
        if stream:
            transfers = [ledger_pb2.TransferStreamRequest.FromString(data).transfer]
        else:
            transfers = list(ledger_pb2.CreateTransfersRequest.FromString(data).transfers)
    except DecodeError:
        return None
    try:
        return transfers_to_packed(transfers)
    except ConversionError as exc:
        return exc


def decode(codec: ModuleType, data: bytes, stream: bool) -> bytes | ConversionError:
    try:
        if stream:
            return codec.decode_transfer_stream_request(data)  # type: ignore[no-any-return]
        return codec.decode_create_transfers(data)  # type: ignore[no-any-return]
    except ConversionError as exc:
        return exc


def check_against_library(data: bytes, stream: bool) -> None:
    """Every implementation makes of the bytes what the library does, and all say it in the same words."""
    expected = library(data, stream)
    event("refused by the library" if expected is None else "too wide" if isinstance(expected, Exception) else "parsed")
    outcomes = [decode(codec, data, stream) for codec in IMPLEMENTATIONS]
    for got in outcomes:
        if expected is None:
            assert isinstance(got, ConversionError), "the library refuses these bytes"
            assert MALFORMED.match(str(got)), str(got)
        elif isinstance(expected, ConversionError):
            assert isinstance(got, ConversionError)
            assert str(got) == str(expected)
        else:
            assert got == expected
    assert len({repr(got) if isinstance(got, ConversionError) else got for got in outcomes}) == 1


@given(request())
def test_requests_decode_as_the_library_parses_them(data: bytes) -> None:
    check_against_library(data, stream=False)


@given(damaged() | st.binary(max_size=40))
def test_damaged_requests_decode_or_fail_as_the_library_does(data: bytes) -> None:
    check_against_library(data, stream=False)


@given(request() | damaged())
def test_stream_requests_merge_their_transfers_as_the_library_does(data: bytes) -> None:
    check_against_library(data, stream=True)


result_codes = st.sampled_from([0, 1, 20, 64, 2**31 - 1]) | st.integers(0, 127) | st.sampled_from([2**31, 2**32 - 1])
packed_result = st.builds(TRANSFER_RESULT_STRUCT.pack, result_codes, st.integers(0, 2**32 - 1), u64, u64)


@codecs
@given(st.lists(packed_result, max_size=20))
def test_responses_are_what_protobuf_writes(codec: ModuleType, results: list[bytes]) -> None:
    packed = b"".join(results)
    try:
        messages = transfer_results_from_packed(packed)
    except ValueError:  # a result code past int32: protobuf cannot hold it in the enum either
        with pytest.raises(ConversionError, match=r"^results\[\d+\]\.result: \d+ exceeds 2147483647"):
            codec.encode_create_transfers_response(packed)
        return
    response = ledger_pb2.CreateTransfersResponse(results=messages)
    wire = codec.encode_create_transfers_response(packed)
    assert wire == response.SerializeToString() == response.SerializeToString(deterministic=True)
    assert ledger_pb2.CreateTransfersResponse.FromString(wire) == response


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


@codecs
@given(st.binary(max_size=100).map(lambda b: b if len(b) % TRANSFER_RESULT_SIZE else b + b"\x00"))
def test_results_that_are_not_whole_records_are_refused(codec: ModuleType, packed: bytes) -> None:
    with pytest.raises(ConversionError, match=rf"^results: {len(packed)} bytes is not a whole number"):
        codec.encode_create_transfers_response(packed)
    with pytest.raises(ConversionError, match=rf"^result: {len(packed)} bytes where one 24-byte result"):
        codec.encode_transfer_stream_response(packed)
