"""Pay links over HTTP: the shop's API (create, read, cancel, QR codes, share links) and the customer's page.

The page at /l/{token} is plain HTML with no script: it shows the shop, the amount, the reference and the
status; an open link asks for the customer's wallet and PIN, then for the one-time code sent to the link's
contact, and pays; a paid link shows its receipt. The page calls the ledger with the gateway's own key (the
customer has none): the token in the URL is what lets them see the link, the PIN and the one-time code are what
let them pay it. Pages are never cached, never framed, and send no referrer (the token is in the URL).
"""

from __future__ import annotations

import io
import urllib.parse
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import segno
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, Parameter
from litestar.response import Template

from ledger.client import AsyncClient
from ledger.v1 import wallet_pb2

from ._calls import at, call, idempotency_key, outcome
from ._models import CreatePayLink, PayLinkObject, ShareLinks

Client = NamedDependency[AsyncClient]
ServiceClient = NamedDependency[AsyncClient]
TenantId = Annotated[str, Parameter(max_length=64, description="The tenant's id")]
LinkId = Annotated[str, Parameter(pattern="^[0-9a-f]{32}$", description="32 lowercase hex digits")]
PageToken = Annotated[str, Parameter(max_length=64, description="The link's token")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", required=False,
                    description="1 to 255 printable characters; a retry gets the same link"),
]  # fmt: skip
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}  # fmt: skip
FORM_BYTES_MAX: Final = 4_096


def page_base(request: Request[Any, Any, Any], configured: str) -> str:
    """Where pay pages are served: the configured public URL, else the address the request came to."""
    return (configured or str(request.base_url)).rstrip("/") + "/l"


def money(amount: int, currency: str, scale: int) -> str:
    """An amount in minor units as people read it (integers only: 123456 EUR -> 1,234.56 EUR; -1250 EUR ->
    -12.50 EUR)."""
    sign = "-" if amount < 0 else ""
    if not scale:
        return f"{sign}{abs(amount):,} {currency}"
    whole, fraction = divmod(abs(amount), 10**scale)
    return f"{sign}{whole:,}.{fraction:0{scale}d} {currency}"


def share_links(contact: str, text: str, subject: str) -> ShareLinks:
    quoted = urllib.parse.quote(text, safe="")
    phone = contact if contact.startswith("+") else ""
    email = "" if phone else contact
    return ShareLinks(
        whatsapp=f"https://wa.me/{phone.lstrip('+')}?text={quoted}",
        sms=f"sms:{phone}?body={quoted}",
        email=f"mailto:{urllib.parse.quote(email, safe='@')}?subject={urllib.parse.quote(subject, safe='')}"
              f"&body={quoted}",
    )  # fmt: skip


async def _link(client: AsyncClient, reply: wallet_pb2.PayLinkReply, base: str, api: str) -> PayLinkObject:
    tenant = await outcome(client.get_tenant(wallet_pb2.GetTenantRequest(tenant=reply.tenant)))
    name = tenant.settings.name or reply.tenant
    url = f"{base}/{reply.token}"
    amount = money(reply.amount, reply.currency, tenant.currency_scale)
    text = f"{name} asks you to pay {amount} for {reply.reference}: {url}"
    return PayLinkObject(
        id=reply.link_id, url=url, amount=reply.amount, currency=reply.currency, reference=reply.reference,
        description=reply.description, contact=reply.contact, customer=reply.customer or None,
        reusable=reply.reusable, partial=reply.partial, status=reply.status,  # type: ignore[arg-type]
        expires_at=at(reply.expires_at), created_at=at(reply.created_at), paid=reply.paid, payments=reply.payments,
        payment_id=reply.payment_id if reply.payments else None, qr_svg=f"{api}/{reply.link_id}/qr.svg",
        qr_png=f"{api}/{reply.link_id}/qr.png", share=share_links(reply.contact, text, f"{name}: {reply.reference}"),
        sent=reply.sent,
    )  # fmt: skip


def _qr(payload: str, kind: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind=kind, scale=6 if kind == "svg" else 8, border=4)
    return out.getvalue()


