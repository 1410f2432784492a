"""pytest-benchmark of a lone caller's latency and 32 callers' throughput (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and the body runs once with tiny counts, so this also
checks that `python -m bench.latency` works end to end against both stores and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.latency import main
from tests.stores import require_postgres

SYSTEMS = {"ledger_postgresql", "ledger_sqlite", "plain_postgresql", "plain_postgresql_one"}
FLOORS = {"insert_commit", "grpc_noop", "grpc_stream_noop", "ledger_postgresql_lookup"}


def test_lone_caller_and_many_callers_side_by_side(benchmark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = require_postgres()
    argv = ["--store", dsn, "--rounds", "2", "--calls", "20", "--warmup-calls", "2", "--callers", "4",
            "--seconds", "0.3", "--warmup-seconds", "0.1", "--accounts", "100", "--json"]  # fmt: skip
    benchmark.pedantic(lambda: main(argv), rounds=1, iterations=1)
    report = json.loads(capsys.readouterr().out)
    assert set(report["lone_caller"]) == SYSTEMS | FLOORS
    assert all(result["calls"] == 40 and result["p50_ms"] > 0 for result in report["lone_caller"].values())
    assert set(report["callers_4"]) == SYSTEMS
    assert all(len(result["transfers_per_s_rounds"]) == 2 for result in report["callers_4"].values())
    targets = report["targets"]
    assert targets["lone_p50_ms_vs_plain_postgresql"]["target"] == report["lone_caller"]["plain_postgresql"]["p50_ms"]
    assert targets["lone_p50_ms_vs_fastest_plain"]["against"].startswith("plain_postgresql")
    assert targets["callers_4_vs_best_plain"]["against"].startswith("plain_postgresql")
