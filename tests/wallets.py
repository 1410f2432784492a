"""The wallet domain over a bare engine, for tests: an Operation that applies to the engine at once and keeps
the domain records each operation wrote, as the journal would, so a test can restart the domain from them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ledger.engine import Buffer, Engine, EngineConfig, select
from ledger.wallet import Wallets
from ledger.wallet._state import SNAPSHOT_HEAD

START_NS = 1_800_000_000 * 10**9
SECOND_NS = 10**9


@dataclass
class FakeClock:
    now_ns: int = START_NS
    step_ns: int = 1_000

    def __call__(self) -> int:
        self.now_ns += self.step_ns
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * SECOND_NS)


@dataclass
class EngineOperation:
    """One Operation on a bare engine: applied at once; its domain bytes go to `journal` when it ends."""

    engine: Engine
    clock: FakeClock
    journal: list[bytes]
    domain: bytearray = field(default_factory=bytearray)

    def create_accounts(self, events: Buffer) -> bytes:
        return self.engine.create_accounts(events).results

    def create_transfers(self, events: Buffer) -> bytes:
        return self.engine.create_transfers(events).results

    def lookup_accounts(self, ids: Buffer) -> bytes:
        return self.engine.lookup_accounts(ids)

    def lookup_transfers(self, ids: Buffer) -> bytes:
        return self.engine.lookup_transfers(ids)

    def now(self) -> int:
        return self.clock.now_ns

    def record(self, domain: bytes) -> None:
        self.domain += domain

    def __enter__(self) -> EngineOperation:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.domain:
            self.journal.append(bytes(self.domain))


class WalletBench:
    """An engine, a clock, the wallet domain and the journal of its domain records."""

    def __init__(self, engine_class: type[Engine] | None = None) -> None:
        self.clock = FakeClock()
        config = EngineConfig(accounts_max=10_000, transfers_max=100_000, pending_transfers_max=10_000, verify=True)
        self.engine: Engine = (engine_class or select(None))(config, clock=self.clock)  # type: ignore[call-arg]
        self.wallets = Wallets()
        self.journal: list[bytes] = []

    def op(self) -> EngineOperation:
        return EngineOperation(self.engine, self.clock, self.journal)

    def restarted(self) -> Wallets:
        """A new domain rebuilt from the journal's domain records alone (the engine keeps its state)."""
        wallets = Wallets()
        wallets.restore(b"")
        for seq, records in enumerate(self.journal, 1):
            wallets.replay(records, seq)
        return wallets


def snapshot_parts(snapshot: bytes) -> tuple[dict[str, Any], bytes]:
    """A domain snapshot's JSON part and its packed grants."""
    magic, size = SNAPSHOT_HEAD.unpack_from(snapshot)
    assert magic == b"LWS2"
    return json.loads(snapshot[SNAPSHOT_HEAD.size : SNAPSHOT_HEAD.size + size]), snapshot[SNAPSHOT_HEAD.size + size :]
