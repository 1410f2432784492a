"""The resources: one controller each, translating HTTP into Wallet and Ledger RPCs through the client library.

A path names the tenant; the caller's API key must act for it (the ledger checks, and a key of another tenant
gets 403 and learns nothing). Every write that moves money takes an Idempotency-Key header, which is the
wallet's idempotency key: a retry with the same key and body gets the original answer, with another body a
422 problem. (Creating a tenant or opening a wallet is idempotent by its id; a grant run by its run id.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, Parameter, QueryParameter

from ledger.client import AccountFilter, AsyncClient, Transfer
from ledger.v1 import wallet_pb2

from ._calls import Currencies, at, call, idempotency_key, outcome, settings_message, timestamp_of, when
from ._context import mark_replayed
from ._models import (
    Booking,
    BookingList,
    CaptureHold,
    CreateBooking,
    CreateGrantRun,
    CreateHold,
    CreatePayment,
    CreateRefund,
    CreateTenant,
    CreateTopUp,
    DeactivateVoucher,
    EmptyWallet,
    ExpiringCredit,
    GrantResult,
    GrantRun,
    Hold,
    IssueVoucher,
    LedgerAccount,
    LedgerBalance,
    LedgerBalanceList,
    LedgerTransfer,
    LedgerTransferList,
    OpenWallet,
    PaymentObject,
    RedeemVoucher,
    Refund,
    ReverseBooking,
    Settlement,
    SettlementLine,
    SetWalletStatus,
    SpendVoucher,
    Statement,
    StatementRow,
    Tenant,
    TenantSettings,
    TopUp,
    Voucher,
    VoucherCodeOnly,
    Wallet,
    WalletStatusChange,
)
from ._problems import INVALID_BODY, NOT_FOUND, Problem, wallet_problem

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
        low_balance_threshold=s.low_balance_threshold, refund_to_credit=s.refund_to_credit, pin_above=s.pin_above,
        pin_attempts=s.pin_attempts, pin_lock_seconds=s.pin_lock_seconds, code_payment_max=s.code_payment_max,
        wallet_hour_amount=s.wallet_hour_amount, wallet_hour_count=s.wallet_hour_count,
        wallet_day_amount=s.wallet_day_amount, wallet_day_count=s.wallet_day_count,
        terminal_hour_amount=s.terminal_hour_amount, terminal_day_amount=s.terminal_day_amount,
        terminal_declines_flag=s.terminal_declines_flag,
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


class EmptyWalletController(Controller):
    path = "/v1/tenants/{tenant_id:str}/wallets/{customer:str}/empty"
    tags = ["wallets"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Move everything out of a wallet so that it may close")
    async def empty(
        self,
        tenant_id: TenantId,
        customer: CustomerRef,
        data: JSONBody[EmptyWallet],
        client: Client,
        currencies: TenantCurrencies,
        idempotency: IdempotencyKey,
    ) -> Booking:
        """Paid out to the customer or written off; the wallet must have no open hold."""
        destination = (wallet_pb2.EMPTY_DESTINATION_PAYOUT if data.destination == "payout"
                       else wallet_pb2.EMPTY_DESTINATION_BREAKAGE)  # fmt: skip
        request = wallet_pb2.EmptyWalletRequest(tenant=tenant_id, customer=customer, key=idempotency_key(idempotency),
                                                destination=destination, operator=data.operator,
                                                reason=data.reason)  # fmt: skip
        reply = await outcome(client.empty_wallet(request))
        return _booking(reply, await currencies.of(client, tenant_id))


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
            request.expires_at.CopyFrom(timestamp_of(data.expires_at, "expires_at"))
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


class GrantRunsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/grant_runs"
    tags = ["grant-runs"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Credit many wallets in one run (up to 10,000 grants)")
    async def create(
        self, tenant_id: TenantId, data: JSONBody[CreateGrantRun], client: Client, currencies: TenantCurrencies
    ) -> GrantRun:
        """Every employee's monthly benefit, say. Each grant answers apart (granted, or refused with its problem
        code); a larger run goes as several requests with the same run id. The run id is the idempotency key:
        sending a run again grants no customer of it twice."""
        request = wallet_pb2.GrantRunRequest(tenant=tenant_id, run_id=data.id, all_or_nothing=data.all_or_nothing,
                                             open_wallets=data.open_wallets, source=_SOURCES[data.source])  # fmt: skip
        for index, item in enumerate(data.items):
            grant = request.items.add(customer=item.customer, amount=item.amount, never_expires=item.never_expires)
            if item.expires_at is not None:
                grant.expires_at.CopyFrom(timestamp_of(item.expires_at, f"items[{index}].expires_at"))
        currency = await currencies.of(client, tenant_id)
        if data.currency != currency:
            raise wallet_problem(wallet_pb2.WALLET_RESULT_CURRENCY_MISMATCH,
                                 f"currency: the tenant keeps {currency}, not {data.currency}")  # fmt: skip
        reply = await call(client.grant_run(request))
        if reply.result not in (wallet_pb2.WALLET_RESULT_OK, wallet_pb2.WALLET_RESULT_GRANT_RUN_REFUSED):
            raise wallet_problem(reply.result, reply.message)  # the run as a whole: no grant was looked at
        results = [_grant_result(item.customer, answer) for item, answer in zip(data.items, reply.replies, strict=True)]
        if any(answer.replayed for answer in reply.replies):
            mark_replayed()
        refused = sum(result.status == "refused" for result in results)
        return GrantRun(id=data.id, currency=data.currency, granted=reply.granted, granted_amount=reply.granted_amount,
                        refused=refused, results=results)  # fmt: skip


def _grant_result(customer: str, answer: wallet_pb2.TopUpReply) -> GrantResult:
    if answer.result == wallet_pb2.WALLET_RESULT_OK:
        return GrantResult(
            customer=customer, status="granted", id=answer.operation_id, wallet_id=answer.wallet_id,
            amount=answer.amount, balance=answer.balance, expires_at=when(answer.expires_at),
        )  # fmt: skip
    problem = wallet_problem(answer.result, answer.message)
    return GrantResult(customer=customer, status="refused", code=problem.kind.code, detail=problem.detail)


def hold_object(reply: wallet_pb2.HoldReply, currency: str) -> Hold:
    return Hold(id=reply.hold_id, wallet_id=reply.wallet_id, amount=reply.amount, currency=currency,
                status=reply.status, balance=reply.balance, created_at=at(reply.created_at),
                expires_at=when(reply.expires_at))  # fmt: skip


class HoldsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/holds"
    tags = ["holds"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Authorise a hold on a wallet")
    async def create(
        self, tenant_id: TenantId, data: JSONBody[CreateHold], client: Client, idempotency: IdempotencyKey
    ) -> Hold:
        """Reserve an amount (a table's bill, a fuel pump) to capture later, in part or whole."""
        request = wallet_pb2.AuthorizeHoldRequest(tenant=tenant_id, customer=data.customer, amount=data.amount,
                                                  key=idempotency_key(idempotency), seconds=data.seconds,
                                                  reference=data.reference)  # fmt: skip
        return hold_object(await outcome(client.authorize_hold(request)), data.currency)

    @post("/{hold_id:str}/capture", status_code=200, summary="Capture a hold")
    async def capture(
        self,
        tenant_id: TenantId,
        hold_id: OperationId,
        data: JSONBody[CaptureHold],
        client: Client,
        currencies: TenantCurrencies,
        idempotency: IdempotencyKey,
    ) -> Hold:
        """Take up to the held amount (0: all of it); the rest is released. Refundable by the hold's id."""
        request = wallet_pb2.CaptureHoldRequest(tenant=tenant_id, hold_id=hold_id, amount=data.amount,
                                                key=idempotency_key(idempotency))  # fmt: skip
        reply = await outcome(client.capture_hold(request))
        return hold_object(reply, await currencies.of(client, tenant_id))

    @post("/{hold_id:str}/void", status_code=200, summary="Void a hold")
    async def void(
        self,
        tenant_id: TenantId,
        hold_id: OperationId,
        client: Client,
        currencies: TenantCurrencies,
        idempotency: IdempotencyKey,
    ) -> Hold:
        request = wallet_pb2.VoidHoldRequest(tenant=tenant_id, hold_id=hold_id, key=idempotency_key(idempotency))
        reply = await outcome(client.void_hold(request))
        return hold_object(reply, await currencies.of(client, tenant_id))


_DIRECTIONS = {"credit": wallet_pb2.BOOKING_DIRECTION_CREDIT, "debit": wallet_pb2.BOOKING_DIRECTION_DEBIT}
_DIRECTION_NAMES = {number: name for name, number in _DIRECTIONS.items()}


def _booking(reply: wallet_pb2.BookingReply, currency: str) -> Booking:
    return Booking(id=reply.booking_id, wallet_id=reply.wallet_id, direction=_DIRECTION_NAMES.get(reply.direction, ""),
                   amount=reply.amount, currency=currency, created_at=at(reply.created_at), balance=reply.balance,
                   reverses=reply.reverses or None)  # fmt: skip


class BookingsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/bookings"
    tags = ["bookings"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Book a credit or debit on a wallet (an operator's correction)")
    async def create(
        self, tenant_id: TenantId, data: JSONBody[CreateBooking], client: Client, idempotency: IdempotencyKey
    ) -> Booking:
        """Never edited or deleted: a wrong booking is reversed."""
        request = wallet_pb2.BookRequest(tenant=tenant_id, customer=data.customer, amount=data.amount,
                                         key=idempotency_key(idempotency), direction=_DIRECTIONS[data.direction],
                                         operator=data.operator, reason=data.reason)  # fmt: skip
        return _booking(await outcome(client.book(request)), data.currency)

    @post("/{booking_id:str}/reversal", status_code=201, summary="Reverse a booking, at most once")
    async def reverse(
        self,
        tenant_id: TenantId,
        booking_id: OperationId,
        data: JSONBody[ReverseBooking],
        client: Client,
        currencies: TenantCurrencies,
        idempotency: IdempotencyKey,
    ) -> Booking:
        request = wallet_pb2.ReverseBookingRequest(tenant=tenant_id, booking_id=booking_id,
                                                   key=idempotency_key(idempotency), operator=data.operator,
                                                   reason=data.reason)  # fmt: skip
        reply = await outcome(client.reverse_booking(request))
        return _booking(reply, await currencies.of(client, tenant_id))

    @get("/", summary="The audit trail of bookings and reversals")
    async def list(
        self,
        tenant_id: TenantId,
        client: Client,
        currencies: TenantCurrencies,
        customer: Annotated[str, QueryParameter(name="customer", max_length=255)] = "",
        operator: Annotated[str, QueryParameter(name="operator", max_length=255)] = "",
        since: Annotated[datetime | None, QueryParameter(name="since")] = None,
        until: Annotated[datetime | None, QueryParameter(name="until")] = None,
        starting_after: Annotated[str, QueryParameter(name="starting_after", pattern="^([0-9a-f]{32})?$")] = "",
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
    ) -> BookingList:
        """In the order made, a page at a time: `limit` (1 to 1000) after the booking `starting_after`."""
        request = wallet_pb2.ListBookingsRequest(tenant=tenant_id, customer=customer, operator=operator,
                                                 starting_after=starting_after, limit=limit)  # fmt: skip
        if since is not None:
            request.since.CopyFrom(timestamp_of(since, "since"))
        if until is not None:
            request.until.CopyFrom(timestamp_of(until, "until"))
        reply = await outcome(client.list_bookings(request))
        currency = await currencies.of(client, tenant_id)
        entries = [
            Booking(id=e.booking_id, wallet_id=e.wallet_id, direction=_DIRECTION_NAMES.get(e.direction, ""),
                    amount=e.amount, currency=currency, created_at=at(e.created_at), operator=e.operator,
                    reason=e.reason, reverses=e.reverses or None, reversed_by=e.reversed_by or None)
            for e in reply.bookings
        ]  # fmt: skip
        return BookingList(data=entries, has_more=bool(reply.next_starting_after))


def _voucher(reply: wallet_pb2.VoucherReply, currency: str) -> Voucher:
    return Voucher(id=reply.voucher_id, amount=reply.amount, remaining=reply.remaining, currency=currency,
                   status=reply.status, expires_at=when(reply.expires_at), code=reply.code or None,
                   wallet_id=reply.wallet_id or None, balance=reply.balance if reply.wallet_id else None,
                   requested=reply.requested or None, created_at=when(reply.created_at))  # fmt: skip


class VouchersController(Controller):
    """A voucher is named by its code in the body, never in a URL: the code is its bearer's money, and URLs
    end up in logs."""

    path = "/v1/tenants/{tenant_id:str}/vouchers"
    tags = ["vouchers"]  # noqa: RUF012 - Litestar reads it as declared

    @post("/", status_code=201, summary="Issue a voucher or gift card")
    async def issue(
        self, tenant_id: TenantId, data: JSONBody[IssueVoucher], client: Client, idempotency: IdempotencyKey
    ) -> Voucher:
        """Its code is in this answer only (and in the answers to its retries); the ledger keeps a hash."""
        request = wallet_pb2.IssueVoucherRequest(tenant=tenant_id, amount=data.amount, key=idempotency_key(idempotency),
                                                 never_expires=data.never_expires)  # fmt: skip
        if data.expires_at is not None:
            request.expires_at.CopyFrom(timestamp_of(data.expires_at, "expires_at"))
        return _voucher(await outcome(client.issue_voucher(request)), data.currency)

    @post("/lookup", status_code=200, summary="What is left on a voucher")
    async def lookup(
        self, tenant_id: TenantId, data: JSONBody[VoucherCodeOnly], client: Client, currencies: TenantCurrencies
    ) -> Voucher:
        reply = await outcome(client.get_voucher(wallet_pb2.VoucherRequest(tenant=tenant_id, code=data.code)))
        return _voucher(reply, await currencies.of(client, tenant_id))

    @post("/redeem", status_code=201, summary="Move what is left on a voucher into a wallet")
    async def redeem(
        self,
        tenant_id: TenantId,
        data: JSONBody[RedeemVoucher],
        client: Client,
        currencies: TenantCurrencies,
        idempotency: IdempotencyKey,
    ) -> Voucher:
        request = wallet_pb2.RedeemVoucherRequest(tenant=tenant_id, code=data.code, customer=data.customer,
                                                  key=idempotency_key(idempotency))  # fmt: skip
        reply = await outcome(client.redeem_voucher(request))
        return _voucher(reply, await currencies.of(client, tenant_id))

    @post("/spend", status_code=201, summary="Pay an order from a voucher")
    async def spend(
        self, tenant_id: TenantId, data: JSONBody[SpendVoucher], client: Client, idempotency: IdempotencyKey
    ) -> Voucher:
        """Up to what is left on it; `amount` in the answer is what it paid of the order."""
        request = wallet_pb2.SpendVoucherRequest(tenant=tenant_id, code=data.code, amount=data.amount,
                                                 key=idempotency_key(idempotency),
                                                 order_reference=data.order_reference)  # fmt: skip
        return _voucher(await outcome(client.spend_voucher(request)), data.currency)

    @post("/deactivate", status_code=200, summary="Take a voucher out of use")
    async def deactivate(
        self,
        tenant_id: TenantId,
        data: JSONBody[DeactivateVoucher],
        client: Client,
        currencies: TenantCurrencies,
        idempotency: IdempotencyKey,
    ) -> Voucher:
        request = wallet_pb2.DeactivateVoucherRequest(tenant=tenant_id, code=data.code, reason=data.reason,
                                                      key=idempotency_key(idempotency))  # fmt: skip
        reply = await outcome(client.deactivate_voucher(request))
        return _voucher(reply, await currencies.of(client, tenant_id))


_KINDS = {name.removeprefix("STATEMENT_KIND_").lower(): number for name, number in wallet_pb2.StatementKind.items()
          if number}  # fmt: skip
_KIND_NAMES = {number: name for name, number in _KINDS.items()}
_SOURCE_NAMES = {number: name for name, number in _SOURCES.items()}


def _statement_row(row: wallet_pb2.StatementRow) -> StatementRow:
    return StatementRow(
        operation_id=row.operation_id,
        kind=_KIND_NAMES.get(row.kind, "other"),
        created_at=at(row.created_at),
        amount=row.amount,
        fee=row.fee,
        total=row.total,
        balance=row.balance,
        held=row.held,
        held_change=row.held_change,
        requested=row.requested,
        source=_SOURCE_NAMES.get(row.source),
        to_credit=row.to_credit,
        related_id=row.related_id or None,
        code=row.code,
    )


class StatementsController(Controller):
    path = "/v1/tenants/{tenant_id:str}/wallets/{customer:str}/statement"
    tags = ["statements"]  # noqa: RUF012 - Litestar reads it as declared

    @get("/", summary="A wallet's statement, a page at a time")
    async def read(
        self,
        tenant_id: TenantId,
        customer: CustomerRef,
        client: Client,
        since: Annotated[datetime | None, QueryParameter(name="since")] = None,
        until: Annotated[datetime | None, QueryParameter(name="until")] = None,
        kinds: Annotated[
            str, QueryParameter(name="kinds", max_length=400, description="Comma-separated: " + ", ".join(_KINDS))
        ] = "",
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
        starting_after: Annotated[str, QueryParameter(name="starting_after", max_length=200)] = "",
    ) -> Statement:
        """One row per movement (a payment with its fee is one), oldest first, with the balance after each."""
        request = wallet_pb2.GetStatementRequest(tenant=tenant_id, customer=customer, limit=limit,
                                                 starting_after=starting_after)  # fmt: skip
        for name in filter(None, kinds.split(",")):
            if name.strip() not in _KINDS:
                raise Problem(INVALID_BODY, f"kinds: {name.strip()!r} is not one of {', '.join(_KINDS)}", "kinds")
            request.kinds.append(_KINDS[name.strip()])  # type: ignore[arg-type]
        if since is not None:
            request.since.CopyFrom(timestamp_of(since, "since"))
        if until is not None:
            request.until.CopyFrom(timestamp_of(until, "until"))
        reply = await outcome(client.get_statement(request))
        rows = [_statement_row(row) for row in reply.rows]
        return Statement(wallet_id=reply.wallet_id, currency=reply.currency, data=rows, has_more=reply.has_more,
                         next_cursor=reply.next_cursor)  # fmt: skip


class SettlementController(Controller):
    path = "/v1/tenants/{tenant_id:str}/settlement"
    tags = ["settlement"]  # noqa: RUF012 - Litestar reads it as declared

    @get("/", summary="The tenant's settlement report, as JSON or CSV")
    async def read(
        self,
        tenant_id: TenantId,
        client: Client,
        day: Annotated[
            str,
            QueryParameter(
                name="day", pattern=r"^(\d{4}-\d{2}-\d{2})?$", description="A UTC day, YYYY-MM-DD; or since (and until)"
            ),
        ] = "",
        since: Annotated[datetime | None, QueryParameter(name="since")] = None,
        until: Annotated[datetime | None, QueryParameter(name="until")] = None,
        format: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        """What the wallets owed at the start and the end, the movements between by kind, and the check that
        they add up (`difference`, always 0). `format=csv`: the same as RFC 4180 CSV."""
        request = wallet_pb2.GetSettlementRequest(tenant=tenant_id, day=day, csv=format == "csv")
        if since is not None:
            request.since.CopyFrom(timestamp_of(since, "since"))
        if until is not None:
            request.until.CopyFrom(timestamp_of(until, "until"))
        reply = await outcome(client.get_settlement(request))
        if format == "csv":
            return Response(reply.csv, media_type="text/csv; charset=utf-8")
        return Response(Settlement(
            tenant=reply.tenant, currency=reply.currency, currency_scale=reply.currency_scale, since=at(reply.since),
            until=when(reply.until), as_of=at(reply.as_of), opening_liability=reply.opening_liability,
            lines=[SettlementLine(section=line.section, line=line.line, amount=line.amount,
                                  transfers=line.transfers) for line in reply.lines],
            movements=reply.movements, closing_liability=reply.closing_liability, difference=reply.difference,
            opening_vouchers=reply.opening_vouchers, closing_vouchers=reply.closing_vouchers,
        ))  # fmt: skip


def _hex(value: int) -> str:
    return f"{value:032x}"


def _moment(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds // 1_000_000_000, UTC).replace(
        microsecond=nanoseconds // 1_000 % 1_000_000
    )


def _ledger_transfer(t: Transfer) -> LedgerTransfer:
    return LedgerTransfer(
        id=_hex(t.id), debit_account_id=_hex(t.debit_account_id), credit_account_id=_hex(t.credit_account_id),
        amount=t.amount, ledger=t.ledger, code=t.code, flags=t.flags, pending_id=_hex(t.pending_id),
        timeout=t.timeout, user_data_128=_hex(t.user_data_128), user_data_64=t.user_data_64,
        user_data_32=t.user_data_32, created_at=_moment(t.timestamp), timestamp=t.timestamp,
    )  # fmt: skip


LedgerId = Annotated[str, Parameter(pattern="^[0-9a-f]{1,32}$", description="A 128-bit id in hex (32 digits)")]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=1000)]
Cursor = Annotated[str, QueryParameter(name="starting_after", pattern="^[0-9]{0,20}$",
                                       description="next_cursor of the previous page")]  # fmt: skip
Newest = Annotated[bool, QueryParameter(name="reversed", description="Newest first")]


def _filter(account_id: str, limit: int, starting_after: str, newest_first: bool) -> AccountFilter:
    """The client's filter for a page: the cursor is the timestamp bound just past the previous page's last."""
    bound = int(starting_after) if starting_after else 0
    if bound >= 2**64:
        raise Problem(INVALID_BODY, "starting_after: not a cursor this API gave", "starting_after")
    if newest_first:
        return AccountFilter(account_id=int(account_id, 16), limit=limit, reversed=True, timestamp_max=bound)
    return AccountFilter(account_id=int(account_id, 16), limit=limit, timestamp_min=bound)


def _cursor(following: AccountFilter | None, newest_first: bool) -> str:
    if following is None:
        return ""
    return str(following.timestamp_max if newest_first else following.timestamp_min)


class LedgerController(Controller):
    """The Ledger service's read side: accounts, transfers and an account's history, on the key's ledgers."""

    path = "/v1/ledger"
    tags = ["ledger"]  # noqa: RUF012 - Litestar reads it as declared

    @get("/accounts/{account_id:str}", summary="Look up an account")
    async def account(self, account_id: LedgerId, client: Client) -> LedgerAccount:
        found = await call(client.lookup_accounts([int(account_id, 16)]))
        if not found:
            raise Problem(NOT_FOUND, f"account_id: no account {account_id} on the ledgers this key may read",
                          "account_id")  # fmt: skip
        a = found[0]
        return LedgerAccount(
            id=_hex(a.id), ledger=a.ledger, code=a.code, flags=a.flags, debits_pending=a.debits_pending,
            debits_posted=a.debits_posted, credits_pending=a.credits_pending, credits_posted=a.credits_posted,
            user_data_128=_hex(a.user_data_128), user_data_64=a.user_data_64, user_data_32=a.user_data_32,
            created_at=_moment(a.timestamp), timestamp=a.timestamp,
        )  # fmt: skip

    @get("/transfers/{transfer_id:str}", summary="Look up a transfer")
    async def transfer(self, transfer_id: LedgerId, client: Client) -> LedgerTransfer:
        found = await call(client.lookup_transfers([int(transfer_id, 16)]))
        if not found:
            raise Problem(NOT_FOUND, f"transfer_id: no transfer {transfer_id} on the ledgers this key may read",
                          "transfer_id")  # fmt: skip
        return _ledger_transfer(found[0])

    @get("/accounts/{account_id:str}/transfers", summary="An account's transfers, a page at a time")
    async def account_transfers(
        self,
        account_id: LedgerId,
        client: Client,
        limit: Limit = 100,
        starting_after: Cursor = "",
        newest_first: Newest = False,
    ) -> LedgerTransferList:
        page = await call(client.get_account_transfers(_filter(account_id, limit, starting_after, newest_first)))
        cursor = _cursor(page.next, newest_first)
        return LedgerTransferList(data=[_ledger_transfer(t) for t in page.transfers], has_more=bool(cursor),
                                  next_cursor=cursor)  # fmt: skip

    @get("/accounts/{account_id:str}/balances", summary="An account's balance after each of its transfers")
    async def account_balances(
        self,
        account_id: LedgerId,
        client: Client,
        limit: Limit = 100,
        starting_after: Cursor = "",
        newest_first: Newest = False,
    ) -> LedgerBalanceList:
        """For accounts with balance history (the HISTORY flag, which wallets have)."""
        page = await call(client.get_account_balances(_filter(account_id, limit, starting_after, newest_first)))
        cursor = _cursor(page.next, newest_first)
        balances = [
            LedgerBalance(account_id=_hex(b.account_id), debits_pending=b.debits_pending,
                          debits_posted=b.debits_posted, credits_pending=b.credits_pending,
                          credits_posted=b.credits_posted, created_at=_moment(b.timestamp), timestamp=b.timestamp)
            for b in page.balances
        ]  # fmt: skip
        return LedgerBalanceList(data=balances, has_more=bool(cursor), next_cursor=cursor)


ROUTES: list[Any] = [
    TenantsController,
    WalletsController,
    EmptyWalletController,
    TopUpsController,
    GrantRunsController,
    PaymentsController,
    HoldsController,
    BookingsController,
    VouchersController,
    StatementsController,
    SettlementController,
    LedgerController,
]


def api_key_of(request: Request[Any, Any, Any]) -> str:
    """The bearer token of the Authorization header ("" without one)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
