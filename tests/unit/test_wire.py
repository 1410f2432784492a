"""The wire codec: its selection, the text of every error, the limits, and what protobuf itself writes."""

from __future__ import annotations

import os
from types import ModuleType

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from ledger.engine import EngineUnavailable, Transfer, pack_transfers
from ledger.engine._layout import TRANSFER_RESULT_STRUCT
from ledger.engine._limits import BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.server import _convert, _wire, _wire_py
from ledger.server._convert import ConversionError, transfers_from_packed, transfers_to_packed
from ledger.server._wire_errors import DEPTH_MAX, Malformed
from ledger.v1 import ledger_pb2, types_pb2

try:
    from ledger.server import _wire_c
except ImportError:
    _wire_c = None  # type: ignore[assignment]

if _wire_c is None and (os.environ.get("CI") == "true" or os.environ.get("LEDGER_ENGINE") == "cython"):
    raise RuntimeError("the native wire codec (ledger.server._wire_c) is not built")

IMPLEMENTATIONS: list[ModuleType] = [_wire_py] + ([_wire_c] if _wire_c is not None else [])
codecs = pytest.mark.parametrize("codec", IMPLEMENTATIONS, ids=lambda m: m.implementation)


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def groups(count: int, number: int = 7) -> bytes:
    """`count` unknown groups, each inside the one before."""
    return varint(number << 3 | 3) * count + varint(number << 3 | 4) * count


def library_refuses(data: bytes) -> bool:
    try:
        ledger_pb2.CreateTransfersRequest.FromString(data)
    except DecodeError:
        return True
    return False


# --- selection ---------------------------------------------------------------------------


def test_select_python_returns_the_twin() -> None:
    assert _wire.select("python") is _wire_py
    assert _wire.select(" Python ") is _wire_py


def test_select_cython_returns_the_native_module_or_says_it_is_not_built() -> None:
    if _wire_c is None:
        with pytest.raises(EngineUnavailable, match=r"ledger\.server\._wire_c\) is not built"):
            _wire.select("cython")
        return
    assert _wire.select("cython") is _wire_c
    assert _wire.select("CYTHON") is _wire_c


def test_select_without_a_choice_prefers_the_native_module() -> None:
    best = _wire_c or _wire_py
    assert _wire.select(None) is best
    assert _wire.select("") is best


def test_the_selected_codec_is_the_one_the_module_serves() -> None:
    assert _wire.wire is _wire.select(os.environ.get("LEDGER_ENGINE"))
    assert _wire.wire.implementation == _wire.IMPLEMENTATION
    # The service runs the native codec, or without it protobuf and _convert (faster than the twin).
    serving = _wire.wire if _wire.wire is not _wire_py else _convert
    assert _wire.serving is serving
    assert _wire.decode_create_transfers is serving.decode_create_transfers
    assert _wire.decode_transfer_stream_request is serving.decode_transfer_stream_request
    assert _wire.encode_create_transfers_response is serving.encode_create_transfers_response
    assert _wire.encode_transfer_stream_response is serving.encode_transfer_stream_response


def test_implementations_are_named() -> None:
    assert _wire_py.implementation == "python"
    if _wire_c is not None:
        assert _wire_c.implementation == "cython"


# --- malformed bytes: one case of every fault, with its exact text -------------------------

