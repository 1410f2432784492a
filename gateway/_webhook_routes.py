"""Resources the gateway keeps itself: webhook endpoints with their deliveries, and bulk grant jobs.

The ledger still decides who may touch them: the caller's key is shown to GetServerInfo, which names its tenant
and permissions (one key table), and the key must act for the path's tenant with `wallet.webhooks` (endpoints
and deliveries) or `wallet.grant` (jobs). A key of another tenant gets 403 and learns nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, Parameter, QueryParameter

from ledger.client import AsyncClient
from ledger.v1 import wallet_pb2

from ._calls import Currencies, outcome, timestamp_of
from ._context import mark_replayed
from ._models import (
    CreateGrantJob,
    CreateWebhookEndpoint,
    GrantJob,
    GrantResult,
    UpdateWebhookEndpoint,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookSecret,
)
from ._problems import NOT_FOUND, PERMISSION_DENIED, WALLET_PROBLEMS, Problem, ProblemKind, wallet_problem
from ._store import Delivery, Endpoint, GatewayStore
from ._store import GrantJob as StoredJob
from ._webhooks import ROTATION_OVERLAP_NS, UrlRefused, Webhooks, check_url

logger = logging.getLogger(__name__)

Client = NamedDependency[AsyncClient]
Store = NamedDependency[GatewayStore]
Hooks = NamedDependency[Webhooks]
TenantCurrencies = NamedDependency[Currencies]
TenantId = Annotated[str, Parameter(max_length=64, description="The tenant's id")]
EndpointId = Annotated[str, Parameter(pattern="^we_[0-9a-f]{24}$", description="we_ and 24 hex digits")]
DeliveryId = Annotated[str, Parameter(pattern="^wd_[0-9a-f]{24}$", description="wd_ and 24 hex digits")]
JobId = Annotated[str, Parameter(pattern="^gj_[0-9a-f]{24}$", description="gj_ and 24 hex digits")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", required=False, max_length=255,
                    description="Creating again with the same key and body answers the endpoint made the first time"),
]  # fmt: skip

GRANT_JOB_CHUNK: Final = 1_000
"""Grants per GrantRun call of a job: each is one short step of the ledger's writer, and the job's progress."""
REFUSALS_KEPT: Final = 1_000
JOB_STALE_NS: Final = 60 * 10**9
"""A running job not advanced for this long was left by a gateway that stopped: it reads as interrupted."""
WEBHOOKS_PERMISSION: Final = "wallet.webhooks"
GRANT_PERMISSION: Final = "wallet.grant"
URL_REFUSED: Final = ProblemKind(400, "url_refused", "The webhook URL is not one the gateway posts to")
CONFLICT: Final = ProblemKind(409, "endpoint_deleted", "The delivery's endpoint was deleted")


async def authorize(client: AsyncClient, tenant: str, permission: str) -> None:
    """The caller's key acts for `tenant` (else the ledger refuses GetCaller: 403) and grants `permission`, as
    the ledger's key table says (a ledger that needs no key allows all)."""
    caller = await outcome(client.get_caller(wallet_pb2.GetCallerRequest(tenant=tenant)))
    if caller.auth_required and permission not in caller.permissions and "admin" not in caller.permissions:
        raise Problem(PERMISSION_DENIED, f"API key {caller.key_id} ({caller.role}) may not do this: that needs "
                                         f"permission {permission}")  # fmt: skip


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _endpoint(endpoint: Endpoint, *, secret: bool = False) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=endpoint.endpoint_id, url=endpoint.url, types=list(endpoint.types), description=endpoint.description,
        status="enabled" if endpoint.enabled else "disabled", created_at=_time(endpoint.created_at),
        updated_at=_time(endpoint.updated_at), secret=endpoint.secret if secret else None,
    )  # fmt: skip


