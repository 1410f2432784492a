"""The gateway's configuration: one frozen dataclass, built once from LEDGER_GATEWAY_* variables and flags."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from ._store import sqlite_path

BODY_BYTES_MAX: Final = 1 << 20
"""The largest request body read; a bulk grant run of 10,000 items fits in it."""
WEBHOOK_RETRY_SECONDS: Final = "5,300,1800,7200,18000,36000,36000"
"""Standard Webhooks' schedule: retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, 27.6 hours in all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    ledger: str = "127.0.0.1:7100"
    """The ledger's gRPC address (host:port) (LEDGER_GATEWAY_LEDGER)."""
    host: str = "127.0.0.1"
    """Where HTTP is served (LEDGER_GATEWAY_HOST)."""
    port: int = 8080
    """HTTP port; 0 picks a free one (LEDGER_GATEWAY_PORT)."""
    timeout_seconds: float = 10.0
    """A request's deadline, handed to its RPCs as their gRPC deadline; past it the answer is 503 with
    Retry-After, and the outcome of a write is unknown (a retry with the same Idempotency-Key is safe)."""
    body_bytes_max: int = BODY_BYTES_MAX
    """Larger request bodies are refused with 413 before they are read."""
    clients_max: int = 10_000
    """API keys with a client kept (one channel for all); past it the least recently used is closed."""
    store: str = "sqlite:data/gateway.sqlite3"
    """Where webhook endpoints, deliveries and grant jobs are kept: sqlite:PATH or a postgresql:// URL (one
    store for every worker of one gateway; `ledger serve` puts it beside the ledger's)."""
    events_key: str = field(default="", repr=False)
    """The API key webhook deliveries read tenants' event feeds with (an admin key), when the ledger asks for
    keys; never sent for a request. `ledger serve` gives its own gateway a key that lives in memory only."""
    webhook_retry_seconds: str = WEBHOOK_RETRY_SECONDS
    """Waits before each retry of a failed delivery (comma-separated seconds); after the last, it has failed."""
    webhook_timeout_seconds: float = 15.0
    """How long a receiver has to answer a delivery."""
    webhook_concurrency: int = 16
    """Deliveries in flight at once."""
    public_url: str = ""
    """The gateway's address as customers reach it (https://pay.example.com), for pay links' URLs; empty: the
    address each request came to."""
    webhook_private: bool = False
    """Whether webhook URLs may name loopback, private or link-local addresses (off: a tenant could otherwise
    make the gateway call services inside its network)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65_535:
            raise ValueError(f"port: {self.port} is not a TCP port")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds: {self.timeout_seconds} must be above 0")
        if not 1_024 <= self.body_bytes_max <= 64 << 20:
            raise ValueError(f"body_bytes_max: {self.body_bytes_max} must be 1,024 to 64 MiB")
        if self.clients_max < 1:
            raise ValueError(f"clients_max: {self.clients_max} must be at least 1")
        self.retry_schedule  # noqa: B018 - parsed here to refuse a bad one at start
        sqlite_path(self.store)  # likewise the store's URL
        if not 0 < self.webhook_timeout_seconds <= 300:
            raise ValueError(f"webhook_timeout_seconds: {self.webhook_timeout_seconds} must be above 0 and at most 300")
        if self.public_url and not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", self.public_url):
            raise ValueError(f"public_url: {self.public_url!r} is not an http:// or https:// URL")
        if not 1 <= self.webhook_concurrency <= 1_000:
            raise ValueError(f"webhook_concurrency: {self.webhook_concurrency} must be 1 to 1,000")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GatewayConfig:
        """LEDGER_GATEWAY_<FIELD> for every field; overrides (flags) win where they are not None."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"LEDGER_GATEWAY_{f.name.upper()}")
            if raw:
                kind: type[Any] = type(f.default)
                try:
                    values[f.name] = _flag(raw) if kind is bool else kind(raw)
                except ValueError:
                    raise ValueError(f"LEDGER_GATEWAY_{f.name.upper()}: {raw!r} is not a {kind.__name__}") from None
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    @property
    def retry_schedule(self) -> tuple[float, ...]:
        """`webhook_retry_seconds` as numbers (ValueError naming it if it is not a list of 1 to 20 waits of up
        to a week)."""
        try:
            waits = tuple(float(part) for part in self.webhook_retry_seconds.split(","))
        except ValueError:
            waits = ()
        if not 1 <= len(waits) <= 20 or not all(0 < wait <= 7 * 86_400 for wait in waits):
            raise ValueError(
                f"webhook_retry_seconds: {self.webhook_retry_seconds!r} must be 1 to 20 comma-separated waits in "
                "seconds, each above 0 and at most a week"
            )
        return waits

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
