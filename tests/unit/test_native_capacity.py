"""The native engine sizes its tables once, at start, and says so when they cannot fit."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.engine import EngineConfig
from tests.support import ENGINE_CLASSES, ManualClock

NATIVE = [cls for name, cls in ENGINE_CLASSES.items() if name == "cython"]


@pytest.mark.parametrize("engine_class", NATIVE)
def test_capacity_beyond_memory_is_a_clear_error(engine_class: type[Any]) -> None:
    config = EngineConfig(accounts_max=2**32 - 2, transfers_max=2**32 - 2)
    with pytest.raises(MemoryError, match=r"accounts_max=4294967294, transfers_max=4294967294.*MiB is available"):
        engine_class(config, clock=ManualClock())


@pytest.mark.parametrize("engine_class", NATIVE)
def test_memory_bytes_accounts_for_every_table(engine_class: type[Any]) -> None:
    engine = engine_class(
        EngineConfig(accounts_max=300, transfers_max=3000, pending_transfers_max=30), clock=ManualClock()
    )
    tables = engine.memory_bytes()
    assert tables["accounts"] == 300 * 128
    assert tables["transfers"] == 3000 * 128
    assert tables["transfer_status"] == 3000
    # Index slots are 8 bytes at a load factor of at most 3/4.
    assert 300 * 8 < tables["account_index"] <= 300 * 8 * 4 // 3 + 8
    assert 3000 * 8 < tables["transfer_index"] <= 3000 * 8 * 4 // 3 + 8
