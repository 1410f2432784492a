"""The customer's wallet page: a mobile web page, installable to the home screen, served under /w.

A shop (a key with wallet.topup) makes a one-time sign-in link for a customer's wallet
(POST /v1/tenants/{t}/wallets/{c}/page_links) and shares it; opening it starts a session of 30 days kept in an
HttpOnly, SameSite=Strict cookie (the store keeps only its SHA-256). The page shows the balance, the credit that
expires and the latest movements, sets the payment PIN, confirms a terminal's payment request, and shows the
rotating payment code as a QR code and a barcode. The code is made in the page from the device's seed (the same
derivation as ledger.wallet._paycodes) by the Web Crypto API, and a service worker keeps the page's files: once
opened, the page goes on showing codes with the network cut, and opens again from the home screen offline.

The page calls the ledger with the gateway's own key, for the session's wallet only.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.response import Redirect, Template

from ledger.client import AsyncClient
from ledger.v1 import wallet_pb2

from . import _emvco as emvco
from ._calls import at, call, outcome
from ._models import ShareLinks
from ._paylink_routes import money, read_form, share_links
from ._store import GatewayStore
from ._webhook_routes import authorize

Client = NamedDependency[AsyncClient]
ServiceClient = NamedDependency[AsyncClient]
Store = NamedDependency[GatewayStore]
TenantId = Annotated[str, Parameter(max_length=64, description="The tenant's id")]
CustomerRef = Annotated[str, Parameter(max_length=255, description="The tenant's reference for the customer")]
PageToken = Annotated[str, Parameter(max_length=128, description="The sign-in link's token")]
FilePath = Annotated[Path, Parameter(description="One of the page's files")]
COOKIE: Final = "wallet_session"
SIGNIN_SECONDS: Final = 86_400
"""How long a sign-in link may be opened (once)."""
SESSION_SECONDS: Final = 30 * 86_400
STATIC: Final = Path(__file__).parent / "static"
STATIC_FILES: Final = {
    "app.js": "text/javascript",
    "sw.js": "text/javascript",
    "manifest.webmanifest": "application/manifest+json",
    "icon.svg": "image/svg+xml",
    "vendor/qrcode-generator-2.0.4.js": "text/javascript",
    "vendor/jsbarcode-code128-3.12.3.min.js": "text/javascript",
}
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'; manifest-src 'self'; worker-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}  # fmt: skip


class PageLinkRequest(msgspec.Struct, forbid_unknown_fields=True):
    contact: Annotated[str, msgspec.Meta(max_length=254, description="Where the share links point, if known")] = ""


class PageLink(msgspec.Struct):
    url: str
    """Opens the customer's wallet page on their phone, once, within a day."""
    expires_at: datetime
    share: ShareLinks
    object: str = "wallet_page_link"


