"""Engine throughput, side by side: the Cython engine against the Python reference engine.

    python -m bench.engine --json            # 1,000,000 transfers, both engines, both scenarios
    python -m bench.engine --json --memory   # also the native engine at 100M transfers over 1M accounts,
                                             # its old records in SQLite and PostgreSQL journals

Scenarios: `uniform` (random debit and credit accounts) and `hot` (every
transfer credits one merchant account), over 100,000 accounts, in batches of
8190 plain transfers with unique ids (so every id is de-duplicated against
all before it). Progress goes to stderr; the result is one JSON object.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench._harness import DEFAULT_DSN, fresh_store, is_postgres
from ledger.engine import Account, CreateTransferResult, EngineConfig, ReferenceEngine, pack_accounts, pack_ids
from ledger.journal import Checkpoint, open_store, save_transfer_ids, transfer_ids_of
from ledger.records.layout import TRANSFER_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE, TRANSFERS_HOT_DEFAULT

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


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class _Journal:
    """The engine's cold reader over journal stores, as the ledger's: the records of the calls being gathered,
    else those of `reading`, the store lookups are timed against. Each engine call is a commit, as a ledger
    busy enough to fill a batch per commit writes them; 16 go to every store in one transaction, with their
    transfers' ids, as checkpoints store them."""

    def __init__(self, stores: dict[str, Any]) -> None:
        self.stores = stores
        self.reading = next(iter(stores.values()))
        self.first = 0
        self.accounts = 0
        self.gathered = bytearray()
        self.calls: list[tuple[int, int]] = []
        """Each gathered call's end in `gathered` and its timestamp_last."""
        self.seq = 0
        self.timestamp_last = 0
        self.reads = 0

    def __call__(self, ordinals: list[int]) -> dict[int, bytes]:
        self.reads += len(ordinals)
        found = {}
        for ordinal in ordinals:
            at = (ordinal - self.first) * TRANSFER_SIZE
            if 0 <= at < len(self.gathered):
                found[ordinal] = bytes(self.gathered[at : at + TRANSFER_SIZE])
        wanted = [ordinal for ordinal in ordinals if ordinal not in found]
        if wanted:
            found.update(self.reading.read_transfers(wanted))
        return found

    def add(self, entries: Any, timestamp_last: int) -> None:
        self.gathered += entries
        self.timestamp_last = timestamp_last
        self.calls.append((len(self.gathered), timestamp_last))
        if len(self.calls) == 16:
            self.flush()

    def flush(self, accounts: bytes = b"") -> None:
        from ledger.journal import Commit

        if not (accounts or self.gathered):
            return
        commits, start = [], 0
        for end, timestamp_last in self.calls or [(0, self.timestamp_last)]:
            self.seq += 1
            commits.append(Commit.seal(
                seq=self.seq, timestamp_last=timestamp_last,
                accounts_first=self.accounts + (len(accounts) // TRANSFER_SIZE if commits else 0),
                transfers_first=self.first + start // TRANSFER_SIZE, accounts=accounts if not commits else b"",
                transfers=bytes(self.gathered[start:end]), expired=b"",
            ))  # fmt: skip
            start = end
        ids = transfer_ids_of(self.gathered)
        for store in self.stores.values():
            store.append(commits)
            save_transfer_ids(store, self.first, ids)
        self.first += len(self.gathered) // TRANSFER_SIZE
        self.accounts += len(accounts) // TRANSFER_SIZE
        self.gathered = bytearray()
        self.calls = []


def transfer_batches(accounts: int, first_id: int, count: int, seed: int) -> Iterator[bytes]:
    """Batches of uniform plain transfers with ids first_id, first_id + 1, ..., made from a few templates whose
    ids are rewritten (packing 100M records one by one would take longer than applying them)."""
    templates = make_transfers(16 * BATCH_EVENTS_MAX, accounts, "uniform", BATCH_EVENTS_MAX, seed, first_id=1)
    ids = array.array("Q", bytes(8 * BATCH_EVENTS_MAX))
    done = 0
    while done < count:
        size = min(BATCH_EVENTS_MAX, count - done)
        batch = bytearray(templates[(done // BATCH_EVENTS_MAX) % len(templates)][: size * TRANSFER_SIZE])
        words = memoryview(batch).cast("Q")
        ids = array.array("Q", range(first_id + done, first_id + done + size))
        words[0::16] = memoryview(ids)
        done += size
        yield bytes(batch)


def measure_scale(
    accounts: int, transfers: int, stores: list[str], recovery: bool, transfers_hot: int = TRANSFERS_HOT_DEFAULT
) -> dict[str, Any]:
    """The native engine at scale, its old records in journal stores: RSS and bytes per transfer, apply
    throughput while records are evicted and read back, lookup latency of old transfers from each store, and
    recovery time from each."""
    assert NativeEngine is not None
    with contextlib.ExitStack() as stack:
        opened: dict[str, Any] = {}
        for store in stores:
            url = stack.enter_context(fresh_store(store, "ledger_bench_engine"))
            opened["postgresql" if is_postgres(store) else "sqlite"] = stack.enter_context(_connected(url))
        journal = _Journal(opened)
        config = EngineConfig(
            accounts_max=accounts, transfers_max=transfers + 64 * BATCH_EVENTS_MAX, transfers_hot=transfers_hot
        )
        before = rss_bytes()
        engine = NativeEngine(config, clock=time.time_ns, cold_reader=journal)
        created = [engine.create_accounts(batch) for batch in make_accounts(accounts)]
        journal.timestamp_last = created[-1].timestamp_last
        journal.flush(b"".join(bytes(applied.entries) for applied in created))
        with_accounts = rss_bytes()
        progress(f"  scale: {accounts:,} accounts, RSS +{(with_accounts - before) / 2**20:,.0f} MiB")
        rates, batch_ms = _fill(engine, journal, accounts, transfers)
        filled = rss_bytes()
        used = engine.memory_used()
        held = sum(
            used[table]
            for table in ("transfers", "transfer_status", "transfer_fingerprints", "transfer_index", "open_holds")
        )
        result: dict[str, Any] = {
            "accounts": accounts,
            "transfers": transfers,
            "transfers_hot": engine.transfers_hot,
            "rss_bytes": filled - before,
            "rss_bytes_per_transfer": round((filled - with_accounts) / transfers, 1),
            "table_bytes": used,
            "table_bytes_per_transfer": round(held / transfers, 1),
            "apply_transfers_per_s": {f"{stored:,}": round(rate) for stored, rate in rates},
            "apply_transfers_per_s_at_scale": round(rates[-1][1]),
            "batch_ms": {
                "p50": round(percentile(batch_ms, 0.5), 2),
                "p99": round(percentile(batch_ms, 0.99), 2),
                "max": round(max(batch_ms), 2),
                "batch": BATCH_EVENTS_MAX,
            },
            "apply_with_old_retries": _apply_with_retries(engine, journal, accounts, transfers),
            "old_lookups": {name: _old_lookups(engine, journal, store, transfers) for name, store in opened.items()},
            "recovery": {},
        }
        snapshot = engine.export_snapshot()
        del engine
        if recovery:
            checkpoint = Checkpoint.seal(
                seq=journal.seq, timestamp_last=snapshot.timestamp_last, accounts=snapshot.accounts,
                transfer_status=snapshot.transfer_status,
            )  # fmt: skip
            for name, store in opened.items():
                result["recovery"][name] = _recovery(store, checkpoint, config, name)
        return result


@contextlib.contextmanager
def _connected(url: str) -> Iterator[Any]:
    store = open_store(url)
    store.connect()
    try:
        yield store
    finally:
        store.close()


def _fill(engine: Any, journal: _Journal, accounts: int, transfers: int) -> tuple[list[tuple[int, float]], list[float]]:
    """Apply `transfers` new transfers, journaling them as they come; the engine's transfers/s (its calls only)
    per 10M, with what it held after each, and every batch's time in ms (an index shard's growth falls in one)."""
    chunk = 10_000_000
    rates: list[tuple[int, float]] = []
    batch_ms: list[float] = []
    started = time.perf_counter()
    for start in range(0, transfers, chunk):
        size = min(chunk, transfers - start)
        seconds = 0.0
        for batch in transfer_batches(accounts, start + 1, size, seed=start):
            t0 = time.perf_counter()
            applied = engine.create_transfers(batch)
            elapsed = time.perf_counter() - t0
            seconds += elapsed
            batch_ms.append(elapsed * 1000)
            journal.add(applied.entries, applied.timestamp_last)
        rates.append((start + size, size / seconds))
        progress(
            f"  scale: {start + size:>11,}/{transfers:,} transfers, apply {size / seconds / 1e6:.2f}M/s, "
            f"RSS {rss_bytes() / 2**30:.2f} GiB, {time.perf_counter() - started:,.0f} s"
        )
    journal.flush()
    assert engine.stats().transfers_count == transfers
    return rates, batch_ms


def _apply_with_retries(engine: Any, journal: _Journal, accounts: int, transfers: int) -> dict[str, Any]:
    """Batches of new transfers with 8 retries of old ones in each: every retry's record is read back from the
    journal to be compared."""
    rng = random.Random(7)
    batches, retries = 40, 8
    seconds, count, reads = 0.0, 0, journal.reads
    for batch in transfer_batches(accounts, engine.stats().transfers_count + 1, batches * BATCH_EVENTS_MAX, seed=1):
        events = bytearray(batch)
        old = rng.sample(range(1, transfers - 2 * (engine.transfers_hot or 0)), retries)
        originals = journal.reading.read_transfers([n - 1 for n in old])  # transfer n was made n - 1th
        for k, n in enumerate(old):  # a retry is the original event: the stored record, its timestamp cleared
            record = bytearray(originals[n - 1])
            record[112:120] = bytes(8)
            events[k * 1000 * TRANSFER_SIZE : (k * 1000 + 1) * TRANSFER_SIZE] = record
        t0 = time.perf_counter()
        applied = engine.create_transfers(bytes(events))
        seconds += time.perf_counter() - t0
        count += len(events) // TRANSFER_SIZE
        codes = set(applied.results[0::24])
        assert codes == {CreateTransferResult.OK, CreateTransferResult.EXISTS}, codes
        journal.add(applied.entries, applied.timestamp_last)
    journal.flush()
    found = {"transfers_per_s": round(count / seconds), "transfers": count, "old_retried": batches * retries,
             "records_read_back": journal.reads - reads}  # fmt: skip
    progress(f"  scale: apply with {retries} old retries per batch: {found['transfers_per_s'] / 1e6:.2f}M/s")
    return found


def _old_lookups(engine: Any, journal: _Journal, store: Any, transfers: int) -> dict[str, Any]:
    """One lookup of a random old transfer at a time, its record read from `store`."""
    journal.reading = store
    rng = random.Random(store.description)  # other ids for each store: none is in the engine's cold cache
    latencies = []
    for transfer_id in rng.sample(range(1, transfers - 2 * (engine.transfers_hot or 0)), 2_000):
        t0 = time.perf_counter()
        found = engine.lookup_transfers(pack_ids([transfer_id]))
        latencies.append((time.perf_counter() - t0) * 1000)
        assert len(found) == TRANSFER_SIZE and int.from_bytes(found[:16], "little") == transfer_id
    result = {"p50_ms": round(percentile(latencies, 0.5), 3), "p99_ms": round(percentile(latencies, 0.99), 3),
              "lookups": len(latencies), "store": store.description}  # fmt: skip
    progress(
        f"  scale: old-transfer lookups from {store.description}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
    )
    return result


def _recovery(store: Any, checkpoint: Any, config: EngineConfig, name: str) -> dict[str, Any]:
    """From a checkpoint at the journal's end to an engine that serves, as `ledger serve` recovers: from the
    stored transfer ids, and (for comparison) from every record, with the ids deleted."""
    from ledger.core._recovery import recover

    store.save_checkpoint(checkpoint)
    found: dict[str, Any] = {}
    for path in ("ids", "records"):
        if path == "records":
            store.drop_transfer_ids()
        t0 = time.perf_counter()
        engine = NativeEngine(config, clock=time.time_ns, cold_reader=store.read_transfers)
        report = recover(engine, store)
        seconds = time.perf_counter() - t0
        assert engine.stats().transfers_count == report.transfers_count
        assert report.index_from_checkpoint == (path == "ids")
        found[f"seconds_from_{path}"] = round(seconds, 2)
        found[f"rss_bytes_from_{path}"] = rss_bytes()
        progress(f"  scale: recovery from {name}, the transfers indexed from their {path}: {seconds:,.1f} s")
        del engine
    return {"seconds": found["seconds_from_ids"], "transfers": report.transfers_count, **found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=BATCH_EVENTS_MAX)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine and scenario (the median is reported)")
    parser.add_argument("--scenario", choices=["uniform", "hot"], action="append")
    parser.add_argument("--engine", choices=["cython", "python"], action="append")
    parser.add_argument("--memory", action="store_true",
                        help="also measure the native engine at scale, its old records in journal stores")  # fmt: skip
    parser.add_argument("--memory-transfers", type=int, default=100_000_000)
    parser.add_argument("--memory-accounts", type=int, default=1_000_000)
    parser.add_argument(
        "--memory-stores", default=f"sqlite,{DEFAULT_DSN}",
        help="comma-separated: sqlite (a temporary file) and/or PostgreSQL DSNs (fresh schemas)",
    )  # fmt: skip
    parser.add_argument("--no-recovery", action="store_true", help="skip timing recovery from each store")
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
        stores = [s for s in args.memory_stores.split(",") if s]
        report["memory"] = measure_scale(args.memory_accounts, args.memory_transfers, stores, not args.no_recovery)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
