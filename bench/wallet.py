"""The Wallet service: payments against the core's plain transfers in one run, and recovery and memory at scale.

    python -m bench.wallet --json                          # about 2.5 minutes: PostgreSQL, 3 rounds of 10 s
    python -m bench.wallet --store sqlite --json
    python -m bench.wallet --json --quick                  # seconds: 1 round of 1 s, 1,000 wallets
    python -m bench.wallet --recovery --json               # 1M wallets, 10M payments: about 15 minutes
    python -m bench.wallet --recovery --json --wallets 100000 --payments 1000000   # scaled down

Throughput (the default): `ledger serve` in its own process, durable on its store (a fresh PostgreSQL
schema, dropped afterwards, or a new SQLite file), and `--callers` (256) asyncio tasks of this process
sharing one `AsyncClient`, each paying one order at a time with `pay` (the client coalesces concurrent
payments into PayBatch calls). Every tenant allows partial payment and charges a fee (`fee_fixed` +
`fee_per_mille` of what the wallet pays, a second transfer in the payment's chain); every payment asks
for partial payment. Before anything is timed, `--wallets` wallets are opened and credited (credit that
never expires) with GrantRun calls of up to 10,000 grants, enough that no payment falls short. Systems:

- `core_transfers`: single transfers through the same client's auto-batching `create_transfer`, from
  funded customer accounts (never below zero, with balance history, as a wallet is) to a merchant
  account, in a ledger below 2**31: what the core does with the same callers.
- `uniform`: payments from wallets drawn at random among `--wallets` spread over `--tenants` tenants.
- `one_shop`: payments from `--wallets` wallets of one tenant: every payment credits its revenue.

They run in `--rounds` rounds of `--seconds` (after a warm-up) each, their order rotated every round so a
busy spell of the machine falls on all of them alike; the median round of each is reported, every round
listed. A window of 10 s (the default) holds one flush of the server's history index, which runs every 10
s, whichever system it measures: shorter windows catch it in some and not in others. Per payment
scenario: `payments_per_s`, `p50_ms` and `p99_ms` of a `pay` call, the CPU each side spent per payment
(`server_loop`: the server's event loop thread alone, where the wallet domain runs), and `ratio`, its
payments/s over the core's transfers/s in the same run. Targets: ratio at least 0.5 and p99 at most 20 ms.

Recovery (`--recovery`): an in-process `ledger.core.Ledger` with the wallet domain on the store, no
network: one tenant, `--wallets` wallets opened and credited by grant runs (credit expiring in
`--credit-expiry-days`, so each wallet holds a grant in the domain state; 0: never expires), then
`--payments` payments from random wallets, each operation of the ledger `--operation-payments` of them,
a few operations in flight; closed with a checkpoint. Then it times `Ledger.open` to serving from the
checkpoint, `ledger serve` from its start to its start line (with its RSS), and `Ledger.open` from the
journal alone (checkpoints deleted). Memory: the domain state's Python allocations (tracemalloc while it
is restored from a snapshot) per wallet after the grants, and what the payments add to it per payment
(payments keep nothing in the domain by design: the engine holds their transfers); the engine's tables
and the process's RSS. Targets: serving again in 30 s or less, domain state at most 300 bytes per
wallet and 64 per payment remembered.

Progress goes to stderr; the result is one JSON object on stdout (`--json`: on one line), with the load
average of the machine at the start and the end.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from bench._harness import (
    DEFAULT_DSN,
    Backends,
    CpuMeter,
    ServerProcess,
    Window,
    fresh_store,
    is_postgres,
    measure,
    progress,
    server_process,
)
from bench.journal import store_size
from ledger.client import Account, AccountFlags, AsyncClient, ClientConfig, CreateTransferResult, Transfer
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import IMPLEMENTATION
from ledger.server import run_event_loop
from ledger.v1 import wallet_pb2
from ledger.wallet import SYSTEM_ACCOUNTS, GrantItem, Payment, TenantSettings, TopUpSource, Wallets

ROOT: Final = Path(__file__).resolve().parents[1]
OK: Final = wallet_pb2.WALLET_RESULT_OK
CURRENCY: Final = "EUR"
FEE_FIXED: Final = 10
FEE_PER_MILLE: Final = 15
AMOUNT_MIN, AMOUNT_MAX = 100, 5_000
"""Each payment (and each plain transfer) is drawn uniformly from these minor units."""
CREDIT_PER_WALLET: Final = 10**12
"""What each wallet (and each plain customer) is credited first: no payment falls short of it."""
GRANTS_PER_CALL: Final = 10_000
CORE_LEDGER: Final = 978
CORE_FUNDING, CORE_MERCHANT, CORE_CUSTOMER_FIRST = 1, 2, 1_000
CORE_ID_FIRST: Final = 1 << 64
"""Plain transfer ids from here up; the funding transfers take the ids below."""
TRANSFERS_PER_S_MAX: Final = 150_000
"""Above what the core's auto-batching reaches here (75,000/s): sizes the engine's transfer table."""
PAYMENTS_PER_S_MAX: Final = 60_000
TARGET_RATIO: Final = 0.5
TARGET_P99_MS: Final = 20.0
TARGET_RECOVERY_SECONDS: Final = 30.0
TARGET_DOMAIN_BYTES_PER_WALLET: Final = 300
TARGET_DOMAIN_BYTES_PER_PAYMENT: Final = 64
OPERATIONS_IN_FLIGHT: Final = 4
"""Recovery part: ledger operations handed to the journal and not yet awaited while the next is applied."""
SYSTEMS: Final = ("core_transfers", "uniform", "one_shop")


def tenant_settings(credit_expiry_seconds: int = 0) -> TenantSettings:
    return TenantSettings(
        name="bench",
        partial_payment=True,
        fee_fixed=FEE_FIXED,
        fee_per_mille=FEE_PER_MILLE,
        credit_expiry_seconds=credit_expiry_seconds,
    )


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found")


def checkout() -> str:
    """The commit measured, and whether the code (ledger/, bench/) had changes beside it."""
    git = ["git", "-C", str(ROOT)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "ledger", "bench"],
                               capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head.stdout.strip()}+changes" if dirty.stdout.strip() else head.stdout.strip()


def loaded_from(pid: int) -> str | None:
    """Where the server process loaded the native engine from (Linux /proc): which checkout it runs."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            if "ledger/engine/_c." in line:
                return line.split()[-1].rsplit("/ledger/engine/", 1)[0]
    return None


