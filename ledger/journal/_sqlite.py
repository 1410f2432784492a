"""The embedded journal store: one SQLite file (WAL mode, synchronous=FULL).

A commit is one row, so a group commit of 8190 transfers is one INSERT of
a few blobs: SQLite appends about 1.4M records a second this way, against
300k when each transfer is a row. The row is PostgreSQL's, column for
column (_schema.py), its transfers in LZ4 blocks (_blocks.py); rows written
before the store had schema version 2 keep their raw records and are read
as they are. The file is locked (flock on a `.lock` file beside it) so that
two ledgers never write one journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import Final

from ledger.records.limits import TRANSFER_SIZE

from ._blocks import TRANSFER_BLOCK_RECORDS, block_span, commit_chunks, compress_transfers, decompress_block
from ._format import Checkpoint, Commit, CommitRow, JournalCorrupt
from ._postings import account_rows
from ._schema import COMMIT_COLUMNS, SCHEMA, SQLITE, pending
from ._store import (
    BALANCES_TABLE,
    CHECKPOINT_PART_BYTES,
    CHECKPOINTS_KEPT,
    HISTORY_COLUMNS,
    HISTORY_TABLES,
    SEQ_MAX,
    TRANSFER_IDS_SEGMENT,
    TRANSFERS_TABLE,
    U64_MASK,
    HistoryRow,
    StoreLocked,
    StoreUnavailable,
    check_duplicate,
    checkpoint_parts,
    commits_of,
    joined_checkpoint,
    joined_transfer_ids,
    pack_checkpoint_blob,
    pack_domain_snapshot,
    signed,
    transfer_ids_checksum,
    unpack_checkpoint_blob,
    unpack_domain_snapshot,
)

logger = logging.getLogger(__name__)

WAL_COPY_SECONDS: Final = 0.5
"""How often the WAL is copied into the database file (a PASSIVE checkpoint, on a thread of its own)."""

_INSERT: Final = f"INSERT INTO ledger_journal ({COMMIT_COLUMNS}) VALUES ({', '.join('?' * 12)})"
assert COMMIT_COLUMNS.count(",") == 11


class SqliteStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"sqlite:{self.path}"
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._indexer: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        self._wal_stop = threading.Event()
        self._wal_thread: threading.Thread | None = None

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 10000")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreUnavailable(f"{self.description}: cannot switch to WAL mode (got {mode!r})")
            connection.execute("PRAGMA synchronous = FULL")
            # Copying the WAL into the file is left to a thread of its own (_copy_wal): SQLite would otherwise
            # do it inside whichever COMMIT found the WAL past 1,000 pages, and after a checkpoint of tens of
            # MiB that was a journal commit, held for seconds.
            connection.execute("PRAGMA wal_autocheckpoint = 0")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the SQLite journal {self.path}: {exc}") from exc
        return connection

    def connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the data directory {self.path.parent}: {exc}") from exc
        self._take_lock()
        self._writer = self._connect()
        self._migrate(self._writer)
        self._reader = self._connect()
        self._wal_stop.clear()
        self._wal_thread = threading.Thread(target=self._copy_wal, args=(self._connect(),), daemon=True,
                                            name="sqlite-wal")  # fmt: skip
        self._wal_thread.start()

    def _copy_wal(self, connection: sqlite3.Connection) -> None:
        """Copy what the WAL holds into the database file every WAL_COPY_SECONDS, beside the writer (a PASSIVE
        checkpoint waits for no one and holds no one up), so that the WAL is reused from its start rather than
        growing."""
        try:
            while not self._wal_stop.wait(WAL_COPY_SECONDS):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again; the WAL keeps everything
                    logger.warning("%s: copying the WAL into the file failed: %s", self.description, exc)
        finally:
            connection.close()

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(f"{self.description}: another ledger process holds this journal ({lock_path})") from None
        self._lock_file = fd

    def _migrate(self, connection: sqlite3.Connection) -> None:
        # Every pending version in one transaction, as in PostgreSQL: a journal is at one version or the next.
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.create(SQLITE, if_not_exists=True):
                connection.execute(statement)
            applied = {row[0] for row in connection.execute("SELECT version FROM ledger_schema")}
            for target, statements in pending(SQLITE, applied, self.description):
                for statement in statements:
                    connection.execute(statement)
                connection.execute("INSERT INTO ledger_schema (version) VALUES (?)", (target,))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _writer_connection(self) -> sqlite3.Connection:
        if self._writer is None:
            raise StoreUnavailable(f"{self.description}: not connected")
        return self._writer

    @contextlib.contextmanager
    def _transaction(self, connection: sqlite3.Connection, what: str) -> Iterator[None]:
        """One write transaction; an operational error (I/O, locking, a full disk) is StoreUnavailable."""
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"{self.description}: {what} failed: {exc}") from exc

    def append(self, commits: Sequence[Commit]) -> None:
        connection = self._writer_connection()
        rows = []
        for c in commits:
            blocks, ends = compress_transfers(c.transfers)
            rows.append((c.seq, c.timestamp_last, c.accounts_first, c.transfers_first, c.transfers_count, c.checksum,
                         c.accounts, blocks, ends, c.expired, c.balances, c.domain))  # fmt: skip
        try:
            with self._transaction(connection, "append"):
                connection.executemany(_INSERT, rows)
        except sqlite3.IntegrityError:
            # A retry of a transaction that landed although its acknowledgement was lost.
            self._check_landed(connection, commits)

    def _check_landed(self, connection: sqlite3.Connection, commits: Sequence[Commit]) -> None:
        seqs = [c.seq for c in commits]
        marks = ",".join("?" * len(seqs))
        rows = connection.execute(f"SELECT seq, checksum FROM ledger_journal WHERE seq IN ({marks})", seqs)
        check_duplicate(dict(rows.fetchall()), commits, self.description)

    def _checkpoint_connection(self) -> sqlite3.Connection:
        """A connection of its own: checkpoints are saved on a thread beside the writer's."""
        if self._writer is None:
            raise StoreUnavailable(f"{self.description}: not connected")
        if self._checkpointer is None:
            self._checkpointer = self._connect()
        return self._checkpointer

    def save_transfer_ids(self, first: int, ids: bytes) -> None:
        if len(ids) > 16 * TRANSFER_IDS_SEGMENT or len(ids) % 16:
            raise ValueError(f"a segment holds whole ids, at most {TRANSFER_IDS_SEGMENT}")
        connection = self._checkpoint_connection()
        with self._transaction(connection, "saving transfer ids"):
            connection.execute(
                "INSERT INTO ledger_transfer_ids (transfers_first, transfers_count, checksum, ids) VALUES (?,?,?,?)",
                (first, len(ids) // 16, transfer_ids_checksum(first, ids), ids),
            )

    def transfer_ids_end(self) -> int:
        with self._read_lock:
            row = (
                self._read()
                .execute(
                    "SELECT transfers_first + transfers_count FROM ledger_transfer_ids "
                    "ORDER BY transfers_first DESC LIMIT 1"
                )
                .fetchone()
            )
        return int(row[0]) if row else 0

    def commit_of_transfer(self, ordinal: int) -> int | None:
        with self._read_lock:
            row = (
                self._read()
                .execute(
                    "SELECT seq, transfers_first + transfers_count FROM ledger_journal "
                    "WHERE transfers_first <= ? AND transfers_count > 0 "
                    "ORDER BY transfers_first DESC, transfers_count DESC LIMIT 1",
                    (ordinal,),
                )
                .fetchone()
            )
        return int(row[0]) if row is not None and ordinal < row[1] else None

    def drop_transfer_ids(self) -> None:
        connection = self._checkpoint_connection()
        with self._transaction(connection, "deleting transfer ids"):
            connection.execute("DELETE FROM ledger_transfer_ids")

    def transfer_ids(self, upto: int) -> bytearray | None:
        connection = self._connect()  # a scan of its own, as commit_rows
        try:
            rows = connection.execute(
                "SELECT transfers_first, transfers_count, checksum, ids FROM ledger_transfer_ids "
                "WHERE transfers_first < ? ORDER BY transfers_first",
                (upto,),
            )
            return joined_transfer_ids(rows, upto, self.description)
        finally:
            connection.close()

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        # A large checkpoint goes in parts, a transaction each, so that the writer's commits wait for one part
        # at most, never the whole.
        connection = self._checkpoint_connection()
        blobs = (pack_checkpoint_blob(checkpoint.accounts), pack_checkpoint_blob(checkpoint.transfer_status),
                 pack_domain_snapshot(checkpoint.domain))  # fmt: skip
        parts = checkpoint_parts(*blobs, CHECKPOINT_PART_BYTES) if sum(map(len, blobs)) > CHECKPOINT_PART_BYTES else []
        longest = 0.0
        started = time.perf_counter()
        with self._transaction(connection, "saving the checkpoint"):  # what a save of this seq cut short left
            connection.execute("DELETE FROM ledger_checkpoint_parts WHERE seq = ?", (checkpoint.seq,))
        for number, data in enumerate(parts):
            began = time.perf_counter()
            with self._transaction(connection, "saving a part of the checkpoint"):
                connection.execute("INSERT INTO ledger_checkpoint_parts (seq, part, data) VALUES (?,?,?)",
                                   (checkpoint.seq, number, data))  # fmt: skip
            longest = max(longest, time.perf_counter() - began)
        began = time.perf_counter()
        with self._transaction(connection, "saving the checkpoint"):
            connection.execute(
                "INSERT OR REPLACE INTO ledger_checkpoints "
                "(seq, timestamp_last, checksum, accounts, transfer_status, domain, created_at_ns) "
                "VALUES (?,?,?,?,?,?,?)",
                (checkpoint.seq, checkpoint.timestamp_last, checkpoint.checksum,
                 *((b"", b"", b"") if parts else blobs), time.time_ns()),
            )  # fmt: skip
            connection.execute(
                "DELETE FROM ledger_checkpoints WHERE seq NOT IN "
                "(SELECT seq FROM ledger_checkpoints ORDER BY seq DESC LIMIT ?)",
                (CHECKPOINTS_KEPT,),
            )
        longest = max(longest, time.perf_counter() - began)
        while True:  # the parts of checkpoints no longer kept (or never finished), a part a transaction
            began = time.perf_counter()
            with self._transaction(connection, "deleting an old checkpoint's part"):
                row = connection.execute(
                    "SELECT rowid FROM ledger_checkpoint_parts WHERE seq NOT IN (SELECT seq FROM ledger_checkpoints) "
                    "LIMIT 1"
                ).fetchone()
                if row is not None:
                    connection.execute("DELETE FROM ledger_checkpoint_parts WHERE rowid = ?", row)
            longest = max(longest, time.perf_counter() - began)
            if row is None:
                break
        logger.info(
            "checkpoint at seq=%d stored in %d part(s), %.3f s; the longest transaction held the file %.3f s",
            checkpoint.seq, max(1, len(parts)), time.perf_counter() - started, longest,
        )  # fmt: skip

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StoreUnavailable(f"{self.description}: not connected")
        return self._reader

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._read_lock:
            connection = self._read()
            connection.execute("BEGIN")  # its row and its parts from one snapshot of the file
            try:
                row = connection.execute(
                    "SELECT seq, timestamp_last, checksum, accounts, transfer_status, domain FROM ledger_checkpoints "
                    "ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                parts = [] if row is None else [part for (part,) in connection.execute(
                    "SELECT data FROM ledger_checkpoint_parts WHERE seq = ? ORDER BY part", (row[0],)
                )]  # fmt: skip
            finally:
                connection.execute("COMMIT")
        if row is None:
            return None
        seq, timestamp_last, checksum, accounts, transfer_status, domain = row
        if parts:
            accounts, transfer_status, domain = joined_checkpoint(parts, seq)
        return Checkpoint(
            seq=seq,
            timestamp_last=timestamp_last,
            checksum=checksum,
            accounts=unpack_checkpoint_blob(accounts, seq, "accounts"),
            transfer_status=unpack_checkpoint_blob(transfer_status, seq, "transfer statuses"),
            domain=unpack_domain_snapshot(domain, seq),
        )

    def commits(self, after_seq: int = 0, upto_seq: int = SEQ_MAX) -> Iterator[Commit]:
        return commits_of(self.commit_rows(after_seq, upto_seq))

    def commit_rows(self, after_seq: int = 0, upto_seq: int = SEQ_MAX) -> Iterator[list[CommitRow]]:
        # A connection of its own; one statement reads one snapshot of the file for the whole scan.
        # Rows come one at a time from SQLite, so a chunk is cut by its size, whatever the commits' sizes.
        connection = self._connect()
        try:
            cursor = connection.execute(
                f"SELECT {COMMIT_COLUMNS} FROM ledger_journal WHERE seq > ? AND seq <= ? ORDER BY seq",
                (after_seq, upto_seq),
            )
            yield from commit_chunks(cursor)
        except sqlite3.DatabaseError as exc:
            raise JournalCorrupt(f"{self.description}: the journal cannot be read: {exc}") from exc
        finally:
            connection.close()

    # -- history ---------------------------------------------------------------

    def timestamp_last_of(self, seq: int) -> int | None:
        with self._read_lock:
            row = self._read().execute("SELECT timestamp_last FROM ledger_journal WHERE seq = ?", (seq,)).fetchone()
        return int(row[0]) if row else None

    def history_position(self) -> int:
        with self._read_lock:
            row = self._read().execute("SELECT seq FROM ledger_history_position WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def write_history(self, transfers: bytes, balances: Sequence[HistoryRow], seq: int) -> None:
        connection = self._history_connection()
        with self._transaction(connection, "writing the history index"):
            for table, table_rows in ((TRANSFERS_TABLE, account_rows(transfers)), (BALANCES_TABLE, balances)):
                connection.executemany(
                    f"INSERT OR REPLACE INTO {table} ({HISTORY_COLUMNS}) VALUES (?,?,?,?,?,?)",
                    [(signed(r.account_lo), signed(r.account_hi), *r[2:]) for r in table_rows],
                )
            connection.execute("INSERT OR REPLACE INTO ledger_history_position (id, seq) VALUES (1, ?)", (seq,))

    def _history_connection(self) -> sqlite3.Connection:
        if self._indexer is None:
            self._indexer = self._connect()
        return self._indexer

    def history_rows(
        self, table: str, account_id: int, timestamp_min: int, timestamp_max: int, reverse: bool
    ) -> list[HistoryRow]:
        assert table in HISTORY_TABLES
        lo, hi = account_id & U64_MASK, account_id >> 64
        with self._read_lock:
            rows = (
                self._read()
                .execute(
                    f"SELECT {HISTORY_COLUMNS} FROM {table} "
                    "WHERE account_lo = ? AND account_hi = ? AND timestamp_last >= ? AND timestamp_first <= ? "
                    f"ORDER BY timestamp_first {'DESC' if reverse else 'ASC'}",
                    (signed(lo), signed(hi), timestamp_min, timestamp_max),
                )
                .fetchall()
            )
        return [HistoryRow(lo, hi, *row[2:]) for row in rows]

    def read_transfers(self, ordinals: Sequence[int]) -> dict[int, bytes]:
        # An account's ordinals come in runs within a commit (a busy wallet's page is often one run): one query
        # per commit and one blob read per block, not one of each per record.
        found: dict[int, bytes] = {}
        with self._read_lock:
            connection = self._read()
            commit: tuple[int, int, int, bytes | None] | None = None  # seq, transfers_first, transfers_count, ends
            wanted: list[int] = []  # ordinals in `commit`
            for ordinal in sorted(set(ordinals)):
                if commit is not None and commit[1] <= ordinal < commit[1] + commit[2]:
                    wanted.append(ordinal)
                    continue
                if commit is not None:
                    self._read_commit(connection, commit, wanted, found)
                commit, wanted = None, []
                row = connection.execute(
                    "SELECT seq, transfers_first, transfers_count, transfer_blocks FROM ledger_journal "
                    "WHERE transfers_first <= ? AND transfers_count > 0 "
                    "ORDER BY transfers_first DESC, transfers_count DESC LIMIT 1",
                    (ordinal,),
                ).fetchone()
                if row is not None and ordinal < row[1] + row[2]:
                    commit, wanted = row, [ordinal]
            if commit is not None:
                self._read_commit(connection, commit, wanted, found)
        return found

    @staticmethod
    def _read_commit(
        connection: sqlite3.Connection,
        commit: tuple[int, int, int, bytes | None],
        ordinals: list[int],
        found: dict[int, bytes],
    ) -> None:
        """Records of one commit (ordinals ascending): the blocks that hold them, each read and decompressed once,
        or in a row with no block index the raw records, a run at a time."""
        seq, first, count, ends = commit
        with connection.blobopen("ledger_journal", "transfers", seq, readonly=True) as blob:
            if ends is None:
                for start, end in _runs(ordinals):
                    if (start - first) * TRANSFER_SIZE >= len(blob):
                        continue
                    blob.seek((start - first) * TRANSFER_SIZE)
                    data = blob.read((end - start + 1) * TRANSFER_SIZE)
                    for index in range(len(data) // TRANSFER_SIZE):
                        found[start + index] = data[index * TRANSFER_SIZE : (index + 1) * TRANSFER_SIZE]
                return
            for block, in_block in groupby(ordinals, key=lambda ordinal: (ordinal - first) // TRANSFER_BLOCK_RECORDS):
                offset, length = block_span(ends, block)
                if offset + length > len(blob):
                    raise JournalCorrupt(f"journal commit seq={seq}: transfer block {block} lies outside its blocks")
                blob.seek(offset)
                records = decompress_block(blob.read(length), block, count, f"journal commit seq={seq}")
                for ordinal in in_block:
                    index = ordinal - first - block * TRANSFER_BLOCK_RECORDS
                    found[ordinal] = records[index * TRANSFER_SIZE : (index + 1) * TRANSFER_SIZE]

    def close(self) -> None:
        if self._wal_thread is not None:
            self._wal_stop.set()
            self._wal_thread.join()
            self._wal_thread = None
        for connection in (self._indexer, self._checkpointer):
            if connection is not None:
                connection.close()
        self._indexer = self._checkpointer = None
        for connection in (self._writer, self._reader):
            if connection is not None:
                connection.close()
        self._writer = self._reader = None
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None


def _runs(ordinals: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive ordinals (ascending)."""
    start = end = ordinals[0]
    for ordinal in ordinals[1:]:
        if ordinal != end + 1:
            yield start, end
            start = ordinal
        end = ordinal
    yield start, end
