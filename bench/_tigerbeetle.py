"""TigerBeetle in the comparison: a server of its own, its Python client typed and packed, and its load generator.

The `tigerbeetle` package (its Python client, `pip install tigerbeetle`) is imported only when
TigerBeetle is compared, so the comparison runs without it. It is driven two ways, so that each of
our two ways has its like:

- typed: `tigerbeetle.ClientAsync` with `tigerbeetle.Transfer` objects, as its documentation shows.
  The client converts each object to its C layout field by field (several microseconds a transfer).
- packed: numpy records in its C layout (`tigerbeetle.bindings.CTransfer`, 128 bytes) handed to its
  C client through the package's own low-level bindings (`tb_client_init`, `tb_client_submit`), with
  the results copied back as one buffer: no Python object per transfer, as in our packed call.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import re
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TIGERBEETLE_BATCH_MAX = 8189
"""TigerBeetle's largest batch of transfers: what fits in its 1 MiB message after the header. A server
started with a smaller `--limit-request` (as `--development` does: 32 KiB) takes fewer: see probe_batch_limit."""

OPEN_TIMEOUT_SECONDS = 30.0
START_TIMEOUT_SECONDS = 120.0
LOAD_ACCEPTED = re.compile(r"load accepted\s*=\s*(\d+)\s*tx/s")
BATCH_LATENCY = re.compile(r"batch latency p(\d+)\s*=\s*(\d+)\s*ms")
RELEASE = re.compile(r"\brelease=(\S+)")
GIT_COMMIT = re.compile(r"\bgit_commit=([0-9a-f]{7,40})")
VERSION = re.compile(r"^TigerBeetle version (\d+\.\d+\.\d+)", re.MULTILINE)
"""Its release, without the build's commit (`0.17.8+1e2826e`)."""


def async_client(cluster_id: int, address: str) -> Any:
    import tigerbeetle

    return tigerbeetle.ClientAsync(cluster_id=cluster_id, replica_addresses=address)


def packed_client(cluster_id: int, address: str) -> PackedClient:
    return PackedClient(cluster_id, address)


def client_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tigerbeetle")
    except PackageNotFoundError:
        return None


def server_version(binary: str) -> str:
    """The release of a `tigerbeetle` binary, from `tigerbeetle version`."""
    completed = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30, check=False)
    found = VERSION.search(completed.stdout)
    if completed.returncode != 0 or found is None:
        raise RuntimeError(f"{binary} version: no 'TigerBeetle version X' in {completed.stdout + completed.stderr!r}")
    return found.group(1)


def version_mismatch(client: str | None, server: str) -> str | None:
    """Why the Python client cannot be compared against this server, or None if its release is the server's.

    A client of another release may be refused (too old) or behave as another release does; so the
    comparison measures a client of exactly the server's release.
    """
    if client is None:
        return f"TigerBeetle's Python client is not installed: pip install tigerbeetle=={server}"
    if client != server:
        return (
            f"TigerBeetle's Python client is {client} but the server is {server}: "
            f"pip install tigerbeetle=={server} (or build the server of release {client})"
        )
    return None


class PackedResultsError(RuntimeError):
    """The C client completed a request with a status other than OK (e.g. TOO_MUCH_DATA)."""

    def __init__(self, status: int, name: str) -> None:
        super().__init__(f"TigerBeetle's client answered {name}")
        self.status = status
        self.name = name


def _transfer_columns() -> dict[str, int]:
    """Where each field of `tigerbeetle.bindings.CTransfer` lies, in 8-byte words (its own layout, read from it)."""
    from tigerbeetle import bindings

    layout = bindings.CTransfer
    if ctypes.sizeof(layout) != 128:
        raise RuntimeError(f"tigerbeetle.bindings.CTransfer is {ctypes.sizeof(layout)} bytes, not 128")
    return {name: getattr(layout, name).offset // 8 for name in ("id", "debit_account_id", "credit_account_id",
                                                                 "amount", "ledger")}  # fmt: skip


