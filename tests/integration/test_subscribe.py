"""SubscribeTransfers: committed transfers from a timestamp, from the store and then live, resumable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from ledger.config import LedgerConfig
from ledger.core import Ledger, _ledger
from ledger.server import _servicer, start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from tests.integration.test_grpc import FUNDING, WALLET, open_books, transfer

Body = Callable[[ledger_pb2_grpc.LedgerStub, Ledger], Awaitable[None]]


def with_ledger_server(store_url: str, body: Body, **overrides: Any) -> None:
    async def run() -> None:
        config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=100_000, pending_transfers_max=100)
        async with await Ledger.open(config) as ledger:
            server, port, _ = await start_server(ledger)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    await body(ledger_pb2_grpc.LedgerStub(channel), ledger)
            finally:
                await server.stop(None)

    asyncio.run(run())


async def top_ups(stub: ledger_pb2_grpc.LedgerStub, first_id: int, calls: int, per_call: int = 3) -> list[int]:
    """`calls` calls of `per_call` top-ups; the ids in commit order."""
    ids = []
    for c in range(calls):
        batch = [transfer(first_id + c * per_call + i, FUNDING, WALLET, 100 + i) for i in range(per_call)]
        await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=batch))
        ids += [t.id.lo for t in batch]
    return ids


async def receive(stream: Any, count: int) -> list[types_pb2.Transfer]:
    received: list[types_pb2.Transfer] = []
    while len(received) < count:
        message = await asyncio.wait_for(stream.read(), 10)
        assert message is not grpc.aio.EOF
        assert 0 < len(message.transfers) <= 8190
        received += message.transfers
    return received


def check_order(transfers: list[types_pb2.Transfer]) -> None:
    timestamps = [t.timestamp for t in transfers]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)


def test_from_the_beginning_then_live(store_url: str) -> None:
    async def body(stub: ledger_pb2_grpc.LedgerStub, _: Ledger) -> None:
        await open_books(stub)
        past = await top_ups(stub, 100, calls=5)
        stream = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(timestamp_min=0))
        received = await receive(stream, len(past))
        assert [t.id.lo for t in received] == past
        live = await top_ups(stub, 200, calls=4)
        received += await receive(stream, len(live))
        assert [t.id.lo for t in received] == past + live
        check_order(received)
        assert all(t.ledger == 978 and t.amount >= 100 for t in received)
        stream.cancel()

    with_ledger_server(store_url, body)


def test_from_a_timestamp_and_resumed_after_a_broken_stream(store_url: str) -> None:
    async def body(stub: ledger_pb2_grpc.LedgerStub, _: Ledger) -> None:
        await open_books(stub)
        ids = await top_ups(stub, 100, calls=6)
        everything = await receive(stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest()), len(ids))
        middle = everything[7]
        stream = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(timestamp_min=middle.timestamp))
        first = (await receive(stream, 4))[:4]  # whole messages: maybe more
        assert [t.id.lo for t in first] == ids[7:11]  # the commit holding `middle` is cut at `middle`
        stream.cancel()
        more = await top_ups(stub, 300, calls=2)
        resumed = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(timestamp_min=first[-1].timestamp + 1))
        rest = await receive(resumed, len(ids) - 11 + len(more))
        assert [t.id.lo for t in rest] == ids[11:] + more
        resumed.cancel()
        future = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(timestamp_min=2**64 - 1))
        later = await top_ups(stub, 400, calls=1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(future.read(), 0.5)  # nothing at or after the end of time
        assert later
        future.cancel()

    with_ledger_server(store_url, body)


def test_a_subscriber_that_falls_behind_catches_up_from_the_store(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ledger, "SUBSCRIBER_COMMITS_MAX", 2)
    monkeypatch.setattr(_ledger, "SUBSCRIBER_SCAN_COMMITS", 3)

    async def body(stub: ledger_pb2_grpc.LedgerStub, ledger: Ledger) -> None:
        await open_books(stub)
        reads_from_store: list[int] = []
        read_commits = ledger._read_commits
        monkeypatch.setattr(ledger, "_read_commits", lambda seq: reads_from_store.append(seq) or read_commits(seq))
        feed = aiter(ledger.subscribe_transfers(0))
        first = await top_ups(stub, 100, calls=1)
        received = [await anext(feed)]
        reads_before = len(reads_from_store)
        many = await top_ups(stub, 200, calls=12)  # the feed is not read meanwhile: it overflows
        while sum(len(r) for r in received) < (len(first) + len(many)) * 128:
            received.append(await asyncio.wait_for(anext(feed), 10))
        records = b"".join(received)
        ids = [int.from_bytes(records[i : i + 16], "little") for i in range(0, len(records), 128)]
        assert ids == first + many
        assert len(reads_from_store) - reads_before >= 4  # it went back to the store, 3 commits a read
        await feed.aclose()  # type: ignore[attr-defined]

    with_ledger_server(store_url, body)


def test_large_commits_span_several_messages(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_servicer, "SUBSCRIBE_MESSAGE_BYTES_MAX", 2 * 128)

    async def body(stub: ledger_pb2_grpc.LedgerStub, _: Ledger) -> None:
        await open_books(stub)
        ids = await top_ups(stub, 100, calls=1, per_call=5)
        stream = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest())
        sizes = [len((await stream.read()).transfers) for _ in range(3)]
        assert sizes == [2, 2, 1]
        stream.cancel()
        assert len(ids) == 5

    with_ledger_server(store_url, body)


def test_subscriptions_end_with_unavailable_when_the_ledger_shuts_down(store_url: str) -> None:
    async def body(stub: ledger_pb2_grpc.LedgerStub, ledger: Ledger) -> None:
        await open_books(stub)
        ids = await top_ups(stub, 100, calls=1)
        stream = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest())
        await receive(stream, len(ids))
        ledger.end_subscriptions()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await asyncio.wait_for(stream.read(), 10)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "subscribe again" in str(raised.value.details())

    with_ledger_server(store_url, body)


def test_after_a_restart_everything_comes_from_the_store(store_url: str) -> None:
    ids: list[int] = []

    async def write(stub: ledger_pb2_grpc.LedgerStub, _: Ledger) -> None:
        await open_books(stub)
        ids.extend(await top_ups(stub, 100, calls=3))

    async def read(stub: ledger_pb2_grpc.LedgerStub, _: Ledger) -> None:
        stream = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest())
        assert [t.id.lo for t in await receive(stream, len(ids))] == ids
        stream.cancel()

    with_ledger_server(store_url, write)
    with_ledger_server(store_url, read)
