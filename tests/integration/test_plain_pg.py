"""The plain PostgreSQL ledger that bench.compare measures against is a correct ledger under concurrency."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import psycopg
import pytest

from bench import plain_pg
from bench._harness import Processes
from bench._systems import CUSTOMER_FIRST_ID, PlainSystem
from bench.plain_pg import PlainResult, PlainTransfer
from tests.stores import postgres_schema, require_postgres

FUNDING, MERCHANT = 1, 2
CUSTOMERS = list(range(100, 140))
BALANCE = 1_000


async def books(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await plain_pg.create_schema(connection)
        await plain_pg.open_books(
            connection,
            funding_id=FUNDING,
            other_ids=[MERCHANT],
            customer_ids=CUSTOMERS,
            balance=BALANCE,
            first_transfer_id=1,
        )


async def state(dsn: str) -> tuple[dict[int, tuple[int, bool]], dict[int, int]]:
    """Balances (and whether guarded) and each account's net of the transfers table."""
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        accounts = {
            row[0]: (row[1], row[2])
            for row in await (await connection.execute("SELECT id, balance, guarded FROM accounts")).fetchall()
        }
        net = dict.fromkeys(accounts, 0)
        for debit, credit, amount in await (
            await connection.execute("SELECT debit_account_id, credit_account_id, amount FROM transfers")
        ).fetchall():
            net[debit] -= amount
            net[credit] += amount
    return accounts, net


def check_books(accounts: dict[int, tuple[int, bool]], net: dict[int, int]) -> None:
    assert sum(balance for balance, _ in accounts.values()) == 0  # money is conserved
    assert all(balance >= 0 for balance, guarded in accounts.values() if guarded)
    assert {account: balance for account, (balance, _) in accounts.items()} == net  # balances = the transfers


