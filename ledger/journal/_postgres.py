"""The production journal store: PostgreSQL through psycopg 3.

A group commit is one statement in autocommit: a prepared INSERT of its one
commit row (the usual case), or one COPY … FROM STDIN (FORMAT BINARY) of
several rows (a backlog past commit_bytes_max). Either way the row is the
same: blobs of the engine's packed records, the transfers in LZ4 blocks
(_blocks.py): nothing is encoded per transfer, and Postgres appends about as
fast as it can write WAL, a third as much as the raw records. Balances
are never updated row by row (that costs 6 to 12 times more here); they live in the
engine and in checkpoints.

The writer's connection holds a session advisory lock on the journal's
schema for as long as it lives, so a second ledger on the same journal
refuses to start instead of interleaving commits (ledgers in other schemas
of the database are other journals). Reads (the checkpoint at start, history queries) go
through a psycopg_pool pool of their own, checked on checkout so that a
restarted server costs no failed query; the history index and the journal
scans have a connection each.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ledger.records.limits import TRANSFER_SIZE

from ._blocks import TRANSFER_BLOCK_RECORDS, block_span, commit_chunks, compress_transfers, decompress_block
from ._format import Checkpoint, Commit, CommitRow, JournalCorrupt
from ._postings import postings
from ._schema import COMMIT_COLUMNS, POSTGRESQL, SCHEMA, TABLES, pending
from ._store import (
    BALANCES_TABLE,
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
    commits_of,
    joined_transfer_ids,
    pack_checkpoint_blob,
    pack_domain_snapshot,
    signed,
    transfer_ids_checksum,
    unpack_checkpoint_blob,
    unpack_domain_snapshot,
)

CONNECT_TIMEOUT_SECONDS: Final = 5
READERS_MAX: Final = 4
"""Connections of the pool that serves reads (checkpoints at start, history) next to the writer's."""
ADVISORY_LOCK_CLASS: Final = 0x4C45_4447  # "LEDG"; the second key is the schema's hash

_COPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER: Final = struct.pack(">h", -1)
_COPY_ROW_HEAD: Final = struct.Struct(">hiqiqiqiqiqiq")
_COMMIT_FIELDS: Final = 12
_COPY_LENGTH: Final = struct.Struct(">i")
_HISTORY_ROW_HEAD: Final = struct.Struct(">hiqiqiqiqiii")
"""A history row in COPY BINARY: 6 fields, four int8 and an int4 (each after its length), then the entries' length."""


def _history_copy(rows: Sequence[HistoryRow]) -> bytes:
    """The rows as one COPY BINARY stream (signature, rows, trailer): one pack per row, no adaptation per value."""
    pack = _HISTORY_ROW_HEAD.pack
    parts = [_COPY_SIGNATURE]
    for r in rows:
        parts.append(pack(6, 8, signed(r.account_lo), 8, signed(r.account_hi), 8, r.timestamp_first,
                          8, r.timestamp_last, 4, r.entries_count, len(r.entries)))  # fmt: skip
        parts.append(r.entries)
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


_COPY_COLUMNS: Final = COMMIT_COLUMNS
_INSERT_NAME: Final = b"ledger_journal_insert"
_INSERT_SQL: Final = (
    f"INSERT INTO ledger_journal ({COMMIT_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 13))})".encode()
)
"""One commit row: one round trip where COPY takes two (the server answers COPY before it takes the data),
0.1 ms less per commit here at every size up to a full batch."""
_INT8_OID, _BYTEA_OID = 20, 17
_INSERT_TYPES: Final = (_INT8_OID,) * 6 + (_BYTEA_OID,) * 6
_BINARY: Final = (1,) * _COMMIT_FIELDS
_INT8: Final = struct.Struct(">q")
_SCAN: Final = (
    f"COPY (SELECT {COMMIT_COLUMNS} FROM ledger_journal WHERE seq > %s AND seq <= %s ORDER BY seq) "
    "TO STDOUT (FORMAT BINARY)"
)
_SCAN_TYPES: Final = ["int8"] * 6 + ["bytea"] * 6
assert len(_INSERT_TYPES) == len(_SCAN_TYPES) == _COMMIT_FIELDS == COMMIT_COLUMNS.count(",") + 1

_UNAVAILABLE: Final = (psycopg.OperationalError, psycopg.InterfaceError)


def describe(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable DSN)"
    user = str(parts.get("user", ""))
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{parts.get('dbname', '')}"


