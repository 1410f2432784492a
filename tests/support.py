"""Test helpers: a manual clock, the available engines, a convenience harness, a progress bar stand-in, and
the guard of the tests that need bench.compare's extra."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings

from ledger.engine import (
    Account,
    AccountResult,
    Engine,
    EngineConfig,
    ReferenceEngine,
    Transfer,
    TransferResult,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_account_results,
    unpack_accounts,
    unpack_ids,
    unpack_transfer_results,
    unpack_transfers,
)

try:
    from ledger.engine._c import NativeEngine
except ImportError:  # no compiler where this was installed: only the reference engine runs
    NativeEngine = None  # type: ignore[assignment,misc]

if NativeEngine is None and (os.environ.get("CI") == "true" or os.environ.get("LEDGER_ENGINE") == "cython"):
    raise RuntimeError("the native engine (ledger.engine._c) is not built, but CI / LEDGER_ENGINE=cython needs it")

ENGINE_CLASSES: dict[str, type[Any]] = {"python": ReferenceEngine}
if NativeEngine is not None:
    ENGINE_CLASSES["cython"] = NativeEngine

SECOND = 1_000_000_000
START_NS = 1_700_000_000 * SECOND


@dataclass
class ColdJournal:
    """Transfer records in the order an engine handed them out, read back by ordinal as the ledger's journal
    reads them: the cold reader of a native engine whose hot window is kept small so that tests go through
    the cold path."""

    records: bytearray = field(default_factory=bytearray)
    reads: int = 0
    """Ordinals asked for so far."""

    def add(self, entries: Any) -> None:
        self.records += entries

    def __call__(self, ordinals: list[int]) -> dict[int, bytes]:
        self.reads += len(ordinals)
        return {o: bytes(self.records[o * 128 : (o + 1) * 128]) for o in ordinals if (o + 1) * 128 <= len(self.records)}


@dataclass
class ManualClock:
    """A clock that moves only when told: timestamps in tests are deterministic."""

    now: int = START_NS

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float = 0, *, ns: int = 0) -> None:
        self.now += int(seconds * SECOND) + ns


def small_config(**overrides: Any) -> EngineConfig:
    settings: dict[str, Any] = {
        "accounts_max": 1_000,
        "transfers_max": 10_000,
        "pending_transfers_max": 1_000,
        "verify": True,
    }
    settings.update(overrides)
    return EngineConfig(**settings)


@dataclass
class Harness:
    """An engine with typed helpers around its packed interface."""

    engine: Engine
    clock: ManualClock = field(default_factory=ManualClock)

    @classmethod
    def new(cls, engine_class: type[Any], clock: ManualClock | None = None, **config: Any) -> Harness:
        clock = clock or ManualClock()
        return cls(engine_class(small_config(**config), clock=clock), clock)

    def create_accounts(self, *accounts: Account) -> list[AccountResult]:
        return unpack_account_results(self.engine.create_accounts(pack_accounts(list(accounts))).results)

    def create_transfers(self, *transfers: Transfer) -> list[TransferResult]:
        return unpack_transfer_results(self.engine.create_transfers(pack_transfers(list(transfers))).results)

    def transfer_codes(self, *transfers: Transfer) -> list[int]:
        return [r.result for r in self.create_transfers(*transfers)]

    def account_codes(self, *accounts: Account) -> list[int]:
        return [r.result for r in self.create_accounts(*accounts)]

    def account(self, account_id: int) -> Account | None:
        found = unpack_accounts(self.engine.lookup_accounts(pack_ids([account_id])))
        return found[0] if found else None

    def transfer(self, transfer_id: int) -> Transfer | None:
        found = unpack_transfers(self.engine.lookup_transfers(pack_ids([transfer_id])))
        return found[0] if found else None

    def expire(self) -> list[int]:
        return unpack_ids(self.engine.expire_pending_transfers().expired)


class ProgressBar:
    """Stands in for a tqdm bar: keeps what was written and counts the steps."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps = 0

    def write(self, message: str, file: Any = None) -> None:
        self.lines.append(message)

    def set_description(self, text: str) -> None:
        pass

    def update(self) -> None:
        self.steps += 1


def require_compare_extra(*modules: str) -> None:
    """At the top of a test module of bench.compare: skip the module unless the `compare` extra that the
    comparison needs is installed (`pip install -e '.[compare]'`: numpy, matplotlib, TigerBeetle's client),
    so that the test extra stays light; under CI=true, where .ci/run installs it, fail instead."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            reason = f"{module} is missing ({exc}): bench.compare's tests need pip install -e '.[compare]'"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason}; .ci/run installs it", pytrace=False)
            pytest.skip(reason, allow_module_level=True)


def format_examples(examples: int = 1_000) -> settings:
    """At most `examples` (fewer if the profile asks for fewer), for tests that hold two encoders or decoders of
    one format equal: their inputs vary in few ways, which a thousand examples cover, and the CI profile's
    1,500 would cost a minute of the CI's budget more."""
    return settings(max_examples=min(examples, settings().max_examples))
