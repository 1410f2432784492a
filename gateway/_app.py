"""The ASGI application: Litestar, its routes, problems for every error, a request id on every answer."""

from __future__ import annotations

import asyncio
import gc
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import Controller, Litestar, Request, Response, get
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Message, Receive, Scope, Send

from ledger.client import AsyncClient, ClientConfig

from ._calls import Currencies
from ._clients import Clients
from ._config import GatewayConfig
from ._context import ANSWER, REQUEST_ID, request_logger
from ._counter_routes import COUNTER_ROUTES
from ._metrics import HttpMetrics
from ._models import Health, ProblemDetails
from ._paylink_routes import PAY_LINK_ROUTES, PayLinksController
from ._problems import (
    BODY_TOO_LARGE,
    INTERNAL,
    INVALID_BODY,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    PROBLEM_CONTENT_TYPE,
    UNSUPPORTED_MEDIA,
    Problem,
    ProblemKind,
)
from ._routes import ROUTES, api_key_of
from ._store import GatewayStore, open_store
from ._wallet_page_routes import WALLET_PAGE_ROUTES, WalletPageLinksController
from ._webhook_routes import WEBHOOK_ROUTES
from ._webhooks import Webhooks

logger = request_logger(__name__)

_REQUEST_ID_HEADER: Final = b"x-request-id"
_REPLAYED_HEADER: Final = b"idempotent-replayed"
_ID_PREFIX: Final = secrets.token_hex(8)
"""Request ids are this process's random prefix and a count: unique across workers and restarts, and made
without a system call per request (a random id each took 6 % of a payment's time here)."""
_ID_COUNT: Final = itertools.count(1)
_GIVEN_REQUEST_ID: Final = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_UNKNOWN_FIELD: Final = re.compile(r"(?:unknown|missing required) field `([^`]*)`")
_FIELD_PATH: Final = re.compile(r"at `\$\.([^`]*)`")


class GatewayApp(Litestar):
    """The Litestar application with a request id for every request, routed or not: the caller's X-Request-Id
    if it is sane, else a new one, in the context of its handling and in the X-Request-Id of its answer; and
    each request counted and timed by its route's template and its status."""

    metrics: HttpMetrics

    async def __call__(
        self, scope: Scope | LifeSpanScope, receive: Receive | LifeSpanReceive, send: Send | LifeSpanSend
    ) -> None:
        if scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
            return
        headers: Iterable[tuple[bytes, bytes]] = scope["headers"]  # type: ignore[typeddict-item]
        given = next((value for name, value in headers if name == _REQUEST_ID_HEADER), b"")
        request_id = given.decode() if _GIVEN_REQUEST_ID.match(given) else f"{_ID_PREFIX}{next(_ID_COUNT):010x}"
        token = REQUEST_ID.set(request_id)
        marks: dict[str, bool] = {}
        marks_token = ANSWER.set(marks)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                added = [(_REQUEST_ID_HEADER, request_id.encode())]
                if marks.get("replayed"):
                    added.append((_REPLAYED_HEADER, b"true"))
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)  # type: ignore[arg-type]

        try:
            await super().__call__(scope, receive, send_with_id)
        finally:
            ANSWER.reset(marks_token)
            REQUEST_ID.reset(token)
            route = str(scope.get("path_template") or "unmatched")  # a template, never the raw path: bounded labels
            method = str(scope.get("method", ""))
            self.metrics.observe(method, route, status, time.perf_counter() - started)


class StrictRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded strictly, straight into the model its handler takes (`data`):
    "5" is not an amount, nor is 5.0. Litestar's own conversion is lenient, and decoding once into the model
    also spares it building the body as dicts first."""

    async def json(self) -> Any:
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        if data is None:
            return await super().json()
        try:
            return msgspec.json.decode(await self.body(), type=data.annotation, strict=True)
        except msgspec.ValidationError as exc:
            message = str(exc)
            raise Problem(INVALID_BODY, message, _field_of(message)) from None
        except msgspec.DecodeError as exc:
            raise Problem(INVALID_BODY, f"the body is not JSON: {exc}") from None


def _field_of(message: str) -> str:
    """The field a msgspec message names: "... - at `$.settings.fee_fixed`", or an unknown field's name."""
    if unknown := _UNKNOWN_FIELD.search(message):
        return unknown.group(1)
    path = _FIELD_PATH.search(message)
    return path.group(1) if path else ""


