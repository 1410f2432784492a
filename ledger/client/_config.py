"""The client's configuration: one frozen value built from LEDGER_* variables and flags, and the channel it opens."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

import grpc

from ledger._settings import parse_setting, read_setting_file

IN_FLIGHT_MAX: Final = 64
"""Most requests one call (or one kind of batched call) may have in flight at once."""
MESSAGE_BYTES_MAX: Final = 4 << 20
"""The server's message limit (ledger/server/_serve.py): a full batch of 8190 records fits in either form."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Where the ledger is and how to talk to it; `from_env` reads LEDGER_<FIELD> for every field."""

    server: str = "127.0.0.1:7100"
    """host:port of the ledger's gRPC service (LEDGER_SERVER)."""
    api_key: str = ""
    """Sent as `authorization: Bearer <key>` on every call; empty sends none (LEDGER_API_KEY)."""
    tls: bool = False
    """TLS with the system's root certificates; implied by tls_ca or tls_cert."""
    tls_ca: Path | None = None
    """PEM file of the root certificates that sign the server's certificate."""
    tls_cert: Path | None = None
    """PEM certificate chain for mutual TLS; needs tls_key."""
    tls_key: Path | None = None
    """PEM private key of tls_cert."""
    timeout_seconds: float = 30.0
    """A call's overall deadline, retries included, unless the call names its own `timeout`."""
    retry_backoff_initial_seconds: float = 0.05
    """First pause before retrying UNAVAILABLE or RESOURCE_EXHAUSTED; doubles per attempt, with full jitter."""
    retry_backoff_max_seconds: float = 2.0
    batch_window_seconds: float = 0.001
    """Auto-batching: the longest a call waits for others to share its request while more keep arriving."""
    batch_in_flight_max: int = 4
    """Auto-batching: batched requests of one kind in flight at once; later calls gather meanwhile."""
    bulk_in_flight_max: int = 4
    """Requests of 8190 records in flight at once when one call sends more than that (calls may ask for
    another number; 1 keeps the order of application across requests)."""
    write_stream: bool = True
    """AsyncClient: send packed transfers (and the coalesced single ones) as messages on one long-lived
    TransferBatches stream instead of a call each (cheaper for both sides); False sends unary calls. Servers
    without TransferBatches get unary calls either way. The threads' Client always sends unary calls."""
    keepalive_time_ms: int = 30_000
    """Ping an idle connection with calls open after this long, to notice a dead peer."""
    keepalive_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if not self.server:
            raise ValueError("server must be host:port, got an empty string")
        for name in ("timeout_seconds", "retry_backoff_initial_seconds", "retry_backoff_max_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.retry_backoff_max_seconds < self.retry_backoff_initial_seconds:
            raise ValueError(
                f"retry_backoff_max_seconds ({self.retry_backoff_max_seconds}) is below "
                f"retry_backoff_initial_seconds ({self.retry_backoff_initial_seconds})"
            )
        if not 0 <= self.batch_window_seconds <= 1:
            raise ValueError(f"batch_window_seconds must be between 0 and 1, got {self.batch_window_seconds}")
        for name in ("batch_in_flight_max", "bulk_in_flight_max"):
            if not 1 <= getattr(self, name) <= IN_FLIGHT_MAX:
                raise ValueError(f"{name} must be between 1 and {IN_FLIGHT_MAX}, got {getattr(self, name)}")
        for name in ("keepalive_time_ms", "keepalive_timeout_ms"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both for mutual TLS, or neither")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()

    def channel_options(self) -> list[tuple[str, int]]:
        backoff_ms = int(self.retry_backoff_initial_seconds * 1000)
        return [
            ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
            ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            # Reconnect as often as calls retry, so a server that is back is found by the next attempt
            # rather than after gRPC's own reconnect backoff (which grows to minutes).
            ("grpc.initial_reconnect_backoff_ms", max(backoff_ms, 1)),
            ("grpc.min_reconnect_backoff_ms", max(backoff_ms, 1)),
            ("grpc.max_reconnect_backoff_ms", max(int(self.retry_backoff_max_seconds * 1000), 1)),
        ]

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, or None for a plaintext channel. Reads the PEM files now: a missing one fails here."""
        if not self.uses_tls:
            return None
        root = read_setting_file("tls_ca", self.tls_ca) if self.tls_ca else None
        chain = read_setting_file("tls_cert", self.tls_cert) if self.tls_cert else None
        key = read_setting_file("tls_key", self.tls_key) if self.tls_key else None
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """LEDGER_<FIELD> for every field (LEDGER_SERVER, LEDGER_API_KEY, LEDGER_TLS_CA, …); overrides win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"LEDGER_{f.name.upper()}")
            if raw:
                values[f.name] = parse_setting(f.name, raw, cls.__dataclass_fields__[f.name].default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("tls_ca", "tls_cert", "tls_key"):
            if isinstance(values.get(name), str):
                values[name] = Path(values[name])
        return cls(**values)
