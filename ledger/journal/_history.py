"""The history index: which transfers touched an account, and its balance history.

Indexing a transfer by account in the commit path costs PostgreSQL about
4.4 µs per index entry here (two per transfer), which would cap the journal
near 100k transfers/s; so the commit path only appends, and one thread builds
the index from commits that are already durable, like an LSM tree:

- In memory (the tail): for every account touched since the last flush, the
  timestamps of its transfers with their journal ordinals (ordinal << 1, plus
  1 where the account is credited), and for accounts with the HISTORY flag
  their balances after each transfer.
- In the store (flushed rows): every FLUSH_TRANSFERS transfers or
  FLUSH_SECONDS, the tail is written as one row per account (its entries in
  time order) in one transaction together with the journal position it
  covers, and cleared. A restart re-reads the commits after that position.

A query reads the account's rows overlapping its time range and its tail
entries, and fetches the transfer records from the journal by ordinal. It
first waits until the index has caught up with every commit that was durable
when it began, so it sees every transfer acknowledged before it (and nothing
that is not durable).
"""

from __future__ import annotations

import bisect
import logging
import struct
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Final

from ledger.engine._layout import TRANSFER_STRUCT, AccountBalance, Buffer
from ledger.engine._limits import BATCH_EVENTS_MAX, ID_INT_MAX, TIMESTAMP_MAX, TRANSFER_SIZE

from ._format import Commit
from ._store import BALANCES_TABLE, TRANSFERS_TABLE, U64_MASK, HistoryRow, Store, StoreUnavailable

logger = logging.getLogger(__name__)

FLUSH_TRANSFERS: Final = 262_144
FLUSH_SECONDS: Final = 2.0
SCAN_ENTRIES_MAX: Final = 65_536
"""Most index entries one query looks at; a page cut short by filters says where to go on."""
RETRY_SECONDS: Final = 0.5

# A transfer record's debit and credit account ids and its timestamp (ledger.engine._layout).
_ACCOUNTS_AND_TIMESTAMP: Final = struct.Struct("<16xQQQQ64xQ8x")
assert _ACCOUNTS_AND_TIMESTAMP.size == TRANSFER_SIZE
_BALANCE_VALUES = 4  # debits_pending, debits_posted, credits_pending, credits_posted


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFilter:
    """Which of an account's transfers (or balances) to return, and how many.

    Timestamps are inclusive bounds in nanoseconds; timestamp_max 0 means no
    upper bound. code and user_data_* of 0 match anything. Results are in
    time order, newest first with `reversed`.
    """

    account_id: int
    timestamp_min: int = 0
    timestamp_max: int = 0
    limit: int = BATCH_EVENTS_MAX
    debits: bool = True
    credits: bool = True
    code: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    reversed: bool = False

    def check(self) -> None:
        """Raise ValueError naming the first field out of its bounds."""
        if not 0 < self.account_id < ID_INT_MAX:
            raise ValueError(f"account_id must be between 1 and 2**128 - 2, got {self.account_id}")
        if not 1 <= self.limit <= BATCH_EVENTS_MAX:
            raise ValueError(f"limit must be between 1 and {BATCH_EVENTS_MAX}, got {self.limit}")
        for name in ("timestamp_min", "timestamp_max"):
            if not 0 <= getattr(self, name) <= TIMESTAMP_MAX:
                raise ValueError(f"{name} must be between 0 and {TIMESTAMP_MAX}, got {getattr(self, name)}")
        if self.timestamp_max and self.timestamp_max < self.timestamp_min:
            raise ValueError(f"timestamp_max ({self.timestamp_max}) is before timestamp_min ({self.timestamp_min})")
        if not (self.debits or self.credits):
            raise ValueError("debits and credits are both false: nothing can match")
        if not 0 <= self.code < 2**16:
            raise ValueError(f"code must be between 0 and 65535, got {self.code}")
        if not 0 <= self.user_data_128 <= ID_INT_MAX:
            raise ValueError(f"user_data_128 must be between 0 and 2**128 - 1, got {self.user_data_128}")
        if not 0 <= self.user_data_64 < 2**64:
            raise ValueError(f"user_data_64 must be between 0 and 2**64 - 1, got {self.user_data_64}")
        if not 0 <= self.user_data_32 < 2**32:
            raise ValueError(f"user_data_32 must be between 0 and 2**32 - 1, got {self.user_data_32}")

    @property
    def upper(self) -> int:
        return self.timestamp_max or TIMESTAMP_MAX


