"""The gateway's configuration: one frozen dataclass, built once from LEDGER_GATEWAY_* variables and flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

BODY_BYTES_MAX: Final = 1 << 20
"""The largest request body read; a bulk grant run of 10,000 items fits in it."""


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

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65_535:
            raise ValueError(f"port: {self.port} is not a TCP port")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds: {self.timeout_seconds} must be above 0")
        if not 1_024 <= self.body_bytes_max <= 64 << 20:
            raise ValueError(f"body_bytes_max: {self.body_bytes_max} must be 1,024 to 64 MiB")
        if self.clients_max < 1:
            raise ValueError(f"clients_max: {self.clients_max} must be at least 1")

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
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ValueError(f"LEDGER_GATEWAY_{f.name.upper()}: {raw!r} is not a {kind.__name__}") from None
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
