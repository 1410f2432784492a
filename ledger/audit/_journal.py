"""A read-only reader of a journal store, written from the README's "The journal's byte format" alone.

Nothing here imports the ledger's journal or engine: the auditor reads the
tables with SQL and the bytes with the layouts the README documents, so a
clean verdict does not rest on the code it checks, and the README is shown
to be enough to write a reader (tests/integration/test_audit.py compares this
reader with journals the ledger wrote).

Read-only by construction: SQLite is opened with `mode=ro` and
`query_only`, and never through the ledger's lock file; PostgreSQL in a
`READ ONLY` transaction at `REPEATABLE READ`, never touching the writer's
advisory lock. Everything is read in one transaction, so an audit beside a
running server sees one consistent snapshot: the commits durable when it
began, and the checkpoints stored by then.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import lz4.block

ACCOUNT_SIZE: Final = 128
TRANSFER_SIZE: Final = 128
EXPIRED_SIZE: Final = 24
BALANCE_SIZE: Final = 64
BLOCK_RECORDS: Final = 64
"""Transfer records per LZ4 block."""
SCHEMA_VERSIONS: Final = (1, 2, 3, 4, 5, 6)
"""The schema versions (table `ledger_schema`) whose columns the README documents."""
BLOCKS_VERSION: Final = 2
"""Once a store has applied it, `ledger_journal` has a `transfer_blocks` column."""
DOMAIN_VERSION: Final = 3
"""Once a store has applied it, both tables have a `domain` column."""
PARTS_VERSION: Final = 5
"""Once a store has applied it, a checkpoint may be stored in `ledger_checkpoint_parts`."""
PARTS_HEADER: Final = struct.Struct("<QQQ")
IDS_VERSION: Final = 6
"""Once a store has applied it, `ledger_transfer_ids` holds the transfers' ids in segments."""
IDS_HEADER: Final = struct.Struct("<4sQQ")

COMMIT_HEADER: Final = struct.Struct("<4sQQQQQQQQ")
CHECKPOINT_HEADER: Final = struct.Struct("<4sQQQQQ")
DOMAIN_HEADER: Final = struct.Struct("<4sQ")
BLOCK_END: Final = struct.Struct("<I")

_COLUMNS: Final = "seq, timestamp_last, accounts_first, transfers_first, transfers_count, checksum, accounts, transfers"
_ROWS_PER_FETCH: Final = 8
"""Commits held at once while scanning: a commit may be up to 64 MiB of records."""


class JournalUnreadable(Exception):
    """The store cannot be opened or holds no journal; the message says which store and why (no password)."""


class JournalDamage(Exception):
    """What the bytes themselves show to be wrong with a commit or checkpoint: its seq and what."""

    def __init__(self, seq: int, what: str, message: str) -> None:
        super().__init__(f"{what} seq={seq}: {message}")
        self.seq = seq
        self.what = what
        self.message = message


@dataclass(frozen=True, slots=True)
class StoredCommit:
    """One journal row, its transfers decompressed, its checksum verified."""

    seq: int
    timestamp_last: int
    accounts_first: int
    transfers_first: int
    accounts: bytes
    transfers: bytes
    expired: bytes
    balances: bytes
    domain: bytes = b""
    """The domain layer's records: opaque here, covered by the checksum only."""

    @property
    def accounts_count(self) -> int:
        return len(self.accounts) // ACCOUNT_SIZE

    @property
    def transfers_count(self) -> int:
        return len(self.transfers) // TRANSFER_SIZE


@dataclass(frozen=True, slots=True)
class CheckpointHead:
    seq: int
    timestamp_last: int
    checksum: int


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    seq: int
    timestamp_last: int
    accounts: bytes
    transfer_status: bytes
    domain: bytes = b""
    """The domain layer's snapshot, inflated: opaque here."""


@dataclass(frozen=True, slots=True)
class StoredIds:
    """One segment of `ledger_transfer_ids`, its checksum verified."""

    transfers_first: int
    ids: bytes


@dataclass(frozen=True, slots=True)
class Extent:
    """What the snapshot holds, for progress: the last seq and the transfers up to it."""

    seq_last: int
    transfers_count: int


