"""python -m bench.wallet in very short runs: the throughput part against `ledger serve` on PostgreSQL and the
recovery part on SQLite, each printing one JSON object of the shape the README describes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.stores import require_postgres

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*options: str) -> tuple[dict[str, Any], str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}  # the server process runs this checkout's ledger
    command = [sys.executable, "-m", "bench.wallet", "--json", "--quick", *options]
    completed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
                               check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout), completed.stderr


def test_throughput_reports_payments_beside_the_cores_transfers() -> None:
    dsn = require_postgres()
    report, stderr = run_bench("--store", dsn, "--seconds", "0.5", "--warmup-seconds", "0.2", "--wallets", "300")
    assert (report["benchmark"], report["part"], report["store"]) == ("wallet", "throughput", "postgresql")
    assert {"load_1m_start", "load_1m_end"} <= report["machine"].keys() and report["commit"]
    throughput = report["throughput"]
    assert set(throughput) == {"core_transfers", "uniform", "one_shop"}
    core = throughput["core_transfers"]
    assert core["transfers_per_s"] > 0 and len(core["transfers_per_s_rounds"]) == 1
    for scenario in ("uniform", "one_shop"):
        result = throughput[scenario]
        assert result["payments_per_s"] > 0 and result["calls"] > 0
        assert 0 < result["p50_ms"] <= result["p99_ms"]
        assert result["ratio"] == round(result["payments_per_s"] / core["transfers_per_s"], 3)
        assert result["server_cpu_us_per_payment"] > 0 and "server_loop_cpu_us_per_payment" in result
        assert "store_cpu_us_per_payment" in result  # PostgreSQL's backends of the server
        for target in ("ratio", "p99_ms"):
            verdict = report["targets"][f"{scenario}_{target}"]
            assert set(verdict) == {"target", "measured", "met"} and isinstance(verdict["met"], bool)
    assert "payments/s" in stderr and "wallets opened and credited" in stderr  # progress


def test_recovery_reports_the_time_to_serving_and_the_domains_memory() -> None:
    report, stderr = run_bench("--recovery", "--store", "sqlite", "--wallets", "500", "--payments", "3000",
                               "--operation-payments", "1000")  # fmt: skip
    assert (report["part"], report["store"]) == ("recovery", "sqlite")
    recovery = report["recovery"]
    written = recovery["written"]
    assert written["accounts"] >= 500 and written["transfers"] == 500 + 2 * 3000  # a grant each, a fee each
    assert recovery["from_checkpoint"]["commits_replayed"] == 0 and recovery["from_checkpoint"]["recovery_s"] > 0
    assert recovery["journal_only"]["transfers_replayed"] == written["transfers"]
    assert recovery["journal_only"]["domain_bytes_replayed"] > 0
    assert recovery["serve_from_checkpoint"]["serving_s"] > 0 and recovery["serve_from_checkpoint"]["rss_bytes"] > 0
    memory = recovery["memory"]
    assert memory["domain_bytes_per_wallet"] > 0  # each wallet holds an expiring grant
    assert abs(memory["domain_bytes_per_payment"]) < 1  # payments keep nothing in the domain
    assert "1M and 10M" in recovery["scaled"]
    for name in ("recovery_s_from_checkpoint", "recovery_s_journal_only"):
        assert report["targets"][name]["met"] is None and report["targets"][name]["measured_extrapolated_10m"] > 0
    assert isinstance(report["targets"]["domain_bytes_per_wallet"]["met"], bool)
    assert "payments (" in stderr and "serving in" in stderr
