"""Reads while the store is slow or away: the feed reads only what is durable, lookups of durable state answer
at once, a retry of an acknowledged batch answers EXISTS, and the history index reports an outage once.

Outages are simulated as in test_journal: a real store whose appends wait for a gate or fail on demand.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ledger.core import LedgerUnavailable
from ledger.engine import (
    Account,
    CreateAccountResult,
    CreateTransferResult,
    TransferFlags,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_account_results,
    unpack_accounts,
    unpack_transfer_results,
    unpack_transfers,
)
from ledger.journal import AccountFilter, StoreUnavailable
from ledger.server import LedgerMetrics
from tests.integration.test_journal import (
    FUNDING,
    LEDGER,
    REVENUE,
    WALLETS,
    gated_ledger,
    move,
    open_books,
    pending,
    run,
    transfers,
)
from tests.support import ManualClock

AR = CreateAccountResult
TR = CreateTransferResult
TF = TransferFlags


async def wait_until(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


# --- the feed starts from what is durable ---------------------------------------------------------------


def test_a_feed_from_a_late_timestamp_while_a_commit_is_in_flight_is_no_corruption(store_url: str) -> None:
    """The writer numbers a commit before the store has it: the feed's start must not look for it there."""
    clock = ManualClock()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock)
        await open_books(ledger)
        for i in range(6):
            clock.advance(1)
            assert await transfers(ledger, move(1 + i, FUNDING, WALLETS[0], 10)) == [TR.OK]
        stored = ledger.stats().writer.seq_last
        store.gate.clear()
        clock.advance(1)
        write = await pending(transfers(ledger, move(50, FUNDING, WALLETS[1], 70)))
        await wait_until(lambda: ledger.stats().writer.seq_last == stored + 1)  # numbered, not stored
        feed = aiter(ledger.subscribe_transfers(clock.now))  # after every stored commit
        first = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.2)
        assert not first.done(), first  # it waits for the commit (before: JournalCorrupt "commit seq=N is missing")
        store.gate.set()
        assert await write == [TR.OK]
        [record] = unpack_transfers(await asyncio.wait_for(first, 10))
        assert record.id == 50
        await feed.aclose()  # type: ignore[attr-defined]
        await ledger.close()

    run(body())


# --- lookups and retries during an outage ---------------------------------------------------------------


async def outage_with_one_write_in_doubt(store_url: str, clock: ManualClock, **overrides: Any) -> Any:
    """Transfer 1 (FUNDING -> WALLETS[0]) acknowledged; then the store fails and transfer 2 (FUNDING ->
    WALLETS[1]) is applied but never durable. Returns the ledger, its store and the task of transfer 2."""
    ledger, store = await gated_ledger(store_url, clock, durable_wait_seconds=0.5, **overrides)
    await open_books(ledger)
    assert await transfers(ledger, move(1, FUNDING, WALLETS[0], 500), move(3, WALLETS[0], REVENUE, 20)) == [TR.OK] * 2
    store.failing.set()
    doubt = await pending(transfers(ledger, move(2, FUNDING, WALLETS[1], 700)))
    await wait_until(lambda: not ledger.stats().available)
    return ledger, store, doubt