TRANSFER_HEAD = field(1, b"\x20\x05")  # transfers[0] with amount 5: the next field starts at byte 4
REQUEST = "CreateTransfersRequest"
# (fault, bytes, where, byte, text): the message is f"{where}: malformed at byte {byte}: {text}".
MALFORMED_CASES = [
    (Malformed.TRUNCATED_VARINT, b"\x20\x80", REQUEST, 1, "varint runs past the end of its message"),
    (Malformed.VARINT_TOO_LONG, b"\x20" + b"\xff" * 10 + b"\x01", REQUEST, 1, "varint longer than 10 bytes"),
    (Malformed.TRUNCATED_TAG, b"\x20\x01\x80", REQUEST, 2, "tag runs past the end of its message"),
    (Malformed.TAG_TOO_LONG, b"\x80\x80\x80\x80\x80\x00", REQUEST, 0, "tag longer than 5 bytes"),
    (Malformed.TAG_TOO_LARGE, b"\x80\x80\x80\x80\x10", REQUEST, 0, "tag 4294967296 exceeds 2^32 - 1"),
    (Malformed.FIELD_NUMBER_ZERO, b"\x00\x00", REQUEST, 0, "field number 0"),
    (Malformed.WIRE_TYPE_INVALID, b"\x0e", REQUEST, 0, "wire type 6 does not exist"),
    (Malformed.WIRE_TYPE_INVALID, b"\x0f", REQUEST, 0, "wire type 7 does not exist"),
    (Malformed.TRUNCATED_FIXED64, b"\x09" + bytes(7), REQUEST, 1, "fixed64 value runs past the end of its message"),
    (Malformed.TRUNCATED_FIXED32, b"\x0d" + bytes(3), REQUEST, 1, "fixed32 value runs past the end of its message"),
    (Malformed.TRUNCATED_LENGTH, b"\x12\x80", REQUEST, 1, "length runs past the end of its message"),
    (Malformed.LENGTH_TOO_LONG, b"\x12\x80\x80\x80\x80\x80\x00", REQUEST, 1, "length longer than 5 bytes"),
    (Malformed.LENGTH_PAST_END, b"\x12\x05abc", REQUEST, 1, "length 5 runs past the end of its message"),
    (Malformed.END_GROUP_UNMATCHED, b"\x2c", REQUEST, 0, "end-group tag of field 5 closes no open group"),
    (Malformed.END_GROUP_UNMATCHED, b"\x2b\x34", REQUEST, 1, "end-group tag of field 6 closes no open group"),
    (Malformed.GROUP_NOT_CLOSED, b"\x2b\x20\x01", REQUEST, 0, "group of field 5 is not closed"),
    (Malformed.TOO_DEEP, groups(DEPTH_MAX + 1), REQUEST, DEPTH_MAX, "nested deeper than 100 levels"),
    # Inside a transfer, and inside one of its ids: offsets still count from the request's first byte.
    (Malformed.TRUNCATED_VARINT, TRANSFER_HEAD + field(1, b"\x20\x80"), "transfers[1]", 7,
     "varint runs past the end of its message"),
    (Malformed.END_GROUP_UNMATCHED, TRANSFER_HEAD + field(1, b"\x0c"), "transfers[1]", 6,
     "end-group tag of field 1 closes no open group"),
    (Malformed.LENGTH_PAST_END, TRANSFER_HEAD + field(1, b"\x0a\x09\x09" + bytes(7)), "transfers[1]", 7,
     "length 9 runs past the end of its message"),
    (Malformed.TRUNCATED_FIXED64, TRANSFER_HEAD + field(1, field(2, b"\x11" + bytes(7))), "transfers[1]", 9,
     "fixed64 value runs past the end of its message"),
    (Malformed.GROUP_NOT_CLOSED, TRANSFER_HEAD + field(1, field(1, b"\x1b")), "transfers[1]", 8,
     "group of field 3 is not closed"),
    (Malformed.TOO_DEEP, field(1, field(1, groups(DEPTH_MAX - 1))), "transfers[0]", 104,
     "nested deeper than 100 levels"),
]  # fmt: skip


@codecs
@pytest.mark.parametrize(("reason", "data", "where", "offset", "text"), MALFORMED_CASES,
                         ids=[case[0].name for case in MALFORMED_CASES])  # fmt: skip
def test_malformed_bytes_are_named_by_fault_and_byte(
    codec: ModuleType, reason: Malformed, data: bytes, where: str, offset: int, text: str
) -> None:
    assert library_refuses(data)
    with pytest.raises(ConversionError) as raised:
        codec.decode_create_transfers(data)
    assert str(raised.value) == f"{where}: malformed at byte {offset}: {text}"


def test_every_fault_has_a_case() -> None:
    assert {case[0] for case in MALFORMED_CASES} == set(Malformed)


@codecs
def test_stream_requests_name_the_request_or_its_transfer(codec: ModuleType) -> None:
    with pytest.raises(ConversionError, match=r"^TransferStreamRequest: malformed at byte 0: field number 0$"):
        codec.decode_transfer_stream_request(b"\x00\x00")
    with pytest.raises(
        ConversionError, match=r"^TransferStreamRequest: malformed at byte 0: end-group tag of field 1 "
    ):
        codec.decode_transfer_stream_request(b"\x0c")
    with pytest.raises(ConversionError, match=r"^transfer: malformed at byte 3: varint runs past the end"):
        codec.decode_transfer_stream_request(field(1, b"\x20\xff"))


# --- nesting: as deep as the library allows, and no deeper --------------------------------


