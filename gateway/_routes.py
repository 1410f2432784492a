"""The resources: one controller each, translating HTTP into Wallet RPCs through the client library.

A path names the tenant; the caller's API key must act for it (the ledger checks, and a key of another tenant
gets 403 and learns nothing). Every write takes an Idempotency-Key header, which is the wallet's idempotency
key: a retry with the same key and body gets the original answer, with another body a 422 problem.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, Parameter

from ledger.client import AsyncClient
from ledger.v1 import wallet_pb2

from ._calls import Currencies, at, idempotency_key, outcome, settings_message, timestamp_of, when
from ._models import (
    CreatePayment,
    CreateRefund,
    CreateTenant,
    CreateTopUp,
    ExpiringCredit,
    OpenWallet,
    PaymentObject,
    Refund,
    SetWalletStatus,
    Tenant,
    TenantSettings,
    TopUp,
    Wallet,
    WalletStatusChange,
)

Client = NamedDependency[AsyncClient]
"""The ledger client of the caller's API key."""
TenantCurrencies = NamedDependency[Currencies]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="The write's idempotency key (1 to 255 "
        "printable characters); a retry with the same key and body gets the original answer",
    ),
]
TenantId = Annotated[str, Parameter(max_length=64, description="The tenant's id")]
CustomerRef = Annotated[str, Parameter(max_length=255, description="The tenant's reference for the customer")]
OperationId = Annotated[str, Parameter(pattern="^[0-9a-f]{32}$", description="32 lowercase hex digits")]

_SOURCES = {
    "purchase": wallet_pb2.TOP_UP_SOURCE_PURCHASE, "operator": wallet_pb2.TOP_UP_SOURCE_OPERATOR,
    "gift": wallet_pb2.TOP_UP_SOURCE_GIFT, "return": wallet_pb2.TOP_UP_SOURCE_RETURN,
    "benefit": wallet_pb2.TOP_UP_SOURCE_BENEFIT,
}  # fmt: skip
_STATUSES = {"active": wallet_pb2.WALLET_STATUS_ACTIVE, "frozen": wallet_pb2.WALLET_STATUS_FROZEN,
             "closed": wallet_pb2.WALLET_STATUS_CLOSED}  # fmt: skip
_STATUS_NAMES = {number: name for name, number in _STATUSES.items()}


def _tenant(reply: wallet_pb2.TenantReply) -> Tenant:
    s = reply.settings
    settings = TenantSettings(
        name=s.name, self_topup=s.self_topup, topup_amounts=list(s.topup_amounts), topup_min=s.topup_min,
        topup_max=s.topup_max, partial_payment=s.partial_payment, fee_fixed=s.fee_fixed,
        fee_per_mille=s.fee_per_mille, max_balance=s.max_balance, credit_expiry_seconds=s.credit_expiry_seconds,
        low_balance_threshold=s.low_balance_threshold, refund_to_credit=s.refund_to_credit,
    )  # fmt: skip
    return Tenant(id=reply.tenant, currency=reply.currency, currency_scale=reply.currency_scale, ledger=reply.ledger,
                  settings=settings, accounts=dict(sorted(reply.accounts.items())))  # fmt: skip


def _wallet(customer: str, reply: wallet_pb2.BalanceReply) -> Wallet:
    return Wallet(
        id=reply.wallet_id, customer=customer, currency=reply.currency,
        status=_STATUS_NAMES.get(reply.status, "active"), available=reply.available, held=reply.held,
        posted=reply.posted,
        expiring=[ExpiringCredit(amount=e.amount, expires_at=at(e.expires_at)) for e in reply.expiring],
    )  # fmt: skip


