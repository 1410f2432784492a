"""History reads under a flood: one tenant pages large history pages from many threads while another tenant
reads its own small page and writes.

    python -m bench.reads --json                          # SQLite; 8 and 64 flooding threads, 10 s each
    python -m bench.reads --store postgresql://postgres@127.0.0.1:5432/test --json
    python -m bench.reads --before d59253c --json        # and the server of that commit, side by side

The audit's scenario, against `ledger serve` in its own process with API keys required: tenant a's wallet
holds HISTORY_TRANSFERS transfers, and its flooder (another process, N threads sharing one connection) pages
through them 8190 at a time, following `next` and starting over at the end; a refused call
(RESOURCE_EXHAUSTED) is tried again after --flood-backoff-ms. Meanwhile tenant b's prober, in this process,
asks for its wallet's page of 6 transfers and then makes a one-transfer write, over and over. Reported for
each server and flood size (0, then each of --threads): the small page's and the write's p50/p99 over the
measured window, and the flooder's pages/s and refusals, with the server's CPU.

With --before REF the same run also starts the server of commit REF (a temporary git worktree of it, sharing
this checkout's built extensions, so native/ must be the same in both) on a store seeded the same way, so
the two are compared on one machine at one time. Progress goes to stderr; the result is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from bench._harness import CHANNEL_OPTIONS, ServerProcess, fresh_store, progress, quantile_ms, server_process
from ledger.auth import open_key_store
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

A, B = 978, 840
"""The ledgers of tenant a (the flooder) and tenant b (the prober)."""
FUNDING = {A: 1, B: 11}
WALLET = {A: 2, B: 12}
HISTORY_TRANSFERS = 6 * 8190
"""Tenant a's history: six full pages."""
SMALL_PAGE = 6
PAGE_MAX = 8190
CALL_TIMEOUT_SECONDS = 120.0
ROOT = Path(__file__).resolve().parent.parent


def u128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & (2**64 - 1), hi=value >> 64)


def transfer(transfer_id: int, ledger: int) -> types_pb2.Transfer:
    return types_pb2.Transfer(id=u128(transfer_id), debit_account_id=u128(FUNDING[ledger]),
                              credit_account_id=u128(WALLET[ledger]), amount=1, ledger=ledger, code=1)  # fmt: skip


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def create_keys(store_url: str) -> dict[str, str]:
    keys = open_key_store(store_url)
    try:
        return {
            who: keys.create_key(tenant=f"tenant-{who}", role="write", ledgers=[ledger], name=f"bench {who}")[1]
            for who, ledger in (("a", A), ("b", B))
        }
    finally:
        keys.close()


def seed(address: str, tokens: dict[str, str]) -> None:
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        for who, ledger in (("a", A), ("b", B)):
            accounts = [types_pb2.Account(id=u128(i), ledger=ledger, code=1) for i in (FUNDING[ledger], WALLET[ledger])]
            stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts), metadata=metadata(tokens[who]))
        for start in range(0, HISTORY_TRANSFERS, PAGE_MAX):
            batch = [transfer(1_000_000 + start + i, A) for i in range(min(PAGE_MAX, HISTORY_TRANSFERS - start))]
            stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=batch), metadata=metadata(tokens["a"]))
        batch = [transfer(2_000_000 + i, B) for i in range(SMALL_PAGE)]
        stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=batch), metadata=metadata(tokens["b"]))


