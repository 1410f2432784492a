"""The plain ledger driven by a real pgbench: money is conserved, and a debit without the money commits nothing."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psycopg
import pytest

from tests.support import require_compare_extra

require_compare_extra("numpy")

from bench import _pgbench  # noqa: E402
from bench._systems import CUSTOMER_FIRST_ID, MERCHANT_ID, Ids, PgbenchSystem, customer_ids, open_plain_books  # noqa: E402
from tests.stores import postgres_schema, require_postgres  # noqa: E402

CUSTOMERS = 300


def require_pgbench() -> str:
    """pgbench's path: the test is skipped without it, and failed under CI=true (where it is installed)."""
    found = _pgbench.find_pgbench()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"pgbench is required under CI=true: none on PATH or at {_pgbench.PGBENCH_GLOB}")
        pytest.skip(f"pgbench is not installed (none on PATH or at {_pgbench.PGBENCH_GLOB})")
    return found


async def books_with_identity(url: str, customers: int, balance: int | None = None) -> int:
    """The plain ledger's books with every customer funded; returns the first transfer id pgbench's rows get."""
    ids = Ids()
    await open_plain_books(url, customers, ids)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        if balance is not None:  # fund them with less than the bench does
            await connection.execute(
                "UPDATE accounts SET balance = CASE WHEN guarded THEN %s ELSE -%s END WHERE id <> %s",
                (balance, balance * customers, MERCHANT_ID),
            )
            await connection.execute("UPDATE transfers SET amount = %s", (balance,))
        await connection.execute(
            f"ALTER TABLE transfers ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH {ids.next})"
        )
    return ids.next


def ledger_state(url: str) -> tuple[dict[int, int], dict[int, int], int]:
    """Balances, each account's net of the transfers table, and the number of transfers."""
    with psycopg.connect(url) as connection:
        balances: dict[int, int] = dict(connection.execute("SELECT id, balance FROM accounts").fetchall())
        net = dict.fromkeys(balances, 0)
        rows = connection.execute("SELECT debit_account_id, credit_account_id, amount FROM transfers").fetchall()
    for debit, credit, amount in rows:
        net[debit] -= amount
        net[credit] += amount
    return balances, net, len(rows)


@pytest.mark.parametrize("statement", ["five", "one"])
def test_a_real_pgbench_run_conserves_money(statement: str) -> None:
    pgbench = require_pgbench()
    with postgres_schema() as url:
        first_id = asyncio.run(books_with_identity(url, CUSTOMERS))
        committed = 0
        for credit in (None, MERCHANT_ID):
            text = _pgbench.script(customers=CUSTOMERS, customer_first_id=CUSTOMER_FIRST_ID, amount_max=1_000,
                                   credit_account_id=credit, statement=statement)  # fmt: skip
            run = _pgbench.run(pgbench, url, text, clients=4, seconds=1, seed=11)
            assert run.output["transactions"] > 0 and run.output["failed"] == 0
            assert run.output["clients"] == 4 and run.output["threads"] == 2 and run.output["query_mode"] == "prepared"
            assert len(run.log.latencies) == run.output["transactions"] and min(run.log.latencies) > 0
            assert 0 < len(run.log.window(0.2, 0.5)) < run.output["transactions"]
            assert run.cpu_seconds > 0 and "DSN" in run.command and url not in run.command
            committed += run.output["transactions"]
        balances, net, transfers = ledger_state(url)
        assert sum(balances.values()) == 0  # money is conserved
        assert balances == net  # every balance is the sum of its transfers
        assert transfers == CUSTOMERS + committed  # the funding, then one row per committed transaction
        with psycopg.connect(url) as connection:
            ids = connection.execute("SELECT min(id), max(id) FROM transfers WHERE id >= %s", (first_id,)).fetchone()
            merchant = connection.execute("SELECT count(*) FROM transfers WHERE credit_account_id = %s",
                                          (MERCHANT_ID,)).fetchone()  # fmt: skip
        assert ids == (first_id, first_id + committed - 1)  # numbered by the identity column, after the funding
        assert merchant is not None and 0 < merchant[0] < committed
        assert all(balances[c] >= 0 for c in customer_ids(CUSTOMERS))


