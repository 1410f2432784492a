"""What AsyncClient and Client share: every call's checks, how it becomes requests and how the replies become
its result, written once as steps that each name the I/O they need.

A call is a generator of steps: it checks its arguments, yields a `Shared` (join a request coalesced with
other callers'), a `Call` (one unary call, retried until its deadline) or `Requests` (one call's payloads
cut into requests, a few in flight), receives that I/O's result, and returns the call's result. Each client
runs the steps with its own I/O, awaiting (`run_async`) or blocking (`run_sync`), so the two clients differ
only in how they wait, never in what they send or answer.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from ledger.records.layout import Account, Buffer, Transfer
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.v1 import ledger_pb2, wallet_pb2

from ._batching import request_bounds
from ._config import IN_FLIGHT_MAX, ClientConfig
from ._info import ServerInfo
from ._records import (
    AccountFilter,
    AccountLike,
    AccountOutcome,
    BalancesPage,
    IdLike,
    TransferLike,
    TransferOutcome,
    TransfersPage,
    account_linked,
    account_messages,
    balances_page,
    check_packed_transfers,
    checked_results,
    id_value,
    pack_transfers,
    packed_linked,
    transfer_outcomes,
    transfers_page,
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

Payload = TypeVar("Payload")
Result = TypeVar("Result")
T = TypeVar("T")
Found = TypeVar("Found", Account, Transfer)


@dataclass(frozen=True, slots=True)
class Shared(Generic[Payload]):
    """Join a request of `kind` shared with concurrent calls (the client's batcher for it); its share back."""

    kind: Kind[Payload, Any]
    payload: Payload
    count: int
    open_chain: bool
    """The payload's last event leaves a linked chain open: its request takes nothing after it."""
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class Call:
    """One unary call, retried until its deadline: the response."""

    rpc: str
    request: Any
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class Requests(Generic[Payload, Result]):
    """One call's payloads, a request each, at most `in_flight` at once: the results in order."""

    rpc: str
    payloads: list[Payload]
    request: Callable[[Payload], Any]
    answer: Callable[[Payload, Any], Result]
    timeout_seconds: float
    in_flight: int


Step: TypeAlias = Shared[Any] | Call | Requests[Any, Any]
Steps: TypeAlias = Generator[Step, Any, T]


def cursor_before(cursor: str) -> str:
    """The cursor of the wallet event feed just before this event's record ("seq.index"; see wallet/v1): a
    feed asked to start from now resumes there after a break, so nothing after its first event is missed."""
    seq, _, index = cursor.partition(".")
    return f"{seq}.{int(index) - 1}" if int(index) else f"{int(seq) - 1}.999999999"


def run_sync(steps: Steps[T], perform: Callable[[Step], Any]) -> T:
    """Run a call's steps with blocking I/O."""
    try:
        step = next(steps)
        while True:
            step = steps.send(perform(step))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(steps: Steps[T], perform: Callable[[Step], Any]) -> T:
    """Run a call's steps with awaited I/O (`perform` returns an awaitable)."""
    try:
        step = next(steps)
        while True:
            step = steps.send(await perform(step))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class ClientSteps:
    """The calls of both clients as steps; a client adds the I/O that runs them."""

    config: ClientConfig
    _stub: Any
    _wallet_stub: Any

    def _method(self, rpc: str) -> Any:
        """The stub's method for an rpc name: the Ledger service's by name, the Wallet service's as Wallet/Name."""
        service, _, name = rpc.rpartition("/")
        return getattr(self._wallet_stub if service == "Wallet" else self._stub, name)

    # Arguments.

    def _timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.config.timeout_seconds
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        return timeout

    def _in_flight(self, in_flight: int | None) -> int:
        if in_flight is None:
            return self.config.bulk_in_flight_max
        if not 1 <= in_flight <= IN_FLIGHT_MAX:
            raise ValueError(f"in_flight must be between 1 and {IN_FLIGHT_MAX}, got {in_flight}")
        return in_flight

    # The calls.

    def _server_info(self, timeout: float | None) -> Steps[ServerInfo]:
        response = yield Call("GetServerInfo", ledger_pb2.GetServerInfoRequest(), self._timeout(timeout))
        return ServerInfo.from_message(response)

    def _create_transfers(
        self, transfers: Sequence[TransferLike], timeout: float | None, in_flight: int | None
    ) -> Steps[list[TransferOutcome]]:
        """Up to 8190 share a request with concurrent calls; more go as create_transfers_packed sends them."""
        packed = pack_transfers(transfers)
        if len(transfers) > BATCH_EVENTS_MAX:
            return transfer_outcomes((yield from self._create_transfers_packed(packed, timeout, in_flight)))
        if not transfers:
            return []
        open_chain = packed_linked(memoryview(packed), len(transfers) - 1)
        outcomes: list[TransferOutcome] = yield Shared(
            CREATE_TRANSFERS, packed, len(transfers), open_chain, self._timeout(timeout)
        )
        return outcomes

    def _create_accounts(
        self, accounts: Sequence[AccountLike], timeout: float | None, in_flight: int | None
    ) -> Steps[list[AccountOutcome]]:
        """More than 8190 are cut into requests between chains, `in_flight` at once."""
        messages = account_messages(accounts)
        if len(messages) > BATCH_EVENTS_MAX:
            bounds = request_bounds(len(messages), lambda i: account_linked(messages[i]))
            shares = [messages[a:b] for a, b in bounds]
            return (yield from self._in_requests(CREATE_ACCOUNTS, shares, timeout, in_flight))
        if not messages:
            return []
        outcomes: list[AccountOutcome] = yield Shared(
            CREATE_ACCOUNTS, messages, len(messages), account_linked(messages[-1]), self._timeout(timeout)
        )
        return outcomes

    def _create_transfers_packed(self, records: Buffer, timeout: float | None, in_flight: int | None) -> Steps[bytes]:
        """Requests of at most 8190 records, never cut inside a linked chain; the results joined in order."""
        view = check_packed_transfers(records)
        bounds = request_bounds(len(view) // TRANSFER_SIZE, lambda i: packed_linked(view, i))
        payloads = [bytes(view[a * TRANSFER_SIZE : b * TRANSFER_SIZE]) for a, b in bounds]
        results: list[bytes] = yield Requests(
            CREATE_TRANSFERS.rpc,
            payloads,
            lambda payload: ledger_pb2.PackedTransfers(records=payload),
            lambda payload, response: checked_results(payload, response.results),
            self._timeout(timeout),
            self._in_flight(in_flight),
        )
        return b"".join(results)

    def _lookup_accounts(self, ids: Sequence[IdLike], timeout: float | None) -> Steps[list[Account]]:
        return (yield from self._lookup(LOOKUP_ACCOUNTS, ids, timeout))

    def _lookup_transfers(self, ids: Sequence[IdLike], timeout: float | None) -> Steps[list[Transfer]]:
        return (yield from self._lookup(LOOKUP_TRANSFERS, ids, timeout))

    def _lookup(self, kind: Kind[list[int], list[Found]], ids: Sequence[IdLike], timeout: float | None
                ) -> Steps[list[Found]]:  # fmt: skip
        values = [id_value(raw, f"ids[{index}]") for index, raw in enumerate(ids)]
        if len(values) > BATCH_EVENTS_MAX:
            chunks = [values[a : a + BATCH_EVENTS_MAX] for a in range(0, len(values), BATCH_EVENTS_MAX)]
            return (yield from self._in_requests(kind, chunks, timeout, None))
        if not values:
            return []
        found: list[Found] = yield Shared(kind, values, len(values), False, self._timeout(timeout))
        return found

    def _account_transfers(self, filter: AccountFilter, timeout: float | None) -> Steps[TransfersPage]:
        return transfers_page((yield Call("GetAccountTransfers", filter.to_message(), self._timeout(timeout))))

    def _account_balances(self, filter: AccountFilter, timeout: float | None) -> Steps[BalancesPage]:
        message = filter.to_message()
        response = yield Call("GetAccountBalances", message, self._timeout(timeout))
        return balances_page(message.account_id.lo | message.account_id.hi << 64, response)

    def _in_requests(self, kind: Kind[Payload, list[Result]], payloads: list[Payload], timeout: float | None,
                     in_flight: int | None) -> Steps[list[Result]]:  # fmt: skip
        """One call too long for one request: the requests' results joined in order."""
        shares: list[list[Result]] = yield Requests(
            kind.rpc,
            payloads,
            lambda payload: kind.request([payload]),
            lambda payload, response: kind.answer([payload], response)[0],
            self._timeout(timeout),
            self._in_flight(in_flight),
        )
        return [result for share in shares for result in share]

    # The Wallet service: each call a unary call with retries (every write carries its idempotency key, so
    # a retry is answered as the first), payments coalesced with concurrent ones into PayBatch calls and
    # payments by code into PayByCodeBatch calls.

    def _wallet(self, rpc: str, request: Any, timeout: float | None) -> Steps[Any]:
        return (yield Call(f"Wallet/{rpc}", request, self._timeout(timeout)))

    def _pay(self, request: wallet_pb2.PayRequest, timeout: float | None) -> Steps[wallet_pb2.PayReply]:
        reply: wallet_pb2.PayReply = yield Shared(PAY, request, PAYMENT_EVENTS, False, self._timeout(timeout))
        return reply

    def _pay_by_code(self, request: wallet_pb2.PayByCodeRequest, timeout: float | None) -> Steps[wallet_pb2.PayReply]:
        if request.pin:  # its check (Argon2, some 20 ms) would hold up every payment of a shared request
            pinned: wallet_pb2.PayReply = yield Call("Wallet/PayByCode", request, self._timeout(timeout))
            return pinned
        reply: wallet_pb2.PayReply = yield Shared(PAY_BY_CODE, request, PAYMENT_EVENTS, False, self._timeout(timeout))
        return reply
