"""The HTTP gateway: POS terminals paying over HTTP keep-alive connections, beside the same framework and
server answering a no-op endpoint, in one run.

    python -m bench.gateway --json                   # about 2 minutes: PostgreSQL, 3 rounds of 10 s
    python -m bench.gateway --json --workers 1,2,4   # the gateway with 1, 2 and 4 worker processes
    python -m bench.gateway --json --quick           # seconds

`ledger serve` in its own process, durable on its store (a fresh PostgreSQL schema, dropped afterwards, or
a new SQLite file), without its embedded gateway; `ledger gateway` in its own process (or `--workers`
processes sharing its port) for it. One tenant that allows partial payment and charges a fee, with
`--wallets` wallets opened and topped up over HTTP before anything is timed. Each of `--terminals` (100)
terminals holds one keep-alive HTTP/1.1 connection and sends one request at a time, waiting for its
answer: a payment (`POST /v1/tenants/{tenant}/payments`, its own Idempotency-Key, from a wallet drawn at
random) or, for the ceiling, `GET /healthz`, which the same application answers without calling the
ledger. With `--keys shared` (the default) the fleet's terminals authenticate with one POS key of the
shop, as a POS app's token is issued per fleet or location; the gateway's client then coalesces their
concurrent payments into PayBatch calls. With `terminal`, every terminal has a POS key of its own: the
ledger checks each key apart, so nothing is coalesced and each payment is an RPC of its own. With `none`,
the ledger runs without keys. The load comes from raw asyncio connections in this process, far cheaper
per request than the gateway, so the gateway is what is measured.

Systems take turns in `--rounds` rounds of `--seconds` (after a warm-up), their order rotated; the median
round is reported, every round listed: `requests_per_s`, `p50_ms`, `p99_ms`, the answers that were not
2xx (none is expected), and the CPU per request of the gateway's processes and of the server. Targets,
for one worker: at least 3,000 payments/s, a p99 of at most 50 ms, and at least half the no-op ceiling's
requests/s (`ratio`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from bench._harness import DEFAULT_DSN, Processes, fresh_store, is_postgres, progress, server_process
from bench.wallet import checkout, load_1m
from ledger.engine import IMPLEMENTATION

TENANT: Final = "bench-shop"
CURRENCY: Final = "EUR"
SETTINGS: Final = {"name": "Bench shop", "partial_payment": True, "fee_fixed": 10, "fee_per_mille": 15}
CREDIT_PER_WALLET: Final = 10**12
AMOUNT_MIN, AMOUNT_MAX = 100, 5_000
TARGET_PAYMENTS_PER_S: Final = 3_000
TARGET_P99_MS: Final = 50.0
TARGET_RATIO: Final = 0.5
GATEWAY_LINE: Final = re.compile(r"ledger gateway serving HTTP on http://127\.0\.0\.1:(\d+)")
SYSTEMS: Final = ("noop", "payments")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gateway_process(ledger_port: int, workers: int, *, source: Path | None = None) -> Iterator[tuple[int, list[int]]]:
    """`ledger gateway` for the ledger on `ledger_port`: its HTTP port and the pids of its processes (`source`:
    the gateway of that checkout, rather than the one Python finds)."""
    port = free_port()
    home = tempfile.mkdtemp(prefix="ledger-bench-gateway-")
    environment = {**os.environ, "LEDGER_GATEWAY_TIMEOUT_SECONDS": "30"}
    if source is not None:
        environment["PYTHONPATH"] = str(source)
    with tempfile.NamedTemporaryFile(prefix="ledger-bench-gateway-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "gateway", "--ledger", f"127.0.0.1:{ledger_port}", "--address",
             f"127.0.0.1:{port}", "--workers", str(workers)],
            stdout=log, stderr=log, cwd=home, env=environment,  # its own store goes to home/data
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start:\n{Path(log.name).read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.0 if workers > 1 else 0.2)  # every worker up
        yield port, [process.pid, *children(process.pid)]
    finally:
        process.terminate()
        process.wait(60)
        Path(log.name).unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    return [int(child) for child in found]


class Connection:
    """One terminal's keep-alive HTTP/1.1 connection: one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return int(head[9:12]), body

    def close(self) -> None:
        self.writer.close()


def http_request(method: str, path: str, token: str, body: Any = None, key: str = "") -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    headers = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    if key:
        headers.append(f"Idempotency-Key: {key}")
    if body is not None:
        headers += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


