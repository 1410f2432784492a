"""The Wallet gRPC service: proto <-> wallet domain, nothing else.

Every call is authenticated by the interceptor before its body is read (methods take raw bytes), parsed
with its byte bound, checked against the key's tenant, and then run as one synchronous step of the
wallet domain inside a ledger Operation: the domain decides and applies its chain, the operation hands
transfers and domain records to the journal in one append, and the call answers once that is durable.
Reads run the same way (an operation that writes nothing), so they answer only what is durable.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Generator, Hashable, Mapping
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import Message

from ledger.auth import Permission, PermissionDenied, current_principal
from ledger.core import Ledger, LedgerError
from ledger.journal import AccountFilter
from ledger.records.codes import AccountFlags
from ledger.records.layout import pack_ids, unpack_accounts
from ledger.records.limits import ID_INT_MAX, TIMESTAMP_MAX
from ledger.v1 import wallet_pb2
from ledger.wallet import (
    CHALLENGE_SECONDS,
    CODE_DIGITS,
    CODE_GRACE_STEPS,
    CODE_STEP_SECONDS,
    CUSTOMER_LENGTH_MAX,
    DESCRIPTION_LENGTH_MAX,
    EVENT_TYPES_ALL,
    GRANT_RUN_ITEMS_MAX,
    STATEMENT_LIMIT_DEFAULT,
    STATEMENT_LIMIT_MAX,
    Balance,
    Booking,
    BookingReply,
    ChallengeReply,
    CodePayment,
    CodePaymentStatus,
    DeviceReply,
    GrantItem,
    HistoryPage,
    HistoryRead,
    HoldReply,
    LinkReply,
    Operation,
    Payment,
    PinReply,
    Refund,
    RefundReply,
    RequestReply,
    Settlement,
    StatementKind,
    StatementPage,
    StatusReply,
    Tenant,
    TenantReply,
    TenantSettings,
    TopUp,
    TopUpReply,
    TopUpSource,
    VoucherReply,
    WalletEvent,
    WalletResult,
    Wallets,
    currency,
    cursor_after_commit,
    day_range,
    decode_cursor,
    encode_cursor,
    events_of,
    hash_pin,
    is_phone,
    parse_cursor,
    pin_matches,
    pin_problem,
    settlement,
    settlement_csv,
    statement,
    wallet_id,
)

from ._convert import pay_reply
from ._limits import message_bytes_max
from ._metrics import LedgerMetrics
from ._notify import Notification, Notifier, OutboxNotifier
from ._servicer import _reader, until_refused
from ._services import Service
from ._status import MalformedRequest, RefusalLog, call, parse, refuse, refuse_if_late
from ._wire import encode_pay_batch_reply

logger = logging.getLogger(__name__)

SERVICE_NAME: Final = wallet_pb2.DESCRIPTOR.services_by_name["Wallet"].full_name

PAY_BATCH_PAYMENTS_MAX: Final = 512
"""Most payments in one PayBatch or PayByCodeBatch call (each is its own operation; the client's auto-batching
cuts here)."""
GRANT_SOURCES: Final = frozenset({TopUpSource.BENEFIT, TopUpSource.GIFT, TopUpSource.OPERATOR})
STRING_BYTES_MAX: Final = 4 * 255
"""Most bytes of any string field of a request: 255 characters of up to four UTF-8 bytes each."""

_P = Permission
PERMISSIONS: Final[Mapping[str, Permission]] = {
    "CreateTenant": _P.WALLET_TENANT,
    "ConfigureTenant": _P.WALLET_TENANT,
    "GetTenant": _P.WALLET_READ,
    "OpenWallet": _P.WALLET_TOPUP,
    "GetBalance": _P.WALLET_READ,
    "SetWalletStatus": _P.WALLET_BOOK,
    "EmptyWallet": _P.WALLET_BOOK,
    "TopUp": _P.WALLET_TOPUP,
    "Pay": _P.WALLET_PAY,
    "PayBatch": _P.WALLET_PAY,
    "Refund": _P.WALLET_REFUND,
    "AuthorizeHold": _P.WALLET_PAY,
    "CaptureHold": _P.WALLET_PAY,
    "VoidHold": _P.WALLET_PAY,
    "Book": _P.WALLET_BOOK,
    "ReverseBooking": _P.WALLET_BOOK,
    "ListBookings": _P.WALLET_READ,
    "IssueVoucher": _P.WALLET_VOUCHER,
    "GetVoucher": _P.WALLET_READ,
    "RedeemVoucher": _P.WALLET_TOPUP,
    "SpendVoucher": _P.WALLET_PAY,
    "DeactivateVoucher": _P.WALLET_VOUCHER,
    "GrantRun": _P.WALLET_GRANT,
    "SubscribeEvents": _P.WALLET_READ,
    "GetEventCursor": _P.WALLET_READ,
    "GetCaller": _P.WALLET_READ,
    "EnrollDevice": _P.WALLET_TOPUP,
    "ListDevices": _P.WALLET_READ,
    "RevokeDevice": _P.WALLET_TOPUP,
    "PayByCode": _P.WALLET_PAY,
    "AuthorizeHoldByCode": _P.WALLET_PAY,
    "PayByCodeBatch": _P.WALLET_PAY,
    "GetCodePayment": _P.WALLET_PAY,
    "CancelCodePayment": _P.WALLET_PAY,
    "SetPin": _P.WALLET_TOPUP,
    "CreatePaymentRequest": _P.WALLET_PAY,
    "GetPaymentRequest": _P.WALLET_PAY,
    "ConfirmPaymentRequest": _P.WALLET_PAY,
    "CancelPaymentRequest": _P.WALLET_PAY,
    "GetPinStatus": _P.WALLET_READ,
    "UnlockPin": _P.WALLET_BOOK,
    "CreatePayLink": _P.WALLET_PAY,
    "GetPayLink": _P.WALLET_PAY,
    "CancelPayLink": _P.WALLET_PAY,
    # the pay page's calls, made by the gateway for a customer who holds the link's URL
    "StartPayLinkPayment": _P.WALLET_PAY,
    "PayPayLink": _P.WALLET_PAY,
    # statements and settlement
    "GetStatement": _P.WALLET_READ,
    "GetSettlement": _P.WALLET_TENANT,
}
"""What each method of the Wallet service needs, always for the key's own tenant."""

_SERVICE = wallet_pb2.DESCRIPTOR.services_by_name["Wallet"]


def _string_bounds(descriptor: Any, bounds: dict[str, int]) -> dict[str, int]:
    for field in descriptor.fields:
        if field.message_type is not None:
            _string_bounds(field.message_type, bounds)
        elif field.name == "description":  # a pay link's: up to DESCRIPTION_LENGTH_MAX characters
            bounds[field.full_name] = 4 * DESCRIPTION_LENGTH_MAX
        else:  # a customer reference is bounded in bytes, every other text in characters of up to 4 bytes
            bounds[field.full_name] = CUSTOMER_LENGTH_MAX if field.name == "customer" else STRING_BYTES_MAX
    return bounds


_ITEMS_MAX: Final = {
    "PayBatch": PAY_BATCH_PAYMENTS_MAX,
    "PayByCodeBatch": PAY_BATCH_PAYMENTS_MAX,
    "GrantRun": GRANT_RUN_ITEMS_MAX,
}
REQUEST_BYTES_MAX: Final[Mapping[str, int]] = {
    method.name: message_bytes_max(
        method.input_type, _string_bounds(method.input_type, {}), _ITEMS_MAX.get(method.name, 32)
    )
    for method in _SERVICE.methods
}
"""Per Wallet method, the most bytes one request may have (repeated fields: 32 items; the payments of PayBatch
and PayByCodeBatch and GrantRun's items: their own bounds)."""

