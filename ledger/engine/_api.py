"""The contract both engines implement.

An engine is a synchronous, deterministic state machine: packed records and
a clock in, per-item results and journal entries out. It does no I/O and
knows nothing of gRPC, the journal or wallets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ledger.records.layout import Buffer
from ledger.records.limits import (
    ACCOUNTS_MAX_DEFAULT,
    BATCH_EVENTS_MAX,
    CAPACITY_MAX,
    PENDING_TRANSFERS_MAX_DEFAULT,
    TRANSFERS_HOT_DEFAULT,
    TRANSFERS_MAX_DEFAULT,
)

Clock = Callable[[], int]
"""Returns the current time in nanoseconds since the Unix epoch."""


class EngineError(Exception):
    """A request the engine refuses as a whole; nothing was applied."""


class BatchTooLarge(EngineError):
    """More events than BATCH_EVENTS_MAX in one request."""


class MalformedBatch(EngineError):
    """A buffer whose length is not a whole number of records."""


class ClockExhausted(EngineError):
    """The next timestamp would pass TIMESTAMP_MAX."""


class StateMismatch(EngineError):
    """Imported state or replayed entries that contradict the engine's state."""


class ColdRecordUnavailable(RuntimeError):
    """An old transfer's record could not be read back through the cold reader.

    Not an EngineError: raised by a batch, it comes after the batch was applied with that record unknown, so
    the engine's state can no longer be trusted and its owner must stop (a restart recovers from the
    journal). Raised by a read (a lookup), nothing changed.
    """


ColdReader = Callable[[list[int]], "dict[int, bytes]"]
"""Reads transfer records back by ordinal (their place in creation order): a dict from each ordinal asked to
its 128-byte record. Called synchronously by the engine, only for ordinals it has already handed out as
entries; `Store.read_transfers` is one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Capacity of an engine, fixed at start: limits, not allocations.

    The native engine reserves address space for its tables at this capacity
    and takes memory only as they fill, its indexes growing with what they
    hold. Accounts stay in memory (about 145 bytes each). With a cold reader,
    a transfer costs its status byte, fingerprint and index slot (about 20 bytes), and
    only the newest `transfers_hot` and the open holds keep their 128-byte
    records in memory; without one, every record does. Running out is a
    per-event result code (ACCOUNTS_FULL, TRANSFERS_FULL,
    PENDING_TRANSFERS_FULL), never a crash.
    """

    accounts_max: int = ACCOUNTS_MAX_DEFAULT
    transfers_max: int = TRANSFERS_MAX_DEFAULT
    pending_transfers_max: int = PENDING_TRANSFERS_MAX_DEFAULT
    transfers_hot: int = TRANSFERS_HOT_DEFAULT
    """How many of the newest transfers keep their records in memory when the engine has a cold reader: a
    retry within that many transfers is answered without reading the journal."""
    verify: bool = False
    """Check O(n) invariants after every batch (tests turn this on)."""

    def __post_init__(self) -> None:
        for name in ("accounts_max", "transfers_max", "pending_transfers_max", "transfers_hot"):
            value = getattr(self, name)
            if not 1 <= value <= CAPACITY_MAX:
                raise ValueError(f"{name} must be between 1 and {CAPACITY_MAX}, got {value}")


@dataclass(frozen=True, slots=True)
class AccountsApplied:
    """What one create_accounts call did.

    `results` holds one 16-byte result per event; `entries` the account
    records created, in order, with their timestamps (the journal entries).
    """

    results: bytes
    entries: Buffer
    timestamp_last: int