async def prepare(port: int, admin: str, wallets: int) -> None:
    """The tenant, and its wallets opened and topped up over HTTP."""
    connections = [await Connection.open(port) for _ in range(32)]
    created = await connections[0].request(
        http_request("POST", "/v1/tenants", admin, {"id": TENANT, "currency": CURRENCY, "settings": SETTINGS})
    )
    if created[0] not in (200, 201):
        raise RuntimeError(f"creating the tenant: {created}")

    async def open_some(connection: Connection, numbers: range) -> None:
        for n in numbers:
            for request in (
                http_request("POST", f"/v1/tenants/{TENANT}/wallets", admin, {"customer": f"c{n}"}),
                http_request("POST", f"/v1/tenants/{TENANT}/top_ups", admin,
                             {"customer": f"c{n}", "amount": CREDIT_PER_WALLET, "currency": CURRENCY,
                              "source": "operator", "reference": "bench", "operator": "bench"}, key=f"fund-{n}"),
            ):  # fmt: skip
                status, body = await connection.request(request)
                if status not in (200, 201):
                    raise RuntimeError(f"opening wallet c{n}: {status} {body[:300]!r}")

    share = -(-wallets // len(connections))
    await asyncio.gather(*(open_some(c, range(i * share, min(wallets, (i + 1) * share)))
                           for i, c in enumerate(connections)))  # fmt: skip
    for connection in connections:
        connection.close()


async def measure(port: int, system: str, tokens: list[str], wallets: int, seconds: float, warmup: float,
                  run: int) -> dict[str, Any]:  # fmt: skip
    """Every terminal sends one request at a time for `warmup` + `seconds`; latencies of the timed part."""
    latencies: list[float] = []
    failures: dict[int, int] = {}
    timing = False
    stop = False
    draw = random.Random(run)

    async def terminal(number: int) -> None:
        connection = await Connection.open(port)
        token = tokens[number % len(tokens)]
        count = 0
        try:
            while not stop:
                count += 1
                if system == "noop":
                    data = http_request("GET", "/healthz", token)
                else:
                    order = {
                        "customer": f"c{draw.randrange(wallets)}",
                        "amount": draw.randint(AMOUNT_MIN, AMOUNT_MAX),
                        "currency": CURRENCY,
                        "order_reference": f"t{number}-{count}",
                        "partial": True,
                    }
                    data = http_request("POST", f"/v1/tenants/{TENANT}/payments", token, order,
                                        key=f"r{run}-t{number}-{count}")  # fmt: skip
                started = time.perf_counter()
                status, _ = await connection.request(data)
                if timing:
                    latencies.append(time.perf_counter() - started)
                    if not 200 <= status < 300:
                        failures[status] = failures.get(status, 0) + 1
        finally:
            connection.close()

    tasks = [asyncio.create_task(terminal(n)) for n in range(len(tokens) if tokens[0] else 100)]
    await asyncio.sleep(warmup)
    timing = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    timing = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    return {
        "requests_per_s": round(len(ordered) / elapsed),
        "p50_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2) if ordered else None,
        "requests": len(ordered),
        "not_2xx": {str(status): count for status, count in sorted(failures.items())},
    }


def create_keys(store_url: str, mode: str, terminals: int) -> tuple[str, list[str]]:
    """(an admin token, each terminal's token); no tokens with `none`."""
    if mode == "none":
        return "", [""] * terminals
    from ledger.auth import open_key_store

    store = open_key_store(store_url)
    try:
        _, admin = store.create_key(tenant="ops", role="admin", ledgers=[], name="bench-admin")
        count = terminals if mode == "terminal" else 1
        tokens = [store.create_key(tenant=TENANT, role="pos", ledgers=[], name=f"terminal-{n}")[1]
                  for n in range(count)]  # fmt: skip
    finally:
        store.close()
    return admin, [tokens[n % len(tokens)] for n in range(terminals)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with fresh_store(args.store, "ledger_bench_gateway") as store_url:
        admin, tokens = create_keys(store_url, args.keys, args.terminals)
        rounds = args.rounds
        transfers_max = args.wallets * 2 + 40_000 * args.seconds * rounds * 2 * len(args.workers) + 100_000
        environment = {"LEDGER_AUTH": "off" if args.keys == "none" else "required"}
        with server_process(store_url, int(transfers_max), accounts_max=args.wallets + 1_000,
                            environment=environment) as server:  # fmt: skip
            for workers in args.workers:
                progress(f"gateway with {workers} worker{'s' if workers > 1 else ''}")
                with gateway_process(server.port, workers) as (port, pids):
                    if not results:
                        asyncio.run(prepare(port, admin, args.wallets))
                    rounds_of: dict[str, list[dict[str, Any]]] = {system: [] for system in SYSTEMS}
                    for number in range(rounds):
                        order = SYSTEMS[number % 2 :] + SYSTEMS[: number % 2]
                        for system in order:
                            meter = Processes((*pids, server.pid))
                            before = meter.cpu_sample()
                            measured = asyncio.run(measure(port, system, tokens, args.wallets, args.seconds,
                                                           args.warmup_seconds, number * 10 + workers))  # fmt: skip
                            after = meter.cpu_sample()
                            count = max(1, measured["requests"])
                            gateway_cpu = sum(after.get(p, 0) - before.get(p, 0) for p in pids)
                            measured["gateway_cpu_us_per_request"] = round(gateway_cpu / count * 1e6, 1)
                            server_cpu = after.get(server.pid, 0) - before.get(server.pid, 0)
                            measured["server_cpu_us_per_request"] = round(server_cpu / count * 1e6, 1)
                            rounds_of[system].append(measured)
                            progress(f"  round {number + 1} {system}: {measured['requests_per_s']:,}/s, "
                                     f"p99 {measured['p99_ms']} ms, not 2xx {measured['not_2xx']}")  # fmt: skip
                    results[f"workers_{workers}"] = summarize(rounds_of)
    return results


def summarize(rounds_of: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for system, rounds in rounds_of.items():
        median = sorted(rounds, key=lambda r: r["requests_per_s"])[len(rounds) // 2]
        summary[system] = {**median, "requests_per_s_rounds": [r["requests_per_s"] for r in rounds]}
    noop, payments = summary["noop"], summary["payments"]
    ratios = [p["requests_per_s"] / n["requests_per_s"] for p, n in zip(rounds_of["payments"], rounds_of["noop"],
                                                                          strict=True)]  # fmt: skip
    summary["ratio"] = round(payments["requests_per_s"] / noop["requests_per_s"], 3)
    summary["ratio_rounds"] = [round(r, 3) for r in ratios]
    return summary


def targets(results: dict[str, Any]) -> dict[str, Any]:
    one = results.get("workers_1")
    if one is None:
        return {}
    payments = one["payments"]
    return {
        "payments_per_s": {"target": TARGET_PAYMENTS_PER_S, "measured": payments["requests_per_s"],
                           "met": payments["requests_per_s"] >= TARGET_PAYMENTS_PER_S},
        "p99_ms": {"target": TARGET_P99_MS, "measured": payments["p99_ms"],
                   "met": payments["p99_ms"] is not None and payments["p99_ms"] <= TARGET_P99_MS},
        "ratio": {"target": TARGET_RATIO, "measured": one["ratio"], "met": one["ratio"] >= TARGET_RATIO},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("LEDGER_TEST_DATABASE_URL") or DEFAULT_DSN,
                        help="a PostgreSQL DSN (a fresh schema is used and dropped) or sqlite")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s, 200 wallets")
    parser.add_argument("--seconds", type=float, help="measured seconds per system and round (default 10)")
    parser.add_argument("--warmup-seconds", type=float, help="default 1")
    parser.add_argument("--rounds", type=int, help="default 3")
    parser.add_argument("--terminals", type=int, default=100)
    parser.add_argument("--wallets", type=int, help="default 1,000")
    parser.add_argument("--keys", choices=("shared", "terminal", "none"), default="shared")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts, e.g. 1,2,4")
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    args = parser.parse_args(argv)
    defaults = {"seconds": 1.0 if args.quick else 10.0, "warmup_seconds": 0.3 if args.quick else 1.0,
                "rounds": 1 if args.quick else 3, "wallets": 200 if args.quick else 1_000}  # fmt: skip
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        args.workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers: comma-separated counts, got {args.workers!r}")
    if not all(1 <= w <= 16 for w in args.workers) or args.terminals < 1 or args.rounds < 1 or args.wallets < 1:
        parser.error("--workers 1 to 16 each; --terminals, --rounds and --wallets at least 1")
    if not is_postgres(args.store) and args.store != "sqlite":
        parser.error(f"--store: a postgresql:// DSN or sqlite, got {args.store!r}")
    load_start = load_1m()
    progress(f"load average {load_start} at the start")
    started = time.perf_counter()
    results = run(args)
    report = {
        "benchmark": "gateway",
        "command": " ".join(["python", "-m", "bench.gateway", *(sys.argv[1:] if argv is None else argv)]),
        "store": "postgresql" if is_postgres(args.store) else "sqlite",
        "engine": IMPLEMENTATION,
        "commit": checkout(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_1m_start": load_start,
            "load_1m_end": load_1m(),
        },
        "settings": {
            name: getattr(args, name)
            for name in ("terminals", "wallets", "keys", "workers", "seconds", "warmup_seconds", "rounds")
        },
        "results": results,
        "targets": targets(results),
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
