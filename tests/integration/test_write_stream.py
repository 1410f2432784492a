"""TransferBatches and the client's write stream: packed batches on one long-lived stream, applied as they
arrive and answered in order; what ends the stream (shutdown, a revoked key, a bad message) ends it with a
status after answering what it took; the client sends its coalesced writes there, retries on a new stream
what was not answered, and falls back to unary calls on a server without the method."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from ledger.auth import Authenticator, open_key_store
from ledger.client import Account, AsyncClient, ClientConfig, LedgerCallError, Transfer
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import CreateTransferResult, pack_transfers, unpack_transfer_results
from ledger.server import LedgerMetrics, LedgerService, start_server
from ledger.server._servicer import SERVICE_NAME, method_handlers
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

LEDGER = 7
FUNDING, WALLET = 1, 2
OK, EXISTS = CreateTransferResult.OK, CreateTransferResult.EXISTS


def move(transfer_id: int, amount: int = 1) -> Transfer:
    return Transfer(id=transfer_id, debit_account_id=FUNDING, credit_account_id=WALLET, amount=amount,
                    ledger=LEDGER, code=1)  # fmt: skip


def served(
    store_url: str,
    body: Callable[[Ledger, int, LedgerMetrics], Awaitable[None]],
    *,
    auth: str = "off",
) -> None:
    async def run() -> None:
        config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=100_000, pending_transfers_max=100,
                              auth=auth, auth_refresh_seconds=0.2)  # fmt: skip
        metrics = LedgerMetrics()
        async with await Ledger.open(config) as ledger:
            authenticator = await Authenticator.open(config)
            server, port, _ = await start_server(ledger, metrics=metrics, auth=authenticator)
            try:
                await body(ledger, port, metrics)
            finally:
                await server.stop(None)
                if authenticator is not None:
                    await authenticator.close()

    asyncio.run(run())


def messages(metrics: LedgerMetrics, direction: str) -> float:
    labels = {"method": f"{SERVICE_NAME}/TransferBatches", "direction": direction}
    return metrics.registry.get_sample_value("ledger_stream_messages_total", labels) or 0.0


async def open_books(client: AsyncClient) -> None:
    outcomes = await client.create_accounts([Account(id=FUNDING, ledger=LEDGER, code=1),
                                             Account(id=WALLET, ledger=LEDGER, code=1)])  # fmt: skip
    assert all(o.result.name == "OK" for o in outcomes)


def test_batches_on_one_stream_are_applied_in_order_and_answered_in_order(store_url: str) -> None:
    async def body(ledger: Ledger, port: int, metrics: LedgerMetrics) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}")) as client:
                await open_books(client)
            stream = stub.TransferBatches()
            batches = [[move(100 * b + i + 1) for i in range(b + 1)] for b in range(5)]
            batches.append([move(1)])  # a retry of the first: EXISTS
            for batch in batches:
                await stream.write(ledger_pb2.PackedTransfers(records=pack_transfers(batch)))
            await stream.done_writing()
            replies = [unpack_transfer_results(r.results) async for r in stream]
            assert [len(r) for r in replies] == [1, 2, 3, 4, 5, 1]
            assert all(r.result == OK for reply in replies[:-1] for r in reply) and replies[-1][0].result == EXISTS
            timestamps = [r.timestamp for reply in replies[:-1] for r in reply]
            assert timestamps == sorted(timestamps)  # applied in stream order
            assert messages(metrics, "received") == 6 and messages(metrics, "sent") == 6

    served(store_url, body)


def test_a_bad_message_ends_the_stream_naming_it_after_answering_the_ones_before(tmp_path: Path) -> None:
    async def body(ledger: Ledger, port: int, metrics: LedgerMetrics) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}")) as client:
                await open_books(client)
            stream = ledger_pb2_grpc.LedgerStub(channel).TransferBatches()
            await stream.write(ledger_pb2.PackedTransfers(records=pack_transfers([move(1)])))
            await stream.write(ledger_pb2.PackedTransfers(records=bytes(100)))  # not whole records
            await stream.done_writing()
            first = await stream.read()
            assert [r.result for r in unpack_transfer_results(first.results)] == [OK]
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stream.read()
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (refused.value.details() or "").startswith("TransferBatches: message 1: ")

    served(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body)


def test_the_client_sends_coalesced_writes_on_the_stream(store_url: str) -> None:
    async def body(ledger: Ledger, port: int, metrics: LedgerMetrics) -> None:
        async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}")) as client:
            await open_books(client)
            outcomes = await asyncio.gather(*(client.create_transfer(move(1_000 + i, 1 + i)) for i in range(200)))
            assert [(o.result, o.amount) for o in outcomes] == [(OK, 1 + i) for i in range(200)]
            alone = await client.create_transfer(move(5_000))
            assert alone.result == OK
            packed = await client.create_transfers_packed(pack_transfers([move(6_000 + i) for i in range(20_000)]))
            results = unpack_transfer_results(packed)
            assert len(results) == 20_000 and all(r.result == OK for r in results)
            again = await client.create_transfer(move(1_000, 1))
            assert again.result == EXISTS
        sent = messages(metrics, "received")
        assert 3 + 3 <= sent < 200 / 4 + 3 + 1, sent  # coalesced, and the packed call cut into three

    served(store_url, body)


def test_a_stream_ended_by_shutdown_answers_what_it_took_and_the_client_goes_on(tmp_path: Path) -> None:
    """The server ends its write streams when it shuts down; the client retries what was not answered on a new
    stream, to the next server on the same journal, and nothing is applied twice."""
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    config = LedgerConfig(store=url, accounts_max=100, transfers_max=100_000, pending_transfers_max=100)

    async def run() -> None:
        ledger = await Ledger.open(config)
        server, port, _ = await start_server(ledger, "127.0.0.1:0")
        client = AsyncClient(ClientConfig(server=f"127.0.0.1:{port}", timeout_seconds=30))
        try:
            await open_books(client)
            assert (await client.create_transfer(move(1))).result == OK

            async def pay(index: int) -> Any:
                return await client.create_transfer(move(10 + index))

            payments = [asyncio.ensure_future(pay(i)) for i in range(50)]
            await asyncio.sleep(0)
            ledger.begin_shutdown()  # as `ledger serve` does on SIGTERM
            await server.stop(5)
            await ledger.close()
            # The same journal served again on the same port.
            reopened = await Ledger.open(config)
            again, _, _ = await start_server(reopened, f"127.0.0.1:{port}")
            try:
                outcomes = await asyncio.gather(*payments)
                assert all(o.result in (OK, EXISTS) for o in outcomes)
                found = await client.lookup_account(WALLET)
                assert found is not None and found.credits_posted == 1 + 50  # each once
            finally:
                await again.stop(None)
                await reopened.close()
        finally:
            await client.close()

    asyncio.run(run())


def test_a_revoked_key_ends_the_clients_write_stream_and_the_call_fails_as_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    keys = open_key_store(url)
    key, token = keys.create_key(tenant="a", role="write", ledgers=[LEDGER])
    keys.close()

    async def body(ledger: Ledger, port: int, metrics: LedgerMetrics) -> None:
        async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}", api_key=token)) as client:
            await open_books(client)
            assert (await client.create_transfer(move(1))).result == OK
            store = open_key_store(url)
            store.revoke(key.key_id)
            store.close()
            with pytest.raises(LedgerCallError) as refused:
                for index in range(2, 1000):
                    await client.create_transfer(move(index))
                    await asyncio.sleep(0.01)
            assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED

    served(url, body, auth="required")


def test_a_server_without_the_stream_gets_unary_calls(tmp_path: Path) -> None:
    async def run() -> None:
        config = LedgerConfig(store=f"sqlite:///{tmp_path / 'journal.sqlite3'}", accounts_max=10,
                              transfers_max=1_000, pending_transfers_max=10)  # fmt: skip
        async with await Ledger.open(config) as ledger:
            server = grpc.aio.server()
            handlers = method_handlers(LedgerService(ledger))
            del handlers["TransferBatches"]  # as a server of an earlier version
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}")) as client:
                    await open_books(client)
                    assert (await client.create_transfer(move(1))).result == OK
                    assert (await client.create_transfer(move(2))).result == OK
                    assert client._write_stream is not None and client._write_stream.unsupported
            finally:
                await server.stop(None)

    asyncio.run(run())


def test_a_stream_that_never_answers_times_the_call_out_and_the_next_call_goes_on_a_new_one() -> None:
    """A reply that does not come by the call's deadline ends the call with LedgerTimeout (its outcome unknown);
    the stream is stuck behind it (replies come in order), so the next call opens a new stream."""
    from ledger.client import LedgerTimeout

    async def run() -> None:
        streams: list[list[bytes]] = []

        async def first_one_silent(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            taken: list[bytes] = []
            streams.append(taken)
            async for request in requests:
                taken.append(request)
                if len(streams) > 1:  # the first stream never answers; the others answer every message
                    count = len(ledger_pb2.PackedTransfers.FromString(request).records) // 128
                    results = (1).to_bytes(4, "little") * 6 * count  # OK, and a timestamp and amount
                    yield ledger_pb2.PackedTransferResults(results=results).SerializeToString()

        server = grpc.aio.server()
        handler = grpc.stream_stream_rpc_method_handler(first_one_silent)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"TransferBatches": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}")) as client:
                with pytest.raises(LedgerTimeout):
                    await client.create_transfer(move(1), timeout=0.3)
                answer = await client.create_transfer(move(2), timeout=5)
                assert answer.result == OK
                # The second call went on a new stream (perhaps after a try on the stuck one, which its caller's
                # deadline may have left open a moment longer: that one ended unanswered and was retried).
                assert len(streams) == 2 and len(streams[1]) == 1
        finally:
            await server.stop(None)

    asyncio.run(run())
