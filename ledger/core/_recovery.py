"""Rebuild an engine from the journal: the latest checkpoint, then the commits after it.

Recorded outcomes are applied, never re-decided: the engine's replay books
each stored transfer as it was (amount as moved, timestamp as assigned) and
releases each expired hold where the journal says it expired. Every commit's
checksum, seq and record ordinals are checked on the way; the first that
fails stops recovery with an error naming its position.

The cost is per transfer, not per commit, so that a journal of many small
commits (a POS fleet's) recovers about as fast as one of large batches: the
store hands over commits as rows in chunks, each is checked as it comes, and
the transfers of consecutive commits are handed to the engine together, up
to BATCH_EVENTS_MAX at a time, cut only where holds expired. A commit that
contradicts the state is still named: the engine stops at the entry it
refuses, and its ordinal says which commit held it.

Where the store holds the ids of every transfer up to the checkpoint
(`ledger_transfer_ids`, saved with each checkpoint) and the engine can index
transfers by id alone (the native engine's `restore_index`, its old records
read back from the journal when needed), the commits up to the checkpoint are
not read at all: the index comes from 16 bytes per transfer rather than 128,
and only the commits after the checkpoint are read and replayed. Otherwise
every commit is read, and a ledger's recovery (`save_ids`) stores the ids it
read past what the store held, so that the next one is short.

A domain layer's state (ledger.journal.DomainState) is rebuilt alongside:
the checkpoint's domain snapshot first, then the domain records of each
commit after it, in seq order, as the commits are read. Commits without
domain records cost it nothing.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.engine import Engine, EngineState, StateMismatch
from ledger.journal import (
    EXPIRED_SIZE,
    Blob,
    Checkpoint,
    Commit,
    DomainState,
    JournalCorrupt,
    Store,
    check_commit_row,
    save_transfer_ids,
    transfer_ids_of,
)
from ledger.records.limits import ACCOUNT_SIZE, BATCH_EVENTS_MAX, TRANSFER_SIZE

logger = logging.getLogger(__name__)

_CHUNK_ACCOUNTS = BATCH_EVENTS_MAX * ACCOUNT_SIZE
_CHUNK_TRANSFERS = BATCH_EVENTS_MAX * TRANSFER_SIZE
_RESTORE_TRANSFERS = 16 * BATCH_EVENTS_MAX * TRANSFER_SIZE
"""Bytes of transfer records restored (the journal up to the checkpoint) per engine call; restore has no batch
limit, this only bounds the buffer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    checkpoint_seq: int
    """Journal seq of the checkpoint recovery started from (0: none)."""
    seq_last: int
    accounts_count: int
    transfers_count: int
    commits_replayed: int
    transfers_replayed: int
    seconds: float
    bytes_replayed: int = 0
    """Bytes of records in the commits replayed (after the checkpoint), domain records included."""
    domain_bytes_replayed: int = 0
    """Bytes of domain records in the commits replayed."""
    index_from_checkpoint: bool = False
    """The transfers up to the checkpoint were indexed from their stored ids but for the newest (as many as the
    engine keeps hot), whose commits were read: no commit before those was."""


class _Pending:
    """Transfer records of consecutive commits gathered for one engine call, and which commit holds which.

    `failed_seq` is set when the engine refuses an entry: the seq of the commit that holds it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.records = bytearray()
        self.seqs: list[int] = []
        self.firsts: list[int] = []
        """Ordinal of each gathered commit's first record here (transfers_first, or an expiry point)."""
        self.failed_seq = 0

    def gather(self, seq: int, records: Blob | memoryview, first: int) -> None:
        if records:
            self.records += records
            self.seqs.append(seq)
            self.firsts.append(first)

    def refused(self) -> None:
        """Name the commit that holds the entry the engine just refused (or the first gathered)."""
        index = bisect.bisect_right(self.firsts, self.engine.stats().transfers_count) - 1
        self.failed_seq = self.seqs[max(0, index)]

    def clear(self) -> None:
        self.records = bytearray()
        self.seqs.clear()
        self.firsts.clear()


