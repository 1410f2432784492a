"""What the client's batching buys: single calls from many callers, with and without auto-batching, and bulk sends.

    python -m bench.client --json              # about a minute
    python -m bench.client --json --quick      # seconds: small counts

The ledger runs as `ledger serve` in its own process on a fresh SQLite
store (the machine's other core), so the numbers are the client's and the
wire's, not an in-process shortcut. One JSON object on stdout:

- `singles`: N asyncio tasks (or threads) each sending one transfer per call, in a loop. `batched` goes
  through AsyncClient/Client (calls coalesced into shared requests); `unbatched` sends each call as its
  own CreateTransfersPacked request on the same kind of channel. transfers/s, requests sent, mean batch.
- `bulk`: one call of many transfers, cut into requests of 8190 sent a few at a time; `packed` is
  create_transfers_packed, `typed` the CreateTransfers request with protobuf messages, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from ledger.client import Account, AsyncClient, Client, ClientConfig, Transfer
from ledger.client._records import pack_transfers
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

LEDGER = 978
FUNDING, WALLET = 1, 2


@contextlib.contextmanager
def ledger_process(transfers_max: int) -> Iterator[str]:
    """`ledger serve` on a free port with a fresh SQLite store; yields host:port."""
    with tempfile.TemporaryDirectory() as directory:
        environment = {**os.environ, "LEDGER_ADDRESS": "127.0.0.1:0", "LEDGER_ACCOUNTS_MAX": "1000",
                       "LEDGER_TRANSFERS_MAX": str(transfers_max), "LEDGER_PENDING_TRANSFERS_MAX": "1000",
                       "LEDGER_METRICS_ADDRESS": "", "LEDGER_HTTP_ADDRESS": "",
                       "LEDGER_STORE": f"sqlite:///{Path(directory) / 'ledger.sqlite3'}"}  # fmt: skip
        with subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve"], env=environment, stderr=subprocess.PIPE, text=True
        ) as process:
            assert process.stderr is not None
            drain = threading.Thread(target=process.stderr.read, daemon=True)  # keeps its pipe from filling
            try:
                for line in process.stderr:
                    found = re.search(r"serving gRPC on (\S+:\d+)", line)
                    if found:
                        break
                else:
                    raise RuntimeError(f"ledger serve ended without serving (exit {process.wait()})")
                drain.start()
                yield found.group(1)
            finally:
                process.terminate()
                process.wait(30)
                if drain.is_alive():
                    drain.join(30)


def transfer(transfer_id: int) -> Transfer:
    return Transfer(id=transfer_id, debit_account_id=FUNDING, credit_account_id=WALLET, amount=1, ledger=LEDGER, code=1)


class Counting(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests = 0

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.requests += 1
        return await continuation(details, request)


class SyncCounting(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests = 0
        self._lock = threading.Lock()

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        with self._lock:
            self.requests += 1
        return continuation(details, request)


def _result(transfers: int, requests: int, seconds: float) -> dict[str, Any]:
    return {
        "transfers": transfers,
        "requests": requests,
        "seconds": round(seconds, 3),
        "transfers_per_s": round(transfers / seconds),
        "mean_batch": round(transfers / max(requests, 1), 1),
    }


async def async_singles(server: str, callers: int, per_caller: int, first_id: int, *, batched: bool) -> dict[str, Any]:
    counting = Counting()
    async with AsyncClient(ClientConfig(server=server), interceptors=[counting]) as client:
        stub = ledger_pb2_grpc.LedgerStub(client._channel)  # type: ignore[no-untyped-call]

        async def caller(index: int) -> None:
            for n in range(per_caller):
                t = transfer(first_id + index * per_caller + n)
                if batched:
                    outcome = await client.create_transfer(t)
                    assert outcome.result == 1, outcome
                else:
                    await stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=t.pack()))

        started = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(callers)))
        return _result(callers * per_caller, counting.requests, time.perf_counter() - started)


def thread_singles(server: str, threads: int, per_thread: int, first_id: int, *, batched: bool) -> dict[str, Any]:
    counting = SyncCounting()
    with Client(ClientConfig(server=server), interceptors=[counting]) as client:
        channel = grpc.intercept_channel(client._channel, counting)
        stub = ledger_pb2_grpc.LedgerStub(channel)  # type: ignore[no-untyped-call]

        def work(index: int) -> None:
            for n in range(per_thread):
                t = transfer(first_id + index * per_thread + n)
                if batched:
                    assert client.create_transfer(t).result == 1
                else:
                    stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=t.pack()))

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return _result(threads * per_thread, counting.requests, time.perf_counter() - started)


def bulk(server: str, count: int, first_id: int, *, packed: bool) -> dict[str, Any]:
    transfers = [transfer(first_id + i) for i in range(count)]
    with Client(ClientConfig(server=server)) as client:
        started = time.perf_counter()
        if packed:
            results = client.create_transfers_packed(pack_transfers(transfers))
            assert len(results) == 24 * count
        else:
            stub = ledger_pb2_grpc.LedgerStub(client._channel)  # type: ignore[no-untyped-call]
            for start in range(0, count, BATCH_EVENTS_MAX):
                messages = [_message(t) for t in transfers[start : start + BATCH_EVENTS_MAX]]
                stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=messages))
        seconds = time.perf_counter() - started
    return _result(count, -(-count // BATCH_EVENTS_MAX), seconds)


def _message(t: Transfer) -> types_pb2.Transfer:
    return types_pb2.Transfer(id=types_pb2.Uint128(lo=t.id), debit_account_id=types_pb2.Uint128(lo=t.debit_account_id),
                              credit_account_id=types_pb2.Uint128(lo=t.credit_account_id), amount=t.amount,
                              ledger=t.ledger, code=t.code)  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    singles = 200 if quick else 2_000
    bulk_count = 3 * BATCH_EVENTS_MAX if quick else 40 * BATCH_EVENTS_MAX
    report: dict[str, Any] = {"singles": {}, "bulk": {}}
    with ledger_process(transfers_max=4_000_000) as server:
        with Client(ClientConfig(server=server)) as client:
            client.create_accounts(
                [Account(id=FUNDING, ledger=LEDGER, code=1), Account(id=WALLET, ledger=LEDGER, code=2)]
            )
        next_id = 1_000
        for callers in (1, 64, 512):
            per_caller = max(singles // callers, 5) if callers > 1 else singles // 4
            for batched in (True, False):
                name = f"async_{callers}_callers_{'batched' if batched else 'unbatched'}"
                report["singles"][name] = asyncio.run(
                    async_singles(server, callers, per_caller, next_id, batched=batched)
                )
                next_id += callers * per_caller
        for threads in (1, 16, 64):
            per_thread = max(singles // threads, 5) if threads > 1 else singles // 4
            for batched in (True, False):
                name = f"threads_{threads}_{'batched' if batched else 'unbatched'}"
                report["singles"][name] = thread_singles(server, threads, per_thread, next_id, batched=batched)
                next_id += threads * per_thread
        for packed in (True, False):
            report["bulk"]["packed" if packed else "typed"] = bulk(server, bulk_count, next_id, packed=packed)
            next_id += bulk_count
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="one JSON object (default: indented)")
    parser.add_argument("--quick", action="store_true", help="small counts, seconds instead of a minute")
    args = parser.parse_args()
    report = run(args.quick)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
