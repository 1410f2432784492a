"""Every CreateTransferResult, reached on both engines.

The table holds one case per code (several codes have more than one path):
a setup, the batch to send and the event whose result is checked. Each
request is valid up to the rule it breaks, so it also pins the precedence
order. A failure must leave the engine exactly as it was; the last test
checks that the table covers the whole enum, so a new code cannot be added
without a case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ledger.engine import Account, AccountFlags, CreateTransferResult, Transfer, TransferFlags
from ledger.records.limits import AMOUNT_MAX, ID_INT_MAX, TIMESTAMP_MAX
from tests.support import SECOND, Harness, ManualClock

TR = CreateTransferResult
TF = TransferFlags
AF = AccountFlags

LEDGER = 1
OTHER_LEDGER = 2
CODE = 10

# Accounts of the base setup.
FUNDING = 1  # no balance limits: where money comes from
WALLET = 2  # DEBITS_MUST_NOT_EXCEED_CREDITS, funded with 100
REVENUE = 3  # no limits
SPARE = 4  # no limits, untouched
LIMITED = 5  # CREDITS_MUST_NOT_EXCEED_DEBITS, no debits
FOREIGN = 6  # on OTHER_LEDGER
CLOSED = 7  # created closed
BIG_SOURCE = 8  # no limits, for the overflow cases
BIG_SINK = 9  # no limits, for the overflow cases
MISSING = 99  # never created

ACCOUNTS = (
    Account(id=FUNDING, ledger=LEDGER, code=CODE),
    Account(id=WALLET, ledger=LEDGER, code=CODE, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
    Account(id=REVENUE, ledger=LEDGER, code=CODE),
    Account(id=SPARE, ledger=LEDGER, code=CODE),
    Account(id=LIMITED, ledger=LEDGER, code=CODE, flags=AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
    Account(id=FOREIGN, ledger=OTHER_LEDGER, code=CODE),
    Account(id=CLOSED, ledger=LEDGER, code=CODE, flags=AF.CLOSED),
    Account(id=BIG_SOURCE, ledger=LEDGER, code=CODE),
    Account(id=BIG_SINK, ledger=LEDGER, code=CODE),
)
ACCOUNT_IDS = [a.id for a in ACCOUNTS]

# Transfers of the base setup.
EXISTING = Transfer(
    id=10,
    debit_account_id=FUNDING,
    credit_account_id=WALLET,
    amount=100,
    ledger=LEDGER,
    code=CODE,
    user_data_128=2**90 + 128,
    user_data_64=64,
    user_data_32=32,
)
HOLD = Transfer(
    id=11, debit_account_id=FUNDING, credit_account_id=REVENUE, amount=50, ledger=LEDGER, code=CODE, flags=TF.PENDING
)
NEW_ID = 1000
MISSING_TRANSFER = 999


def transfer(**fields: Any) -> Transfer:
    """A valid new transfer FUNDING -> REVENUE of 10, unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "id": NEW_ID,
        "debit_account_id": FUNDING,
        "credit_account_id": REVENUE,
        "amount": 10,
        "ledger": LEDGER,
        "code": CODE,
    }
    values.update(fields)
    return Transfer(**values)


def hold(flags: int = 0, **fields: Any) -> Transfer:
    """A valid new pending transfer (a hold), with `flags` added to PENDING."""
    return transfer(flags=TF.PENDING | flags, **fields)


def post(pending_id: int = HOLD.id, flags: int = 0, **fields: Any) -> Transfer:
    """Post a hold; accounts, ledger, code and amount are taken from it unless given."""
    fields.setdefault("id", NEW_ID)
    return Transfer(pending_id=pending_id, flags=TF.POST_PENDING_TRANSFER | flags, **fields)


def void(pending_id: int = HOLD.id, flags: int = 0, **fields: Any) -> Transfer:
    fields.setdefault("id", NEW_ID)
    return Transfer(pending_id=pending_id, flags=TF.VOID_PENDING_TRANSFER | flags, **fields)


def base(h: Harness) -> None:
    assert h.account_codes(*ACCOUNTS) == [TR.OK] * len(ACCOUNTS)
    assert h.transfer_codes(EXISTING, HOLD) == [TR.OK, TR.OK]


def base_then(*transfers: Transfer) -> Callable[[Harness], None]:
    """The base setup, then `transfers` in one batch, all of which must succeed."""

    def setup(h: Harness) -> None:
        base(h)
        assert h.transfer_codes(*transfers) == [TR.OK] * len(transfers)

    return setup


