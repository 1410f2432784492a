"""Whatever the real ledger journals, its auditor finds it clean and ends with the engine's balances.

Hypothesis sends random batches through a real durable ledger on SQLite
(edge-biased as the differential tests are: exact balances and one more,
holds at their expiry, posts in part and in full, voids, balancing and
closing flags, linked chains that commit and chains that fail, repeated ids),
with checkpoints and restarts between them. The auditor, which shares no code
with the engines or the journal, must find the journal clean, and its own
model must end with the engine's accounts byte for byte and its transfer
statuses.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.audit import Books, audit, open_journal
from ledger.core import Ledger
from ledger.engine import Account, AccountFlags, Transfer, TransferFlags, pack_accounts, pack_transfers
from ledger.records.limits import AMOUNT_MAX
from tests.integration.test_journal import config
from tests.support import SECOND, ManualClock

TF = TransferFlags
AF = AccountFlags
LEDGER = 978
ACCOUNT_IDS = [1, 2, 3, 4, 5]
AMOUNTS = [0, 1, 2, 50, 100, 1_000, AMOUNT_MAX]
RESOLVE_AMOUNTS = [0, 0, 1, 50, 100]
FLAGS = [
    0, 0, 0, TF.LINKED, TF.LINKED,
    TF.PENDING, TF.PENDING, TF.PENDING | TF.LINKED,
    TF.POST_PENDING_TRANSFER, TF.POST_PENDING_TRANSFER, TF.POST_PENDING_TRANSFER | TF.LINKED,
    TF.VOID_PENDING_TRANSFER, TF.VOID_PENDING_TRANSFER | TF.LINKED,
    TF.BALANCING_DEBIT, TF.BALANCING_CREDIT, TF.BALANCING_DEBIT | TF.PENDING,
    TF.PENDING | TF.CLOSING_DEBIT, TF.PENDING | TF.CLOSING_CREDIT,
    0, 0, 0, TF.PENDING, TF.PENDING, TF.POST_PENDING_TRANSFER, TF.POST_PENDING_TRANSFER, TF.VOID_PENDING_TRANSFER,
    TF.BALANCING_DEBIT, TF.LINKED,
]  # fmt: skip
ACCOUNT_FLAGS = [0, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.CREDITS_MUST_NOT_EXCEED_DEBITS, AF.HISTORY,
                 AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY]  # fmt: skip

transfers = st.builds(
    dict,
    repeat=st.sampled_from([False] * 7 + [True]),  # a retry of an id sent before, with these fields
    accounts=st.sampled_from([(d, c) for d in ACCOUNT_IDS for c in ACCOUNT_IDS if d != c] + [(2, 2)]),
    amount=st.sampled_from(AMOUNTS) | st.integers(1, 2_000) | st.integers(1, 2_000),
    flags=st.sampled_from(FLAGS),
    hold=st.integers(0, 7),  # which of the holds sent so far a post or void names, newest first
    resolve_amount=st.sampled_from(RESOLVE_AMOUNTS),
    timeout=st.sampled_from([0, 1, 1, 2, 5]),
)
steps = st.tuples(
    st.lists(transfers, min_size=1, max_size=8),
    st.sampled_from([0, 1, SECOND - 1, SECOND, 2 * SECOND, 6 * SECOND]),  # then the clock moves on
    st.sampled_from([None] * 6 + ["checkpoint", "restart"]),  # and the ledger may checkpoint or restart
)


class Sender:
    """Makes transfers of the drawn fields: fresh ids (or a retried one), posts and voids of holds sent before."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.holds: list[int] = []

    def transfer(self, fields: dict[str, Any]) -> Transfer:
        flags = fields["flags"]
        resolves = flags & (TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER)
        transfer_id = (
            self.ids[-1 - fields["hold"] % len(self.ids)] if fields["repeat"] and self.ids else len(self.ids) + 1
        )
        self.ids.append(transfer_id)
        if flags & TF.PENDING:
            self.holds.append(transfer_id)
        debit, credit = fields["accounts"]
        return Transfer(
            id=transfer_id,
            debit_account_id=0 if resolves else debit,
            credit_account_id=0 if resolves else credit,
            amount=fields["resolve_amount"] if resolves else fields["amount"],
            ledger=LEDGER,
            code=1,
            flags=flags,
            pending_id=self.holds[-1 - fields["hold"] % len(self.holds)] if resolves and self.holds else 0,
            timeout=fields["timeout"] if flags & TF.PENDING else 0,
        )


async def journal_of(
    url: str, account_flags: list[int], plan: list[tuple[list[dict[str, Any]], int, str | None]]
) -> tuple[bytes, bytes]:
    """Run the plan through the ledger; the engine's accounts and transfer statuses at the end."""
    clock = ManualClock()
    settings_ = config(url, checkpoint_every_transfers=7)
    ledger = await Ledger.open(settings_, clock=clock)
    try:
        accounts = [
            Account(id=i, ledger=LEDGER, code=1, flags=f) for i, f in zip(ACCOUNT_IDS, account_flags, strict=True)
        ]
        await ledger.create_accounts(pack_accounts(accounts))
        # Money to move: the unlimited first account funds the others.
        await ledger.create_transfers(pack_transfers([
            Transfer(id=100_000 + i, debit_account_id=1, credit_account_id=i, amount=5_000, ledger=LEDGER, code=1)
            for i in ACCOUNT_IDS[1:]
        ]))  # fmt: skip
        sender = Sender()
        for batch, step_ns, then in plan:
            await ledger.create_transfers(pack_transfers([sender.transfer(fields) for fields in batch]))
            clock.advance(ns=step_ns)
            if then == "checkpoint":
                await ledger.checkpoint()
            elif then == "restart":
                await ledger.close(checkpoint=False)
                ledger = await Ledger.open(settings_, clock=clock)
        snapshot = ledger._engine.export_snapshot()
        return snapshot.accounts, snapshot.transfer_status
    finally:
        await ledger.close()


@settings(max_examples=max(20, settings().max_examples // 30))
@given(
    account_flags=st.lists(st.sampled_from(ACCOUNT_FLAGS), min_size=len(ACCOUNT_IDS) - 1,
                           max_size=len(ACCOUNT_IDS) - 1).map(lambda flags: [0, *flags]),
    plan=st.lists(steps, min_size=1, max_size=12),
)  # fmt: skip
def test_whatever_the_ledger_journals_audits_clean(
    account_flags: list[int], plan: list[tuple[list[dict[str, Any]], int, str | None]]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'journal.sqlite3'}"
        accounts, statuses = asyncio.run(journal_of(url, account_flags, plan))
        books: list[Books] = []
        journal = open_journal(url)
        try:
            verdict = audit(journal, on_commit=lambda commit, state: books.__setitem__(slice(None), [state]))
        finally:
            journal.close()
    tally = verdict.tally
    for name, count in [*tally.resolved.items(), ("balancing", tally.balancing), ("closing", tally.closing),
                        ("linked", tally.linked), ("history", tally.balance_entries)]:  # fmt: skip
        event(f"{name}: {'some' if count else 'none'}")
    assert verdict.clean, str(verdict.problem)
    assert b"".join(account.record() for account in books[0].account_order) == accounts
    assert bytes(books[0].status) == statuses
