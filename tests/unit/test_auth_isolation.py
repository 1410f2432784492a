"""Tenant isolation on both engines: the engine keeps a transfer, its accounts and its hold in one ledger, and
the scoped ledger refuses other ledgers before applying anything and hides other tenants' records in what
it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from typing import Any

import pytest

from ledger.auth import PermissionDenied, Principal, Role, ScopedLedger, acting_as, scoped, visible_transfers
from ledger.engine import (
    Account,
    AccountFlags,
    Buffer,
    MalformedBatch,
    Transfer,
    TransferFlags,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_account_results,
    unpack_accounts,
    unpack_transfer_results,
    unpack_transfers,
)
from ledger.engine import CreateAccountResult as AR
from ledger.engine import CreateTransferResult as TR
from ledger.journal import AccountFilter, BalancesPage, TransfersPage
from ledger.records.limits import BATCH_EVENTS_MAX
from tests.support import Harness

A, B = 978, 840
FUNDING = {A: 1, B: 11}
WALLET = {A: 2, B: 12}
SEED = {A: 100, B: 200}
B_HOLD = 201
POST, VOID = TransferFlags.POST_PENDING_TRANSFER, TransferFlags.VOID_PENDING_TRANSFER
HISTORY = TransfersPage(transfers=b"\x01" * 128, next=None)
BALANCES = BalancesPage(balances=[], next=AccountFilter(account_id=1))


class EngineLedger:
    """The ledger's calls straight on an engine (no journal): what ScopedLedger wraps."""

    def __init__(self, harness: Harness) -> None:
        self.engine = harness.engine
        self.lookups = 0
        self.submitted = 0
        self.durable = 0
        self.commits: list[bytes] = []

    async def create_accounts(self, events: Buffer) -> bytes:
        return bytes(self.engine.create_accounts(events).results)

    async def create_transfers(self, events: Buffer) -> bytes:
        return bytes(self.engine.create_transfers(events).results)

    async def lookup_accounts(self, ids: Buffer) -> bytes:
        self.lookups += 1
        return bytes(self.engine.lookup_accounts(ids))

    async def lookup_transfers(self, ids: Buffer) -> bytes:
        self.lookups += 1
        return bytes(self.engine.lookup_transfers(ids))

    def submit_transfers(self, events: Buffer) -> asyncio.Future[tuple[bytes, int]]:
        applied: asyncio.Future[tuple[bytes, int]] = asyncio.get_running_loop().create_future()
        self.submitted += 1
        applied.set_result((bytes(self.engine.create_transfers(events).results), self.submitted))
        return applied

    async def until_durable(self, ticket: int) -> None:
        self.durable = max(self.durable, ticket)

    async def subscribe_transfers(self, timestamp_min: int) -> AsyncIterator[bytes]:
        for records in self.commits:
            yield records

    async def get_account_transfers(self, f: AccountFilter, *, caller: Hashable = None) -> TransfersPage:
        return HISTORY

    async def get_account_balances(self, f: AccountFilter, *, caller: Hashable = None) -> BalancesPage:
        return BALANCES


def move(transfer_id: int, debit: int, credit: int, amount: int, ledger: int, **fields: Any) -> Transfer:
    return Transfer(id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger=ledger,
                    code=1, **fields)  # fmt: skip


def open_books(ledger: Harness) -> None:
    """Two tenants: funding and wallet in each ledger, a top-up each, a hold on b's wallet."""
    wallet = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    accounts = [Account(id=FUNDING[x], ledger=x, code=1) for x in (A, B)]
    accounts += [Account(id=WALLET[x], ledger=x, code=2, flags=wallet) for x in (A, B)]
    assert ledger.account_codes(*accounts) == [AR.OK] * 4
    assert (
        ledger.transfer_codes(
            move(SEED[A], FUNDING[A], WALLET[A], 1_000, A),
            move(SEED[B], FUNDING[B], WALLET[B], 1_000, B),
            move(B_HOLD, WALLET[B], FUNDING[B], 300, B, flags=TransferFlags.PENDING),
        )
        == [TR.OK] * 3
    )


def state(ledger: Harness) -> list[Account]:
    return unpack_accounts(ledger.engine.lookup_accounts(pack_ids([*FUNDING.values(), *WALLET.values()])))