class Journal(Protocol):
    """One store's journal as one read-only snapshot."""

    description: str

    def extent(self) -> Extent: ...

    def commits(self) -> Iterator[StoredCommit]:
        """Every commit in seq order, verified as bytes (JournalDamage otherwise); gaps are the caller's to find."""
        ...

    def checkpoints(self) -> list[CheckpointHead]:
        """The checkpoints stored, oldest first."""
        ...

    def checkpoint(self, head: CheckpointHead) -> StoredCheckpoint:
        """A checkpoint's blobs, inflated and verified (JournalDamage otherwise)."""
        ...

    def transfer_ids(self) -> Iterator[StoredIds]:
        """The stored segments of transfer ids in ordinal order, each verified (JournalDamage otherwise)."""
        ...

    def close(self) -> None: ...


def open_journal(url: str) -> Journal:
    """A read-only snapshot of the journal at a store URL, as `ledger serve --store` takes it."""
    url = url.strip()
    if url.startswith(("postgresql://", "postgres://")):
        return _PostgresJournal(url)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif url.startswith("sqlite://"):
        raise JournalUnreadable(f"store URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    elif url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:")
    elif "://" in url:
        raise JournalUnreadable(f"store URL {url!r}: use postgresql://… or sqlite:///path")
    else:
        path = url
    if not path:
        raise JournalUnreadable(f"store URL {url!r} names no file")
    return _SqliteJournal(Path(path))


# -- the bytes -------------------------------------------------------------------------------------


def commit_checksum(
    seq: int,
    timestamp_last: int,
    accounts_first: int,
    transfers_first: int,
    accounts: bytes,
    transfers: bytes,
    expired: bytes,
    balances: bytes,
    domain: bytes = b"",
) -> int:
    """CRC-32 of the commit header and its four record blobs (transfers uncompressed), chained in that order,
    then of the domain records if there are any."""
    header = COMMIT_HEADER.pack(
        b"LJC1", seq, timestamp_last, accounts_first, transfers_first,
        len(accounts), len(transfers), len(expired), len(balances),
    )  # fmt: skip
    crc = zlib.crc32(header)
    for blob in (accounts, transfers, expired, balances):
        crc = zlib.crc32(blob, crc)
    return domain_checksum(domain, crc)


def checkpoint_checksum(
    seq: int, timestamp_last: int, accounts: bytes, transfer_status: bytes, domain: bytes = b""
) -> int:
    header = CHECKPOINT_HEADER.pack(
        b"LJK1", seq, timestamp_last, len(accounts) // ACCOUNT_SIZE, len(transfer_status), len(accounts)
    )
    return domain_checksum(domain, zlib.crc32(transfer_status, zlib.crc32(accounts, zlib.crc32(header))))


def domain_checksum(domain: bytes, crc: int) -> int:
    """The CRC chained on over `LJD1`, the domain's length and its bytes; an empty domain leaves it as it is."""
    if not domain:
        return crc
    return zlib.crc32(domain, zlib.crc32(DOMAIN_HEADER.pack(b"LJD1", len(domain)), crc))


