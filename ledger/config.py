"""The ledger's configuration: one frozen value, built once from LEDGER_* variables and flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ledger._settings import parse_setting
from ledger.engine import EngineConfig
from ledger.records.limits import (
    ACCOUNTS_MAX_DEFAULT,
    PENDING_TRANSFERS_MAX_DEFAULT,
    TRANSFERS_HOT_DEFAULT,
    TRANSFERS_MAX_DEFAULT,
)

MIB = 1 << 20
AUTH_POLICIES = ("auto", "required", "off")
AUTH_REFRESH_SECONDS_MAX = 3600.0
HISTORY_READS_CONCURRENT_MAX = 64
EMPTY_MEANS_OFF = frozenset({"metrics_address", "http_address"})
"""Fields whose LEDGER_* variable, set but empty, turns the feature off instead of keeping the default."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerConfig:
    """Everything a ledger process is told; see the README's configuration table."""

    store: str = ""
    """postgresql://… for PostgreSQL; sqlite:///path or a path for SQLite; empty: SQLite in data_dir."""
    data_dir: Path = Path("data")
    address: str = "127.0.0.1:7100"
    """Where `ledger serve` listens for gRPC (host:port; port 0 picks a free one)."""
    metrics_address: str = "127.0.0.1:9464"
    """Where `ledger serve` serves Prometheus metrics over HTTP (host:port; port 0 picks a free one; empty: off)."""
    http_address: str = "127.0.0.1:8080"
    """Where `ledger serve` serves the HTTP gateway (host:port; port 0 picks a free one; empty: off)."""
    shutdown_grace_seconds: float = 10.0
    """On SIGTERM, how long calls in flight may take to finish before they are cancelled."""
    concurrent_rpcs_max: int = 10_000
    """RPCs in progress at once (streams count as one); past this new calls get RESOURCE_EXHAUSTED."""
    tls_cert: str = ""
    """PEM certificate chain of the server; with `tls_key`, gRPC is served over TLS only."""
    tls_key: str = ""
    """PEM private key of `tls_cert`."""
    tls_client_ca: str = ""
    """PEM CA certificates; when set, every client must present a certificate they signed (mTLS)."""
    accounts_max: int = ACCOUNTS_MAX_DEFAULT
    transfers_max: int = TRANSFERS_MAX_DEFAULT
    pending_transfers_max: int = PENDING_TRANSFERS_MAX_DEFAULT
    transfers_hot: int = TRANSFERS_HOT_DEFAULT
    """The newest transfers whose records the native engine keeps in memory (128 bytes each): a retry of one
    of them is answered without reading the journal. Older records are read back from the store when a retry,
    a late post or void or a lookup needs them; open holds always stay in memory."""
    journal_backlog_bytes_max: int = 256 * MIB
    """Entries applied but not yet durable; past this, writes are refused as overloaded."""
    commit_bytes_max: int = 64 * MIB
    """A group past this size is written as several commits (cut between calls, so one commit holds at
    most this plus one call's entries) in one transaction."""
    durable_wait_seconds: float = 10.0
    """How long a call waits for its entries to become durable before it answers 'unavailable, retry'."""
    checkpoint_every_transfers: int = 1_000_000
    """A checkpoint is taken in the background once this many transfers were journaled since the last one…"""
    checkpoint_every_commits: int = 100_000
    """…or this many journal commits: a POS fleet writes many small ones, and recovery pays for each…"""
    checkpoint_every_bytes: int = 256 * MIB
    """…or this many bytes of journal records (accounts, transfers, expiries, balance history)…"""
    checkpoint_interval_seconds: float = 300.0
    """…or after this long, if anything was journaled."""
    checkpoint_fork: bool = True
    """The domain's part of a checkpoint (the wallets) is serialized by a forked copy of the process, so calls
    wait only for the fork (ledger.core._forked); false, or where there is no fork, on the event loop."""
    history_flush_transfers: int = 1_048_576
    """The history index writes its in-memory tail to the store after this many transfers…"""
    history_flush_seconds: float = 10.0
    """…or after this long."""
    history_reads_concurrent_max: int = 1
    """History and balance pages (queries and replies) worked on at once, each on a thread of its own; the rest
    wait their turn, callers taking turns (ledger.core._reads). Building replies is Python work, which one
    process does one thread at a time: a second thread helps where the store's reads wait on the network
    (PostgreSQL), and costs the event loop its share of the interpreter."""
    history_reads_per_caller_max: int = 64
    """History and balance reads one caller (the tenant of its API key; without keys, its connection) may have
    waiting or running; past this its next one gets RESOURCE_EXHAUSTED."""
    expire_interval_seconds: float = 1.0
    """How often holds past their timeout are expired when no batch arrives to do it."""
    switch_interval_seconds: float = 0.001
    """`ledger serve`: how long a thread may keep the interpreter before another gets it (sys.setswitchinterval;
    Python's default is 0.005): shorter keeps the event loop answering while reads, the journal writer or the
    history index run Python; 0 leaves Python's default."""
    verify: bool = False
    """Check O(n) engine invariants after every batch (tests)."""
    auth: str = "auto"
    """API keys on the gRPC server: `auto` (required once any key was ever created in the store), `required`
    or `off`; see ledger.auth."""
    auth_refresh_seconds: float = 5.0
    """How often the server re-reads the key table, so a revocation takes effect within this time."""

    def __post_init__(self) -> None:
        for name in ("journal_backlog_bytes_max", "commit_bytes_max", "checkpoint_every_transfers",
                     "checkpoint_every_commits", "checkpoint_every_bytes", "history_flush_transfers",
                     "history_reads_concurrent_max", "history_reads_per_caller_max"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.commit_bytes_max > 512 * MIB:
            raise ValueError(
                f"commit_bytes_max must be at most {512 * MIB} (one stored value), got {self.commit_bytes_max}"
            )
        if self.history_reads_concurrent_max > HISTORY_READS_CONCURRENT_MAX:
            raise ValueError(
                f"history_reads_concurrent_max must be at most {HISTORY_READS_CONCURRENT_MAX} (a thread each), "
                f"got {self.history_reads_concurrent_max}"
            )
        if self.concurrent_rpcs_max < 1:
            raise ValueError(f"concurrent_rpcs_max must be at least 1, got {self.concurrent_rpcs_max}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        for name in ("durable_wait_seconds", "checkpoint_interval_seconds", "expire_interval_seconds",
                     "history_flush_seconds", "shutdown_grace_seconds", "auth_refresh_seconds"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.switch_interval_seconds <= 1:
            raise ValueError(f"switch_interval_seconds must be between 0 and 1, got {self.switch_interval_seconds}")
        if self.auth_refresh_seconds > AUTH_REFRESH_SECONDS_MAX:
            raise ValueError(
                f"auth_refresh_seconds must be at most {AUTH_REFRESH_SECONDS_MAX} (a revocation must take effect), "
                f"got {self.auth_refresh_seconds}"
            )
        if self.auth not in AUTH_POLICIES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_POLICIES)}, got {self.auth!r}")
        _ = self.metrics_endpoint, self.http_endpoint  # names the field if it is not host:port

    @property
    def metrics_endpoint(self) -> tuple[str, int] | None:
        """`metrics_address` as (host, port), IPv6 brackets removed; None when metrics are off."""
        return _endpoint(self.metrics_address, "metrics_address", "for no metrics")

    @property
    def http_endpoint(self) -> tuple[str, int] | None:
        """`http_address` as (host, port), IPv6 brackets removed; None when the gateway is off."""
        return _endpoint(self.http_address, "http_address", "for no HTTP gateway")

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.data_dir / 'ledger.sqlite3'}"

    @property
    def engine(self) -> EngineConfig:
        return EngineConfig(
            accounts_max=self.accounts_max,
            transfers_max=self.transfers_max,
            pending_transfers_max=self.pending_transfers_max,
            transfers_hot=self.transfers_hot,
            verify=self.verify,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LedgerConfig:
        """LEDGER_<FIELD> for every field (LEDGER_DATABASE_URL also names the store); overrides win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if environ.get("LEDGER_DATABASE_URL"):
            values["store"] = environ["LEDGER_DATABASE_URL"]
        for f in fields(cls):
            raw = environ.get(f"LEDGER_{f.name.upper()}")
            if raw is None or (raw == "" and f.name not in EMPTY_MEANS_OFF):
                continue
            values[f.name] = parse_setting(f.name, raw, cls.__dataclass_fields__[f.name].default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _endpoint(address: str, name: str, off: str) -> tuple[str, int] | None:
    if not address:
        return None
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"{name} must be host:port (port 0 picks a free one) or empty {off}, got {address!r}")
    return host, int(port)
