"""Metrics without a server: counting packed results by code, the observers, one registry per object,
and the metrics address in the configuration."""

from __future__ import annotations

import collections
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.config import LedgerConfig
from ledger.engine import CreateAccountResult, CreateTransferResult
from ledger.records.layout import ACCOUNT_RESULT_STRUCT, TRANSFER_RESULT_STRUCT
from ledger.server import LedgerMetrics, count_results

TR = CreateTransferResult
AR = CreateAccountResult


def transfer_results(codes: list[int]) -> bytes:
    return b"".join(TRANSFER_RESULT_STRUCT.pack(code, 0, 2**63 - 1, 2**64 - 1) for code in codes)


def account_results(codes: list[int]) -> bytes:
    return b"".join(ACCOUNT_RESULT_STRUCT.pack(code, 0, 2**64 - 1) for code in codes)


@given(st.lists(st.sampled_from(list(TR)), max_size=300))
def test_transfer_results_are_counted_by_code(codes: list[int]) -> None:
    assert count_results(transfer_results(codes), 24) == collections.Counter(int(c) for c in codes)


@given(st.lists(st.sampled_from(list(AR)), max_size=300))
def test_account_results_are_counted_by_code(codes: list[int]) -> None:
    assert count_results(account_results(codes), 16) == collections.Counter(int(c) for c in codes)


def test_a_full_batch_and_buffer_kinds() -> None:
    codes = [TR.OK] * 8000 + [TR.EXCEEDS_CREDITS] * 189 + [TR.PENDING_TRANSFERS_FULL]
    packed = transfer_results(codes)
    expected = {TR.OK: 8000, TR.EXCEEDS_CREDITS: 189, TR.PENDING_TRANSFERS_FULL: 1}
    assert count_results(packed, 24) == expected
    assert count_results(bytearray(packed), 24) == expected
    assert count_results(memoryview(packed), 24) == expected
    assert count_results(memoryview(packed).cast("Q"), 24) == expected
    assert count_results(b"", 24) == collections.Counter()


def test_batches_of_many_codes_are_counted_whole() -> None:
    many = [TR.OK, TR.EXISTS, TR.EXCEEDS_CREDITS, TR.LINKED_EVENT_FAILED, TR.TRANSFERS_FULL, TR.OK, TR.EXISTS]
    codes = many * 1000 + [TR.OVERFLOWS_TIMEOUT]
    assert count_results(transfer_results(codes), 24) == collections.Counter(int(c) for c in codes)


def test_a_buffer_that_is_not_whole_results_is_refused() -> None:
    with pytest.raises(ValueError, match="results: 25 bytes is not a whole number of 24-byte results"):
        count_results(transfer_results([TR.OK]) + b"\0", 24)


def test_results_are_named_by_their_enum() -> None:
    metrics = LedgerMetrics()
    metrics.count_transfer_results(transfer_results([TR.OK, TR.OK, TR.EXISTS, TR.EXCEEDS_CREDITS]))
    metrics.count_transfer_results(transfer_results([TR.OK]))
    metrics.count_account_results(account_results([AR.OK, AR.EXISTS_WITH_DIFFERENT_FLAGS]))
    value = metrics.registry.get_sample_value
    assert value("ledger_transfers_total", {"result": "OK"}) == 3
    assert value("ledger_transfers_total", {"result": "EXISTS"}) == 1
    assert value("ledger_transfers_total", {"result": "EXCEEDS_CREDITS"}) == 1
    assert value("ledger_accounts_total", {"result": "OK"}) == 1
    assert value("ledger_accounts_total", {"result": "EXISTS_WITH_DIFFERENT_FLAGS"}) == 1
    # A code this build does not know is still counted, by number.
    metrics.count_transfer_results(transfer_results([200]))
    assert value("ledger_transfers_total", {"result": "200"}) == 1


def test_observers_fill_the_histograms() -> None:
    metrics = LedgerMetrics()
    metrics.engine_applied("create_transfers", 8190, 0.004)
    metrics.engine_applied("create_transfers", 1, 0.000_02)
    metrics.engine_applied("create_accounts", 3, 0.000_01)
    metrics.engine_applied("expire_pending_transfers", 0, 0.000_05)
    metrics.journal_committed(2, 8191, 0.003)
    value = metrics.registry.get_sample_value
    assert value("ledger_engine_apply_seconds_count", {"operation": "create_transfers"}) == 2
    assert value("ledger_engine_apply_seconds_sum", {"operation": "create_transfers"}) == pytest.approx(0.00402)
    assert value("ledger_engine_apply_seconds_count", {"operation": "expire_pending_transfers"}) == 1
    assert value("ledger_batch_transfers_count") == 2
    assert value("ledger_batch_transfers_sum") == 8191
    assert value("ledger_batch_transfers_bucket", {"le": "4096.0"}) == 1
    assert value("ledger_batch_transfers_bucket", {"le": "8190.0"}) == 2
    assert value("ledger_batch_accounts_sum") == 3
    assert value("ledger_journal_commits_total") == 2
    assert value("ledger_journal_commit_transfers_sum") == 8191
    assert value("ledger_journal_commit_seconds_bucket", {"le": "0.005"}) == 1
    assert value("ledger_journal_commit_seconds_bucket", {"le": "0.0025"}) == 0


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = LedgerMetrics(), LedgerMetrics()
    first.count_transfer_results(transfer_results([TR.OK]))
    assert first.registry.get_sample_value("ledger_transfers_total", {"result": "OK"}) == 1
    assert second.registry.get_sample_value("ledger_transfers_total", {"result": "OK"}) is None


def test_the_metrics_address() -> None:
    assert LedgerConfig().metrics_endpoint == ("127.0.0.1", 9464)
    assert LedgerConfig(metrics_address="0.0.0.0:0").metrics_endpoint == ("0.0.0.0", 0)
    assert LedgerConfig(metrics_address="[::1]:9464").metrics_endpoint == ("::1", 9464)
    assert LedgerConfig(metrics_address="").metrics_endpoint is None
    for bad in ("9464", "localhost:", ":9464", "localhost:65536", "localhost:-1", "localhost:http", "[::1]"):
        with pytest.raises(ValueError, match=f"metrics_address must be host:port .*got {re.escape(repr(bad))}"):
            LedgerConfig(metrics_address=bad)


def test_an_empty_metrics_variable_turns_metrics_off() -> None:
    assert LedgerConfig.from_env({}).metrics_address == "127.0.0.1:9464"
    assert LedgerConfig.from_env({"LEDGER_METRICS_ADDRESS": "0.0.0.0:9100"}).metrics_address == "0.0.0.0:9100"
    assert LedgerConfig.from_env({"LEDGER_METRICS_ADDRESS": ""}).metrics_endpoint is None
    # Elsewhere an empty variable still means "unset".
    assert LedgerConfig.from_env({"LEDGER_ADDRESS": ""}).address == "127.0.0.1:7100"
    # A flag wins over the variable, an empty flag included.
    environ = {"LEDGER_METRICS_ADDRESS": "0.0.0.0:9100"}
    assert LedgerConfig.from_env(environ, metrics_address="").metrics_endpoint is None
    assert LedgerConfig.from_env(environ, metrics_address=None).metrics_address == "0.0.0.0:9100"
