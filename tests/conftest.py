from __future__ import annotations

import os
from typing import Any

import pytest

from ledger.engine import IMPLEMENTATION
from tests.support import ENGINE_CLASSES, Harness, ManualClock


def pytest_report_header(config: pytest.Config) -> str:
    requested = os.environ.get("LEDGER_ENGINE", "")
    return (
        f"ledger engine: {IMPLEMENTATION} (LEDGER_ENGINE={requested!r}); "
        f"engines under test: {', '.join(ENGINE_CLASSES)}"
    )


@pytest.fixture(params=list(ENGINE_CLASSES))
def engine_class(request: pytest.FixtureRequest) -> type[Any]:
    """Every test that takes this runs once per available engine."""
    return ENGINE_CLASSES[request.param]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(engine_class: type[Any], clock: ManualClock) -> Harness:
    return Harness.new(engine_class, clock)
