"""pytest-benchmark micro-benchmarks of the engines (run: pytest bench --benchmark-enable).

In the normal test run benchmarks are disabled and each body runs once, so
these also check that the benchmarked paths work on every engine.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bench.engine import make_accounts, make_transfers
from ledger.engine import EngineConfig, pack_ids
from ledger.records.limits import BATCH_EVENTS_MAX
from tests.support import ENGINE_CLASSES, ManualClock

ACCOUNTS = 10_000
ROUNDS = 20


def loaded_engine(engine_class: type[Any]) -> Any:
    config = EngineConfig(accounts_max=ACCOUNTS, transfers_max=(ROUNDS + 2) * BATCH_EVENTS_MAX)
    engine = engine_class(config, clock=ManualClock())
    for batch in make_accounts(ACCOUNTS):
        engine.create_accounts(batch)
    return engine


@pytest.fixture(params=list(ENGINE_CLASSES))
def engine(request: pytest.FixtureRequest) -> Any:
    return loaded_engine(ENGINE_CLASSES[request.param])


@pytest.mark.parametrize("scenario", ["uniform", "hot"])
def test_create_transfers_batch(benchmark: Any, engine: Any, scenario: str) -> None:
    """One batch of 8190 new plain transfers (every id de-duplicated against all before it)."""
    first_ids = itertools.count(1, BATCH_EVENTS_MAX)
    batches = iter(
        [make_transfers(BATCH_EVENTS_MAX, ACCOUNTS, scenario, BATCH_EVENTS_MAX, seed, next(first_ids))[0]
         for seed in range(ROUNDS + 1)]
    )  # fmt: skip
    results = benchmark.pedantic(lambda: engine.create_transfers(next(batches)), rounds=ROUNDS, iterations=1)
    assert set(results.results[0::24]) == {1}


def test_retried_batch_is_all_exists(benchmark: Any, engine: Any) -> None:
    """A batch resubmitted whole: every event is found and compared, nothing moves."""
    batch = make_transfers(BATCH_EVENTS_MAX, ACCOUNTS, "uniform", BATCH_EVENTS_MAX, 7, 1)[0]
    engine.create_transfers(batch)
    results = benchmark(engine.create_transfers, batch)
    assert set(results.results[0::24]) == {20}


def test_lookup_accounts(benchmark: Any, engine: Any) -> None:
    ids = pack_ids(list(range(1, BATCH_EVENTS_MAX + 1)))
    found = benchmark(engine.lookup_accounts, ids)
    assert len(found) == BATCH_EVENTS_MAX * 128
