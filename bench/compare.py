"""Side by side, in one run on this machine: this ledger, a plain PostgreSQL ledger, and TigerBeetle.

    python -m bench.compare --quick                          # about 3 minutes
    python -m bench.compare                                  # steadier: 5 s and more calls per scenario
    python -m bench.compare --quick --tigerbeetle-binary ./tigerbeetle   # TigerBeetle too (started here)
    python -m bench.compare --tigerbeetle 3000               # a TigerBeetle cluster you started
    python -m bench.compare --quick --readme README.md       # and regenerate the README's Performance section
    python -m bench.compare --pgbench /usr/lib/postgresql/15/bin/pgbench   # pgbench when it is not on PATH

Systems, each on a fresh state of its own, every transfer durable before it is answered (bench/_systems.py):

- `ledger_postgresql`, `ledger_sqlite`: `ledger serve` in its own process on that store; single transfers
  from N callers go as N asyncio tasks sharing one auto-batching `ledger.client.AsyncClient`; batches
  packed (numpy records through `create_transfers_packed`) and typed (`Transfer` objects).
- `plain_postgresql`, `plain_postgresql_one`: the plain PostgreSQL ledger of bench/plain_pg.py driven from
  Python by psycopg 3, one connection per caller up to what max_connections leaves: a transaction of five
  round trips per transfer (and batches), or one statement per transfer (a CTE).
- `plain_postgresql_pgbench`, `plain_postgresql_pgbench_one`: the same two, driven by pgbench from C
  (bench/_pgbench.py); single transfers only. Targets over the plain ledger are judged against the
  fastest of its four drivers.
- `tigerbeetle` (with `--tigerbeetle-binary PATH`, started here, or `--tigerbeetle ADDRESS`): through its
  Python client, typed (`tigerbeetle.Transfer` objects) and packed (numpy records in its C layout).

Workloads: `uniform` (debit and credit drawn among the funded customer accounts, 100,000 by default)
and `hot_merchant` (a random customer pays, one merchant account is credited every time). Each runs
single transfers at 1, 8, 32 and 256 concurrent callers, then batches of 8190 (TigerBeetle: what its
server takes, probed first; 8189 at most), four in flight. All systems are loaded first, then left to
settle; each scenario then runs on every system in turn, the order rotated from one scenario to the
next, and each run starts on a quiet disk: the pages the system before it wrote are flushed first
(sync, then until the kernel's dirty and writeback pages are under 32 MiB), so that no system's
commits wait behind another's writeback. A scenario's window lasts a minimum time and at least a
minimum number of calls. A system that fails is reported with its error; the others go on.

Writes `compare.json`, `compare.md`, `throughput.png` and `latency.png` into `--out`; a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from tqdm import tqdm

from bench import _pgbench, _report, _tigerbeetle
from bench._harness import DEFAULT_DSN, Caller, Window, is_postgres, measure
from bench._systems import (
    AMOUNT_MAX,
    BALANCE,
    BATCH_IN_FLIGHT,
    WORKLOADS,
    LedgerSystem,
    PgbenchSystem,
    PlainSystem,
    Sampler,
    System,
    TigerBeetleSystem,
)
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.server import run_event_loop

CALLERS = (1, 8, 32, 256)
SYSTEMS = (
    "ledger_postgresql", "ledger_sqlite", "plain_postgresql", "plain_postgresql_one", "plain_postgresql_pgbench",
    "plain_postgresql_pgbench_one", "tigerbeetle",
)  # fmt: skip
PGBENCH_SYSTEMS = {"plain_postgresql_pgbench": "five", "plain_postgresql_pgbench_one": "one"}
BATCH_KEYS = {"packed": "batch", "typed": "batch_typed"}
"""A batch scenario's key in the report, by kind of batch."""
SCENARIO_GRACE_SECONDS = 120.0
"""A scenario that has not ended this long after its longest window is stopped and its system marked failed."""
QUIET_DIRTY_BYTES_MAX = 32 * 1024 * 1024
"""A run starts once the kernel's dirty and writeback pages are below this (or QUIET_SECONDS_MAX passed)."""
QUIET_SECONDS_MAX = 30.0


