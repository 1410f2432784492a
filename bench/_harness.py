"""What the service benchmarks share: a fresh store, `ledger serve` in its own process, and timed callers.

`measure` runs n caller loops at once, discards a warm-up, then records every call that finishes in
the measured window: its latency and how many transfers it carried, plus the CPU each side spent.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
START_LINE = re.compile(r"ledger serving gRPC on [\d.]+:(\d+)")
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 4 << 20), ("grpc.max_receive_message_length", 4 << 20)]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def is_postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


@contextmanager
def fresh_store(store: str, prefix: str = "ledger_bench_grpc") -> Iterator[str]:
    """A store URL with nothing in it: a new PostgreSQL schema (dropped afterwards), or a SQLite file."""
    if is_postgres(store):
        from tests.stores import temporary_schema

        with temporary_schema(store, prefix) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix=f"{prefix.replace('_', '-')}-") as directory:
            yield f"sqlite:///{directory}/ledger.sqlite3"


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
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    checkout (e.g. an older commit, for a before/after comparison in one run) instead of this one."""
    with tempfile.NamedTemporaryFile(prefix="ledger-bench-serve-", suffix=".log") as log:
        settings = {
            **os.environ,
            "LEDGER_STORE": store_url,
            "LEDGER_ADDRESS": "127.0.0.1:0",
            "LEDGER_ACCOUNTS_MAX": str(accounts_max),
            "LEDGER_TRANSFERS_MAX": str(transfers_max),
            "LEDGER_PENDING_TRANSFERS_MAX": "1000",
            "LEDGER_CONCURRENT_RPCS_MAX": "100000",
            "LEDGER_METRICS_ADDRESS": "127.0.0.1:0",  # metrics on, as in production, on a free port
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
    report: Callable[[str], None] = progress,
    p999: bool = False,
) -> dict[str, Any]:
    """Run `callers` loops of `caller`; transfers/s and latencies of the measured window, CPU per transfer.

    The server's CPU is read from its process when `server` is given (client and server share the cores).
    """
    window = Window()
    tasks = [asyncio.create_task(caller(index, window)) for index in range(callers)]

    def server_cpu() -> float:
        return server.cpu_seconds() if server is not None else 0.0

    try:
        await asyncio.sleep(warmup_seconds)
        window.measuring = True
        started = time.perf_counter()
        cpu = (time.process_time(), server_cpu())
        await asyncio.sleep(seconds)
        window.measuring = False
        elapsed = time.perf_counter() - started
        client_cpu, server_cpu_seconds = time.process_time() - cpu[0], server_cpu() - cpu[1]
        window.stopped = True
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    result = summary(window.latencies, window.transfers, elapsed, p999=p999)
    # Where the time goes: CPU per transfer on each side (2 cores shared by both).
    transfers = max(1, window.transfers)
    result["client_cpu_us_per_transfer"] = round(client_cpu / transfers * 1e6, 2)
    if server is not None:
        result["server_cpu_us_per_transfer"] = round(server_cpu_seconds / transfers * 1e6, 2)
        result["server_cpu_share"] = round(server_cpu_seconds / elapsed, 2)
    line = (
        f"  {name}: {result['transfers_per_s']:,} transfers/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms ({result['calls']:,} calls); CPU per transfer: "
    )
    if server is not None:
        line += f"server {result['server_cpu_us_per_transfer']} us, "
    report(line + f"client {result['client_cpu_us_per_transfer']} us")
    return result
