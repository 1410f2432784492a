"""The Ledger gRPC service in process, on port 0, over both stores: typed and packed writes, lookups,
history pages, health and reflection, and request-level failures as statuses naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import Transfer, pack_transfers, unpack_transfer_results
from ledger.server import SERVICE_NAME, start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

LEDGER = 978
FUNDING, WALLET, REVENUE = 1, 2, 3
OK, EXISTS, EXCEEDS_CREDITS = 1, 20, 61
ID_MUST_NOT_BE_ZERO = 7


def u128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & (2**64 - 1), hi=value >> 64)


def transfer(transfer_id: int, debit: int, credit: int, amount: int, **fields: Any) -> types_pb2.Transfer:
    fields.setdefault("code", 1)
    return types_pb2.Transfer(id=u128(transfer_id), debit_account_id=u128(debit), credit_account_id=u128(credit),
                              amount=amount, ledger=LEDGER, **fields)  # fmt: skip


def with_server(
    store_url: str, body: Callable[[ledger_pb2_grpc.LedgerStub, grpc.aio.Channel], Awaitable[None]]
) -> None:
    async def run() -> None:
        config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=100_000, pending_transfers_max=100)
        async with await Ledger.open(config) as ledger:
            server, port, _ = await start_server(ledger)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    await body(ledger_pb2_grpc.LedgerStub(channel), channel)
            finally:
                await server.stop(None)

    asyncio.run(run())


async def open_books(stub: ledger_pb2_grpc.LedgerStub) -> None:
    accounts = [
        types_pb2.Account(id=u128(FUNDING), ledger=LEDGER, code=1),
        types_pb2.Account(id=u128(WALLET), ledger=LEDGER, code=2, flags=2 | 8),  # no overdraft, history
        types_pb2.Account(id=u128(REVENUE), ledger=LEDGER, code=3),
    ]
    response = await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts))
    assert [r.result for r in response.results] == [OK] * 3
    assert all(r.timestamp > 0 for r in response.results)


def test_money_moves_through_the_service(store_url: str) -> None:
    async def body(stub: ledger_pb2_grpc.LedgerStub, _: grpc.aio.Channel) -> None:
        await open_books(stub)
        request = ledger_pb2.CreateTransfersRequest(
            transfers=[transfer(10, FUNDING, WALLET, 5_000), transfer(11, WALLET, REVENUE, 9_000, flags=16)]
        )
        response = await stub.CreateTransfers(request)
        assert [(r.result, r.amount) for r in response.results] == [(OK, 5_000), (OK, 5_000)]  # balancing: 5,000 moved
        retried = await stub.CreateTransfers(request)
        assert [(r.result, r.amount) for r in retried.results] == [(EXISTS, 5_000), (EXISTS, 5_000)]
        packed = pack_transfers([Transfer(id=12, debit_account_id=WALLET, credit_account_id=REVENUE, amount=1,
                                          ledger=LEDGER, code=1)])  # fmt: skip
        results = await stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=packed))
        assert [r.result for r in unpack_transfer_results(results.results)] == [EXCEEDS_CREDITS]
        found = await stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(WALLET), u128(99)]))
        [wallet] = found.accounts
        assert (wallet.credits_posted, wallet.debits_posted) == (5_000, 5_000)
        found_transfers = await stub.LookupTransfers(ledger_pb2.LookupRequest(ids=[u128(11)]))
        assert found_transfers.transfers[0].amount == 5_000
        # History, a page at a time.
        page = await stub.GetAccountTransfers(ledger_pb2.AccountFilter(account_id=u128(WALLET), limit=1))
        assert [t.id.lo for t in page.transfers] == [10] and page.HasField("next")
        page = await stub.GetAccountTransfers(page.next)
        assert [t.id.lo for t in page.transfers] == [11]
        balances = await stub.GetAccountBalances(ledger_pb2.AccountFilter(account_id=u128(WALLET)))
        assert [(b.credits_posted, b.debits_posted) for b in balances.balances] == [(5_000, 0), (5_000, 5_000)]
        assert not balances.HasField("next")

    with_server(store_url, body)


async def status_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


def test_malformed_requests_get_a_status_naming_the_problem(tmp_path: Any) -> None:
    async def body(stub: ledger_pb2_grpc.LedgerStub, channel: grpc.aio.Channel) -> None:
        await open_books(stub)
        too_many = ledger_pb2.CreateTransfersRequest(transfers=[transfer(1, FUNDING, WALLET, 1)] * 8191)
        assert await status_of(stub.CreateTransfers(too_many)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "CreateTransfers: transfers: 8191 items exceeds the limit of 8190 per request",
        )
        code, message = await status_of(
            stub.CreateTransfers(
                ledger_pb2.CreateTransfersRequest(transfers=[transfer(1, FUNDING, WALLET, 1, code=70_000)])
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "transfers.code[0]" in message
        code, message = await status_of(stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=bytes(100))))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "128-byte records" in message
        code, message = await status_of(stub.GetAccountTransfers(ledger_pb2.AccountFilter(limit=5)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "account_id" in message
        code, message = await status_of(stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(1)] * 8191)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "ids" in message
        # Bytes that are not a protobuf message at all, sent as they are.
        raw = channel.unary_unary("/ledger.v1.Ledger/CreateTransfers")
        valid = ledger_pb2.CreateTransfersRequest(transfers=[transfer(1, FUNDING, WALLET, 1)]).SerializeToString()
        for broken in (valid[:-3], b"\x0a\xff\xff\xff\xff\x0f", b"\x0f"):
            code, message = await status_of(raw(broken))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in message, message
        # Fields the contract does not know are skipped as protobuf skips them; nothing missing is invented.
        unknown = valid + b"\xa0\x06\x01"  # field 100, a varint
        assert await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest.FromString(unknown)) is not None
        # Nothing of any of them was applied except that one, and a transfer with no fields is refused by code.
        empty = await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[types_pb2.Transfer()]))
        assert [r.result for r in empty.results] == [ID_MUST_NOT_BE_ZERO]
        found = await stub.LookupTransfers(ledger_pb2.LookupRequest(ids=[u128(1)]))
        assert [t.amount for t in found.transfers] == [1]

    with_server(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body)


def test_health_and_reflection(tmp_path: Any) -> None:
    async def body(_: ledger_pb2_grpc.LedgerStub, channel: grpc.aio.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for answer in reflection.ServerReflectionInfo(ask()):
            names = {s.name for s in answer.list_services_response.service}
            assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names

    with_server(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body)


def test_a_terminal_stream_is_answered_in_order(store_url: str) -> None:
    async def body(stub: ledger_pb2_grpc.LedgerStub, _: grpc.aio.Channel) -> None:
        await open_books(stub)
        # Top up, then 300 payments sent without waiting: the wallet covers the first 200.
        sent = [transfer(1000, FUNDING, WALLET, 200)] + [transfer(2000 + i, WALLET, REVENUE, 1) for i in range(300)]

        async def requests() -> AsyncIterator[ledger_pb2.TransferStreamRequest]:
            for t in sent:
                yield ledger_pb2.TransferStreamRequest(transfer=t)

        answers = [a.result async for a in stub.TransferStream(requests())]
        assert [a.result for a in answers] == [OK] * 201 + [EXCEEDS_CREDITS] * 100
        timestamps = [a.timestamp for a in answers[:201]]
        assert timestamps == sorted(timestamps)  # applied in stream order
        # A retried stream moves nothing twice.
        again = [a.result.result async for a in stub.TransferStream(requests())]
        assert again[:201] == [EXISTS] * 201

    with_server(store_url, body)


def test_a_bad_message_ends_the_stream_naming_it(tmp_path: Any) -> None:
    async def body(stub: ledger_pb2_grpc.LedgerStub, _: grpc.aio.Channel) -> None:
        await open_books(stub)

        async def requests() -> AsyncIterator[ledger_pb2.TransferStreamRequest]:
            yield ledger_pb2.TransferStreamRequest(transfer=transfer(1, FUNDING, WALLET, 5))
            yield ledger_pb2.TransferStreamRequest(transfer=transfer(2, FUNDING, WALLET, 5, code=70_000))

        stream = stub.TransferStream(requests())
        first = await stream.read()
        assert first.result.result == OK
        code, message = await status_of(stream.read())
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "message 1" in message and "code" in message

    with_server(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body)
