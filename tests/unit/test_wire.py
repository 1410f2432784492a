"""The wire codec: its selection, the text of every error, the limits, and what protobuf itself writes."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NamedTuple

import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import given
from hypothesis import strategies as st

from ledger.engine import (
    Account,
    EngineUnavailable,
    Transfer,
    pack_accounts,
    pack_ids,
    pack_transfers,
)
from ledger.records.layout import (
    ACCOUNT_RESULT_STRUCT,
    ACCOUNT_STRUCT,
    ID_STRUCT,
    TRANSFER_RESULT_STRUCT,
    TRANSFER_STRUCT,
)
from ledger.records.limits import ACCOUNT_SIZE, BATCH_EVENTS_MAX, ID_SIZE, TRANSFER_SIZE
from ledger.server import _convert, _wire, _wire_py, _wire_schema
from ledger.server._convert import (
    ConversionError,
    account_results_from_packed,
    accounts_from_packed,
    accounts_to_packed,
    transfers_from_packed,
    transfers_to_packed,
)
from ledger.server._wire_errors import DEPTH_MAX, Malformed
from ledger.server._wire_schema import Kind
from ledger.v1 import ledger_pb2, types_pb2
from ledger.wallet import PaymentReply, WalletResult
from tests.support import format_examples

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


def library_refuses(data: bytes, message: type[Message] = ledger_pb2.CreateTransfersRequest) -> bool:
    try:
        message.FromString(data)
    except DecodeError:
        return True
    return False


class Request(NamedTuple):
    decoder: str
    message: type[Message]
    packed_by_library: Callable[[Any], bytes]
    """What protobuf's message becomes through _convert (ids: as the servicer packs them today)."""
    record_size: int


def _ids(ids: Sequence[types_pb2.Uint128]) -> bytes:
    """What the Ledger service did with a LookupRequest's ids before the codec read them: counted, then packed."""
    if len(ids) > BATCH_EVENTS_MAX:
        raise ConversionError(f"ids: {len(ids)} items exceeds the limit of {BATCH_EVENTS_MAX} per request")
    return pack_ids([i.lo | i.hi << 64 for i in ids])


REQUESTS = {
    "transfers": Request(
        "decode_create_transfers", ledger_pb2.CreateTransfersRequest, lambda m: transfers_to_packed(m.transfers),
        TRANSFER_SIZE,
    ),
    "accounts": Request(
        "decode_create_accounts", ledger_pb2.CreateAccountsRequest, lambda m: accounts_to_packed(m.accounts),
        ACCOUNT_SIZE,
    ),
    "ids": Request("decode_lookup_request", ledger_pb2.LookupRequest, lambda m: _ids(m.ids), ID_SIZE),
}  # fmt: skip
request_kinds = pytest.mark.parametrize("kind", list(REQUESTS))


def decoded(codec: ModuleType, kind: str, data: bytes) -> bytes:
    return getattr(codec, REQUESTS[kind].decoder)(data)  # type: ignore[no-any-return]


def library_packs(kind: str, data: bytes) -> bytes:
    request = REQUESTS[kind]
    return request.packed_by_library(request.message.FromString(data))


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
    for name in CODEC_FUNCTIONS:
        assert getattr(_wire, name) is getattr(serving, name), name


CODEC_FUNCTIONS = [
    "decode_create_transfers",
    "decode_create_accounts",
    "decode_lookup_request",
    "decode_transfer_stream_request",
    "encode_transfers",
    "encode_accounts",
    "encode_create_transfers_response",
    "encode_create_accounts_response",
    "encode_transfer_stream_response",
]


def test_every_implementation_has_every_function() -> None:
    for module in (*IMPLEMENTATIONS, _convert):
        for name in CODEC_FUNCTIONS:
            assert callable(getattr(module, name)), f"{module.__name__}.{name}"


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


