"""pytest-benchmark micro-benchmarks of what API keys add to a call (run: pytest bench/bench_auth.py
--benchmark-enable): checking a call's key, scoping a full batch to a key's ledgers, and a whole call
with and without a key.

In the normal test run benchmarks are disabled and each body runs once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.engine import LEDGER, make_accounts, make_transfers
from ledger.auth import Authenticator, Permission, ScopedLedger, open_key_store
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import Account, Buffer, EngineConfig, pack_accounts, pack_ids, unpack_transfer_results
from ledger.journal import AccountFilter, BalancesPage, TransfersPage
from ledger.records.layout import TRANSFER_RESULT_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.server import start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from tests.support import ENGINE_CLASSES, ManualClock

ACCOUNTS = 10_000
METHOD = "/ledger.v1.Ledger/CreateTransfers"


class Answered:
    """A ledger that answers at once with the results given: what is measured is the scoping alone."""

    def __init__(self, results: bytes, engine: Any) -> None:
        self.results = results
        self.engine = engine

    async def create_accounts(self, events: Buffer) -> bytes:
        raise AssertionError("not benchmarked")

    async def create_transfers(self, events: Buffer) -> bytes:
        return self.results

    async def lookup_accounts(self, ids: Buffer) -> bytes:
        return bytes(self.engine.lookup_accounts(ids))

    async def lookup_transfers(self, ids: Buffer) -> bytes:
        return bytes(self.engine.lookup_transfers(ids))

    async def get_account_transfers(self, f: AccountFilter, *, caller: Hashable = None) -> TransfersPage:
        raise AssertionError("not benchmarked")

    async def get_account_balances(self, f: AccountFilter, *, caller: Hashable = None) -> BalancesPage:
        raise AssertionError("not benchmarked")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=list(ENGINE_CLASSES))
def engine(request: pytest.FixtureRequest) -> Any:
    config = EngineConfig(accounts_max=ACCOUNTS, transfers_max=2 * BATCH_EVENTS_MAX)
    engine = ENGINE_CLASSES[request.param](config, clock=ManualClock())
    for batch in make_accounts(ACCOUNTS):
        engine.create_accounts(batch)
    return engine


@pytest.mark.parametrize("outcome", ["ok", "exists"])
def test_scope_a_full_batch(benchmark: Any, loop: asyncio.AbstractEventLoop, engine: Any, outcome: str) -> None:
    """8190 transfers checked against the key's ledgers, and their results reviewed.

    "ok": every transfer applied, nothing to look up (the common case). "exists": a retried batch, every
    result an EXISTS whose stored transfer is looked up to see whose it is (the worst case).
    """
    batch = make_transfers(BATCH_EVENTS_MAX, ACCOUNTS, "uniform", BATCH_EVENTS_MAX, 7, 1)[0]
    applied = engine.create_transfers(batch).results
    code = 1 if outcome == "ok" else 20
    results = b"".join(TRANSFER_RESULT_STRUCT.pack(code, 0, 1, 1) for _ in range(BATCH_EVENTS_MAX))
    assert set(bytes(applied)[0::24]) == {1}  # the ids exist, for the lookups of "exists"
    view = ScopedLedger(Answered(results, engine), frozenset({LEDGER}))
    scoped = benchmark(lambda: loop.run_until_complete(view.create_transfers(batch)))
    assert [r.result for r in unpack_transfer_results(scoped)] == [code] * BATCH_EVENTS_MAX


def test_lookup_through_a_scope(benchmark: Any, loop: asyncio.AbstractEventLoop, engine: Any) -> None:
    """8190 accounts looked up and filtered by ledger."""
    view = ScopedLedger(Answered(b"", engine), frozenset({LEDGER}))
    ids = pack_ids(list(range(1, BATCH_EVENTS_MAX + 1)))
    found = benchmark(lambda: loop.run_until_complete(view.lookup_accounts(ids)))
    assert len(found) == BATCH_EVENTS_MAX * 128


def test_check_a_key(benchmark: Any, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    """One call's key: parsed, found in the cache, its secret hashed and compared, its role checked."""
    store = open_key_store(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    _, token = store.create_key(tenant="a", role="write", ledgers=[LEDGER])
    auth = Authenticator(store, policy="required", refresh_seconds=60)
    loop.run_until_complete(auth.start())
    metadata = (("user-agent", "grpc-python"), ("authorization", f"Bearer {token}"))
    try:
        principal = benchmark(
            lambda: loop.run_until_complete(auth.authenticate(metadata, METHOD, Permission.LEDGER_WRITE))
        )
        assert principal is not None and principal.tenant == "a"
    finally:
        loop.run_until_complete(auth.close())


@pytest.mark.parametrize("policy", ["off", "required"])
def test_a_call_with_and_without_a_key(
    benchmark: Any, loop: asyncio.AbstractEventLoop, tmp_path: Path, policy: str
) -> None:
    """One LookupAccounts round trip through an in-process server (client and server on one loop), without
    auth and with a key checked and the answer scoped to its ledger: the per-call cost of auth."""
    store_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    store = open_key_store(store_url)
    _, token = store.create_key(tenant="a", role="read", ledgers=[LEDGER])
    store.close()
    config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=1_000, pending_transfers_max=10, auth=policy)

    async def start() -> tuple[Ledger, Authenticator | None, grpc.aio.Server, grpc.aio.Channel]:
        ledger = await Ledger.open(config)
        await ledger.create_accounts(pack_accounts([Account(id=1, ledger=LEDGER, code=1)]))
        auth = await Authenticator.open(config)
        server, port, _ = await start_server(ledger, auth=auth)
        return ledger, auth, server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    ledger, auth, server, channel = loop.run_until_complete(start())
    stub = ledger_pb2_grpc.LedgerStub(channel)
    request = ledger_pb2.LookupRequest(ids=[types_pb2.Uint128(lo=1)])
    metadata = (("authorization", f"Bearer {token}"),)

    async def call() -> ledger_pb2.LookupAccountsResponse:
        return await stub.LookupAccounts(request, metadata=metadata)  # made inside the loop, as grpc.aio wants

    try:
        found = benchmark(lambda: loop.run_until_complete(call()))
        assert [a.id.lo for a in found.accounts] == [1]
    finally:

        async def stop() -> None:
            await channel.close()
            await server.stop(None)
            if auth is not None:
                await auth.close()
            await ledger.close()

        loop.run_until_complete(stop())
