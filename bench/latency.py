"""A lone caller's latency and 32 callers' throughput, side by side in one run, with the floors beneath them.

    python -m bench.latency --json                          # about 2 minutes
    python -m bench.latency --json --rounds 2 --calls 200 --seconds 1   # shorter

An idle ledger should answer one transfer in one RPC plus one store commit. This measures, in one run
on one machine, a lone caller (one call at a time, each waiting for its answer) through:

- `ledger_postgresql`, `ledger_sqlite`: `ledger serve` in its own process on that store (fresh), one
  `create_transfer` at a time through `ledger.client.AsyncClient`;
- `plain_postgresql`: bench/plain_pg.py's transaction per transfer (INSERT, guarded debit, credit,
  COMMIT) through psycopg 3, five round trips;
- `plain_postgresql_one`: the same ledger moved by one statement per transfer (bench/plain_pg.py's CTE
  that debits guarded, credits and inserts) in autocommit: one round trip;
- the floors: `insert_commit`, one INSERT of a small row in autocommit (a prepared statement: one round
  trip and one durable commit of PostgreSQL), `grpc_noop`, a grpc.aio unary call that does nothing,
  its server in its own process, with the byte sizes of a one-transfer request and its answer,
  `grpc_stream_noop`, the same bytes as a message on an open stream and its echo (what the client's write
  stream pays instead of a call), and
  `ledger_postgresql_lookup`, one account looked up through the same client and server: this ledger's
  RPC without a commit.

The lone caller runs in `--rounds` rounds of `--calls` calls per system, the order of the systems
rotated each round, so a busy spell of the machine falls on all of them alike. Then `--callers`
callers (32) send single transfers for `--seconds` per system, again in rotated rounds: N tasks sharing
one auto-batching AsyncClient for this ledger, a connection each for the plain ledger. The transfers
are drawn uniformly among `--accounts` funded customer accounts that may not go below zero. Every
transfer is durable before it is answered. One JSON object on stdout (with `--json` on one line);
progress on stderr. Targets: this ledger's lone p50 on PostgreSQL at most the plain ledger's through
psycopg (and, for a skeptic, its fastest driver's), and its throughput at 32 callers at least 3 times
the best plain driver's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any, Final, Protocol

import grpc
import psycopg

from bench._harness import DEFAULT_DSN, ServerProcess, measure, progress, summary
from bench.compare import LedgerSystem, PlainSystem, Sampler, single_caller
from ledger.engine import IMPLEMENTATION
from ledger.records.limits import TRANSFER_RESULT_SIZE, TRANSFER_SIZE
from ledger.server import run_event_loop

CALLERS_DEFAULT: Final = 32
THROUGHPUT_TARGET_RATIO: Final = 3.0
"""At 32 callers this ledger should move at least this many times what the best plain driver does."""
NOOP_METHOD: Final = "/bench.latency.Noop/Call"
NOOP_STREAM_METHOD: Final = "/bench.latency.Noop/Stream"
NOOP_REQUEST: Final = bytes(TRANSFER_SIZE + 3)
"""A CreateTransfersPacked request of one record: the record and its field's tag and length."""
NOOP_RESPONSE: Final = bytes(TRANSFER_RESULT_SIZE + 2)


class Driven(Protocol):
    """What a caller loop drives: one transfer (or its floor) per call, answered once durable."""

    key: str
    server: ServerProcess | None

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None: ...


class LedgerLookup:
    """This ledger's RPC without a commit: one account looked up through the same client and server."""

    key = "ledger_postgresql_lookup"

    def __init__(self, ledger: LedgerSystem) -> None:
        self._ledger = ledger
        self.server = ledger.server

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        assert self._ledger.client is not None
        if await self._ledger.client.lookup_account(debit) is None:
            raise RuntimeError(f"{self.key}: account {debit} not found")


class InsertCommit:
    """The floor of a durable PostgreSQL write: one INSERT of a small row, prepared, in autocommit."""

    key = "insert_commit"
    server: ServerProcess | None = None

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._next_id = 0

    async def start(self) -> None:
        self._connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        await self._connection.execute("CREATE TABLE insert_commit (id bigint PRIMARY KEY, payload bytea NOT NULL)")

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        assert self._connection is not None
        self._next_id += 1
        await self._connection.execute(
            "INSERT INTO insert_commit (id, payload) VALUES (%s, %b)", (self._next_id, NOOP_REQUEST), prepare=True
        )

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()