def hold_expired(h: Harness) -> None:
    """A hold of 5 with a 1 s timeout that has expired."""
    base(h)
    [created] = h.create_transfers(hold(id=20, amount=5, timeout=1))
    assert created.result == TR.OK
    h.clock.now = created.timestamp + 1 * SECOND
    assert h.expire() == [20]


@dataclass(frozen=True)
class Case:
    code: TR
    batch: tuple[Transfer, ...]
    index: int = 0
    """The event of the batch whose result is `code`."""
    setup: Callable[[Harness], None] = base
    config: dict[str, int] = field(default_factory=dict)
    clock_ns: int | None = None
    path: str = ""

    @property
    def id(self) -> str:
        return f"{self.code.name}-{self.path}" if self.path else self.code.name


def one(code: TR, request: Transfer, **options: Any) -> Case:
    return Case(code, (request,), **options)


CASES = [
    one(TR.OK, transfer()),
    Case(TR.LINKED_EVENT_FAILED, (transfer(flags=TF.LINKED), transfer(id=NEW_ID + 1, amount=0))),
    Case(TR.LINKED_EVENT_CHAIN_OPEN, (transfer(flags=TF.LINKED),)),
    Case(
        TR.LINKED_EVENT_CHAIN_OPEN,
        (transfer(flags=TF.LINKED), transfer(id=NEW_ID + 1, flags=TF.LINKED)),
        index=1,
        path="second-of-two",
    ),
    one(TR.TIMESTAMP_MUST_BE_ZERO, transfer(timestamp=1)),
    one(TR.RESERVED_FIELD, transfer(reserved=1)),
    one(TR.RESERVED_FLAG, transfer(flags=1 << 8)),
    one(TR.ID_MUST_NOT_BE_ZERO, transfer(id=0)),
    one(TR.ID_MUST_NOT_BE_INT_MAX, transfer(id=ID_INT_MAX)),
    one(TR.EXISTS_WITH_DIFFERENT_FLAGS, replace(EXISTING, flags=TF.PENDING)),
    one(TR.EXISTS_WITH_DIFFERENT_PENDING_ID, replace(EXISTING, pending_id=HOLD.id)),
    one(TR.EXISTS_WITH_DIFFERENT_TIMEOUT, replace(EXISTING, timeout=1)),
    one(TR.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID, replace(EXISTING, debit_account_id=SPARE)),
    one(TR.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID, replace(EXISTING, credit_account_id=SPARE)),
    one(TR.EXISTS_WITH_DIFFERENT_AMOUNT, replace(EXISTING, amount=EXISTING.amount + 1)),
    one(TR.EXISTS_WITH_DIFFERENT_USER_DATA_128, replace(EXISTING, user_data_128=2**90)),
    one(TR.EXISTS_WITH_DIFFERENT_USER_DATA_64, replace(EXISTING, user_data_64=65)),
    one(TR.EXISTS_WITH_DIFFERENT_USER_DATA_32, replace(EXISTING, user_data_32=33)),
    one(TR.EXISTS_WITH_DIFFERENT_LEDGER, replace(EXISTING, ledger=OTHER_LEDGER)),
    one(TR.EXISTS_WITH_DIFFERENT_CODE, replace(EXISTING, code=CODE + 1)),
    one(TR.EXISTS, EXISTING),
    one(TR.EXISTS, HOLD, path="hold"),
    one(TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE, transfer(flags=TF.PENDING | TF.POST_PENDING_TRANSFER)),
    one(TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE, transfer(flags=TF.PENDING | TF.VOID_PENDING_TRANSFER), path="pending-void"),
    one(TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE, post(flags=TF.VOID_PENDING_TRANSFER), path="post-void"),
    one(TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE, post(flags=TF.BALANCING_DEBIT), path="post-balancing"),
    one(TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE, void(flags=TF.CLOSING_CREDIT), path="void-closing"),
    one(TR.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, transfer(debit_account_id=0)),
    one(TR.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, transfer(debit_account_id=ID_INT_MAX)),
    one(TR.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, transfer(credit_account_id=0)),
    one(TR.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, transfer(credit_account_id=ID_INT_MAX)),
    one(TR.ACCOUNTS_MUST_BE_DIFFERENT, transfer(credit_account_id=FUNDING)),
    one(TR.PENDING_ID_MUST_BE_ZERO, transfer(pending_id=HOLD.id)),
    one(TR.PENDING_ID_MUST_NOT_BE_ZERO, post(pending_id=0)),
    one(TR.PENDING_ID_MUST_NOT_BE_INT_MAX, void(pending_id=ID_INT_MAX)),
    one(TR.PENDING_ID_MUST_BE_DIFFERENT, post(pending_id=NEW_ID)),
    one(TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, transfer(timeout=1)),
    one(TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, post(timeout=1), path="post"),
    one(TR.CLOSING_TRANSFER_MUST_BE_PENDING, transfer(flags=TF.CLOSING_DEBIT)),
    one(TR.AMOUNT_MUST_NOT_BE_ZERO, transfer(amount=0)),
    one(TR.AMOUNT_EXCEEDS_MAX, transfer(amount=AMOUNT_MAX + 1)),
    one(TR.AMOUNT_EXCEEDS_MAX, post(amount=AMOUNT_MAX + 1), path="post"),
    one(TR.LEDGER_MUST_NOT_BE_ZERO, transfer(ledger=0)),
    one(TR.CODE_MUST_NOT_BE_ZERO, transfer(code=0)),
    one(TR.DEBIT_ACCOUNT_NOT_FOUND, transfer(debit_account_id=MISSING)),
    one(TR.CREDIT_ACCOUNT_NOT_FOUND, transfer(credit_account_id=MISSING)),
    one(TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, transfer(credit_account_id=FOREIGN)),
    one(TR.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, transfer(ledger=OTHER_LEDGER)),
    one(TR.PENDING_TRANSFER_NOT_FOUND, post(pending_id=MISSING_TRANSFER)),
    one(TR.PENDING_TRANSFER_NOT_PENDING, void(pending_id=EXISTING.id)),
    one(TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID, post(debit_account_id=SPARE)),
    one(TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID, post(credit_account_id=SPARE)),
    one(TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER, post(ledger=OTHER_LEDGER)),
    one(TR.PENDING_TRANSFER_HAS_DIFFERENT_CODE, void(code=CODE + 1)),
    one(TR.EXCEEDS_PENDING_TRANSFER_AMOUNT, post(amount=HOLD.amount + 1)),
    one(TR.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT, void(amount=HOLD.amount - 1)),
    one(TR.PENDING_TRANSFER_ALREADY_POSTED, post(), setup=base_then(post(id=20))),
    one(TR.PENDING_TRANSFER_ALREADY_POSTED, void(), setup=base_then(post(id=20)), path="void"),
    one(TR.PENDING_TRANSFER_ALREADY_VOIDED, void(), setup=base_then(void(id=20))),
    one(TR.PENDING_TRANSFER_ALREADY_VOIDED, post(), setup=base_then(void(id=20)), path="post"),
    one(TR.PENDING_TRANSFER_EXPIRED, post(pending_id=20), setup=hold_expired),
    one(TR.DEBIT_ACCOUNT_ALREADY_CLOSED, transfer(debit_account_id=CLOSED)),
    one(
        TR.DEBIT_ACCOUNT_ALREADY_CLOSED,
        post(),
        setup=base_then(hold(id=20, debit_account_id=FUNDING, credit_account_id=SPARE, flags=TF.CLOSING_DEBIT)),
        path="post-after-closing-hold",
    ),
    one(TR.CREDIT_ACCOUNT_ALREADY_CLOSED, transfer(credit_account_id=CLOSED)),
    one(
        TR.CREDIT_ACCOUNT_ALREADY_CLOSED,
        post(),
        setup=base_then(hold(id=20, debit_account_id=SPARE, credit_account_id=REVENUE, flags=TF.CLOSING_CREDIT)),
        path="post-after-closing-hold",
    ),
    one(
        TR.OVERFLOWS_DEBITS_PENDING,
        hold(debit_account_id=BIG_SOURCE, amount=1),
        setup=base_then(hold(id=20, debit_account_id=BIG_SOURCE, credit_account_id=BIG_SINK, amount=AMOUNT_MAX)),
    ),
    one(
        TR.OVERFLOWS_CREDITS_PENDING,
        hold(credit_account_id=BIG_SINK, amount=1),
        setup=base_then(hold(id=20, debit_account_id=BIG_SOURCE, credit_account_id=BIG_SINK, amount=AMOUNT_MAX)),
    ),
    one(
        TR.OVERFLOWS_DEBITS_POSTED,
        transfer(debit_account_id=BIG_SOURCE, amount=1),
        setup=base_then(transfer(id=20, debit_account_id=BIG_SOURCE, credit_account_id=BIG_SINK, amount=AMOUNT_MAX)),
    ),
    one(
        TR.OVERFLOWS_CREDITS_POSTED,
        transfer(credit_account_id=BIG_SINK, amount=1),
        setup=base_then(transfer(id=20, debit_account_id=BIG_SOURCE, credit_account_id=BIG_SINK, amount=AMOUNT_MAX)),
    ),
    one(
        # Posted and pending each fit; together they pass the limit.
        TR.OVERFLOWS_DEBITS,
        transfer(debit_account_id=BIG_SOURCE, credit_account_id=SPARE, amount=1),
        setup=base_then(
            transfer(id=20, debit_account_id=BIG_SOURCE, credit_account_id=BIG_SINK, amount=AMOUNT_MAX - 1),
            hold(id=21, debit_account_id=BIG_SOURCE, credit_account_id=SPARE, amount=1),
        ),
    ),
    one(
        # Two sources: one posts AMOUNT_MAX - 1 to the sink, the other holds 1 for it.
        TR.OVERFLOWS_CREDITS,
        transfer(debit_account_id=SPARE, credit_account_id=BIG_SINK, amount=1),
        setup=base_then(
            transfer(id=20, debit_account_id=BIG_SOURCE, credit_account_id=BIG_SINK, amount=AMOUNT_MAX - 1),
            hold(id=21, debit_account_id=FUNDING, credit_account_id=BIG_SINK, amount=1),
        ),
    ),
    one(TR.OVERFLOWS_TIMEOUT, hold(timeout=1), clock_ns=TIMESTAMP_MAX - 100),
    one(TR.EXCEEDS_CREDITS, transfer(debit_account_id=WALLET, amount=101)),
    one(TR.EXCEEDS_CREDITS, hold(debit_account_id=WALLET, amount=101), path="hold"),
    one(TR.EXCEEDS_CREDITS, transfer(debit_account_id=SPARE, flags=TF.BALANCING_DEBIT), path="balancing-nothing"),
    one(TR.EXCEEDS_DEBITS, transfer(credit_account_id=LIMITED, amount=1)),
    one(TR.EXCEEDS_DEBITS, transfer(credit_account_id=SPARE, flags=TF.BALANCING_CREDIT), path="balancing-nothing"),
    one(TR.TRANSFERS_FULL, transfer(), config={"transfers_max": 2}),
    one(TR.TRANSFERS_FULL, post(), config={"transfers_max": 2}, path="post"),
    one(TR.PENDING_TRANSFERS_FULL, hold(), config={"pending_transfers_max": 1}),
]


