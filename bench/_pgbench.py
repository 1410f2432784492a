"""The plain PostgreSQL ledger driven by pgbench, PostgreSQL's own load generator in C.

bench/plain_pg.py's Python driver spends hundreds of microseconds of CPU per transfer on the cores it
shares with PostgreSQL, so it measures its client as much as the server. pgbench runs the same
transaction from C on the same schema, so the comparison can be judged against the faster of the two.

Two scripts, with prepared statements (`-M prepared`). `five`: the Python driver's transaction,
five round trips:

    BEGIN
    INSERT INTO transfers ...                          -- the id from the table's identity column
    UPDATE accounts SET balance = balance - amount WHERE id = debit
    UPDATE accounts SET balance = balance + amount WHERE id = credit
    COMMIT

A pgbench script cannot branch on an UPDATE's row count, so there the debit is guarded by the
accounts table's CHECK (a guarded account's balance >= 0) instead of a WHERE clause: a transfer
without the money fails its debit, and pgbench ends that client with the transaction rolled back,
never half applied.

`one`: the transfer as one statement (bench/plain_pg.py's ONE_STATEMENT: a CTE that debits guarded,
credits and inserts), one round trip in its own transaction; a debit without the money moves
nothing and writes no transfer.

The accounts are funded so far above what a run moves that no guard fails; `Books` is read before
and after each run to show that money was conserved, that no guarded account went below zero, and
that exactly the committed transfers were written (a transfer refused by a guard would show there).

Transfer ids come from an identity column (GENERATED ALWAYS AS IDENTITY), as a shop's wallet numbers
its rows; the database chooses them, not the caller.
"""

from __future__ import annotations

import glob
import math
import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from bench.plain_pg import one_statement

PGBENCH_GLOB = "/usr/lib/postgresql/*/bin/pgbench"
"""Where Debian and Ubuntu install pgbench when it is not on PATH (one directory per major version)."""
THREADS_MAX = 2
"""pgbench's -j: its worker threads, one per core of the machine it shares with PostgreSQL."""
TRIES_MAX = 10
"""pgbench's --max-tries (PostgreSQL 15 and later): a deadlock is retried, as the Python driver does."""
LOG_PREFIX = "pgbench_log"
TIMEOUT_SECONDS_EXTRA = 120

TRANSACTION = """\
BEGIN;
INSERT INTO transfers (debit_account_id, credit_account_id, amount) VALUES (:debit, :credit, :amount);
UPDATE accounts SET balance = balance - :amount WHERE id = :debit;
UPDATE accounts SET balance = balance + :amount WHERE id = :credit;
COMMIT;
"""
ONE_STATEMENT = one_statement(":{}", with_id=False) + ";\n"
STATEMENTS = {"five": TRANSACTION, "one": ONE_STATEMENT}
"""The transfer as pgbench runs it: five round trips, or one statement."""

_VERSION = re.compile(r"^pgbench \(PostgreSQL\) (\d+)(?:\.(\d+))?", re.MULTILINE)
_OUTPUT_VERSION = re.compile(r"^pgbench \((\d+(?:\.\d+)?)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)(?:/\d+)?$", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)
_RETRIED = re.compile(r"^number of transactions retried: (\d+)", re.MULTILINE)
_RETRIES = re.compile(r"^total number of retries: (\d+)", re.MULTILINE)
_CLIENTS = re.compile(r"^number of clients: (\d+)$", re.MULTILINE)
_THREADS = re.compile(r"^number of threads: (\d+)$", re.MULTILINE)
_QUERY_MODE = re.compile(r"^query mode: (\w+)$", re.MULTILINE)
_LATENCY_AVERAGE = re.compile(r"^latency average = ([\d.]+) ms$", re.MULTILINE)
_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)$", re.MULTILINE)


def find_pgbench(path: str | None = None) -> str | None:
    """pgbench to run: `path` if given (it must exist), else the one on PATH, else the newest Debian install."""
    if path is not None:
        found = shutil.which(path)
        if found is None:
            raise FileNotFoundError(f"--pgbench: {path} is not an executable file")
        return found
    on_path = shutil.which("pgbench")
    if on_path is not None:
        return on_path
    installed = sorted(
        glob.glob(PGBENCH_GLOB), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0
    )
    return installed[-1] if installed else None


