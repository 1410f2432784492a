"""Side by side, in one run on this machine: this ledger, a plain PostgreSQL ledger, and TigerBeetle.

    python -m bench.compare --quick                          # under 2 minutes
    python -m bench.compare                                  # steadier: 5 s per scenario
    python -m bench.compare --tigerbeetle 3000 --tigerbeetle-binary ./tigerbeetle
    python -m bench.compare --quick --readme README.md       # and regenerate the README's Performance section
    python -m bench.compare --pgbench /usr/lib/postgresql/15/bin/pgbench   # pgbench when it is not on PATH

Systems, each on a fresh state of its own, every transfer durable before it is answered:

- `ledger_postgresql`, `ledger_sqlite`: `ledger serve` in its own process on that store; single transfers
  from N callers go as N asyncio tasks sharing one auto-batching `ledger.client.AsyncClient`, batches
  through its packed bulk call (`create_transfers_packed`).
- `plain_postgresql`: the plain PostgreSQL ledger of bench/plain_pg.py (a transaction per transfer,
  row locks) driven from Python by psycopg 3, one connection per caller up to what the server's
  max_connections leaves, the rest of the callers queued for a connection; a batch is one transaction.
- `plain_postgresql_pgbench`: the same ledger and transaction driven by pgbench, PostgreSQL's load
  generator in C (bench/_pgbench.py), with as many connections as callers up to the same cap; single
  transfers only. The targets over the plain ledger are judged against the faster of its two drivers.
- `tigerbeetle` (with `--tigerbeetle ADDRESS`): the cluster the user started, through its Python
  client's ClientAsync shared by N tasks (it coalesces concurrent calls too).

Workloads: `uniform` (debit and credit drawn among the funded customer accounts, 100,000 by default)
and `hot_merchant` (a random customer pays, one merchant account is credited every time). Customers
are funded alike everywhere and may not go below zero. Each workload runs single transfers at 1, 8, 32
and 256 concurrent callers, then batches of 8190 (TigerBeetle: 8189, its largest), four in flight.

Writes `compare.json`, `compare.md`, `throughput.png` and `latency.png` into `--out`; a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psycopg
from tqdm import tqdm

from bench import _pgbench, _report, plain_pg
from bench._harness import DEFAULT_DSN, Caller, ServerProcess, Window, fresh_store, measure, server_process, summary
from bench._tigerbeetle import TIGERBEETLE_BATCH_MAX, TigerBeetleBooks, async_client, run_benchmark
from ledger.client import Account, AccountFlags, AsyncClient, ClientConfig, CreateTransferResult, Transfer
from ledger.engine import CreateAccountResult
from ledger.engine._limits import BATCH_EVENTS_MAX, TRANSFER_RESULT_SIZE, TRANSFER_SIZE
from ledger.server import run_event_loop

LEDGER = 978
FUNDING_ID, MERCHANT_ID = 1, 2
CUSTOMER_FIRST_ID = 1_001
ACCOUNT_CODE_FUNDING, ACCOUNT_CODE_MERCHANT, ACCOUNT_CODE_CUSTOMER = 1, 3, 2
TRANSFER_CODE_FUNDING, TRANSFER_CODE_PAYMENT = 1, 2
BALANCE = 1_000_000_000
"""What every customer is funded with, in minor units: far more than a run moves, so no transfer is refused."""
AMOUNT_MAX = 1_000
"""Transfer amounts are drawn from 1..AMOUNT_MAX minor units."""
BATCH_IN_FLIGHT = 4
SEED = 20_260_101
CALLERS = (1, 8, 32, 256)
PLAIN_CONNECTIONS_MAX = 64
"""At most this many PostgreSQL connections for the plain ledger, and fewer if max_connections leaves fewer."""
CONNECTIONS_SPARE = 16
"""Connections left free for everything else on the server (its superuser slots come on top)."""
SYSTEMS = ("ledger_postgresql", "ledger_sqlite", "plain_postgresql", "plain_postgresql_pgbench", "tigerbeetle")
WORKLOADS = ("uniform", "hot_merchant")


class Sampler:
    """The transfers of one workload: the same seed gives every system the same sequence."""

    def __init__(self, workload: str, customers: int, seed: int = SEED) -> None:
        if workload not in WORKLOADS:
            raise ValueError(f"workload: {workload!r} is not one of {', '.join(WORKLOADS)}")
        if customers < 2:
            raise ValueError(f"customers: {customers} is fewer than the 2 a transfer needs")
        self.hot = workload == "hot_merchant"
        self.customers = customers
        self.random = random.Random(seed)
        self.numpy = np.random.default_rng(seed)

    def one(self) -> tuple[int, int, int]:
        """(debit account, credit account, amount) of one transfer."""
        debit = self.random.randrange(self.customers)
        if self.hot:
            credit = MERCHANT_ID
        else:
            credit = CUSTOMER_FIRST_ID + (debit + 1 + self.random.randrange(self.customers - 1)) % self.customers
        return CUSTOMER_FIRST_ID + debit, credit, self.random.randint(1, AMOUNT_MAX)

    def many(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Debit accounts, credit accounts and amounts of `count` transfers, as uint64 arrays."""
        debit = self.numpy.integers(0, self.customers, count, dtype=np.uint64)
        if self.hot:
            credits = np.full(count, MERCHANT_ID, dtype=np.uint64)
        else:
            step = self.numpy.integers(1, self.customers, count, dtype=np.uint64)
            credits = CUSTOMER_FIRST_ID + (debit + step) % np.uint64(self.customers)
        amounts = self.numpy.integers(1, AMOUNT_MAX + 1, count, dtype=np.uint64)
        return CUSTOMER_FIRST_ID + debit, credits, amounts


