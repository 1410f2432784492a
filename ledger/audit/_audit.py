"""The audit: replay a journal snapshot through the auditor's own model and give a verdict.

Checked, commit by commit in seq order, stopping at the first problem (after
it the books are no longer what the journal means, so later findings would
only echo it):

- each row's bytes: whole records, transfers_count, the LZ4 blocks, the CRC
  (which covers the domain layer's records too; they are counted, not read);
- the sequence: seq 1, 2, 3, … with no gap, and each commit's
  accounts_first / transfers_first equal to the records before it;
- time: every record's timestamp after the previous commit's
  timestamp_last (and the checkpoint's, past one) and at most its own, and
  each commit's timestamp_last after the one before (or equal, for a commit
  of domain records alone);
  accounts and transfers each strictly increasing; a linked chain of
  consecutive timestamps, whole within its commit;
- every account and transfer record against the model (ledger.audit._model),
  each expiry at its place, and the balance-history entries the commit
  carries against those its transfers make;
- every checkpoint in the store against the books at its seq: every account
  record byte for byte (balances, flags) and every transfer's status;
- the stored transfer ids (from version 6): each segment's checksum, from
  ordinal 0 with no gap, every id equal to the id of the transfer at its
  ordinal, none past the journal's transfers;
- at the end, the invariants of every ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ._journal import (
    ACCOUNT_SIZE,
    BALANCE_SIZE,
    TRANSFER_SIZE,
    CheckpointHead,
    Journal,
    JournalDamage,
    StoredCheckpoint,
    StoredCommit,
    StoredIds,
)
from ._model import (
    ACCOUNT_RECORD,
    AF,
    BALANCE_RECORD,
    EXPIRED_RECORD,
    STATUS_NAMES,
    TF,
    AccountState,
    Books,
    LedgerTotals,
    Tally,
    TransferRecord,
    Violation,
    transfer_records,
)

_U64: int = 2**64 - 1
_ACCOUNT_FIELDS = ("id (low 64 bits)", "id (high 64 bits)", "debits_pending", "debits_posted", "credits_pending",
                   "credits_posted", "ledger", "code", "flags", "timestamp", "user_data_128 (low 64 bits)",
                   "user_data_128 (high 64 bits)", "user_data_64", "user_data_32", "reserved", "reserved")  # fmt: skip
_BALANCE_FIELDS = ("account id (low 64 bits)", "account id (high 64 bits)", "timestamp", "debits_pending",
                   "debits_posted", "credits_pending", "credits_posted", "reserved")  # fmt: skip

Progress = Callable[[int, int], None]
"""progress(transfers read, transfers in the snapshot), after every commit."""
CommitObserver = Callable[[StoredCommit, Books], None]
"""Called after each commit has been checked and booked (an export writes its rows there)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong: where (a commit or a checkpoint, its seq, the record) and what."""

    what: str
    """'journal commit', 'checkpoint' or 'journal'."""
    seq: int
    record: str
    """Which record of it ('transfer 3 (ordinal 1045, id 77)'), or '' for the row as a whole."""
    message: str

    def __str__(self) -> str:
        return f"{self.what} seq={self.seq}{', ' + self.record if self.record else ''}: {self.message}"


@dataclass(slots=True)
class Verdict:
    store: str
    problem: Problem | None = None
    seq_last: int = 0
    """The last commit checked (with a problem: the last one before it)."""
    checkpoints: list[int] = field(default_factory=list)
    """Seqs of the checkpoints that were compared and agreed."""
    transfer_ids: int = 0
    """Transfers whose stored id was compared with the journal's and agreed."""
    tally: Tally = field(default_factory=Tally)
    ledgers: dict[int, LedgerTotals] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return self.problem is None