def flood(address: str, token: str, threads: int, backoff_seconds: float, stop: Any, counts: Any) -> None:
    """In a process of its own: `threads` threads paging tenant a's history until `stop` is set."""
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    stub = ledger_pb2_grpc.LedgerStub(channel)
    first = ledger_pb2.AccountFilter(account_id=u128(WALLET[A]), limit=PAGE_MAX)
    totals: Counter[str] = Counter()
    lock = threading.Lock()

    def pager() -> None:
        mine: Counter[str] = Counter()
        f = first
        while not stop.is_set():
            try:
                page = stub.GetAccountTransfers(f, metadata=metadata(token), timeout=CALL_TIMEOUT_SECONDS)
                mine["pages"] += 1
                mine["transfers"] += len(page.transfers)
                f = page.next if page.HasField("next") else first
            except grpc.RpcError as exc:
                mine[exc.code().name] += 1
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    time.sleep(backoff_seconds)
        with lock:
            totals.update(mine)

    workers = [threading.Thread(target=pager) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    channel.close()
    counts.put(dict(totals))


def probe(address: str, token: str, seconds: float, next_id: Iterator[int]) -> dict[str, Any]:
    """Tenant b's small page, then a one-transfer write, again and again for `seconds`."""
    pages: list[float] = []
    writes: list[float] = []
    errors: Counter[str] = Counter()
    small = ledger_pb2.AccountFilter(account_id=u128(WALLET[B]), limit=SMALL_PAGE)
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        deadline = time.perf_counter() + seconds

        def page() -> Any:
            return stub.GetAccountTransfers(small, metadata=metadata(token), timeout=CALL_TIMEOUT_SECONDS)

        def write() -> Any:
            request = ledger_pb2.CreateTransfersRequest(transfers=[transfer(next(next_id), B)])
            return stub.CreateTransfers(request, metadata=metadata(token), timeout=CALL_TIMEOUT_SECONDS)

        while time.perf_counter() < deadline:
            for latencies, call in ((pages, page), (writes, write)):
                started = time.perf_counter()
                try:
                    call()
                except grpc.RpcError as exc:
                    errors[exc.code().name] += 1
                    continue
                latencies.append(time.perf_counter() - started)
    return {"small_page": latency_summary(pages), "write": latency_summary(writes), "errors": dict(errors)}


def latency_summary(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"p50_ms": quantile_ms(ordered, 0.5), "p99_ms": quantile_ms(ordered, 0.99), "calls": len(ordered)}


def scenario(
    server: ServerProcess, tokens: dict[str, str], threads: int, args: argparse.Namespace, next_id: Iterator[int]
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    stop, counts = context.Event(), context.Queue()
    flooder = None
    if threads:
        flooder = context.Process(
            target=flood, args=(server.address, tokens["a"], threads, args.flood_backoff_ms / 1000, stop, counts)
        )
        flooder.start()
        time.sleep(args.warmup_seconds)
    cpu, started = server.cpu_seconds(), time.perf_counter()
    result = probe(server.address, tokens["b"], args.seconds, next_id)
    elapsed = time.perf_counter() - started
    result["server_cpu_share"] = round((server.cpu_seconds() - cpu) / elapsed, 2)
    if flooder is not None:
        stop.set()
        flooded = counts.get(timeout=CALL_TIMEOUT_SECONDS + 30)
        flooder.join()
        flooded["pages_per_s"] = round(flooded.get("pages", 0) / (elapsed + args.warmup_seconds), 1)
        result["flood"] = flooded
    page, write = result["small_page"], result["write"]
    progress(
        f"  flood of {threads} threads: small page p50 {page['p50_ms']} ms, p99 {page['p99_ms']} ms "
        f"({page['calls']} calls); write p50 {write['p50_ms']} ms, p99 {write['p99_ms']} ms; "
        f"flood {result.get('flood', {})}; errors {result['errors']}"
    )
    return result


def run_server(name: str, store: str, source: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    progress(f"{name}: {'commit ' + args.before if source is not None else 'this checkout'}")
    with fresh_store(store, prefix="ledger_bench_reads") as url:
        tokens = create_keys(url)
        settings = {"LEDGER_AUTH": "required"}
        with server_process(
            url, transfers_max=HISTORY_TRANSFERS + 1_000_000, environment=settings, source=source
        ) as server:
            seed(server.address, tokens)
            next_id = iter(range(3_000_000, 2**63))
            return {
                f"flood_{threads}": scenario(server, tokens, threads, args, next_id) for threads in [0, *args.threads]
            }


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary worktree of commit `ref` that uses this checkout's built extensions."""
    same = ["git", "diff", "--quiet", ref, "HEAD", "--", "native", "setup.py"]
    if subprocess.run(same, cwd=ROOT, check=False).returncode:
        raise SystemExit(f"--before {ref}: native/ or setup.py differ from this checkout; build that commit instead")
    directory = Path(tempfile.mkdtemp(prefix="ledger-bench-before-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(directory), ref], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    try:
        for built in ROOT.glob("ledger/**/*.so"):
            shutil.copy2(built, directory / built.relative_to(ROOT))
        yield directory
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(directory)], cwd=ROOT, check=False)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store", default="sqlite", help="sqlite (a temporary file) or a PostgreSQL DSN (a fresh schema)"
    )
    parser.add_argument("--threads", type=lambda v: [int(t) for t in v.split(",")], default=[8, 64],
                        help="flooding threads per scenario (comma-separated)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--flood-backoff-ms", type=float, default=10.0, help="the flooder's pause after a refusal")
    parser.add_argument("--before", metavar="REF", help="also run the server of this commit, in the same run")
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    args = parser.parse_args()
    store = args.store if args.store != "sqlite" else "sqlite:"

    servers: dict[str, Any] = {}
    started = time.perf_counter()
    if args.before:
        with checkout(args.before) as source:
            servers["before"] = run_server("before", store, source, args)
    servers["after"] = run_server("after", store, None, args)
    result = {
        "benchmark": "reads",
        "store": "postgresql" if args.store != "sqlite" else "sqlite",
        "history_transfers": HISTORY_TRANSFERS,
        "flood_page": PAGE_MAX,
        "small_page": SMALL_PAGE,
        "seconds": args.seconds,
        "flood_backoff_ms": args.flood_backoff_ms,
        "before": args.before,
        "cpus": os.cpu_count(),
        "servers": servers,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