@dataclass(frozen=True, kw_only=True)
class Plan:
    customers: int
    callers: tuple[int, ...]
    seconds: float
    warmup_seconds: float
    batch_seconds: float
    """Batches take longer: a window long enough for several of the slowest system's."""
    calls_min: int = 0
    """A single-transfer window lasts until this many calls ended in it (as well as `seconds`)..."""
    batch_calls_min: int = 0
    seconds_max: float | None = None
    """... but no longer than this (None: `seconds`)."""
    batch_seconds_max: float | None = None
    settle_seconds: float = 0.0
    """The pause after loading every system (and a VACUUM ANALYZE and a CHECKPOINT for PostgreSQL)."""
    workloads: tuple[str, ...] = WORKLOADS

    def scenarios(self) -> list[Scenario]:
        """Single transfers of every workload first, then the batches: the background work that heavy
        batches leave behind (checkpoints, vacuum) then falls on the batches, not on the single callers."""
        singles = [Scenario(workload, "single", n) for workload in self.workloads for n in self.callers]
        batches = [Scenario(workload, kind, BATCH_IN_FLIGHT) for workload in self.workloads for kind in BATCH_KEYS]
        return singles + batches


@dataclass(frozen=True)
class Scenario:
    workload: str
    kind: str
    """"single", or a kind of batch: "packed" or "typed"."""
    callers: int

    @property
    def key(self) -> str:
        """Its key in the report: single_<callers>, batch (packed) or batch_typed."""
        return f"single_{self.callers}" if self.kind == "single" else BATCH_KEYS[self.kind]


def runs(system: System | PgbenchSystem, scenario: Scenario) -> bool:
    return scenario.kind == "single" or scenario.kind in system.batch_kinds


@dataclass
class Progress:
    """The progress bar: one step per scenario and system, result lines printed above it."""

    bar: Any

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)


def single_caller(system: System, sampler: Sampler) -> Caller:
    async def caller(index: int, window: Window) -> None:
        while not window.stopped:
            debit, credit, amount = sampler.one()
            started = time.perf_counter()
            await system.transfer(index, debit, credit, amount)
            window.record(time.perf_counter() - started, 1)

    return caller


def batch_caller(system: System, sampler: Sampler, kind: str) -> Caller:
    async def caller(index: int, window: Window) -> None:
        while not window.stopped:
            debits, credits, amounts = sampler.many(system.batch_transfers)
            started = time.perf_counter()
            await system.batch(index, debits, credits, amounts, kind)
            window.record(time.perf_counter() - started, len(debits))

    return caller


async def run_scenario(system: System | PgbenchSystem, scenario: Scenario, plan: Plan, sampler: Sampler,
                       progress: Progress) -> dict[str, Any]:  # fmt: skip
    name = f"{system.key} {scenario.workload} {scenario.key}"
    single = scenario.kind == "single"
    if isinstance(system, PgbenchSystem):
        result = await system.run_single(
            scenario.workload, scenario.callers, seconds=plan.seconds, warmup_seconds=plan.warmup_seconds,
            calls_min=plan.calls_min, seconds_max=plan.seconds_max or plan.seconds,
        )  # fmt: skip
        progress.write(
            f"  {name}: {result['transfers_per_s']:,} transfers/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} "
            f"ms ({result['calls']:,} transactions, {result['connections']} connections); CPU per transfer: server "
            f"{result['server_cpu_us_per_transfer'] or '(not sampled)'} us, pgbench "
            f"{result['client_cpu_us_per_transfer']} us"
        )
        return result
    note = await system.prepare(scenario.callers)
    try:
        result = await measure(
            name, scenario.callers,
            single_caller(system, sampler) if single else batch_caller(system, sampler, scenario.kind),
            plan.seconds if single else plan.batch_seconds, plan.warmup_seconds, meters=system.meters,
            calls_min=plan.calls_min if single else plan.batch_calls_min,
            seconds_max=plan.seconds_max if single else plan.batch_seconds_max, report=progress.write, p999=True,
        )  # fmt: skip
    finally:
        await system.finish()
    result = {"callers": scenario.callers, **result, **({"note": note} if note else {})}
    if not single:
        result["batch_transfers"] = system.batch_transfers
    return result


