"""What the service benchmarks share: a fresh store, `ledger serve` in its own process, and timed callers.

`measure` runs n caller loops at once, discards a warm-up, then records every call that finishes in
the measured window: its latency and how many transfers it carried, plus the CPU each side spent.
The window lasts a minimum time and, if asked, until a minimum number of calls finished in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
START_LINE = re.compile(r"ledger serving gRPC on [\d.]+:(\d+)")
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 4 << 20), ("grpc.max_receive_message_length", 4 << 20)]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def is_postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def with_search_path(dsn: str, schema: str) -> str:
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options={quote(f'-c search_path={schema}')}"


@contextmanager
def temporary_schema(dsn: str, prefix: str) -> Iterator[str]:
    """A DSN whose tables live in a new schema, dropped afterwards."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def fresh_store(store: str, prefix: str = "ledger_bench_grpc") -> Iterator[str]:
    """A store URL with nothing in it: a new PostgreSQL schema (dropped afterwards), or a SQLite file."""
    if is_postgres(store):
        with temporary_schema(store, prefix) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix=f"{prefix.replace('_', '-')}-") as directory:
            yield f"sqlite:///{directory}/ledger.sqlite3"


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None if it is gone or unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter(Protocol):
    """Processes whose CPU a measurement reports (a server, PostgreSQL's backends of some connections)."""

    def cpu_sample(self) -> dict[int, float]:
        """CPU seconds so far of each process measured, by pid."""
        ...


@dataclass(frozen=True)
class Processes:
    """A fixed set of processes, e.g. the PostgreSQL backends of a pool of connections (pg_backend_pid())."""

    pids: tuple[int, ...]

    def cpu_sample(self) -> dict[int, float]:
        return {pid: seconds for pid in self.pids if (seconds := process_cpu_seconds(pid)) is not None}


def cpu_between(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds spent between two samples: by the processes of the second, those new to it from their start."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def socket_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets a process holds (Linux /proc): how PostgreSQL sees its connections."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        ports = set()
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    except OSError:
        return set()
    return ports


class Backends:
    """The PostgreSQL backends serving one client process's connections (found by their ports), or every
    connection with one application_name; found anew at each sample, as connections come and go."""

    def __init__(self, dsn: str, *, client_pid: int | None = None, application_name: str | None = None) -> None:
        if (client_pid is None) == (application_name is None):
            raise ValueError("Backends: give exactly one of client_pid and application_name")
        self.dsn = dsn
        self.client_pid = client_pid
        self.application_name = application_name
        self._connection: Any = None

    def pids(self) -> tuple[int, ...]:
        """The backends' pids now. The monitoring connection is made anew if it was lost: on a shared server
        someone else may end every connection (pg_terminate_backend), which must not end a measurement."""
        import psycopg

        try:
            return self._query()
        except psycopg.OperationalError:
            self.close()
            return self._query()

    def _query(self) -> tuple[int, ...]:
        import psycopg

        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.dsn, autocommit=True, application_name="ledger_bench_monitor")
        if self.client_pid is not None:
            rows = self._connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s) AND pid <> pg_backend_pid()",
                (sorted(socket_ports(self.client_pid)),),
            ).fetchall()
        else:
            rows = self._connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.application_name,)
            ).fetchall()
        return tuple(row[0] for row in rows)

    def cpu_sample(self) -> dict[int, float]:
        return Processes(self.pids()).cpu_sample()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@dataclass(frozen=True, kw_only=True)
class ServerProcess:
    """A running `ledger serve`: where it listens and which process it is."""

    port: int
    pid: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process (Linux), 0 where /proc is not there."""
        return process_cpu_seconds(self.pid) or 0.0

    def cpu_sample(self) -> dict[int, float]:
        return Processes((self.pid,)).cpu_sample()


@contextmanager
def server_process(
    store_url: str,
    transfers_max: int,
    *,
    accounts_max: int = 10_000,
    report: Callable[[str], None] = progress,
    environment: dict[str, str] | None = None,
    source: Path | None = None,
) -> Iterator[ServerProcess]:
    """`ledger serve` in its own process on a free port, metrics on as in production; stopped with SIGTERM.

    `environment` adds or overrides LEDGER_* settings; `source` runs the `ledger` package of another
    checkout (e.g. an older commit, for a before/after comparison in one run) instead of this one. Its log
    is removed afterwards if it is still there: on a shared machine someone may have cleaned /tmp
    meanwhile, which must not turn a finished run into a failure.
    """
    with (
        tempfile.NamedTemporaryFile(prefix="ledger-bench-serve-", suffix=".log", delete=False) as log,
        contextlib.ExitStack() as cleanup,
    ):
        cleanup.callback(Path(log.name).unlink, missing_ok=True)
        settings = {
            **os.environ,
            "LEDGER_STORE": store_url,
            "LEDGER_ADDRESS": "127.0.0.1:0",
            "LEDGER_ACCOUNTS_MAX": str(accounts_max),
            "LEDGER_TRANSFERS_MAX": str(transfers_max),
            "LEDGER_PENDING_TRANSFERS_MAX": "1000",
            "LEDGER_CONCURRENT_RPCS_MAX": "100000",
            "LEDGER_METRICS_ADDRESS": "127.0.0.1:0",  # metrics on, as in production, on a free port
            "LEDGER_HTTP_ADDRESS": "",  # the core's figures: the gateway has its own benchmark (bench.gateway)
            **(environment or {}),
        }
        if source is not None:
            settings["PYTHONPATH"] = str(source)
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve"], stdout=log, stderr=log, env=settings, cwd=source
        )
        try:
            deadline = time.monotonic() + 120
            while (match := START_LINE.search(Path(log.name).read_text())) is None:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start:\n{Path(log.name).read_text()}")
                time.sleep(0.05)
            report(Path(log.name).read_text().strip().splitlines()[-1])
            yield ServerProcess(port=int(match.group(1)), pid=process.pid)
        finally:
            process.terminate()
            process.wait(60)


def quantile_ms(ordered: list[float], fraction: float) -> float | None:
    """The latency at `fraction` of the sorted latencies (seconds), in milliseconds; None if there are none."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 2)