@dataclass(frozen=True, slots=True)
class TransfersPage:
    """Packed transfer records in the filter's order, and the filter for the next page (None: no more)."""

    transfers: bytes
    next: AccountFilter | None


@dataclass(frozen=True, slots=True)
class BalancesPage:
    balances: list[AccountBalance]
    next: AccountFilter | None


class _Tail:
    """One account's entries since the last flush: timestamps and, per entry, `width` values."""

    __slots__ = ("timestamps", "values")

    def __init__(self) -> None:
        self.timestamps = array("Q")
        self.values = array("Q")


def _encode(timestamps: array[int], values: array[int]) -> bytes:
    return timestamps.tobytes() + values.tobytes()


def _decode(row: HistoryRow, width: int) -> tuple[memoryview, memoryview]:
    view = memoryview(row.entries).cast("Q")
    return view[: row.entries_count], view[row.entries_count : row.entries_count * (1 + width)]


class HistoryIndex:
    """The history index of one journal; its thread indexes and flushes, queries run on any thread."""

    def __init__(
        self,
        store: Store,
        *,
        flush_transfers: int = FLUSH_TRANSFERS,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self._store = store
        self._flush_transfers = flush_transfers
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._flushed_seq = 0
        self._indexed_seq = 0
        self._durable_seq = 0
        self._transfers: dict[tuple[int, int], _Tail] = {}
        self._balances: dict[tuple[int, int], _Tail] = {}
        self._tail_transfers = 0
        self._tail_since = time.monotonic()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ledger-history-index", daemon=True)

    # -- the owner's side ----------------------------------------------------------

    def start(self, durable_seq: int) -> None:
        """Begin indexing from the store's flushed position up to `durable_seq` and on."""
        self._flushed_seq = self._indexed_seq = self._store.history_position()
        self._durable_seq = max(durable_seq, self._flushed_seq)
        self._thread.start()

    def durable(self, seq: int) -> None:
        """Commit `seq` is durable: index it (called by the journal writer)."""
        with self._lock:
            if seq > self._durable_seq:
                self._durable_seq = seq
                self._changed.notify_all()

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    @property
    def indexed_seq(self) -> int:
        return self._indexed_seq

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until every commit up to `seq` is indexed; False if that took longer than `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._indexed_seq < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return False
                self._changed.wait(remaining)
            return True

    def stop(self, timeout: float = 30.0) -> None:
        """Index what is durable, flush it, end the thread."""
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the index thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while (
                    self._indexed_seq >= self._durable_seq
                    and not self._stopping
                    and not (self._tail_transfers and self._flush_due())
                ):
                    self._changed.wait(self._flush_seconds)
                target, stopping = self._durable_seq, self._stopping
            try:
                if self._indexed_seq < target:
                    self._catch_up(target)
                if (self._tail_transfers and (stopping or self._flush_due())) or (
                    stopping and self._indexed_seq > self._flushed_seq
                ):
                    self._flush()
            except StoreUnavailable as exc:
                logger.warning("history index waits for the store: %s", exc)
                if stopping:
                    return
                time.sleep(RETRY_SECONDS)
                continue
            except Exception:
                logger.exception("history index stopped")
                return
            if stopping and self._indexed_seq >= target:
                return

    def _flush_due(self) -> bool:
        return (
            self._tail_transfers >= self._flush_transfers or time.monotonic() - self._tail_since >= self._flush_seconds
        )

    def _catch_up(self, target: int) -> None:
        for commit in self._store.commits(self._indexed_seq, target):
            commit.verify()
            with self._lock:
                self._index(commit)
                self._indexed_seq = commit.seq
                self._changed.notify_all()
            if self._tail_transfers >= self._flush_transfers:
                self._flush()
        with self._lock:
            # Commits with nothing in them are still positions reached.
            self._indexed_seq = max(self._indexed_seq, target)
            self._changed.notify_all()

    def _index(self, commit: Commit) -> None:
        if not self._tail_transfers and not self._balances:
            self._tail_since = time.monotonic()
        transfers = self._transfers
        ordinal = commit.transfers_first << 1
        for dr_lo, dr_hi, cr_lo, cr_hi, timestamp in _ACCOUNTS_AND_TIMESTAMP.iter_unpack(commit.transfers):
            tail = transfers.get((dr_lo, dr_hi))
            if tail is None:
                tail = transfers[(dr_lo, dr_hi)] = _Tail()
            tail.timestamps.append(timestamp)
            tail.values.append(ordinal)
            tail = transfers.get((cr_lo, cr_hi))
            if tail is None:
                tail = transfers[(cr_lo, cr_hi)] = _Tail()
            tail.timestamps.append(timestamp)
            tail.values.append(ordinal | 1)
            ordinal += 2
        self._tail_transfers += commit.transfers_count
        values = memoryview(commit.balances).cast("Q")
        for offset in range(0, len(values), 8):
            key = (values[offset], values[offset + 1])
            tail = self._balances.get(key)
            if tail is None:
                tail = self._balances[key] = _Tail()
            tail.timestamps.append(values[offset + 2])
            tail.values.extend(values[offset + 3 : offset + 3 + _BALANCE_VALUES])

    def _flush(self) -> None:
        with self._lock:
            seq = self._indexed_seq
            rows = {
                TRANSFERS_TABLE: _rows(self._transfers),
                BALANCES_TABLE: _rows(self._balances),
            }
        started = time.perf_counter()
        self._store.write_history(rows, seq)
        with self._lock:
            # Entries indexed while the rows were written stay in the tail.
            _drop_flushed(self._transfers, rows[TRANSFERS_TABLE])
            _drop_flushed(self._balances, rows[BALANCES_TABLE])
            self._tail_transfers = sum(len(t.timestamps) for t in self._transfers.values()) // 2
            self._tail_since = time.monotonic()
            self._flushed_seq = seq
        logger.debug(
            "history index flushed up to seq=%d: %d accounts in %.3f s",
            seq,
            len(rows[TRANSFERS_TABLE]),
            time.perf_counter() - started,
        )

    # -- queries --------------------------------------------------------------------

    def _tail_snapshot(self, table: dict[tuple[int, int], _Tail], account_id: int) -> tuple[array[int], array[int]]:
        with self._lock:
            tail = table.get((account_id & U64_MASK, account_id >> 64))
            if tail is None:
                return array("Q"), array("Q")
            return array("Q", tail.timestamps), array("Q", tail.values)

    def _entries(self, which: str, f: AccountFilter, width: int) -> Iterator[tuple[int, memoryview | array[int]]]:
        """(timestamp, values) of the account's entries within the filter's time range, in its order."""
        tail_timestamps, tail_values = self._tail_snapshot(
            self._transfers if which == TRANSFERS_TABLE else self._balances, f.account_id
        )
        rows = self._store.history_rows(which, f.account_id, f.timestamp_min, f.upper, f.reversed)
        # A flush between the snapshot and the read puts the same entries in both: the tail wins.
        tail_first = tail_timestamps[0] if tail_timestamps else TIMESTAMP_MAX + 1
        sources: list[tuple[array[int] | memoryview, array[int] | memoryview]] = [
            (timestamps, values) for timestamps, values in (_decode(row, width) for row in rows)
        ]
        if f.reversed:
            sources.insert(0, (tail_timestamps, tail_values))
        else:
            sources.append((tail_timestamps, tail_values))
        for timestamps, values in sources:
            is_tail = timestamps is tail_timestamps
            upper = f.upper if is_tail else min(f.upper, tail_first - 1)
            start = bisect.bisect_left(timestamps, f.timestamp_min)
            end = bisect.bisect_right(timestamps, upper)
            indexes = range(end - 1, start - 1, -1) if f.reversed else range(start, end)
            for i in indexes:
                yield timestamps[i], values[i * width : (i + 1) * width]

    def account_transfers(self, f: AccountFilter) -> TransfersPage:
        """The account's transfers matching the filter: up to `limit`, looking at most at SCAN_ENTRIES_MAX entries."""
        f.check()
        record_filters = bool(f.code or f.user_data_128 or f.user_data_64 or f.user_data_32)
        found: list[bytes] = []
        wanted: list[int] = []  # ordinals to fetch
        last_scanned: int | None = None
        complete = True
        for scanned, (timestamp, values) in enumerate(self._entries(TRANSFERS_TABLE, f, 1)):
            if scanned == SCAN_ENTRIES_MAX:
                complete = False
                break
            last_scanned = timestamp
            ref = values[0]
            if f.credits if ref & 1 else f.debits:
                wanted.append(ref >> 1)
            needed = f.limit - len(found)
            if len(wanted) >= (max(needed, 256) if record_filters else needed):
                found.extend(self._fetch(wanted, f))
                wanted = []
                if len(found) >= f.limit:
                    complete = False
                    break
        found.extend(self._fetch(wanted, f))
        if len(found) > f.limit or (len(found) == f.limit and not complete):
            del found[f.limit :]
            return TransfersPage(b"".join(found), _after(f, _timestamp(found[-1])))
        return TransfersPage(b"".join(found), None if complete else _after(f, last_scanned))

    def _fetch(self, wanted: list[int], f: AccountFilter) -> list[bytes]:
        if not wanted:
            return []
        records = self._store.read_transfers(wanted)
        found = []
        for ordinal in wanted:
            record = records.get(ordinal)
            if record is None:
                raise StoreUnavailable(
                    f"{self._store.description}: transfer ordinal {ordinal} is indexed but not found"
                )
            if _matches(record, f):
                found.append(record)
        return found

    def account_balances(self, f: AccountFilter) -> BalancesPage:
        """Balances of an account with the HISTORY flag after each of its transfers in the range."""
        f.check()
        found: list[AccountBalance] = []
        last_timestamp: int | None = None
        for timestamp, values in self._entries(BALANCES_TABLE, f, _BALANCE_VALUES):
            if len(found) == f.limit:
                return BalancesPage(found, _after(f, last_timestamp))
            found.append(
                AccountBalance(
                    account_id=f.account_id,
                    timestamp=timestamp,
                    debits_pending=values[0],
                    debits_posted=values[1],
                    credits_pending=values[2],
                    credits_posted=values[3],
                )
            )
            last_timestamp = timestamp
        return BalancesPage(found, None)


def _timestamp(record: bytes) -> int:
    return int.from_bytes(record[112:120], "little")


def _rows(table: dict[tuple[int, int], _Tail]) -> list[HistoryRow]:
    return [
        HistoryRow(
            lo, hi, tail.timestamps[0], tail.timestamps[-1], len(tail.timestamps), _encode(tail.timestamps, tail.values)
        )
        for (lo, hi), tail in table.items()
        if tail.timestamps
    ]


def _drop_flushed(table: dict[tuple[int, int], _Tail], rows: list[HistoryRow]) -> None:
    for row in rows:
        key = (row.account_lo, row.account_hi)
        tail = table[key]
        width = len(tail.values) // len(tail.timestamps)
        if len(tail.timestamps) == row.entries_count:
            del table[key]
        else:
            del tail.timestamps[: row.entries_count]
            del tail.values[: row.entries_count * width]


def _matches(record: Buffer, f: AccountFilter) -> bool:
    if not (f.code or f.user_data_128 or f.user_data_64 or f.user_data_32):
        return True
    fields = TRANSFER_STRUCT.unpack(record)
    user_data_128 = fields[9] | fields[10] << 64
    return (
        (not f.code or fields[15] == f.code)
        and (not f.user_data_128 or user_data_128 == f.user_data_128)
        and (not f.user_data_64 or fields[11] == f.user_data_64)
        and (not f.user_data_32 or fields[12] == f.user_data_32)
    )


def _after(f: AccountFilter, timestamp: int | None) -> AccountFilter | None:
    """The filter for the page after one that ended at `timestamp`."""
    if timestamp is None:
        return None
    if f.reversed:
        return None if timestamp <= f.timestamp_min else replace(f, timestamp_max=timestamp - 1)
    return None if timestamp >= f.upper else replace(f, timestamp_min=timestamp + 1)
