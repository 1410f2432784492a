"""Behaviour of the money state machine, on both engines.

Linked chains, idempotency, holds (post, void, expiry), balancing and closing
transfers, timestamps, refused batches, and moving state between engines
(checkpoints and journal replay).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ledger.engine import (
    Account,
    AccountFlags,
    BatchTooLarge,
    ClockExhausted,
    CreateAccountResult,
    CreateTransferResult,
    MalformedBatch,
    ReferenceEngine,
    StateMismatch,
    Transfer,
    TransferFlags,
    TransfersApplied,
    TransferStatus,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_account_balances,
    unpack_account_results,
    unpack_ids,
    unpack_transfer_results,
)
from ledger.records.limits import BATCH_EVENTS_MAX, TIMESTAMP_MAX
from tests.support import ENGINE_CLASSES, SECOND, Harness, ManualClock, small_config

AR = CreateAccountResult
TR = CreateTransferResult
AF = AccountFlags
TF = TransferFlags
TS = TransferStatus

LEDGER = 1
CODE = 10

FUNDING = 1  # no balance limits: where money comes from
WALLET = 2  # a customer wallet: DEBITS_MUST_NOT_EXCEED_CREDITS
REVENUE = 3  # the merchant's revenue
LIABILITY = 4  # CREDITS_MUST_NOT_EXCEED_DEBITS
ESCROW = 5  # no limits
ACCOUNT_IDS = [FUNDING, WALLET, REVENUE, LIABILITY, ESCROW]


# --- helpers -----------------------------------------------------------------------------


def accounts() -> list[Account]:
    return [
        Account(id=FUNDING, ledger=LEDGER, code=CODE),
        Account(id=WALLET, ledger=LEDGER, code=CODE, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
        Account(id=REVENUE, ledger=LEDGER, code=CODE),
        Account(id=LIABILITY, ledger=LEDGER, code=CODE, flags=AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
        Account(id=ESCROW, ledger=LEDGER, code=CODE),
    ]


def open_accounts(h: Harness) -> None:
    """Ledger 1 with a funding account, a wallet, a revenue account, a liability and an escrow account."""
    assert h.account_codes(*accounts()) == [AR.OK] * len(ACCOUNT_IDS)


def transfer(
    transfer_id: int, debit: int = FUNDING, credit: int = REVENUE, amount: int = 10, **fields: Any
) -> Transfer:
    return Transfer(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger=LEDGER,
        code=CODE,
        **fields,
    )


def hold(
    transfer_id: int, debit: int = FUNDING, credit: int = REVENUE, amount: int = 10, flags: int = 0, **fields: Any
) -> Transfer:
    return transfer(transfer_id, debit, credit, amount, flags=TF.PENDING | flags, **fields)


def post(transfer_id: int, pending_id: int, amount: int = 0, flags: int = 0, **fields: Any) -> Transfer:
    """Post a hold: in full with amount 0, else that much (the rest is released)."""
    return Transfer(
        id=transfer_id, pending_id=pending_id, amount=amount, flags=TF.POST_PENDING_TRANSFER | flags, **fields
    )


def void(transfer_id: int, pending_id: int, flags: int = 0, **fields: Any) -> Transfer:
    return Transfer(id=transfer_id, pending_id=pending_id, flags=TF.VOID_PENDING_TRANSFER | flags, **fields)


def fund(h: Harness, account_id: int, amount: int, transfer_id: int = 1) -> None:
    """Move `amount` from the funding account into `account_id`."""
    assert h.transfer_codes(transfer(transfer_id, FUNDING, account_id, amount)) == [TR.OK]


def wallet_with(h: Harness, amount: int) -> None:
    open_accounts(h)
    if amount:
        fund(h, WALLET, amount)


@dataclass(frozen=True)
class Balances:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0


def balances(h: Harness, account_id: int) -> Balances:
    found = h.account(account_id)
    assert found is not None, account_id
    return Balances(found.debits_pending, found.debits_posted, found.credits_pending, found.credits_posted)


def all_balances(h: Harness) -> dict[int, Balances]:
    return {i: balances(h, i) for i in ACCOUNT_IDS}


def codes(results: list[Any]) -> list[int]:
    return [r.result for r in results]


def status(h: Harness, transfer_id: int) -> TS:
    return TS(h.engine.transfer_status(transfer_id))


def flags_of(h: Harness, account_id: int) -> int:
    found = h.account(account_id)
    assert found is not None
    return found.flags


def other_engine_class(engine_class: type[Any]) -> type[Any]:
    """The other implementation (the same one when only the reference engine is built)."""
    others = [cls for cls in ENGINE_CLASSES.values() if cls is not engine_class]
    return others[0] if others else engine_class


# --- linked chains ---------------------------------------------------------------------


def test_chain_broken_in_the_middle_is_all_or_nothing(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    before = all_balances(ledger)
    results = ledger.create_transfers(
        transfer(10, WALLET, REVENUE, 30, flags=TF.LINKED),  # applies, then is rolled back
        hold(11, FUNDING, ESCROW, 5, flags=TF.LINKED, timeout=1),  # a hold that must never expire
        transfer(12, WALLET, REVENUE, 80, flags=TF.LINKED),  # 30 + 80 > 100: breaks the chain
        transfer(13, REVENUE, FUNDING, 1),  # the end of the chain
        transfer(14, FUNDING, REVENUE, 7),  # after the chain: applies
    )
    assert codes(results) == [
        TR.LINKED_EVENT_FAILED,
        TR.LINKED_EVENT_FAILED,
        TR.EXCEEDS_CREDITS,
        TR.LINKED_EVENT_FAILED,
        TR.OK,
    ]
    assert [(r.timestamp, r.amount) for r in results[:4]] == [(0, 0)] * 4
    assert results[4].amount == 7

    expected = dict(before)
    expected[FUNDING] = replace(before[FUNDING], debits_posted=before[FUNDING].debits_posted + 7)
    expected[REVENUE] = replace(before[REVENUE], credits_posted=before[REVENUE].credits_posted + 7)
    assert all_balances(ledger) == expected
    assert [ledger.transfer(i) for i in (10, 11, 12, 13)] == [None] * 4
    assert ledger.transfer(14) is not None
    assert status(ledger, 11) is TS.NONE
    assert ledger.engine.stats().pending_transfers_count == 0

    # The rolled-back hold left nothing behind: no expiry, and its id is free again.
    ledger.clock.advance(10)
    assert ledger.expire() == []
    assert ledger.transfer_codes(transfer(10, WALLET, REVENUE, 30)) == [TR.OK]


def test_chain_left_open_at_batch_end_fails(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    before = all_balances(ledger)
    results = ledger.create_transfers(
        transfer(10, FUNDING, REVENUE, 5),
        transfer(11, WALLET, REVENUE, 1, flags=TF.LINKED),
        transfer(12, WALLET, REVENUE, 2, flags=TF.LINKED),
    )
    assert codes(results) == [TR.OK, TR.LINKED_EVENT_FAILED, TR.LINKED_EVENT_CHAIN_OPEN]
    assert ledger.transfer(11) is None and ledger.transfer(12) is None
    assert balances(ledger, WALLET) == before[WALLET]
    assert balances(ledger, REVENUE).credits_posted == before[REVENUE].credits_posted + 5


def test_single_linked_event_is_an_open_chain(ledger: Harness) -> None:
    open_accounts(ledger)
    assert ledger.transfer_codes(transfer(10, flags=TF.LINKED)) == [TR.LINKED_EVENT_CHAIN_OPEN]
    assert ledger.transfer(10) is None


def test_retried_chain_reports_exists_for_every_event(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    chain = (
        transfer(10, WALLET, REVENUE, 30, flags=TF.LINKED),
        hold(11, WALLET, REVENUE, 20, flags=TF.LINKED),
        transfer(12, FUNDING, WALLET, 5),
    )
    first = ledger.create_transfers(*chain)
    assert codes(first) == [TR.OK] * 3
    after_first = all_balances(ledger)
    count = ledger.engine.stats().transfers_count

    ledger.clock.advance(5)
    again = ledger.create_transfers(*chain)
    assert codes(again) == [TR.EXISTS] * 3
    assert [(r.timestamp, r.amount) for r in again] == [(r.timestamp, r.amount) for r in first]
    assert all_balances(ledger) == after_first
    assert ledger.engine.stats().transfers_count == count


def test_retried_chain_with_a_changed_event_fails_as_a_whole(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    chain = [transfer(10, WALLET, REVENUE, 30, flags=TF.LINKED), transfer(11, FUNDING, WALLET, 5)]
    assert ledger.transfer_codes(*chain) == [TR.OK, TR.OK]
    after_first = all_balances(ledger)
    changed = ledger.transfer_codes(chain[0], replace(chain[1], amount=6))
    # The first event is not a retry of a committed chain: it fails with its own code.
    assert changed == [TR.EXISTS, TR.LINKED_EVENT_FAILED]
    assert all_balances(ledger) == after_first


def test_account_chain_is_all_or_nothing(ledger: Harness) -> None:
    results = ledger.create_accounts(
        Account(id=10, ledger=LEDGER, code=CODE, flags=AF.LINKED),
        Account(id=11, ledger=LEDGER, code=CODE, flags=AF.LINKED),
        Account(id=12, ledger=0, code=CODE),
        Account(id=13, ledger=LEDGER, code=CODE),
    )
    assert codes(results) == [AR.LINKED_EVENT_FAILED, AR.LINKED_EVENT_FAILED, AR.LEDGER_MUST_NOT_BE_ZERO, AR.OK]
    assert [ledger.account(i) is None for i in (10, 11, 12, 13)] == [True, True, True, False]
    assert ledger.engine.stats().accounts_count == 1
    # The ids of the rolled-back accounts are free again.
    assert ledger.account_codes(Account(id=10, ledger=LEDGER, code=CODE)) == [AR.OK]


def test_account_chain_left_open_fails(ledger: Harness) -> None:
    results = ledger.create_accounts(
        Account(id=9, ledger=LEDGER, code=CODE),
        Account(id=10, ledger=LEDGER, code=CODE, flags=AF.LINKED),
        Account(id=11, ledger=LEDGER, code=CODE, flags=AF.LINKED),
    )
    assert codes(results) == [AR.OK, AR.LINKED_EVENT_FAILED, AR.LINKED_EVENT_CHAIN_OPEN]
    assert ledger.account(9) is not None
    assert ledger.account(10) is None and ledger.account(11) is None


def test_retried_account_chain_reports_exists_for_every_event(ledger: Harness) -> None:
    chain = [
        Account(id=10, ledger=LEDGER, code=CODE, flags=AF.LINKED),
        Account(id=11, ledger=LEDGER, code=CODE, flags=AF.LINKED),
        Account(id=12, ledger=LEDGER, code=CODE),
    ]
    first = ledger.create_accounts(*chain)
    assert codes(first) == [AR.OK] * 3
    ledger.clock.advance(1)
    again = ledger.create_accounts(*chain)
    assert codes(again) == [AR.EXISTS] * 3
    # Every EXISTS names the existing account's timestamp, as for a single retried account.
    assert [r.timestamp for r in again] == [r.timestamp for r in first]
    assert ledger.engine.stats().accounts_count == 3


# --- idempotency ---------------------------------------------------------------------------


def test_repeated_transfer_in_the_same_batch_moves_money_once(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    before = all_balances(ledger)
    payment = transfer(10, WALLET, REVENUE, 40)
    first, repeat = ledger.create_transfers(payment, payment)
    assert (first.result, repeat.result) == (TR.OK, TR.EXISTS)
    assert (repeat.timestamp, repeat.amount) == (first.timestamp, 40)
    assert balances(ledger, WALLET).debits_posted == before[WALLET].debits_posted + 40
    assert balances(ledger, REVENUE).credits_posted == before[REVENUE].credits_posted + 40


def test_repeated_transfer_in_a_later_batch_moves_nothing(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    payment = transfer(10, WALLET, REVENUE, 40)
    [first] = ledger.create_transfers(payment)
    stored = ledger.transfer(10)
    after_first = all_balances(ledger)
    ledger.clock.advance(60)
    [repeat] = ledger.create_transfers(payment)
    assert (repeat.result, repeat.timestamp, repeat.amount) == (TR.EXISTS, first.timestamp, 40)
    assert all_balances(ledger) == after_first
    assert ledger.transfer(10) == stored


ORIGINAL = transfer(10, FUNDING, WALLET, 100, user_data_128=2**70 + 1, user_data_64=64, user_data_32=32)
TRANSFER_CHANGES: dict[TR, dict[str, int]] = {
    TR.EXISTS_WITH_DIFFERENT_FLAGS: {"flags": TF.PENDING},
    TR.EXISTS_WITH_DIFFERENT_PENDING_ID: {"pending_id": 77},
    TR.EXISTS_WITH_DIFFERENT_TIMEOUT: {"timeout": 30},
    TR.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID: {"debit_account_id": ESCROW},
    TR.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID: {"credit_account_id": ESCROW},
    TR.EXISTS_WITH_DIFFERENT_AMOUNT: {"amount": 99},
    TR.EXISTS_WITH_DIFFERENT_USER_DATA_128: {"user_data_128": 2**70},
    TR.EXISTS_WITH_DIFFERENT_USER_DATA_64: {"user_data_64": 0},
    TR.EXISTS_WITH_DIFFERENT_USER_DATA_32: {"user_data_32": 0},
    TR.EXISTS_WITH_DIFFERENT_LEDGER: {"ledger": LEDGER + 1},
    TR.EXISTS_WITH_DIFFERENT_CODE: {"code": CODE + 1},
}


def test_transfer_changes_cover_every_exists_with_different_code() -> None:
    assert set(TRANSFER_CHANGES) == {c for c in TR if c.name.startswith("EXISTS_WITH_DIFFERENT_")}


@pytest.mark.parametrize("code", list(TRANSFER_CHANGES), ids=lambda c: c.name)
def test_transfer_exists_with_different_field(ledger: Harness, code: TR) -> None:
    open_accounts(ledger)
    [original] = ledger.create_transfers(ORIGINAL)
    assert original.result == TR.OK
    after_first = all_balances(ledger)
    ledger.clock.advance(1)
    [result] = ledger.create_transfers(replace(ORIGINAL, **TRANSFER_CHANGES[code]))
    assert (result.result, result.timestamp, result.amount) == (code, original.timestamp, ORIGINAL.amount)
    assert all_balances(ledger) == after_first
    assert ledger.transfer(ORIGINAL.id) == replace(ORIGINAL, timestamp=original.timestamp)


def test_changes_are_reported_in_precedence_order(ledger: Harness) -> None:
    open_accounts(ledger)
    assert ledger.transfer_codes(ORIGINAL) == [TR.OK]
    everything = replace(ORIGINAL, amount=1, code=CODE + 1, user_data_32=0)
    assert ledger.transfer_codes(everything) == [TR.EXISTS_WITH_DIFFERENT_AMOUNT]


EXISTING_ACCOUNT = Account(
    id=50, ledger=LEDGER, code=CODE, flags=AF.HISTORY, user_data_128=2**80 + 1, user_data_64=64, user_data_32=32
)
ACCOUNT_CHANGES: dict[AR, dict[str, int]] = {
    AR.EXISTS_WITH_DIFFERENT_FLAGS: {"flags": AF.DEBITS_MUST_NOT_EXCEED_CREDITS},
    AR.EXISTS_WITH_DIFFERENT_USER_DATA_128: {"user_data_128": 1},
    AR.EXISTS_WITH_DIFFERENT_USER_DATA_64: {"user_data_64": 1},
    AR.EXISTS_WITH_DIFFERENT_USER_DATA_32: {"user_data_32": 1},
    AR.EXISTS_WITH_DIFFERENT_LEDGER: {"ledger": LEDGER + 1},
    AR.EXISTS_WITH_DIFFERENT_CODE: {"code": CODE + 1},
}


def test_account_changes_cover_every_exists_with_different_code() -> None:
    assert set(ACCOUNT_CHANGES) == {c for c in AR if c.name.startswith("EXISTS_WITH_DIFFERENT_")}


@pytest.mark.parametrize("code", list(ACCOUNT_CHANGES), ids=lambda c: c.name)
def test_account_exists_with_different_field(ledger: Harness, code: AR) -> None:
    [original] = ledger.create_accounts(EXISTING_ACCOUNT)
    assert original.result == AR.OK
    ledger.clock.advance(1)
    [result] = ledger.create_accounts(replace(EXISTING_ACCOUNT, **ACCOUNT_CHANGES[code]))
    assert (result.result, result.timestamp) == (code, original.timestamp)
    assert ledger.account(EXISTING_ACCOUNT.id) == replace(EXISTING_ACCOUNT, timestamp=original.timestamp)
    assert ledger.engine.stats().accounts_count == 1


def test_retried_post_may_leave_the_inherited_fields_zero(ledger: Harness) -> None:
    open_accounts(ledger)
    assert ledger.transfer_codes(hold(10, amount=50)) == [TR.OK]
    [posted] = ledger.create_transfers(post(11, 10))
    after = all_balances(ledger)
    retried = post(11, 10)
    spelled_out = post(11, 10, amount=50, debit_account_id=FUNDING, credit_account_id=REVENUE, ledger=LEDGER, code=CODE)
    for request in (retried, spelled_out):
        [again] = ledger.create_transfers(request)
        assert (again.result, again.timestamp, again.amount) == (TR.EXISTS, posted.timestamp, 50)
    assert ledger.transfer_codes(post(11, 10, amount=49)) == [TR.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert all_balances(ledger) == after


def test_retried_balancing_transfer_compares_the_most_to_move(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    request = transfer(10, WALLET, REVENUE, 100, flags=TF.BALANCING_DEBIT)
    [first] = ledger.create_transfers(request)
    assert (first.result, first.amount) == (TR.OK, 30)
    # The stored transfer moved 30 of at most 100: asking again for at most 30..100 is the same request.
    for most in (100, 30, 1000):
        [again] = ledger.create_transfers(replace(request, amount=most))
        assert (again.result, again.timestamp, again.amount) == (TR.EXISTS, first.timestamp, 30)
    assert ledger.transfer_codes(replace(request, amount=29)) == [TR.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert balances(ledger, WALLET) == Balances(debits_posted=30, credits_posted=30)


# --- pending transfers (holds) ----------------------------------------------------------------


def test_hold_reserves_the_amount(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    [held] = ledger.create_transfers(hold(10, WALLET, REVENUE, 40))
    assert (held.result, held.amount) == (TR.OK, 40)
    assert balances(ledger, WALLET) == Balances(debits_pending=40, credits_posted=100)
    assert balances(ledger, REVENUE) == Balances(credits_pending=40)
    assert status(ledger, 10) is TS.PENDING
    assert ledger.engine.stats().pending_transfers_count == 1
    # The reserved money cannot be spent twice.
    assert ledger.transfer_codes(transfer(11, WALLET, REVENUE, 61)) == [TR.EXCEEDS_CREDITS]
    assert ledger.transfer_codes(transfer(12, WALLET, REVENUE, 60)) == [TR.OK]


def test_post_in_full(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 40, user_data_64=7)) == [TR.OK]
    [posted] = ledger.create_transfers(post(11, 10))
    assert (posted.result, posted.amount) == (TR.OK, 40)
    # The stored post names the hold's accounts, ledger and code, and the amount moved.
    assert ledger.transfer(11) == Transfer(
        id=11,
        debit_account_id=WALLET,
        credit_account_id=REVENUE,
        amount=40,
        pending_id=10,
        ledger=LEDGER,
        code=CODE,
        flags=TF.POST_PENDING_TRANSFER,
        timestamp=posted.timestamp,
    )
    assert balances(ledger, WALLET) == Balances(debits_posted=40, credits_posted=100)
    assert balances(ledger, REVENUE) == Balances(credits_posted=40)
    assert status(ledger, 10) is TS.POSTED
    assert status(ledger, 11) is TS.NONE
    assert ledger.engine.stats().pending_transfers_count == 0


def test_post_a_smaller_amount_releases_the_rest(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 40)) == [TR.OK]
    [posted] = ledger.create_transfers(post(11, 10, amount=15))
    assert (posted.result, posted.amount) == (TR.OK, 15)
    stored = ledger.transfer(11)
    assert stored is not None and stored.amount == 15
    assert balances(ledger, WALLET) == Balances(debits_posted=15, credits_posted=100)
    assert balances(ledger, REVENUE) == Balances(credits_posted=15)
    assert status(ledger, 10) is TS.POSTED


def test_post_more_than_held_is_refused(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 40)) == [TR.OK]
    assert ledger.transfer_codes(post(11, 10, amount=41)) == [TR.EXCEEDS_PENDING_TRANSFER_AMOUNT]
    assert balances(ledger, WALLET) == Balances(debits_pending=40, credits_posted=100)
    assert status(ledger, 10) is TS.PENDING


def test_void_releases_the_hold(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 40)) == [TR.OK]
    [voided] = ledger.create_transfers(void(11, 10))
    assert (voided.result, voided.amount) == (TR.OK, 40)
    stored = ledger.transfer(11)
    assert stored is not None
    assert (stored.debit_account_id, stored.credit_account_id, stored.amount) == (WALLET, REVENUE, 40)
    assert balances(ledger, WALLET) == Balances(credits_posted=100)
    assert balances(ledger, REVENUE) == Balances()
    assert status(ledger, 10) is TS.VOIDED
    assert ledger.engine.stats().pending_transfers_count == 0


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        ("post", "post", TR.PENDING_TRANSFER_ALREADY_POSTED),
        ("post", "void", TR.PENDING_TRANSFER_ALREADY_POSTED),
        ("void", "void", TR.PENDING_TRANSFER_ALREADY_VOIDED),
        ("void", "post", TR.PENDING_TRANSFER_ALREADY_VOIDED),
    ],
)
def test_a_hold_resolves_once(ledger: Harness, first: str, second: str, code: TR) -> None:
    wallet_with(ledger, 100)
    resolve = {"post": post, "void": void}
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 40)) == [TR.OK]
    assert ledger.transfer_codes(resolve[first](11, 10)) == [TR.OK]
    after = all_balances(ledger)
    [result] = ledger.create_transfers(resolve[second](12, 10))
    assert (result.result, result.timestamp, result.amount) == (code, 0, 0)
    assert ledger.transfer(12) is None
    assert all_balances(ledger) == after


def created_hold(h: Harness, request: Transfer) -> Transfer:
    assert h.transfer_codes(request) == [TR.OK]
    stored = h.transfer(request.id)
    assert stored is not None
    return stored


def test_hold_is_still_postable_just_before_it_expires(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    held = created_hold(ledger, hold(10, WALLET, REVENUE, 40, timeout=5))
    ledger.clock.now = held.timestamp + 5 * SECOND - 1  # 4.999999999 s later
    applied = ledger.engine.create_transfers(pack_transfers([post(11, 10)]))
    assert applied.expired == b""
    [posted] = unpack_transfer_results(applied.results)
    assert (posted.result, posted.amount) == (TR.OK, 40)
    assert balances(ledger, WALLET) == Balances(debits_posted=40, credits_posted=100)


def test_hold_expires_at_exactly_its_timeout(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    held = created_hold(ledger, hold(10, WALLET, REVENUE, 40, timeout=5))
    ledger.clock.now = held.timestamp + 5 * SECOND
    assert ledger.expire() == [10]
    assert balances(ledger, WALLET) == Balances(credits_posted=100)
    assert balances(ledger, REVENUE) == Balances()
    assert status(ledger, 10) is TS.EXPIRED
    assert ledger.engine.stats().pending_transfers_count == 0
    assert ledger.expire() == []  # once
    for request in (post(11, 10), void(12, 10)):
        [result] = ledger.create_transfers(request)
        assert (result.result, result.amount) == (TR.PENDING_TRANSFER_EXPIRED, 0)
    assert ledger.transfer(11) is None and ledger.transfer(12) is None


def test_expiry_runs_at_the_start_of_a_transfer_batch(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    held = created_hold(ledger, hold(10, WALLET, REVENUE, 40, timeout=1))
    ledger.clock.now = held.timestamp + 1 * SECOND
    applied = ledger.engine.create_transfers(pack_transfers([post(11, 10)]))
    assert unpack_ids(applied.expired) == [10]
    assert applied.timestamp_first == held.timestamp + 1 * SECOND
    assert codes(unpack_transfer_results(applied.results)) == [TR.PENDING_TRANSFER_EXPIRED]
    assert balances(ledger, WALLET) == Balances(credits_posted=100)
    assert status(ledger, 10) is TS.EXPIRED


def test_holds_expire_in_order_and_without_timeout_never(ledger: Harness) -> None:
    open_accounts(ledger)
    results = ledger.create_transfers(
        hold(10, timeout=3), hold(11, timeout=1), hold(12, timeout=0), hold(13, timeout=1)
    )
    assert codes(results) == [TR.OK] * 4
    ledger.clock.now = results[3].timestamp + 1 * SECOND
    assert ledger.expire() == [11, 13]
    ledger.clock.advance(365 * 24 * 3600)
    assert ledger.expire() == [10]
    assert status(ledger, 12) is TS.PENDING
    assert balances(ledger, FUNDING) == Balances(debits_pending=10)


def test_hold_created_by_a_committed_chain_expires(ledger: Harness) -> None:
    open_accounts(ledger)
    results = ledger.create_transfers(hold(10, timeout=1, flags=TF.LINKED), transfer(11))
    assert codes(results) == [TR.OK, TR.OK]
    ledger.clock.now = results[0].timestamp + 1 * SECOND
    assert ledger.expire() == [10]


def test_transfer_status_values(ledger: Harness) -> None:
    wallet_with(ledger, 100)
    created = ledger.transfer_codes(
        transfer(10, WALLET, REVENUE, 1),
        hold(11, WALLET, REVENUE, 1),
        hold(12, WALLET, REVENUE, 1),
        hold(13, WALLET, REVENUE, 1),
        hold(14, WALLET, REVENUE, 1, timeout=1),
    )
    assert created == [TR.OK] * 5
    assert ledger.transfer_codes(post(15, 12), void(16, 13)) == [TR.OK, TR.OK]
    ledger.clock.advance(2)
    assert ledger.expire() == [14]
    assert [status(ledger, i) for i in (10, 11, 12, 13, 14, 15, 16, 999)] == [
        TS.NONE,  # not a hold
        TS.PENDING,
        TS.POSTED,
        TS.VOIDED,
        TS.EXPIRED,
        TS.NONE,  # the post itself
        TS.NONE,  # the void itself
        TS.NONE,  # unknown
    ]


# --- balancing transfers --------------------------------------------------------------------


def test_balancing_debit_moves_what_the_wallet_holds(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    [paid] = ledger.create_transfers(transfer(10, WALLET, REVENUE, 100, flags=TF.BALANCING_DEBIT))
    assert (paid.result, paid.amount) == (TR.OK, 30)
    stored = ledger.transfer(10)
    assert stored is not None and stored.amount == 30
    assert balances(ledger, WALLET) == Balances(debits_posted=30, credits_posted=30)
    assert balances(ledger, REVENUE) == Balances(credits_posted=30)
    # Now empty.
    [again] = ledger.create_transfers(transfer(11, WALLET, REVENUE, 100, flags=TF.BALANCING_DEBIT))
    assert (again.result, again.amount) == (TR.EXCEEDS_CREDITS, 0)
    assert ledger.transfer(11) is None


def test_balancing_debit_against_an_empty_wallet(ledger: Harness) -> None:
    wallet_with(ledger, 0)
    assert ledger.transfer_codes(transfer(10, WALLET, REVENUE, 100, flags=TF.BALANCING_DEBIT)) == [TR.EXCEEDS_CREDITS]
    assert ledger.transfer(10) is None
    assert balances(ledger, WALLET) == Balances()


def test_balancing_debit_leaves_held_money_alone(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 10)) == [TR.OK]
    [paid] = ledger.create_transfers(transfer(11, WALLET, REVENUE, 100, flags=TF.BALANCING_DEBIT))
    assert (paid.result, paid.amount) == (TR.OK, 20)
    assert balances(ledger, WALLET) == Balances(debits_pending=10, debits_posted=20, credits_posted=30)


def test_balancing_debit_below_the_balance_moves_the_request(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    [paid] = ledger.create_transfers(transfer(10, WALLET, REVENUE, 12, flags=TF.BALANCING_DEBIT))
    assert (paid.result, paid.amount) == (TR.OK, 12)


def test_balancing_credit_moves_what_the_account_owes(ledger: Harness) -> None:
    open_accounts(ledger)
    assert ledger.transfer_codes(transfer(10, LIABILITY, REVENUE, 40)) == [TR.OK]
    [settled] = ledger.create_transfers(transfer(11, FUNDING, LIABILITY, 100, flags=TF.BALANCING_CREDIT))
    assert (settled.result, settled.amount) == (TR.OK, 40)
    stored = ledger.transfer(11)
    assert stored is not None and stored.amount == 40
    assert balances(ledger, LIABILITY) == Balances(debits_posted=40, credits_posted=40)
    [again] = ledger.create_transfers(transfer(12, FUNDING, LIABILITY, 100, flags=TF.BALANCING_CREDIT))
    assert (again.result, again.amount) == (TR.EXCEEDS_DEBITS, 0)
    assert ledger.transfer(12) is None


def test_balancing_pending_transfer_holds_what_is_available(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    [held] = ledger.create_transfers(hold(10, WALLET, REVENUE, 100, flags=TF.BALANCING_DEBIT))
    assert (held.result, held.amount) == (TR.OK, 30)
    assert balances(ledger, WALLET) == Balances(debits_pending=30, credits_posted=30)
    [posted] = ledger.create_transfers(post(11, 10))
    assert (posted.result, posted.amount) == (TR.OK, 30)


# --- closing transfers ----------------------------------------------------------------------


def test_closing_hold_closes_and_its_void_reopens(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 30, flags=TF.CLOSING_DEBIT)) == [TR.OK]
    assert flags_of(ledger, WALLET) & AF.CLOSED
    assert not flags_of(ledger, REVENUE) & AF.CLOSED
    before = all_balances(ledger)
    assert ledger.transfer_codes(transfer(11, WALLET, REVENUE, 1)) == [TR.DEBIT_ACCOUNT_ALREADY_CLOSED]
    assert ledger.transfer_codes(transfer(12, FUNDING, WALLET, 1)) == [TR.CREDIT_ACCOUNT_ALREADY_CLOSED]
    assert ledger.transfer_codes(hold(13, FUNDING, WALLET, 1)) == [TR.CREDIT_ACCOUNT_ALREADY_CLOSED]
    assert all_balances(ledger) == before
    # A closed account is still the same account for idempotency.
    assert ledger.account_codes(accounts()[WALLET - 1]) == [AR.EXISTS]

    assert ledger.transfer_codes(void(14, 10)) == [TR.OK]
    assert not flags_of(ledger, WALLET) & AF.CLOSED
    assert ledger.transfer_codes(transfer(15, WALLET, REVENUE, 1)) == [TR.OK]


def test_posting_a_closing_hold_keeps_the_account_closed(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    assert ledger.transfer_codes(hold(10, WALLET, REVENUE, 30, flags=TF.CLOSING_DEBIT)) == [TR.OK]
    assert ledger.transfer_codes(post(11, 10)) == [TR.OK]
    assert flags_of(ledger, WALLET) & AF.CLOSED
    assert balances(ledger, WALLET) == Balances(debits_posted=30, credits_posted=30)
    assert ledger.transfer_codes(transfer(12, FUNDING, WALLET, 1)) == [TR.CREDIT_ACCOUNT_ALREADY_CLOSED]


def test_expired_closing_hold_reopens(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    held = created_hold(ledger, hold(10, WALLET, REVENUE, 30, flags=TF.CLOSING_DEBIT, timeout=2))
    assert flags_of(ledger, WALLET) & AF.CLOSED
    ledger.clock.now = held.timestamp + 2 * SECOND
    assert ledger.expire() == [10]
    assert not flags_of(ledger, WALLET) & AF.CLOSED


def test_closing_credit_closes_the_credit_account(ledger: Harness) -> None:
    open_accounts(ledger)
    assert ledger.transfer_codes(hold(10, FUNDING, ESCROW, 1, flags=TF.CLOSING_CREDIT)) == [TR.OK]
    assert flags_of(ledger, ESCROW) & AF.CLOSED
    assert not flags_of(ledger, FUNDING) & AF.CLOSED
    assert ledger.transfer_codes(transfer(11, FUNDING, ESCROW, 1)) == [TR.CREDIT_ACCOUNT_ALREADY_CLOSED]
    assert ledger.transfer_codes(transfer(12, ESCROW, FUNDING, 1)) == [TR.DEBIT_ACCOUNT_ALREADY_CLOSED]
    assert ledger.transfer_codes(void(13, 10)) == [TR.OK]
    assert ledger.transfer_codes(transfer(14, FUNDING, ESCROW, 1)) == [TR.OK]


def test_closing_hold_rolled_back_with_its_chain_leaves_the_account_open(ledger: Harness) -> None:
    wallet_with(ledger, 30)
    results = ledger.create_transfers(
        hold(10, WALLET, REVENUE, 30, flags=TF.CLOSING_DEBIT | TF.LINKED),
        transfer(11, FUNDING, REVENUE, 0),
    )
    assert codes(results) == [TR.LINKED_EVENT_FAILED, TR.AMOUNT_MUST_NOT_BE_ZERO]
    assert not flags_of(ledger, WALLET) & AF.CLOSED
    assert balances(ledger, WALLET) == Balances(credits_posted=30)


# --- timestamps ------------------------------------------------------------------------------


def test_each_event_gets_the_batch_start_plus_its_index(ledger: Harness) -> None:
    open_accounts(ledger)
    ledger.clock.advance(10)
    applied = ledger.engine.create_transfers(
        pack_transfers([transfer(10), transfer(11, amount=0), transfer(12), transfer(10)])
    )
    first = applied.timestamp_first
    assert first == ledger.clock.now
    assert applied.timestamp_last == first + 3
    results = unpack_transfer_results(applied.results)
    assert codes(results) == [TR.OK, TR.AMOUNT_MUST_NOT_BE_ZERO, TR.OK, TR.EXISTS]
    # A refused event still uses its timestamp; EXISTS names the original's.
    assert [r.timestamp for r in results] == [first, 0, first + 2, first]
    stored = ledger.transfer(12)
    assert stored is not None and stored.timestamp == first + 2


def test_account_timestamps_follow_the_batch(ledger: Harness) -> None:
    applied = ledger.engine.create_accounts(pack_accounts(accounts()))
    results = unpack_account_results(applied.results)
    assert applied.timestamp_last == ledger.clock.now + len(ACCOUNT_IDS) - 1
    assert [r.timestamp for r in results] == [ledger.clock.now + i for i in range(len(ACCOUNT_IDS))]


def test_timestamps_strictly_increase_when_the_clock_goes_backwards(ledger: Harness) -> None:
    open_accounts(ledger)
    last = ledger.engine.stats().timestamp_last
    seen = []
    for step, seconds_back in enumerate((60, 0, 3600)):
        ledger.clock.advance(-seconds_back)
        applied = ledger.engine.create_transfers(pack_transfers([transfer(10 + 2 * step), transfer(11 + 2 * step)]))
        assert applied.timestamp_first == last + 1
        assert applied.timestamp_last == last + 2
        seen += [r.timestamp for r in unpack_transfer_results(applied.results)]
        last = applied.timestamp_last
    assert seen == sorted(set(seen))
    expired = ledger.engine.expire_pending_transfers()
    assert expired.timestamp_first == expired.timestamp_last == last + 1
    [account] = ledger.create_accounts(Account(id=99, ledger=LEDGER, code=CODE))
    assert account.timestamp == last + 2


def test_empty_batches_use_no_timestamp(ledger: Harness) -> None:
    open_accounts(ledger)
    last = ledger.engine.stats().timestamp_last
    ledger.clock.advance(5)
    applied = ledger.engine.create_transfers(b"")
    assert (applied.results, bytes(applied.entries), applied.expired) == (b"", b"", b"")
    assert applied.timestamp_first == applied.timestamp_last == last
    assert ledger.engine.create_accounts(b"").results == b""
    assert ledger.engine.stats().timestamp_last == last


def test_clock_exhausted_refuses_the_batch(engine_class: type[Any]) -> None:
    clock = ManualClock(now=TIMESTAMP_MAX - len(ACCOUNT_IDS) + 1)
    h = Harness.new(engine_class, clock)
    open_accounts(h)  # uses the last timestamps there are
    state = h.engine.export_state()
    with pytest.raises(ClockExhausted, match="TIMESTAMP_MAX"):
        h.engine.create_transfers(pack_transfers([transfer(10)]))
    with pytest.raises(ClockExhausted):
        h.engine.create_accounts(pack_accounts([Account(id=99, ledger=LEDGER, code=CODE)]))
    with pytest.raises(ClockExhausted):
        h.engine.expire_pending_transfers()
    assert h.engine.export_state() == state


# --- refused batches ------------------------------------------------------------------------


def test_batch_too_large_is_refused_as_a_whole(ledger: Harness) -> None:
    open_accounts(ledger)
    state = ledger.engine.export_state()
    too_many = pack_transfers([transfer(100 + i, amount=1) for i in range(BATCH_EVENTS_MAX + 1)])
    with pytest.raises(BatchTooLarge, match="BATCH_EVENTS_MAX") as raised:
        ledger.engine.create_transfers(too_many)
    assert str(BATCH_EVENTS_MAX) in str(raised.value)
    too_many_accounts = [Account(id=100 + i, ledger=LEDGER, code=CODE) for i in range(BATCH_EVENTS_MAX + 1)]
    with pytest.raises(BatchTooLarge, match="BATCH_EVENTS_MAX"):
        ledger.engine.create_accounts(pack_accounts(too_many_accounts))
    with pytest.raises(BatchTooLarge, match="BATCH_EVENTS_MAX"):
        ledger.engine.lookup_transfers(pack_ids(list(range(1, BATCH_EVENTS_MAX + 2))))
    assert ledger.engine.export_state() == state  # not even a timestamp was used
    assert ledger.transfer(100) is None


def test_full_batch_is_accepted(ledger: Harness) -> None:
    open_accounts(ledger)
    applied = ledger.engine.create_transfers(
        pack_transfers([transfer(100 + i, amount=1) for i in range(BATCH_EVENTS_MAX)])
    )
    results = unpack_transfer_results(applied.results)
    assert len(results) == BATCH_EVENTS_MAX
    assert set(codes(results)) == {TR.OK}
    assert balances(ledger, REVENUE).credits_posted == BATCH_EVENTS_MAX
    assert len(bytes(applied.entries)) == BATCH_EVENTS_MAX * 128


@pytest.mark.parametrize("size", [1, 127, 129, 255])
def test_partial_records_are_malformed(ledger: Harness, size: int) -> None:
    open_accounts(ledger)
    state = ledger.engine.export_state()
    data = (transfer(10).pack() * 2)[:size]
    with pytest.raises(MalformedBatch):
        ledger.engine.create_transfers(data)
    with pytest.raises(MalformedBatch):
        ledger.engine.create_accounts((Account(id=99, ledger=LEDGER, code=CODE).pack() * 2)[:size])
    assert ledger.engine.export_state() == state
    assert ledger.transfer(10) is None


def test_partial_ids_are_malformed(ledger: Harness) -> None:
    open_accounts(ledger)
    with pytest.raises(MalformedBatch):
        ledger.engine.lookup_accounts(pack_ids([FUNDING])[:15])
    with pytest.raises(MalformedBatch):
        ledger.engine.lookup_transfers(pack_ids([1, 2])[:17])


def test_batches_may_be_any_buffer(ledger: Harness) -> None:
    data = pack_accounts(accounts())
    results = unpack_account_results(ledger.engine.create_accounts(memoryview(data)).results)
    assert codes(results) == [AR.OK] * len(ACCOUNT_IDS)
    applied = ledger.engine.create_transfers(bytearray(pack_transfers([transfer(10)])))
    assert codes(unpack_transfer_results(applied.results)) == [TR.OK]
    assert len(ledger.engine.lookup_accounts(memoryview(pack_ids(ACCOUNT_IDS)))) == len(ACCOUNT_IDS) * 128


def test_lookups_skip_unknown_ids(ledger: Harness) -> None:
    open_accounts(ledger)
    assert ledger.transfer_codes(transfer(10)) == [TR.OK]
    found = ledger.engine.lookup_accounts(pack_ids([WALLET, 999, FUNDING, WALLET]))
    assert [a.id for a in (Account.unpack(found, i) for i in range(0, len(found), 128))] == [WALLET, FUNDING, WALLET]
    assert ledger.engine.lookup_transfers(pack_ids([999])) == b""
    assert ledger.engine.lookup_accounts(b"") == b""


# --- checkpoints and replay -------------------------------------------------------------------


@dataclass
class Recorder:
    """Drives an engine and keeps every journal entry it returns, copied at once."""

    h: Harness
    journal: list[tuple[Any, ...]] = field(default_factory=list)

    def accounts(self, *records: Account) -> list[int]:
        applied = self.h.engine.create_accounts(pack_accounts(list(records)))
        self.journal.append(("accounts", bytes(applied.entries), applied.timestamp_last))
        return codes(unpack_account_results(applied.results))

    def transfers(self, *records: Transfer) -> list[int]:
        applied = self.h.engine.create_transfers(pack_transfers(list(records)))
        self.keep(applied)
        return codes(unpack_transfer_results(applied.results))

    def expire(self) -> list[int]:
        applied = self.h.engine.expire_pending_transfers()
        self.keep(applied)
        return unpack_ids(applied.expired)

    def keep(self, applied: TransfersApplied) -> None:
        entries = bytes(applied.entries)
        self.journal.append(("transfers", applied.expired, entries, applied.timestamp_first, applied.timestamp_last))

    def replay_into(self, engine: Any) -> None:
        for kind, *entry in self.journal:
            if kind == "accounts":
                engine.replay_accounts(*entry)
            else:
                engine.replay_transfers(*entry)


SCENARIO_TRANSFER_IDS = [*range(1, 20), 50, 51, 52, 53, 999]


def run_scenario(r: Recorder) -> None:
    """Every kind of event: the state it leaves has open, posted, voided and expired holds."""
    clock = r.h.clock
    assert r.accounts(*accounts()) == [AR.OK] * len(ACCOUNT_IDS)
    broken_chain = r.accounts(
        Account(id=20, ledger=LEDGER, code=CODE, flags=AF.LINKED), Account(id=21, ledger=0, code=CODE)
    )
    assert broken_chain == [AR.LINKED_EVENT_FAILED, AR.LEDGER_MUST_NOT_BE_ZERO]
    first = r.transfers(
        transfer(1, FUNDING, WALLET, 100),
        transfer(2, WALLET, REVENUE, 20),
        hold(3, WALLET, REVENUE, 30, timeout=5),
        hold(4, FUNDING, REVENUE, 10),
        hold(5, FUNDING, ESCROW, 7, timeout=1),
    )
    assert first == [TR.OK] * 5
    clock.advance(0.5)
    second = r.transfers(
        post(6, 3, amount=10),
        void(7, 4),
        transfer(8, WALLET, REVENUE, 1, flags=TF.LINKED),
        transfer(9, WALLET, REVENUE, 1000),  # breaks the chain
        transfer(10, WALLET, REVENUE, 1000, flags=TF.BALANCING_DEBIT),
        transfer(11, LIABILITY, REVENUE, 40),
        transfer(12, FUNDING, LIABILITY, 100, flags=TF.BALANCING_CREDIT),
        hold(13, ESCROW, REVENUE, 1, flags=TF.CLOSING_DEBIT, timeout=3600),
        transfer(1, FUNDING, WALLET, 100),  # a retry
    )
    assert second == [TR.OK, TR.OK, TR.LINKED_EVENT_FAILED, TR.EXCEEDS_CREDITS, TR.OK, TR.OK, TR.OK, TR.OK, TR.EXISTS]
    clock.advance(2)
    assert r.expire() == [5]
    assert r.transfers(hold(14, FUNDING, REVENUE, 5, timeout=60), transfer(15, FUNDING, WALLET, 3)) == [TR.OK] * 2
    clock.advance(-30)  # the clock steps back; timestamps must not
    assert r.transfers(hold(16, REVENUE, FUNDING, 2, timeout=10)) == [TR.OK]


def continue_scenario(h: Harness) -> tuple[Any, ...]:
    """What happens next, two minutes on: holds expire at the start of the batch, one is posted, one voided."""
    applied = h.engine.create_transfers(
        pack_transfers([post(50, 13), transfer(51, FUNDING, WALLET, 1), post(52, 14), void(53, 16)])
    )
    return applied.results, bytes(applied.entries), applied.expired, applied.timestamp_first, applied.timestamp_last


def lookups(engine: Any) -> tuple[bytes, bytes, list[int]]:
    ids = [*ACCOUNT_IDS, 20, 21, 99]
    transfer_ids = SCENARIO_TRANSFER_IDS
    return (
        engine.lookup_accounts(pack_ids(ids)),
        engine.lookup_transfers(pack_ids(transfer_ids)),
        [engine.transfer_status(i) for i in transfer_ids],
    )


def test_scenario_ends_in_the_expected_state(ledger: Harness) -> None:
    run_scenario(Recorder(ledger))
    assert ledger.engine.stats().pending_transfers_count == 3  # holds 13, 14 and 16
    assert [status(ledger, i) for i in (3, 4, 5, 13, 14, 16)] == [
        TS.POSTED,
        TS.VOIDED,
        TS.EXPIRED,
        TS.PENDING,
        TS.PENDING,
        TS.PENDING,
    ]
    assert balances(ledger, WALLET) == Balances(debits_posted=20 + 10 + 70, credits_posted=103)
    assert flags_of(ledger, ESCROW) & AF.CLOSED
    ledger.clock.advance(120)
    results, _, expired, _, _ = continue_scenario(ledger)
    assert unpack_ids(expired) == [16, 14]  # in expiry order; 13 has an hour left
    assert codes(unpack_transfer_results(results)) == [
        TR.OK,
        TR.OK,
        TR.PENDING_TRANSFER_EXPIRED,
        TR.PENDING_TRANSFER_EXPIRED,
    ]


def test_export_import_round_trip_into_the_other_engine(engine_class: type[Any]) -> None:
    clock = ManualClock()
    a = Harness.new(engine_class, clock)
    run_scenario(Recorder(a))
    state = a.engine.export_state()

    b = Harness(other_engine_class(engine_class)(small_config(), clock=clock), clock)
    b.engine.import_state(state)
    b.engine.verify()

    assert b.engine.export_state() == state
    assert b.engine.stats() == a.engine.stats()
    assert lookups(b.engine) == lookups(a.engine)
    # The imported engine goes on exactly as the original: same expiries, same results.
    clock.advance(120)
    assert continue_scenario(b) == continue_scenario(a)
    assert b.engine.export_state() == a.engine.export_state()


def test_import_needs_an_empty_engine(engine_class: type[Any]) -> None:
    a = Harness.new(engine_class)
    open_accounts(a)
    state = a.engine.export_state()
    b = Harness.new(other_engine_class(engine_class))
    open_accounts(b)
    with pytest.raises(StateMismatch):
        b.engine.import_state(state)


def holds_without_timeout(count: int) -> tuple[Harness, list[tuple[Any, ...]]]:
    """An engine holding `count` open holds (no timeouts), and the journal that built it."""
    recorder = Recorder(Harness.new(ReferenceEngine))
    assert recorder.accounts(*accounts()) == [AR.OK] * len(ACCOUNT_IDS)
    assert recorder.transfers(*(hold(10 + i, amount=1) for i in range(count))) == [TR.OK] * count
    return recorder.h, recorder.journal


def test_restore_refuses_records_that_do_not_fit(engine_class: type[Any]) -> None:
    source, _ = holds_without_timeout(2)
    state = source.engine.export_state()
    fresh = engine_class(small_config(), clock=ManualClock())
    fresh.import_state(replace(state, transfers=b"", transfer_status=b""))
    with pytest.raises(StateMismatch, match="partial record"):
        fresh.restore_transfers(state.transfers[:-1], state.transfer_status)
    with pytest.raises(StateMismatch, match="one byte per transfer"):
        fresh.restore_transfers(state.transfers, state.transfer_status[:-1])
    fresh.restore_transfers(state.transfers[:128], state.transfer_status[:1])
    with pytest.raises(StateMismatch, match="twice"):
        fresh.restore_transfers(state.transfers[:128], state.transfer_status[:1])
    tiny = engine_class(small_config(transfers_max=1), clock=ManualClock())
    tiny.import_state(replace(state, transfers=b"", transfer_status=b""))
    with pytest.raises(StateMismatch, match="capacity"):
        tiny.restore_transfers(state.transfers, state.transfer_status)


def test_restore_in_pieces_equals_one_import(engine_class: type[Any]) -> None:
    source, _ = holds_without_timeout(3)
    state = source.engine.export_state()
    whole = engine_class(small_config(), clock=ManualClock())
    whole.import_state(state)
    pieces = engine_class(small_config(), clock=ManualClock())
    pieces.import_state(replace(state, transfers=b"", transfer_status=b""))
    for i in range(len(state.transfer_status)):
        pieces.restore_transfers(state.transfers[128 * i : 128 * (i + 1)], state.transfer_status[i : i + 1])
    pieces.verify()
    assert pieces.export_state() == whole.export_state() == state
    assert pieces.stats() == whole.stats()


def test_import_refuses_more_holds_than_the_pending_capacity(engine_class: type[Any]) -> None:
    # Like accounts_max and transfers_max, pending_transfers_max bounds what an engine may hold;
    # the native engine sizes its expiry heap from it.
    source, _ = holds_without_timeout(3)
    small = engine_class(small_config(pending_transfers_max=2), clock=ManualClock())
    with pytest.raises(StateMismatch):
        small.import_state(source.engine.export_state())


def test_replay_refuses_more_holds_than_the_pending_capacity(engine_class: type[Any]) -> None:
    _, journal = holds_without_timeout(3)
    small = engine_class(small_config(pending_transfers_max=2), clock=ManualClock())
    (_, account_entries, accounts_last), (_, expired, entries, first, last) = journal
    small.replay_accounts(account_entries, accounts_last)
    with pytest.raises(StateMismatch):
        small.replay_transfers(expired, entries, first, last)


def test_replay_reproduces_the_state_in_the_other_engine(engine_class: type[Any]) -> None:
    clock = ManualClock()
    recorder = Recorder(Harness.new(engine_class, clock))
    run_scenario(recorder)
    a = recorder.h

    b = Harness(other_engine_class(engine_class)(small_config(), clock=clock), clock)
    recorder.replay_into(b.engine)

    assert b.engine.export_state() == a.engine.export_state()
    assert b.engine.stats() == a.engine.stats()
    assert lookups(b.engine) == lookups(a.engine)
    clock.advance(120)
    assert continue_scenario(b) == continue_scenario(a)
    assert b.engine.export_state() == a.engine.export_state()


def test_replay_refuses_entries_that_contradict_the_state(engine_class: type[Any]) -> None:
    clock = ManualClock()
    recorder = Recorder(Harness.new(engine_class, clock))
    run_scenario(recorder)
    b = other_engine_class(engine_class)(small_config(), clock=clock)
    recorder.replay_into(b)
    _, accounts_entries, accounts_last = recorder.journal[0]
    with pytest.raises(StateMismatch):
        b.replay_accounts(accounts_entries, accounts_last)  # the accounts exist already
    post_batch = next(entry for entry in recorder.journal if entry[0] == "transfers" and entry[2])
    with pytest.raises(StateMismatch):
        b.replay_transfers(b"", post_batch[2][:128], post_batch[3], post_batch[4])  # the transfer exists already


def test_a_refused_replay_or_restore_stops_at_the_entry_it_refuses(engine_class: type[Any]) -> None:
    # Recovery hands the engine many commits at once and names the one that contradicts the state from where
    # the engine stopped: the entries before the refused one are taken, the count says which one it was.
    clock = ManualClock()
    recorder = Recorder(Harness.new(engine_class, clock))
    run_scenario(recorder)
    state = recorder.h.engine.export_state()
    (_, accounts_entries, accounts_last), *calls = recorder.journal
    records = b"".join(entry[1] for kind, *entry in calls if kind == "transfers")
    count = len(records) // 128
    assert count > 6

    def fresh(**capacity: Any) -> Any:
        engine = engine_class(small_config(**capacity), clock=clock)
        engine.replay_accounts(accounts_entries, accounts_last)
        return engine

    duplicated = records[: 4 * 128] + records[:128] + records[4 * 128 :]  # the fifth repeats the first
    replayed = fresh()
    with pytest.raises(StateMismatch):
        replayed.replay_transfers(b"", duplicated[: 8 * 128], 0, 0)
    assert replayed.stats().transfers_count == 4
    restored = fresh()
    with pytest.raises(StateMismatch, match="twice"):
        restored.restore_transfers(duplicated, state.transfer_status[:4] + b"\x00" + state.transfer_status[4:])
    assert restored.stats().transfers_count == 4
    full = fresh(transfers_max=3)
    with pytest.raises(StateMismatch, match="capacity"):
        full.restore_transfers(records, state.transfer_status)
    assert full.stats().transfers_count == 3
    full = fresh(transfers_max=3)
    with pytest.raises(StateMismatch):
        full.replay_transfers(b"", records[: 5 * 128], 0, 0)
    assert full.stats().transfers_count == 3


def test_journal_entries_do_not_change_after_later_batches(ledger: Harness) -> None:
    # Entries are what the journal stores: the records as created. A caller that
    # writes them out after the next batch must not see that batch's effects.
    accounts_applied = ledger.engine.create_accounts(pack_accounts(accounts()))
    created = bytes(accounts_applied.entries)
    transfers_applied = ledger.engine.create_transfers(pack_transfers([transfer(1, FUNDING, WALLET, 100)]))
    posted = bytes(transfers_applied.entries)
    ledger.create_transfers(transfer(2, WALLET, REVENUE, 30), hold(3, FUNDING, ESCROW, 5, flags=TF.CLOSING_DEBIT))
    assert bytes(transfers_applied.entries) == posted
    assert bytes(accounts_applied.entries) == created


# --- balance history --------------------------------------------------------------------------


def test_history_accounts_record_their_balances_after_every_transfer(engine_class: type[Any]) -> None:
    clock = ManualClock()
    h = Harness.new(engine_class, clock)
    assert (
        h.account_codes(
            Account(id=FUNDING, ledger=LEDGER, code=CODE),
            Account(id=WALLET, ledger=LEDGER, code=CODE, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY),
            Account(id=REVENUE, ledger=LEDGER, code=CODE),
        )
        == [AR.OK] * 3
    )

    def history(*transfers: Transfer) -> list[tuple[int, int, int, int, int]]:
        applied = h.engine.create_transfers(pack_transfers(list(transfers)))
        return [
            (b.account_id, b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)
            for b in unpack_account_balances(applied.balances)
        ]

    assert history(transfer(1, FUNDING, WALLET, 100)) == [(WALLET, 0, 0, 0, 100)]
    assert history(transfer(2, FUNDING, REVENUE, 5)) == []  # no HISTORY account touched
    assert history(hold(3, WALLET, REVENUE, 30), hold(4, WALLET, REVENUE, 10, timeout=1)) == [
        (WALLET, 30, 0, 0, 100),
        (WALLET, 40, 0, 0, 100),
    ]
    assert history(post(5, 3, amount=20)) == [(WALLET, 10, 20, 0, 100)]
    # A chain that fails leaves no history; its balances were never real.
    assert history(transfer(6, WALLET, REVENUE, 1, flags=TF.LINKED), transfer(7, WALLET, REVENUE, 10**6)) == []
    # Expiry records nothing of its own; the next transfer shows the released hold.
    clock.advance(2)
    applied = h.engine.create_transfers(pack_transfers([transfer(8, FUNDING, WALLET, 1)]))
    assert unpack_ids(applied.expired) == [4]
    [entry] = unpack_account_balances(applied.balances)
    assert (entry.debits_pending, entry.credits_posted, entry.timestamp) == (0, 101, h.transfer(8).timestamp)
    # A retry moves nothing and so records nothing.
    assert h.engine.create_transfers(pack_transfers([transfer(1, FUNDING, WALLET, 100)])).balances == b""
