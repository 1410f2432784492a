"""pytest-benchmark of the wire codec against protobuf + _convert (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and each body runs once, so
these also check that every path gives the same records and replies, and
that `python -m bench.wire` works.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bench.wire import codecs, main, make_request, make_results, via_protobuf_decode, via_protobuf_encode
from ledger.engine._limits import BATCH_EVENTS_MAX

SIZES = [1, BATCH_EVENTS_MAX]
DECODERS: dict[str, Callable[[bytes], bytes]] = {"protobuf": via_protobuf_decode} | {
    name: codec.decode_create_transfers for name, codec in codecs().items()
}
ENCODERS: dict[str, Callable[[bytes], bytes]] = {"protobuf": via_protobuf_encode} | {
    name: codec.encode_create_transfers_response for name, codec in codecs().items()
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("path", list(DECODERS))
def test_decode_create_transfers(benchmark: Any, path: str, size: int) -> None:
    data, records = make_request(size, seed=size)
    assert benchmark(DECODERS[path], data) == records


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("path", list(ENCODERS))
def test_encode_create_transfers_response(benchmark: Any, path: str, size: int) -> None:
    results = make_results(size, seed=size)
    assert benchmark(ENCODERS[path], results) == via_protobuf_encode(results)


def test_the_comparison_runs_and_reports_every_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--sizes", "1", "3", "--repeat", "1", "--seconds", "0.001"]) == 0
    report = json.loads(capsys.readouterr().out)
    paths = {"protobuf", *codecs()}
    for direction in ("decode", "encode"):
        assert set(report[direction]) == {"1", "3"}
        for measured in report[direction].values():
            assert {
                key.removesuffix("_us_per_transfer") for key in measured if key.endswith("_us_per_transfer")
            } == paths
            assert all(measured[f"{path}_us_per_transfer"] > 0 for path in paths)
            assert ("native_speedup_over_protobuf" in measured) == ("native" in paths)