# -- throughput -------------------------------------------------------------------------------------------


class Tenants:
    """The payment scenarios' tenants and their customers: `customer(n)` is the scenario's n-th wallet."""

    def __init__(self, scenario: str, tenants: int, wallets: int) -> None:
        self.scenario = scenario
        self.names = [f"{scenario}-{index}" for index in range(tenants)]
        self.wallets = wallets

    def customer(self, index: int) -> tuple[str, str]:
        """(tenant, customer) of wallet `index`: the wallets are dealt over the tenants in turn."""
        return self.names[index % len(self.names)], f"customer-{index:07d}"


async def open_wallets(client: AsyncClient, tenants: Tenants) -> None:
    """Create the tenants, then open and credit every wallet with grant runs of up to 10,000 grants."""
    for name in tenants.names:
        reply = await client.create_tenant(
            wallet_pb2.CreateTenantRequest(
                tenant=name,
                currency=CURRENCY,
                settings=wallet_pb2.TenantSettings(
                    name="bench",
                    self_topup=True,
                    partial_payment=True,
                    fee_fixed=FEE_FIXED,
                    fee_per_mille=FEE_PER_MILLE,
                ),
            )
        )
        if reply.result != OK:
            raise RuntimeError(f"tenant {name}: {reply.message}")
    by_tenant: dict[str, list[str]] = {name: [] for name in tenants.names}
    for index in range(tenants.wallets):
        tenant, customer = tenants.customer(index)
        by_tenant[tenant].append(customer)
    granted = 0
    for tenant, customers in by_tenant.items():
        for start in range(0, len(customers), GRANTS_PER_CALL):
            items = [
                wallet_pb2.GrantItem(customer=customer, amount=CREDIT_PER_WALLET, never_expires=True)
                for customer in customers[start : start + GRANTS_PER_CALL]
            ]
            run = wallet_pb2.GrantRunRequest(tenant=tenant, run_id=f"bench-{start}", items=items, open_wallets=True)
            ran = await client.grant_run(run, timeout=300)
            if ran.result != OK or ran.granted != len(items):
                failed = next((r.message for r in ran.replies if r.result != OK), ran.message)
                raise RuntimeError(f"grant run of {tenant}: {ran.granted} of {len(items)} granted: {failed}")
            granted += len(items)
            progress(f"  {tenants.scenario}: {granted:,} of {tenants.wallets:,} wallets opened and credited")


