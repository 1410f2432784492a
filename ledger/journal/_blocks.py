"""Transfer records compressed in blocks, so that one record is read without the rest of its commit.

PostgreSQL writes every byte of a commit twice (WAL and the TOAST table), and
that, not CPU, bounds the journal: here a commit of 8190 raw records (1 MiB)
took 17 to 19 ms, a quarter of the bytes 3.8 ms. Packed transfer records are
mostly zeros and small numbers, so LZ4 shrinks them about 3 times with random
128-bit ids (more with sequential ones) at about 0.1 µs per record, and
decompresses at about 0.04 µs.

A commit's records are cut into blocks of TRANSFER_BLOCK_RECORDS, each block
compressed on its own; `blocks` is the blocks one after the other and `ends`
the offset just past each block (little-endian u32). A history lookup reads
the one block that holds its record (a substring of an uncompressed,
EXTERNAL value reads only the chunks it needs; in SQLite an incremental blob
read of the block's bytes), not the commit.

Both stores write a commit's transfers this way, so that a row means the
same in either (SQLite pays the same compression per commit, 1 to 3 µs for
up to 64 records, and writes a third of the bytes). A row written before its store
had schema version 2 has no block index (NULL) and its raw records, read as
they are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any, Final

import lz4.block

from ledger.records.limits import TRANSFER_SIZE

from ._format import Blob, CommitRow, JournalCorrupt
from ._store import SCAN_CHUNK_BYTES, SCAN_CHUNK_COMMITS_MAX

TRANSFER_BLOCK_RECORDS: Final = 64
"""Records per compressed block: 8 KiB raw, one record read costs decompressing at most this many."""
BLOCK_SIZE: Final = TRANSFER_BLOCK_RECORDS * TRANSFER_SIZE
_END: Final = struct.Struct("<I")


def compress_transfers(records: bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
    """(blocks, ends) of packed transfer records: the compressed blocks joined, and each block's end offset."""
    view = memoryview(records).cast("B")
    if 0 < len(view) <= BLOCK_SIZE:  # most commits (a POS fleet's): a third of the cost of the general path
        block: bytes = lz4.block.compress(view, store_size=False)
        return block, _END.pack(len(block))
    blocks = [lz4.block.compress(view[start : start + BLOCK_SIZE], store_size=False)
              for start in range(0, len(view), BLOCK_SIZE)]  # fmt: skip
    ends = list(accumulate(len(block) for block in blocks))
    return b"".join(blocks), struct.pack(f"<{len(ends)}I", *ends)


def block_count(transfers_count: int) -> int:
    return -(-transfers_count // TRANSFER_BLOCK_RECORDS)


def block_span(ends: bytes, block: int) -> tuple[int, int]:
    """(offset, length) of a block within the joined blocks."""
    end = _END.unpack_from(ends, block * _END.size)[0]
    start = _END.unpack_from(ends, (block - 1) * _END.size)[0] if block else 0
    return start, end - start


def decompress_block(data: bytes | memoryview, block: int, transfers_count: int, where: str) -> bytes:
    """The raw records of one block (the last may hold fewer than TRANSFER_BLOCK_RECORDS)."""
    size = min(TRANSFER_BLOCK_RECORDS, transfers_count - block * TRANSFER_BLOCK_RECORDS) * TRANSFER_SIZE
    try:
        raw: bytes = lz4.block.decompress(data, uncompressed_size=size)
    except lz4.block.LZ4BlockError as exc:
        raise JournalCorrupt(f"{where}: transfer block {block} does not decompress: {exc}") from exc
    if len(raw) != size:
        raise JournalCorrupt(f"{where}: transfer block {block} holds {len(raw)} bytes, expected {size}")
    return raw


def decompress_transfers(blocks: bytes, ends: bytes, transfers_count: int, where: str) -> bytes:
    """The packed records of a commit, from its blocks; JournalCorrupt if they do not add up."""
    count = block_count(transfers_count)
    if count == 1 and len(ends) == _END.size and _END.unpack(ends)[0] == len(blocks):
        return decompress_block(blocks, 0, transfers_count, where)  # a commit of a few transfers: one block
    if len(ends) != count * _END.size:
        raise JournalCorrupt(f"{where}: {len(ends) // _END.size} transfer blocks for {transfers_count} transfers")
    if count and _END.unpack_from(ends, (count - 1) * _END.size)[0] != len(blocks):
        raise JournalCorrupt(
            f"{where}: the transfer blocks are truncated or damaged: {len(blocks)} bytes, their index says "
            f"{_END.unpack_from(ends, (count - 1) * _END.size)[0]}"
        )
    return b"".join(_blocks(blocks, ends, transfers_count, where))


def _blocks(blocks: bytes, ends: bytes, transfers_count: int, where: str) -> Iterator[bytes]:
    view = memoryview(blocks)
    for block in range(block_count(transfers_count)):
        start, length = block_span(ends, block)
        if length <= 0 or start + length > len(view):
            raise JournalCorrupt(f"{where}: transfer block {block} lies outside the commit's blocks")
        yield decompress_block(view[start : start + length], block, transfers_count, where)


def commit_row(row: Sequence[Any]) -> CommitRow:
    """A commit as recovery reads it, from a row of the stores' COMMIT_COLUMNS (_schema.py): the transfers
    decompressed, or as stored in a row with no block index."""
    (seq, timestamp_last, accounts_first, transfers_first, transfers_count, checksum, accounts, transfers, ends,
     expired, balances, domain) = row  # fmt: skip
    records: Blob = transfers
    if ends is not None:
        size = transfers_count * TRANSFER_SIZE
        records = b""
        if 0 < size <= BLOCK_SIZE and len(ends) == _END.size and _END.unpack(ends)[0] == len(transfers):
            # One block (a POS fleet's commits): recovery reads hundreds of thousands of these, so the checks
            # of the general path (and the naming of the commit) only for one that does not decompress whole.
            try:
                records = lz4.block.decompress(transfers, uncompressed_size=size)
            except lz4.block.LZ4BlockError:
                records = b""  # named below
        if len(records) != size or not size:
            records = decompress_transfers(transfers, ends, transfers_count, f"journal commit seq={seq}")
    return seq, timestamp_last, accounts_first, transfers_first, checksum, accounts, records, expired, balances, domain


def commit_chunks(rows: Iterable[Sequence[Any]]) -> Iterator[list[CommitRow]]:
    """The commits of rows of COMMIT_COLUMNS in seq order, in chunks of up to SCAN_CHUNK_BYTES of records or
    SCAN_CHUNK_COMMITS_MAX commits (a scan's unit of work); a damaged commit ends the scan with
    JournalCorrupt, after the chunk of the commits before it."""
    chunk: list[CommitRow] = []
    size = 0
    try:
        for row in rows:
            commit = commit_row(row)
            chunk.append(commit)
            size += len(commit[5]) + len(commit[6]) + len(commit[7]) + len(commit[8]) + len(commit[9])
            if size >= SCAN_CHUNK_BYTES or len(chunk) == SCAN_CHUNK_COMMITS_MAX:
                yield chunk
                chunk, size = [], 0
    except JournalCorrupt:
        if chunk:  # the commits before the damaged one first
            yield chunk
        raise
    if chunk:
        yield chunk
