"""Recovery against the live engines: random journals, grouped into commits and read back in any chunks.

Hypothesis drives both engines with the same random calls (tests/property/test_differential.py),
then groups the calls into commits as the group-commit writer does (one per call, or several
calls per commit, expiries at their ordinals), takes a checkpoint at any commit, and hands the
commits to `recover` in chunks of any size. Recovery merges consecutive commits into one engine
call and cuts the run where holds expired; whatever the grouping, chunking and checkpoint, every
engine must come back to the live state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import recover
from ledger.engine import ReferenceEngine
from ledger.journal import Checkpoint, Commit, CommitRow
from ledger.journal._store import SEQ_MAX
from tests.property.test_differential import FUNDING, Pair, accounts_batch, draw_transfer, small_capacity
from tests.support import ENGINE_CLASSES, SECOND

Call = tuple[str, Any]


def commits_of(calls: list[Call], cuts: set[int]) -> tuple[list[CommitRow], list[int]]:
    """The commits a ledger writes for these calls, a new commit starting at each call index in `cuts`, and for
    each commit how many calls it and those before it hold."""
    rows: list[CommitRow] = []
    calls_done: list[int] = []
    accounts_count = transfers_count = 0
    group: list[Call] = []
    for index, call in enumerate([*calls, ("end", None)]):
        if group and (index in cuts or call[0] == "end"):
            accounts = transfers = expired = b""
            first_accounts, first_transfers = accounts_count, transfers_count
            timestamp_last = 0
            for kind, entry in group:
                if kind == "accounts":
                    accounts += entry[0]
                    timestamp_last = entry[1]
                    accounts_count += len(entry[0]) // 128
                    continue
                ids, records, _, last = entry
                ordinal = transfers_count.to_bytes(8, "little")  # holds expire as a call begins
                expired += b"".join(ids[i : i + 16] + ordinal for i in range(0, len(ids), 16))
                transfers += records
                timestamp_last = last
                transfers_count += len(records) // 128
            if accounts or transfers or expired:  # a call that changed nothing is not journaled
                commit = Commit.seal(
                    seq=len(rows) + 1, timestamp_last=timestamp_last, accounts_first=first_accounts,
                    transfers_first=first_transfers, accounts=accounts, transfers=transfers, expired=expired,
                )  # fmt: skip
                rows.append(
                    (commit.seq, commit.timestamp_last, commit.accounts_first, commit.transfers_first,
                     commit.checksum, commit.accounts, commit.transfers, commit.expired, commit.balances,
                     commit.domain)
                )  # fmt: skip
                calls_done.append(index)
            group = []
        group.append(call)
    return rows, calls_done


def checkpoint_after(calls: list[Call], seq: int, clock: Any) -> Checkpoint:
    """The checkpoint at commit `seq`, from the reference engine fed the calls up to it one by one."""
    engine = ReferenceEngine(small_capacity(), clock=clock)
    for kind, entry in calls:
        if kind == "accounts":
            engine.replay_accounts(*entry)
        else:
            engine.replay_transfers(*entry)
    snapshot = engine.export_snapshot()
    return Checkpoint.seal(
        seq=seq, timestamp_last=snapshot.timestamp_last, accounts=snapshot.accounts,
        transfer_status=snapshot.transfer_status,
    )  # fmt: skip


@dataclass
class MemoryJournal:
    """What recovery reads of a store: its newest checkpoint and its commits, in chunks of `chunk` commits."""

    rows: list[CommitRow]
    checkpoint: Checkpoint | None
    chunk: int

    def latest_checkpoint(self) -> Checkpoint | None:
        return self.checkpoint

    def commit_rows(self, after_seq: int = 0, upto_seq: int = SEQ_MAX) -> Iterator[list[CommitRow]]:
        rows = [row for row in self.rows if after_seq < row[0] <= upto_seq]
        for start in range(0, len(rows), self.chunk):
            yield rows[start : start + self.chunk]


# A third of the profile's examples: each feeds both engines, then recovers into each from a checkpoint.
@settings(max_examples=max(100, settings().max_examples // 3))
@given(st.data())
def test_recovery_of_any_grouping_and_chunking_rebuilds_the_live_state(data: st.DataObject) -> None:
    pair = Pair()
    pair.create_accounts(FUNDING)
    recent: list[Any] = []
    for _ in range(data.draw(st.integers(1, 10), label="calls")):
        pair.clock.advance(ns=data.draw(st.sampled_from([0, 1, SECOND, 2 * SECOND + 1]), label="clock step"))
        kind = data.draw(st.sampled_from(["transfers"] * 6 + ["accounts", "expire"]), label="kind")
        if kind == "accounts":
            pair.create_accounts(data.draw(accounts_batch(), label="accounts"))
        elif kind == "expire":
            pair.expire()
        else:
            accounts = pair.accounts()
            size = data.draw(st.integers(1, 8), label="size")
            batch = [draw_transfer(data.draw, accounts, recent) for _ in range(size)]
            pair.create_transfers(batch)
            recent.extend(batch)
    calls = pair.journal
    cuts = data.draw(st.sets(st.integers(1, len(calls))), label="commit starts")
    rows, calls_done = commits_of(calls, cuts)
    seq = data.draw(st.integers(0, len(rows)), label="checkpoint after commit (0: none)")
    checkpoint = checkpoint_after(calls[: calls_done[seq - 1]], seq, pair.clock) if seq else None
    chunk = data.draw(st.integers(1, 4), label="commits per chunk")
    expected = pair.reference.export_state()
    for cls in ENGINE_CLASSES.values():
        engine = cls(small_capacity(), clock=pair.clock)
        report = recover(engine, MemoryJournal(rows, checkpoint, chunk))  # type: ignore[arg-type]
        state = engine.export_state()
        assert (state.accounts, state.transfers, state.transfer_status) == (
            expected.accounts, expected.transfers, expected.transfer_status,
        )  # fmt: skip
        assert (report.checkpoint_seq, report.seq_last, report.commits_replayed) == (seq, len(rows), len(rows) - seq)
        assert engine.stats().pending_transfers_count == pair.reference.stats().pending_transfers_count
