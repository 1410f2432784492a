"""The wire codec side by side with protobuf messages and ledger.server._convert, function by function.

    python -m bench.wire --json             # 1 and 8190 items per message, median of 5 runs

Each function of the codec runs three ways on the same bytes: through
protobuf (`_convert`'s function of the same name: `FromString` then
`*_to_packed` to decode, `*_from_packed` then `SerializeToString` to encode,
what the service runs where the native module is not built), natively, and
in the pure-Python twin. Decoding is a request's wire bytes to packed
records (CreateTransfers, CreateAccounts, Lookup); encoding is packed
records to a reply's wire bytes (CreateTransfers' and CreateAccounts'
results, transfers as LookupTransfers, GetAccountTransfers and
SubscribeTransfers carry them, accounts as LookupAccounts does). Each path
runs for about `--seconds` per run; the report gives, per function and size,
the median µs per item and ms per call of each path, and how many times
faster the native codec is than protobuf: one call holds the event loop for
its ms per call.

Last, a LookupRequest as large as the server takes (4 MiB, 2,097,152 empty
ids) is refused natively and through protobuf, and once the way LedgerService
reads ids without the codec (a Python object for every id, then the count):
how long each holds the loop before the refusal (the median, and the least,
which on a busy machine is the call's own cost). Progress goes to stderr;
the result is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from ledger.records.layout import (
    ACCOUNT_RESULT_STRUCT,
    ACCOUNT_STRUCT,
    ID_STRUCT,
    TRANSFER_RESULT_STRUCT,
    TRANSFER_STRUCT,
)
from ledger.records.limits import ACCOUNT_SIZE, BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.server import _convert, _wire_py
from ledger.server._convert import ConversionError
from ledger.server._serve import MESSAGE_BYTES_MAX
from ledger.v1 import ledger_pb2

try:
    from ledger.server import _wire_c
except ImportError:
    _wire_c = None  # type: ignore[assignment]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_records(count: int, seed: int) -> bytes:
    """Packed transfers as a POS fleet sends them: random 128-bit ids, wallets paying a few merchants."""
    rng = random.Random(seed)
    out = bytearray(count * TRANSFER_SIZE)
    for i in range(count):
        TRANSFER_STRUCT.pack_into(
            out, i * TRANSFER_SIZE,
            rng.getrandbits(64), rng.getrandbits(64), rng.randint(1, 10**6), 0, rng.randint(1, 50), 0,
            rng.randint(1, 50_000), 0, 0, rng.getrandbits(64), rng.getrandbits(64), rng.getrandbits(40), 0, 0,
            978, rng.randint(1, 20), 0, 0, 0,
        )  # fmt: skip
    return bytes(out)


def make_stored_transfers(count: int, seed: int) -> bytes:
    """Transfers as the ledger returns them: those of make_records with the timestamps it gave them."""
    first, records = time.time_ns(), bytearray(make_records(count, seed))
    for i in range(count):
        records[i * TRANSFER_SIZE + 112 : i * TRANSFER_SIZE + 120] = (first + i).to_bytes(8, "little")
    return bytes(records)


def make_accounts(count: int, seed: int) -> bytes:
    """Packed accounts as a shop opens wallets: random 128-bit ids, history and no-overdraft flags, balances."""
    rng = random.Random(seed)
    out = bytearray(count * ACCOUNT_SIZE)
    for i in range(count):
        ACCOUNT_STRUCT.pack_into(
            out, i * ACCOUNT_SIZE,
            rng.getrandbits(64), rng.getrandbits(64), 0, rng.randint(0, 10**6), rng.randint(0, 10**7), 0,
            978, rng.randint(1, 8), 10, time.time_ns() + i, rng.getrandbits(64), 0, rng.getrandbits(40), 0, 0,
            bytes(32),
        )  # fmt: skip
    return bytes(out)


def make_ids(count: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(ID_STRUCT.pack(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(count))


def make_results(count: int, seed: int) -> bytes:
    """Packed results of an accepted batch: OK, its timestamp and the amount moved."""
    rng = random.Random(seed)
    first = time.time_ns()
    return b"".join(TRANSFER_RESULT_STRUCT.pack(1, 0, first + i, rng.randint(1, 50_000)) for i in range(count))


def make_account_results(count: int, seed: int) -> bytes:
    """Packed results of a batch of accounts: mostly created, some existing already."""
    rng = random.Random(seed)
    first = time.time_ns()
    return b"".join(ACCOUNT_RESULT_STRUCT.pack(rng.choice((1, 1, 1, 15)), 0, first + i) for i in range(count))


def make_request(count: int, seed: int) -> tuple[bytes, bytes]:
    """(a CreateTransfersRequest's wire bytes, the packed records it carries)."""
    records = make_records(count, seed)
    request = ledger_pb2.CreateTransfersRequest(transfers=_convert.transfers_from_packed(records))
    return request.SerializeToString(), records


def make_accounts_request(count: int, seed: int) -> tuple[bytes, bytes]:
    """(a CreateAccountsRequest's wire bytes, the packed records it carries: as a request has them, no timestamp)."""
    records = bytearray(make_accounts(count, seed))
    for i in range(count):
        records[i * ACCOUNT_SIZE + 56 : i * ACCOUNT_SIZE + 64] = bytes(8)
    request = ledger_pb2.CreateAccountsRequest(accounts=_convert.accounts_from_packed(bytes(records)))
    return request.SerializeToString(), bytes(records)


def make_lookup(count: int, seed: int) -> tuple[bytes, bytes]:
    """(a LookupRequest's wire bytes, the packed ids it carries)."""
    ids = make_ids(count, seed)
    request = ledger_pb2.LookupRequest()
    for lo, hi in ID_STRUCT.iter_unpack(ids):
        request.ids.add(lo=lo, hi=hi)
    return request.SerializeToString(), ids


class Function(NamedTuple):
    """A codec function: what it takes (a count and a seed give it and the result expected), per what item."""

    make: Callable[[int, int], tuple[bytes, bytes | None]]
    """-> (its argument, what it returns; None: what protobuf returns)."""
    item: str


FUNCTIONS: dict[str, Function] = {
    "decode_create_transfers": Function(make_request, "transfer"),
    "decode_create_accounts": Function(make_accounts_request, "account"),
    "decode_lookup_request": Function(make_lookup, "id"),
    "encode_create_transfers_response": Function(lambda n, seed: (make_results(n, seed), None), "result"),
    "encode_create_accounts_response": Function(lambda n, seed: (make_account_results(n, seed), None), "result"),
    "encode_transfers": Function(lambda n, seed: (make_stored_transfers(n, seed), None), "transfer"),
    "encode_accounts": Function(lambda n, seed: (make_accounts(n, seed), None), "account"),
}


def time_per_call(call: Callable[[bytes], Any], argument: bytes, seconds: float) -> float:
    """Seconds per call, over as many calls as fit in about `seconds` (at least 3)."""
    calls, started = 0, time.perf_counter()
    while True:
        call(argument)
        calls += 1
        elapsed = time.perf_counter() - started
        if calls >= 3 and elapsed >= seconds:
            return elapsed / calls


def measure(paths: dict[str, Callable[[bytes], Any]], argument: bytes, count: int, args: argparse.Namespace,
            label: str) -> dict[str, Any]:  # fmt: skip
    """µs per item and ms per call of each path: medians of `args.repeat` runs, the paths interleaved run by run."""
    runs: dict[str, list[float]] = {name: [] for name in paths}
    for repeat in range(args.repeat):
        for name, call in paths.items():
            seconds = args.seconds / 10 if name == "python_twin" else args.seconds
            runs[name].append(time_per_call(call, argument, seconds) * 1e6)
        progress(f"  {label}, run {repeat + 1}/{args.repeat}: " + ", ".join(
            f"{name} {values[-1] / count:.3f} µs/item" for name, values in runs.items()))  # fmt: skip
    report: dict[str, Any] = {}
    for name, values in runs.items():
        report[f"{name}_us_per_item"] = round(statistics.median(values) / count, 4)
        report[f"{name}_ms_per_call"] = round(statistics.median(values) / 1000, 4)
    report["us_per_call_runs"] = {name: [round(v, 2) for v in values] for name, values in runs.items()}
    if "native" in runs:
        report["native_speedup_over_protobuf"] = round(
            statistics.median(runs["protobuf"]) / statistics.median(runs["native"]), 1
        )
    return report


def codecs() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {"python_twin": _wire_py}
    if _wire_c is not None:
        found["native"] = _wire_c
    return found


def paths_of(name: str) -> dict[str, Callable[[bytes], Any]]:
    """Each way to run a codec function: protobuf (_convert's function of that name), native, the twin."""
    return {"protobuf": getattr(_convert, name)} | {path: getattr(codec, name) for path, codec in codecs().items()}


def lookup_as_before(data: bytes) -> bytes:
    """Ids as LedgerService reads them without the codec: a Python object for each, then the count checked."""
    ids = list(ledger_pb2.LookupRequest.FromString(data).ids)
    if len(ids) > BATCH_EVENTS_MAX:
        raise ConversionError(f"ids: {len(ids)} items exceeds the limit of {BATCH_EVENTS_MAX} per request")
    return b"".join(ID_STRUCT.pack(i.lo, i.hi) for i in ids)


def refusal_ms(call: Callable[[bytes], Any], data: bytes, repeat: int) -> tuple[float, float]:
    """The median and the least ms `call` takes to refuse `data` (it must refuse it); on a busy machine the least
    is the call's own cost, the median adds the time other processes took the core from it."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            call(data)
        except ConversionError:
            times.append(time.perf_counter() - started)
        else:
            raise AssertionError(f"{call.__qualname__} accepted an oversized LookupRequest")
    return round(statistics.median(times) * 1e3, 3), round(min(times) * 1e3, 3)


def measure_oversized_lookup(args: argparse.Namespace) -> dict[str, Any]:
    """How long each path holds the loop before it refuses the largest LookupRequest the server takes."""
    count = args.oversized_ids
    data = b"\x0a\x00" * count  # an empty Uint128 each: the most ids the bytes can hold
    report: dict[str, Any] = {"ids": count, "request_bytes": len(data)}
    for name, call in paths_of("decode_lookup_request").items():
        if name == "python_twin":  # never what the service runs (about 4 µs an id)
            continue
        report[f"{name}_ms"], report[f"{name}_ms_least"] = refusal_ms(call, data, 2 * args.repeat + 1)
        progress(f"  {len(data):,} bytes, {count:,} ids: refused by {name} in {report[f'{name}_ms']} ms")
    report["before_the_codec_ms"], _ = refusal_ms(lookup_as_before, data, 1)
    progress(f"  and the way LedgerService reads ids without the codec, in {report['before_the_codec_ms']} ms")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, BATCH_EVENTS_MAX], help="items per message")
    parser.add_argument("--functions", nargs="+", choices=list(FUNCTIONS), default=list(FUNCTIONS))
    parser.add_argument("--repeat", type=int, default=5, help="runs per path and size (the median is reported)")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per run of a path")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--oversized-ids",
        type=int,
        default=MESSAGE_BYTES_MAX // 2,
        help="ids in the LookupRequest to refuse (default: as many as the server's message limit holds); 0: none",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default prints it indented)")
    args = parser.parse_args(argv)
    if any(not 1 <= size <= BATCH_EVENTS_MAX for size in args.sizes):
        parser.error(f"--sizes: each must be 1 to {BATCH_EVENTS_MAX}")
    if args.oversized_ids and not BATCH_EVENTS_MAX < args.oversized_ids <= MESSAGE_BYTES_MAX // 2:
        parser.error(f"--oversized-ids: 0, or past {BATCH_EVENTS_MAX} and at most {MESSAGE_BYTES_MAX // 2}")
    report: dict[str, Any] = {
        "benchmark": "wire",
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "native_built": "native" in codecs(),
        "functions": {},
    }
    for name in args.functions:
        function = FUNCTIONS[name]
        report["functions"][name] = {"item": function.item}
        for size in args.sizes:
            argument, expected = function.make(size, args.seed)
            paths = paths_of(name)
            expected = paths["protobuf"](argument) if expected is None else expected
            for path, call in paths.items():
                assert call(argument) == expected, f"{path} {name} gives another result"
            progress(f"{name}, {size} {function.item}s per message ({len(argument):,} bytes in)")
            report["functions"][name][str(size)] = measure(paths, argument, size, args, name)
    if args.oversized_ids:
        progress("refusing an oversized LookupRequest")
        report["oversized_lookup"] = measure_oversized_lookup(args)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
