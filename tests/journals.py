"""Journals written by the real ledger for the auditor's tests, and ways to damage them on purpose.

`write_rich_journal` books every kind of record the journal can hold: plain
transfers, linked chains, balancing debits and credits, holds posted in full
and in part, voided, expired at a batch and in the background, closing holds
voided and posted, accounts with the HISTORY flag (balance entries) and with
either limit, and a checkpoint in the middle as well as the one at shutdown.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from ledger.core import Ledger
from ledger.engine import Account, AccountFlags, Transfer, TransferFlags, pack_accounts, pack_transfers
from ledger.journal import Checkpoint, Commit, open_store
from ledger.journal._blocks import compress_transfers
from ledger.journal._store import pack_checkpoint_blob
from ledger.records.codes import CreateAccountResult, CreateTransferResult
from ledger.records.layout import unpack_account_results, unpack_transfer_results
from tests.integration.test_journal import FUNDING, LEDGER, REVENUE, config, day_of_trading, move, open_books
from tests.stores import execute
from tests.support import ManualClock

TF = TransferFlags
AF = AccountFlags
TR = CreateTransferResult

HISTORY_WALLET, LIMITED, CLOSABLE = 200, 300, 400


async def send(ledger: Ledger, *batch: Transfer) -> list[int]:
    return [r.result for r in unpack_transfer_results(await ledger.create_transfers(pack_transfers(list(batch))))]


async def more_kinds(ledger: Ledger, clock: ManualClock, n: int) -> None:
    """HISTORY entries, a credit limit, balancing credits, closing holds, a hold expired in the background."""
    accounts = [
        Account(id=HISTORY_WALLET + n, ledger=LEDGER, code=10, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY),
        Account(id=LIMITED + n, ledger=LEDGER, code=11, flags=AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
        Account(id=CLOSABLE + n, ledger=LEDGER, code=12, flags=AF.LINKED),
        Account(id=CLOSABLE + n + 1, ledger=LEDGER, code=12),
    ]
    results = unpack_account_results(await ledger.create_accounts(pack_accounts(accounts)))
    assert [r.result for r in results] == [CreateAccountResult.OK] * 4
    wallet, limited, closable = HISTORY_WALLET + n, LIMITED + n, CLOSABLE + n
    assert await send(ledger, move(n + 1, FUNDING, wallet, 9_000), move(n + 2, FUNDING, closable, 700)) == [TR.OK] * 2
    assert await send(ledger, move(n + 3, wallet, REVENUE, 1_000, TF.PENDING, timeout=0)) == [TR.OK]
    post = Transfer(id=n + 4, pending_id=n + 3, amount=0, ledger=LEDGER, flags=TF.POST_PENDING_TRANSFER)
    assert await send(ledger, post) == [TR.OK]
    assert await send(ledger, move(n + 16, FUNDING, REVENUE, 250)) == [TR.OK]  # between accounts with no limit
    # A credit limit: the limited account may be credited up to what it was debited.
    assert await send(ledger, move(n + 5, limited, FUNDING, 1_500)) == [TR.OK]
    assert await send(ledger, move(n + 6, FUNDING, limited, 5_000, TF.BALANCING_CREDIT)) == [TR.OK]
    # Closing holds: one voided (the account reopens), one posted (it stays closed).
    closing = move(n + 7, closable, REVENUE, 100, TF.PENDING | TF.CLOSING_DEBIT, timeout=0)
    assert await send(ledger, closing) == [TR.OK]
    assert await send(ledger, move(n + 8, closable, REVENUE, 1)) == [TR.DEBIT_ACCOUNT_ALREADY_CLOSED]
    void = Transfer(id=n + 9, pending_id=n + 7, ledger=LEDGER, flags=TF.VOID_PENDING_TRANSFER)
    assert await send(ledger, void) == [TR.OK]
    closing = replace(closing, id=n + 10)
    assert await send(ledger, closing) == [TR.OK]
    post = Transfer(id=n + 11, pending_id=n + 10, amount=60, ledger=LEDGER, flags=TF.POST_PENDING_TRANSFER)
    assert await send(ledger, post) == [TR.OK]
    # A chain that fails leaves nothing; one that commits, a hold on the HISTORY wallet inside it.
    failing = [move(n + 12, wallet, REVENUE, 10, TF.LINKED), move(n + 13, wallet, REVENUE, 10**9)]
    assert await send(ledger, *failing) == [TR.LINKED_EVENT_FAILED, TR.EXCEEDS_CREDITS]
    chain = [move(n + 14, wallet, REVENUE, 10, TF.LINKED), move(n + 15, wallet, REVENUE, 20, TF.PENDING, timeout=3)]
    assert await send(ledger, *chain) == [TR.OK, TR.OK]
    # That hold expires with no batch arriving: the ledger's expiry loop journals it on its own.
    clock.advance(4)
    for _ in range(500):
        if await ledger.transfer_status(n + 15) == 4:
            break
        await asyncio.sleep(0.01)
    assert await ledger.transfer_status(n + 15) == 4


async def write_rich_journal(url: str, clock: ManualClock | None = None, **overrides: Any) -> tuple[bytes, Any]:
    """Write the journal; the engine's accounts (as a checkpoint holds them) and stats at the end."""
    clock = clock or ManualClock()
    overrides.setdefault("expire_interval_seconds", 0.01)
    async with await Ledger.open(config(url, **overrides), clock=clock) as ledger:
        await open_books(ledger)
        await day_of_trading(ledger, clock, first_id=1000)
        await more_kinds(ledger, clock, 2000)
        assert await ledger.checkpoint()
        await day_of_trading(ledger, clock, first_id=5000)
        await more_kinds(ledger, clock, 6000)
        assert await send(ledger, move(9000, FUNDING, REVENUE, 77, TF.PENDING, timeout=0)) == [TR.OK]  # left open
        state = ledger._engine.export_snapshot()
        return state.accounts, ledger._engine.stats()