# (kind, bytes, message): each request is named by its own name, each element by its field and index.
NAMED_CASES = [
    ("accounts", b"\x00\x00", "CreateAccountsRequest: malformed at byte 0: field number 0"),
    ("accounts", field(1, b"\x10\x05") + field(1, b"\x10\x80"),
     "accounts[1]: malformed at byte 7: varint runs past the end of its message"),
    ("accounts", field(1, field(1, b"\x09" + bytes(7))),
     "accounts[0]: malformed at byte 5: fixed64 value runs past the end of its message"),
    ("accounts", field(1, field(6, b"\x0c")),
     "accounts[0]: malformed at byte 4: end-group tag of field 1 closes no open group"),
    ("ids", b"\x0c", "LookupRequest: malformed at byte 0: end-group tag of field 1 closes no open group"),
    ("ids", b"\x0a\x05abc", "LookupRequest: malformed at byte 1: length 5 runs past the end of its message"),
    ("ids", field(1, b"\x09" + bytes(8)) + field(1, b"\x11" + bytes(3)),
     "ids[1]: malformed at byte 14: fixed64 value runs past the end of its message"),
    ("ids", field(1, b"\x00\x01"), "ids[0]: malformed at byte 2: field number 0"),
]  # fmt: skip


@codecs
@pytest.mark.parametrize(("kind", "data", "message"), NAMED_CASES)
def test_malformed_accounts_and_ids_are_named_by_request_element_and_byte(
    codec: ModuleType, kind: str, data: bytes, message: str
) -> None:
    assert library_refuses(data, REQUESTS[kind].message)
    with pytest.raises(ConversionError) as raised:
        decoded(codec, kind, data)
    assert str(raised.value) == message


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
    ("kind", "wrap", "deepest"),
    [
        ("transfers", lambda g: g, DEPTH_MAX),
        ("transfers", lambda g: field(1, g), DEPTH_MAX - 1),
        ("transfers", lambda g: field(1, field(1, g)), DEPTH_MAX - 2),
        ("accounts", lambda g: field(1, g), DEPTH_MAX - 1),
        ("accounts", lambda g: field(1, field(6, g)), DEPTH_MAX - 2),
        ("ids", lambda g: g, DEPTH_MAX),
        ("ids", lambda g: field(1, g), DEPTH_MAX - 1),
    ],
    ids=["request", "transfer", "transfer-id", "account", "account-id", "lookup", "id"],
)
def test_groups_nest_as_deep_as_the_library_allows(codec: ModuleType, kind: str, wrap, deepest: int) -> None:  # type: ignore[no-untyped-def]
    allowed, refused = wrap(groups(deepest)), wrap(groups(deepest + 1))
    assert not library_refuses(allowed, REQUESTS[kind].message) and library_refuses(refused, REQUESTS[kind].message)
    assert decoded(codec, kind, allowed) == library_packs(kind, allowed)
    with pytest.raises(ConversionError, match="nested deeper than 100 levels"):
        decoded(codec, kind, refused)


# --- what the records cannot carry, as _convert says it --------------------------------------


@codecs
@request_kinds
def test_the_batch_limit_is_checked_with_the_text_of_convert(codec: ModuleType, kind: str) -> None:
    full = field(1, b"") * BATCH_EVENTS_MAX
    assert decoded(codec, kind, full) == bytes(BATCH_EVENTS_MAX * REQUESTS[kind].record_size)
    over = full + field(1, b"")
    with pytest.raises(ConversionError) as expected:
        library_packs(kind, over)  # ids: the text of the servicer's own check
    with pytest.raises(ConversionError) as raised:
        decoded(codec, kind, over)
    with pytest.raises(ConversionError) as served:  # where the native codec is not built
        getattr(_convert, REQUESTS[kind].decoder)(over)
    assert str(raised.value) == str(expected.value) == str(served.value)
    assert str(raised.value) == f"{kind}: 8191 items exceeds the limit of 8190 per request"


@codecs
@request_kinds
def test_too_many_elements_are_refused_before_room_is_made_for_them(codec: ModuleType, kind: str) -> None:
    count = 20_000
    data = field(1, b"") * count
    tracemalloc.start()
    try:
        with pytest.raises(ConversionError, match=rf"^{kind}: {count} items exceeds the limit"):
            decoded(codec, kind, data)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < count * REQUESTS[kind].record_size // 10


def test_a_million_ids_are_counted_and_refused_in_the_serving_codec() -> None:
    """Today's servicer builds a Python object per id before it counts them (seconds for a million)."""
    data = field(1, field(1, b"\x09" + bytes(8))) * 1_000_000
    with pytest.raises(ConversionError, match=r"^ids: 1000000 items exceeds the limit of 8190 per request$"):
        _wire.decode_lookup_request(data)