def test_the_engine_keeps_a_transfer_its_accounts_and_its_hold_in_one_ledger(ledger: Harness) -> None:
    open_books(ledger)
    before = state(ledger)
    assert ledger.transfer_codes(
        move(30, WALLET[B], WALLET[A], 500, A),
        move(31, WALLET[A], WALLET[B], 500, A),
        move(32, WALLET[B], FUNDING[B], 500, A),
        Transfer(id=33, pending_id=B_HOLD, flags=POST, ledger=A),
        Transfer(id=34, pending_id=B_HOLD, flags=VOID, ledger=A),
        Transfer(id=35, pending_id=B_HOLD, flags=POST, ledger=A, debit_account_id=WALLET[A]),
        Transfer(id=36, pending_id=B_HOLD, flags=POST, ledger=A, credit_account_id=FUNDING[A]),
        Transfer(id=37, pending_id=SEED[B], flags=POST, ledger=A),
    ) == [
        TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
        TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
        TR.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
        TR.PENDING_TRANSFER_NOT_PENDING,
    ]
    assert state(ledger) == before
    # Ledger 0 on a post takes the hold's ledger: that is why a key bound to ledgers may not send it.
    assert ledger.transfer_codes(Transfer(id=38, pending_id=B_HOLD, flags=VOID)) == [TR.OK]


def scoped_to(ledger: Harness, *ledgers: int) -> tuple[ScopedLedger, EngineLedger]:
    inner = EngineLedger(ledger)
    return ScopedLedger(inner, frozenset(ledgers)), inner


def test_other_ledgers_are_refused_before_anything_is_applied(ledger: Harness) -> None:
    open_books(ledger)
    view, _ = scoped_to(ledger, A)
    transfers_count = ledger.engine.stats().transfers_count
    batch = pack_transfers([move(40, FUNDING[A], WALLET[A], 1, A, flags=TransferFlags.LINKED),
                            move(41, FUNDING[B], WALLET[B], 1, B)])  # fmt: skip
    # Refused by the call itself, before a coroutine exists that could be scheduled.
    with pytest.raises(
        PermissionDenied, match=r"^transfers\[1\]\.ledger: ledger 840 is not one of this key's ledgers \(978\)$"
    ):
        view.create_transfers(batch)
    with pytest.raises(PermissionDenied, match=r"^transfers\[0\]\.ledger: 0 \(take the pending transfer's ledger\)"):
        view.create_transfers(pack_transfers([Transfer(id=42, pending_id=B_HOLD, flags=VOID)]))
    with pytest.raises(PermissionDenied, match=r"^accounts\[0\]\.ledger: ledger 840 is not one"):
        view.create_accounts(pack_accounts([Account(id=50, ledger=B, code=1)]))
    with pytest.raises(PermissionDenied, match=r"^accounts\[0\]\.ledger: ledger 0 is not one"):
        view.create_accounts(pack_accounts([Account(id=50, ledger=0, code=1)]))
    with pytest.raises(MalformedBatch, match="transfers: 100 bytes is not a whole number of 128-byte records"):
        view.create_transfers(bytes(100))
    assert ledger.engine.stats().transfers_count == transfers_count
    assert ledger.account(50) is None and ledger.transfer(40) is None
    # A long list of ledgers is shortened in the message.
    many, _ = scoped_to(ledger, *range(1, 21))
    with pytest.raises(PermissionDenied, match=r"this key's ledgers \(1, 2, 3, 4, 5, 6, 7, 8 and 12 more\)$"):
        many.create_accounts(pack_accounts([Account(id=50, ledger=B, code=1)]))