def dirty_bytes() -> int | None:
    """The kernel's dirty and writeback page bytes (Linux), or None where /proc/meminfo does not say."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    fields = {name: value for name, _, value in (line.partition(":") for line in lines)}
    try:
        return sum(int(fields[name].split()[0]) * 1024 for name in ("Dirty", "Writeback"))
    except (KeyError, ValueError, IndexError):
        return None


async def quiet_disk() -> None:
    """Flush what earlier runs wrote and wait for the writeback to end (at most QUIET_SECONDS_MAX): a
    system's commits must not wait behind the previous system's pages."""
    started = time.perf_counter()
    await asyncio.to_thread(os.sync)
    while (time.perf_counter() - started < QUIET_SECONDS_MAX
           and (dirty := dirty_bytes()) is not None and dirty > QUIET_DIRTY_BYTES_MAX):  # fmt: skip
        await asyncio.sleep(0.05)


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 600 else text[:600] + " ..."


async def settle(systems: list[System | PgbenchSystem], store: str, plan: Plan, progress: Progress) -> list[str]:
    """After every load (each system's own VACUUM ANALYZE done): one CHECKPOINT, then a pause. What was done."""
    done = []
    if any(system.postgres for system in systems) and is_postgres(store):
        done.append("VACUUM ANALYZE of each PostgreSQL schema's tables")
        try:
            async with await psycopg.AsyncConnection.connect(store, autocommit=True) as connection:
                await connection.execute("CHECKPOINT")
            done.append("a CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege as exc:
            progress.write(f"  no CHECKPOINT after loading: {exc}")
    if plan.settle_seconds:
        await asyncio.sleep(plan.settle_seconds)
        done.append(f"a pause of {plan.settle_seconds:g} s")
    return done


async def run_all(systems: list[System | PgbenchSystem], plan: Plan, progress: Progress, *,
                  store: str = DEFAULT_DSN) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """Load every system, let them settle, then each scenario on each system, the order rotated per scenario.
    The results per system, and what was done to let the systems settle.

    A system that fails (at start, while settling, in a scenario, at stop) keeps the results it had, gets
    an `error`, is stopped, and is left out of what follows; the others go on.
    """
    out: dict[str, Any] = {
        system.key: {"label": system.label, "notes": system.notes, "info": system.info,
                     "workloads": {workload: {} for workload in plan.workloads}}
        for system in systems
    }  # fmt: skip
    failed: set[str] = set()
    running: list[System | PgbenchSystem] = []
    settled: list[str] = []

    async def stop(system: System | PgbenchSystem) -> None:
        running.remove(system)
        try:
            await system.stop()
        except Exception as exc:
            if system.key not in failed:
                await fail(system, "stop", exc)

    async def fail(system: System | PgbenchSystem, stage: str, exc: BaseException) -> None:
        failed.add(system.key)
        out[system.key]["error"] = f"{stage}: {error_text(exc)}"
        progress.write(f"  {system.key} failed ({stage}): {error_text(exc)}; the other systems go on")
        if system in running:
            await stop(system)

    try:
        for system in systems:
            progress.bar.set_description(f"{system.key}: opening {plan.customers:,} accounts")
            running.append(system)
            loading = time.perf_counter()
            try:
                await system.start(plan.customers)
            except Exception as exc:
                await fail(system, "start", exc)
            out[system.key]["load_seconds"] = round(time.perf_counter() - loading, 1)
        progress.bar.set_description("settling after the loads")
        for system in list(running):
            try:
                await system.settle()
            except Exception as exc:
                await fail(system, "settle", exc)
        settled = await settle(running, store, plan, progress)
        samplers = {(s.key, w): Sampler(w, plan.customers) for s in systems for w in plan.workloads}
        longest = max(plan.seconds_max or plan.seconds, plan.batch_seconds_max or plan.batch_seconds)
        for index, scenario in enumerate(plan.scenarios()):
            order = systems[index % len(systems) :] + systems[: index % len(systems)]
            for system in order:
                if not runs(system, scenario):
                    continue
                progress.bar.set_description(f"{system.key}: {scenario.workload}, {scenario.key}")
                if system.key not in failed:
                    await quiet_disk()
                    try:
                        result = await asyncio.wait_for(
                            run_scenario(system, scenario, plan, samplers[system.key, scenario.workload], progress),
                            plan.warmup_seconds + longest + SCENARIO_GRACE_SECONDS,
                        )
                    except Exception as exc:
                        await fail(system, f"{scenario.workload} {scenario.key}", exc)
                    else:
                        out[system.key]["workloads"][scenario.workload][scenario.key] = result
                progress.bar.update()
    finally:
        for system in list(running):
            await stop(system)
    for system in systems:
        out[system.key]["info"] = system.info
        out[system.key]["notes"] = system.notes
    return out, settled


def transfers_max_for(plan: Plan) -> int:
    """Engine capacity for a run: funding, then generous rates for each scenario's least window (a window
    kept open for more calls only stays open when the rate is low). Engine tables are sized by it, and a
    server starts slower the larger they are."""
    seconds = plan.seconds + plan.warmup_seconds + 2
    batch_seconds = plan.batch_seconds + plan.warmup_seconds + 2
    singles = len(plan.callers) * (seconds * 100_000 + plan.calls_min)
    batches = batch_seconds * (1_500_000 + 400_000) + 2 * plan.batch_calls_min * BATCH_EVENTS_MAX  # packed, typed
    return int(min(60_000_000, plan.customers + len(plan.workloads) * (singles + batches)))


def make_systems(args: argparse.Namespace, plan: Plan, progress: Progress) -> list[System | PgbenchSystem]:
    systems: list[System | PgbenchSystem] = []
    for key in args.systems:
        if key == "ledger_postgresql":
            systems.append(LedgerSystem(args.store, transfers_max=transfers_max_for(plan), report=progress.write))
        elif key == "ledger_sqlite":
            systems.append(LedgerSystem("sqlite", transfers_max=transfers_max_for(plan), report=progress.write))
        elif key == "plain_postgresql":
            systems.append(PlainSystem(args.store))
        elif key == "plain_postgresql_one":
            systems.append(PlainSystem(args.store, statement="one"))
        elif key in PGBENCH_SYSTEMS and args.pgbench_path:
            systems.append(PgbenchSystem(args.store, args.pgbench_path, statement=PGBENCH_SYSTEMS[key]))
        elif key == "tigerbeetle" and (args.tigerbeetle or args.tigerbeetle_binary):
            systems.append(TigerBeetleSystem(
                args.tigerbeetle, binary=args.tigerbeetle_binary, cluster_id=args.tigerbeetle_cluster,
                server_options=tuple(shlex.split(args.tigerbeetle_options)),
            ))  # fmt: skip
    return systems


def scenario_count(system: System | PgbenchSystem, plan: Plan) -> int:
    return sum(runs(system, scenario) for scenario in plan.scenarios())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short scenarios: the whole run in about 3 minutes")
    parser.add_argument("--seconds", type=float, help="least measured seconds per scenario (default 5, quick 1)")
    parser.add_argument("--batch-seconds", type=float, help="least measured seconds of batches (default 5, quick 2)")
    parser.add_argument("--warmup-seconds", type=float, help="unmeasured seconds before each (default 1, quick 0.3)")
    parser.add_argument("--calls", type=int,
                        help="least calls in a single-transfer window (default 2000, quick 300)")  # fmt: skip
    parser.add_argument("--batch-calls", type=int, help="least batches in a batch window (default 40, quick 8)")
    parser.add_argument("--settle-seconds", type=float, help="pause after loading (default 5, quick 2)")
    parser.add_argument("--callers", type=lambda v: tuple(int(c) for c in v.split(",")), default=CALLERS,
                        help="concurrent callers of single transfers (default 1,8,32,256)")  # fmt: skip
    parser.add_argument("--accounts", type=int, default=100_000, help="customer accounts (default 100000)")
    parser.add_argument("--systems", type=lambda v: tuple(v.split(",")),
                        help=f"which systems, comma-separated (default all: {','.join(SYSTEMS)})")  # fmt: skip
    parser.add_argument("--store", default=os.environ.get("LEDGER_TEST_DATABASE_URL") or DEFAULT_DSN,
                        help="PostgreSQL DSN of this ledger's store and the plain ledger (fresh schemas)")  # fmt: skip
    parser.add_argument("--pgbench", metavar="PATH",
                        help="the pgbench that drives the plain ledger from C (default: on PATH, else "
                        f"{_pgbench.PGBENCH_GLOB})")  # fmt: skip
    parser.add_argument("--tigerbeetle-binary", metavar="PATH",
                        help="TigerBeetle's binary: the comparison starts a cluster of its own from it (production "
                        "mode), and runs `PATH benchmark` for TigerBeetle's own figure")  # fmt: skip
    parser.add_argument(
        "--tigerbeetle",
        metavar="ADDRESS",
        help="instead, a TigerBeetle cluster you started (e.g. 3000): its release and CPU unchecked",
    )
    parser.add_argument("--tigerbeetle-cluster", type=int, default=0, help="its cluster id (default 0)")
    parser.add_argument("--tigerbeetle-options", default="", metavar="OPTIONS",
                        help="more options for `tigerbeetle start` (e.g. '--development')")  # fmt: skip
    parser.add_argument("--tigerbeetle-transfers", type=int, default=10_000_000,
                        help="transfers for `tigerbeetle benchmark` (default 10000000, its own default)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the results go")
    parser.add_argument("--readme", type=Path, metavar="PATH",
                        help="replace the Performance section of this README with the run's Markdown")  # fmt: skip
    parser.add_argument("--no-run", action="store_true",
                        help="run nothing: with --readme, take the Markdown from OUT/compare.md")  # fmt: skip
    args = parser.parse_args(argv)
    chosen = args.systems is not None
    args.systems = args.systems or SYSTEMS
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)} (known: {', '.join(SYSTEMS)})")
    if args.accounts < 2:
        parser.error(f"--accounts: {args.accounts} is fewer than 2")
    if any(c < 1 for c in args.callers):
        parser.error("--callers: every count must be at least 1")
    if args.no_run and args.readme is None:
        parser.error("--no-run only makes sense with --readme")
    args.pgbench_path, args.skipped, args.tigerbeetle_release = None, {}, None
    if args.no_run:
        return args
    if any(key in args.systems for key in PGBENCH_SYSTEMS):
        try:
            args.pgbench_path = _pgbench.find_pgbench(args.pgbench)
        except FileNotFoundError as exc:
            parser.error(str(exc))
        if args.pgbench_path is None:
            if chosen:
                parser.error(f"--systems: the pgbench drivers need pgbench: none on PATH or at "
                             f"{_pgbench.PGBENCH_GLOB}; give --pgbench PATH")  # fmt: skip
            for key in PGBENCH_SYSTEMS:
                args.skipped[key] = "pgbench not found (give `--pgbench PATH`)"
    if "tigerbeetle" in args.systems:
        if args.tigerbeetle_binary:
            # Refused at once: a client of another release may be turned away, or behave as another release does.
            try:
                args.tigerbeetle_release = _tigerbeetle.server_version(args.tigerbeetle_binary)
            except (OSError, RuntimeError) as exc:
                parser.error(f"--tigerbeetle-binary: {exc}")
            mismatch = _tigerbeetle.version_mismatch(_tigerbeetle.client_version(), args.tigerbeetle_release)
            if mismatch:
                parser.error(f"--tigerbeetle-binary: {mismatch}")
        elif not args.tigerbeetle:
            if chosen:
                parser.error("--systems: tigerbeetle needs --tigerbeetle-binary PATH (or --tigerbeetle ADDRESS)")
            args.skipped["tigerbeetle"] = "give `--tigerbeetle-binary PATH` (or `--tigerbeetle ADDRESS`)"
    return args


