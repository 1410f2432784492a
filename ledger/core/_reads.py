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
  free thread takes the caller whose turn it is and runs steps of its oldest
  read for at most TURN_SECONDS_MAX (at least one step); the caller then goes
  to the back of the turn order. A small read therefore waits for about one
  step of each busy caller and then runs to its end in its own turn, never
  behind their whole backlog, nor behind one of their steps per step of its
  own. The threads pick the next step themselves (under a
  lock): a step that ends does not wait for the event loop to start the
  next, which matters when the loop is busy.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from ledger.journal import Steps

Result = TypeVar("Result")
_CLOSED = "reads are closed: the ledger is shutting down"
TURN_SECONDS_MAX = 0.002
"""A caller's turn on a read thread: steps of its read go on until this has passed (a step of a large page
takes milliseconds, the steps of a small read microseconds)."""


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
    queued: bool = False
    running: bool = False
    abandoned: bool = False
    """Its caller no longer waits for it (cancelled): the step running finishes, no other starts."""
    finished: bool = False


@dataclass(slots=True)
class _Queues:
    waiting: dict[Hashable, collections.deque[_Read]] = field(default_factory=dict)
    """Reads ready for their next step, per caller, oldest first."""
    turns: collections.deque[Hashable] = field(default_factory=collections.deque)
    """Callers with reads waiting, in the order they get a thread."""
    admitted: dict[Hashable, int] = field(default_factory=dict)
    """Reads per caller not finished (waiting, running, or not yet queued)."""


class FairReads:
    """Runs reads step by step on `concurrent_max` threads, callers in turn; `run` it from one event loop.

    The threads take the next step themselves, under a lock, so a read's steps follow each other without a
    trip through the event loop; the loop is involved when a read arrives and when it ends.
    """

    def __init__(self, *, concurrent_max: int, per_caller_max: int, thread_name: str = "ledger-read") -> None:
        if concurrent_max < 1 or per_caller_max < 1:
            raise ValueError(f"concurrent_max ({concurrent_max}) and per_caller_max ({per_caller_max}) must be >= 1")
        self._loop = asyncio.get_running_loop()
        self._per_caller_max = per_caller_max
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queues = _Queues()
        self._running = 0
        self._refused_total = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{thread_name}-{index}", daemon=True)
            for index in range(concurrent_max)
        ]
        for thread in self._threads:
            thread.start()

    async def run(
        self,
        caller: Hashable,
        steps: Steps[Result],
        *,
        ready: Callable[[], Awaitable[None]] | None = None,
        continuing: bool = False,
    ) -> Result:
        """The result of `steps`, run in `caller`'s turn; ReadsRefused at once if its queue is full.

        `ready` is awaited first, holding the caller's place but no thread (a read that waits for the index).
        A `continuing` read goes on with one just admitted (its reply, say) and is not refused for a full queue:
        the work before it is done, and each read has at most one such continuation.
        """
        read = _Read(caller, steps, self._loop.create_future())
        with self._lock:
            admitted = self._queues.admitted.get(caller, 0)
            refused = self._closed or (admitted >= self._per_caller_max and not continuing)
            if not refused:
                self._queues.admitted[caller] = admitted + 1
            elif not self._closed:
                self._refused_total += 1
        if refused:
            steps.close()
            if self._closed:
                raise ReadsRefused(_CLOSED, overloaded=False)
            raise ReadsRefused(
                f"this caller already has {admitted} history reads waiting or running "
                f"(history_reads_per_caller_max={self._per_caller_max}); retry when one has answered",
                overloaded=True,
            )
        try:
            if ready is not None:
                await ready()
            with self._lock:
                if self._closed:
                    raise ReadsRefused(_CLOSED, overloaded=False)
                self._queue(read)
                self._work.notify()
            read.future.add_done_callback(functools.partial(self._abandon, read))
            return cast(Result, await read.future)
        finally:
            with self._lock:
                if not (read.queued or read.running):
                    self._finish(read)  # unless done already: it failed before its turn, or was cancelled waiting

    def stats(self) -> ReadsStats:
        with self._lock:
            waiting = sum(self._queues.admitted.values()) - self._running
            return ReadsStats(running=self._running, waiting=waiting, refused_total=self._refused_total)

    async def close(self) -> None:
        """Refuse new reads, end the waiting ones with ReadsRefused, and wait for the steps running now."""
        with self._lock:
            self._closed = True
            for queue in self._queues.waiting.values():
                for read in queue:
                    read.queued = False
                    self._finish(read)
                    self._resolve(read, ReadsRefused("the ledger is shutting down", overloaded=False))
            self._queues.waiting.clear()
            self._queues.turns.clear()
            self._work.notify_all()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        await asyncio.sleep(0)  # the last answers, handed to the loop

    # -- the read threads (everything below holds the lock unless it says otherwise) -------------------

    def _serve(self) -> None:
        """A read thread: take the next caller's oldest read, run one step of it, and again."""
        while True:
            with self._lock:
                while not self._queues.turns and not self._closed:
                    self._work.wait()
                if self._closed:
                    return
                read = self._next()
            outcome = self._turn(read)
            with self._lock:
                self._running -= 1
                read.running = False
                if outcome is None and not read.abandoned and not self._closed:
                    self._queue(read, first=True)  # its next step in the caller's next turn, before its later reads
                    continue
                self._finish(read)
            if outcome is None:
                outcome = ReadsRefused("the ledger is shutting down", overloaded=False)
            self._resolve(read, outcome)

    def _turn(self, read: _Read) -> Any:
        """Without the lock: steps of `read` for one turn. None if it has more to do, else its outcome."""
        turn_end = time.monotonic() + TURN_SECONDS_MAX
        while True:
            try:
                next(read.steps)
            except StopIteration as stop:
                return _Finished(stop.value)
            except Exception as exc:
                return exc
            if read.abandoned or self._closed or time.monotonic() >= turn_end:
                return None

    def _next(self) -> _Read:
        queues = self._queues
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
        return read

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

    def _finish(self, read: _Read) -> None:
        """The read leaves for good: its place in its caller's queue is free."""
        if read.finished:
            return
        read.finished = True
        admitted = self._queues.admitted
        count = admitted.get(read.caller, 0) - 1
        if count > 0:
            admitted[read.caller] = count
        else:
            admitted.pop(read.caller, None)
        if not read.running:
            read.steps.close()

    def _resolve(self, read: _Read, outcome: Any) -> None:
        """Hand the read's result or error to its caller on the event loop (any thread, lock or not)."""

        def resolve() -> None:
            if read.future.done():
                return
            if isinstance(outcome, _Finished):
                read.future.set_result(outcome.value)
            else:
                read.future.set_exception(outcome)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(resolve)

    def _abandon(self, read: _Read, future: asyncio.Future[Any]) -> None:
        """On the loop, once the read's future is done: if its caller cancelled it, no step of it starts again."""
        if not future.cancelled():
            return
        with self._lock:
            read.abandoned = True
            if read.queued:
                queue = self._queues.waiting[read.caller]
                queue.remove(read)
                read.queued = False
                if not queue:
                    del self._queues.waiting[read.caller]
                    self._queues.turns.remove(read.caller)
                self._finish(read)


@dataclass(frozen=True, slots=True)
class _Finished:
    value: Any
