"""Prometheus metrics of a real server on port 0, scraped from its HTTP endpoint on port 0, over both stores:
calls by method and status, per-item results, streams, batches, commits, the ledger's state while the store
is slow or down; `ledger serve` with its metrics port; and the Grafana dashboard against the registry."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger import __version__
from ledger.config import LedgerConfig
from ledger.core import Ledger, LedgerUnavailable
from ledger.engine import Account, MalformedBatch, Transfer, pack_accounts, pack_transfers
from ledger.journal import Commit, StoreUnavailable
from ledger.server import LedgerMetrics, start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

LEDGER = 978
FUNDING, WALLET, REVENUE = 1, 2, 3
PENDING = 2  # TransferFlags.PENDING
NO_OVERDRAFT = 2  # AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
SERVICE = "ledger.v1.Ledger"

Samples = dict[str, list[tuple[dict[str, str], float]]]


def u128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & (2**64 - 1), hi=value >> 64)


def transfer(transfer_id: int, debit: int, credit: int, amount: int, **fields: Any) -> types_pb2.Transfer:
    return types_pb2.Transfer(id=u128(transfer_id), debit_account_id=u128(debit), credit_account_id=u128(credit),
                              amount=amount, ledger=LEDGER, code=1, **fields)  # fmt: skip


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def series(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """A metric's series by the values of `labels`, which must be exactly its labels."""
    found: dict[tuple[str, ...], float] = {}
    for sample_labels, sample_value in samples.get(name, []):
        assert set(sample_labels) == set(labels), (name, sample_labels)
        found[tuple(sample_labels[label] for label in labels)] = sample_value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    matches = [v for sample_labels, v in samples.get(name, []) if sample_labels == labels]
    assert len(matches) == 1, (name, labels, samples.get(name))
    return matches[0]


async def scrape(port: int) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text: str = response.read().decode()
            return text

    return parse(await asyncio.to_thread(get))  # the endpoint reads the ledger's stats on this loop


@dataclass
class Served:
    ledger: Ledger
    stub: ledger_pb2_grpc.LedgerStub
    metrics_port: int


def with_metrics_server(store_url: str, body: Callable[[Served], Awaitable[None]]) -> None:
    """Run `body` against a server on port 0 with its metrics on port 0 (holds never expire on their own)."""

    async def run() -> None:
        config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=1000, pending_transfers_max=10,
                              expire_interval_seconds=3600.0)  # fmt: skip
        metrics = LedgerMetrics()
        ledger = await Ledger.open(
            config,
            on_commit=metrics.journal_committed,
            on_apply=metrics.engine_applied,
        )
        try:
            server, port, _ = await start_server(ledger, metrics=metrics)
            metrics_port = metrics.start_http("127.0.0.1", 0)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    await body(Served(ledger, ledger_pb2_grpc.LedgerStub(channel), metrics_port))
            finally:
                await server.stop(None)
                await asyncio.to_thread(metrics.stop_http)
        finally:
            await ledger.close()

    asyncio.run(run())


async def open_books(stub: ledger_pb2_grpc.LedgerStub) -> None:
    accounts = [
        types_pb2.Account(id=u128(FUNDING), ledger=LEDGER, code=1),
        types_pb2.Account(id=u128(WALLET), ledger=LEDGER, code=2, flags=NO_OVERDRAFT),
        types_pb2.Account(id=u128(REVENUE), ledger=LEDGER, code=3),
    ]
    await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts))


