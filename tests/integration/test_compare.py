"""bench.compare end to end: TigerBeetle's client APIs (typed and packed) driven against a stand-in, the
plain ledger's drivers and this ledger in a very short real run, and PostgreSQL's backends measured."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import require_compare_extra

require_compare_extra("numpy", "matplotlib", "tigerbeetle")

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import tigerbeetle as tb  # noqa: E402
from tigerbeetle import bindings  # noqa: E402

from bench import _report, _tigerbeetle  # noqa: E402
from bench._harness import Backends, socket_ports  # noqa: E402
from bench._systems import BALANCE, CUSTOMER_FIRST_ID, FUNDING_ID, LEDGER, MERCHANT_ID, TigerBeetleSystem  # noqa: E402
from bench.compare import Plan, Progress, run_all  # noqa: E402
from tests.stores import require_postgres  # noqa: E402
from tests.support import ProgressBar  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class StandIn:
    """What a TigerBeetle cluster answers, for the calls the comparison makes, and the largest batch it takes."""

    def __init__(self, batch_max: int = _tigerbeetle.TIGERBEETLE_BATCH_MAX) -> None:
        self.batch_max = batch_max
        self.accounts: dict[int, tb.Account] = {}
        self.transfers: dict[int, tb.Transfer] = {}
        self.batch_sizes: list[tuple[str, int]] = []

    def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountStatus]:
        assert len(accounts) <= self.batch_max
        statuses = []
        for account in accounts:
            if account.id in self.accounts:
                statuses.append(tb.CreateAccountStatus.EXISTS)
            else:
                self.accounts[account.id] = account
                statuses.append(tb.CreateAccountStatus.CREATED)
        return statuses

    def create_transfers(self, transfers: list[tb.Transfer], how: str) -> list[tb.CreateTransferStatus]:
        if len(transfers) > self.batch_max:
            raise _tigerbeetle.PackedResultsError(bindings.PacketStatus.TOO_MUCH_DATA, "TOO_MUCH_DATA")
        self.batch_sizes.append((how, len(transfers)))
        statuses = []
        for t in transfers:
            if t.id == 0:
                statuses.append(tb.CreateTransferStatus.ID_MUST_NOT_BE_ZERO)
                continue
            debit, credit = self.accounts.get(t.debit_account_id), self.accounts.get(t.credit_account_id)
            assert debit is not None and credit is not None and debit.id != credit.id
            assert t.ledger == debit.ledger == credit.ledger == LEDGER and t.code != 0 and t.amount > 0
            if t.id in self.transfers:
                statuses.append(tb.CreateTransferStatus.EXISTS)
            elif (
                debit.flags & tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
                and debit.debits_posted + t.amount > debit.credits_posted
            ):
                statuses.append(tb.CreateTransferStatus.EXCEEDS_CREDITS)
            else:
                self.transfers[t.id] = t
                debit.debits_posted += t.amount
                credit.credits_posted += t.amount
                statuses.append(tb.CreateTransferStatus.CREATED)
        return statuses


class TypedClient:
    """tigerbeetle.ClientAsync's API over a stand-in."""

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.closed = False

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        assert all(isinstance(a, tb.Account) for a in accounts)
        return [tb.CreateAccountResult(timestamp=1, status=s) for s in self.stand_in.create_accounts(accounts)]

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        assert all(isinstance(t, tb.Transfer) for t in transfers)
        await asyncio.sleep(0)
        statuses = self.stand_in.create_transfers(transfers, "typed")
        return [tb.CreateTransferResult(timestamp=1, status=s) for s in statuses]

    async def close(self) -> None:
        self.closed = True


class PackedClient:
    """bench._tigerbeetle.PackedClient's API over a stand-in: records in TigerBeetle's C layout, results as bytes."""

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.closed = False

    async def create_transfers(self, records: np.ndarray) -> bytes:
        assert records.dtype == np.dtype("<u8") and records.shape[1] * 8 == 128
        transfers = [bindings.CTransfer.from_buffer_copy(record.tobytes()).to_python() for record in records]
        await asyncio.sleep(0)
        statuses = self.stand_in.create_transfers(transfers, "packed")
        results = (bindings.CCreateTransferResult * len(statuses))()
        for result, status in zip(results, statuses, strict=True):
            result.timestamp, result.status = 1, status
        return bytes(results)

    async def close(self) -> None:
        self.closed = True


