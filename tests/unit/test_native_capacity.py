"""The native engine's tables grow with what they hold, and it says at start when accounts could never fit."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.engine import Account, EngineConfig, pack_accounts, pack_ids, unpack_accounts
from tests.support import ENGINE_CLASSES, ManualClock

NATIVE = [cls for name, cls in ENGINE_CLASSES.items() if name == "cython"]


@pytest.mark.parametrize("engine_class", NATIVE)
def test_an_account_limit_beyond_memory_is_a_clear_error(engine_class: type[Any]) -> None:
    config = EngineConfig(accounts_max=2**32 - 2, transfers_max=2**32 - 2)
    with pytest.raises(MemoryError, match=r"accounts_max=4294967294 needs .* MiB when full.*MiB is available"):
        engine_class(config, clock=ManualClock())


@pytest.mark.parametrize("engine_class", NATIVE)
def test_a_transfer_limit_is_a_limit_not_an_allocation(engine_class: type[Any]) -> None:
    # With a cold reader, a transfer costs memory only for its status byte and index slot.
    engine = engine_class(EngineConfig(transfers_max=2**32 - 2), clock=ManualClock(), cold_reader=lambda _: {})
    assert engine.memory_bytes()["transfers"] == 2**20 * 128  # the ring: the hot window and a batch beyond it
    assert engine.transfers_hot == 2**20 - 8190


@pytest.mark.parametrize("engine_class", NATIVE)
def test_memory_bytes_accounts_for_every_table(engine_class: type[Any]) -> None:
    engine = engine_class(
        EngineConfig(accounts_max=30_000, transfers_max=3000, pending_transfers_max=30), clock=ManualClock()
    )
    tables = engine.memory_bytes()
    assert tables["accounts"] == 30_000 * 128  # reserved at the capacity, filled as records come
    assert tables["transfers"] == 3000 * 128
    assert tables["transfer_status"] == 3000
    # The indexes start small, whatever the capacity: 1,024 shards of 16 to 31 slots of 8 bytes.
    assert tables["account_index"] < 300 * 1024 and tables["transfer_index"] < 300 * 1024
    accounts = [Account(id=n, ledger=1, code=1) for n in range(1, 20_001)]
    for start in range(0, len(accounts), 8190):
        engine.create_accounts(pack_accounts(accounts[start : start + 8190]))
    grown = engine.memory_bytes()["account_index"]
    # Each shard doubles before one more entry would pass a load of 3/4, so the load stays above 3/8.
    assert 20_000 * 8 * 4 // 3 < grown <= 20_000 * 8 * 8 // 3 + 1024 * (16 + 32)
    assert engine.lookup_accounts(pack_ids([1, 9_999, 20_000, 20_001])) == pack_accounts(
        [unpack_accounts(engine.lookup_accounts(pack_ids([n])))[0] for n in (1, 9_999, 20_000)]
    )