def packed_transfers(
    ids: np.ndarray, debits: np.ndarray, credits: np.ndarray, amounts: np.ndarray, *, id_high: int, ledger: int,
    code: int,
) -> np.ndarray:  # fmt: skip
    """TigerBeetle's 128-byte transfer records (`CTransfer`) made column by column; every id's high 64 bits `id_high`.

    The ledger (u32), code (u16) and flags (u16) share one 8-byte word, as in its layout.
    """
    columns = _transfer_columns()
    records = np.zeros((len(ids), 16), dtype="<u8")
    for field, values in (("id", ids), ("debit_account_id", debits), ("credit_account_id", credits)):
        records[:, columns[field]] = values
        records[:, columns[field] + 1] = id_high
    records[:, columns["amount"]] = amounts
    records[:, columns["ledger"]] = ledger | code << 32
    return records


def refused(results: bytes, count: int) -> list[str]:
    """The names of the statuses other than CREATED among packed `CCreateTransferResult`s (16 bytes each), each
    once; fails if a result is missing."""
    from tigerbeetle import bindings

    size = ctypes.sizeof(bindings.CCreateTransferResult)
    offset = bindings.CCreateTransferResult.status.offset
    if len(results) != count * size:
        raise RuntimeError(f"TigerBeetle answered {len(results) // size} results for {count} transfers")
    statuses = np.frombuffer(results, dtype="<u4")[offset // 4 :: size // 4]
    names = []
    for status in np.unique(statuses[statuses != bindings.CreateTransferStatus.CREATED]).tolist():
        try:
            names.append(bindings.CreateTransferStatus(status).name)
        except ValueError:
            names.append(str(status))
    return names


class PackedClient:
    """TigerBeetle's C client driven with buffers in its own layout, through its Python package's bindings.

    submit() hands the buffer's address to `tb_client_submit`; the completion (on the C client's
    thread) copies the result bytes once and hands them to the event loop. Nothing is converted per
    event on either side.
    """

    _keys = itertools.count(1)

    def __init__(self, cluster_id: int, address: str) -> None:
        from tigerbeetle import bindings
        from tigerbeetle.lib import c_uint128

        self._bindings = bindings
        self._client = bindings.CClient()
        self._pending: dict[int, tuple[Any, Any, asyncio.Future[bytes], asyncio.AbstractEventLoop]] = {}
        self._lock = threading.Lock()
        self._completion = bindings.OnCompletion(self._on_completion)  # kept: the C client calls it
        cluster = c_uint128.from_param(cluster_id)
        status = bindings.tb_client_init(
            ctypes.byref(self._client), ctypes.cast(ctypes.byref(cluster), ctypes.POINTER(ctypes.c_uint8 * 16)),
            address.encode("ascii"), len(address), None, self._completion,
        )  # fmt: skip
        if status != bindings.InitStatus.SUCCESS:
            raise RuntimeError(f"TigerBeetle's client did not start: {bindings.InitStatus(status).name}")
        self._open = True

    def _on_completion(self, context: Any, packet: Any, timestamp: int, data: Any, size: int) -> None:
        """On the C client's thread: the bytes are valid only during this call, so they are copied here."""
        key = packet[0].user_data
        status = packet[0].status
        payload = ctypes.string_at(data, size) if size else b""
        with self._lock:
            _, _, future, loop = self._pending.pop(key)
        loop.call_soon_threadsafe(self._settle, future, status, payload)

    def _settle(self, future: asyncio.Future[bytes], status: int, payload: bytes) -> None:
        if future.done():
            return
        if status == self._bindings.PacketStatus.OK:
            future.set_result(payload)
        else:
            future.set_exception(PackedResultsError(status, self._bindings.PacketStatus(status).name))

    async def submit(self, operation: int, events: np.ndarray) -> bytes:
        """One request of `events` (a C-contiguous array in the operation's event layout); the results' bytes."""
        if not self._open:
            raise RuntimeError("the TigerBeetle client is closed")
        buffer = np.ascontiguousarray(events)
        packet = self._bindings.CPacket()
        key = next(self._keys)
        packet.user_data = key
        packet.data = buffer.ctypes.data
        packet.data_size = buffer.nbytes
        packet.user_tag = 0
        packet.operation = operation
        packet.status = self._bindings.PacketStatus.OK
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        with self._lock:
            self._pending[key] = (packet, buffer, future, loop)  # both kept alive until the completion
        state = self._bindings.tb_client_submit(ctypes.byref(self._client), ctypes.byref(packet))
        if state != self._bindings.ClientStatus.OK:
            with self._lock:
                self._pending.pop(key, None)
            raise RuntimeError("the TigerBeetle client is closed")
        return await future

    async def create_transfers(self, records: np.ndarray) -> bytes:
        return await self.submit(self._bindings.Operation.CREATE_TRANSFERS, records)

    async def close(self) -> None:
        """Deinit completes whatever is pending (CLIENT_SHUTDOWN); wait for those completions to land."""
        if not self._open:
            return
        self._open = False
        with self._lock:
            waiting = [future for _, _, future, _ in self._pending.values()]
        self._bindings.tb_client_deinit(ctypes.byref(self._client))
        await asyncio.gather(*waiting, return_exceptions=True)


async def probe_batch_limit(client: Any, most: int = TIGERBEETLE_BATCH_MAX) -> int:
    """The largest batch of transfers the server takes, at most `most`, found by sending invalid ones.

    Every probe transfer has id 0, which TigerBeetle refuses one by one (ID_MUST_NOT_BE_ZERO), so
    nothing is created; a batch over the server's request limit is refused whole (TOO_MUCH_DATA).
    """

    async def accepted(count: int) -> bool:
        try:
            results = await asyncio.wait_for(
                client.create_transfers(np.zeros((count, 16), dtype="<u8")), OPEN_TIMEOUT_SECONDS
            )
        except PackedResultsError as exc:
            if exc.name == "TOO_MUCH_DATA":
                return False
            raise
        except TimeoutError:
            raise RuntimeError(f"no TigerBeetle answered within {OPEN_TIMEOUT_SECONDS:.0f} s") from None
        if refused(results, count) != ["ID_MUST_NOT_BE_ZERO"]:
            raise RuntimeError(f"TigerBeetle answered a probe of transfers with id 0 with {refused(results, count)}")
        return True

    if await accepted(most):
        return most
    low, high = 0, most  # low is taken (or 0), high is refused
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if await accepted(middle) else (low, middle)
    if low == 0:
        raise RuntimeError("TigerBeetle refuses even a batch of one transfer")
    return low


class TigerBeetleBooks:
    """One ledger's accounts and transfers in a TigerBeetle cluster, through its async Python client.

    The cluster may hold earlier runs (one the user started), so every id here carries random high 64 bits.
    """

    def __init__(
        self, address: str, *, cluster_id: int = 0, client_factory: Callable[[int, str], Any] = async_client,
        batch_max: int = TIGERBEETLE_BATCH_MAX,
    ) -> None:  # fmt: skip
        import tigerbeetle

        self.tb = tigerbeetle
        self.address = address
        self.client = client_factory(cluster_id, address)
        self.id_high = secrets.randbits(63) + 1
        self.id_base = self.id_high << 64
        self.batch_max = batch_max

    async def close(self) -> None:
        await self.client.close()

    async def create_accounts(self, accounts: Sequence[tuple[int, int, bool]], ledger: int) -> None:
        """Accounts as (id, code, guarded): a guarded account's debits may not exceed its credits."""
        tb = self.tb
        for first in range(0, len(accounts), self.batch_max):
            batch = [
                tb.Account(id=self.id_base + account, ledger=ledger, code=code,
                           flags=tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS if guarded else tb.AccountFlags.NONE)
                for account, code, guarded in accounts[first : first + self.batch_max]
            ]  # fmt: skip
            results = await self._first_call(self.client.create_accounts(batch))
            failed = {r.status for r in results if r.status != tb.CreateAccountStatus.CREATED}
            if failed:
                raise RuntimeError(f"TigerBeetle refused accounts: {sorted(s.name for s in failed)}")

    async def _first_call(self, call: Any) -> Any:
        """A call that fails clearly when no cluster answers (the client would retry for ever)."""
        try:
            return await asyncio.wait_for(call, OPEN_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RuntimeError(
                f"no TigerBeetle answered at {self.address} within {OPEN_TIMEOUT_SECONDS:.0f} s "
                "(start one: tigerbeetle format ... && tigerbeetle start --addresses=...)"
            ) from None

    async def create_transfers(
        self, ids: Sequence[int], debits: Sequence[int], credits: Sequence[int], amounts: Sequence[int],
        *, ledger: int, code: int,
    ) -> None:  # fmt: skip
        """Create transfers as `tigerbeetle.Transfer` objects (at most batch_max in one call); any refusal raises."""
        tb, base = self.tb, self.id_base
        batch = [
            tb.Transfer(id=base + i, debit_account_id=base + d, credit_account_id=base + c, amount=a, ledger=ledger,
                        code=code)
            for i, d, c, a in zip(ids, debits, credits, amounts, strict=True)
        ]  # fmt: skip
        results = await self.client.create_transfers(batch)
        created = tb.CreateTransferStatus.CREATED
        if len(results) != len(batch) or any(r.status != created for r in results):
            failed = sorted({r.status.name for r in results if r.status != created})
            raise RuntimeError(f"TigerBeetle refused transfers: {failed or 'results missing'}")


@dataclass(frozen=True, kw_only=True)
class TigerBeetleServer:
    """A single-replica cluster started here: where it listens, its process, its release."""

    address: str
    pid: int
    release: str
    log: Path

    def cpu_sample(self) -> dict[int, float]:
        from bench._harness import process_cpu_seconds

        seconds = process_cpu_seconds(self.pid)
        return {} if seconds is None else {self.pid: seconds}


@contextmanager
def server(binary: str, *, extra: Sequence[str] = (), directory: str | None = None) -> Iterator[TigerBeetleServer]:
    """`tigerbeetle format` a fresh data file and `tigerbeetle start` it as a production replica (no --development).

    `--addresses=0` has it listen on a free port, print it, and exit when its stdin closes, so it never
    outlives this process. The data file lives in a temporary directory under `directory` (default: the
    system's; it must allow Direct I/O, which production mode requires) and is removed afterwards.
    """
    release = server_version(binary)
    with tempfile.TemporaryDirectory(prefix="bench-tigerbeetle-", dir=directory) as where:
        data = Path(where) / "0_0.tigerbeetle"
        log = Path(where) / "server.log"
        formatted = subprocess.run(
            [binary, "format", "--cluster=0", "--replica=0", "--replica-count=1", str(data)],
            capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        if formatted.returncode != 0:
            raise RuntimeError(f"{binary} format exited {formatted.returncode}:\n{formatted.stderr[-2000:]}")
        with log.open("w") as errors:
            process = subprocess.Popen(
                [binary, "start", "--addresses=0", *extra, str(data)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
            )  # fmt: skip
        try:
            assert process.stdout is not None
            line = _read_line(process.stdout, START_TIMEOUT_SECONDS)
            if not line.strip().isdigit():
                process.kill()
                process.wait(30)
                raise RuntimeError(f"{binary} start did not print its port:\n{log.read_text()[-2000:]}")
            yield TigerBeetleServer(address=f"127.0.0.1:{line.strip()}", pid=process.pid, release=release, log=log)
        finally:
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()  # it exits when its stdin closes
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


def _read_line(stream: Any, timeout_seconds: float) -> str:
    """One line from a pipe, or '' if none came in time."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_seconds)
    return line[0] if line else ""


def run_benchmark(
    binary: str, *, account_count: int, transfer_count: int, clients: int, timeout_seconds: float
) -> dict[str, Any]:
    """Run `tigerbeetle benchmark` (it starts a cluster of its own on a temporary file) and read its figures."""
    command = [binary, "benchmark", f"--account-count={account_count}", f"--transfer-count={transfer_count}",
               f"--clients={clients}"]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_seconds, check=False)
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}:\n{output[-2000:]}")
    figures = parse_benchmark(output)
    return {"command": " ".join(command), "clients": clients, "transfer_count": transfer_count, **figures}


def parse_benchmark(output: str) -> dict[str, Any]:
    """The transfers/s and the batch latency percentiles that `tigerbeetle benchmark` prints."""
    accepted = LOAD_ACCEPTED.search(output)
    if accepted is None:
        raise ValueError(f"no 'load accepted = N tx/s' line in the benchmark's output:\n{output[-2000:]}")
    figures: dict[str, Any] = {"transfers_per_s": int(accepted.group(1))}
    for percentile, milliseconds in BATCH_LATENCY.findall(output):
        if percentile in ("50", "99", "100"):
            figures[f"batch_p{percentile}_ms"] = int(milliseconds)
    for name, pattern in (("release", RELEASE), ("git_commit", GIT_COMMIT)):
        found = pattern.search(output)
        if found:
            figures[name] = found.group(1)[:12] if name == "git_commit" else found.group(1)
    return figures
