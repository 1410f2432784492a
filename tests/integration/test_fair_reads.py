"""History reads in turn between callers, over gRPC on port 0: one tenant's flood of large pages neither makes
another tenant's small page wait behind it nor holds up writes, and a caller past its own queue's bound gets
RESOURCE_EXHAUSTED while others do not. The journal's reads are slowed down (a sleep per record fetched) so
that the flood is long whatever the machine, and the order in which the store is read shows whose turn it was.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from ledger.auth import Authenticator
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import CreateTransferResult as TR
from ledger.server import _servicer, start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from tests.integration.test_auth import Metadata, bearer, create_keys, transfer, u128

A, B = 978, 840
FUNDING = {A: 1, B: 11}
WALLET = {A: 2, B: 12}
KEYS = {"a": ("tenant-a", "write", [A]), "b": ("tenant-b", "write", [B])}
FLOOD_PAGE = 4096
"""Transfers per page of the flood: four fetches of 1024 records (READ_STEP_RECORDS) each."""
SMALL_PAGE = 6
SLEEP_PER_RECORD_SECONDS = 20e-6
"""A fetch of 1024 records takes 20 ms however fast the machine."""
CONCURRENT_MAX = 2
PER_CALLER_MAX = 6
FLOODERS = 16
"""Concurrent calls of the flooding tenant: more than its queue holds, and more than any thread pool."""


class SlowReads:
    """A real store whose transfer fetches sleep per record and are logged in the order they start."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.description = inner.description
        self.fetches: list[int] = []
        """Records asked for by each fetch, in order (a small page's fetch asks for SMALL_PAGE)."""
        self.gate = threading.Event()
        """Fetches wait while it is clear."""
        self.gate.set()

    def read_transfers(self, ordinals: Sequence[int]) -> dict[int, bytes]:
        self.gate.wait(30)
        self.fetches.append(len(ordinals))
        time.sleep(len(ordinals) * SLEEP_PER_RECORD_SECONDS)
        return dict(self.inner.read_transfers(ordinals))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Served:
    stub: ledger_pb2_grpc.LedgerStub
    md: dict[str, Metadata]
    """Each tenant's key."""
    store: SlowReads
    target: str
    ledger: Ledger


Body = Callable[[Served], Awaitable[None]]


def serve_slow(store_url: str, body: Body, *, auth: str = "required", **overrides: Any) -> None:
    """A ledger over a SlowReads store, behind gRPC with a write key for each of two tenants."""
    tokens, _ = create_keys(store_url, KEYS)
    metadata = {who: bearer(token) for who, token in tokens.items()}

    async def go() -> None:
        import ledger.core._ledger as module

        settings: dict[str, Any] = {
            "store": store_url, "accounts_max": 100, "transfers_max": 100_000, "pending_transfers_max": 10,
            "auth": auth, "history_reads_concurrent_max": CONCURRENT_MAX,
            "history_reads_per_caller_max": PER_CALLER_MAX,
        }  # fmt: skip
        config = LedgerConfig(**{**settings, **overrides})
        original = module.open_store
        holder: list[SlowReads] = []
        module.open_store = lambda url: holder.append(SlowReads(original(url))) or holder[0]  # type: ignore[assignment]
        try:
            ledger = await Ledger.open(config)
        finally:
            module.open_store = original
        async with ledger:
            authenticator = await Authenticator.open(config) if auth != "off" else None
            server, port, _ = await start_server(ledger, auth=authenticator)
            try:
                target = f"127.0.0.1:{port}"
                async with grpc.aio.insecure_channel(target) as channel:
                    await body(Served(ledger_pb2_grpc.LedgerStub(channel), metadata, holder[0], target, ledger))
            finally:
                await server.stop(None)
                if authenticator is not None:
                    await authenticator.close()

    asyncio.run(go())


