"""Client: the Ledger service from threads (a grpc sync channel), with auto-batching across threads."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger.records.layout import Account, AccountBalance, Buffer, Transfer
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.v1 import ledger_pb2_grpc, wallet_pb2, wallet_pb2_grpc

from ._base import Call, ClientSteps, Shared, Step, cursor_before, run_sync
from ._batching import Batch, Entry
from ._config import IN_FLIGHT_MAX, ClientConfig
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
)
from ._requests import CREATE_ACCOUNTS, CREATE_TRANSFERS, LOOKUP_ACCOUNTS, LOOKUP_TRANSFERS, PAY, PAY_BY_CODE, Kind
from ._retry import Attempts, backoff_seconds

Payload = TypeVar("Payload")
Result = TypeVar("Result")

CALLS_QUEUED_MAX: Final = 2 * BATCH_EVENTS_MAX
"""Calls of one kind waiting to join a batch; past it callers wait their turn (backpressure)."""

_CLOSE: Final = None
_READY: Final = grpc.ChannelConnectivity.READY
_FAILED: Final = grpc.ChannelConnectivity.TRANSIENT_FAILURE


class _Batcher(Generic[Payload, Result]):
    """Coalesces calls of one kind from many threads into requests of up to 8190 events.

    A runner thread per kind takes the first waiting call, waits for a free request slot (at most
    `batch_in_flight_max` requests in flight, each sent from a pool thread; calls keep gathering
    meanwhile), then adds every call already waiting, and keeps adding calls as long as each look finds
    another, up to `batch_window_seconds`. A full batch, or one whose last call leaves a linked chain
    open, goes at once.
    """

    def __init__(self, send: Callable[[Batch[Payload, Future[Result]]], list[Result]], config: ClientConfig,
                 name: str) -> None:  # fmt: skip
        self._send = send
        self._window_seconds = config.batch_window_seconds
        self._in_flight_max = config.batch_in_flight_max
        self._name = name
        self._queue: queue.Queue[Entry[Payload, Future[Result]] | None] = queue.Queue(CALLS_QUEUED_MAX)
        self._slots = threading.Semaphore(config.batch_in_flight_max)
        self._lock = threading.Lock()
        self._runner: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._in_flight = 0

    def submit(self, payload: Payload, count: int, open_chain: bool, timeout_seconds: float) -> Result:
        waiter: Future[Result] = Future()
        entry = Entry(payload, count, open_chain, timeout_seconds, time.monotonic() + timeout_seconds, waiter)
        with self._lock:
            if self._closed:
                raise LedgerClosed("the client is closed")
            # Nothing in flight and nobody waiting: no one to share a request with, so send it from this
            # thread at once rather than through the runner (two thread hand-offs fewer for a lone caller).
            alone = not self._in_flight and self._queue.empty() and self._slots.acquire(blocking=False)
            if alone:
                self._in_flight += 1
            elif self._runner is None:
                self._pool = ThreadPoolExecutor(self._in_flight_max, thread_name_prefix=f"ledger-client-{self._name}")
                self._runner = threading.Thread(target=self._run, name=f"ledger-client-{self._name}", daemon=True)
                self._runner.start()
        if alone:
            self._flush(Batch(entry))
            return waiter.result()
        try:
            self._queue.put(entry, timeout=max(entry.deadline - time.monotonic(), 0))
            return waiter.result(timeout=max(entry.deadline - time.monotonic(), 0))
        except (queue.Full, TimeoutError):
            waiter.cancel()  # not sent yet: it never will be; in flight: its outcome is unknown
            raise entry.timeout() from None

    def _run(self) -> None:
        assert self._pool is not None
        pending: deque[Entry[Payload, Future[Result]]] = deque()
        while True:
            if not pending:
                first = self._queue.get()
                if first is _CLOSE:
                    break
                pending.append(first)
            self._slots.acquire()
            if not self._drain(pending):
                self._slots.release()
                break
            entry = pending.popleft()
            if entry.waiter.cancelled():
                self._slots.release()
                continue
            batch = Batch(entry)
            window_end = time.monotonic() + self._window_seconds
            while True:
                batch.extend(pending, Future.cancelled)
                remaining = window_end - time.monotonic()
                if batch.closed or remaining <= 0:
                    break
                try:
                    # With no request in flight nobody else is about to call: go now. With requests in
                    # flight, their callers will call again as their answers arrive: wait for them, up
                    # to the window, rather than sending a small request that splits them up.
                    more = self._queue.get(timeout=remaining) if self._in_flight else self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _CLOSE:
                    self._queue.put(_CLOSE)
                    break
                pending.append(more)
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._flush, batch)
        closed = LedgerClosed("the client was closed before the call was sent; nothing of it was sent")
        for entry in pending:
            if entry.waiter.set_running_or_notify_cancel():
                entry.waiter.set_exception(closed)

    def _drain(self, pending: deque[Entry[Payload, Future[Result]]]) -> bool:
        """Move every waiting call to `pending`; False if the client is closing."""
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return True
            if entry is _CLOSE:
                return False
            pending.append(entry)

    def _flush(self, batch: Batch[Payload, Future[Result]]) -> None:
        try:
            # A caller that gave up before this point is left out; after it, its outcome is unknown to it.
            batch.entries = [e for e in batch.entries if e.waiter.set_running_or_notify_cancel()]
            if not batch.entries:
                return
            try:
                results = self._send(batch)
            except Exception as exc:
                for entry in batch.entries:  # a request out of time: each caller is told its own timeout
                    entry.waiter.set_exception(entry.timeout() if isinstance(exc, LedgerTimeout) else exc)
            else:
                for entry, result in zip(batch.entries, results, strict=True):
                    entry.waiter.set_result(result)
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slots.release()

    def close(self) -> None:
        """Stop taking calls; requests in flight finish, calls not yet sent fail with LedgerClosed."""
        with self._lock:
            self._closed = True
            runner, pool = self._runner, self._pool
        if runner is not None and pool is not None:
            self._queue.put(_CLOSE)
            runner.join()
            pool.shutdown(wait=True)
            while not self._queue.empty():
                left = self._queue.get_nowait()
                if left is not None and left.waiter.set_running_or_notify_cancel():
                    left.waiter.set_exception(LedgerClosed("the client was closed before the call was sent"))


class Client(ClientSteps):
    """The Ledger service over one grpc sync channel, safe to share between threads; close it after use.

    The same calls as AsyncClient, blocking: calls of up to 8190 events from concurrent threads are
    coalesced into shared requests; longer ones are cut into requests of 8190 (never inside a linked
    chain) sent a few at a time; UNAVAILABLE and RESOURCE_EXHAUSTED are retried with the same ids until
    the deadline, then LedgerTimeout (outcome unknown, retrying with the same ids is safe).
    """

    def __init__(
        self, config: ClientConfig | None = None, *, interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = ()
    ) -> None:
        self.config = config or ClientConfig.from_env()
        credentials = self.config.credentials()
        options = self.config.channel_options()
        if credentials is None:
            channel = grpc.insecure_channel(self.config.server, options=options)
        else:
            channel = grpc.secure_channel(self.config.server, credentials, options=options)
        self._channel = channel
        if interceptors:
            channel = grpc.intercept_channel(channel, *interceptors)
        self._stub = ledger_pb2_grpc.LedgerStub(channel)  # type: ignore[no-untyped-call]
        self._wallet_stub = wallet_pb2_grpc.WalletStub(channel)  # type: ignore[no-untyped-call]
        self._health = health_pb2_grpc.HealthStub(channel)
        self._metadata = self.config.metadata or None
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._bulk_lock = threading.Lock()
        self._bulk_pool: ThreadPoolExecutor | None = None
        kinds = (CREATE_TRANSFERS, CREATE_ACCOUNTS, LOOKUP_ACCOUNTS, LOOKUP_TRANSFERS, PAY, PAY_BY_CODE)
        self._batchers: dict[str, _Batcher[Any, Any]] = {kind.rpc: self._batcher(kind) for kind in kinds}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        with self._bulk_lock:
            pool, self._bulk_pool = self._bulk_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._channel.close()

    # The server.

    def wait_for_server(self, timeout: float | None = None) -> None:
        """Connect now; LedgerUnreachable if no connection is made within `timeout` seconds (default: the
        call timeout) or the attempt fails (nothing listens, the name does not resolve, TLS does not match).

        Calls need not do this: they connect by themselves and retry until their deadline. It is for a
        caller that wants to know at once that nobody answers (a command line), before sending anything.
        """
        seconds = self._timeout(timeout)
        deadline = time.monotonic() + seconds
        changed = threading.Condition()
        current = (grpc.ChannelConnectivity.IDLE, time.monotonic())

        def watch(connectivity: grpc.ChannelConnectivity) -> None:
            nonlocal current
            with changed:
                if connectivity is not current[0]:
                    current = (connectivity, time.monotonic())
                    changed.notify_all()

        self._channel.subscribe(watch, try_to_connect=True)
        try:
            with changed:
                while current[0] is not _READY and (left := wait_limit(*current, deadline) - time.monotonic()) > 0:
                    changed.wait(left)
                state = current[0]
        finally:
            self._channel.unsubscribe(watch)
        if state is not _READY:
            raise LedgerUnreachable(
                self.config.server, seconds, failed=state is not grpc.ChannelConnectivity.CONNECTING
            )

    def server_info(self, *, timeout: float | None = None) -> ServerInfo:
        """What the server is and who this client is to it (GetServerInfo; any valid key may ask)."""
        return run_sync(self._server_info(timeout), self._perform)

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health for `service` ("": the whole server) by the standard health check, one
        attempt: SERVING, NOT_SERVING (e.g. shutting down) or SERVICE_UNKNOWN. Needs no key."""
        seconds = self._timeout(timeout)
        try:
            response = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=seconds)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise LedgerTimeout(seconds, 1) from None
            raise call_error(exc.code(), exc.details() or "") from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    # Writes.

    def create_transfers(
        self, transfers: Sequence[TransferLike], *, timeout: float | None = None, in_flight: int | None = None
    ) -> list[TransferOutcome]:
        """Apply transfers in order; one outcome each. Every field is checked before anything is sent.

        Up to 8190 share a request with concurrent calls; more go as create_transfers_packed sends them
        (see there for `in_flight`, and for order across requests).
        """
        return run_sync(self._create_transfers(transfers, timeout, in_flight), self._perform)

    def create_transfer(self, transfer: TransferLike, *, timeout: float | None = None) -> TransferOutcome:
        """Apply one transfer, in a request shared with concurrent calls from other threads."""
        return self.create_transfers([transfer], timeout=timeout)[0]

    def create_accounts(
        self, accounts: Sequence[AccountLike], *, timeout: float | None = None, in_flight: int | None = None
    ) -> list[AccountOutcome]:
        """Create accounts in order; one outcome each. Every field is checked before anything is sent.

        More than 8190 are cut into requests between chains, `in_flight` at once (default
        `bulk_in_flight_max`; requests in flight together may be applied in either order).
        """
        return run_sync(self._create_accounts(accounts, timeout, in_flight), self._perform)

    def create_account(self, account: AccountLike, *, timeout: float | None = None) -> AccountOutcome:
        return self.create_accounts([account], timeout=timeout)[0]

    def create_transfers_packed(
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
        return run_sync(self._create_transfers_packed(records, timeout, in_flight), self._perform)

    # Reads.

    def lookup_accounts(self, ids: Sequence[IdLike], *, timeout: float | None = None) -> list[Account]:
        """The accounts found, in the order asked; ids not found are left out."""
        return run_sync(self._lookup_accounts(ids, timeout), self._perform)

    def lookup_account(self, account_id: IdLike, *, timeout: float | None = None) -> Account | None:
        found = self.lookup_accounts([account_id], timeout=timeout)
        return found[0] if found else None

    def lookup_transfers(self, ids: Sequence[IdLike], *, timeout: float | None = None) -> list[Transfer]:
        """The transfers found, in the order asked; ids not found are left out."""
        return run_sync(self._lookup_transfers(ids, timeout), self._perform)

    def lookup_transfer(self, transfer_id: IdLike, *, timeout: float | None = None) -> Transfer | None:
        found = self.lookup_transfers([transfer_id], timeout=timeout)
        return found[0] if found else None

    def get_account_transfers(self, filter: AccountFilter, *, timeout: float | None = None) -> TransfersPage:
        """One page of an account's transfers; `page.next` is the filter for the next page (None at the end)."""
        return run_sync(self._account_transfers(filter, timeout), self._perform)

    def get_account_balances(self, filter: AccountFilter, *, timeout: float | None = None) -> BalancesPage:
        """One page of the balances of an account with the HISTORY flag after each of its transfers."""
        return run_sync(self._account_balances(filter, timeout), self._perform)

    def iter_account_transfers(self, filter: AccountFilter, *, timeout: float | None = None) -> Iterator[Transfer]:
        """Every transfer the filter selects, following the pages (each page's request has its own deadline)."""
        following: AccountFilter | None = filter
        while following is not None:
            page = self.get_account_transfers(following, timeout=timeout)
            yield from page.transfers
            following = page.next

    def iter_account_balances(self, filter: AccountFilter, *, timeout: float | None = None) -> Iterator[AccountBalance]:
        following: AccountFilter | None = filter
        while following is not None:
            page = self.get_account_balances(following, timeout=timeout)
            yield from page.balances
            following = page.next

    # The Wallet service. Requests and replies are the wallet_pb2 messages; a reply's `result` says how the
    # operation ended (WALLET_RESULT_OK or the rule it broke, with `message` naming the field). Calls are
    # retried like the ledger's until their deadline: every write carries its idempotency key, so a retry
    # is answered with the first reply.

    def pay(self, request: wallet_pb2.PayRequest, *, timeout: float | None = None) -> wallet_pb2.PayReply:
        """One payment; concurrent payments share PayBatch calls (auto-batching)."""
        return run_sync(self._pay(request, timeout), self._perform)

    def create_tenant(
        self, request: wallet_pb2.CreateTenantRequest, *, timeout: float | None = None
    ) -> wallet_pb2.TenantReply:
        """Create a tenant with its ledger and system accounts (idempotent by tenant id)."""
        reply: wallet_pb2.TenantReply = run_sync(self._wallet("CreateTenant", request, timeout), self._perform)
        return reply

    def configure_tenant(
        self, request: wallet_pb2.ConfigureTenantRequest, *, timeout: float | None = None
    ) -> wallet_pb2.TenantReply:
        """Replace a tenant's settings."""
        reply: wallet_pb2.TenantReply = run_sync(self._wallet("ConfigureTenant", request, timeout), self._perform)
        return reply

    def get_tenant(
        self, request: wallet_pb2.GetTenantRequest, *, timeout: float | None = None
    ) -> wallet_pb2.TenantReply:
        reply: wallet_pb2.TenantReply = run_sync(self._wallet("GetTenant", request, timeout), self._perform)
        return reply

    def enroll_device(
        self, request: wallet_pb2.EnrollDeviceRequest, *, timeout: float | None = None
    ) -> wallet_pb2.DeviceReply:
        """Enrol a customer's phone to show payment codes (its seed and the tenant's code key are in the answer)."""
        reply: wallet_pb2.DeviceReply = run_sync(self._wallet("EnrollDevice", request, timeout), self._perform)
        return reply

    def list_devices(
        self, request: wallet_pb2.ListDevicesRequest, *, timeout: float | None = None
    ) -> wallet_pb2.ListDevicesReply:
        """The devices enrolled for a customer's wallet."""
        reply: wallet_pb2.ListDevicesReply = run_sync(self._wallet("ListDevices", request, timeout), self._perform)
        return reply

    def revoke_device(
        self, request: wallet_pb2.RevokeDeviceRequest, *, timeout: float | None = None
    ) -> wallet_pb2.DeviceReply:
        """Take a device out of use: its codes are refused from now on."""
        reply: wallet_pb2.DeviceReply = run_sync(self._wallet("RevokeDevice", request, timeout), self._perform)
        return reply

    def pay_by_code(self, request: wallet_pb2.PayByCodeRequest, *, timeout: float | None = None) -> wallet_pb2.PayReply:
        """Pay by the code a customer's phone shows (terminal and transaction: the idempotency key); concurrent
        payments by code share PayByCodeBatch calls (auto-batching), but one that carries a PIN is a PayByCode
        call of its own: the PIN's check (Argon2, some 20 ms) would hold up every payment it shared a call with."""
        return run_sync(self._pay_by_code(request, timeout), self._perform)

    def pay_by_code_batch(
        self, request: wallet_pb2.PayByCodeBatchRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayByCodeBatchReply:
        """Up to 512 payments by code in one call, a reply each in order."""
        steps = self._wallet("PayByCodeBatch", request, timeout)
        reply: wallet_pb2.PayByCodeBatchReply = run_sync(steps, self._perform)
        return reply

    def set_pin(self, request: wallet_pb2.SetPinRequest, *, timeout: float | None = None) -> wallet_pb2.PinReply:
        """Set or change a wallet's payment PIN."""
        reply: wallet_pb2.PinReply = run_sync(self._wallet("SetPin", request, timeout), self._perform)
        return reply

    def get_pin_status(self, request: wallet_pb2.WalletRequest, *, timeout: float | None = None) -> wallet_pb2.PinReply:
        """Whether a wallet has a PIN, its wrong tries and any lock."""
        reply: wallet_pb2.PinReply = run_sync(self._wallet("GetPinStatus", request, timeout), self._perform)
        return reply

    def unlock_pin(self, request: wallet_pb2.UnlockPinRequest, *, timeout: float | None = None) -> wallet_pb2.PinReply:
        """An operator lifts the lock wrong PINs put on a wallet's code payments."""
        reply: wallet_pb2.PinReply = run_sync(self._wallet("UnlockPin", request, timeout), self._perform)
        return reply

    def get_code_payment(
        self, request: wallet_pb2.CodePaymentRequest, *, timeout: float | None = None
    ) -> wallet_pb2.CodePaymentReply:
        """What became of a terminal's transaction."""
        reply: wallet_pb2.CodePaymentReply = run_sync(self._wallet("GetCodePayment", request, timeout), self._perform)
        return reply

    def cancel_code_payment(
        self, request: wallet_pb2.CancelCodePaymentRequest, *, timeout: float | None = None
    ) -> wallet_pb2.CodePaymentReply:
        """Cancel a terminal's transaction: refunded if it paid, never payable from now on."""
        reply: wallet_pb2.CodePaymentReply = run_sync(
            self._wallet("CancelCodePayment", request, timeout), self._perform
        )
        return reply

    def create_payment_request(
        self, request: wallet_pb2.CreatePaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PaymentRequestReply:
        """A terminal asks for an amount, shown as a QR code one customer confirms."""
        call = self._wallet("CreatePaymentRequest", request, timeout)
        reply: wallet_pb2.PaymentRequestReply = run_sync(call, self._perform)
        return reply

    def get_payment_request(
        self, request: wallet_pb2.PaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PaymentRequestReply:
        """A payment request and its status."""
        call = self._wallet("GetPaymentRequest", request, timeout)
        reply: wallet_pb2.PaymentRequestReply = run_sync(call, self._perform)
        return reply

    def confirm_payment_request(
        self, request: wallet_pb2.ConfirmPaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayReply:
        """A customer pays a terminal's request from their wallet."""
        call = self._wallet("ConfirmPaymentRequest", request, timeout)
        reply: wallet_pb2.PayReply = run_sync(call, self._perform)
        return reply

    def cancel_payment_request(
        self, request: wallet_pb2.PaymentRequestRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PaymentRequestReply:
        """The terminal withdraws an open request."""
        call = self._wallet("CancelPaymentRequest", request, timeout)
        reply: wallet_pb2.PaymentRequestReply = run_sync(call, self._perform)
        return reply

    def create_pay_link(
        self, request: wallet_pb2.CreatePayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkReply:
        """A pay link for a customer's phone or e-mail: its URL, token and status."""
        reply: wallet_pb2.PayLinkReply = run_sync(self._wallet("CreatePayLink", request, timeout), self._perform)
        return reply

    def get_pay_link(
        self, request: wallet_pb2.PayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkReply:
        """A pay link and its status, by tenant and id or by its URL's token."""
        reply: wallet_pb2.PayLinkReply = run_sync(self._wallet("GetPayLink", request, timeout), self._perform)
        return reply

    def cancel_pay_link(
        self, request: wallet_pb2.PayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkReply:
        """No one can pay the link from now on."""
        reply: wallet_pb2.PayLinkReply = run_sync(self._wallet("CancelPayLink", request, timeout), self._perform)
        return reply

    def start_pay_link_payment(
        self, request: wallet_pb2.StartPayLinkPaymentRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayLinkChallengeReply:
        """A customer's wallet and PIN for a link: a one-time code goes to the link's contact."""
        reply: wallet_pb2.PayLinkChallengeReply = run_sync(
            self._wallet("StartPayLinkPayment", request, timeout), self._perform
        )
        return reply

    def pay_pay_link(
        self, request: wallet_pb2.PayPayLinkRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayReply:
        """The one-time code answered: the link paid from the customer's wallet."""
        reply: wallet_pb2.PayReply = run_sync(self._wallet("PayPayLink", request, timeout), self._perform)
        return reply

    def authorize_hold_by_code(
        self, request: wallet_pb2.AuthorizeHoldByCodeRequest, *, timeout: float | None = None
    ) -> wallet_pb2.HoldReply:
        """A hold on the wallet whose phone shows the code, captured later with capture_hold."""
        reply: wallet_pb2.HoldReply = run_sync(self._wallet("AuthorizeHoldByCode", request, timeout), self._perform)
        return reply

    def get_caller(
        self, request: wallet_pb2.GetCallerRequest, *, timeout: float | None = None
    ) -> wallet_pb2.CallerReply:
        """The caller's key as the Wallet service sees it for `request.tenant`: its role and permissions."""
        reply: wallet_pb2.CallerReply = run_sync(self._wallet("GetCaller", request, timeout), self._perform)
        return reply

    def get_event_cursor(
        self, request: wallet_pb2.GetEventCursorRequest, *, timeout: float | None = None
    ) -> wallet_pb2.EventCursorReply:
        """The event feed's position now: subscribe after it for exactly the events committed later."""
        reply: wallet_pb2.EventCursorReply = run_sync(self._wallet("GetEventCursor", request, timeout), self._perform)
        return reply

    def open_wallet(
        self, request: wallet_pb2.WalletRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BalanceReply:
        """Open a customer's wallet (idempotent); its balance."""
        reply: wallet_pb2.BalanceReply = run_sync(self._wallet("OpenWallet", request, timeout), self._perform)
        return reply

    def get_balance(
        self, request: wallet_pb2.WalletRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BalanceReply:
        reply: wallet_pb2.BalanceReply = run_sync(self._wallet("GetBalance", request, timeout), self._perform)
        return reply

    def set_wallet_status(
        self, request: wallet_pb2.SetWalletStatusRequest, *, timeout: float | None = None
    ) -> wallet_pb2.WalletStatusReply:
        """Freeze, unfreeze or close a wallet."""
        reply: wallet_pb2.WalletStatusReply = run_sync(self._wallet("SetWalletStatus", request, timeout), self._perform)
        return reply

    def top_up(self, request: wallet_pb2.TopUpRequest, *, timeout: float | None = None) -> wallet_pb2.TopUpReply:
        reply: wallet_pb2.TopUpReply = run_sync(self._wallet("TopUp", request, timeout), self._perform)
        return reply

    def pay_batch(
        self, request: wallet_pb2.PayBatchRequest, *, timeout: float | None = None
    ) -> wallet_pb2.PayBatchReply:
        """Up to 512 payments in one call, a reply each in order."""
        reply: wallet_pb2.PayBatchReply = run_sync(self._wallet("PayBatch", request, timeout), self._perform)
        return reply

    def refund(self, request: wallet_pb2.RefundRequest, *, timeout: float | None = None) -> wallet_pb2.RefundReply:
        reply: wallet_pb2.RefundReply = run_sync(self._wallet("Refund", request, timeout), self._perform)
        return reply

    def authorize_hold(
        self, request: wallet_pb2.AuthorizeHoldRequest, *, timeout: float | None = None
    ) -> wallet_pb2.HoldReply:
        reply: wallet_pb2.HoldReply = run_sync(self._wallet("AuthorizeHold", request, timeout), self._perform)
        return reply

    def capture_hold(
        self, request: wallet_pb2.CaptureHoldRequest, *, timeout: float | None = None
    ) -> wallet_pb2.HoldReply:
        reply: wallet_pb2.HoldReply = run_sync(self._wallet("CaptureHold", request, timeout), self._perform)
        return reply

    def void_hold(self, request: wallet_pb2.VoidHoldRequest, *, timeout: float | None = None) -> wallet_pb2.HoldReply:
        reply: wallet_pb2.HoldReply = run_sync(self._wallet("VoidHold", request, timeout), self._perform)
        return reply

    def book(self, request: wallet_pb2.BookRequest, *, timeout: float | None = None) -> wallet_pb2.BookingReply:
        """An operator's credit or debit with a reason."""
        reply: wallet_pb2.BookingReply = run_sync(self._wallet("Book", request, timeout), self._perform)
        return reply

    def reverse_booking(
        self, request: wallet_pb2.ReverseBookingRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BookingReply:
        """Reverse a booking (at most once)."""
        reply: wallet_pb2.BookingReply = run_sync(self._wallet("ReverseBooking", request, timeout), self._perform)
        return reply

    def list_bookings(
        self, request: wallet_pb2.ListBookingsRequest, *, timeout: float | None = None
    ) -> wallet_pb2.ListBookingsReply:
        """The audit trail of bookings, a page at a time."""
        reply: wallet_pb2.ListBookingsReply = run_sync(self._wallet("ListBookings", request, timeout), self._perform)
        return reply

    def issue_voucher(
        self, request: wallet_pb2.IssueVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Issue a voucher; its code is in the reply."""
        reply: wallet_pb2.VoucherReply = run_sync(self._wallet("IssueVoucher", request, timeout), self._perform)
        return reply

    def get_voucher(
        self, request: wallet_pb2.VoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """What is left on a voucher, by its code."""
        reply: wallet_pb2.VoucherReply = run_sync(self._wallet("GetVoucher", request, timeout), self._perform)
        return reply

    def redeem_voucher(
        self, request: wallet_pb2.RedeemVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Move what is left on a voucher into a wallet."""
        reply: wallet_pb2.VoucherReply = run_sync(self._wallet("RedeemVoucher", request, timeout), self._perform)
        return reply

    def spend_voucher(
        self, request: wallet_pb2.SpendVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Pay an order from a voucher directly."""
        reply: wallet_pb2.VoucherReply = run_sync(self._wallet("SpendVoucher", request, timeout), self._perform)
        return reply

    def deactivate_voucher(
        self, request: wallet_pb2.DeactivateVoucherRequest, *, timeout: float | None = None
    ) -> wallet_pb2.VoucherReply:
        """Take a voucher out of use."""
        reply: wallet_pb2.VoucherReply = run_sync(self._wallet("DeactivateVoucher", request, timeout), self._perform)
        return reply

    def grant_run(
        self, request: wallet_pb2.GrantRunRequest, *, timeout: float | None = None
    ) -> wallet_pb2.GrantRunReply:
        """Credit many wallets in one run (up to 10,000 grants per call)."""
        reply: wallet_pb2.GrantRunReply = run_sync(self._wallet("GrantRun", request, timeout), self._perform)
        return reply

    def subscribe_events(self, request: wallet_pb2.SubscribeEventsRequest) -> Iterator[wallet_pb2.WalletEvent]:
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
                for event in call:
                    attempts = 0
                    if following.from_now:  # resume from just before this event's record, not from a later now
                        following.after, following.from_now = cursor_before(event.cursor), False
                    if event.cursor != current:
                        if current:
                            following.after, following.from_now = current, False
                        current = event.cursor
                    yield event
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise call_error(exc.code(), exc.details() or "") from None
            finally:
                call.cancel()
            attempts += 1
            current = ""
            with self._rng_lock:
                pause = backoff_seconds(self.config, attempts, self._rng)
            time.sleep(pause)

    def empty_wallet(
        self, request: wallet_pb2.EmptyWalletRequest, *, timeout: float | None = None
    ) -> wallet_pb2.BookingReply:
        """Pay out or write off all a wallet holds, so that it may close."""
        reply: wallet_pb2.BookingReply = run_sync(self._wallet("EmptyWallet", request, timeout), self._perform)
        return reply

    # Statements and settlement.

    def get_statement(
        self, request: wallet_pb2.GetStatementRequest, *, timeout: float | None = None
    ) -> wallet_pb2.StatementReply:
        """A page of a wallet's statement: a row per movement, oldest first; pass `next_cursor` as
        `starting_after` for the next while `has_more`."""
        reply: wallet_pb2.StatementReply = run_sync(self._wallet("GetStatement", request, timeout), self._perform)
        return reply

    def get_settlement(
        self, request: wallet_pb2.GetSettlementRequest, *, timeout: float | None = None
    ) -> wallet_pb2.SettlementReply:
        """A tenant's settlement report for a day or a range (with `csv`, as CSV text too)."""
        reply: wallet_pb2.SettlementReply = run_sync(self._wallet("GetSettlement", request, timeout), self._perform)
        return reply

    # Sending.

    def _perform(self, step: Step) -> Any:
        """The I/O a call's step names, blocking."""
        if isinstance(step, Shared):
            return self._batchers[step.kind.rpc].submit(step.payload, step.count, step.open_chain, step.timeout_seconds)
        if isinstance(step, Call):
            return self._call(step.rpc, step.request, step.timeout_seconds)
        requests = step

        def send(payload: Any) -> Any:
            return requests.answer(
                payload, self._call(requests.rpc, requests.request(payload), requests.timeout_seconds)
            )

        return self._pipelined(send, requests.payloads, requests.in_flight)

    def _batcher(self, kind: Kind[Payload, Result]) -> _Batcher[Payload, Result]:
        def send(batch: Batch[Payload, Future[Result]]) -> list[Result]:
            payloads = [entry.payload for entry in batch.entries]
            attempts = Attempts(batch.deadline - time.monotonic())
            for entry in batch.entries:
                entry.attempts = attempts
            return kind.answer(payloads, self._call(kind.rpc, kind.request(payloads), attempts))

        return _Batcher(send, self.config, kind.rpc)

    def _pipelined(self, send: Callable[[Payload], Result], payloads: list[Payload], bound: int) -> list[Result]:
        """send(payload) for each, at most `bound` at once, results in order; the first error cancels the requests
        not yet started and is raised."""
        if len(payloads) == 1 or bound == 1:
            return [send(payload) for payload in payloads]
        with self._bulk_lock:
            if self._bulk_pool is None:
                self._bulk_pool = ThreadPoolExecutor(IN_FLIGHT_MAX, thread_name_prefix="ledger-bulk")
            pool = self._bulk_pool
        window: deque[Future[Result]] = deque()
        results: list[Result] = []
        try:
            for payload in payloads:
                if len(window) >= bound:
                    results.append(window.popleft().result())
                window.append(pool.submit(send, payload))
            while window:
                results.append(window.popleft().result())
        finally:
            for future in window:
                future.cancel()
        return results

    def _call(self, rpc: str, request: Any, timeout: float | Attempts) -> Any:
        """One unary call with retries until the deadline (each attempt's gRPC deadline is the time left)."""
        attempts = timeout if isinstance(timeout, Attempts) else Attempts(timeout)
        deadline = time.monotonic() + attempts.timeout_seconds
        method = self._method(rpc)
        while (remaining := deadline - time.monotonic()) > 0:
            attempts.count += 1
            try:
                return method(request, timeout=remaining, metadata=self._metadata)
            except grpc.RpcError as exc:
                attempts.failed(exc.code(), exc.details() or "")
            with self._rng_lock:
                pause = backoff_seconds(self.config, attempts.count, self._rng)
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        raise attempts.timeout()
