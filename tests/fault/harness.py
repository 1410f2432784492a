"""A real ledger process under load, and the bookkeeping that proves nothing was lost.

Clients send batches over the local socket and retry an unanswered batch
with the same ids until it gets a definite answer; a reader looks up the
transfers in flight and remembers every one it saw. After any fault the
checks are: every acknowledged transfer is present, every transfer a reader
saw is present (it was durable when it was shown), and, at the end, the
state equals the one recomputed from the journal alone, with the sum of all
balances zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.core import LocalCallError, LocalClient, Op, Status
from ledger.engine import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Transfer,
    TransferFlags,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_account_results,
    unpack_accounts,
    unpack_transfer_results,
    unpack_transfers,
)

LEDGER = 978
FUNDING = 1
REVENUE = 2
WALLETS = list(range(100, 132))
START_TIMEOUT_SECONDS = 60.0

TR = CreateTransferResult


class ServerProcess:
    """`python -m ledger.core` on a Unix socket, started, killed and restarted by the test."""

    def __init__(self, store_url: str, directory: Path, **settings: Any) -> None:
        self.store_url = store_url
        self.socket = str(directory / "ledger.sock")
        self.log_path = directory / "server.log"
        self.env = dict(os.environ)
        self.env.update(
            {
                "LEDGER_ACCOUNTS_MAX": "1000",
                "LEDGER_TRANSFERS_MAX": "2000000",
                # A sixth of the load is holds that expire after a second: room for several seconds of them
                # (a store outage delays their expiry), so that no hold meets a full table.
                "LEDGER_PENDING_TRANSFERS_MAX": "100000",
                "LEDGER_CHECKPOINT_EVERY_TRANSFERS": "3000",
                "LEDGER_DURABLE_WAIT_SECONDS": "2",
                "LEDGER_EXPIRE_INTERVAL_SECONDS": "0.2",
                # Flush the history index often, so kills land before, during and after flushes.
                "LEDGER_HISTORY_FLUSH_TRANSFERS": "2000",
                "LEDGER_HISTORY_FLUSH_SECONDS": "0.2",
            }
        )
        self.env.update({f"LEDGER_{k.upper()}": str(v) for k, v in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ledger.core", "--socket", self.socket, "--store", self.store_url],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ledger process exited with {self.process.returncode}:\n{self.log()}")
            if os.path.exists(self.socket) and self._serving():
                return
            time.sleep(0.02)
        raise RuntimeError(f"ledger process did not serve within {START_TIMEOUT_SECONDS} s:\n{self.log()}")

    def _serving(self) -> bool:
        return f"serving on unix:{self.socket}" in self.log().split("ledger process start")[-1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._mark()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self._mark()

    def _mark(self) -> None:
        with open(self.log_path, "a") as log:
            log.write("--- ledger process start ---\n")


@dataclass
class Books:
    """What the clients know: acknowledged, definitely failed, and observed transfer ids."""

    acked: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    observed: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)
    unanswered: int = 0
    unavailable: int = 0


class Load:
    """Clients with their own id ranges; each keeps its unanswered batch to retry it unchanged."""

    def __init__(self, clients: int = 6, seed: int = 1) -> None:
        self.books = Books()
        self.rng = random.Random(seed)
        self.clients = clients
        self.next_batch = [0] * clients
        self.retry: list[bytes | None] = [None] * clients

    def batch(self, client: int) -> bytes:
        number = self.next_batch[client]
        self.next_batch[client] += 1
        base = (client + 1) << 40 | number << 8
        rng = self.rng
        transfers = []
        for i in range(rng.randint(1, 40)):
            kind = rng.random()
            transfer_id = base | i
            if kind < 0.35:
                transfers.append(move(transfer_id, FUNDING, rng.choice(WALLETS), rng.randint(1, 5_000)))
            elif kind < 0.85:
                debit = rng.choice(WALLETS)
                flags = TransferFlags.BALANCING_DEBIT if rng.random() < 0.3 else 0
                transfers.append(move(transfer_id, debit, REVENUE, rng.randint(1, 3_000), flags=flags))
            else:
                # A hold that expires in a second unless the server is killed first: expiry crosses restarts.
                transfers.append(move(transfer_id, rng.choice(WALLETS), REVENUE, 10, flags=TransferFlags.PENDING,
                                      timeout=1))  # fmt: skip
        return pack_transfers(transfers)

    async def client(self, index: int, link: LocalClient, stop: asyncio.Event) -> None:
        books = self.books
        while not stop.is_set():
            batch = self.retry[index] or self.batch(index)
            ids = [t.id for t in unpack_transfers(batch)]
            self.retry[index] = batch
            books.in_flight.update(ids)
            try:
                results = unpack_transfer_results(await link.call(Op.CREATE_TRANSFERS, batch))
            except LocalCallError as exc:
                assert exc.status in (Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED), exc
                books.unavailable += 1
                await asyncio.sleep(0.05)
                continue
            except ConnectionError:
                books.unanswered += 1
                return
            finally:
                books.in_flight.difference_update(ids)
            self.retry[index] = None
            for transfer_id, result in zip(ids, results, strict=True):
                if result.result in (TR.OK, TR.EXISTS):
                    books.acked.add(transfer_id)
                    books.failed.discard(transfer_id)
                else:
                    assert result.result in (TR.EXCEEDS_CREDITS,), TR(result.result).name
                    books.failed.add(transfer_id)

    async def reader(self, link: LocalClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            ids = list(self.books.in_flight)[:8190]
            if not ids:
                await asyncio.sleep(0.001)
                continue
            try:
                found = unpack_transfers(await link.call(Op.LOOKUP_TRANSFERS, pack_ids(ids)))
            except LocalCallError:
                await asyncio.sleep(0.01)
                continue
            except ConnectionError:
                return
            self.books.observed.update(t.id for t in found)

    async def run(self, socket: str, seconds: float, *, until: asyncio.Event | None = None) -> None:
        """Load the server for `seconds` (or until `until` is set, or its connection breaks)."""
        links = [await LocalClient.connect(socket) for _ in range(self.clients + 1)]
        stop = until or asyncio.Event()
        tasks = [asyncio.create_task(self.client(i, links[i], stop)) for i in range(self.clients)]
        tasks.append(asyncio.create_task(self.reader(links[-1], stop)))
        try:
            if until is None:
                await asyncio.wait(tasks, timeout=seconds)
                stop.set()
            await asyncio.gather(*tasks)
        finally:
            for link in links:
                with contextlib.suppress(Exception):
                    await link.close()


def move(transfer_id: int, debit: int, credit: int, amount: int, *, flags: int = 0, timeout: int = 0) -> Transfer:
    return Transfer(
        id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger=LEDGER, code=1,
        flags=flags, timeout=timeout,
    )  # fmt: skip


async def open_books(socket: str) -> None:
    accounts = [
        Account(id=FUNDING, ledger=LEDGER, code=1),
        Account(id=REVENUE, ledger=LEDGER, code=2),
        *(Account(id=w, ledger=LEDGER, code=10, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) for w in WALLETS),
    ]
    link = await LocalClient.connect(socket)
    try:
        results = unpack_account_results(await link.call(Op.CREATE_ACCOUNTS, pack_accounts(accounts)))
        assert {r.result for r in results} <= {CreateAccountResult.OK, CreateAccountResult.EXISTS}
    finally:
        await link.close()


async def present(socket: str, ids: set[int]) -> set[int]:
    """Which of `ids` the server holds."""
    link = await LocalClient.connect(socket)
    found: set[int] = set()
    try:
        ordered = sorted(ids)
        for start in range(0, len(ordered), 8190):
            chunk = ordered[start : start + 8190]
            found.update(t.id for t in unpack_transfers(await link.call(Op.LOOKUP_TRANSFERS, pack_ids(chunk))))
    finally:
        await link.close()
    return found


async def balances(socket: str) -> list[Account]:
    link = await LocalClient.connect(socket)
    try:
        ids = [FUNDING, REVENUE, *WALLETS]
        return unpack_accounts(await link.call(Op.LOOKUP_ACCOUNTS, pack_ids(ids)))
    finally:
        await link.close()


async def check_after_fault(server: ServerProcess, books: Books) -> None:
    missing = books.acked - await present(server.socket, books.acked)
    assert not missing, f"{len(missing)} acknowledged transfers lost, e.g. {sorted(missing)[:5]}"
    unseen = books.observed - await present(server.socket, books.observed)
    assert not unseen, f"{len(unseen)} transfers were shown before they were durable, e.g. {sorted(unseen)[:5]}"
    accounts = await balances(server.socket)
    assert sum(a.credits_posted - a.debits_posted for a in accounts) == 0
    assert sum(a.credits_pending - a.debits_pending for a in accounts) == 0
    for a in accounts:
        if a.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
            assert a.debits_posted + a.debits_pending <= a.credits_posted, a
