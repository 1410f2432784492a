"""pytest-benchmark of what metrics cost a server (run: pytest bench/bench_metrics.py --benchmark-enable).

Counting a batch's results by code, the interceptor's work for one call, and a
real unary call over gRPC with and without metrics. In the normal test run
benchmarks are disabled and each body runs once, so these also check the paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.records.layout import TRANSFER_RESULT_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.server import LedgerMetrics, count_results, start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

OK, EXCEEDS_CREDITS = 1, 61


@pytest.mark.parametrize("failed_every", [0, 10], ids=["all-ok", "one-in-ten-failed"])
def test_count_results_of_a_full_batch(benchmark: Any, failed_every: int) -> None:
    codes = [EXCEEDS_CREDITS if failed_every and i % failed_every == 0 else OK for i in range(BATCH_EVENTS_MAX)]
    results = b"".join(TRANSFER_RESULT_STRUCT.pack(code, 0, 0, 0) for code in codes)
    counts = benchmark(count_results, results, 24)
    assert sum(counts.values()) == BATCH_EVENTS_MAX and counts[OK] == codes.count(OK)


class _Context:
    """What the interceptor asks of a finished call's context."""

    def code(self) -> None:
        return None

    def cancelled(self) -> bool:
        return False


@pytest.mark.parametrize("intercepted", [False, True], ids=["handler-alone", "intercepted"])
def test_interceptor_per_unary_call(benchmark: Any, intercepted: bool) -> None:
    """A handler that does nothing, alone or found through intercept_service and wrapped: the difference is
    what the interceptor costs a unary call."""
    metrics = LedgerMetrics()
    calls: list[bytes] = []

    async def behavior(request: bytes, context: Any) -> bytes:
        calls.append(request)
        return request

    handler = grpc.unary_unary_rpc_method_handler(behavior)
    details = type("Details", (), {"method": "/ledger.v1.Ledger/LookupAccounts", "invocation_metadata": ()})()

    async def continuation(_: Any) -> grpc.RpcMethodHandler:
        return handler

    async def one_call() -> bytes:
        found = await metrics.interceptor.intercept_service(continuation, details) if intercepted else handler
        response: bytes = await found.unary_unary(b"request", _Context())
        return response

    loop = asyncio.new_event_loop()
    try:
        assert benchmark(lambda: loop.run_until_complete(one_call())) == b"request"
    finally:
        loop.close()
    counted = metrics.registry.get_sample_value(
        "ledger_rpcs_total", {"method": "ledger.v1.Ledger/LookupAccounts", "code": "OK"}
    )
    assert counted == (len(calls) if intercepted else None)


@pytest.fixture(params=[False, True], ids=["without-metrics", "with-metrics"])
def lookup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A unary call to a real server on port 0, run to completion on the fixture's loop."""
    loop = asyncio.new_event_loop()
    metrics = LedgerMetrics() if request.param else None
    config = LedgerConfig(store=f"sqlite:///{tmp_path / 'journal.sqlite3'}", accounts_max=10, transfers_max=10,
                          pending_transfers_max=10)  # fmt: skip

    async def start() -> tuple[Ledger, grpc.aio.Server, grpc.aio.Channel]:
        ledger = await Ledger.open(
            config,
            on_commit=metrics.journal_committed if metrics else None,
            on_apply=metrics.engine_applied if metrics else None,
        )
        server, port, _ = await start_server(ledger, metrics=metrics)
        return ledger, server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    ledger, server, channel = loop.run_until_complete(start())
    stub = ledger_pb2_grpc.LedgerStub(channel)
    request_message = ledger_pb2.LookupRequest(ids=[types_pb2.Uint128(lo=1)])

    async def call() -> ledger_pb2.LookupAccountsResponse:
        return await stub.LookupAccounts(request_message)

    try:
        yield lambda: loop.run_until_complete(call())
    finally:
        loop.run_until_complete(channel.close())
        loop.run_until_complete(server.stop(None))
        loop.run_until_complete(ledger.close())
        loop.close()


def test_unary_call_over_grpc(benchmark: Any, lookup: Any) -> None:
    response = benchmark(lookup)
    assert list(response.accounts) == []
