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
entries, and fetches the transfer records from the journal by ordinal. Its
caller first waits until the index has caught up with every commit that was
durable when it began, so it sees every transfer acknowledged before it (and
nothing that is not durable). A query is a generator of steps, each of
bounded work (READ_STEP_RECORDS records fetched or built), so that a caller
running many queries can let other callers' queries take turns between the
steps of a large one (ledger.core._reads).
"""

from __future__ import annotations

import bisect
import collections
import logging
import threading
import time
from array import array
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Final, TypeVar

from ledger.records.layout import TRANSFER_STRUCT, AccountBalance, Buffer
from ledger.records.limits import BATCH_EVENTS_MAX, ID_INT_MAX, TIMESTAMP_MAX

from ._format import Commit
from ._postings import postings
from ._store import BALANCES_TABLE, TRANSFERS_TABLE, U64_MASK, HistoryRow, Store, StoreUnavailable

logger = logging.getLogger(__name__)

FLUSH_TRANSFERS: Final = 1_048_576
FLUSH_SECONDS: Final = 10.0
SCAN_ENTRIES_MAX: Final = 65_536
"""Most index entries one query looks at; a page cut short by filters says where to go on."""
READ_STEP_RECORDS: Final = 256
"""Transfer records a query fetches, or balances it builds, in one step (a millisecond or two of work: a small
read waits for about one step of a busy caller)."""
SCAN_STEP_ENTRIES: Final = 8 * READ_STEP_RECORDS
"""Index entries a query looks at in one step when its filters match few of them."""
RETRY_SECONDS: Final = 0.5
QUEUE_BYTES_MAX: Final = 256 << 20
"""Durable commits held in memory for the index thread; past this it reads them from the store."""
RUNS_MAX: Final = 32
"""Runs in the tail before they are merged into one, so a query looks at few."""
RUNS_MERGED: Final = 4
"""The newest runs are merged this many at a time once they are the same size class (each merged from as many
commits), so the tail keeps about RUNS_MERGED - 1 runs per size class and each posting is merged a few
times before the flush, instead of the whole tail once every RUNS_MAX commits."""

_BALANCE_VALUES = 4  # debits_pending, debits_posted, credits_pending, credits_posted

Result = TypeVar("Result")
Steps = Generator[None, None, Result]
"""Work done a step at a time: each next() does a bounded part, the last one returns the result."""


def run_steps(steps: Steps[Result]) -> Result:
    """Every step of `steps` at once; the result."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


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


@dataclass(frozen=True, slots=True)
class HistoryStats:
    indexed_seq: int
    """Every commit up to this one is indexed."""
    durable_seq: int
    """The newest durable commit the index was told of."""
    store_available: bool
    """False while the index cannot read or write the store (it retries every RETRY_SECONDS)."""
    store_outages_total: int
    """Times the index found the store unavailable after it had been available."""


_Tail = tuple[bytearray, bytearray]
"""One account's entries since the last flush: (timestamps, values), u64 little-endian, `width` values an
entry (postings.add_balances appends to them)."""


