"""The counter over HTTP: phones enrolled to show payment codes, terminals paying by them, payment PINs.

A code payment's idempotency key is its terminal and transaction id (a POS terminal has its own transaction
ids); enrolling a device takes an Idempotency-Key header, which a retry gets the same device (and keys) by.
PINs go to the ledger, which hashes and checks them off its writer; the gateway never logs or keeps one.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Annotated, Any

import msgspec
import segno
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, Parameter, QueryParameter

from ledger.client import AsyncClient
from ledger.v1 import wallet_pb2

from . import _emvco as emvco
from ._calls import Currencies, at, call, idempotency_key, outcome, when
from ._context import REQUEST_ID
from ._models import (
    CancelCodePayment,
    CodePaymentObject,
    CodePaymentOutcome,
    ConfirmPaymentRequest,
    CreateCodeHold,
    CreateCodePayment,
    CreatePaymentRequest,
    Device,
    DeviceList,
    EnrollDevice,
    Hold,
    PaymentRequestObject,
    PinStatus,
    ProblemDetails,
    SetPin,
    UnlockPin,
)
from ._problems import wallet_problem
from ._routes import hold_object

Client = NamedDependency[AsyncClient]
TenantCurrencies = NamedDependency[Currencies]
TenantId = Annotated[str, Parameter(max_length=64, description="The tenant's id")]
CustomerRef = Annotated[str, Parameter(max_length=255, description="The tenant's reference for the customer")]
TerminalRef = Annotated[str, Parameter(max_length=255, description="1 to 255 printable characters")]
RequestId = Annotated[str, Parameter(pattern="^[0-9a-f]{32}$", description="32 lowercase hex digits")]
DeviceId = Annotated[str, Parameter(pattern="^[0-9a-f]{32}$", description="32 lowercase hex digits")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", required=False,
                    description="1 to 255 printable characters; a retry gets the same device and keys"),
]  # fmt: skip


def _device(reply: wallet_pb2.DeviceReply) -> Device:
    keys = bool(reply.seed)
    return Device(
        id=reply.device_id, wallet_id=reply.wallet_id, customer=reply.customer, name=reply.name,
        status="revoked" if reply.revoked_at.seconds else "active", enrolled_at=at(reply.enrolled_at),
        revoked_at=when(reply.revoked_at), seed=reply.seed.hex() if keys else None,
        code_key=reply.code_key.hex() if keys else None, number=reply.number if keys else None,
        step_seconds=reply.step_seconds or 30, grace_steps=reply.grace_steps or 1,
    )  # fmt: skip


def _pin(customer: str, reply: wallet_pb2.PinReply) -> PinStatus:
    return PinStatus(wallet_id=reply.wallet_id, customer=customer, pin_set=reply.pin_set, failures=reply.failures,
                     locked_until=when(reply.locked_until))  # fmt: skip


class DevicesController(Controller):
    path = "/v1/tenants/{tenant_id:str}/devices"
    tags = ["counter"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Enrol a customer's phone to show payment codes")
    async def enroll(
        self, tenant_id: TenantId, data: JSONBody[EnrollDevice], client: Client, idempotency: IdempotencyKey
    ) -> Device:
        """The answer carries the device's `seed` and the tenant's `code_key`, from which the phone makes a code
        every 30 seconds with no network (see the Wallet proto for the derivation). Keep them on the device."""
        request = wallet_pb2.EnrollDeviceRequest(tenant=tenant_id, customer=data.customer, name=data.name,
                                                 key=idempotency_key(idempotency))  # fmt: skip
        return _device(await outcome(client.enroll_device(request)))

    @post("/{device_id:str}/revoke", status_code=200, summary="Take a device out of use")
    async def revoke(self, tenant_id: TenantId, device_id: DeviceId, client: Client) -> Device:
        """Its codes are refused from now on; revoking it again changes nothing."""
        request = wallet_pb2.RevokeDeviceRequest(tenant=tenant_id, device_id=device_id)
        return _device(await outcome(client.revoke_device(request)))


class WalletCounterController(Controller):
    path = "/v1/tenants/{tenant_id:str}/wallets/{customer:str}"
    tags = ["counter"]  # noqa: RUF012 - Litestar reads it as declared

    @get("/devices", summary="The devices enrolled for a wallet")
    async def devices(self, tenant_id: TenantId, customer: CustomerRef, client: Client) -> DeviceList:
        reply = await outcome(client.list_devices(wallet_pb2.ListDevicesRequest(tenant=tenant_id, customer=customer)))
        return DeviceList(data=[_device(device) for device in reply.devices])

    @post("/pin", status_code=200, summary="Set or change the wallet's payment PIN")
    async def set_pin(
        self, tenant_id: TenantId, customer: CustomerRef, data: JSONBody[SetPin], client: Client
    ) -> PinStatus:
        """4 to 6 digits, not a run of one digit or of consecutive digits; the ledger keeps an Argon2id hash."""
        reply = await outcome(client.set_pin(wallet_pb2.SetPinRequest(tenant=tenant_id, customer=customer,
                                                                      pin=data.pin)))  # fmt: skip
        return _pin(customer, reply)

    @get("/pin", summary="Whether the wallet has a PIN, its wrong tries and any lock")
    async def pin(self, tenant_id: TenantId, customer: CustomerRef, client: Client) -> PinStatus:
        reply = await outcome(client.get_pin_status(wallet_pb2.WalletRequest(tenant=tenant_id, customer=customer)))
        return _pin(customer, reply)

    @post("/pin/unlock", status_code=200, summary="Lift the lock wrong PINs put on the wallet's code payments")
    async def unlock(
        self, tenant_id: TenantId, customer: CustomerRef, data: JSONBody[UnlockPin], client: Client
    ) -> PinStatus:
        request = wallet_pb2.UnlockPinRequest(tenant=tenant_id, customer=customer, operator=data.operator,
                                              reason=data.reason)  # fmt: skip
        return _pin(customer, await outcome(client.unlock_pin(request)))


class CodePaymentsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/code_payments"
    tags = ["counter"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Pay by the code a customer's phone shows")
    async def create(self, tenant_id: TenantId, data: JSONBody[CreateCodePayment], client: Client) -> CodePaymentObject:
        """The terminal and its transaction id are the idempotency key: a retry with them gets the original
        answer (`Idempotent-Replayed: true`), even once the code has turned. A code pays once; a second use is
        409 code_used; a code that is not valid now is 400 code_invalid, whatever the reason."""
        request = wallet_pb2.PayByCodeRequest(
            tenant=tenant_id, code=data.code, amount=data.amount, terminal=data.terminal,
            transaction=data.transaction, order_reference=data.order_reference, partial=data.partial,
            currency=data.currency, pin=data.pin,
        )  # fmt: skip
        # Concurrent payments by code share PayByCodeBatch calls (the client's auto-batching), as payments share
        # PayBatch calls; one with a PIN goes alone. A payment is the tenant's currency, which the body names.
        reply = await outcome(client.pay_by_code(request))
        return _payment(data.terminal, data.transaction, data.order_reference, data.currency, reply)

    @post("/holds", status_code=201, summary="Hold an amount on the wallet whose phone shows the code")
    async def hold(self, tenant_id: TenantId, data: JSONBody[CreateCodeHold], client: Client) -> Hold:
        """To capture later with POST /v1/tenants/{t}/holds/{id}/capture, e.g. a bill before the tip: the code
        pays once, as for a payment; the terminal and its transaction id are the idempotency key."""
        request = wallet_pb2.AuthorizeHoldByCodeRequest(
            tenant=tenant_id, code=data.code, amount=data.amount, terminal=data.terminal,
            transaction=data.transaction, reference=data.reference, seconds=data.seconds, currency=data.currency,
            pin=data.pin,
        )  # fmt: skip
        return hold_object(await outcome(client.authorize_hold_by_code(request)), data.currency)

    @get("/{terminal:str}/{transaction:str}", summary="What became of a terminal's transaction")
    async def read(
        self, tenant_id: TenantId, terminal: TerminalRef, transaction: TerminalRef, client: Client,
        currencies: TenantCurrencies,
    ) -> CodePaymentOutcome:  # fmt: skip
        """For a terminal that lost the reply: paid, declined (and why), cancelled, or unknown (nothing came)."""
        request = wallet_pb2.CodePaymentRequest(tenant=tenant_id, terminal=terminal, transaction=transaction)
        reply = await call(client.get_code_payment(request))
        if reply.result not in (wallet_pb2.WALLET_RESULT_OK, wallet_pb2.WALLET_RESULT_PAYMENT_NOT_FOUND):
            raise wallet_problem(reply.result, reply.message)
        return _outcome(terminal, transaction, await currencies.of(client, tenant_id), reply)

    @post("/{terminal:str}/{transaction:str}/cancel", status_code=200, summary="Cancel a terminal's transaction")
    async def cancel(
        self, tenant_id: TenantId, terminal: TerminalRef, transaction: TerminalRef, data: JSONBody[CancelCodePayment],
        client: Client, currencies: TenantCurrencies,
    ) -> CodePaymentOutcome:  # fmt: skip
        """Paid (within 10 minutes): refunded into the wallet; either way it can never be paid from now on.
        Cancelling again answers the same."""
        request = wallet_pb2.CancelCodePaymentRequest(tenant=tenant_id, terminal=terminal, transaction=transaction,
                                                      reason=data.reason)  # fmt: skip
        reply = await outcome(client.cancel_code_payment(request))
        return _outcome(terminal, transaction, await currencies.of(client, tenant_id), reply)


def _payment(
    terminal: str, transaction: str, order: str, currency: str, reply: wallet_pb2.PayReply
) -> CodePaymentObject:
    return CodePaymentObject(
        id=reply.payment_id, wallet_id=reply.wallet_id, terminal=terminal, transaction=transaction,
        order_reference=order or transaction, amount=reply.requested, amount_paid=reply.paid,
        amount_remaining=reply.remainder, fee=reply.fee, currency=currency, balance=reply.balance,
        created_at=at(reply.created_at),
    )  # fmt: skip


def _outcome(terminal: str, transaction: str, currency: str, reply: wallet_pb2.CodePaymentReply) -> CodePaymentOutcome:
    paid = reply.payment.result == wallet_pb2.WALLET_RESULT_OK and bool(reply.payment.payment_id)
    declined = None
    if reply.status == "declined":
        body = wallet_problem(reply.payment.result, reply.payment.message).body(REQUEST_ID.get() or "-")
        declined = msgspec.convert(body, ProblemDetails)
    return CodePaymentOutcome(
        terminal=terminal, transaction=transaction, status=reply.status,  # type: ignore[arg-type]
        payment=_payment(terminal, transaction, "", currency, reply.payment) if paid else None,
        declined=declined, refund_id=reply.refund_id or None,
    )  # fmt: skip


class PaymentRequestsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/payment_requests"
    tags = ["counter"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="A terminal asks for an amount, shown as a QR code")
    async def create(
        self, tenant_id: TenantId, data: JSONBody[CreatePaymentRequest], client: Client, idempotency: IdempotencyKey
    ) -> PaymentRequestObject:
        """Show `qr_payload` (or qr.svg, qr.png) to the customer; their phone confirms it. GET it with `wait` to
        learn the outcome without polling hard."""
        request = wallet_pb2.CreatePaymentRequestRequest(
            tenant=tenant_id, terminal=data.terminal, amount=data.amount, reference=data.reference,
            seconds=data.seconds, key=idempotency_key(idempotency), currency=data.currency,
        )  # fmt: skip
        reply = await outcome(client.create_payment_request(request))
        return await _request(client, tenant_id, reply)

    @get("/{request_id:str}", summary="A payment request; with `wait`, once it is paid or cancelled")
    async def read(
        self, tenant_id: TenantId, request_id: RequestId, client: Client,
        wait: Annotated[int, QueryParameter(name="wait", ge=0, le=30, description="Seconds to wait")] = 0,
    ) -> PaymentRequestObject:  # fmt: skip
        """With `wait`, an open request is answered once a customer paid it, the terminal cancelled it, it
        expired, or `wait` seconds passed, whichever comes first: one request, no polling."""
        ask = wallet_pb2.PaymentRequestRequest(tenant=tenant_id, request_id=request_id)
        cursor = (await outcome(client.get_event_cursor(wallet_pb2.GetEventCursorRequest(tenant=tenant_id)))).cursor
        reply = await outcome(client.get_payment_request(ask))
        if wait and reply.status == "open":
            left = max(0.0, reply.expires_at.seconds + reply.expires_at.nanos / 1e9 - time.time())
            await _until_decided(client, tenant_id, request_id, cursor, min(float(wait), left))
            reply = await outcome(client.get_payment_request(ask))
        return await _request(client, tenant_id, reply)

    @post("/{request_id:str}/confirm", status_code=201, summary="A customer pays a terminal's request")
    async def confirm(
        self, tenant_id: TenantId, request_id: RequestId, data: JSONBody[ConfirmPaymentRequest], client: Client,
        currencies: TenantCurrencies,
    ) -> CodePaymentObject:  # fmt: skip
        """From the customer's wallet, once; the same customer confirming again gets the same payment."""
        request = wallet_pb2.ConfirmPaymentRequestRequest(tenant=tenant_id, request_id=request_id,
                                                          customer=data.customer, pin=data.pin)  # fmt: skip
        reply = await outcome(client.confirm_payment_request(request))
        return _payment("", request_id, "", await currencies.of(client, tenant_id), reply)

    @post("/{request_id:str}/cancel", status_code=200, summary="The terminal withdraws an open request")
    async def cancel(self, tenant_id: TenantId, request_id: RequestId, client: Client) -> PaymentRequestObject:
        ask = wallet_pb2.PaymentRequestRequest(tenant=tenant_id, request_id=request_id)
        return await _request(client, tenant_id, await outcome(client.cancel_payment_request(ask)))

    @get("/{request_id:str}/qr.svg", summary="A payment request's QR code as SVG", media_type="image/svg+xml")
    async def qr_svg(self, tenant_id: TenantId, request_id: RequestId, client: Client) -> Response[bytes]:
        return Response(_qr(await self._payload(client, tenant_id, request_id), "svg"), media_type="image/svg+xml")

    @get("/{request_id:str}/qr.png", summary="A payment request's QR code as PNG", media_type="image/png")
    async def qr_png(self, tenant_id: TenantId, request_id: RequestId, client: Client) -> Response[bytes]:
        return Response(_qr(await self._payload(client, tenant_id, request_id), "png"), media_type="image/png")

    @staticmethod
    async def _payload(client: AsyncClient, tenant_id: str, request_id: str) -> str:
        ask = wallet_pb2.PaymentRequestRequest(tenant=tenant_id, request_id=request_id)
        return (await _request(client, tenant_id, await outcome(client.get_payment_request(ask)))).qr_payload


