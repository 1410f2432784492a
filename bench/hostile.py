"""The service under attack: a normal caller's latency while hostile loads run beside it, in one run.

    python -m bench.hostile --json                    # PostgreSQL at the machine's default DSN
    python -m bench.hostile --store sqlite --seconds 3 --json

One `ledger serve` with API keys required. Tenant B's POS terminal is the normal caller: in a loop,
one transfer (CreateTransfers), a balance lookup (LookupAccounts) and its wallet's 6-transfer history
page (GetAccountTransfers). Each phase runs it for `--seconds` beside one kind of attack, each attacker
a process of its own (so the attack's client CPU is not the terminal's):

- `quiet`: nothing else (the reference of the same run);
- `garbage`: bodies that are not protobuf, of 1 byte and of 4 MiB, to every RPC, without a key and
  with a read key;
- `lookups`: a read key sending LookupAccounts and LookupTransfers of 8190 ids, and of a million
  empty ids (2 MB, past the limit);
- `history_8`, `history_64`: tenant A paging an account of HISTORY_TRANSFERS transfers, 8190 a page,
  from 8 and 64 threads;
- `headers`: HTTP/2 calls whose authorization header is not UTF-8, carrying a real key;
- `all`: every attack above at once (history from 8 threads).

Each phase reports the terminal's p50/p99/max per call and overall, and the attackers' calls by
status; the target: the terminal's p99 at most TARGET_P99_MS in every phase, and no UNKNOWN or
INTERNAL for anything sent. Progress goes to stderr; the result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from bench._harness import DEFAULT_DSN, fresh_store, progress, quantile_ms, server_process
from ledger.auth import open_key_store
from ledger.engine import IMPLEMENTATION, Transfer, pack_transfers
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

A, B = 1001, 1002
"""Tenant a's ledger (the attacker's) and tenant b's (the terminal's)."""
A_FUNDING, A_BUSY = 1, 2
B_FUNDING, B_WALLET = 101, 102
HISTORY_TRANSFERS = 100_000
TARGET_P99_MS = 50.0
PHASES = ("quiet", "garbage", "lookups", "history_8", "history_64", "headers", "all")
ATTACKS: dict[str, tuple[tuple[str, int], ...]] = {
    "quiet": (),
    "garbage": (("garbage", 2),),
    "lookups": (("lookups", 2),),
    "history_8": (("history", 8),),
    "history_64": (("history", 64),),
    "headers": (("headers", 1),),
    "all": (("garbage", 1), ("lookups", 1), ("history", 8), ("headers", 1)),
}
"""Per phase: (attack, workers), each attack in a process of its own running that many workers."""
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 8 << 20), ("grpc.max_receive_message_length", 8 << 20)]


def u128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & (2**64 - 1), hi=value >> 64)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# -- the attackers (each in a process of its own) ------------------------------------------------------


def attack(kind: str, workers: int, address: str, tokens: dict[str, str], stop: Any, results: Any, ready: Any) -> None:
    """One attack process: `workers` threads of `kind` until `stop` is set; its status counts to `results`.

    `ready` gets the attack's name once its first call has been answered: the attack is under way."""
    statuses: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    work: Callable[[str, dict[str, str], Any, Callable[[str], None]], None] = _ATTACKERS[kind]

    def count(status: str) -> None:
        with lock:
            if not statuses:
                ready.put(kind)
            statuses[status] += 1

    threads = [threading.Thread(target=work, args=(address, tokens, stop, count)) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((kind, dict(statuses)))


def _status(call: Callable[[], Any]) -> str:
    try:
        response = call()
        if hasattr(response, "__iter__") and not isinstance(response, bytes):
            for _ in response:
                break
    except grpc.RpcError as exc:
        return str(exc.code().name)  # type: ignore[attr-defined]
    return "OK"


def _raw_call(channel: grpc.Channel, method: Any, body: bytes, metadata: Any) -> Any:
    """`body` sent as the request of `method` as it is, whatever its kind of call."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        return channel.stream_stream(path)(iter([body]), metadata=metadata, timeout=30)
    if method.server_streaming:
        return channel.unary_stream(path)(body, metadata=metadata, timeout=30)
    return channel.unary_unary(path)(body, metadata=metadata, timeout=30)


def _garbage(address: str, tokens: dict[str, str], stop: Any, count: Callable[[str], None]) -> None:
    methods = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].methods
    bodies = (b"\xff", b"\xff" * ((4 << 20) - 64))
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        index = 0
        while not stop.is_set():
            method = methods[index % len(methods)]
            body = bodies[index // len(methods) % 2]
            metadata = bearer(tokens["a_read"]) if index % 3 else None
            count(_status(lambda: _raw_call(channel, method, body, metadata)))  # noqa: B023
            index += 1


def _lookups(address: str, tokens: dict[str, str], stop: Any, count: Callable[[str], None]) -> None:
    full = ledger_pb2.LookupRequest(ids=[u128(A_BUSY + i) for i in range(BATCH_EVENTS_MAX)]).SerializeToString()
    empty_id = b"\x0a\x00"  # field 1, an empty Uint128
    million = empty_id * 1_000_000
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        accounts = channel.unary_unary("/ledger.v1.Ledger/LookupAccounts")
        transfers = channel.unary_unary("/ledger.v1.Ledger/LookupTransfers")
        index = 0
        while not stop.is_set():
            method = accounts if index % 2 else transfers
            body = million if index % 4 == 3 else full
            count(_status(lambda: method(body, metadata=bearer(tokens["a_read"]), timeout=30)))  # noqa: B023
            index += 1


def _history(address: str, tokens: dict[str, str], stop: Any, count: Callable[[str], None]) -> None:
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        page = ledger_pb2.AccountFilter(account_id=u128(A_BUSY), limit=BATCH_EVENTS_MAX)
        while not stop.is_set():
            try:
                answer = stub.GetAccountTransfers(page, metadata=bearer(tokens["a_read"]), timeout=60)
            except grpc.RpcError as exc:
                count(str(exc.code().name))  # type: ignore[attr-defined]
                continue
            count("OK")
            has_next = answer.HasField("next")
            page = (
                answer.next if has_next else ledger_pb2.AccountFilter(account_id=u128(A_BUSY), limit=BATCH_EVENTS_MAX)
            )


def _headers(address: str, tokens: dict[str, str], stop: Any, count: Callable[[str], None]) -> None:
    import h2.config
    import h2.connection
    import h2.events

    host, port = address.rsplit(":", 1)
    token = tokens["a_read"].encode()
    values = (b"Bearer " + token + b"\xff", b"\xc3\x28 " + token, b"Bearer \x80" + token)
    body = ledger_pb2.LookupRequest(ids=[u128(A_BUSY)]).SerializeToString()
    index = 0
    while not stop.is_set():
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            h2c = h2.connection.H2Connection(h2.config.H2Configuration(
                client_side=True, header_encoding=None, validate_outbound_headers=False,
                normalize_outbound_headers=False, validate_inbound_headers=False,
            ))  # fmt: skip
            h2c.initiate_connection()
            stream_id = h2c.get_next_available_stream_id()
            h2c.send_headers(stream_id, [
                (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/ledger.v1.Ledger/LookupAccounts"),
                (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
                (b"authorization", values[index % len(values)]),
            ])  # fmt: skip
            h2c.send_data(stream_id, b"\x00" + len(body).to_bytes(4, "big") + body, end_stream=True)
            connection.sendall(h2c.data_to_send())
            status = "no answer"
            ended = False
            while not ended:
                data = connection.recv(65536)
                if not data:
                    break
                for event in h2c.receive_data(data):
                    if isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
                        code = dict(event.headers).get(b"grpc-status")
                        if code is not None:
                            status = grpc.StatusCode(_CODES[int(code)]).name
                    ended = ended or isinstance(event, h2.events.StreamEnded | h2.events.StreamReset)
                connection.sendall(h2c.data_to_send())
            count(status)
        index += 1


_CODES = {code.value[0]: code.value for code in grpc.StatusCode}
_ATTACKERS: dict[str, Callable[[str, dict[str, str], Any, Callable[[str], None]], None]] = {
    "garbage": _garbage,
    "lookups": _lookups,
    "history": _history,
    "headers": _headers,
}


# -- the terminal ---------------------------------------------------------------------------------


class Terminal:
    """Tenant b's POS terminal: a transfer, a lookup and a history page, one after the other."""

    def __init__(self, address: str, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = ledger_pb2_grpc.LedgerStub(self.channel)
        self.metadata = bearer(token)
        self.next_id = 1 << 40

    async def run(self, seconds: float) -> dict[str, list[float]]:
        """Each call's latency, by kind; a call that fails counts with the time it took, and in `failed`."""
        latencies: dict[str, list[float]] = {"transfer": [], "lookup": [], "history": []}
        self.failed: collections.Counter[str] = collections.Counter()
        deadline = time.monotonic() + seconds
        page = ledger_pb2.AccountFilter(account_id=u128(B_WALLET), limit=6, reversed=True)
        lookup = ledger_pb2.LookupRequest(ids=[u128(B_WALLET), u128(B_FUNDING)])
        while time.monotonic() < deadline:
            self.next_id += 1
            transfer = types_pb2.Transfer(id=u128(self.next_id), debit_account_id=u128(B_FUNDING),
                                          credit_account_id=u128(B_WALLET), amount=1, ledger=B, code=1)  # fmt: skip
            for name, call in (
                ("transfer", lambda: self.stub.CreateTransfers(
                    ledger_pb2.CreateTransfersRequest(transfers=[transfer]), metadata=self.metadata, timeout=30)),  # noqa: B023
                ("lookup", lambda: self.stub.LookupAccounts(lookup, metadata=self.metadata, timeout=30)),
                ("history", lambda: self.stub.GetAccountTransfers(page, metadata=self.metadata, timeout=30)),
            ):  # fmt: skip
                started = time.perf_counter()
                try:
                    await call()
                except grpc.aio.AioRpcError as exc:
                    self.failed[f"{name} {exc.code().name}"] += 1
                latencies[name].append(time.perf_counter() - started)
        return latencies

    async def close(self) -> None:
        await self.channel.close()


def describe(latencies: dict[str, list[float]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    every: list[float] = []
    for name, values in latencies.items():
        ordered = sorted(values)
        every += values
        result[name] = {
            "calls": len(ordered),
            "p50_ms": quantile_ms(ordered, 0.5),
            "p99_ms": quantile_ms(ordered, 0.99),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        }
    ordered = sorted(every)
    result["all_calls"] = {"calls": len(ordered), "p50_ms": quantile_ms(ordered, 0.5),
                           "p99_ms": quantile_ms(ordered, 0.99)}  # fmt: skip
    return result


# -- the run --------------------------------------------------------------------------------------


async def seed(address: str, tokens: dict[str, str], history_transfers: int) -> None:
    """Both tenants' accounts; `history_transfers` on tenant a's busy account, 6 on b's wallet."""
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        admin = bearer(tokens["admin"])
        accounts = [types_pb2.Account(id=u128(i), ledger=ledger, code=1, flags=8)
                    for ledger, ids in ((A, (A_FUNDING, A_BUSY)), (B, (B_FUNDING, B_WALLET))) for i in ids]  # fmt: skip
        created = await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts), metadata=admin)
        assert all(r.result == 1 for r in created.results), created
        for start in range(0, history_transfers, BATCH_EVENTS_MAX):
            count = min(BATCH_EVENTS_MAX, history_transfers - start)
            records = pack_transfers([Transfer(id=(1 << 48) + start + i, debit_account_id=A_FUNDING,
                                               credit_account_id=A_BUSY, amount=1, ledger=A, code=1)
                                      for i in range(count)])  # fmt: skip
            await stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=records), metadata=admin)
        transfers = [types_pb2.Transfer(id=u128((1 << 49) + i), debit_account_id=u128(B_FUNDING),
                                        credit_account_id=u128(B_WALLET), amount=5, ledger=B, code=1)
                     for i in range(6)]  # fmt: skip
        await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=transfers), metadata=admin)