def test_a_debit_without_the_money_commits_nothing_of_its_transfer() -> None:
    """Customers with 5 minor units and amounts up to 3: pgbench soon hits the CHECK, and stops with an error."""
    pgbench = require_pgbench()
    with postgres_schema() as url:
        asyncio.run(books_with_identity(url, 4, balance=5))
        text = _pgbench.script(customers=4, customer_first_id=CUSTOMER_FIRST_ID, amount_max=3,
                               credit_account_id=MERCHANT_ID)  # fmt: skip
        with pytest.raises(
            RuntimeError, match=r'(?s)pgbench exited with 2:.*violates check constraint "balance_not_neg'
        ):
            _pgbench.run(pgbench, url, text, clients=2, seconds=5, seed=3)
        balances, net, transfers = ledger_state(url)
        assert sum(balances.values()) == 0 and balances == net
        assert all(balances[c] >= 0 for c in customer_ids(4))
        assert balances[MERCHANT_ID] == sum(5 - balances[c] for c in customer_ids(4))
        assert transfers > 4  # some payments went through before the money ran out


@pytest.mark.parametrize("statement", ["five", "one"])
def test_the_comparison_runs_pgbench_per_scenario_and_checks_the_books(statement: str) -> None:
    pgbench = require_pgbench()
    system = PgbenchSystem(require_postgres(), pgbench, statement=statement, connections_max=3)

    async def run() -> dict[str, dict[str, dict[str, Any]]]:
        await system.start(CUSTOMERS)
        try:
            await system.settle()
            return {
                workload: {
                    f"single_{callers}": await system.run_single(
                        workload, callers, seconds=0.2, warmup_seconds=0.05, calls_min=1, seconds_max=3.0
                    )
                    for callers in (1, 8)
                }
                for workload in ("uniform", "hot_merchant")
            }
        finally:
            await system.stop()

    results = asyncio.run(run())
    for workload in ("uniform", "hot_merchant"):
        one, eight = results[workload]["single_1"], results[workload]["single_8"]
        assert one["connections"] == 1 and "note" not in one
        assert eight["connections"] == 3 and eight["note"] == "8 callers: 3 connections, the cap"
        assert eight["pgbench_seconds"] == 1 and eight["seconds"] == 0.95 and eight["failed"] == 0
        assert eight["pgbench_tps"] > 0
        for result in (one, eight):
            assert result["transfers_per_s"] > 0 and result["calls"] > 0
            assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["p999_ms"]
            assert result["client_cpu_us_per_transfer"] > 0
            if result["server_cpu_us_per_transfer"] is not None:  # None: a busy machine delayed the samples
                assert result["server_cpu_us_per_transfer"] >= 0 and 0 <= result["server_cpu_share"] <= 2.5
    # PostgreSQL's backends for pgbench's connections did the work: some CPU was seen in the windows.
    assert sum(r["server_cpu_us_per_transfer"] or 0 for w in results.values() for r in w.values()) > 0
    assert system.info["transfer_ids"] == "identity column" and system.info["synchronous_commit"] == "on"
    assert system.info["statement"] == statement
    assert any("committed count" in note for note in system.notes)


def test_a_window_short_of_its_calls_runs_pgbench_again_longer() -> None:
    pgbench = require_pgbench()
    system = PgbenchSystem(require_postgres(), pgbench, statement="one", connections_max=2)

    async def run() -> dict[str, Any]:
        await system.start(CUSTOMERS)
        try:
            return await system.run_single("uniform", 1, seconds=0.5, warmup_seconds=0.0, calls_min=10**9,
                                           seconds_max=2.0)  # fmt: skip
        finally:
            await system.stop()

    result = asyncio.run(run())
    assert result["pgbench_seconds"] == 2  # 1 s, then 2 s: the longest
    assert result["calls_short"].endswith(f"fewer than the {10**9} wanted")