class _Replay(_Pending):
    """Commits after the checkpoint: their accounts, then their transfers, merged across commits.

    Holds expire at points in the journal (just before a given transfer), so the merged records are cut
    there: each engine call releases the holds expired at its start, then books its transfers.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.expired = bytearray()
        """Ids of the holds that expired just before the first gathered record (or, with none, just after the
        last commit's)."""
        self.expired_seq = 0
        self.timestamp_last = 0

    def commit(
        self, seq: int, accounts: Blob, transfers: Blob, expired: Blob, timestamp_last: int, transfers_first: int
    ) -> None:
        if accounts:
            self.flush()  # transfers of the commits before it come first, as they did
            view = memoryview(accounts)
            for offset in range(0, len(view), _CHUNK_ACCOUNTS):
                try:
                    self.engine.replay_accounts(view[offset : offset + _CHUNK_ACCOUNTS], timestamp_last)
                except StateMismatch:
                    self.failed_seq = seq
                    raise
        self.timestamp_last = timestamp_last
        if not expired:
            if len(self.records) + len(transfers) < _CHUNK_TRANSFERS:  # most commits: they fit in what is gathered
                self.gather(seq, transfers, transfers_first)
            else:
                self.add(seq, transfers, transfers_first)
            return
        count = len(transfers) // TRANSFER_SIZE
        view = memoryview(transfers)
        # Expiry points: ordinal (relative to this commit) -> hold ids released just before it.
        points: dict[int, bytearray] = {}
        for offset in range(0, len(expired), EXPIRED_SIZE):
            ordinal = int.from_bytes(expired[offset + 16 : offset + 24], "little") - transfers_first
            if not 0 <= ordinal <= count:
                raise JournalCorrupt(f"journal commit seq={seq}: an expiry points outside the commit's transfers")
            points.setdefault(ordinal, bytearray()).extend(expired[offset : offset + 16])
        done = 0
        for point in sorted(points):
            self.add(seq, view[done * TRANSFER_SIZE : point * TRANSFER_SIZE], transfers_first + done)
            self.flush()
            self.expired, self.expired_seq = points[point], seq
            done = point
        self.add(seq, view[done * TRANSFER_SIZE :], transfers_first + done)
        if done == count:  # holds expired after the commit's last transfer: released now, as they were
            self.flush()

    def add(self, seq: int, records: Blob | memoryview, first: int) -> None:
        """Gather records, handing BATCH_EVENTS_MAX at a time to the engine."""
        room = _CHUNK_TRANSFERS - len(self.records)
        while len(records) > room:
            self.gather(seq, records[:room], first)
            self.flush()
            records, first, room = records[room:], first + room // TRANSFER_SIZE, _CHUNK_TRANSFERS
        self.gather(seq, records, first)
        if len(self.records) == _CHUNK_TRANSFERS:
            self.flush()

    def flush(self) -> None:
        if not (self.records or self.expired):
            return
        try:
            self.engine.replay_transfers(self.expired, self.records, self.timestamp_last, self.timestamp_last)
        except StateMismatch:
            if self.records:
                self.refused()
            else:
                self.failed_seq = self.expired_seq
            raise
        self.clear()
        self.expired = bytearray()


class _Restore(_Pending):
    """Commits up to the checkpoint: their transfers restored with the checkpoint's statuses, booking nothing."""

    def __init__(self, engine: Engine, checkpoint: Checkpoint | None) -> None:
        super().__init__(engine)
        self.transfer_status = checkpoint.transfer_status if checkpoint is not None else b""

    def add(self, seq: int, records: Blob | memoryview, first: int) -> None:
        self.gather(seq, records, first)
        if len(self.records) >= _RESTORE_TRANSFERS:
            self.flush()

    def flush(self) -> None:
        if not self.records:
            return
        first = self.firsts[0]
        end = first + len(self.records) // TRANSFER_SIZE
        try:
            self.engine.restore_transfers(self.records, self.transfer_status[first:end])
        except StateMismatch:
            self.refused()
            raise
        self.clear()


def replay_commit(engine: Engine, commit: Commit) -> None:
    """Apply one commit's recorded entries: accounts first, then transfers with each expiry at its place."""
    replay = _Replay(engine)
    replay.commit(
        commit.seq, commit.accounts, commit.transfers, commit.expired, commit.timestamp_last, commit.transfers_first
    )
    replay.flush()


class _IdsKept:
    """The ids of the transfers recovery reads, stored past what the store holds (`save_ids`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.first = store.transfer_ids_end()
        """The ordinal of the first id in `ids`."""
        self.ids = bytearray()

    def add(self, records: Blob | memoryview, first: int) -> None:
        """Records of ordinals [first, ...), read in order."""
        skip = self.first + len(self.ids) // 16 - first
        if skip < 0:
            raise JournalCorrupt(f"recovery read transfer {first} before {first + skip}")  # a bug: reads go in order
        if skip < len(records) // TRANSFER_SIZE:
            self.ids += transfer_ids_of(memoryview(records)[TRANSFER_SIZE * skip :])
        if len(self.ids) >= 64 << 20:
            self.flush()

    def flush(self) -> None:
        if self.ids:
            self.first = save_transfer_ids(self.store, self.first, self.ids)
            self.ids = bytearray()


def recover(
    engine: Engine,
    store: Store,
    domain: DomainState | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    save_ids: bool = False,
) -> RecoveryReport:
    """Load the store's journal into an empty engine, and `domain` with it. Raises JournalCorrupt, never serves
    a partial state.

    `domain.restore` gets the checkpoint's domain snapshot (b"" without one), then `domain.replay` the domain
    records of each commit after the checkpoint that has some; an exception from either stops recovery with
    JournalCorrupt naming the checkpoint or commit. `progress(seq, transfers_count)` is called after each chunk
    of commits read. With `save_ids`, the ids of the transfers read past those the store holds are stored.
    """
    started = time.perf_counter()
    checkpoint = store.latest_checkpoint()
    position = 0
    indexed: _Indexed | None = None
    if checkpoint is not None:
        checkpoint.verify()
        position = checkpoint.seq
        try:
            engine.import_state(EngineState(checkpoint.accounts, b"", b"", checkpoint.timestamp_last))
            indexed = _index_from_ids(engine, store, checkpoint, repair=save_ids)
        except StateMismatch as exc:
            raise JournalCorrupt(f"checkpoint at journal seq={position} cannot be loaded: {exc}") from exc
    if domain is not None:
        _restore_domain(domain, checkpoint)
    restore = _Restore(engine, checkpoint)
    replay = _Replay(engine)
    kept = _IdsKept(store) if save_ids else None
    seq_expected = 1 if indexed is None else indexed.after_seq + 1
    accounts_count = transfers_count = 0
    indexed_upto = 0 if indexed is None else indexed.upto
    commits_replayed = transfers_replayed = bytes_replayed = domain_replayed = 0

    try:
        try:
            for rows in store.commit_rows(after_seq=seq_expected - 1):
                for row in rows:
                    check_commit_row(row)
                    (seq, timestamp_last, accounts_first, transfers_first, _,
                     accounts, transfers, expired, balances, records) = row  # fmt: skip
                    if seq == seq_expected and indexed_upto:  # the first read: it holds the first record needed
                        accounts_count, transfers_count = accounts_first, transfers_first
                    if seq != seq_expected:
                        raise JournalCorrupt(
                            f"journal commit seq={seq_expected} is missing (the next stored is seq={seq}): "
                            "the journal is truncated or damaged"
                        )
                    if accounts_first != accounts_count or transfers_first != transfers_count:
                        raise JournalCorrupt(
                            f"journal commit seq={seq} starts at account {accounts_first} and transfer "
                            f"{transfers_first}, but the commits before it hold {accounts_count} and {transfers_count}"
                        )
                    end = transfers_count + len(transfers) // TRANSFER_SIZE
                    if seq <= position:
                        assert checkpoint is not None
                        if end > checkpoint.transfers_count:
                            raise JournalCorrupt(
                                f"checkpoint at journal seq={position} holds {checkpoint.transfers_count} transfer "
                                f"statuses, the journal up to seq={seq} already {end} transfers"
                            )
                        if transfers_count < indexed_upto:  # its first records were indexed from their ids
                            cut = TRANSFER_SIZE * (indexed_upto - transfers_count)
                            restore.add(seq, memoryview(transfers)[cut:], indexed_upto)
                        else:
                            restore.add(seq, transfers, transfers_count)
                        if kept is not None and transfers:
                            kept.add(transfers, transfers_count)
                    else:
                        if seq == position + 1 and checkpoint is not None:
                            restore.flush()
                            _check_checkpoint_end(checkpoint, accounts_count, transfers_count)
                        if records:
                            if domain is not None:
                                _replay_domain(domain, records, seq)
                            domain_replayed += len(records)
                        replay.commit(seq, accounts, transfers, expired, timestamp_last, transfers_first)
                        if kept is not None and transfers:
                            kept.add(transfers, transfers_first)
                        commits_replayed += 1
                        transfers_replayed += end - transfers_count
                        bytes_replayed += len(accounts) + len(transfers) + len(expired) + len(balances)
                    accounts_count += len(accounts) // ACCOUNT_SIZE
                    transfers_count = end
                    seq_expected += 1
                if progress is not None:
                    progress(seq_expected - 1, transfers_count)
        except JournalCorrupt:
            # The commits read before the damage are applied first: one of them that contradicts the state
            # is the first failure in journal order, and the one reported.
            restore.flush()
            replay.flush()
            raise
        restore.flush()
        replay.flush()
        if kept is not None:
            kept.flush()
    except StateMismatch as exc:
        seq = restore.failed_seq or replay.failed_seq
        raise JournalCorrupt(f"journal commit seq={seq} contradicts the state before it: {exc}") from exc

    if checkpoint is not None:
        if position > seq_expected - 1:
            raise JournalCorrupt(
                f"checkpoint at journal seq={position} is past the end of the journal (last seq={seq_expected - 1}): "
                "the journal is truncated"
            )
        if position == seq_expected - 1:
            _check_checkpoint_end(checkpoint, accounts_count, transfers_count)
    try:
        engine.verify()
    except AssertionError as exc:
        raise JournalCorrupt(f"the state recovered up to journal seq={seq_expected - 1} breaks an invariant") from exc
    stats = engine.stats()
    if stats.accounts_count != accounts_count or stats.transfers_count != transfers_count:
        raise JournalCorrupt(
            f"recovered {stats.accounts_count} accounts and {stats.transfers_count} transfers, "
            f"the journal holds {accounts_count} and {transfers_count}"
        )
    return RecoveryReport(
        checkpoint_seq=position,
        seq_last=seq_expected - 1,
        accounts_count=accounts_count,
        transfers_count=transfers_count,
        commits_replayed=commits_replayed,
        transfers_replayed=transfers_replayed,
        seconds=time.perf_counter() - started,
        bytes_replayed=bytes_replayed + domain_replayed,
        domain_bytes_replayed=domain_replayed,
        index_from_checkpoint=indexed is not None,
    )


@dataclass(frozen=True, slots=True)
class _Indexed:
    upto: int
    """The transfers before this ordinal were indexed from their ids."""
    after_seq: int
    """Commits after this seq are read: the first of them holds transfer `upto`."""


def _index_from_ids(engine: Engine, store: Store, checkpoint: Checkpoint, *, repair: bool) -> _Indexed | None:
    """Index the transfers up to the checkpoint from their stored ids, but for the newest that the engine keeps
    hot (their records are read, so that retries soon after a restart are answered from memory), if the engine
    can and the store has the ids whole; where to read on from, or None. Ids stored that far but unusable
    (damaged, or with a gap) are deleted with `repair`: recovery then stores them again from the records."""
    restore_index = getattr(engine, "restore_index", None)
    hot = getattr(engine, "transfers_hot", None)
    if restore_index is None or hot is None:
        return None  # an engine that keeps every record needs them all
    upto = checkpoint.transfers_count - hot
    if upto <= 0:
        return None  # every record up to the checkpoint stays hot: read them all
    ids = store.transfer_ids(upto)
    if ids is None:
        if repair and store.transfer_ids_end() >= upto:
            logger.warning("%s: the stored transfer ids are damaged; they are stored again from the records",
                           store.description)  # fmt: skip
            store.drop_transfer_ids()
        return None
    holding = store.commit_of_transfer(upto)
    if holding is None or store.timestamp_last_of(checkpoint.seq) is None:
        raise JournalCorrupt(
            f"checkpoint at journal seq={checkpoint.seq} is past the end of the journal: the journal is truncated"
        )
    restore_index(ids, checkpoint.transfer_status[:upto])
    return _Indexed(upto=upto, after_seq=holding - 1)


def _restore_domain(domain: DomainState, checkpoint: Checkpoint | None) -> None:
    snapshot = checkpoint.domain if checkpoint is not None else b""
    try:
        domain.restore(snapshot)
    except Exception as exc:
        where = f"checkpoint at journal seq={checkpoint.seq}" if checkpoint is not None else "no checkpoint"
        raise JournalCorrupt(
            f"{where}: the domain state cannot be restored from its snapshot ({len(snapshot)} bytes): {exc!r}"
        ) from exc


def _replay_domain(domain: DomainState, records: Blob, seq: int) -> None:
    try:
        domain.replay(records if isinstance(records, bytes) else bytes(records), seq)
    except Exception as exc:
        raise JournalCorrupt(
            f"journal commit seq={seq}: its domain records ({len(records)} bytes) cannot be replayed: {exc!r}"
        ) from exc


def _check_checkpoint_end(checkpoint: Checkpoint, accounts_count: int, transfers_count: int) -> None:
    """At the checkpoint's position the journal must hold exactly what the checkpoint counted."""
    if (checkpoint.accounts_count, checkpoint.transfers_count) != (accounts_count, transfers_count):
        raise JournalCorrupt(
            f"checkpoint at journal seq={checkpoint.seq} holds {checkpoint.accounts_count} accounts and "
            f"{checkpoint.transfers_count} transfers, the journal up to it {accounts_count} and {transfers_count}"
        )