CODE_AND_FLAGS_TAGS = {"transfers": (b"\x58", b"\x60"), "accounts": (b"\x50", b"\x58")}
"""The tags of an element's code and flags (Transfer: fields 11 and 12; Account: 10 and 11)."""


@codecs
@pytest.mark.parametrize("kind", list(CODE_AND_FLAGS_TAGS))
def test_the_first_over_wide_code_or_flags_is_named(codec: ModuleType, kind: str) -> None:
    code_tag, flags_tag = CODE_AND_FLAGS_TAGS[kind]

    def element(code: int, flags: int) -> bytes:
        return field(1, code_tag + varint(code) + flags_tag + varint(flags))

    cases = [
        (element(1, 1) + element(70_000, 1) + element(80_000, 1), f"{kind}.code[1]: 70000 exceeds 65535"),
        (element(1, 1) + element(70_000, 2**32 - 1), f"{kind}.code[1]: 70000 exceeds 65535"),
        (element(1, 65_536) + element(70_000, 1), f"{kind}.flags[0]: 65536 exceeds 65535"),
        # uint32 keeps the low 32 bits of a wider varint; what remains is checked.
        (element(2**32 + 65_535, 2**64 - 1), f"{kind}.flags[0]: 4294967295 exceeds 65535"),
    ]
    for data, message in cases:
        with pytest.raises(ConversionError) as expected:
            library_packs(kind, data)
        with pytest.raises(ConversionError) as raised:
            decoded(codec, kind, data)
        assert str(raised.value) == str(expected.value) == message
    narrowed = element(2**32 + 7, 65_535)
    assert decoded(codec, kind, narrowed) == library_packs(kind, narrowed)
    # Bytes the library refuses are refused as such, even after an over-wide code.
    with pytest.raises(ConversionError, match="malformed at byte"):
        decoded(codec, kind, element(70_000, 1) + field(1, b"\x20"))


@codecs
def test_a_stream_request_names_its_over_wide_code_as_a_batch_would(codec: ModuleType) -> None:
    with pytest.raises(ConversionError, match=r"^transfers\.code\[0\]: 70000 exceeds 65535$"):
        codec.decode_transfer_stream_request(field(1, b"\x58" + varint(70_000)))


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
    for name, packed in (
        ("decode_create_accounts", field(1, b"\x50\x05")),
        ("decode_lookup_request", field(1, b"\x09" + bytes(range(8)))),
        ("encode_transfers", pack_transfers([Transfer(id=5, amount=7)])),
        ("encode_accounts", pack_accounts([Account(id=5, ledger=7)])),
        ("encode_create_accounts_response", ACCOUNT_RESULT_STRUCT.pack(1, 0, 2)),
    ):
        run = getattr(codec, name)
        for buffer in (bytearray(packed), memoryview(packed), memoryview(b"xx" + packed)[2:]):
            assert run(buffer) == run(packed), name


u128 = st.sampled_from([0, 1, 2**64 - 1, 2**64, 2**128 - 1]) | st.integers(0, 2**128 - 1)
u64 = st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**64 - 1]) | st.integers(0, 2**64 - 1)
u32 = st.sampled_from([0, 1, 2**32 - 1]) | st.integers(0, 2**32 - 1)
u16 = st.sampled_from([0, 1, 65535]) | st.integers(0, 65535)
transfers = st.builds(
    Transfer, id=u128, debit_account_id=u128, credit_account_id=u128, amount=u64, ledger=u32, code=u16, flags=u16,
    pending_id=u128, timeout=u32, user_data_128=u128, user_data_64=u64, user_data_32=u32, timestamp=u64,
)  # fmt: skip


accounts = st.builds(
    Account, id=u128, ledger=u32, code=u16, flags=u16, debits_pending=u64, debits_posted=u64, credits_pending=u64,
    credits_posted=u64, user_data_128=u128, user_data_64=u64, user_data_32=u32, timestamp=u64,
)  # fmt: skip