def stand_in_system(stand_in: StandIn) -> tuple[TigerBeetleSystem, TypedClient, PackedClient]:
    typed, packed = TypedClient(stand_in), PackedClient(stand_in)
    system = TigerBeetleSystem("3000", client_factory=lambda cluster, address: typed,
                               packed_factory=lambda cluster, address: packed)  # fmt: skip
    return system, typed, packed


PLAN = Plan(customers=20_000, callers=(1, 8), seconds=0.2, warmup_seconds=0.05, batch_seconds=0.3, calls_min=20,
            batch_calls_min=4, seconds_max=5.0, batch_seconds_max=5.0)  # fmt: skip


def test_tigerbeetle_is_driven_typed_and_packed_through_its_client_apis() -> None:
    stand_in = StandIn()
    system, typed, packed = stand_in_system(stand_in)
    bar = ProgressBar()
    results, _ = asyncio.run(run_all([system], PLAN, Progress(bar)))

    assert typed.closed and packed.closed and bar.steps == 8 and "error" not in results["tigerbeetle"]
    base = next(iter(stand_in.accounts)) & ~(2**64 - 1)
    assert base != 0  # ids under a random prefix: a user's cluster may hold earlier runs
    customers = [stand_in.accounts[base + CUSTOMER_FIRST_ID + i] for i in range(20_000)]
    assert all(c.flags == tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS for c in customers)
    assert stand_in.accounts[base + MERCHANT_ID].flags == tb.AccountFlags.NONE
    funding = stand_in.accounts[base + FUNDING_ID]
    assert funding.debits_posted == 20_000 * BALANCE  # every customer funded alike, in batches of at most 8189
    # First the probe of the batch limit (8189 transfers of id 0, refused one by one), then the funding.
    assert stand_in.batch_sizes[:4] == [("packed", 8189), ("typed", 8189), ("typed", 8189), ("typed", 3622)]
    kinds = {how for how, size in stand_in.batch_sizes if size == 8189}
    assert kinds == {"typed", "packed"}  # both kinds of batch reached the server at full size
    payments = [t for t in stand_in.transfers.values() if t.debit_account_id != base + FUNDING_ID]
    assert any(t.credit_account_id == base + MERCHANT_ID for t in payments)
    for workload in ("uniform", "hot_merchant"):
        scenarios = results["tigerbeetle"]["workloads"][workload]
        assert set(scenarios) == {"single_1", "single_8", "batch", "batch_typed"}
        assert scenarios["batch"]["batch_transfers"] == scenarios["batch_typed"]["batch_transfers"] == 8189
        assert all(s["transfers_per_s"] > 0 and s["p999_ms"] is not None for s in scenarios.values())
        assert scenarios["batch"]["calls"] >= 4
    merchant = stand_in.accounts[base + MERCHANT_ID]
    assert merchant.credits_posted == sum(t.amount for t in payments if t.credit_account_id == merchant.id)
    assert system.info["batch_transfers_max"] == 8189
    assert any("tb_client_submit" in note for note in system.notes)


def test_tigerbeetle_batches_fit_what_its_server_takes() -> None:
    """A server started with --development takes at most 253 transfers a request: the probe finds it first."""
    stand_in = StandIn(batch_max=253)
    system, _, _ = stand_in_system(stand_in)
    plan = Plan(customers=600, callers=(2,), seconds=0.1, warmup_seconds=0.0, batch_seconds=0.2,
                workloads=("uniform",))  # fmt: skip
    results, _ = asyncio.run(run_all([system], plan, Progress(ProgressBar())))
    assert "error" not in results["tigerbeetle"]
    assert system.info["batch_transfers_max"] == 253
    assert max(size for _, size in stand_in.batch_sizes) == 253
    assert results["tigerbeetle"]["workloads"]["uniform"]["batch"]["batch_transfers"] == 253
    assert "probed first (253; 8189 fills its 1 MiB message)" in " ".join(system.notes)


