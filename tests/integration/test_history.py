"""History from the store, on both stores: an account's transfers by time range, with filters and
cursors, both orders, and balance history for accounts with the HISTORY flag."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

import pytest

from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import (
    Account,
    AccountFlags,
    CreateTransferResult,
    Transfer,
    TransferFlags,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_accounts,
    unpack_transfer_results,
    unpack_transfers,
)
from ledger.journal import AccountFilter
from ledger.journal._history import RUNS_MERGED
from tests.stores import downgrade, execute
from tests.support import ManualClock

TR = CreateTransferResult
TF = TransferFlags
LEDGER = 978
FUNDING, REVENUE = 1, 2
WALLETS = [100, 101, 102]
HISTORY_WALLET = 100


def config(url: str, **overrides: Any) -> LedgerConfig:
    settings: dict[str, Any] = {
        "store": url,
        "accounts_max": 100,
        "transfers_max": 10_000,
        "pending_transfers_max": 100,
        "verify": True,
        "expire_interval_seconds": 3600.0,
        # Small flushes, so that queries read flushed rows and the in-memory tail together.
        "history_flush_transfers": 40,
        "history_flush_seconds": 0.05,
    }
    settings.update(overrides)
    return LedgerConfig(**settings)


async def books(ledger: Ledger, clock: ManualClock, seed: int = 5) -> list[Transfer]:
    """Accounts and a few hundred transfers of varied codes and user data; the transfers stored."""
    flags = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    await ledger.create_accounts(
        pack_accounts(
            [
                Account(id=FUNDING, ledger=LEDGER, code=1),
                Account(id=REVENUE, ledger=LEDGER, code=2),
                *(
                    Account(
                        id=w, ledger=LEDGER, code=10, flags=flags | (AccountFlags.HISTORY if w == HISTORY_WALLET else 0)
                    )
                    for w in WALLETS
                ),
            ]
        )
    )
    rng = random.Random(seed)
    ids: list[int] = []
    next_id = 1000
    for _ in range(30):
        batch = []
        for _ in range(rng.randint(1, 12)):
            next_id += 1
            wallet = rng.choice(WALLETS)
            kind = rng.random()
            common = {"ledger": LEDGER, "user_data_64": rng.choice([0, 7, 8]), "user_data_32": rng.choice([0, 3])}
            if kind < 0.4:
                t = Transfer(id=next_id, debit_account_id=FUNDING, credit_account_id=wallet, amount=rng.randint(1, 900),
                             code=1, user_data_128=rng.choice([0, 2**100]), **common)  # fmt: skip
            elif kind < 0.85:
                t = Transfer(id=next_id, debit_account_id=wallet, credit_account_id=REVENUE, amount=rng.randint(1, 300),
                             code=2, flags=TF.BALANCING_DEBIT, **common)  # fmt: skip
            else:
                t = Transfer(id=next_id, debit_account_id=wallet, credit_account_id=REVENUE, amount=50, code=3,
                             flags=TF.PENDING, timeout=60, **common)  # fmt: skip
            batch.append(t)
        results = unpack_transfer_results(await ledger.create_transfers(pack_transfers(batch)))
        ids += [t.id for t, r in zip(batch, results, strict=True) if r.result == TR.OK]
        clock.advance(0.01)
        await asyncio.sleep(0.01)
    holds = [i for i in ids if unpack_transfers(await ledger.lookup_transfers(pack_ids([i])))[0].flags & TF.PENDING]
    resolutions = [
        Transfer(
            id=90_000 + n,
            pending_id=hold,
            amount=0,
            flags=TF.POST_PENDING_TRANSFER if n % 2 else TF.VOID_PENDING_TRANSFER,
        )
        for n, hold in enumerate(holds)
    ]
    results = unpack_transfer_results(await ledger.create_transfers(pack_transfers(resolutions)))
    ids += [t.id for t, r in zip(resolutions, results, strict=True) if r.result == TR.OK]
    stored = []
    for start in range(0, len(ids), 8190):
        stored += unpack_transfers(await ledger.lookup_transfers(pack_ids(ids[start : start + 8190])))
    return sorted(stored, key=lambda t: t.timestamp)


def involving(stored: list[Transfer], account_id: int, f: AccountFilter) -> list[Transfer]:
    upper = f.timestamp_max or 2**63 - 1
    chosen = [
        t
        for t in stored
        if f.timestamp_min <= t.timestamp <= upper
        and ((f.debits and t.debit_account_id == account_id) or (f.credits and t.credit_account_id == account_id))
        and (not f.code or t.code == f.code)
        and (not f.user_data_128 or t.user_data_128 == f.user_data_128)
        and (not f.user_data_64 or t.user_data_64 == f.user_data_64)
        and (not f.user_data_32 or t.user_data_32 == f.user_data_32)
    ]
    return chosen[::-1] if f.reversed else chosen


async def all_pages(ledger: Ledger, f: AccountFilter) -> tuple[list[Transfer], int]:
    got: list[Transfer] = []
    pages = 0
    next_filter: AccountFilter | None = f
    while next_filter is not None:
        page = await ledger.get_account_transfers(next_filter)
        got += unpack_transfers(page.transfers)
        pages += 1
        assert len(page.transfers) // 128 <= next_filter.limit
        next_filter = page.next
    return got, pages


FILTERS = [
    {},
    {"reversed": True},
    {"debits": False},
    {"credits": False, "reversed": True},
    {"code": 2},
    {"user_data_64": 7},
    {"user_data_128": 2**100, "user_data_32": 3},
    {"limit": 7},
    {"limit": 5, "reversed": True, "code": 1},
]


def test_account_transfers_by_filter_and_page(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            stored = await books(ledger, clock)
            assert ledger._history.indexed_seq > 0
            for account_id in (*WALLETS, REVENUE, FUNDING):
                for overrides in FILTERS:
                    f = AccountFilter(account_id=account_id, **overrides)
                    got, pages = await all_pages(ledger, f)
                    assert got == involving(stored, account_id, f), (account_id, overrides)
                    if overrides.get("limit"):
                        assert pages >= len(got) // f.limit
            # A time range cut through the middle.
            middle = stored[len(stored) // 3].timestamp, stored[2 * len(stored) // 3].timestamp
            f = AccountFilter(account_id=REVENUE, timestamp_min=middle[0], timestamp_max=middle[1], limit=3)
            got, _ = await all_pages(ledger, f)
            assert got == involving(stored, REVENUE, f) and got

    asyncio.run(body())


def test_a_tail_never_flushed_keeps_few_runs_and_answers_the_same(store_url: str) -> None:
    # Everything stays in memory: the runs of about 30 commits are merged RUNS_MERGED at a time as they come.
    clock = ManualClock()

    async def body() -> None:
        tail_only = config(store_url, history_flush_transfers=1_000_000, history_flush_seconds=3600.0)
        async with await Ledger.open(tail_only, clock=clock) as ledger:
            stored = await books(ledger, clock)
            assert ledger._history.wait_for(ledger._history.durable_seq, 10.0)
            classes = ledger._history._run_classes
            assert len(ledger._history._runs) == len(classes) <= (RUNS_MERGED - 1) * (max(classes) + 1)
            assert max(classes) >= 2, "the runs were merged more than once"
            for account_id in (*WALLETS, REVENUE, FUNDING):
                for overrides in FILTERS:
                    f = AccountFilter(account_id=account_id, **overrides)
                    got, _ = await all_pages(ledger, f)
                    assert got == involving(stored, account_id, f), (account_id, overrides)

    asyncio.run(body())


def test_history_survives_a_restart_and_sees_every_acknowledged_write(store_url: str) -> None:
    clock = ManualClock()

    async def first() -> list[Transfer]:
        async with await Ledger.open(config(store_url, history_flush_seconds=60.0), clock=clock) as ledger:
            return await books(ledger, clock)

    stored = asyncio.run(first())

    async def second() -> None:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            f = AccountFilter(account_id=WALLETS[1])
            got, _ = await all_pages(ledger, f)
            assert got == involving(stored, WALLETS[1], f)
            # Read your writes: what was just acknowledged is in the history at once.
            transfer = Transfer(id=77_777, debit_account_id=FUNDING, credit_account_id=WALLETS[1], amount=5,
                                ledger=LEDGER, code=9)  # fmt: skip
            assert unpack_transfer_results(await ledger.create_transfers(pack_transfers([transfer])))[0].result == TR.OK
            page = await ledger.get_account_transfers(AccountFilter(account_id=WALLETS[1], reversed=True, limit=1))
            assert unpack_transfers(page.transfers)[0].id == 77_777

    asyncio.run(second())


def test_balance_history_of_a_history_account(store_url: str) -> None:
    clock = ManualClock()

    async def body() -> None:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            stored = await books(ledger, clock)
            mine = involving(stored, HISTORY_WALLET, AccountFilter(account_id=HISTORY_WALLET))
            page = await ledger.get_account_balances(AccountFilter(account_id=HISTORY_WALLET))
            assert page.next is None
            assert [b.timestamp for b in page.balances] == [t.timestamp for t in mine]
            wallet = unpack_accounts(await ledger.lookup_accounts(pack_ids([HISTORY_WALLET])))[0]
            last = page.balances[-1]
            assert (last.debits_pending, last.debits_posted, last.credits_pending, last.credits_posted) == (
                wallet.debits_pending, wallet.debits_posted, wallet.credits_pending, wallet.credits_posted,
            )  # fmt: skip
            # Each entry is the previous one moved by that transfer.
            for before, after, t in zip(page.balances, page.balances[1:], mine[1:], strict=False):
                moved = (after.credits_posted - before.credits_posted) - (after.debits_posted - before.debits_posted)
                if not t.flags & (TF.PENDING | TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER):
                    assert moved == (t.amount if t.credit_account_id == HISTORY_WALLET else -t.amount)
            # Paged backwards, a time range, and an account without the flag.
            f = AccountFilter(account_id=HISTORY_WALLET, reversed=True, limit=4)
            back: list[Any] = []
            next_filter: AccountFilter | None = f
            while next_filter is not None:
                part = await ledger.get_account_balances(next_filter)
                back += part.balances
                next_filter = part.next
            assert back == page.balances[::-1]
            ranged = await ledger.get_account_balances(replace(f, timestamp_min=mine[5].timestamp, limit=8190))
            assert ranged.balances == page.balances[5:][::-1]
            none = await ledger.get_account_balances(AccountFilter(account_id=WALLETS[1]))
            assert none.balances == [] and none.next is None

    asyncio.run(body())


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"account_id": 0}, "account_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 8191}, "limit"),
        ({"timestamp_min": 5, "timestamp_max": 4}, "timestamp_max"),
        ({"timestamp_min": 2**63}, "timestamp_min"),
        ({"debits": False, "credits": False}, "debits and credits"),
        ({"code": 70_000}, "code"),
        ({"user_data_32": 2**32}, "user_data_32"),
    ],
)
def test_a_bad_filter_is_refused_naming_the_field(tmp_path: Any, fields: dict[str, Any], named: str) -> None:
    async def body() -> None:
        async with await Ledger.open(config(f"sqlite:///{tmp_path / 'j.sqlite3'}")) as ledger:
            f = AccountFilter(**{"account_id": 1, **fields})
            with pytest.raises(ValueError, match=named):
                await ledger.get_account_transfers(f)
            with pytest.raises(ValueError, match=named):
                await ledger.get_account_balances(f)

    asyncio.run(body())


def downgrade_to_version_1(url: str) -> None:
    """Rewrite the journal as schema version 1 left it: raw transfer records, no block index, no checkpoint."""
    downgrade(url, 1)
    execute(url, "DELETE FROM ledger_checkpoints")


def test_a_journal_of_schema_version_1_recovers_and_serves_history_after_the_upgrade() -> None:
    """Rows written before transfers were stored in blocks hold raw records; after the upgrade they replay
    and answer history queries as before, beside the new rows."""
    from tests.stores import postgres_schema

    clock = ManualClock()
    with postgres_schema() as url:

        async def first() -> list[Transfer]:
            async with await Ledger.open(config(url), clock=clock) as ledger:
                return await books(ledger, clock)

        stored = asyncio.run(first())
        downgrade_to_version_1(url)

        async def second() -> None:
            async with await Ledger.open(config(url), clock=clock) as ledger:
                assert ledger.recovery.checkpoint_seq == 0 and ledger.recovery.transfers_replayed == len(stored)
                more = Transfer(id=88_888, debit_account_id=FUNDING, credit_account_id=WALLETS[2], amount=3,
                                ledger=LEDGER, code=4)  # fmt: skip
                results = unpack_transfer_results(await ledger.create_transfers(pack_transfers([more])))
                assert results[0].result == TR.OK
                looked_up = unpack_transfers(await ledger.lookup_transfers(pack_ids([more.id])))
                everything = sorted([*stored, *looked_up], key=lambda t: t.timestamp)
                for account_id in (*WALLETS, REVENUE, FUNDING):
                    for overrides in FILTERS[:2]:
                        f = AccountFilter(account_id=account_id, **overrides)
                        got, _ = await all_pages(ledger, f)
                        assert got == involving(everything, account_id, f), (account_id, overrides)

        asyncio.run(second())


def test_the_store_reads_records_by_ordinal_in_runs_across_commits_and_leaves_out_the_missing(store_url: str) -> None:
    """Records come back by ordinal whatever the order asked, in runs inside a commit, across commits, with
    commits holding no transfers between them; ordinals past the journal are left out."""
    from ledger.journal import Commit, open_store

    def records(first: int, count: int) -> bytes:
        return b"".join((first + i).to_bytes(16, "little") + bytes(112) for i in range(count))

    store = open_store(store_url)
    store.connect()
    try:
        sizes = [5, 0, 300, 1, 70]  # transfers per commit; the second holds none
        first = 0
        for seq, size in enumerate(sizes, start=1):
            commit = Commit.seal(
                seq=seq, timestamp_last=seq, accounts_first=0, transfers_first=first,
                accounts=b"" if size else bytes(128), transfers=records(first, size), expired=b"",
            )  # fmt: skip
            store.append([commit])
            first += size
        total = first
        wanted = [375, 0, 1, 2, 4, 5, 6, 7, 200, 199, 198, 304, 305, 306, 376, 10_000, 3, 305]
        found = store.read_transfers(wanted)
        assert set(found) == {o for o in wanted if o < total}
        for ordinal, record in found.items():
            assert int.from_bytes(record[:16], "little") == ordinal and len(record) == 128
        assert store.read_transfers([]) == {}
        assert set(store.read_transfers(list(range(total)))) == set(range(total))
    finally:
        store.close()


def test_a_history_flush_written_twice_is_stored_once(store_url: str) -> None:
    """A flush repeated after its acknowledgement was lost finds its position stored and writes nothing twice;
    the next flush adds its rows beside."""
    from ledger.engine import Transfer, pack_transfers
    from ledger.journal import open_store
    from ledger.journal._postings import postings
    from ledger.journal._store import BALANCES_TABLE, TRANSFERS_TABLE, HistoryRow

    big_id = 5 << 64 | (2**64 - 1)

    def run(*moves: tuple[int, int, int], first: int) -> bytes:
        """The sorted postings of transfers (debit, credit, timestamp) from journal ordinal `first`."""
        transfers = [Transfer(id=i + 1, debit_account_id=debit, credit_account_id=credit, amount=1, ledger=1, code=1,
                              timestamp=timestamp) for i, (debit, credit, timestamp) in enumerate(moves)]  # fmt: skip
        return postings.sort_postings(pack_transfers(transfers), first)

    store = open_store(store_url)
    store.connect()
    try:
        first = run((7, 8, 100), (big_id, 7, 200), first=0)
        balances = [HistoryRow(7, 0, 100, 100, 1, bytes(40))]
        store.write_history(first, balances, 3)
        store.write_history(first, balances, 3)  # the retry
        assert store.history_position() == 3
        store.write_history(run((8, 7, 300), first=2), [], 5)
        assert store.history_position() == 5
        rows = store.history_rows(TRANSFERS_TABLE, 7, 0, 2**63 - 1, False)
        assert [(r.timestamp_first, r.timestamp_last, r.entries_count) for r in rows] == [(100, 200, 2), (300, 300, 1)]
        assert rows[0].entries == (100).to_bytes(8, "little") + (200).to_bytes(8, "little") + (0 << 1).to_bytes(
            8, "little"
        ) + (1 << 1 | 1).to_bytes(8, "little")  # debited by ordinal 0, credited by ordinal 1
        big = store.history_rows(TRANSFERS_TABLE, big_id, 0, 2**63 - 1, False)
        assert [(r.account_lo, r.account_hi, r.entries_count) for r in big] == [(2**64 - 1, 5, 1)]
        assert len(store.history_rows(BALANCES_TABLE, 7, 0, 2**63 - 1, False)) == 1
    finally:
        store.close()