def test_calls_results_batches_and_state_are_scraped(store_url: str) -> None:
    async def body(served: Served) -> None:
        stub = served.stub
        await open_books(stub)
        again = [types_pb2.Account(id=u128(FUNDING), ledger=LEDGER, code=1)]
        await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=again))  # EXISTS
        # A batch with a per-item failure is still an OK call.
        response = await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[
            transfer(10, FUNDING, WALLET, 5_000),
            transfer(11, WALLET, REVENUE, 9_000),  # more than the wallet holds
            transfer(12, FUNDING, WALLET, 100, flags=PENDING, timeout=3600),
        ]))  # fmt: skip
        assert [r.result for r in response.results] == [1, 61, 1]
        # A malformed request is refused as a whole, before the engine applies anything.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=b"\0" * 100))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        packed = pack_transfers([Transfer(id=13, debit_account_id=WALLET, credit_account_id=REVENUE, amount=1_000,
                                          ledger=LEDGER, code=1)])  # fmt: skip
        await stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=packed))
        # A stream of three: a new transfer, its retry, and one that fails.
        stream = stub.TransferStream()
        for message in (transfer(14, WALLET, REVENUE, 500), transfer(14, WALLET, REVENUE, 500),
                        transfer(15, WALLET, REVENUE, 1_000_000)):  # fmt: skip
            await stream.write(ledger_pb2.TransferStreamRequest(transfer=message))
        await stream.done_writing()
        assert [r.result.result async for r in stream] == [1, 20, 61]

        scraped = await scrape(served.metrics_port)
        assert series(scraped, "ledger_rpcs_total", "method", "code") == {
            (f"{SERVICE}/CreateAccounts", "OK"): 2,
            (f"{SERVICE}/CreateTransfers", "OK"): 1,
            (f"{SERVICE}/CreateTransfersPacked", "INVALID_ARGUMENT"): 1,
            (f"{SERVICE}/CreateTransfersPacked", "OK"): 1,
            (f"{SERVICE}/TransferStream", "OK"): 1,
        }
        assert series(scraped, "ledger_rpc_seconds_count", "method") == {
            (f"{SERVICE}/CreateAccounts",): 2,
            (f"{SERVICE}/CreateTransfers",): 1,
            (f"{SERVICE}/CreateTransfersPacked",): 2,
            (f"{SERVICE}/TransferStream",): 1,
        }
        assert value(scraped, "ledger_rpc_seconds_bucket", method=f"{SERVICE}/CreateAccounts", le="+Inf") == 2
        assert series(scraped, "ledger_stream_messages_total", "method", "direction") == {
            (f"{SERVICE}/TransferStream", "received"): 3,
            (f"{SERVICE}/TransferStream", "sent"): 3,
        }
        assert series(scraped, "ledger_transfers_total", "result") == {("OK",): 4, ("EXCEEDS_CREDITS",): 2,
                                                                       ("EXISTS",): 1}  # fmt: skip
        assert series(scraped, "ledger_accounts_total", "result") == {("OK",): 3, ("EXISTS",): 1}

        # Engine batches: the refused one never reached the engine's results.
        assert series(scraped, "ledger_engine_apply_seconds_count", "operation") == {
            ("create_accounts",): 2,
            ("create_transfers",): 5,
        }
        assert value(scraped, "ledger_batch_transfers_count") == 5
        assert value(scraped, "ledger_batch_transfers_sum") == 3 + 1 + 3
        assert value(scraped, "ledger_batch_transfers_bucket", le="1.0") == 4
        assert value(scraped, "ledger_batch_transfers_bucket", le="4.0") == 5
        assert value(scraped, "ledger_batch_accounts_sum") == 4

        stats = served.ledger.stats()
        # Every commit was made durable before its call answered; the journal holds each transfer created once.
        assert value(scraped, "ledger_journal_commits_total") == stats.writer.seq_last
        assert value(scraped, "ledger_journal_commit_seconds_count") == stats.writer.commits_total
        assert value(scraped, "ledger_journal_commit_seconds_sum") == pytest.approx(stats.writer.commit_seconds_total)
        assert value(scraped, "ledger_journal_commit_transfers_sum") == stats.engine.transfers_count == 4
        assert value(scraped, "ledger_journal_seq") == stats.writer.seq_last
        assert value(scraped, "ledger_engine_accounts") == stats.engine.accounts_count == 3
        assert value(scraped, "ledger_engine_transfers") == stats.engine.transfers_count
        assert value(scraped, "ledger_engine_pending_transfers") == stats.engine.pending_transfers_count == 1
        assert value(scraped, "ledger_journal_backlog_bytes") == stats.writer.backlog_bytes == 0
        assert value(scraped, "ledger_durable_lag_batches") == 0
        assert value(scraped, "ledger_store_available") == 1
        assert value(scraped, "ledger_journal_checkpoints_total") == stats.writer.checkpoints_total
        assert value(scraped, "ledger_journal_commits_since_checkpoint") == stats.commits_since_checkpoint > 0
        assert value(scraped, "ledger_journal_bytes_since_checkpoint") == stats.bytes_since_checkpoint > 0
        assert value(scraped, "ledger_recovery_seconds") == served.ledger.recovery.seconds
        config = served.ledger.config
        assert value(scraped, "ledger_engine_accounts_max") == config.accounts_max == 100
        assert value(scraped, "ledger_engine_transfers_max") == config.transfers_max
        assert value(scraped, "ledger_engine_pending_transfers_max") == config.pending_transfers_max
        assert value(scraped, "ledger_journal_backlog_bytes_max") == config.journal_backlog_bytes_max
        info = {"engine": stats.implementation, "store": stats.store, "version": __version__}
        assert value(scraped, "ledger_info", **info) == 1
        assert value(scraped, "process_resident_memory_bytes") > 0

    with_metrics_server(store_url, body)