def version(pgbench: str) -> tuple[int, int]:
    """pgbench's version as (major, minor), from `pgbench --version`."""
    output = subprocess.run([pgbench, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    match = _VERSION.search(output)
    if match is None:
        raise ValueError(f"pgbench --version: no version in {output.strip()!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def script(
    *, customers: int, customer_first_id: int, amount_max: int, credit_account_id: int | None,
    statement: str = "five",
) -> str:  # fmt: skip
    """The pgbench script of one transfer: pgbench draws the accounts and the amount, then the transfer
    (`statement`: "five" round trips or "one" statement, see STATEMENTS).

    The debit is a customer drawn uniformly; the credit is `credit_account_id` (a hot merchant) or, if
    None, another customer drawn uniformly; the amount is 1..amount_max minor units.
    """
    if statement not in STATEMENTS:
        raise ValueError(f"statement: {statement!r} is not one of {', '.join(STATEMENTS)}")
    if customers < 2:
        raise ValueError(f"customers: {customers} is fewer than the 2 a transfer needs")
    if amount_max < 1:
        raise ValueError(f"amount_max: {amount_max} is below 1")
    first, last = customer_first_id, customer_first_id + customers - 1
    lines = [
        "-- One transfer of the plain PostgreSQL ledger (bench/_pgbench.py); the CHECK on accounts guards the debit."
        if statement == "five"
        else "-- One transfer of the plain PostgreSQL ledger as one statement (bench/plain_pg.py's ONE_STATEMENT).",
        f"\\set debit random({first}, {last})",
    ]
    if credit_account_id is None:
        lines.append(f"\\set credit {first} + (:debit - {first} + random(1, {customers - 1})) % {customers}")
    else:
        lines.append(f"\\set credit {credit_account_id}")
    lines.append(f"\\set amount random(1, {amount_max})")
    return "\n".join(lines) + "\n" + STATEMENTS[statement]


def command(
    pgbench: str,
    dsn: str,
    script_path: Path,
    log_prefix: Path,
    *,
    clients: int,
    seconds: int,
    seed: int,
    retries: bool = True,
) -> list[str]:
    """The pgbench command line of one run: no vacuum, prepared statements, every transaction logged."""
    if clients < 1:
        raise ValueError(f"clients: {clients} is below 1")
    if seconds < 1:
        raise ValueError(f"seconds: {seconds} is below pgbench's shortest -T, 1")
    line = [
        pgbench, "-n", "-M", "prepared", "-f", str(script_path), "-c", str(clients),
        "-j", str(min(THREADS_MAX, clients)), "-T", str(seconds), "--random-seed", str(seed),
        "--log", "--log-prefix", str(log_prefix),
    ]  # fmt: skip
    if retries:
        line += ["--max-tries", str(TRIES_MAX), "--failures-detailed"]
    return [*line, dsn]


def whole_seconds(seconds: float) -> int:
    """pgbench's -T takes whole seconds: `seconds` rounded up, at least 1."""
    return max(1, math.ceil(seconds))


def parse_output(text: str) -> dict[str, Any]:
    """What pgbench prints at the end of a run: committed and failed transactions, retries, tps, latency."""

    def number(pattern: re.Pattern[str], what: str) -> str:
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"pgbench output: no line with {what!r}")
        return match.group(1)

    def optional(pattern: re.Pattern[str]) -> int:
        match = pattern.search(text)
        return int(match.group(1)) if match else 0

    transactions = int(number(_PROCESSED, "number of transactions actually processed"))
    version_match = _OUTPUT_VERSION.search(text)
    mode = _QUERY_MODE.search(text)
    return {
        "version": version_match.group(1) if version_match else None,
        "query_mode": mode.group(1) if mode else None,
        "clients": int(number(_CLIENTS, "number of clients")),
        "threads": int(number(_THREADS, "number of threads")),
        "transactions": transactions,
        "failed": optional(_FAILED),
        "retried": optional(_RETRIED),
        "retries": optional(_RETRIES),
        "latency_average_ms": float(number(_LATENCY_AVERAGE, "latency average")),
        "tps": float(number(_TPS, "tps = ... (without initial connection time)")),
    }


@dataclass(frozen=True, kw_only=True)
class Log:
    """pgbench's per-transaction log: when each committed transaction ended and its latency, and failures."""

    ends: list[float]
    """Seconds since the epoch."""
    latencies: list[float]
    """Seconds, in the same order as `ends`."""
    failed: int

    def window(self, warmup_seconds: float, seconds: float) -> list[float]:
        """Latencies of the transactions that ended in the measured window: from `warmup_seconds` after the
        first transaction began, for `seconds` (the rule bench._harness.measure applies to the other systems)."""
        if not self.ends:
            return []
        began = min(end - latency for end, latency in zip(self.ends, self.latencies, strict=True))
        opened, closed = began + warmup_seconds, began + warmup_seconds + seconds
        return [latency for end, latency in zip(self.ends, self.latencies, strict=True) if opened <= end < closed]


def parse_log(lines: Iterable[str]) -> Log:
    """Lines of a `--log` file: `client transaction latency_us script epoch_s epoch_us [lag] [retries]`.

    A failed transaction has a word ("failed", "serialization", "deadlock") where its latency would be.
    """
    ends: list[float] = []
    latencies: list[float] = []
    failed = 0
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 6 or not (fields[4].isdigit() and fields[5].isdigit()):
            raise ValueError(f"pgbench log line {number}: not `client transaction latency script s us`: {line!r}")
        if fields[2].isdigit():
            latencies.append(int(fields[2]) / 1e6)
            ends.append(int(fields[4]) + int(fields[5]) / 1e6)
        else:
            failed += 1
    return Log(ends=ends, latencies=latencies, failed=failed)


def read_logs(directory: Path, prefix: str = LOG_PREFIX) -> Log:
    """All of a run's log files: `prefix.PID` for its first thread and `prefix.PID.N` for the others."""
    paths = sorted(directory.glob(f"{prefix}.*"))
    if not paths:
        raise ValueError(f"pgbench wrote no log file {prefix}.* in {directory}")
    ends: list[float] = []
    latencies: list[float] = []
    failed = 0
    for path in paths:
        with path.open() as file:
            log = parse_log(file)
        ends += log.ends
        latencies += log.latencies
        failed += log.failed
    return Log(ends=ends, latencies=latencies, failed=failed)


@dataclass(frozen=True, kw_only=True)
class Run:
    """One pgbench run: its summary output, its log of every transaction, its CPU time."""

    output: dict[str, Any]
    log: Log
    cpu_seconds: float
    seconds: int
    command: list[str]


def run(
    pgbench: str,
    dsn: str,
    script_text: str,
    *,
    clients: int,
    seconds: int,
    seed: int,
    retries: bool = True,
) -> Run:
    """Run pgbench with `script_text` and read its output and logs; fail if it did not finish cleanly.

    Its CPU time is the user + system time of the child processes that ended meanwhile: pgbench alone
    while nothing else here starts or reaps a child.
    """
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as name:
        directory = Path(name)
        script_path = directory / "transfer.sql"
        script_path.write_text(script_text)
        line = command(pgbench, dsn, script_path, directory / LOG_PREFIX, clients=clients, seconds=seconds,
                       seed=seed, retries=retries)  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(
            line, capture_output=True, text=True, timeout=seconds + TIMEOUT_SECONDS_EXTRA, check=False, cwd=directory
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if completed.returncode != 0:
            raise RuntimeError(
                f"pgbench exited with {completed.returncode}:\n{completed.stderr.strip()[-2000:]}\n"
                f"{completed.stdout.strip()[-2000:]}"
            )
        output = parse_output(completed.stdout)
        log = read_logs(directory)
    if len(log.ends) != output["transactions"] or log.failed != output["failed"]:
        raise RuntimeError(
            f"pgbench: its log holds {len(log.latencies)} committed and {log.failed} failed transactions, "
            f"its output says {output['transactions']} and {output['failed']}"
        )
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shown = [part if part != dsn else "DSN" for part in line]
    return Run(output=output, log=log, cpu_seconds=cpu_seconds, seconds=seconds, command=shown)


@dataclass(frozen=True, kw_only=True)
class Books:
    """What conservation is checked on: the sum of all balances, guarded accounts below zero, transfers."""

    balance_sum: int
    overdrawn: int
    transfers: int


BOOKS = (
    "SELECT sum(balance), count(*) FILTER (WHERE guarded AND balance < 0), (SELECT count(*) FROM transfers) "
    "FROM accounts"
)


async def books(connection: psycopg.AsyncConnection[Any]) -> Books:
    row = await (await connection.execute(BOOKS)).fetchone()
    assert row is not None
    balance_sum = row[0] if row[0] is not None else Decimal(0)
    return Books(balance_sum=int(balance_sum), overdrawn=int(row[1]), transfers=int(row[2]))


def check_conserved(before: Books, after: Books, committed: int, *, driver: str = "pgbench") -> None:
    """Money moved, none made or lost: the same sum of balances, no guarded account below zero, and one
    new transfer row per committed transfer. Raises RuntimeError saying what broke."""
    problems = []
    if after.balance_sum != before.balance_sum:
        problems.append(f"the balances sum to {after.balance_sum}, not {before.balance_sum} as before")
    if after.overdrawn:
        problems.append(f"{after.overdrawn} guarded accounts are below zero")
    if after.transfers - before.transfers != committed:
        problems.append(f"{after.transfers - before.transfers} transfers were written, {driver} committed {committed}")
    if problems:
        raise RuntimeError(f"{driver} run: " + "; ".join(problems))
