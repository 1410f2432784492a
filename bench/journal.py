"""Durable throughput and recovery: the engine and the journal, without the network.

    python -m bench.journal --store sqlite --json
    python -m bench.journal --store postgresql://postgres@127.0.0.1:5432/test --json
    python -m bench.journal --store sqlite --json --quick      # smaller counts, recoveries of 1M only
    python -m bench.journal --store sqlite --json --parts pos_recovery,checkpoint   # only those parts

For batches of 1, 100 and 8190 transfers, concurrent callers (256, 64, 4)
submit pre-packed batches to one ledger and each call is timed from submit to
its durable acknowledgement; commit latency is the store's transaction time
as the writer sees it (part `throughput`). Then journals of 1M and 10M
transfers are written in batches of 8190 and the ledger is reopened on them,
once from its checkpoint and once from the journal alone, timing
open-to-serving (part `recovery`).

Part `pos_recovery` does the same for journals shaped as a POS fleet writes
them: commits of about 16 transfers (625,000 commits for 10M) with holds,
captures, voids and expiries among them. Writing those through a ledger
would cost a store transaction per commit, so they are written straight
through the store API (bench/_pos_journal.py): a real engine applies each
call and its entries become exactly the commit a ledger would write (same
format, seqs, ordinals, expiry points, balance entries), sealed with
Commit.seal and appended in transactions of 4096 commits. The state
recovered must equal the writing engine's (`state_matches`).

Part `checkpoint` measures what a checkpoint costs at 1M accounts: the event
loop's pause to snapshot the engine, the save on the checkpoint thread, and
POS-shaped traffic (calls of 16 transfers from 16 callers) with a checkpoint
every few hundred commits against none.

Every run uses a fresh store (a temporary SQLite file, or a new schema
dropped afterwards). Progress goes to stderr; the result is one JSON object
on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._pos_journal import FIRST_WALLET, snapshot_digest, write_pos_journal
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import IMPLEMENTATION, Account, pack_accounts
from ledger.records.layout import TRANSFER_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE

LEDGER = 978
ACCOUNTS = 10_000
CALLERS = {1: 256, 100: 64, BATCH_EVENTS_MAX: 4}
TARGETS = {"postgresql": 600_000, "sqlite": 300_000}
RECOVERY_TARGET_SECONDS = 20.0
POS_COMMIT_TRANSFERS = 16
PARTS = ("throughput", "recovery", "pos_recovery", "checkpoint")
CHECKPOINT_ACCOUNTS = 1_000_000
CHECKPOINT_TRAFFIC_TRANSFERS = 400_000
CHECKPOINT_TRAFFIC_CALLERS = 16
CHECKPOINT_EVERY_COMMITS_OFTEN = 200
_ID = struct.Struct("<Q")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def fresh_store(store: str) -> Iterator[str]:
    """A store URL nobody has used: a file in a new directory, or a new PostgreSQL schema."""
    if store.startswith(("postgresql://", "postgres://")):
        from tests.stores import temporary_schema

        with temporary_schema(store, "ledger_bench") as url:
            yield url
    else:
        base = None if store == "sqlite" else Path(store).parent
        with tempfile.TemporaryDirectory(prefix="ledger-bench-", dir=base) as directory:
            yield f"sqlite:///{Path(directory) / 'journal.sqlite3'}"


def template_batch(size: int, seed: int, accounts: int = ACCOUNTS) -> bytearray:
    """A batch of plain transfers between pseudo-random accounts; ids are patched in per use."""
    buffer = bytearray(size * TRANSFER_SIZE)
    state = seed
    for i in range(size):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        debit = 1 + (state >> 33) % accounts
        credit = 1 + (debit + 1 + (state >> 13) % (accounts - 1)) % accounts
        credit = credit if credit != debit else 1 + debit % accounts
        TRANSFER_STRUCT.pack_into(
            buffer, i * TRANSFER_SIZE,
            0, 0, debit, 0, credit, 0, 1 + i % 997, 0, 0, 0, 0, 0, 0, 0, LEDGER, 1, 0, 0, 0,
        )  # fmt: skip
    return buffer


def batches(template: bytearray, count: int, first_id: int) -> Iterator[bytes]:
    """`count` transfers in batches shaped like `template`, with ids first_id, first_id + 1, …"""
    size = len(template) // TRANSFER_SIZE
    next_id = first_id
    remaining = count
    while remaining > 0:
        n = min(size, remaining)
        for i in range(n):
            _ID.pack_into(template, i * TRANSFER_SIZE, next_id + i)
        yield bytes(template[: n * TRANSFER_SIZE])
        next_id += n
        remaining -= n


async def open_accounts(ledger: Ledger) -> None:
    accounts = [Account(id=i, ledger=LEDGER, code=1) for i in range(1, ACCOUNTS + 1)]
    for start in range(0, ACCOUNTS, BATCH_EVENTS_MAX):
        await ledger.create_accounts(pack_accounts(accounts[start : start + BATCH_EVENTS_MAX]))


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def timed_callers(ledger: Ledger, work: list[bytes], callers: int) -> tuple[list[float], float]:
    """`callers` tasks sending the batches of `work` until none is left: each call's latency, and the seconds."""
    latencies: list[float] = []
    next_index = 0

    async def caller() -> None:
        nonlocal next_index
        while next_index < len(work):
            batch = work[next_index]
            next_index += 1
            started = time.perf_counter()
            await ledger.create_transfers(batch)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return latencies, time.perf_counter() - started


