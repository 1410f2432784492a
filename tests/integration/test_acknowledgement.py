"""When the journal writer answers: as soon as a take's commits are durable, before anything slower that the
same take carries (a checkpoint of every account)."""

from __future__ import annotations

import asyncio
import threading

from ledger.journal import Checkpoint
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