class TenantsController(Controller):
    path = "/v1/tenants"
    tags = ["tenants"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Create a tenant")
    async def create(self, data: JSONBody[CreateTenant], client: Client) -> Tenant:
        """A shop or an organiser with its ledger for one currency. Creating it again with the same currency and
        settings answers it again; other settings are a 409 problem."""
        request = wallet_pb2.CreateTenantRequest(tenant=data.id, currency=data.currency,
                                                 settings=settings_message(data.settings))  # fmt: skip
        return _tenant(await outcome(client.create_tenant(request)))

    @get("/{tenant_id:str}", summary="Get a tenant")
    async def read(self, tenant_id: TenantId, client: Client) -> Tenant:
        return _tenant(await outcome(client.get_tenant(wallet_pb2.GetTenantRequest(tenant=tenant_id))))

    @post("/{tenant_id:str}/settings", status_code=200, summary="Replace a tenant's settings")
    async def configure(self, tenant_id: TenantId, data: JSONBody[TenantSettings], client: Client) -> Tenant:
        request = wallet_pb2.ConfigureTenantRequest(tenant=tenant_id, settings=settings_message(data))
        return _tenant(await outcome(client.configure_tenant(request)))


class WalletsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/wallets"
    tags = ["wallets"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Open a customer's wallet")
    async def open(self, tenant_id: TenantId, data: JSONBody[OpenWallet], client: Client) -> Wallet:
        """Opening it again answers the wallet as it is."""
        request = wallet_pb2.WalletRequest(tenant=tenant_id, customer=data.customer)
        return _wallet(data.customer, await outcome(client.open_wallet(request)))

    @get("/{customer:str}", summary="Get a wallet and its balance")
    async def read(self, tenant_id: TenantId, customer: CustomerRef, client: Client) -> Wallet:
        request = wallet_pb2.WalletRequest(tenant=tenant_id, customer=customer)
        return _wallet(customer, await outcome(client.get_balance(request)))

    @post("/{customer:str}/status", status_code=200, summary="Freeze, unfreeze or close a wallet")
    async def set_status(
        self, tenant_id: TenantId, customer: CustomerRef, data: JSONBody[SetWalletStatus], client: Client
    ) -> WalletStatusChange:
        request = wallet_pb2.SetWalletStatusRequest(tenant=tenant_id, customer=customer,
                                                    status=_STATUSES[data.status], reason=data.reason)  # fmt: skip
        reply = await outcome(client.set_wallet_status(request))
        return WalletStatusChange(id=reply.wallet_id, customer=customer, status=_STATUS_NAMES[reply.status])


class TopUpsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/top_ups"
    tags = ["top-ups"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Top up a wallet")
    async def create(
        self, tenant_id: TenantId, data: JSONBody[CreateTopUp], client: Client, idempotency: IdempotencyKey
    ) -> TopUp:
        request = wallet_pb2.TopUpRequest(
            tenant=tenant_id, customer=data.customer, amount=data.amount, key=idempotency_key(idempotency),
            source=_SOURCES[data.source], currency=data.currency, reference=data.reference, operator=data.operator,
            never_expires=data.never_expires,
        )  # fmt: skip
        if data.expires_at is not None:
            request.expires_at.CopyFrom(timestamp_of(data.expires_at))
        reply = await outcome(client.top_up(request))
        return TopUp(id=reply.operation_id, wallet_id=reply.wallet_id, customer=data.customer, amount=reply.amount,
                     currency=data.currency, balance=reply.balance, created_at=at(reply.created_at),
                     expires_at=when(reply.expires_at))  # fmt: skip


class PaymentsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/payments"
    tags = ["payments"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Pay an order from a wallet")
    async def create(
        self, tenant_id: TenantId, data: JSONBody[CreatePayment], client: Client, idempotency: IdempotencyKey
    ) -> PaymentObject:
        """In full, or with `partial` what the wallet covers; the tenant's fee is taken beside it."""
        request = wallet_pb2.PayRequest(
            tenant=tenant_id, customer=data.customer, amount=data.amount, key=idempotency_key(idempotency),
            order_reference=data.order_reference, partial=data.partial, currency=data.currency,
        )  # fmt: skip
        reply = await outcome(client.pay(request))
        return PaymentObject(
            id=reply.payment_id, wallet_id=reply.wallet_id, customer=data.customer,
            order_reference=data.order_reference, amount=reply.requested, amount_paid=reply.paid,
            amount_remaining=reply.remainder, fee=reply.fee, currency=data.currency, balance=reply.balance,
            created_at=at(reply.created_at),
        )  # fmt: skip

    @post("/{payment_id:str}/refunds", status_code=201, summary="Refund a payment")
    async def refund(
        self,
        tenant_id: TenantId,
        payment_id: OperationId,
        data: JSONBody[CreateRefund],
        client: Client,
        currencies: TenantCurrencies,
        idempotency: IdempotencyKey,
    ) -> Refund:
        """At most what is left of the payment: into the wallet, or with `to_credit` the part paid another
        way as store credit. The fee is not refunded."""
        request = wallet_pb2.RefundRequest(tenant=tenant_id, payment_id=payment_id, amount=data.amount,
                                           key=idempotency_key(idempotency), to_credit=data.to_credit,
                                           reason=data.reason)  # fmt: skip
        reply = await outcome(client.refund(request))
        currency = await currencies.of(client, tenant_id)
        return Refund(id=reply.refund_id, payment_id=reply.payment_id, wallet_id=reply.wallet_id, amount=reply.amount,
                      currency=currency, to_credit=reply.to_credit, refundable=reply.refundable,
                      balance=reply.balance, created_at=at(reply.created_at))  # fmt: skip


ROUTES: list[Any] = [TenantsController, WalletsController, TopUpsController, PaymentsController]


def api_key_of(request: Request[Any, Any, Any]) -> str:
    """The bearer token of the Authorization header ("" without one)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
