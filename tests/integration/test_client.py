"""ledger.client against the Ledger service in process on port 0, over both stores: every call of both clients,
auto-batching (counted at the channel), linked chains of concurrent callers kept apart, requests cut for long
calls, retries under the deadline, typed refusals, API keys and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from ledger import __version__
from ledger.client import (
    Account,
    AccountFilter,
    AccountFlags,
    AsyncClient,
    Client,
    ClientConfig,
    CreateAccountResult,
    CreateTransferResult,
    LedgerClosed,
    LedgerInvalidArgument,
    LedgerPermissionDenied,
    LedgerTimeout,
    LedgerUnauthenticated,
    LedgerUnreachable,
    Transfer,
    TransferFlags,
)
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import IMPLEMENTATION, pack_transfers, unpack_transfer_results
from ledger.server import LedgerService, add_ledger_service, start_server
from ledger.server._serve import MESSAGE_BYTES_MAX
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

LEDGER = 978
FUNDING, WALLET, REVENUE = 1, 2, 3
WALLET_UUID = uuid.UUID("6f1c1c9e-8a51-4f0e-9b57-3c1d2a4b5e6f")
T = CreateTransferResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ledger_config(store_url: str) -> LedgerConfig:
    return LedgerConfig(store=store_url, accounts_max=1_000, transfers_max=100_000, pending_transfers_max=1_000)


def with_server(store_url: str, body: Callable[[int], Awaitable[None]]) -> None:
    async def run() -> None:
        async with await Ledger.open(ledger_config(store_url)) as ledger:
            server, port, _ = await start_server(ledger)
            try:
                await body(port)
            finally:
                await server.stop(None)

    asyncio.run(run())


def config(port: int, **fields: Any) -> ClientConfig:
    """Unary calls only, unless a test asks otherwise: these tests count the calls sent with an interceptor of
    unary calls (the write stream's messages are tested in test_write_stream.py)."""
    fields.setdefault("write_stream", False)
    return ClientConfig(server=f"127.0.0.1:{port}", **fields)


def _name(method: str | bytes) -> str:
    return (method.decode() if isinstance(method, bytes) else method).rsplit("/", 1)[-1]


def _events(request: Any) -> int:
    if isinstance(request, ledger_pb2.PackedTransfers):
        return len(request.records) // 128
    if isinstance(request, ledger_pb2.CreateAccountsRequest):
        return len(request.accounts)
    if isinstance(request, ledger_pb2.LookupRequest):
        return len(request.ids)
    return 1


class Calls:
    """What went over the channel: (method, events) per call attempt."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.requests: list[Any] = []
        self._lock = threading.Lock()

    def note(self, method: str | bytes, request: Any) -> None:
        with self._lock:
            self.sent.append((_name(method), _events(request)))
            self.requests.append(request)

    def of(self, method: str) -> list[int]:
        return [events for name, events in self.sent if name == method]


class AsyncCounting(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls.note(details.method, request)
        return await continuation(details, request)


class SyncCounting(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls.note(details.method, request)
        return continuation(details, request)


class Either:
    """One scenario for both clients: AsyncClient awaited, Client run in a worker thread."""

    def __init__(self, kind: str, client_config: ClientConfig, calls: Calls) -> None:
        self.kind = kind
        self.calls = calls
        if kind == "async":
            self.client: Any = AsyncClient(client_config, interceptors=[AsyncCounting(calls)])
        else:
            self.client = Client(client_config, interceptors=[SyncCounting(calls)])

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.kind == "async":
            return await getattr(self.client, method)(*args, **kwargs)
        return await asyncio.to_thread(getattr(self.client, method), *args, **kwargs)

    async def collect(self, method: str, *args: Any) -> list[Any]:
        if self.kind == "async":
            return [item async for item in getattr(self.client, method)(*args)]
        return await asyncio.to_thread(lambda: list(getattr(self.client, method)(*args)))

    async def close(self) -> None:
        if self.kind == "async":
            await self.client.close()
        else:
            await asyncio.to_thread(self.client.close)


@contextlib.asynccontextmanager
async def either(kind: str, client_config: ClientConfig) -> AsyncIterator[Either]:
    client = Either(kind, client_config, Calls())
    try:
        yield client
    finally:
        await client.close()


def move(transfer_id: int | uuid.UUID, debit: Any, credit: Any, amount: int, **fields: Any) -> Transfer:
    return Transfer(id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount,  # type: ignore[arg-type]
                    ledger=LEDGER, code=fields.pop("code", 1), **fields)  # fmt: skip


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_every_call_of_both_clients(store_url: str, kind: str) -> None:
    async def body(port: int) -> None:
        async with either(kind, config(port)) as c:
            # Accounts: the dataclass with int ids, a mapping with a UUID id.
            created = await c(
                "create_accounts",
                [
                    Account(id=FUNDING, ledger=LEDGER, code=1),
                    {"id": WALLET_UUID, "ledger": LEDGER, "code": 2,
                     "flags": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.HISTORY},
                ],
            )  # fmt: skip
            assert [o.result for o in created] == [CreateAccountResult.OK] * 2
            assert created[0].timestamp < created[1].timestamp
            revenue = await c("create_account", {"id": REVENUE, "ledger": LEDGER, "code": 3})
            assert revenue.result == CreateAccountResult.OK
            again = await c("create_account", {"id": REVENUE, "ledger": LEDGER, "code": 3})
            assert (again.result, again.timestamp) == (CreateAccountResult.EXISTS, revenue.timestamp)

            top_up = await c("create_transfer", move(10, FUNDING, WALLET_UUID, 5_000))
            assert (top_up.result, top_up.amount) == (T.OK, 5_000)
            paid = await c(
                "create_transfers",
                [
                    {"id": uuid.UUID(int=11), "debit_account_id": WALLET_UUID, "credit_account_id": REVENUE,
                     "amount": 30, "ledger": LEDGER, "code": 3, "flags": TransferFlags.LINKED},
                    move(12, WALLET_UUID, REVENUE, 9_000, flags=TransferFlags.BALANCING_DEBIT),
                ],
            )  # fmt: skip
            assert [(o.result, o.amount) for o in paid] == [(T.OK, 30), (T.OK, 4_970)]
            # The same ids again: EXISTS with the original's timestamp and amount, nothing moves twice.
            retried = await c("create_transfer", move(11, WALLET_UUID, REVENUE, 30, code=3, flags=TransferFlags.LINKED))
            assert retried.result == T.LINKED_EVENT_CHAIN_OPEN
            retried = await c("create_transfer", move(10, FUNDING, WALLET_UUID, 5_000))
            assert (retried.result, retried.timestamp, retried.amount) == (T.EXISTS, top_up.timestamp, 5_000)
            short = await c("create_transfer", move(13, WALLET_UUID, REVENUE, 1))
            assert short.result == T.EXCEEDS_CREDITS and (short.timestamp, short.amount) == (0, 0)

            # A hold and its capture, through the packed call.
            hold = pack_transfers([move(20, FUNDING, WALLET_UUID.int, 700, flags=TransferFlags.PENDING, timeout=60)])
            [hold_result] = unpack_transfer_results(await c("create_transfers_packed", hold))
            assert hold_result.result == T.OK
            capture = pack_transfers(
                [Transfer(id=21, pending_id=20, amount=0, flags=TransferFlags.POST_PENDING_TRANSFER)]
            )
            [capture_result] = unpack_transfer_results(await c("create_transfers_packed", capture))
            assert (capture_result.result, capture_result.amount) == (T.OK, 700)

            # Lookups: in the order asked, missing ids left out; UUIDs and ints alike.
            found = await c("lookup_accounts", [REVENUE, 99, WALLET_UUID])
            assert [a.id for a in found] == [REVENUE, WALLET_UUID.int]
            wallet = found[1]
            assert (wallet.credits_posted, wallet.debits_posted, wallet.debits_pending) == (5_700, 5_000, 0)
            assert await c("lookup_account", 99) is None
            assert (await c("lookup_account", uuid.UUID(int=FUNDING))).debits_posted == 5_700
            transfers = await c("lookup_transfers", [12, 404, uuid.UUID(int=11)])
            assert [(t.id, t.amount) for t in transfers] == [(12, 4_970), (11, 30)]
            assert (await c("lookup_transfer", 21)).pending_id == 20
            assert await c("lookup_transfer", 404) is None

            # History: a page at a time through `next`, or every page by iterating.
            page = await c("get_account_transfers", AccountFilter(account_id=WALLET_UUID, limit=2))
            assert [t.id for t in page.transfers] == [10, 11] and page.next is not None
            page = await c("get_account_transfers", page.next)
            assert [t.id for t in page.transfers] == [12, 20]
            everything = await c.collect("iter_account_transfers", AccountFilter(account_id=WALLET_UUID, limit=1))
            assert [t.id for t in everything] == [10, 11, 12, 20, 21]
            credits_newest_first = AccountFilter(account_id=WALLET_UUID, reversed=True, exclude_debits=True, limit=10)
            newest = await c("get_account_transfers", credits_newest_first)
            assert [t.id for t in newest.transfers] == [21, 20, 10] and newest.next is None
            balances = await c.collect("iter_account_balances", AccountFilter(account_id=WALLET_UUID, limit=2))
            assert [(b.credits_pending, b.credits_posted, b.debits_posted) for b in balances] == [
                (0, 5_000, 0), (0, 5_000, 30), (0, 5_000, 5_000), (700, 5_000, 5_000), (0, 5_700, 5_000),
            ]  # fmt: skip
            assert {b.account_id for b in balances} == {WALLET_UUID.int}
            one_page = await c("get_account_balances", AccountFilter(account_id=WALLET_UUID, timestamp_min=0))
            assert len(one_page.balances) == 5 and one_page.next is None

    with_server(store_url, body)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_concurrent_calls_share_requests_and_each_gets_its_own_result(store_url: str, kind: str) -> None:
    callers = 400

    async def body(port: int) -> None:
        async with either(kind, config(port)) as c:
            await c("create_accounts", [Account(id=i, ledger=LEDGER, code=1) for i in (FUNDING, WALLET, REVENUE)])
            sent_before = len(c.calls.sent)

            # Each caller moves a different amount, so its outcome shows it is its own.
            async def pay(i: int) -> Any:
                return await c("create_transfer", move(1_000 + i, FUNDING, WALLET, 1 + i))

            if kind == "async":
                outcomes = await asyncio.gather(*(pay(i) for i in range(callers)))
            else:
                outcomes = await threads_calling(c.client.create_transfer, callers)
            assert [(o.result, o.amount) for o in outcomes] == [(T.OK, 1 + i) for i in range(callers)]
            assert len({o.timestamp for o in outcomes}) == callers
            requests = c.calls.of("CreateTransfersPacked")
            assert sum(requests) == callers
            assert len(c.calls.sent) - sent_before == len(requests) < callers / 4, requests

            # Lookups too, each caller getting the record it asked for.
            looked = (
                await asyncio.gather(*(c("lookup_transfer", 1_000 + i) for i in range(callers)))
                if kind == "async"
                else await threads_calling(c.client.lookup_transfer, callers, ids=True)
            )
            assert [t.amount for t in looked] == [1 + i for i in range(callers)]
            assert len(c.calls.of("LookupTransfers")) < callers / 4

    with_server(store_url, body)


async def threads_calling(method: Callable[..., Any], count: int, *, ids: bool = False) -> list[Any]:
    """`count` calls from 32 threads at once, results by index."""
    results: list[Any] = [None] * count

    def work(worker: int) -> None:
        for i in range(worker, count, 32):
            results[i] = method(1_000 + i) if ids else method(move(1_000 + i, FUNDING, WALLET, 1 + i))

    def run() -> None:
        threads = [threading.Thread(target=work, args=(w,)) for w in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    await asyncio.to_thread(run)
    return results


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_linked_chains_of_concurrent_callers_are_never_merged(store_url: str, kind: str) -> None:
    """A caller whose last transfer has LINKED (a chain left open) must get LINKED_EVENT_CHAIN_OPEN, as alone;
    a merged batch would close its chain with the next caller's transfer and apply both."""

    async def body(port: int) -> None:
        async with either(kind, config(port, batch_in_flight_max=1)) as c:
            await c("create_accounts", [
                Account(id=FUNDING, ledger=LEDGER, code=1),
                Account(id=WALLET, ledger=LEDGER, code=2, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
                Account(id=REVENUE, ledger=LEDGER, code=3),
            ])  # fmt: skip
            await c("create_transfer", move(1, FUNDING, WALLET, 100))

            def call(i: int) -> list[Transfer]:
                base = 1_000 + 10 * i
                if i % 5 == 0:  # an open chain
                    return [move(base, FUNDING, REVENUE, 1, flags=TransferFlags.LINKED)]
                if i % 5 == 1:  # a chain whose second transfer fails: neither applies
                    return [
                        move(base, FUNDING, REVENUE, 1, flags=TransferFlags.LINKED),
                        move(base + 1, WALLET, REVENUE, 10**6),
                    ]
                if i % 5 == 2:  # a whole chain that succeeds
                    return [
                        move(base, FUNDING, REVENUE, 1, flags=TransferFlags.LINKED),
                        move(base + 1, FUNDING, REVENUE, 1),
                    ]
                return [move(base, FUNDING, REVENUE, 1)]

            expected = {
                0: [T.LINKED_EVENT_CHAIN_OPEN],
                1: [T.LINKED_EVENT_FAILED, T.EXCEEDS_CREDITS],
                2: [T.OK, T.OK],
                3: [T.OK],
                4: [T.OK],
            }
            callers = 200
            if kind == "async":
                outcomes = await asyncio.gather(*(c("create_transfers", call(i)) for i in range(callers)))
            else:
                outcomes = await asyncio.to_thread(
                    threads_each, c.client.create_transfers, [call(i) for i in range(callers)]
                )
            for i, outcome in enumerate(outcomes):
                assert [o.result for o in outcome] == expected[i % 5], (i, outcome)
            # Requests were shared, and every open chain ended its request.
            requests = [r for r in c.calls.requests if isinstance(r, ledger_pb2.PackedTransfers)][1:]
            assert len(requests) < callers / 2
            for request in requests:
                records = split_records(request.records)
                for i, record in enumerate(records[:-1]):
                    if Transfer.unpack(record).flags & TransferFlags.LINKED:
                        assert _same_call(record, records[i + 1]), "a chain ran into another caller's transfers"

    with_server(store_url, body)


def split_records(records: bytes) -> list[bytes]:
    return [records[i : i + 128] for i in range(0, len(records), 128)]


def _same_call(record: bytes, following: bytes) -> bool:
    """Whether two transfers belong to the same call (each call's ids share their tens)."""
    return Transfer.unpack(record).id // 10 == Transfer.unpack(following).id // 10


def threads_each(method: Callable[[Any], Any], arguments: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(arguments)

    def work(worker: int) -> None:
        for i in range(worker, len(arguments), 16):
            results[i] = method(arguments[i])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_long_calls_are_cut_into_requests_between_chains(store_url: str, kind: str) -> None:
    async def body(port: int) -> None:
        async with either(kind, config(port, bulk_in_flight_max=2)) as c:
            await c("create_accounts", [Account(id=i, ledger=LEDGER, code=1) for i in (FUNDING, WALLET)])
            # 20,000 transfers with a chain of 10 across the first 8190: the first request ends before it.
            transfers = [move(100_000 + i, FUNDING, WALLET, 1) for i in range(20_000)]
            for i in range(8_185, 8_194):
                transfers[i] = move(100_000 + i, FUNDING, WALLET, 1, flags=TransferFlags.LINKED)
            # One request at a time: applied in order across requests too.
            outcomes = await c("create_transfers", transfers, in_flight=1)
            assert [o.result for o in outcomes] == [T.OK] * 20_000
            assert c.calls.of("CreateTransfersPacked") == [8_185, 8_190, 3_625]
            timestamps = [o.timestamp for o in outcomes]
            assert timestamps == sorted(timestamps)
            # Packed in, packed out, two requests in flight at once, results in the order sent.
            results = unpack_transfer_results(await c("create_transfers_packed", pack_transfers(transfers)))
            assert [(r.result, r.timestamp) for r in results] == [(T.EXISTS, t) for t in timestamps]
            assert sorted(c.calls.of("CreateTransfersPacked")[3:]) == [3_625, 8_185, 8_190]
            with pytest.raises(ValueError, match="in_flight must be between 1 and 64, got 0"):
                await c("create_transfers", transfers, in_flight=0)
            # Lookups of more than 8190 ids, and accounts past 8190 likewise.
            found = await c("lookup_transfers", [100_000 + i for i in range(9_000)])
            assert [t.id for t in found] == [100_000 + i for i in range(9_000)]
            assert sorted(c.calls.of("LookupTransfers")) == [810, 8_190]
            # A chain longer than one request cannot be all-or-nothing: refused before anything is sent.
            sent = len(c.calls.sent)
            chain = [move(200_000 + i, FUNDING, WALLET, 1, flags=TransferFlags.LINKED) for i in range(8_191)]
            with pytest.raises(ValueError, match="events 0 to 8189 are one linked chain"):
                await c("create_transfers", [*chain, move(300_000, FUNDING, WALLET, 1)])
            assert len(c.calls.sent) == sent

    with_server(store_url, body)


def test_more_than_one_request_of_accounts(tmp_path: Path) -> None:
    async def body(port: int) -> None:
        async with either("sync", config(port)) as c:
            outcomes = await c("create_accounts", [Account(id=1 + i, ledger=LEDGER, code=1) for i in range(9_000)])
            assert [o.result for o in outcomes] == [CreateAccountResult.OK] * 9_000
            assert sorted(c.calls.of("CreateAccounts")) == [810, 8_190]

    async def run() -> None:
        config_ = LedgerConfig(store=f"sqlite:///{tmp_path / 'j.sqlite3'}", accounts_max=10_000, transfers_max=100)
        async with await Ledger.open(config_) as ledger:
            server, port, _ = await start_server(ledger)
            try:
                await body(port)
            finally:
                await server.stop(None)

    asyncio.run(run())


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_bad_input_is_named_and_nothing_is_sent(tmp_path: Path, kind: str) -> None:
    async def body(port: int) -> None:
        async with either(kind, config(port)) as c:
            good = move(1, FUNDING, WALLET, 1)
            with pytest.raises(ValueError, match=r"transfers\[1\]\.amount: -5 is out of range"):
                await c("create_transfers", [good, move(2, FUNDING, WALLET, -5)])
            with pytest.raises(TypeError, match=r"transfers\[0\]\.code: expected an integer, got UUID"):
                await c("create_transfers", [{"id": 3, "code": uuid.uuid4()}])
            with pytest.raises(ValueError, match=r"accounts\[0\]: unknown field colour"):
                await c("create_accounts", [{"id": 3, "colour": "red"}])
            with pytest.raises(ValueError, match=r"filter\.limit: 9000 exceeds"):
                await c("get_account_transfers", AccountFilter(account_id=1, limit=9_000))
            with pytest.raises(ValueError, match="not a whole number of 128-byte"):
                await c("create_transfers_packed", bytes(100))
            assert c.calls.sent == []

    with_server(f"sqlite:///{tmp_path / 'j.sqlite3'}", body)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_invalid_argument_is_raised_at_once_with_the_servers_message(tmp_path: Path, kind: str) -> None:
    async def body(port: int) -> None:
        async with either(kind, config(port)) as c:
            with pytest.raises(LedgerInvalidArgument, match="account_id") as info:
                await c("get_account_transfers", AccountFilter(account_id=0))
            assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "account_id" in info.value.message
            assert c.calls.sent == [("GetAccountTransfers", 1)]  # one attempt: never retried

    with_server(f"sqlite:///{tmp_path / 'j.sqlite3'}", body)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_server_that_is_down_gives_a_definite_timeout_at_the_deadline(kind: str) -> None:
    async def body() -> None:
        async with either(kind, config(free_port(), retry_backoff_initial_seconds=0.02)) as c:
            started = time.monotonic()
            with pytest.raises(LedgerTimeout) as info:
                await c("create_transfer", move(1, FUNDING, WALLET, 1), timeout=0.6)
            elapsed = time.monotonic() - started
            assert 0.55 <= elapsed < 2.0
            assert info.value.attempts is not None and info.value.attempts > 2
            assert info.value.last_code == grpc.StatusCode.UNAVAILABLE
            assert "outcome is unknown" in str(info.value) and "same ids is safe" in str(info.value)
            # Every attempt sent the same transfer.
            assert {bytes(r.records) for r in c.calls.requests} == {pack_transfers([move(1, FUNDING, WALLET, 1)])}
            # A read without a batcher behind it ends the same way.
            with pytest.raises(LedgerTimeout):
                await c("get_account_transfers", AccountFilter(account_id=1), timeout=0.2)

    asyncio.run(body())


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_wait_for_server_says_at_once_that_nobody_answers_and_sends_nothing(tmp_path: Path, kind: str) -> None:
    async def nobody() -> None:
        address = f"127.0.0.1:{free_port()}"
        async with either(kind, ClientConfig(server=address, write_stream=False)) as c:
            started = time.monotonic()
            with pytest.raises(LedgerUnreachable, match=f"cannot reach {address}: .*; nothing was sent"):
                await c("wait_for_server", 5)
            assert time.monotonic() - started < 2.5 and c.calls.requests == []

    async def served(port: int) -> None:
        async with either(kind, config(port)) as c:
            await c("wait_for_server", 5)
            assert await c("health") == "SERVING" and await c("health", "ledger.v1.Ledger") == "SERVING"
            info = await c("server_info")
            assert (info.version, info.engine, info.auth_required, info.accounts_count) == (
                __version__, IMPLEMENTATION, False, 0,
            )  # fmt: skip
            assert info.store is not None and info.store.startswith("sqlite:") and info.key_id == ""

    asyncio.run(nobody())
    with_server(f"sqlite:///{tmp_path / 'j.sqlite3'}", served)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_call_waits_out_a_server_that_starts_late_or_restarts(store_url: str, kind: str) -> None:
    async def body() -> None:
        port = free_port()
        async with (
            await Ledger.open(ledger_config(store_url)) as ledger,
            either(kind, config(port, retry_backoff_initial_seconds=0.02, retry_backoff_max_seconds=0.2)) as c,
        ):
            call = asyncio.create_task(c("create_account", Account(id=FUNDING, ledger=LEDGER, code=1), timeout=20))
            await asyncio.sleep(0.5)
            assert not call.done()
            server, _, _ = await start_server(ledger, f"127.0.0.1:{port}")
            assert (await call).result == CreateAccountResult.OK
            assert len(c.calls.of("CreateAccounts")) > 1  # it was retried
            # Stop the server; a call retries with the same ids until it is back, then gets EXISTS.
            await server.stop(None)
            attempts = len(c.calls.sent)
            call = asyncio.create_task(c("create_account", Account(id=FUNDING, ledger=LEDGER, code=1), timeout=20))
            await asyncio.sleep(0.5)
            assert not call.done() and len(c.calls.sent) > attempts + 1
            server, _, _ = await start_server(ledger, f"127.0.0.1:{port}")
            try:
                assert (await call).result == CreateAccountResult.EXISTS
            finally:
                await server.stop(None)

    asyncio.run(body())


class FlakyLedger(ledger_pb2_grpc.LedgerServicer):  # type: ignore[misc]
    """Refuses the first `failures` calls with `code`, then answers every transfer OK."""

    def __init__(self, code: grpc.StatusCode, failures: int) -> None:
        self.code = code
        self.failures = failures
        self.received: list[bytes] = []

    async def CreateTransfersPacked(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.received.append(request.records)
        if len(self.received) <= self.failures:
            await context.abort(self.code, f"refused with {self.code.name} on purpose")
        count = len(request.records) // 128
        return ledger_pb2.PackedTransferResults(results=bytes.fromhex("01000000" + "00" * 20) * count)


@contextlib.asynccontextmanager
async def fake_server(servicer: Any, *, interceptors: Any = ()) -> AsyncIterator[int]:
    server = grpc.aio.server(interceptors=list(interceptors))
    if isinstance(servicer, LedgerService):
        add_ledger_service(servicer, server)
    else:
        ledger_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_transient_refusals_are_retried_with_the_same_ids(kind: str, code: grpc.StatusCode) -> None:
    async def body() -> None:
        servicer = FlakyLedger(code, failures=3)
        async with fake_server(servicer) as port, either(kind, config(port, retry_backoff_initial_seconds=0.01)) as c:
            outcome = await c("create_transfer", move(7, FUNDING, WALLET, 1), timeout=10)
            assert outcome.result == T.OK
            assert len(servicer.received) == 4 and len(set(servicer.received)) == 1

    asyncio.run(body())


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, LedgerInvalidArgument),
        (grpc.StatusCode.PERMISSION_DENIED, LedgerPermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, LedgerUnauthenticated),
    ],
)
def test_refusals_are_raised_at_once_as_typed_errors(kind: str, code: grpc.StatusCode, error: type[Exception]) -> None:
    async def body() -> None:
        servicer = FlakyLedger(code, failures=1)
        async with fake_server(servicer) as port, either(kind, config(port)) as c:
            with pytest.raises(error, match=f"refused with {code.name} on purpose"):
                await c("create_transfer", move(7, FUNDING, WALLET, 1), timeout=10)
            assert len(servicer.received) == 1

    asyncio.run(body())


class RequireKey(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The server side of API keys as the contract has it: `authorization: Bearer <key>` on every call."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: list[str | None] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        given = dict(details.invocation_metadata).get("authorization")
        self.seen.append(given)
        if given is None:
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, "no API key: send authorization: Bearer <key>")
        if given != f"Bearer {self.key}":
            return _refusal(grpc.StatusCode.PERMISSION_DENIED, "this API key may not call the ledger")
        return await continuation(details)


def _refusal(code: grpc.StatusCode, message: str) -> Any:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refuse)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_the_api_key_goes_with_every_call(tmp_path: Path, kind: str) -> None:
    async def body() -> None:
        guard = RequireKey("s3cret")
        async with (
            await Ledger.open(ledger_config(f"sqlite:///{tmp_path / 'j.sqlite3'}")) as ledger,
            fake_server(LedgerService(ledger), interceptors=[guard]) as port,
        ):
            async with either(kind, config(port, api_key="s3cret")) as c:
                await c("create_account", Account(id=1, ledger=LEDGER, code=1))
                await c("lookup_account", 1)
                await c("get_account_transfers", AccountFilter(account_id=1))
            assert guard.seen == ["Bearer s3cret"] * 3
            async with either(kind, config(port)) as c:
                with pytest.raises(LedgerUnauthenticated, match="no API key"):
                    await c("lookup_account", 1)
            async with either(kind, config(port, api_key="wrong")) as c:
                with pytest.raises(LedgerPermissionDenied, match="may not call"):
                    await c("create_account", Account(id=2, ledger=LEDGER, code=1))
            assert len(guard.seen) == 5  # neither refusal was retried

    asyncio.run(body())


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=test ledger CA")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return {name: directory / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_tls_and_mutual_tls(tmp_path: Path, kind: str) -> None:
    files = make_certificates(tmp_path)
    server_credentials = grpc.ssl_server_credentials(
        [(files["server.key"].read_bytes(), files["server.pem"].read_bytes())],
        root_certificates=files["ca.pem"].read_bytes(),
        require_client_auth=True,
    )

    async def body() -> None:
        async with await Ledger.open(ledger_config(f"sqlite:///{tmp_path / 'j.sqlite3'}")) as ledger:
            server = grpc.aio.server()
            add_ledger_service(LedgerService(ledger), server)
            port = server.add_secure_port("127.0.0.1:0", server_credentials)
            await server.start()
            try:
                mutual = config(port, tls_ca=files["ca.pem"], tls_cert=files["client.pem"], tls_key=files["client.key"])
                async with either(kind, mutual) as c:
                    assert (
                        await c("create_account", Account(id=1, ledger=LEDGER, code=1))
                    ).result == CreateAccountResult.OK
                # Without a client certificate the handshake fails: unavailable until the deadline.
                async with either(kind, config(port, tls_ca=files["ca.pem"])) as c:
                    with pytest.raises(LedgerTimeout):
                        await c("lookup_account", 1, timeout=0.5)
            finally:
                await server.stop(None)

    asyncio.run(body())


def test_closed_clients_refuse_calls(tmp_path: Path) -> None:
    async def body(port: int) -> None:
        client = AsyncClient(config(port))
        await client.close()
        with pytest.raises(LedgerClosed):
            await client.create_transfer(move(1, FUNDING, WALLET, 1))
        sync = Client(config(port))
        sync.close()
        with pytest.raises(LedgerClosed):
            await asyncio.to_thread(sync.create_transfer, move(1, FUNDING, WALLET, 1))

    with_server(f"sqlite:///{tmp_path / 'j.sqlite3'}", body)


def test_message_limit_matches_the_server() -> None:
    from ledger.client import MESSAGE_BYTES_MAX as CLIENT_MESSAGE_BYTES_MAX

    assert CLIENT_MESSAGE_BYTES_MAX == MESSAGE_BYTES_MAX
