"""Webhooks: each tenant's events, from the wallet event feed, posted to the endpoints it registered.

One worker of a gateway leads (`_store.Leadership`); the others only serve requests. The leader:

1. reads the feed of every enabled endpoint (`SubscribeEvents` after the endpoint's stored cursor, with its
   types) and records a delivery per event and endpoint, moving the cursor past it in the same transaction;
2. posts each due delivery, signed as Standard Webhooks says (`webhook-id` is the event's id, stable across
   retries and redeliveries; `webhook-timestamp` the attempt's time; `webhook-signature` one `v1,` HMAC-SHA256
   per secret in use), and records the attempt;
3. retries a failed one after each wait of the schedule (27.6 hours by default), then marks it failed.

So delivery is at least once: an event is recorded before it is posted and its cursor moves only with that
record, and a delivery is done only once its receiver answered 2xx. A leader that stops mid-way (or a ledger
that restarts) leaves nothing behind: the next leader reads each feed from the stored cursor (an event read
twice is recorded once) and posts what is still pending (a receiver may see a webhook-id twice: it dedupes
on it). Order across events is not promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from ledger.client import AsyncClient
from ledger.v1 import wallet_pb2

from ._config import GatewayConfig
from ._metrics import HttpMetrics
from ._store import Delivery, Endpoint, GatewayStore

logger = logging.getLogger(__name__)

URL_LENGTH_MAX: Final = 2_048
LEADER_RETRY_SECONDS: Final = 2.0
"""How often a worker that does not lead tries to."""
RECONCILE_SECONDS: Final = 1.0
"""How often the leader looks for endpoints added, changed or removed (by any worker)."""
IDLE_POLL_SECONDS: Final = 0.5
"""The longest the leader waits between looks for due deliveries (a redelivery asked of another worker)."""
FEED_RETRY_SECONDS: Final = 5.0
BATCH_MAX: Final = 1_000
ROTATION_OVERLAP_NS: Final = 24 * 3_600 * 10**9
"""After a rotation the old secret signs beside the new one for a day."""
ERROR_TEXT_MAX: Final = 300


class UrlRefused(ValueError):
    """A webhook URL the gateway will not post to; the message says why."""


def check_url(url: str, *, private_allowed: bool) -> None:
    """An http(s) URL with a host, and (unless `private_allowed`) no loopback, private or link-local address
    literal nor localhost; names are checked again, resolved, at each delivery."""
    if len(url) > URL_LENGTH_MAX:
        raise UrlRefused(f"is longer than {URL_LENGTH_MAX} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("must not carry a user name or password")
    if port == 0:
        raise UrlRefused("must not name port 0")
    if private_allowed:
        return
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        raise UrlRefused(_PRIVATE_REFUSAL)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when it is resolved, at each delivery
    if not _public(address):
        raise UrlRefused(_PRIVATE_REFUSAL)


_PRIVATE_REFUSAL: Final = (
    "names a loopback, private or link-local address: the gateway posts only to public addresses "
    "(LEDGER_GATEWAY_WEBHOOK_PRIVATE=true allows others, for a receiver inside the network)"
)


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def _check_resolved(url: str) -> None:
    """Every address the URL's host resolves to is public (UrlRefused if one is not)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError as exc:
        raise UrlRefused(f"its host {host} does not resolve: {exc}") from None
    for info in infos:
        if not _public(ipaddress.ip_address(info[4][0])):
            raise UrlRefused(f"its host {host} resolves to {info[4][0]}: {_PRIVATE_REFUSAL}")