def _check(connection: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
    """Raise what psycopg would for a statement run through libpq directly that did not succeed."""
    if result.status == pq.ExecStatus.COMMAND_OK:
        return
    if connection.pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError(result.get_error_message(connection.info.encoding).strip())
    raise pg_errors.error_from_result(result, encoding=connection.info.encoding)


class PostgresStore:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.description = describe(dsn)
        self._writer: psycopg.Connection[Any] | None = None
        self._readers: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._indexer: psycopg.Connection[Any] | None = None
        self._scanner: psycopg.Connection[Any] | None = None
        self._checkpointer: psycopg.Connection[Any] | None = None
        self._scan_lock = threading.Lock()
        self._insert_prepared_on: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name="ledger",
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.description}: {exc}".strip()) from exc

    def connect(self) -> None:
        self._writer = self._writer_connection()
        readers: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=READERS_MAX,
            open=False,
            name="ledger-readers",
            timeout=CONNECT_TIMEOUT_SECONDS,
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "ledger"},
        )
        try:
            readers.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except PoolTimeout as exc:
            readers.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.description}: {exc}") from exc
        self._readers = readers

    def _writer_connection(self) -> psycopg.Connection[Any]:
        """The writer's connection, made (and locked, and migrated) anew after a failure."""
        if self._writer is not None and not self._writer.closed:
            return self._writer
        connection = self._connect()
        try:
            locked = connection.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (ADVISORY_LOCK_CLASS,)
            ).fetchone()
            if not (locked and locked[0]):
                raise StoreLocked(f"{self.description}: another ledger process holds this journal")
            self._migrate(connection)
        except _UNAVAILABLE as exc:
            connection.close()
            raise StoreUnavailable(f"{self.description}: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        self._writer = connection
        return connection

    def _migrate(self, connection: psycopg.Connection[Any]) -> None:
        with connection.transaction():
            connection.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (ADVISORY_LOCK_CLASS + 1,)
            )
            for statement in SCHEMA.create(POSTGRESQL, if_not_exists=True):
                connection.execute(statement)
            applied = {row[0] for row in connection.execute("SELECT version FROM ledger_schema")}
            for target, statements in pending(POSTGRESQL, applied, self.description):
                for statement in statements:
                    connection.execute(statement)
                connection.execute("INSERT INTO ledger_schema (version) VALUES (%s)", (target,))

    def _drop_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def append(self, commits: Sequence[Commit]) -> None:
        connection = self._writer_connection()
        try:
            try:
                # One statement in autocommit is its own transaction: all rows or none, durable when it
                # returns (synchronous_commit), without the round trips of BEGIN and COMMIT.
                if len(commits) == 1:
                    self._insert(connection, commits[0])
                else:
                    self._copy(connection, commits)
            except pg_errors.UniqueViolation:
                # A retry of a transaction that landed although its acknowledgement was lost.
                seqs = [c.seq for c in commits]
                rows = connection.execute("SELECT seq, checksum FROM ledger_journal WHERE seq = ANY(%s)", (seqs,))
                check_duplicate(dict(rows.fetchall()), commits, self.description)
        except _UNAVAILABLE as exc:
            self._drop_writer()
            raise StoreUnavailable(f"{self.description}: commit not confirmed: {exc}".strip()) from exc

    def _insert(self, connection: psycopg.Connection[Any], c: Commit) -> None:
        """The commit as one prepared INSERT with binary parameters, sent through libpq itself.

        psycopg's own execute costs about 0.15 ms of Python per commit here (a cursor, adaptation, the
        prepared-statement cache, result bookkeeping) on the path every acknowledgement waits for; this
        is one libpq call, which releases the GIL while PostgreSQL commits.
        """
        pgconn = connection.pgconn
        if self._insert_prepared_on is not connection:  # a prepared statement lives as long as its session
            _check(connection, pgconn.prepare(_INSERT_NAME, _INSERT_SQL, _INSERT_TYPES))
            self._insert_prepared_on = connection
        blocks, ends = compress_transfers(c.transfers)
        numbers = (c.seq, c.timestamp_last, c.accounts_first, c.transfers_first, c.transfers_count, c.checksum)
        blobs = (c.accounts, blocks, ends, c.expired, c.balances, c.domain)
        params = [*map(_INT8.pack, numbers), *(b if isinstance(b, bytes) else bytes(b) for b in blobs)]
        _check(connection, pgconn.exec_prepared(_INSERT_NAME, params, _BINARY, 1))

    @staticmethod
    def _copy(connection: psycopg.Connection[Any], commits: Sequence[Commit]) -> None:
        statement = f"COPY ledger_journal ({_COPY_COLUMNS}) FROM STDIN (FORMAT BINARY)"
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(_COPY_SIGNATURE)
            for c in commits:
                head = _COPY_ROW_HEAD.pack(
                    _COMMIT_FIELDS, 8, c.seq, 8, c.timestamp_last, 8, c.accounts_first, 8, c.transfers_first,
                    8, c.transfers_count, 8, c.checksum,
                )  # fmt: skip
                copy.write(head)
                blocks, ends = compress_transfers(c.transfers)
                for blob in (c.accounts, blocks, ends, c.expired, c.balances, c.domain):
                    copy.write(_COPY_LENGTH.pack(len(blob)))
                    if blob:
                        copy.write(blob)
            copy.write(_COPY_TRAILER)

    def _checkpoint_connection(self) -> psycopg.Connection[Any]:
        """A connection of its own: checkpoints are saved on a thread beside the writer's."""
        if self._checkpointer is None or self._checkpointer.closed:
            self._checkpointer = self._connect()
        return self._checkpointer

    def save_transfer_ids(self, first: int, ids: bytes) -> None:
        if len(ids) > 16 * TRANSFER_IDS_SEGMENT or len(ids) % 16:
            raise ValueError(f"a segment holds whole ids, at most {TRANSFER_IDS_SEGMENT}")
        connection = self._checkpoint_connection()
        try:
            with connection.transaction():
                connection.execute(
                    "INSERT INTO ledger_transfer_ids (transfers_first, transfers_count, checksum, ids) "
                    "VALUES (%s, %s, %s, %b)",
                    (first, len(ids) // 16, transfer_ids_checksum(first, ids), ids),
                )
        except _UNAVAILABLE as exc:
            connection.close()
            raise StoreUnavailable(f"{self.description}: transfer ids not confirmed: {exc}".strip()) from exc

    def transfer_ids_end(self) -> int:
        rows = self._fetch(
            "SELECT transfers_first + transfers_count FROM ledger_transfer_ids ORDER BY transfers_first DESC LIMIT 1"
        )
        return int(rows[0][0]) if rows else 0

    def commit_of_transfer(self, ordinal: int) -> int | None:
        rows = self._fetch(
            "SELECT seq, transfers_first + transfers_count FROM ledger_journal "
            "WHERE transfers_first <= %s AND transfers_count > 0 "
            "ORDER BY transfers_first DESC, transfers_count DESC LIMIT 1",
            (ordinal,),
        )
        return int(rows[0][0]) if rows and ordinal < rows[0][1] else None

    def drop_transfer_ids(self) -> None:
        connection = self._checkpoint_connection()
        try:
            connection.execute("DELETE FROM ledger_transfer_ids")
        except _UNAVAILABLE as exc:
            connection.close()
            raise StoreUnavailable(f"{self.description}: transfer ids not deleted: {exc}".strip()) from exc

    def transfer_ids(self, upto: int) -> bytearray | None:
        connection = self._connect()  # a scan of its own, a few segments at a time (a server-side cursor)
        try:
            with connection.transaction(), connection.cursor("transfer_ids", binary=True) as cursor:
                cursor.itersize = 16
                cursor.execute(
                    "SELECT transfers_first, transfers_count, checksum, ids FROM ledger_transfer_ids "
                    "WHERE transfers_first < %s ORDER BY transfers_first",
                    (upto,),
                )
                return joined_transfer_ids(iter(cursor), upto, self.description)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"{self.description}: {exc}") from exc
        finally:
            connection.close()

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        connection = self._checkpoint_connection()
        row = (
            checkpoint.seq,
            checkpoint.timestamp_last,
            checkpoint.checksum,
            pack_checkpoint_blob(checkpoint.accounts),
            pack_checkpoint_blob(checkpoint.transfer_status),
            pack_domain_snapshot(checkpoint.domain),
            time.time_ns(),
        )
        try:
            with connection.transaction():
                connection.execute("DELETE FROM ledger_checkpoints WHERE seq = %s", (checkpoint.seq,))
                connection.execute(
                    "INSERT INTO ledger_checkpoints "
                    "(seq, timestamp_last, checksum, accounts, transfer_status, domain, created_at_ns) "
                    "VALUES (%s, %s, %s, %b, %b, %b, %s)",
                    row,
                )
                connection.execute(
                    "DELETE FROM ledger_checkpoints WHERE seq NOT IN "
                    "(SELECT seq FROM ledger_checkpoints ORDER BY seq DESC LIMIT %s)",
                    (CHECKPOINTS_KEPT,),
                )
        except _UNAVAILABLE as exc:
            connection.close()
            raise StoreUnavailable(f"{self.description}: checkpoint not confirmed: {exc}".strip()) from exc

    def _fetch(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read (binary) on a connection of the readers' pool."""
        if self._readers is None:
            raise StoreUnavailable(f"{self.description}: not connected")
        try:
            with self._readers.connection() as connection, connection.cursor(binary=True) as cursor:
                return cursor.execute(query, params).fetchall()
        except (PoolTimeout, *_UNAVAILABLE) as exc:
            raise StoreUnavailable(f"{self.description}: {exc}") from exc

    def latest_checkpoint(self) -> Checkpoint | None:
        rows = self._fetch(
            "SELECT seq, timestamp_last, checksum, accounts, transfer_status, domain FROM ledger_checkpoints "
            "ORDER BY seq DESC LIMIT 1"
        )
        if not rows:
            return None
        seq, timestamp_last, checksum, accounts, transfer_status, domain = rows[0]
        return Checkpoint(
            seq=seq,
            timestamp_last=timestamp_last,
            checksum=checksum,
            accounts=unpack_checkpoint_blob(accounts, seq, "accounts"),
            transfer_status=unpack_checkpoint_blob(transfer_status, seq, "transfer statuses"),
            domain=unpack_domain_snapshot(domain, seq),
        )

    def timestamp_last_of(self, seq: int) -> int | None:
        rows = self._fetch("SELECT timestamp_last FROM ledger_journal WHERE seq = %s", (seq,))
        return int(rows[0][0]) if rows else None

    def commits(self, after_seq: int = 0, upto_seq: int = SEQ_MAX) -> Iterator[Commit]:
        return commits_of(self.commit_rows(after_seq, upto_seq))

    def commit_rows(self, after_seq: int = 0, upto_seq: int = SEQ_MAX) -> Iterator[list[CommitRow]]:
        # A connection of its own, kept for the next scan; one scan at a time.
        with self._scan_lock:
            if self._scanner is None or self._scanner.closed:
                self._scanner = self._connect()
            yield from self._scan(self._scanner, after_seq, upto_seq)

    def _scan(self, connection: psycopg.Connection[Any], after_seq: int, upto_seq: int) -> Iterator[list[CommitRow]]:
        # One COPY streams every commit (one statement: one snapshot): the server goes on reading while the
        # chunks before are replayed, and a round trip per chunk, or fetching whole results, would cost more
        # than the replay here.
        try:
            with connection.cursor(binary=True) as cursor, cursor.copy(_SCAN, (after_seq, upto_seq)) as copy:
                copy.set_types(_SCAN_TYPES)
                yield from commit_chunks(copy.rows())
        except pg_errors.DataCorrupted as exc:
            raise JournalCorrupt(f"{self.description}: the journal cannot be read: {exc}") from exc
        except _UNAVAILABLE as exc:
            connection.close()
            raise StoreUnavailable(f"{self.description}: reading the journal failed: {exc}") from exc

    # -- history ---------------------------------------------------------------

    def history_position(self) -> int:
        rows = self._fetch("SELECT seq FROM ledger_history_position WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def write_history(self, transfers: bytes, balances: Sequence[HistoryRow], seq: int) -> None:
        if self._indexer is None or self._indexer.closed:
            self._indexer = self._connect()
        connection = self._indexer
        try:
            with connection.transaction(), connection.cursor() as cursor:
                # A flush repeated after a lost acknowledgement finds its position stored: it landed whole (one
                # transaction), so nothing is written twice, and a first write needs no DELETE of what is not there.
                cursor.execute("SELECT seq FROM ledger_history_position WHERE id = 1 FOR UPDATE")
                stored = cursor.fetchone()
                if stored is not None and stored[0] >= seq:
                    return
                if transfers:
                    with cursor.copy(f"COPY {TRANSFERS_TABLE} ({HISTORY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(_COPY_SIGNATURE)
                        copy.write(postings.copy_rows(transfers))  # the rows made natively: no object per row
                        copy.write(_COPY_TRAILER)
                if balances:
                    with cursor.copy(f"COPY {BALANCES_TABLE} ({HISTORY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(_history_copy(balances))
                cursor.execute(
                    "INSERT INTO ledger_history_position (id, seq) VALUES (1, %s) "
                    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                    (seq,),
                )
        except _UNAVAILABLE as exc:
            connection.close()
            raise StoreUnavailable(f"{self.description}: writing the history index failed: {exc}") from exc

    def history_rows(
        self, table: str, account_id: int, timestamp_min: int, timestamp_max: int, reverse: bool
    ) -> list[HistoryRow]:
        assert table in HISTORY_TABLES
        lo, hi = account_id & U64_MASK, account_id >> 64
        rows = self._fetch(
            f"SELECT timestamp_first, timestamp_last, entries_count, entries FROM {table} "
            "WHERE account_lo = %s AND account_hi = %s AND timestamp_last >= %s AND timestamp_first <= %s "
            f"ORDER BY timestamp_first {'DESC' if reverse else 'ASC'}",
            (signed(lo), signed(hi), timestamp_min, timestamp_max),
        )
        return [HistoryRow(lo, hi, *row) for row in rows]

    def read_transfers(self, ordinals: Sequence[int]) -> dict[int, bytes]:
        if not ordinals:
            return {}
        # Where each record is: its commit, its index there, and the commit's block ends (NULL: raw records).
        places = self._fetch(
            "SELECT o, j.seq, o - j.transfers_first, j.transfers_count, j.transfer_blocks "
            "FROM unnest(%s::int8[]) AS o, LATERAL (SELECT seq, transfers_first, transfers_count, transfer_blocks "
            "FROM ledger_journal WHERE transfers_first <= o AND transfers_count > 0 "
            "ORDER BY transfers_first DESC, transfers_count DESC LIMIT 1) AS j",
            (list(ordinals),),
        )
        # Then the bytes: a substring of an uncompressed (EXTERNAL) value reads only the chunks it needs.
        spans: dict[tuple[int, int, int], int] = {}  # (seq, offset, length) -> its row in the second read
        wanted: list[tuple[int, int, int, int, int]] = []  # ordinal, row, block (-1: raw), index, transfers count
        for ordinal, seq, index, transfers_count, ends in places:
            if index >= transfers_count:
                continue
            if ends is None:
                block, span = -1, (seq, index * TRANSFER_SIZE, TRANSFER_SIZE)
            else:
                block = index // TRANSFER_BLOCK_RECORDS
                span = (seq, *block_span(ends, block))
            wanted.append((ordinal, spans.setdefault(span, len(spans)), block, index, transfers_count))
        if not spans:
            return {}
        columns = ([row for row in spans.values()], *([span[i] for span in spans] for i in range(3)))
        pieces: dict[int, bytes] = dict(
            self._fetch(
                "SELECT r.row_, substring(j.transfers FROM (r.offset_ + 1)::int4 FOR r.length_::int4) "
                "FROM unnest(%s::int8[], %s::int8[], %s::int8[], %s::int8[]) AS r(row_, seq, offset_, length_) "
                "JOIN ledger_journal j ON j.seq = r.seq",
                columns,
            )
        )
        records: dict[int, bytes] = {}
        blocks: dict[int, bytes] = {}
        for ordinal, row, block, index, transfers_count in wanted:
            piece = pieces.get(row)
            if piece is None:
                continue
            if block >= 0:
                if row not in blocks:
                    blocks[row] = decompress_block(piece, block, transfers_count, "the journal's transfers")
                offset = (index - block * TRANSFER_BLOCK_RECORDS) * TRANSFER_SIZE
                piece = blocks[row][offset : offset + TRANSFER_SIZE]
            if len(piece) == TRANSFER_SIZE:
                records[ordinal] = piece
        return records

    def close(self) -> None:
        for connection in (self._indexer, self._scanner, self._checkpointer):
            if connection is not None:
                connection.close()
        self._indexer = self._scanner = self._checkpointer = None
        if self._readers is not None:
            self._readers.close()
            self._readers = None
        if self._writer is not None and not self._writer.closed:
            # Released here rather than when PostgreSQL notices the session has gone, which it does a moment
            # after the connection closes: a ledger opened right after this one would find the journal locked.
            with contextlib.suppress(psycopg.Error):
                self._writer.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(current_schema()))", (ADVISORY_LOCK_CLASS,)
                )
        self._drop_writer()

    def drop_schema(self) -> None:
        """Delete the journal, its checkpoints and schema (tests and benchmarks)."""
        connection = self._connect()
        try:
            with connection.transaction():
                for table in TABLES:
                    connection.execute(f"DROP TABLE IF EXISTS {table.name}")
        finally:
            connection.close()
