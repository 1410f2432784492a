"""The shared contract: result codes, flags, engine selection and the record layout."""

from __future__ import annotations

import itertools
import re
import struct
from enum import IntEnum, IntFlag
from typing import Any

import pytest

import ledger.engine as engine_api
from ledger.engine import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Engine,
    EngineUnavailable,
    ReferenceEngine,
    Transfer,
    TransferFlags,
    TransferStatus,
    pack_accounts,
    pack_ids,
    pack_transfers,
    select,
    unpack_account_results,
    unpack_accounts,
    unpack_ids,
    unpack_transfer_results,
    unpack_transfers,
)
from ledger.records import layout as _layout
from ledger.records import limits as _limits
from ledger.records.codes import ACCOUNT_FLAGS_KNOWN, TRANSFER_FLAGS_KNOWN
from tests.support import ENGINE_CLASSES, ManualClock, NativeEngine, small_config

RESULT_ENUMS = [CreateAccountResult, CreateTransferResult, TransferStatus]
FLAG_ENUMS = [AccountFlags, TransferFlags]

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
U16_MAX = 2**16 - 1

# --- result codes ------------------------------------------------------------------


@pytest.mark.parametrize("enum", RESULT_ENUMS, ids=lambda e: e.__name__)
def test_result_enums_are_int_enums_without_aliases(enum: type[IntEnum]) -> None:
    assert issubclass(enum, IntEnum)
    # An alias (two names, one value) would appear in __members__ but not in iteration.
    assert len(enum.__members__) == len(list(enum))
    assert len({member.value for member in enum}) == len(list(enum))


@pytest.mark.parametrize("enum", [CreateAccountResult, CreateTransferResult], ids=lambda e: e.__name__)
def test_create_results_start_with_unspecified_zero(enum: type[IntEnum]) -> None:
    assert enum["UNSPECIFIED"] == 0
    assert next(iter(enum)).name == "UNSPECIFIED"
    assert enum["OK"] == 1


@pytest.mark.parametrize("enum", RESULT_ENUMS, ids=lambda e: e.__name__)
def test_result_numbers_are_dense_in_declaration_order(enum: type[IntEnum]) -> None:
    # Declaration order is precedence order, so it must match the numbering exactly.
    assert [member.value for member in enum] == list(range(len(list(enum))))


def test_create_results_share_the_generic_codes() -> None:
    # Linked-chain handling writes these numbers for accounts and transfers alike.
    shared = [
        "UNSPECIFIED",
        "OK",
        "LINKED_EVENT_FAILED",
        "LINKED_EVENT_CHAIN_OPEN",
        "TIMESTAMP_MUST_BE_ZERO",
        "RESERVED_FIELD",
        "RESERVED_FLAG",
        "ID_MUST_NOT_BE_ZERO",
        "ID_MUST_NOT_BE_INT_MAX",
        "EXISTS_WITH_DIFFERENT_FLAGS",
    ]
    for name in shared:
        assert CreateAccountResult[name] == CreateTransferResult[name], name


def test_transfer_status_values() -> None:
    assert [(s.name, s.value) for s in TransferStatus] == [
        ("NONE", 0),
        ("PENDING", 1),
        ("POSTED", 2),
        ("VOIDED", 3),
        ("EXPIRED", 4),
    ]


# --- flags ---------------------------------------------------------------------------


@pytest.mark.parametrize("flags", FLAG_ENUMS, ids=lambda e: e.__name__)
def test_flags_are_distinct_single_bits(flags: type[IntFlag]) -> None:
    assert issubclass(flags, IntFlag)
    assert flags["NONE"] == 0
    bits = [member.value for name, member in flags.__members__.items() if name != "NONE"]
    assert len(bits) == len(set(bits))
    assert all(bit > 0 and bit & (bit - 1) == 0 for bit in bits)
    # Declared in bit order, from bit 0 up with no gaps.
    assert bits == [1 << i for i in range(len(bits))]


def test_known_flag_masks_cover_exactly_the_declared_flags() -> None:
    assert sum(member.value for member in AccountFlags.__members__.values()) == ACCOUNT_FLAGS_KNOWN
    assert sum(member.value for member in TransferFlags.__members__.values()) == TRANSFER_FLAGS_KNOWN


def test_flags_fit_the_u16_flags_field() -> None:
    assert ACCOUNT_FLAGS_KNOWN <= U16_MAX
    assert TRANSFER_FLAGS_KNOWN <= U16_MAX


