"""pytest-benchmark of the durable write path (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and each body runs once, so
this also checks that `python -m bench.journal` works, on the embedded store.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench.journal import fresh_store, recovery, throughput
from ledger.engine._limits import BATCH_EVENTS_MAX


@pytest.mark.parametrize("batch_size", [1, 100, BATCH_EVENTS_MAX])
def test_durable_throughput(benchmark: Any, batch_size: int) -> None:
    count = {1: 500, 100: 5_000, BATCH_EVENTS_MAX: 3 * BATCH_EVENTS_MAX}[batch_size]

    def run() -> dict[str, Any]:
        with fresh_store("sqlite") as url:
            return asyncio.run(throughput(url, batch_size, count))

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["transfers"] == count and result["transfers_per_s"] > 0
    assert result["commits"] >= 1 and result["commit_p99_ms"] >= result["commit_p50_ms"]


def test_recovery_from_checkpoint_and_from_journal(benchmark: Any) -> None:
    def run() -> dict[str, Any]:
        with fresh_store("sqlite") as url:
            return asyncio.run(recovery(url, 20_000))

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["from_checkpoint"]["transfers_replayed"] == 0
    assert result["journal_only"]["transfers_replayed"] == 20_000
