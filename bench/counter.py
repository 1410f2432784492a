"""The counter: terminals paying by the code a customer's phone shows, beside plain wallet payments over the same
transport, in one run.

    python -m bench.counter --json                   # about 5 minutes: PostgreSQL, 3 rounds of 10 s
    python -m bench.counter --store sqlite --json
    python -m bench.counter --json --quick           # well under a minute: 1 round of 1 s, 60,000 customers

One tenant (a festival: partial payment allowed, a fee of `fee_fixed` 10 + 15 per mille of what the wallet
pays, no PIN threshold and no risk limits) with `--customers` customers, each with a wallet credited enough that
no payment falls short and one phone enrolled to show payment codes. They are set up in this process, on the
wallet domain over a ledger on the store (a fresh PostgreSQL schema, dropped afterwards, or a new SQLite file):
enrolling is one EnrollDevice call per phone, which would take longer than the measurement; what is measured
is `ledger serve` in its own process, recovered from the checkpoint that setup closed with, with keys
required (the terminals share one POS key of the tenant, as a fleet's app does), and `ledger gateway` in
its own process (`--gateway-workers`, 2: a worker per core here) for the HTTP side.

`--terminals` (256) terminals each pay one order at a time, waiting for the answer:

- `grpc_code`: `pay_by_code` through one `AsyncClient` that every terminal shares, so concurrent payments by
  code are coalesced into PayByCodeBatch calls; `grpc_plain`: `pay` through the same client (PayBatch calls).
- `http_code`: `POST /v1/tenants/{tenant}/code_payments` over a keep-alive HTTP/1.1 connection per terminal
  to the gateway, whose client coalesces them the same way; `http_plain`: `POST …/payments` (bench.gateway's).

Every payment asks for partial payment, an amount drawn from 1.00 to 50.00. A plain payment names a customer
drawn at random. A payment by code takes the next customer in turn and the code their phone shows: each phone
derives the code of every window from its seed and the tenant's code key with no network, as the wallet app
does (ledger.wallet._paycodes). The phones' codes of the windows a round will run in are derived before it
starts: phones do that work on their own, not on the terminals' time. A phone pays at most once per
30-second window (its code pays once, and the next window's code is another), so the customers are taken in
turn, each at most once a window: with more customers than payments by code in any one window, no terminal
waits. Should all have paid in this window, terminals wait for the next one; `window_waits` counts them (0
when the customers were enough).

The four run in `--rounds` (3) rounds of `--seconds` (10, after a warm-up), their order rotated every round;
per system the median round, and every round's payments/s. Per transport: `ratio`, the payments by code per
second over the plain payments per second of the same round, for each round and their median. Targets: a
payment by code at least 70 % of a plain payment's throughput in the same run (`ratio` at least 0.7), and its
p99 at most 50 ms at 256 terminals, on each transport.

Progress goes to stderr; the result is one JSON object on stdout (`--json`: on one line), with the load
average of the machine at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from array import array
from pathlib import Path
from typing import Any, Final

from bench._harness import (
    DEFAULT_DSN,
    Backends,
    CpuMeter,
    Processes,
    ServerProcess,
    Window,
    fresh_store,
    is_postgres,
    measure,
    progress,
    server_process,
)
from bench.gateway import Connection, gateway_process, http_request
from bench.wallet import EventLoopThread, InFlight, checkout, load_1m
from ledger.client import AsyncClient, ClientConfig
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import IMPLEMENTATION
from ledger.server import run_event_loop
from ledger.v1 import wallet_pb2
from ledger.wallet import SYSTEM_ACCOUNTS, GrantItem, TenantSettings, TopUpSource, Wallets
from ledger.wallet import _paycodes as paycodes

ROOT: Final = Path(__file__).resolve().parents[1]
TENANT: Final = "fest"
CURRENCY: Final = "EUR"
FEE_FIXED: Final = 10
FEE_PER_MILLE: Final = 15
AMOUNT_MIN, AMOUNT_MAX = 100, 5_000
CREDIT_PER_WALLET: Final = 10**12
GRANTS_PER_OPERATION: Final = 5_000
ENROLMENTS_PER_OPERATION: Final = 1_000
PAYMENTS_PER_S_MAX: Final = 60_000
"""Above what either kind of payment reaches here over gRPC: sizes the engine's transfer table."""
TARGET_RATIO: Final = 0.7
TARGET_P99_MS: Final = 50.0
SYSTEMS: Final = ("grpc_code", "grpc_plain", "http_code", "http_plain")
TRANSPORTS: Final = ("grpc", "http")
SETTINGS_REPORTED: Final = ("terminals", "customers", "seconds", "warmup_seconds", "rounds", "gateway_workers")