def test_a_tigerbeetle_that_fails_keeps_its_figures_and_its_error() -> None:
    class Refusing(PackedClient):
        async def create_transfers(self, records: np.ndarray) -> bytes:
            if records.any():  # the probe passes; the first real batch is refused
                raise _tigerbeetle.PackedResultsError(bindings.PacketStatus.CLIENT_EVICTED, "CLIENT_EVICTED")
            return await super().create_transfers(records)

    stand_in = StandIn()
    typed, packed = TypedClient(stand_in), Refusing(stand_in)
    system = TigerBeetleSystem("3000", client_factory=lambda c, a: typed, packed_factory=lambda c, a: packed)
    results, _ = asyncio.run(run_all([system], PLAN, Progress(ProgressBar())))
    assert results["tigerbeetle"]["error"] == (
        "uniform batch: PackedResultsError: TigerBeetle's client answered CLIENT_EVICTED"
    )
    assert set(results["tigerbeetle"]["workloads"]["uniform"]) == {"single_1", "single_8"}
    assert typed.closed and packed.closed


def test_postgresql_backends_are_found_by_their_clients_port_or_name() -> None:
    dsn = require_postgres()
    with psycopg.connect(dsn, application_name="ledger_bench_test_named") as named:
        pid = named.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        by_name = Backends(dsn, application_name="ledger_bench_test_named")
        by_port = Backends(dsn, client_pid=os.getpid())
        try:
            assert by_name.pids() == (pid[0],)
            assert pid[0] in by_port.pids()  # this process's connection, found by its local port
            named.execute("SELECT count(*) FROM generate_series(1, 3000000)")
            assert by_name.cpu_sample()[pid[0]] > 0
            # Someone else ends the monitoring connection (a shared server): the next sample connects again.
            monitor = by_name._connection
            ended = named.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                "AND client_port = ANY(%s)", ("ledger_bench_monitor", sorted(socket_ports(os.getpid()))),
            ).fetchall()  # fmt: skip
            assert ended == [(True,), (True,)]  # both meters' monitoring connections
            assert by_name.pids() == (pid[0],) and by_name._connection is not monitor and monitor.closed
        finally:
            by_name.close()
            by_port.close()


def test_a_short_run_writes_the_report_and_the_readme_section(tmp_path: Path) -> None:
    """python -m bench.compare with tiny durations: this ledger on SQLite and the plain ledger's psycopg drivers."""
    dsn = require_postgres()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n\n{_report.README_BEGIN}\nold\n{_report.README_END}\n\n## Next\n")
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "bench.compare", "--systems", "ledger_sqlite,plain_postgresql,plain_postgresql_one",
        "--accounts", "300", "--callers", "1,4", "--seconds", "0.2", "--batch-seconds", "0.3", "--warmup-seconds",
        "0.05", "--calls", "20", "--batch-calls", "2", "--settle-seconds", "0.1", "--store", dsn, "--out", str(out),
        "--readme", str(readme),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((out / "compare.json").read_text())
    assert set(report["systems"]) == {"ledger_sqlite", "plain_postgresql", "plain_postgresql_one"}
    expected = {
        "ledger_sqlite": {"single_1", "single_4", "batch", "batch_typed"},
        "plain_postgresql": {"single_1", "single_4", "batch_typed"},
        "plain_postgresql_one": {"single_1", "single_4"},
    }
    for key, system in report["systems"].items():
        assert "error" not in system, system.get("error")
        for workload in ("uniform", "hot_merchant"):
            scenarios = system["workloads"][workload]
            assert set(scenarios) == expected[key], key
            assert scenarios["single_4"]["transfers_per_s"] > 0 and scenarios["single_4"]["calls"] >= 20, key
        # The server's own CPU (PostgreSQL's backends for the plain ledger), in ticks of 10 ms: some in a run.
        assert sum(s["server_cpu_us_per_transfer"] for w in system["workloads"].values() for s in w.values()) > 0
    assert report["systems"]["plain_postgresql_one"]["info"]["statement"] == "one"
    assert report["settings"]["settled"][0] == "VACUUM ANALYZE of each PostgreSQL schema's tables"
    assert report["targets"]["hot_merchant_32_callers_vs_plain_postgresql"]["met"] is None  # 32 callers not run
    markdown = (out / "compare.md").read_text()
    assert readme.read_text() == (
        f"# x\n\n## Performance\n\n{_report.README_BEGIN}\n{markdown.rstrip()}\n{_report.README_END}\n\n## Next\n"
    )
    assert (out / "throughput.png").stat().st_size > 0 and (out / "latency.png").stat().st_size > 0
    assert "scenario" in completed.stderr  # the progress bar
