"""bench.compare end to end: TigerBeetle's client API driven against a stand-in, and a very short real run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from tests.support import require_compare_extra

require_compare_extra("numpy", "matplotlib", "tigerbeetle")

import tigerbeetle as tb  # noqa: E402

from bench import _report  # noqa: E402
from bench._tigerbeetle import TIGERBEETLE_BATCH_MAX  # noqa: E402
from bench.compare import (  # noqa: E402
    BALANCE,
    CUSTOMER_FIRST_ID,
    FUNDING_ID,
    LEDGER,
    MERCHANT_ID,
    Plan,
    Progress,
    TigerBeetleSystem,
    run_system,
)
from tests.stores import require_postgres  # noqa: E402
from tests.support import ProgressBar  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class StandIn:
    """What a TigerBeetle cluster answers, for the calls the comparison makes (tigerbeetle.ClientAsync's API)."""

    def __init__(self) -> None:
        self.accounts: dict[int, tb.Account] = {}
        self.transfers: dict[int, tb.Transfer] = {}
        self.batch_sizes: list[int] = []
        self.closed = False

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        assert all(isinstance(a, tb.Account) for a in accounts) and len(accounts) <= TIGERBEETLE_BATCH_MAX
        results = []
        for account in accounts:
            status = tb.CreateAccountStatus.CREATED
            if account.id in self.accounts:
                status = tb.CreateAccountStatus.EXISTS
            else:
                self.accounts[account.id] = account
            results.append(tb.CreateAccountResult(timestamp=1, status=status))
        return results

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        assert all(isinstance(t, tb.Transfer) for t in transfers) and len(transfers) <= TIGERBEETLE_BATCH_MAX
        self.batch_sizes.append(len(transfers))
        await asyncio.sleep(0)
        results = []
        for t in transfers:
            debit, credit = self.accounts.get(t.debit_account_id), self.accounts.get(t.credit_account_id)
            assert debit is not None and credit is not None and debit.id != credit.id
            assert t.ledger == debit.ledger == credit.ledger == LEDGER and t.code != 0 and t.amount > 0
            status = tb.CreateTransferStatus.CREATED
            if t.id in self.transfers:
                status = tb.CreateTransferStatus.EXISTS
            elif (
                debit.flags & tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
                and debit.debits_posted + t.amount > debit.credits_posted
            ):
                status = tb.CreateTransferStatus.EXCEEDS_CREDITS
            else:
                self.transfers[t.id] = t
                debit.debits_posted += t.amount
                credit.credits_posted += t.amount
            results.append(tb.CreateTransferResult(timestamp=1, status=status))
        return results

    async def close(self) -> None:
        self.closed = True


def test_tigerbeetle_is_driven_through_its_client_api() -> None:
    stand_in = StandIn()
    system = TigerBeetleSystem("3000", client_factory=lambda cluster, address: stand_in)
    bar = ProgressBar()
    plan = Plan(customers=20_000, callers=(1, 8), seconds=0.2, warmup_seconds=0.05, batch_seconds=0.3)
    results = asyncio.run(run_system(system, plan, Progress(bar)))

    assert stand_in.closed and bar.steps == 6
    base = next(iter(stand_in.accounts)) & ~(2**64 - 1)
    assert base != 0  # ids under a random prefix: the user's cluster may hold earlier runs
    customers = [stand_in.accounts[base + CUSTOMER_FIRST_ID + i] for i in range(20_000)]
    assert all(c.flags == tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS for c in customers)
    assert stand_in.accounts[base + MERCHANT_ID].flags == tb.AccountFlags.NONE
    funding = stand_in.accounts[base + FUNDING_ID]
    assert funding.debits_posted == 20_000 * BALANCE  # every customer funded alike, in batches of at most 8189
    assert stand_in.batch_sizes[:3] == [8189, 8189, 20_000 - 2 * 8189]
    assert max(stand_in.batch_sizes) == TIGERBEETLE_BATCH_MAX
    payments = [t for t in stand_in.transfers.values() if t.debit_account_id != base + FUNDING_ID]
    assert any(t.credit_account_id == base + MERCHANT_ID for t in payments)
    for workload in ("uniform", "hot_merchant"):
        scenarios = results[workload]
        assert set(scenarios) == {"single_1", "single_8", "batch"}
        assert scenarios["batch"]["batch_transfers"] == TIGERBEETLE_BATCH_MAX
        assert all(s["transfers_per_s"] > 0 and s["p999_ms"] is not None for s in scenarios.values())
    merchant = stand_in.accounts[base + MERCHANT_ID]
    assert merchant.credits_posted == sum(t.amount for t in payments if t.credit_account_id == merchant.id)


def test_a_short_run_writes_the_report_and_the_readme_section(tmp_path: Path) -> None:
    """python -m bench.compare with tiny durations: this ledger on SQLite and the plain PostgreSQL ledger."""
    dsn = require_postgres()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n\n{_report.README_BEGIN}\nold\n{_report.README_END}\n\n## Next\n")
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "bench.compare", "--systems", "ledger_sqlite,plain_postgresql", "--accounts", "300",
        "--callers", "1,4", "--seconds", "0.2", "--batch-seconds", "0.3", "--warmup-seconds", "0.05",
        "--store", dsn, "--out", str(out), "--readme", str(readme),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((out / "compare.json").read_text())
    assert set(report["systems"]) == {"ledger_sqlite", "plain_postgresql"}
    for key, system in report["systems"].items():
        for workload in ("uniform", "hot_merchant"):
            scenarios = system["workloads"][workload]
            assert set(scenarios) == {"single_1", "single_4", "batch"}, key
            assert scenarios["single_4"]["transfers_per_s"] > 0, key
    assert report["systems"]["plain_postgresql"]["info"]["synchronous_commit"] == "on"
    assert report["targets"]["hot_merchant_32_callers_vs_plain_postgresql"]["met"] is None  # 32 callers not run
    markdown = (out / "compare.md").read_text()
    assert readme.read_text() == (
        f"# x\n\n## Performance\n\n{_report.README_BEGIN}\n{markdown.rstrip()}\n{_report.README_END}\n\n## Next\n"
    )
    assert (out / "throughput.png").stat().st_size > 0 and (out / "latency.png").stat().st_size > 0
    assert "scenario" in completed.stderr  # the progress bar
