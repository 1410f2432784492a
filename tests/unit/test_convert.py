"""Proto messages and packed records convert both ways without loss, and what cannot fit is named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.engine import Account, Transfer, pack_accounts, pack_transfers, unpack_accounts, unpack_transfers
from ledger.journal import AccountFilter
from ledger.records.layout import ACCOUNT_RESULT_STRUCT, TRANSFER_RESULT_STRUCT
from ledger.server import (
    account_filter_from_proto,
    account_filter_to_proto,
    account_results_from_packed,
    accounts_from_packed,
    accounts_to_packed,
    transfer_results_from_packed,
    transfers_from_packed,
    transfers_to_packed,
)
from ledger.server._convert import ConversionError
from ledger.v1 import ledger_pb2, types_pb2
from tests.support import format_examples

u128 = st.sampled_from([0, 1, 2**64 - 1, 2**64, 2**127 + 5, 2**128 - 1]) | st.integers(0, 2**128 - 1)
u64 = st.sampled_from([0, 1, 2**63 - 1, 2**64 - 1]) | st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)

transfers = st.builds(
    Transfer, id=u128, debit_account_id=u128, credit_account_id=u128, amount=u64, ledger=u32, code=u16, flags=u16,
    pending_id=u128, timeout=u32, user_data_128=u128, user_data_64=u64, user_data_32=u32, timestamp=u64,
)  # fmt: skip
accounts = st.builds(
    Account, id=u128, ledger=u32, code=u16, flags=u16, debits_pending=u64, debits_posted=u64, credits_pending=u64,
    credits_posted=u64, user_data_128=u128, user_data_64=u64, user_data_32=u32, timestamp=u64,
)  # fmt: skip


@format_examples()
@given(st.lists(transfers, max_size=20))
def test_transfers_round_trip(batch: list[Transfer]) -> None:
    packed = pack_transfers(batch)
    messages = transfers_from_packed(packed)
    wire = [types_pb2.Transfer.FromString(m.SerializeToString()) for m in messages]
    assert transfers_to_packed(wire) == packed
    assert unpack_transfers(transfers_to_packed(wire)) == batch


@format_examples()
@given(st.lists(accounts, max_size=20))
def test_accounts_round_trip(batch: list[Account]) -> None:
    packed = pack_accounts(batch)
    assert accounts_to_packed(accounts_from_packed(packed)) == packed
    assert unpack_accounts(accounts_to_packed(accounts_from_packed(packed))) == batch


def test_results_carry_code_timestamp_and_amount() -> None:
    packed = TRANSFER_RESULT_STRUCT.pack(1, 0, 123, 456) + TRANSFER_RESULT_STRUCT.pack(61, 0, 0, 0)
    assert [(r.result, r.timestamp, r.amount) for r in transfer_results_from_packed(packed)] == [
        (1, 123, 456),
        (61, 0, 0),
    ]
    packed = ACCOUNT_RESULT_STRUCT.pack(15, 0, 99)
    assert [(r.result, r.timestamp) for r in account_results_from_packed(packed)] == [(15, 99)]


def test_fields_wider_than_the_records_are_named() -> None:
    with pytest.raises(ConversionError, match=r"transfers.code\[1\]"):
        transfers_to_packed([types_pb2.Transfer(code=1), types_pb2.Transfer(code=70_000)])
    with pytest.raises(ConversionError, match=r"accounts.flags\[0\]"):
        accounts_to_packed([types_pb2.Account(flags=1 << 16)])
    with pytest.raises(ConversionError, match="8190"):
        transfers_to_packed([types_pb2.Transfer()] * 8191)


def test_filters_round_trip_and_bad_ones_are_named() -> None:
    f = AccountFilter(account_id=2**100 + 7, timestamp_min=5, timestamp_max=9, limit=10, credits=False, code=3,
                      user_data_128=2**70, user_data_64=4, user_data_32=2, reversed=True)  # fmt: skip
    assert (
        account_filter_from_proto(ledger_pb2.AccountFilter.FromString(account_filter_to_proto(f).SerializeToString()))
        == f
    )
    assert account_filter_from_proto(ledger_pb2.AccountFilter(account_id=types_pb2.Uint128(lo=1))).limit == 8190
    with pytest.raises(ConversionError, match="account_id"):
        account_filter_from_proto(ledger_pb2.AccountFilter())
    with pytest.raises(ConversionError, match="debits and credits"):
        account_filter_from_proto(
            ledger_pb2.AccountFilter(account_id=types_pb2.Uint128(lo=1), exclude_debits=True, exclude_credits=True)
        )