def test_answers_say_nothing_of_another_tenants_records(ledger: Harness) -> None:
    open_books(ledger)
    view, _ = scoped_to(ledger, A)
    sent = [
        move(30, WALLET[B], WALLET[A], 500, A),  # b's account as the debit
        move(31, WALLET[A], WALLET[B], 500, A),  # b's account as the credit
        move(32, WALLET[B], FUNDING[B], 500, A),  # both b's
        Transfer(id=33, pending_id=B_HOLD, flags=POST, ledger=A),
        Transfer(id=35, pending_id=B_HOLD, flags=POST, ledger=A, debit_account_id=WALLET[A]),
        Transfer(id=36, pending_id=B_HOLD, flags=POST, ledger=A, credit_account_id=FUNDING[A]),
        Transfer(id=37, pending_id=SEED[B], flags=POST, ledger=A),
        move(SEED[B], FUNDING[A], WALLET[A], 1_000, A),  # an id b used
        move(B_HOLD, WALLET[A], FUNDING[A], 300, A, flags=TransferFlags.PENDING),
        move(SEED[A], FUNDING[A], WALLET[A], 1_000, A),  # a's own retry: all of it is a's to see
        move(SEED[A], FUNDING[A], WALLET[A], 999, A),
        move(38, 999, WALLET[A], 1, A),  # an account that exists nowhere
        move(39, WALLET[B], 999, 1, A),  # b's account, then one that exists nowhere
        move(40, WALLET[A], 999, 1, A),  # a's account, then one that exists nowhere
    ]
    results = unpack_transfer_results(asyncio.run(view.create_transfers(pack_transfers(sent))))
    seed_a = ledger.transfer(SEED[A])
    assert seed_a is not None
    assert [(r.result, r.timestamp, r.amount) for r in results] == [
        (TR.DEBIT_ACCOUNT_NOT_FOUND, 0, 0),
        (TR.CREDIT_ACCOUNT_NOT_FOUND, 0, 0),
        (TR.DEBIT_ACCOUNT_NOT_FOUND, 0, 0),
        (TR.PENDING_TRANSFER_NOT_FOUND, 0, 0),
        (TR.PENDING_TRANSFER_NOT_FOUND, 0, 0),
        (TR.PENDING_TRANSFER_NOT_FOUND, 0, 0),
        (TR.PENDING_TRANSFER_NOT_FOUND, 0, 0),
        (TR.EXISTS_WITH_DIFFERENT_LEDGER, 0, 0),
        (TR.EXISTS_WITH_DIFFERENT_LEDGER, 0, 0),
        (TR.EXISTS, seed_a.timestamp, 1_000),
        (TR.EXISTS_WITH_DIFFERENT_AMOUNT, seed_a.timestamp, 1_000),
        (TR.DEBIT_ACCOUNT_NOT_FOUND, 0, 0),
        (TR.DEBIT_ACCOUNT_NOT_FOUND, 0, 0),
        (TR.CREDIT_ACCOUNT_NOT_FOUND, 0, 0),
    ]
    known = pack_accounts([Account(id=WALLET[B], ledger=A, code=2), Account(id=WALLET[A], ledger=A, code=9)])
    accounts = unpack_account_results(asyncio.run(view.create_accounts(known)))
    wallet_a = ledger.account(WALLET[A])
    assert wallet_a is not None
    assert [(r.result, r.timestamp) for r in accounts] == [
        (AR.EXISTS_WITH_DIFFERENT_LEDGER, 0),
        (AR.EXISTS_WITH_DIFFERENT_FLAGS, wallet_a.timestamp),
    ]
    # A key that may see both ledgers is told the truth about both.
    both, _ = scoped_to(ledger, A, B)
    results = unpack_transfer_results(
        asyncio.run(both.create_transfers(pack_transfers([move(30, WALLET[B], WALLET[A], 500, A)])))
    )
    assert [r.result for r in results] == [TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER]


def test_a_full_batch_of_answers_about_other_tenants_is_reviewed(engine_class: type[Any]) -> None:
    ledger = Harness.new(engine_class, accounts_max=BATCH_EVENTS_MAX + 10)
    b_accounts = [Account(id=1_000 + i, ledger=B, code=1) for i in range(BATCH_EVENTS_MAX)]
    assert set(ledger.account_codes(*b_accounts)) == {AR.OK}
    assert ledger.account_codes(Account(id=WALLET[A], ledger=A, code=1)) == [AR.OK]
    view, inner = scoped_to(ledger, A)
    sent = [move(10_000 + i, 1_000 + i, WALLET[A], 1, A) for i in range(BATCH_EVENTS_MAX)]
    results = unpack_transfer_results(asyncio.run(view.create_transfers(pack_transfers(sent))))
    assert {r.result for r in results} == {TR.DEBIT_ACCOUNT_NOT_FOUND}
    assert inner.lookups == 2  # 8191 account ids: two lookups within the batch limit


