"""The contract of a journal store, and how a store is chosen from its URL."""

from __future__ import annotations

import logging
import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, NamedTuple, Protocol

from ._format import Checkpoint, Commit, CommitRow, JournalCorrupt, JournalError

try:  # the journal's CRC-32 (_format): ISA-L's where it is installed, zlib's otherwise (the same values)
    from isal.isal_zlib import crc32
except ImportError:
    from zlib import crc32

logger = logging.getLogger(__name__)

CHECKPOINTS_KEPT = 2
"""Checkpoints kept in the store; older ones are deleted when a new one is saved."""
SCAN_CHUNK_BYTES: Final = 8 << 20
"""About how many bytes of records one chunk of a journal scan holds: a journal of small commits is read a
few thousand commits per round trip, one of 64 MiB commits a commit at a time (memory stays bounded)."""
SCAN_CHUNK_COMMITS_MAX: Final = 4096

SEQ_MAX: Final = 2**63 - 1
U64_MASK: Final = 2**64 - 1
TRANSFERS_TABLE: Final = "ledger_account_transfers"
BALANCES_TABLE: Final = "ledger_account_balances"
HISTORY_TABLES: Final = (TRANSFERS_TABLE, BALANCES_TABLE)
HISTORY_COLUMNS: Final = "account_lo, account_hi, timestamp_first, timestamp_last, entries_count, entries"


class HistoryRow(NamedTuple):
    """One account's history entries from one flush of the history index (ledger.journal._history)."""

    account_lo: int
    account_hi: int
    timestamp_first: int
    timestamp_last: int
    entries_count: int
    entries: bytes


def signed(value: int) -> int:
    """A u64 as the i64 with the same bits, for the stores' signed 64-bit integers."""
    return value - (1 << 64) if value >= 1 << 63 else value


def unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class StoreUnavailable(JournalError):
    """The store cannot be reached or did not confirm a write; nothing it did not confirm is durable."""


class StoreLocked(JournalError):
    """Another ledger process holds this journal."""


