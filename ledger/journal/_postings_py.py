"""Postings for the history index in plain Python: the reference for native/_postings.pyx.

A run is packed 32-byte postings (account_hi u64, account_lo u64, timestamp
u64, ref u64, where ref = journal ordinal << 1, plus 1 where the account is
credited), sorted by account, then timestamp. Written for clarity; the
native module does the same without a Python object per posting.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Sequence
from typing import Final

from ledger.records.layout import Buffer

implementation = "python"

POSTING: Final = struct.Struct("<QQQQ")
_COPY_ROW_HEAD: Final = struct.Struct(">hiQiQiQiQiii")
"""A history row in COPY BINARY: 6 fields, four int8 and an int4 (each after its length), then the entries' length."""
_ACCOUNTS_AND_TIMESTAMP: Final = struct.Struct("<16xQQQQ64xQ8x")
_U64_MASK: Final = 2**64 - 1


_ACCOUNT: Final = struct.Struct("<QQ")
_BALANCE_SIZE: Final = 64


def add_balances(table: dict[tuple[int, int], tuple[bytearray, bytearray]], balances: Buffer) -> None:
    """Append a commit's balance entries (64 bytes each: account lo, hi, timestamp, the four balances, 8
    reserved) to their accounts' tails in `table`: (lo, hi) -> (timestamps, balances), bytearrays of u64
    little-endian, in the commit's order."""
    data = memoryview(balances).cast("B")
    for offset in range(0, len(data) - len(data) % _BALANCE_SIZE, _BALANCE_SIZE):
        tail = table.setdefault(_ACCOUNT.unpack_from(data, offset), (bytearray(), bytearray()))
        tail[0].extend(data[offset + 16 : offset + 24])
        tail[1].extend(data[offset + 24 : offset + 56])


def _pack(postings: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(POSTING.pack(*p) for p in postings)


def sort_postings(transfers: Buffer, first_ordinal: int) -> bytes:
    """Two postings per 128-byte transfer record (debit and credit account), sorted."""
    postings = []
    for i, (dr_lo, dr_hi, cr_lo, cr_hi, timestamp) in enumerate(_ACCOUNTS_AND_TIMESTAMP.iter_unpack(transfers)):
        ref = (first_ordinal + i) << 1
        postings.append((dr_hi, dr_lo, timestamp, ref))
        postings.append((cr_hi, cr_lo, timestamp, ref | 1))
    postings.sort()
    return _pack(postings)


def merge_runs(runs: Sequence[Buffer]) -> bytes:
    """One sorted run holding every posting of `runs`."""
    return _pack(sorted(p for run in runs for p in POSTING.iter_unpack(run)))


def account_range(run: Buffer, account_id: int) -> tuple[int, int]:
    """(start, end): the postings of one account in a sorted run."""
    keys = [(hi, lo) for hi, lo, _, _ in POSTING.iter_unpack(run)]
    key = (account_id >> 64, account_id & _U64_MASK)
    return bisect.bisect_left(keys, key), bisect.bisect_right(keys, key)


def entries(run: Buffer, start: int, end: int) -> bytes:
    """Postings start..end as one row's entries: their timestamps, then their refs (u64 each)."""
    chosen = list(POSTING.iter_unpack(bytes(run[start * 32 : end * 32])))
    return struct.pack(f"<{2 * len(chosen)}Q", *(p[2] for p in chosen), *(p[3] for p in chosen))


def groups(run: Buffer) -> list[tuple[int, int, int, int]]:
    """(account_lo, account_hi, start, end) for every account in a sorted run, in order."""
    result: list[tuple[int, int, int, int]] = []
    start = 0
    postings = list(POSTING.iter_unpack(run))
    for i in range(1, len(postings) + 1):
        if i == len(postings) or postings[i][:2] != postings[start][:2]:
            result.append((postings[start][1], postings[start][0], start, i))
            start = i
    return result


def copy_rows(run: Buffer) -> bytes:
    """The run's accounts as rows of a history table in PostgreSQL's COPY BINARY (without its header and
    trailer), one per account: account_lo and account_hi (int8 holding the u64's bits), timestamp_first and
    timestamp_last (int8), entries_count (int4), entries (bytea: the timestamps, then the refs, u64
    little-endian each)."""
    parts = []
    for lo, hi, start, end in groups(run):
        row = entries(run, start, end)
        count = end - start
        first = int.from_bytes(row[:8], "little")
        last = int.from_bytes(row[(count - 1) * 8 : count * 8], "little")
        parts.append(_COPY_ROW_HEAD.pack(6, 8, lo, 8, hi, 8, first, 8, last, 4, count, len(row)))
        parts.append(row)
    return b"".join(parts)