async def books(stub: ledger_pb2_grpc.LedgerStub, md: dict[str, Metadata]) -> None:
    """Tenant a's wallet with 2 x FLOOD_PAGE transfers, tenant b's with SMALL_PAGE."""
    for who, ledger in (("a", A), ("b", B)):
        accounts = [types_pb2.Account(id=u128(i), ledger=ledger, code=1) for i in (FUNDING[ledger], WALLET[ledger])]
        await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts), metadata=md[who])
    for start in range(0, 2 * FLOOD_PAGE, 4096):
        batch = [transfer(100_000 + start + i, FUNDING[A], WALLET[A], 1, A) for i in range(4096)]
        await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=batch), metadata=md["a"])
    batch = [transfer(200_000 + i, FUNDING[B], WALLET[B], 1, B) for i in range(SMALL_PAGE)]
    await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=batch), metadata=md["b"])


def page(ledger: int, limit: int) -> ledger_pb2.AccountFilter:
    return ledger_pb2.AccountFilter(account_id=u128(WALLET[ledger]), limit=limit)


async def flood(
    stub: ledger_pb2_grpc.LedgerStub, md: Metadata, until: asyncio.Event, codes: Counter[grpc.StatusCode]
) -> None:
    """Large pages, one call after the other, until told to stop; counts the statuses."""
    while not until.is_set():
        try:
            response = await stub.GetAccountTransfers(page(A, FLOOD_PAGE), metadata=md)
            assert len(response.transfers) == FLOOD_PAGE
            codes[grpc.StatusCode.OK] += 1
        except grpc.aio.AioRpcError as exc:
            codes[exc.code()] += 1
            await asyncio.sleep(0.02)


def test_a_small_page_and_a_write_take_their_turn_beside_a_flood_of_large_pages(store_url: str) -> None:
    async def body(served: Served) -> None:
        stub, md, store = served.stub, served.md, served.store
        await books(stub, md)
        # Where the flood's fetches stand when tenant b's page query joins the queue of reads (once the index
        # holds b's write before it: a read waits for that first, and that is not what is measured here).
        queued: list[int] = []
        reads = served.ledger._reads
        run = reads.run

        async def watched(caller: Any, steps: Any, *, ready: Any = None, **options: Any) -> Any:
            if caller != ("tenant", "tenant-b") or ready is None:
                return await run(caller, steps, ready=ready, **options)

            async def joins() -> None:
                await ready()
                queued.append(len(store.fetches))

            return await run(caller, steps, ready=joins, **options)

        reads.run = watched  # type: ignore[method-assign]
        stop = asyncio.Event()
        codes: Counter[grpc.StatusCode] = Counter()
        flooders = [asyncio.ensure_future(flood(stub, md["a"], stop, codes)) for _ in range(FLOODERS)]
        try:
            while len(store.fetches) < 20:  # the flood is under way: its queue full, both threads busy
                await asyncio.sleep(0.01)
            for attempt in range(3):
                queued.clear()
                small = await stub.GetAccountTransfers(page(B, 100), metadata=md["b"])
                ids = list(range(200_000, 200_000 + SMALL_PAGE)) + list(range(300_000, 300_000 + attempt))
                assert [t.id.lo for t in small.transfers] == ids
                assert not small.HasField("next")
                # Between its turn in the queue and its own fetch, the flood got about one step per thread, not its
                # backlog (PER_CALLER_MAX pages of four fetches each; in arrival order it would wait for most).
                [fetched_before] = queued
                ours = next(i for i, n in enumerate(store.fetches) if i >= fetched_before and n == len(ids))
                assert ours - fetched_before <= 2 * CONCURRENT_MAX, (attempt, store.fetches[fetched_before:])
                write = [transfer(300_000 + attempt, FUNDING[B], WALLET[B], 1, B)]
                request = ledger_pb2.CreateTransfersRequest(transfers=write)
                written = await stub.CreateTransfers(request, metadata=md["b"])
                assert [r.result for r in written.results] == [TR.OK]
                balances = await stub.GetAccountBalances(page(B, 100), metadata=md["b"])
                assert balances.balances == []  # not a HISTORY account; answered in its turn all the same
            assert all(not f.done() for f in flooders)  # the flood went on throughout
        finally:
            stop.set()
            await asyncio.gather(*flooders)
        # The flooder had more calls than its queue holds: the rest were refused at once, and only its own.
        assert codes[grpc.StatusCode.OK] > 0 and codes[grpc.StatusCode.RESOURCE_EXHAUSTED] > 0, codes
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes

    serve_slow(store_url, body)


