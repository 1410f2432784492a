"""A seeded, time-bounded fuzz of every RPC of the Ledger service, over gRPC, with API keys on.

Requests come from tests/fuzz/requests.py. After each one: no UNKNOWN and no
INTERNAL, whatever was sent (as the server's metrics count its statuses, and as
the client sees them: a refused stream is read for a moment before it is
ended, so that a client still writing learns the real status); a refused call changed nothing (no journal
ticket taken, the engine's counts as before); every OK reply parses as its
RPC's reply. At the end the server still answers health checks, and the
ledger reopened from its journal alone holds exactly what it held.

    LEDGER_FUZZ_SECONDS=600 LEDGER_FUZZ_SEED=7 python -m pytest tests/fuzz -s    # longer, one seed
    LEDGER_FUZZ_REPORT=fuzz.json ...                                             # counts by method and status

It runs for LEDGER_FUZZ_SECONDS (60 under CI=true, else 15); the seed is
LEDGER_FUZZ_SEED or drawn, and printed with every failure, so a failing
sequence can be sent again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger.auth import Authenticator, open_key_store
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import AccountFlags
from ledger.server import LedgerMetrics, start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from tests.fuzz.requests import METHODS, SERVICE, Request, RequestMaker

A, B = 1001, 1002
KEYS = {"admin": ("ops", "admin", []), "a_write": ("a", "write", [A]), "a_read": ("a", "read", [A]),
        "b_write": ("b", "write", [B]), "revoked": ("a", "write", [A])}  # fmt: skip
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
CALL_TIMEOUT_SECONDS = 30.0
FEED_WAIT_SECONDS = 0.01
LATER_MESSAGE = re.compile(r"message [1-9]")


def fuzz_seconds() -> float:
    if value := os.environ.get("LEDGER_FUZZ_SECONDS"):
        return float(value)
    return 60.0 if os.environ.get("CI") == "true" else 15.0


def u128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & (2**64 - 1), hi=value >> 64)


class Fuzz:
    def __init__(
        self, ledger: Ledger, channel: grpc.aio.Channel, tokens: dict[str, str], seed: int, metrics: LedgerMetrics
    ) -> None:
        self.ledger = ledger
        self.metrics = metrics
        self.channel = channel
        self.tokens = tokens
        self.seed = seed
        self.maker = RequestMaker(seed, tuple(tokens), (A, B))
        self.statuses: collections.Counter[tuple[str, str]] = collections.Counter()
        self.hows: collections.Counter[str] = collections.Counter()
        self.count = 0

    def metadata(self, key: str) -> tuple[tuple[str, str], ...] | None:
        if key == "none":
            return None
        if key == "garbled":
            return (("authorization", "Bearer lk_not_a_key"),)
        return (("authorization", f"Bearer {self.tokens[key]}"),)

    def served_statuses(self) -> dict[str, float]:
        """Calls the server ended, by status code, as its metrics count them."""
        counts: dict[str, float] = collections.defaultdict(float)
        for family in self.metrics.registry.collect():
            if family.name == "ledger_rpcs":
                for sample in family.samples:
                    if sample.name == "ledger_rpcs_total":
                        counts[sample.labels["code"]] += sample.value
        return counts

    def fingerprint(self) -> tuple[Any, ...]:
        stats = self.ledger.stats()
        return stats.ticket_applied, stats.engine.accounts_count, stats.engine.transfers_count

    async def send(self, request: Request) -> tuple[grpc.StatusCode, str, list[bytes]]:
        """The status, its message and the reply bytes of one request."""
        method = METHODS[request.method]
        path = f"/{SERVICE.full_name}/{request.method}"
        metadata = self.metadata(request.key)
        replies: list[bytes] = []
        try:
            if method.client_streaming:
                call = self.channel.stream_stream(path)(metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
                try:
                    for message in request.messages:
                        await call.write(message)
                    await call.done_writing()
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    # The server ended the call while messages were still being written: its status is the
                    # call's (a failed write says only that the client could not send).
                    return await call.code(), await call.details() or "", []
                replies = [reply async for reply in call]
            elif method.server_streaming:
                feed = self.channel.unary_stream(path)(request.body, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
                with contextlib.suppress(TimeoutError):  # a feed with nothing to send yet: it was accepted
                    replies.append(await asyncio.wait_for(feed.read(), FEED_WAIT_SECONDS))
                feed.cancel()
                if feed.done() and (code := await feed.code()) not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
                    return code, await feed.details() or "", []
            else:
                replies = [
                    await self.channel.unary_unary(path)(request.body, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
                ]
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or "", replies
        return grpc.StatusCode.OK, "", [r for r in replies if r is not grpc.aio.EOF]

    def check(self, request: Request, code: grpc.StatusCode, details: str, replies: list[bytes], before: Any) -> None:
        where = f"seed {self.seed}, request {self.count} ({request.method}, {request.how}, key {request.key})"
        assert code not in FORBIDDEN, f"{where}: {code.name}: {details}; {request.body[:200].hex()}"
        served = self.served_statuses()
        assert not served.keys() & {"UNKNOWN", "INTERNAL"}, f"{where}: the server ended a call with {served}"
        if code is grpc.StatusCode.OK:
            reply_type = _reply_type(request.method)
            for reply in replies:
                reply_type.FromString(reply)  # every reply parses as its RPC's reply
            return
        if METHODS[request.method].client_streaming and LATER_MESSAGE.search(details):
            return  # messages before the refused one may have been applied, as they were answered
        assert self.fingerprint() == before, f"{where}: refused with {code.name} ({details}) but the state changed"

    def learn(self, request: Request) -> None:
        """Ids of a request that was accepted, for later requests to name."""
        try:
            if request.method == "CreateAccounts":
                message = ledger_pb2.CreateAccountsRequest.FromString(request.body)
                self.maker.learn([a.id.lo | a.id.hi << 64 for a in message.accounts][:64], [])
            elif request.method == "CreateTransfers":
                message = ledger_pb2.CreateTransfersRequest.FromString(request.body)
                self.maker.learn([], [t.id.lo | t.id.hi << 64 for t in message.transfers][:64])
        except Exception:  # a damaged body the server read its own way: nothing to learn
            return

    async def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            request = self.maker.request()
            before = self.fingerprint()
            code, details, replies = await self.send(request)
            self.count += 1
            self.statuses[(request.method, code.name)] += 1
            self.hows[request.how] += 1
            self.check(request, code, details, replies, before)
            if code is grpc.StatusCode.OK:
                self.learn(request)


def _reply_type(method: str) -> Any:
    output = METHODS[method].output_type
    return getattr(ledger_pb2, output.name)


async def open_books(stub: ledger_pb2_grpc.LedgerStub, token: str) -> None:
    md = (("authorization", f"Bearer {token}"),)
    guarded = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.HISTORY
    accounts = [types_pb2.Account(id=u128(i), ledger=ledger, code=1, flags=int(guarded) if i % 2 else 0)
                for ledger, first in ((A, 1), (B, 101)) for i in range(first, first + 8)]  # fmt: skip
    created = await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts), metadata=md)
    assert all(r.result == 1 for r in created.results)


def test_fuzz_every_rpc(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    seed = int(os.environ.get("LEDGER_FUZZ_SEED") or random.SystemRandom().getrandbits(32))
    seconds = fuzz_seconds()
    store_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    key_store = open_key_store(store_url)
    tokens: dict[str, str] = {}
    try:
        for who, (tenant, role, ledgers) in KEYS.items():
            key, tokens[who] = key_store.create_key(tenant=tenant, role=role, ledgers=ledgers, name=who)
            if who == "revoked":
                key_store.revoke(key.key_id)
    finally:
        key_store.close()
    config = LedgerConfig(store=store_url, accounts_max=100_000, transfers_max=2_000_000,
                          pending_transfers_max=100_000, auth="required", expire_interval_seconds=3600.0)  # fmt: skip

    async def run() -> Fuzz:
        async with await Ledger.open(config) as ledger:
            authenticator = await Authenticator.open(config)
            assert authenticator is not None
            metrics = LedgerMetrics()
            server, port, _ = await start_server(ledger, metrics=metrics, auth=authenticator)
            try:
                async with grpc.aio.insecure_channel(
                    f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 8 << 20)]
                ) as channel:
                    await open_books(ledger_pb2_grpc.LedgerStub(channel), tokens["admin"])
                    fuzz = Fuzz(ledger, channel, tokens, seed, metrics)
                    fuzz.maker.learn(list(range(1, 9)) + list(range(101, 109)), [])
                    await fuzz.run(seconds)
                    health = health_pb2_grpc.HealthStub(channel)
                    answer = await health.Check(health_pb2.HealthCheckRequest())
                    assert answer.status == health_pb2.HealthCheckResponse.SERVING
                    held = (ledger.stats().engine, ledger.recovery)
            finally:
                await server.stop(None)
                await authenticator.close()
        # What the journal holds is what was served.
        async with await Ledger.open(config) as reopened:
            engine = reopened.stats().engine
            assert (engine.accounts_count, engine.transfers_count, engine.pending_transfers_count) == (
                held[0].accounts_count, held[0].transfers_count, held[0].pending_transfers_count,
            )  # fmt: skip
        return fuzz

    fuzz = asyncio.run(run())
    summary = {
        "seed": seed,
        "seconds": seconds,
        "requests": fuzz.count,
        "served_by_status": fuzz.served_statuses(),
        "by_kind": dict(fuzz.hows),
        "by_method_and_status": {f"{m} {c}": n for (m, c), n in sorted(fuzz.statuses.items())},
    }
    if path := os.environ.get("LEDGER_FUZZ_REPORT"):
        Path(path).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfuzz: {json.dumps(summary)}")
    assert fuzz.count > 0
