"""SQLite saves a large checkpoint in parts, a transaction each, and copies its WAL into the file on a thread
of its own: the journal's commits never wait for a whole checkpoint, nor for the WAL to be copied.

The part size is made small here so that a test's checkpoint is large enough to be cut."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import pytest

from ledger.core import Ledger
from ledger.journal import Checkpoint, Commit, JournalCorrupt, _sqlite
from tests.integration.test_audit import run_audit
from tests.integration.test_journal import config
from tests.journals import rich_journal
from tests.stores import connected_store, downgrade, execute, fetch
from tests.support import START_NS, ManualClock

PART: int = 1_000


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite, "CHECKPOINT_PART_BYTES", PART)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.sqlite3'}"


def checkpoint(seq: int, domain: bytes) -> Checkpoint:
    """A checkpoint with `domain` and some random bytes after it (deflate leaves them the size they are)."""
    domain += random.Random(seq).randbytes(3 * PART)
    accounts = b"".join(n.to_bytes(16, "little") + bytes(112) for n in range(1, 40))
    return Checkpoint.seal(seq=seq, timestamp_last=1_800_000_000_000_000_000 + seq, accounts=accounts,
                           transfer_status=bytes(500), domain=domain)  # fmt: skip


def stored_parts(url: str) -> dict[int, int]:
    return dict(fetch(url, "SELECT seq, count(*) FROM ledger_checkpoint_parts GROUP BY seq"))


def test_a_large_checkpoint_is_stored_in_parts_and_read_back_whole(tmp_path: Path, small_parts: None) -> None:
    url = sqlite_url(tmp_path)
    with connected_store(url) as store:
        for seq in (1, 2, 3):
            saved = checkpoint(seq, bytes(range(256)) * (20 * seq))
            store.save_checkpoint(saved)
            latest = store.latest_checkpoint()
            assert latest is not None and latest.seq == seq and latest.domain == saved.domain
            latest.verify()
        # The row holds its blobs empty; the parts of the two kept checkpoints remain, the oldest's went.
        assert fetch(url, "SELECT seq, length(accounts), length(domain) FROM ledger_checkpoints ORDER BY seq") == [
            (2, 0, 0), (3, 0, 0)
        ]  # fmt: skip
        parts = stored_parts(url)
        assert sorted(parts) == [2, 3] and all(count > 1 for count in parts.values())
        assert max(length for (length,) in fetch(url, "SELECT length(data) FROM ledger_checkpoint_parts")) <= PART
        # A small checkpoint is stored whole, in its row.
        store.save_checkpoint(Checkpoint.seal(seq=4, timestamp_last=1, accounts=b"", transfer_status=bytes(3)))
        assert sorted(stored_parts(url)) == [3]
        latest = store.latest_checkpoint()
        assert latest is not None and (latest.seq, latest.transfer_status) == (4, bytes(3))


def test_parts_a_save_cut_short_left_mean_nothing_and_go_at_the_next_save(tmp_path: Path, small_parts: None) -> None:
    url = sqlite_url(tmp_path)
    with connected_store(url) as store:
        store.save_checkpoint(checkpoint(1, b"kept" * 1_000))
        execute(url, "INSERT INTO ledger_checkpoint_parts (seq, part, data) VALUES (%s, %s, %s)", 9, 0, b"cut short")
        latest = store.latest_checkpoint()
        assert latest is not None and latest.seq == 1  # the parts of seq 9 have no checkpoint row
        store.save_checkpoint(checkpoint(2, b"next" * 1_000))
        assert sorted(stored_parts(url)) == [1, 2]


def test_a_missing_part_is_a_damaged_checkpoint_named_by_its_seq(tmp_path: Path, small_parts: None) -> None:
    url = sqlite_url(tmp_path)
    with connected_store(url) as store:
        store.save_checkpoint(checkpoint(5, b"lost" * 2_000))
        execute(url, "DELETE FROM ledger_checkpoint_parts WHERE seq = %s AND part = 1", 5)
        with pytest.raises(JournalCorrupt, match="checkpoint at journal seq=5: its parts hold"):
            store.latest_checkpoint()


def test_a_journal_whose_checkpoints_are_in_parts_audits_clean_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "CHECKPOINT_PART_BYTES", 64)
    url = sqlite_url(tmp_path)
    accounts, _ = rich_journal(url)  # a ledger's day, closed with a checkpoint: in parts here
    assert stored_parts(url)
    verdict = run_audit(url)
    assert verdict.clean, verdict.problem

    async def reopened() -> bytes:
        async with await Ledger.open(config(url), clock=ManualClock(START_NS + 10**15)) as ledger:
            assert ledger.recovery.commits_replayed == 0  # all of it from the checkpoint in parts
            return ledger._engine.export_snapshot().accounts

    assert asyncio.run(reopened()) == accounts


def test_a_version_4_journal_is_upgraded_in_place_to_store_parts(store_url: str, small_parts: None) -> None:
    rich_journal(store_url)
    if store_url.startswith("sqlite:"):
        execute(store_url, "DELETE FROM ledger_checkpoint_parts")
        execute(store_url, "DELETE FROM ledger_checkpoints")
    downgrade(store_url, 4)
    assert 5 not in {version for (version,) in fetch(store_url, "SELECT version FROM ledger_schema")}
    with connected_store(store_url) as store:
        saved = checkpoint(10_000, b"after the upgrade")
        store.save_checkpoint(saved)
        latest = store.latest_checkpoint()
        assert latest is not None and latest.domain == saved.domain
    assert 5 in {version for (version,) in fetch(store_url, "SELECT version FROM ledger_schema")}


def test_the_wal_is_copied_into_the_file_beside_the_writer(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with connected_store(url) as store:
        commits = [Commit.seal(seq=seq, timestamp_last=seq, accounts_first=0, transfers_first=seq - 1, accounts=b"",
                               transfers=seq.to_bytes(16, "little") + bytes(112), expired=b"")
                   for seq in range(1, 51)]  # fmt: skip
        for commit in commits:
            store.append([commit])
        assert fetch(url, "PRAGMA wal_autocheckpoint") == [(1000,)]  # another connection's own default
        deadline = time.monotonic() + 10
        while True:  # the file itself, read with the WAL ignored, holds the commits once the thread copied them
            file_only = sqlite3.connect(f"file:{tmp_path / 'journal.sqlite3'}?mode=ro&immutable=1", uri=True)
            try:
                rows = file_only.execute("SELECT count(*) FROM ledger_journal").fetchone()[0]
            except sqlite3.OperationalError:  # not even the tables are in the file yet
                rows = 0
            finally:
                file_only.close()
            if rows == len(commits) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert rows == len(commits)
