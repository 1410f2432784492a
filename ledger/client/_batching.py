"""How calls become requests, I/O-free: coalescing calls into batches and cutting long inputs into requests.

Linked chains are the one subtlety. A chain runs from an event with LINKED to
the next event without it, and the ledger applies it all or nothing. So a
call's events stay contiguous in a batch, and a call whose last event has
LINKED (a chain left open, which the ledger answers LINKED_EVENT_CHAIN_OPEN)
ends its batch: otherwise the next caller's events would join its chain.
Cutting a long input never splits a chain either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ledger.records.limits import BATCH_EVENTS_MAX

from ._errors import LedgerTimeout
from ._retry import Attempts

Payload = TypeVar("Payload")
Waiter = TypeVar("Waiter")


@dataclass(slots=True, eq=False)
class Entry(Generic[Payload, Waiter]):
    """One call waiting to be sent: its events, whether it leaves a chain open, its deadline and its waiter."""

    payload: Payload
    count: int
    open_chain: bool
    timeout_seconds: float
    deadline: float
    """time.monotonic() (or the event loop's clock) when the caller stops waiting: timeout_seconds after the call."""
    waiter: Waiter = field(repr=False)
    attempts: Attempts | None = field(default=None, repr=False)
    """The attempts of the request that carries the call, once it is sent: what a caller that stops waiting reports."""

    def timeout(self) -> LedgerTimeout:
        attempts = self.attempts
        if attempts is None:
            return LedgerTimeout(self.timeout_seconds, 0)
        return LedgerTimeout(self.timeout_seconds, attempts.count, attempts.last_code, attempts.last_message)


class Batch(Generic[Payload, Waiter]):
    """Calls gathered into one request: at most BATCH_EVENTS_MAX events, each call's events contiguous."""

    __slots__ = ("closed", "count", "entries")

    def __init__(self, first: Entry[Payload, Waiter]) -> None:
        self.entries = [first]
        self.count = first.count
        self.closed = first.open_chain or first.count >= BATCH_EVENTS_MAX
        """Nothing more may join: the batch is full, or its last call leaves a chain open."""

    def extend(self, pending: deque[Entry[Payload, Waiter]], gone: Callable[[Waiter], bool]) -> None:
        """Take calls from the left of `pending` while they fit, in order.

        The first call that does not fit stays in `pending` (for the next batch) and closes this one; a
        call that leaves a chain open is taken and closes it. Calls whose waiter is `gone` (the caller
        stopped waiting before anything was sent) are dropped.
        """
        while pending and not self.closed:
            entry = pending[0]
            if gone(entry.waiter):
                pending.popleft()
                continue
            if self.count + entry.count > BATCH_EVENTS_MAX:
                self.closed = True
                return
            pending.popleft()
            self.entries.append(entry)
            self.count += entry.count
            self.closed = entry.open_chain or self.count == BATCH_EVENTS_MAX

    @property
    def deadline(self) -> float:
        """The latest of the callers' deadlines: a caller with an earlier one stops waiting on its own."""
        return max(entry.deadline for entry in self.entries)


def request_bounds(count: int, linked: Callable[[int], bool], limit: int = BATCH_EVENTS_MAX) -> list[tuple[int, int]]:
    """[start, end) of the requests that carry `count` events, each at most `limit`, never cutting a chain.

    `linked(i)` says whether event i has the LINKED flag. A chain longer than `limit` cannot be applied
    all or nothing in one request: ValueError naming where it starts.
    """
    bounds = []
    start = 0
    while start < count:
        end = min(start + limit, count)
        if end < count:
            # Back off to just after the last event that ends a chain (has no LINKED flag).
            cut = end
            while cut > start and linked(cut - 1):
                cut -= 1
            if cut == start:
                raise ValueError(
                    f"events {start} to {end - 1} are one linked chain, longer than the {limit} events one request "
                    "carries: a chain must fit one request to be applied all or nothing"
                )
            end = cut
        bounds.append((start, end))
        start = end
    return bounds