class GatedStore:
    """A real store whose appends wait for a gate, or fail while `failing` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.description = inner.description
        self.gate = threading.Event()
        self.gate.set()
        self.failing = threading.Event()

    def append(self, commits: Sequence[Commit]) -> None:
        self.gate.wait(30)
        if self.failing.is_set():
            raise StoreUnavailable(f"{self.description}: connection refused (test)")
        self.inner.append(commits)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> list[GatedStore]:
    """The stores ledgers opened in this test, each behind a gate."""
    import ledger.core._ledger as module

    stores: list[GatedStore] = []
    original = module.open_store

    def gated_store(url: str) -> Any:
        stores.append(GatedStore(original(url)))
        return stores[-1]

    monkeypatch.setattr(module, "open_store", gated_store)
    return stores


def test_failed_timed_out_and_cancelled_calls_are_counted(store_url: str, gated: list[GatedStore]) -> None:
    async def body(served: Served) -> None:
        await open_books(served.stub)
        [store] = gated

        async def broken(_: Any) -> bytes:
            raise RuntimeError("a bug")

        served.ledger.lookup_accounts = broken  # type: ignore[method-assign,assignment]
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await served.stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(FUNDING)]))
        assert failed.value.code() == grpc.StatusCode.INTERNAL  # a bug is never mistaken for bad input

        # While commits wait, a call past its deadline and a stream its caller cancels end on the server too.
        store.gate.clear()
        request = ledger_pb2.CreateTransfersRequest(transfers=[transfer(20, FUNDING, WALLET, 1)])
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await served.stub.CreateTransfers(request, timeout=0.2)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        stream = served.stub.TransferStream()
        await stream.write(ledger_pb2.TransferStreamRequest(transfer=transfer(21, FUNDING, WALLET, 1)))
        await asyncio.sleep(0.1)
        stream.cancel()
        expected = {
            (f"{SERVICE}/CreateAccounts", "OK"): 1,
            (f"{SERVICE}/LookupAccounts", "INTERNAL"): 1,
            (f"{SERVICE}/CreateTransfers", "CANCELLED"): 1,  # the server's view of a deadline that passed
            (f"{SERVICE}/TransferStream", "CANCELLED"): 1,
        }
        for _ in range(250):
            scraped = await scrape(served.metrics_port)
            if series(scraped, "ledger_rpcs_total", "method", "code") == expected:
                break
            await asyncio.sleep(0.02)
        store.gate.set()
        assert series(scraped, "ledger_rpcs_total", "method", "code") == expected
        assert series(scraped, "ledger_stream_messages_total", "method", "direction") == {
            (f"{SERVICE}/TransferStream", "received"): 1,
            (f"{SERVICE}/TransferStream", "sent"): 0,
        }
        # The per-item results of calls that were never answered are not counted.
        assert series(scraped, "ledger_transfers_total", "result") == {}

    with_metrics_server(store_url, body)


# --- the ledger's state while the store is slow or down -------------------------------------------


async def eventually(scrape_now: Callable[[], Awaitable[Samples]], name: str, expected: float) -> Samples:
    for _ in range(250):
        scraped = await scrape_now()
        if value(scraped, name) == expected:
            return scraped
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never became {expected}: {value(scraped, name)}")


def test_backlog_lag_and_availability_follow_the_store(store_url: str, gated: list[GatedStore]) -> None:
    async def run() -> None:
        metrics = LedgerMetrics()
        config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=1000, pending_transfers_max=10,
                              durable_wait_seconds=0.5, expire_interval_seconds=3600.0)  # fmt: skip
        async with await Ledger.open(config, on_commit=metrics.journal_committed) as ledger:
            [store] = gated
            server, _, _ = await start_server(ledger, metrics=metrics)
            port = metrics.start_http("127.0.0.1", 0)
            try:
                accounts = [Account(id=i, ledger=LEDGER, code=1) for i in (FUNDING, WALLET)]
                await ledger.create_accounts(pack_accounts(accounts))
                moves = [Transfer(id=30 + i, debit_account_id=FUNDING, credit_account_id=WALLET, amount=1,
                                  ledger=LEDGER, code=1) for i in range(3)]  # fmt: skip

                # Applied, not yet durable: two calls, in two batches, wait behind the gate.
                store.gate.clear()
                first = asyncio.ensure_future(ledger.create_transfers(pack_transfers(moves[:2])))
                await asyncio.sleep(0.02)  # a later loop turn: not coalesced with the first
                second = asyncio.ensure_future(ledger.create_transfers(pack_transfers(moves[2:])))
                await asyncio.sleep(0.05)
                scraped = await scrape(port)
                assert value(scraped, "ledger_journal_backlog_bytes") == 3 * 128
                assert value(scraped, "ledger_durable_lag_batches") == 2
                assert value(scraped, "ledger_store_available") == 1
                store.gate.set()
                await asyncio.gather(first, second)
                scraped = await scrape(port)
                assert value(scraped, "ledger_journal_backlog_bytes") == 0
                assert value(scraped, "ledger_durable_lag_batches") == 0
                assert value(scraped, "ledger_journal_commit_transfers_sum") == 3

                # The store goes down: unavailable, and the call applied meanwhile is lag until it is back.
                store.failing.set()
                late = [Transfer(id=40, debit_account_id=FUNDING, credit_account_id=WALLET, amount=1, ledger=LEDGER,
                                 code=1)]  # fmt: skip
                with pytest.raises(LedgerUnavailable):
                    await ledger.create_transfers(pack_transfers(late))
                scraped = await eventually(lambda: scrape(port), "ledger_store_available", 0)
                assert value(scraped, "ledger_durable_lag_batches") == 1
                assert value(scraped, "ledger_journal_backlog_bytes") == 128
                store.failing.clear()
                scraped = await eventually(lambda: scrape(port), "ledger_store_available", 1)
                scraped = await eventually(lambda: scrape(port), "ledger_durable_lag_batches", 0)
                assert value(scraped, "ledger_journal_commit_transfers_sum") == 4
            finally:
                await server.stop(None)
                await asyncio.to_thread(metrics.stop_http)

    asyncio.run(run())


# --- the Ledger's apply observer ---------------------------------------------------------------------


def test_the_apply_observer_sees_every_engine_call(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.support import ManualClock

    seen: list[tuple[str, int, float]] = []
    clock = ManualClock()

    def observe(operation: str, events_count: int, seconds: float) -> None:
        seen.append((operation, events_count, seconds))
        if events_count == 2:
            raise RuntimeError("observer bug")

    async def run() -> None:
        config = LedgerConfig(store=f"sqlite:///{tmp_path / 'journal.sqlite3'}", accounts_max=10, transfers_max=100,
                              pending_transfers_max=10, expire_interval_seconds=0.02)  # fmt: skip
        async with await Ledger.open(config, clock=clock, on_apply=observe) as ledger:
            accounts = [Account(id=i, ledger=LEDGER, code=1) for i in (FUNDING, WALLET, REVENUE)]
            await ledger.create_accounts(pack_accounts(accounts))
            # The observer fails on this batch: logged, and the batch is journaled and answered all the same.
            hold = Transfer(id=50, debit_account_id=FUNDING, credit_account_id=WALLET, amount=7, ledger=LEDGER, code=1,
                            flags=PENDING, timeout=1)  # fmt: skip
            plain = Transfer(
                id=51, debit_account_id=FUNDING, credit_account_id=REVENUE, amount=3, ledger=LEDGER, code=1
            )
            await ledger.create_transfers(pack_transfers([hold, plain]))
            with pytest.raises(MalformedBatch):  # the engine refuses it whole: nothing applied, nothing observed
                await ledger.create_transfers(b"\0" * 100)
            clock.advance(2)  # the expiry loop releases the hold
            for _ in range(250):
                stats = ledger.stats()
                if stats.engine.pending_transfers_count == 0 and stats.writer.ticket_durable == stats.ticket_applied:
                    break
                await asyncio.sleep(0.02)
            assert (stats.engine.pending_transfers_count, stats.engine.transfers_count) == (0, 2)
            assert stats.writer.ticket_durable == stats.ticket_applied == 3  # accounts, transfers, expiry

    with caplog.at_level(logging.ERROR, logger="ledger.core._ledger"):
        asyncio.run(run())
    calls = [(operation, count) for operation, count, _ in seen]
    assert calls[:2] == [("create_accounts", 3), ("create_transfers", 2)]
    # While a hold is open the expiry loop asks the engine on every tick; the last time it released the hold.
    assert calls[2:] and set(calls[2:]) == {("expire_pending_transfers", 0)}
    assert all(0 <= seconds < 1 for _, _, seconds in seen)
    assert "on_apply observer failed" in caplog.text


# --- ledger serve -----------------------------------------------------------------------------------

START_LINE = re.compile(
    r"ledger serving gRPC on 127\.0\.0\.1:(\d+) \(plaintext\) with services ledger\.v1\.Ledger, wallet\.v1\.Wallet, "
    r"store (\S+), engine (\w+), 0 accounts, 0 transfers, 0 wallet tenants, "
    r"HTTP (?:on http://\S+ \(docs http://\S+/docs\)|off), metrics on http://127\.0\.0\.1:(\d+)/metrics"
)


def test_serve_has_its_metrics_on_their_own_port(tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", "--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0",
             "--store", f"sqlite:///{tmp_path / 'journal.sqlite3'}"],
            stdout=log,
            stderr=log,
            env={**os.environ, "LEDGER_ACCOUNTS_MAX": "100", "LEDGER_TRANSFERS_MAX": "1000"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        match = None
        while match is None and time.monotonic() < deadline and process.poll() is None:
            match = START_LINE.search(log_path.read_text())
            time.sleep(0.05)
        assert match is not None, log_path.read_text()
        port, engine, metrics_port = int(match.group(1)), match.group(3), int(match.group(4))

        async def call() -> Samples:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                account = types_pb2.Account(id=u128(7), ledger=LEDGER, code=1)
                await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=[account]))
            return await scrape(metrics_port)

        scraped = asyncio.run(call())
        assert series(scraped, "ledger_rpcs_total", "method", "code") == {(f"{SERVICE}/CreateAccounts", "OK"): 1}
        assert series(scraped, "ledger_accounts_total", "result") == {("OK",): 1}
        assert value(scraped, "ledger_engine_accounts") == 1
        assert value(scraped, "ledger_journal_commits_total") == 1
        assert value(scraped, "ledger_engine_apply_seconds_count", operation="create_accounts") == 1
        [(info, _)] = scraped["ledger_info"]
        assert info["engine"] == engine and info["store"] == match.group(2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(OSError):  # the endpoint went with the process
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)


def test_a_metrics_port_in_use_is_named(tmp_path: Path) -> None:
    async def run() -> None:
        first, second = LedgerMetrics(), LedgerMetrics()
        port = first.start_http("127.0.0.1", 0)
        try:
            with pytest.raises(OSError, match=f"metrics_address 127.0.0.1:{port}: "):
                second.start_http("127.0.0.1", port)
        finally:
            await asyncio.to_thread(first.stop_http)

    asyncio.run(run())


# --- the dashboard ----------------------------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, labels, keywords or variables)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\$\w+", "", expr)  # dashboard variables
    names = set()
    for token in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*|[0-9][0-9a-zA-Z.]*", expr):
        name = token.group()
        called = expr[token.end() :].lstrip().startswith("(")
        if not (name[0].isdigit() or called or name.lower() in PROMQL_WORDS):
            names.add(name)
    return names


def exposed_names(families: Iterable[Any]) -> set[str]:
    """Every series name the registry's families can expose, observed yet or not."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "info": ("_info",), "summary": ("_sum", "_count", "_created")}  # fmt: skip
    names: set[str] = set()
    for family in families:
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs: list[str] = []

    def panels(items: list[dict[str, Any]]) -> None:
        for panel in items:
            exprs.extend(target["expr"] for target in panel.get("targets", []))
            panels(panel.get("panels", []))

    panels(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(re.sub(r"label_values\((\w+),.*\)", r"\1", variable["query"]["query"]))
    return exprs


def test_metric_names_in_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (method, le) (rate(ledger_rpc_seconds_bucket{instance=~"$instance", '
            'code!="OK"}[$__rate_interval]))) / on (instance) ledger_info offset 5m')  # fmt: skip
    assert metric_names(expr) == {"ledger_rpc_seconds_bucket", "ledger_info"}


def test_the_dashboard_uses_only_metrics_the_server_exposes(tmp_path: Path) -> None:
    dashboard = json.loads((resources.files("ledger.server") / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    exprs = dashboard_expressions(dashboard)
    assert len(exprs) > 20
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]

    async def families() -> list[Any]:
        metrics = LedgerMetrics()
        config = LedgerConfig(store=f"sqlite:///{tmp_path / 'journal.sqlite3'}", accounts_max=10, transfers_max=10,
                              pending_transfers_max=10)  # fmt: skip
        async with await Ledger.open(config) as ledger:
            metrics.watch(ledger)
            return list(metrics.registry.collect())

    collected = asyncio.run(families())
    exposed = exposed_names(collected)
    used = set().union(*(metric_names(expr) for expr in exprs))
    assert used - exposed == set(), "the dashboard reads metrics the server does not expose"
    # And every metric of the ledger's own has a panel.
    ours = {family.name for family in collected if family.name.startswith("ledger")}
    shown = {name for name in ours if exposed_names([f for f in collected if f.name == name]) & used}
    assert ours - shown == set(), "metrics without a panel"
