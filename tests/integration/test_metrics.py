"""The Ledger's observers: what the metrics of a server are built on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import Account, MalformedBatch, Transfer, pack_accounts, pack_transfers

LEDGER = 978
FUNDING, WALLET, REVENUE = 1, 2, 3
PENDING = 2  # TransferFlags.PENDING


def test_the_apply_observer_sees_every_engine_call(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.support import ManualClock

    seen: list[tuple[str, int, float]] = []
    clock = ManualClock()

    def observe(operation: str, events_count: int, seconds: float) -> None:
        seen.append((operation, events_count, seconds))
        if events_count == 2:
            raise RuntimeError("observer bug")

    async def run() -> None:
        config = LedgerConfig(store=f"sqlite:///{tmp_path / 'journal.sqlite3'}", accounts_max=10, transfers_max=100,
                              pending_transfers_max=10, expire_interval_seconds=0.02)  # fmt: skip
        async with await Ledger.open(config, clock=clock, on_apply=observe) as ledger:
            accounts = [Account(id=i, ledger=LEDGER, code=1) for i in (FUNDING, WALLET, REVENUE)]
            await ledger.create_accounts(pack_accounts(accounts))
            # The observer fails on this batch: logged, and the batch is journaled and answered all the same.
            hold = Transfer(id=50, debit_account_id=FUNDING, credit_account_id=WALLET, amount=7, ledger=LEDGER, code=1,
                            flags=PENDING, timeout=1)  # fmt: skip
            plain = Transfer(
                id=51, debit_account_id=FUNDING, credit_account_id=REVENUE, amount=3, ledger=LEDGER, code=1
            )
            await ledger.create_transfers(pack_transfers([hold, plain]))
            with pytest.raises(MalformedBatch):  # the engine refuses it whole: nothing applied, nothing observed
                await ledger.create_transfers(b"\0" * 100)
            clock.advance(2)  # the expiry loop releases the hold
            for _ in range(250):
                stats = ledger.stats()
                if stats.engine.pending_transfers_count == 0 and stats.writer.ticket_durable == stats.ticket_applied:
                    break
                await asyncio.sleep(0.02)
            assert (stats.engine.pending_transfers_count, stats.engine.transfers_count) == (0, 2)
            assert stats.writer.ticket_durable == stats.ticket_applied == 3  # accounts, transfers, expiry

    with caplog.at_level(logging.ERROR, logger="ledger.core._ledger"):
        asyncio.run(run())
    calls = [(operation, count) for operation, count, _ in seen]
    assert calls[:2] == [("create_accounts", 3), ("create_transfers", 2)]
    # While a hold is open the expiry loop asks the engine on every tick; the last time it released the hold.
    assert calls[2:] and set(calls[2:]) == {("expire_pending_transfers", 0)}
    assert all(0 <= seconds < 1 for _, _, seconds in seen)
    assert "on_apply observer failed" in caplog.text