def _words(data: bytearray) -> array[int]:
    words = array("Q")
    words.frombytes(data)
    return words


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
        on_indexed: Callable[[int], None] | None = None,
    ) -> None:
        """`on_indexed(seq)` is called on the index thread whenever every commit up to `seq` is indexed."""
        self._store = store
        self._on_indexed = on_indexed
        self._flush_transfers = flush_transfers
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._flushed_seq = 0
        self._indexed_seq = 0
        self._durable_seq = 0
        self._queue: collections.deque[Commit] = collections.deque()
        self._queue_bytes = 0
        self._runs: list[bytes] = []
        """Sorted runs of postings (ledger.journal._postings_py) of the transfers since the last flush."""
        self._run_classes: list[int] = []
        """Each run's size class: a run of class c was merged from RUNS_MERGED**c commits (index thread only)."""
        self._balances: dict[tuple[int, int], _Tail] = {}
        self._tail_transfers = 0
        self._tail_since = time.monotonic()
        self._stopping = False
        self._store_failed_at: float | None = None
        """When the index found the store unavailable; None while it is available (index thread only)."""
        self._store_outages_total = 0
        self._thread = threading.Thread(target=self._run, name="ledger-history-index", daemon=True)

    # -- the owner's side ----------------------------------------------------------

    def start(self, durable_seq: int) -> None:
        """Begin indexing from the store's flushed position up to `durable_seq` and on."""
        self._flushed_seq = self._indexed_seq = self._store.history_position()
        self._durable_seq = max(durable_seq, self._flushed_seq)
        self._thread.start()

    def durable(self, commits: Sequence[Commit]) -> None:
        """These commits are durable: index them (called by the journal writer, in seq order).

        They are kept in memory for the index thread up to QUEUE_BYTES_MAX; past that it reads them
        back from the store instead.
        """
        if not commits:
            return
        size = sum(commit.size for commit in commits)
        with self._lock:
            follows = not self._queue or self._queue[-1].seq + 1 == commits[0].seq
            if follows and self._queue_bytes + size <= QUEUE_BYTES_MAX:
                self._queue.extend(commits)
                self._queue_bytes += size
            else:
                self._queue.clear()
                self._queue_bytes = 0
            self._durable_seq = max(self._durable_seq, commits[-1].seq)
            self._changed.notify_all()

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    @property
    def indexed_seq(self) -> int:
        return self._indexed_seq

    def stats(self) -> HistoryStats:
        return HistoryStats(
            indexed_seq=self._indexed_seq,
            durable_seq=self._durable_seq,
            store_available=self._store_failed_at is None,
            store_outages_total=self._store_outages_total,
        )

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
                # One line when an outage begins and one when it ends: a retry every RETRY_SECONDS is no news.
                if self._store_failed_at is None:
                    self._store_failed_at = time.monotonic()
                    self._store_outages_total += 1
                    logger.warning("history index waits for the store, retrying every %.1f s: %s", RETRY_SECONDS, exc)
                if stopping:
                    return
                time.sleep(RETRY_SECONDS)
                continue
            except Exception:
                logger.exception("history index stopped")
                return
            if self._store_failed_at is not None:
                logger.info(
                    "history index: the store is back after %.1f s; indexed up to seq=%d",
                    time.monotonic() - self._store_failed_at,
                    self._indexed_seq,
                )
                self._store_failed_at = None
            if stopping and self._indexed_seq >= target:
                return

    def _flush_due(self) -> bool:
        return (
            self._tail_transfers >= self._flush_transfers or time.monotonic() - self._tail_since >= self._flush_seconds
        )

    def _catch_up(self, target: int) -> None:
        while self._indexed_seq < target:
            with self._lock:
                while self._queue and self._queue[0].seq <= self._indexed_seq:
                    self._queue_bytes -= self._queue.popleft().size
                queued = self._queue[0] if self._queue else None
                if queued is not None and queued.seq == self._indexed_seq + 1:
                    self._queue.popleft()
                    self._queue_bytes -= queued.size
            if queued is not None and queued.seq == self._indexed_seq + 1:
                self._add(queued)
            else:
                # Not in memory (a restart, or the queue overflowed): read them back from the store.
                upto = queued.seq - 1 if queued is not None else target
                for commit in self._store.commits(self._indexed_seq, upto):
                    commit.verify()
                    self._add(commit)
                with self._lock:
                    # Commits with nothing in them are still positions reached.
                    self._indexed_seq = max(self._indexed_seq, upto)
                    self._changed.notify_all()
            if self._on_indexed is not None:
                self._on_indexed(self._indexed_seq)
            if self._tail_transfers >= self._flush_transfers:
                self._flush()

    def _add(self, commit: Commit) -> None:
        run = postings.sort_postings(commit.transfers, commit.transfers_first) if commit.transfers else None
        with self._lock:
            if not self._tail_transfers and not self._balances:
                self._tail_since = time.monotonic()
            if run is not None:
                self._runs.append(run)
                self._run_classes.append(0)
            self._tail_transfers += commit.transfers_count
            postings.add_balances(self._balances, commit.balances)
            self._indexed_seq = commit.seq
            self._changed.notify_all()
        if run is not None:
            self._merge_newest_runs()

    def _merge_newest_runs(self) -> None:
        """Merge the newest runs while RUNS_MERGED of them share a size class, and all of them past RUNS_MAX.

        The merging happens outside the lock: the journal writer hands over durable commits and queries copy
        the runs meanwhile (a sort of the whole tail under the lock held up every commit's answer). Only this
        thread changes the runs, so the ones merged are still the newest when the merged run replaces them.
        """
        runs, classes = self._runs, self._run_classes
        while len(classes) >= RUNS_MERGED and classes[-RUNS_MERGED] == classes[-1]:
            merged = postings.merge_runs(runs[-RUNS_MERGED:])
            with self._lock:
                runs[-RUNS_MERGED:] = [merged]
            classes[-RUNS_MERGED:] = [classes[-1] + 1]
        if len(runs) > RUNS_MAX:
            merged = postings.merge_runs(runs)
            with self._lock:
                runs[:] = [merged]
            classes[:] = [max(classes)]

    def _flush(self) -> None:
        with self._lock:
            seq = self._indexed_seq
            runs = list(self._runs)
            balance_rows = _rows(self._balances)
        merged = postings.merge_runs(runs) if len(runs) > 1 else (runs[0] if runs else b"")
        started = time.perf_counter()
        self._store.write_history(merged, balance_rows, seq)
        with self._lock:
            # What was indexed while the rows were written stays in the tail.
            del self._runs[: len(runs)]
            del self._run_classes[: len(runs)]
            _drop_flushed(self._balances, balance_rows)
            self._tail_transfers = sum(len(run) for run in self._runs) // 64
            self._tail_since = time.monotonic()
            self._flushed_seq = seq
        logger.debug(
            "history index flushed up to seq=%d: %d postings in %.3f s",
            seq,
            len(merged) // 32,
            time.perf_counter() - started,
        )

    # -- queries --------------------------------------------------------------------

    def _tail_snapshot(self, which: str, account_id: int) -> tuple[array[int], array[int]]:
        """The account's entries in the in-memory tail: timestamps, and their values."""
        with self._lock:
            if which == BALANCES_TABLE:
                tail = self._balances.get((account_id & U64_MASK, account_id >> 64))
                if tail is None:
                    return array("Q"), array("Q")
                return _words(tail[0]), _words(tail[1])
            runs = list(self._runs)
        timestamps, refs = array("Q"), array("Q")
        for run in runs:  # in journal order, so timestamps keep increasing from run to run
            start, end = postings.account_range(run, account_id)
            if start < end:
                words = memoryview(postings.entries(run, start, end)).cast("Q")
                timestamps.extend(words[: end - start])
                refs.extend(words[end - start :])
        return timestamps, refs

    def _entries(self, which: str, f: AccountFilter, width: int) -> Iterator[tuple[int, memoryview | array[int]]]:
        """(timestamp, values) of the account's entries within the filter's time range, in its order."""
        tail_timestamps, tail_values = self._tail_snapshot(which, f.account_id)
        rows = self._store.history_rows(which, f.account_id, f.timestamp_min, f.upper, f.reversed)
        # A flush between the snapshot and the read puts the same entries in both: the tail wins.
        tail_first = tail_timestamps[0] if tail_timestamps else TIMESTAMP_MAX + 1
        sources: list[tuple[array[int] | memoryview, array[int] | memoryview]] = [_decode(row, width) for row in rows]
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
        return run_steps(self.account_transfers_steps(f))

    def account_transfers_steps(self, f: AccountFilter) -> Steps[TransfersPage]:
        """`account_transfers` a step at a time (one fetch of at most READ_STEP_RECORDS records a step)."""
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
            if scanned and not scanned % SCAN_STEP_ENTRIES:
                yield
            last_scanned = timestamp
            ref = values[0]
            if f.credits if ref & 1 else f.debits:
                wanted.append(ref >> 1)
            needed = f.limit - len(found)
            if len(wanted) >= min(max(needed, 256) if record_filters else needed, READ_STEP_RECORDS):
                found.extend(self._fetch(wanted, f))
                wanted = []
                if len(found) >= f.limit:
                    complete = False
                    break
                yield
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
        return run_steps(self.account_balances_steps(f))

    def account_balances_steps(self, f: AccountFilter) -> Steps[BalancesPage]:
        """`account_balances` a step at a time (READ_STEP_RECORDS balances a step)."""
        f.check()
        found: list[AccountBalance] = []
        last_timestamp: int | None = None
        for timestamp, values in self._entries(BALANCES_TABLE, f, _BALANCE_VALUES):
            if len(found) == f.limit:
                return BalancesPage(found, _after(f, last_timestamp))
            if found and not len(found) % READ_STEP_RECORDS:
                yield
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
            lo,
            hi,
            int.from_bytes(timestamps[:8], "little"),
            int.from_bytes(timestamps[-8:], "little"),
            len(timestamps) // 8,
            bytes(timestamps + values),
        )
        for (lo, hi), (timestamps, values) in table.items()
        if timestamps
    ]


def _drop_flushed(table: dict[tuple[int, int], _Tail], rows: list[HistoryRow]) -> None:
    for row in rows:
        key = (row.account_lo, row.account_hi)
        timestamps, values = table[key]
        width = len(values) // len(timestamps)
        if len(timestamps) == row.entries_count * 8:
            del table[key]
        else:
            del timestamps[: row.entries_count * 8]
            del values[: row.entries_count * 8 * width]


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