async def open_plain_accounts(client: AsyncClient, customers: int) -> None:
    """The core's funding and merchant accounts and `customers` funded customers (never below zero, history)."""
    guarded = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.HISTORY
    accounts = [
        Account(id=CORE_FUNDING, ledger=CORE_LEDGER, code=1),
        Account(id=CORE_MERCHANT, ledger=CORE_LEDGER, code=2),
    ]
    accounts += [
        Account(id=CORE_CUSTOMER_FIRST + i, ledger=CORE_LEDGER, code=3, flags=guarded) for i in range(customers)
    ]
    if any(outcome.result != 1 for outcome in await client.create_accounts(accounts)):
        raise RuntimeError("could not open the plain accounts")
    funding = [
        Transfer(
            id=1 + i,
            debit_account_id=CORE_FUNDING,
            credit_account_id=CORE_CUSTOMER_FIRST + i,
            amount=CREDIT_PER_WALLET,
            ledger=CORE_LEDGER,
            code=1,
        )
        for i in range(customers)
    ]
    if any(outcome.result != CreateTransferResult.OK for outcome in await client.create_transfers(funding)):
        raise RuntimeError("could not fund the plain customers")
    progress(f"  core_transfers: {customers:,} customer accounts opened and funded")


class Scenarios:
    """What each system's callers do: one call at a time, each recorded in the window."""

    def __init__(self, client: AsyncClient, wallets: int, tenants: int) -> None:
        self.client = client
        self.plain_customers = wallets
        self.payers = {"uniform": Tenants("uniform", tenants, wallets), "one_shop": Tenants("one-shop", 1, wallets)}
        self._next_transfer = CORE_ID_FIRST
        self._next_payment = 0

    def caller(self, system: str, seed: int) -> Callable[[int, Window], Any]:
        if system == "core_transfers":
            return self._transfers(seed)
        return self._payments(self.payers[system], seed)

    def _transfers(self, seed: int) -> Callable[[int, Window], Any]:
        async def caller(index: int, window: Window) -> None:
            draw = random.Random(seed * 100_003 + index)
            while not window.stopped:
                self._next_transfer += 1
                one = Transfer(
                    id=self._next_transfer, debit_account_id=CORE_CUSTOMER_FIRST + draw.randrange(self.plain_customers),
                    credit_account_id=CORE_MERCHANT, amount=draw.randint(AMOUNT_MIN, AMOUNT_MAX), ledger=CORE_LEDGER,
                    code=1,
                )  # fmt: skip
                started = time.perf_counter()
                outcome = await self.client.create_transfer(one)
                window.record(time.perf_counter() - started, 1)
                if outcome.result != CreateTransferResult.OK:
                    raise RuntimeError(f"a plain transfer failed with {outcome.result.name}")

        return caller

    def _payments(self, tenants: Tenants, seed: int) -> Callable[[int, Window], Any]:
        async def caller(index: int, window: Window) -> None:
            draw = random.Random(seed * 100_003 + index)
            while not window.stopped:
                self._next_payment += 1
                tenant, customer = tenants.customer(draw.randrange(tenants.wallets))
                request = wallet_pb2.PayRequest(
                    tenant=tenant, customer=customer, amount=draw.randint(AMOUNT_MIN, AMOUNT_MAX),
                    key=f"pay-{self._next_payment}", order_reference=f"order-{self._next_payment}", partial=True,
                )  # fmt: skip
                started = time.perf_counter()
                reply = await self.client.pay(request)
                window.record(time.perf_counter() - started, 1)
                if reply.result != OK or reply.paid != request.amount:
                    raise RuntimeError(f"a payment ended {reply.result} (paid {reply.paid}): {reply.message}")

        return caller