@codecs
@pytest.mark.parametrize(
    ("wrap", "deepest"),
    [
        (lambda g: g, DEPTH_MAX),
        (lambda g: field(1, g), DEPTH_MAX - 1),
        (lambda g: field(1, field(1, g)), DEPTH_MAX - 2),
    ],
    ids=["request", "transfer", "id"],
)
def test_groups_nest_as_deep_as_the_library_allows(codec: ModuleType, wrap, deepest: int) -> None:  # type: ignore[no-untyped-def]
    allowed, refused = wrap(groups(deepest)), wrap(groups(deepest + 1))
    assert not library_refuses(allowed) and library_refuses(refused)
    assert codec.decode_create_transfers(allowed) == transfers_to_packed(
        ledger_pb2.CreateTransfersRequest.FromString(allowed).transfers
    )
    with pytest.raises(ConversionError, match="nested deeper than 100 levels"):
        codec.decode_create_transfers(refused)


# --- what the records cannot carry, as _convert says it --------------------------------------


@codecs
def test_the_batch_limit_is_checked_with_the_text_of_convert(codec: ModuleType) -> None:
    full = field(1, b"") * BATCH_EVENTS_MAX
    assert codec.decode_create_transfers(full) == bytes(BATCH_EVENTS_MAX * TRANSFER_SIZE)
    over = full + field(1, b"")
    with pytest.raises(ConversionError) as expected:
        transfers_to_packed(ledger_pb2.CreateTransfersRequest.FromString(over).transfers)
    with pytest.raises(ConversionError) as raised:
        codec.decode_create_transfers(over)
    assert str(raised.value) == str(expected.value) == "transfers: 8191 items exceeds the limit of 8190 per request"


@codecs
def test_the_first_over_wide_code_or_flags_is_named(codec: ModuleType) -> None:
    def transfer(code: int, flags: int) -> bytes:
        return field(1, b"\x58" + varint(code) + b"\x60" + varint(flags))

    cases = [
        (transfer(1, 1) + transfer(70_000, 1) + transfer(80_000, 1), "transfers.code[1]: 70000 exceeds 65535"),
        (transfer(1, 1) + transfer(70_000, 2**32 - 1), "transfers.code[1]: 70000 exceeds 65535"),
        (transfer(1, 65_536) + transfer(70_000, 1), "transfers.flags[0]: 65536 exceeds 65535"),
        # uint32 keeps the low 32 bits of a wider varint; what remains is checked.
        (transfer(2**32 + 65_535, 2**64 - 1), "transfers.flags[0]: 4294967295 exceeds 65535"),
    ]
    for data, message in cases:
        with pytest.raises(ConversionError) as expected:
            transfers_to_packed(ledger_pb2.CreateTransfersRequest.FromString(data).transfers)
        with pytest.raises(ConversionError) as raised:
            codec.decode_create_transfers(data)
        assert str(raised.value) == str(expected.value) == message
    # Bytes the library refuses are refused as such, even after an over-wide code.
    with pytest.raises(ConversionError, match="malformed at byte"):
        codec.decode_create_transfers(transfer(70_000, 1) + field(1, b"\x20"))
    with pytest.raises(ConversionError, match=r"^transfers\.code\[0\]: 70000 exceeds 65535$"):
        codec.decode_transfer_stream_request(transfer(70_000, 1))


# --- protobuf semantics, spelled out ---------------------------------------------------------


@codecs
def test_repeated_scalars_keep_the_last_and_repeated_ids_merge(codec: ModuleType) -> None:
    lo, hi = b"\x09" + (7).to_bytes(8, "little"), b"\x11" + (9).to_bytes(8, "little")
    data = field(1, b"\x20\x05" + field(1, lo) + b"\x20\x06" + field(1, hi) + b"\x58\x02\x58\x03")
    assert codec.decode_create_transfers(data) == pack_transfers([Transfer(id=9 << 64 | 7, amount=6, code=3)])


@codecs
def test_stream_request_merges_every_transfer_it_carries(codec: ModuleType) -> None:
    data = field(1, b"\x20\x05\x58\x02") + b"\x10\x01" + field(1, b"\x58\x03\x50\x04")
    expected = transfers_to_packed([ledger_pb2.TransferStreamRequest.FromString(data).transfer])
    assert codec.decode_transfer_stream_request(data) == expected
    assert expected == pack_transfers([Transfer(id=0, amount=5, code=3, ledger=4)])
    assert codec.decode_transfer_stream_request(b"") == bytes(TRANSFER_SIZE)


@codecs
def test_known_numbers_with_another_wire_type_are_skipped_as_unknown(codec: ModuleType) -> None:
    data = field(1, b"\x21" + bytes(8) + b"\x22\x01\x07" + b"\x08\x05" + b"\x0b\x0c" + b"\x58\x01")
    assert library_refuses(data) is False
    assert codec.decode_create_transfers(data) == pack_transfers([Transfer(id=0, code=1)])