def rich_journal(url: str, **overrides: Any) -> tuple[bytes, Any]:
    return asyncio.run(write_rich_journal(url, **overrides))


# -- damage ------------------------------------------------------------------------------------------------


def stored_commit(url: str, seq: int) -> Commit:
    store = open_store(url)
    store.connect()
    try:
        return next(store.commits(seq - 1, seq))
    finally:
        store.close()


def write_commit(url: str, commit: Commit) -> None:
    """Replace a stored commit's row with this one, sealed as the ledger seals it (so its checksum is right)."""
    sealed = Commit.seal(
        seq=commit.seq,
        timestamp_last=commit.timestamp_last,
        accounts_first=commit.accounts_first,
        transfers_first=commit.transfers_first,
        accounts=bytes(commit.accounts),
        transfers=bytes(commit.transfers),
        expired=bytes(commit.expired),
        balances=bytes(commit.balances),
    )
    fields = "timestamp_last = %s, accounts_first = %s, transfers_first = %s, transfers_count = %s, checksum = %s, "
    values: list[Any] = [sealed.timestamp_last, sealed.accounts_first, sealed.transfers_first,
                         sealed.transfers_count, sealed.checksum]  # fmt: skip
    blocks, ends = compress_transfers(sealed.transfers)
    fields += "transfers = %s, transfer_blocks = %s"
    values += [blocks, ends]
    fields += ", accounts = %s, expired = %s, balances = %s"
    values += [sealed.accounts, sealed.expired, sealed.balances]
    execute(url, f"UPDATE ledger_journal SET {fields} WHERE seq = %s", *values, commit.seq)


def latest_checkpoint(url: str) -> Checkpoint:
    store = open_store(url)
    store.connect()
    try:
        checkpoint = store.latest_checkpoint()
        assert checkpoint is not None
        return checkpoint
    finally:
        store.close()


def write_checkpoint(url: str, checkpoint: Checkpoint, accounts: bytes) -> None:
    """Replace a stored checkpoint's accounts, sealed anew."""
    sealed = Checkpoint.seal(
        seq=checkpoint.seq,
        timestamp_last=checkpoint.timestamp_last,
        accounts=accounts,
        transfer_status=checkpoint.transfer_status,
    )
    execute(
        url,
        "UPDATE ledger_checkpoints SET checksum = %s, accounts = %s WHERE seq = %s",
        sealed.checksum,
        pack_checkpoint_blob(sealed.accounts),
        sealed.seq,
    )