def tables(h: Harness) -> tuple[bytes, bytes, bytes]:
    """The engine's whole state except its last timestamp (a refused event still uses one)."""
    state = h.engine.export_state()
    return state.accounts, state.transfers, state.transfer_status


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_create_transfer_result(engine_class: type[Any], case: Case) -> None:
    clock = ManualClock() if case.clock_ns is None else ManualClock(now=case.clock_ns)
    h = Harness.new(engine_class, clock, **case.config)
    case.setup(h)
    transfer_ids = sorted({t.id for t in case.batch} | {EXISTING.id, HOLD.id})
    accounts_before = {i: h.account(i) for i in ACCOUNT_IDS}
    transfers_before = {i: h.transfer(i) for i in transfer_ids}
    status_before = {i: h.engine.transfer_status(i) for i in transfer_ids}
    tables_before = tables(h)

    results = h.create_transfers(*case.batch)

    assert len(results) == len(case.batch)
    result = results[case.index]
    assert TR(result.result) is case.code
    if case.code is TR.OK:
        request = case.batch[case.index]
        assert (result.timestamp, result.amount) == (h.engine.stats().timestamp_last, request.amount)
        assert h.transfer(request.id) == replace(request, timestamp=result.timestamp)
        debit_before = accounts_before[request.debit_account_id]
        credit_before = accounts_before[request.credit_account_id]
        assert debit_before is not None and credit_before is not None
        expected = {
            request.debit_account_id: replace(debit_before, debits_posted=debit_before.debits_posted + request.amount),
            request.credit_account_id: replace(
                credit_before, credits_posted=credit_before.credits_posted + request.amount
            ),
        }
        assert {i: h.account(i) for i in ACCOUNT_IDS} == accounts_before | expected
    else:
        assert {i: h.account(i) for i in ACCOUNT_IDS} == accounts_before
        assert {i: h.transfer(i) for i in transfer_ids} == transfers_before
        assert {i: h.engine.transfer_status(i) for i in transfer_ids} == status_before
        assert tables(h) == tables_before
        if case.code.name.startswith("EXISTS"):
            # An EXISTS* result names the original transfer.
            original = transfers_before[case.batch[case.index].id]
            assert original is not None
            assert (result.timestamp, result.amount) == (original.timestamp, original.amount)
        else:
            assert (result.timestamp, result.amount) == (0, 0)


def test_every_transfer_result_has_a_case() -> None:
    reached = {case.code for case in CASES}
    assert reached == set(TR) - {TR.UNSPECIFIED}
