"""A plain PostgreSQL ledger, as most shop wallets implement one: the baseline of `python -m bench.compare`.

Two tables: `accounts` with a balance column (a CHECK keeps guarded accounts, the customers' wallets,
at or above zero) and `transfers` with the transfer id as primary key (the idempotency key) and
foreign keys to both accounts. One transfer is one transaction on one connection:

    BEGIN
    INSERT INTO transfers ...                                   -- a repeated id fails here
    UPDATE accounts SET balance = balance - amount
        WHERE id = debit AND (NOT guarded OR balance >= amount) -- no row: not enough money, roll back
    UPDATE accounts SET balance = balance + amount WHERE id = credit
    COMMIT                                                      -- durable: synchronous_commit stays on

The two updates take row locks that are held until COMMIT, so transfers touching the same account
(a shop's revenue account credited by every payment) wait for each other's commit. A deadlock
(two transfers locking the same two accounts in opposite order) is retried.

The same transfer also fits in one statement, one round trip in autocommit mode (`transfer_one`,
and pgbench's script of it): a data-modifying CTE that debits guarded, then credits and inserts
only if the debit took the money. It is the plain ledger at its best from a client's side:

    WITH debit AS (UPDATE accounts ... WHERE id = debit AND (NOT guarded OR balance >= amount) RETURNING id),
         credit AS (UPDATE accounts ... WHERE id = credit AND EXISTS (SELECT FROM debit) RETURNING id)
    INSERT INTO transfers ... SELECT ... FROM debit RETURNING id  -- no row: not enough money

The insert follows the debit, not the credit, so an unknown credit account fails the insert's
foreign key and with it the whole statement: a debit is never kept without its credit.

A batch is one transaction: the accounts it touches are locked first in id order (so concurrent
batches cannot deadlock), then every transfer is one statement (the guarded debit, and the insert if
it moved money) sent with executemany (pipelined), and last each credited account is updated once by
the sum credited to it. A transfer without the money is skipped, the others commit together. The
credits land at the end, so money credited in a batch cannot be spent later in the same batch; and
a hot account is updated once per batch, not once per transfer (which would leave a chain of row
versions that every later update in the transaction walks).
"""

from __future__ import annotations

import enum
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors

SCHEMA = """
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    balance bigint NOT NULL DEFAULT 0,
    guarded boolean NOT NULL DEFAULT false,
    CONSTRAINT balance_not_negative CHECK (NOT guarded OR balance >= 0)
);
CREATE TABLE transfers (
    id bigint PRIMARY KEY,
    debit_account_id bigint NOT NULL REFERENCES accounts (id),
    credit_account_id bigint NOT NULL REFERENCES accounts (id),
    amount bigint NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account_id <> credit_account_id)
);
"""

INSERT_TRANSFER = "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount) VALUES (%s, %s, %s, %s)"
DEBIT = "UPDATE accounts SET balance = balance - %s WHERE id = %s AND (NOT guarded OR balance >= %s)"
CREDIT = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
LOCK_ACCOUNTS = "SELECT id FROM accounts WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE"
# One statement per transfer of a batch: the guarded debit, and the insert if it moved money.
BATCH_DEBIT = """
WITH debit AS (
    UPDATE accounts SET balance = balance - %(amount)s
    WHERE id = %(debit)s AND (NOT guarded OR balance >= %(amount)s) RETURNING id
)
INSERT INTO transfers (id, debit_account_id, credit_account_id, amount)
SELECT %(id)s, %(debit)s, %(credit)s, %(amount)s FROM debit
"""
# Then each credited account once, by the sum of the batch's transfers that were inserted.
BATCH_CREDIT = """
UPDATE accounts SET balance = balance + credited.amount
FROM (SELECT credit_account_id, sum(amount) AS amount FROM transfers WHERE id = ANY(%s) GROUP BY credit_account_id)
    AS credited
WHERE accounts.id = credited.credit_account_id
"""
DEADLOCK_RETRIES_MAX = 10


def one_statement(parameter: str, *, with_id: bool = True) -> str:
    """The transfer as one statement, its parameters written by `parameter` (`%({})s` for psycopg, `:{}` for
    pgbench); without `with_id` the transfers table numbers it (an identity column)."""
    amount, debit, credit = (parameter.format(name) for name in ("amount", "debit", "credit"))
    columns, values = ("id, ", parameter.format("id") + ", ") if with_id else ("", "")
    return (
        "WITH debit AS ("
        f"UPDATE accounts SET balance = balance - {amount} "
        f"WHERE id = {debit} AND (NOT guarded OR balance >= {amount}) RETURNING id), "
        f"credit AS (UPDATE accounts SET balance = balance + {amount} "
        f"WHERE id = {credit} AND EXISTS (SELECT FROM debit) RETURNING id) "
        f"INSERT INTO transfers ({columns}debit_account_id, credit_account_id, amount) "
        f"SELECT {values}{debit}, {credit}, {amount} FROM debit RETURNING id"
    )


ONE_STATEMENT = one_statement("%({})s")


class PlainResult(enum.Enum):
    OK = "ok"
    EXCEEDS_BALANCE = "exceeds_balance"
    DUPLICATE_ID = "duplicate_id"
    ACCOUNT_NOT_FOUND = "account_not_found"


class _NotEnoughMoney(Exception):
    """Raised inside the transaction to roll it back."""