# -- the customers and their phones ---------------------------------------------------------------------------


class Phones:
    """Every customer's enrolled phone: what enrolment gave it (seed, device number) and the tenant's code key,
    from which it makes its code with no network. `take` hands out the next customer in turn who has not paid
    by code in the window now, as a queue at the counters would, with the code their phone shows."""

    def __init__(self, code_key: bytes, seeds: list[bytes], numbers: list[int]) -> None:
        self.code_key = code_key
        self.seeds = seeds
        self.numbers = numbers
        self._paid_in = array("q", [-1]) * len(seeds)
        """The window each customer last paid by code in."""
        self._next = 0
        self._shown: dict[int, list[str]] = {}
        """Every phone's code of the windows `show` was given, by window."""
        self.window_waits = 0

    def __len__(self) -> int:
        return len(self.seeds)

    def show(self, seconds: float) -> None:
        """Every phone makes its codes of the windows of the next `seconds` (and a few more, for this), as each
        phone does on its own: the terminals' measured time is then not spent on the phones' work as well."""
        now = time.time_ns()
        steps = range(paycodes.step_at(now), paycodes.step_at(now + int((seconds + 5) * 1e9)) + 1)
        self._shown = {step: self._shown.get(step) or self._codes(step) for step in steps}

    def _codes(self, step: int) -> list[str]:
        key = self.code_key
        return [paycodes.make_code(seed, key, n, step) for seed, n in zip(self.seeds, self.numbers, strict=True)]

    async def take(self, window: Window) -> tuple[int, str] | None:
        """(customer index, the code their phone shows now), or None once the window is stopped."""
        while True:
            step = paycodes.step_at(time.time_ns())
            index = self._next
            if self._paid_in[index] != step:  # taken in turn: the next one paid before every other did
                self._paid_in[index] = step
                self._next = (index + 1) % len(self.seeds)
                shown = self._shown.get(step)
                if shown is not None:
                    return index, shown[index]
                return index, paycodes.make_code(self.seeds[index], self.code_key, self.numbers[index], step)
            self.window_waits += 1  # every customer paid in this window: the next one starts a new round
            while paycodes.step_at(time.time_ns()) == step and not window.stopped:
                await asyncio.sleep(0.05)
            if window.stopped:
                return None


def customer(index: int) -> str:
    return f"customer-{index:07d}"


async def set_up(config: LedgerConfig, customers: int) -> Phones:
    """The tenant, its customers' wallets opened and credited, a phone enrolled for each; closed with a
    checkpoint, from which `ledger serve` starts."""
    wallets = Wallets()
    ledger = await Ledger.open(config, domain=wallets)
    in_flight = InFlight(ledger)
    settings = TenantSettings(name="bench festival", partial_payment=True, fee_fixed=FEE_FIXED,
                              fee_per_mille=FEE_PER_MILLE)  # fmt: skip
    seeds: list[bytes] = []
    numbers: list[int] = []
    code_key = b""
    try:
        op = ledger.operation()
        created = wallets.create_tenant(op, TENANT, CURRENCY, settings, actor="bench")
        await in_flight.add(op.finish())
        if not created.ok:
            raise RuntimeError(f"create_tenant: {created.message}")
        started = time.perf_counter()
        for start in range(0, customers, GRANTS_PER_OPERATION):
            items = [GrantItem(customer=customer(n), amount=CREDIT_PER_WALLET)
                     for n in range(start, min(start + GRANTS_PER_OPERATION, customers))]  # fmt: skip
            op = ledger.operation()
            try:
                replies = wallets.grant_run(op, TENANT, f"credit-{start}", items, all_or_nothing=False,
                                            open_wallets=True, source=TopUpSource.GIFT)  # fmt: skip
            finally:
                ticket = op.finish()
            if not all(reply.ok for reply in replies):
                raise RuntimeError(f"grant run: {next(reply.message for reply in replies if not reply.ok)}")
            await in_flight.add(ticket)
        await in_flight.drain()
        progress(f"  {customers:,} wallets opened and credited ({time.perf_counter() - started:.0f} s)")
        started = time.perf_counter()
        for start in range(0, customers, ENROLMENTS_PER_OPERATION):
            op = ledger.operation()
            try:
                for n in range(start, min(start + ENROLMENTS_PER_OPERATION, customers)):
                    device = wallets.enroll_device(op, TENANT, customer(n), "phone", f"phone-{n}")
                    if not device.ok:
                        raise RuntimeError(f"enrolling the phone of {customer(n)}: {device.message}")
                    seeds.append(device.seed)
                    numbers.append(device.number)
                    code_key = device.code_key
            finally:
                ticket = op.finish()
            await in_flight.add(ticket)
        await in_flight.drain()
        progress(f"  {customers:,} phones enrolled ({time.perf_counter() - started:.0f} s)")
    finally:
        await ledger.close()
    return Phones(code_key, seeds, numbers)