def summary(latencies: list[float], transfers: int, seconds: float, *, p999: bool = False) -> dict[str, Any]:
    ordered = sorted(latencies)
    result: dict[str, Any] = {
        "transfers_per_s": round(transfers / seconds),
        "p50_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
        "p99_ms": quantile_ms(ordered, 0.99),
    }
    if p999:
        result["p999_ms"] = quantile_ms(ordered, 0.999)
    result["calls"] = len(ordered)
    return result


class Window:
    """What finished between the end of the warm-up and the stop: latencies and transfers."""

    def __init__(self) -> None:
        self.measuring = False
        self.stopped = False
        self.latencies: list[float] = []
        self.transfers = 0

    def record(self, latency: float, transfers: int) -> None:
        if self.measuring:
            self.latencies.append(latency)
            self.transfers += transfers


Caller = Callable[[int, Window], Coroutine[Any, Any, None]]
"""One caller's loop (caller index, window): calls until the window is stopped, recording each."""


async def measure(
    name: str,
    callers: int,
    caller: Caller,
    seconds: float,
    warmup_seconds: float,
    *,
    server: ServerProcess | None = None,
    meters: Mapping[str, CpuMeter] | None = None,
    calls_min: int = 0,
    seconds_max: float | None = None,
    report: Callable[[str], None] = progress,
    p999: bool = False,
) -> dict[str, Any]:
    """Run `callers` loops of `caller`; transfers/s and latencies of the measured window, CPU per transfer.

    The window lasts `seconds`, and longer until `calls_min` calls finished in it, but no longer than
    `seconds_max` (then `calls_short` says so). The CPU of each meter (`server`: the server's process)
    is reported per transfer and as a share of one core: client and server share the machine's cores.
    """
    measured = dict(meters or {})
    if server is not None:
        measured.setdefault("server", server)
    window = Window()
    tasks = [asyncio.create_task(caller(index, window)) for index in range(callers)]
    try:
        await asyncio.sleep(warmup_seconds)
        window.measuring = True
        started = time.perf_counter()
        client_cpu = time.process_time()
        before = {key: meter.cpu_sample() for key, meter in measured.items()}
        await asyncio.sleep(seconds)
        deadline = started + max(seconds, seconds_max or seconds)
        while len(window.latencies) < calls_min and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        window.measuring = False
        elapsed = time.perf_counter() - started
        spent = {key: cpu_between(before[key], meter.cpu_sample()) for key, meter in measured.items()}
        client_cpu = time.process_time() - client_cpu
        window.stopped = True
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    result = summary(window.latencies, window.transfers, elapsed, p999=p999)
    result["seconds"] = round(elapsed, 2)
    if len(window.latencies) < calls_min:
        result["calls_short"] = f"{len(window.latencies)} calls in {elapsed:.1f} s, fewer than the {calls_min} wanted"
    # Where the time goes: CPU per transfer on each side (2 cores shared by both).
    transfers = max(1, window.transfers)
    result["client_cpu_us_per_transfer"] = round(client_cpu / transfers * 1e6, 2)
    for key, cpu_seconds in spent.items():
        result[f"{key}_cpu_us_per_transfer"] = round(cpu_seconds / transfers * 1e6, 2)
        result[f"{key}_cpu_share"] = round(cpu_seconds / elapsed, 2)
    line = (
        f"  {name}: {result['transfers_per_s']:,} transfers/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms ({result['calls']:,} calls in {elapsed:.1f} s); CPU per transfer: "
    )
    line += "".join(f"{key} {result[f'{key}_cpu_us_per_transfer']} us, " for key in spent)
    report(line + f"client {result['client_cpu_us_per_transfer']} us")
    return result
