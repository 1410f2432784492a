"""Faults against a real ledger process: SIGKILL at random moments, and PostgreSQL restarted under load.

`pytest tests/fault --fault-cycles 200` runs the kill loop 200 times (20 by default, as in CI).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.core import recover
from ledger.engine import Transfer, create_engine, unpack_accounts, unpack_transfers
from ledger.journal import AccountFilter, HistoryIndex, open_store
from tests.fault.harness import FUNDING, REVENUE, WALLETS, Books, Load, ServerProcess, check_after_fault, open_books
from tests.stores import private_postgres, temporary_schema
from tests.support import small_config


@contextmanager
def reporting(server: ServerProcess) -> Iterator[None]:
    """Show the server's log if the test fails; never leave the process behind."""
    try:
        yield
    except BaseException:
        print(server.log()[-5000:])
        raise
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(30)  # reaped here: a process left unreaped fails a later test with a ResourceWarning


def test_a_process_killed_at_random_moments_loses_nothing(store_url: str, tmp_path: Path, fault_cycles: int) -> None:
    server = ServerProcess(store_url, tmp_path)
    load = Load(seed=fault_cycles)
    rng = random.Random(fault_cycles)
    with reporting(server):
        server.start()
        asyncio.run(open_books(server.socket))
        for _ in range(fault_cycles):

            async def until_killed() -> None:
                asyncio.get_running_loop().call_later(rng.uniform(0.02, 0.6), server.kill)
                await load.run(server.socket, seconds=60)

            asyncio.run(until_killed())
            server.start()
            asyncio.run(check_after_fault(server, load.books))
        asyncio.run(load.run(server.socket, seconds=0.3))  # the last unanswered batches get their answers
        asyncio.run(check_after_fault(server, load.books))
        server.stop()
    assert server.starts == fault_cycles + 1
    assert load.books.unanswered >= fault_cycles // 2  # the kills did land in the middle of batches
    check_journal(store_url, load.books)


def test_postgres_restarted_under_load_loses_nothing_and_the_ledger_carries_on(tmp_path: Path) -> None:
    # The database restarted here is a private one: the tests beside this one use the machine's.
    with private_postgres() as postgres, temporary_schema(postgres.dsn, "ledger_test") as url:
        server = ServerProcess(url, tmp_path)
        load = Load(seed=3)

        def stop_postgres_for(seconds: float) -> None:
            """An outage longer than the ledger's durable wait, so callers are told to retry."""
            postgres.stop()
            try:
                time.sleep(seconds)
            finally:
                postgres.start()

        with reporting(server):
            server.start()
            asyncio.run(open_books(server.socket))

            async def outages_in_the_middle() -> None:
                stop = asyncio.Event()
                running = asyncio.create_task(load.run(server.socket, 0, until=stop))
                for outage in (postgres.restart, lambda: stop_postgres_for(3.0)):
                    await asyncio.sleep(1.0)
                    acked_before = len(load.books.acked)
                    await asyncio.to_thread(outage)
                    await asyncio.sleep(2.0)
                    assert len(load.books.acked) > acked_before  # it carried on after the store came back
                stop.set()
                await running

            asyncio.run(outages_in_the_middle())
            assert server.process is not None and server.process.poll() is None  # no restart of the ledger needed
            assert load.books.unavailable > 0  # callers were told to retry while the store was away
            log = server.log()
            assert log.count("journal commit failed") >= 2 and log.count("journal store is back") >= 2
            asyncio.run(load.run(server.socket, seconds=0.5))
            asyncio.run(check_after_fault(server, load.books))
            server.stop()
        assert server.starts == 1
        check_journal(url, load.books)


class _JournalOnly:
    """A store seen without its checkpoints: recovery from the journal alone."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def latest_checkpoint(self) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def check_history(store: Any, journaled: list[Transfer]) -> None:
    """The history index, rebuilt after every kill from its flushed rows and the journal after them,
    holds each account's transfers exactly once and in order."""
    index = HistoryIndex(store, flush_transfers=500, flush_seconds=0.1)
    seq_last = max((c.seq for c in store.commits()), default=0)
    index.start(seq_last)
    try:
        assert index.wait_for(seq_last, 60)
        for account_id in (FUNDING, REVENUE, *WALLETS[:4]):
            got: list[Transfer] = []
            f: AccountFilter | None = AccountFilter(account_id=account_id)
            while f is not None:
                page = index.account_transfers(f)
                got += unpack_transfers(page.transfers)
                f = page.next
            expected = [t for t in journaled if account_id in (t.debit_account_id, t.credit_account_id)]
            assert got == expected, f"history of account {account_id} differs from the journal"
    finally:
        index.stop()


def check_journal(url: str, books: Books) -> None:
    """The state from the checkpoint plus journal equals the state from the journal alone; ids are unique."""
    store = open_store(url)
    store.connect()
    try:
        config = small_config(accounts_max=1_000, transfers_max=2_000_000, pending_transfers_max=100_000)
        from_checkpoint = create_engine(config)
        recover(from_checkpoint, store)
        from_journal = create_engine(config)
        report = recover(from_journal, _JournalOnly(store))  # type: ignore[arg-type]
        assert report.checkpoint_seq == 0
        assert from_checkpoint.export_state() == from_journal.export_state()
        journaled = [t for commit in store.commits() for t in unpack_transfers(commit.transfers)]
        ids = [t.id for t in journaled]
        check_history(store, journaled)
    finally:
        store.close()
    assert len(ids) == len(set(ids)), "a transfer id is journaled twice"
    assert books.acked <= set(ids)
    assert not books.failed & set(ids), "a transfer answered as failed was journaled"
    accounts = unpack_accounts(from_journal.export_state().accounts)
    assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)
    assert sum(a.debits_pending for a in accounts) == sum(a.credits_pending for a in accounts)
