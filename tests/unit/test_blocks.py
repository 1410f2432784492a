"""The journal's transfer blocks (both stores): LZ4 blocks of packed records, each readable on its own."""

from __future__ import annotations

import random

import pytest

from ledger.journal import JournalCorrupt
from ledger.journal._blocks import (
    TRANSFER_BLOCK_RECORDS,
    block_count,
    block_span,
    commit_row,
    compress_transfers,
    decompress_block,
    decompress_transfers,
)
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE


def records(count: int, seed: int = 1) -> bytes:
    """Records shaped like transfers: random 128-bit ids, small account ids and amounts, zeros elsewhere."""
    rng = random.Random(seed)
    out = bytearray(count * TRANSFER_SIZE)
    for i in range(count):
        base = i * TRANSFER_SIZE
        out[base : base + 16] = rng.getrandbits(128).to_bytes(16, "little")
        out[base + 16 : base + 24] = rng.randrange(1, 100_000).to_bytes(8, "little")
        out[base + 32 : base + 40] = rng.randrange(1, 100_000).to_bytes(8, "little")
        out[base + 48 : base + 56] = rng.randrange(1, 10**6).to_bytes(8, "little")
    return bytes(out)


@pytest.mark.parametrize("count", [0, 1, TRANSFER_BLOCK_RECORDS - 1, TRANSFER_BLOCK_RECORDS,
                                   TRANSFER_BLOCK_RECORDS + 1, 1000, BATCH_EVENTS_MAX])  # fmt: skip
def test_records_come_back_whole_and_each_block_on_its_own(count: int) -> None:
    raw = records(count)
    blocks, ends = compress_transfers(memoryview(raw))
    assert len(ends) == 4 * block_count(count)
    assert decompress_transfers(blocks, ends, count, "commit") == raw
    for block in range(block_count(count)):
        start, length = block_span(ends, block)
        first = block * TRANSFER_BLOCK_RECORDS * TRANSFER_SIZE
        expected = raw[first : first + TRANSFER_BLOCK_RECORDS * TRANSFER_SIZE]
        assert decompress_block(blocks[start : start + length], block, count, "commit") == expected


def test_transfer_records_shrink() -> None:
    raw = records(BATCH_EVENTS_MAX)
    blocks, ends = compress_transfers(raw)
    assert len(blocks) + len(ends) < len(raw) / 2


def test_damage_is_refused_naming_where() -> None:
    count = 3 * TRANSFER_BLOCK_RECORDS
    blocks, ends = compress_transfers(records(count))
    with pytest.raises(JournalCorrupt, match=r"seq=7: the transfer blocks are truncated"):
        decompress_transfers(blocks[:-1], ends, count, "seq=7")
    with pytest.raises(JournalCorrupt, match=r"seq=7: 2 transfer blocks for 192 transfers"):
        decompress_transfers(blocks, ends[:-4], count, "seq=7")
    start, length = block_span(ends, 1)
    with pytest.raises(JournalCorrupt, match=r"seq=7: transfer block 1"):
        decompress_block(bytes(length), 1, count, "seq=7")
    # A block that decompresses to the wrong size.
    with pytest.raises(JournalCorrupt, match=r"seq=7: transfer block 2"):
        decompress_block(blocks[start : start + length], 2, 2 * TRANSFER_BLOCK_RECORDS + 1, "seq=7")


def test_a_row_is_read_from_its_blocks_or_as_stored_without_a_block_index() -> None:
    raw = records(TRANSFER_BLOCK_RECORDS + 3)
    blocks, ends = compress_transfers(raw)
    head = (7, 70, 1, 64, TRANSFER_BLOCK_RECORDS + 3, 0xABC, b"accounts")
    tail = (b"expired", b"balances", b"domain")
    expected = (7, 70, 1, 64, 0xABC, b"accounts", raw, *tail)
    assert commit_row((*head, blocks, ends, *tail)) == expected
    assert commit_row((*head, raw, None, *tail)) == expected  # a row written before the store had blocks
    with pytest.raises(JournalCorrupt, match=r"journal commit seq=7: the transfer blocks are truncated"):
        commit_row((*head, blocks[:-1], ends, *tail))