def setup_config(store_url: str, customers: int) -> LedgerConfig:
    """Room for the setup's accounts and grants; no checkpoint until the ledger closes."""
    never = 2**62
    return LedgerConfig(
        store=store_url,
        accounts_max=customers + len(SYSTEM_ACCOUNTS) + 1_000,
        transfers_max=customers + 1_000,
        pending_transfers_max=1,
        checkpoint_every_transfers=never,
        checkpoint_every_commits=never,
        checkpoint_every_bytes=never,
        checkpoint_interval_seconds=1e12,
    )


def pos_key(store_url: str) -> str:
    """A POS key of the tenant, which every terminal shares (as a fleet's app is issued one)."""
    from ledger.auth import open_key_store

    store = open_key_store(store_url)
    try:
        return store.create_key(tenant=TENANT, role="pos", ledgers=[], name="bench-terminals")[1]
    finally:
        store.close()


# -- the terminals --------------------------------------------------------------------------------------------


class Terminals:
    """What each system's terminals do: one payment at a time, each recorded in the window."""

    def __init__(self, client: AsyncClient, phones: Phones, http_port: int, token: str) -> None:
        self.client = client
        self.phones = phones
        self.http_port = http_port
        self.token = token
        self._sent = 0

    def caller(self, system: str, seed: int) -> Any:
        return {
            "grpc_code": self._grpc_code,
            "grpc_plain": self._grpc_plain,
            "http_code": self._http_code,
            "http_plain": self._http_plain,
        }[system](seed)

    def _transaction(self) -> int:
        self._sent += 1
        return self._sent

    def _grpc_code(self, seed: int) -> Any:
        async def terminal(index: int, window: Window) -> None:
            draw = random.Random(seed * 100_003 + index)
            while not window.stopped:
                shown = await self.phones.take(window)
                if shown is None:
                    return
                n = self._transaction()
                request = wallet_pb2.PayByCodeRequest(
                    tenant=TENANT, code=shown[1], amount=draw.randint(AMOUNT_MIN, AMOUNT_MAX), terminal=f"till-{index}",
                    transaction=f"tx-{n}", partial=True,
                )  # fmt: skip
                started = time.perf_counter()
                reply = await self.client.pay_by_code(request)
                window.record(time.perf_counter() - started, 1)
                if reply.result != wallet_pb2.WALLET_RESULT_OK or reply.paid != request.amount:
                    raise RuntimeError(f"a payment by code ended {reply.result} (paid {reply.paid}): {reply.message}")

        return terminal

    def _grpc_plain(self, seed: int) -> Any:
        async def terminal(index: int, window: Window) -> None:
            draw = random.Random(seed * 100_003 + index)
            while not window.stopped:
                n = self._transaction()
                request = wallet_pb2.PayRequest(
                    tenant=TENANT, customer=customer(draw.randrange(len(self.phones))),
                    amount=draw.randint(AMOUNT_MIN, AMOUNT_MAX), key=f"pay-{n}", order_reference=f"order-{n}",
                    partial=True,
                )  # fmt: skip
                started = time.perf_counter()
                reply = await self.client.pay(request)
                window.record(time.perf_counter() - started, 1)
                if reply.result != wallet_pb2.WALLET_RESULT_OK or reply.paid != request.amount:
                    raise RuntimeError(f"a payment ended {reply.result} (paid {reply.paid}): {reply.message}")

        return terminal

    def _http_code(self, seed: int) -> Any:
        async def terminal(index: int, window: Window) -> None:
            draw = random.Random(seed * 100_003 + index)
            connection = await Connection.open(self.http_port)
            try:
                while not window.stopped:
                    shown = await self.phones.take(window)
                    if shown is None:
                        return
                    body = {"code": shown[1], "amount": draw.randint(AMOUNT_MIN, AMOUNT_MAX), "currency": CURRENCY,
                            "terminal": f"till-{index}", "transaction": f"tx-{self._transaction()}",
                            "partial": True}  # fmt: skip
                    data = http_request("POST", f"/v1/tenants/{TENANT}/code_payments", self.token, body)
                    started = time.perf_counter()
                    status, answer = await connection.request(data)
                    window.record(time.perf_counter() - started, 1)
                    if status != 201:
                        raise RuntimeError(f"a payment by code over HTTP answered {status}: {answer[:300]!r}")
            finally:
                connection.close()

        return terminal

    def _http_plain(self, seed: int) -> Any:
        async def terminal(index: int, window: Window) -> None:
            draw = random.Random(seed * 100_003 + index)
            connection = await Connection.open(self.http_port)
            try:
                while not window.stopped:
                    n = self._transaction()
                    body = {"customer": customer(draw.randrange(len(self.phones))),
                            "amount": draw.randint(AMOUNT_MIN, AMOUNT_MAX), "currency": CURRENCY,
                            "order_reference": f"order-{n}", "partial": True}  # fmt: skip
                    data = http_request("POST", f"/v1/tenants/{TENANT}/payments", self.token, body, key=f"pay-{n}")
                    started = time.perf_counter()
                    status, answer = await connection.request(data)
                    window.record(time.perf_counter() - started, 1)
                    if status != 201:
                        raise RuntimeError(f"a payment over HTTP answered {status}: {answer[:300]!r}")
            finally:
                connection.close()

        return terminal


