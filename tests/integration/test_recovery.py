"""Recovery of POS-shaped journals, and checkpoints by commits and bytes, on both journal stores.

A POS fleet writes many commits of a few transfers. Recovery must cost per
transfer, not per commit (the engine is handed many commits at once), keep
every check it makes (checksum, seq, ordinals, checkpoint counts) naming the
right commit, and rebuild exactly the state and the idempotency answers; a
ledger must checkpoint after many commits or bytes even when few transfers
were written, without holding its commits back while it saves one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from ledger.core import Ledger
from ledger.engine import Account, CreateTransferResult, Transfer, TransferFlags, pack_accounts
from ledger.journal import Checkpoint, Commit, StoreLocked, open_store
from ledger.journal import _blocks as blocks_module
from tests.integration.test_journal import (
    FEES,
    FUNDING,
    LEDGER,
    REVENUE,
    WALLETS,
    GatedStore,
    config,
    crash,
    gated_ledger,
    move,
    open_books,
    open_fails,
    run,
    snapshot,
    transfers,
)
from tests.stores import execute
from tests.support import ManualClock

TR = CreateTransferResult
TF = TransferFlags


async def fund_wallets(ledger: Ledger) -> None:
    assert await transfers(ledger, *(move(10 + i, FUNDING, w, 100_000) for i, w in enumerate(WALLETS))) == [TR.OK] * 10


async def pos_calls(ledger: Ledger, clock: ManualClock, calls: int, first_id: int = 1000) -> list[list[Transfer]]:
    """`calls` calls of a few transfers, one after the other, so each is a commit of its own: payments with a
    fee, and every third call a hold; holds are captured (for less), voided or left to expire (at the start of
    a call 2 s later) in turn. Returns what was sent, to retry it."""
    sent: list[list[Transfer]] = []
    holds: list[int] = []
    resolved = 0
    n = first_id
    for call in range(calls):
        wallet = WALLETS[call % len(WALLETS)]
        batch = [move(n, wallet, REVENUE, 3 + call % 5), move(n + 1, wallet, FEES, 1)]
        n += 2
        if call % 3 == 0:
            batch.append(move(n, wallet, REVENUE, 7, TF.PENDING, timeout=2))
            holds.append(n)
            n += 1
        elif len(holds) > 2:
            hold = holds.pop(0)
            resolved += 1
            if resolved % 3 == 1:
                batch.append(Transfer(id=n, pending_id=hold, amount=5, flags=TF.POST_PENDING_TRANSFER))
            elif resolved % 3 == 2:
                batch.append(Transfer(id=n, pending_id=hold, flags=TF.VOID_PENDING_TRANSFER))
            n += 1
        codes = await transfers(ledger, *batch)
        assert codes == [TR.OK] * len(batch), (call, codes)
        sent.append(batch)
        clock.advance(0.1)
    return sent


class CountingEngine:
    """An engine that counts its calls replaying transfers and passes everything on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.replay_calls = 0

    def replay_transfers(self, *args: Any) -> None:
        self.replay_calls += 1
        self.inner.replay_transfers(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def stored_commits(url: str) -> list[Commit]:
    store = open_store(url)  # reading needs no lock (a server may still be letting go of a crashed ledger's)
    try:
        return list(store.commits())
    finally:
        store.close()


def locked_store(url: str) -> Any:
    """The store, connected as a writer: after a crash, PostgreSQL lets go of the ledger's lock when its
    server process has ended, which may be a moment after the connection closed."""
    deadline = time.monotonic() + 10
    while True:
        store = open_store(url)
        try:
            store.connect()
            return store
        except StoreLocked:
            store.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- recovery of many small commits -------------------------------------------------------------------------------


@pytest.mark.parametrize("checkpoint_after_calls", [None, 70])
def test_many_small_commits_recover_the_same_state_and_answers_with_few_engine_calls(
    store_url: str, engine_class: type[Any], checkpoint_after_calls: int | None
) -> None:
    clock = ManualClock()

    async def first() -> tuple[Any, list[list[Transfer]]]:
        ledger = await Ledger.open(config(store_url), clock=clock, engine_class=engine_class)
        await open_books(ledger)
        await fund_wallets(ledger)
        sent = await pos_calls(ledger, clock, 40)
        if checkpoint_after_calls is not None:
            sent += await pos_calls(ledger, clock, checkpoint_after_calls - 40, first_id=5000)
            assert await ledger.checkpoint() is not None
        sent += await pos_calls(ledger, clock, 120, first_id=20_000)
        state = await snapshot(ledger)
        await crash(ledger)
        return state, sent

    before, sent = run(first())
    commits = stored_commits(store_url)
    assert len(commits) > 160 and all(c.transfers_count <= 4 for c in commits[2:])
    engines: list[CountingEngine] = []

    def counting(engine_config: Any, **kwargs: Any) -> CountingEngine:
        engines.append(CountingEngine(engine_class(engine_config, **kwargs)))
        return engines[0]

    async def again() -> None:
        async with await Ledger.open(config(store_url), clock=clock, engine_class=counting) as ledger:  # type: ignore[arg-type]
            [engine] = engines
            assert await snapshot(ledger) == before
            report = ledger.recovery
            replayed = [c for c in commits if c.seq > report.checkpoint_seq]
            assert report.commits_replayed == len(replayed) > 100
            # One engine call per run of commits between expiry points (and for the accounts), not per commit.
            expiry_points = sum(1 for c in replayed if c.expired)
            assert engine.replay_calls <= expiry_points + 2 < len(replayed) / 2
            # Every transfer retried answers EXISTS and moves nothing: the id index came back whole.
            for batch in sent:
                assert await transfers(ledger, *batch) == [TR.EXISTS] * len(batch)
            state, _ = await snapshot(ledger)
            expected, _ = before
            assert (state.accounts, state.transfers, state.transfer_status) == (
                expected.accounts, expected.transfers, expected.transfer_status,
            )  # fmt: skip

    run(again())


# --- errors still name the right commit ------------------------------------------------------------------------


def write_plain_calls(url: str, clock: ManualClock, calls: int, *, checkpoint_after: int | None = None) -> None:
    """Open the books, then `calls` single-transfer calls (a commit each; no holds, so nothing cuts the runs
    recovery merges), then crash."""

    async def body() -> None:
        ledger = await Ledger.open(config(url), clock=clock)
        await open_books(ledger)
        for i in range(calls):
            assert await transfers(ledger, move(100 + i, FUNDING, WALLETS[i % 10], 1 + i)) == [TR.OK]
            if checkpoint_after is not None and i + 2 == checkpoint_after:  # commit 1 holds the accounts
                assert await ledger.checkpoint() == checkpoint_after
        await crash(ledger)

    run(body())


def replace_commit(url: str, seq: int, transfers_from: int) -> None:
    """Rewrite commit `seq` (sealed anew, so its checksum and ordinals are right) to carry the transfer of commit
    `transfers_from` again: a journal that is whole but contradicts itself."""
    commits = stored_commits(url)
    by_seq = {c.seq: c for c in commits}
    old = by_seq[seq]
    new = Commit.seal(
        seq=seq, timestamp_last=old.timestamp_last, accounts_first=old.accounts_first,
        transfers_first=old.transfers_first, accounts=old.accounts, transfers=by_seq[transfers_from].transfers,
        expired=old.expired, balances=old.balances,
    )  # fmt: skip
    store = locked_store(url)
    execute(url, "DELETE FROM ledger_journal WHERE seq >= %s", seq)
    try:
        store.append([new, *(c for c in commits if c.seq > seq)])
    finally:
        store.close()


def test_a_damaged_commit_inside_a_merged_run_is_named(store_url: str) -> None:
    clock = ManualClock()
    write_plain_calls(store_url, clock, 60)
    execute(store_url, "UPDATE ledger_journal SET checksum = checksum + 1 WHERE seq = 37")
    message = open_fails(store_url, clock)
    assert "journal commit seq=37 " in message and "checksum" in message


def test_a_gap_inside_a_merged_run_is_named(store_url: str) -> None:
    clock = ManualClock()
    write_plain_calls(store_url, clock, 60)
    execute(store_url, "DELETE FROM ledger_journal WHERE seq = 41")
    assert "journal commit seq=41 is missing (the next stored is seq=42)" in open_fails(store_url, clock)


def test_a_commit_that_contradicts_the_state_is_named_inside_a_merged_run(store_url: str) -> None:
    clock = ManualClock()
    write_plain_calls(store_url, clock, 60)
    replace_commit(store_url, 45, transfers_from=20)
    assert "journal commit seq=45 contradicts the state before it" in open_fails(store_url, clock)


def test_a_commit_restored_under_a_checkpoint_that_contradicts_it_is_named(store_url: str) -> None:
    clock = ManualClock()
    write_plain_calls(store_url, clock, 60, checkpoint_after=50)
    replace_commit(store_url, 30, transfers_from=12)
    # Without the stored transfer ids, recovery reads and checks every commit up to the checkpoint.
    execute(store_url, "DELETE FROM ledger_transfer_ids")
    assert "journal commit seq=30 contradicts the state before it" in open_fails(store_url, clock)


def test_the_first_failure_in_journal_order_is_the_one_reported(store_url: str) -> None:
    clock = ManualClock()
    write_plain_calls(store_url, clock, 60)
    replace_commit(store_url, 30, transfers_from=12)
    execute(store_url, "UPDATE ledger_journal SET checksum = checksum + 1 WHERE seq = 33")
    # Commit 33 is read while commit 30 still waits in the merged run: 30 is applied, and refused, first.
    assert "journal commit seq=30 contradicts the state before it" in open_fails(store_url, clock)


# --- the stores' chunks ----------------------------------------------------------------------------------------


def test_a_scan_comes_in_chunks_bounded_by_bytes_whatever_the_commit_sizes(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 4 * 128
    monkeypatch.setattr(blocks_module, "SCAN_CHUNK_BYTES", budget)  # both stores chunk with _blocks.commit_chunks
    sizes = [1] * 10 + [64] + [1] * 10
    store = open_store(store_url)
    store.connect()
    try:
        first = 0
        commits = []
        for seq, size in enumerate(sizes, start=1):
            records = b"".join(i.to_bytes(16, "little") + bytes(112) for i in range(first + 1, first + size + 1))
            commits.append(Commit.seal(seq=seq, timestamp_last=seq, accounts_first=0, transfers_first=first,
                                       accounts=b"", transfers=records, expired=b""))  # fmt: skip
            first += size
        store.append(commits)
        chunks = list(store.commit_rows())
        assert [row[0] for rows in chunks for row in rows] == list(range(1, len(sizes) + 1))
        assert [bytes(row[6]) for rows in chunks for row in rows] == [bytes(c.transfers) for c in commits]
        for rows in chunks:  # a chunk is cut as soon as it holds the budget: at most one commit past it
            assert sum(len(row[6]) for row in rows[:-1]) < budget
        assert len(chunks) >= 6
        assert [c.seq for c in store.commits(5, 12)] == list(range(6, 13))
    finally:
        store.close()


# --- checkpoints by commits and bytes ----------------------------------------------------------------------------


async def until(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_many_small_commits_take_a_checkpoint_although_few_transfers_were_written(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> Any:
        ledger = await Ledger.open(config(store_url, checkpoint_every_commits=25), clock=clock)
        await open_books(ledger)
        for i in range(22):
            await transfers(ledger, move(100 + i, FUNDING, WALLETS[0], 1))
        await asyncio.sleep(0.05)
        assert ledger.stats().writer.checkpoints_total == 0  # 23 commits, 22 transfers
        for i in range(22, 30):
            await transfers(ledger, move(100 + i, FUNDING, WALLETS[0], 1))
        await until(lambda: ledger.stats().writer.checkpoints_total >= 1)
        state = await snapshot(ledger)
        await crash(ledger)
        return state

    before = run(body())

    async def again() -> None:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            assert ledger.recovery.checkpoint_seq >= 25
            assert ledger.recovery.commits_replayed <= 31 - 25
            assert await snapshot(ledger) == before

    run(again())


def test_many_bytes_take_a_checkpoint_although_no_transfer_was_written(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger = await Ledger.open(config(store_url, checkpoint_every_bytes=32 * 1024), clock=clock)
        for start in range(1000, 1300, 100):  # 300 accounts: 38,400 bytes of records, in 3 commits
            await ledger.create_accounts(
                pack_accounts([Account(id=i, ledger=LEDGER, code=1) for i in range(start, start + 100)])
            )
        await until(lambda: ledger.stats().writer.checkpoints_total >= 1)
        await crash(ledger)

    run(body())
    store = locked_store(store_url)
    try:
        checkpoint = store.latest_checkpoint()
        assert checkpoint is not None and checkpoint.seq == 3 and checkpoint.accounts_count == 300
    finally:
        store.close()


def test_a_start_that_replayed_many_commits_checkpoints_at_once(store_url: str) -> None:
    clock = ManualClock()
    write_plain_calls(store_url, clock, 30)  # 31 commits, no checkpoint

    async def restart() -> None:
        ledger = await Ledger.open(config(store_url, checkpoint_every_commits=25), clock=clock)
        assert ledger.recovery.commits_replayed == 31
        # Without a single write: the next start must not replay them all again.
        await until(lambda: ledger.stats().writer.checkpoints_total == 1)
        await crash(ledger)

    run(restart())

    async def again() -> None:
        async with await Ledger.open(config(store_url, checkpoint_every_commits=25), clock=clock) as ledger:
            assert (ledger.recovery.checkpoint_seq, ledger.recovery.commits_replayed) == (31, 0)

    run(again())


class SlowCheckpointStore(GatedStore):
    """Checkpoints wait for a gate of their own before they are saved."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.checkpoint_gate = threading.Event()
        self.checkpoint_gate.set()

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoint_gate.wait(30)
        self.inner.save_checkpoint(checkpoint)


def test_commits_go_on_while_a_checkpoint_is_saved(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock, store_class=SlowCheckpointStore)
        assert isinstance(store, SlowCheckpointStore)
        await open_books(ledger)
        store.checkpoint_gate.clear()
        saving = asyncio.ensure_future(ledger.checkpoint())
        await asyncio.sleep(0.05)
        for i in range(5):  # each made durable and answered while the checkpoint waits
            assert await asyncio.wait_for(transfers(ledger, move(100 + i, FUNDING, WALLETS[i], 1)), 5) == [TR.OK]
        assert not saving.done()
        store.checkpoint_gate.set()
        assert await saving == 1  # at the journal position it was taken at
        await ledger.close()

    run(body())
