"""Server assembly: the Ledger service, standard health checking and reflection on one grpc.aio server,
and its Prometheus metrics on an HTTP port of their own."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from ledger._settings import read_setting_file
from ledger.auth import Authenticator, AuthInterceptor, MethodPermissions
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.journal import sqlite_file
from ledger.wallet import Wallets

from ._limits import MESSAGE_BYTES_MAX
from ._metrics import LedgerMetrics
from ._notify import Notifier, load_notifier
from ._redact import install_secret_filter
from ._servicer import ledger_service
from ._services import Service
from ._wallet import sweep_expiries, wallet_service

if TYPE_CHECKING:  # the gateway and the client load only when HTTP is served
    from gateway import RunningGateway
    from ledger.client import AsyncClient

logger = logging.getLogger(__name__)
Result = TypeVar("Result")

KEEPALIVE_TIME_MS: Final = 30_000
KEEPALIVE_TIMEOUT_MS: Final = 10_000


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


class AddressInUse(OSError):
    """Another process listens on an address this server was to listen on; nothing was started."""


def split_address(address: str) -> tuple[str, int]:
    """host:port (or [v6]:port) as (host, port)."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"address must be host:port, got {address!r}") from None
    return host.strip("[]"), number


def check_address_free(address: str, what: str) -> None:
    """Raise AddressInUse if something already listens on `address` (`what`: the setting, for the message).

    gRPC turns SO_REUSEPORT on by default, which lets a second server bind a port another still
    listens on, after which callers alternate between the two: money split across two journals.
    The server turns that off; this check says so clearly, and before recovery starts.
    """
    host, port = split_address(address)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ValueError(f"{what} {address}: cannot resolve {host!r}: {exc.strerror}") from None
    for family, kind, protocol, _, sockaddr in infos:
        with contextlib.closing(socket.socket(family, kind, protocol)) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUse(
                        exc.errno,
                        f"{what} {address} is already in use (another ledger or program listens there); "
                        "stop it or choose another address",
                    ) from None
                if exc.errno != errno.EADDRNOTAVAIL:  # e.g. no IPv6 on this host: gRPC skips it too
                    raise OSError(exc.errno, f"{what} {address}: cannot listen there: {exc.strerror}") from None


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
    services: Sequence[Service] | None = None,
) -> tuple[grpc.aio.Server, int, health_aio.HealthServicer]:
    """Serve `services` (default: the Ledger service over `ledger`) on `address`, with health checking and
    reflection; returns the started server, its port and its health servicer.

    With `metrics`, every call is counted and timed and the metrics watch `ledger`. With `auth`, every
    call but health checking and reflection needs an API key whose role grants the permission its service
    names for it.
    """
    config = ledger.config
    install_secret_filter()
    if services is None:
        services = [ledger_service(ledger, metrics)]
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if metrics is not None:
        metrics.watch(ledger)
        interceptors.append(metrics.interceptor)  # first: it sees every status the others answer with
    if auth is not None:
        permissions = MethodPermissions((service.name, service.permissions) for service in services)
        interceptors.append(AuthInterceptor(auth, permissions))
    server = grpc.aio.server(
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.concurrent_rpcs_max,
        options=[
            ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
            ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
            ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIMEOUT_MS),
            # One server per address: with SO_REUSEPORT (gRPC's default) a second server could bind
            # a port this one listens on, and callers would alternate between two ledgers.
            ("grpc.so_reuseport", 0),
        ],
    )
    for service in services:
        service.register(server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    names = [service.name for service in services]
    reflection.enable_server_reflection([*names, health_name, reflection.SERVICE_NAME], server)
    credentials = server_credentials(config)
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as exc:  # gRPC says only that it could not bind: find out why, for the message
        check_address_free(address, "address")
        raise OSError(f"address {address}: cannot listen there ({exc})") from None
    await server.start()
    for name in ("", *names):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health


class EmbeddedGateway:
    """The HTTP gateway in the server's process and event loop, over a client of the server's own gRPC port."""

    def __init__(self, running: RunningGateway, client: AsyncClient) -> None:
        self._running = running
        self._client = client

    @classmethod
    async def start(cls, config: LedgerConfig, grpc_port: int, auth: Authenticator | None) -> EmbeddedGateway | None:
        endpoint = config.http_endpoint
        if endpoint is None:
            return None
        if config.tls_client_ca:
            logger.warning("HTTP gateway off: the gRPC port requires client certificates; run `ledger gateway` with "
                           "its own (LEDGER_TLS_CERT and LEDGER_TLS_KEY)")  # fmt: skip
            return None
        from gateway import GatewayConfig, start_gateway  # the gateway loads only when it is served
        from ledger.client import AsyncClient, ClientConfig

        grpc_host = split_address(config.address)[0]
        if grpc_host in ("", "0.0.0.0", "::"):
            grpc_host = "127.0.0.1"
        target = f"[{grpc_host}]:{grpc_port}" if ":" in grpc_host else f"{grpc_host}:{grpc_port}"
        client = AsyncClient(ClientConfig(server=target, tls_ca=Path(config.tls_cert) if config.tls_cert else None))
        host, port = endpoint
        # Its webhooks read tenants' feeds with a key of the server's own, and keep their state beside the
        # ledger's: a file next to the SQLite journal, or tables in the same PostgreSQL database.
        events_key = auth.own_key("the embedded HTTP gateway's webhooks") if auth is not None else None
        store = None if os.environ.get("LEDGER_GATEWAY_STORE") else gateway_store_url(config.store_url)
        gateway_config = GatewayConfig.from_env(ledger=target, host=host, port=port, store=store, events_key=events_key)
        try:
            running = await start_gateway(gateway_config, client=client, grace_seconds=config.shutdown_grace_seconds)
        except BaseException:
            await client.close()
            raise
        return cls(running, client)

    @property
    def description(self) -> str:
        url = self._running.url
        return f"on {url} (docs {url}/docs)"

    async def stop(self) -> None:
        await self._running.stop()
        await self._client.close()


def gateway_store_url(store_url: str) -> str:
    """Where the embedded gateway keeps its own state for a ledger whose journal is at `store_url`."""
    journal = sqlite_file(store_url)
    if journal is None:
        return store_url
    return f"sqlite:///{Path(journal).with_name('gateway.sqlite3')}"


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
    if config.switch_interval_seconds:
        # The event loop shares the interpreter with the read, journal and history threads: a thread busy in
        # Python keeps it waiting up to this long each time (5 ms by default).
        sys.setswitchinterval(config.switch_interval_seconds)
    # Taken addresses are found before recovery, which may take a while, and before the journal is opened.
    check_address_free(config.address, "address")
    if config.metrics_address:
        check_address_free(config.metrics_address, "metrics_address")
    if config.http_address:
        check_address_free(config.http_address, "http_address")
    metrics = LedgerMetrics() if endpoint is not None else None
    wallets = Wallets()
    ledger = await Ledger.open(
        config,
        on_commit=metrics.journal_committed if metrics else None,
        on_apply=metrics.engine_applied if metrics else None,
        domain=wallets,
    )
    # What recovery built lives as long as the server: the cycle collector's full passes, which hold the
    # interpreter for tens of milliseconds per million objects, need not walk it again.
    gc.freeze()
    auth: Authenticator | None = None
    notifier: Notifier | None = None
    sweeps: asyncio.Task[None] | None = None
    http: EmbeddedGateway | None = None
    try:
        auth = await Authenticator.open(config)
        metrics_url = "off"
        if metrics is not None and endpoint is not None:
            metrics_port = metrics.start_http(*endpoint)
            metrics_url = f"on http://{config.metrics_address.rsplit(':', 1)[0]}:{metrics_port}/metrics"
        notifier = load_notifier(os.environ.get("LEDGER_NOTIFIER", ""), config.store_url)
        services = [ledger_service(ledger, metrics), wallet_service(ledger, wallets, metrics, notifier)]
        server, port, health = await start_server(ledger, config.address, metrics=metrics, auth=auth, services=services)
        sweeps = asyncio.get_running_loop().create_task(sweep_expiries(ledger, wallets), name="wallet-expiry")
        host = config.address.rsplit(":", 1)[0]
        http = await EmbeddedGateway.start(config, port, auth)
        logger.info(
            "ledger serving gRPC on %s:%d (%s) with services %s, store %s, engine %s, %d accounts, %d transfers, "
            "%d wallet tenants, HTTP %s, metrics %s, %s",
            host,
            port,
            transport(config),
            ", ".join(service.name for service in services),
            ledger.store.description,
            ledger.stats().implementation,
            ledger.recovery.accounts_count,
            ledger.recovery.transfers_count,
            len(wallets.state.tenants),
            http.description if http is not None else "off",
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
        if http is not None:  # HTTP first: its requests in flight still reach the ledger
            await http.stop()
            http = None
        await health.enter_graceful_shutdown()
        # Feeds and write streams never finish by themselves: feeds end, write streams answer what they took
        # and end; their clients resume elsewhere or later.
        ledger.begin_shutdown()
        await server.stop(config.shutdown_grace_seconds)
    finally:
        if http is not None:
            await http.stop()
        if sweeps is not None:
            sweeps.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeps
        if auth is not None:
            await auth.close()
        if notifier is not None:
            notifier.close()
        await ledger.close()
        if metrics is not None:
            await asyncio.to_thread(metrics.stop_http)
