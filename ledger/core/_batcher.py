"""Coalescing of concurrent write calls into one engine batch.

Calls that arrive in the same turn of the event loop are joined, in arrival
order, into one batch of at most BATCH_EVENTS_MAX events, applied in one
engine call and recorded as one journal entry; each call gets back the slice
of results for its own events and the batch's durability ticket.

Every event outcome is the same as if the calls had been applied one after
the other, with one exception that is excluded: a linked chain must not run
from one call's events into the next call's. A call whose last event has the
LINKED flag (an open chain, which the engine answers LINKED_EVENT_CHAIN_OPEN)
is therefore applied as a batch of its own, and so is a call that would not
fit beside what is already waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from ledger.engine import Buffer, check_batch
from ledger.records.codes import AccountFlags, TransferFlags
from ledger.records.limits import BATCH_EVENTS_MAX

assert int(AccountFlags.LINKED) == int(TransferFlags.LINKED), "one LINKED bit for both records"
_LINKED: Final = int(TransferFlags.LINKED)
"""As a plain int: `int & IntFlag` goes through the enum machinery, about a microsecond per call."""

Apply = Callable[[Buffer], tuple[bytes, int]]
"""Apply one batch to the engine and hand it to the journal: (results, durability ticket)."""


class Batcher:
    """Joins the calls of one event-loop turn into one `apply`; use from the loop's thread only."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        apply: Apply,
        record_size: int,
        result_size: int,
        flags_offset: int,
        what: str,
    ) -> None:
        self._loop = loop
        self._apply = apply
        self._record_size = record_size
        self._result_size = result_size
        self._flags_offset = flags_offset
        self._what = what
        self._parts: list[Buffer] = []
        self._waiting: list[tuple[asyncio.Future[tuple[bytes, int]], int, int]] = []
        self._events_count = 0
        self._scheduled = False
        self.batches_count = 0
        """Engine batches applied (for tests and metrics)."""

    async def submit(self, events: Buffer) -> tuple[bytes, int]:
        """This call's results and the ticket to wait for. Raises what the engine raises for the batch."""
        return await self.enqueue(events)

    def enqueue(self, events: Buffer) -> asyncio.Future[tuple[bytes, int]]:
        """The future of this call's results and ticket; a malformed batch raises here, at once."""
        count = check_batch(events, self._record_size, self._what)
        future: asyncio.Future[tuple[bytes, int]] = self._loop.create_future()
        if count == 0 or self._chain_open(events, count):
            self._flush()  # what arrived earlier is applied first: calls keep their arrival order
            self.batches_count += 1
            try:
                future.set_result(self._apply(events))
            except Exception as exc:
                future.set_exception(exc)
            return future
        if self._events_count + count > BATCH_EVENTS_MAX:
            self._flush()
        self._parts.append(events)
        self._waiting.append((future, self._events_count, count))
        self._events_count += count
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _chain_open(self, events: Buffer, count: int) -> bool:
        flags = memoryview(events)[(count - 1) * self._record_size + self._flags_offset]
        return bool(flags & _LINKED)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._waiting:
            return
        parts, waiting = self._parts, self._waiting
        self._parts, self._waiting, self._events_count = [], [], 0
        self.batches_count += 1
        try:
            results, ticket = self._apply(parts[0] if len(parts) == 1 else b"".join(parts))
        except Exception as exc:
            for future, _, _ in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        size = self._result_size
        for future, first, count in waiting:
            if not future.done():
                future.set_result((results[first * size : (first + count) * size], ticket))