_ID_TEXT: Final = re.compile("[0-9a-fA-F]{32}")
_STATUS_NAMES: Final = {
    wallet_pb2.WALLET_STATUS_ACTIVE: "active",
    wallet_pb2.WALLET_STATUS_FROZEN: "frozen",
    wallet_pb2.WALLET_STATUS_CLOSED: "closed",
}
_STATUS_VALUES: Final = {name: value for value, name in _STATUS_NAMES.items()}

Parsed = TypeVar("Parsed", bound=Message)
Reply = TypeVar("Reply")
Result = TypeVar("Result")


def format_id(value: int) -> str:
    """A 128-bit id as the API writes it: 32 lowercase hex digits ('' for none)."""
    return f"{value:032x}" if value else ""


def parse_id(text: str) -> int:
    """An id the API wrote; 0 (which names nothing) if the text is not 32 hex digits."""
    if _ID_TEXT.fullmatch(text) is None:
        return 0
    value = int(text, 16)
    return value if value < ID_INT_MAX else 0


def _timestamp(target: Any, nanoseconds: int) -> None:
    if nanoseconds:
        target.FromNanoseconds(nanoseconds)


def _device_reply(reply: DeviceReply) -> wallet_pb2.DeviceReply:
    message = wallet_pb2.DeviceReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message, device_id=format_id(reply.device_id), wallet_id=format_id(reply.wallet_id),
        customer=reply.customer, name=reply.name, seed=reply.seed, code_key=reply.code_key, number=reply.number,
        step_seconds=CODE_STEP_SECONDS if reply.ok else 0, grace_steps=CODE_GRACE_STEPS if reply.ok else 0,
        replayed=reply.replayed,
    )  # fmt: skip
    _timestamp(message.enrolled_at, reply.enrolled_at)
    _timestamp(message.revoked_at, reply.revoked_at)
    return message


def _code_payment_reply(reply: CodePaymentStatus) -> wallet_pb2.CodePaymentReply:
    message = wallet_pb2.CodePaymentReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message, status=reply.status, refund_id=format_id(reply.refund_id),
    )  # fmt: skip
    if reply.payment is not None:
        message.payment.CopyFrom(pay_reply(reply.payment))
    return message


def _request_reply(reply: RequestReply) -> wallet_pb2.PaymentRequestReply:
    message = wallet_pb2.PaymentRequestReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message, request_id=format_id(reply.request_id), terminal=reply.terminal, amount=reply.amount,
        reference=reply.reference, status=reply.status, payment_id=format_id(reply.payment_id),
        wallet_id=format_id(reply.wallet_id), replayed=reply.replayed,
    )  # fmt: skip
    _timestamp(message.expires_at, reply.expires_at)
    _timestamp(message.created_at, reply.created_at)
    return message


def _link_reply(reply: LinkReply) -> wallet_pb2.PayLinkReply:
    message = wallet_pb2.PayLinkReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message, link_id=format_id(reply.link_id), tenant=reply.tenant, token=reply.token,
        amount=reply.amount, currency=reply.currency, reference=reply.reference, description=reply.description,
        contact=reply.contact, customer=reply.customer, reusable=reply.reusable, partial=reply.partial,
        status=reply.status, paid=reply.paid, payments=reply.payments, payment_id=format_id(reply.payment_id),
        replayed=reply.replayed,
    )  # fmt: skip
    _timestamp(message.expires_at, reply.expires_at)
    _timestamp(message.created_at, reply.created_at)
    return message


_PAGE_URL: Final = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?")


def _link_message(reply: wallet_pb2.PayLinkReply, url: str) -> Notification:
    """The link's own message: who asks, how much, for what, and where to pay."""
    amount = currency(reply.currency).format(reply.amount)
    text = f"{reply.tenant} asks you to pay {amount} for {reply.reference}: {url}"
    return Notification(tenant=reply.tenant, kind="pay_link", channel="sms" if is_phone(reply.contact) else "email",
                        recipient=reply.contact, subject=f"{reply.tenant} asks you to pay {amount}",
                        body=text)  # fmt: skip


def _link_code_message(reply: ChallengeReply, code: str) -> Notification:
    """The one-time code's message: who asks, for what, and that the code is not to be shared."""
    link = reply.link
    assert link is not None
    amount = currency(link.currency).format(link.amount)
    text = (f"{code} is your code to pay {amount} to {link.tenant} for {link.reference}. "
            f"It works for {CHALLENGE_SECONDS // 60} minutes. "
            f"Never tell it to anyone: {link.tenant} will not ask for it.")  # fmt: skip
    return Notification(tenant=link.tenant, kind="pay_link_code", channel="sms" if is_phone(reply.contact) else "email",
                        recipient=reply.contact, subject=f"Your code to pay {link.tenant}", body=text)  # fmt: skip


def _pin_reply(reply: PinReply) -> wallet_pb2.PinReply:
    message = wallet_pb2.PinReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message, wallet_id=format_id(reply.wallet_id), pin_set=reply.pin_set, failures=reply.failures,
    )  # fmt: skip
    _timestamp(message.locked_until, reply.locked_until)
    return message


def _settings(message: wallet_pb2.TenantSettings) -> TenantSettings:
    return TenantSettings(
        name=message.name,
        self_topup=message.self_topup,
        topup_amounts=tuple(message.topup_amounts),
        topup_min=message.topup_min,
        topup_max=message.topup_max,
        partial_payment=message.partial_payment,
        fee_fixed=message.fee_fixed,
        fee_per_mille=message.fee_per_mille,
        max_balance=message.max_balance,
        credit_expiry_seconds=message.credit_expiry_seconds,
        low_balance_threshold=message.low_balance_threshold,
        refund_to_credit=message.refund_to_credit,
        pin_above=message.pin_above,
        pin_attempts=message.pin_attempts,
        pin_lock_seconds=message.pin_lock_seconds,
        code_payment_max=message.code_payment_max,
        wallet_hour_amount=message.wallet_hour_amount,
        wallet_hour_count=message.wallet_hour_count,
        wallet_day_amount=message.wallet_day_amount,
        wallet_day_count=message.wallet_day_count,
        terminal_hour_amount=message.terminal_hour_amount,
        terminal_day_amount=message.terminal_day_amount,
        terminal_declines_flag=message.terminal_declines_flag,
    )


def _tenant_reply(reply: TenantReply) -> wallet_pb2.TenantReply:
    message = wallet_pb2.TenantReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        tenant=reply.tenant,
        currency=reply.currency,
        ledger=reply.ledger,
        accounts={kind: format_id(account) for kind, account in reply.accounts.items()},
    )
    if reply.currency:
        message.currency_scale = currency(reply.currency).scale
        message.currency_number = currency(reply.currency).number
    if reply.settings:
        message.settings.CopyFrom(wallet_pb2.TenantSettings(**reply.settings))
    return message


def _balance_reply(reply: Balance) -> wallet_pb2.BalanceReply:
    message = wallet_pb2.BalanceReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        wallet_id=format_id(reply.wallet_id),
        currency=reply.currency,
        status=_STATUS_VALUES.get(reply.status, wallet_pb2.WALLET_STATUS_UNSPECIFIED),
        available=reply.available,
        held=reply.held,
        posted=reply.posted,
    )
    for expires_at, amount in reply.expiring:
        credit = message.expiring.add(amount=amount)
        credit.expires_at.FromNanoseconds(expires_at)
    return message


def _status_reply(reply: StatusReply) -> wallet_pb2.WalletStatusReply:
    return wallet_pb2.WalletStatusReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        wallet_id=format_id(reply.wallet_id),
        status=_STATUS_VALUES.get(reply.status, wallet_pb2.WALLET_STATUS_UNSPECIFIED),
    )


