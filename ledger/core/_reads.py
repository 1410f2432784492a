"""Reads that take real work, off the event loop and in turn between callers.

A history page of 8190 transfers costs tens of milliseconds to query and as
much again to turn into a reply. On the event loop that holds up every other
call; on a shared thread pool in arrival order, one caller's flood of large
pages makes everyone else's small page wait behind all of it. So:

- A few threads of their own (`concurrent_max`) run the reads; nothing else
  uses them, and the event loop only hands work over and takes answers back.
- Each caller (a fairness key the caller of `run` chooses: the server uses
  the tenant of the API key, or the connection without keys) has a queue of
  its own, of at most `per_caller_max` reads waiting or running. Past it the
  caller's next read is refused at once (LedgerOverloaded: RESOURCE_EXHAUSTED)
  and no other caller notices.
- A read is a generator of steps of bounded work (ledger.journal.Steps). A
  free thread takes the caller whose turn it is and runs one step of its
  oldest read; the caller then goes to the back of the turn order. A small
  read therefore waits for about one step of each busy caller, never for
  their whole backlog.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from ledger.journal import Steps

Result = TypeVar("Result")


class ReadsRefused(Exception):
    """A read refused before any work: `overloaded` if its caller's queue is full, else the reads are closed."""

    def __init__(self, message: str, *, overloaded: bool) -> None:
        super().__init__(message)
        self.overloaded = overloaded


@dataclass(frozen=True, slots=True)
class ReadsStats:
    running: int
    """Steps running on the read threads now."""
    waiting: int
    """Reads admitted and not running: waiting for their turn (or for the history index to catch up)."""
    refused_total: int
    """Reads refused because their caller's queue was full."""


@dataclass(eq=False, slots=True)
class _Read:
    caller: Hashable
    steps: Steps[Any]
    future: asyncio.Future[Any]
    running: bool = False
    queued: bool = False
    finished: bool = False


@dataclass(frozen=True, slots=True)
class _Finished:
    value: Any


def _step(steps: Steps[Any]) -> _Finished | None:
    """On a read thread: one step; the read's result once it has none left."""
    try:
        next(steps)
    except StopIteration as stop:
        return _Finished(stop.value)
    return None


@dataclass(slots=True)
class _Queues:
    waiting: dict[Hashable, collections.deque[_Read]] = field(default_factory=dict)
    """Reads ready for their next step, per caller, oldest first."""
    turns: collections.deque[Hashable] = field(default_factory=collections.deque)
    """Callers with reads waiting, in the order they get a thread."""
    admitted: dict[Hashable, int] = field(default_factory=dict)
    """Reads per caller not finished (waiting, running, or not yet queued)."""