@pytest.mark.parametrize("apply", [plain_pg.transfer, plain_pg.transfer_one], ids=["five_round_trips", "one_statement"])
def test_concurrent_transfers_conserve_money_and_never_overdraw(apply: Any) -> None:
    async def run(dsn: str) -> list[PlainResult]:
        await books(dsn)
        rng = random.Random(7)
        # Amounts up to half a balance, so many transfers find too little money; every 3rd credits the merchant.
        work = [
            PlainTransfer(
                id=10_000 + i,
                debit_account_id=debit,
                credit_account_id=MERCHANT if i % 3 == 0 else rng.choice([c for c in CUSTOMERS if c != debit]),
                amount=rng.randint(1, BALANCE // 2),
            )
            for i, debit in enumerate(rng.choice(CUSTOMERS) for _ in range(600))
        ]
        queue = iter(work)
        results: list[PlainResult] = []
        retries = plain_pg.Retries()

        async def caller() -> None:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
                for one in queue:
                    results.append(await apply(connection, one, retries))

        await asyncio.gather(*(caller() for _ in range(12)))
        return results

    with postgres_schema() as dsn:
        results = asyncio.run(run(dsn))
        accounts, net = asyncio.run(state(dsn))
    assert len(results) == 600
    assert {PlainResult.OK, PlainResult.EXCEEDS_BALANCE} == set(results)
    check_books(accounts, net)


def test_batches_in_concurrent_transactions_conserve_money() -> None:
    async def run(dsn: str) -> list[int]:
        await books(dsn)
        rng = random.Random(11)

        async def caller(index: int) -> int:
            batch = [
                PlainTransfer(
                    id=(index + 1) * 100_000 + i,
                    debit_account_id=debit,
                    credit_account_id=rng.choice([c for c in [*CUSTOMERS, MERCHANT] if c != debit]),
                    amount=rng.randint(1, BALANCE // 4),
                )
                for i, debit in enumerate(rng.choice(CUSTOMERS) for _ in range(300))
            ]
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
                return await plain_pg.transfer_batch(connection, batch)

        return await asyncio.gather(*(caller(i) for i in range(4)))

    with postgres_schema() as dsn:
        applied = asyncio.run(run(dsn))
        accounts, net = asyncio.run(state(dsn))
        with psycopg.connect(dsn) as connection:
            row = connection.execute("SELECT count(*) FROM transfers WHERE id >= 100000").fetchone()
    assert all(0 < count < 300 for count in applied)  # some had too little money, and were skipped alone
    check_books(accounts, net)
    assert row is not None and row[0] == sum(applied)


@pytest.mark.parametrize("apply", [plain_pg.transfer, plain_pg.transfer_one], ids=["five_round_trips", "one_statement"])
def test_a_repeated_id_or_an_unknown_account_moves_nothing(apply: Any) -> None:
    """Either way of applying a transfer refuses alike, and moves all or nothing: the one statement's debit
    to an unknown credit account is not kept."""

    async def run(dsn: str) -> list[PlainResult]:
        await books(dsn)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
            first = PlainTransfer(id=500, debit_account_id=CUSTOMERS[0], credit_account_id=MERCHANT, amount=10)
            results = [
                await apply(connection, first),
                await apply(connection, first),
                await apply(
                    connection,
                    PlainTransfer(id=500, debit_account_id=CUSTOMERS[1], credit_account_id=MERCHANT, amount=99),
                ),
                await apply(
                    connection, PlainTransfer(id=501, debit_account_id=CUSTOMERS[0], credit_account_id=999, amount=1)
                ),
                await apply(
                    connection,
                    PlainTransfer(id=502, debit_account_id=CUSTOMERS[0], credit_account_id=MERCHANT, amount=BALANCE),
                ),
                await apply(
                    connection,
                    PlainTransfer(
                        id=503, debit_account_id=CUSTOMERS[2], credit_account_id=CUSTOMERS[3], amount=BALANCE
                    ),
                ),
            ]
            with pytest.raises(psycopg.errors.UniqueViolation):
                await plain_pg.transfer_batch(connection, [first])
            with pytest.raises(ValueError, match="account 999 does not exist"):
                await plain_pg.transfer_batch(
                    connection, [PlainTransfer(id=504, debit_account_id=CUSTOMERS[0], credit_account_id=999, amount=1)]
                )
            return results

    with postgres_schema() as dsn:
        results = asyncio.run(run(dsn))
        accounts, net = asyncio.run(state(dsn))
    assert results == [
        PlainResult.OK,
        PlainResult.DUPLICATE_ID,
        PlainResult.DUPLICATE_ID,
        PlainResult.ACCOUNT_NOT_FOUND,
        PlainResult.EXCEEDS_BALANCE,
        PlainResult.OK,  # the whole balance, exactly
    ]
    assert accounts[CUSTOMERS[0]] == (BALANCE - 10, True)  # the debit of 501, to no account, was not kept
    assert accounts[MERCHANT] == (10, False)
    assert accounts[CUSTOMERS[2]] == (0, True) and accounts[CUSTOMERS[3]] == (2 * BALANCE, True)
    check_books(accounts, net)


@pytest.mark.parametrize("statement", ["five", "one"])
def test_each_scenario_of_the_comparison_checks_the_books(statement: str) -> None:
    """PlainSystem reads the books before a scenario and checks them after: conserved, none overdrawn, counted."""
    system = PlainSystem(require_postgres(), statement=statement)

    async def run() -> None:
        await system.start(50)
        try:
            assert await system.prepare(2) is None
            assert isinstance(system.meters["server"], Processes) and len(system.meters["server"].pids) == 2
            for caller in range(2):
                await system.transfer(caller, CUSTOMER_FIRST_ID, CUSTOMER_FIRST_ID + 1, 5)
            await system.finish()  # two transfers applied, two written: fine
            note = await system.prepare(10**6)
            assert note is not None and note.startswith(f"{10**6} callers share")
            await system.transfer(0, CUSTOMER_FIRST_ID, CUSTOMER_FIRST_ID + 1, 5)
            system.applied -= 1  # as if a transfer had been written that the driver did not apply
            with pytest.raises(RuntimeError, match=rf"^{system.key} run: 1 transfers were written, {system.key} "
                               "committed 0"):  # fmt: skip
                await system.finish()
        finally:
            await system.stop()

    asyncio.run(run())
    assert system.connections == []
