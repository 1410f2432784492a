"""The plain PostgreSQL ledger that bench.compare measures against is a correct ledger under concurrency."""

from __future__ import annotations

import asyncio
import random

import psycopg
import pytest

from bench import plain_pg
from bench.plain_pg import PlainResult, PlainTransfer
from tests.stores import postgres_schema

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


def test_concurrent_transfers_conserve_money_and_never_overdraw() -> None:
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
                    results.append(await plain_pg.transfer(connection, one, retries))

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


def test_a_repeated_id_or_an_unknown_account_moves_nothing() -> None:
    async def run(dsn: str) -> list[PlainResult]:
        await books(dsn)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
            first = PlainTransfer(id=500, debit_account_id=CUSTOMERS[0], credit_account_id=MERCHANT, amount=10)
            results = [
                await plain_pg.transfer(connection, first),
                await plain_pg.transfer(connection, first),
                await plain_pg.transfer(
                    connection,
                    PlainTransfer(id=500, debit_account_id=CUSTOMERS[1], credit_account_id=MERCHANT, amount=99),
                ),
                await plain_pg.transfer(
                    connection, PlainTransfer(id=501, debit_account_id=CUSTOMERS[0], credit_account_id=999, amount=1)
                ),
                await plain_pg.transfer(
                    connection,
                    PlainTransfer(id=502, debit_account_id=CUSTOMERS[0], credit_account_id=MERCHANT, amount=BALANCE),
                ),
            ]
            with pytest.raises(psycopg.errors.UniqueViolation):
                await plain_pg.transfer_batch(connection, [first])
            with pytest.raises(ValueError, match="account 999 does not exist"):
                await plain_pg.transfer_batch(
                    connection, [PlainTransfer(id=503, debit_account_id=CUSTOMERS[0], credit_account_id=999, amount=1)]
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
    ]
    assert accounts[CUSTOMERS[0]] == (BALANCE - 10, True)
    assert accounts[MERCHANT] == (10, False)
    check_books(accounts, net)
