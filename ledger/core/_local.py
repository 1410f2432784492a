"""The engine process's local socket: packed batches in, packed results out.

Front processes on the same machine (and the fault tests) hand batches to the
single engine process over a Unix socket, with no protobuf on either side.
Every frame starts with a 12-byte header, little-endian:

    request:  payload size u32, request id u32, op u8, 3 bytes zero, payload
    response: payload size u32, request id u32, status u8, 3 bytes zero, payload

Requests on one connection may be pipelined; responses carry the request id
and may come back in any order. Payloads are the engine's packed records
(ledger.records.layout): accounts, transfers or ids in, results or records
out; a status other than OK carries a UTF-8 message instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Final

from ledger.engine import EngineError
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE

from ._ledger import Ledger, LedgerFailed, LedgerOverloaded, LedgerReserved, LedgerUnavailable

logger = logging.getLogger(__name__)

HEADER: Final = struct.Struct("<IIB3x")
PAYLOAD_SIZE_MAX: Final = BATCH_EVENTS_MAX * TRANSFER_SIZE
IN_FLIGHT_PER_CONNECTION_MAX: Final = 256


class Op(enum.IntEnum):
    CREATE_ACCOUNTS = 1
    CREATE_TRANSFERS = 2
    LOOKUP_ACCOUNTS = 3
    LOOKUP_TRANSFERS = 4


class Status(enum.IntEnum):
    OK = 0
    UNAVAILABLE = 1
    RESOURCE_EXHAUSTED = 2
    INVALID_ARGUMENT = 3
    PERMISSION_DENIED = 4
    """A record names a domain ledger (a wallet tenant's): written through the domain only."""


class LocalCallError(Exception):
    """A request the server answered with a status other than OK."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status


def _handlers(ledger: Ledger) -> dict[int, Callable[[bytes], Awaitable[bytes]]]:
    return {
        Op.CREATE_ACCOUNTS: ledger.create_accounts,
        Op.CREATE_TRANSFERS: ledger.create_transfers,
        Op.LOOKUP_ACCOUNTS: ledger.lookup_accounts,
        Op.LOOKUP_TRANSFERS: ledger.lookup_transfers,
    }


async def _answer(ledger_call: Callable[[bytes], Awaitable[bytes]] | None, payload: bytes) -> tuple[Status, bytes]:
    if ledger_call is None:
        return Status.INVALID_ARGUMENT, b"op: unknown operation"
    try:
        return Status.OK, await ledger_call(payload)
    except LedgerOverloaded as exc:
        return Status.RESOURCE_EXHAUSTED, str(exc).encode()
    except (LedgerUnavailable, LedgerFailed) as exc:
        return Status.UNAVAILABLE, str(exc).encode()
    except EngineError as exc:
        return Status.INVALID_ARGUMENT, str(exc).encode()
    except LedgerReserved as exc:
        return Status.PERMISSION_DENIED, str(exc).encode()


async def serve_local(ledger: Ledger, path: str) -> asyncio.Server:
    """Serve `ledger` on a Unix socket at `path` until the returned server is closed."""
    handlers = _handlers(ledger)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        slots = asyncio.Semaphore(IN_FLIGHT_PER_CONNECTION_MAX)
        tasks: set[asyncio.Task[None]] = set()

        async def handle(request_id: int, op: int, payload: bytes) -> None:
            try:
                status, body = await _answer(handlers.get(op), payload)
                writer.write(HEADER.pack(len(body), request_id, status) + body)
                await writer.drain()
            except ConnectionError:
                pass
            finally:
                slots.release()

        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                size, request_id, op = HEADER.unpack(header)
                if size > PAYLOAD_SIZE_MAX:
                    message = f"payload: {size} bytes exceeds {PAYLOAD_SIZE_MAX}".encode()
                    writer.write(HEADER.pack(len(message), request_id, Status.INVALID_ARGUMENT) + message)
                    break
                payload = await reader.readexactly(size)
                await slots.acquire()
                task = asyncio.create_task(handle(request_id, op, payload))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_unix_server(connection, path=path)


class LocalClient:
    """An asyncio client of the local socket. Calls may run concurrently; they share one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._receiver = asyncio.create_task(self._receive())

    @classmethod
    async def connect(cls, path: str) -> LocalClient:
        reader, writer = await asyncio.open_unix_connection(path, limit=2 * PAYLOAD_SIZE_MAX)
        return cls(reader, writer)

    async def _receive(self) -> None:
        failure: BaseException = ConnectionResetError("the ledger closed the connection")
        try:
            while True:
                size, request_id, status = HEADER.unpack(await self._reader.readexactly(HEADER.size))
                body = await self._reader.readexactly(size)
                future = self._waiting.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result((status, body))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            failure = ConnectionResetError(f"the ledger closed the connection: {exc!r}")
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(failure)
            self._waiting.clear()

    async def call(self, op: Op, payload: bytes) -> bytes:
        """The response payload; LocalCallError for a status other than OK; ConnectionError if the link broke."""
        if self._receiver.done():
            raise ConnectionResetError("the ledger closed the connection")
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        request_id = self._next_id
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._writer.write(HEADER.pack(len(payload), request_id, op) + payload)
        await self._writer.drain()
        status, body = await future
        if status != Status.OK:
            raise LocalCallError(Status(status), body.decode(errors="replace"))
        return body

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        self._receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._receiver
