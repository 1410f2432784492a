"""The durable ledger: the engine and the journal, composed by the durability protocol.

1. A call is applied to the in-memory engine in one step, on the event loop's
   thread (the single writer: no locks).
2. What it changed goes to the journal writer, which returns a ticket.
3. The writer thread commits everything pending in one transaction (group
   commit) and reports the highest ticket that is durable.
4. The call answers only when its ticket is durable. A read waits for the
   newest ticket it could have observed, so it never shows a state that is
   not durable yet. A call that observed nothing new (every event failed, or
   a retry answered EXISTS) still waits for the state it observed.
   Concurrent calls are coalesced: calls that arrive in the same turn of
   the event loop are applied as one engine batch (up to BATCH_EVENTS_MAX
   events, each call's events contiguous and in arrival order) and handed
   to the writer as one entry, so a crowd of single-transfer callers costs
   the engine and the journal what one batch does.
5. If the store fails, new writes are refused with LedgerUnavailable at once,
   calls already applied wait (up to `durable_wait_seconds`) while the writer
   retries the same commits, and all of it resumes when the store is back.
   Meanwhile what is durable is still answered from memory: a lookup that
   shows nothing the unstored commits touched answers at once, and a retry
   whose every event is already durable in the engine gets its EXISTS
   results (applying it changes nothing it reports). The process may also be
   killed at any point: what was acknowledged is in the store, and what was
   not was never shown to anyone.
6. History and balance pages are read off the event loop on a few threads of
   their own, a step at a time and callers in turn (ledger.core._reads), so
   one caller's flood of large pages neither holds up the loop nor makes
   another caller's small page wait behind it.
7. A domain layer (the wallet domain) applies its operations through
   `Ledger.operation()`: in one synchronous step it calls the engine, records
   its own domain records, and `finish()` hands the engine entries and the
   domain records to the writer in one append, so that they land in one
   commit. Its state (ledger.journal.DomainState) is rebuilt by recovery and
   snapshotted with every checkpoint, at the same moment as the engine's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ledger.config import LedgerConfig
from ledger.engine import (
    AccountsApplied,
    Buffer,
    Clock,
    ColdRecordUnavailable,
    Engine,
    EngineError,
    EngineStats,
    TransfersApplied,
    check_batch,
    select,
    wall_clock,
)
from ledger.journal import (
    EXPIRED_SIZE,
    AccountFilter,
    BalancesPage,
    Commit,
    DomainState,
    GroupCommitWriter,
    HistoryIndex,
    HistoryStats,
    Steps,
    Store,
    StoreUnavailable,
    TransfersPage,
    WriterStats,
    open_store,
    seq_before,
)
from ledger.records.codes import TransferFlags
from ledger.records.layout import (
    ACCOUNT_FLAGS_OFFSET,
    ACCOUNT_LEDGER_OFFSET,
    TRANSFER_CREDIT_ACCOUNT_ID_OFFSET,
    TRANSFER_DEBIT_ACCOUNT_ID_OFFSET,
    TRANSFER_FLAGS_OFFSET,
    TRANSFER_LEDGER_OFFSET,
    TRANSFER_PENDING_ID_OFFSET,
    TRANSFER_TIMESTAMP_OFFSET,
)
from ledger.records.limits import (
    ACCOUNT_RESULT_SIZE,
    ACCOUNT_SIZE,
    BATCH_EVENTS_MAX,
    DOMAIN_LEDGER_FIRST,
    ID_SIZE,
    TRANSFER_RESULT_SIZE,
    TRANSFER_SIZE,
)

from ._batcher import Batcher
from ._cold import ColdRecords
from ._forked import fork_available, snapshot_in_child
from ._reads import FairReads, ReadsRefused, ReadsStats
from ._recovery import RecoveryReport, recover

logger = logging.getLogger(__name__)

CAPACITY_WARN_FRACTION: Final = 0.8
"""A table past this share of its limit is logged once and named in `LedgerStats.capacity_warnings`."""

EVENT_SIZE = TRANSFER_SIZE
assert ACCOUNT_SIZE == TRANSFER_SIZE, "accounts and transfers are events of one size"

STOP_TIMEOUT_SECONDS = 30.0

CommitObserver = Callable[[int, int, float], None]
ApplyObserver = Callable[[str, int, float], None]
Page = TypeVar("Page", TransfersPage, BalancesPage)
Result = TypeVar("Result")


SUBSCRIBER_COMMITS_MAX = 1024
"""Durable commits waiting for one subscriber; past this it reads them from the store instead."""
SUBSCRIBER_SCAN_COMMITS = 16
"""Commits one read from the store returns to a subscriber catching up."""
_NO_ID: Final = bytes(ID_SIZE)


class _Subscriber:
    def __init__(self) -> None:
        self.commits: collections.deque[Commit] = collections.deque()
        self.wake = asyncio.Event()
        self.overflowed = False
        self.ended = False


@dataclass(frozen=True, slots=True)
class _Undurable:
    """What the entries applied but not yet durable touch, as 16-byte ids, when the newest ticket was `ticket`."""

    ticket: int
    accounts_created: frozenset[bytes]
    accounts_changed: frozenset[bytes]
    """Created, or balances or flags changed by a transfer or an expiry."""
    transfers_created: frozenset[bytes]
    transfers_changed: frozenset[bytes]
    """Created, or posted, voided or expired (a hold's status)."""


def _ids_at(records: bytes, offset: int, record_size: int) -> set[bytes]:
    return {records[i : i + ID_SIZE] for i in range(offset, len(records), record_size)}


def _undurable(ticket: int, accounts: bytes, transfers: bytes, expired_holds: bytes) -> _Undurable:
    """On a thread: the ids the undurable entries touch (`expired_holds`: the records of the holds they expired)."""
    accounts_created = _ids_at(accounts, 0, ACCOUNT_SIZE)
    transfers_created = _ids_at(transfers, 0, TRANSFER_SIZE)
    moved = transfers + expired_holds
    accounts_changed = accounts_created | _ids_at(moved, TRANSFER_DEBIT_ACCOUNT_ID_OFFSET, TRANSFER_SIZE)
    accounts_changed |= _ids_at(moved, TRANSFER_CREDIT_ACCOUNT_ID_OFFSET, TRANSFER_SIZE)
    transfers_changed = transfers_created | _ids_at(transfers, TRANSFER_PENDING_ID_OFFSET, TRANSFER_SIZE)
    transfers_changed |= _ids_at(expired_holds, 0, TRANSFER_SIZE)
    transfers_changed.discard(_NO_ID)
    return _Undurable(
        ticket,
        frozenset(accounts_created),
        frozenset(accounts_changed),
        frozenset(transfers_created),
        frozenset(transfers_changed),
    )


def _transfers_from(records: Buffer, timestamp_min: int) -> bytes:
    """The records with timestamp >= timestamp_min (records are in timestamp order)."""
    view = memoryview(records)
    count = len(view) // TRANSFER_SIZE
    low, high = 0, count
    while low < high:
        middle = (low + high) // 2
        offset = middle * TRANSFER_SIZE + TRANSFER_TIMESTAMP_OFFSET
        if int.from_bytes(view[offset : offset + 8], "little") < timestamp_min:
            low = middle + 1
        else:
            high = middle
    if low == 0 and isinstance(records, bytes):
        return records  # the whole commit: shared, not copied per subscriber
    return bytes(view[low * TRANSFER_SIZE :])


class LedgerError(Exception):
    """A call the ledger cannot serve now; the message says why."""


class LedgerUnavailable(LedgerError):
    """Writes cannot be made durable now (gRPC UNAVAILABLE). Retrying with the same ids is safe."""


class LedgerOverloaded(LedgerError):
    """A bound is reached (gRPC RESOURCE_EXHAUSTED): the journal backlog, or the caller's own queue of reads.
    Nothing was applied or read; retry later."""


class LedgerFailed(LedgerUnavailable):
    """The ledger stopped acknowledging after an error it cannot recover from in this process; restart it."""


class LedgerReserved(Exception):
    """A write names a ledger of the domain layer (DOMAIN_LEDGER_FIRST and up: a wallet tenant's), which only
    the domain writes, through `Ledger.operation()` (gRPC PERMISSION_DENIED). Nothing of it was applied."""


_POST_OR_VOID: Final = int(TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER)
assert _POST_OR_VOID < 256, "both flags are in the low byte of the u16 flags field"
_MARK_POST_OR_VOID: Final = bytes(0xFF if b & _POST_OR_VOID else 0 for b in range(256))
_MARK_ZERO: Final = bytes(0xFF if b == 0 else 0 for b in range(256))


def _reserved(what: str, index: int, ledger: int, named: str = "") -> LedgerReserved:
    return LedgerReserved(
        f"{what}[{index}].ledger: {named}ledger {ledger} belongs to a wallet tenant (ledgers from "
        f"{DOMAIN_LEDGER_FIRST} up are the Wallet service's): write it through the Wallet service; your own books "
        f"take a ledger below {DOMAIN_LEDGER_FIRST}"
    )


def _refuse_domain_ledgers(data: bytes, record_size: int, ledger_offset: int, what: str) -> None:
    """LedgerReserved naming the first record of `data` (whole records) in a domain ledger.

    DOMAIN_LEDGER_FIRST is the top bit of the u32 ledger field, the top bit of its last byte: the byte of every
    record at once, one strided slice in C, is ASCII exactly when no record is in a domain ledger.
    """
    end = len(data) - len(data) % record_size
    tops = data[ledger_offset + 3 : end : record_size]
    if tops.isascii():
        return
    index = next(i for i, top in enumerate(tops) if top >= 0x80)
    start = index * record_size + ledger_offset
    raise _reserved(what, index, int.from_bytes(data[start : start + 4], "little"))


def _holds_of_ledger_zero(data: bytes) -> bytes | None:
    """The pending ids of the posts and voids of ledger 0 in `data` (the engine gives those their hold's
    ledger), packed one per record (zero for every other record); None if there is none.

    All in C, column by column: byte planes of the fields are marked (0xFF or 0) with translate, combined as
    big integers, and the pending ids masked with the result, so a batch of 8190 captures costs no loop."""
    end = len(data) - len(data) % TRANSFER_SIZE
    count = end // TRANSFER_SIZE
    ending = data[TRANSFER_FLAGS_OFFSET:end:TRANSFER_SIZE].translate(_MARK_POST_OR_VOID)
    if not ending.strip(b"\0"):
        return None
    ledger = 0
    for k in range(4):
        ledger |= int.from_bytes(data[TRANSFER_LEDGER_OFFSET + k : end : TRANSFER_SIZE], "little")
    mask = int.from_bytes(ending, "little") & int.from_bytes(
        ledger.to_bytes(count, "little").translate(_MARK_ZERO), "little"
    )
    if not mask:
        return None
    pending = bytearray(ID_SIZE * count)
    for k in range(ID_SIZE):
        plane = int.from_bytes(data[TRANSFER_PENDING_ID_OFFSET + k : end : TRANSFER_SIZE], "little") & mask
        pending[k::ID_SIZE] = plane.to_bytes(count, "little")
    return bytes(pending)


def _expiries(expired_ids: bytes, transfers_count: int) -> bytes:
    """Journal expiry entries of holds that expired as a call began, before the transfer at `transfers_count`."""
    ordinal = transfers_count.to_bytes(8, "little")
    return b"".join(expired_ids[i : i + ID_SIZE] + ordinal for i in range(0, len(expired_ids), ID_SIZE))


class Operation:
    """One step of a domain operation: engine calls applied at once, their entries and the domain's records
    gathered, then handed to the journal in one append by `finish`, so that all of it lands in one commit.

    Made by `Ledger.operation()` and valid for one synchronous step on the event loop's thread: finish it
    before anything is awaited, so that no other write is applied among its calls. Then wait for the ticket
    with `Ledger.until_durable` before answering. An operation that ends its step unfinished is dropped; if
    it had applied entries to the engine or recorded domain records, that is a bug (the engine, or the
    domain, now holds state the journal never will), and the ledger stops acknowledging (LedgerFailed), as
    after an engine failure, to be recovered from the journal.
    """

    def __init__(self, ledger: Ledger, engine: Engine, clock: Clock) -> None:
        self._ledger = ledger
        self._engine = engine
        self._clock = clock
        self._accounts = bytearray()
        self._transfers = bytearray()
        self._expired = bytearray()
        self._balances = bytearray()
        self._domain = bytearray()
        self._timestamp_last = 0
        """Of the last engine write (0: none yet)."""
        self._open = True

    def create_accounts(self, events: Buffer) -> bytes:
        """Apply accounts now; per-event 16-byte results, as `Ledger.create_accounts` answers them."""
        self._check_writable()
        applied: AccountsApplied = self._ledger._apply("create_accounts", self._engine.create_accounts, events)
        self._accounts += applied.entries
        self._timestamp_last = applied.timestamp_last
        return applied.results

    def create_transfers(self, events: Buffer) -> bytes:
        """Apply transfers now; per-event 24-byte results, as `Ledger.create_transfers` answers them."""
        self._check_writable()
        applied: TransfersApplied = self._ledger._apply("create_transfers", self._engine.create_transfers, events)
        if applied.expired:
            transfers_count = self._ledger._transfers_count + len(self._transfers) // TRANSFER_SIZE
            self._expired += _expiries(applied.expired, transfers_count)
        self._transfers += applied.entries  # a view of the engine's tables: copied before the next engine call
        self._balances += applied.balances
        self._timestamp_last = applied.timestamp_last
        return applied.results

    def lookup_accounts(self, ids: Buffer) -> bytes:
        """Account records as the engine holds them now, this operation's changes included."""
        self._check_open()
        return self._engine.lookup_accounts(ids)

    def lookup_transfers(self, ids: Buffer) -> bytes:
        self._check_open()
        return self._engine.lookup_transfers(ids)

    def now(self) -> int:
        """The engine's clock, in nanoseconds since the Unix epoch."""
        self._check_open()
        return self._clock()

    def record(self, domain: Buffer) -> None:
        """Add domain records, journaled in the same commit as this operation's entries."""
        self._check_open()
        self._domain += domain

    def finish(self) -> int:
        """Hand the entries and domain records to the journal in one append; the ticket to wait for (the newest
        applied, if there is nothing to journal). The operation is closed after this."""
        self._check_open()
        self._open = False
        timestamp_last = self._timestamp_last or self._engine.stats().timestamp_last
        return self._ledger._finish_operation(
            self, self._accounts, self._transfers, bytes(self._expired), bytes(self._balances), timestamp_last,
            self._domain,
        )  # fmt: skip

    def _abandon(self) -> bool:
        """Close it unfinished; whether it had applied or recorded anything the journal now never holds."""
        self._open = False
        return bool(self._accounts or self._transfers or self._expired or self._domain)

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("this operation is finished or its step has ended; take a new one")

    def _check_writable(self) -> None:
        self._check_open()
        if (failure := self._ledger._failure) is not None:  # an engine call of this step failed
            raise LedgerFailed(f"the ledger stopped after an error and must be restarted: {failure}")


@dataclass(frozen=True, slots=True)
class LedgerStats:
    engine: EngineStats
    writer: WriterStats
    recovery: RecoveryReport
    implementation: str
    store: str
    available: bool
    ticket_applied: int
    """The newest journal ticket handed to the writer; `writer.ticket_durable` trails it by the calls not yet
    durable."""
    history: HistoryStats
    reads: ReadsStats
    commits_since_checkpoint: int = 0
    """Journal commits after the last checkpoint: what a restart would replay."""
    bytes_since_checkpoint: int = 0
    capacity_warnings: tuple[str, ...] = ()
    """Each table past CAPACITY_WARN_FRACTION of its limit, said in words (GetServerInfo passes them on)."""
    memory_used: dict[str, int] | None = None
    """Bytes of each engine table backed by memory (the native engine; None for the reference engine)."""
    transfers_hot: int | None = None
    """How many of the newest transfers keep their records in memory; None: every one does."""


@contextlib.contextmanager
def _cold_reads() -> Iterator[None]:
    """A read that needed an old record the journal could not give now: unavailable, and nothing changed."""
    try:
        yield
    except ColdRecordUnavailable as exc:
        raise LedgerUnavailable(f"an old transfer could not be read from the journal store: {exc}") from exc


class Ledger:
    """Engine plus journal. Make one with `await Ledger.open(config)`; use it from one event loop."""

    def __init__(
        self,
        config: LedgerConfig,
        engine: Engine,
        store: Store,
        report: RecoveryReport,
        *,
        on_commit: CommitObserver | None = None,
        on_apply: ApplyObserver | None = None,
        clock: Clock = wall_clock,
        domain: DomainState | None = None,
        cold: ColdRecords | None = None,
    ) -> None:
        self.config = config
        self.recovery = report
        self._engine = engine
        self._store = store
        self._capacity_warned: set[str] = set()
        self._on_apply = on_apply
        self._clock = clock
        self._domain = domain
        self._operation: Operation | None = None
        """The operation of the current step, until it is finished."""
        self._loop = asyncio.get_running_loop()
        self._accounts_count = report.accounts_count
        self._transfers_count = report.transfers_count
        self._ticket_applied = 0
        self._ticket_durable = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None], float, bool]] = collections.deque()
        """(ticket, future, deadline, is a read) of callers waiting for durability, in ticket and deadline order."""
        self._waiters_watch: asyncio.TimerHandle | None = None
        self._unavailable: BaseException | None = None
        self._failure: BaseException | None = None
        self._closed = False
        # What the last checkpoint covers: the recovered state counts as covered except what was replayed
        # after the checkpoint recovery started from, which the next restart would replay again.
        self._checkpoint_transfers = report.transfers_count - report.transfers_replayed
        self._checkpoint_accounts = report.accounts_count
        self._checkpoint_seq = report.checkpoint_seq
        self._checkpoint_bytes = -report.bytes_replayed
        self._checkpoint_at = time.monotonic()
        self._checkpoint_in_flight = False
        self._history_waiters: list[tuple[int, asyncio.Future[None]]] = []
        """(seq, future) of history reads waiting for the index to reach seq."""
        self._history = HistoryIndex(
            store,
            flush_transfers=config.history_flush_transfers,
            flush_seconds=config.history_flush_seconds,
            on_indexed=self._indexed,
        )
        self._history.start(report.seq_last)
        self._reads = FairReads(
            concurrent_max=config.history_reads_concurrent_max, per_caller_max=config.history_reads_per_caller_max
        )
        self._undurable_known: _Undurable | None = None
        self._undurable_reading: asyncio.Future[_Undurable] | None = None
        self._subscribers: set[_Subscriber] = set()
        self._ending: asyncio.Future[None] = self._loop.create_future()
        self._feed_reads: set[asyncio.Future[list[Commit]]] = set()
        self._writer = GroupCommitWriter(
            store,
            seq_last=report.seq_last,
            accounts_count=report.accounts_count,
            transfers_count=report.transfers_count,
            commit_bytes_max=config.commit_bytes_max,
            on_durable=lambda ticket: self._soon(self._durable_reached, ticket),
            on_unavailable=lambda exc: self._soon(self._set_unavailable, exc),
            on_available=lambda: self._soon(self._set_unavailable, None),
            on_fatal=lambda exc: self._soon(self._fail, exc),
            on_commit=on_commit,
            on_written=self._written,
        )
        if cold is not None:
            cold.writer = self._writer
            cold.unappended = self._unappended_transfers
        self._writer.start()
        self._accounts_batcher = Batcher(
            self._loop, self._apply_accounts, ACCOUNT_SIZE, ACCOUNT_RESULT_SIZE, ACCOUNT_FLAGS_OFFSET, "accounts"
        )
        self._transfers_batcher = Batcher(
            self._loop, self._apply_transfers, TRANSFER_SIZE, TRANSFER_RESULT_SIZE, TRANSFER_FLAGS_OFFSET, "transfers"
        )
        self._expiry_task = self._loop.create_task(self._expire_loop(), name="ledger-expiry")
        self._maybe_checkpoint()  # a long replay at start is not paid again at the next one

    @classmethod
    async def open(
        cls,
        config: LedgerConfig,
        *,
        clock: Clock = wall_clock,
        engine_class: type[Engine] | None = None,
        on_commit: CommitObserver | None = None,
        on_apply: ApplyObserver | None = None,
        domain: DomainState | None = None,
    ) -> Ledger:
        """Connect to the store, recover the engine (and `domain`) from the journal, start the writer.

        `on_commit(commits, transfers, seconds)` is called on the writer thread after every transaction;
        `on_apply(operation, events_count, seconds)` on the event loop after every engine call that succeeded
        (`operation` is the engine method: create_accounts, create_transfers or expire_pending_transfers).
        `domain` is restored and replayed by recovery (on a thread, before the ledger serves anything) and
        snapshotted with every checkpoint.
        """
        store = open_store(config.store_url)
        # The engine keeps the newest transfers' records and reads older ones back from the journal.
        cold = ColdRecords(store)
        engine: Engine = (engine_class or select(None))(config.engine, clock=clock, cold_reader=cold)  # type: ignore[call-arg]

        def start() -> RecoveryReport:
            store.connect()
            return recover(engine, store, domain, save_ids=True)

        try:
            report = await asyncio.to_thread(start)
        except BaseException:
            store.close()
            raise
        logger.info(
            "ledger recovered from %s in %.3f s: checkpoint seq=%d, %d commits (%d transfers) replayed, "
            "%d accounts, %d transfers, engine %s",
            store.description,
            report.seconds,
            report.checkpoint_seq,
            report.commits_replayed,
            report.transfers_replayed,
            report.accounts_count,
            report.transfers_count,
            engine.implementation,
        )
        return cls(
            config, engine, store, report, on_commit=on_commit, on_apply=on_apply, clock=clock, domain=domain, cold=cold
        )

    # -- writes ------------------------------------------------------------------

    async def create_accounts(self, events: Buffer) -> bytes:
        """Per-event 16-byte results, once every account created is durable.

        An account in a domain ledger (DOMAIN_LEDGER_FIRST and up) refuses the batch (LedgerReserved): the
        domain creates its accounts through `operation()`.
        """
        events = self._outside_domain_ledgers(events, ACCOUNT_SIZE, ACCOUNT_LEDGER_OFFSET, "accounts")
        if self._unavailable is not None and (replayed := await self._replayed(self._accounts_batcher, events)):
            return replayed[0]
        self._admit()
        results, ticket = await self._accounts_batcher.submit(events)
        await self._until_durable(ticket)
        return results

    async def create_transfers(self, events: Buffer) -> bytes:
        """Per-event 24-byte results, once every transfer created (and hold expired) is durable.

        A transfer in a domain ledger, or a post or void of ledger 0 whose hold is in one, refuses the batch
        (LedgerReserved) before anything is applied: the domain moves its money through `operation()`.
        """
        events = self._transfers_outside_domain_ledgers(events)
        if self._unavailable is not None and (replayed := await self._replayed(self._transfers_batcher, events)):
            return replayed[0]
        self._admit()
        results, ticket = await self._transfers_batcher.submit(events)
        await self._until_durable(ticket)
        return results

    def submit_transfers(self, events: Buffer) -> asyncio.Future[tuple[bytes, int]]:
        """Apply transfers without waiting: (results, ticket) once applied; answer after `until_durable(ticket)`.

        For a caller that pipelines (a stream): submissions are applied in the order made. Refused at once
        (LedgerReserved) as `create_transfers` refuses.
        """
        events = self._transfers_outside_domain_ledgers(events)
        if self._unavailable is not None:
            return asyncio.ensure_future(self._submit_during_outage(events))
        self._admit()
        return self._transfers_batcher.enqueue(events)

    @staticmethod
    def _outside_domain_ledgers(events: Buffer, record_size: int, ledger_offset: int, what: str) -> bytes:
        """The batch as bytes (what is checked is what is applied), unless a record is in a domain ledger."""
        check_batch(events, record_size, what)  # a malformed batch is refused as such first
        data = events if isinstance(events, bytes) else bytes(events)
        _refuse_domain_ledgers(data, record_size, ledger_offset, what)
        return data

    def _transfers_outside_domain_ledgers(self, events: Buffer) -> bytes:
        data = self._outside_domain_ledgers(events, TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET, "transfers")
        if (pending := _holds_of_ledger_zero(data)) is None:
            return data
        # A hold never changes ledger, so what the engine holds now is what the post or void will take.
        holds = self._engine.lookup_transfers(pending)
        if holds[TRANSFER_LEDGER_OFFSET + 3 :: TRANSFER_SIZE].isascii():
            return data
        for at in range(0, len(holds), TRANSFER_SIZE):
            ledger = int.from_bytes(holds[at + TRANSFER_LEDGER_OFFSET : at + TRANSFER_LEDGER_OFFSET + 4], "little")
            if ledger >= DOMAIN_LEDGER_FIRST:
                hold_id = holds[at : at + ID_SIZE]
                index = next(i for i in range(0, len(pending), ID_SIZE) if pending[i : i + ID_SIZE] == hold_id)
                raise _reserved("transfers", index // ID_SIZE, ledger, "0 takes its hold's ledger, and ")
        raise AssertionError("a hold's ledger has its top bit set, so it is a domain's")  # pragma: no cover

    async def _submit_during_outage(self, events: Buffer) -> tuple[bytes, int]:
        if replayed := await self._replayed(self._transfers_batcher, events):
            return replayed
        self._admit()  # refuses while the store is away; applies if it came back meanwhile
        return await self._transfers_batcher.submit(events)

    async def _replayed(self, batcher: Batcher, events: Buffer) -> tuple[bytes, int] | None:
        """During an outage: the results of a batch whose every event is already in the engine and durable, with
        a ticket that is durable; None for any other batch (refused as unavailable, as before).

        Such a batch creates nothing: each event's result (EXISTS, EXISTS_WITH_DIFFERENT_*, a field refused)
        depends on the event and the durable record with its id alone, never on what is not durable. It is
        applied as any batch is, so the answer is the engine's own; holds it expires on the way are journaled
        as usual once the store is back, and are not part of the answer.
        """
        if self._failure is not None or self._closed:
            return None
        try:
            check_batch(events, EVENT_SIZE, "events")
        except EngineError:
            return None
        data = bytes(events)
        ids = _ids_at(data, 0, EVENT_SIZE)
        if not ids:
            return None
        undurable = await self._undurable()
        if undurable is None:
            return None
        accounts = batcher is self._accounts_batcher
        created = undurable.accounts_created if accounts else undurable.transfers_created
        lookup = self._engine.lookup_accounts if accounts else self._engine.lookup_transfers
        if not ids.isdisjoint(created) or len(lookup(b"".join(ids))) != len(ids) * EVENT_SIZE:
            return None
        results, _ = await batcher.submit(data)
        return results, self._ticket_durable

    async def until_durable(self, ticket: int) -> None:
        """Wait until everything up to `ticket` is durable (LedgerUnavailable past durable_wait_seconds)."""
        await self._until_durable(ticket)

    def operation(self) -> Operation:
        """A step of a domain operation, applied at once and journaled in one commit (see Operation).

        Refused as writes are (LedgerUnavailable, LedgerOverloaded, LedgerFailed) before anything is applied.
        """
        self._settle_operation()
        self._admit()
        operation = Operation(self, self._engine, self._clock)
        self._operation = operation
        self._loop.call_soon(self._operation_step_ended, operation)
        return operation

    def _finish_operation(
        self,
        operation: Operation,
        accounts: Buffer,
        transfers: Buffer,
        expired: bytes,
        balances: bytes,
        timestamp_last: int,
        domain: Buffer,
    ) -> int:
        if self._operation is operation:
            self._operation = None
        return self._append(accounts, transfers, expired, balances, timestamp_last, domain)

    def _unappended_transfers(self) -> tuple[int, Buffer]:
        """The ordinal of the first transfer not handed to the writer yet, and the records from it on (those the
        operation in progress applied)."""
        operation = self._operation
        return self._transfers_count, (operation._transfers if operation is not None else b"")

    def _operation_step_ended(self, operation: Operation) -> None:
        if self._operation is operation:
            self._settle_operation()

    def _settle_operation(self) -> None:
        """Drop an operation left unfinished by its step; one that applied or recorded anything stops the ledger.

        Called before anything else applies to or snapshots the engine, and at the end of the operation's step.
        """
        operation = self._operation
        if operation is None:
            return
        self._operation = None
        if operation._abandon():
            self._fail(
                LedgerError(
                    "a domain operation applied entries or recorded domain records and ended without finish(): "
                    "the engine holds state the journal never will"
                )
            )

    def _apply_accounts(self, events: Buffer) -> tuple[bytes, int]:
        self._settle_operation()
        applied: AccountsApplied = self._apply("create_accounts", self._engine.create_accounts, events)
        return applied.results, self._record(applied.entries, b"", b"", b"", applied.timestamp_last)

    def _apply_transfers(self, events: Buffer) -> tuple[bytes, int]:
        self._settle_operation()
        applied: TransfersApplied = self._apply("create_transfers", self._engine.create_transfers, events)
        # The entries are a view of the engine's tables; the writer copies them before the next call.
        ticket = self._record(b"", applied.entries, applied.expired, applied.balances, applied.timestamp_last)
        return applied.results, ticket

    def _apply(self, operation: str, method: Any, events: Buffer) -> Any:
        started = time.perf_counter()
        try:
            applied = method(events)
        except EngineError:
            raise
        except Exception as exc:
            # A broken invariant or a bug: never go on with state that may be corrupt.
            self._fail(exc)
            raise LedgerFailed(f"the engine failed and the ledger stopped: {exc!r}") from exc
        if self._on_apply is not None:
            try:
                self._on_apply(operation, len(events) // EVENT_SIZE, time.perf_counter() - started)
            except Exception:
                # Applied but not yet journaled: an observer must not keep the entries from the journal.
                logger.exception("on_apply observer failed")
        return applied

    def _admit(self) -> None:
        if self._failure is not None:
            raise LedgerFailed(f"the ledger stopped after an error and must be restarted: {self._failure}")
        if self._closed:
            raise LedgerUnavailable("the ledger is shutting down")
        if self._unavailable is not None:
            raise LedgerUnavailable(f"the journal store is unavailable, nothing more is accepted: {self._unavailable}")
        backlog = self._writer.backlog_bytes
        if backlog >= self.config.journal_backlog_bytes_max:
            raise LedgerOverloaded(
                f"journal backlog of {backlog} bytes is at journal_backlog_bytes_max="
                f"{self.config.journal_backlog_bytes_max}; retry later"
            )

    def _record(
        self, accounts: Buffer, transfers: Buffer, expired_ids: bytes, balances: bytes, timestamp_last: int
    ) -> int:
        """Hand one call's entries to the writer; the ticket to wait for (the newest, if there were none)."""
        # Holds expire when a call begins, before any of its transfers.
        expired = _expiries(expired_ids, self._transfers_count) if expired_ids else b""
        return self._append(accounts, transfers, expired, balances, timestamp_last)

    def _append(
        self,
        accounts: Buffer,
        transfers: Buffer,
        expired: bytes,
        balances: bytes,
        timestamp_last: int,
        domain: Buffer = b"",
    ) -> int:
        if not (accounts or transfers or expired or domain):
            return self._ticket_applied
        self._ticket_applied = self._writer.append(accounts, transfers, expired, balances, timestamp_last, domain)
        self._accounts_count += len(accounts) // ACCOUNT_SIZE
        self._transfers_count += len(transfers) // TRANSFER_SIZE
        return self._ticket_applied

    # -- reads -------------------------------------------------------------------

    async def lookup_accounts(self, ids: Buffer) -> bytes:
        self._settle_operation()
        found = self._engine.lookup_accounts(ids)
        await self._until_shown_durable(ids, accounts=True)
        return found

    async def lookup_transfers(self, ids: Buffer) -> bytes:
        self._settle_operation()
        with _cold_reads():
            found = self._engine.lookup_transfers(ids)
        await self._until_shown_durable(ids, accounts=False)
        return found

    async def transfer_status(self, transfer_id: int) -> int:
        self._settle_operation()
        with _cold_reads():
            status = self._engine.transfer_status(transfer_id)
        await self._until_shown_durable(transfer_id.to_bytes(ID_SIZE, "little"), accounts=False)
        return status

    async def _until_shown_durable(self, ids: Buffer, *, accounts: bool) -> None:
        """Wait until the records of `ids`, as just read from the engine, are durable.

        Normally that is the newest ticket (a commit away). During an outage, a read that shows none of what
        the unstored entries touched shows durable state already, and answers at once.
        """
        if self._ticket_applied <= self._ticket_durable:
            return
        if self._unavailable is not None and (undurable := await self._undurable()) is not None:
            changed = undurable.accounts_changed if accounts else undurable.transfers_changed
            if changed.isdisjoint(_ids_at(bytes(ids), 0, ID_SIZE)):
                return  # `undurable` covers every entry applied before the read and since: none touched these
        await self._until_durable(self._ticket_applied, read=True)

    async def _undurable(self) -> _Undurable | None:
        """What the entries not yet durable touch, up to the newest ticket; None if new ones keep coming.

        Worked out on a thread from the writer's copies (during an outage the backlog stops growing, so this
        is done about once per outage) and shared by every read that asks meanwhile.
        """
        for _ in range(3):
            ticket = self._ticket_applied
            known = self._undurable_known
            if known is not None and known.ticket == ticket:
                return known
            reading = self._undurable_reading
            if reading is None or reading.done():
                accounts, transfers, expired = self._writer.undurable_entries()
                hold_ids = [expired[i : i + ID_SIZE] for i in range(0, len(expired), EXPIRED_SIZE)]
                holds = b"".join(
                    self._engine.lookup_transfers(b"".join(hold_ids[i : i + BATCH_EVENTS_MAX]))
                    for i in range(0, len(hold_ids), BATCH_EVENTS_MAX)
                )
                reading = asyncio.ensure_future(asyncio.to_thread(_undurable, ticket, accounts, transfers, holds))
                self._undurable_reading = reading
            try:
                known = await asyncio.shield(reading)
            except Exception:  # then the reads wait for durability, as they would without this
                logger.exception("working out what the unstored entries touch failed")
                return None
            if known.ticket == self._ticket_applied:
                self._undurable_known = known
                return known
        return None

    async def get_account_transfers(self, f: AccountFilter, *, caller: Hashable = None) -> TransfersPage:
        """An account's transfers from the store, by time range and filters, a page at a time.

        Raises ValueError naming a field out of bounds. Sees every transfer acknowledged before the call.
        Runs in `caller`'s turn among the history reads (LedgerOverloaded if it has too many already).
        """
        return await self._read_history(self._history.account_transfers_steps, f, caller)

    async def get_account_balances(self, f: AccountFilter, *, caller: Hashable = None) -> BalancesPage:
        """Balances of an account with the HISTORY flag after each of its transfers (empty without the flag)."""
        return await self._read_history(self._history.account_balances_steps, f, caller)

    async def read_in_turn(self, caller: Hashable, steps: Steps[Result]) -> Result:
        """Run the rest of a read's work (turning a page into a reply, say) on the read threads, in `caller`'s
        turn. It continues a read already admitted, so a full queue does not refuse it."""
        return await self._read_in_turn(caller, steps, None, continuing=True)

    async def _read_history(
        self, query: Callable[[AccountFilter], Steps[Page]], f: AccountFilter, caller: Hashable
    ) -> Page:
        f.check()
        return await self._read_in_turn(caller, query(f), self._history_caught_up)

    async def _read_in_turn(
        self,
        caller: Hashable,
        steps: Steps[Result],
        ready: Callable[[], Awaitable[None]] | None,
        *,
        continuing: bool = False,
    ) -> Result:
        try:
            return await self._reads.run(caller, steps, ready=ready, continuing=continuing)
        except ReadsRefused as exc:
            raise (LedgerOverloaded if exc.overloaded else LedgerUnavailable)(str(exc)) from None
        except StoreUnavailable as exc:
            raise LedgerUnavailable(
                f"this read cannot be answered now, the journal store is unavailable ({exc}); retry the read"
            ) from exc

    async def _history_caught_up(self) -> None:
        """Wait until the history index holds every commit durable now, so a read sees all acknowledged."""
        target = self._history.durable_seq
        if self._history.indexed_seq >= target:
            return
        future: asyncio.Future[None] = self._loop.create_future()
        waiter = (target, future)
        self._history_waiters.append(waiter)
        if self._history.indexed_seq >= target:  # reached meanwhile, before the index thread saw this waiter
            future.set_result(None)
        wait = self.config.durable_wait_seconds
        try:
            await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise LedgerUnavailable(
                f"the history index has not reached journal seq={target} within {wait} s "
                f"(it is at seq={self._history.indexed_seq}); retry the read"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._history_waiters.remove(waiter)

    def _indexed(self, seq: int) -> None:
        """On the index thread: every commit up to `seq` is indexed."""
        if self._history_waiters:  # read without the loop: a waiter added meanwhile checks again itself
            self._soon(self._history_reached, seq)

    def _history_reached(self, seq: int) -> None:
        for target, future in self._history_waiters:
            if target <= seq and not future.done():
                future.set_result(None)

    def stats(self) -> LedgerStats:
        _, commits_since_checkpoint, bytes_since_checkpoint = self._since_checkpoint()
        return LedgerStats(
            engine=self._engine.stats(),
            writer=self._writer.stats(),
            recovery=self.recovery,
            implementation=self._engine.implementation,
            store=self._store.description,
            available=self._unavailable is None and self._failure is None,
            ticket_applied=self._ticket_applied,
            history=self._history.stats(),
            reads=self._reads.stats(),
            commits_since_checkpoint=commits_since_checkpoint,
            bytes_since_checkpoint=bytes_since_checkpoint,
            capacity_warnings=self.capacity_warnings(),
            memory_used=self._engine.memory_used() if hasattr(self._engine, "memory_used") else None,
            transfers_hot=getattr(self._engine, "transfers_hot", None),
        )

    def capacity_warnings(self) -> tuple[str, ...]:
        """Each table past CAPACITY_WARN_FRACTION of its limit, in words; logged once per table as it passes."""
        stats, config = self._engine.stats(), self.config
        warnings = []
        for table, count, limit, setting, result in (
            ("accounts", stats.accounts_count, config.accounts_max, "LEDGER_ACCOUNTS_MAX", "ACCOUNTS_FULL"),
            ("transfers", stats.transfers_count, config.transfers_max, "LEDGER_TRANSFERS_MAX", "TRANSFERS_FULL"),
            ("holds", stats.pending_transfers_count, config.pending_transfers_max, "LEDGER_PENDING_TRANSFERS_MAX",
             "PENDING_TRANSFERS_FULL"),
        ):  # fmt: skip
            if count >= CAPACITY_WARN_FRACTION * limit:
                warning = (f"{table}: {count:,} of the {limit:,} {setting} allows ({count / limit:.0%}); past it "
                           f"each new one is refused with {result}")  # fmt: skip
                warnings.append(warning)
                if table not in self._capacity_warned:
                    self._capacity_warned.add(table)
                    logger.warning("capacity: %s; raise %s and restart before then", warning, setting)
        return tuple(warnings)

    @property
    def store(self) -> Store:
        return self._store

    # -- durability --------------------------------------------------------------

    async def _until_durable(self, ticket: int, *, read: bool = False) -> None:
        if ticket <= self._ticket_durable:
            return
        if self._failure is not None:
            raise LedgerFailed(f"the ledger stopped after an error and must be restarted: {self._failure}")
        future: asyncio.Future[None] = self._loop.create_future()
        deadline = self._loop.time() + self.config.durable_wait_seconds
        self._waiters.append((ticket, future, deadline, read))
        # One timer for all waiters, at the first one's deadline (they wait equally long, so the deque is in
        # deadline order too): a timer per waiter would cost more than the rest of the wait.
        if self._waiters_watch is None:
            self._waiters_watch = self._loop.call_at(deadline, self._durable_timeouts)
        await future

    def _durable_timeouts(self) -> None:
        """Fail the waiters whose deadline has passed; watch the next one's."""
        self._waiters_watch = None
        now = self._loop.time()
        while self._waiters and self._waiters[0][2] <= now:
            _, future, _, read = self._waiters.popleft()
            if future.done():
                continue
            reason = f"the journal store is unavailable: {self._unavailable}" if self._unavailable else "overloaded"
            wait = self.config.durable_wait_seconds
            future.set_exception(
                LedgerUnavailable(
                    f"this read would show state that is not durable within {wait} s ({reason}); "
                    "nothing was changed: retry the read"
                    if read
                    else f"not durable within {wait} s ({reason}); the outcome is unknown: retry with the same ids"
                )
            )
        if self._waiters:
            self._waiters_watch = self._loop.call_at(self._waiters[0][2], self._durable_timeouts)

    def _soon(self, callback: Any, *args: Any) -> None:
        # A closed loop has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _durable_reached(self, ticket: int) -> None:
        self._ticket_durable = max(self._ticket_durable, ticket)
        while self._waiters and self._waiters[0][0] <= self._ticket_durable:
            _, future, _, _ = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
        self._maybe_checkpoint()

    def _set_unavailable(self, exc: BaseException | None) -> None:
        self._unavailable = exc

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            logger.critical("ledger stopped acknowledging: %r", exc)
            self._failure = exc
        while self._waiters:
            _, future, _, _ = self._waiters.popleft()
            if not future.done():
                future.set_exception(LedgerFailed(f"the ledger stopped after an error and must be restarted: {exc}"))

    # -- checkpoints and expiry ----------------------------------------------------

    def _since_checkpoint(self) -> tuple[int, int, int]:
        """(transfers, commits, bytes) journaled since the last checkpoint: what a restart would replay."""
        return (
            self._transfers_count - self._checkpoint_transfers,
            self._writer.seq_last - self._checkpoint_seq,
            self._writer.bytes_appended - self._checkpoint_bytes,
        )

    def _changed_since_checkpoint(self) -> bool:
        transfers, commits, _ = self._since_checkpoint()
        return bool(transfers or commits) or self._accounts_count != self._checkpoint_accounts

    def _maybe_checkpoint(self) -> None:
        if self._checkpoint_in_flight or self._closed or self._failure is not None:
            return
        config = self.config
        transfers, commits, size = self._since_checkpoint()
        # Replay costs per transfer, per commit (each is read and checked on its own) and per byte read; a
        # POS fleet writes many commits of a few transfers, so any of the three may be what is due.
        due = (
            transfers >= config.checkpoint_every_transfers
            or commits >= config.checkpoint_every_commits
            or size >= config.checkpoint_every_bytes
            or (
                time.monotonic() - self._checkpoint_at >= config.checkpoint_interval_seconds
                and self._changed_since_checkpoint()
            )
        )
        if due:
            self._take_checkpoint(None)

    def _take_checkpoint(self, done: asyncio.Future[int | None] | None) -> None:
        self._settle_operation()
        if self._failure is not None:
            if done is not None and not done.done():
                done.set_result(None)
            return
        snapshot = self._engine.export_snapshot()
        domain: bytes | Callable[[], bytes] = b""
        if self._domain is not None:
            try:  # the same moment as the engine's: nothing ran in between
                domain = self._domain_snapshot()
            except Exception as exc:  # a bug in the domain: its state is not to be trusted any more
                logger.exception("the domain's snapshot failed")
                self._fail(exc)
                if done is not None and not done.done():
                    done.set_result(None)
                return
        self._checkpoint_in_flight = True
        self._checkpoint_transfers = self._transfers_count
        self._checkpoint_accounts = self._accounts_count
        self._checkpoint_bytes = self._writer.bytes_appended
        self._checkpoint_at = time.monotonic()

        def saved(seq: int | None) -> None:
            self._checkpoint_in_flight = False
            # The seq the snapshot stands at is known once its commits are written; if it was not saved, the
            # commits until now count as covered all the same, so that a failing save is not retried per commit.
            self._checkpoint_seq = seq if seq is not None else self._writer.seq_last
            if done is not None and not done.done():
                done.set_result(seq)

        self._writer.checkpoint(
            snapshot.accounts,
            snapshot.transfer_status,
            snapshot.timestamp_last,
            on_saved=lambda seq: self._soon(saved, seq),
            domain=domain,
        )

    def _domain_snapshot(self) -> bytes | Callable[[], bytes]:
        """The domain's snapshot, or what reads it from the forked child making it (see checkpoint_fork)."""
        assert self._domain is not None
        if self.config.checkpoint_fork and fork_available():
            try:
                return snapshot_in_child(self._domain.snapshot)
            except OSError as exc:  # no process or memory to fork with now
                logger.warning("the domain's snapshot is taken on the event loop: fork failed: %s", exc)
        return self._domain.snapshot()

    async def checkpoint(self) -> int | None:
        """Take a checkpoint now and wait until it is stored; its journal seq, or None if it was not saved."""
        while self._checkpoint_in_flight:
            await asyncio.sleep(0.01)
        done: asyncio.Future[int | None] = self._loop.create_future()
        self._take_checkpoint(done)
        return await done

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.expire_interval_seconds)
            self.capacity_warnings()  # logs a table as it passes its warning share (this loop runs every second)
            if self._engine.stats().pending_transfers_count == 0:
                continue
            self._settle_operation()
            try:
                self._admit()
            except LedgerError:  # unavailable, overloaded or failed: the next batch expires them
                continue
            applied = self._apply("expire_pending_transfers", lambda _: self._engine.expire_pending_transfers(), b"")
            self._record(b"", b"", applied.expired, b"", applied.timestamp_last)

    # -- the committed-transfers feed -------------------------------------------------

    async def subscribe_transfers(self, timestamp_min: int) -> AsyncIterator[bytes]:
        """Committed transfers with timestamp >= timestamp_min as packed records, a commit at a time, then live.

        Past commits come from the store; new ones as they become durable. A subscriber that falls
        more than SUBSCRIBER_COMMITS_MAX commits behind goes back to reading the store, so a slow one
        costs bounded memory and misses nothing. Ends with LedgerUnavailable when the ledger closes.
        """
        if not 0 <= timestamp_min < 2**64:
            raise ValueError(f"timestamp_min: {timestamp_min} is not a u64")
        # Only commits the store confirmed: the writer numbers a commit before the store has it.
        seq = await asyncio.to_thread(seq_before, self._store, timestamp_min, self._writer.stats().seq_durable)
        async for commit in self.subscribe_commits(seq):
            if records := _transfers_from(commit.transfers, timestamp_min):
                yield records

    async def subscribe_commits(self, after_seq: int) -> AsyncIterator[Commit]:
        """Durable commits after `after_seq` in seq order, from the store and then live, none missed: what a
        feed of the journal (transfers, or a domain's records) reads. Ends with LedgerUnavailable when the
        ledger closes; resume from the last seq received."""
        if not 0 <= after_seq < 2**63:
            raise ValueError(f"after_seq: {after_seq} is not a commit seq")
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        seq = after_seq
        try:
            while True:
                # From the store up to its newest commit.
                while commits := await self._read_commits_off_loop(seq):
                    for commit in commits:
                        seq = commit.seq
                        yield commit
                # Live, until a gap (commits published before we listened) or an overflow sends us back.
                subscriber.overflowed = False
                while not subscriber.overflowed:
                    if subscriber.ended:
                        raise LedgerUnavailable(
                            "the ledger is shutting down; subscribe again from the last position received"
                        )
                    if not subscriber.commits:
                        subscriber.wake.clear()
                        await subscriber.wake.wait()
                        continue
                    commit = subscriber.commits[0]
                    if commit.seq > seq + 1:
                        break
                    subscriber.commits.popleft()
                    if commit.seq == seq + 1:
                        seq = commit.seq
                        yield commit
                subscriber.commits.clear()
        finally:
            self._subscribers.discard(subscriber)

    async def _read_commits_off_loop(self, after_seq: int) -> list[Commit]:
        """A read of the store on a thread, which close() waits for even if its subscriber has gone."""
        read = self._loop.run_in_executor(None, self._read_commits, after_seq)
        self._feed_reads.add(read)
        read.add_done_callback(self._feed_read_done)
        return await asyncio.shield(read)

    def _feed_read_done(self, read: asyncio.Future[list[Commit]]) -> None:
        self._feed_reads.discard(read)
        if not read.cancelled():
            read.exception()  # retrieved here: a subscriber that left is not told

    def _read_commits(self, after_seq: int) -> list[Commit]:
        try:
            return list(self._store.commits(after_seq, after_seq + SUBSCRIBER_SCAN_COMMITS))
        except StoreUnavailable as exc:
            raise LedgerUnavailable(f"committed transfers cannot be read now: {exc}") from exc

    def _written(self, commits: list[Commit]) -> None:
        """On the writer thread: these commits are durable."""
        self._history.durable(commits)
        if self._subscribers:  # read without the loop: one that subscribes meanwhile finds these in the store
            self._soon(self._publish, commits)

    def _publish(self, commits: list[Commit]) -> None:
        for subscriber in self._subscribers:
            if len(subscriber.commits) + len(commits) > SUBSCRIBER_COMMITS_MAX:
                subscriber.overflowed = True
                subscriber.commits.clear()
            else:
                subscriber.commits.extend(commits)
            subscriber.wake.set()

    # -- shutdown ------------------------------------------------------------------

    def end_subscriptions(self) -> None:
        """End every transfer subscription (they raise LedgerUnavailable): shutdown need not wait for them."""
        for subscriber in self._subscribers:
            subscriber.ended = True
            subscriber.wake.set()

    def begin_shutdown(self) -> None:
        """Shutdown begins: subscriptions end, and `ending` is done, so that long-lived write streams stop
        taking messages and end once they answered those they took (a server's drain need not wait for them)."""
        self.end_subscriptions()
        if not self._ending.done():
            self._ending.set_result(None)

    @property
    def ending(self) -> asyncio.Future[None]:
        """Done once shutdown has begun (`begin_shutdown`, or `close`)."""
        return self._ending

    async def close(self, *, checkpoint: bool = True) -> None:
        """Stop accepting writes, make everything applied durable, checkpoint (unless told not to), close."""
        if self._closed:
            return
        self._settle_operation()
        self._expiry_task.cancel()
        self.begin_shutdown()
        healthy = self._failure is None and self._unavailable is None
        if checkpoint and healthy and self._changed_since_checkpoint() and not self._checkpoint_in_flight:
            self._take_checkpoint(None)
        self._closed = True
        finished = await asyncio.to_thread(self._writer.stop, STOP_TIMEOUT_SECONDS)
        if not finished:
            logger.error("journal writer did not finish within %.0f s; unwritten entries were never acknowledged",
                         STOP_TIMEOUT_SECONDS)  # fmt: skip
        await asyncio.sleep(0)  # let the writer's last callbacks run
        if self._waiters_watch is not None and not self._waiters:
            self._waiters_watch.cancel()
            self._waiters_watch = None
        if self._feed_reads:  # feed reads of subscribers that have gone, still on their threads
            await asyncio.wait(self._feed_reads)
        await self._reads.close()  # history reads running now finish: they read the store
        for _, future in self._history_waiters:
            if not future.done():
                future.set_exception(LedgerUnavailable("the ledger is shutting down; retry the read"))
        await asyncio.to_thread(self._history.stop)
        self._store.close()
        logger.info("ledger closed at journal seq=%d", self._writer.stats().seq_last)

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
