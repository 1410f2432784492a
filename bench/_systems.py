"""The systems `python -m bench.compare` measures, each on a fresh state of its own, and the work they are given.

Every system answers a transfer only when it is durable. Each takes the same accounts, funded alike,
and the same sequence of transfers (a Sampler per system and workload, from one seed).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import psycopg

from bench import _pgbench, _tigerbeetle, plain_pg
from bench._harness import (
    Backends,
    CpuMeter,
    Processes,
    ServerProcess,
    cpu_between,
    fresh_store,
    is_postgres,
    server_process,
    summary,
    temporary_schema,
)
from ledger.client import Account, AccountFlags, AsyncClient, ClientConfig, CreateTransferResult, Transfer
from ledger.engine import CreateAccountResult
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_RESULT_SIZE, TRANSFER_SIZE

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
PLAIN_CONNECTIONS_MAX = 64
"""At most this many PostgreSQL connections for the plain ledger, and fewer if max_connections leaves fewer."""
CONNECTIONS_SPARE = 16
"""Connections left free for everything else on the server (its superuser slots come on top)."""
WORKLOADS = ("uniform", "hot_merchant")
BATCH_KINDS = ("packed", "typed")
"""Batches as packed records built with numpy (no Python object per transfer), or as typed Python objects."""


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
    """One ledger under test, on a fresh state of its own from start() to stop().

    Around each scenario: prepare(callers), then the measured calls, then finish(). `meters` names
    the processes whose CPU the scenario reports (`server`: the server's own).
    """

    key: str
    label: str
    postgres: bool
    """Whether it keeps its state in PostgreSQL (then it is vacuumed, and checkpointed, after loading)."""
    batch_kinds: tuple[str, ...]
    batch_transfers: int
    meters: dict[str, CpuMeter]
    notes: list[str]
    info: dict[str, Any]

    async def start(self, customers: int) -> None: ...

    async def settle(self) -> None:
        """Let the load's aftermath pass before anything is measured (VACUUM ANALYZE of its tables)."""

    async def prepare(self, callers: int) -> str | None:
        """Get ready for `callers` concurrent callers; say how if it is not one connection each."""

    async def finish(self) -> None: ...

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None: ...

    async def batch(
        self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray, kind: str
    ) -> None: ...

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


async def vacuum_schema(url: str) -> None:
    """VACUUM ANALYZE every table of the URL's schema (its search_path), after a load."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        tables = await (
            await connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).fetchall()
        for (table,) in tables:
            await connection.execute(f'VACUUM ANALYZE "{table}"')


class LedgerSystem:
    """This ledger: `ledger serve` on a fresh store, driven through one AsyncClient."""

    batch_kinds = BATCH_KINDS

    def __init__(self, store: str, *, transfers_max: int, report: Callable[[str], None]) -> None:
        self.store = store
        self.postgres = is_postgres(store)
        self.key = "ledger_postgresql" if self.postgres else "ledger_sqlite"
        self.label = f"this ledger ({'PostgreSQL' if self.postgres else 'SQLite'})"
        self.batch_transfers = BATCH_EVENTS_MAX
        self.transfers_max = transfers_max
        self.report = report
        self.server: ServerProcess | None = None
        self.url = ""
        self.ids = Ids()
        self.exits = ExitStack()
        self.client: AsyncClient | None = None
        self.meters: dict[str, CpuMeter] = {}
        self.notes = [
            "single transfers: N asyncio tasks sharing one auto-batching `ledger.client.AsyncClient`, each "
            "`create_transfer` of one typed `Transfer`",
            f"batches, packed: `create_transfers_packed` of {BATCH_EVENTS_MAX} 128-byte records built with numpy",
            f"batches, typed: `create_transfers` of {BATCH_EVENTS_MAX} `ledger.client.Transfer` objects, made from "
            "the same arrays in each call",
            "answered only when durable (group commit to "
            + ("PostgreSQL, synchronous_commit on)" if self.postgres else "SQLite WAL, synchronous=FULL)"),
            "server CPU: the `ledger serve` process"
            + ("; store CPU: the PostgreSQL backends of its connections" if self.postgres else ""),
        ]
        self.info: dict[str, Any] = {}

    async def start(self, customers: int) -> None:
        self.url = self.exits.enter_context(fresh_store(self.store, "ledger_bench_compare"))
        self.server = self.exits.enter_context(
            server_process(self.url, self.transfers_max, accounts_max=customers + 16, report=self.report)
        )
        self.meters = {"server": self.server}
        if self.postgres:
            backends = Backends(self.store, client_pid=self.server.pid)
            self.exits.callback(backends.close)
            self.meters["store"] = backends
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

    async def settle(self) -> None:
        if self.postgres:
            await vacuum_schema(self.url)

    async def prepare(self, callers: int) -> str | None:
        return None

    async def finish(self) -> None:
        pass

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

    async def batch(self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray, kind: str) -> None:
        if kind == "packed":
            await self._send(debits, credits, amounts, TRANSFER_CODE_PAYMENT, in_flight=1)
            return
        assert self.client is not None
        first = self.ids.take(len(debits))
        transfers = [
            Transfer(id=first + index, debit_account_id=d, credit_account_id=c, amount=a, ledger=LEDGER,
                     code=TRANSFER_CODE_PAYMENT)
            for index, (d, c, a) in enumerate(zip(debits.tolist(), credits.tolist(), amounts.tolist(), strict=True))
        ]  # fmt: skip
        outcomes = await self.client.create_transfers(transfers, in_flight=1)
        failed = sorted({o.result.name for o in outcomes if o.result != CreateTransferResult.OK})
        if len(outcomes) != len(transfers) or failed:
            raise RuntimeError(f"{self.key}: transfers failed with {failed or 'results missing'}")

    async def _send(
        self, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray, code: int, *, in_flight: int
    ) -> None:
        """Packed 128-byte transfer records (ledger/records/layout.py), made column by column."""
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


PLAIN_STATEMENTS = {
    "five": "5 round trips",
    "one": "one statement",
}
"""The plain ledger's transfer: BEGIN, INSERT, UPDATE, UPDATE, COMMIT; or one statement (a CTE)."""


class PlainSystem:
    """The plain PostgreSQL ledger (bench/plain_pg.py) in a fresh schema, a connection per caller.

    `statement` "five": a transaction of five round trips per transfer (and the batches); "one": the
    transfer as one statement (plain_pg.transfer_one), single transfers only.
    """

    postgres = True

    def __init__(self, dsn: str, *, statement: str = "five") -> None:
        if statement not in PLAIN_STATEMENTS:
            raise ValueError(f"statement: {statement!r} is not one of {', '.join(PLAIN_STATEMENTS)}")
        self.dsn = dsn
        self.statement = statement
        self.key = "plain_postgresql" if statement == "five" else "plain_postgresql_one"
        self.label = f"plain PostgreSQL ledger (psycopg, {PLAIN_STATEMENTS[statement]})"
        self.batch_kinds: tuple[str, ...] = ("typed",) if statement == "five" else ()
        self.batch_transfers = BATCH_EVENTS_MAX
        self.ids = Ids()
        self.exits = ExitStack()
        self.url = ""
        self.connections: list[psycopg.AsyncConnection[Any]] = []
        self.idle: asyncio.Queue[psycopg.AsyncConnection[Any]] | None = None
        self.retries = plain_pg.Retries()
        self.applied = 0
        """Transfers that moved money since the books were last read."""
        self.books: _pgbench.Books | None = None
        self.meters: dict[str, CpuMeter] = {}
        self.budget: ConnectionBudget | None = None
        self.notes: list[str] = []
        self.info: dict[str, Any] = {}

    async def start(self, customers: int) -> None:
        self.url = self.exits.enter_context(temporary_schema(self.dsn, f"ledger_bench_{self.key}"))
        await open_plain_books(self.url, customers, self.ids)
        self.info = {"synchronous_commit": "on", "statement": self.statement}
        if self.statement == "five":
            self.notes = [
                "one transaction per transfer: INSERT the transfer, UPDATE the debit account guarded by its balance, "
                "UPDATE the credit account, COMMIT (five round trips; row locks held to the commit), through "
                "psycopg 3 async",
                f"batches (typed: Python values): one transaction of {BATCH_EVENTS_MAX} transfers: their accounts "
                "locked first in id order, then per transfer one statement (guarded debit, and insert) sent with "
                "executemany (pipelined), then each credited account updated once by its sum",
            ]
        else:
            self.notes = [
                "one statement per transfer in autocommit mode, one round trip: a CTE that debits the payer guarded "
                "by its balance, credits the payee and inserts the transfer (bench/plain_pg.py ONE_STATEMENT), "
                "through psycopg 3 async; single transfers only",
            ]
        self.notes.append(
            "its client is Python and shares the machine's cores with PostgreSQL; server CPU: the PostgreSQL backends "
            "of its connections"
        )

    async def settle(self) -> None:
        await vacuum_schema(self.url)

    async def prepare(self, callers: int) -> str | None:
        """Open a connection per caller up to the budget left now (other systems' connections are closed),
        and read the books to check them after the scenario."""
        await self.finish()
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            self.budget = await connection_budget(connection, self.key)
            self.books, self.applied = await _pgbench.books(connection), 0
        count = min(callers, self.budget.count)
        self.connections = list(
            await asyncio.gather(*(psycopg.AsyncConnection.connect(self.url, autocommit=True) for _ in range(count)))
        )
        pids = []
        for connection in self.connections:
            row = await (await connection.execute("SELECT pg_backend_pid()")).fetchone()
            assert row is not None
            pids.append(int(row[0]))
        self.meters = {"server": Processes(tuple(pids))}
        self.info.update(connections_max=self.budget.count, max_connections=self.budget.max_connections)
        if callers <= count:
            self.idle = None
            return None
        self.idle = asyncio.Queue(count)
        for connection in self.connections:
            self.idle.put_nowait(connection)
        return f"{callers} callers share {count} connections ({self.budget.text})"

    async def finish(self) -> None:
        """Close the scenario's connections; the books must show exactly the transfers applied, money conserved."""
        connections, self.connections, self.idle = self.connections, [], None
        for connection in connections:
            await connection.close()
        if self.books is not None:
            before, self.books = self.books, None
            async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
                _pgbench.check_conserved(before, await _pgbench.books(connection), self.applied, driver=self.key)

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        one = plain_pg.PlainTransfer(id=self.ids.take(), debit_account_id=debit, credit_account_id=credit,
                                     amount=amount)  # fmt: skip
        apply = plain_pg.transfer if self.statement == "five" else plain_pg.transfer_one
        if self.idle is None:
            result = await apply(self.connections[caller], one, self.retries)
        else:
            connection = await self.idle.get()
            try:
                result = await apply(connection, one, self.retries)
            finally:
                self.idle.put_nowait(connection)
        if result != plain_pg.PlainResult.OK:
            raise RuntimeError(f"{self.key}: a transfer failed with {result.name}")
        self.applied += 1

    async def batch(self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray, kind: str) -> None:
        first = self.ids.take(len(debits))
        batch = [
            plain_pg.PlainTransfer(id=first + i, debit_account_id=d, credit_account_id=c, amount=a)
            for i, (d, c, a) in enumerate(zip(debits.tolist(), credits.tolist(), amounts.tolist(), strict=True))
        ]
        applied = await plain_pg.transfer_batch(self.connections[caller], batch)
        self.applied += applied
        if applied != len(batch):
            raise RuntimeError(f"{self.key}: {len(batch) - applied} transfers of a batch found too little money")

    async def stop(self) -> None:
        try:
            await self.finish()
        finally:
            self.exits.close()
        self.info["deadlocks_retried"] = self.retries.deadlocks


class PgbenchSystem:
    """The plain PostgreSQL ledger driven by pgbench (bench/_pgbench.py): single transfers only, no batches.

    Each scenario is one pgbench run of -T whole seconds (run again, longer, while fewer transactions
    than wanted ended in its window) with a connection per caller up to the cap the psycopg driver
    has; the books are checked after each run (money conserved, one row per commit).
    """

    postgres = True
    batch_kinds: tuple[str, ...] = ()
    batch_transfers = 0

    def __init__(
        self, dsn: str, pgbench: str, *, statement: str = "five", connections_max: int = PLAIN_CONNECTIONS_MAX
    ) -> None:
        if statement not in PLAIN_STATEMENTS:
            raise ValueError(f"statement: {statement!r} is not one of {', '.join(PLAIN_STATEMENTS)}")
        self.dsn = dsn
        self.pgbench = pgbench
        self.statement = statement
        self.key = "plain_postgresql_pgbench" if statement == "five" else "plain_postgresql_pgbench_one"
        self.label = f"plain PostgreSQL ledger (pgbench, {PLAIN_STATEMENTS[statement]})"
        self.connections_max = connections_max
        self.ids = Ids()
        self.exits = ExitStack()
        self.url = ""
        self.application_name = ""
        self.customers = 0
        self.retries = True
        self.meters: dict[str, CpuMeter] = {}
        self.notes: list[str] = []
        self.info: dict[str, Any] = {}

    async def start(self, customers: int) -> None:
        major, minor = _pgbench.version(self.pgbench)
        self.customers = customers
        self.retries = major >= 15  # --max-tries came with pgbench 15; before it a deadlock ends the run
        self.url = self.exits.enter_context(temporary_schema(self.dsn, f"ledger_bench_{self.key}"))
        self.application_name = f"ledger_bench_{self.key}"
        await open_plain_books(self.url, customers, self.ids)
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            await connection.execute(
                f"ALTER TABLE transfers ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH {self.ids.next})"
            )
        self.info = {
            "synchronous_commit": "on",
            "pgbench": self.pgbench,
            "pgbench_version": f"{major}.{minor}",
            "query_mode": "prepared",
            "transfer_ids": "identity column",
            "statement": self.statement,
        }
        options = f"-j {_pgbench.THREADS_MAX}" + (f" --max-tries {_pgbench.TRIES_MAX}" if self.retries else "")
        if self.statement == "five":
            self.notes = [
                "the psycopg driver's transaction, five round trips as a pgbench script: BEGIN; INSERT the "
                "transfer; UPDATE the debit account; UPDATE the credit account; COMMIT, as prepared statements "
                f"(`pgbench -n -M prepared -c N {options} -T SECONDS`, pgbench {major}.{minor}); the debit is "
                "guarded by the accounts table's CHECK (a guarded balance >= 0), as a pgbench script cannot "
                "branch on a row count: too little money fails the UPDATE and rolls the whole transfer back",
            ]
        else:
            self.notes = [
                "one statement per transfer, one round trip: the CTE of the psycopg one-statement driver (guarded "
                "debit, credit, insert) as a prepared statement "
                f"(`pgbench -n -M prepared -c N {options} -T SECONDS`, pgbench {major}.{minor})",
            ]
        self.notes += [
            "after every run the balances summed to what they did before, no guarded account was below zero, and "
            "the transfers table had grown by exactly the committed count",
            "accounts and amounts drawn by pgbench's random(); transfer ids from an identity column; one "
            "connection per caller up to the psycopg driver's cap (beyond it the cap's connections carry the load "
            "at full speed: pgbench has no queue of callers); every transaction logged (--log), and the figures "
            "are those of the transactions that ended in the window after the warm-up; server CPU: the "
            "PostgreSQL backends of pgbench's connections, sampled during the window",
        ]

    async def settle(self) -> None:
        await vacuum_schema(self.url)

    async def run_single(
        self, workload: str, callers: int, *, seconds: float, warmup_seconds: float, calls_min: int,
        seconds_max: float,
    ) -> dict[str, Any]:  # fmt: skip
        """One scenario: pgbench runs until at least `calls_min` transactions ended in its window (or seconds_max)."""
        text = _pgbench.script(
            customers=self.customers, customer_first_id=CUSTOMER_FIRST_ID,
            amount_max=AMOUNT_MAX, credit_account_id=MERCHANT_ID if workload == "hot_merchant" else None,
            statement=self.statement,
        )  # fmt: skip
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            clients = min(callers, (await connection_budget(connection, self.key, self.connections_max)).count)
            total = _pgbench.whole_seconds(warmup_seconds + seconds)
            while True:
                before = await _pgbench.books(connection)
                one, cpu = await self._run(text, clients, total, warmup_seconds)
                _pgbench.check_conserved(before, await _pgbench.books(connection), one.output["transactions"])
                result = self.result(callers, one, warmup_seconds, cpu)
                if result["calls"] >= calls_min or total >= seconds_max:
                    break
                total = _pgbench.whole_seconds(min(seconds_max, total * 2))
        if result["calls"] < calls_min:
            result["calls_short"] = f"{result['calls']} calls in {total} s, fewer than the {calls_min} wanted"
        return result

    async def _run(
        self, text: str, clients: int, total: int, warmup_seconds: float
    ) -> tuple[_pgbench.Run, tuple[float, float, float] | None]:
        """pgbench in a thread; meanwhile its backends' CPU is sampled after the warm-up and just before the end:
        (CPU seconds, from, to), or None if the samples missed the run (a busy machine can delay them)."""
        url = f"{self.url}&application_name={self.application_name}"
        backends = Backends(self.dsn, application_name=self.application_name)
        try:
            backends.pids()  # its connection made before pgbench starts, not while it is timed
            running = asyncio.create_task(asyncio.to_thread(
                _pgbench.run, self.pgbench, url, text, clients=clients, seconds=total, seed=SEED, retries=self.retries,
            ))  # fmt: skip
            began = time.time()
            await asyncio.sleep(warmup_seconds)
            first, opened = backends.cpu_sample(), time.time()
            await asyncio.sleep(max(0.05, began + total - 0.15 - time.time()))
            last, closed = backends.cpu_sample(), time.time()
            one = await running
        finally:
            backends.close()
        if not last or closed - opened < 0.2:
            return one, None
        return one, (cpu_between(first, last), opened, closed)

    def result(
        self, callers: int, one: _pgbench.Run, warmup_seconds: float, cpu: tuple[float, float, float] | None
    ) -> dict[str, Any]:
        """Like the other systems': the transactions that ended in the window after the warm-up, from the log;
        the server's CPU over the span its samples covered (None if they missed the run)."""
        output = one.output
        seconds = one.seconds - warmup_seconds
        measured = one.log.window(warmup_seconds, seconds)
        clients = output["clients"]
        result = {
            "callers": callers,
            **summary(measured, len(measured), seconds, p999=True),
            "seconds": round(seconds, 2),
            "client_cpu_us_per_transfer": round(one.cpu_seconds / max(1, output["transactions"]) * 1e6, 2),
            "server_cpu_us_per_transfer": None,
            "server_cpu_share": None,
            "pgbench_tps": round(output["tps"]),
            "connections": clients,
            "threads": output["threads"],
            "pgbench_seconds": one.seconds,
            "failed": output["failed"],
            "retried": output["retried"],
        }
        if cpu is not None:
            cpu_seconds, opened, closed = cpu
            sampled = sum(1 for end in one.log.ends if opened <= end < closed)
            result["server_cpu_us_per_transfer"] = round(cpu_seconds / max(1, sampled) * 1e6, 2)
            result["server_cpu_share"] = round(cpu_seconds / (closed - opened), 2)
        if clients < callers:
            result["note"] = f"{callers} callers: {clients} connections, the cap"
        return result

    async def stop(self) -> None:
        self.exits.close()


class TigerBeetleSystem:
    """TigerBeetle through its Python client, typed and packed: a server started here from `binary`, or a
    cluster the user started at `address`."""

    key = "tigerbeetle"
    label = "TigerBeetle"
    postgres = False
    batch_kinds = BATCH_KINDS

    def __init__(
        self, address: str | None = None, *, binary: str | None = None, cluster_id: int = 0,
        server_options: tuple[str, ...] = (), client_factory: Callable[[int, str], Any] = _tigerbeetle.async_client,
        packed_factory: Callable[[int, str], Any] = _tigerbeetle.packed_client,
    ) -> None:  # fmt: skip
        if address is None and binary is None:
            raise ValueError("TigerBeetleSystem: give the address of a cluster, or the binary to start one")
        self.address = address
        self.binary = binary
        self.cluster_id = cluster_id
        self.server_options = server_options
        self.client_factory = client_factory
        self.packed_factory = packed_factory
        self.batch_transfers = _tigerbeetle.TIGERBEETLE_BATCH_MAX
        self.ids = Ids()
        self.exits = ExitStack()
        self.books: _tigerbeetle.TigerBeetleBooks | None = None
        self.packed: Any = None
        self.meters: dict[str, CpuMeter] = {}
        self.notes: list[str] = []
        self.info: dict[str, Any] = {}

    async def start(self, customers: int) -> None:
        self.info["client_version"] = _tigerbeetle.client_version()
        if self.address is None:
            assert self.binary is not None
            server = self.exits.enter_context(_tigerbeetle.server(self.binary, extra=self.server_options))
            self.address = server.address
            self.meters = {"server": server}
            self.info.update(server_release=server.release, server_options=list(self.server_options))
            where = (
                f"a single-replica cluster started here from `{self.binary}` (release {server.release}), "
                f"production mode{' with ' + ' '.join(self.server_options) if self.server_options else ''}, "
                "a fresh data file, `tigerbeetle start --addresses=0` (a free port, and it exits when the "
                "comparison ends); server CPU: its process"
            )
        else:
            where = (
                f"the cluster at {self.address} (cluster id {self.cluster_id}), started by the user: its release and "
                "CPU were not checked here; ids under a random prefix"
            )
        self.info["address"] = self.address
        self.packed = self.packed_factory(self.cluster_id, self.address)
        self.batch_transfers = await _tigerbeetle.probe_batch_limit(self.packed)
        self.info["batch_transfers_max"] = self.batch_transfers
        self.books = _tigerbeetle.TigerBeetleBooks(
            self.address, cluster_id=self.cluster_id, client_factory=self.client_factory,
            batch_max=self.batch_transfers,
        )  # fmt: skip
        self.notes = [
            "single transfers: N asyncio tasks sharing one `tigerbeetle.ClientAsync` (it coalesces concurrent calls), "
            "each `create_transfers` of one `tigerbeetle.Transfer`",
            f"batches, packed: {self.batch_transfers} 128-byte records in its own layout "
            "(`tigerbeetle.bindings.CTransfer`) built with numpy, handed to its C client through the package's "
            "bindings (`tb_client_submit`), results read back as one buffer",
            f"batches, typed: `create_transfers` of {self.batch_transfers} `tigerbeetle.Transfer` objects, made from "
            "the same arrays in each call",
            f"batch size: the largest the server takes, probed first ({self.batch_transfers}; "
            f"{_tigerbeetle.TIGERBEETLE_BATCH_MAX} fills its 1 MiB message)",
            where,
            f"Python client `tigerbeetle` {self.info['client_version']}",
        ]
        accounts = [(FUNDING_ID, ACCOUNT_CODE_FUNDING, False), (MERCHANT_ID, ACCOUNT_CODE_MERCHANT, False)]
        accounts += [(c, ACCOUNT_CODE_CUSTOMER, True) for c in customer_ids(customers)]
        await self.books.create_accounts(accounts, LEDGER)
        for first in range(0, customers, self.batch_transfers):
            chunk = customer_ids(customers)[first : first + self.batch_transfers]
            ids = range(self.ids.take(len(chunk)), self.ids.next)
            await self.books.create_transfers(
                ids, [FUNDING_ID] * len(chunk), chunk, [BALANCE] * len(chunk), ledger=LEDGER,
                code=TRANSFER_CODE_FUNDING,
            )  # fmt: skip

    async def settle(self) -> None:
        pass

    async def prepare(self, callers: int) -> str | None:
        return None

    async def finish(self) -> None:
        pass

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        assert self.books is not None
        await self.books.create_transfers(
            [self.ids.take()], [debit], [credit], [amount], ledger=LEDGER, code=TRANSFER_CODE_PAYMENT
        )

    async def batch(self, caller: int, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray, kind: str) -> None:
        assert self.books is not None
        count = len(debits)
        if kind == "packed":
            ids = np.arange(self.ids.take(count), self.ids.next, dtype=np.uint64)
            records = _tigerbeetle.packed_transfers(
                ids, debits, credits, amounts, id_high=self.books.id_high, ledger=LEDGER, code=TRANSFER_CODE_PAYMENT
            )
            refused = _tigerbeetle.refused(await self.packed.create_transfers(records), count)
            if refused:
                raise RuntimeError(f"TigerBeetle refused transfers: {refused}")
            return
        ids_typed = range(self.ids.take(count), self.ids.next)
        await self.books.create_transfers(
            ids_typed, debits.tolist(), credits.tolist(), amounts.tolist(), ledger=LEDGER, code=TRANSFER_CODE_PAYMENT
        )

    async def stop(self) -> None:
        try:
            if self.books is not None:
                await self.books.close()
            if self.packed is not None:
                await self.packed.close()
        finally:
            self.exits.close()