def _topup_reply(reply: TopUpReply) -> wallet_pb2.TopUpReply:
    message = wallet_pb2.TopUpReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        operation_id=format_id(reply.operation_id),
        wallet_id=format_id(reply.wallet_id),
        amount=reply.amount,
        balance=reply.balance,
        replayed=reply.replayed,
    )
    _timestamp(message.expires_at, reply.expires_at)
    _timestamp(message.created_at, reply.timestamp)
    return message


def _refund_reply(reply: RefundReply) -> wallet_pb2.RefundReply:
    message = wallet_pb2.RefundReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        refund_id=format_id(reply.refund_id),
        payment_id=format_id(reply.payment_id),
        wallet_id=format_id(reply.wallet_id),
        amount=reply.amount,
        to_credit=reply.to_credit,
        refundable=reply.refundable,
        balance=reply.balance,
        replayed=reply.replayed,
    )
    _timestamp(message.created_at, reply.timestamp)
    return message


def _hold_reply(reply: HoldReply) -> wallet_pb2.HoldReply:
    message = wallet_pb2.HoldReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        hold_id=format_id(reply.hold_id),
        wallet_id=format_id(reply.wallet_id),
        amount=reply.amount,
        balance=reply.balance,
        status=reply.status,
        replayed=reply.replayed,
    )
    _timestamp(message.expires_at, reply.expires_at)
    _timestamp(message.created_at, reply.timestamp)
    return message


_DIRECTIONS: Final = {
    wallet_pb2.BOOKING_DIRECTION_CREDIT: "credit",
    wallet_pb2.BOOKING_DIRECTION_DEBIT: "debit",
}
_DIRECTION_VALUES: Final = {name: value for value, name in _DIRECTIONS.items()}
BOOKINGS_PAGE_MAX: Final = 1000
BOOKINGS_PAGE_DEFAULT: Final = 100


def _booking_reply(reply: BookingReply) -> wallet_pb2.BookingReply:
    message = wallet_pb2.BookingReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        booking_id=format_id(reply.booking_id),
        wallet_id=format_id(reply.wallet_id),
        direction=_DIRECTION_VALUES.get(reply.direction, wallet_pb2.BOOKING_DIRECTION_UNSPECIFIED),
        amount=reply.amount,
        reverses=format_id(reply.reverses),
        balance=reply.balance,
        replayed=reply.replayed,
    )
    _timestamp(message.created_at, reply.timestamp)
    return message


def _booking_entry(booking: Booking, reversed_by: int) -> wallet_pb2.BookingEntry:
    entry = wallet_pb2.BookingEntry(
        booking_id=format_id(booking.booking_id),
        wallet_id=format_id(booking.wallet),
        direction=_DIRECTION_VALUES[booking.direction],
        amount=booking.amount,
        operator=booking.operator,
        reason=booking.reason,
        reverses=format_id(booking.reverses),
        reversed_by=format_id(reversed_by),
    )
    _timestamp(entry.created_at, booking.at)
    return entry


def _voucher_reply(reply: VoucherReply) -> wallet_pb2.VoucherReply:
    message = wallet_pb2.VoucherReply(
        result=int(reply.result),  # type: ignore[arg-type]
        message=reply.message,
        code=reply.code,
        voucher_id=format_id(reply.voucher_id),
        amount=reply.amount,
        remaining=reply.remaining,
        status=reply.status,
        wallet_id=format_id(reply.wallet_id),
        balance=reply.balance,
        requested=reply.requested,
        replayed=reply.replayed,
    )
    _timestamp(message.expires_at, reply.expires_at)
    _timestamp(message.created_at, reply.timestamp)
    return message


def _event_message(event: WalletEvent) -> wallet_pb2.WalletEvent:
    message = wallet_pb2.WalletEvent(
        id=event.event_id,
        cursor=event.cursor,
        type=event.type,
        tenant=event.tenant,
        wallet_id=format_id(event.wallet),
        operation_id=format_id(event.operation),
        amount=event.amount,
        data_json=event.data_json(),
    )
    _timestamp(message.created_at, event.at)
    return message


def payment(message: wallet_pb2.PayRequest) -> Payment:
    return Payment(
        tenant=message.tenant,
        customer=message.customer,
        amount=message.amount,
        key=message.key,
        order_reference=message.order_reference,
        partial=message.partial,
        currency=message.currency,
    )


def code_payment(message: wallet_pb2.PayByCodeRequest, pin_ok: bool | None) -> CodePayment:
    """The domain's payment by code from its request, with the outcome of the PIN's check (None: none given)."""
    return CodePayment(
        tenant=message.tenant, code=message.code, amount=message.amount, terminal=message.terminal,
        transaction=message.transaction, order_reference=message.order_reference, partial=message.partial,
        currency=message.currency, pin_ok=pin_ok,
    )  # fmt: skip


def check_tenant(tenant: str) -> None:
    """PERMISSION_DENIED unless the caller's key may act for `tenant` (no key: auth is off)."""
    principal = current_principal()
    if principal is not None and not principal.may_act_for_tenant(tenant):
        raise PermissionDenied(f"{principal.describe()} acts for its own tenant only, not for {tenant[:80]!r}")


def _actor() -> str:
    """Who makes a change, for the journal: the key id, or 'unauthenticated' with auth off."""
    principal = current_principal()
    return principal.key_id if principal is not None else "unauthenticated"


