"""The Ledger gRPC service over the durable ledger (typed messages and packed records).

Request-level failures become gRPC statuses with a message naming the field
or the reason; business outcomes stay per-item result codes inside OK. Every
RPC sees the ledger through `ledger.auth.scoped`: a key bound to some ledgers
sees and moves only those (PERMISSION_DENIED names the record that is not).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from typing import Final, NoReturn, TypeVar

import grpc

from ledger.auth import PermissionDenied, current_principal, scoped
from ledger.core import Ledger, LedgerOverloaded, LedgerUnavailable
from ledger.engine import EngineError, pack_ids
from ledger.engine._limits import BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.journal import READ_STEP_RECORDS, BalancesPage, Steps, TransfersPage
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

from ._convert import (
    ConversionError,
    account_filter_from_proto,
    account_filter_to_proto,
    account_results_from_packed,
    accounts_from_packed,
    accounts_to_packed,
    add_transfers,
    transfers_from_packed,
)
from ._metrics import LedgerMetrics
from ._wire import (
    decode_create_transfers,
    decode_transfer_stream_request,
    encode_create_transfers_response,
    encode_transfer_stream_response,
)

SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name
STREAM_IN_FLIGHT_MAX = 256
"""Transfers of one TransferStream applied and waiting for durability at once; past it the stream is not read."""

SUBSCRIBE_MESSAGE_BYTES_MAX = BATCH_EVENTS_MAX * TRANSFER_SIZE
"""Packed transfers per SubscribeTransfers message: a commit larger than a batch spans several messages."""

Result = TypeVar("Result")


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


REFUSALS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], grpc.StatusCode], ...] = (
    ((ConversionError, EngineError, ValueError), grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (LedgerOverloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LedgerUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_of(exc: Exception) -> grpc.StatusCode | None:
    """The status for one of the ledger's refusals; None for anything else (a bug: INTERNAL)."""
    for kinds, code in REFUSALS:
        if isinstance(exc, kinds):
            return code
    return None


async def call(context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[Result]]) -> Result:
    """Run `work`, turning the ledger's refusals into gRPC statuses; nothing starts past the deadline."""
    await refuse_if_late(context)
    try:
        return await work()
    except Exception as exc:
        await refuse(context, exc)


