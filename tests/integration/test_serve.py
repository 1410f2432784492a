"""`ledger serve` as a real process: one start line with its address, services, store and engine; calls to
both services over gRPC; SIGTERM drains, makes everything durable and exits cleanly. The README's sample of
the start line has the same shape."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx

from ledger.journal import open_store
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2, wallet_pb2, wallet_pb2_grpc

START_LINE = re.compile(
    r"ledger serving gRPC on 127\.0\.0\.1:(\d+) \(plaintext\) with services ledger\.v1\.Ledger, wallet\.v1\.Wallet, "
    r"store (\S+), engine (\w+), 0 accounts, 0 transfers, 0 wallet tenants, "
    r"HTTP (?:on http://127\.0\.0\.1:(\d+) \(docs http://127\.0\.0\.1:\d+/docs\)|off), metrics off"
)
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readmes_start_line_is_the_one_serve_logs() -> None:
    shape = re.compile(
        r"INFO ledger\.server\._serve: ledger serving gRPC on \S+:\d+ \((plaintext|TLS)\) with services "
        r"ledger\.v1\.Ledger, wallet\.v1\.Wallet, store \S+, engine (cython|python), \d+ accounts, \d+ transfers, "
        r"\d+ wallet tenants, HTTP (on http://\S+ \(docs http://\S+/docs\)|off), metrics (on http://\S+|off), "
        r"(auth on|auth off) \(.*\)"
    )
    samples = [line for line in README.read_text().splitlines() if "ledger serving gRPC on" in line]
    assert samples and all(shape.fullmatch(sample) for sample in samples), samples


def test_serve_answers_and_stops_gracefully(store_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", "--address", "127.0.0.1:0", "--store", store_url],
            stdout=log,
            stderr=log,
            env={
                **os.environ,
                "LEDGER_ACCOUNTS_MAX": "100",
                "LEDGER_TRANSFERS_MAX": "1000",
                "LEDGER_METRICS_ADDRESS": "",
            },
        )
    try:
        deadline = time.monotonic() + 60
        match = None
        while match is None and time.monotonic() < deadline and process.poll() is None:
            match = START_LINE.search(log_path.read_text())
            time.sleep(0.05)
        assert match is not None, log_path.read_text()
        port = int(match.group(1))
        assert match.group(3) in ("cython", "python")

        async def call() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                account = types_pb2.Account(id=types_pb2.Uint128(lo=7), ledger=1, code=1)
                response = await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=[account]))
                assert [r.result for r in response.results] == [1]
                wallets = wallet_pb2_grpc.WalletStub(channel)
                tenant = await wallets.CreateTenant(wallet_pb2.CreateTenantRequest(tenant="shop", currency="EUR"))
                assert (tenant.result, tenant.ledger) == (wallet_pb2.WALLET_RESULT_OK, 2**31)

        asyncio.run(call())
        # One command serves HTTP too: the gateway answers, over the same ledger.
        http = f"http://127.0.0.1:{match.group(4)}"
        assert httpx.get(f"{http}/readyz", timeout=10).json() == {"status": "ready", "ledger": "SERVING"}
        tenant = httpx.get(f"{http}/v1/tenants/shop", timeout=10).json()
        assert (tenant["currency"], tenant["ledger"]) == ("EUR", 2**31)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert "ledger stopping" in log and "ledger closed at journal seq=" in log
    store = open_store(store_url)
    store.connect()
    try:
        assert sum(c.accounts_count for c in store.commits()) == 1 + 8  # and the tenant's system accounts
        assert store.latest_checkpoint() is not None  # checkpointed at shutdown
    finally:
        store.close()