async def throughput(url: str, batch_size: int, count: int) -> dict[str, Any]:
    callers = CALLERS[batch_size]
    commits: list[float] = []
    config = LedgerConfig(store=url, accounts_max=ACCOUNTS, transfers_max=count + 1, pending_transfers_max=1)
    ledger = await Ledger.open(config, on_commit=lambda _c, _t, seconds: commits.append(seconds))
    try:
        await open_accounts(ledger)
        work = list(batches(template_batch(batch_size, seed=batch_size), count, first_id=1))
        commits.clear()
        latencies, elapsed = await timed_callers(ledger, work, callers)
        assert ledger.stats().engine.transfers_count == count
    finally:
        await ledger.close()
    return {
        "transfers": count,
        "callers": callers,
        "seconds": round(elapsed, 3),
        "transfers_per_s": round(count / elapsed),
        "call_p50_ms": round(1000 * percentile(latencies, 0.50), 3),
        "call_p99_ms": round(1000 * percentile(latencies, 0.99), 3),
        "commits": len(commits),
        "commit_p50_ms": round(1000 * percentile(commits, 0.50), 3),
        "commit_p99_ms": round(1000 * percentile(commits, 0.99), 3),
        "transfers_per_commit": round(count / max(1, len(commits)), 1),
    }


async def write_journal(config: LedgerConfig, count: int) -> float:
    """Journal `count` transfers in full batches from 4 callers; close (which checkpoints). Returns seconds."""
    ledger = await Ledger.open(config)
    written = 0
    started = time.perf_counter()
    try:
        await open_accounts(ledger)
        work = batches(template_batch(BATCH_EVENTS_MAX, seed=7), count, first_id=1)

        async def caller() -> None:
            nonlocal written
            for batch in work:
                await ledger.create_transfers(batch)
                written += len(batch) // TRANSFER_SIZE
                if written % 1_000_000 < BATCH_EVENTS_MAX:
                    progress(f"  journaled {written:,} of {count:,}")

        await asyncio.gather(*(caller() for _ in range(4)))
    finally:
        await ledger.close()
    return time.perf_counter() - started


