"""pytest-benchmark of terminals paying by code beside plain payments (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and the body runs once with tiny counts, so this also checks
that `python -m bench.counter` works end to end: its setup, `ledger serve` and `ledger gateway`, payments by
code and plain ones over gRPC and over HTTP, and the report's shape.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.counter import SYSTEMS, main
from tests.stores import require_postgres


def test_payments_by_code_beside_plain_payments_on_both_transports(
    benchmark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = require_postgres()
    argv = ["--store", dsn, "--rounds", "1", "--seconds", "0.3", "--warmup-seconds", "0.1", "--terminals", "8",
            "--customers", "3000", "--json"]  # fmt: skip
    benchmark.pedantic(lambda: main(argv), rounds=1, iterations=1)
    report = json.loads(capsys.readouterr().out)
    assert (report["benchmark"], report["store"], report["settings"]["terminals"]) == ("counter", "postgresql", 8)
    assert {"load_1m_start", "load_1m_end"} <= report["machine"].keys() and report["commit"]
    results = report["results"]
    assert set(results) == {system.split("_")[0] for system in SYSTEMS} == {"grpc", "http"}
    for transport, result in results.items():
        for kind in ("code", "plain"):
            measured = result[kind]
            assert measured["payments_per_s"] > 0 and len(measured["payments_per_s_rounds"]) == 1
            assert 0 < measured["p50_ms"] <= measured["p99_ms"] and measured["server_cpu_us_per_payment"] > 0
        assert result["code"]["window_waits"] == 0  # 3,000 customers: more than pay by code in one window
        code, plain = result["code"]["payments_per_s"], result["plain"]["payments_per_s"]
        assert result["ratio_rounds"] == [round(code / plain, 3)] and result["ratio"] == result["ratio_rounds"][0]
        assert "gateway_cpu_us_per_payment" in result["code"] or transport == "grpc"
    for name in ("grpc_ratio", "grpc_code_p99_ms", "http_ratio", "http_code_p99_ms"):
        verdict = report["targets"][name]
        assert set(verdict) == {"target", "measured", "met"} and isinstance(verdict["met"], bool)