# --- engine selection ------------------------------------------------------------------


def test_select_python_returns_the_reference_engine() -> None:
    assert select("python") is ReferenceEngine
    assert select("  Python ") is ReferenceEngine


def test_select_cython_returns_the_native_engine() -> None:
    if NativeEngine is None:  # built without a compiler: asking for it explicitly must fail loudly
        with pytest.raises(EngineUnavailable, match="not built"):
            select("cython")
        assert select(None) is ReferenceEngine
        return
    assert select("cython") is NativeEngine
    assert select("CYTHON") is NativeEngine


def test_select_without_a_choice_prefers_the_native_engine() -> None:
    best = NativeEngine or ReferenceEngine
    assert select(None) is best
    assert select("") is best


def test_select_rejects_an_unknown_engine_naming_the_choices() -> None:
    with pytest.raises(EngineUnavailable) as raised:
        select("bogus")
    message = str(raised.value)
    assert "cython" in message
    assert "python" in message
    assert "bogus" in message
    # An ImportError, so `except ImportError` fallbacks keep working.
    assert isinstance(raised.value, ImportError)


def test_engines_implement_the_protocol(engine_class: type[Any]) -> None:
    engine = engine_class(small_config(), clock=ManualClock())
    assert isinstance(engine, Engine)
    assert ENGINE_CLASSES[engine.implementation] is engine_class


def test_implementations_are_named_as_selected() -> None:
    assert ReferenceEngine.implementation == "python"
    if NativeEngine is not None:
        assert NativeEngine.implementation == "cython"
    assert engine_api.EngineClass.implementation == engine_api.IMPLEMENTATION


def test_engine_config_rejects_out_of_range_capacities() -> None:
    with pytest.raises(ValueError, match="accounts_max"):
        small_config(accounts_max=0)
    with pytest.raises(ValueError, match="transfers_max"):
        small_config(transfers_max=_limits.CAPACITY_MAX + 1)


# --- record layout ---------------------------------------------------------------------


def test_struct_sizes_match_the_limits() -> None:
    assert _layout.ACCOUNT_STRUCT.size == _limits.ACCOUNT_SIZE == 128
    assert _layout.TRANSFER_STRUCT.size == _limits.TRANSFER_SIZE == 128
    assert _layout.ACCOUNT_RESULT_STRUCT.size == _limits.ACCOUNT_RESULT_SIZE == 16
    assert _layout.TRANSFER_RESULT_STRUCT.size == _limits.TRANSFER_RESULT_SIZE == 24
    assert _layout.ID_STRUCT.size == _limits.ID_SIZE == 16


def test_packed_records_have_the_record_size() -> None:
    assert len(Account(id=1).pack()) == _limits.ACCOUNT_SIZE
    assert len(Transfer(id=1).pack()) == _limits.TRANSFER_SIZE
    assert len(pack_ids([1, 2, 3])) == 3 * _limits.ID_SIZE


def full_account() -> Account:
    """An account with every field set, 128-bit fields using both halves."""
    return Account(
        id=(0x0123456789ABCDEF << 64) | 0xFEDCBA9876543210,
        ledger=U32_MAX,
        code=U16_MAX,
        flags=ACCOUNT_FLAGS_KNOWN,
        debits_pending=1,
        debits_posted=_limits.AMOUNT_MAX,
        credits_pending=3,
        credits_posted=U64_MAX,
        user_data_128=_limits.ID_INT_MAX,
        user_data_64=U64_MAX - 1,
        user_data_32=U32_MAX - 1,
        timestamp=_limits.TIMESTAMP_MAX,
        reserved=7,
    )


def full_transfer() -> Transfer:
    return Transfer(
        id=(1 << 127) | 5,
        debit_account_id=(2 << 64) | 3,
        credit_account_id=(4 << 64) | 5,
        amount=_limits.AMOUNT_MAX,
        ledger=U32_MAX,
        code=U16_MAX,
        flags=TRANSFER_FLAGS_KNOWN,
        pending_id=_limits.ID_INT_MAX - 1,
        timeout=_limits.TIMEOUT_SECONDS_MAX,
        user_data_128=(6 << 64) | 7,
        user_data_64=U64_MAX,
        user_data_32=U32_MAX,
        timestamp=_limits.TIMESTAMP_MAX,
        reserved=U64_MAX,
    )