def problem_response(problem: Problem) -> Response[Any]:
    headers = {"Retry-After": str(problem.retry_after_seconds)} if problem.retry_after_seconds else None
    return Response(content=problem.body(REQUEST_ID.get() or "-"), status_code=problem.kind.status,
                    media_type=PROBLEM_CONTENT_TYPE, headers=headers)  # fmt: skip


def _on_problem(_: Request[Any, Any, Any], exc: Problem) -> Response[Any]:
    return problem_response(exc)


def _on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A body or parameter that is not what the endpoint takes: the first error, with its field."""
    field, detail = "", exc.detail
    extra = exc.extra if isinstance(exc.extra, list) else []
    if extra and isinstance(extra[0], dict):
        first = extra[0]
        message = str(first.get("message") or detail)
        field = str(first.get("key") or "")
        if field == "data":  # the body as a whole: msgspec names the field in its message
            field = _field_of(message)
        detail = f"{field}: {message}" if field else message
    if "content-type" in detail.lower() or "media type" in detail.lower():
        return problem_response(Problem(UNSUPPORTED_MEDIA, detail))
    return problem_response(Problem(INVALID_BODY, detail, field))


_HTTP_KINDS: Final[dict[int, ProblemKind]] = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: BODY_TOO_LARGE,
                                              415: UNSUPPORTED_MEDIA}  # fmt: skip


def _on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    kind = _HTTP_KINDS.get(exc.status_code)
    if kind is None:
        kind = INVALID_BODY if 400 <= exc.status_code < 500 else INTERNAL
        if kind is INTERNAL:
            logger.error("answered %d: %s", exc.status_code, exc.detail)
    return problem_response(Problem(kind, exc.detail))


def _on_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("the gateway failed on a request")
    return problem_response(Problem(INTERNAL, "the gateway failed; the request id names it in its log"))


PROBLEM_STATUSES: Final = (400, 401, 402, 403, 404, 405, 409, 413, 415, 422, 429, 503)
"""What any route may answer besides its success, each as a problem (the table is `_problems.py`)."""


def document_problems(controllers: Iterable[type[Controller]]) -> None:
    """Every route documents the problems it may answer, with their media type, in the OpenAPI document."""
    for controller in controllers:
        for handler in vars(controller).values():
            if isinstance(handler, HTTPRouteHandler):
                problems = {status: ResponseSpec(data_container=ProblemDetails, media_type=PROBLEM_CONTENT_TYPE,
                                                 description=_DESCRIPTIONS[status], generate_examples=False)
                            for status in PROBLEM_STATUSES}  # fmt: skip
                handler.responses = {**problems, **(handler.responses or {})}


_DESCRIPTIONS: Final = {
    400: "The request is malformed or a field is out of bounds (the problem names it)",
    401: "No valid API key", 402: "The wallet or the tenant's policy declines it", 403: "The key may not do this",
    404: "No such resource", 405: "The resource does not take this method", 409: "The state forbids it",
    413: "The body is too large", 415: "The body is not JSON", 422: "The Idempotency-Key was used for another request",
    429: "The ledger is busy (Retry-After)", 503: "The ledger did not answer in time (Retry-After); retrying is safe",
}  # fmt: skip


def ledger_client_config(config: GatewayConfig) -> ClientConfig:
    """How the gateway reaches the ledger: its address and deadline, and TLS as LEDGER_TLS_CA (and, for mutual
    TLS, LEDGER_TLS_CERT and LEDGER_TLS_KEY) say. Never an API key of its own: a request is made with its
    caller's key or none, so one without a key cannot borrow the gateway's."""
    found = ClientConfig.from_env(server=config.ledger, timeout_seconds=config.timeout_seconds)
    return replace(found, api_key="")


def create_app(config: GatewayConfig | None = None, *, client: AsyncClient | None = None) -> GatewayApp:
    """The gateway for the ledger at `config.ledger` (or on `client`'s channel, which it then does not close)."""
    config = config or GatewayConfig.from_env()
    currencies = Currencies()
    metrics = HttpMetrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        base = client or AsyncClient(ledger_client_config(config))
        app.state.clients = Clients(base, config.clients_max)
        app.state.store = store = await asyncio.to_thread(open_store, config.store)
        jobs: set[asyncio.Task[None]] = set()
        app.state.grant_jobs = jobs
        events = base.with_api_key(config.events_key) if config.events_key else base
        app.state.service = events  # the pay pages' calls, for customers who hold a link but no key
        app.state.public_url = config.public_url
        app.state.webhooks = webhooks = Webhooks(config, store, events, metrics)
        webhooks.start()
        # What was built to serve (the app, its routes and models, the clients) lives as long as the process:
        # the cycle collector's full passes need not walk it again (bench.gateway: p99 from 62 to 27 ms, and
        # 0.49 to 0.52 of the no-op ceiling).
        gc.freeze()
        try:
            yield
        finally:
            await webhooks.stop()
            for job in list(jobs):  # a job cut short reads as interrupted; its run may be sent again
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            if events is not base:
                await events.close()
            if client is None:
                await app.state.clients.close()
            await asyncio.to_thread(store.close)

    def client_of(request: Request[Any, Any, Any]) -> AsyncClient:
        clients: Clients = request.app.state.clients
        return clients.for_key(api_key_of(request))

    def service_of(request: Request[Any, Any, Any]) -> AsyncClient:
        service: AsyncClient = request.app.state.service
        return service

    def currencies_of() -> Currencies:
        return currencies

    @get("/healthz", summary="Liveness: the gateway answers", tags=["operations"], include_in_schema=True)
    async def healthz() -> Health:
        return Health(status="ok", ledger=config.ledger)

    @get(
        "/readyz",
        summary="Readiness: the ledger answers",
        tags=["operations"],
        responses={503: ResponseSpec(data_container=Health, description="The ledger does not answer")},
    )
    async def readyz(request: Request[Any, Any, Any]) -> Response[Health]:
        clients: Clients = request.app.state.clients
        try:
            status = await clients.base.health(timeout=2.0)
        except Exception:
            status = "UNREACHABLE"
        ready = status == "SERVING"
        return Response(
            Health(status="ready" if ready else "not_ready", ledger=status), status_code=200 if ready else 503
        )

    def store_of(request: Request[Any, Any, Any]) -> GatewayStore:
        store: GatewayStore = request.app.state.store
        return store

    def webhooks_of(request: Request[Any, Any, Any]) -> Webhooks:
        webhooks: Webhooks = request.app.state.webhooks
        return webhooks

    dependencies = {
        "client": Provide(client_of, sync_to_thread=False),
        "service": Provide(service_of, sync_to_thread=False),
        "currencies": Provide(currencies_of, sync_to_thread=False),
        "store": Provide(store_of, sync_to_thread=False),
        "hooks": Provide(webhooks_of, sync_to_thread=False),
    }
    handlers: dict[int | type[Exception], Any] = {
        Problem: _on_problem,
        ValidationException: _on_validation,
        HTTPException: _on_http,
        NotFoundException: _on_http,
        Exception: _on_error,
    }
    document_problems([*ROUTES, *COUNTER_ROUTES, *WEBHOOK_ROUTES, PayLinksController, WalletPageLinksController])

    @get("/metrics", summary="Prometheus metrics of the gateway", tags=["operations"], include_in_schema=False)
    async def metrics_endpoint() -> Response[bytes]:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    app = GatewayApp(
        route_handlers=[
            *ROUTES,
            *COUNTER_ROUTES,
            *WEBHOOK_ROUTES,
            *PAY_LINK_ROUTES,
            *WALLET_PAGE_ROUTES,
            healthz,
            readyz,
            metrics_endpoint,
        ],
        template_config=TemplateConfig(directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine),
        dependencies=dependencies,
        exception_handlers=handlers,
        lifespan=[lifespan],
        request_class=StrictRequest,
        request_max_body_size=config.body_bytes_max,
        openapi_config=OpenAPIConfig(
            title="Wallet ledger HTTP API",
            version="1",
            description=(
                "Tenants, customer wallets, top-ups, payments and refunds over the wallet ledger. Amounts are "
                "integers in minor units of the currency beside them. Authenticate with `Authorization: Bearer "
                "<API key>`; every write takes an `Idempotency-Key` header. Errors are RFC 9457 problems."
            ),
            path="/docs",
            render_plugins=[ScalarRenderPlugin()],
        ),
        debug=False,
        logging_config=None,  # the process configures logging (its log lines carry the request id): not the app
    )
    app.metrics = metrics
    return app
