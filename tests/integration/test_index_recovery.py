"""Recovery indexes the transfers up to a checkpoint from their stored ids, on both stores.

A checkpoint stores the ids of the transfers it counts (`ledger_transfer_ids`, 16 bytes each); recovery then
reads no commit up to the checkpoint. The state, every retry's answer, the open holds and what a lookup returns
are those of a recovery that reads every record; damaged or missing ids make recovery read the records (and
store the ids again), and the auditor checks the ids against the journal.
"""

from __future__ import annotations

from typing import Any

from ledger.core import Ledger
from ledger.engine import CreateTransferResult, Transfer, TransferFlags, TransferStatus, pack_ids
from tests.integration.test_audit import run_audit
from tests.integration.test_journal import config, crash, open_books, run, snapshot, transfers
from tests.integration.test_recovery import fund_wallets, locked_store, pos_calls
from tests.stores import downgrade, execute, fetch
from tests.support import ManualClock

TR = CreateTransferResult
TF = TransferFlags


def write_journal(url: str, clock: ManualClock) -> list[Transfer]:
    """POS calls (payments, holds posted, voided and left open), a checkpoint, more calls, a crash; what was
    sent."""

    async def body() -> list[Transfer]:
        ledger = await Ledger.open(config(url), clock=clock)
        await open_books(ledger)
        await fund_wallets(ledger)
        sent = await pos_calls(ledger, clock, 60)
        assert await ledger.checkpoint() is not None
        sent += await pos_calls(ledger, clock, 30, first_id=20_000)
        await crash(ledger)
        return [t for batch in sent for t in batch]

    return run(body())  # type: ignore[no-any-return]


def read_back(url: str, clock: ManualClock, sent: list[Transfer]) -> tuple[Any, Any, bytes, list[int]]:
    """Open the ledger, read its state, the records of every transfer sent and their statuses, and stop as if
    killed (the journal stays as it was): the recovery report and what was read."""

    async def body() -> tuple[Any, Any, bytes, list[int]]:
        ledger = await Ledger.open(config(url), clock=clock)
        try:
            ids = [t.id for t in sent]
            found = await ledger.lookup_transfers(pack_ids(ids))
            statuses = [await ledger.transfer_status(i) for i in ids]
            return ledger.recovery, await snapshot(ledger), found, statuses
        finally:
            await crash(ledger)

    return run(body())  # type: ignore[no-any-return]


def stored_ids_end(url: str) -> int:
    store = locked_store(url)
    try:
        return store.transfer_ids_end()
    finally:
        store.close()


def test_recovery_from_the_ids_answers_as_one_that_reads_every_record(store_url: str) -> None:
    clock = ManualClock()
    sent = write_journal(store_url, clock)
    from_ids = read_back(store_url, clock, sent)
    report = from_ids[0]
    assert report.index_from_checkpoint
    assert 0 < report.commits_replayed <= 30  # the calls after the checkpoint, not the 60 before it
    execute(store_url, "DELETE FROM ledger_transfer_ids")
    from_records = read_back(store_url, clock, sent)
    assert not from_records[0].index_from_checkpoint
    assert from_records[1:] == from_ids[1:]  # state, records and statuses
    assert len(from_ids[2]) == 128 * len(sent)
    # That recovery stored the ids again, up to the journal's end, and the auditor finds them right.
    assert stored_ids_end(store_url) == report.transfers_count
    verdict = run_audit(store_url)
    assert verdict.clean and verdict.transfer_ids == report.transfers_count


def test_after_recovery_from_the_ids_retries_answer_exists_and_open_holds_can_be_closed(store_url: str) -> None:
    clock = ManualClock()
    sent = write_journal(store_url, clock)

    async def body() -> None:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            assert ledger.recovery.index_from_checkpoint
            assert await transfers(ledger, *sent) == [TR.EXISTS] * len(sent)  # each record read back to compare
            changed = [Transfer(**{**vars_of(t), "amount": t.amount + 1}) for t in sent[:5]]
            assert await transfers(ledger, *changed) == [TR.EXISTS_WITH_DIFFERENT_AMOUNT] * 5
            holds = [t.id for t in sent if t.flags & TF.PENDING]
            open_holds = [h for h in holds if await ledger.transfer_status(h) == TransferStatus.PENDING]
            closed = [h for h in holds if h not in open_holds]
            assert open_holds and closed
            voids = [
                Transfer(id=90_000 + n, pending_id=h, flags=TF.VOID_PENDING_TRANSFER) for n, h in enumerate(open_holds)
            ]
            assert await transfers(ledger, *voids) == [TR.OK] * len(voids)
            late = Transfer(id=95_000, pending_id=closed[0], flags=TF.POST_PENDING_TRANSFER)
            [code] = await transfers(ledger, late)
            assert code in (TR.PENDING_TRANSFER_ALREADY_POSTED, TR.PENDING_TRANSFER_ALREADY_VOIDED,
                            TR.PENDING_TRANSFER_EXPIRED)  # fmt: skip

    run(body())


def vars_of(t: Transfer) -> dict[str, Any]:
    return {name: getattr(t, name) for name in t.__dataclass_fields__}


def test_damaged_ids_are_not_used_and_the_auditor_names_them(store_url: str) -> None:
    clock = ManualClock()
    sent = write_journal(store_url, clock)
    execute(store_url, "UPDATE ledger_transfer_ids SET checksum = checksum + 1 WHERE transfers_first = 0")
    problem = run_audit(store_url).problem
    assert problem is not None and (problem.what, problem.seq) == ("transfer ids", 0)
    assert "checksum" in problem.message
    first = read_back(store_url, clock, sent)
    assert not first[0].index_from_checkpoint  # read from the records instead, and the ids stored again
    assert run_audit(store_url).clean
    second = read_back(store_url, clock, sent)
    assert second[0].index_from_checkpoint and second[1:] == first[1:]


def test_ids_that_disagree_with_the_journal_are_named_by_the_auditor(store_url: str) -> None:
    clock = ManualClock()
    write_journal(store_url, clock)
    [(ids,)] = fetch(store_url, "SELECT ids FROM ledger_transfer_ids WHERE transfers_first = 0")
    damaged = bytearray(ids)
    damaged[16 * 7] ^= 1
    from ledger.journal._store import transfer_ids_checksum

    execute(store_url, "UPDATE ledger_transfer_ids SET ids = %s, checksum = %s WHERE transfers_first = 0",
            bytes(damaged), transfer_ids_checksum(0, bytes(damaged)))  # fmt: skip
    problem = run_audit(store_url).problem
    assert problem is not None and (problem.what, problem.seq, problem.record) == ("transfer ids", 7, "ordinal 7")


def test_a_journal_of_version_5_gets_its_ids_at_its_first_recovery(store_url: str) -> None:
    clock = ManualClock()
    sent = write_journal(store_url, clock)
    downgrade(store_url, 5)
    first = read_back(store_url, clock, sent)
    assert not first[0].index_from_checkpoint
    assert stored_ids_end(store_url) == first[0].transfers_count
    second = read_back(store_url, clock, sent)
    assert second[0].index_from_checkpoint
    assert second[1:] == first[1:]
