"""Engine throughput, side by side: the Cython engine against the Python reference engine.

    python -m bench.engine --json            # 1,000,000 transfers, both engines, both scenarios
    python -m bench.engine --json --memory   # also RSS for 1M accounts + 10M transfers (native)

Scenarios: `uniform` (random debit and credit accounts) and `hot` (every
transfer credits one merchant account), over 100,000 accounts, in batches of
8190 plain transfers with unique ids (so every id is de-duplicated against
all before it). Progress goes to stderr; the result is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from typing import Any

from ledger.engine import Account, EngineConfig, ReferenceEngine, pack_accounts
from ledger.records.layout import TRANSFER_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE

try:
    from ledger.engine._c import NativeEngine
except ImportError:
    NativeEngine = None  # type: ignore[assignment,misc]

LEDGER = 1
CODE = 1


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_accounts(count: int) -> list[bytes]:
    accounts = [Account(id=i, ledger=LEDGER, code=CODE) for i in range(1, count + 1)]
    return [pack_accounts(accounts[i : i + BATCH_EVENTS_MAX]) for i in range(0, count, BATCH_EVENTS_MAX)]


def make_transfers(count: int, accounts: int, scenario: str, batch_size: int, seed: int, first_id: int) -> list[bytes]:
    """Packed batches of plain transfers with ids first_id, first_id + 1, ..."""
    rng = random.Random(seed)
    batches = []
    for start in range(0, count, batch_size):
        size = min(batch_size, count - start)
        buffer = bytearray(size * TRANSFER_SIZE)
        for i in range(size):
            if scenario == "hot":
                debit, credit = rng.randint(2, accounts), 1
            else:
                debit = rng.randint(1, accounts)
                credit = rng.randint(1, accounts - 1)
                credit += credit >= debit
            transfer_id = first_id + start + i
            amount = 1 + transfer_id % 1000
            TRANSFER_STRUCT.pack_into(
                buffer, i * TRANSFER_SIZE,
                transfer_id, 0, debit, 0, credit, 0, amount, 0, 0, 0, 0, 0, 0, 0, LEDGER, CODE, 0, 0, 0,
            )  # fmt: skip
        batches.append(bytes(buffer))
    return batches


def run(engine_class: type[Any], batches: list[bytes], args: argparse.Namespace, label: str) -> dict[str, Any]:
    """Apply the batches to a fresh engine `args.repeat` times; report the median run."""
    runs = []
    for repeat in range(args.repeat):
        # Tables are allocated and faulted in here, at start, as in a server: not timed.
        config = EngineConfig(accounts_max=args.accounts, transfers_max=args.transfers + 1, pending_transfers_max=1)
        engine = engine_class(config, clock=time.time_ns)
        for batch in make_accounts(args.accounts):
            engine.create_accounts(batch)
        elapsed = 0.0
        for index, batch in enumerate(batches):
            started = time.perf_counter()
            applied = engine.create_transfers(batch)
            elapsed += time.perf_counter() - started
            if index == 0:
                assert set(applied.results[0::24]) == {1}, "benchmark transfers must all succeed"
        assert engine.stats().transfers_count == args.transfers
        runs.append(elapsed)
        progress(f"  {label}: run {repeat + 1}/{args.repeat}: {args.transfers / elapsed:,.0f} transfers/s")
    median = statistics.median(runs)
    return {
        "transfers": args.transfers,
        "seconds": round(median, 4),
        "transfers_per_s": round(args.transfers / median),
        "runs_transfers_per_s": [round(args.transfers / r) for r in runs],
    }


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found")


def measure_memory(accounts: int, transfers: int, batch_size: int) -> dict[str, Any]:
    """RSS of the native engine holding `accounts` accounts and `transfers` transfers.

    The engine allocates and faults in its tables at start, so RSS is what the
    tables take at that capacity; it is measured after filling them.
    """
    assert NativeEngine is not None
    before = rss_bytes()
    engine = NativeEngine(
        EngineConfig(accounts_max=accounts, transfers_max=transfers, pending_transfers_max=1), clock=time.time_ns
    )
    allocated = rss_bytes()
    mib = (allocated - before) / 2**20
    progress(f"  memory: tables for {accounts:,} accounts and {transfers:,} transfers: RSS +{mib:,.0f} MiB")
    for batch in make_accounts(accounts):
        engine.create_accounts(batch)
    chunk = 1_000_000
    for start in range(0, transfers, chunk):
        for batch in make_transfers(min(chunk, transfers - start), accounts, "uniform", batch_size, start, start + 1):
            engine.create_transfers(batch)
        done = min(start + chunk, transfers)
        progress(f"  memory: {done:>11,}/{transfers:,} transfers, RSS {rss_bytes() / 2**20:,.0f} MiB")
    filled = rss_bytes()
    tables = engine.memory_bytes()
    assert engine.stats().transfers_count == transfers
    account_bytes = tables["accounts"] + tables["account_index"]
    return {
        "accounts": accounts,
        "transfers": transfers,
        "rss_bytes": filled - before,
        "table_bytes": tables,
        "bytes_per_account": round(account_bytes / accounts, 1),
        "bytes_per_transfer_id": round(tables["transfer_index"] / transfers, 1),
        "bytes_per_transfer_record": round((tables["transfers"] + tables["transfer_status"]) / transfers, 1),
        "rss_bytes_per_transfer": round((filled - before - account_bytes) / transfers, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=BATCH_EVENTS_MAX)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine and scenario (the median is reported)")
    parser.add_argument("--scenario", choices=["uniform", "hot"], action="append")
    parser.add_argument("--engine", choices=["cython", "python"], action="append")
    parser.add_argument("--memory", action="store_true", help="also measure RSS for 1M accounts + 10M transfers")
    parser.add_argument("--memory-transfers", type=int, default=10_000_000)
    parser.add_argument("--memory-accounts", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default prints it indented)")
    args = parser.parse_args(argv)
    engines = {"python": ReferenceEngine}
    if NativeEngine is not None:
        engines["cython"] = NativeEngine
    wanted = args.engine or ["cython", "python"]
    missing = [name for name in wanted if name not in engines]
    if missing:
        parser.error(f"engine not available: {', '.join(missing)} (the native engine is not built)")
    report: dict[str, Any] = {
        "benchmark": "engine",
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "accounts": args.accounts,
        "transfers": args.transfers,
        "batch_size": args.batch_size,
        "results": {},
    }
    for scenario in args.scenario or ["uniform", "hot"]:
        progress(f"{scenario}: making {args.transfers:,} transfers over {args.accounts:,} accounts")
        batches = make_transfers(args.transfers, args.accounts, scenario, args.batch_size, args.seed, first_id=1)
        for name in wanted:
            label = f"{name} engine, {scenario}"
            report["results"].setdefault(name, {})[scenario] = run(engines[name], batches, args, label)
    if "cython" in report["results"] and "python" in report["results"]:
        report["cython_over_python"] = {
            scenario: round(
                report["results"]["cython"][scenario]["transfers_per_s"]
                / report["results"]["python"][scenario]["transfers_per_s"],
                1,
            )
            for scenario in report["results"]["cython"]
        }
    if args.memory:
        if NativeEngine is None:
            parser.error("--memory measures the native engine, which is not built")
        report["memory"] = measure_memory(args.memory_accounts, args.memory_transfers, args.batch_size)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