def create_keys(store_url: str) -> dict[str, str]:
    store = open_key_store(store_url)
    try:
        return {
            who: store.create_key(tenant=tenant, role=role, ledgers=ledgers, name=who)[1]
            for who, tenant, role, ledgers in (
                ("admin", "ops", "admin", []), ("a_read", "a", "read", [A]), ("b_write", "b", "write", [B]),
            )
        }  # fmt: skip
    finally:
        store.close()


async def run_phases(address: str, tokens: dict[str, str], seconds: float, phases: list[str]) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    terminal = Terminal(address, tokens["b_write"])
    try:
        await terminal.run(0.5)  # warm-up: channels, caches
        for phase in phases:
            stop = context.Event()
            queue, ready = context.Queue(), context.Queue()
            processes = [context.Process(target=attack, args=(kind, workers, address, tokens, stop, queue, ready))
                         for kind, workers in ATTACKS[phase]]  # fmt: skip
            for process in processes:
                process.start()
            for _ in processes:  # every attack under way before the terminal is timed
                await asyncio.to_thread(ready.get, True, 120)
            latencies = await terminal.run(seconds)
            stop.set()
            attackers: dict[str, dict[str, int]] = {}
            for _ in processes:
                kind, statuses = await asyncio.to_thread(queue.get, True, 120)
                attackers[kind] = statuses
            for process in processes:
                process.join(60)
            results[phase] = {"terminal": describe(latencies), "terminal_failed": dict(terminal.failed),
                              "attackers": attackers}  # fmt: skip
            progress(f"  {phase}: terminal p50 {results[phase]['terminal']['all_calls']['p50_ms']} ms, "
                     f"p99 {results[phase]['terminal']['all_calls']['p99_ms']} ms; attackers {attackers}")  # fmt: skip
    finally:
        await terminal.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=DEFAULT_DSN, help="postgresql://… (default: the local test DSN) or sqlite")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the terminal is timed in each phase")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"which, comma-separated (of {', '.join(PHASES)})")
    parser.add_argument(
        "--history-transfers",
        type=int,
        default=HISTORY_TRANSFERS,
        help=f"transfers on the account tenant a pages (default {HISTORY_TRANSFERS:,})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    args = parser.parse_args(argv)
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"--phases: no phase {', '.join(sorted(unknown))}")
    store = "sqlite" if args.store == "sqlite" else args.store
    started = time.monotonic()
    with fresh_store(store, "ledger_bench_hostile") as store_url:
        tokens = create_keys(store_url)
        environment = {"LEDGER_AUTH": "required", "LEDGER_PENDING_TRANSFERS_MAX": "1000"}
        with server_process(store_url, args.history_transfers + 1_000_000, environment=environment) as server:
            progress(f"seeding: {args.history_transfers:,} transfers on tenant a's account")
            asyncio.run(seed(server.address, tokens, args.history_transfers))
            results = asyncio.run(run_phases(server.address, tokens, args.seconds, phases))
    forbidden = sum(
        count for phase in results.values() for statuses in phase["attackers"].values()
        for status, count in statuses.items() if status in ("UNKNOWN", "INTERNAL")
    )  # fmt: skip
    worst = max(phase["terminal"]["all_calls"]["p99_ms"] or 0.0 for phase in results.values())
    report = {
        "command": "python -m bench.hostile " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "engine": IMPLEMENTATION},
        "store": "postgresql" if store != "sqlite" else "sqlite",
        "seconds_per_phase": args.seconds,
        "phases": results,
        "targets": {
            "terminal_p99_ms_max": {"measured": worst, "target": TARGET_P99_MS, "met": worst <= TARGET_P99_MS},
            "attackers_unknown_or_internal": {"measured": forbidden, "target": 0, "met": forbidden == 0},
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=2) if args.json else json.dumps(report["targets"]))
    return 0 if forbidden == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
