"""The durable ledger on both journal stores: restart, checkpoints, corruption, outages, backpressure.

Every test here runs once against SQLite and once against the real
PostgreSQL (a fresh schema each time); under CI=true the PostgreSQL runs
cannot be skipped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest

from ledger.config import LedgerConfig
from ledger.core import Ledger, LedgerOverloaded, LedgerUnavailable
from ledger.engine import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    EngineState,
    Transfer,
    TransferFlags,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_account_results,
    unpack_accounts,
    unpack_transfer_results,
)
from ledger.journal import Checkpoint, Commit, JournalCorrupt, StoreLocked, StoreUnavailable, open_store
from tests.stores import execute
from tests.support import ManualClock

AR = CreateAccountResult
TR = CreateTransferResult
TF = TransferFlags
AF = AccountFlags

LEDGER = 978
FUNDING, REVENUE, FEES = 1, 2, 3
WALLETS = list(range(100, 110))


def config(url: str, **overrides: Any) -> LedgerConfig:
    settings: dict[str, Any] = {
        "store": url,
        "accounts_max": 1_000,
        "transfers_max": 100_000,
        "pending_transfers_max": 1_000,
        # Only the newest transfer's record stays in memory: every retry, late post or void and lookup of an
        # older one is read back from the journal store, as at scale.
        "transfers_hot": 1,
        "verify": True,
        "expire_interval_seconds": 3600.0,
    }
    settings.update(overrides)
    return LedgerConfig(**settings)


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def move(transfer_id: int, debit: int, credit: int, amount: int, flags: int = 0, **fields: Any) -> Transfer:
    timeout = fields.pop("timeout", 60 if flags & TF.PENDING else 0)
    return Transfer(
        id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger=LEDGER, code=1,
        flags=flags, timeout=timeout, **fields,
    )  # fmt: skip


async def open_books(ledger: Ledger) -> None:
    accounts = [
        Account(id=FUNDING, ledger=LEDGER, code=1),
        Account(id=REVENUE, ledger=LEDGER, code=2),
        Account(id=FEES, ledger=LEDGER, code=3),
        *(Account(id=w, ledger=LEDGER, code=10, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS) for w in WALLETS),
    ]
    results = unpack_account_results(await ledger.create_accounts(pack_accounts(accounts)))
    assert [r.result for r in results] == [AR.OK] * len(accounts)


async def transfers(ledger: Ledger, *batch: Transfer) -> list[int]:
    return [r.result for r in unpack_transfer_results(await ledger.create_transfers(pack_transfers(list(batch))))]


async def day_of_trading(ledger: Ledger, clock: ManualClock, first_id: int = 1000) -> list[list[Transfer]]:
    """Top-ups, payments with fees in chains, partial payments, holds posted, voided and expired.

    Returns every batch sent, so a test can retry them.
    """
    sent: list[list[Transfer]] = []

    async def send(*batch: Transfer) -> list[int]:
        sent.append(list(batch))
        return await transfers(ledger, *batch)

    n = first_id
    for i, wallet in enumerate(WALLETS):
        assert await send(move(n + i, FUNDING, wallet, 10_000 + i)) == [TR.OK]
    n += 100
    clock.advance(1)
    for i, wallet in enumerate(WALLETS):
        codes = await send(
            move(n + 2 * i, wallet, FEES, 30, TF.LINKED),
            move(n + 2 * i + 1, wallet, REVENUE, 4_000, TF.BALANCING_DEBIT),
        )
        assert codes == [TR.OK, TR.OK]
    n += 100
    # A payment larger than the balance moves only what is there.
    assert await send(move(n, WALLETS[0], REVENUE, 1_000_000, TF.BALANCING_DEBIT)) == [TR.OK]
    assert await send(move(n + 1, WALLETS[0], REVENUE, 1)) == [TR.EXCEEDS_CREDITS]
    n += 10
    # Holds: one posted in part, one voided, one left to expire, one left open.
    assert (
        await send(*(move(n + i, WALLETS[2 + i], REVENUE, 500, TF.PENDING, timeout=10 + i) for i in range(4)))
        == [TR.OK] * 4
    )
    assert await send(Transfer(id=n + 10, pending_id=n, amount=200, flags=TF.POST_PENDING_TRANSFER)) == [TR.OK]
    assert await send(Transfer(id=n + 11, pending_id=n + 1, flags=TF.VOID_PENDING_TRANSFER)) == [TR.OK]
    clock.advance(12.5)  # hold n + 2 (timeout 12 s) expires at the next batch; n + 3 (13 s) does not
    assert await send(move(n + 20, FUNDING, WALLETS[9], 1)) == [TR.OK]
    return sent


async def snapshot(ledger: Ledger) -> tuple[EngineState, Any]:
    engine = ledger._engine
    return engine.export_state(), engine.stats()


async def crash(ledger: Ledger) -> None:
    """Stop as a killed process would, as far as the store can tell: no final checkpoint, no flush of anything new."""
    ledger._expiry_task.cancel()
    ledger._closed = True
    await asyncio.to_thread(ledger._writer.stop, 10.0)
    await asyncio.to_thread(ledger._history.stop)
    ledger.store.close()


def reopen_and_compare(url: str, clock: ManualClock, expected: tuple[EngineState, Any], **overrides: Any) -> Any:
    async def body() -> Any:
        async with await Ledger.open(config(url, **overrides), clock=clock) as ledger:
            assert await snapshot(ledger) == expected
            return ledger.recovery

    return run(body())


# --- restart --------------------------------------------------------------------------------------


def test_restart_restores_every_account_and_transfer(store_url: str) -> None:
    clock = ManualClock()

    async def first() -> tuple[Any, list[list[Transfer]]]:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            assert ledger.recovery.transfers_count == 0
            await open_books(ledger)
            sent = await day_of_trading(ledger, clock)
            return await snapshot(ledger), sent

    before, sent = run(first())
    report = reopen_and_compare(store_url, clock, before)
    assert report.transfers_count == before[1].transfers_count
    assert report.checkpoint_seq > 0  # close() checkpoints

    async def retry_everything() -> None:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            for batch in sent:
                results = await ledger.create_transfers(pack_transfers(batch))
                for result in unpack_transfer_results(results):
                    assert result.result in (TR.EXISTS, TR.EXCEEDS_CREDITS)
            state, _ = await snapshot(ledger)
            assert (state.accounts, state.transfers) == (before[0].accounts, before[0].transfers)

    run(retry_everything())


def test_recovery_after_a_crash_replays_the_journal_after_the_checkpoint(store_url: str) -> None:
    clock = ManualClock()

    async def first() -> Any:
        ledger = await Ledger.open(config(store_url), clock=clock)
        await open_books(ledger)
        await day_of_trading(ledger, clock, first_id=1000)
        seq = await ledger.checkpoint()
        assert seq is not None and seq > 0
        await day_of_trading(ledger, clock, first_id=5000)
        state = await snapshot(ledger)
        await crash(ledger)
        return state, seq

    before, checkpoint_seq = run(first())
    report = reopen_and_compare(store_url, clock, before)
    assert report.checkpoint_seq == checkpoint_seq
    assert report.commits_replayed > 0 and report.transfers_replayed > 0


def test_recovery_without_any_checkpoint(store_url: str) -> None:
    clock = ManualClock()

    async def first() -> Any:
        ledger = await Ledger.open(config(store_url), clock=clock)
        await open_books(ledger)
        await day_of_trading(ledger, clock)
        state = await snapshot(ledger)
        await crash(ledger)
        return state

    before = run(first())
    report = reopen_and_compare(store_url, clock, before)
    assert report.checkpoint_seq == 0
    assert report.transfers_replayed == before[1].transfers_count


def test_holds_expire_in_the_background_and_the_expiry_is_journaled(store_url: str) -> None:
    clock = ManualClock()

    async def first() -> Any:
        ledger = await Ledger.open(config(store_url, expire_interval_seconds=0.01), clock=clock)
        await open_books(ledger)
        await transfers(ledger, move(1, FUNDING, WALLETS[0], 100))
        assert await transfers(ledger, move(2, WALLETS[0], REVENUE, 60, TF.PENDING, timeout=5)) == [TR.OK]
        clock.advance(6)
        for _ in range(500):
            if ledger._engine.stats().pending_transfers_count == 0:
                break
            await asyncio.sleep(0.01)
        assert await ledger.transfer_status(2) == 4  # EXPIRED, with no batch arriving to do it
        wallet = unpack_accounts(await ledger.lookup_accounts(pack_ids([WALLETS[0]])))[0]
        assert wallet.debits_pending == 0
        state = await snapshot(ledger)
        await crash(ledger)
        return state

    before = run(first())
    reopen_and_compare(store_url, clock, before)


def test_large_batches_split_into_several_commits_and_recover(store_url: str) -> None:
    clock = ManualClock()

    async def first() -> Any:
        ledger = await Ledger.open(config(store_url, commit_bytes_max=64 * 1024), clock=clock)
        await open_books(ledger)
        await transfers(ledger, move(1, FUNDING, WALLETS[0], 10**12))
        for start in range(10, 8190 * 3, 8190):
            batch = [move(start + i, WALLETS[0], REVENUE, 1 + i % 7) for i in range(8190)]
            await asyncio.gather(transfers(ledger, *batch[:4000]), transfers(ledger, *batch[4000:]))
        # The two calls of a round are one engine batch, and each batch past commit_bytes_max a commit of its own.
        assert ledger.stats().writer.seq_last == 5
        state = await snapshot(ledger)
        await crash(ledger)
        return state

    before = run(first())
    report = reopen_and_compare(store_url, clock, before)
    assert report.transfers_count == 1 + 8190 * 3


# --- bad journals -----------------------------------------------------------------------------------


def write_some(url: str, clock: ManualClock, *, checkpoint: bool) -> None:
    async def body() -> None:
        ledger = await Ledger.open(config(url), clock=clock)
        await open_books(ledger)
        for i in range(5):
            await transfers(ledger, move(10 + i, FUNDING, WALLETS[i], 100))
        if checkpoint:
            await ledger.checkpoint()
            await transfers(ledger, move(99, FUNDING, WALLETS[0], 1))
        await crash(ledger)

    run(body())


def open_fails(url: str, clock: ManualClock) -> str:
    with pytest.raises(JournalCorrupt) as info:
        run(Ledger.open(config(url), clock=clock))
    return str(info.value)


def test_a_damaged_commit_is_refused_with_its_position(store_url: str) -> None:
    clock = ManualClock()
    write_some(store_url, clock, checkpoint=False)
    execute(store_url, "UPDATE ledger_journal SET transfers = %s WHERE seq = 4", bytes(128))
    assert "seq=4" in open_fails(store_url, clock)


def test_a_truncated_record_is_refused(store_url: str) -> None:
    clock = ManualClock()
    write_some(store_url, clock, checkpoint=False)
    execute(store_url, "UPDATE ledger_journal SET transfers = %s WHERE seq = 3", bytes(100))
    message = open_fails(store_url, clock)
    assert "seq=3" in message and "truncated" in message


def test_a_missing_commit_is_refused(store_url: str) -> None:
    clock = ManualClock()
    write_some(store_url, clock, checkpoint=False)
    execute(store_url, "DELETE FROM ledger_journal WHERE seq = 3")
    message = open_fails(store_url, clock)
    assert "seq=3 is missing" in message


def test_a_journal_cut_short_behind_its_checkpoint_is_refused(store_url: str) -> None:
    clock = ManualClock()
    write_some(store_url, clock, checkpoint=True)
    execute(store_url, "DELETE FROM ledger_journal WHERE seq >= 6")
    message = open_fails(store_url, clock)
    assert "past the end of the journal" in message


def test_a_damaged_checkpoint_is_refused_with_its_position(store_url: str) -> None:
    clock = ManualClock()
    write_some(store_url, clock, checkpoint=True)
    execute(store_url, "UPDATE ledger_checkpoints SET timestamp_last = timestamp_last + 1")
    message = open_fails(store_url, clock)
    assert "checkpoint at journal seq=" in message


def test_a_store_from_a_newer_ledger_is_refused(store_url: str) -> None:
    clock = ManualClock()
    write_some(store_url, clock, checkpoint=False)
    execute(store_url, "INSERT INTO ledger_schema (version) VALUES (99)")
    with pytest.raises(StoreUnavailable, match="newer"):
        run(Ledger.open(config(store_url), clock=clock))


def test_a_second_ledger_on_the_same_journal_is_refused(store_url: str) -> None:
    async def body() -> None:
        async with await Ledger.open(config(store_url)):
            with pytest.raises(StoreLocked):
                await Ledger.open(config(store_url))

    run(body())


def test_a_journal_closed_can_be_opened_again_at_once(store_url: str) -> None:
    """The journal's lock is released when its ledger closes, not when the store notices its session went."""

    async def body() -> None:
        for _ in range(20):
            ledger = await Ledger.open(config(store_url))
            await ledger.close(checkpoint=False)

    run(body())