class Store(Protocol):
    """Where the journal lives. One writer thread appends; readers may run on other threads.

    `append` writes all its commits in one transaction. Retrying an append
    after StoreUnavailable is safe: a commit that did land (its
    acknowledgement was lost) is recognised by its seq and checksum.
    """

    description: str
    """Where the journal is, for logs and errors (no passwords)."""

    def connect(self) -> None:
        """Reach the store, take the journal's lock, create or migrate the schema."""
        ...

    def append(self, commits: Sequence[Commit]) -> None: ...

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint and delete all but the newest CHECKPOINTS_KEPT (on a connection of its own: the
        writer's checkpoint thread calls this while `append` goes on)."""
        ...

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint, unverified (recovery verifies it)."""
        ...

    def commits(self, after_seq: int = 0, upto_seq: int = SEQ_MAX) -> Iterator[Commit]:
        """Commits with after_seq < seq <= upto_seq in seq order, unverified."""
        ...

    def commit_rows(self, after_seq: int = 0, upto_seq: int = SEQ_MAX) -> Iterator[list[CommitRow]]:
        """The same commits as rows, in chunks of about SCAN_CHUNK_BYTES (at least one commit each).

        Recovery reads the journal this way: no object per commit. A commit whose transfers cannot be
        decompressed raises JournalCorrupt after the chunk of the commits before it.
        """
        ...

    def timestamp_last_of(self, seq: int) -> int | None:
        """The `timestamp_last` of commit `seq`, None if there is no such commit."""
        ...

    def history_position(self) -> int:
        """The last commit seq whose history entries are stored (0: none)."""
        ...

    def write_history(self, transfers: bytes, balances: Sequence[HistoryRow], seq: int) -> None:
        """Store one flush of the history index and the new position in one transaction (the history thread
        only): `transfers` is a sorted run of postings (ledger.journal._postings_py), a row per account in
        TRANSFERS_TABLE; `balances` are BALANCES_TABLE's rows."""
        ...

    def history_rows(
        self, table: str, account_id: int, timestamp_min: int, timestamp_max: int, reverse: bool
    ) -> list[HistoryRow]:
        """An account's rows overlapping the time range, ordered by timestamp_first."""
        ...

    def read_transfers(self, ordinals: Sequence[int]) -> dict[int, bytes]:
        """The journaled transfer records at these ordinals (those that exist)."""
        ...

    def commit_of_transfer(self, ordinal: int) -> int | None:
        """The seq of the commit that holds transfer `ordinal`, None if none does."""
        ...

    def save_transfer_ids(self, first: int, ids: bytes) -> None:
        """Store the ids of transfers from ordinal `first` on (at most TRANSFER_IDS_SEGMENT), in a transaction of
        its own on the checkpoints' connection; `first` is `transfer_ids_end()`."""
        ...

    def transfer_ids_end(self) -> int:
        """The ordinal up to which transfer ids are stored (0: none)."""
        ...

    def transfer_ids(self, upto: int) -> bytearray | None:
        """The ids of transfers [0, upto), 16 bytes each; None unless stored segments cover them whole and
        intact (recovery then reads the records)."""
        ...

    def drop_transfer_ids(self) -> None:
        """Delete every stored transfer id (found damaged: recovery stores them again from the records)."""
        ...

    def close(self) -> None: ...


def sqlite_file(url: str) -> str | None:
    """The SQLite file a store URL names: sqlite:///relative/path, sqlite:////absolute/path (as SQLAlchemy
    writes them), sqlite:path, or a plain file path; None for postgresql://… (or postgres://…); ValueError
    for anything else."""
    url = url.strip()
    if url.startswith(("postgresql://", "postgres://")):
        return None
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif url.startswith("sqlite://"):
        raise ValueError(f"store URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    elif url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:")
    elif "://" in url:
        raise ValueError(f"store URL {url!r}: use postgresql://… or sqlite:///path")
    else:
        path = url
    if not path:
        raise ValueError(f"store URL {url!r} names no file")
    return path


def open_store(url: str) -> Store:
    """The store for a URL: postgresql://… (or postgres://…), sqlite:///path, or a plain file path."""
    path = sqlite_file(url)
    if path is None:
        from ._postgres import PostgresStore

        return PostgresStore(url.strip())
    from ._sqlite import SqliteStore

    return SqliteStore(path)


def pack_checkpoint_blob(data: bytes) -> bytes:
    """Checkpoint blobs are mostly zeros (transfer statuses, unused fields): stored deflated."""
    return zlib.compress(data, 1)


def unpack_checkpoint_blob(data: bytes, seq: int, what: str) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error as exc:
        raise JournalCorrupt(f"checkpoint at journal seq={seq}: {what} cannot be inflated ({exc})") from exc


def pack_domain_snapshot(data: bytes) -> bytes:
    """A checkpoint's domain snapshot as stored: deflated, or empty (no domain: nothing to deflate, nothing stored)."""
    return zlib.compress(data, 1) if data else b""


def unpack_domain_snapshot(data: bytes, seq: int) -> bytes:
    return unpack_checkpoint_blob(data, seq, "the domain snapshot") if data else b""


CHECKPOINT_PART_BYTES: Final = 4 << 20
"""A checkpoint whose stored blobs pass this is saved in parts of this size, each in a transaction of its own
(SQLite: the journal's commits wait for at most one part's)."""
_PARTS_HEAD: Final = struct.Struct("<QQQ")


def checkpoint_parts(accounts: bytes, transfer_status: bytes, domain: bytes, size: int) -> list[bytes]:
    """A checkpoint's stored blobs as parts of at most `size` bytes: their three lengths, then the blobs."""
    whole = _PARTS_HEAD.pack(len(accounts), len(transfer_status), len(domain)) + accounts + transfer_status + domain
    return [whole[start : start + size] for start in range(0, len(whole), size)]


def joined_checkpoint(parts: Sequence[bytes], seq: int) -> tuple[bytes, bytes, bytes]:
    """The stored blobs (accounts, transfer_status, domain) of a checkpoint saved in these parts."""
    whole = b"".join(parts)
    if len(whole) < _PARTS_HEAD.size:
        raise JournalCorrupt(f"checkpoint at journal seq={seq}: its parts are cut short")
    sizes = _PARTS_HEAD.unpack_from(whole)
    if _PARTS_HEAD.size + sum(sizes) != len(whole):
        raise JournalCorrupt(
            f"checkpoint at journal seq={seq}: its parts hold {len(whole) - _PARTS_HEAD.size} bytes, "
            f"not the {sum(sizes)} their head says"
        )
    accounts_end = _PARTS_HEAD.size + sizes[0]
    status_end = accounts_end + sizes[1]
    return whole[_PARTS_HEAD.size : accounts_end], whole[accounts_end:status_end], whole[status_end:]


TRANSFER_IDS_SEGMENT: Final = 1 << 18
"""Transfer ids per stored segment (4 MiB): a segment is one transaction."""
_IDS_HEAD: Final = struct.Struct("<4sQQ")


def transfer_ids_of(records: bytes | bytearray | memoryview) -> bytes:
    """The ids (16 bytes each) of packed transfer records, in their order."""
    words = memoryview(records).cast("B").cast("Q")
    ids = array("Q", bytes(len(words)))  # 16 bytes per record of 16 words
    out = memoryview(ids)
    out[0::2] = words[0::16]
    out[1::2] = words[1::16]
    return ids.tobytes()


def save_transfer_ids(store: Store, first: int, ids: bytes | bytearray | memoryview) -> int:
    """Store the ids of transfers from ordinal `first` on, in segments, skipping those stored already; the
    ordinal after them. Ids past a gap in what is stored are not stored (said in the log): recovery reads the
    records from the gap on, and fills it."""
    after = first + len(ids) // 16
    end = store.transfer_ids_end()
    if end < first:
        logger.warning(
            "%s: transfer ids stop at ordinal %d, these start at %d: the next restart's recovery fills them",
            store.description, end, first,
        )  # fmt: skip
        return after
    view = memoryview(ids)[16 * (end - first) :]
    for start in range(0, len(view), 16 * TRANSFER_IDS_SEGMENT):
        segment = bytes(view[start : start + 16 * TRANSFER_IDS_SEGMENT])
        store.save_transfer_ids(end, segment)
        end += len(segment) // 16
    return after


def transfer_ids_checksum(first: int, ids: bytes | memoryview) -> int:
    """CRC-32 of b"LTI1", the first ordinal and the count (u64 little-endian each), then the ids."""
    return crc32(ids, crc32(_IDS_HEAD.pack(b"LTI1", first, len(ids) // 16)))


def joined_transfer_ids(rows: Iterable[tuple[int, int, int, bytes]], upto: int, description: str) -> bytearray | None:
    """The ids of transfers [0, upto) from stored segments (first, count, checksum, ids) in ordinal order; None
    if they leave a gap or one is damaged (said in the log: recovery then reads the records instead)."""
    ids = bytearray(16 * upto)
    end = 0
    for first, count, checksum, data in rows:
        if end == upto:
            break
        if first != end:
            logger.warning(
                "%s: transfer ids stop at ordinal %d (the next segment starts at %d)", description, end, first
            )
            return None
        if len(data) != 16 * count or transfer_ids_checksum(first, data) != checksum:
            logger.warning("%s: the transfer ids from ordinal %d fail their checksum", description, first)
            return None
        take = min(count, upto - end)
        ids[16 * end : 16 * (end + take)] = memoryview(data)[: 16 * take]
        end += take
    return ids if end == upto else None


def check_duplicate(existing: dict[int, int], commits: Sequence[Commit], description: str) -> None:
    """After a unique violation on seq: the append landed before if every stored checksum matches."""
    for commit in commits:
        stored = existing.get(commit.seq)
        if stored is None:
            raise JournalCorrupt(
                f"{description}: journal commit seq={commit.seq} is missing while others of its transaction exist"
            )
        if stored != commit.checksum:
            raise JournalCorrupt(
                f"{description}: journal commit seq={commit.seq} exists with different contents "
                f"(checksum {stored:#010x}, writing {commit.checksum:#010x}); is another ledger writing this journal?"
            )


def seq_before(store: Store, timestamp: int, seq_last: int) -> int:
    """The last commit seq whose `timestamp_last` is below `timestamp` (0: none), among seqs 1..seq_last.

    Commits are dense in seq and their timestamps increase with it, so this is a binary search of
    about log2(seq_last) single-row reads.
    """
    low, high = 0, seq_last  # invariant: commit `low` is below (or 0), every commit past `high` is not
    while low < high:
        middle = (low + high + 1) // 2
        found = store.timestamp_last_of(middle)
        if found is None:
            raise JournalCorrupt(f"{store.description}: commit seq={middle} is missing")
        if found < timestamp:
            low = middle
        else:
            high = middle - 1
    return low


def commits_of(chunks: Iterator[list[CommitRow]]) -> Iterator[Commit]:
    """A store's `commits` from its `commit_rows`."""
    for rows in chunks:
        for row in rows:
            yield Commit.from_row(row)