@codecs
def test_field_number_0_is_refused_in_a_message_but_let_through_in_a_skipped_group(codec: ModuleType) -> None:
    # upb skips an unknown group without looking at the numbers inside it; a message's own fields it checks.
    inside = b"\x00\x05" + b"\x03\x00\x01\x04" + b"\x01" + bytes(8)  # field 0: a varint, a group, a fixed64
    for data in (
        b"\x2b" + inside + b"\x2c",
        field(1, b"\x20\x05\x2b" + inside + b"\x2c"),
        field(1, field(2, b"\x2b" + inside + b"\x2c")),
    ):
        assert codec.decode_create_transfers(data) == transfers_to_packed(
            ledger_pb2.CreateTransfersRequest.FromString(data).transfers
        )
    for data in (b"\x00\x05", field(1, b"\x00\x05"), field(1, field(2, b"\x00\x05"))):
        assert library_refuses(data)
        with pytest.raises(ConversionError, match=r"field number 0$"):
            codec.decode_create_transfers(data)


@codecs
def test_any_contiguous_buffer_is_read(codec: ModuleType) -> None:
    data = field(1, b"\x20\x05")
    expected = pack_transfers([Transfer(id=0, amount=5)])
    for buffer in (data, bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert codec.decode_create_transfers(buffer) == expected
    results = TRANSFER_RESULT_STRUCT.pack(1, 0, 2, 3)
    for buffer in (bytearray(results), memoryview(results)):
        assert codec.encode_create_transfers_response(buffer) == codec.encode_create_transfers_response(results)
        assert codec.encode_transfer_stream_response(buffer) == codec.encode_transfer_stream_response(results)


u128 = st.sampled_from([0, 1, 2**64 - 1, 2**64, 2**128 - 1]) | st.integers(0, 2**128 - 1)
u64 = st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**64 - 1]) | st.integers(0, 2**64 - 1)
u32 = st.sampled_from([0, 1, 2**32 - 1]) | st.integers(0, 2**32 - 1)
u16 = st.sampled_from([0, 1, 65535]) | st.integers(0, 65535)
transfers = st.builds(
    Transfer, id=u128, debit_account_id=u128, credit_account_id=u128, amount=u64, ledger=u32, code=u16, flags=u16,
    pending_id=u128, timeout=u32, user_data_128=u128, user_data_64=u64, user_data_32=u32, timestamp=u64,
)  # fmt: skip


@codecs
@given(st.lists(transfers, max_size=10))
def test_what_protobuf_writes_decodes_to_the_records_it_came_from(codec: ModuleType, batch: list[Transfer]) -> None:
    packed = pack_transfers(batch)
    request = ledger_pb2.CreateTransfersRequest(transfers=transfers_from_packed(packed))
    assert codec.decode_create_transfers(request.SerializeToString()) == packed
    for record in range(len(batch)):
        stream = ledger_pb2.TransferStreamRequest(transfer=request.transfers[record])
        assert codec.decode_transfer_stream_request(stream.SerializeToString()) == packed[record * 128 :][:128]


@codecs
def test_empty_replies_are_written_as_protobuf_writes_them(codec: ModuleType) -> None:
    assert codec.encode_create_transfers_response(b"") == b""
    empty = ledger_pb2.TransferStreamResponse(result=ledger_pb2.CreateTransfersResult()).SerializeToString()
    assert codec.encode_transfer_stream_response(bytes(24)) == empty == b"\x0a\x00"
    assert types_pb2.Transfer().SerializeToString() == b""


@codecs
def test_large_requests_are_read_alike_and_their_faults_named_alike(codec: ModuleType) -> None:
    """Past a size the native codec lets other threads run while it reads; nothing else may change."""
    batch = [Transfer(id=i + 1, debit_account_id=2**64 + i, amount=i, ledger=1, code=i % 7 + 1) for i in range(1_000)]
    request = ledger_pb2.CreateTransfersRequest(transfers=transfers_from_packed(pack_transfers(batch)))
    data = request.SerializeToString()
    assert len(data) > 32 * 1024  # the native codec lets go of the GIL from 16 KiB on
    assert codec.decode_create_transfers(data) == pack_transfers(batch)
    with pytest.raises(
        ConversionError, match=rf"^CreateTransfersRequest: malformed at byte {len(data)}: field number 0$"
    ):
        codec.decode_create_transfers(data + b"\x00\x00")
    request.transfers[700].code = 70_000
    with pytest.raises(ConversionError, match=r"^transfers\.code\[700\]: 70000 exceeds 65535$"):
        codec.decode_create_transfers(request.SerializeToString())
    wide = data + field(1, b"\x58" + varint(2**32 + 7))  # a uint32 keeps 7, its low 32 bits
    assert codec.decode_create_transfers(wide)[-128:] == pack_transfers([Transfer(id=0, code=7)])