@format_examples()
@given(st.lists(transfers, max_size=10), st.lists(accounts, max_size=10), st.lists(u128, max_size=10))
def test_what_protobuf_writes_decodes_to_the_records_it_came_from(
    batch: list[Transfer], account_batch: list[Account], ids: list[int]
) -> None:
    packed = pack_transfers(batch)
    request = ledger_pb2.CreateTransfersRequest(transfers=transfers_from_packed(packed))
    packed_accounts = pack_accounts(account_batch)
    accounts_request = ledger_pb2.CreateAccountsRequest(accounts=accounts_from_packed(packed_accounts))
    lookup = ledger_pb2.LookupRequest(ids=[types_pb2.Uint128(lo=i & 2**64 - 1, hi=i >> 64) for i in ids])
    for codec in IMPLEMENTATIONS:
        assert codec.decode_create_transfers(request.SerializeToString()) == packed
        for record in range(len(batch)):
            stream = ledger_pb2.TransferStreamRequest(transfer=request.transfers[record])
            assert codec.decode_transfer_stream_request(stream.SerializeToString()) == packed[record * 128 :][:128]
        assert codec.decode_create_accounts(accounts_request.SerializeToString()) == packed_accounts
        assert codec.decode_lookup_request(lookup.SerializeToString()) == pack_ids(ids)


@codecs
def test_empty_replies_are_written_as_protobuf_writes_them(codec: ModuleType) -> None:
    assert codec.encode_create_transfers_response(b"") == b""
    assert codec.encode_create_accounts_response(b"") == b""
    assert codec.encode_transfers(b"") == b"" == ledger_pb2.LookupTransfersResponse().SerializeToString()
    assert codec.encode_accounts(b"") == b"" == ledger_pb2.LookupAccountsResponse().SerializeToString()
    # Every Uint128 is written, as _convert sets them all: an empty one is its tag and a zero length.
    assert codec.encode_transfers(bytes(TRANSFER_SIZE)) == field(1, b"\x0a\x00\x12\x00\x1a\x00\x2a\x00\x32\x00")
    assert codec.encode_accounts(bytes(ACCOUNT_SIZE)) == field(1, b"\x0a\x00\x32\x00")
    assert codec.decode_create_accounts(b"") == codec.decode_lookup_request(b"") == b""
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


@codecs
def test_large_requests_of_accounts_and_ids_are_read_alike(codec: ModuleType) -> None:
    batch = [Account(id=2**64 + i, ledger=1, code=i % 7 + 1, credits_posted=i) for i in range(1_200)]
    request = ledger_pb2.CreateAccountsRequest(accounts=accounts_from_packed(pack_accounts(batch)))
    data = request.SerializeToString()
    assert len(data) > 32 * 1024
    assert codec.decode_create_accounts(data) == pack_accounts(batch)
    request.accounts[700].flags = 70_000
    with pytest.raises(ConversionError, match=r"^accounts\.flags\[700\]: 70000 exceeds 65535$"):
        codec.decode_create_accounts(request.SerializeToString())
    ids = [2**127 + i for i in range(2_000)]
    lookup = ledger_pb2.LookupRequest(ids=[types_pb2.Uint128(lo=i & 2**64 - 1, hi=i >> 64) for i in ids])
    data = lookup.SerializeToString()
    assert len(data) > 32 * 1024
    assert codec.decode_lookup_request(data) == pack_ids(ids)
    with pytest.raises(ConversionError, match=rf"^ids\[2000\]: malformed at byte {len(data) + 3}: fixed64 value"):
        codec.decode_lookup_request(data + field(1, b"\x11" + bytes(3)))


# --- replies written from records --------------------------------------------------------------

VARINT_EDGES = [0, 1, 127, 128, 2**14, 2**21 - 1, 2**32 - 1, 2**35, 2**63, 2**64 - 1]
"""Zero (left out), then values of every varint width up to the largest."""


def records(layout: Any, count: int) -> bytes:
    """`count` records whose fields take each of VARINT_EDGES in turn (cut to their width), reserved bytes too."""
    out = bytearray()
    widths = {"Q": 64, "I": 32, "H": 16}
    for index in range(count):
        values: list[int | bytes] = []
        for position, code in enumerate(layout.format.lstrip("<").replace("32s", "s")):
            if code == "s":
                values.append(bytes([index % 256]) * 32)
            else:
                values.append(VARINT_EDGES[(index + position) % len(VARINT_EDGES)] & (2 ** widths[code] - 1))
        out += layout.pack(*values)
    return bytes(out)