class _NoCreditAccount(Exception):
    """Raised inside the transaction to roll it back."""


@dataclass(frozen=True, kw_only=True)
class PlainTransfer:
    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int  # minor units


@dataclass
class Retries:
    """Deadlocks retried, counted so a report can say how often it happened."""

    deadlocks: int = 0


async def create_schema(connection: psycopg.AsyncConnection[Any]) -> None:
    await connection.execute(SCHEMA)


async def open_books(
    connection: psycopg.AsyncConnection[Any],
    *,
    funding_id: int,
    other_ids: Sequence[int],
    customer_ids: Sequence[int],
    balance: int,
    first_transfer_id: int,
) -> None:
    """Create the accounts and fund every customer with `balance` by a transfer from the funding account.

    Done in one transaction with COPY: the same state as one funding transfer per customer.
    """
    async with connection.transaction(), connection.cursor() as cursor:
        rows = io.StringIO()
        rows.write(f"{funding_id}\t{-balance * len(customer_ids)}\tf\n")
        rows.writelines(f"{account}\t0\tf\n" for account in other_ids)
        rows.writelines(f"{account}\t{balance}\tt\n" for account in customer_ids)
        async with cursor.copy("COPY accounts (id, balance, guarded) FROM STDIN") as copy:
            await copy.write(rows.getvalue())
        rows = io.StringIO()
        rows.writelines(
            f"{first_transfer_id + index}\t{funding_id}\t{account}\t{balance}\n"
            for index, account in enumerate(customer_ids)
        )
        async with cursor.copy("COPY transfers (id, debit_account_id, credit_account_id, amount) FROM STDIN") as copy:
            await copy.write(rows.getvalue())
        await cursor.execute("ANALYZE accounts")
        await cursor.execute("ANALYZE transfers")


async def transfer(
    connection: psycopg.AsyncConnection[Any], one: PlainTransfer, retries: Retries | None = None
) -> PlainResult:
    """One transfer in its own transaction (the connection is in autocommit mode between transactions)."""
    for _ in range(DEADLOCK_RETRIES_MAX):
        try:
            async with connection.transaction():
                await connection.execute(
                    INSERT_TRANSFER, (one.id, one.debit_account_id, one.credit_account_id, one.amount)
                )
                debited = await connection.execute(DEBIT, (one.amount, one.debit_account_id, one.amount))
                if debited.rowcount != 1:
                    raise _NotEnoughMoney
                credited = await connection.execute(CREDIT, (one.amount, one.credit_account_id))
                if credited.rowcount != 1:
                    raise _NoCreditAccount
        except _NotEnoughMoney:
            return PlainResult.EXCEEDS_BALANCE
        except errors.UniqueViolation:
            return PlainResult.DUPLICATE_ID
        except (errors.ForeignKeyViolation, _NoCreditAccount):
            return PlainResult.ACCOUNT_NOT_FOUND
        except errors.DeadlockDetected:
            if retries is not None:
                retries.deadlocks += 1
            continue
        return PlainResult.OK
    raise RuntimeError(f"transfer {one.id}: still deadlocked after {DEADLOCK_RETRIES_MAX} tries")


async def transfer_one(
    connection: psycopg.AsyncConnection[Any], one: PlainTransfer, retries: Retries | None = None
) -> PlainResult:
    """One transfer as one statement (ONE_STATEMENT) in autocommit mode: one round trip, its own transaction.

    No row back means nothing moved: the debit account lacks the money (or does not exist).
    """
    parameters = {"id": one.id, "debit": one.debit_account_id, "credit": one.credit_account_id, "amount": one.amount}
    for _ in range(DEADLOCK_RETRIES_MAX):
        try:
            cursor = await connection.execute(ONE_STATEMENT, parameters)
        except errors.UniqueViolation:
            return PlainResult.DUPLICATE_ID
        except errors.ForeignKeyViolation:
            return PlainResult.ACCOUNT_NOT_FOUND
        except errors.DeadlockDetected:
            if retries is not None:
                retries.deadlocks += 1
            continue
        return PlainResult.OK if await cursor.fetchone() is not None else PlainResult.EXCEEDS_BALANCE
    raise RuntimeError(f"transfer {one.id}: still deadlocked after {DEADLOCK_RETRIES_MAX} tries")


async def transfer_batch(connection: psycopg.AsyncConnection[Any], batch: Sequence[PlainTransfer]) -> int:
    """Apply a batch in one transaction; returns how many moved money (the rest had not enough).

    A repeated id or an unknown account fails the whole batch (UniqueViolation, or ValueError naming it).
    """
    accounts = sorted({t.debit_account_id for t in batch} | {t.credit_account_id for t in batch})
    async with connection.transaction(), connection.cursor() as cursor:
        await cursor.execute(LOCK_ACCOUNTS, (accounts,))
        if cursor.rowcount != len(accounts):
            found = {row[0] for row in await cursor.fetchall()}
            missing = sorted(set(accounts) - found)
            raise ValueError(f"batch: account {missing[0]} does not exist ({len(missing)} missing)")
        await cursor.executemany(
            BATCH_DEBIT,
            [
                {"id": t.id, "debit": t.debit_account_id, "credit": t.credit_account_id, "amount": t.amount}
                for t in batch
            ],
        )
        applied = cursor.rowcount
        await cursor.execute(BATCH_CREDIT, ([t.id for t in batch],))
        return applied