async def refuse_if_late(context: grpc.aio.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        await _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call began")


async def refuse(context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
    """End the call with the status for one of the ledger's refusals; anything else is raised (INTERNAL)."""
    if (code := status_of(exc)) is None:
        raise exc
    await _abort(context, code, str(exc))


def _ids(ids: Iterable[types_pb2.Uint128]) -> bytes:
    values = list(ids)
    if len(values) > BATCH_EVENTS_MAX:
        raise ConversionError(f"ids: {len(values)} items exceeds the limit of {BATCH_EVENTS_MAX} per request")
    return pack_ids([i.lo | i.hi << 64 for i in values])


def _reader(context: grpc.aio.ServicerContext) -> Hashable:
    """Whose turn a history read takes among the ledger's reads: its key's tenant; without keys, its connection."""
    principal = current_principal()
    return ("tenant", principal.tenant) if principal is not None else ("peer", context.peer())


def _transfers_reply(page: TransfersPage) -> Steps[ledger_pb2.GetAccountTransfersResponse]:
    """The reply to a page of transfers, built READ_STEP_RECORDS transfers a step (off the event loop)."""
    response = ledger_pb2.GetAccountTransfersResponse()
    step_bytes = READ_STEP_RECORDS * TRANSFER_SIZE
    for start in range(0, len(page.transfers), step_bytes):
        if start:
            yield
        add_transfers(response.transfers, page.transfers[start : start + step_bytes])
    if page.next is not None:
        response.next.CopyFrom(account_filter_to_proto(page.next))
    return response


def _balances_reply(page: BalancesPage) -> Steps[ledger_pb2.GetAccountBalancesResponse]:
    """The reply to a page of balances, built READ_STEP_RECORDS balances a step (off the event loop)."""
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
    if page.next is not None:
        response.next.CopyFrom(account_filter_to_proto(page.next))
    return response


class LedgerService(ledger_pb2_grpc.LedgerServicer):
    def __init__(self, ledger: Ledger, metrics: LedgerMetrics | None = None) -> None:
        self._ledger = ledger
        self._metrics = metrics

    async def CreateAccounts(
        self, request: ledger_pb2.CreateAccountsRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.CreateAccountsResponse:
        async def work() -> ledger_pb2.CreateAccountsResponse:
            results = await scoped(self._ledger).create_accounts(accounts_to_packed(request.accounts))
            if self._metrics is not None:
                self._metrics.count_account_results(results)
            return ledger_pb2.CreateAccountsResponse(results=account_results_from_packed(results))

        return await call(context, work)

    async def CreateTransfers(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Wire bytes in and out: the request is read natively into packed records, the reply written from them."""

        async def work() -> bytes:
            results = await scoped(self._ledger).create_transfers(decode_create_transfers(request))
            if self._metrics is not None:
                self._metrics.count_transfer_results(results)
            return encode_create_transfers_response(results)

        return await call(context, work)

    async def CreateTransfersPacked(
        self, request: ledger_pb2.PackedTransfers, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.PackedTransferResults:
        async def work() -> ledger_pb2.PackedTransferResults:
            results = await scoped(self._ledger).create_transfers(request.records)
            if self._metrics is not None:
                self._metrics.count_transfer_results(results)
            return ledger_pb2.PackedTransferResults(results=results)

        return await call(context, work)

    async def LookupAccounts(
        self, request: ledger_pb2.LookupRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.LookupAccountsResponse:
        async def work() -> ledger_pb2.LookupAccountsResponse:
            found = await scoped(self._ledger).lookup_accounts(_ids(request.ids))
            return ledger_pb2.LookupAccountsResponse(accounts=accounts_from_packed(found))

        return await call(context, work)

    async def LookupTransfers(
        self, request: ledger_pb2.LookupRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.LookupTransfersResponse:
        async def work() -> ledger_pb2.LookupTransfersResponse:
            found = await scoped(self._ledger).lookup_transfers(_ids(request.ids))
            return ledger_pb2.LookupTransfersResponse(transfers=transfers_from_packed(found))

        return await call(context, work)

    async def GetAccountTransfers(
        self, request: ledger_pb2.AccountFilter, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.GetAccountTransfersResponse:
        async def work() -> ledger_pb2.GetAccountTransfersResponse:
            reader = _reader(context)
            f = account_filter_from_proto(request)
            page = await scoped(self._ledger).get_account_transfers(f, caller=reader)
            return await self._ledger.read_in_turn(reader, _transfers_reply(page))

        return await call(context, work)

    async def GetAccountBalances(
        self, request: ledger_pb2.AccountFilter, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.GetAccountBalancesResponse:
        async def work() -> ledger_pb2.GetAccountBalancesResponse:
            reader = _reader(context)
            f = account_filter_from_proto(request)
            page = await scoped(self._ledger).get_account_balances(f, caller=reader)
            return await self._ledger.read_in_turn(reader, _balances_reply(page))

        return await call(context, work)

    async def TransferStream(
        self,
        request_iterator: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        """Each transfer is applied as it arrives and answered in order once durable.

        Up to STREAM_IN_FLIGHT_MAX wait for durability together, so a terminal that sends without
        waiting shares group commits instead of paying one commit per message.
        """
        await refuse_if_late(context)
        window: asyncio.Queue[asyncio.Future[tuple[bytes, int]] | None] = asyncio.Queue(STREAM_IN_FLIGHT_MAX)
        ledger = scoped(self._ledger)
        count_results = self._metrics.count_transfer_results if self._metrics is not None else None

        async def read() -> None:
            index = 0
            try:
                async for request in request_iterator:
                    try:
                        packed = decode_transfer_stream_request(request)
                        # Submissions are applied in the order made, so in stream order.
                        applied = ledger.submit_transfers(packed)
                    except ConversionError as exc:
                        raise ConversionError(f"message {index}: {exc}") from None
                    except PermissionDenied as exc:
                        raise PermissionDenied(f"message {index}: {exc}") from None
                    await window.put(applied)
                    index += 1
            finally:
                await window.put(None)

        reader = asyncio.create_task(read())
        try:
            try:
                while (applied := await window.get()) is not None:
                    results, ticket = await applied
                    await ledger.until_durable(ticket)
                    if count_results is not None:
                        count_results(results)
                    yield encode_transfer_stream_response(results)
                await reader
            except Exception as exc:
                await refuse(context, exc)
        finally:
            reader.cancel()
            while not window.empty():
                leftover = window.get_nowait()
                if leftover is not None:
                    leftover.cancel()

    async def SubscribeTransfers(
        self, request: ledger_pb2.SubscribeTransfersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ledger_pb2.SubscribeTransfersResponse]:
        """Committed transfers from `timestamp_min`, a commit at a time (at most 8190 per message), then live."""
        try:
            async for records in scoped(self._ledger).subscribe_transfers(request.timestamp_min):
                for start in range(0, len(records), SUBSCRIBE_MESSAGE_BYTES_MAX):
                    chunk = records[start : start + SUBSCRIBE_MESSAGE_BYTES_MAX]
                    yield ledger_pb2.SubscribeTransfersResponse(transfers=transfers_from_packed(chunk))
        except Exception as exc:
            if (code := status_of(exc)) is None:
                raise
            await _abort(context, code, str(exc))


WIRE_METHODS: Final = ("CreateTransfers", "TransferStream")
"""Methods whose handlers take and give wire bytes (read and written by ._wire), not protobuf messages."""


class _Handlers:
    """Stands in for a server to collect the generated code's method handlers."""

    handlers: dict[str, grpc.RpcMethodHandler]

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.handlers = handlers


def add_ledger_service(service: LedgerService, server: grpc.aio.Server) -> None:
    """Register the Ledger service on `server`: the generated handlers, except WIRE_METHODS, which pass bytes."""
    collected = _Handlers()
    ledger_pb2_grpc.add_LedgerServicer_to_server(service, collected)  # type: ignore[no-untyped-call]
    handlers = dict(collected.handlers)
    handlers["CreateTransfers"] = grpc.unary_unary_rpc_method_handler(service.CreateTransfers)
    handlers["TransferStream"] = grpc.stream_stream_rpc_method_handler(service.TransferStream)
    assert set(WIRE_METHODS) <= handlers.keys()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