def account_results(count: int) -> bytes:
    return b"".join(ACCOUNT_RESULT_STRUCT.pack(index % 24, index, VARINT_EDGES[index % 10]) for index in range(count))


# encoder -> (records of a count, the message protobuf writes from them through _convert)
REPLIES: dict[str, tuple[Callable[[int], bytes], Callable[[bytes], Message]]] = {
    "encode_transfers": (
        lambda count: records(TRANSFER_STRUCT, count),
        lambda packed: ledger_pb2.LookupTransfersResponse(transfers=transfers_from_packed(packed)),
    ),
    "encode_accounts": (
        lambda count: records(ACCOUNT_STRUCT, count),
        lambda packed: ledger_pb2.LookupAccountsResponse(accounts=accounts_from_packed(packed)),
    ),
    "encode_create_accounts_response": (
        account_results,
        lambda packed: ledger_pb2.CreateAccountsResponse(results=account_results_from_packed(packed)),
    ),
}


@codecs
@pytest.mark.parametrize("encoder", list(REPLIES))
@pytest.mark.parametrize("count", [0, 1, 10, BATCH_EVENTS_MAX, BATCH_EVENTS_MAX + 1])
def test_replies_of_every_size_are_what_protobuf_writes(codec: ModuleType, encoder: str, count: int) -> None:
    """A reply has no limit of its own (SubscribeTransfers cuts a commit into messages); past 16 KiB the native
    codec writes without the GIL."""
    make, message_of = REPLIES[encoder]
    packed = make(count)
    expected = message_of(packed).SerializeToString()
    assert getattr(codec, encoder)(packed) == expected
    assert getattr(_convert, encoder)(packed) == expected  # what the service runs where the codec is not built


@codecs
def test_the_largest_values_are_written_as_protobuf_writes_them(codec: ModuleType) -> None:
    ones = b"\xff" * 128
    assert codec.encode_transfers(ones * 2) == _convert.encode_transfers(ones * 2)
    assert codec.encode_accounts(ones * 2) == _convert.encode_accounts(ones * 2)
    assert len(codec.encode_transfers(ones)) == 162  # the most one transfer takes on the wire
    largest = ACCOUNT_RESULT_STRUCT.pack(2**31 - 1, 2**32 - 1, 2**64 - 1)
    assert codec.encode_create_accounts_response(largest) == _convert.encode_create_accounts_response(largest)
    past = ACCOUNT_RESULT_STRUCT.pack(2**31, 0, 0)
    with pytest.raises(ValueError):  # protobuf's enum holds an int32
        _convert.encode_create_accounts_response(largest + past)
    with pytest.raises(ConversionError) as raised:
        codec.encode_create_accounts_response(largest + past)
    assert str(raised.value) == "results[1].result: 2147483648 exceeds 2147483647, the largest enum value"


@codecs
def test_transfers_are_written_as_every_reply_that_carries_them_writes_them(codec: ModuleType) -> None:
    packed = records(TRANSFER_STRUCT, 12)
    transfers = transfers_from_packed(packed)
    wire = codec.encode_transfers(packed)
    assert wire == ledger_pb2.SubscribeTransfersResponse(transfers=transfers).SerializeToString()
    page = ledger_pb2.GetAccountTransfersResponse(transfers=transfers)
    page.next.CopyFrom(ledger_pb2.AccountFilter(account_id=types_pb2.Uint128(lo=7), limit=10, reversed=True))
    # `next` is field 2: protobuf writes it after the transfers, so it may be appended to them.
    assert wire + ledger_pb2.GetAccountTransfersResponse(next=page.next).SerializeToString() == page.SerializeToString()


# --- the tables both codecs read: the proto messages and the record layout -------------------

PROTO_MESSAGES = dict(types_pb2.DESCRIPTOR.message_types_by_name) | dict(ledger_pb2.DESCRIPTOR.message_types_by_name)
PROTO_TYPE = {
    Kind.UINT128: "TYPE_MESSAGE",
    Kind.U64: "TYPE_UINT64",
    Kind.U32: "TYPE_UINT32",
    Kind.CODE: "TYPE_UINT32",
    Kind.FLAGS: "TYPE_UINT32",
    Kind.FIXED64: "TYPE_FIXED64",
    Kind.RESULT: "TYPE_ENUM",
}