class _Found(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def audit(journal: Journal, *, progress: Progress | None = None, on_commit: CommitObserver | None = None) -> Verdict:
    """Check the whole journal snapshot; the verdict names the first problem, if any."""
    started = time.perf_counter()
    books = Books()
    verdict = Verdict(store=journal.description, tally=books.tally)
    try:
        _run(journal, books, verdict, progress, on_commit)
    except _Found as found:
        verdict.problem = found.problem
    except JournalDamage as exc:
        verdict.problem = Problem(exc.what, exc.seq, "", exc.message)
    verdict.ledgers = books.ledgers()
    verdict.seconds = time.perf_counter() - started
    return verdict


def _run(
    journal: Journal, books: Books, verdict: Verdict, progress: Progress | None, on_commit: CommitObserver | None
) -> None:
    extent = journal.extent()
    heads = {head.seq: head for head in journal.checkpoints()}
    floor = 0  # every record of the next commit is after this timestamp
    if 0 in heads:  # a checkpoint of the empty ledger
        floor = _compare_checkpoint(journal, heads[0], books, floor)
        verdict.checkpoints.append(0)
    seq_last = 0
    ids = _TransferIds(journal.transfer_ids())
    for commit in journal.commits():
        if commit.seq != seq_last + 1:
            raise _Found(Problem(
                "journal commit", seq_last + 1, "",
                f"is missing (the next stored is seq={commit.seq}): the journal is truncated or damaged",
            ))  # fmt: skip
        if (commit.accounts_first, commit.transfers_first) != (books.tally.accounts, books.tally.transfers):
            raise _Found(Problem(
                "journal commit", commit.seq, "",
                f"starts at account ordinal {commit.accounts_first} and transfer ordinal {commit.transfers_first}, "
                f"but the commits before it hold {books.tally.accounts} accounts and {books.tally.transfers} transfers",
            ))  # fmt: skip
        # A commit of domain records alone moves no engine time: its timestamp_last may equal the state's before.
        engine_records = commit.accounts or commit.transfers or commit.expired
        if commit.timestamp_last < floor or (engine_records and commit.timestamp_last == floor):
            raise _Found(Problem(
                "journal commit", commit.seq, "",
                f"timestamp_last {commit.timestamp_last} is "
                f"{'not after' if engine_records else 'before'} the state before it ({floor})",
            ))  # fmt: skip
        _apply_commit(books, commit, floor)
        verdict.transfer_ids = ids.check(commit)
        if commit.domain:
            books.tally.domain_commits += 1
            books.tally.domain_bytes += len(commit.domain)
        seq_last = verdict.seq_last = commit.seq
        floor = commit.timestamp_last
        if commit.seq in heads:
            floor = _compare_checkpoint(journal, heads[commit.seq], books, floor)
            verdict.checkpoints.append(commit.seq)
        if on_commit is not None:
            on_commit(commit, books)
        if progress is not None:
            progress(books.tally.transfers, extent.transfers_count)
    ids.finish(books.tally.transfers)
    past = sorted(seq for seq in heads if seq > seq_last)
    if past:
        raise _Found(Problem(
            "checkpoint", past[0], "", f"is past the end of the journal (last seq={seq_last}): the journal is truncated"
        ))  # fmt: skip
    try:
        books.check_invariants()
    except Violation as exc:
        raise _Found(Problem("journal", seq_last, "at its end", str(exc))) from None


class _TransferIds:
    """The stored transfer ids, compared with the journal's transfers commit by commit."""

    def __init__(self, segments: Iterator[StoredIds]) -> None:
        self.segments = segments
        self.first = 0
        """The ordinal of the first id in `ids`."""
        self.ids = b""
        self.exhausted = False

    def _pull(self, upto: int) -> None:
        """Take segments until the ids reach ordinal `upto` or there are no more."""
        while not self.exhausted and self.first + len(self.ids) // 16 < upto:
            segment = next(self.segments, None)
            if segment is None:
                self.exhausted = True
                return
            end = self.first + len(self.ids) // 16
            if segment.transfers_first != end:
                raise _Found(Problem(
                    "transfer ids", segment.transfers_first, "",
                    f"start at ordinal {segment.transfers_first}, where the ids before them end at {end}",
                ))  # fmt: skip
            self.ids += segment.ids

    def check(self, commit: StoredCommit) -> int:
        """Compare the ids of the commit's transfers; the ordinal up to which ids agreed."""
        count = len(commit.transfers) // TRANSFER_SIZE
        self._pull(commit.transfers_first + count)
        known = min(count, len(self.ids) // 16)
        for index in range(known):
            stored = self.ids[16 * index : 16 * index + 16]
            record = commit.transfers[TRANSFER_SIZE * index : TRANSFER_SIZE * index + 16]
            if stored != record:
                ordinal = commit.transfers_first + index
                raise _Found(Problem(
                    "transfer ids", ordinal, f"ordinal {ordinal}",
                    f"is id {int.from_bytes(stored, 'little')}, the journal's transfer there (commit seq="
                    f"{commit.seq}) id {int.from_bytes(record, 'little')}",
                ))  # fmt: skip
        self.ids = self.ids[16 * known :]
        self.first += known
        return self.first

    def finish(self, transfers: int) -> None:
        self._pull(transfers + 1)
        if self.ids:
            raise _Found(Problem(
                "transfer ids", self.first, "", f"go past the journal's {transfers} transfers"
            ))  # fmt: skip


def _id_of(record: tuple[int, ...]) -> int:
    return record[0] | record[1] << 64


def _apply_commit(books: Books, commit: StoredCommit, floor: int) -> None:
    seq = commit.seq

    def found(record: str, message: str) -> _Found:
        return _Found(Problem("journal commit", seq, record, message))

    def in_time(timestamp: int) -> None:
        if not floor < timestamp <= commit.timestamp_last:
            span = f"({floor}, {commit.timestamp_last}]"
            raise Violation(f"timestamp {timestamp} is outside this commit's time {span}")

    # Accounts first: a commit's accounts come from calls applied before or between its transfers, and each
    # transfer is checked against its accounts' creation timestamps.
    accounts = list(ACCOUNT_RECORD.iter_unpack(commit.accounts))
    for index, record in enumerate(accounts):
        where = f"account {index} (ordinal {commit.accounts_first + index}, id {_id_of(record)})"
        try:
            in_time(record[9])
            account = books.create_account(record[:-1], record[-1])
        except Violation as exc:
            raise found(where, str(exc)) from None
        if account.flags & AF.LINKED and not (index + 1 < len(accounts) and accounts[index + 1][9] == record[9] + 1):
            raise found(where, "a linked chain of accounts is not whole in this commit")

    expiries: dict[int, list[int]] = {}
    ordinal_previous = commit.transfers_first
    end = commit.transfers_first + commit.transfers_count
    for index, (id_lo, id_hi, ordinal) in enumerate(EXPIRED_RECORD.iter_unpack(commit.expired)):
        if not ordinal_previous <= ordinal <= end:
            raise found(
                f"expired entry {index} (hold {id_lo | id_hi << 64})",
                f"points at transfer ordinal {ordinal}, outside {ordinal_previous}..{end}",
            )
        expiries.setdefault(ordinal, []).append(id_lo | id_hi << 64)
        ordinal_previous = ordinal

    expected_balances: list[bytes] = []
    previous: TransferRecord | None = None

    def expire_at(ordinal: int, not_before: int) -> None:
        for hold_id in expiries.get(ordinal, ()):
            where = f"expired entry (hold {hold_id}, before transfer ordinal {ordinal})"
            if previous is not None and previous.flags & TF.LINKED:
                raise found(where, "a hold expires inside a linked chain")
            try:
                books.expire(hold_id, not_before, ordinal)
            except Violation as exc:
                raise found(where, str(exc)) from None

    for index, t in enumerate(transfer_records(commit.transfers)):
        ordinal = commit.transfers_first + index
        if expiries:
            expire_at(ordinal, t.timestamp)
        try:
            in_time(t.timestamp)
            if previous is not None and previous.flags & TF.LINKED and t.timestamp != previous.timestamp + 1:
                raise Violation(f"follows a linked transfer ({previous.id}) that is not the event before it")
            touched = books.apply_transfer(t, ordinal)
        except Violation as exc:
            raise found(f"transfer {index} (ordinal {ordinal}, id {t.id})", str(exc)) from None
        if (touched[0].flags | touched[1].flags) & AF.HISTORY:
            expected_balances.extend(_balance_entry(account, t.timestamp) for account in touched
                                     if account.flags & AF.HISTORY)  # fmt: skip
        previous = t
    if previous is not None and previous.flags & TF.LINKED:
        raise found(f"transfer {commit.transfers_count - 1} (ordinal {end - 1}, id {previous.id})",
                    "a linked chain is left open at the end of the commit")  # fmt: skip
    expire_at(end, commit.timestamp_last)
    _compare_balances(commit, expected_balances, found)
    books.tally.balance_entries += len(expected_balances)


def _balance_entry(account: AccountState, timestamp: int) -> bytes:
    return BALANCE_RECORD.pack(account.id & _U64, account.id >> 64, timestamp, *account.balances(), 0)


def _compare_balances(commit: StoredCommit, expected: list[bytes], found: Callable[[str, str], _Found]) -> None:
    stored_count = len(commit.balances) // BALANCE_SIZE
    if b"".join(expected) == commit.balances:
        return
    for index in range(min(stored_count, len(expected))):
        stored = commit.balances[index * BALANCE_SIZE : (index + 1) * BALANCE_SIZE]
        if stored != expected[index]:
            ours, theirs = BALANCE_RECORD.unpack(expected[index]), BALANCE_RECORD.unpack(stored)
            name, mine, journaled = _first_difference(_BALANCE_FIELDS, ours, theirs)
            raise found(
                f"balance entry {index} (account {ours[0] | ours[1] << 64}, after the transfer at {ours[2]})",
                f"{name} is {journaled}, the transfers give {mine}",
            )
    raise found("balance entries", f"the commit holds {stored_count}, its transfers on HISTORY accounts make "
                f"{len(expected)}")  # fmt: skip


def _first_difference(
    names: tuple[str, ...], ours: tuple[object, ...], theirs: tuple[object, ...]
) -> tuple[str, object, object]:
    for name, mine, stored in zip(names, ours, theirs, strict=True):
        if mine != stored:
            return name, mine, stored
    raise AssertionError("the records differ")


def _compare_checkpoint(journal: Journal, head: CheckpointHead, books: Books, floor: int) -> int:
    """Compare a checkpoint with the books at its seq; the timestamp every later record must pass."""
    checkpoint = journal.checkpoint(head)

    def found(record: str, message: str) -> _Found:
        return _Found(Problem("checkpoint", head.seq, record, message))

    if checkpoint.timestamp_last < floor:
        raise found("", f"timestamp_last {checkpoint.timestamp_last} is before its commit's ({floor})")
    _compare_accounts(checkpoint, books, found)
    if checkpoint.transfer_status != books.status:
        if len(checkpoint.transfer_status) != len(books.status):
            raise found("", f"holds {len(checkpoint.transfer_status)} transfer statuses, "
                        f"the journal up to it {len(books.status)} transfers")  # fmt: skip
        pairs = zip(checkpoint.transfer_status, books.status, strict=True)
        ordinal = next(i for i, (stored, ours) in enumerate(pairs) if stored != ours)
        holds = [hold.id for hold in books.holds.values() if hold.ordinal == ordinal]
        named = f"transfer ordinal {ordinal}" + (f" (hold {holds[0]})" if holds else "")
        stored, ours = checkpoint.transfer_status[ordinal], books.status[ordinal]
        raise found(named, f"status is {STATUS_NAMES.get(stored, stored)}, the journal gives "
                    f"{STATUS_NAMES.get(ours, 'none (not a hold)')}")  # fmt: skip
    return checkpoint.timestamp_last


def _compare_accounts(checkpoint: StoredCheckpoint, books: Books, found: Callable[[str, str], _Found]) -> None:
    count = len(checkpoint.accounts) // ACCOUNT_SIZE
    if count != len(books.account_order):
        raise found("", f"holds {count} accounts, the journal up to it {len(books.account_order)}")
    expected = b"".join(account.record() for account in books.account_order)
    if expected == checkpoint.accounts:
        return
    for index, account in enumerate(books.account_order):
        stored = checkpoint.accounts[index * ACCOUNT_SIZE : (index + 1) * ACCOUNT_SIZE]
        mine = account.record()
        if stored != mine:
            name, ours, theirs = _first_difference(
                _ACCOUNT_FIELDS, ACCOUNT_RECORD.unpack(mine), ACCOUNT_RECORD.unpack(stored)
            )
            raise found(f"account {index} (id {account.id})", f"{name} is {theirs}, the journal gives {ours}")
