"""pytest-benchmark of the durable write path (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and each body runs once, so
this also checks that `python -m bench.journal` works, on the embedded store.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench.journal import checkpoint_cost, fresh_store, pos_recovery, recovery, throughput
from ledger.records.limits import BATCH_EVENTS_MAX


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


def test_recovery_of_a_journal_of_small_commits(benchmark: Any) -> None:
    def run() -> dict[str, Any]:
        with fresh_store("sqlite") as url:
            return asyncio.run(pos_recovery(url, 60_000))

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["transfers"] >= 60_000 and result["transfers_per_commit"] > 15 and result["expired"] > 0
    assert result["from_checkpoint"]["state_matches"] and result["journal_only"]["state_matches"]
    assert result["from_checkpoint"]["commits_replayed"] == 0
    assert result["journal_only"]["commits_replayed"] == result["commits"]


def test_checkpoint_cost_under_small_commits(benchmark: Any) -> None:
    def run() -> dict[str, Any]:
        return asyncio.run(checkpoint_cost("sqlite", 4, accounts=2_000, count=8_000))

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    # Group commit folds the 500 calls into as few commits as the load allows; every 4th one starts a checkpoint.
    assert (
        result["checkpoints"] >= (1 if result["commits"] >= 8 else 0)
        and result["transfers_per_s"] > 0
        and result["loop_pause_ms_max"] >= 0
    )