async def reopen(config: LedgerConfig, count: int, expected_state: str | None = None) -> dict[str, Any]:
    """Open the ledger on its journal and time it; with `expected_state`, check the state it recovered."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    ledger = await Ledger.open(config)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    report = ledger.recovery
    result: dict[str, Any] = {
        "open_to_serving_seconds": round(seconds, 2),
        "recovery_seconds": round(report.seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "commits_replayed": report.commits_replayed,
        "transfers_replayed": report.transfers_replayed,
    }
    if expected_state is not None:
        snapshot = ledger._engine.export_snapshot()
        result["state_matches"] = snapshot_digest(snapshot.accounts, snapshot.transfer_status) == expected_state
    await ledger.close(checkpoint=False)  # leave the store as it was for the next run
    assert report.transfers_count == count, report
    return result


async def recovery(url: str, count: int) -> dict[str, Any]:
    config = LedgerConfig(
        store=url,
        accounts_max=ACCOUNTS,
        transfers_max=count + 1,
        pending_transfers_max=1,
        checkpoint_every_transfers=count,  # one checkpoint, when the journal is written
        checkpoint_every_bytes=2**62,
    )
    result: dict[str, Any] = {"transfers": count, "write_seconds": round(await write_journal(config, count), 1)}
    result["from_checkpoint"] = await reopen(config, count)
    progress(f"  reopened from the checkpoint in {result['from_checkpoint']['open_to_serving_seconds']} s")
    from tests.stores import execute

    execute(url, "DELETE FROM ledger_checkpoints")
    result["journal_only"] = await reopen(config, count)
    progress(f"  reopened from the journal alone in {result['journal_only']['open_to_serving_seconds']} s")
    return result


async def pos_recovery(url: str, count: int) -> dict[str, Any]:
    """Recovery of `count` transfers journaled in commits of about 16, from its checkpoint and from the journal."""
    journal = await asyncio.to_thread(
        write_pos_journal, url, count, wallets=ACCOUNTS, commit_transfers=POS_COMMIT_TRANSFERS, checkpoint=True,
        progress=progress,
    )  # fmt: skip
    progress(f"  journaled {journal.transfers:,} transfers in {journal.commits:,} commits in {journal.seconds:.0f} s")
    config = LedgerConfig(
        store=url,
        accounts_max=FIRST_WALLET + ACCOUNTS,
        transfers_max=journal.transfers + 1,
        pending_transfers_max=100_000,
    )
    result: dict[str, Any] = journal.as_json()
    for name in ("from_checkpoint", "journal_only"):
        if name == "journal_only":
            from tests.stores import execute

            execute(url, "DELETE FROM ledger_checkpoints")
        result[name] = await reopen(config, journal.transfers, expected_state=journal.snapshot_sha256)
        progress(f"  reopened ({name}) in {result[name]['open_to_serving_seconds']} s")
    return result


class _LoopWatch:
    """The event loop's longest pause while it runs: a task that asks to wake every millisecond."""

    def __init__(self) -> None:
        self.pause_ms_max = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.pause_ms_max = max(self.pause_ms_max, 1000 * (time.perf_counter() - started) - 1)

    def __enter__(self) -> _LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def checkpoint_cost(
    store: str,
    every_commits: int | None,
    accounts: int = CHECKPOINT_ACCOUNTS,
    count: int = CHECKPOINT_TRAFFIC_TRANSFERS,
) -> dict[str, Any]:
    """POS-shaped traffic at `accounts` accounts, with a checkpoint every `every_commits` commits (None: none
    during the traffic), and what one checkpoint costs there."""
    never = 2**62
    with fresh_store(store) as url:
        config = LedgerConfig(
            store=url,
            accounts_max=accounts,
            transfers_max=count + 1,
            pending_transfers_max=1,
            checkpoint_every_transfers=never,
            checkpoint_every_commits=every_commits or never,
            checkpoint_every_bytes=never,
            checkpoint_interval_seconds=1e9,
        )
        ledger = await Ledger.open(config)
        try:
            for start in range(0, accounts, BATCH_EVENTS_MAX):
                ids = range(start + 1, min(accounts, start + BATCH_EVENTS_MAX) + 1)
                await ledger.create_accounts(pack_accounts([Account(id=i, ledger=LEDGER, code=1) for i in ids]))
            result: dict[str, Any] = {"accounts": accounts, "checkpoint_every_commits": every_commits}
            if every_commits is None:
                started = time.perf_counter()
                snapshot = ledger._engine.export_snapshot()
                result["snapshot_ms"] = round(1000 * (time.perf_counter() - started), 1)
                result["checkpoint_bytes_raw"] = len(snapshot.accounts) + len(snapshot.transfer_status)
                del snapshot
                started = time.perf_counter()
                await ledger.checkpoint()
                result["checkpoint_seconds"] = round(time.perf_counter() - started, 2)
            template = template_batch(POS_COMMIT_TRANSFERS, seed=11, accounts=accounts)
            work = list(batches(template, count, first_id=1))
            checkpoints_before = ledger.stats().writer.checkpoints_total
            seq_before = ledger.stats().writer.seq_last
            with _LoopWatch() as watch:
                latencies, elapsed = await timed_callers(ledger, work, CHECKPOINT_TRAFFIC_CALLERS)
            stats = ledger.stats().writer
        finally:
            await ledger.close(checkpoint=False)
    result.update(
        transfers=count,
        commits=stats.seq_last - seq_before,
        checkpoints=stats.checkpoints_total - checkpoints_before,
        transfers_per_s=round(count / elapsed),
        call_p50_ms=round(1000 * percentile(latencies, 0.50), 2),
        call_p99_ms=round(1000 * percentile(latencies, 0.99), 2),
        loop_pause_ms_max=round(watch.pause_ms_max, 1),
    )
    return result


