"""The native engine's tables are reserved at its capacity and take memory only as they fill.

Measured in a process of its own: the test process's own allocations and frees would blur a resident size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

if os.environ.get("CI") != "true":  # under CI the native engine and Linux are required: the test fails without
    pytest.importorskip("ledger.engine._c")
    pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")

MIB = 1 << 20
MEASURE = """
import json, os, time
from dataclasses import replace
from ledger.engine import Account, EngineConfig, Transfer, pack_accounts, pack_transfers
from ledger.engine._c import NativeEngine

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

batch = [Transfer(id=i + 1, debit_account_id=1, credit_account_id=2, amount=1, ledger=1, code=1) for i in range(8190)]
before = rss()
engine = NativeEngine(EngineConfig(accounts_max=1_000_000, transfers_max=10_000_000,
                                   pending_transfers_max=1_000_000), clock=time.time_ns)
made = rss()
engine.create_accounts(pack_accounts([Account(id=n, ledger=1, code=1) for n in (1, 2)]))
for n in range(40):
    engine.create_transfers(pack_transfers([replace(t, id=n * 8190 + t.id) for t in batch]))
print(json.dumps({"reserved": sum(engine.memory_bytes().values()), "made": made - before, "filled": rss() - before,
                  "transfers": engine.stats().transfers_count}))
"""


def test_a_large_capacity_costs_no_memory_until_records_fill_it() -> None:
    found = json.loads(subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True,
                                      check=True).stdout)  # fmt: skip
    assert found["transfers"] == 40 * 8190
    assert found["reserved"] > 1_300 * MIB  # what the default capacity reserves
    assert found["made"] < 16 * MIB  # and takes at once: next to nothing
    # 327,600 transfers: 40 MiB of records, a chunk ahead, their statuses and the indexes: not 1.4 GiB
    assert 40 * MIB < found["filled"] < 40 * MIB + 100 * MIB