def test_account_pack_unpack_round_trip() -> None:
    for account in (Account(id=1), full_account()):
        assert Account.unpack(account.pack()) == account
    accounts = [Account(id=1), full_account(), Account(id=2, ledger=1, code=1)]
    assert unpack_accounts(pack_accounts(accounts)) == accounts


def test_transfer_pack_unpack_round_trip() -> None:
    for transfer in (Transfer(id=1), full_transfer()):
        assert Transfer.unpack(transfer.pack()) == transfer
    transfers = [Transfer(id=1), full_transfer(), Transfer(id=2, amount=3)]
    assert unpack_transfers(pack_transfers(transfers)) == transfers
    assert unpack_transfers(memoryview(pack_transfers(transfers))) == transfers


def test_ids_round_trip() -> None:
    ids = [1, 2**64, 2**64 - 1, _limits.ID_INT_MAX, (3 << 64) | 9]
    assert unpack_ids(pack_ids(ids)) == ids


def documented_layout(record: str) -> list[tuple[int, int, str]]:
    """(offset, size, field) rows of the table under "<record> (128 bytes)::" in the _layout docstring."""
    doc = _layout.__doc__ or ""
    table = doc.split(f"{record} (128 bytes)::", 1)[1]
    rows = []
    for line in table.splitlines()[2:]:
        match = re.match(r"\s+(\d+)\s+(\d+) (\w+)", line)
        if match is None:
            if rows and line.strip() and not line.startswith(" " * 30):
                break  # the end of the table (continuation lines are deeply indented)
            continue
        rows.append((int(match[1]), int(match[2]), match[3]))
    return rows


@pytest.mark.parametrize(
    ("record", "cls", "size"),
    [("Account", Account, _limits.ACCOUNT_SIZE), ("Transfer", Transfer, _limits.TRANSFER_SIZE)],
    ids=["account", "transfer"],
)
def test_documented_layout_tiles_the_record(record: str, cls: type[Any], size: int) -> None:
    rows = documented_layout(record)
    assert rows[0][0] == 0
    for (offset, length, _), (next_offset, _, _) in itertools.pairwise(rows):
        assert offset + length == next_offset
    assert rows[-1][0] + rows[-1][1] == size
    documented = {name for _, _, name in rows if name != "reserved"}
    assert documented == {f for f in cls.__dataclass_fields__ if f != "reserved"}


@pytest.mark.parametrize(("record", "cls"), [("Account", Account), ("Transfer", Transfer)], ids=["account", "transfer"])
def test_fields_are_packed_at_their_documented_offsets(record: str, cls: type[Any]) -> None:
    for offset, length, name in documented_layout(record):
        if name == "reserved":
            continue
        # A value that fills the field's width, distinct in every byte.
        value = int.from_bytes(bytes(range(1, length + 1)), "little")
        if name in ("debits_pending", "debits_posted", "credits_pending", "credits_posted", "amount", "timestamp"):
            value &= _limits.AMOUNT_MAX
        packed = cls(id=0, **{name: value}) if name != "id" else cls(id=value)
        data = packed.pack()
        assert data[offset : offset + length] == value.to_bytes(length, "little"), name
        assert data[:offset] + data[offset + length :] == bytes(len(data) - length), name


def test_nonzero_account_reserved_tail_unpacks_as_reserved() -> None:
    packed = bytearray(Account(id=1).pack())
    packed[127] = 1
    assert Account.unpack(bytes(packed)).reserved != 0


def test_result_records_unpack() -> None:
    account_results = struct.pack("<IIQ", 1, 0, 42) + struct.pack("<IIQ", 15, 0, 7)
    assert [(r.result, r.timestamp) for r in unpack_account_results(account_results)] == [(1, 42), (15, 7)]
    transfer_results = struct.pack("<IIQQ", 1, 0, 42, 100) + struct.pack("<IIQQ", 61, 0, 0, 0)
    assert [(r.result, r.timestamp, r.amount) for r in unpack_transfer_results(transfer_results)] == [
        (1, 42, 100),
        (61, 0, 0),
    ]


def test_limits_relations() -> None:
    assert _limits.AMOUNT_MAX == 2**63 - 1
    assert _limits.TIMESTAMP_MAX == 2**63 - 1
    assert _limits.ID_INT_MAX == 2**128 - 1
    assert _limits.BATCH_EVENTS_MAX * _limits.TRANSFER_SIZE < 2**20
    assert 2 * _limits.AMOUNT_MAX < 2**64