def _delivery(delivery: Delivery, attempts: list[WebhookAttempt] | None = None) -> WebhookDelivery:
    return WebhookDelivery(
        id=delivery.delivery_id, endpoint_id=delivery.endpoint_id, event_id=delivery.event_id,
        event_type=delivery.event_type, status=delivery.status, attempts=delivery.attempts,  # type: ignore[arg-type]
        next_attempt_at=_time(delivery.next_attempt_at) if delivery.status == "pending" else None,
        last_status_code=delivery.last_status_code or None, last_error=delivery.last_error or None,
        last_latency_ms=delivery.last_latency_ms if delivery.attempts else None, created_at=_time(delivery.created_at),
        payload=json.loads(delivery.payload), attempt_log=attempts,
    )  # fmt: skip


def _checked_url(url: str, private_allowed: bool) -> str:
    try:
        check_url(url, private_allowed=private_allowed)
    except UrlRefused as exc:
        raise Problem(URL_REFUSED, f"url {exc}", "url") from None
    return url


def _request_hash(data: msgspec.Struct) -> str:
    return hashlib.sha256(msgspec.json.encode(data)).hexdigest()


def _missing(what: str, ident: str) -> Problem:
    return Problem(NOT_FOUND, f"no {what} {ident} for this tenant")


class WebhookEndpointsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/webhooks/endpoints"
    tags = ["webhooks"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Register a webhook endpoint")
    async def create(
        self, tenant_id: TenantId, data: JSONBody[CreateWebhookEndpoint], client: Client, store: Store, hooks: Hooks,
        idempotency_key: IdempotencyKey = None,
    ) -> WebhookEndpoint:  # fmt: skip
        """The endpoint gets the tenant's events of the types given (all if none) from now on, signed with the
        secret in this answer (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)."""
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        url = _checked_url(data.url, hooks.private_allowed)
        if idempotency_key is not None and (not idempotency_key or not idempotency_key.isprintable()):
            raise Problem(WALLET_PROBLEMS[wallet_pb2.WALLET_RESULT_IDEMPOTENCY_KEY_INVALID],
                          "Idempotency-Key: 1 to 255 printable characters", "Idempotency-Key")  # fmt: skip
        now = await outcome(client.get_event_cursor(wallet_pb2.GetEventCursorRequest(tenant=tenant_id)))
        digest = _request_hash(data)
        endpoint, before = await asyncio.to_thread(
            store.create_endpoint, tenant_id, url, data.types, data.description, now.cursor, idempotency_key, digest
        )
        if before:
            if endpoint.request_hash != digest:
                detail = "Idempotency-Key: used before to create an endpoint with another body"
                raise wallet_problem(wallet_pb2.WALLET_RESULT_IDEMPOTENCY_KEY_REUSED, detail)
            mark_replayed()
        return _endpoint(endpoint, secret=True)

    @get("/", summary="The tenant's webhook endpoints")
    async def list(
        self, tenant_id: TenantId, client: Client, store: Store,
        starting_after: Annotated[str, QueryParameter(name="starting_after", pattern="^(we_[0-9a-f]{24})?$")] = "",
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
    ) -> WebhookEndpointList:  # fmt: skip
        """Oldest first, a page at a time: `limit` (1 to 100) after the endpoint `starting_after`."""
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        found = await asyncio.to_thread(store.endpoints, tenant_id, limit + 1, starting_after)
        return WebhookEndpointList(data=[_endpoint(e) for e in found[:limit]], has_more=len(found) > limit)

    @get("/{endpoint_id:str}", summary="A webhook endpoint")
    async def retrieve(
        self, tenant_id: TenantId, endpoint_id: EndpointId, client: Client, store: Store
    ) -> WebhookEndpoint:
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        return _endpoint(await self._found(store, tenant_id, endpoint_id))

    @patch("/{endpoint_id:str}", summary="Change a webhook endpoint's URL, types, description or status")
    async def update(
        self, tenant_id: TenantId, endpoint_id: EndpointId, data: JSONBody[UpdateWebhookEndpoint], client: Client,
        store: Store, hooks: Hooks,
    ) -> WebhookEndpoint:  # fmt: skip
        """Idempotent: the same change again changes nothing more."""
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        url = _checked_url(data.url, hooks.private_allowed) if data.url is not None else None
        updated = await asyncio.to_thread(
            store.update_endpoint, tenant_id, endpoint_id, url=url, types=data.types, description=data.description,
            enabled=data.enabled,
        )  # fmt: skip
        if updated is None:
            raise _missing("webhook endpoint", endpoint_id)
        return _endpoint(updated)

    @delete("/{endpoint_id:str}", status_code=204, summary="Delete a webhook endpoint")
    async def remove(self, tenant_id: TenantId, endpoint_id: EndpointId, client: Client, store: Store) -> None:
        """Deliveries to it stop (pending ones end as failed); its delivery log stays readable. Deleting it again
        answers 404."""
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        if not await asyncio.to_thread(store.delete_endpoint, tenant_id, endpoint_id):
            raise _missing("webhook endpoint", endpoint_id)

    @get("/{endpoint_id:str}/secret", summary="A webhook endpoint's signing secret")
    async def secret(self, tenant_id: TenantId, endpoint_id: EndpointId, client: Client, store: Store) -> WebhookSecret:
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        return _secret(await self._found(store, tenant_id, endpoint_id))

    @post("/{endpoint_id:str}/secret/rotate", status_code=200, summary="Rotate a webhook endpoint's signing secret")
    async def rotate(self, tenant_id: TenantId, endpoint_id: EndpointId, client: Client, store: Store) -> WebhookSecret:
        """A new secret signs from now on; the one it replaces signs beside it for 24 hours (each delivery carries
        both signatures), so receivers can switch without losing one. Every call makes a new secret."""
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        rotated = await asyncio.to_thread(store.rotate_secret, tenant_id, endpoint_id, ROTATION_OVERLAP_NS)
        if rotated is None:
            raise _missing("webhook endpoint", endpoint_id)
        return _secret(rotated)

    @staticmethod
    async def _found(store: GatewayStore, tenant: str, endpoint_id: str) -> Endpoint:
        endpoint = await asyncio.to_thread(store.endpoint, tenant, endpoint_id)
        if endpoint is None:
            raise _missing("webhook endpoint", endpoint_id)
        return endpoint


def _secret(endpoint: Endpoint) -> WebhookSecret:
    until = _time(endpoint.previous_until) if endpoint.previous_secret else None
    return WebhookSecret(endpoint_id=endpoint.endpoint_id, secret=endpoint.secret, previous_secret_valid_until=until)


class WebhookDeliveriesController(Controller):
    path = "/v1/tenants/{tenant_id:str}/webhooks/deliveries"
    tags = ["webhooks"]  # noqa: RUF012 - Litestar reads it as declared

    @get("/", summary="The delivery log: each event sent to each endpoint, with its attempts")
    async def list(
        self, tenant_id: TenantId, client: Client, store: Store,
        endpoint_id: Annotated[str | None, QueryParameter(name="endpoint_id", pattern="^we_[0-9a-f]{24}$")] = None,
        status: Annotated[Literal["pending", "succeeded", "failed"] | None, QueryParameter(name="status")] = None,
        event_id: Annotated[str | None, QueryParameter(name="event_id", max_length=64)] = None,
        starting_after: Annotated[str, QueryParameter(name="starting_after", pattern="^(wd_[0-9a-f]{24})?$")] = "",
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
    ) -> WebhookDeliveryList:  # fmt: skip
        """Newest first, a page at a time, filtered by endpoint, status or event."""
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        found = await asyncio.to_thread(store.deliveries, tenant_id, endpoint_id=endpoint_id, status=status,
                                        event_id=event_id, limit=limit + 1, starting_after=starting_after)  # fmt: skip
        return WebhookDeliveryList(data=[_delivery(d) for d in found[:limit]], has_more=len(found) > limit)

    @get("/{delivery_id:str}", summary="A delivery and every attempt of it")
    async def retrieve(
        self, tenant_id: TenantId, delivery_id: DeliveryId, client: Client, store: Store
    ) -> WebhookDelivery:
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        delivery = await asyncio.to_thread(store.delivery, tenant_id, delivery_id)
        if delivery is None:
            raise _missing("webhook delivery", delivery_id)
        attempts = await asyncio.to_thread(store.attempts, delivery_id)
        log = [WebhookAttempt(attempt=a.attempt, at=_time(a.started_at), status_code=a.status_code or None,
                              latency_ms=a.latency_ms, error=a.error or None) for a in attempts]  # fmt: skip
        return _delivery(delivery, log)

    @post("/{delivery_id:str}/redeliver", status_code=202, summary="Send a delivery again")
    async def redeliver(
        self, tenant_id: TenantId, delivery_id: DeliveryId, client: Client, store: Store, hooks: Hooks
    ) -> WebhookDelivery:
        """Due again now, delivered or not, with the same webhook-id (a receiver that had it dedupes it). A
        delivery that has failed gets one more attempt."""
        await authorize(client, tenant_id, WEBHOOKS_PERMISSION)
        before = await asyncio.to_thread(store.delivery, tenant_id, delivery_id)
        if before is None:
            raise _missing("webhook delivery", delivery_id)
        delivery = await asyncio.to_thread(store.redeliver, tenant_id, delivery_id)
        if delivery is None or delivery.updated_at == before.updated_at:
            raise Problem(CONFLICT, f"delivery {delivery_id}: its endpoint {before.endpoint_id} was deleted")
        hooks.wake()
        return _delivery(delivery)


# -- grant jobs --------------------------------------------------------------------------------------------------


class GrantJobsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/grant_jobs"
    tags = ["grant-runs"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=202, summary="Credit many wallets in the background (up to 1,000,000 grants)",
          request_max_body_size=64 << 20)  # fmt: skip
    async def create(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[CreateGrantJob], client: Client,
        store: Store, currencies: TenantCurrencies,
    ) -> Response[GrantJob]:  # fmt: skip
        """Answers at once with the job (Location: its URL), which then grants 1,000 at a time; GET it for its
        progress. The run id is the idempotency key: a run sent again, whole or in part (say after the job was
        interrupted), grants no customer twice."""
        await authorize(client, tenant_id, GRANT_PERMISSION)
        currency = await currencies.of(client, tenant_id)
        if data.currency != currency:
            raise wallet_problem(wallet_pb2.WALLET_RESULT_CURRENCY_MISMATCH,
                                 f"currency: the tenant keeps {currency}, not {data.currency}")  # fmt: skip
        source = {"benefit": wallet_pb2.TOP_UP_SOURCE_BENEFIT, "gift": wallet_pb2.TOP_UP_SOURCE_GIFT,
                  "operator": wallet_pb2.TOP_UP_SOURCE_OPERATOR}[data.source]  # fmt: skip
        chunks: list[wallet_pb2.GrantRunRequest] = []
        for start in range(0, len(data.items), GRANT_JOB_CHUNK):
            chunk = wallet_pb2.GrantRunRequest(tenant=tenant_id, run_id=data.id, open_wallets=data.open_wallets,
                                               source=source)  # fmt: skip
            for index, item in enumerate(data.items[start : start + GRANT_JOB_CHUNK], start):
                grant = chunk.items.add(customer=item.customer, amount=item.amount, never_expires=item.never_expires)
                if item.expires_at is not None:
                    grant.expires_at.CopyFrom(timestamp_of(item.expires_at, f"items[{index}].expires_at"))
            chunks.append(chunk)
        job = await asyncio.to_thread(store.create_job, tenant_id, data.id, len(data.items))
        jobs: set[asyncio.Task[None]] = request.app.state.grant_jobs
        task = asyncio.get_running_loop().create_task(_run_job(client, store, job, chunks), name=f"job-{job.job_id}")
        jobs.add(task)
        task.add_done_callback(jobs.discard)
        location = f"/v1/tenants/{tenant_id}/grant_jobs/{job.job_id}"
        return Response(_job(job), status_code=202, headers={"Location": location})

    @get("/{job_id:str}", summary="A grant job's progress")
    async def retrieve(self, tenant_id: TenantId, job_id: JobId, client: Client, store: Store) -> GrantJob:
        await authorize(client, tenant_id, GRANT_PERMISSION)
        job = await asyncio.to_thread(store.job, tenant_id, job_id)
        if job is None:
            raise _missing("grant job", job_id)
        return _job(job)


def _job(job: StoredJob) -> GrantJob:
    status = job.status
    message = job.message or None
    if status == "running" and time.time_ns() - job.updated_at > JOB_STALE_NS:
        status, message = "interrupted", "the gateway running it stopped; send the run again (same id) for the rest"
    refusals = [GrantResult(**refusal) for refusal in job.refused]
    return GrantJob(id=job.job_id, run_id=job.run_id, status=status, total=job.total, done=job.done,  # type: ignore[arg-type]
                    granted=job.granted, granted_amount=job.granted_amount, refused=job.refused_count,
                    refusals=refusals, message=message, created_at=_time(job.created_at),
                    updated_at=_time(job.updated_at))  # fmt: skip


async def _run_job(client: AsyncClient, store: GatewayStore, job: StoredJob, chunks: list[Any]) -> None:
    """Grant chunk after chunk, recording progress after each; a failure ends the job as interrupted."""
    done = granted = granted_amount = refused_count = 0
    refused: list[dict[str, Any]] = []
    status, message = "succeeded", ""
    try:
        for chunk in chunks:
            reply = await client.grant_run(chunk)
            if reply.result != wallet_pb2.WALLET_RESULT_OK:
                status, message = "interrupted", f"the ledger refused the run: {reply.message}"
                break
            for item, answer in zip(chunk.items, reply.replies, strict=True):
                if answer.result != wallet_pb2.WALLET_RESULT_OK:
                    refused_count += 1
                    if len(refused) < REFUSALS_KEPT:
                        problem = wallet_problem(answer.result, answer.message)
                        refused.append({"customer": item.customer, "status": "refused", "code": problem.kind.code,
                                        "detail": problem.detail})  # fmt: skip
            done += len(chunk.items)
            granted += reply.granted
            granted_amount += reply.granted_amount
            if done < job.total:
                await asyncio.to_thread(store.update_job, _progress(job, "running", done, granted, granted_amount,
                                                                    refused, refused_count, ""))  # fmt: skip
    except asyncio.CancelledError:
        status, message = "interrupted", "the gateway stopped; send the run again (same id) for the rest"
    except Exception as exc:
        status, message = "interrupted", f"{exc}; send the run again (same id) for the rest"
    try:
        await asyncio.to_thread(store.update_job, _progress(job, status, done, granted, granted_amount, refused,
                                                            refused_count, message))  # fmt: skip
    except Exception as exc:
        logger.warning("grant job %s: cannot record its end (%s)", job.job_id, exc)


def _progress(
    job: StoredJob, status: str, done: int, granted: int, amount: int, refused: list[dict[str, Any]], count: int,
    message: str,
) -> StoredJob:  # fmt: skip
    return StoredJob(job.job_id, job.tenant, job.run_id, status, job.total, done, granted, amount, list(refused), count,
                     message, job.created_at, job.updated_at)  # fmt: skip


WEBHOOK_ROUTES: list[Any] = [WebhookEndpointsController, WebhookDeliveriesController, GrantJobsController]
