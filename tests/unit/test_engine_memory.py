"""The native engine's tables are reserved at its capacity and take memory only as they fill."""

from __future__ import annotations

import os
import sys

import pytest

from ledger.engine import Account, EngineConfig, Transfer, pack_accounts, pack_transfers
from tests.support import ManualClock

NativeEngine = pytest.importorskip("ledger.engine._c").NativeEngine
MIB = 1 << 20

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_large_capacity_costs_no_memory_until_records_fill_it() -> None:
    before = rss_bytes()
    engine = NativeEngine(EngineConfig(accounts_max=1_000_000, transfers_max=10_000_000,
                                       pending_transfers_max=1_000_000), clock=ManualClock())  # fmt: skip
    reserved = sum(engine.memory_bytes().values())
    assert reserved > 1_400 * MIB  # what the default capacity reserves
    assert rss_bytes() - before < 32 * MIB  # and takes at once: next to nothing
    accounts = [Account(id=n, ledger=1, code=1) for n in (1, 2)]
    engine.create_accounts(pack_accounts(accounts))
    for batch in range(40):  # 327,600 transfers: 40 MiB of records, their statuses and what the index touches
        engine.create_transfers(pack_transfers([Transfer(id=batch * 8190 + i + 1, debit_account_id=1,
                                                         credit_account_id=2, amount=1, ledger=1, code=1)
                                                for i in range(8190)]))  # fmt: skip
    grown = rss_bytes() - before
    assert 40 * MIB < grown < 40 * MIB + 200 * MIB  # the records, a chunk ahead, and index pages: not 1.4 GiB
    assert engine.stats().transfers_count == 40 * 8190