def decompress_blocks(seq: int, blocks: bytes, ends: bytes, transfers_count: int) -> bytes:
    """The raw transfer records of a row: LZ4 blocks of up to 64 records, `ends` their end offsets."""
    blocks_count = -(-transfers_count // BLOCK_RECORDS)
    if len(ends) != blocks_count * BLOCK_END.size:
        raise JournalDamage(
            seq, "journal commit", f"transfer_blocks holds {len(ends)} bytes, {transfers_count} transfers need "
            f"{blocks_count} block ends ({blocks_count * BLOCK_END.size} bytes)"
        )  # fmt: skip
    raw = bytearray()
    start = 0
    for block in range(blocks_count):
        (end,) = BLOCK_END.unpack_from(ends, block * BLOCK_END.size)
        if not start < end <= len(blocks):
            raise JournalDamage(
                seq, "journal commit", f"transfer block {block} ends at {end}, outside {start + 1}..{len(blocks)}"
            )
        size = min(BLOCK_RECORDS, transfers_count - block * BLOCK_RECORDS) * TRANSFER_SIZE
        try:
            records = lz4.block.decompress(blocks[start:end], uncompressed_size=size)
        except lz4.block.LZ4BlockError as exc:
            raise JournalDamage(seq, "journal commit", f"transfer block {block} does not decompress: {exc}") from None
        if len(records) != size:
            raise JournalDamage(
                seq, "journal commit", f"transfer block {block} holds {len(records)} bytes, expected {size}"
            )
        raw += records
        start = end
    if start != len(blocks):
        raise JournalDamage(seq, "journal commit", f"{len(blocks) - start} bytes follow the last transfer block")
    return bytes(raw)


def verify_commit(
    seq: int,
    timestamp_last: int,
    accounts_first: int,
    transfers_first: int,
    transfers_count: int,
    checksum: int,
    accounts: bytes,
    transfers: bytes,
    expired: bytes,
    balances: bytes,
    domain: bytes = b"",
) -> StoredCommit:
    """A commit whose record sizes, transfers_count and checksum agree with its bytes."""
    for name, blob, size in (
        ("accounts", accounts, ACCOUNT_SIZE),
        ("transfers", transfers, TRANSFER_SIZE),
        ("expired", expired, EXPIRED_SIZE),
        ("balances", balances, BALANCE_SIZE),
    ):
        if len(blob) % size:
            raise JournalDamage(seq, "journal commit", f"{name} holds {len(blob)} bytes, not whole {size}-byte records")
    if transfers_count != len(transfers) // TRANSFER_SIZE:
        raise JournalDamage(
            seq, "journal commit",
            f"transfers_count says {transfers_count}, the row holds {len(transfers) // TRANSFER_SIZE} transfers",
        )  # fmt: skip
    expected = commit_checksum(
        seq, timestamp_last, accounts_first, transfers_first, accounts, transfers, expired, balances, domain
    )
    if checksum != expected:
        raise JournalDamage(
            seq, "journal commit", f"checksum {checksum:#010x} does not match its contents ({expected:#010x})"
        )
    return StoredCommit(
        seq, timestamp_last, accounts_first, transfers_first, accounts, transfers, expired, balances, domain
    )


def stored_blobs(
    seq: int, accounts: bytes, transfer_status: bytes, domain: bytes, parts: list[bytes]
) -> tuple[bytes, bytes, bytes]:
    """A checkpoint's three stored blobs: those of its row, or, where it was stored in parts, those the parts
    hold (their three lengths, then the blobs)."""
    if not parts:
        return accounts, transfer_status, domain
    whole = b"".join(parts)
    if len(whole) < PARTS_HEADER.size:
        raise JournalDamage(seq, "checkpoint", "its parts are shorter than their header")
    sizes = PARTS_HEADER.unpack_from(whole)
    if PARTS_HEADER.size + sum(sizes) != len(whole):
        raise JournalDamage(seq, "checkpoint", f"its parts hold {len(whole)} bytes, not what their header says")
    first = PARTS_HEADER.size + sizes[0]
    second = first + sizes[1]
    return whole[PARTS_HEADER.size : first], whole[first:second], whole[second:]


def inflate_checkpoint(
    head: CheckpointHead, accounts: bytes, transfer_status: bytes, domain: bytes = b""
) -> StoredCheckpoint:
    """A checkpoint's blobs (stored zlib-deflated; an empty domain is stored empty), inflated and checked
    against its checksum."""
    try:
        raw_accounts = zlib.decompress(accounts)
        raw_status = zlib.decompress(transfer_status)
        raw_domain = zlib.decompress(domain) if domain else b""
    except zlib.error as exc:
        raise JournalDamage(head.seq, "checkpoint", f"a blob cannot be inflated ({exc})") from None
    if len(raw_accounts) % ACCOUNT_SIZE:
        raise JournalDamage(head.seq, "checkpoint", f"accounts holds {len(raw_accounts)} bytes, not whole records")
    expected = checkpoint_checksum(head.seq, head.timestamp_last, raw_accounts, raw_status, raw_domain)
    if head.checksum != expected:
        raise JournalDamage(
            head.seq, "checkpoint", f"checksum {head.checksum:#010x} does not match its contents ({expected:#010x})"
        )
    return StoredCheckpoint(head.seq, head.timestamp_last, raw_accounts, raw_status, raw_domain)


def verify_ids(transfers_first: int, transfers_count: int, checksum: int, ids: bytes) -> StoredIds:
    if len(ids) != 16 * transfers_count:
        raise JournalDamage(transfers_first, "transfer ids", f"hold {len(ids)} bytes for {transfers_count} ids")
    if zlib.crc32(ids, zlib.crc32(IDS_HEADER.pack(b"LTI1", transfers_first, transfers_count))) != checksum:
        raise JournalDamage(transfers_first, "transfer ids", "fail their checksum")
    return StoredIds(transfers_first, ids)


def _check_versions(versions: set[int], description: str) -> None:
    if not versions:
        raise JournalUnreadable(f"{description}: no journal here (the table ledger_schema is empty)")
    if max(versions) not in SCHEMA_VERSIONS:
        raise JournalUnreadable(
            f"{description}: journal schema version {max(versions)}; this auditor reads versions "
            f"{', '.join(map(str, SCHEMA_VERSIONS))}"
        )


class _SqlJournal:
    """What both stores answer with the same SQL (neither query has a parameter, so placeholders do not differ)."""

    description: str
    _connection: Any
    _blocks: bool
    """Whether `ledger_journal` has a `transfer_blocks` column (version 2 applied)."""
    _domain: bool
    """Whether the tables have a `domain` column (version 3 applied)."""
    _parts: bool
    """Whether checkpoints may be stored in parts (version 5 applied)."""
    _ids: bool
    """Whether transfer ids are stored (version 6 applied)."""

    def _versions(self, versions: set[int]) -> None:
        """Which columns there are: the versions the store applied (an SQLite journal may have 3 and not 2)."""
        _check_versions(versions, self.description)
        self._blocks = BLOCKS_VERSION in versions
        self._domain = DOMAIN_VERSION in versions
        self._parts = PARTS_VERSION in versions
        self._ids = IDS_VERSION in versions

    def _ids_query(self) -> str | None:
        if not self._ids:
            return None
        return (
            "SELECT transfers_first, transfers_count, checksum, ids FROM ledger_transfer_ids ORDER BY transfers_first"
        )

    def _parts_query(self, placeholder: str) -> str | None:
        if not self._parts:
            return None
        return f"SELECT data FROM ledger_checkpoint_parts WHERE seq = {placeholder} ORDER BY part"

    def _commits_query(self) -> str:
        blocks = "transfer_blocks" if self._blocks else "NULL"
        domain = "domain" if self._domain else "NULL"
        return f"SELECT {_COLUMNS}, {blocks}, expired, balances, {domain} FROM ledger_journal ORDER BY seq"

    def _checkpoint_query(self, placeholder: str) -> str:
        domain = "domain" if self._domain else "NULL"
        return f"SELECT accounts, transfer_status, {domain} FROM ledger_checkpoints WHERE seq = {placeholder}"

    @staticmethod
    def _commit(row: tuple[Any, ...]) -> StoredCommit:
        (seq, timestamp_last, accounts_first, transfers_first, transfers_count, checksum, accounts, transfers, ends,
         expired, balances, domain) = row  # fmt: skip
        if ends is not None:  # NULL: the raw records, as rows written before the store reached version 2
            transfers = decompress_blocks(seq, transfers, ends, transfers_count)
        return verify_commit(
            seq, timestamp_last, accounts_first, transfers_first, transfers_count, checksum,
            accounts, transfers, expired, balances, domain or b"",
        )  # fmt: skip

    def extent(self) -> Extent:
        row = self._connection.execute(
            "SELECT seq, transfers_first + transfers_count FROM ledger_journal ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return Extent(*row) if row else Extent(0, 0)

    def checkpoints(self) -> list[CheckpointHead]:
        rows = self._connection.execute(
            "SELECT seq, timestamp_last, checksum FROM ledger_checkpoints ORDER BY seq"
        ).fetchall()
        return [CheckpointHead(*row) for row in rows]


# -- SQLite ----------------------------------------------------------------------------------------


class _SqliteJournal(_SqlJournal):
    def __init__(self, path: Path) -> None:
        self.description = f"sqlite:{path}"
        if not path.is_file():
            raise JournalUnreadable(f"{self.description}: no such file")
        try:
            # mode=ro: never writes, never creates; the ledger's lock file beside it is left alone.
            self._connection = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("PRAGMA query_only = 1")
            self._connection.execute("PRAGMA busy_timeout = 10000")
            self._connection.execute("BEGIN")  # one read snapshot for everything below
            versions = {row[0] for row in self._connection.execute("SELECT version FROM ledger_schema")}
        except sqlite3.Error as exc:
            raise JournalUnreadable(f"{self.description}: cannot read a journal: {exc}") from None
        self._versions(versions)

    def commits(self) -> Iterator[StoredCommit]:
        try:
            cursor = self._connection.execute(self._commits_query())
            while rows := cursor.fetchmany(_ROWS_PER_FETCH):
                for row in rows:
                    yield self._commit(row)
        except sqlite3.DatabaseError as exc:
            raise JournalUnreadable(f"{self.description}: the journal cannot be read: {exc}") from None

    def checkpoint(self, head: CheckpointHead) -> StoredCheckpoint:
        row = self._connection.execute(self._checkpoint_query("?"), (head.seq,)).fetchone()
        query = self._parts_query("?")
        parts = [] if query is None else [part for (part,) in self._connection.execute(query, (head.seq,))]
        return inflate_checkpoint(head, *stored_blobs(head.seq, row[0], row[1], row[2] or b"", parts))

    def transfer_ids(self) -> Iterator[StoredIds]:
        query = self._ids_query()
        if query is None:
            return
        cursor = self._connection.execute(query)
        while rows := cursor.fetchmany(_ROWS_PER_FETCH):
            for first, count, checksum, ids in rows:
                yield verify_ids(first, count, checksum, ids)

    def close(self) -> None:
        self._connection.close()


# -- PostgreSQL ------------------------------------------------------------------------------------


class _PostgresJournal(_SqlJournal):
    def __init__(self, dsn: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise JournalUnreadable("postgresql://(unparsable DSN)") from None
        user = str(parts.get("user", ""))
        self.description = (
            f"postgresql://{user + '@' if user else ''}{parts.get('host', 'localhost')}:{parts.get('port', '5432')}"
            f"/{parts.get('dbname', '')}"
        )
        try:
            self._connection = psycopg.connect(dsn, connect_timeout=5, application_name="ledger-audit")
            # One READ ONLY transaction at REPEATABLE READ: a snapshot of what was committed when it began.
            self._connection.read_only = True
            self._connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            exists = self._connection.execute("SELECT to_regclass('ledger_journal') IS NOT NULL").fetchone()
            if not (exists and exists[0]):
                raise JournalUnreadable(f"{self.description}: no journal here (no table ledger_journal)")
            versions = {row[0] for row in self._connection.execute("SELECT version FROM ledger_schema")}
        except psycopg.Error as exc:
            raise JournalUnreadable(f"{self.description}: cannot read a journal: {exc}".strip()) from None
        self._versions(versions)

    def commits(self) -> Iterator[StoredCommit]:
        import psycopg

        try:
            with self._connection.cursor("ledger_audit_scan", binary=True) as cursor:
                cursor.itersize = _ROWS_PER_FETCH
                cursor.execute(self._commits_query())
                for row in cursor:
                    yield self._commit(row)
        except psycopg.Error as exc:
            raise JournalUnreadable(f"{self.description}: the journal cannot be read: {exc}".strip()) from None

    def checkpoint(self, head: CheckpointHead) -> StoredCheckpoint:
        query = self._parts_query("%s")
        with self._connection.cursor(binary=True) as cursor:
            row = cursor.execute(self._checkpoint_query("%s"), (head.seq,)).fetchone()
            parts = [] if query is None else [bytes(part) for (part,) in cursor.execute(query, (head.seq,))]
        assert row is not None, "a checkpoint listed in this snapshot is in it"
        blobs = stored_blobs(head.seq, bytes(row[0]), bytes(row[1]), bytes(row[2] or b""), parts)
        return inflate_checkpoint(head, *blobs)

    def transfer_ids(self) -> Iterator[StoredIds]:
        query = self._ids_query()
        if query is None:
            return
        with self._connection.cursor("ledger_audit_ids", binary=True) as cursor:
            cursor.itersize = _ROWS_PER_FETCH
            cursor.execute(query)
            for first, count, checksum, ids in cursor:
                yield verify_ids(first, count, checksum, bytes(ids))

    def close(self) -> None:
        self._connection.rollback()
        self._connection.close()