class WalletPageLinksController(Controller):
    path = "/v1/tenants/{tenant_id:str}/wallets/{customer:str}/page_links"
    tags = ["counter"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="A one-time sign-in link to the customer's wallet page")
    async def create(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, customer: CustomerRef, client: Client,
        store: Store, data: JSONBody[PageLinkRequest | None] = None,
    ) -> PageLink:  # fmt: skip
        """Share it with the customer (the answer has WhatsApp, SMS and e-mail links): on their phone it opens
        the wallet page, which they may add to the home screen. It works once, within a day; needs
        wallet.topup (the page enrols a device and sets the PIN)."""
        await authorize(client, tenant_id, "wallet.topup")
        await outcome(client.get_balance(wallet_pb2.WalletRequest(tenant=tenant_id, customer=customer)))  # it exists
        token, expires_at = await asyncio.to_thread(store.create_access, "signin", tenant_id, customer, SIGNIN_SECONDS)
        base = (request.app.state.public_url or str(request.base_url)).rstrip("/")
        url = f"{base}/w/signin/{token}"
        text = f"Your {tenant_id} wallet: {url}"
        contact = data.contact if data is not None else ""
        return PageLink(url=url, expires_at=datetime.fromtimestamp(expires_at // 1_000_000_000, UTC),
                        share=share_links(contact, text, f"Your {tenant_id} wallet"))  # fmt: skip


async def _session(request: Request[Any, Any, Any], store: GatewayStore) -> tuple[str, str] | None:
    """The session's (tenant, customer), read off the event loop as every other store call is."""
    token = request.cookies.get(COOKIE, "")
    return await asyncio.to_thread(store.session, token) if token and len(token) <= 128 else None


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    """A form or call the page itself sent (an Origin header, where the browser sends one, is this host's)."""
    origin = request.headers.get("origin")
    return origin is None or urllib.parse.urlsplit(origin).netloc == request.headers.get("host", "")


class WalletPageController(Controller):
    path = "/w"
    include_in_schema = False

    @get("/signin/{token:str}", summary="Open a sign-in link: a session for the wallet")
    async def signin(self, token: PageToken, store: Store, request: Request[Any, Any, Any]) -> Response[Any]:
        found = await asyncio.to_thread(store.use_signin, token)
        if found is None:
            return Template("wallet.html", context={"signed_in": False, "expired_link": True}, status_code=404,
                            headers=PAGE_HEADERS)  # fmt: skip
        session, _ = await asyncio.to_thread(store.create_access, "session", found[0], found[1], SESSION_SECONDS)
        secure = request.url.scheme == "https"
        cookie = Cookie(key=COOKIE, value=session, path="/w", max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=secure)  # fmt: skip
        return Redirect("/w/", status_code=303, cookies=[cookie], headers={"Cache-Control": "no-store"})

    @get("/", summary="The wallet page")
    async def page(self, request: Request[Any, Any, Any], store: Store, service: ServiceClient) -> Template:
        found = await _session(request, store)
        if found is None:
            return Template("wallet.html", context={"signed_in": False}, headers=PAGE_HEADERS)
        done = request.query_params.get("done", "")
        return await _wallet_page(service, *found, notice=_NOTICES.get(done, ""))

    @post("/device", status_code=200, summary="The page's device: its keys for codes made offline")
    async def device(self, request: Request[Any, Any, Any], store: Store, service: ServiceClient) -> Response[Any]:
        found = await _session(request, store)
        if found is None or not _same_origin(request):
            return Response({"error": "signed out"}, status_code=401, headers={"Cache-Control": "no-store"})
        tenant, customer = found
        key = "page-" + request.cookies[COOKIE][:32]  # one device per session, the same on every retry
        reply = await outcome(service.enroll_device(wallet_pb2.EnrollDeviceRequest(
            tenant=tenant, customer=customer, name="Wallet page", key=key)))  # fmt: skip
        keys = {"device_id": reply.device_id, "seed": reply.seed.hex(), "code_key": reply.code_key.hex(),
                "number": reply.number, "step_seconds": reply.step_seconds or 30}  # fmt: skip
        return Response(keys, headers={"Cache-Control": "no-store"})

    @post("/pin", status_code=200, summary="Set or change the payment PIN")
    async def pin(self, request: Request[Any, Any, Any], store: Store, service: ServiceClient) -> Response[Any]:
        found = await _session(request, store)
        if found is None or not _same_origin(request):
            return Redirect("/w/", status_code=303)
        form = await read_form(request)
        pin, again = form.get("pin", ""), form.get("pin_again", "")
        if pin != again:
            return await _wallet_page(service, *found, error="The two PINs differ.")
        reply = await call(service.set_pin(wallet_pb2.SetPinRequest(tenant=found[0], customer=found[1],
                                                                     pin=pin[:16])))  # fmt: skip
        if reply.result != wallet_pb2.WALLET_RESULT_OK:
            message = reply.message.removeprefix("pin: ")
            return await _wallet_page(service, *found, error=f"That PIN cannot be used: {message}.")
        return Redirect("/w/?done=pin", status_code=303)

    @get("/pay", summary="A terminal's payment request, to confirm")
    async def request_view(self, request: Request[Any, Any, Any], store: Store, service: ServiceClient) -> Template:
        found = await _session(request, store)
        if found is None:
            return Template("wallet.html", context={"signed_in": False}, headers=PAGE_HEADERS)
        request_id = _request_id(request.query_params.get("request", ""), found[0])
        if request_id is None:
            return await _wallet_page(service, *found, error="That is not a payment request of this shop.")
        return await _request_page(service, found, request_id)

    @post("/pay", status_code=200, summary="Confirm a terminal's payment request")
    async def confirm(self, request: Request[Any, Any, Any], store: Store, service: ServiceClient) -> Response[Any]:
        found = await _session(request, store)
        if found is None or not _same_origin(request):
            return Redirect("/w/", status_code=303)
        form = await read_form(request)
        request_id = _request_id(form.get("request", ""), found[0])
        if request_id is None:
            return await _wallet_page(service, *found, error="That is not a payment request of this shop.")
        reply = await call(service.confirm_payment_request(wallet_pb2.ConfirmPaymentRequestRequest(
            tenant=found[0], request_id=request_id, customer=found[1], pin=form.get("pin", "")[:16])))  # fmt: skip
        if reply.result != wallet_pb2.WALLET_RESULT_OK:
            return await _request_page(service, found, request_id, error=_confirm_error(reply))
        return Redirect("/w/?done=paid", status_code=303)

    @post("/signout", status_code=200, summary="End the session")
    async def signout(self, request: Request[Any, Any, Any], store: Store) -> Response[Any]:
        token = request.cookies.get(COOKIE, "")
        if token and _same_origin(request):
            await asyncio.to_thread(store.end_session, token)
        gone = Cookie(key=COOKIE, value="", path="/w", max_age=0, httponly=True, samesite="strict")
        return Redirect("/w/", status_code=303, cookies=[gone])

    @get("/{name:path}", summary="The page's own files")
    async def files(self, name: FilePath) -> Response[bytes]:
        relative = str(name).lstrip("/")
        media = STATIC_FILES.get(relative)
        if media is None:
            return Response(b"not found", status_code=404, media_type="text/plain")
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if relative == "sw.js":
            headers["Service-Worker-Allowed"] = "/w/"
        return Response((STATIC / relative).read_bytes(), media_type=media, headers=headers)


_NOTICES: Final = {"pin": "Your PIN is set.", "paid": "Paid."}


def _request_id(text: str, tenant: str) -> str | None:
    """A request's id from what the customer scanned or typed: its id, or the terminal's EMVCo payload."""
    text = text.strip()
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return text
    try:
        decoded = emvco.decode(text[:512])
    except emvco.EmvError:
        return None
    return decoded.request_id if decoded.tenant == tenant else None


def _confirm_error(reply: wallet_pb2.PayReply) -> str:
    errors = {
        wallet_pb2.WALLET_RESULT_PIN_REQUIRED: "This amount needs your PIN.",
        wallet_pb2.WALLET_RESULT_PIN_INVALID: "Wrong PIN.",
        wallet_pb2.WALLET_RESULT_PIN_LOCKED: "Too many wrong PINs: paying is locked for now.",
        wallet_pb2.WALLET_RESULT_INSUFFICIENT_FUNDS: "Your wallet does not hold enough.",
        wallet_pb2.WALLET_RESULT_REQUEST_EXPIRED: "The request expired: the terminal makes a new one.",
        wallet_pb2.WALLET_RESULT_REQUEST_NOT_OPEN: "The request was paid or cancelled.",
        wallet_pb2.WALLET_RESULT_LIMIT_EXCEEDED: "This would pass a spending limit.",
    }
    return errors.get(reply.result, "The payment was declined.")


async def _tenant(service: AsyncClient, tenant: str) -> wallet_pb2.TenantReply:
    return await outcome(service.get_tenant(wallet_pb2.GetTenantRequest(tenant=tenant)))


async def _request_page(service: AsyncClient, found: tuple[str, str], request_id: str, error: str = "") -> Template:
    tenant = await _tenant(service, found[0])
    ask = wallet_pb2.PaymentRequestRequest(tenant=found[0], request_id=request_id)
    reply = await call(service.get_payment_request(ask))
    if reply.result != wallet_pb2.WALLET_RESULT_OK:
        return await _wallet_page(service, *found, error="No such payment request.")
    context = {
        "signed_in": True, "view": "request", "shop": tenant.settings.name or found[0],
        "amount": money(reply.amount, tenant.currency, tenant.currency_scale), "reference": reply.reference,
        "status": reply.status, "request_id": request_id, "error": error,
        "pin_needed": bool(tenant.settings.pin_above) and reply.amount > tenant.settings.pin_above,
    }  # fmt: skip
    return Template("wallet.html", context=context, headers=PAGE_HEADERS)


async def _wallet_page(service: AsyncClient, tenant_id: str, customer: str, *, notice: str = "",
                       error: str = "") -> Template:  # fmt: skip
    tenant = await _tenant(service, tenant_id)
    balance = await outcome(service.get_balance(wallet_pb2.WalletRequest(tenant=tenant_id, customer=customer)))
    pin = await outcome(service.get_pin_status(wallet_pb2.WalletRequest(tenant=tenant_id, customer=customer)))
    since = datetime.now(UTC) - timedelta(days=90)
    ask = wallet_pb2.GetStatementRequest(tenant=tenant_id, customer=customer, limit=200)
    ask.since.FromDatetime(since)
    statement = await outcome(service.get_statement(ask))
    scale, code = tenant.currency_scale, tenant.currency

    def shown(amount: int) -> str:
        return money(amount, code, scale)

    rows = [{"when": at(row.created_at).strftime("%d %b %H:%M"),
             "what": wallet_pb2.StatementKind.Name(row.kind).removeprefix("STATEMENT_KIND_").replace("_", " ").lower(),
             "amount": ("+" if row.total > 0 else "") + shown(row.total), "balance": shown(row.balance)}
            for row in reversed(statement.rows[-15:])]  # fmt: skip
    context = {
        "signed_in": True, "view": "wallet", "shop": tenant.settings.name or tenant_id, "customer": customer,
        "available": shown(balance.available), "held": shown(balance.held) if balance.held else "",
        "expiring": [{"amount": shown(credit.amount), "at": at(credit.expires_at).strftime("%d %b %Y")}
                     for credit in balance.expiring],
        "rows": rows, "pin_set": pin.pin_set, "locked": bool(pin.locked_until.seconds), "notice": notice,
        "error": error, "as_of": datetime.now(UTC).strftime("%d %b %H:%M UTC"),
    }  # fmt: skip
    return Template("wallet.html", context=context, headers=PAGE_HEADERS)


WALLET_PAGE_ROUTES: list[Any] = [WalletPageLinksController, WalletPageController]
