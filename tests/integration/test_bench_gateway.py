"""python -m bench.gateway in a very short run: payments over HTTP beside the no-op ceiling, every answer 2xx,
one JSON object of the shape the module describes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.stores import require_postgres

ROOT = Path(__file__).resolve().parents[2]


def test_payments_over_http_are_reported_beside_the_noop_ceiling() -> None:
    dsn = require_postgres()
    command = [sys.executable, "-m", "bench.gateway", "--json", "--quick", "--store", dsn, "--seconds", "0.5",
               "--terminals", "20", "--wallets", "50", "--keys", "terminal"]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                               text=True, timeout=300, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    assert (report["benchmark"], report["store"], report["settings"]["keys"]) == ("gateway", "postgresql", "terminal")
    one = report["results"]["workers_1"]
    for system in ("noop", "payments"):
        assert one[system]["requests_per_s"] > 0 and one[system]["not_2xx"] == {}
        assert 0 < one[system]["p50_ms"] <= one[system]["p99_ms"]
    assert one["payments"]["server_cpu_us_per_request"] > 0 and one["payments"]["gateway_cpu_us_per_request"] > 0
    assert one["ratio"] == round(one["payments"]["requests_per_s"] / one["noop"]["requests_per_s"], 3)
    assert set(report["targets"]) == {"payments_per_s", "p99_ms", "ratio"}
