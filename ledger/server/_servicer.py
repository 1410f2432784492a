"""The Ledger gRPC service over the durable ledger (typed messages and packed records).

Request-level failures become gRPC statuses with a message naming the field
or the reason; business outcomes stay per-item result codes inside OK. Every
RPC sees the ledger through `ledger.auth.scoped`: a key bound to some ledgers
sees and moves only those (PERMISSION_DENIED names the record that is not).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any, Final

import grpc

from ledger._streams import drain_requests
from ledger.auth import (
    Permission,
    PermissionDenied,
    check_still_allowed,
    current_grant,
    current_principal,
    scoped,
)
from ledger.core import Ledger, LedgerReserved, LedgerUnavailable
from ledger.engine import EngineError
from ledger.journal import READ_STEP_RECORDS, BalancesPage, Steps, TransfersPage, run_steps
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

from ._convert import ConversionError, account_filter_from_proto, account_filter_to_proto
from ._info import server_info
from ._limits import BATCHES_IN_FLIGHT_MAX, REQUEST_BYTES_MAX, STREAM_IN_FLIGHT_MAX, SUBSCRIBE_MESSAGE_BYTES_MAX
from ._metrics import LedgerMetrics
from ._services import Service
from ._status import MalformedRequest, RefusalLog, call, parse, refuse, refuse_if_late, request_bytes
from ._wire import IMPLEMENTATION as WIRE_IMPLEMENTATION
from ._wire import (
    decode_create_accounts,
    decode_create_transfers,
    decode_lookup_request,
    decode_transfer_stream_request,
    encode_accounts,
    encode_create_accounts_response,
    encode_create_transfers_response,
    encode_transfer_stream_response,
    encode_transfers,
)

SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name

_READ, _WRITE = Permission.LEDGER_READ, Permission.LEDGER_WRITE
PERMISSIONS: Final = {
    "LookupAccounts": _READ,
    "LookupTransfers": _READ,
    "GetAccountTransfers": _READ,
    "GetAccountBalances": _READ,
    "SubscribeTransfers": _READ,
    "GetServerInfo": _READ,  # (it tells a key bound to ledgers nothing of the others)
    "CreateAccounts": _WRITE,
    "CreateTransfers": _WRITE,
    "CreateTransfersPacked": _WRITE,
    "TransferStream": _WRITE,
    "TransferBatches": _WRITE,
}
"""What each method of the Ledger service needs, always on the key's own ledgers; a method added to the
service needs ADMIN until it is listed here."""


NATIVE_REPLIES: Final = WIRE_IMPLEMENTATION == "cython"
"""Transfers are written to reply bytes by the native codec: a whole page costs less than handing it over."""
BALANCES_REPLIED_ON_LOOP_MAX: Final = 64
"""A page of at most this many balances is written on the event loop (well under a millisecond through
protobuf); larger ones take a turn on the read threads."""

SHUTTING_DOWN: Final = "the server is shutting down: this stream takes no more; send what was not answered again"


def _packed_records(request: bytes) -> bytes:
    return parse(ledger_pb2.PackedTransfers, request, "TransferBatches").records


def _packed_results(results: bytes) -> bytes:
    return ledger_pb2.PackedTransferResults(results=results).SerializeToString()


def _reader(context: grpc.aio.ServicerContext) -> Hashable:
    """Whose turn a history read takes among the ledger's reads: its key's tenant; without keys, its connection."""
    principal = current_principal()
    return ("tenant", principal.tenant) if principal is not None else ("peer", context.peer())


def _transfers_reply(page: TransfersPage) -> Steps[bytes]:
    """The reply to a page of transfers as wire bytes (on the read threads, off the event loop): the transfers
    written by the wire codec, then `next` (field 2 after field 1, as protobuf writes the message)."""
    yield  # one step: the native codec writes 8190 transfers in a quarter of a millisecond
    reply = encode_transfers(page.transfers)
    if page.next is not None:
        reply += ledger_pb2.GetAccountTransfersResponse(next=account_filter_to_proto(page.next)).SerializeToString()
    return reply


def _balances_reply(page: BalancesPage) -> Steps[bytes]:
    """The reply to a page of balances as wire bytes, built READ_STEP_RECORDS balances a step and then written
    (on the read threads, off the event loop)."""
    response = ledger_pb2.GetAccountBalancesResponse()
    for index, b in enumerate(page.balances):
        if index and not index % READ_STEP_RECORDS:
            yield
        response.balances.add(
            timestamp=b.timestamp,
            debits_pending=b.debits_pending,
            debits_posted=b.debits_posted,
            credits_pending=b.credits_pending,
            credits_posted=b.credits_posted,
        )
    yield
    if page.next is not None:
        response.next.CopyFrom(account_filter_to_proto(page.next))
    return response.SerializeToString()


class LedgerService(ledger_pb2_grpc.LedgerServicer):
    """Every method takes its request as wire bytes: a call is authenticated (by the interceptor) before a
    byte of its body is read, a body longer than its RPC's largest valid request is refused unread, and one
    that does not parse is INVALID_ARGUMENT naming the RPC, never UNKNOWN."""

    def __init__(self, ledger: Ledger, metrics: LedgerMetrics | None = None) -> None:
        self._ledger = ledger
        self._metrics = metrics
        self._refusals = RefusalLog()

    async def CreateAccounts(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            events = decode_create_accounts(request_bytes(request, "CreateAccounts"))
            results = await scoped(self._ledger).create_accounts(events)
            if self._metrics is not None:
                self._metrics.count_account_results(results)
            return encode_create_accounts_response(results)

        return await call(context, "CreateAccounts", work, self._refusals)

    async def CreateTransfers(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Wire bytes in and out: the request is read natively into packed records, the reply written from them."""

        async def work() -> bytes:
            events = decode_create_transfers(request_bytes(request, "CreateTransfers"))
            results = await scoped(self._ledger).create_transfers(events)
            if self._metrics is not None:
                self._metrics.count_transfer_results(results)
            return encode_create_transfers_response(results)

        return await call(context, "CreateTransfers", work, self._refusals)

    async def CreateTransfersPacked(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(ledger_pb2.PackedTransfers, request, "CreateTransfersPacked")
            results = await scoped(self._ledger).create_transfers(message.records)
            if self._metrics is not None:
                self._metrics.count_transfer_results(results)
            return ledger_pb2.PackedTransferResults(results=results).SerializeToString()

        return await call(context, "CreateTransfersPacked", work, self._refusals)

    async def LookupAccounts(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            ids = decode_lookup_request(request_bytes(request, "LookupAccounts"))
            return encode_accounts(await scoped(self._ledger).lookup_accounts(ids))

        return await call(context, "LookupAccounts", work, self._refusals)

    async def LookupTransfers(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            ids = decode_lookup_request(request_bytes(request, "LookupTransfers"))
            return encode_transfers(await scoped(self._ledger).lookup_transfers(ids))

        return await call(context, "LookupTransfers", work, self._refusals)

    async def GetAccountTransfers(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            reader = _reader(context)
            f = account_filter_from_proto(parse(ledger_pb2.AccountFilter, request, "GetAccountTransfers"))
            page = await scoped(self._ledger).get_account_transfers(f, caller=reader)
            if NATIVE_REPLIES:  # a page of 8190 written in about 0.25 ms: not worth another turn among the reads
                return run_steps(_transfers_reply(page))
            return await self._ledger.read_in_turn(reader, _transfers_reply(page))

        return await call(context, "GetAccountTransfers", work, self._refusals)

    async def GetAccountBalances(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            reader = _reader(context)
            f = account_filter_from_proto(parse(ledger_pb2.AccountFilter, request, "GetAccountBalances"))
            page = await scoped(self._ledger).get_account_balances(f, caller=reader)
            if len(page.balances) <= BALANCES_REPLIED_ON_LOOP_MAX:
                return run_steps(_balances_reply(page))
            return await self._ledger.read_in_turn(reader, _balances_reply(page))

        return await call(context, "GetAccountBalances", work, self._refusals)

    async def TransferStream(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Each transfer is applied as it arrives and answered in order once durable.

        Up to STREAM_IN_FLIGHT_MAX wait for durability together, so a terminal that sends without
        waiting shares group commits instead of paying one commit per message. When the stream's key
        is revoked or expires, nothing more is read or applied; what was applied is answered, then the
        stream ends UNAUTHENTICATED (at shutdown likewise, UNAVAILABLE).
        """
        replies = self._applied_in_order(
            request_iterator, context, "TransferStream", decode_transfer_stream_request,
            encode_transfer_stream_response, STREAM_IN_FLIGHT_MAX,
        )  # fmt: skip
        async for reply in replies:  # (an async generator method, as gRPC and the interceptors expect)
            yield reply

    async def TransferBatches(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Packed batches, each applied as it arrives and answered in order once durable: CreateTransfersPacked
        without the cost of a call per batch (what the client library sends coalesced writes on)."""
        replies = self._applied_in_order(
            request_iterator, context, "TransferBatches", _packed_records, _packed_results, BATCHES_IN_FLIGHT_MAX
        )
        async for reply in replies:
            yield reply

    async def _applied_in_order(
        self,
        request_iterator: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
        method: str,
        decode: Callable[[bytes], bytes],
        encode: Callable[[bytes], bytes],
        in_flight_max: int,
    ) -> AsyncIterator[bytes]:
        """A write stream: each message decoded to packed transfers, applied as it arrives (in stream order),
        and answered in order once durable; up to `in_flight_max` messages wait for durability together."""
        await refuse_if_late(context)
        credit = asyncio.Semaphore(in_flight_max)
        # Bounded by `credit`: the reader holds one per message it put here and not yet answered.
        window: asyncio.Queue[asyncio.Future[tuple[bytes, int]] | None] = asyncio.Queue()
        ledger = scoped(self._ledger)
        count_results = self._metrics.count_transfer_results if self._metrics is not None else None
        requests = aiter(request_iterator)

        async def read() -> None:
            index = 0
            try:
                while True:
                    # The reader waits only here and for the next message, never between applying a
                    # message and putting it in the window: stopped anywhere, it leaves nothing unanswered.
                    await credit.acquire()
                    try:
                        request = await anext(requests)
                    except StopAsyncIteration:
                        return
                    try:
                        packed = decode(request_bytes(request, method))
                        check_still_allowed()
                        # Submissions are applied in the order made, so in stream order.
                        applied = ledger.submit_transfers(packed)
                    except MalformedRequest as exc:
                        raise MalformedRequest(f"message {index}: {exc}") from None
                    except (ConversionError, EngineError) as exc:  # a field, or records that are not whole
                        raise ConversionError(f"message {index}: {exc}") from None
                    except PermissionDenied as exc:
                        raise PermissionDenied(f"message {index}: {exc}") from None
                    except LedgerReserved as exc:
                        raise LedgerReserved(f"message {index}: {exc}") from None
                    window.put_nowait(applied)
                    index += 1
            finally:
                window.put_nowait(None)

        reader = asyncio.create_task(read())
        # A refused key, or the server shutting down, stops the reading at once, even while the caller is idle.
        grant = current_grant()

        def stop_reading(_: asyncio.Future[None]) -> None:
            reader.cancel()

        if grant is not None:
            grant.ended().add_done_callback(stop_reading)
        ending = self._ledger.ending
        ending.add_done_callback(stop_reading)
        try:
            try:
                while (applied := await window.get()) is not None:
                    results, ticket = await applied
                    await ledger.until_durable(ticket)
                    if count_results is not None:
                        count_results(results)
                    yield encode(results)
                    credit.release()
                if reader.cancelled():
                    # Everything taken is answered: now say why no more is taken.
                    check_still_allowed()
                    if ending.done():
                        raise LedgerUnavailable(SHUTTING_DOWN)
                await reader
            except Exception as exc:
                if not reader.done():
                    reader.cancel()
                    await asyncio.wait((reader,))
                await drain_requests(requests)  # the caller's writes complete; it reads the refusal next
                await refuse(context, exc, method, self._refusals)
        finally:
            ending.remove_done_callback(stop_reading)  # the server outlives its streams
            reader.cancel()
            while not window.empty():
                leftover = window.get_nowait()
                if leftover is not None:
                    leftover.cancel()

    async def SubscribeTransfers(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """Committed transfers from `timestamp_min`, a commit at a time (at most 8190 per message), then live.

        The feed ends UNAUTHENTICATED as soon as its key is revoked or expires, even while no commit comes."""
        await refuse_if_late(context)
        try:
            message = parse(ledger_pb2.SubscribeTransfersRequest, request, "SubscribeTransfers")
            feed = scoped(self._ledger).subscribe_transfers(message.timestamp_min)
            async for records in until_refused(feed):
                for start in range(0, len(records), SUBSCRIBE_MESSAGE_BYTES_MAX):
                    yield encode_transfers(records[start : start + SUBSCRIBE_MESSAGE_BYTES_MAX])
        except Exception as exc:
            await refuse(context, exc, "SubscribeTransfers", self._refusals)

    async def GetServerInfo(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            parse(ledger_pb2.GetServerInfoRequest, request, "GetServerInfo")
            return server_info(self._ledger, current_principal()).SerializeToString()

        return await call(context, "GetServerInfo", work, self._refusals)


async def until_refused(items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The items, until the call's key is refused (then AuthFailure), even while waiting for the next one."""
    grant = current_grant()
    if grant is None:
        async for item in items:
            yield item
        return
    ended = grant.ended()
    following: asyncio.Future[Any] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(items))
            await asyncio.wait((following, ended), return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                check_still_allowed()  # the grant ended: the pending read is stopped below
            try:
                yield following.result()
            except StopAsyncIteration:
                return
    finally:
        if following is not None and not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
        await items.aclose()  # type: ignore[attr-defined]


_KINDS: Final[dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def method_handlers(service: LedgerService) -> dict[str, grpc.RpcMethodHandler]:
    """Every method of the Ledger service, taking and giving wire bytes: gRPC decodes nothing itself, so a
    body is read only after the interceptors (auth first) let the call through, and only by the service."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].methods:
        make = _KINDS[method.client_streaming, method.server_streaming]
        behavior: Any = getattr(service, method.name)
        handlers[method.name] = make(behavior)
    assert handlers.keys() == REQUEST_BYTES_MAX.keys(), "every method has a request bound"
    return handlers


def ledger_service(ledger: Ledger, metrics: LedgerMetrics | None = None) -> Service:
    """The Ledger service as the server assembles it."""
    return Service(SERVICE_NAME, lambda server: add_ledger_service(LedgerService(ledger, metrics), server), PERMISSIONS)


def add_ledger_service(service: LedgerService, server: grpc.aio.Server) -> None:
    """Register the Ledger service on `server`, every method with raw request and response bytes."""
    handlers = method_handlers(service)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