class GrpcNoop:
    """The floor of one RPC: a grpc.aio unary call to a server (its own process, uvloop) that does nothing; with
    `stream`, the floor of a message on an open stream: written, and its echo read."""

    def __init__(self, *, stream: bool = False) -> None:
        self.key = "grpc_stream_noop" if stream else "grpc_noop"
        self._stream = stream
        self._open: Any = None
        self._process: subprocess.Popen[str] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._call: Callable[[bytes], Awaitable[bytes]] | None = None
        self.server: ServerProcess | None = None

    async def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.latency", "--serve-noop"], stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        line = await asyncio.to_thread(self._process.stdout.readline)
        if not line.strip().isdigit():
            raise RuntimeError(f"the no-op gRPC server did not start (exit {self._process.poll()})")
        self.server = ServerProcess(port=int(line), pid=self._process.pid)
        self._channel = grpc.aio.insecure_channel(self.server.address)
        if self._stream:
            self._open = self._channel.stream_stream(NOOP_STREAM_METHOD)()
        else:
            self._call = self._channel.unary_unary(NOOP_METHOD)

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        if self._open is not None:
            await self._open.write(NOOP_REQUEST)
            await self._open.read()
            return
        assert self._call is not None
        await self._call(NOOP_REQUEST)

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(30)
            if self._process.stdout is not None:
                self._process.stdout.close()