class WalletService:
    """The Wallet service's methods, each taking and giving wire bytes."""

    def __init__(
        self, ledger: Ledger, wallets: Wallets, metrics: LedgerMetrics | None = None, notifier: Notifier | None = None
    ) -> None:
        self._ledger = ledger
        self._wallets = wallets
        self._metrics = metrics
        self._notifier = notifier if notifier is not None else OutboxNotifier(None)
        self._refusals = RefusalLog()

    def _count(self, method: str, reply: Message) -> None:
        """Count the operations of a reply by result (every reply of a batch, or the reply itself)."""
        replies = getattr(reply, "replies", None)
        items = list(replies) if replies is not None else [reply]
        self._count_results(method, [result for item in items if (result := getattr(item, "result", None)) is not None])

    def _count_results(self, method: str, results: list[int]) -> None:
        if self._metrics is None:
            return
        counts: dict[str, int] = {}
        for result, count in collections.Counter(results).items():
            name = wallet_pb2.WalletResult.Name(int(result)).removeprefix("WALLET_RESULT_")
            counts[name] = counts.get(name, 0) + count
        self._metrics.count_wallet_results(method, counts)

    async def _run(self, step: Callable[[Operation], Result]) -> Result:
        """Run one step of the domain in a ledger operation; its reply once what it wrote is durable.

        What the engine applied is journaled even if the step fails after applying it (a bug), so the
        journal never disagrees with the engine; the failure is then INTERNAL and logged.
        """
        operation = self._ledger.operation()
        try:
            reply = step(operation)
        finally:
            ticket = operation.finish()
        await self._ledger.until_durable(ticket)
        return reply

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        kind: type[Parsed],
        request: bytes,
        step: Callable[[Parsed, Operation], Message],
    ) -> bytes:
        async def work() -> bytes:
            message = parse(kind, request, method, REQUEST_BYTES_MAX[method])
            tenant = getattr(message, "tenant", None)
            if tenant is not None:
                check_tenant(tenant)
            reply = await self._run(lambda operation: step(message, operation))
            self._count(method, reply)
            return reply.SerializeToString()

        return await call(context, method, work, self._refusals)

    async def CreateTenant(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.CreateTenantRequest, op: Operation) -> Message:
            settings = _settings(message.settings)
            reply = self._wallets.create_tenant(op, message.tenant, message.currency, settings, actor=_actor())
            return _tenant_reply(reply)

        return await self._call(context, "CreateTenant", wallet_pb2.CreateTenantRequest, request, step)

    async def ConfigureTenant(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.ConfigureTenantRequest, op: Operation) -> Message:
            settings = _settings(message.settings)
            return _tenant_reply(self._wallets.configure_tenant(op, message.tenant, settings, actor=_actor()))

        return await self._call(context, "ConfigureTenant", wallet_pb2.ConfigureTenantRequest, request, step)

    async def GetTenant(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.GetTenantRequest, op: Operation) -> Message:
            return _tenant_reply(self._wallets.get_tenant(message.tenant))

        return await self._call(context, "GetTenant", wallet_pb2.GetTenantRequest, request, step)

    async def OpenWallet(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.WalletRequest, op: Operation) -> Message:
            return _balance_reply(self._wallets.open_wallet(op, message.tenant, message.customer))

        return await self._call(context, "OpenWallet", wallet_pb2.WalletRequest, request, step)

    async def GetBalance(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.WalletRequest, op: Operation) -> Message:
            return _balance_reply(self._wallets.balance(op, message.tenant, message.customer))

        return await self._call(context, "GetBalance", wallet_pb2.WalletRequest, request, step)

    async def SetWalletStatus(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.SetWalletStatusRequest, op: Operation) -> Message:
            status = _STATUS_NAMES.get(message.status)
            if status is None:  # nothing applied yet
                raise MalformedRequest("SetWalletStatus: status must be ACTIVE, FROZEN or CLOSED")
            reply = self._wallets.set_status(
                op, message.tenant, message.customer, status, actor=_actor(), reason=message.reason
            )
            return _status_reply(reply)

        return await self._call(context, "SetWalletStatus", wallet_pb2.SetWalletStatusRequest, request, step)

    async def TopUp(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.TopUpRequest, op: Operation) -> Message:
            try:
                source = TopUpSource(message.source)
            except ValueError:
                source = TopUpSource.UNSPECIFIED
            top_up = TopUp(
                tenant=message.tenant,
                customer=message.customer,
                amount=message.amount,
                key=message.key,
                source=source,
                currency=message.currency,
                reference=message.reference,
                operator=message.operator,
                expires_at=message.expires_at.ToNanoseconds() if message.HasField("expires_at") else 0,
                never_expires=message.never_expires,
            )
            return _topup_reply(self._wallets.top_up(op, top_up))

        return await self._call(context, "TopUp", wallet_pb2.TopUpRequest, request, step)

    async def Pay(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.PayRequest, op: Operation) -> Message:
            return pay_reply(self._wallets.pay(op, payment(message)))

        return await self._call(context, "Pay", wallet_pb2.PayRequest, request, step)

    async def PayBatch(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Every payment is its own operation, decided in order as one after another would be
        (Wallets.pay_many); all of them share one journal append."""

        async def work() -> bytes:
            message = parse(wallet_pb2.PayBatchRequest, request, "PayBatch", REQUEST_BYTES_MAX["PayBatch"])
            if not 1 <= len(message.payments) <= PAY_BATCH_PAYMENTS_MAX:
                raise MalformedRequest(
                    f"PayBatch: payments must hold 1 to {PAY_BATCH_PAYMENTS_MAX}, got {len(message.payments)}"
                )
            for tenant in {item.tenant for item in message.payments}:
                check_tenant(tenant)
            paid = await self._run(lambda op: self._wallets.pay_many(op, [payment(item) for item in message.payments]))
            self._count_results("PayBatch", [reply.result for reply in paid])
            return encode_pay_batch_reply(paid)

        return await call(context, "PayBatch", work, self._refusals)

    async def Refund(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.RefundRequest, op: Operation) -> Message:
            refund = Refund(
                tenant=message.tenant,
                payment_id=parse_id(message.payment_id),
                amount=message.amount,
                key=message.key,
                to_credit=message.to_credit,
                reason=message.reason,
            )
            return _refund_reply(self._wallets.refund(op, refund))

        return await self._call(context, "Refund", wallet_pb2.RefundRequest, request, step)

    async def AuthorizeHold(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.AuthorizeHoldRequest, op: Operation) -> Message:
            reply = self._wallets.authorize(
                op, message.tenant, message.customer, message.amount, message.key,
                seconds=message.seconds, reference=message.reference,
            )  # fmt: skip
            return _hold_reply(reply)

        return await self._call(context, "AuthorizeHold", wallet_pb2.AuthorizeHoldRequest, request, step)

    async def CaptureHold(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.CaptureHoldRequest, op: Operation) -> Message:
            reply = self._wallets.capture(op, message.tenant, parse_id(message.hold_id), message.amount, message.key)
            return _hold_reply(reply)

        return await self._call(context, "CaptureHold", wallet_pb2.CaptureHoldRequest, request, step)

    async def VoidHold(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.VoidHoldRequest, op: Operation) -> Message:
            return _hold_reply(self._wallets.void(op, message.tenant, parse_id(message.hold_id), message.key))

        return await self._call(context, "VoidHold", wallet_pb2.VoidHoldRequest, request, step)

    async def Book(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.BookRequest, op: Operation) -> Message:
            reply = self._wallets.book(
                op, message.tenant, message.customer, message.amount, message.key,
                direction=_DIRECTIONS.get(message.direction, ""), operator=message.operator, reason=message.reason,
                actor=_actor(),
            )  # fmt: skip
            return _booking_reply(reply)

        return await self._call(context, "Book", wallet_pb2.BookRequest, request, step)

    async def ReverseBooking(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.ReverseBookingRequest, op: Operation) -> Message:
            reply = self._wallets.reverse(
                op, message.tenant, parse_id(message.booking_id), message.key, operator=message.operator,
                reason=message.reason, actor=_actor(),
            )  # fmt: skip
            return _booking_reply(reply)

        return await self._call(context, "ReverseBooking", wallet_pb2.ReverseBookingRequest, request, step)

    async def ListBookings(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.ListBookingsRequest, op: Operation) -> Message:
            tenant = self._wallets.tenant(message.tenant)
            if tenant is None:
                return wallet_pb2.ListBookingsReply(
                    result=WalletResult.TENANT_NOT_FOUND.value,  # type: ignore[arg-type]
                    message=f"tenant: no tenant {message.tenant[:80]!r}",
                )
            limit = message.limit or BOOKINGS_PAGE_DEFAULT
            if not 1 <= limit <= BOOKINGS_PAGE_MAX:
                raise MalformedRequest(f"ListBookings: limit must be 1 to {BOOKINGS_PAGE_MAX} (0: 100), got {limit}")
            after = parse_id(message.starting_after)
            if message.starting_after and (
                not after
                or self._wallets.state.bookings.get(after, None) is None
                or self._wallets.state.bookings[after].tenant != message.tenant
            ):
                raise MalformedRequest("ListBookings: starting_after: no booking of this tenant has this id")
            found = self._wallets.bookings(
                message.tenant,
                wallet=wallet_id(message.tenant, message.customer, tenant.currency.code) if message.customer else 0,
                operator=message.operator,
                since=message.since.ToNanoseconds() if message.HasField("since") else 0,
                until=message.until.ToNanoseconds() if message.HasField("until") else 0,
                after=after,
                limit=limit + 1,
            )
            reply = wallet_pb2.ListBookingsReply(result=WalletResult.OK.value)  # type: ignore[arg-type]
            reversals = self._wallets.state.reversals
            for booking in found[:limit]:
                reply.bookings.append(_booking_entry(booking, reversals.get(booking.booking_id, 0)))
            if len(found) > limit:
                reply.next_starting_after = format_id(found[limit - 1].booking_id)
            return reply

        return await self._call(context, "ListBookings", wallet_pb2.ListBookingsRequest, request, step)

    async def IssueVoucher(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.IssueVoucherRequest, op: Operation) -> Message:
            expires_at = message.expires_at.ToNanoseconds() if message.HasField("expires_at") else 0
            reply = self._wallets.issue_voucher(
                op, message.tenant, message.amount, message.key, expires_at=expires_at,
                never_expires=message.never_expires,
            )  # fmt: skip
            return _voucher_reply(reply)

        return await self._call(context, "IssueVoucher", wallet_pb2.IssueVoucherRequest, request, step)

    async def GetVoucher(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.VoucherRequest, op: Operation) -> Message:
            return _voucher_reply(self._wallets.voucher_balance(op, message.tenant, message.code))

        return await self._call(context, "GetVoucher", wallet_pb2.VoucherRequest, request, step)

    async def RedeemVoucher(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.RedeemVoucherRequest, op: Operation) -> Message:
            reply = self._wallets.redeem_voucher(op, message.tenant, message.code, message.customer, message.key)
            return _voucher_reply(reply)

        return await self._call(context, "RedeemVoucher", wallet_pb2.RedeemVoucherRequest, request, step)

    async def SpendVoucher(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.SpendVoucherRequest, op: Operation) -> Message:
            reply = self._wallets.spend_voucher(
                op, message.tenant, message.code, message.amount, message.key, order_reference=message.order_reference
            )
            return _voucher_reply(reply)

        return await self._call(context, "SpendVoucher", wallet_pb2.SpendVoucherRequest, request, step)

    async def DeactivateVoucher(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.DeactivateVoucherRequest, op: Operation) -> Message:
            reply = self._wallets.deactivate_voucher(
                op, message.tenant, message.code, message.key, reason=message.reason, actor=_actor()
            )
            return _voucher_reply(reply)

        return await self._call(context, "DeactivateVoucher", wallet_pb2.DeactivateVoucherRequest, request, step)

    async def GrantRun(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.GrantRunRequest, op: Operation) -> Message:
            if not 1 <= len(message.items) <= GRANT_RUN_ITEMS_MAX:
                return wallet_pb2.GrantRunReply(
                    result=WalletResult.AMOUNT_INVALID.value,  # type: ignore[arg-type]
                    message=f"items: 1 to {GRANT_RUN_ITEMS_MAX} grants per call, got {len(message.items)}",
                )
            source = TopUpSource(message.source) if message.source else TopUpSource.BENEFIT
            if source not in GRANT_SOURCES:
                return wallet_pb2.GrantRunReply(
                    result=WalletResult.REFERENCE_REQUIRED.value,  # type: ignore[arg-type]
                    message="source: a grant run credits BENEFIT, GIFT or OPERATOR credit",
                )
            items = [
                GrantItem(
                    customer=item.customer,
                    amount=item.amount,
                    expires_at=item.expires_at.ToNanoseconds() if item.HasField("expires_at") else 0,
                    never_expires=item.never_expires,
                )
                for item in message.items
            ]
            replies = self._wallets.grant_run(
                op, message.tenant, message.run_id, items, all_or_nothing=message.all_or_nothing,
                open_wallets=message.open_wallets, source=source,
            )  # fmt: skip
            reply = wallet_pb2.GrantRunReply(
                result=WalletResult.OK.value,  # type: ignore[arg-type]
                replies=[_topup_reply(item) for item in replies],
                granted=sum(item.ok for item in replies),
                granted_amount=sum(item.amount for item in replies if item.ok),
            )
            return reply

        return await self._call(context, "GrantRun", wallet_pb2.GrantRunRequest, request, step)

    async def SubscribeEvents(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """The tenant's events from a cursor, then live; ends UNAUTHENTICATED as soon as its key is revoked."""
        await refuse_if_late(context)
        try:
            message = parse(
                wallet_pb2.SubscribeEventsRequest, request, "SubscribeEvents", REQUEST_BYTES_MAX["SubscribeEvents"]
            )
            check_tenant(message.tenant)
            position = parse_cursor(message.after)
            if position is None:
                raise MalformedRequest("SubscribeEvents: after must be a cursor of an event (<seq>.<index>) or empty")
            unknown = set(message.types) - EVENT_TYPES_ALL
            if unknown:
                raise MalformedRequest(f"SubscribeEvents: types: unknown event types {sorted(unknown)[:5]}")
            types = frozenset(message.types)
            seq, index = position
            if message.from_now:
                seq, index = self._ledger.stats().writer.seq_durable + 1, -1
            feed = self._ledger.subscribe_commits(max(seq - 1, 0))
            async for commit in until_refused(feed):
                if not commit.domain:
                    continue
                after = index if commit.seq == seq else -1
                for event in events_of(commit.seq, commit.domain, after):
                    if event.tenant == message.tenant and (not types or event.type in types):
                        yield _event_message(event).SerializeToString()
        except Exception as exc:
            await refuse(context, exc, "SubscribeEvents", self._refusals)

    async def GetEventCursor(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.GetEventCursorRequest, op: Operation) -> Message:
            tenant = self._wallets.get_tenant(message.tenant)
            if not tenant.ok:
                return wallet_pb2.EventCursorReply(result=tenant.result, message=tenant.message)  # type: ignore[arg-type]
            cursor = cursor_after_commit(self._ledger.stats().writer.seq_durable)
            return wallet_pb2.EventCursorReply(result=wallet_pb2.WALLET_RESULT_OK, cursor=cursor)

        return await self._call(context, "GetEventCursor", wallet_pb2.GetEventCursorRequest, request, step)

    async def GetCaller(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.GetCallerRequest, op: Operation) -> Message:
            principal = current_principal()
            reply = wallet_pb2.CallerReply(result=wallet_pb2.WALLET_RESULT_OK, auth_required=principal is not None)
            if principal is not None:
                reply.key_id, reply.role = principal.key_id, principal.role.value
                reply.permissions.extend(sorted(principal.permissions))
            return reply

        return await self._call(context, "GetCaller", wallet_pb2.GetCallerRequest, request, step)

    async def EnrollDevice(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.EnrollDeviceRequest, op: Operation) -> Message:
            reply = self._wallets.enroll_device(op, message.tenant, message.customer, message.name, message.key)
            return _device_reply(reply)

        return await self._call(context, "EnrollDevice", wallet_pb2.EnrollDeviceRequest, request, step)

    async def ListDevices(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.ListDevicesRequest, op: Operation) -> Message:
            found = self._wallets.devices(message.tenant, message.customer)
            if not isinstance(found, list):
                return wallet_pb2.ListDevicesReply(result=int(found.result), message=found.message)  # type: ignore[arg-type]
            return wallet_pb2.ListDevicesReply(
                result=wallet_pb2.WALLET_RESULT_OK, devices=[_device_reply(device) for device in found]
            )

        return await self._call(context, "ListDevices", wallet_pb2.ListDevicesRequest, request, step)

    async def RevokeDevice(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.RevokeDeviceRequest, op: Operation) -> Message:
            return _device_reply(self._wallets.revoke_device(op, message.tenant, parse_id(message.device_id)))

        return await self._call(context, "RevokeDevice", wallet_pb2.RevokeDeviceRequest, request, step)

    async def PayByCode(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.PayByCodeRequest, request, "PayByCode", REQUEST_BYTES_MAX["PayByCode"])
            check_tenant(message.tenant)
            paying = code_payment(message, await self._pin_ok(message) if message.pin else None)
            reply = await self._run(lambda op: pay_reply(self._wallets.pay_by_code(op, paying)))
            self._count("PayByCode", reply)
            return reply.SerializeToString()

        return await call(context, "PayByCode", work, self._refusals)

    async def PayByCodeBatch(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Every payment by code is its own operation, decided in order as one PayByCode after another would be
        (Wallets.pay_by_code_many); all of them share one journal append. The PINs some carry are checked first,
        each in a worker thread as PayByCode checks its one, all at once."""

        async def work() -> bytes:
            method = "PayByCodeBatch"
            message = parse(wallet_pb2.PayByCodeBatchRequest, request, method, REQUEST_BYTES_MAX[method])
            if not 1 <= len(message.payments) <= PAY_BATCH_PAYMENTS_MAX:
                raise MalformedRequest(
                    f"{method}: payments must hold 1 to {PAY_BATCH_PAYMENTS_MAX}, got {len(message.payments)}"
                )
            for tenant in {item.tenant for item in message.payments}:
                check_tenant(tenant)
            checked = iter(await asyncio.gather(*(self._pin_ok(item) for item in message.payments if item.pin)))
            paying = [code_payment(item, next(checked) if item.pin else None) for item in message.payments]
            paid = await self._run(lambda op: self._wallets.pay_by_code_many(op, paying))
            self._count_results(method, [reply.result for reply in paid])
            return encode_pay_batch_reply(paid)  # a PayBatchReply's bytes: a PayByCodeBatchReply's, field for field

        return await call(context, "PayByCodeBatch", work, self._refusals)

    async def _pin_ok(self, message: wallet_pb2.PayByCodeRequest) -> bool:
        """Whether the PIN a payment by code carries is its wallet's: checked in a worker thread (Argon2 never runs
        on the writer), in the same time whether the code names a wallet with a PIN or not."""
        stored = self._wallets.pin_hash_for_code(message.tenant, message.code, time.time_ns())
        return await asyncio.to_thread(pin_matches, stored, message.pin)

    async def AuthorizeHoldByCode(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.AuthorizeHoldByCodeRequest, request, "AuthorizeHoldByCode",
                            REQUEST_BYTES_MAX["AuthorizeHoldByCode"])  # fmt: skip
            check_tenant(message.tenant)
            pin_ok: bool | None = None
            if message.pin:  # checked here, in a worker thread, in the same time whether the wallet exists or not
                stored = self._wallets.pin_hash_for_code(message.tenant, message.code, time.time_ns())
                pin_ok = await asyncio.to_thread(pin_matches, stored, message.pin)
            holding = CodePayment(
                tenant=message.tenant, code=message.code, amount=message.amount, terminal=message.terminal,
                transaction=message.transaction, order_reference=message.reference, currency=message.currency,
                pin_ok=pin_ok,
            )  # fmt: skip
            reply = await self._run(lambda op: _hold_reply(self._wallets.hold_by_code(op, holding, message.seconds)))
            self._count("AuthorizeHoldByCode", reply)
            return reply.SerializeToString()

        return await call(context, "AuthorizeHoldByCode", work, self._refusals)

    async def GetCodePayment(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.CodePaymentRequest, op: Operation) -> Message:
            reply = self._wallets.code_payment(op, message.tenant, message.terminal, message.transaction)
            return _code_payment_reply(reply)

        return await self._call(context, "GetCodePayment", wallet_pb2.CodePaymentRequest, request, step)

    async def CancelCodePayment(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.CancelCodePaymentRequest, op: Operation) -> Message:
            reply = self._wallets.cancel_code_payment(
                op, message.tenant, message.terminal, message.transaction, message.reason
            )
            return _code_payment_reply(reply)

        return await self._call(context, "CancelCodePayment", wallet_pb2.CancelCodePaymentRequest, request, step)

    async def CreatePaymentRequest(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.CreatePaymentRequestRequest, op: Operation) -> Message:
            tenant = self._wallets.tenant(message.tenant)
            if tenant is not None and message.currency and message.currency != tenant.currency.code:
                return wallet_pb2.PaymentRequestReply(
                    result=wallet_pb2.WALLET_RESULT_CURRENCY_MISMATCH,
                    message=f"currency: tenant {message.tenant} keeps {tenant.currency.code}",
                )
            reply = self._wallets.create_payment_request(
                op, message.tenant, message.terminal, message.amount, message.reference, message.seconds, message.key
            )
            return _request_reply(reply)

        return await self._call(context, "CreatePaymentRequest", wallet_pb2.CreatePaymentRequestRequest, request, step)

    async def GetPaymentRequest(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.PaymentRequestRequest, op: Operation) -> Message:
            return _request_reply(self._wallets.payment_request(op, message.tenant, parse_id(message.request_id)))

        return await self._call(context, "GetPaymentRequest", wallet_pb2.PaymentRequestRequest, request, step)

    async def CancelPaymentRequest(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.PaymentRequestRequest, op: Operation) -> Message:
            reply = self._wallets.cancel_payment_request(op, message.tenant, parse_id(message.request_id))
            return _request_reply(reply)

        return await self._call(context, "CancelPaymentRequest", wallet_pb2.PaymentRequestRequest, request, step)

    async def ConfirmPaymentRequest(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.ConfirmPaymentRequestRequest, request, "ConfirmPaymentRequest",
                            REQUEST_BYTES_MAX["ConfirmPaymentRequest"])  # fmt: skip
            check_tenant(message.tenant)
            pin_ok: bool | None = None
            if message.pin:  # in a worker thread, in the same time whether the wallet has a PIN or not
                stored = self._wallets.pin_hash_of(message.tenant, message.customer)
                pin_ok = await asyncio.to_thread(pin_matches, stored, message.pin)
            request_id = parse_id(message.request_id)
            reply = await self._run(lambda op: pay_reply(self._wallets.confirm_payment_request(
                op, message.tenant, request_id, message.customer, pin_ok=pin_ok)))  # fmt: skip
            self._count("ConfirmPaymentRequest", reply)
            return reply.SerializeToString()

        return await call(context, "ConfirmPaymentRequest", work, self._refusals)

    async def CreatePayLink(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.CreatePayLinkRequest, request, "CreatePayLink",
                            REQUEST_BYTES_MAX["CreatePayLink"])  # fmt: skip
            check_tenant(message.tenant)
            tenant = self._wallets.tenant(message.tenant)
            if tenant is not None and message.currency and message.currency != tenant.currency.code:
                refused = wallet_pb2.PayLinkReply(result=wallet_pb2.WALLET_RESULT_CURRENCY_MISMATCH,
                                                  message=f"currency: tenant {message.tenant} keeps "
                                                          f"{tenant.currency.code}")  # fmt: skip
                return refused.SerializeToString()
            if message.send and not _PAGE_URL.fullmatch(message.page_url):
                raise MalformedRequest("page_url: an http:// or https:// URL (up to 255 characters) is required "
                                       "to send the link")  # fmt: skip
            reply = await self._run(lambda op: _link_reply(self._wallets.create_pay_link(
                op, message.tenant, message.amount, message.reference, message.description, message.contact,
                message.customer, message.seconds, message.key, reusable=message.reusable, partial=message.partial,
            )))  # fmt: skip
            if message.send and reply.result == wallet_pb2.WALLET_RESULT_OK and not reply.replayed:
                url = f"{message.page_url.rstrip('/')}/{reply.token}"
                try:
                    await asyncio.to_thread(self._notifier.send, _link_message(reply, url))
                    reply.sent = True
                except Exception:  # the link stands; the shop shares it another way or sends it again
                    logger.exception("the notifier failed to send a pay link")
            self._count("CreatePayLink", reply)
            return reply.SerializeToString()

        return await call(context, "CreatePayLink", work, self._refusals)

    async def GetPayLink(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.PayLinkRequest, request, "GetPayLink", REQUEST_BYTES_MAX["GetPayLink"])
            if message.token:
                self._check_link_tenant(message.token)
            else:
                check_tenant(message.tenant)
            link_id = parse_id(message.link_id) if not message.token else 0
            reply = await self._run(
                lambda op: _link_reply(self._wallets.pay_link(op, message.tenant, link_id, message.token))
            )
            self._count("GetPayLink", reply)
            return reply.SerializeToString()

        return await call(context, "GetPayLink", work, self._refusals)

    async def CancelPayLink(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.PayLinkRequest, op: Operation) -> Message:
            return _link_reply(self._wallets.cancel_pay_link(op, message.tenant, parse_id(message.link_id)))

        return await self._call(context, "CancelPayLink", wallet_pb2.PayLinkRequest, request, step)

    def _check_link_tenant(self, token: str) -> None:
        """PERMISSION_DENIED unless the caller may act for the tenant of the link behind `token` (an unknown
        token is left to the domain: REQUEST_NOT_FOUND)."""
        tenant = self._wallets.pay_link_tenant(token)
        if tenant is not None:
            check_tenant(tenant)

    async def StartPayLinkPayment(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.StartPayLinkPaymentRequest, request, "StartPayLinkPayment",
                            REQUEST_BYTES_MAX["StartPayLinkPayment"])  # fmt: skip
            self._check_link_tenant(message.token)
            pin_ok: bool | None = None
            if message.pin:  # in a worker thread, in the same time whether the wallet exists or not
                stored = self._wallets.link_pin_hash(message.token, message.customer)
                pin_ok = await asyncio.to_thread(pin_matches, stored, message.pin)
            challenge_id = int.from_bytes(secrets.token_bytes(16), "big") or 1
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            reply = await self._run(lambda op: self._wallets.start_pay_link_payment(
                op, message.token, message.customer, pin_ok, challenge_id, code))  # fmt: skip
            if reply.result is WalletResult.OK:
                try:
                    await asyncio.to_thread(self._notifier.send, _link_code_message(reply, code))
                except Exception:  # the notifier is the operator's: its failure is logged, the customer asks again
                    logger.exception("the notifier failed to send a pay link's one-time code")
                    reply = ChallengeReply(result=WalletResult.LEDGER_REFUSED,
                                           message="the code could not be sent; ask for a new one")  # fmt: skip
            answer = wallet_pb2.PayLinkChallengeReply(
                result=int(reply.result),  # type: ignore[arg-type]
                message=reply.message, challenge_id=format_id(reply.challenge_id), sent_to=reply.sent_to,
            )  # fmt: skip
            _timestamp(answer.expires_at, reply.expires_at)
            self._count("StartPayLinkPayment", answer)
            return answer.SerializeToString()

        return await call(context, "StartPayLinkPayment", work, self._refusals)

    async def PayPayLink(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.PayPayLinkRequest, request, "PayPayLink", REQUEST_BYTES_MAX["PayPayLink"])
            self._check_link_tenant(message.token)
            challenge_id = parse_id(message.challenge_id)
            reply = await self._run(lambda op: pay_reply(self._wallets.pay_pay_link(
                op, message.token, challenge_id, message.code)))  # fmt: skip
            self._count("PayPayLink", reply)
            return reply.SerializeToString()

        return await call(context, "PayPayLink", work, self._refusals)

    async def SetPin(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            message = parse(wallet_pb2.SetPinRequest, request, "SetPin", REQUEST_BYTES_MAX["SetPin"])
            check_tenant(message.tenant)
            problem = pin_problem(message.pin)
            if problem is not None:
                reply = wallet_pb2.PinReply(result=wallet_pb2.WALLET_RESULT_PIN_INVALID, message=problem)
            else:
                hashed = await asyncio.to_thread(hash_pin, message.pin)
                reply = await self._run(
                    lambda op: _pin_reply(self._wallets.set_pin(op, message.tenant, message.customer, hashed))
                )
            self._count("SetPin", reply)
            return reply.SerializeToString()

        return await call(context, "SetPin", work, self._refusals)

    async def GetPinStatus(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.WalletRequest, op: Operation) -> Message:
            return _pin_reply(self._wallets.pin_status(op, message.tenant, message.customer))

        return await self._call(context, "GetPinStatus", wallet_pb2.WalletRequest, request, step)

    async def UnlockPin(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.UnlockPinRequest, op: Operation) -> Message:
            if not message.operator or not message.reason:
                raise MalformedRequest("UnlockPin: operator and reason (1 to 255 characters each) are required")
            reply = self._wallets.unlock_pin(
                op, message.tenant, message.customer, actor=f"{_actor()} as {message.operator}", reason=message.reason
            )
            return _pin_reply(reply)

        return await self._call(context, "UnlockPin", wallet_pb2.UnlockPinRequest, request, step)

    async def EmptyWallet(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def step(message: wallet_pb2.EmptyWalletRequest, op: Operation) -> Message:
            destinations = {
                wallet_pb2.EMPTY_DESTINATION_PAYOUT: "payout",
                wallet_pb2.EMPTY_DESTINATION_BREAKAGE: "breakage",
            }
            destination = destinations.get(message.destination, "")
            reply = self._wallets.empty_wallet(
                op, message.tenant, message.customer, message.key, destination=destination,
                operator=message.operator, reason=message.reason, actor=_actor(),
            )  # fmt: skip
            return _booking_reply(reply)

        return await self._call(context, "EmptyWallet", wallet_pb2.EmptyWalletRequest, request, step)

    # -- statements and settlement -------------------------------------------------------------------------
    # The reports are ledger.wallet._statements' steps; each of their reads is a history read of the ledger,
    # taken in the caller's turn among the ledger's reads and showing only what is durable.

    async def GetStatement(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            method = "GetStatement"
            message = parse(wallet_pb2.GetStatementRequest, request, method, REQUEST_BYTES_MAX[method])
            check_tenant(message.tenant)
            query = _statement_query(message)
            found = await self._durable(lambda op: self._wallets.balance(op, message.tenant, message.customer))
            if not found.ok:
                reply = wallet_pb2.StatementReply(result=int(found.result), message=found.message)  # type: ignore[arg-type]
                return reply.SerializeToString()
            page = await self._read_history(statement(found.wallet_id, **query), _reader(context))
            return _statement_reply(found, page).SerializeToString()

        return await call(context, "GetStatement", work, self._refusals)

    async def GetSettlement(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def work() -> bytes:
            method = "GetSettlement"
            message = parse(wallet_pb2.GetSettlementRequest, request, method, REQUEST_BYTES_MAX[method])
            check_tenant(message.tenant)
            since, until = _settlement_range(message)

            def step(op: Operation) -> tuple[Tenant | None, int, frozenset[int]]:
                # The newest timestamp applied: once the operation's ticket is durable, every transfer up to it
                # is, and every later one is later; the reports' reads all stop there, so they see one moment.
                newest = self._ledger.stats().engine.timestamp_last
                tenant = self._wallets.tenant(message.tenant)
                if tenant is None:
                    return None, newest, frozenset()
                found = unpack_accounts(op.lookup_accounts(pack_ids(list(tenant.accounts.values()))))
                return tenant, newest, frozenset(a.id for a in found if not a.flags & AccountFlags.HISTORY)

            tenant, newest, without_history = await self._durable(step)
            if tenant is None:
                return wallet_pb2.SettlementReply(
                    result=wallet_pb2.WALLET_RESULT_TENANT_NOT_FOUND,
                    message=f"tenant: no tenant {message.tenant[:80]!r}",
                ).SerializeToString()
            as_of = min(until, newest + 1)
            report = await self._read_history(
                settlement(tenant.accounts, since=min(since, as_of), until=as_of, without_history=without_history),
                _reader(context),
            )
            if report.difference:
                logger.error(
                    "the settlement of tenant %s over %d..%d does not add up: closing %d - (opening %d + movements "
                    "%d) = %d; the history disagrees with itself",
                    tenant.tenant_id, report.since, report.until, report.closing, report.opening, report.movements,
                    report.difference,
                )  # fmt: skip
            return _settlement_reply(tenant, report, since, until, csv=message.csv).SerializeToString()

        return await call(context, "GetSettlement", work, self._refusals)

    async def _durable(self, step: Callable[[Operation], Result]) -> Result:
        """Run a step of the domain that reads, in a ledger operation; its result once everything applied
        before it is durable (so is what it read)."""
        operation = self._ledger.operation()
        try:
            found = step(operation)
        finally:
            ticket = operation.finish()
        await self._ledger.until_durable(ticket)
        return found

    async def _read_history(self, steps: Generator[HistoryRead, HistoryPage, Result], caller: Hashable) -> Result:
        """Run a report's steps, each read from the ledger's history in `caller`'s turn; the report."""
        try:
            read = next(steps)
            while True:
                f = AccountFilter(
                    account_id=read.account_id,
                    timestamp_min=read.timestamp_min,
                    timestamp_max=read.timestamp_max,
                    limit=read.limit,
                    reversed=read.newest_first,
                )
                if read.balances:
                    balances = await self._ledger.get_account_balances(f, caller=caller)
                    page = HistoryPage(balances=balances.balances, following=_following(read, balances.next))
                else:
                    transfers = await self._ledger.get_account_transfers(f, caller=caller)
                    page = HistoryPage(transfers=transfers.transfers, following=_following(read, transfers.next))
                read = steps.send(page)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


SWEEP_INTERVAL_SECONDS: Final = 1.0
"""How often expired credit moves to breakage and expired holds are voided: credit is never spendable past
its expiry either way; this is how soon the ledger shows it moved."""


async def sweep_expiries(ledger: Ledger, wallets: Wallets, interval_seconds: float = SWEEP_INTERVAL_SECONDS) -> None:
    """Run the wallet's expiry sweep every `interval_seconds` until cancelled (a sweep the ledger cannot take
    now, unavailable or overloaded, is taken at the next turn)."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            operation = ledger.operation()
        except LedgerError:
            continue
        try:
            wallets.sweep(operation)
        finally:
            operation.finish()


def wallet_service(
    ledger: Ledger, wallets: Wallets, metrics: LedgerMetrics | None = None, notifier: Notifier | None = None
) -> Service:
    """The Wallet service as the server assembles it (with `metrics`, its operations counted by result; with
    `notifier`, the messages it sends customers go there, else they are kept in memory)."""

    def register(server: grpc.aio.Server) -> None:
        service = WalletService(ledger, wallets, metrics, notifier)
        if metrics is not None:
            wallets.on_alert = metrics.count_wallet_alert
        handlers = {
            method.name: (
                grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
            )(getattr(service, method.name))
            for method in _SERVICE.methods
        }
        assert handlers.keys() == REQUEST_BYTES_MAX.keys() == PERMISSIONS.keys(), "every method is bounded and named"
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)

    return Service(SERVICE_NAME, register, PERMISSIONS)


# -- statements and settlement -----------------------------------------------------------------------------

_KIND_VALUES: Final = frozenset(kind.value for kind in StatementKind if kind is not StatementKind.UNSPECIFIED)
STATEMENT_KINDS_MAX: Final = 32
"""Most entries of a statement request's kinds (as many as the request's byte bound counts per repeated field)."""


def _nanoseconds(message: Any, name: str) -> int:
    """A request's timestamp field in nanoseconds, past the last the ledger assigns capped just after it (0:
    unset); before 1970 is INVALID_ARGUMENT naming the field."""
    if not message.HasField(name):
        return 0
    value = int(getattr(message, name).ToNanoseconds())
    if value < 0:
        raise ValueError(f"{name} must not be before 1970-01-01T00:00:00Z")
    return min(value, TIMESTAMP_MAX + 1)


def _statement_query(message: wallet_pb2.GetStatementRequest) -> dict[str, Any]:
    """The statement's arguments from the request; ValueError naming the first field out of bounds."""
    if message.limit == 0:
        limit = STATEMENT_LIMIT_DEFAULT
    elif 1 <= message.limit <= STATEMENT_LIMIT_MAX:
        limit = message.limit
    else:
        raise ValueError(
            f"limit must be 1 to {STATEMENT_LIMIT_MAX} rows (0: {STATEMENT_LIMIT_DEFAULT}), got {message.limit}"
        )
    if len(message.kinds) > STATEMENT_KINDS_MAX:
        raise ValueError(f"kinds: at most {STATEMENT_KINDS_MAX} entries, got {len(message.kinds)}")
    for kind in message.kinds:
        if kind not in _KIND_VALUES:
            raise ValueError(f"kinds: {kind} is not a StatementKind this server knows (nor may it be UNSPECIFIED)")
    since, until = _nanoseconds(message, "since"), _nanoseconds(message, "until")
    if message.HasField("until") and until <= since:
        raise ValueError("until must be after since")
    return {
        "since": since,
        "until": until,
        "after": decode_cursor(message.starting_after),
        "kinds": frozenset(StatementKind(kind) for kind in message.kinds),
        "limit": limit,
    }


