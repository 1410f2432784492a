"""pytest-benchmark of the client's batching (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and the body runs once, so
this also checks that `python -m bench.client` works against a real
`ledger serve` process.
"""

from __future__ import annotations

from typing import Any

from bench.client import run


def test_batching_and_bulk(benchmark: Any) -> None:
    report = benchmark.pedantic(lambda: run(quick=True), rounds=1, iterations=1)
    singles = report["singles"]
    # Concurrent single calls share requests; without batching each is its own.
    assert singles["async_512_callers_batched"]["requests"] < singles["async_512_callers_unbatched"]["requests"] / 10
    assert singles["threads_64_batched"]["requests"] < singles["threads_64_unbatched"]["requests"]
    assert all(result["transfers_per_s"] > 0 for result in (*singles.values(), *report["bulk"].values()))
