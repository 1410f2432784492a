"""Group commit: one thread makes everything pending durable in one transaction.

The engine's caller hands over each call's entries (`append`) and gets a
ticket; the writer thread takes all that is pending, writes it as commits in
one transaction, and then reports the highest ticket it made durable. While
that transaction is in flight the engine goes on applying the next calls, and
their entries wait for the next transaction: the busier the ledger, the
larger each commit, and the durability cost is paid per commit, not per
transfer.

If the store fails, the same commits are retried (with the same seqs, so a
transaction that landed without its acknowledgement is recognised) until it
is back; meanwhile the owner refuses new writes.

An append is never split: its entries and its domain records (the domain
layer's, opaque bytes here) go into one batch, so they land in one commit,
and a crash leaves both or neither. A batch is closed once it reaches
commit_bytes_max, so a commit passes it by at most one append.

Checkpoints are saved by a thread of their own once the commits they cover
are durable: sealing and deflating a snapshot of a million accounts takes a
second or two, and the commits behind it must not wait for that.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.records.layout import Buffer

from ._format import Checkpoint, Commit, JournalError
from ._store import Store, StoreUnavailable, save_transfer_ids, transfer_ids_of

logger = logging.getLogger(__name__)

RETRY_DELAY_MIN_SECONDS = 0.05
RETRY_DELAY_MAX_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Snapshot:
    accounts: bytes
    transfer_status: bytes
    timestamp_last: int
    on_saved: Callable[[int | None], None] | None
    """Called on the writer thread with the checkpoint's seq, or None if it could not be saved."""
    domain: bytes | Callable[[], bytes] = b""
    """The domain's snapshot, or what makes it on the checkpoint thread (ledger.core._forked)."""


@dataclass(slots=True, kw_only=True)
class _Batch:
    """Entries to become one commit (or several, past commit_bytes_max)."""

    accounts_first: int
    transfers_first: int
    accounts: bytearray = field(default_factory=bytearray)
    transfers: bytearray = field(default_factory=bytearray)
    expired: bytearray = field(default_factory=bytearray)
    balances: bytearray = field(default_factory=bytearray)
    domain: bytearray = field(default_factory=bytearray)
    timestamp_last: int = 0
    ticket: int = 0
    snapshot: _Snapshot | None = None
    """To checkpoint once this batch is durable; closes the batch."""

    @property
    def size(self) -> int:
        return len(self.accounts) + len(self.transfers) + len(self.expired) + len(self.balances) + len(self.domain)


@dataclass(frozen=True, slots=True)
class WriterStats:
    commits_total: int
    commit_seconds_total: float
    seq_last: int
    """The newest commit numbered; the store may not have it yet."""
    seq_durable: int
    """The newest commit the store confirmed: every commit up to it is stored."""
    ticket_durable: int
    backlog_bytes: int
    checkpoints_total: int