async def serve_noop() -> None:
    """The no-op server: prints its port, answers every call with NOOP_RESPONSE until terminated."""

    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return NOOP_RESPONSE

    async def stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        async for _ in requests:
            yield NOOP_RESPONSE

    server = grpc.aio.server()
    service, method = NOOP_METHOD.strip("/").split("/")
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(call),
        NOOP_STREAM_METHOD.rsplit("/", 1)[1]: grpc.stream_stream_rpc_method_handler(stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


class LoneCalls:
    """A lone caller's calls to one system, gathered over rounds: latencies, wall time and CPU on each side."""

    def __init__(self, system: Driven) -> None:
        self.system = system
        self.latencies: list[float] = []
        self.seconds = 0.0
        self.client_cpu_seconds = 0.0
        self.server_cpu_seconds = 0.0

    async def round(self, sampler: Sampler, calls: int, warmup_calls: int) -> None:
        await prepared(self.system, 1)
        try:
            await self._round(sampler, calls, warmup_calls)
        finally:
            await finished(self.system)

    async def _round(self, sampler: Sampler, calls: int, warmup_calls: int) -> None:
        transfer = self.system.transfer
        for _ in range(warmup_calls):
            await transfer(0, *sampler.one())
        server = getattr(self.system, "server", None)
        cpu = (time.process_time(), server.cpu_seconds() if server else 0.0)
        started = time.perf_counter()
        for _ in range(calls):
            debit, credit, amount = sampler.one()
            call_started = time.perf_counter()
            await transfer(0, debit, credit, amount)
            self.latencies.append(time.perf_counter() - call_started)
        self.seconds += time.perf_counter() - started
        self.client_cpu_seconds += time.process_time() - cpu[0]
        if server is not None:
            self.server_cpu_seconds += server.cpu_seconds() - cpu[1]

    def result(self) -> dict[str, Any]:
        out = summary(self.latencies, len(self.latencies), self.seconds)
        calls = max(1, len(self.latencies))
        out["client_cpu_us_per_call"] = round(self.client_cpu_seconds / calls * 1e6, 1)
        if getattr(self.system, "server", None) is not None:
            out["server_cpu_us_per_call"] = round(self.server_cpu_seconds / calls * 1e6, 1)
        return out


async def prepared(system: Driven, callers: int) -> None:
    """A bench.compare system readies itself for a scenario of `callers` (the plain ledger opens its connections)."""
    prepare = getattr(system, "prepare", None)
    if prepare is not None:
        await prepare(callers)


async def finished(system: Driven) -> None:
    """A bench.compare system ends its scenario (the plain ledger checks its books and closes its connections)."""
    finish = getattr(system, "finish", None)
    if finish is not None:
        await finish()


def rotated(items: list[Any], turn: int) -> list[Any]:
    shift = turn % len(items) if items else 0
    return items[shift:] + items[:shift]


async def lone_caller(systems: list[Driven], args: argparse.Namespace, sampler: Sampler) -> dict[str, Any]:
    gathered = [LoneCalls(system) for system in systems]
    for turn in range(args.rounds):
        progress(f"lone caller, round {turn + 1} of {args.rounds}")
        for calls in rotated(gathered, turn):
            await calls.round(sampler, args.calls, args.warmup_calls)
    results = {calls.system.key: calls.result() for calls in gathered}
    for key, result in results.items():
        progress(f"  {key}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms ({result['calls']} calls)")
    return results


async def many_callers(systems: list[Driven], args: argparse.Namespace, sampler: Sampler) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {system.key: [] for system in systems}
    for turn in range(args.rounds):
        for system in rotated(systems, turn):
            name = f"{system.key} {args.callers} callers, round {turn + 1} of {args.rounds}"
            caller = single_caller(system, sampler)
            await prepared(system, args.callers)
            try:
                measured = await measure(
                    name,
                    args.callers,
                    caller,
                    args.seconds,
                    args.warmup_seconds,
                    server=getattr(system, "server", None),
                )
            finally:
                await finished(system)
            rounds[system.key].append(measured)
    results: dict[str, Any] = {}
    for key, measured in rounds.items():
        middle = sorted(measured, key=lambda r: r["transfers_per_s"])[len(measured) // 2]
        results[key] = {**middle, "transfers_per_s_rounds": [r["transfers_per_s"] for r in measured]}
    return results


def verdicts(lone: dict[str, Any], many: dict[str, Any], callers: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ours, plain = lone.get("ledger_postgresql"), lone.get("plain_postgresql")
    if ours and plain:
        out["lone_p50_ms_vs_plain_postgresql"] = {
            "measured": ours["p50_ms"],
            "target": plain["p50_ms"],
            "met": ours["p50_ms"] <= plain["p50_ms"],
        }
    lone_plains = {k: v["p50_ms"] for k, v in lone.items() if k.startswith("plain_postgresql")}
    if ours and lone_plains:
        fastest = min(lone_plains, key=lambda k: lone_plains[k])
        out["lone_p50_ms_vs_fastest_plain"] = {
            "measured": ours["p50_ms"],
            "target": lone_plains[fastest],
            "against": fastest,
            "met": ours["p50_ms"] <= lone_plains[fastest],
        }
    plains = {k: v["transfers_per_s"] for k, v in many.items() if k.startswith("plain_postgresql")}
    if "ledger_postgresql" in many and plains:
        best = max(plains, key=lambda k: plains[k])
        ratio = many["ledger_postgresql"]["transfers_per_s"] / max(1, plains[best])
        out[f"callers_{callers}_vs_best_plain"] = {
            "measured": round(ratio, 2),
            "target": THROUGHPUT_TARGET_RATIO,
            "against": best,
            "met": ratio >= THROUGHPUT_TARGET_RATIO,
        }
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.stores import temporary_schema

    transfers_max = args.accounts + 2 * args.rounds * (
        args.calls + args.warmup_calls + int((args.seconds + args.warmup_seconds + 2) * 100_000)
    )
    with ExitStack() as exits:
        ledger_pg = LedgerSystem(args.store, transfers_max=transfers_max, report=progress)
        ledger_sqlite = LedgerSystem("sqlite", transfers_max=transfers_max, report=progress)
        plain = PlainSystem(args.store)
        one_statement = PlainSystem(args.store, statement="one")
        insert = InsertCommit(exits.enter_context(temporary_schema(args.store, "ledger_bench_latency")))
        noop, stream_noop = GrpcNoop(), GrpcNoop(stream=True)
        started: list[Any] = []
        try:
            for system in (ledger_pg, ledger_sqlite, plain, one_statement):
                progress(f"{system.key}: opening {args.accounts:,} accounts")
                await system.start(args.accounts)
                started.append(system)
            for floor in (insert, noop, stream_noop):
                await floor.start()
                started.append(floor)
            sampler = Sampler("uniform", args.accounts)
            lone_systems = [
                ledger_pg,
                ledger_sqlite,
                plain,
                one_statement,
                insert,
                noop,
                stream_noop,
                LedgerLookup(ledger_pg),
            ]
            lone = await lone_caller(lone_systems, args, sampler)
            many = await many_callers([ledger_pg, ledger_sqlite, plain, one_statement], args, sampler)
        finally:
            for system in reversed(started):
                await system.stop()
    return {
        "lone_caller": lone,
        f"callers_{args.callers}": many,
        "targets": verdicts(lone, many, args.callers),
        "deadlocks_retried": {system.key: system.retries.deadlocks for system in (plain, one_statement)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("LEDGER_TEST_DATABASE_URL") or DEFAULT_DSN,
                        help="PostgreSQL DSN of both ledgers and the floor (fresh schemas)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each system once per round (default 5)")
    parser.add_argument("--calls", type=int, default=500, help="a lone caller's measured calls per round")
    parser.add_argument("--warmup-calls", type=int, default=50, help="unmeasured calls before each round's")
    parser.add_argument("--callers", type=int, default=CALLERS_DEFAULT, help="concurrent callers (default 32)")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per system and round")
    parser.add_argument("--warmup-seconds", type=float, default=0.5)
    parser.add_argument("--accounts", type=int, default=100_000, help="funded customer accounts")
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    parser.add_argument("--serve-noop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_noop:
        run_event_loop(serve_noop())
        return 0
    for name in ("rounds", "calls", "callers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be at least 1")
    if args.accounts < 2:
        parser.error(f"--accounts: {args.accounts} is fewer than the 2 a transfer needs")
    started = time.perf_counter()
    results = run_event_loop(run(args))
    report = {
        "benchmark": "latency",
        "command": " ".join(["python", "-m", "bench.latency", *(sys.argv[1:] if argv is None else argv)]),
        "engine": IMPLEMENTATION,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_1m": os.getloadavg()[0]},
        "settings": {k: getattr(args, k) for k in ("rounds", "calls", "callers", "seconds", "accounts")},
        **results,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