class FairReads:
    """Runs reads step by step on `concurrent_max` threads, callers in turn; use from one event loop."""

    def __init__(self, *, concurrent_max: int, per_caller_max: int, thread_name: str = "ledger-read") -> None:
        if concurrent_max < 1 or per_caller_max < 1:
            raise ValueError(f"concurrent_max ({concurrent_max}) and per_caller_max ({per_caller_max}) must be >= 1")
        self._loop = asyncio.get_running_loop()
        self._concurrent_max = concurrent_max
        self._per_caller_max = per_caller_max
        self._executor = ThreadPoolExecutor(concurrent_max, thread_name_prefix=thread_name)
        self._queues = _Queues()
        self._running = 0
        self._refused_total = 0
        self._closed = False

    async def run(
        self, caller: Hashable, steps: Steps[Result], *, ready: Callable[[], Awaitable[None]] | None = None
    ) -> Result:
        """The result of `steps`, run in `caller`'s turn; ReadsRefused at once if its queue is full.

        `ready` is awaited first, holding the caller's place but no thread (a read that waits for the index).
        """
        queues = self._queues
        admitted = queues.admitted.get(caller, 0)
        if self._closed or admitted >= self._per_caller_max:
            steps.close()
            if self._closed:
                raise ReadsRefused("reads are closed: the ledger is shutting down", overloaded=False)
            self._refused_total += 1
            raise ReadsRefused(
                f"this caller already has {admitted} history reads waiting or running "
                f"(history_reads_per_caller_max={self._per_caller_max}); retry when one has answered",
                overloaded=True,
            )
        queues.admitted[caller] = admitted + 1
        read = _Read(caller, steps, self._loop.create_future())
        try:
            if ready is not None:
                await ready()
            if self._closed:
                raise ReadsRefused("reads are closed: the ledger is shutting down", overloaded=False)
            self._queue(read)
            read.future.add_done_callback(functools.partial(self._abandoned, read))
            self._dispatch()
            return cast(Result, await read.future)
        finally:
            if not read.queued and not read.running:
                self._finish(read)  # if nothing else has: it failed before its turn, or was cancelled waiting

    def stats(self) -> ReadsStats:
        waiting = sum(self._queues.admitted.values()) - self._running
        return ReadsStats(running=self._running, waiting=waiting, refused_total=self._refused_total)

    async def close(self) -> None:
        """Refuse new reads, end the waiting ones with ReadsRefused, and wait for the steps running now."""
        self._closed = True
        for queue in list(self._queues.waiting.values()):
            for read in list(queue):
                self._unqueue(read)
                if not read.future.done():
                    read.future.set_exception(ReadsRefused("the ledger is shutting down", overloaded=False))
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        await asyncio.sleep(0)  # the last steps' callbacks

    # -- turns ---------------------------------------------------------------------------

    def _queue(self, read: _Read, *, first: bool = False) -> None:
        queues = self._queues
        queue = queues.waiting.get(read.caller)
        if queue is None:
            queue = queues.waiting[read.caller] = collections.deque()
            queues.turns.append(read.caller)
        if first:
            queue.appendleft(read)
        else:
            queue.append(read)
        read.queued = True

    def _unqueue(self, read: _Read) -> None:
        queues = self._queues
        queue = queues.waiting[read.caller]
        queue.remove(read)
        read.queued = False
        if not queue:
            del queues.waiting[read.caller]
            queues.turns.remove(read.caller)
        self._finish(read)

    def _dispatch(self) -> None:
        queues = self._queues
        while self._running < self._concurrent_max and queues.turns and not self._closed:
            caller = queues.turns.popleft()
            queue = queues.waiting[caller]
            read = queue.popleft()
            read.queued = False
            if queue:
                queues.turns.append(caller)
            else:
                del queues.waiting[caller]
            read.running = True
            self._running += 1
            step = self._loop.run_in_executor(self._executor, _step, read.steps)
            step.add_done_callback(functools.partial(self._stepped, read))

    def _stepped(self, read: _Read, step: asyncio.Future[_Finished | None]) -> None:
        self._running -= 1
        read.running = False
        if read.future.done():  # its caller went away (cancelled) meanwhile
            self._finish(read)
        elif (error := step.exception()) is not None:
            read.future.set_exception(error)
            self._finish(read)
        elif (finished := step.result()) is not None:
            read.future.set_result(finished.value)
            self._finish(read)
        elif self._closed:
            read.future.set_exception(ReadsRefused("the ledger is shutting down", overloaded=False))
            self._finish(read)
        else:
            self._queue(read, first=True)  # its next step in the caller's next turn, before its later reads
        self._dispatch()

    def _abandoned(self, read: _Read, future: asyncio.Future[Any]) -> None:
        """The read's future is done: if its caller cancelled it while it waited for a turn, drop it now."""
        if future.cancelled() and read.queued:
            self._unqueue(read)

    def _finish(self, read: _Read) -> None:
        """The read leaves for good: its place in its caller's queue is free."""
        if read.finished:
            return
        read.finished = True
        read.steps.close()
        admitted = self._queues.admitted
        count = admitted.get(read.caller, 0) - 1
        if count > 0:
            admitted[read.caller] = count
        else:
            admitted.pop(read.caller, None)
