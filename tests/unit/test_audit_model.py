"""The auditor's model and reader on hand-made journals: each rule it checks, its independence, its constants."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

import ledger.audit
from ledger.audit import CheckpointHead, Extent, StoredCheckpoint, StoredCommit, StoredIds, _journal, _model, audit
from ledger.engine import Account, AccountFlags, Transfer, TransferFlags, TransferStatus
from ledger.journal import Checkpoint, Commit
from ledger.journal._blocks import TRANSFER_BLOCK_RECORDS, compress_transfers
from ledger.records import layout as _layout
from ledger.records import limits as _limits
from tests.support import SECOND, START_NS

TF = TransferFlags
AF = AccountFlags
LEDGER = 978
T0 = START_NS


# --- the auditor depends on nothing it checks --------------------------------------------------------


def test_the_auditor_imports_nothing_of_the_ledgers_engine_or_journal() -> None:
    package = Path(ledger.audit.__file__).parent
    imported: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.split(".")[0] == "ledger"}
    assert ours == set(), f"the auditor must read the journal from its documentation alone, not through {ours}"


def test_its_own_constants_say_what_the_ledger_does() -> None:
    assert (_model.AMOUNT_MAX, _model.TIMESTAMP_MAX, _model.ID_MAX) == (
        _limits.AMOUNT_MAX, _limits.TIMESTAMP_MAX, _limits.ID_INT_MAX,
    )  # fmt: skip
    assert _model.NANOSECONDS_PER_SECOND == _limits.NANOSECONDS_PER_SECOND
    for flag in AF:
        if flag.name != "NONE":
            assert getattr(_model.AF, flag.name) == flag.value, flag
    for tflag in TF:
        if tflag.name != "NONE":
            assert getattr(_model.TF, tflag.name) == tflag.value, tflag
    assert sum(int(f) for f in AF) == _model.AF.KNOWN and sum(int(f) for f in TF) == _model.TF.KNOWN
    for status in TransferStatus:
        assert getattr(_model.Status, status.name) == status.value
    assert _model.ACCOUNT_RECORD.format == _layout.ACCOUNT_STRUCT.format
    assert _model.TRANSFER_RECORD.format == _layout.TRANSFER_STRUCT.format
    assert _model.BALANCE_RECORD.format == _layout.ACCOUNT_BALANCE_STRUCT.format
    assert _journal.BLOCK_RECORDS == TRANSFER_BLOCK_RECORDS


def test_its_checksums_and_blocks_are_the_ledgers() -> None:
    records = os.urandom(3 * 128), os.urandom(130 * 128), os.urandom(2 * 24), os.urandom(64)
    commit = Commit.seal(seq=7, timestamp_last=T0, accounts_first=3, transfers_first=9, accounts=records[0],
                         transfers=records[1], expired=records[2], balances=records[3])  # fmt: skip
    assert _journal.commit_checksum(7, T0, 3, 9, *records) == commit.checksum
    blocks, ends = compress_transfers(records[1])
    assert _journal.decompress_blocks(7, blocks, ends, 130) == records[1]
    checkpoint = Checkpoint.seal(seq=7, timestamp_last=T0, accounts=records[0], transfer_status=b"\x00\x01\x02")
    assert _journal.checkpoint_checksum(7, T0, records[0], b"\x00\x01\x02") == checkpoint.checksum
    domain = os.urandom(40)  # the domain layer's records and snapshot: opaque, but in the checksums
    commit = Commit.seal(seq=7, timestamp_last=T0, accounts_first=3, transfers_first=9, accounts=records[0],
                         transfers=records[1], expired=records[2], balances=records[3], domain=domain)  # fmt: skip
    assert _journal.commit_checksum(7, T0, 3, 9, *records, domain) == commit.checksum
    checkpoint = Checkpoint.seal(seq=7, timestamp_last=T0, accounts=records[0], transfer_status=b"\x01", domain=domain)
    assert _journal.checkpoint_checksum(7, T0, records[0], b"\x01", domain) == checkpoint.checksum


# --- a journal made by hand ------------------------------------------------------------------------


@dataclass
class Journal:
    """A journal held in memory, sealed commit by commit as the ledger writes them."""

    rows: list[StoredCommit] = field(default_factory=list)
    heads: list[CheckpointHead] = field(default_factory=list)
    stored: dict[int, StoredCheckpoint] = field(default_factory=dict)
    description: str = "hand-made"
    accounts_count: int = 0
    transfers_count: int = 0
    now: int = T0

    def tick(self) -> int:
        self.now += 1
        return self.now

    def commit(self, *, accounts: list[Account] = (), transfers: list[Transfer] = (),  # type: ignore[assignment]
               expired: list[tuple[int, int]] = (), balances: bytes = b"",  # type: ignore[assignment]
               timestamp_last: int | None = None, domain: bytes = b"") -> None:  # fmt: skip
        accounts_blob = b"".join(a.pack() for a in accounts)
        transfers_blob = b"".join(t.pack() for t in transfers)
        expired_blob = b"".join(_model.EXPIRED_RECORD.pack(i & (2**64 - 1), i >> 64, o) for i, o in expired)
        self.rows.append(StoredCommit(
            len(self.rows) + 1, timestamp_last or self.now, self.accounts_count, self.transfers_count,
            accounts_blob, transfers_blob, expired_blob, balances, domain,
        ))  # fmt: skip
        self.accounts_count += len(accounts)
        self.transfers_count += len(transfers)

    def extent(self) -> Extent:
        return Extent(len(self.rows), self.transfers_count)

    def commits(self) -> Iterator[StoredCommit]:
        return iter(self.rows)

    def checkpoints(self) -> list[CheckpointHead]:
        return self.heads

    def checkpoint(self, head: CheckpointHead) -> StoredCheckpoint:
        return self.stored[head.seq]

    def transfer_ids(self) -> Iterator[StoredIds]:
        return iter(())  # a journal of a store before version 6: no ids stored

    def close(self) -> None:
        pass


def books(flags: int = 0) -> Journal:
    """Funding, a wallet with `flags` and a shop, and 1000 on the wallet."""
    journal = Journal()
    journal.commit(accounts=[
        Account(id=1, ledger=LEDGER, code=1, timestamp=journal.tick()),
        Account(id=2, ledger=LEDGER, code=2, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS | flags, timestamp=journal.tick()),
        Account(id=3, ledger=LEDGER, code=3, timestamp=journal.tick()),
    ])  # fmt: skip
    journal.commit(transfers=[transfer(journal, 10, 1, 2, 1000)], balances=history(journal, 2, 0, 0, 0, 1000)
                   if flags & AF.HISTORY else b"")  # fmt: skip
    return journal


def transfer(
    journal: Journal, id_: int, debit: int, credit: int, amount: int, flags: int = 0, **fields: int
) -> Transfer:
    return Transfer(id=id_, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger=LEDGER, code=1,
                    flags=flags, timestamp=journal.tick(), **fields)  # fmt: skip


def history(journal: Journal, account: int, *balances: int) -> bytes:
    return _model.BALANCE_RECORD.pack(account, 0, journal.now, *balances, 0)


def problem_of(journal: Journal) -> str:
    verdict = audit(journal)  # type: ignore[arg-type]
    assert verdict.problem is not None, "expected a problem"
    return str(verdict.problem)


def test_a_hand_made_journal_is_clean() -> None:
    journal = books(AF.HISTORY)
    hold = transfer(journal, 11, 2, 3, 400, TF.PENDING, timeout=5)
    journal.commit(transfers=[hold], balances=history(journal, 2, 400, 0, 0, 1000))
    post = transfer(journal, 12, 2, 3, 300, TF.POST_PENDING_TRANSFER, pending_id=11)
    journal.commit(transfers=[post], balances=history(journal, 2, 0, 300, 0, 1000))
    verdict = audit(journal)  # type: ignore[arg-type]
    assert verdict.clean, verdict.problem
    assert verdict.tally.balance_entries == 3 and verdict.tally.resolved["posted"] == 1


def test_a_hold_released_before_its_timeout_is_refused() -> None:
    journal = books()
    hold = transfer(journal, 11, 2, 3, 400, TF.PENDING, timeout=5)
    journal.commit(transfers=[hold])
    journal.now += 4 * SECOND
    journal.commit(transfers=[transfer(journal, 12, 1, 3, 1)], expired=[(11, 2)])
    assert problem_of(journal) == (
        f"journal commit seq=4, expired entry (hold 11, before transfer ordinal 2): hold 11 expires at "
        f"{hold.timestamp + 5 * SECOND}, but is released by a call at {journal.now}"
    )


def test_a_post_after_the_hold_expired_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 400, TF.PENDING, timeout=1)])
    journal.now += 2 * SECOND
    journal.commit(expired=[(11, 2)], timestamp_last=journal.tick())
    journal.commit(transfers=[transfer(journal, 12, 2, 3, 400, TF.POST_PENDING_TRANSFER, pending_id=11)])
    assert problem_of(journal).endswith("transfer 0 (ordinal 2, id 12): post of hold 11, which is already expired")


def test_a_post_of_more_than_the_hold_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 400, TF.PENDING)])
    journal.commit(transfers=[transfer(journal, 12, 2, 3, 401, TF.POST_PENDING_TRANSFER, pending_id=11)])
    assert problem_of(journal).endswith("posts 401, more than hold 11 reserved (400)")


def test_a_void_of_another_amount_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 400, TF.PENDING)])
    journal.commit(transfers=[transfer(journal, 12, 2, 3, 300, TF.VOID_PENDING_TRANSFER, pending_id=11)])
    assert problem_of(journal).endswith("voids 300, hold 11 reserved 400")


def test_a_balancing_debit_of_more_than_was_there_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 1, 3, 5000, TF.BALANCING_DEBIT)])
    assert problem_of(journal).endswith("balancing debit moved 5000, debit account 1 had 0")


def test_a_transfer_on_a_closed_account_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 1, TF.PENDING | TF.CLOSING_DEBIT)])
    journal.commit(transfers=[transfer(journal, 12, 2, 3, 1)])
    assert problem_of(journal).endswith("transfer 0 (ordinal 2, id 12): debit account 2 is closed")


def test_a_linked_chain_cut_at_the_end_of_a_commit_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 1, TF.LINKED)])
    assert problem_of(journal).endswith("a linked chain is left open at the end of the commit")


def test_a_wallet_paying_more_than_it_has_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 1001)])
    assert problem_of(journal).endswith(
        "account 2 (debits_must_not_exceed_credits): debits 1001 pass its posted credits 1000"
    )


def test_a_repeated_transfer_id_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 10, 1, 3, 1)])
    assert problem_of(journal).endswith("transfer id 10 was journaled before")


def test_a_transfer_before_its_account_existed_is_refused() -> None:
    journal = Journal()
    journal.commit(accounts=[Account(id=1, ledger=LEDGER, code=1, timestamp=journal.tick())])
    early = transfer(journal, 10, 1, 2, 5)
    journal.commit(accounts=[Account(id=2, ledger=LEDGER, code=1, timestamp=journal.tick())], transfers=[early])
    assert problem_of(journal).endswith(f"credit account 2 does not exist at {early.timestamp}")


def test_a_balance_entry_that_disagrees_is_refused() -> None:
    journal = books(AF.HISTORY)
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 10)], balances=history(journal, 2, 0, 11, 0, 1000))
    assert problem_of(journal).endswith(
        f"balance entry 0 (account 2, after the transfer at {journal.now}): debits_posted is 11, the transfers give 10"
    )


def test_a_timestamp_outside_its_commit_is_refused() -> None:
    journal = books()
    first, second = transfer(journal, 11, 1, 3, 1), transfer(journal, 12, 1, 3, 1)
    journal.commit(transfers=[first, second], timestamp_last=first.timestamp)
    assert problem_of(journal).endswith(
        f"transfer 1 (ordinal 2, id 12): timestamp {second.timestamp} is outside this commit's time "
        f"({first.timestamp - 1}, {first.timestamp}]"
    )


def test_a_commit_of_domain_records_alone_may_keep_the_time_before_it() -> None:
    journal = books()
    journal.commit(domain=b"tenant renamed")  # no engine records: the engine's time is where it was
    verdict = audit(journal)  # type: ignore[arg-type]
    assert verdict.clean, verdict.problem
    assert (verdict.tally.domain_commits, verdict.tally.domain_bytes) == (1, len(b"tenant renamed"))
    journal.commit(domain=b"grant 7 expired", timestamp_last=journal.now - 1)
    assert f"journal commit seq=4: timestamp_last {journal.now - 1} is before the state before it" in problem_of(
        journal
    )


def test_a_checkpoint_with_another_status_is_refused() -> None:
    journal = books()
    journal.commit(transfers=[transfer(journal, 11, 2, 3, 400, TF.PENDING)])
    model = _model.Books()
    for commit in journal.commits():
        for record in _model.ACCOUNT_RECORD.iter_unpack(commit.accounts):
            model.create_account(record[:-1], record[-1])
    accounts = b"".join(a.record() for a in model.account_order)
    # The right balances, but the hold (ordinal 1) shown as posted.
    wallet = Account.unpack(accounts, 128)
    accounts = accounts[:128] + replace(wallet, debits_pending=400, credits_posted=1000).pack() + accounts[256:]
    shop = Account.unpack(accounts, 256)
    funding = Account.unpack(accounts, 0)
    accounts = (replace(funding, debits_posted=1000).pack() + accounts[128:256]
                + replace(shop, credits_pending=400).pack())  # fmt: skip
    journal.heads = [CheckpointHead(3, journal.now, 0)]
    journal.stored[3] = StoredCheckpoint(3, journal.now, accounts, bytes([0, TransferStatus.POSTED]))
    assert (
        problem_of(journal)
        == "checkpoint seq=3, transfer ordinal 1 (hold 11): status is posted, the journal gives pending"
    )


@pytest.mark.parametrize("count", [1, 63, 64, 65, 200])
def test_blocks_of_any_count_decompress(count: int) -> None:
    records = os.urandom(count * 128)
    blocks, ends = compress_transfers(records)
    assert _journal.decompress_blocks(1, blocks, ends, count) == records
    with pytest.raises(_journal.JournalDamage, match="seq=1"):
        _journal.decompress_blocks(1, blocks[:-1], ends, count)