def per_payment(result: dict[str, Any]) -> dict[str, Any]:
    """A system's figures named by what was counted: payments, not transfers."""
    return {key.replace("transfers_per_s", "payments_per_s").replace("_per_transfer", "_per_payment"): value
            for key, value in result.items()}  # fmt: skip


async def measure_all(
    server: ServerProcess, gateway_pids: list[int], http_port: int, token: str, store_url: str, phones: Phones,
    args: argparse.Namespace,
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Every system in every round, their order rotated; each system's rounds."""
    meters: dict[str, CpuMeter] = {"server_loop": EventLoopThread(server.pid)}
    backends = Backends(store_url, client_pid=server.pid) if is_postgres(store_url) else None
    if backends is not None:
        meters["store"] = backends  # PostgreSQL's backends serving the server's connections
    rounds: dict[str, list[dict[str, Any]]] = {system: [] for system in SYSTEMS}
    try:
        config = ClientConfig(server=server.address, api_key=token, timeout_seconds=60)
        async with AsyncClient(config) as client:
            terminals = Terminals(client, phones, http_port, token)
            for turn in range(args.rounds):
                order = SYSTEMS[turn % len(SYSTEMS) :] + SYSTEMS[: turn % len(SYSTEMS)]
                for system in order:
                    name = f"{system}, {args.terminals} terminals, round {turn + 1} of {args.rounds}"
                    system_meters = dict(meters)
                    if system.startswith("http"):
                        system_meters["gateway"] = Processes(tuple(gateway_pids))
                    waits = phones.window_waits
                    if system.endswith("code"):
                        phones.show(args.warmup_seconds + args.seconds)
                    measured = await measure(
                        name, args.terminals, terminals.caller(system, turn), args.seconds, args.warmup_seconds,
                        server=server, meters=system_meters,
                        report=lambda line: progress(line.replace("transfers/s", "payments/s")
                                                     .replace("per transfer", "per payment")),
                    )  # fmt: skip
                    measured = per_payment(measured)
                    if system.endswith("code"):
                        measured["window_waits"] = phones.window_waits - waits
                    measured["load_1m"] = load_1m()
                    rounds[system].append(measured)
    finally:
        if backends is not None:
            backends.close()
    return rounds


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per transport: the median round of each kind of payment, every round's payments/s, and the ratio of
    payments by code to plain payments per round and its median."""
    results: dict[str, Any] = {}
    for transport in TRANSPORTS:
        summary: dict[str, Any] = {}
        for kind in ("code", "plain"):
            runs = rounds[f"{transport}_{kind}"]
            middle = sorted(runs, key=lambda r: r["payments_per_s"])[len(runs) // 2]
            summary[kind] = {**middle, "payments_per_s_rounds": [r["payments_per_s"] for r in runs]}
        ratios = [
            round(code["payments_per_s"] / max(plain["payments_per_s"], 1), 3)
            for code, plain in zip(rounds[f"{transport}_code"], rounds[f"{transport}_plain"], strict=True)
        ]
        summary["ratio_rounds"] = ratios
        summary["ratio"] = round(statistics.median(ratios), 3)
        results[transport] = summary
    return results


def targets(results: dict[str, Any]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    for transport in TRANSPORTS:
        ratio, p99 = results[transport]["ratio"], results[transport]["code"]["p99_ms"]
        verdicts[f"{transport}_ratio"] = {"target": TARGET_RATIO, "measured": ratio, "met": ratio >= TARGET_RATIO}
        verdicts[f"{transport}_code_p99_ms"] = {"target": TARGET_P99_MS, "measured": p99,
                                                "met": p99 is not None and p99 <= TARGET_P99_MS}  # fmt: skip
    return verdicts


def run(args: argparse.Namespace) -> dict[str, Any]:
    per_round = (args.seconds + args.warmup_seconds + 3) * 2 * PAYMENTS_PER_S_MAX * len(SYSTEMS)
    transfers_max = int(args.rounds * per_round + args.customers + 10_000)
    accounts_max = args.customers + len(SYSTEM_ACCOUNTS) + 10_000
    with fresh_store(args.store, "ledger_bench_counter") as store_url:
        progress(f"setting up {args.customers:,} customers, each with a wallet and a phone")
        phones = run_event_loop(set_up(setup_config(store_url, args.customers), args.customers))
        gc.collect()
        gc.freeze()  # what setup built stays: the collector's full passes need not walk it (ledger serve does so)
        token = pos_key(store_url)
        environment = {"LEDGER_AUTH": "required"}
        with (
            server_process(store_url, transfers_max, accounts_max=accounts_max, environment=environment,
                           source=ROOT) as server,
            gateway_process(server.port, args.gateway_workers, source=ROOT) as (http_port, gateway_pids),
        ):  # fmt: skip
            rounds = run_event_loop(measure_all(server, gateway_pids, http_port, token, store_url, phones, args))
    results = summarize(rounds)
    return {"results": results, "targets": targets(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.counter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("LEDGER_TEST_DATABASE_URL") or DEFAULT_DSN,
                        help="a PostgreSQL DSN (a fresh schema is used and dropped) or sqlite")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s, 60,000 customers")
    parser.add_argument("--seconds", type=float, help="measured seconds per system and round (default 10)")
    parser.add_argument("--warmup-seconds", type=float, help="default 1")
    parser.add_argument("--rounds", type=int, help="default 3")
    parser.add_argument("--terminals", type=int, default=256)
    parser.add_argument(
        "--gateway-workers", type=int, default=2, help="`ledger gateway --workers` (default 2: a worker per core here)"
    )
    parser.add_argument("--customers", type=int,
                        help="customers, each with a wallet and a phone (default 400,000: more than pay by code "
                             "in one window)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"seconds": 1.0 if quick else 10.0, "warmup_seconds": 0.3 if quick else 1.0,
                "rounds": 1 if quick else 3, "customers": 60_000 if quick else 400_000}  # fmt: skip
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rounds < 1 or args.terminals < 1 or args.customers < 1 or args.seconds <= 0:
        parser.error("--rounds, --terminals and --customers must be at least 1, --seconds above 0")
    if not is_postgres(args.store) and args.store != "sqlite":
        parser.error(f"--store: a postgresql:// DSN or sqlite, got {args.store!r}")
    load_start = load_1m()
    progress(f"load average {load_start} at the start")
    started = time.perf_counter()
    part = run(args)
    report = {
        "benchmark": "counter",
        "command": " ".join(["python", "-m", "bench.counter", *(sys.argv[1:] if argv is None else argv)]),
        "store": "postgresql" if is_postgres(args.store) else "sqlite",
        "engine": IMPLEMENTATION,
        "commit": checkout(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_1m_start": load_start,
            "load_1m_end": load_1m(),
        },
        "settings": {name: getattr(args, name) for name in SETTINGS_REPORTED}
        | {"fee_fixed": FEE_FIXED, "fee_per_mille": FEE_PER_MILLE, "partial": True},
        **part,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