def plan_for(args: argparse.Namespace) -> Plan:
    quick = args.quick

    def chosen(value: Any, quick_value: Any, full_value: Any) -> Any:
        return value if value is not None else (quick_value if quick else full_value)

    seconds = chosen(args.seconds, 1.0, 5.0)
    batch_seconds = chosen(args.batch_seconds, 2.0, 5.0)
    return Plan(
        customers=args.accounts,
        callers=args.callers,
        seconds=seconds,
        batch_seconds=batch_seconds,
        warmup_seconds=chosen(args.warmup_seconds, 0.3, 1.0),
        calls_min=chosen(args.calls, 300, 2000),
        batch_calls_min=chosen(args.batch_calls, 8, 40),
        seconds_max=max(seconds, 8.0 if quick else 30.0),
        batch_seconds_max=max(batch_seconds, 12.0 if quick else 60.0),
        settle_seconds=chosen(args.settle_seconds, 2.0, 5.0),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.no_run:
        _report.update_readme(args.readme, (args.out / "compare.md").read_text())
        print(f"{args.readme}: Performance section replaced from {args.out / 'compare.md'}", file=sys.stderr)
        return 0
    plan = plan_for(args)
    for key, reason in args.skipped.items():
        print(f"{key}: not run: {reason}", file=sys.stderr)
    started = time.perf_counter()
    bar = tqdm(total=0, file=sys.stderr, unit="scenario", dynamic_ncols=True)
    progress = Progress(bar)
    benchmark: dict[str, Any] | None = None
    try:
        systems = make_systems(args, plan, progress)
        bar.total = sum(scenario_count(system, plan) for system in systems)
        bar.refresh()
        results, settled = run_event_loop(run_all(systems, plan, progress, store=args.store))
        if args.tigerbeetle_binary:
            bar.set_description("tigerbeetle benchmark")
            benchmark_started = time.perf_counter()
            try:
                benchmark = _tigerbeetle.run_benchmark(
                    args.tigerbeetle_binary, account_count=args.accounts, transfer_count=args.tigerbeetle_transfers,
                    clients=BATCH_IN_FLIGHT, timeout_seconds=900,
                )  # fmt: skip
                progress.write(f"  tigerbeetle benchmark: {benchmark['transfers_per_s']:,} transfers/s")
            except (OSError, RuntimeError, ValueError, TimeoutError) as exc:
                benchmark = {"error": error_text(exc)}
                progress.write(f"  tigerbeetle benchmark failed: {benchmark['error']}")
            benchmark["elapsed_seconds"] = round(time.perf_counter() - benchmark_started, 1)
    finally:
        bar.close()
    report = {
        "benchmark": "compare",
        "command": shlex.join(["python", "-m", "bench.compare", *(sys.argv[1:] if argv is None else argv)]),
        "mode": "quick" if args.quick else "full",
        "machine": _report.machine(args.store if any("postgresql" in k for k in args.systems) else None),
        "settings": {
            "accounts": plan.customers,
            "balance": BALANCE,
            "amount_max": AMOUNT_MAX,
            "callers": list(plan.callers),
            "batch_in_flight": BATCH_IN_FLIGHT,
            "seconds_per_scenario": plan.seconds,
            "batch_seconds": plan.batch_seconds,
            "calls_min": plan.calls_min,
            "batch_calls_min": plan.batch_calls_min,
            "seconds_max": plan.seconds_max,
            "batch_seconds_max": plan.batch_seconds_max,
            "warmup_seconds": plan.warmup_seconds,
            "settled": settled,
            "order": "every system loaded first; each scenario then runs on every system in turn, the order "
            "rotated by one system from one scenario to the next; each run on a quiet disk (sync, then the "
            f"kernel's dirty and writeback pages under {QUIET_DIRTY_BYTES_MAX >> 20} MiB)",
        },
        "systems": results,
        "not_run": args.skipped,
        "tigerbeetle_benchmark": benchmark,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    report["targets"] = _report.targets(report)
    written = _report.write(report, args.out)
    if args.readme is not None:
        _report.update_readme(args.readme, written["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in written.values())} in {report['elapsed_seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
