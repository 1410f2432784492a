"""CreateTransfers on the wire, side by side: the wire codec against protobuf messages and ledger.server._convert.

    python -m bench.wire --json             # 1 and 8190 transfers per request, median of 5 runs

Decoding is a request's wire bytes to packed transfer records: through
protobuf (`CreateTransfersRequest.FromString` then `transfers_to_packed`) or
through the codec (`decode_create_transfers`). Encoding is packed results to
a reply's wire bytes: through protobuf (`transfer_results_from_packed` then
`SerializeToString`) or through the codec (`encode_create_transfers_response`).
Each path runs on the same bytes for about `--seconds` per run; the report
gives the median µs per transfer of each path and how many times faster the
native codec is than protobuf. The pure-Python twin is measured too: it is
what runs where the native module is not built. Progress goes to stderr; the
result is one JSON object.
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
from typing import Any

from ledger.engine._layout import TRANSFER_RESULT_STRUCT, TRANSFER_STRUCT
from ledger.engine._limits import BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.server import _wire_py
from ledger.server._convert import transfer_results_from_packed, transfers_from_packed, transfers_to_packed
from ledger.v1 import ledger_pb2

try:
    from ledger.server import _wire_c
except ImportError:
    _wire_c = None  # type: ignore[assignment]

U64 = 2**64 - 1


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


def make_request(count: int, seed: int) -> tuple[bytes, bytes]:
    """(the request's wire bytes, the packed records it carries)."""
    records = make_records(count, seed)
    request = ledger_pb2.CreateTransfersRequest(transfers=transfers_from_packed(records))
    return request.SerializeToString(), records


def make_results(count: int, seed: int) -> bytes:
    """Packed results of an accepted batch: OK, its timestamp and the amount moved."""
    rng = random.Random(seed)
    first = time.time_ns()
    return b"".join(TRANSFER_RESULT_STRUCT.pack(1, 0, first + i, rng.randint(1, 50_000)) for i in range(count))


def via_protobuf_decode(data: bytes) -> bytes:
    return transfers_to_packed(ledger_pb2.CreateTransfersRequest.FromString(data).transfers)


def via_protobuf_encode(results: bytes) -> bytes:
    return ledger_pb2.CreateTransfersResponse(results=transfer_results_from_packed(results)).SerializeToString()


def time_per_call(call: Callable[[bytes], bytes], argument: bytes, seconds: float) -> float:
    """Seconds per call, over as many calls as fit in about `seconds` (at least 3)."""
    calls, started = 0, time.perf_counter()
    while True:
        call(argument)
        calls += 1
        elapsed = time.perf_counter() - started
        if calls >= 3 and elapsed >= seconds:
            return elapsed / calls


def measure(paths: dict[str, Callable[[bytes], bytes]], argument: bytes, count: int, args: argparse.Namespace,
            label: str) -> dict[str, Any]:  # fmt: skip
    """µs per transfer of each path: the median of `args.repeat` runs, the paths interleaved run by run."""
    runs: dict[str, list[float]] = {name: [] for name in paths}
    for repeat in range(args.repeat):
        for name, call in paths.items():
            seconds = args.seconds / 10 if name == "python_twin" else args.seconds
            runs[name].append(time_per_call(call, argument, seconds) / count * 1e6)
        progress(f"  {label}, run {repeat + 1}/{args.repeat}: " + ", ".join(
            f"{name} {values[-1]:.3f} µs/transfer" for name, values in runs.items()))  # fmt: skip
    report: dict[str, Any] = {
        f"{name}_us_per_transfer": round(statistics.median(values), 4) for name, values in runs.items()
    }
    report["us_per_transfer_runs"] = {name: [round(v, 4) for v in values] for name, values in runs.items()}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, BATCH_EVENTS_MAX], help="transfers per request")
    parser.add_argument("--repeat", type=int, default=5, help="runs per path and size (the median is reported)")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per run of a path")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default prints it indented)")
    args = parser.parse_args(argv)
    if any(not 1 <= size <= BATCH_EVENTS_MAX for size in args.sizes):
        parser.error(f"--sizes: each must be 1 to {BATCH_EVENTS_MAX}")
    available = codecs()
    report: dict[str, Any] = {
        "benchmark": "wire",
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "native_built": "native" in available,
        "decode": {},
        "encode": {},
    }
    for size in args.sizes:
        data, records = make_request(size, args.seed)
        results = make_results(size, args.seed)
        decoders = {"protobuf": via_protobuf_decode} | {n: c.decode_create_transfers for n, c in available.items()}
        encoders = {"protobuf": via_protobuf_encode} | {
            n: c.encode_create_transfers_response for n, c in available.items()
        }
        for name, decode in decoders.items():
            assert decode(data) == records, f"{name} decodes the request to other records"
        for name, encode in encoders.items():
            assert encode(results) == via_protobuf_encode(results), f"{name} writes another reply"
        progress(f"{size} transfers per request ({len(data):,} bytes on the wire)")
        report["decode"][str(size)] = {"request_bytes": len(data)} | measure(decoders, data, size, args, "decode")
        report["encode"][str(size)] = measure(encoders, results, size, args, "encode")
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
