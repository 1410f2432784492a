"""No surprise as tables fill: a table past 80 % of its limit is logged once, named by GetServerInfo, counted by
a metric; the engine's memory per account and per transfer and the machine's headroom are metrics too."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ledger.core import Ledger
from ledger.engine import Account, CreateTransferResult, pack_accounts
from ledger.server._info import server_info
from ledger.server._metrics import _memory_families
from tests.integration.test_journal import FUNDING, LEDGER, REVENUE, config, move, open_books, run, transfers
from tests.support import ManualClock

TR = CreateTransferResult


def samples(families: list[Any]) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {family.name: [(sample.labels, sample.value) for sample in family.samples] for family in families}


def test_a_table_past_80_percent_of_its_limit_is_logged_once_and_named(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ledger.core._ledger")

    async def body() -> None:
        async with await Ledger.open(config(store_url, accounts_max=20, expire_interval_seconds=0.01),
                                     clock=ManualClock()) as ledger:  # fmt: skip
            await open_books(ledger)  # 13 accounts of 20: 65 %
            assert ledger.stats().capacity_warnings == ()
            await ledger.create_accounts(pack_accounts([Account(id=900 + n, ledger=LEDGER, code=5) for n in range(4)]))
            warnings = ledger.stats().capacity_warnings  # 17 of 20: 85 %
            assert warnings == (
                "accounts: 17 of the 20 LEDGER_ACCOUNTS_MAX allows (85%); past it each new one is refused with "
                "ACCOUNTS_FULL",
            )
            for _ in range(3):
                ledger.stats()
            info = server_info(ledger, None)
            assert list(info.capacity_warnings) == list(warnings)
            assert await transfers(ledger, move(1, FUNDING, REVENUE, 5)) == [TR.OK]  # and goes on as before

    run(body())
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("capacity: accounts")]
    assert len(logged) == 1 and logged[0].endswith("raise LEDGER_ACCOUNTS_MAX and restart before then")


def test_the_engines_memory_and_the_machines_headroom_are_metrics(store_url: str) -> None:
    async def body() -> Any:
        async with await Ledger.open(config(store_url), clock=ManualClock()) as ledger:
            await open_books(ledger)
            assert await transfers(ledger, *(move(100 + n, FUNDING, REVENUE, 1) for n in range(50))) == [TR.OK] * 50
            return ledger.stats()

    stats = run(body())
    available = 8 << 30
    found = samples(_memory_families(stats, available))
    assert found["ledger_capacity_warnings"] == [({}, 0.0)]
    if stats.memory_used is None:  # the reference engine: no tables to measure
        assert found["ledger_engine_memory_bytes"] == []
        return
    tables = {labels["table"]: value for labels, value in found["ledger_engine_memory_bytes"]}
    assert set(tables) == {"accounts", "account_index", "transfers", "transfer_status", "transfer_fingerprints",
                           "transfer_index", "open_holds", "expiry_heap", "cold_cache"}  # fmt: skip
    assert tables["transfers"] >= 50 * 128  # the hot records' ring, a chunk of it at least
    [(_, per_transfer)] = found["ledger_engine_bytes_per_transfer"]
    assert per_transfer >= 129  # so few transfers: the ring's first chunk dwarfs them
    [(_, headroom)] = found["ledger_engine_transfers_headroom"]
    # Old records are read from the journal: a new transfer adds its status and index slot only.
    assert stats.transfers_hot == 1
    growing = tables["transfer_status"] + tables["transfer_fingerprints"] + tables["transfer_index"]
    assert headroom == available // (growing / 50)
    assert found["ledger_memory_available_bytes"] == [({}, float(available))]