def test_reads_leave_other_ledgers_out(ledger: Harness) -> None:
    open_books(ledger)
    view, _ = scoped_to(ledger, A)

    async def reads() -> tuple[list[int], list[int], TransfersPage, TransfersPage, BalancesPage, BalancesPage]:
        accounts = await view.lookup_accounts(pack_ids([WALLET[B], WALLET[A], FUNDING[B], FUNDING[A]]))
        transfers = await view.lookup_transfers(pack_ids([SEED[B], SEED[A], B_HOLD]))
        return (
            [a.id for a in unpack_accounts(accounts)],
            [t.id for t in unpack_transfers(transfers)],
            await view.get_account_transfers(AccountFilter(account_id=WALLET[A])),
            await view.get_account_transfers(AccountFilter(account_id=WALLET[B])),
            await view.get_account_balances(AccountFilter(account_id=WALLET[A])),
            await view.get_account_balances(AccountFilter(account_id=999)),
        )

    accounts, transfers, own, other, own_balances, unknown = asyncio.run(reads())
    assert accounts == [WALLET[A], FUNDING[A]] and transfers == [SEED[A]]
    assert own is HISTORY and other == TransfersPage(transfers=b"", next=None)
    assert own_balances is BALANCES and unknown == BalancesPage(balances=[], next=None)
    # A filter out of bounds is still refused as such, not answered as an empty page.
    with pytest.raises(ValueError, match="account_id must be between 1 and 2\\*\\*128 - 2"):
        asyncio.run(view.get_account_transfers(AccountFilter(account_id=0)))


def test_scoped_is_the_ledger_itself_without_a_key_or_for_an_admin_key(ledger: Harness) -> None:
    inner = EngineLedger(ledger)
    assert scoped(inner) is inner
    with acting_as(Principal("k", "ops", Role.ADMIN, None)):
        assert scoped(inner) is inner
    with acting_as(Principal("k", "a", Role.READ, frozenset({A}))):
        assert isinstance(scoped(inner), ScopedLedger)


def test_a_feed_sends_each_subscriber_the_transfers_of_its_ledgers(ledger: Harness) -> None:
    open_books(ledger)
    committed = ledger.engine.lookup_transfers(pack_ids([SEED[A], SEED[B], B_HOLD]))
    reader_of_b = Principal("k", "b", Role.READ, frozenset({B}))
    assert [t.id for t in unpack_transfers(visible_transfers(committed, reader_of_b))] == [SEED[B], B_HOLD]
    assert [t.id for t in unpack_transfers(visible_transfers(memoryview(committed), reader_of_b))] == [SEED[B], B_HOLD]
    reader_of_both = Principal("k", "ab", Role.READ, frozenset({A, B}))
    assert visible_transfers(committed, reader_of_both) == bytes(committed)
    assert visible_transfers(committed, Principal("k", "ops", Role.ADMIN, None)) == bytes(committed)
    assert visible_transfers(committed, None) == bytes(committed)
    assert visible_transfers(committed, Principal("k", "c", Role.READ, frozenset({36}))) == b""


def test_a_pipelined_stream_is_checked_and_reviewed_as_a_batch_is(ledger: Harness) -> None:
    open_books(ledger)
    view, inner = scoped_to(ledger, A)

    async def stream() -> list[tuple[bytes, int]]:
        with pytest.raises(PermissionDenied, match=r"^transfers\[0\]\.ledger: ledger 840"):
            view.submit_transfers(pack_transfers([move(60, FUNDING[B], WALLET[B], 1, B)]))
        assert inner.submitted == 0  # refused before anything was submitted
        answers = [
            view.submit_transfers(pack_transfers([move(61, FUNDING[A], WALLET[A], 1, A)])),
            view.submit_transfers(pack_transfers([move(62, WALLET[B], WALLET[A], 1, A)])),
            view.submit_transfers(pack_transfers([move(SEED[B], FUNDING[A], WALLET[A], 1, A)])),
        ]
        done = [await answer for answer in answers]
        await view.until_durable(done[-1][1])
        return done

    done = asyncio.run(stream())
    assert [(unpack_transfer_results(results)[0].result, ticket) for results, ticket in done] == [
        (TR.OK, 1),
        (TR.DEBIT_ACCOUNT_NOT_FOUND, 2),
        (TR.EXISTS_WITH_DIFFERENT_LEDGER, 3),
    ]
    assert unpack_transfer_results(done[2][0])[0].timestamp == 0 and inner.durable == 3


def test_a_scoped_feed_leaves_out_other_ledgers_and_commits_with_none_of_its(ledger: Harness) -> None:
    open_books(ledger)
    view, inner = scoped_to(ledger, A)
    inner.commits = [
        bytes(ledger.engine.lookup_transfers(pack_ids(ids))) for ids in ([SEED[A], SEED[B]], [B_HOLD], [SEED[A]])
    ]

    async def feed() -> list[list[int]]:
        return [[t.id for t in unpack_transfers(records)] async for records in view.subscribe_transfers(0)]

    assert asyncio.run(feed()) == [[SEED[A]], [SEED[A]]]