def _settlement_range(message: wallet_pb2.GetSettlementRequest) -> tuple[int, int]:
    """[since, until) of the settlement asked for, until past every timestamp if open; ValueError naming the
    field at fault."""
    if message.day:
        if message.HasField("since") or message.HasField("until"):
            raise ValueError("day: set either a day or since (and until), not both")
        return day_range(message.day)
    if not message.HasField("since"):
        raise ValueError("since: a settlement covers a day or a range from since; set one")
    since, until = _nanoseconds(message, "since"), _nanoseconds(message, "until")
    if not message.HasField("until"):
        return since, TIMESTAMP_MAX + 1
    if until <= since:
        raise ValueError("until must be after since")
    return since, until


def _following(read: HistoryRead, following: AccountFilter | None) -> HistoryRead | None:
    if following is None:
        return None
    return HistoryRead(
        read.account_id, following.timestamp_min, following.timestamp_max, read.balances, read.newest_first, read.limit
    )


def _statement_reply(wallet: Balance, page: StatementPage) -> wallet_pb2.StatementReply:
    reply = wallet_pb2.StatementReply(
        result=wallet_pb2.WALLET_RESULT_OK,
        wallet_id=format_id(wallet.wallet_id),
        currency=wallet.currency,
        has_more=page.has_more,
        next_cursor=encode_cursor(page.cursor),
    )
    for row in page.rows:
        message = reply.rows.add(
            operation_id=format_id(row.operation_id),
            kind=int(row.kind),
            amount=row.amount,
            fee=row.fee,
            total=row.total,
            balance=row.balance,
            held=row.held,
            held_change=row.held_change,
            requested=row.requested,
            source=row.source,
            to_credit=row.to_credit,
            related_id=format_id(row.related_id),
            code=row.code,
        )
        message.created_at.FromNanoseconds(row.timestamp)
    return reply


def _settlement_reply(
    tenant: Tenant, report: Settlement, since: int, until: int, *, csv: bool
) -> wallet_pb2.SettlementReply:
    """The reply to a settlement asked for over [since, until) (until past every timestamp: open)."""
    reply = wallet_pb2.SettlementReply(
        result=wallet_pb2.WALLET_RESULT_OK,
        tenant=tenant.tenant_id,
        currency=tenant.currency.code,
        currency_scale=tenant.currency.scale,
        opening_liability=report.opening,
        movements=report.movements,
        closing_liability=report.closing,
        difference=report.difference,
        opening_vouchers=report.vouchers_opening,
        closing_vouchers=report.vouchers_closing,
    )
    for line in report.lines:
        reply.lines.add(section=line.section, line=line.line, amount=line.amount, transfers=line.transfers)
    reply.since.FromNanoseconds(since)
    if until <= TIMESTAMP_MAX:
        _timestamp(reply.until, until)
    reply.as_of.FromNanoseconds(report.until)
    if csv:
        reply.csv = settlement_csv(report, tenant=tenant.tenant_id, money=tenant.currency)
    return reply