@dataclass(frozen=True, slots=True)
class TransfersApplied:
    """What one create_transfers (or expire_pending_transfers) call did.

    `expired` holds the 16-byte ids of the holds that expired at
    `timestamp_first`, before any event of the batch; `results` one 24-byte
    result per event; `entries` the transfer records created, in order, as
    stored (timestamps set, amounts as moved, post and void filled in from
    their hold). Together they are the journal entries of the call.
    `balances` holds a 64-byte AccountBalance for each account with the
    HISTORY flag after each transfer created that touched it, in order (debit
    account first); expiries record none, the next transfer shows them.
    """

    results: bytes
    entries: Buffer
    expired: bytes
    timestamp_first: int
    timestamp_last: int
    balances: bytes = b""


@dataclass(frozen=True, slots=True)
class EngineState:
    """The whole state of an engine, for checkpoints.

    `accounts` and `transfers` are packed records (transfers in the order they
    were created); `transfer_status` holds one TransferStatus byte per transfer.
    """

    accounts: bytes
    transfers: bytes
    transfer_status: bytes
    timestamp_last: int


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """What a checkpoint keeps of an engine: every account with its balances,
    and one TransferStatus byte per transfer in creation order.

    The transfer records themselves are not part of it (they are in the
    journal already): `import_state` of the accounts, then `restore_transfers`
    of the first `transfers_count` transfers of the journal with their
    statuses, rebuilds the engine as it was.
    """

    accounts: bytes
    transfer_status: bytes
    timestamp_last: int

    @property
    def transfers_count(self) -> int:
        return len(self.transfer_status)


@dataclass(frozen=True, slots=True)
class EngineStats:
    accounts_count: int
    transfers_count: int
    pending_transfers_count: int
    timestamp_last: int


@runtime_checkable
class Engine(Protocol):
    """What every engine implements; `ledger.engine.create_engine()` makes the selected one.

    One caller at a time: the engine is the single writer of the ledger (the
    native engine refuses a second caller while a batch runs). After a
    StateMismatch from import_state or a replay the engine is in an undefined
    state and must be discarded; only `stats().transfers_count` still means
    something: replay_transfers and restore_transfers take entries one by one,
    so it is the ordinal of the transfer entry refused (of the call's first
    one when an expiry is refused). Recovery, which hands them many commits
    at once, names the commit that holds it.
    """

    implementation: str

    def create_accounts(self, events: Buffer) -> AccountsApplied: ...

    def create_transfers(self, events: Buffer) -> TransfersApplied: ...

    def expire_pending_transfers(self) -> TransfersApplied: ...

    def lookup_accounts(self, ids: Buffer) -> bytes: ...

    def lookup_transfers(self, ids: Buffer) -> bytes: ...

    def transfer_status(self, transfer_id: int) -> int: ...

    def stats(self) -> EngineStats: ...

    def export_state(self) -> EngineState: ...

    def export_snapshot(self) -> EngineSnapshot: ...

    def import_state(self, state: EngineState) -> None: ...

    def restore_transfers(self, entries: Buffer, transfer_status: Buffer) -> None:
        """Append stored transfers with their statuses, booking nothing: for records whose effects the
        imported balances already hold (the journal up to a checkpoint). Not limited to one batch."""
        ...

    def verify(self) -> None:
        """Check the O(n) invariants now if the verify switch is on (after an import and restore)."""
        ...

    def replay_accounts(self, entries: Buffer, timestamp_last: int) -> None: ...

    def replay_transfers(self, expired: Buffer, entries: Buffer, timestamp_first: int, timestamp_last: int) -> None: ...


def check_batch(events: Buffer, record_size: int, what: str) -> int:
    """Return the number of records in `events`, or refuse the batch as a whole."""
    size = len(events) if not isinstance(events, memoryview) else events.nbytes
    count, remainder = divmod(size, record_size)
    if remainder:
        raise MalformedBatch(f"{what}: {size} bytes is not a whole number of {record_size}-byte records")
    if count > BATCH_EVENTS_MAX:
        raise BatchTooLarge(f"{what}: {count} events exceeds BATCH_EVENTS_MAX={BATCH_EVENTS_MAX}")
    return count


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo: what the machine could still give a process; None where it does not
    say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