class EventLoopThread:
    """The CPU of a server's main thread, where its event loop applies every call (Linux /proc): the rest of
    the server's CPU is its journal writer's, history index's and gRPC's threads."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_sample(self) -> dict[int, float]:
        try:
            fields = Path(f"/proc/{self.pid}/task/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return {}
        return {self.pid: (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}


def payments_progress(line: str) -> None:
    progress(line.replace("transfers/s", "payments/s").replace("per transfer", "per payment"))


def per_payment(result: dict[str, Any]) -> dict[str, Any]:
    """A payment scenario's figures named by what was counted: payments, not transfers."""
    renamed = {key.replace("transfers_per_s", "payments_per_s").replace("_per_transfer", "_per_payment"): value
               for key, value in result.items()}  # fmt: skip
    return renamed


async def throughput(server: ServerProcess, store_url: str, args: argparse.Namespace) -> dict[str, Any]:
    meters: dict[str, CpuMeter] = {"server_loop": EventLoopThread(server.pid)}
    backends = Backends(store_url, client_pid=server.pid) if is_postgres(store_url) else None
    if backends is not None:
        meters["store"] = backends  # PostgreSQL's backends serving the server's connections
    try:
        async with AsyncClient(ClientConfig(server=server.address, timeout_seconds=60)) as client:
            scenarios = Scenarios(client, args.wallets, args.tenants)
            progress(f"opening {args.wallets:,} wallets in each payment scenario and {args.wallets:,} plain customers")
            await open_plain_accounts(client, args.wallets)
            for tenants in scenarios.payers.values():
                await open_wallets(client, tenants)
            rounds: dict[str, list[dict[str, Any]]] = {system: [] for system in SYSTEMS}
            for turn in range(args.rounds):
                order = SYSTEMS[turn % len(SYSTEMS) :] + SYSTEMS[: turn % len(SYSTEMS)]
                for system in order:
                    name = f"{system}, {args.callers} callers, round {turn + 1} of {args.rounds}"
                    report = progress if system == "core_transfers" else payments_progress
                    measured = await measure(
                        name, args.callers, scenarios.caller(system, turn), args.seconds, args.warmup_seconds,
                        server=server, meters=meters, report=report,
                    )  # fmt: skip
                    measured["load_1m"] = load_1m()
                    rounds[system].append(measured if system == "core_transfers" else per_payment(measured))
    finally:
        if backends is not None:
            backends.close()
    results: dict[str, Any] = {}
    for system, runs in rounds.items():
        rate = "transfers_per_s" if system == "core_transfers" else "payments_per_s"
        middle = sorted(runs, key=lambda r: r[rate])[len(runs) // 2]
        results[system] = {**middle, f"{rate}_rounds": [r[rate] for r in runs]}
    core = results["core_transfers"]["transfers_per_s"]
    for system in ("uniform", "one_shop"):
        results[system]["ratio"] = round(results[system]["payments_per_s"] / max(core, 1), 3)
        # The ratio of each round against the core's round of the same turn: how steady the ratio was.
        results[system]["ratio_rounds"] = [
            round(p["payments_per_s"] / max(c["transfers_per_s"], 1), 3)
            for p, c in zip(rounds[system], rounds["core_transfers"], strict=True)
        ]
    return results


def throughput_targets(results: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for system in ("uniform", "one_shop"):
        ratio, p99 = results[system]["ratio"], results[system]["p99_ms"]
        targets[f"{system}_ratio"] = {"target": TARGET_RATIO, "measured": ratio, "met": ratio >= TARGET_RATIO}
        targets[f"{system}_p99_ms"] = {"target": TARGET_P99_MS, "measured": p99,
                                       "met": p99 is not None and p99 <= TARGET_P99_MS}  # fmt: skip
    return targets


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    # Room in the engine for every transfer at rates none reaches here, and for every account.
    per_round = (args.seconds + args.warmup_seconds + 3) * (TRANSFERS_PER_S_MAX + 2 * 2 * PAYMENTS_PER_S_MAX)
    transfers_max = int(args.rounds * per_round + 3 * args.wallets + 10_000)
    accounts_max = 3 * args.wallets + (args.tenants + 1) * len(SYSTEM_ACCOUNTS) + 10_000
    with (
        fresh_store(args.store, "ledger_bench_wallet") as store_url,
        server_process(store_url, transfers_max, accounts_max=accounts_max, source=ROOT) as server,
    ):
        source = loaded_from(server.pid)
        if source is not None and Path(source) != ROOT:
            raise RuntimeError(f"the server runs the ledger of {source}, not of {ROOT}: set PYTHONPATH")
        results = run_event_loop(throughput(server, store_url, args))
    return {"throughput": results, "targets": throughput_targets(results)}


# -- recovery and memory ----------------------------------------------------------------------------------


def recovery_config(store_url: str, wallets: int, payments: int, *, fee: bool) -> LedgerConfig:
    """Capacity for everything written (a fee is a second transfer per payment); no checkpoint until close."""
    never = 2**62
    return LedgerConfig(
        store=store_url,
        accounts_max=wallets + len(SYSTEM_ACCOUNTS) + 1_000,
        transfers_max=wallets + payments * (2 if fee else 1) + 1_000,
        pending_transfers_max=1,
        checkpoint_every_transfers=never,
        checkpoint_every_commits=never,
        checkpoint_every_bytes=never,
        checkpoint_interval_seconds=1e12,
    )


class InFlight:
    """Operations handed to the journal, awaited a few behind the newest, so applying never waits on a commit."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._tickets: deque[int] = deque()

    async def add(self, ticket: int) -> None:
        self._tickets.append(ticket)
        if len(self._tickets) > OPERATIONS_IN_FLIGHT:
            await self._ledger.until_durable(self._tickets.popleft())

    async def drain(self) -> None:
        if self._tickets:
            await self._ledger.until_durable(self._tickets[-1])
            self._tickets.clear()


def domain_bytes(snapshot: bytes) -> int:
    """Python bytes a wallet domain restored from `snapshot` holds (tracemalloc: what its state allocated).

    Measured with no ledger open: tracemalloc counts every thread's allocations, and a ledger's journal writer
    and history index allocate on theirs meanwhile."""
    gc.collect()
    tracemalloc.start()
    try:
        wallets = Wallets()
        wallets.restore(snapshot)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del wallets
    return int(held)


async def write_journal(config: LedgerConfig, args: argparse.Namespace, expiry_seconds: int) -> dict[str, Any]:
    """One tenant, its wallets opened and credited by grant runs, then the payments; closed with a checkpoint."""
    wallets = Wallets()
    ledger = await Ledger.open(config, domain=wallets)
    in_flight = InFlight(ledger)
    draw = random.Random(11)
    result: dict[str, Any] = {}
    try:
        op = ledger.operation()
        reply = wallets.create_tenant(op, "shop", CURRENCY, tenant_settings(expiry_seconds), actor="bench")
        await in_flight.add(op.finish())
        if not reply.ok:
            raise RuntimeError(f"create_tenant: {reply.message}")
        started = time.perf_counter()
        for start in range(0, args.wallets, args.operation_grants):
            items = [GrantItem(customer=f"customer-{n:07d}", amount=CREDIT_PER_WALLET)
                     for n in range(start, min(start + args.operation_grants, args.wallets))]  # fmt: skip
            op = ledger.operation()
            try:
                replies = wallets.grant_run(op, "shop", f"run-{start}", items, all_or_nothing=False,
                                            open_wallets=True, source=TopUpSource.BENEFIT)  # fmt: skip
            finally:
                ticket = op.finish()
            if not all(r.ok for r in replies):
                raise RuntimeError(f"grant run: {next(r.message for r in replies if not r.ok)}")
            await in_flight.add(ticket)
            done = start + len(items)
            if done % 100_000 < args.operation_grants or done == args.wallets:
                elapsed = time.perf_counter() - started
                progress(f"  {done:,} of {args.wallets:,} wallets opened and credited ({elapsed:.0f} s)")
        await in_flight.drain()
        result["wallets_seconds"] = round(time.perf_counter() - started, 1)
        after_wallets = wallets.snapshot()  # measured once the ledger is closed
        started = time.perf_counter()
        cpu_started = time.process_time()
        fee_total = 0
        for start in range(0, args.payments, args.operation_payments):
            op = ledger.operation()
            try:
                for n in range(start, min(start + args.operation_payments, args.payments)):
                    payment = Payment(tenant="shop", customer=f"customer-{draw.randrange(args.wallets):07d}",
                                      amount=draw.randint(AMOUNT_MIN, AMOUNT_MAX), key=f"p{n}",
                                      order_reference=f"o{n}", partial=True)  # fmt: skip
                    paid = wallets.pay(op, payment)
                    if not paid.ok or paid.paid != payment.amount:
                        raise RuntimeError(f"payment {n}: {paid.result.name}: {paid.message}")
                    fee_total += paid.fee
            finally:
                ticket = op.finish()
            await in_flight.add(ticket)
            done = min(start + args.operation_payments, args.payments)
            if done % 500_000 < args.operation_payments or done == args.payments:
                elapsed = time.perf_counter() - started
                progress(f"  {done:,} of {args.payments:,} payments ({done / elapsed:,.0f}/s, {elapsed:.0f} s)")
        await in_flight.drain()
        result["payments_seconds"] = round(time.perf_counter() - started, 1)
        result["payments_per_s"] = round(args.payments / (time.perf_counter() - started))
        result["cpu_us_per_payment"] = round((time.process_time() - cpu_started) / args.payments * 1e6, 1)
        result["fees"] = fee_total > 0
        after_payments = wallets.snapshot()
        result["domain_snapshot_bytes"] = len(after_payments)
        stats = ledger.stats()
        result["accounts"] = stats.engine.accounts_count
        result["transfers"] = stats.engine.transfers_count
        result["commits"] = stats.writer.seq_last
        progress("  closing with a checkpoint")
        started = time.perf_counter()
    finally:
        await ledger.close()
    result["close_with_checkpoint_seconds"] = round(time.perf_counter() - started, 1)
    result["store_bytes"] = store_size(config.store)["bytes"]
    result["domain_bytes_after_wallets"] = domain_bytes(after_wallets)
    result["domain_bytes_after_payments"] = domain_bytes(after_payments)
    progress(
        f"  domain state: {result['domain_bytes_after_wallets'] / args.wallets:.0f} bytes a wallet after the grants"
    )
    return result


async def reopen(config: LedgerConfig, expected_transfers: int, wallets_count: int, expiring: bool) -> dict[str, Any]:
    """Open the ledger with a fresh wallet domain on its journal, timed to serving; its state checked."""
    gc.collect()
    rss_before = rss_bytes()
    started = time.perf_counter()
    cpu_started = time.process_time()
    wallets = Wallets()
    ledger = await Ledger.open(config, domain=wallets)
    seconds = time.perf_counter() - started
    try:
        report = ledger.recovery
        result = {
            "recovery_s": round(seconds, 2),
            "cpu_seconds": round(time.process_time() - cpu_started, 2),
            "commits_replayed": report.commits_replayed,
            "transfers_replayed": report.transfers_replayed,
            "domain_bytes_replayed": report.domain_bytes_replayed,
            "rss_added_bytes": rss_bytes() - rss_before,
            "engine_table_bytes": sum(getattr(ledger._engine, "memory_bytes", dict)().values()),
        }
        if report.transfers_count != expected_transfers:
            raise RuntimeError(f"recovered {report.transfers_count} transfers, not {expected_transfers}")
        if "shop" not in wallets.state.tenants or (expiring and len(wallets.state.grants) != wallets_count):
            raise RuntimeError("the wallet domain was not recovered whole")
    finally:
        await ledger.close(checkpoint=False)  # the store stays as it was for the next opening
    return result


def serve_start(store_url: str, config: LedgerConfig) -> dict[str, Any]:
    """`ledger serve` on the store: seconds from its start to its start line, and its RSS then."""
    started = time.perf_counter()
    with server_process(store_url, config.transfers_max, accounts_max=config.accounts_max, source=ROOT,
                        report=lambda _: None) as server:  # fmt: skip
        seconds = time.perf_counter() - started
        return {"serving_s": round(seconds, 2), "rss_bytes": rss_bytes(server.pid)}


def delete_checkpoints(store_url: str) -> None:
    if is_postgres(store_url):
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as postgres:
            postgres.execute("DELETE FROM ledger_checkpoints")
    else:
        import sqlite3

        with contextlib.closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as sqlite, sqlite:
            sqlite.execute("DELETE FROM ledger_checkpoints")


def run_recovery(args: argparse.Namespace) -> dict[str, Any]:
    expiry_seconds = int(args.credit_expiry_days * 86_400)
    with fresh_store(args.store, "ledger_bench_wallet") as store_url:
        config = recovery_config(store_url, args.wallets, args.payments, fee=True)
        progress(f"writing the journal: {args.wallets:,} wallets, {args.payments:,} payments")
        written = run_event_loop(write_journal(config, args, expiry_seconds))
        transfers = written["transfers"]
        result: dict[str, Any] = {"wallets": args.wallets, "payments": args.payments, "written": written}
        progress("reopening from the checkpoint")
        result["from_checkpoint"] = run_event_loop(reopen(config, transfers, args.wallets, expiry_seconds > 0))
        progress(f"  serving in {result['from_checkpoint']['recovery_s']} s")
        progress("ledger serve from the checkpoint")
        result["serve_from_checkpoint"] = serve_start(store_url, config)
        progress(f"  serving in {result['serve_from_checkpoint']['serving_s']} s")
        delete_checkpoints(store_url)
        progress("reopening from the journal alone")
        result["journal_only"] = run_event_loop(reopen(config, transfers, args.wallets, expiry_seconds > 0))
        progress(f"  serving in {result['journal_only']['recovery_s']} s")
    per_wallet = written["domain_bytes_after_wallets"] / args.wallets
    per_payment = (written["domain_bytes_after_payments"] - written["domain_bytes_after_wallets"]) / args.payments
    result["memory"] = {
        "domain_bytes_per_wallet": round(per_wallet, 1),
        "domain_bytes_per_payment": round(per_payment, 2) + 0.0,  # never -0.0
        "engine_table_bytes": result["from_checkpoint"]["engine_table_bytes"],
        "serve_rss_bytes": result["serve_from_checkpoint"]["rss_bytes"],
    }
    scale = 10_000_000 / args.payments
    checkpoint_s = result["from_checkpoint"]["recovery_s"]
    journal_s = result["journal_only"]["recovery_s"]
    targets: dict[str, Any] = {
        "recovery_s_from_checkpoint": {"target": TARGET_RECOVERY_SECONDS, "measured": checkpoint_s,
                                       "met": checkpoint_s <= TARGET_RECOVERY_SECONDS},
        "recovery_s_journal_only": {"target": TARGET_RECOVERY_SECONDS, "measured": journal_s,
                                    "met": journal_s <= TARGET_RECOVERY_SECONDS},
        "domain_bytes_per_wallet": {"target": TARGET_DOMAIN_BYTES_PER_WALLET, "measured": round(per_wallet, 1),
                                    "met": per_wallet <= TARGET_DOMAIN_BYTES_PER_WALLET},
        "domain_bytes_per_payment": {"target": TARGET_DOMAIN_BYTES_PER_PAYMENT, "measured": round(per_payment, 2) + 0.0,
                                     "met": per_payment <= TARGET_DOMAIN_BYTES_PER_PAYMENT},
    }  # fmt: skip
    if args.wallets != 1_000_000 or args.payments != 10_000_000:
        result["scaled"] = (
            f"measured at {args.wallets:,} wallets and {args.payments:,} payments, not the issue's 1M and 10M; "
            "each measured_extrapolated_10m scales a time to serving linearly to 10M payments (an upper bound: "
            "what does not grow with the journal is scaled too)"
        )
        for name in ("recovery_s_from_checkpoint", "recovery_s_journal_only"):
            measured = targets[name]["measured"]
            targets[name]["measured_extrapolated_10m"] = round(measured * scale, 1)
            targets[name]["met"] = None  # not measured at the scale
    return {"recovery": result, "targets": targets}


# -- main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wallet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("LEDGER_TEST_DATABASE_URL") or DEFAULT_DSN,
                        help="a PostgreSQL DSN (a fresh schema is used and dropped) or sqlite")  # fmt: skip
    parser.add_argument("--recovery", action="store_true", help="recovery and memory instead of throughput")
    parser.add_argument("--quick", action="store_true", help="small counts and short windows: seconds")
    parser.add_argument("--seconds", type=float, help="measured seconds per system and round (default 10)")
    parser.add_argument("--warmup-seconds", type=float, help="default 1")
    parser.add_argument("--rounds", type=int, help="rounds of every system (default 3)")
    parser.add_argument("--callers", type=int, default=256)
    parser.add_argument("--tenants", type=int, default=4, help="tenants of the uniform scenario")
    parser.add_argument(
        "--wallets", type=int, help="wallets per payment scenario (default 10,000), or in the recovery (1,000,000)"
    )
    parser.add_argument("--payments", type=int, help="recovery: payments journaled (default 10,000,000)")
    parser.add_argument("--operation-payments", type=int, default=4_096, help="recovery: payments per operation")
    parser.add_argument("--operation-grants", type=int, default=5_000, help="recovery: grants per operation")
    parser.add_argument("--credit-expiry-days", type=float, default=365.0,
                        help="recovery: the granted credit expires this long after (0: never)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"seconds": 1.0 if quick else 10.0, "warmup_seconds": 0.3 if quick else 1.0, "rounds": 1 if quick else 3}
    defaults["wallets"] = (2_000 if quick else 1_000_000) if args.recovery else (1_000 if quick else 10_000)
    defaults["payments"] = 20_000 if quick else 10_000_000
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("rounds", "callers", "tenants", "wallets", "payments", "operation_payments", "operation_grants"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be at least 1")
    if not is_postgres(args.store) and args.store != "sqlite":
        parser.error(f"--store: a postgresql:// DSN or sqlite, got {args.store!r}")
    load_start = load_1m()
    progress(f"load average {load_start} at the start")
    started = time.perf_counter()
    part = run_recovery(args) if args.recovery else run_throughput(args)
    settings_used = ["callers", "seconds", "warmup_seconds", "rounds", "tenants", "wallets"]
    if args.recovery:
        settings_used = ["wallets", "payments", "operation_payments", "operation_grants", "credit_expiry_days"]
    report = {
        "benchmark": "wallet",
        "part": "recovery" if args.recovery else "throughput",
        "command": " ".join(["python", "-m", "bench.wallet", *(sys.argv[1:] if argv is None else argv)]),
        "store": "postgresql" if is_postgres(args.store) else "sqlite",
        "engine": IMPLEMENTATION,
        "commit": checkout(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_1m_start": load_start,
            "load_1m_end": load_1m(),
        },
        "settings": {name: getattr(args, name) for name in settings_used}
        | {"fee_fixed": FEE_FIXED, "fee_per_mille": FEE_PER_MILLE, "partial": True},
        **part,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