class PayLinksController(Controller):
    path = "/v1/tenants/{tenant_id:str}/pay_links"
    tags = ["pay links"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Ask a customer at a distance to pay: a link for their phone or e-mail")
    async def create(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[CreatePayLink], client: Client,
        idempotency: IdempotencyKey,
    ) -> PayLinkObject:  # fmt: skip
        """Share `url` (or `share`'s ready-made WhatsApp, SMS and e-mail links, or its QR code), or set `send` to
        have the ledger's notifier send it. The customer opens it, gives their wallet's PIN and the one-time code
        sent to `contact`, and pays."""
        base = page_base(request, request.app.state.public_url)
        ask = wallet_pb2.CreatePayLinkRequest(
            tenant=tenant_id, amount=data.amount, currency=data.currency, reference=data.reference,
            description=data.description, contact=data.contact, customer=data.customer, seconds=data.seconds,
            reusable=data.reusable, partial=data.partial, key=idempotency_key(idempotency), send=data.send,
            page_url=base,
        )  # fmt: skip
        reply = await outcome(client.create_pay_link(ask))
        return await _link(client, reply, base, f"/v1/tenants/{tenant_id}/pay_links")

    @get("/{link_id:str}", summary="A pay link, its status and what it was paid")
    async def read(self, request: Request[Any, Any, Any], tenant_id: TenantId, link_id: LinkId,
                   client: Client) -> PayLinkObject:  # fmt: skip
        reply = await outcome(client.get_pay_link(wallet_pb2.PayLinkRequest(tenant=tenant_id, link_id=link_id)))
        base = page_base(request, request.app.state.public_url)
        return await _link(client, reply, base, f"/v1/tenants/{tenant_id}/pay_links")

    @post("/{link_id:str}/cancel", status_code=200, summary="No one can pay the link from now on")
    async def cancel(self, request: Request[Any, Any, Any], tenant_id: TenantId, link_id: LinkId,
                     client: Client) -> PayLinkObject:  # fmt: skip
        """Its payments stay (refund them as any payment); cancelling again, or a link no longer open, changes
        nothing."""
        reply = await outcome(client.cancel_pay_link(wallet_pb2.PayLinkRequest(tenant=tenant_id, link_id=link_id)))
        base = page_base(request, request.app.state.public_url)
        return await _link(client, reply, base, f"/v1/tenants/{tenant_id}/pay_links")

    @get("/{link_id:str}/qr.svg", summary="The link's URL as a QR code (SVG)", media_type="image/svg+xml")
    async def qr_svg(self, request: Request[Any, Any, Any], tenant_id: TenantId, link_id: LinkId,
                     client: Client) -> Response[bytes]:  # fmt: skip
        return Response(_qr(await self._url(request, client, tenant_id, link_id), "svg"), media_type="image/svg+xml")

    @get("/{link_id:str}/qr.png", summary="The link's URL as a QR code (PNG)", media_type="image/png")
    async def qr_png(self, request: Request[Any, Any, Any], tenant_id: TenantId, link_id: LinkId,
                     client: Client) -> Response[bytes]:  # fmt: skip
        return Response(_qr(await self._url(request, client, tenant_id, link_id), "png"), media_type="image/png")

    @staticmethod
    async def _url(request: Request[Any, Any, Any], client: AsyncClient, tenant_id: str, link_id: str) -> str:
        reply = await outcome(client.get_pay_link(wallet_pb2.PayLinkRequest(tenant=tenant_id, link_id=link_id)))
        return f"{page_base(request, request.app.state.public_url)}/{reply.token}"


class PayPageController(Controller):
    """The customer's page (no API key: the token in the URL, the PIN and the one-time code)."""

    path = "/l"
    include_in_schema = False

    @get("/{token:str}", summary="The pay page")
    async def page(self, token: PageToken, service: ServiceClient) -> Template:
        return await _page(service, token)

    @post("/{token:str}/start", status_code=200, summary="The customer's wallet and PIN: a one-time code is sent")
    async def start(self, request: Request[Any, Any, Any], token: PageToken, service: ServiceClient) -> Template:
        form = await read_form(request)
        customer, pin = form.get("customer", "").strip(), form.get("pin", "").strip()
        if not customer or not pin:
            return await _page(service, token, error="Enter your customer number and your wallet's PIN.")
        ask = wallet_pb2.StartPayLinkPaymentRequest(token=token, customer=customer[:255], pin=pin[:16])
        reply = await call(service.start_pay_link_payment(ask))
        if reply.result != wallet_pb2.WALLET_RESULT_OK:
            return await _page(service, token, error=_page_error(reply.result), customer=customer)
        return await _page(service, token, step="code", challenge=reply.challenge_id, sent_to=reply.sent_to)

    @post("/{token:str}/pay", status_code=200, summary="The one-time code: the link is paid")
    async def pay(self, request: Request[Any, Any, Any], token: PageToken, service: ServiceClient) -> Template:
        form = await read_form(request)
        challenge, code = form.get("challenge", ""), form.get("code", "").strip()
        if len(challenge) != 32 or not all(c in "0123456789abcdef" for c in challenge):
            return await _page(service, token, error="Start again: enter your customer number and PIN.")
        if not code:
            return await _page(service, token, step="code", challenge=challenge, error="Enter the code we sent you.")
        reply = await call(service.pay_pay_link(wallet_pb2.PayPayLinkRequest(token=token, challenge_id=challenge,
                                                                             code=code[:16])))  # fmt: skip
        if reply.result == wallet_pb2.WALLET_RESULT_CHALLENGE_INVALID and "more tries" in reply.message:
            tries = reply.message.split("; ", 1)[-1]
            return await _page(service, token, step="code", challenge=challenge,
                               error=f"That code is not right: {tries} before you start again.")  # fmt: skip
        if reply.result != wallet_pb2.WALLET_RESULT_OK:
            return await _page(service, token, error=_page_error(reply.result))
        return await _page(service, token, step="receipt", payment=reply)


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A small URL-encoded form (anything else reads as empty: the page asks again)."""
    body = await request.body()
    if len(body) > FORM_BYTES_MAX:
        return {}
    try:
        fields = urllib.parse.parse_qs(body.decode(), max_num_fields=8, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items() if values}


_ERRORS: Final[dict[int, str]] = {
    wallet_pb2.WALLET_RESULT_PIN_INVALID: "That customer number and PIN do not match a wallet of this shop.",
    wallet_pb2.WALLET_RESULT_PIN_REQUIRED: "Enter your wallet's PIN.",
    wallet_pb2.WALLET_RESULT_PIN_LOCKED: "Too many wrong PINs: paying is locked for now. Try again later.",
    wallet_pb2.WALLET_RESULT_CHALLENGE_INVALID: "That code expired or was used up. Start again for a new one.",
    wallet_pb2.WALLET_RESULT_INSUFFICIENT_FUNDS: "Your wallet does not hold enough. Top it up and try again.",
    wallet_pb2.WALLET_RESULT_LIMIT_EXCEEDED: "No more codes can be sent for this link. Ask the shop for a new one.",
    wallet_pb2.WALLET_RESULT_WALLET_FROZEN: "Your wallet is frozen. Ask the shop.",
    wallet_pb2.WALLET_RESULT_WALLET_CLOSED: "Your wallet is closed. Ask the shop.",
}


def _page_error(result: int) -> str:
    return _ERRORS.get(result, "This link cannot be paid now.")


async def _page(service: AsyncClient, token: str, *, step: str = "start", error: str = "", customer: str = "",
                challenge: str = "", sent_to: str = "",
                payment: wallet_pb2.PayReply | None = None) -> Template:  # fmt: skip
    reply = await call(service.get_pay_link(wallet_pb2.PayLinkRequest(token=token)))
    if reply.result != wallet_pb2.WALLET_RESULT_OK:
        return Template("pay_link.html", context={"missing": True}, status_code=404, headers=PAGE_HEADERS)
    tenant = await outcome(service.get_tenant(wallet_pb2.GetTenantRequest(tenant=reply.tenant)))
    scale = tenant.currency_scale

    def shown(amount: int) -> str:
        return money(amount, reply.currency, scale)

    context = {
        "missing": False, "shop": tenant.settings.name or reply.tenant, "amount": shown(reply.amount),
        "reference": reply.reference, "description": reply.description, "status": reply.status,
        "expires_at": at(reply.expires_at).strftime("%Y-%m-%d %H:%M UTC"), "paid": shown(reply.paid),
        "rest": shown(max(reply.amount - reply.paid, 0)), "payments": reply.payments, "step": step, "error": error,
        "customer": customer or reply.customer, "fixed_customer": bool(reply.customer), "challenge": challenge,
        "sent_to": sent_to, "token": token, "open": reply.status == "open", "reusable": reply.reusable,
        "receipt": None,
    }  # fmt: skip
    if payment is not None:
        context["receipt"] = {
            "payment_id": payment.payment_id, "paid": shown(payment.paid), "remainder": shown(payment.remainder),
            "balance": shown(payment.balance), "partial": payment.remainder > 0,
            "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }  # fmt: skip
    elif reply.status in ("paid", "partially_paid") and reply.payment_id:
        context["receipt"] = {"payment_id": reply.payment_id, "paid": shown(reply.paid), "remainder": context["rest"],
                              "balance": "", "partial": reply.status == "partially_paid", "at": ""}  # fmt: skip
    return Template("pay_link.html", context=context, headers=PAGE_HEADERS)


PAY_LINK_ROUTES: list[Any] = [PayLinksController, PayPageController]