def test_an_unreachable_database_is_named_in_the_error() -> None:
    url = "postgresql://ledger:secret@127.0.0.1:1/books"
    with pytest.raises(StoreUnavailable) as info:
        run(Ledger.open(config(url)))
    assert "postgresql://ledger@127.0.0.1:1/books" in str(info.value)
    assert "secret" not in str(info.value)


# --- outages and backpressure ---------------------------------------------------------------------


class GatedStore:
    """A real store whose appends wait for a gate, or fail while `failing` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.description = inner.description
        self.gate = threading.Event()
        self.gate.set()
        self.failing = threading.Event()
        self.appends = 0

    def append(self, commits: Sequence[Commit]) -> None:
        self.gate.wait(30)
        if self.failing.is_set():
            raise StoreUnavailable(f"{self.description}: connection refused (test)")
        self.inner.append(commits)
        self.appends += 1

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.inner.save_checkpoint(checkpoint)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def gated_ledger(
    url: str, clock: ManualClock, store_class: type[GatedStore] = GatedStore, **overrides: Any
) -> tuple[Ledger, GatedStore]:
    import ledger.core._ledger as module

    original = module.open_store
    holder: list[GatedStore] = []

    def wrapped(store_url: str) -> Any:
        holder.append(store_class(original(store_url)))
        return holder[0]

    module.open_store = wrapped  # type: ignore[assignment]
    try:
        ledger = await Ledger.open(config(url, **overrides), clock=clock)
    finally:
        module.open_store = original
    return ledger, holder[0]


async def pending(awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(awaitable)
    await asyncio.sleep(0.05)
    return task


def test_a_read_waits_until_what_it_sees_is_durable(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock)
        await open_books(ledger)
        store.gate.clear()
        write = await pending(transfers(ledger, move(1, FUNDING, WALLETS[0], 500)))
        read = await pending(ledger.lookup_accounts(pack_ids([WALLETS[0]])))
        assert not write.done() and not read.done()  # the engine has applied it, nobody may see it yet
        store.gate.set()
        assert await write == [TR.OK]
        assert unpack_accounts(await read)[0].credits_posted == 500
        await ledger.close()

    run(body())


def test_each_unanswered_write_times_out_at_its_own_deadline(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock, durable_wait_seconds=0.4)
        await open_books(ledger)
        store.gate.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        ended: dict[int, float] = {}

        async def write(transfer_id: int) -> None:
            with pytest.raises(LedgerUnavailable, match=r"not durable within 0\.4 s"):
                await transfers(ledger, move(transfer_id, FUNDING, WALLETS[0], 1))
            ended[transfer_id] = loop.time() - started

        first = asyncio.ensure_future(write(1))
        await asyncio.sleep(0.2)
        second = asyncio.ensure_future(write(2))
        await asyncio.gather(first, second)
        # Each at its own deadline: not before it, and the second not with the first.
        assert ended[1] >= 0.38 and ended[2] >= 0.58 and ended[2] - ended[1] >= 0.15 and ended[2] < 5, ended
        store.gate.set()
        await ledger.close()

    run(body())


def test_a_store_outage_refuses_writes_then_recovers_by_itself(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> Any:
        ledger, store = await gated_ledger(store_url, clock, durable_wait_seconds=0.5)
        await open_books(ledger)
        assert await transfers(ledger, move(1, FUNDING, WALLETS[0], 500)) == [TR.OK]
        store.failing.set()
        # Applied before the outage was noticed: no answer within the wait, outcome unknown.
        with pytest.raises(LedgerUnavailable, match="retry with the same ids"):
            await transfers(ledger, move(2, FUNDING, WALLETS[1], 700))
        # Once the outage is known, new writes are refused at once and change nothing.
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            await transfers(ledger, move(3, FUNDING, WALLETS[2], 900))
        assert ledger._engine.lookup_transfers(pack_ids([3])) == b""
        # A read of state that is not durable cannot answer either.
        with pytest.raises(LedgerUnavailable):
            await ledger.lookup_accounts(pack_ids([WALLETS[1]]))
        assert not ledger.stats().available
        store.failing.clear()
        for _ in range(200):
            if ledger.stats().available:
                break
            await asyncio.sleep(0.02)
        assert ledger.stats().available
        # The retry of the unanswered write finds it committed: EXISTS, never a second movement.
        assert await transfers(ledger, move(2, FUNDING, WALLETS[1], 700)) == [TR.EXISTS]
        assert await transfers(ledger, move(3, FUNDING, WALLETS[2], 900)) == [TR.OK]
        state = await snapshot(ledger)
        await crash(ledger)
        return state

    before = run(body())
    reopen_and_compare(store_url, clock, before)


def test_the_backlog_is_bounded(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock, journal_backlog_bytes_max=128 * 5)
        await open_books(ledger)
        store.gate.clear()
        waiting = [await pending(transfers(ledger, move(10 + i, FUNDING, WALLETS[i], 1))) for i in range(5)]
        with pytest.raises(LedgerOverloaded, match="journal_backlog_bytes_max"):
            await transfers(ledger, move(20, FUNDING, WALLETS[0], 1))
        assert ledger._engine.lookup_transfers(pack_ids([20])) == b""  # refused before it was applied
        store.gate.set()
        assert [await w for w in waiting] == [[TR.OK]] * 5
        assert await transfers(ledger, move(20, FUNDING, WALLETS[0], 1)) == [TR.OK]
        await ledger.close()

    run(body())


def test_group_commit_answers_many_callers_with_few_transactions(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock)
        await open_books(ledger)
        await transfers(ledger, move(1, FUNDING, WALLETS[0], 10**9))
        before = store.appends
        store.gate.clear()
        callers = [asyncio.ensure_future(transfers(ledger, move(100 + i, WALLETS[0], REVENUE, 1))) for i in range(200)]
        await asyncio.sleep(0.05)
        store.gate.set()
        assert [await c for c in callers] == [[TR.OK]] * 200
        assert store.appends - before <= 3  # the one in flight, then everything that queued behind it
        await ledger.close()

    run(body())


def test_store_contract_appends_are_idempotent_by_seq(store_url: str) -> None:
    store = open_store(store_url)
    store.connect()
    try:
        commit = Commit.seal(
            seq=1, timestamp_last=5, accounts_first=0, transfers_first=0,
            accounts=b"", transfers=bytes(128), expired=b"",
        )  # fmt: skip
        store.append([commit])
        store.append([commit])  # the retry of a commit whose acknowledgement was lost
        other = Commit.seal(
            seq=1, timestamp_last=6, accounts_first=0, transfers_first=0,
            accounts=b"", transfers=bytes(128), expired=b"",
        )  # fmt: skip
        with pytest.raises(JournalCorrupt, match="different contents"):
            store.append([other])
        assert [c.seq for c in store.commits()] == [1]
    finally:
        store.close()


def test_start_up_logs_what_it_recovered_and_how_long_it_took(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    write_some(store_url, clock, checkpoint=True)
    caplog.set_level("INFO", logger="ledger.core._ledger")

    async def body() -> None:
        async with await Ledger.open(config(store_url), clock=clock):
            pass

    run(body())
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ledger recovered")]
    assert "checkpoint seq=" in line and "1 commits (1 transfers) replayed" in line and " s:" in line
    assert "13 accounts, 6 transfers" in line
