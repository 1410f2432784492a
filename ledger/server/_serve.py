"""Server assembly: the Ledger service, standard health checking and reflection on one grpc.aio server,
and its Prometheus metrics on an HTTP port of their own."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from ledger._settings import read_setting_file
from ledger.auth import Authenticator, AuthInterceptor
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine._limits import BATCH_EVENTS_MAX, TRANSFER_SIZE

from ._metrics import LedgerMetrics
from ._servicer import SERVICE_NAME, LedgerService, add_ledger_service

logger = logging.getLogger(__name__)
Result = TypeVar("Result")

TRANSFER_MESSAGE_BYTES_MAX: Final = 160
"""A typed Transfer with every field set, framing included."""
MESSAGE_BYTES_MAX: Final = 4 << 20
KEEPALIVE_TIME_MS: Final = 30_000
KEEPALIVE_TIMEOUT_MS: Final = 10_000

assert BATCH_EVENTS_MAX * TRANSFER_MESSAGE_BYTES_MAX < MESSAGE_BYTES_MAX, "a full typed batch must fit a message"
assert BATCH_EVENTS_MAX * TRANSFER_SIZE < MESSAGE_BYTES_MAX, "a full packed batch must fit a message"


def server_credentials(config: LedgerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files (client certificates required if a client CA is set)."""
    if not config.tls_cert:
        return None
    client_ca = read_setting_file("tls_client_ca", config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(read_setting_file("tls_key", config.tls_key), read_setting_file("tls_cert", config.tls_cert))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def transport(config: LedgerConfig) -> str:
    """How clients reach the server, for the start line."""
    if config.tls_client_ca:
        return "TLS with client certificates (mTLS)"
    return "TLS" if config.tls_cert else "plaintext"


async def start_server(
    ledger: Ledger,
    address: str = "127.0.0.1:0",
    *,
    metrics: LedgerMetrics | None = None,
    auth: Authenticator | None = None,
) -> tuple[grpc.aio.Server, int, health_aio.HealthServicer]:
    """Serve `ledger` on `address`; returns the started server, its port and its health servicer.

    With `metrics`, every call is counted and timed and the metrics watch `ledger`. With `auth`, every
    call but health checking and reflection needs an API key its role allows.
    """
    config = ledger.config
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if metrics is not None:
        metrics.watch(ledger)
        interceptors.append(metrics.interceptor)  # first: it sees every status the others answer with
    if auth is not None:
        interceptors.append(AuthInterceptor(auth))
    server = grpc.aio.server(
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.concurrent_rpcs_max,
        options=[
            ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
            ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
            ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIMEOUT_MS),
        ],
    )
    add_ledger_service(LedgerService(ledger, metrics), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection([SERVICE_NAME, health_name, reflection.SERVICE_NAME], server)
    credentials = server_credentials(config)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    for service in ("", SERVICE_NAME):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health


def run_event_loop(main: Coroutine[Any, Any, Result]) -> Result:
    """Run `main` on uvloop where it is installed (a faster loop for grpc.aio), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def serve(config: LedgerConfig, *, ready: Callable[[int], None] | None = None) -> None:
    """Run the ledger behind gRPC until SIGTERM or SIGINT, then shut down gracefully.

    Shutdown: health goes NOT_SERVING, no new calls are accepted, calls in flight get
    `shutdown_grace_seconds` to finish, then everything applied is made durable and checkpointed.
    """
    endpoint = config.metrics_endpoint
    metrics = LedgerMetrics() if endpoint is not None else None
    ledger = await Ledger.open(
        config,
        on_commit=metrics.journal_committed if metrics else None,
        on_apply=metrics.engine_applied if metrics else None,
    )
    auth: Authenticator | None = None
    try:
        auth = await Authenticator.open(config)
        metrics_url = "off"
        if metrics is not None and endpoint is not None:
            metrics_port = metrics.start_http(*endpoint)
            metrics_url = f"on http://{config.metrics_address.rsplit(':', 1)[0]}:{metrics_port}/metrics"
        server, port, health = await start_server(ledger, config.address, metrics=metrics, auth=auth)
        host = config.address.rsplit(":", 1)[0]
        logger.info(
            "ledger serving gRPC on %s:%d (%s), store %s, engine %s, %d accounts, %d transfers, metrics %s, %s",
            host,
            port,
            transport(config),
            ledger.store.description,
            ledger.stats().implementation,
            ledger.recovery.accounts_count,
            ledger.recovery.transfers_count,
            metrics_url,
            auth.description if auth is not None else "auth off (LEDGER_AUTH=off)",
        )
        if ready is not None:
            ready(port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("ledger stopping: draining calls for up to %.0f s", config.shutdown_grace_seconds)
        await health.enter_graceful_shutdown()
        ledger.end_subscriptions()  # feeds never finish by themselves; their clients resume elsewhere or later
        await server.stop(config.shutdown_grace_seconds)
    finally:
        if auth is not None:
            await auth.close()
        await ledger.close()
        if metrics is not None:
            await asyncio.to_thread(metrics.stop_http)
