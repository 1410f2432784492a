"""pytest-benchmark of the wire codec against protobuf + _convert (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and each body runs once, so
these also check that every path gives the same records and replies, and
that `python -m bench.wire` works.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.wire import FUNCTIONS, codecs, main, paths_of
from ledger.records.limits import BATCH_EVENTS_MAX

SIZES = [1, BATCH_EVENTS_MAX]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("path", ["protobuf", *codecs()])
@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_wire_function(benchmark: Any, function: str, path: str, size: int) -> None:
    argument, expected = FUNCTIONS[function].make(size, size)
    paths = paths_of(function)
    expected = paths["protobuf"](argument) if expected is None else expected
    assert benchmark(paths[path], argument) == expected


def test_the_comparison_runs_and_reports_every_path(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--json", "--sizes", "1", "3", "--repeat", "1", "--seconds", "0.001", "--oversized-ids", "9000"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    paths = {"protobuf", *codecs()}
    assert set(report["functions"]) == set(FUNCTIONS)
    for function, measured_sizes in report["functions"].items():
        assert measured_sizes["item"] == FUNCTIONS[function].item
        assert set(measured_sizes) == {"item", "1", "3"}
        for size in ("1", "3"):
            measured = measured_sizes[size]
            assert {key.removesuffix("_us_per_item") for key in measured if key.endswith("_us_per_item")} == paths
            assert all(measured[f"{path}_us_per_item"] > 0 and measured[f"{path}_ms_per_call"] > 0 for path in paths)
            assert ("native_speedup_over_protobuf" in measured) == ("native" in paths)
    oversized = report["oversized_lookup"]
    assert oversized["ids"] * 2 == oversized["request_bytes"] == 18_000
    assert oversized["protobuf_ms"] >= oversized["protobuf_ms_least"] > 0 and oversized["before_the_codec_ms"] > 0
    assert ("native_ms" in oversized) == ("native" in paths)