def test_a_full_queue_refuses_only_its_own_caller_and_names_the_setting(tmp_path: Any) -> None:
    async def body(served: Served) -> None:
        stub, md, store = served.stub, served.md, served.store
        await books(stub, md)
        store.gate.clear()  # no read ends until every call is in
        calls = [
            asyncio.ensure_future(stub.GetAccountTransfers(page(A, FLOOD_PAGE), metadata=md["a"]))
            for _ in range(PER_CALLER_MAX + 3)
        ]
        while sum(call.done() for call in calls) < 3:
            await asyncio.sleep(0.01)
        for call in (call for call in calls if call.done()):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "history_reads_per_caller_max=6" in (refused.value.details() or "")
        # With tenant a's queue full, tenant b is not refused.
        other = asyncio.ensure_future(stub.GetAccountTransfers(page(B, 100), metadata=md["b"]))
        while served.ledger.stats().reads.waiting + served.ledger.stats().reads.running < PER_CALLER_MAX + 1:
            await asyncio.sleep(0.01)
        store.gate.set()
        assert len((await other).transfers) == SMALL_PAGE
        answered = [await call for call in calls if not call.done() or call.exception() is None]
        assert len(answered) == PER_CALLER_MAX and all(len(a.transfers) == FLOOD_PAGE for a in answered)

    serve_slow(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body)


def test_without_keys_each_connection_takes_its_own_turn(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"

    async def body(served: Served) -> None:
        stub, store, reads = served.stub, served.store, served.ledger.stats
        await books(stub, served.md)
        store.gate.clear()  # no read ends until every call is in
        calls = [
            asyncio.ensure_future(stub.GetAccountTransfers(page(A, FLOOD_PAGE))) for _ in range(PER_CALLER_MAX + 2)
        ]
        while sum(call.done() for call in calls) < 2:  # this connection's queue is full: two refused
            await asyncio.sleep(0.01)
        # A connection of its own (channels in one process otherwise share one).
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(served.target, options=options) as other_channel:
            other = asyncio.ensure_future(ledger_pb2_grpc.LedgerStub(other_channel).GetAccountTransfers(page(B, 100)))
            while reads().reads.waiting + reads().reads.running < PER_CALLER_MAX + 1:
                await asyncio.sleep(0.01)
            store.gate.set()
            assert len((await other).transfers) == SMALL_PAGE  # another connection, another queue
        answers = await asyncio.gather(*calls, return_exceptions=True)
        assert sum(isinstance(a, grpc.aio.AioRpcError) for a in answers) == 2

    serve_slow(url, body, auth="off")


def test_replies_are_built_off_the_event_loop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[str] = set()
    convert = _servicer.encode_transfers

    def watched(records: Any) -> bytes:
        threads.add(threading.current_thread().name)
        return convert(records)

    monkeypatch.setattr(_servicer, "encode_transfers", watched)
    # As where the native codec is not built (the protobuf path takes tens of milliseconds for a page); the
    # native codec writes a page in a quarter of a millisecond, on the loop.
    monkeypatch.setattr(_servicer, "NATIVE_REPLIES", False)

    async def body(served: Served) -> None:
        await books(served.stub, served.md)
        response = await served.stub.GetAccountTransfers(page(A, FLOOD_PAGE), metadata=served.md["a"])
        assert len(response.transfers) == FLOOD_PAGE
        assert threads and all(name.startswith("ledger-read") for name in threads), threads

    serve_slow(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body)
