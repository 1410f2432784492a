"""Packed writes on one long-lived TransferBatches stream instead of a call each.

A unary call costs both sides far more than a message on an open stream
(headers, trailers, a task and the interceptors on the server, per call): a
lone caller's transfer is answered sooner, and many callers' batches cost
less CPU per transfer. The stream is opened on first use and again after it
ends. Requests are written in order and answered in order (the server
applies each message as it arrives and answers it once durable); a reader
task hands each reply to the request that waits for it.

A request not answered by its caller's deadline leaves the stream stuck
behind it (replies come in order): the next requests go on a new stream and
the old one is half-closed. Whatever ends a stream (a broken connection, the
server shutting down, a revoked key) ends the requests still waiting with its
status, as a unary call
would have ended: the caller retries UNAVAILABLE and RESOURCE_EXHAUSTED with
the same ids on a new stream, which is safe. A server without the method
(UNIMPLEMENTED) is remembered, and requests go as unary calls from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Final

import grpc

from ledger.v1 import ledger_pb2, ledger_pb2_grpc

ENDED_MESSAGE: Final = "the write stream ended before this request was answered; its outcome is unknown"


class StreamFailed(Exception):
    """The stream ended (or could not open) before a request was answered: its status and message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class _Open:
    """One opened stream: its call, the requests written to it and not yet answered, and its reader."""

    __slots__ = ("call", "reader", "waiting")

    def __init__(self, call: Any) -> None:
        self.call = call
        self.waiting: deque[asyncio.Future[ledger_pb2.PackedTransferResults]] = deque()
        self.reader: asyncio.Task[None] | None = None


class WriteStream:
    """CreateTransfersPacked's requests written on one TransferBatches stream; use from one event loop."""

    def __init__(self, stub: ledger_pb2_grpc.LedgerStub, metadata: Any) -> None:
        self._stub = stub
        self._metadata = metadata
        self._open: _Open | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._writing = asyncio.Lock()
        self.unsupported = False
        """The server has no TransferBatches: requests go as unary calls."""

    async def send(self, request: ledger_pb2.PackedTransfers) -> asyncio.Future[ledger_pb2.PackedTransferResults]:
        """Write `request`; the future of its reply (StreamFailed if the stream ends before it)."""
        reply: asyncio.Future[ledger_pb2.PackedTransferResults] = asyncio.get_running_loop().create_future()
        async with self._writing:  # one writer at a time, and replies are expected in the order written
            stream = self._open or self._opened()
            stream.waiting.append(reply)
            try:
                # Shielded: a caller that stops waiting must not cancel the write, which would cancel the stream.
                await asyncio.shield(stream.call.write(request))
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                # The stream ended: its reader ends every request still waiting on it, this one included,
                # with its status (a write that lost the race with the end says no more than the status).
                self._forget(stream)
        return reply

    def _opened(self) -> _Open:
        stream = _Open(self._stub.TransferBatches(metadata=self._metadata))
        reader = asyncio.get_running_loop().create_task(self._read(stream), name="ledger-client-write-stream")
        stream.reader = reader
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        self._open = stream
        return stream

    def _forget(self, stream: _Open) -> None:
        """The next request opens a new stream."""
        if self._open is stream:
            self._open = None

    def abandon(self, reply: asyncio.Future[ledger_pb2.PackedTransferResults]) -> None:
        """A request's caller stopped waiting for `reply`: the stream it went on is stuck behind it (replies come
        in order), so the next requests go on a new stream, and this one is half-closed: the server answers what
        it took and ends it."""
        stream = self._open
        if stream is not None and reply in stream.waiting:
            self._forget(stream)
            asyncio.get_running_loop().create_task(self._half_close(stream))

    @staticmethod
    async def _half_close(stream: _Open) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await stream.call.done_writing()

    async def _read(self, stream: _Open) -> None:
        waiting = stream.waiting
        failure = StreamFailed(grpc.StatusCode.UNAVAILABLE, ENDED_MESSAGE)
        try:
            async for reply in stream.call:
                future = waiting.popleft()
                if not future.done():  # (a caller that stopped waiting cancelled it)
                    future.set_result(reply)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.unsupported = True
            failure = StreamFailed(exc.code(), exc.details() or ENDED_MESSAGE)
        except asyncio.CancelledError:
            failure = StreamFailed(grpc.StatusCode.CANCELLED, "the client closed its write stream")
            raise
        finally:
            self._forget(stream)
            while waiting:
                future = waiting.popleft()
                if not future.done():
                    future.set_exception(failure)

    async def close(self) -> None:
        stream, self._open = self._open, None
        if stream is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await stream.call.done_writing()
        for reader in list(self._readers):
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