def record_with(message: _wire_schema.Message, name: str, value: int) -> bytes:
    """The message's record with one field set (by its name) and every other zero, packed by ledger.engine."""
    if message is _wire_schema.TRANSFER:
        return Transfer(**{"id": 0, name: value}).pack()
    if message is _wire_schema.ACCOUNT:
        return Account(**{"id": 0, name: value}).pack()
    if message is _wire_schema.UINT128:
        return ID_STRUCT.pack(value if name == "lo" else 0, value if name == "hi" else 0)
    if message is _wire_schema.TRANSFER_RESULT:
        return TRANSFER_RESULT_STRUCT.pack(*(value if n == name else 0 for n in ("result", "", "timestamp", "amount")))
    return ACCOUNT_RESULT_STRUCT.pack(*(value if n == name else 0 for n in ("result", "", "timestamp")))


@pytest.mark.parametrize("message", _wire_schema.MESSAGES, ids=lambda m: m.name)
def test_each_table_is_its_proto_message_and_its_record(message: _wire_schema.Message) -> None:
    descriptor = PROTO_MESSAGES[message.name]
    assert {number: field.name for number, field in message.fields.items()} == {
        field.number: field.name for field in descriptor.fields
    }
    for number, known in message.fields.items():
        proto = descriptor.fields_by_number[number]
        assert proto.type == getattr(proto, PROTO_TYPE[known.kind]), known.name
        assert (known.kind == Kind.CODE) == (known.name == "code" and message.name != "Uint128")
        assert (known.kind == Kind.FLAGS) == (known.name == "flags")
        if known.kind == Kind.UINT128:
            assert proto.message_type.name == "Uint128"
        width = 16 if known.kind == Kind.UINT128 else _wire_schema.VALUE_SIZE[known.kind]
        record = record_with(message, known.name, 2 ** (8 * width) - 1)
        assert len(record) == message.size
        assert [i for i, byte in enumerate(record) if byte] == list(range(known.offset, known.offset + width))


def test_each_request_and_reply_is_its_proto_message() -> None:
    for name in dir(_wire_schema):
        carrier = getattr(_wire_schema, name)
        if not isinstance(carrier, _wire_schema.Repeated):
            continue
        field = ledger_pb2.DESCRIPTOR.message_types_by_name[carrier.message].fields_by_number[1]
        assert field.name == carrier.field
        assert field.message_type.name == carrier.element.name
        assert field.is_repeated != carrier.single


# -- wallet.v1.PayBatchReply ------------------------------------------------------------------------------

_INT64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 127, 128, 2**63 - 1, -(2**63)]))
_PAY_REPLIES = st.builds(
    PaymentReply,
    result=st.sampled_from(list(WalletResult)),
    message=st.one_of(st.just(""), st.text(max_size=300)),
    payment_id=st.one_of(st.just(0), st.integers(1, 2**128 - 1)),
    wallet_id=st.integers(0, 2**128 - 1),
    requested=_INT64,
    paid=_INT64,
    remainder=_INT64,
    fee=_INT64,
    balance=_INT64,
    timestamp=st.one_of(st.just(0), st.integers(1, 2**63 - 1), st.sampled_from([1, 999_999_999, 10**9, 10**18])),
    replayed=st.booleans(),
)


@codecs
@format_examples()
@given(replies=st.lists(_PAY_REPLIES, max_size=20))
def test_pay_batch_replies_are_written_as_protobuf_writes_them(codec: ModuleType, replies: list[PaymentReply]) -> None:
    """What each codec writes is protobuf's bytes of the message _convert.pay_reply fills, and parses back."""
    assert codec.encode_pay_batch_reply(replies) == _convert.encode_pay_batch_reply(replies)


@codecs
def test_pay_batch_replies_past_their_fields_ranges_are_refused(codec: ModuleType) -> None:
    with pytest.raises(OverflowError):
        codec.encode_pay_batch_reply([PaymentReply(payment_id=1, wallet_id=2**128)])
    with pytest.raises(OverflowError):
        codec.encode_pay_batch_reply([PaymentReply(paid=2**63)])