class GroupCommitWriter:
    """The journal's single writer thread.

    `append`, `checkpoint` and `backlog_bytes` are called from the owner's
    thread; the callbacks run on the writer thread (the owner hops them back
    to its own).
    """

    def __init__(
        self,
        store: Store,
        *,
        seq_last: int,
        accounts_count: int,
        transfers_count: int,
        commit_bytes_max: int,
        on_durable: Callable[[int], None],
        on_unavailable: Callable[[BaseException], None],
        on_available: Callable[[], None],
        on_fatal: Callable[[BaseException], None],
        on_commit: Callable[[int, int, float], None] | None = None,
        on_written: Callable[[list[Commit]], None] | None = None,
    ) -> None:
        self._store = store
        self._seq_last = seq_last
        self._seq_durable = seq_last
        self._accounts_count = accounts_count
        self._transfers_count = transfers_count
        self._commit_bytes_max = commit_bytes_max
        self._on_durable = on_durable
        self._on_unavailable = on_unavailable
        self._on_available = on_available
        self._on_fatal = on_fatal
        self._on_commit = on_commit
        self._on_written = on_written
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[_Batch] = []
        self._writing: list[_Batch] = []
        """Batches taken by the writer thread and not yet durable."""
        self._backlog_bytes = 0
        self._ticket_last = 0
        self._ticket_durable = 0
        self._stopping = False
        self._commits_total = 0
        self._commit_seconds_total = 0.0
        self._checkpoints_total = 0
        self._bytes_appended = 0
        self._thread = threading.Thread(target=self._run, name="ledger-journal-writer", daemon=True)
        # The owner keeps one checkpoint in flight; a second waits here, holding the writer back.
        self._checkpoints: queue.Queue[tuple[_Snapshot, int, bytes] | None] = queue.Queue(maxsize=1)
        self._checkpointer = threading.Thread(
            target=self._run_checkpoints, name="ledger-journal-checkpoints", daemon=True
        )
        # The ids of the transfers written (from ordinal _ids_first on) and not yet handed to a checkpoint; the
        # checkpoint thread's ids not yet stored (from _unsaved_first on).
        self._ids_first = transfers_count
        self._ids = bytearray()
        self._unsaved_first = transfers_count
        self._unsaved = bytearray()

    # -- the owner's side ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._checkpointer.start()

    def append(
        self,
        accounts: Buffer,
        transfers: Buffer,
        expired: bytes,
        balances: bytes,
        timestamp_last: int,
        domain: Buffer = b"",
    ) -> int:
        """Queue one call's entries, and the domain records that belong with them, to be written in one commit;
        returns the ticket that `on_durable` will report."""
        with self._lock:
            batch = self._pending[-1] if self._pending else None
            if batch is None or batch.snapshot is not None or batch.size >= self._commit_bytes_max:
                batch = _Batch(accounts_first=self._accounts_count, transfers_first=self._transfers_count)
                self._pending.append(batch)
            batch.accounts += accounts
            batch.transfers += transfers
            batch.expired += expired
            batch.balances += balances
            if domain:
                batch.domain += domain
            batch.timestamp_last = timestamp_last
            self._accounts_count += len(accounts) // 128
            self._transfers_count += len(transfers) // 128
            self._ticket_last += 1
            batch.ticket = self._ticket_last
            size = len(accounts) + len(transfers) + len(expired) + len(balances) + len(domain)
            self._backlog_bytes += size
            self._bytes_appended += size
            self._wake.notify()
            return self._ticket_last

    def checkpoint(
        self,
        accounts: bytes,
        transfer_status: bytes,
        timestamp_last: int,
        on_saved: Callable[[int | None], None] | None = None,
        domain: bytes | Callable[[], bytes] = b"",
    ) -> None:
        """Checkpoint this snapshot, taken after the last `append`, once that is durable, with the domain
        layer's snapshot taken at the same moment (or what makes it, called on the checkpoint thread; if that
        raises an Exception, this checkpoint is not saved)."""
        with self._lock:
            if len(transfer_status) != self._transfers_count:
                raise JournalError(
                    f"snapshot holds {len(transfer_status)} transfers, the journal {self._transfers_count}"
                )
            batch = self._pending[-1] if self._pending else None
            if batch is None or batch.snapshot is not None:
                batch = _Batch(accounts_first=self._accounts_count, transfers_first=self._transfers_count)
                batch.ticket = self._ticket_last
                self._pending.append(batch)
            batch.snapshot = _Snapshot(accounts, transfer_status, timestamp_last, on_saved, domain)
            self._wake.notify()

    def undurable_entries(self) -> tuple[bytes, bytes, bytes]:
        """Copies of the account records, transfer records and expiries appended and not yet durable."""
        with self._lock:
            batches = self._writing + self._pending
            return (
                b"".join(batch.accounts for batch in batches),
                b"".join(batch.transfers for batch in batches),
                b"".join(batch.expired for batch in batches),
            )

    def undurable_transfers(self, ordinals: list[int]) -> dict[int, bytes]:
        """The records of those of `ordinals` appended and not yet durable (the store has every other one
        appended: a batch is dropped here only once the store holds it)."""
        found: dict[int, bytes] = {}
        with self._lock:
            for batch in self._writing + self._pending:
                first, end = batch.transfers_first, batch.transfers_first + len(batch.transfers) // 128
                for ordinal in ordinals:
                    if first <= ordinal < end:
                        found[ordinal] = bytes(batch.transfers[(ordinal - first) * 128 : (ordinal - first + 1) * 128])
        return found

    @property
    def backlog_bytes(self) -> int:
        """Bytes appended and not yet durable."""
        return self._backlog_bytes

    @property
    def bytes_appended(self) -> int:
        """Bytes of records appended since the start."""
        return self._bytes_appended

    @property
    def seq_last(self) -> int:
        """The newest durable commit's seq."""
        return self._seq_last

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                commits_total=self._commits_total,
                commit_seconds_total=self._commit_seconds_total,
                seq_last=self._seq_last,
                seq_durable=self._seq_durable,
                ticket_durable=self._ticket_durable,
                backlog_bytes=self._backlog_bytes,
                checkpoints_total=self._checkpoints_total,
            )

    def stop(self, timeout: float | None = None) -> bool:
        """Write what is pending and save the last checkpoint, then end the threads; False if they did not
        finish within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            self._wake.notify()
        for thread in (self._thread, self._checkpointer):  # the writer ends the checkpoint thread when it ends
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not (self._thread.is_alive() or self._checkpointer.is_alive())

    # -- the writer thread -------------------------------------------------------

    def _take(self) -> list[_Batch] | None:
        with self._lock:
            while not self._pending and not self._stopping:
                self._wake.wait()
            if not self._pending:
                return None
            batches, self._pending = self._pending, []
            self._writing = batches
            return batches

    def _commits(self, batches: list[_Batch]) -> list[tuple[Commit | None, _Batch, int]]:
        """Each batch's commit (None if it carries only a snapshot) and the seq its state corresponds to."""
        cut: list[tuple[Commit | None, _Batch, int]] = []
        for batch in batches:
            commit = None
            if batch.size:
                self._seq_last += 1
                commit = Commit.seal(
                    seq=self._seq_last,
                    timestamp_last=batch.timestamp_last,
                    accounts_first=batch.accounts_first,
                    transfers_first=batch.transfers_first,
                    # Taken batches are never appended to again: the commit keeps them without a copy.
                    accounts=batch.accounts,
                    transfers=batch.transfers,
                    expired=batch.expired,
                    balances=batch.balances,
                    domain=batch.domain or b"",
                )
            cut.append((commit, batch, self._seq_last))
        return cut

    def _run(self) -> None:
        try:
            while (batches := self._take()) is not None:
                cut = self._commits(batches)
                commits = [commit for commit, _, _ in cut if commit is not None]
                if commits:
                    self._write(commits)
                    for commit in commits:
                        if commit.transfers:
                            self._ids += transfer_ids_of(commit.transfers)
                    with self._lock:
                        self._seq_durable = commits[-1].seq
                    if self._on_written is not None:
                        self._on_written(commits)
                size = sum(batch.size for batch in batches)
                ticket = max(batch.ticket for batch in batches)
                with self._lock:
                    self._backlog_bytes -= size
                    self._ticket_durable = max(self._ticket_durable, ticket)
                    self._writing = []
                # Answered before any checkpoint of this take is handed over: the commits are durable, and the
                # checkpoint thread saves it (every account) while the next commits are written.
                self._on_durable(ticket)
                for _, batch, seq in cut:
                    if batch.snapshot is not None:
                        # The checkpoint takes the ids of the transfers it covers, which recovery indexes.
                        taken = 16 * (len(batch.snapshot.transfer_status) - self._ids_first)
                        ids, self._ids = bytes(self._ids[:taken]), self._ids[taken:]
                        self._ids_first += taken // 16
                        self._checkpoints.put((batch.snapshot, seq, ids))
        except StoreUnavailable as exc:
            with self._lock:
                backlog = self._backlog_bytes
            logger.error(
                "journal writer stopped with the store unavailable; %d bytes never acknowledged: %s", backlog, exc
            )
        except BaseException as exc:  # anything else is a bug or a corrupt journal: stop acknowledging
            logger.exception("journal writer stopped")
            self._on_fatal(exc)
        finally:
            self._checkpoints.put(None)  # the checkpoint thread ends after those handed over

    def _write(self, commits: list[Commit]) -> None:
        delay = RETRY_DELAY_MIN_SECONDS
        failing = False
        while True:
            started = time.perf_counter()
            try:
                self._store.append(commits)
            except StoreUnavailable as exc:
                if not failing:
                    logger.error("journal commit failed, retrying until the store is back: %s", exc)
                    failing = True
                    self._on_unavailable(exc)
                if self._stopping and delay >= RETRY_DELAY_MAX_SECONDS:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, RETRY_DELAY_MAX_SECONDS)
                continue
            elapsed = time.perf_counter() - started
            with self._lock:
                self._commits_total += 1
                self._commit_seconds_total += elapsed
            if self._on_commit is not None:
                self._on_commit(len(commits), sum(c.transfers_count for c in commits), elapsed)
            if failing:
                logger.warning("journal store is back; commits resumed")
                self._on_available()
            return

    def _run_checkpoints(self) -> None:
        while (item := self._checkpoints.get()) is not None:
            try:
                self._save_checkpoint(*item)
            except BaseException as exc:  # a bug: stop acknowledging, as a failed commit would
                logger.exception("saving a checkpoint failed")
                self._on_fatal(exc)
                if item[0].on_saved is not None:
                    item[0].on_saved(None)

    def _save_checkpoint(self, snapshot: _Snapshot, seq: int, ids: bytes) -> None:
        started = time.perf_counter()
        # The ids of the transfers it covers are stored first: a checkpoint past the stored ids would make
        # recovery read every record.
        self._unsaved += ids
        try:
            self._unsaved_first = save_transfer_ids(self._store, self._unsaved_first, self._unsaved)
        except StoreUnavailable as exc:
            logger.warning("checkpoint at seq=%d not saved: its transfer ids were not stored: %s", seq, exc)
            if snapshot.on_saved is not None:
                snapshot.on_saved(None)
            return
        self._unsaved = bytearray()
        domain = snapshot.domain
        if not isinstance(domain, bytes):  # made by a forked child: waiting for it is part of the checkpoint's time
            try:
                domain = domain()
            except Exception as exc:  # a checkpoint only shortens recovery; the next one may be saved
                logger.error("checkpoint at seq=%d not saved: the domain's snapshot failed: %s", seq, exc)
                if snapshot.on_saved is not None:
                    snapshot.on_saved(None)
                return
        domain_at = time.perf_counter()
        checkpoint = Checkpoint.seal(
            seq=seq,
            timestamp_last=snapshot.timestamp_last,
            accounts=snapshot.accounts,
            transfer_status=snapshot.transfer_status,
            domain=domain,
        )
        sealed_at = time.perf_counter()
        try:
            self._store.save_checkpoint(checkpoint)
        except StoreUnavailable as exc:
            # A checkpoint only shortens recovery; the journal is complete without it.
            logger.warning("checkpoint at seq=%d not saved: %s", seq, exc)
            if snapshot.on_saved is not None:
                snapshot.on_saved(None)
            return
        with self._lock:
            self._checkpoints_total += 1
        saved_at = time.perf_counter()
        logger.info(
            "checkpoint at seq=%d: %d accounts, %d transfers, %d bytes of domain state, %.3f s (domain state %.3f s, "
            "sealed %.3f s, saved %.3f s)",
            seq,
            checkpoint.accounts_count,
            checkpoint.transfers_count,
            len(domain),
            saved_at - started,
            domain_at - started,
            sealed_at - domain_at,
            saved_at - sealed_at,
        )
        if snapshot.on_saved is not None:
            snapshot.on_saved(seq)