def _qr(payload: str, kind: str) -> bytes:
    """The payload as a QR code (segno, error correction M), quiet zone included."""
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind=kind, scale=6 if kind == "svg" else 8, border=4)
    return out.getvalue()


async def _request(client: AsyncClient, tenant_id: str, reply: wallet_pb2.PaymentRequestReply) -> PaymentRequestObject:
    tenant = await outcome(client.get_tenant(wallet_pb2.GetTenantRequest(tenant=tenant_id)))
    payload = emvco.encode(emvco.PaymentRequestQr(
        tenant=tenant_id, request_id=reply.request_id, amount=reply.amount, currency_number=tenant.currency_number,
        scale=tenant.currency_scale, merchant_name=tenant.settings.name or tenant_id, merchant_city="",
    ))  # fmt: skip
    paid = reply.status == "paid"
    return PaymentRequestObject(
        id=reply.request_id, terminal=reply.terminal, amount=reply.amount, currency=tenant.currency,
        reference=reply.reference, status=reply.status,  # type: ignore[arg-type]
        expires_at=at(reply.expires_at), created_at=at(reply.created_at),
        payment_id=reply.payment_id if paid else None, wallet_id=reply.wallet_id if paid else None,
        qr_payload=payload,
    )  # fmt: skip


async def _until_decided(client: AsyncClient, tenant: str, request_id: str, cursor: str, seconds: float) -> None:
    """Wait on the tenant's event feed (after `cursor`) for this request to be paid or cancelled, `seconds` at
    most: the terminal's long-poll costs one stream, not a call per second."""
    feed = client.subscribe_events(wallet_pb2.SubscribeEventsRequest(
        tenant=tenant, after=cursor, types=["payment_request.paid", "payment_request.cancelled"],
    ))  # fmt: skip
    try:
        async with asyncio.timeout(seconds):
            async for event in feed:
                if event.operation_id == request_id:
                    return
    except TimeoutError:
        return
    finally:
        await feed.aclose()  # type: ignore[attr-defined]


COUNTER_ROUTES: list[Any] = [
    DevicesController,
    WalletCounterController,
    CodePaymentsController,
    PaymentRequestsController,
]