def event_payload(event: wallet_pb2.WalletEvent) -> str:
    """The body of the event's webhook: Standard Webhooks' {type, timestamp, data} with the event's id."""
    created = event.created_at.ToDatetime(tzinfo=UTC)
    body = {
        "id": event.id,
        "type": event.type,
        "timestamp": created.isoformat().replace("+00:00", "Z"),
        "data": {
            "tenant": event.tenant,
            "wallet_id": event.wallet_id,
            "operation_id": event.operation_id,
            "amount": event.amount,
            "cursor": event.cursor,
            "record": json.loads(event.data_json) if event.data_json else {},
        },
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def signature(secrets: Iterable[str], message_id: str, at: datetime, payload: str) -> str:
    """The webhook-signature header: one `v1,<base64>` per secret, space-separated."""
    return " ".join(Webhook(secret).sign(message_id, at, payload) for secret in secrets)


class Webhooks:
    """The leader's work (see the module), in tasks of its own: `start` tries to lead, `stop` ends it all."""

    def __init__(self, config: GatewayConfig, store: GatewayStore, client: AsyncClient, metrics: HttpMetrics) -> None:
        self._config = config
        self._store = store
        self._client = client
        """Reads the feeds, with the events key."""
        self._metrics = metrics
        self._leadership = store.leadership()
        self._task: asyncio.Task[None] | None = None
        self._readers: dict[str, tuple[Endpoint, asyncio.Task[None]]] = {}
        self._events: asyncio.Queue[tuple[str, str, str, str, str, str]] = asyncio.Queue(maxsize=10 * BATCH_MAX)
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._feed_failures: dict[str, str] = {}

    @property
    def private_allowed(self) -> bool:
        return self._config.webhook_private

    @property
    def leading(self) -> bool:
        return self._leadership.held

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gateway-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """A delivery may be due now (a redelivery was asked for)."""
        self._wake.set()

    async def _run(self) -> None:
        """Try to lead until this worker does; lead until stopped. A failure (the store lost) ends the lead,
        said in the log, and the worker tries again: another may lead meanwhile."""
        while True:
            try:
                if await asyncio.to_thread(self._leadership.try_acquire):
                    logger.info("webhooks: this gateway worker delivers (store %s)", self._store.description)
                    await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.error("webhooks: delivering stopped (%s: %s); trying again", type(exc).__name__, exc)
            finally:
                await self._stop_leading()
            await asyncio.sleep(LEADER_RETRY_SECONDS)

    async def _lead(self) -> None:
        self._http = httpx.AsyncClient(
            timeout=self._config.webhook_timeout_seconds, follow_redirects=False,
            limits=httpx.Limits(max_connections=self._config.webhook_concurrency), trust_env=False,
            headers={"user-agent": "ledger-gateway-webhooks/1"},
        )  # fmt: skip
        tasks = [
            asyncio.create_task(self._reconcile(), name="webhook-endpoints"),
            asyncio.create_task(self._record(), name="webhook-record"),
            asyncio.create_task(self._deliver_due(), name="webhook-deliver"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_leading(self) -> None:
        readers = [task for _, task in self._readers.values()]
        for task in (*readers, *self._sending):
            task.cancel()
        await asyncio.gather(*readers, *self._sending, return_exceptions=True)
        self._readers.clear()
        while not self._events.empty():  # read but not recorded: the next lead reads them again
            self._events.get_nowait()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await asyncio.to_thread(self._leadership.release)

    # -- reading the feeds ---------------------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Keep one feed reader per enabled endpoint, restarted when its types change."""
        while True:
            try:
                endpoints = {e.endpoint_id: e for e in await asyncio.to_thread(self._store.enabled_endpoints)}
            except Exception as exc:
                logger.warning("webhooks: cannot read the endpoints (%s); trying again", exc)
                endpoints = {endpoint_id: endpoint for endpoint_id, (endpoint, _) in self._readers.items()}
            for endpoint_id, (endpoint, task) in list(self._readers.items()):
                current = endpoints.get(endpoint_id)
                if current is None or current.types != endpoint.types or task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                    del self._readers[endpoint_id]
            for endpoint_id, endpoint in endpoints.items():
                if endpoint_id not in self._readers:
                    task = asyncio.create_task(self._read_feed(endpoint), name=f"webhook-feed-{endpoint_id}")
                    self._readers[endpoint_id] = (endpoint, task)
            await asyncio.sleep(RECONCILE_SECONDS)

    async def _read_feed(self, endpoint: Endpoint) -> None:
        cursor = endpoint.feed_cursor
        while True:
            request = wallet_pb2.SubscribeEventsRequest(tenant=endpoint.tenant, after=cursor, types=endpoint.types)
            try:
                async for event in self._client.subscribe_events(request):
                    await self._events.put((endpoint.endpoint_id, endpoint.tenant, event.id, event.type,
                                            event_payload(event), event.cursor))  # fmt: skip
                    cursor = event.cursor
                    self._feed_failures.pop(endpoint.endpoint_id, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused (a key revoked, no events key): said once, tried again
                if self._feed_failures.get(endpoint.endpoint_id) != str(exc):
                    logger.warning("webhooks: cannot read tenant %s's events for endpoint %s: %s",
                                   endpoint.tenant, endpoint.endpoint_id, exc)  # fmt: skip
                self._feed_failures[endpoint.endpoint_id] = str(exc)
            await asyncio.sleep(FEED_RETRY_SECONDS)

    async def _record(self) -> None:
        """Record what the readers read, in batches, each in one transaction with the cursors it moves."""
        while True:
            batch = [await self._events.get()]
            while len(batch) < BATCH_MAX and not self._events.empty():
                batch.append(self._events.get_nowait())
            while True:
                try:
                    added = await asyncio.to_thread(self._store.add_deliveries, batch)
                    break
                except Exception as exc:
                    logger.warning("webhooks: cannot record %d events (%s); trying again", len(batch), exc)
                    await asyncio.sleep(1.0)
            self._metrics.webhook_events.inc(added)
            self._wake.set()

    # -- delivering ------------------------------------------------------------------------------------------------

    async def _deliver_due(self) -> None:
        while True:
            free = self._config.webhook_concurrency - len(self._in_flight)
            due: list[Delivery] = []
            if free > 0:
                try:
                    due = await asyncio.to_thread(
                        self._store.due_deliveries, time.time_ns(), free, sorted(self._in_flight)
                    )
                except Exception as exc:
                    logger.warning("webhooks: cannot read due deliveries (%s); trying again", exc)
            for delivery in due:
                self._in_flight.add(delivery.delivery_id)
                task = asyncio.create_task(self._send(delivery), name=f"webhook-send-{delivery.delivery_id}")
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            if len(due) == free and free > 0:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    async def _send(self, delivery: Delivery) -> None:
        try:
            endpoint = await asyncio.to_thread(self._store.endpoint, delivery.tenant, delivery.endpoint_id)
            started = time.time_ns()
            status_code, error = 0, ""
            if endpoint is None:
                error = "the endpoint was deleted"
            else:
                status_code, error = await self._post(endpoint, delivery)
            latency_ms = (time.time_ns() - started) // 1_000_000
            succeeded = 200 <= status_code < 300
            next_at: int | None = None
            schedule = self._config.retry_schedule
            if not succeeded and endpoint is not None and delivery.attempts < len(schedule):
                next_at = time.time_ns() + int(schedule[delivery.attempts] * 1e9)
            await asyncio.to_thread(
                self._store.record_attempt, delivery, started_at=started, status_code=status_code,
                latency_ms=latency_ms, error=error[:ERROR_TEXT_MAX], succeeded=succeeded, next_attempt_at=next_at,
            )  # fmt: skip
            outcome = "delivered" if succeeded else "retrying" if next_at is not None else "failed"
            self._metrics.webhook_attempts.labels(outcome).inc()
            self._metrics.webhook_latency.observe(latency_ms / 1000)
            if outcome == "failed":
                logger.warning("webhooks: delivery %s of event %s to endpoint %s failed after %d attempts: %s",
                               delivery.delivery_id, delivery.event_id, delivery.endpoint_id, delivery.attempts + 1,
                               error or f"HTTP {status_code}")  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store is away: the delivery stays pending and is tried again
            logger.warning("webhooks: cannot record delivery %s (%s)", delivery.delivery_id, exc)
        finally:
            self._in_flight.discard(delivery.delivery_id)

    async def _post(self, endpoint: Endpoint, delivery: Delivery) -> tuple[int, str]:
        """The receiver's status code (0 if none) and what went wrong, if anything."""
        assert self._http is not None
        try:
            if not self._config.webhook_private:
                await _check_resolved(endpoint.url)
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery.event_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature(endpoint.secrets_at(time.time_ns()), delivery.event_id, now,
                                               delivery.payload),
            }  # fmt: skip
            response = await self._http.post(endpoint.url, content=delivery.payload.encode(), headers=headers)
        except UrlRefused as exc:
            return 0, f"url {exc}"
        except httpx.TimeoutException:
            return 0, f"no answer within {self._config.webhook_timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"
