"""Domain records journaled in the commit of their engine entries, on both journal stores.

A domain layer (the wallet domain) applies an operation through
`Ledger.operation()`: engine calls and its own records, handed to the journal
in one append, so one commit holds both and a crash keeps both or neither.
Recovery gives the domain its checkpoint snapshot and then the records of
every commit after it, in order; journals written before domain records
existed are upgraded in place and verify unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.audit import Verdict, audit, open_journal
from ledger.core import Ledger, LedgerFailed, LedgerOverloaded, LedgerUnavailable, Operation
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
)
from ledger.journal import Checkpoint, Commit, JournalCorrupt, open_store
from ledger.journal._schema import SCHEMA_VERSION
from tests.integration.test_journal import (
    FUNDING,
    LEDGER,
    REVENUE,
    WALLETS,
    config,
    crash,
    day_of_trading,
    gated_ledger,
    move,
    open_books,
    pending,
    run,
    snapshot,
    transfers,
)
from tests.integration.test_recovery import fund_wallets, locked_store, stored_commits
from tests.stores import downgrade, execute, fetch
from tests.support import ManualClock

AR = CreateAccountResult
TR = CreateTransferResult
TF = TransferFlags


class Notebook:
    """A domain whose state is its records one after the other; it notes every call the ledger makes of it."""

    def __init__(self) -> None:
        self.state = bytearray()
        self.calls: list[tuple[str, int, bytes]] = []
        """("restore", 0, snapshot), ("replay", seq, records) and ("snapshot", 0, state), in order."""

    def restore(self, snapshot: bytes) -> None:
        self.calls.append(("restore", 0, snapshot))
        self.state = bytearray(snapshot)

    def replay(self, records: bytes, seq: int) -> None:
        self.calls.append(("replay", seq, records))
        self.state += records

    def snapshot(self) -> bytes:
        self.calls.append(("snapshot", 0, bytes(self.state)))
        return bytes(self.state)

    def note(self, operation: Operation, records: bytes) -> None:
        operation.record(records)
        self.state += records

    def of(self, kind: str) -> list[tuple[int, bytes]]:
        return [(seq, data) for name, seq, data in self.calls if name == kind]


def pay(ledger: Ledger, notebook: Notebook, transfer_id: int, wallet: int, amount: int) -> int:
    """A domain operation: a payment, and its domain record (the transfer id) if it went through; the ticket."""
    operation = ledger.operation()
    [result] = unpack_transfer_results(operation.create_transfers(pack_transfers([move(transfer_id, wallet, REVENUE,
                                                                                         amount)])))  # fmt: skip
    if result.result == TR.OK:
        notebook.note(operation, transfer_id.to_bytes(16, "little"))
    return operation.finish()


def stored_domain_snapshot(url: str) -> bytes | None:
    """The domain's part of the newest checkpoint (made by a forked child: see checkpoint_fork), None
    without one."""
    store = locked_store(url)
    try:
        checkpoint = store.latest_checkpoint()
        return None if checkpoint is None else bytes(checkpoint.domain)
    finally:
        store.close()


def ids_of(blob: bytes | bytearray, size: int = 128) -> list[int]:
    return [int.from_bytes(blob[offset : offset + 16], "little") for offset in range(0, len(blob), size)]


def run_audit(url: str) -> Verdict:
    journal = open_journal(url)
    try:
        return audit(journal)
    finally:
        journal.close()


# --- the stores ------------------------------------------------------------------------------------------


def commits_with_domain() -> Iterator[Commit]:
    """Commits with domain records and entries, entries alone, domain records alone."""
    transfers_first = 0
    for seq, (count, domain) in enumerate([(2, b"paid 1;paid 2;"), (3, b""), (0, b"tenant 9 renamed"),
                                           (1, bytes(range(256)) * 40)], start=1):  # fmt: skip
        records = b"".join((transfers_first + i).to_bytes(16, "little") + bytes(112) for i in range(count))
        yield Commit.seal(seq=seq, timestamp_last=1_800_000_000_000_000_000 + seq, accounts_first=0,
                          transfers_first=transfers_first, accounts=b"", transfers=records, expired=b"",
                          domain=bytearray(domain))  # as the writer hands it over: its batch's buffer  # fmt: skip
        transfers_first += count


def test_commits_and_checkpoints_with_domain_records_round_trip(store_url: str) -> None:
    written = list(commits_with_domain())
    store = open_store(store_url)
    store.connect()
    try:
        store.append(written[:1])  # one commit (PostgreSQL: an INSERT), then several (a COPY)
        store.append(written[1:])
        read = list(store.commits())
        assert [(c.seq, c.checksum, bytes(c.transfers), bytes(c.domain)) for c in read] == [
            (c.seq, c.checksum, bytes(c.transfers), bytes(c.domain)) for c in written
        ]
        for commit in read:
            commit.verify()
        assert [bytes(row[-1]) for rows in store.commit_rows(1) for row in rows] == [
            bytes(c.domain) for c in written[1:]
        ]

        store.save_checkpoint(Checkpoint.seal(seq=3, timestamp_last=7, accounts=b"", transfer_status=bytes(5),
                                              domain=b"tenants: 9;" * 1000))  # fmt: skip
        checkpoint = store.latest_checkpoint()
        assert checkpoint is not None and checkpoint.domain == b"tenants: 9;" * 1000
        checkpoint.verify()
        store.save_checkpoint(Checkpoint.seal(seq=4, timestamp_last=8, accounts=b"", transfer_status=bytes(6)))
        checkpoint = store.latest_checkpoint()
        assert checkpoint is not None and (checkpoint.seq, checkpoint.domain) == (4, b"")
        checkpoint.verify()
    finally:
        store.close()
    # Nothing is stored for an empty domain; a snapshot is deflated, as the other checkpoint blobs.
    assert [bytes(row[0]) for row in fetch(store_url, "SELECT domain FROM ledger_journal ORDER BY seq")] == [
        bytes(c.domain) for c in written
    ]
    stored = dict(fetch(store_url, "SELECT seq, length(domain) FROM ledger_checkpoints"))
    assert stored[4] == 0 and 0 < stored[3] < 1000


def test_a_journal_written_before_domain_records_is_upgraded_in_place(store_url: str) -> None:
    clock = ManualClock()

    async def write() -> Any:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            await open_books(ledger)
            await day_of_trading(ledger, clock)
            assert await ledger.checkpoint()
            assert await transfers(ledger, move(9000, FUNDING, WALLETS[0], 5)) == [TR.OK]
            state = await snapshot(ledger)
            await crash(ledger)
            return state

    before = run(write())
    downgrade(store_url, 1 if store_url.startswith("sqlite") else 2)  # as a ledger without domain records wrote it
    old_version = fetch(store_url, "SELECT max(version) FROM ledger_schema")[0][0]
    assert old_version == (1 if store_url.startswith("sqlite") else 2)
    assert run_audit(store_url).clean  # the auditor reads the old layout as well

    notebook = Notebook()

    async def upgrade() -> Any:
        async with await Ledger.open(config(store_url), clock=clock, domain=notebook) as ledger:
            assert await snapshot(ledger) == before
            await ledger.until_durable(pay(ledger, notebook, 9001, WALLETS[1], 10))
            assert await ledger.checkpoint()
            # Domain records alone, right after a checkpoint: a commit that moves no engine time.
            operation = ledger.operation()
            notebook.note(operation, b"tenant 1 renamed")
            await ledger.until_durable(operation.finish())
            return await snapshot(ledger)

    after = run(upgrade())
    assert notebook.calls[0] == ("restore", 0, b"")  # the old checkpoint holds no domain snapshot
    assert notebook.of("replay") == []
    assert fetch(store_url, "SELECT max(version) FROM ledger_schema")[0][0] == SCHEMA_VERSION
    commits = stored_commits(store_url)
    for commit in commits:
        commit.verify()
    paid = (9001).to_bytes(16, "little")
    assert [bytes(c.domain) for c in commits] == [b""] * (len(commits) - 2) + [paid, b"tenant 1 renamed"]
    assert (commits[-1].size, commits[-1].timestamp_last) == (16, commits[-2].timestamp_last)
    verdict = run_audit(store_url)
    assert verdict.clean, verdict.problem
    assert (verdict.tally.domain_commits, verdict.tally.domain_bytes) == (2, 32)

    again = Notebook()

    async def reopen() -> None:
        async with await Ledger.open(config(store_url), clock=clock, domain=again) as ledger:
            assert await snapshot(ledger) == after

    run(reopen())
    assert again.state == notebook.state == paid + b"tenant 1 renamed"  # from the checkpoint at close


# --- recovery ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("checkpoint_between", [False, True])
def test_the_domain_is_restored_then_replayed_commit_by_commit(store_url: str, checkpoint_between: bool) -> None:
    clock = ManualClock()
    live = Notebook()
    checkpoint_seq = 0

    async def first() -> Any:
        nonlocal checkpoint_seq
        async with await Ledger.open(config(store_url), clock=clock, domain=live) as ledger:
            await open_books(ledger)
            await fund_wallets(ledger)
            for i in range(8):
                await ledger.until_durable(pay(ledger, live, 100 + i, WALLETS[i % 3], 7))
                await transfers(ledger, move(200 + i, FUNDING, WALLETS[4], 1))  # entries with no domain records
                if checkpoint_between and i == 3:
                    checkpoint_seq = await ledger.checkpoint() or 0  # its snapshot is what the restart restores
            state = await snapshot(ledger)
            await crash(ledger)  # no checkpoint at the end: the rest is replayed
            return state

    before = run(first())
    assert checkpoint_seq > 0 if checkpoint_between else not stored_domain_snapshot(store_url)
    with_domain = [(c.seq, bytes(c.domain)) for c in stored_commits(store_url) if c.domain]
    assert len(with_domain) == 8

    restarted = Notebook()

    async def second() -> Any:
        async with await Ledger.open(config(store_url), clock=clock, domain=restarted) as ledger:
            assert await snapshot(ledger) == before
            assert ledger.recovery.domain_bytes_replayed == sum(len(d) for s, d in with_domain if s > checkpoint_seq)
            await ledger.until_durable(pay(ledger, restarted, 300, WALLETS[5], 3))
            live.state += (300).to_bytes(16, "little")
            return await snapshot(ledger)

    after = run(second())
    snapshot_at_checkpoint = b"".join(d for s, d in with_domain if s <= checkpoint_seq)
    assert restarted.calls[0] == ("restore", 0, snapshot_at_checkpoint)
    assert restarted.of("replay") == [(s, d) for s, d in with_domain if s > checkpoint_seq]
    assert len(restarted.of("replay")) == (4 if checkpoint_between else 8)
    # close() checkpoints: the snapshot taken with the engine's holds every record, and the next start restores
    # it and replays nothing.
    assert stored_domain_snapshot(store_url) == bytes(live.state)
    third = Notebook()

    async def reopen() -> None:
        async with await Ledger.open(config(store_url), clock=clock, domain=third) as ledger:
            assert await snapshot(ledger) == after

    run(reopen())
    assert third.calls[0] == ("restore", 0, bytes(live.state)) and third.of("replay") == []


class Refusing(Notebook):
    def __init__(self, replay_seq: int = 0, restore: bool = False) -> None:
        super().__init__()
        self.replay_seq = replay_seq
        self.refuse_restore = restore

    def restore(self, snapshot: bytes) -> None:
        if self.refuse_restore:
            raise ValueError("unknown snapshot version")
        super().restore(snapshot)

    def replay(self, records: bytes, seq: int) -> None:
        if seq == self.replay_seq:
            raise ValueError("unknown record kind")
        super().replay(records, seq)


def test_a_domain_that_cannot_replay_or_restore_stops_recovery_naming_where(store_url: str) -> None:
    clock = ManualClock()

    async def write(checkpoint: bool) -> None:
        ledger = await Ledger.open(config(store_url), clock=clock, domain=Notebook())
        if checkpoint:
            assert await ledger.checkpoint() is not None
        else:
            await open_books(ledger)
            await fund_wallets(ledger)
            for i in range(3):
                await ledger.until_durable(pay(ledger, Notebook(), 100 + i, WALLETS[i], 5))
        await crash(ledger)

    run(write(checkpoint=False))
    seq = [c.seq for c in stored_commits(store_url) if c.domain][1]
    with pytest.raises(JournalCorrupt, match=f"journal commit seq={seq}: its domain records") as info:
        run(Ledger.open(config(store_url), clock=clock, domain=Refusing(replay_seq=seq)))
    assert "unknown record kind" in str(info.value)

    run(write(checkpoint=True))
    with pytest.raises(JournalCorrupt, match=r"checkpoint at journal seq=\d+: the domain state cannot be restored"):
        run(Ledger.open(config(store_url), clock=clock, domain=Refusing(restore=True)))


class FailingSnapshot(Notebook):
    def snapshot(self) -> bytes:
        raise ValueError("a bug in the domain's snapshot")


def test_a_domain_snapshot_failing_in_its_child_saves_no_checkpoint_and_the_ledger_goes_on(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    domain = FailingSnapshot()

    async def body() -> None:
        async with await Ledger.open(config(store_url), clock=clock, domain=domain) as ledger:
            await open_books(ledger)
            await fund_wallets(ledger)
            assert await ledger.checkpoint() is None  # not saved
            await ledger.until_durable(pay(ledger, domain, 100, WALLETS[0], 5))  # and the ledger goes on
            await crash(ledger)

    run(body())
    assert "not saved: the domain's snapshot failed: the snapshot's process" in caplog.text
    assert not stored_domain_snapshot(store_url)
    again = Notebook()

    async def reopen() -> None:
        async with await Ledger.open(config(store_url), clock=clock, domain=again):
            pass

    run(reopen())
    assert again.state == domain.state  # every record replayed from the journal


def test_a_domain_snapshot_failing_on_the_event_loop_stops_the_ledger(store_url: str) -> None:
    async def body() -> None:
        ledger = await Ledger.open(config(store_url, checkpoint_fork=False), clock=ManualClock(),
                                   domain=FailingSnapshot())  # fmt: skip
        await open_books(ledger)
        assert await ledger.checkpoint() is None
        with pytest.raises(LedgerFailed):
            await transfers(ledger, move(1, FUNDING, WALLETS[0], 1))
        await crash(ledger)

    run(body())


# --- operations --------------------------------------------------------------------------------------------


def test_an_operation_is_applied_at_once_and_journaled_in_one_commit(store_url: str) -> None:
    clock = ManualClock()
    notebook = Notebook()
    applied: list[tuple[str, int]] = []

    async def body() -> Any:
        ledger = await Ledger.open(config(store_url), clock=clock, domain=notebook,
                                   on_apply=lambda name, count, seconds: applied.append((name, count)))  # fmt: skip
        await open_books(ledger)
        assert await transfers(ledger, move(50, FUNDING, WALLETS[0], 100)) == [TR.OK]
        assert await transfers(ledger, move(51, WALLETS[0], REVENUE, 100, TF.PENDING, timeout=1)) == [TR.OK]
        seq_before = ledger.stats().writer.seq_last
        applied.clear()

        operation = ledger.operation()
        assert operation.now() == clock.now
        new = [Account(id=500, ledger=LEDGER, code=20), Account(id=501, ledger=LEDGER, code=20)]
        results = unpack_account_results(operation.create_accounts(pack_accounts(new)))
        assert [r.result for r in results] == [AR.OK, AR.OK]
        notebook.note(operation, b"customer 500;")
        [first] = unpack_transfer_results(operation.create_transfers(pack_transfers([move(60, FUNDING, 500, 1000)])))
        clock.advance(2)  # hold 51 expires as the next engine call begins: after transfer 60, before 61
        assert operation.now() == clock.now
        # Transfer 61 spends what the hold held: it goes through only once the hold has expired.
        [second] = unpack_transfer_results(operation.create_transfers(pack_transfers([move(61, WALLETS[0], 501, 100)])))
        assert (first.result, second.result) == (TR.OK, TR.OK)
        [account] = unpack_accounts(operation.lookup_accounts(pack_ids([500])))
        assert account.credits_posted == 1000  # the operation's own change, before it is journaled
        assert len(operation.lookup_transfers(pack_ids([60, 61, 62]))) == 2 * 128
        notebook.note(operation, b"paid 60, 61;")
        ticket = operation.finish()
        with pytest.raises(RuntimeError, match="finished"):
            operation.record(b"too late")
        assert applied == [("create_accounts", 2), ("create_transfers", 1), ("create_transfers", 1)]
        await ledger.until_durable(ticket)
        assert ledger.stats().writer.ticket_durable >= ticket
        commits = await asyncio.to_thread(lambda: list(ledger.store.commits(seq_before)))
        state = await snapshot(ledger)
        await crash(ledger)
        return commits, state

    commits, before = run(body())
    [commit] = commits  # one append, one commit
    assert ids_of(commit.accounts) == [500, 501] and ids_of(commit.transfers) == [60, 61]
    expired = commit.expired
    assert (ids_of(expired, 24), int.from_bytes(expired[16:24], "little")) == ([51], commit.transfers_first + 1)
    assert commit.domain == b"customer 500;paid 60, 61;"
    # Recovery books the commit as it was applied (the expiry between the two transfers), the domain with it.
    restarted = Notebook()

    async def reopen() -> None:
        async with await Ledger.open(config(store_url), clock=clock, domain=restarted) as ledger:
            assert await snapshot(ledger) == before

    run(reopen())
    assert restarted.state == notebook.state


def test_an_operation_is_refused_as_writes_are(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock, durable_wait_seconds=0.5,
                                           journal_backlog_bytes_max=128 * 5)  # fmt: skip
        await open_books(ledger)
        await fund_wallets(ledger)
        # Overloaded: the backlog is full.
        store.gate.clear()
        waiting = [await pending(transfers(ledger, move(20 + i, FUNDING, WALLETS[i], 1))) for i in range(5)]
        with pytest.raises(LedgerOverloaded, match="journal_backlog_bytes_max"):
            ledger.operation()
        store.gate.set()
        assert [await w for w in waiting] == [[TR.OK]] * 5
        # Unavailable: the store is away.
        store.failing.set()
        with pytest.raises(LedgerUnavailable, match="retry with the same ids"):
            await transfers(ledger, move(30, FUNDING, WALLETS[0], 1))
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            ledger.operation()
        store.failing.clear()
        for _ in range(200):
            if ledger.stats().available:
                break
            await asyncio.sleep(0.02)
        await ledger.until_durable(pay(ledger, Notebook(), 31, WALLETS[0], 1))
        # Failed: after an error it cannot recover from.
        ledger._fail(RuntimeError("a broken invariant (test)"))
        with pytest.raises(LedgerFailed, match="broken invariant"):
            ledger.operation()
        await ledger.close()

    run(body())


def test_an_operation_left_unfinished_stops_the_ledger_and_reaches_no_commit(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> tuple[Any, Any]:
        ledger = await Ledger.open(config(store_url), clock=clock, domain=Notebook())
        await open_books(ledger)
        await fund_wallets(ledger)
        # An operation that only read, dropped at the end of its step: nothing to journal, nothing lost.
        operation = ledger.operation()
        operation.lookup_accounts(pack_ids([WALLETS[0]]))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="step has ended"):
            operation.finish()
        await ledger.until_durable(pay(ledger, Notebook(), 40, WALLETS[0], 1))
        state = await snapshot(ledger)
        # One that applied a transfer and recorded its domain record, then ended its step unfinished (the domain
        # raised, say): the engine holds what the journal never will, so the ledger stops.
        operation = ledger.operation()
        operation.create_transfers(pack_transfers([move(41, WALLETS[0], REVENUE, 1)]))
        operation.record(b"never journaled")
        await asyncio.sleep(0)
        with pytest.raises(LedgerFailed, match="without finish"):
            ledger.operation()
        with pytest.raises(LedgerFailed):
            await transfers(ledger, move(42, WALLETS[0], REVENUE, 1))
        await ledger.close()
        return state, ledger.stats()

    before, stats = run(body())
    assert not stats.available
    commits = stored_commits(store_url)
    assert 41 not in [i for c in commits for i in ids_of(c.transfers)]
    assert all(b"never journaled" not in c.domain for c in commits)

    restarted = Notebook()

    async def reopen() -> None:
        async with await Ledger.open(config(store_url), clock=clock, domain=restarted) as ledger:
            assert await snapshot(ledger) == before

    run(reopen())
    assert restarted.state == (40).to_bytes(16, "little")


def test_a_crash_never_separates_domain_records_from_their_entries(store_url: str) -> None:
    """Operations and plain writes from many callers while the store stalls, commits cut small: every commit
    that holds an operation's transfers holds its domain records, and the reverse; a journal cut after any
    commit recovers a domain that names exactly the transfers it holds."""
    clock = ManualClock()
    notebook = Notebook()

    async def body() -> None:
        ledger, store = await gated_ledger(store_url, clock, commit_bytes_max=384)
        await open_books(ledger)
        await fund_wallets(ledger)

        async def customer(k: int) -> None:
            for i in range(12):
                first = 100_000 + 100 * k + 5 * i
                operation = ledger.operation()
                batch = [move(first + j, WALLETS[k], REVENUE, 1) for j in range(1 + (k + i) % 3)]
                results = unpack_transfer_results(operation.create_transfers(pack_transfers(batch)))
                assert [r.result for r in results] == [TR.OK] * len(batch)
                notebook.note(operation, b"".join(t.id.to_bytes(16, "little") for t in batch))
                await ledger.until_durable(operation.finish())

        async def plain(k: int) -> None:
            for i in range(12):
                assert await transfers(ledger, move(50_000 + 100 * k + i, FUNDING, WALLETS[k], 1)) == [TR.OK]

        async def stalls() -> None:
            for _ in range(6):
                store.gate.clear()
                await asyncio.sleep(0.02)
                store.gate.set()
                await asyncio.sleep(0.01)

        await asyncio.gather(*(customer(k) for k in range(4)), *(plain(k) for k in range(4, 7)), stalls())
        # An operation under way when the process dies: applied and recorded, never handed to the writer.
        operation = ledger.operation()
        operation.create_transfers(pack_transfers([move(99_999, WALLETS[9], REVENUE, 1)]))
        operation.record((99_999).to_bytes(16, "little"))
        await crash(ledger)

    run(body())
    commits = stored_commits(store_url)
    assert len(commits) > 10
    for commit in commits:
        named = ids_of(commit.domain, 16)
        ours = [i for i in ids_of(commit.transfers) if i >= 100_000]
        assert named == ours, f"commit {commit.seq}: domain records {named}, operation transfers {ours}"
    assert 99_999 not in [i for c in commits for i in ids_of(c.transfers) + ids_of(c.domain, 16)]

    cut = commits[len(commits) // 2].seq
    execute(store_url, "DELETE FROM ledger_journal WHERE seq > %s", cut)
    execute(store_url, "DELETE FROM ledger_checkpoints")
    locked_store(store_url).close()
    restarted = Notebook()

    async def reopen() -> None:
        async with await Ledger.open(config(store_url), clock=clock, domain=restarted) as ledger:
            named = ids_of(restarted.state, 16)
            assert named == [i for c in commits if c.seq <= cut for i in ids_of(c.transfers) if i >= 100_000]
            assert len(await ledger.lookup_transfers(pack_ids(named))) == 128 * len(named)

    run(reopen())
