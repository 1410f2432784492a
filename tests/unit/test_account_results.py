"""Every CreateAccountResult, reached on both engines.

The table holds one case per code (a few codes have more than one path):
a setup, the batch to send and the event whose result is checked. A failure
must leave the engine exactly as it was; the last test checks that the table
covers the whole enum, so a new code cannot be added without a case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ledger.engine import Account, AccountFlags, CreateAccountResult, unpack_account_results
from ledger.records.limits import ID_INT_MAX
from tests.support import Harness

AR = CreateAccountResult
AF = AccountFlags

LEDGER = 1
CODE = 10
NEW_ID = 100

EXISTING = Account(
    id=1,
    ledger=LEDGER,
    code=CODE,
    flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY,
    user_data_128=2**100 + 128,
    user_data_64=64,
    user_data_32=32,
)


def account(account_id: int = NEW_ID, **fields: Any) -> Account:
    """A valid new account on LEDGER, unless `fields` say otherwise."""
    values: dict[str, Any] = {"ledger": LEDGER, "code": CODE}
    values.update(fields)
    return Account(id=account_id, **values)


def with_existing(h: Harness) -> None:
    assert h.account_codes(EXISTING) == [AR.OK]


@dataclass(frozen=True)
class Case:
    code: AR
    batch: tuple[Account, ...]
    index: int = 0
    """The event of the batch whose result is `code`."""
    setup: Callable[[Harness], None] = with_existing
    config: dict[str, int] = field(default_factory=dict)
    path: str = ""

    @property
    def id(self) -> str:
        return f"{self.code.name}-{self.path}" if self.path else self.code.name


CASES = [
    Case(AR.OK, (account(),)),
    Case(AR.LINKED_EVENT_FAILED, (account(flags=AF.LINKED), account(NEW_ID + 1, ledger=0))),
    Case(AR.LINKED_EVENT_CHAIN_OPEN, (account(flags=AF.LINKED),)),
    Case(AR.TIMESTAMP_MUST_BE_ZERO, (account(timestamp=1),)),
    Case(AR.RESERVED_FIELD, (account(reserved=1),)),
    Case(AR.RESERVED_FLAG, (account(flags=1 << 5),)),
    Case(AR.ID_MUST_NOT_BE_ZERO, (account(0),)),
    Case(AR.ID_MUST_NOT_BE_INT_MAX, (account(ID_INT_MAX),)),
    Case(AR.EXISTS_WITH_DIFFERENT_FLAGS, (replace(EXISTING, flags=AF.HISTORY),)),
    Case(AR.EXISTS_WITH_DIFFERENT_USER_DATA_128, (replace(EXISTING, user_data_128=2**100),)),
    Case(AR.EXISTS_WITH_DIFFERENT_USER_DATA_64, (replace(EXISTING, user_data_64=65),)),
    Case(AR.EXISTS_WITH_DIFFERENT_USER_DATA_32, (replace(EXISTING, user_data_32=33),)),
    Case(AR.EXISTS_WITH_DIFFERENT_LEDGER, (replace(EXISTING, ledger=LEDGER + 1),)),
    Case(AR.EXISTS_WITH_DIFFERENT_CODE, (replace(EXISTING, code=CODE + 1),)),
    Case(AR.EXISTS, (EXISTING,)),
    Case(
        AR.EXISTS,
        (replace(EXISTING, flags=EXISTING.flags | AF.CLOSED),),
        path="closed-flag-is-not-compared",
    ),
    Case(
        AR.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        (account(flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.CREDITS_MUST_NOT_EXCEED_DEBITS),),
    ),
    Case(AR.DEBITS_PENDING_MUST_BE_ZERO, (account(debits_pending=1),)),
    Case(AR.DEBITS_POSTED_MUST_BE_ZERO, (account(debits_posted=1),)),
    Case(AR.CREDITS_PENDING_MUST_BE_ZERO, (account(credits_pending=1),)),
    Case(AR.CREDITS_POSTED_MUST_BE_ZERO, (account(credits_posted=1),)),
    Case(AR.LEDGER_MUST_NOT_BE_ZERO, (account(ledger=0),)),
    Case(AR.CODE_MUST_NOT_BE_ZERO, (account(code=0),)),
    Case(AR.ACCOUNTS_FULL, (account(),), config={"accounts_max": 1}),
]


def tables(h: Harness) -> tuple[bytes, bytes, bytes]:
    """The engine's whole state except its last timestamp (a refused event still uses one)."""
    state = h.engine.export_state()
    return state.accounts, state.transfers, state.transfer_status


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_create_account_result(engine_class: type[Any], case: Case) -> None:
    h = Harness.new(engine_class, **case.config)
    case.setup(h)
    ids = sorted({a.id for a in case.batch} | {EXISTING.id})
    accounts_before = {i: h.account(i) for i in ids}
    tables_before = tables(h)

    results = h.create_accounts(*case.batch)

    assert len(results) == len(case.batch)
    assert AR(results[case.index].result) is case.code
    if case.code is AR.OK:
        request = case.batch[case.index]
        assert results[case.index].timestamp > 0
        assert h.account(request.id) == replace(request, timestamp=results[case.index].timestamp)
        assert h.engine.stats().accounts_count == len(tables_before[0]) // 128 + 1
    else:
        assert {i: h.account(i) for i in ids} == accounts_before
        assert tables(h) == tables_before


def test_exists_results_carry_the_timestamp_of_the_existing_account(ledger: Harness) -> None:
    [created] = ledger.create_accounts(EXISTING)
    ledger.clock.advance(10)
    [again, different] = ledger.create_accounts(EXISTING, replace(EXISTING, code=CODE + 1))
    assert (again.result, again.timestamp) == (AR.EXISTS, created.timestamp)
    assert (different.result, different.timestamp) == (AR.EXISTS_WITH_DIFFERENT_CODE, created.timestamp)


def test_failed_results_carry_no_timestamp(ledger: Harness) -> None:
    [failed] = ledger.create_accounts(account(ledger=0))
    assert (failed.result, failed.timestamp) == (AR.LEDGER_MUST_NOT_BE_ZERO, 0)


def test_nonzero_reserved_tail_is_a_reserved_field(ledger: Harness) -> None:
    # The 32 reserved bytes at the end of the record count as the reserved field too.
    packed = bytearray(account().pack())
    packed[120] = 1
    applied = ledger.engine.create_accounts(bytes(packed))
    assert [r.result for r in unpack_account_results(applied.results)] == [AR.RESERVED_FIELD]
    assert ledger.account(NEW_ID) is None
    assert bytes(applied.entries) == b""


def test_every_account_result_has_a_case() -> None:
    reached = {case.code for case in CASES}
    assert reached == set(AR) - {AR.UNSPECIFIED}
