"""AsyncClient: the Ledger service from asyncio (grpc.aio), with auto-batching, bulk sends and retries."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger.records.layout import Account, AccountBalance, Buffer, Transfer
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.v1 import ledger_pb2_grpc, wallet_pb2, wallet_pb2_grpc

from ._base import Call, ClientSteps, Shared, Step, Steps, cursor_before, run_async
from ._batching import Batch, Entry
from ._config import ClientConfig
from ._errors import LedgerClosed, LedgerTimeout, LedgerUnreachable, call_error
from ._info import ServerInfo, wait_limit
from ._records import (
    AccountFilter,
    AccountLike,
    AccountOutcome,
    BalancesPage,
    IdLike,
    TransferLike,
    TransferOutcome,
    TransfersPage,
    pack_transfer,
    packed_linked,
)
from ._requests import (
    CREATE_ACCOUNTS,
    CREATE_TRANSFERS,
    LOOKUP_ACCOUNTS,
    LOOKUP_TRANSFERS,
    PAY,
    PAY_BY_CODE,
    PAYMENT_EVENTS,
    Kind,
)
from ._retry import Attempts, backoff_seconds
from ._stream import StreamFailed, WriteStream

Payload = TypeVar("Payload")
Result = TypeVar("Result")
T = TypeVar("T")

CALLS_QUEUED_MAX: Final = 2 * BATCH_EVENTS_MAX
"""Calls of one kind waiting to join a batch; past it callers wait their turn (backpressure)."""
_READY: Final = grpc.ChannelConnectivity.READY
_FAILED: Final = grpc.ChannelConnectivity.TRANSIENT_FAILURE


class _Batcher(Generic[Payload, Result]):
    """Coalesces concurrent calls of one kind into requests of up to 8190 events.

    One runner task per kind takes the first waiting call, waits for a free request slot (at most
    `batch_in_flight_max` requests in flight; calls keep gathering meanwhile), then adds every call
    already waiting. If no request is in flight, the batch goes at once: waiting for more callers would
    only delay these (a lone caller pays one RPC, no more), and whoever comes meanwhile gathers behind
    it. Otherwise, if the batch can take more, it lets the event loop run once more: if that brought
    another call it keeps gathering, up to `batch_window_seconds`; if not, the loop is idle and the batch
    goes. A full batch, or one whose last call leaves a linked chain open, goes at once.
    """

    def __init__(
        self, send: Callable[[Batch[Payload, asyncio.Future[Result]]], Awaitable[list[Result]]], config: ClientConfig
    ) -> None:
        self._send = send
        self._window_seconds = config.batch_window_seconds
        self._queue: asyncio.Queue[Entry[Payload, asyncio.Future[Result]]] = asyncio.Queue(CALLS_QUEUED_MAX)
        self._slots = asyncio.Semaphore(config.batch_in_flight_max)
        self._deadlines: _Deadlines[Payload, Result] = _Deadlines()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._requests_in_flight = 0
        self._closed = False

    def submit(self, payload: Payload, count: int, open_chain: bool, timeout_seconds: float) -> Awaitable[Result]:
        """The call's result to await: its waiter itself when the queue has room (nothing more to wait
        for than the answer), else a coroutine that first waits for room, within the deadline."""
        if self._closed:
            raise LedgerClosed("the client is closed")
        loop = self._loop
        if loop is None:
            # The first call binds the batcher (its runner and queue) to its loop; asking the loop again on
            # every call costs a getpid() system call each on Python 3.11.
            loop = self._loop = asyncio.get_running_loop()
            self._runner = loop.create_task(self._run())
        waiter: asyncio.Future[Result] = loop.create_future()
        entry = Entry(payload, count, open_chain, timeout_seconds, loop.time() + timeout_seconds, waiter)
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            return self._submit_when_room(entry)
        self._deadlines.add(entry)
        return waiter

    async def _submit_when_room(self, entry: Entry[Payload, asyncio.Future[Result]]) -> Result:
        """Backpressure: wait for room in the queue, then for the answer, both within the deadline."""
        try:
            async with asyncio.timeout_at(entry.deadline):
                await self._queue.put(entry)
        except TimeoutError:
            entry.waiter.cancel()
            raise entry.timeout() from None
        if self._closed:  # the room was made by closing: no runner is left to send it
            entry.waiter.cancel()
            raise LedgerClosed("the client was closed before the call was sent; nothing of it was sent")
        self._deadlines.add(entry)
        return await entry.waiter

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pending: deque[Entry[Payload, asyncio.Future[Result]]] = deque()
        batch: Batch[Payload, asyncio.Future[Result]] | None = None
        try:
            while True:
                if not pending:
                    pending.append(await self._queue.get())
                await self._slots.acquire()
                self._drain(pending)
                first = pending.popleft()
                if first.waiter.done():
                    self._slots.release()
                    continue
                batch = Batch(first)
                window_end = loop.time() + self._window_seconds
                while True:
                    batch.extend(pending, _gone)
                    if batch.closed or not self._requests_in_flight or loop.time() >= window_end:
                        break
                    await asyncio.sleep(0)  # one more turn of the event loop for callers still on their way
                    if self._queue.empty():
                        break
                    self._drain(pending)
                self._requests_in_flight += 1
                task = asyncio.create_task(self._flush(batch))
                batch = None
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        finally:
            closed = LedgerClosed("the client was closed before the call was sent; nothing of it was sent")
            self._drain(pending)
            for entry in [*(batch.entries if batch is not None else ()), *pending]:
                if not entry.waiter.done():
                    entry.waiter.set_exception(closed)

    def _drain(self, pending: deque[Entry[Payload, asyncio.Future[Result]]]) -> None:
        take = self._queue.get_nowait
        for _ in range(self._queue.qsize()):
            pending.append(take())

    async def _flush(self, batch: Batch[Payload, asyncio.Future[Result]]) -> None:
        try:
            results = await self._send(batch)
        except BaseException as exc:
            for entry in batch.entries:
                if not entry.waiter.done():  # a request out of time: each caller is told its own timeout
                    entry.waiter.set_exception(entry.timeout() if isinstance(exc, LedgerTimeout) else exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for entry, result in zip(batch.entries, results, strict=True):
                if not entry.waiter.done():
                    entry.waiter.set_result(result)
        finally:
            self._requests_in_flight -= 1
            self._slots.release()
            self._deadlines.discard_ended()

    async def close(self) -> None:
        """Stop taking calls; requests in flight finish, calls not yet sent fail with LedgerClosed."""
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        await asyncio.gather(*self._sending, return_exceptions=True)
        self._deadlines.close()


DEADLINES_COMPACTED_MIN: Final = 1024
"""_Deadlines compacts its calls when they pass this many, or twice as many as were left by the last compaction."""


class _Deadlines(Generic[Payload, Result]):
    """The deadlines of one batcher's calls, watched by a single timer armed at the earliest.

    A timer per call (call_at, then cancel) costs more than all the rest of a call's bookkeeping. Calls
    with one timeout arrive in deadline order, so most go to the back of a deque; a call whose deadline
    is earlier than the last one's (another timeout, or a wait for room in the queue) goes into a heap.
    Calls that ended are dropped from the front of both as batches are answered; ones behind a call that
    is still waiting are dropped when the whole set has doubled since it was last compacted.
    """

    def __init__(self) -> None:
        self._in_order: deque[Entry[Payload, asyncio.Future[Result]]] = deque()
        self._out_of_order: list[tuple[float, int, Entry[Payload, asyncio.Future[Result]]]] = []
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._compact_at_count = DEADLINES_COMPACTED_MIN

    def __len__(self) -> int:
        return len(self._in_order) + len(self._out_of_order)

    def add(self, entry: Entry[Payload, asyncio.Future[Result]]) -> None:
        in_order = self._in_order
        if not in_order or entry.deadline >= in_order[-1].deadline:
            in_order.append(entry)
        else:
            heapq.heappush(self._out_of_order, (entry.deadline, next(self._sequence), entry))
        if entry.deadline < self._timer_at:
            self._arm(entry.deadline)
        if len(in_order) + len(self._out_of_order) > self._compact_at_count:
            self._compact()

    def discard_ended(self) -> None:
        """Drop the calls at the front that have ended; no timer when no call is left."""
        in_order, out_of_order = self._in_order, self._out_of_order
        while in_order and in_order[0].waiter.done():
            in_order.popleft()
        while out_of_order and out_of_order[0][2].waiter.done():
            heapq.heappop(out_of_order)
        if not in_order and not out_of_order and self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._in_order.clear()
        self._out_of_order.clear()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._expire)
        self._timer_at = when

    def _expire(self) -> None:
        # A loop runs a timer that is due within its clock's resolution: what it was armed for is due.
        now = max(asyncio.get_running_loop().time(), self._timer_at)
        self._timer, self._timer_at = None, math.inf
        in_order, out_of_order = self._in_order, self._out_of_order
        while in_order and (in_order[0].waiter.done() or in_order[0].deadline <= now):
            _time_out(in_order.popleft())
        while out_of_order and (out_of_order[0][2].waiter.done() or out_of_order[0][0] <= now):
            _time_out(heapq.heappop(out_of_order)[2])
        earliest = min(in_order[0].deadline if in_order else math.inf, out_of_order[0][0] if out_of_order else math.inf)
        if earliest < math.inf:
            self._arm(earliest)

    def _compact(self) -> None:
        self._in_order = deque(entry for entry in self._in_order if not entry.waiter.done())
        self._out_of_order = [item for item in self._out_of_order if not item[2].waiter.done()]
        heapq.heapify(self._out_of_order)
        self._compact_at_count = max(DEADLINES_COMPACTED_MIN, 2 * len(self))


def _task_cancelling() -> bool:
    """Whether the running task itself is being cancelled (rather than a future it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _time_out(entry: Entry[Any, asyncio.Future[Any]]) -> None:
    if not entry.waiter.done():
        entry.waiter.set_exception(entry.timeout())


def _gone(waiter: asyncio.Future[Any]) -> bool:
    return waiter.done()


class AsyncClient(ClientSteps):
    """The Ledger service over one grpc.aio channel. Create it inside a running event loop; close it after.

    Calls of up to 8190 events from concurrent tasks are coalesced into shared requests (auto-batching);
    longer ones are cut into requests of 8190 (never inside a linked chain) sent a few at a time. Every
    call retries UNAVAILABLE and RESOURCE_EXHAUSTED with the same ids until its deadline (`timeout`
    seconds, default `config.timeout_seconds`), then raises LedgerTimeout: the outcome is unknown and
    retrying with the same ids is safe. Other refusals raise a LedgerCallError subclass at once.
    """

    def __init__(
        self, config: ClientConfig | None = None, *, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()
    ) -> None:
        self.config = config or ClientConfig.from_env()
        credentials = self.config.credentials()
        options = self.config.channel_options()
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(
                self.config.server, options=options, interceptors=list(interceptors) or None
            )
        else:
            self._channel = grpc.aio.secure_channel(
                self.config.server, credentials, options=options, interceptors=list(interceptors) or None
            )
        self._owns_channel = True
        self._on_channel()

    def with_api_key(self, api_key: str) -> AsyncClient:
        """A client for another API key on this client's channel (one connection, however many keys): calls
        carry that key, and are coalesced with those of the same key only. Close it before this one; closing
        it leaves the channel open."""
        other = object.__new__(type(self))
        other.config = replace(self.config, api_key=api_key)
        other._channel = self._channel
        other._owns_channel = False
        other._on_channel()
        return other

    def _on_channel(self) -> None:
        self._stub = ledger_pb2_grpc.LedgerStub(self._channel)  # type: ignore[no-untyped-call]
        self._wallet_stub = wallet_pb2_grpc.WalletStub(self._channel)  # type: ignore[no-untyped-call]
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = self.config.metadata or None
        self._rng = random.Random()
        self._write_stream = WriteStream(self._stub, self._metadata) if self.config.write_stream else None
        kinds = (CREATE_TRANSFERS, CREATE_ACCOUNTS, LOOKUP_ACCOUNTS, LOOKUP_TRANSFERS, PAY, PAY_BY_CODE)
        self._batchers: dict[str, _Batcher[Any, Any]] = {kind.rpc: self._batcher(kind) for kind in kinds}
        self._transfers_batcher: _Batcher[bytes, list[TransferOutcome]] = self._batchers[CREATE_TRANSFERS.rpc]
        self._pay_batcher: _Batcher[wallet_pb2.PayRequest, wallet_pb2.PayReply] = self._batchers[PAY.rpc]
        self._code_batcher: _Batcher[wallet_pb2.PayByCodeRequest, wallet_pb2.PayReply] = self._batchers[PAY_BY_CODE.rpc]

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        if self._write_stream is not None:
            await self._write_stream.close()
        if self._owns_channel:
            await self._channel.close()

    # The server.

    async def wait_for_server(self, timeout: float | None = None) -> None:
        """Connect now; LedgerUnreachable if no connection is made within `timeout` seconds (default: the
        call timeout) or the attempt fails (nothing listens, the name does not resolve, TLS does not match).

        Calls need not do this: they connect by themselves and retry until their deadline. It is for a
        caller that wants to know at once that nobody answers, before sending anything.
        """
        seconds = self._timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        state, since = self._channel.get_state(try_to_connect=True), loop.time()
        while state is not _READY and (left := wait_limit(state, since, deadline) - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._channel.wait_for_state_change(state), left)
            except TimeoutError:
                break
            changed = self._channel.get_state(try_to_connect=True)
            if changed is not state:
                state, since = changed, loop.time()
        if state is not _READY:
            raise LedgerUnreachable(
                self.config.server, seconds, failed=state is not grpc.ChannelConnectivity.CONNECTING
            )

    async def server_info(self, *, timeout: float | None = None) -> ServerInfo:
        """What the server is and who this client is to it (GetServerInfo; any valid key may ask)."""
        return await self._run(self._server_info(timeout))

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health for `service` ("": the whole server) by the standard health check, one
        attempt: SERVING, NOT_SERVING (e.g. shutting down) or SERVICE_UNKNOWN. Needs no key."""
        seconds = self._timeout(timeout)
        try:
            response = await self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=seconds)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise LedgerTimeout(seconds, 1) from None
            raise call_error(exc.code(), exc.details() or "") from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    # Writes.

    async def create_transfers(
        self, transfers: Sequence[TransferLike], *, timeout: float | None = None, in_flight: int | None = None
    ) -> list[TransferOutcome]:
        """Apply transfers in order; one outcome each. Every field is checked before anything is sent.

        Up to 8190 share a request with concurrent calls; more go as create_transfers_packed sends them
        (see there for `in_flight`, and for order across requests).
        """
        return await self._run(self._create_transfers(transfers, timeout, in_flight))

    async def create_transfer(self, transfer: TransferLike, *, timeout: float | None = None) -> TransferOutcome:
        """Apply one transfer, in a request shared with concurrent calls."""
        # create_transfers([transfer]) without its steps for many: the call most often made, and made by many.
        record = pack_transfer(transfer)
        outcomes = await self._transfers_batcher.submit(record, 1, packed_linked(record, 0), self._timeout(timeout))
        return outcomes[0]

    async def create_accounts(
        self, accounts: Sequence[AccountLike], *, timeout: float | None = None, in_flight: int | None = None
    ) -> list[AccountOutcome]:
        """Create accounts in order; one outcome each. Every field is checked before anything is sent.

        More than 8190 are cut into requests between chains, `in_flight` at once (default
        `bulk_in_flight_max`; requests in flight together may be applied in either order).
        """
        return await self._run(self._create_accounts(accounts, timeout, in_flight))

    async def create_account(self, account: AccountLike, *, timeout: float | None = None) -> AccountOutcome:
        return (await self.create_accounts([account], timeout=timeout))[0]

    async def create_transfers_packed(
        self, records: Buffer, *, timeout: float | None = None, in_flight: int | None = None
    ) -> bytes:
        """Packed 128-byte transfer records in, packed 24-byte results out (ledger/records/layout.py).

        Up to 8190 records go in one CreateTransfersPacked request; more are cut into requests of 8190
        (never inside a linked chain), `in_flight` at once (default `bulk_in_flight_max`), with results in
        order. Requests in flight together are independent: the ledger may apply them in either order. If
        later records depend on earlier ones in another request (a top-up, then a payment from it; a hold,
        then its capture), pass in_flight=1: each request then waits for the one before it. The deadline
        (`timeout`) applies to each request.
        """
        return await self._run(self._create_transfers_packed(records, timeout, in_flight))

    # Reads.

    async def lookup_accounts(self, ids: Sequence[IdLike], *, timeout: float | None = None) -> list[Account]:
        """The accounts found, in the order asked; ids not found are left out."""
        return await self._run(self._lookup_accounts(ids, timeout))

    async def lookup_account(self, account_id: IdLike, *, timeout: float | None = None) -> Account | None:
        found = await self.lookup_accounts([account_id], timeout=timeout)
        return found[0] if found else None

    async def lookup_transfers(self, ids: Sequence[IdLike], *, timeout: float | None = None) -> list[Transfer]:
        """The transfers found, in the order asked; ids not found are left out."""
        return await self._run(self._lookup_transfers(ids, timeout))

    async def lookup_transfer(self, transfer_id: IdLike, *, timeout: float | None = None) -> Transfer | None:
        found = await self.lookup_transfers([transfer_id], timeout=timeout)
        return found[0] if found else None

    async def get_account_transfers(self, filter: AccountFilter, *, timeout: float | None = None) -> TransfersPage:
        """One page of an account's transfers; `page.next` is the filter for the next page (None at the end)."""
        return await self._run(self._account_transfers(filter, timeout))

    async def get_account_balances(self, filter: AccountFilter, *, timeout: float | None = None) -> BalancesPage:
        """One page of the balances of an account with the HISTORY flag after each of its transfers."""
        return await self._run(self._account_balances(filter, timeout))

    async def iter_account_transfers(
        self, filter: AccountFilter, *, timeout: float | None = None
    ) -> AsyncIterator[Transfer]:
        """Every transfer the filter selects, following the pages (each page's request has its own deadline)."""
        following: AccountFilter | None = filter
        while following is not None:
            page = await self.get_account_transfers(following, timeout=timeout)
            for transfer in page.transfers:
                yield transfer
            following = page.next

    async def iter_account_balances(
        self, filter: AccountFilter, *, timeout: float | None = None
    ) -> AsyncIterator[AccountBalance]:
        following: AccountFilter | None = filter
        while following is not None:
            page = await self.get_account_balances(following, timeout=timeout)
            for balance in page.balances:
                yield balance
            following = page.next

    # The Wallet service. Requests and replies are the wallet_pb2 messages; a reply's `result` says how the
    # operation ended (WALLET_RESULT_OK or the rule it broke, with `message` naming the field). Calls are
    # retried like the ledger's until their deadline: every write carries its idempotency key, so a retry
    # is answered with the first reply.

    async def pay(self, request: wallet_pb2.PayRequest, *, timeout: float | None = None) -> wallet_pb2.PayReply:
        """One payment; concurrent payments share PayBatch calls (auto-batching)."""
        # _pay's one step, taken directly: like create_transfer, the call a fleet of terminals makes most.
        reply: wallet_pb2.PayReply = await self._pay_batcher.submit(
            request, PAYMENT_EVENTS, False, self._timeout(timeout)
        )
        return reply

    async def create_tenant(
        self, request: wallet_pb2.CreateTenantRequest, *, timeout: float | None = None
    ) -> wallet_pb2.TenantReply:
        """Create a tenant with its ledger and system accounts (idempotent by tenant id)."""
        reply: wallet_pb2.TenantReply = await self._run(self._wallet("CreateTenant", request, timeout))
        return reply

    async def configure_tenant(
        self, request: wallet_pb2.ConfigureTenantRequest, *, timeout: float | None = None
    ) -> wallet_pb2.TenantReply:
        """Replace a tenant's settings."""
        reply: wallet_pb2.TenantReply = await self._run(self._wallet("ConfigureTenant", request, timeout))
        return reply

    async def get_tenant(
        self, request: wallet_pb2.GetTenantRequest, *, timeout: float | None = None
    ) -> wallet_pb2.TenantReply:
        reply: wallet_pb2.TenantReply = await self._run(self._wallet("GetTenant", request, timeout))
        return reply

    async def open_wallet(
        self, request: wallet_pb2.WalletRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BalanceReply:
        """Open a customer's wallet (idempotent); its balance."""
        reply: wallet_pb2.BalanceReply = await self._run(self._wallet("OpenWallet", request, timeout))
        return reply

    async def get_balance(
        self, request: wallet_pb2.WalletRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BalanceReply:
        reply: wallet_pb2.BalanceReply = await self._run(self._wallet("GetBalance", request, timeout))
        return reply

    async def set_wallet_status(
        self, request: wallet_pb2.SetWalletStatusRequest, *, timeout: float | None = None
    ) -> wallet_pb2.WalletStatusReply:
        """Freeze, unfreeze or close a wallet."""
        reply: wallet_pb2.WalletStatusReply = await self._run(self._wallet("SetWalletStatus", request, timeout))
        return reply

    async def top_up(self, request: wallet_pb2.TopUpRequest, *, timeout: float | None = None) -> wallet_pb2.TopUpReply:
        reply: wallet_pb2.TopUpReply = await self._run(self._wallet("TopUp", request, timeout))
        return reply

    async def pay_batch(
        self, request: wallet_pb2.PayBatchRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayBatchReply:
        """Up to 512 payments in one call, a reply each in order."""
        reply: wallet_pb2.PayBatchReply = await self._run(self._wallet("PayBatch", request, timeout))
        return reply

    async def refund(
        self, request: wallet_pb2.RefundRequest, *, timeout: float | None = None
    ) -> wallet_pb2.RefundReply:
        reply: wallet_pb2.RefundReply = await self._run(self._wallet("Refund", request, timeout))
        return reply

    async def authorize_hold(
        self, request: wallet_pb2.AuthorizeHoldRequest, *, timeout: float | None = None
    ) -> wallet_pb2.HoldReply:
        reply: wallet_pb2.HoldReply = await self._run(self._wallet("AuthorizeHold", request, timeout))
        return reply

    async def capture_hold(
        self, request: wallet_pb2.CaptureHoldRequest, *, timeout: float | None = None
    ) -> wallet_pb2.HoldReply:
        reply: wallet_pb2.HoldReply = await self._run(self._wallet("CaptureHold", request, timeout))
        return reply

    async def void_hold(
        self, request: wallet_pb2.VoidHoldRequest, *, timeout: float | None = None
    ) -> wallet_pb2.HoldReply:
        reply: wallet_pb2.HoldReply = await self._run(self._wallet("VoidHold", request, timeout))
        return reply

    async def book(self, request: wallet_pb2.BookRequest, *, timeout: float | None = None) -> wallet_pb2.BookingReply:
        """An operator's credit or debit with a reason."""
        reply: wallet_pb2.BookingReply = await self._run(self._wallet("Book", request, timeout))
        return reply

    async def reverse_booking(
        self, request: wallet_pb2.ReverseBookingRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BookingReply:
        """Reverse a booking (at most once)."""
        reply: wallet_pb2.BookingReply = await self._run(self._wallet("ReverseBooking", request, timeout))
        return reply

    async def list_bookings(
        self, request: wallet_pb2.ListBookingsRequest, *, timeout: float | None = None
    ) -> wallet_pb2.ListBookingsReply:
        """The audit trail of bookings, a page at a time."""
        reply: wallet_pb2.ListBookingsReply = await self._run(self._wallet("ListBookings", request, timeout))
        return reply

    async def issue_voucher(
        self, request: wallet_pb2.IssueVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Issue a voucher; its code is in the reply."""
        reply: wallet_pb2.VoucherReply = await self._run(self._wallet("IssueVoucher", request, timeout))
        return reply

    async def get_voucher(
        self, request: wallet_pb2.VoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """What is left on a voucher, by its code."""
        reply: wallet_pb2.VoucherReply = await self._run(self._wallet("GetVoucher", request, timeout))
        return reply

    async def redeem_voucher(
        self, request: wallet_pb2.RedeemVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Move what is left on a voucher into a wallet."""
        reply: wallet_pb2.VoucherReply = await self._run(self._wallet("RedeemVoucher", request, timeout))
        return reply

    async def spend_voucher(
        self, request: wallet_pb2.SpendVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Pay an order from a voucher directly."""
        reply: wallet_pb2.VoucherReply = await self._run(self._wallet("SpendVoucher", request, timeout))
        return reply

    async def deactivate_voucher(
        self, request: wallet_pb2.DeactivateVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Take a voucher out of use."""
        reply: wallet_pb2.VoucherReply = await self._run(self._wallet("DeactivateVoucher", request, timeout))
        return reply

    async def grant_run(
        self, request: wallet_pb2.GrantRunRequest, *, timeout: float | None = None
    ) -> wallet_pb2.GrantRunReply:
        """Credit many wallets in one run (up to 10,000 grants per call)."""
        reply: wallet_pb2.GrantRunReply = await self._run(self._wallet("GrantRun", request, timeout))
        return reply

    async def subscribe_events(
        self, request: wallet_pb2.SubscribeEventsRequest
    ) -> AsyncIterator[wallet_pb2.WalletEvent]:
        """The tenant's events from `request.after`, then live, until the caller stops. A broken connection is
        resumed from the last event whose record was received whole (UNAVAILABLE retried with backoff), so
        an event may come twice (same id), never not at all; other refusals raise."""
        following = wallet_pb2.SubscribeEventsRequest()
        following.CopyFrom(request)
        attempts = 0
        current = ""
        while True:
            call = self._wallet_stub.SubscribeEvents(following, metadata=self._metadata)
            try:
                async for event in call:
                    attempts = 0
                    if following.from_now:  # resume from just before this event's record, not from a later now
                        following.after, following.from_now = cursor_before(event.cursor), False
                    if event.cursor != current:
                        if current:
                            following.after, following.from_now = current, False
                        current = event.cursor
                    yield event
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise call_error(exc.code(), exc.details() or "") from None
            finally:
                call.cancel()
            attempts += 1
            current = ""
            await asyncio.sleep(backoff_seconds(self.config, attempts, self._rng))

    async def enroll_device(
        self, request: wallet_pb2.EnrollDeviceRequest, *, timeout: float | None = None
    ) -> wallet_pb2.DeviceReply:
        """Enrol a customer's phone to show payment codes (its seed and the tenant's code key are in the answer)."""
        reply: wallet_pb2.DeviceReply = await self._run(self._wallet("EnrollDevice", request, timeout))
        return reply

    async def list_devices(
        self, request: wallet_pb2.ListDevicesRequest, *, timeout: float | None = None
    ) -> wallet_pb2.ListDevicesReply:
        """The devices enrolled for a customer's wallet."""
        reply: wallet_pb2.ListDevicesReply = await self._run(self._wallet("ListDevices", request, timeout))
        return reply

    async def revoke_device(
        self, request: wallet_pb2.RevokeDeviceRequest, *, timeout: float | None = None
    ) -> wallet_pb2.DeviceReply:
        """Take a device out of use: its codes are refused from now on."""
        reply: wallet_pb2.DeviceReply = await self._run(self._wallet("RevokeDevice", request, timeout))
        return reply

    async def pay_by_code(
        self, request: wallet_pb2.PayByCodeRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayReply:
        """Pay by the code a customer's phone shows (terminal and transaction: the idempotency key); concurrent
        payments by code share PayByCodeBatch calls (auto-batching), but one that carries a PIN is a PayByCode
        call of its own: the PIN's check (Argon2, some 20 ms) would hold up every payment it shared a call with."""
        if request.pin:
            return await self._run(self._pay_by_code(request, timeout))
        # _pay_by_code's shared step, taken directly, as pay takes its own.
        reply: wallet_pb2.PayReply = await self._code_batcher.submit(
            request, PAYMENT_EVENTS, False, self._timeout(timeout)
        )
        return reply

    async def pay_by_code_batch(
        self, request: wallet_pb2.PayByCodeBatchRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayByCodeBatchReply:
        """Up to 512 payments by code in one call, a reply each in order."""
        reply: wallet_pb2.PayByCodeBatchReply = await self._run(self._wallet("PayByCodeBatch", request, timeout))
        return reply

    async def set_pin(self, request: wallet_pb2.SetPinRequest, *, timeout: float | None = None) -> wallet_pb2.PinReply:
        """Set or change a wallet's payment PIN."""
        reply: wallet_pb2.PinReply = await self._run(self._wallet("SetPin", request, timeout))
        return reply

    async def get_pin_status(
        self, request: wallet_pb2.WalletRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PinReply:
        """Whether a wallet has a PIN, its wrong tries and any lock."""
        reply: wallet_pb2.PinReply = await self._run(self._wallet("GetPinStatus", request, timeout))
        return reply

    async def unlock_pin(
        self, request: wallet_pb2.UnlockPinRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PinReply:
        """An operator lifts the lock wrong PINs put on a wallet's code payments."""
        reply: wallet_pb2.PinReply = await self._run(self._wallet("UnlockPin", request, timeout))
        return reply

    async def get_code_payment(
        self, request: wallet_pb2.CodePaymentRequest, *, timeout: float | None = None
    ) -> wallet_pb2.CodePaymentReply:
        """What became of a terminal's transaction."""
        reply: wallet_pb2.CodePaymentReply = await self._run(self._wallet("GetCodePayment", request, timeout))
        return reply

    async def cancel_code_payment(
        self, request: wallet_pb2.CancelCodePaymentRequest, *, timeout: float | None = None
    ) -> wallet_pb2.CodePaymentReply:
        """Cancel a terminal's transaction: refunded if it paid, never payable from now on."""
        reply: wallet_pb2.CodePaymentReply = await self._run(self._wallet("CancelCodePayment", request, timeout))
        return reply

    async def create_payment_request(
        self, request: wallet_pb2.CreatePaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PaymentRequestReply:
        """A terminal asks for an amount, shown as a QR code one customer confirms."""
        reply: wallet_pb2.PaymentRequestReply = await self._run(self._wallet("CreatePaymentRequest", request, timeout))
        return reply

    async def get_payment_request(
        self, request: wallet_pb2.PaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PaymentRequestReply:
        """A payment request and its status."""
        reply: wallet_pb2.PaymentRequestReply = await self._run(self._wallet("GetPaymentRequest", request, timeout))
        return reply

    async def confirm_payment_request(
        self, request: wallet_pb2.ConfirmPaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayReply:
        """A customer pays a terminal's request from their wallet."""
        reply: wallet_pb2.PayReply = await self._run(self._wallet("ConfirmPaymentRequest", request, timeout))
        return reply

    async def cancel_payment_request(
        self, request: wallet_pb2.PaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PaymentRequestReply:
        """The terminal withdraws an open request."""
        reply: wallet_pb2.PaymentRequestReply = await self._run(self._wallet("CancelPaymentRequest", request, timeout))
        return reply

    async def create_pay_link(
        self, request: wallet_pb2.CreatePayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkReply:
        """A pay link for a customer's phone or e-mail: its URL, token and status."""
        reply: wallet_pb2.PayLinkReply = await self._run(self._wallet("CreatePayLink", request, timeout))
        return reply

    async def get_pay_link(
        self, request: wallet_pb2.PayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkReply:
        """A pay link and its status, by tenant and id or by its URL's token."""
        reply: wallet_pb2.PayLinkReply = await self._run(self._wallet("GetPayLink", request, timeout))
        return reply

    async def cancel_pay_link(
        self, request: wallet_pb2.PayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkReply:
        """No one can pay the link from now on."""
        reply: wallet_pb2.PayLinkReply = await self._run(self._wallet("CancelPayLink", request, timeout))
        return reply

    async def start_pay_link_payment(
        self, request: wallet_pb2.StartPayLinkPaymentRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkChallengeReply:
        """A customer's wallet and PIN for a link: a one-time code goes to the link's contact."""
        reply: wallet_pb2.PayLinkChallengeReply = await self._run(self._wallet("StartPayLinkPayment", request, timeout))
        return reply

    async def pay_pay_link(
        self, request: wallet_pb2.PayPayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayReply:
        """The one-time code answered: the link paid from the customer's wallet."""
        reply: wallet_pb2.PayReply = await self._run(self._wallet("PayPayLink", request, timeout))
        return reply

    async def authorize_hold_by_code(
        self, request: wallet_pb2.AuthorizeHoldByCodeRequest, *, timeout: float | None = None
    ) -> wallet_pb2.HoldReply:
        """A hold on the wallet whose phone shows the code, captured later with capture_hold."""
        reply: wallet_pb2.HoldReply = await self._run(self._wallet("AuthorizeHoldByCode", request, timeout))
        return reply

    async def get_caller(
        self, request: wallet_pb2.GetCallerRequest, *, timeout: float | None = None
    ) -> wallet_pb2.CallerReply:
        """The caller's key as the Wallet service sees it for `request.tenant`: its role and permissions."""
        reply: wallet_pb2.CallerReply = await self._run(self._wallet("GetCaller", request, timeout))
        return reply

    async def get_event_cursor(
        self, request: wallet_pb2.GetEventCursorRequest, *, timeout: float | None = None
    ) -> wallet_pb2.EventCursorReply:
        """The event feed's position now: subscribe after it for exactly the events committed later."""
        reply: wallet_pb2.EventCursorReply = await self._run(self._wallet("GetEventCursor", request, timeout))
        return reply

    async def empty_wallet(
        self, request: wallet_pb2.EmptyWalletRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BookingReply:
        """Pay out or write off all a wallet holds, so that it may close."""
        reply: wallet_pb2.BookingReply = await self._run(self._wallet("EmptyWallet", request, timeout))
        return reply

    # Statements and settlement.

    async def get_statement(
        self, request: wallet_pb2.GetStatementRequest, *, timeout: float | None = None
    ) -> wallet_pb2.StatementReply:
        """A page of a wallet's statement: a row per movement, oldest first; pass `next_cursor` as
        `starting_after` for the next while `has_more`."""
        reply: wallet_pb2.StatementReply = await self._run(self._wallet("GetStatement", request, timeout))
        return reply

    async def get_settlement(
        self, request: wallet_pb2.GetSettlementRequest, *, timeout: float | None = None
    ) -> wallet_pb2.SettlementReply:
        """A tenant's settlement report for a day or a range (with `csv`, as CSV text too)."""
        reply: wallet_pb2.SettlementReply = await self._run(self._wallet("GetSettlement", request, timeout))
        return reply

    # Sending.

    async def _run(self, steps: Steps[T]) -> T:
        return await run_async(steps, self._perform)

    async def _perform(self, step: Step) -> Any:
        """The I/O a call's step names, awaited."""
        if isinstance(step, Shared):
            return await self._batchers[step.kind.rpc].submit(
                step.payload, step.count, step.open_chain, step.timeout_seconds
            )
        if isinstance(step, Call):
            return await self._call(step.rpc, step.request, step.timeout_seconds)
        requests = step

        async def send(payload: Any) -> Any:
            response = await self._call(requests.rpc, requests.request(payload), requests.timeout_seconds)
            return requests.answer(payload, response)

        return await self._pipelined(send, requests.payloads, requests.in_flight)

    async def _streamed(self, request: Any, remaining: float, attempts: Attempts) -> Any:
        """One attempt on the write stream: the reply, or StreamFailed; the call's deadline bounds the wait.

        At the deadline the reply's future is cancelled (the stream's reader passes over a cancelled one, and
        the stream goes on): one timer, cheaper than wait_for and shield on the path of every write."""
        assert self._write_stream is not None
        reply = await self._write_stream.send(request)
        expiry = asyncio.get_running_loop().call_later(remaining, reply.cancel)
        try:
            return await reply
        except asyncio.CancelledError:
            self._write_stream.abandon(reply)
            if not _task_cancelling():  # the timer cancelled the reply: the deadline passed
                raise attempts.timeout() from None
            raise
        finally:
            expiry.cancel()

    def _batcher(self, kind: Kind[Payload, Result]) -> _Batcher[Payload, Result]:
        async def send(batch: Batch[Payload, asyncio.Future[Result]]) -> list[Result]:
            payloads = [entry.payload for entry in batch.entries]
            attempts = Attempts(batch.deadline - asyncio.get_running_loop().time())
            for entry in batch.entries:
                entry.attempts = attempts
            return kind.answer(payloads, await self._call(kind.rpc, kind.request(payloads), attempts))

        return _Batcher(send, self.config)

    async def _pipelined(
        self, send: Callable[[Payload], Coroutine[Any, Any, Result]], payloads: list[Payload], bound: int
    ) -> list[Result]:
        """send(payload) for each, at most `bound` at once, results in order; the first error cancels the rest
        and is raised."""
        window: deque[asyncio.Task[Result]] = deque()
        results: list[Result] = []
        try:
            for payload in payloads:
                if len(window) >= bound:
                    results.append(await window.popleft())
                window.append(asyncio.create_task(send(payload)))
            while window:
                results.append(await window.popleft())
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, return_exceptions=True)
        return results

    async def _call(self, rpc: str, request: Any, timeout: float | Attempts) -> Any:
        """One call with retries until the deadline (each attempt's gRPC deadline is the time left): a unary
        call, or for packed transfers a message on the write stream (config.write_stream)."""
        loop = asyncio.get_running_loop()
        attempts = timeout if isinstance(timeout, Attempts) else Attempts(timeout)
        deadline = loop.time() + attempts.timeout_seconds
        method = self._method(rpc)
        streamed = rpc == CREATE_TRANSFERS.rpc and self._write_stream is not None
        while (remaining := deadline - loop.time()) > 0:
            attempts.count += 1
            try:
                if streamed and self._write_stream is not None and not self._write_stream.unsupported:
                    return await self._streamed(request, remaining, attempts)
                return await method(request, timeout=remaining, metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                attempts.failed(exc.code(), exc.details() or "")
            except StreamFailed as exc:
                if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                    continue  # an older server: the same request as a unary call, at once
                attempts.failed(exc.code, exc.details)
            pause = backoff_seconds(self.config, attempts.count, self._rng)
            await asyncio.sleep(min(pause, max(deadline - loop.time(), 0)))
        raise attempts.timeout()
