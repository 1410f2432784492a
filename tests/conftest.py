from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from ledger.engine import IMPLEMENTATION
from tests import stores
from tests.support import ENGINE_CLASSES, Harness, ManualClock

# Property tests: a few hundred examples while developing, 1,500 in CI (CI=true: what its 25 minutes afford
# beside everything else), many more with HYPOTHESIS_PROFILE=long. Machines are shared and noisy, so no
# per-example deadline.
_quiet = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=300, **_quiet)
settings.register_profile("ci", max_examples=1500, derandomize=False, print_blob=True, **_quiet)
settings.register_profile("long", max_examples=100_000, **_quiet)
# Servers the tests start (in-process or as `ledger serve` processes) serve their HTTP gateway on a free port:
# several run at once, and 8080 may be taken on the machine.
os.environ.setdefault("LEDGER_HTTP_ADDRESS", "127.0.0.1:0")

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fault-cycles", type=int, default=20, help="kill/restart cycles of the fault tests")


@pytest.fixture
def fault_cycles(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--fault-cycles"))


def pytest_report_header(config: pytest.Config) -> str:
    requested = os.environ.get("LEDGER_ENGINE", "")
    return (
        f"ledger engine: {IMPLEMENTATION} (LEDGER_ENGINE={requested!r}); "
        f"engines under test: {', '.join(ENGINE_CLASSES)}; hypothesis profile: {settings().max_examples} examples"
    )


@pytest.fixture(params=list(ENGINE_CLASSES))
def engine_class(request: pytest.FixtureRequest) -> type[Any]:
    """Every test that takes this runs once per available engine."""
    return ENGINE_CLASSES[request.param]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test that takes this runs against both journal stores."""
    with stores.store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(engine_class: type[Any], clock: ManualClock) -> Harness:
    return Harness.new(engine_class, clock)