class System(Protocol):
    """One ledger under test, on a fresh state of its own from start() to stop()."""

    key: str
    label: str
    batch_transfers: int
    server: ServerProcess | None
    notes: list[str]
    info: dict[str, Any]

    async def start(self, customers: int) -> None: ...

    async def prepare(self, callers: int) -> str | None:
        """Get ready for `callers` concurrent callers; say how if it is not one connection each."""

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None: ...

    async def batch(self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Ids:
    """Transfer ids of one system: funding first, then every transfer of every scenario, never repeated."""

    next: int = 1

    def take(self, count: int = 1) -> int:
        first = self.next
        self.next += count
        return first


def customer_ids(customers: int) -> range:
    return range(CUSTOMER_FIRST_ID, CUSTOMER_FIRST_ID + customers)


class LedgerSystem:
    """This ledger: `ledger serve` on a fresh store, driven through one AsyncClient."""

    def __init__(self, store: str, *, transfers_max: int, report: Callable[[str], None]) -> None:
        self.store = store
        self.postgres = store.startswith(("postgresql://", "postgres://"))
        self.key = "ledger_postgresql" if self.postgres else "ledger_sqlite"
        self.label = f"this ledger ({'PostgreSQL' if self.postgres else 'SQLite'})"
        self.batch_transfers = BATCH_EVENTS_MAX
        self.transfers_max = transfers_max
        self.report = report
        self.server: ServerProcess | None = None
        self.ids = Ids()
        self.exits = ExitStack()
        self.client: AsyncClient | None = None
        self.notes = [
            "single transfers: N asyncio tasks sharing one auto-batching `ledger.client.AsyncClient`",
            f"batches: `create_transfers_packed` of {BATCH_EVENTS_MAX} packed records, built with numpy",
            "answered only when durable (group commit to "
            + ("PostgreSQL, synchronous_commit on)" if self.postgres else "SQLite WAL, synchronous=FULL)"),
        ]
        self.info: dict[str, Any] = {}

    async def start(self, customers: int) -> None:
        url = self.exits.enter_context(fresh_store(self.store, "ledger_bench_compare"))
        self.server = self.exits.enter_context(
            server_process(url, self.transfers_max, accounts_max=customers + 16, report=self.report)
        )
        self.client = AsyncClient(ClientConfig(server=self.server.address, timeout_seconds=120))
        accounts = [
            Account(id=FUNDING_ID, ledger=LEDGER, code=ACCOUNT_CODE_FUNDING),
            Account(id=MERCHANT_ID, ledger=LEDGER, code=ACCOUNT_CODE_MERCHANT),
        ]
        accounts += [
            Account(id=c, ledger=LEDGER, code=ACCOUNT_CODE_CUSTOMER, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            for c in customer_ids(customers)
        ]
        outcomes = await self.client.create_accounts(accounts)
        if any(o.result != CreateAccountResult.OK for o in outcomes):
            raise RuntimeError(f"{self.key}: could not open the accounts")
        debits = np.full(customers, FUNDING_ID, dtype=np.uint64)
        credits = np.arange(CUSTOMER_FIRST_ID, CUSTOMER_FIRST_ID + customers, dtype=np.uint64)
        amounts = np.full(customers, BALANCE, dtype=np.uint64)
        await self._send(debits, credits, amounts, TRANSFER_CODE_FUNDING, in_flight=BATCH_IN_FLIGHT)

    async def prepare(self, callers: int) -> str | None:
        return None

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        assert self.client is not None
        outcome = await self.client.create_transfer(
            Transfer(
                id=self.ids.take(),
                debit_account_id=debit,
                credit_account_id=credit,
                amount=amount,
                ledger=LEDGER,
                code=TRANSFER_CODE_PAYMENT,
            )
        )
        if outcome.result != CreateTransferResult.OK:
            raise RuntimeError(f"{self.key}: a transfer failed with {outcome.result.name}")

    async def batch(self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray) -> None:
        await self._send(debits, credits, amounts, TRANSFER_CODE_PAYMENT, in_flight=1)

    async def _send(
        self, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray, code: int, *, in_flight: int
    ) -> None:
        """Packed 128-byte transfer records (ledger/engine/_layout.py), made column by column."""
        assert self.client is not None
        count = len(debits)
        records = np.zeros((count, TRANSFER_SIZE // 8), dtype="<u8")
        records[:, 0] = np.arange(self.ids.take(count), self.ids.next, dtype=np.uint64)  # id, low 64 bits
        records[:, 2] = debits
        records[:, 4] = credits
        records[:, 6] = amounts
        records[:, 13] = LEDGER | code << 32  # ledger u32, code u16, flags u16
        results = await self.client.create_transfers_packed(records.data, in_flight=in_flight)
        codes = np.frombuffer(results, dtype="<u4")[:: TRANSFER_RESULT_SIZE // 4]
        if len(codes) != count or not (codes == CreateTransferResult.OK).all():
            failed = sorted({CreateTransferResult(int(c)).name for c in codes if c != CreateTransferResult.OK})
            raise RuntimeError(f"{self.key}: transfers failed with {failed}")

    async def stop(self) -> None:
        try:
            if self.client is not None:
                await self.client.close()
        finally:
            self.exits.close()


@dataclass(frozen=True, kw_only=True)
class ConnectionBudget:
    """How many connections the plain ledger may open: what max_connections leaves, at most PLAIN_CONNECTIONS_MAX."""

    count: int
    max_connections: int
    in_use: int

    @property
    def text(self) -> str:
        return (
            f"max_connections is {self.max_connections}, {self.in_use} were in use, {CONNECTIONS_SPARE} left spare; "
            "raising it needs a restart"
        )


async def connection_budget(
    connection: psycopg.AsyncConnection[Any], key: str, most: int = PLAIN_CONNECTIONS_MAX
) -> ConnectionBudget:
    """The plain ledger's connection cap on this server, at most `most`; fails unless synchronous_commit is on."""
    settings = await (
        await connection.execute(
            "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')"
            "::int, (SELECT count(*) FROM pg_stat_activity), current_setting('synchronous_commit')"
        )
    ).fetchone()
    assert settings is not None
    max_connections, reserved, in_use, synchronous_commit = settings
    if synchronous_commit != "on":
        raise RuntimeError(f"{key}: synchronous_commit is {synchronous_commit!r}; durable means 'on'")
    count = max(1, min(most, max_connections - reserved - in_use - CONNECTIONS_SPARE))
    return ConnectionBudget(count=count, max_connections=max_connections, in_use=in_use)


async def open_plain_books(url: str, customers: int, ids: Ids) -> None:
    """The plain ledger's schema, its accounts and every customer funded (bench/plain_pg.py)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await plain_pg.create_schema(connection)
        await plain_pg.open_books(
            connection, funding_id=FUNDING_ID, other_ids=[MERCHANT_ID], customer_ids=customer_ids(customers),
            balance=BALANCE, first_transfer_id=ids.take(customers),
        )  # fmt: skip


class PlainSystem:
    """The plain PostgreSQL ledger (bench/plain_pg.py) in a fresh schema, a connection per caller."""

    key = "plain_postgresql"
    label = "plain PostgreSQL ledger (psycopg, Python client)"
    server: ServerProcess | None = None

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.batch_transfers = BATCH_EVENTS_MAX
        self.ids = Ids()
        self.exits = ExitStack()
        self.connections: list[psycopg.AsyncConnection[Any]] = []
        self.idle: asyncio.Queue[psycopg.AsyncConnection[Any]] | None = None
        self.retries = plain_pg.Retries()
        self.notes: list[str] = []
        self.info: dict[str, Any] = {}

    async def start(self, customers: int) -> None:
        from tests.stores import temporary_schema

        url = self.exits.enter_context(temporary_schema(self.dsn, "ledger_bench_plain"))
        await open_plain_books(url, customers, self.ids)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
            budget = await connection_budget(connection, self.key)
        count = budget.count
        self.connections = list(
            await asyncio.gather(*(psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(count)))
        )
        self.info = {"connections": count, "max_connections": budget.max_connections, "synchronous_commit": "on"}
        self.notes = [
            "one transaction per transfer: INSERT the transfer, UPDATE the debit account guarded by its balance, "
            "UPDATE the credit account, COMMIT (row locks held to the commit), through psycopg 3 async",
            f"one connection per caller up to {count} ({budget.text}): "
            f"more callers wait in a queue for a free connection, as behind a pool",
            f"batches: one transaction of {BATCH_EVENTS_MAX} transfers: their accounts locked first in id order, "
            "then per transfer one statement (guarded debit, and insert) sent with executemany (pipelined), "
            "then each credited account updated once by its sum",
            "synchronous_commit on; its client is Python (psycopg 3, five round trips per transfer) and shares "
            "the machine's cores with PostgreSQL (its CPU per transfer is below); the pgbench column runs the "
            "same transaction from C",
        ]

    async def prepare(self, callers: int) -> str | None:
        if callers <= len(self.connections):
            self.idle = None
            return None
        self.idle = asyncio.Queue(len(self.connections))
        for connection in self.connections:
            self.idle.put_nowait(connection)
        return f"{callers} callers share {len(self.connections)} connections"

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        one = plain_pg.PlainTransfer(id=self.ids.take(), debit_account_id=debit, credit_account_id=credit,
                                     amount=amount)  # fmt: skip
        if self.idle is None:
            result = await plain_pg.transfer(self.connections[caller], one, self.retries)
        else:
            connection = await self.idle.get()
            try:
                result = await plain_pg.transfer(connection, one, self.retries)
            finally:
                self.idle.put_nowait(connection)
        if result != plain_pg.PlainResult.OK:
            raise RuntimeError(f"{self.key}: a transfer failed with {result.name}")

    async def batch(self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray) -> None:
        first = self.ids.take(len(debits))
        batch = [
            plain_pg.PlainTransfer(id=first + i, debit_account_id=d, credit_account_id=c, amount=a)
            for i, (d, c, a) in enumerate(zip(debits.tolist(), credits.tolist(), amounts.tolist(), strict=True))
        ]
        applied = await plain_pg.transfer_batch(self.connections[caller], batch)
        if applied != len(batch):
            raise RuntimeError(f"{self.key}: {len(batch) - applied} transfers of a batch found too little money")

    async def stop(self) -> None:
        try:
            for connection in self.connections:
                await connection.close()
        finally:
            self.exits.close()
        self.info["deadlocks_retried"] = self.retries.deadlocks


class PgbenchSystem:
    """The plain PostgreSQL ledger driven by pgbench (bench/_pgbench.py): single transfers only, no batches.

    Each scenario is one pgbench run of -T whole seconds with a connection per caller up to the cap the
    psycopg driver has; the books are checked after each run (money conserved, one row per commit).
    """

    key = "plain_postgresql_pgbench"
    label = "plain PostgreSQL ledger (pgbench, C client)"
    batch_transfers = 0
    server: ServerProcess | None = None

    def __init__(self, dsn: str, pgbench: str, *, connections_max: int = PLAIN_CONNECTIONS_MAX) -> None:
        self.dsn = dsn
        self.pgbench = pgbench
        self.connections_max = connections_max
        self.ids = Ids()
        self.exits = ExitStack()
        self.url = ""
        self.connections = 1
        """Connections pgbench may open: connections_max, or fewer if max_connections leaves fewer."""
        self.retries = True
        self.notes: list[str] = []
        self.info: dict[str, Any] = {}

    async def start(self, customers: int) -> None:
        from tests.stores import temporary_schema

        major, minor = _pgbench.version(self.pgbench)
        self.retries = major >= 15  # --max-tries came with pgbench 15; before it a deadlock ends the run
        self.url = self.exits.enter_context(temporary_schema(self.dsn, "ledger_bench_pgbench"))
        await open_plain_books(self.url, customers, self.ids)
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            await connection.execute(
                f"ALTER TABLE transfers ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH {self.ids.next})"
            )
            budget = await connection_budget(connection, self.key, self.connections_max)
        self.connections = budget.count
        self.info = {
            "connections": budget.count,
            "max_connections": budget.max_connections,
            "synchronous_commit": "on",
            "pgbench": self.pgbench,
            "pgbench_version": f"{major}.{minor}",
            "query_mode": "prepared",
            "transfer_ids": "identity column",
        }
        options = f"-j {_pgbench.THREADS_MAX}" + (f" --max-tries {_pgbench.TRIES_MAX}" if self.retries else "")
        self.notes = [
            "the same transaction as the psycopg driver, five round trips as a pgbench script: BEGIN; INSERT the "
            "transfer; UPDATE the debit account; UPDATE the credit account; COMMIT, as prepared statements "
            f"(`pgbench -n -M prepared -c N {options} -T SECONDS`, pgbench {major}.{minor})",
            "the debit is guarded by the accounts table's CHECK (a guarded balance >= 0), as a pgbench script "
            "cannot branch on a row count: too little money fails the UPDATE and rolls the whole transfer back; "
            "after every run the balances summed to what they did before, no guarded account was below zero, and "
            "the transfers table had grown by exactly the committed count",
            "accounts and amounts drawn by pgbench's random() (uniform: debit and credit among the customers; "
            "hot merchant: a customer pays the merchant); transfer ids from an identity column "
            "(GENERATED ALWAYS AS IDENTITY), so the database numbers them, not the caller",
            f"one connection per caller up to {budget.count}, the psycopg driver's cap ({budget.text}): beyond "
            f"that {budget.count} connections carry the load at full speed (pgbench has no queue of callers)",
            "every transaction logged (--log): transfers/s and latency are those of the transactions that ended "
            "after the warm-up, as for every other column; a run lasts warm-up plus window rounded up to whole "
            "seconds (-T), and its window is all of it after the warm-up; pgbench's own tps over the whole run, "
            "fresh connections' first transactions included, is `pgbench_tps` in compare.json",
            "single transfers only: the batches are the psycopg driver's",
        ]

    def clients(self, callers: int) -> int:
        return min(callers, self.connections)

    async def run(self, plan: Plan, progress: Progress) -> dict[str, Any]:
        """Every single-transfer scenario of the plan; its results per workload and scenario."""
        progress.bar.set_description(f"{self.key}: opening {plan.customers:,} accounts")
        await self.start(plan.customers)
        left_out = [str(callers) for callers in plan.callers if callers not in plan.pgbench_scenarios]
        if left_out:
            self.notes.append(
                f"run at {', '.join(map(str, plan.pgbench_scenarios))} callers only: --quick leaves out "
                f"{', '.join(left_out)} to stay within its 2 minutes"
            )
        results: dict[str, dict[str, Any]] = {workload: {} for workload in plan.workloads}
        try:
            async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
                for workload in plan.workloads:
                    text = _pgbench.script(
                        customers=plan.customers, customer_first_id=CUSTOMER_FIRST_ID, amount_max=AMOUNT_MAX,
                        credit_account_id=MERCHANT_ID if workload == "hot_merchant" else None,
                    )  # fmt: skip
                    for callers in plan.pgbench_scenarios:
                        progress.bar.set_description(f"{self.key}: {workload}, {callers} callers")
                        before = await _pgbench.books(connection)
                        one = await asyncio.to_thread(
                            _pgbench.run, self.pgbench, self.url, text, clients=self.clients(callers),
                            seconds=_pgbench.whole_seconds(plan.warmup_seconds + plan.seconds), seed=SEED,
                            retries=self.retries,
                        )  # fmt: skip
                        _pgbench.check_conserved(before, await _pgbench.books(connection), one.output["transactions"])
                        results[workload][f"single_{callers}"] = self.result(callers, one, plan.warmup_seconds)
                        self.report(
                            progress, f"{self.key} {workload} single_{callers}", results[workload][f"single_{callers}"]
                        )
                        progress.bar.update()
        finally:
            self.exits.close()
        return results

    @staticmethod
    def result(callers: int, one: _pgbench.Run, warmup_seconds: float) -> dict[str, Any]:
        """Like the other systems': the transactions that ended in the window after the warm-up, from the log."""
        output = one.output
        seconds = one.seconds - warmup_seconds
        measured = one.log.window(warmup_seconds, seconds)
        clients = output["clients"]
        return {
            "callers": callers,
            **summary(measured, len(measured), seconds, p999=True),
            "client_cpu_us_per_transfer": round(one.cpu_seconds / max(1, output["transactions"]) * 1e6, 2),
            "pgbench_tps": round(output["tps"]),
            "connections": clients,
            "threads": output["threads"],
            "seconds": one.seconds,
            "measured_seconds": round(seconds, 2),
            "failed": output["failed"],
            "retried": output["retried"],
            **({"note": f"{callers} callers: {clients} connections, the cap"} if clients < callers else {}),
        }

    @staticmethod
    def report(progress: Progress, name: str, result: dict[str, Any]) -> None:
        progress.write(
            f"  {name}: {result['transfers_per_s']:,} transfers/s, p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms ({result['calls']:,} transactions, {result['connections']} connections; "
            f"pgbench's tps {result['pgbench_tps']:,}); "
            f"CPU per transfer: pgbench {result['client_cpu_us_per_transfer']} us"
        )


class TigerBeetleSystem:
    """A TigerBeetle cluster the user started, through its Python client (ClientAsync)."""

    key = "tigerbeetle"
    label = "TigerBeetle"
    server: ServerProcess | None = None

    def __init__(self, address: str, *, cluster_id: int = 0, client_factory: Callable[[int, str], Any] = async_client):
        self.address = address
        self.cluster_id = cluster_id
        self.client_factory = client_factory
        self.batch_transfers = TIGERBEETLE_BATCH_MAX
        self.ids = Ids()
        self.books: TigerBeetleBooks | None = None
        self.notes = [
            "single transfers: N asyncio tasks sharing one `tigerbeetle.ClientAsync` (it coalesces concurrent calls)",
            f"batches: `create_transfers` of {TIGERBEETLE_BATCH_MAX} `tigerbeetle.Transfer` objects "
            "(its largest batch; a 1 MiB message)",
            f"the cluster at {address} (cluster id {cluster_id}), started by the user; ids under a random prefix",
        ]
        self.info: dict[str, Any] = {"address": address}

    async def start(self, customers: int) -> None:
        from bench._tigerbeetle import client_version

        self.info["client_version"] = client_version()
        self.notes.append(f"Python client `tigerbeetle` {self.info['client_version']}")
        self.books = TigerBeetleBooks(self.address, cluster_id=self.cluster_id, client_factory=self.client_factory)
        accounts = [(FUNDING_ID, ACCOUNT_CODE_FUNDING, False), (MERCHANT_ID, ACCOUNT_CODE_MERCHANT, False)]
        accounts += [(c, ACCOUNT_CODE_CUSTOMER, True) for c in customer_ids(customers)]
        await self.books.create_accounts(accounts, LEDGER)
        for first in range(0, customers, TIGERBEETLE_BATCH_MAX):
            chunk = customer_ids(customers)[first : first + TIGERBEETLE_BATCH_MAX]
            ids = range(self.ids.take(len(chunk)), self.ids.next)
            await self.books.create_transfers(
                ids, [FUNDING_ID] * len(chunk), chunk, [BALANCE] * len(chunk), ledger=LEDGER,
                code=TRANSFER_CODE_FUNDING,
            )  # fmt: skip

    async def prepare(self, callers: int) -> str | None:
        return None

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        assert self.books is not None
        await self.books.create_transfers(
            [self.ids.take()], [debit], [credit], [amount], ledger=LEDGER, code=TRANSFER_CODE_PAYMENT
        )

    async def batch(self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray) -> None:
        assert self.books is not None
        ids = range(self.ids.take(len(debits)), self.ids.next)
        await self.books.create_transfers(
            ids, debits.tolist(), credits.tolist(), amounts.tolist(), ledger=LEDGER, code=TRANSFER_CODE_PAYMENT
        )

    async def stop(self) -> None:
        if self.books is not None:
            await self.books.close()


@dataclass(frozen=True, kw_only=True)
class Plan:
    customers: int
    callers: tuple[int, ...]
    seconds: float
    warmup_seconds: float
    batch_seconds: float
    """Batches take longer: a window long enough for several of the slowest system's."""
    workloads: tuple[str, ...] = WORKLOADS
    pgbench_callers: tuple[int, ...] | None = None
    """The caller counts pgbench runs at (None: all of `callers`)."""

    @property
    def pgbench_scenarios(self) -> tuple[int, ...]:
        return self.callers if self.pgbench_callers is None else self.pgbench_callers


@dataclass
class Progress:
    """The progress bar: one step per scenario, result lines printed above it."""

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


def batch_caller(system: System, sampler: Sampler) -> Caller:
    async def caller(index: int, window: Window) -> None:
        while not window.stopped:
            debits, credits, amounts = sampler.many(system.batch_transfers)
            started = time.perf_counter()
            await system.batch(index, debits, credits, amounts)
            window.record(time.perf_counter() - started, len(debits))

    return caller


async def run_system(system: System, plan: Plan, progress: Progress) -> dict[str, Any]:
    """Every scenario of the plan on one system; its results per workload and scenario.

    Single transfers of every workload run first, then the batches: the background work that heavy
    batches leave behind (checkpoints, vacuum) then falls on the batches, not on the single callers.
    """
    progress.bar.set_description(f"{system.key}: opening {plan.customers:,} accounts")
    await system.start(plan.customers)
    results: dict[str, dict[str, Any]] = {workload: {} for workload in plan.workloads}
    samplers = {workload: Sampler(workload, plan.customers) for workload in plan.workloads}
    try:
        for workload in plan.workloads:
            for callers in plan.callers:
                progress.bar.set_description(f"{system.key}: {workload}, {callers} callers")
                note = await system.prepare(callers)
                result = await measure(
                    f"{system.key} {workload} single_{callers}", callers, single_caller(system, samplers[workload]),
                    plan.seconds, plan.warmup_seconds, server=system.server, report=progress.write, p999=True,
                )  # fmt: skip
                results[workload][f"single_{callers}"] = {
                    "callers": callers,
                    **result,
                    **({"note": note} if note else {}),
                }
                progress.bar.update()
        for workload in plan.workloads:
            progress.bar.set_description(f"{system.key}: {workload}, batches of {system.batch_transfers}")
            await system.prepare(BATCH_IN_FLIGHT)
            result = await measure(
                f"{system.key} {workload} batch_{system.batch_transfers}", BATCH_IN_FLIGHT,
                batch_caller(system, samplers[workload]), plan.batch_seconds, plan.warmup_seconds, server=system.server,
                report=progress.write, p999=True,
            )  # fmt: skip
            results[workload]["batch"] = {
                "callers": BATCH_IN_FLIGHT,
                "batch_transfers": system.batch_transfers,
                **result,
            }
            progress.bar.update()
    finally:
        await system.stop()
    return results


def quick_pgbench_callers(callers: tuple[int, ...]) -> tuple[int, ...]:
    """--quick runs pgbench without the single caller (each of its runs lasts whole seconds), unless that is all."""
    return tuple(c for c in callers if c > 1) or callers


def transfers_max_for(plan: Plan) -> int:
    """Engine capacity for a run: funding, then generous rates for each scenario's whole duration."""
    singles = len(plan.callers) * (plan.seconds + plan.warmup_seconds + 2) * 100_000
    batches = (plan.batch_seconds + plan.warmup_seconds + 2) * 1_500_000
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
        elif key == "plain_postgresql_pgbench" and args.pgbench_path:
            systems.append(PgbenchSystem(args.store, args.pgbench_path))
        elif key == "tigerbeetle" and args.tigerbeetle:
            systems.append(TigerBeetleSystem(args.tigerbeetle, cluster_id=args.tigerbeetle_cluster))
    return systems


def scenario_count(system: System | PgbenchSystem, plan: Plan) -> int:
    if isinstance(system, PgbenchSystem):
        return len(plan.workloads) * len(plan.pgbench_scenarios)
    return len(plan.workloads) * (len(plan.callers) + 1)


async def run_all(systems: list[System | PgbenchSystem], plan: Plan, progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for system in systems:
        if isinstance(system, PgbenchSystem):
            workloads = await system.run(plan, progress)
        else:
            workloads = await run_system(system, plan, progress)
        out[system.key] = {"label": system.label, "notes": system.notes, "info": system.info, "workloads": workloads}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short scenarios: the whole run in under 2 minutes")
    parser.add_argument("--seconds", type=float, help="measured seconds per scenario (default 5, quick 1)")
    parser.add_argument("--batch-seconds", type=float, help="measured seconds of batches (default 5, quick 2)")
    parser.add_argument("--warmup-seconds", type=float, help="unmeasured seconds before each (default 1, quick 0.3)")
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
    parser.add_argument("--tigerbeetle", metavar="ADDRESS", help="a TigerBeetle cluster to compare (e.g. 3000)")
    parser.add_argument("--tigerbeetle-cluster", type=int, default=0, help="its cluster id (default 0)")
    parser.add_argument("--tigerbeetle-binary", metavar="PATH",
                        help="run PATH benchmark for TigerBeetle's own figure, for context")  # fmt: skip
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
    args.pgbench_path, args.skipped = None, {}
    if "plain_postgresql_pgbench" in args.systems and not args.no_run:
        try:
            args.pgbench_path = _pgbench.find_pgbench(args.pgbench)
        except FileNotFoundError as exc:
            parser.error(str(exc))
        if args.pgbench_path is None:
            if chosen:
                parser.error(f"--systems: plain_postgresql_pgbench needs pgbench: none on PATH or at "
                             f"{_pgbench.PGBENCH_GLOB}; give --pgbench PATH")  # fmt: skip
            args.skipped["plain_postgresql_pgbench"] = "pgbench not found (give `--pgbench PATH`)"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.no_run:
        _report.update_readme(args.readme, (args.out / "compare.md").read_text())
        print(f"{args.readme}: Performance section replaced from {args.out / 'compare.md'}", file=sys.stderr)
        return 0
    plan = Plan(
        customers=args.accounts,
        callers=args.callers,
        seconds=args.seconds if args.seconds is not None else (1.0 if args.quick else 5.0),
        batch_seconds=args.batch_seconds if args.batch_seconds is not None else (2.0 if args.quick else 5.0),
        warmup_seconds=args.warmup_seconds if args.warmup_seconds is not None else (0.3 if args.quick else 1.0),
        pgbench_callers=quick_pgbench_callers(args.callers) if args.quick else None,
    )
    for key, reason in args.skipped.items():
        print(f"{key}: not run: {reason}", file=sys.stderr)
    started = time.perf_counter()
    bar = tqdm(total=0, file=sys.stderr, unit="scenario", dynamic_ncols=True)
    progress = Progress(bar)
    try:
        systems = make_systems(args, plan, progress)
        bar.total = sum(scenario_count(system, plan) for system in systems)
        bar.refresh()
        results = run_event_loop(run_all(systems, plan, progress))
        benchmark = None
        if args.tigerbeetle_binary:
            bar.set_description("tigerbeetle benchmark")
            benchmark = run_benchmark(
                args.tigerbeetle_binary, account_count=args.accounts,
                transfer_count=1_000_000 if args.quick else 10_000_000, timeout_seconds=600,
            )  # fmt: skip
            progress.write(f"  tigerbeetle benchmark: {benchmark['transfers_per_s']:,} transfers/s")
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
            "pgbench_callers": list(plan.pgbench_scenarios),
            "batch_in_flight": BATCH_IN_FLIGHT,
            "seconds_per_scenario": plan.seconds,
            "batch_seconds": plan.batch_seconds,
            "warmup_seconds": plan.warmup_seconds,
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
