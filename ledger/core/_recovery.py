"""Rebuild an engine from the journal: the latest checkpoint, then the commits after it.

Recorded outcomes are applied, never re-decided: the engine's replay books
each stored transfer as it was (amount as moved, timestamp as assigned) and
releases each expired hold where the journal says it expired. Every commit's
checksum, seq and record ordinals are checked on the way; the first that
fails stops recovery with an error naming its position.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.engine import Engine, EngineState, StateMismatch
from ledger.engine._limits import ACCOUNT_SIZE, BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.journal import EXPIRED_SIZE, Checkpoint, Commit, JournalCorrupt, Store

logger = logging.getLogger(__name__)

_CHUNK_ACCOUNTS = BATCH_EVENTS_MAX * ACCOUNT_SIZE
_CHUNK_TRANSFERS = BATCH_EVENTS_MAX * TRANSFER_SIZE


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


def replay_commit(engine: Engine, commit: Commit) -> None:
    """Apply one commit's recorded entries: accounts first, then transfers with each expiry at its place."""
    accounts = memoryview(commit.accounts)
    for offset in range(0, len(accounts), _CHUNK_ACCOUNTS):
        engine.replay_accounts(accounts[offset : offset + _CHUNK_ACCOUNTS], commit.timestamp_last)
    transfers = memoryview(commit.transfers)
    expired = memoryview(commit.expired)
    # Expiry points: ordinal (relative to this commit) -> hold ids released just before it.
    points: dict[int, bytearray] = {}
    for offset in range(0, len(expired), EXPIRED_SIZE):
        ordinal = int.from_bytes(expired[offset + 16 : offset + 24], "little") - commit.transfers_first
        if not 0 <= ordinal <= commit.transfers_count:
            raise JournalCorrupt(f"journal commit seq={commit.seq}: an expiry points outside the commit's transfers")
        points.setdefault(ordinal, bytearray()).extend(expired[offset : offset + 16])
    count = commit.transfers_count
    cuts = sorted({point for point in points if point < count} | set(range(0, count, BATCH_EVENTS_MAX)))
    cuts.append(count)
    for start, end in itertools.pairwise(cuts):
        engine.replay_transfers(
            bytes(points.get(start, b"")),
            transfers[start * TRANSFER_SIZE : end * TRANSFER_SIZE],
            commit.timestamp_last,
            commit.timestamp_last,
        )
    if count in points:
        engine.replay_transfers(bytes(points[count]), b"", commit.timestamp_last, commit.timestamp_last)


def recover(engine: Engine, store: Store, *, progress: Callable[[int, int], None] | None = None) -> RecoveryReport:
    """Load the store's journal into an empty engine. Raises JournalCorrupt, never serves a partial state."""
    started = time.perf_counter()
    checkpoint = store.latest_checkpoint()
    position = 0
    if checkpoint is not None:
        checkpoint.verify()
        position = checkpoint.seq
        try:
            engine.import_state(EngineState(checkpoint.accounts, b"", b"", checkpoint.timestamp_last))
        except StateMismatch as exc:
            raise JournalCorrupt(f"checkpoint at journal seq={position} cannot be loaded: {exc}") from exc
    seq_expected = 1
    accounts_count = transfers_count = 0
    commits_replayed = transfers_replayed = 0

    for commit in store.commits():
        commit.verify()
        if commit.seq != seq_expected:
            raise JournalCorrupt(
                f"journal commit seq={seq_expected} is missing (the next stored is seq={commit.seq}): "
                "the journal is truncated or damaged"
            )
        if commit.accounts_first != accounts_count or commit.transfers_first != transfers_count:
            raise JournalCorrupt(
                f"journal commit seq={commit.seq} starts at account {commit.accounts_first} and transfer "
                f"{commit.transfers_first}, but the commits before it hold {accounts_count} and {transfers_count}"
            )
        end = transfers_count + commit.transfers_count
        try:
            if commit.seq <= position:
                assert checkpoint is not None
                if end > checkpoint.transfers_count:
                    raise JournalCorrupt(
                        f"checkpoint at journal seq={position} holds {checkpoint.transfers_count} transfer statuses, "
                        f"the journal up to seq={commit.seq} already {end} transfers"
                    )
                engine.restore_transfers(commit.transfers, checkpoint.transfer_status[transfers_count:end])
            else:
                if commit.seq == position + 1 and checkpoint is not None:
                    _check_checkpoint_end(checkpoint, accounts_count, transfers_count)
                replay_commit(engine, commit)
                commits_replayed += 1
                transfers_replayed += commit.transfers_count
        except StateMismatch as exc:
            raise JournalCorrupt(f"journal commit seq={commit.seq} contradicts the state before it: {exc}") from exc
        accounts_count += commit.accounts_count
        transfers_count = end
        seq_expected += 1
        if progress is not None:
            progress(commit.seq, transfers_count)

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
    )


def _check_checkpoint_end(checkpoint: Checkpoint, accounts_count: int, transfers_count: int) -> None:
    """At the checkpoint's position the journal must hold exactly what the checkpoint counted."""
    if (checkpoint.accounts_count, checkpoint.transfers_count) != (accounts_count, transfers_count):
        raise JournalCorrupt(
            f"checkpoint at journal seq={checkpoint.seq} holds {checkpoint.accounts_count} accounts and "
            f"{checkpoint.transfers_count} transfers, the journal up to it {accounts_count} and {transfers_count}"
        )
