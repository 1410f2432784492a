"""When the journal writer answers: as soon as a take's commits are durable, before anything slower that the
same take carries (a checkpoint), and before the history index thread is woken to index them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ledger.journal import Checkpoint, Commit, HistoryIndex, open_store
from tests.integration.test_journal import FUNDING, TR, WALLETS, gated_ledger, move, open_books, run, transfers
from tests.support import ManualClock


def test_a_write_is_answered_before_the_checkpoint_taken_with_it_is_saved(store_url: str) -> None:
    async def body() -> None:
        ledger, store = await gated_ledger(store_url, ManualClock())
        await open_books(ledger)
        saving = threading.Event()
        saved = threading.Event()

        def save_checkpoint(checkpoint: Checkpoint) -> None:
            saving.set()
            saved.wait(30)
            store.inner.save_checkpoint(checkpoint)

        store.save_checkpoint = save_checkpoint  # type: ignore[method-assign]
        store.gate.clear()
        first = asyncio.ensure_future(transfers(ledger, move(1, FUNDING, WALLETS[0], 5)))
        await asyncio.sleep(0.05)  # taken by the writer, which waits at the gate
        second = asyncio.ensure_future(transfers(ledger, move(2, FUNDING, WALLETS[1], 7)))
        await asyncio.sleep(0.05)  # applied: its entries wait for the next take
        checkpoint = asyncio.ensure_future(ledger.checkpoint())  # rides with the second write's take
        await asyncio.sleep(0.05)
        store.gate.set()
        assert await asyncio.wait_for(first, 10) == [TR.OK]
        assert await asyncio.wait_for(second, 10) == [TR.OK]  # while the checkpoint cannot be saved yet
        assert await asyncio.to_thread(saving.wait, 10) and not checkpoint.done()
        saved.set()
        assert await asyncio.wait_for(checkpoint, 10) is not None
        await ledger.close()

    run(body())


def commit(seq: int, transfers_first: int) -> Commit:
    record = move(1_000 + seq, FUNDING, WALLETS[0], 1).pack()
    return Commit.seal(
        seq=seq, timestamp_last=seq, accounts_first=0, transfers_first=transfers_first,
        accounts=b"", transfers=record, expired=b"",
    )  # fmt: skip


def test_commits_handed_to_the_history_index_unwoken_are_indexed_once_it_is_woken(store_url: str) -> None:
    store = open_store(store_url)
    store.connect()
    index = HistoryIndex(store, flush_seconds=3600.0)
    try:
        store.append([commit(1, 0), commit(2, 1)])
        index.start(0)
        index.durable([commit(1, 0), commit(2, 1)], wake=False)
        assert index.durable_seq == 2  # a query begun now waits for both
        assert not index.wait_for(2, 0.2), "indexed before it was woken"
        index.wake()
        assert index.wait_for(2, 10)
    finally:
        index.stop()
        store.close()


def test_history_sees_every_write_as_soon_as_it_is_answered(store_url: str) -> None:
    from ledger.journal import AccountFilter

    async def body() -> Any:
        ledger, _ = await gated_ledger(store_url, ManualClock())
        await open_books(ledger)
        for i in range(20):
            assert await transfers(ledger, move(100 + i, FUNDING, WALLETS[0], 1 + i)) == [TR.OK]
            page = await ledger.get_account_transfers(AccountFilter(account_id=WALLETS[0]))
            assert len(page.transfers) == (i + 1) * 128
        await ledger.close()

    run(body())