def store_size(url: str) -> dict[str, Any]:
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///"))
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.suffix != ".lock")
        return {"bytes": size}
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT pg_total_relation_size('ledger_journal'), pg_total_relation_size('ledger_account_transfers') "
            "+ pg_total_relation_size('ledger_account_balances'), pg_total_relation_size('ledger_checkpoints')"
        ).fetchone()
    assert row is not None
    # The journal with its indexes, the history index included; checkpoints are per ledger, not per transfer.
    return {"bytes": int(row[0]) + int(row[1]), "history_index_bytes": int(row[1]), "checkpoint_bytes": int(row[2])}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    kind = "postgresql" if args.store.startswith(("postgresql://", "postgres://")) else "sqlite"
    counts = {1: 20_000, 100: 400_000, BATCH_EVENTS_MAX: 2_000_000}
    if args.quick:
        counts = {1: 5_000, 100: 100_000, BATCH_EVENTS_MAX: 500_000}
    report: dict[str, Any] = {
        "benchmark": "journal",
        "store": kind,
        "engine": IMPLEMENTATION,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    report["targets"] = targets = {}
    if "throughput" in args.parts:
        report["batch_sizes"] = {}
        for batch_size, count in counts.items():
            progress(f"{kind}: {count:,} transfers in batches of {batch_size} from {CALLERS[batch_size]} callers")
            with fresh_store(args.store) as url:
                result = await throughput(url, batch_size, count)
            progress(f"  {result['transfers_per_s']:,} durable transfers/s, call p99 {result['call_p99_ms']} ms")
            report["batch_sizes"][str(batch_size)] = result
        report["transfers_per_s"] = {size: r["transfers_per_s"] for size, r in report["batch_sizes"].items()}
        full = report["transfers_per_s"][str(BATCH_EVENTS_MAX)]
        targets["transfers_per_s_at_8190"] = {"target": TARGETS[kind], "measured": full, "met": full >= TARGETS[kind]}
    for part, run in (("recovery", recovery), ("pos_recovery", pos_recovery)):
        if part not in args.parts:
            continue
        report[part] = {}
        for count in args.recovery:
            shape = "in commits of about 16" if part == "pos_recovery" else "in batches of 8190"
            progress(f"{kind}: recovery of {count:,} transfers journaled {shape}")
            with fresh_store(args.store) as url:
                result = await run(url, count)
                result["store"] = store_size(url)
                result["store"]["bytes_per_transfer"] = round(result["store"]["bytes"] / count, 1)
            report[part][str(count)] = result
        if "10000000" in report[part]:
            ten = report[part]["10000000"]
            worst = max(
                ten["from_checkpoint"]["open_to_serving_seconds"], ten["journal_only"]["open_to_serving_seconds"]
            )
            targets[f"{part}_10m_seconds"] = {
                "target": RECOVERY_TARGET_SECONDS,
                "measured": worst,
                "met": worst <= RECOVERY_TARGET_SECONDS,
            }
    if report.get("recovery") and report.get("pos_recovery"):
        # Side by side in one run: what commits of about 16 cost over batches of 8190, for the same transfers.
        report["pos_over_batched"] = {
            count: {
                f"{name}_{measure}": round(pos[name][measure] / max(0.01, report["recovery"][count][name][measure]), 2)
                for name in ("journal_only", "from_checkpoint")
                for measure in ("open_to_serving_seconds", "cpu_seconds")
            }
            for count, pos in report["pos_recovery"].items()
            if count in report["recovery"]
        }
    if kind == "postgresql" and report.get("recovery"):
        largest = report["recovery"][str(max(args.recovery))]["store"]["bytes_per_transfer"]
        targets["journal_bytes_per_transfer"] = {"target": 200, "measured": largest, "met": largest <= 200}
    if "checkpoint" in args.parts:
        report["checkpoint"] = {}
        for label, every in (("none_during_traffic", None), ("often", CHECKPOINT_EVERY_COMMITS_OFTEN)):
            progress(f"{kind}: {CHECKPOINT_ACCOUNTS:,} accounts, POS traffic with checkpoints {label}")
            result = await checkpoint_cost(args.store, every)
            progress(f"  {result['transfers_per_s']:,} transfers/s, call p99 {result['call_p99_ms']} ms, "
                     f"{result['checkpoints']} checkpoints")  # fmt: skip
            report["checkpoint"][label] = result
        report["checkpoint"]["at_the_default"] = checkpoint_overhead(report["checkpoint"])
    return report


def checkpoint_overhead(runs: dict[str, Any]) -> dict[str, Any]:
    """What one checkpoint cost the traffic (the time it took over the time without), and what that makes at the
    default LEDGER_CHECKPOINT_EVERY_COMMITS at the commit rate the traffic had without checkpoints."""
    none, often = runs["none_during_traffic"], runs["often"]
    lost = none["transfers"] / often["transfers_per_s"] - none["transfers"] / none["transfers_per_s"]
    per_checkpoint = lost / max(1, often["checkpoints"])
    commits_per_s = none["commits"] * none["transfers_per_s"] / none["transfers"]
    every = LedgerConfig().checkpoint_every_commits
    return {
        "seconds_lost_per_checkpoint": round(per_checkpoint, 3),
        "commits_per_s": round(commits_per_s),
        "checkpoint_every_commits": every,
        "seconds_between_checkpoints": round(every / commits_per_s, 1),
        "throughput_lost_fraction": round(per_checkpoint * commits_per_s / every, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="sqlite", help="sqlite (a temporary file), a directory path, or a DSN")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default prints it indented)")
    parser.add_argument("--quick", action="store_true", help="smaller counts; recoveries of 1M only")
    parser.add_argument(
        "--recovery",
        type=lambda text: [int(x) for x in text.split(",") if x],
        default=None,
        help="journal sizes to recover, comma-separated (default 1000000,10000000)",
    )
    parser.add_argument(
        "--parts",
        type=lambda text: [x for x in text.split(",") if x],
        default=list(PARTS),
        help=f"which parts to run, comma-separated (default all: {','.join(PARTS)})",
    )
    args = parser.parse_args()
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    if args.recovery is None:
        args.recovery = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    report = asyncio.run(main_async(args))
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