def test_lookups_of_durable_state_answer_during_an_outage(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store, doubt = await outage_with_one_write_in_doubt(store_url, clock)
        loop = asyncio.get_running_loop()
        started = loop.time()
        [wallet] = unpack_accounts(await ledger.lookup_accounts(pack_ids([WALLETS[0]])))
        assert (wallet.credits_posted, wallet.debits_posted) == (500, 20)
        assert [t.id for t in unpack_transfers(await ledger.lookup_transfers(pack_ids([1, 3, 999])))] == [1, 3]
        assert loop.time() - started < 0.3  # from memory, without waiting for the store
        # What transfer 2 touched is not durable: those reads wait and then say they are reads.
        for read in (ledger.lookup_accounts(pack_ids([WALLETS[1]])), ledger.lookup_transfers(pack_ids([2]))):
            with pytest.raises(LedgerUnavailable) as refused:
                await read
            message = str(refused.value)
            assert "read" in message and "retry with the same ids" not in message, message
        with pytest.raises(LedgerUnavailable) as unknown:
            await doubt
        assert "retry with the same ids" in str(unknown.value)  # the write in doubt is told how to retry
        store.failing.clear()
        await wait_until(lambda: ledger.stats().available)
        [wallet] = unpack_accounts(await ledger.lookup_accounts(pack_ids([WALLETS[1]])))
        assert wallet.credits_posted == 700  # applied, then made durable when the store came back
        await ledger.close()

    run(body())


def test_a_retry_of_an_acknowledged_batch_answers_exists_during_an_outage(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store, doubt = await outage_with_one_write_in_doubt(store_url, clock)
        # The acknowledged batch again: every id is in the engine and durable, so the answer is known.
        again = await transfers(ledger, move(1, FUNDING, WALLETS[0], 500), move(3, WALLETS[0], REVENUE, 20))
        assert again == [TR.EXISTS, TR.EXISTS]
        # Per event, as always: a changed field is named, not hidden behind UNAVAILABLE.
        assert await transfers(ledger, move(1, FUNDING, WALLETS[0], 501)) == [TR.EXISTS_WITH_DIFFERENT_AMOUNT]
        accounts = [Account(id=FUNDING, ledger=LEDGER, code=1), Account(id=REVENUE, ledger=LEDGER, code=2)]
        results = unpack_account_results(await ledger.create_accounts(pack_accounts(accounts)))
        assert [r.result for r in results] == [AR.EXISTS, AR.EXISTS]
        # A terminal's stream retries one transfer at a time: the same answer, with a ticket already durable.
        results, ticket = await ledger.submit_transfers(pack_transfers([move(3, WALLETS[0], REVENUE, 20)]))
        await asyncio.wait_for(ledger.until_durable(ticket), 0.1)
        assert [r.result for r in unpack_transfer_results(results)] == [TR.EXISTS]
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            await ledger.submit_transfers(pack_transfers([move(5, FUNDING, WALLETS[2], 1)]))
        # Never acknowledged: a new id, or the batch whose own commit is not durable.
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            await transfers(ledger, move(1, FUNDING, WALLETS[0], 500), move(4, FUNDING, WALLETS[2], 1))
        assert ledger._engine.lookup_transfers(pack_ids([4, 5])) == b""
        with pytest.raises(LedgerUnavailable):
            await transfers(ledger, move(2, FUNDING, WALLETS[1], 700))
        with pytest.raises(LedgerUnavailable):
            await doubt
        store.failing.clear()
        await wait_until(lambda: ledger.stats().available)
        assert await transfers(ledger, move(2, FUNDING, WALLETS[1], 700)) == [TR.EXISTS]
        assert await transfers(ledger, move(4, FUNDING, WALLETS[2], 1)) == [TR.OK]
        await ledger.close()

    run(body())


def test_a_history_read_the_store_cannot_answer_says_it_is_a_read(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store, doubt = await outage_with_one_write_in_doubt(store_url, clock)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable(f"{store.description}: connection refused (test)")

        store.read_transfers = refuse  # type: ignore[method-assign]
        store.history_rows = refuse  # type: ignore[method-assign]
        with pytest.raises(LedgerUnavailable) as refused:
            await ledger.get_account_transfers(AccountFilter(account_id=WALLETS[0]))
        message = str(refused.value)
        assert "read" in message and "retry with the same ids" not in message, message
        del store.read_transfers, store.history_rows
        store.failing.clear()
        await wait_until(lambda: ledger.stats().available)
        await asyncio.gather(doubt, return_exceptions=True)  # answered or timed out: either is right here
        page = await ledger.get_account_transfers(AccountFilter(account_id=WALLETS[0]))
        assert [t.id for t in unpack_transfers(page.transfers)] == [1, 3]
        await ledger.close()

    run(body())


# --- the history index during an outage ----------------------------------------------------------------


def test_the_history_index_reports_an_outage_once_when_it_starts_and_once_when_it_ends(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    caplog.set_level(logging.INFO, logger="ledger.journal._history")

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock, history_flush_seconds=0.05)
        metrics = LedgerMetrics()
        metrics.watch(ledger)

        def metric(name: str) -> float | None:
            return metrics.registry.get_sample_value(name)

        await open_books(ledger)
        write_history = store.inner.write_history
        failing = True

        def flaky(*args: Any) -> None:
            if failing:
                raise StoreUnavailable(f"{store.description}: connection refused (test)")
            write_history(*args)

        store.write_history = flaky  # type: ignore[method-assign]
        assert await transfers(ledger, move(1, FUNDING, WALLETS[0], 500)) == [TR.OK]
        await wait_until(lambda: not ledger.stats().history.store_available)
        await asyncio.sleep(2.0)  # four retries at least
        assert not ledger.stats().history.store_available
        assert ledger.stats().history.store_outages_total == 1
        assert metric("ledger_history_store_available") == 0
        assert metric("ledger_history_store_outages_total") == 1
        failing = False
        await wait_until(lambda: ledger.stats().history.store_available)
        assert metric("ledger_history_store_available") == 1
        assert metric("ledger_history_lag_commits") == 0
        await ledger.close()

    run(body())
    lines = [r for r in caplog.records if r.name == "ledger.journal._history" and r.levelno >= logging.INFO]
    waits = [r for r in lines if "waits for the store" in r.getMessage()]
    backs = [r for r in lines if "store is back" in r.getMessage()]
    assert len(waits) == 1 and waits[0].levelno == logging.WARNING, [r.getMessage() for r in lines]
    assert len(backs) == 1, [r.getMessage() for r in lines]
