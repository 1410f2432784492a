"""The JSON the gateway takes and answers: msgspec structs that are the OpenAPI schema.

Amounts are integers in minor units of the currency beside them (cents for EUR); a fraction, a string or a
number out of range is refused with the field named, as an unknown field is. Times are ISO 8601 (RFC 3339)
in UTC. Ids of wallets and operations are 32 lowercase hex digits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

AMOUNT_MAX: Final = 2**63 - 1
Amount = Annotated[int, msgspec.Meta(ge=1, le=AMOUNT_MAX, description="Minor units of the currency (1 to 2^63 - 1)")]
OptionalAmount = Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MAX, description="Minor units; 0: none")]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", description="ISO 4217 alphabetic code, e.g. EUR")]
Text = Annotated[str, msgspec.Meta(max_length=255)]
Customer = Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="The tenant's customer reference")]
TopUpSourceName = Literal["purchase", "operator", "gift", "return", "benefit"]
WalletStatusName = Literal["active", "frozen", "closed"]


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """A request body: unknown fields are refused, never ignored."""


# -- tenants -----------------------------------------------------------------------------------------------


class TenantSettings(Strict):
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    self_topup: bool = False
    topup_amounts: Annotated[list[Amount], msgspec.Meta(max_length=32)] = []
    topup_min: OptionalAmount = 0
    topup_max: OptionalAmount = 0
    partial_payment: bool = False
    fee_fixed: OptionalAmount = 0
    fee_per_mille: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    max_balance: OptionalAmount = 0
    credit_expiry_seconds: Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MAX)] = 0
    low_balance_threshold: OptionalAmount = 0
    refund_to_credit: bool = False
    pin_above: OptionalAmount = 0
    """A payment by code above this amount needs the wallet's payment PIN (0: none does)."""
    pin_attempts: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0
    """Wrong PINs in a row that lock the wallet's code payments (0: 5)."""
    pin_lock_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 86_400)] = 0
    """How long the lock lasts (0: 900 s)."""
    code_payment_max: OptionalAmount = 0
    """Risk limits on payments by code (0: none): the largest one payment; what one wallet may pay in a clock
    hour and a UTC day, and in how many payments; what one terminal may take in an hour and a day."""
    wallet_hour_amount: OptionalAmount = 0
    wallet_hour_count: OptionalAmount = 0
    wallet_day_amount: OptionalAmount = 0
    wallet_day_count: OptionalAmount = 0
    terminal_hour_amount: OptionalAmount = 0
    terminal_day_amount: OptionalAmount = 0
    terminal_declines_flag: OptionalAmount = 0
    """This many codes refused at one terminal within 10 minutes flag it (a terminal.flagged event; 0: never)."""


class CreateTenant(Strict):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    currency: Currency
    settings: TenantSettings = msgspec.field(default_factory=TenantSettings)


class Tenant(msgspec.Struct):
    id: str
    currency: str
    currency_scale: int
    """Decimal places of the minor unit (2 for EUR), for display."""
    ledger: int
    settings: TenantSettings
    accounts: dict[str, str]
    object: str = "tenant"


# -- wallets -----------------------------------------------------------------------------------------------


class OpenWallet(Strict):
    customer: Customer


class ExpiringCredit(msgspec.Struct):
    amount: int
    expires_at: datetime


class Wallet(msgspec.Struct):
    id: str
    customer: str
    currency: str
    status: str
    available: int
    """What the wallet may spend now."""
    held: int
    """Reserved by open holds."""
    posted: int
    expiring: list[ExpiringCredit]
    """The part of `available` that expires, soonest first."""
    object: str = "wallet"


class SetWalletStatus(Strict):
    status: WalletStatusName
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class WalletStatusChange(msgspec.Struct):
    id: str
    customer: str
    status: str
    object: str = "wallet_status"


# -- money in and out -------------------------------------------------------------------------------------


class CreateTopUp(Strict):
    customer: Customer
    amount: Amount
    currency: Currency
    source: TopUpSourceName = "purchase"
    reference: Text = ""
    """The external payment's reference for a purchase; the order's for a return; the reason for an
    operator's credit."""
    operator: Text = ""
    expires_at: datetime | None = None
    """When this credit expires (in the future); unset: the tenant's default."""
    never_expires: bool = False


class TopUp(msgspec.Struct):
    id: str
    wallet_id: str
    customer: str
    amount: int
    currency: str
    balance: int
    created_at: datetime
    expires_at: datetime | None = None
    object: str = "top_up"


class CreatePayment(Strict):
    customer: Customer
    amount: Amount
    currency: Currency
    order_reference: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    partial: bool = False
    """Pay what the wallet covers and leave the rest (`amount_remaining`) to be paid another way."""


class PaymentObject(msgspec.Struct):
    id: str
    wallet_id: str
    customer: str
    order_reference: str
    amount: int
    """The order's amount, as requested."""
    amount_paid: int
    amount_remaining: int
    """Left to collect another way (a partial payment)."""
    fee: int
    currency: str
    balance: int
    """The wallet's spendable balance right after the payment."""
    created_at: datetime
    object: str = "payment"


class CreateRefund(Strict):
    amount: Amount
    to_credit: bool = False
    """Refund the part paid another way as store credit (the tenant must allow it)."""
    reason: Text = ""


class Refund(msgspec.Struct):
    id: str
    payment_id: str
    wallet_id: str
    amount: int
    currency: str
    to_credit: bool
    refundable: int
    """What may still be refunded of the payment the same way."""
    balance: int
    created_at: datetime
    object: str = "refund"


# -- bulk grants ------------------------------------------------------------------------------------------

GRANTS_PER_RUN_MAX: Final = 10_000


class GrantItem(Strict):
    customer: Customer
    amount: Amount
    expires_at: datetime | None = None
    """When this grant expires (in the future); unset: the tenant's default, or never."""
    never_expires: bool = False


class CreateGrantRun(Strict):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="The run's id, e.g. benefits-2027-03")]
    """Each grant is keyed by (run id, customer): sending the run again, whole or in part, pays each once."""
    currency: Currency
    items: Annotated[list[GrantItem], msgspec.Meta(min_length=1, max_length=GRANTS_PER_RUN_MAX)]
    all_or_nothing: bool = False
    """Check every grant first; one refusal refuses the run and nothing moves."""
    open_wallets: bool = False
    """Open the wallets that do not exist yet."""
    source: Literal["benefit", "gift", "operator"] = "benefit"


class GrantResult(msgspec.Struct):
    customer: str
    status: Literal["granted", "refused"]
    id: str | None = None
    """The grant's operation id (a top-up's)."""
    wallet_id: str | None = None
    amount: int | None = None
    balance: int | None = None
    expires_at: datetime | None = None
    code: str | None = None
    """A refused grant's problem code, e.g. wallet_not_found."""
    detail: str | None = None


class GrantRun(msgspec.Struct):
    id: str
    currency: str
    granted: int
    """How many grants were applied (or replayed), and their sum."""
    granted_amount: int
    refused: int
    results: list[GrantResult]
    """One per item, in the order sent."""
    object: str = "grant_run"


# -- holds ------------------------------------------------------------------------------------------------


class CreateHold(Strict):
    customer: Customer
    amount: Amount
    currency: Currency
    seconds: Annotated[int, msgspec.Meta(ge=0, le=2_678_400)] = 0
    """How long the hold stays authorised (up to 31 days); 0: 7 days. Then it is voided."""
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] = "hold"
    """What it is for, e.g. a table or a fuel pump."""


class CaptureHold(Strict):
    amount: OptionalAmount = 0
    """Up to the held amount; 0: all of it. The rest is released."""


class Hold(msgspec.Struct):
    id: str
    wallet_id: str
    amount: int
    """Authorised; for a capture, captured; for a void, released."""
    currency: str
    status: str
    """pending, captured, voided or expired."""
    balance: int
    created_at: datetime
    expires_at: datetime | None = None
    object: str = "hold"


# -- bookings ---------------------------------------------------------------------------------------------

BookingDirectionName = Literal["credit", "debit"]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class CreateBooking(Strict):
    customer: Customer
    amount: Amount
    currency: Currency
    direction: BookingDirectionName
    """credit: into the wallet (never expires); debit: out of it, never more than it may spend."""
    operator: Reason
    reason: Reason


class EmptyWallet(Strict):
    destination: Literal["payout", "breakage"]
    """payout: paid out to the customer in money; breakage: written off."""
    operator: Reason
    reason: Reason


class ReverseBooking(Strict):
    operator: Reason
    reason: Reason


class Booking(msgspec.Struct):
    id: str
    wallet_id: str
    direction: str
    amount: int
    currency: str
    created_at: datetime
    balance: int | None = None
    """The wallet's spendable balance right after it (in the answer to a booking)."""
    operator: str | None = None
    reason: str | None = None
    reverses: str | None = None
    reversed_by: str | None = None
    object: str = "booking"


class BookingList(msgspec.Struct):
    data: list[Booking]
    has_more: bool
    """Pass the last id as `starting_after` for the next page."""
    object: str = "list"


# -- vouchers ---------------------------------------------------------------------------------------------

VoucherCode = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="The voucher's code, e.g. 7K2M-9QXD-4HPR-T0WB-Y (case, spaces and dashes ignored)",
    ),
]


class IssueVoucher(Strict):
    amount: Amount
    currency: Currency
    expires_at: datetime | None = None
    """When it expires (in the future); unset: the tenant's default credit expiry, or never."""
    never_expires: bool = False


class VoucherCodeOnly(Strict):
    """A voucher is named by its code in the body, never in a URL: the code is its bearer's money."""

    code: VoucherCode


class RedeemVoucher(Strict):
    code: VoucherCode
    customer: Customer


class SpendVoucher(Strict):
    code: VoucherCode
    amount: Amount
    currency: Currency
    order_reference: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class DeactivateVoucher(Strict):
    code: VoucherCode
    reason: Reason


class Voucher(msgspec.Struct):
    id: str
    amount: int
    """Issued: the value; redeemed, spent or deactivated: what this operation took from the voucher."""
    remaining: int
    currency: str
    status: str
    """active, deactivated or expired."""
    expires_at: datetime | None = None
    code: str | None = None
    """Only in the answer to issuing it (and to its retries)."""
    wallet_id: str | None = None
    balance: int | None = None
    """Redeemed: the wallet's spendable balance right after."""
    requested: int | None = None
    """Spent: the order's amount (`amount` is what the voucher paid of it)."""
    created_at: datetime | None = None
    object: str = "voucher"


# -- statements and settlement --------------------------------------------------------------------------


class StatementRow(msgspec.Struct):
    operation_id: str
    kind: str
    created_at: datetime
    amount: int
    """Signed change of the posted balance without the fee."""
    fee: int
    total: int
    balance: int
    """The posted balance right after."""
    held: int
    held_change: int
    requested: int
    source: str | None
    to_credit: bool
    related_id: str | None
    code: int


class Statement(msgspec.Struct):
    wallet_id: str
    currency: str
    data: list[StatementRow]
    has_more: bool
    next_cursor: str
    """Pass as `starting_after` for the next page (with the same range and kinds)."""
    object: str = "list"


class SettlementLine(msgspec.Struct):
    section: str
    line: str
    amount: int
    transfers: int


class Settlement(msgspec.Struct):
    tenant: str
    currency: str
    currency_scale: int
    since: datetime
    until: datetime | None
    as_of: datetime
    opening_liability: int
    lines: list[SettlementLine]
    movements: int
    closing_liability: int
    difference: int
    """closing - (opening + movements): always 0."""
    opening_vouchers: int
    closing_vouchers: int
    object: str = "settlement"


# -- the Ledger service's read side ----------------------------------------------------------------------


class LedgerAccount(msgspec.Struct):
    id: str
    ledger: int
    code: int
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    user_data_128: str
    user_data_64: int
    user_data_32: int
    created_at: datetime
    timestamp: int
    """The ledger's timestamp: nanoseconds since the Unix epoch, unique and increasing."""
    object: str = "ledger_account"


class LedgerTransfer(msgspec.Struct):
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    ledger: int
    code: int
    flags: int
    pending_id: str
    timeout: int
    user_data_128: str
    user_data_64: int
    user_data_32: int
    created_at: datetime
    timestamp: int
    object: str = "ledger_transfer"


class LedgerBalance(msgspec.Struct):
    account_id: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    created_at: datetime
    timestamp: int
    object: str = "ledger_balance"


class LedgerTransferList(msgspec.Struct):
    data: list[LedgerTransfer]
    has_more: bool
    next_cursor: str
    """Pass as `starting_after` for the next page."""
    object: str = "list"


class LedgerBalanceList(msgspec.Struct):
    data: list[LedgerBalance]
    has_more: bool
    next_cursor: str
    object: str = "list"


class ProblemDetails(msgspec.Struct):
    """An error (RFC 9457), as application/problem+json."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    """Stable: one per wallet result (insufficient_funds, wallet_frozen, ...) or gateway refusal."""
    request_id: str
    field: str | None = None
    """The field at fault: a JSON field of the request, a path or query parameter, or a header."""


class Health(msgspec.Struct):
    status: str
    ledger: str


# -- webhooks ---------------------------------------------------------------------------------------------

EVENT_TYPES: Final = (
    "tenant.created", "tenant.configured", "wallet.opened", "wallet.frozen", "wallet.unfrozen", "wallet.closed",
    "wallet.paid_out", "wallet.written_off", "wallet.empty_refused", "wallet.topped_up", "topup.refused",
    "payment.succeeded", "payment.declined", "refund.succeeded", "refund.refused", "credit.expired",
    "wallet.balance_below", "hold.authorized", "hold.captured", "hold.voided", "hold.expired", "hold.refused",
    "booking.created", "booking.reversed", "booking.refused", "voucher.issued", "voucher.redeemed",
    "voucher.spent", "voucher.deactivated", "voucher.expired", "voucher.refused", "device.enrolled",
    "device.revoked", "wallet.pin_set", "wallet.locked", "wallet.unlocked", "payment.cancelled",
    "terminal.flagged", "payment_request.created", "payment_request.paid", "payment_request.cancelled",
    "pay_link.created", "pay_link.cancelled", "pay_link.expired", "pay_link.code_sent", "pay_link.pin_refused",
    "pay_link.code_refused", "pay_link.paid", "pay_link.partially_paid",
)  # fmt: skip
"""The wallet event feed's types (the ledger's ledger.wallet.EVENT_TYPES_ALL; a test holds them equal)."""
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
WebhookUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2048, description="An http:// or https:// URL")]
EventTypes = Annotated[
    list[EventType], msgspec.Meta(max_length=len(EVENT_TYPES), description="The event types to send; empty: all")
]


class CreateWebhookEndpoint(Strict):
    url: WebhookUrl
    types: EventTypes = []
    description: Text = ""


class UpdateWebhookEndpoint(Strict):
    """Only the fields given change."""

    url: WebhookUrl | None = None
    types: EventTypes | None = None
    description: Text | None = None
    enabled: bool | None = None
    """false pauses deliveries; events meanwhile wait and are delivered once it is enabled again."""


class WebhookEndpoint(msgspec.Struct):
    id: str
    url: str
    types: list[str]
    description: str
    status: Literal["enabled", "disabled"]
    created_at: datetime
    updated_at: datetime
    secret: str | None = None
    """The signing secret (Standard Webhooks, "whsec_..."): in the answer to its creation only, else ask for it."""
    object: str = "webhook_endpoint"


class WebhookEndpointList(msgspec.Struct):
    data: list[WebhookEndpoint]
    has_more: bool
    """Pass the last id as `starting_after` for the next page."""
    object: str = "list"


class WebhookSecret(msgspec.Struct):
    endpoint_id: str
    secret: str
    previous_secret_valid_until: datetime | None
    """After a rotation, deliveries are signed with the previous secret too until then."""
    object: str = "webhook_secret"


class WebhookAttempt(msgspec.Struct):
    attempt: int
    at: datetime
    status_code: int | None
    """The receiver's HTTP status; none if it did not answer."""
    latency_ms: int
    error: str | None


class WebhookDelivery(msgspec.Struct):
    id: str
    endpoint_id: str
    event_id: str
    """The webhook-id header: the same on every attempt and redelivery."""
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    created_at: datetime
    payload: dict[str, Any]
    """The body posted."""
    attempt_log: list[WebhookAttempt] | None = None
    """Every attempt (when one delivery is asked for)."""
    object: str = "webhook_delivery"


class WebhookDeliveryList(msgspec.Struct):
    data: list[WebhookDelivery]
    has_more: bool
    """Newest first; pass the last id as `starting_after` for older ones."""
    object: str = "list"


# -- grant jobs -------------------------------------------------------------------------------------------

GRANT_JOB_ITEMS_MAX: Final = 1_000_000


class CreateGrantJob(Strict):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="The run's id, e.g. benefits-2027-03")]
    """Each grant is keyed by (run id, customer): sending the run again, whole or in part, pays each once."""
    currency: Currency
    items: Annotated[list[GrantItem], msgspec.Meta(min_length=1, max_length=GRANT_JOB_ITEMS_MAX)]
    open_wallets: bool = False
    source: Literal["benefit", "gift", "operator"] = "benefit"


class GrantJob(msgspec.Struct):
    id: str
    run_id: str
    status: Literal["running", "succeeded", "interrupted"]
    """interrupted: the gateway stopped or lost the ledger mid-run; send the run again (same id) for the rest."""
    total: int
    done: int
    """Items decided so far (granted or refused)."""
    granted: int
    granted_amount: int
    refused: int
    refusals: list[GrantResult]
    """The first 1,000 refused items, with their problem codes."""
    message: str | None
    created_at: datetime
    updated_at: datetime
    object: str = "grant_job"


# -- the counter ------------------------------------------------------------------------------------------

PaymentCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="The 18 digits the phone shows")]
TerminalText = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class EnrollDevice(Strict):
    customer: Customer
    name: Text = ""
    """What the customer calls the device, e.g. "Anna's phone"."""


class Device(msgspec.Struct):
    id: str
    wallet_id: str
    customer: str
    name: str
    status: Literal["active", "revoked"]
    enrolled_at: datetime
    revoked_at: datetime | None
    seed: str | None = None
    """The device's key (64 hex digits): in the answer to its enrolment only."""
    code_key: str | None = None
    """The tenant's code key (64 hex digits): in the answer to its enrolment only."""
    number: int | None = None
    """The device's number in its codes (masked in each): in the answer to its enrolment only."""
    step_seconds: int = 30
    grace_steps: int = 1
    object: str = "device"


class DeviceList(msgspec.Struct):
    data: list[Device]
    object: str = "list"


class CreateCodeHold(Strict):
    code: PaymentCode
    amount: Amount
    currency: Currency
    terminal: TerminalText
    """The terminal's id; with `transaction`, the hold's idempotency key."""
    transaction: TerminalText
    reference: Text = ""
    """What it is for (empty: the transaction id)."""
    seconds: Annotated[int, msgspec.Meta(ge=0, le=31 * 86_400, description="Until it lapses (0: a week)")] = 0
    pin: Annotated[str, msgspec.Meta(max_length=16)] = ""
    """The customer's payment PIN, when the amount is above the tenant's pin_above."""


class CreateCodePayment(Strict):
    code: PaymentCode
    amount: Amount
    currency: Currency
    terminal: TerminalText
    """The terminal's id; with `transaction`, the payment's idempotency key."""
    transaction: TerminalText
    """The terminal's own id of this payment: a retry with it gets the original answer."""
    order_reference: Text = ""
    """Empty: the transaction id."""
    partial: bool = False
    pin: Annotated[str, msgspec.Meta(max_length=16)] = ""
    """The customer's payment PIN, when the payment is above the tenant's pin_above."""


class CodePaymentObject(msgspec.Struct):
    id: str
    wallet_id: str
    terminal: str
    transaction: str
    order_reference: str
    amount: int
    amount_paid: int
    amount_remaining: int
    fee: int
    currency: str
    balance: int
    created_at: datetime
    object: str = "payment"


class CancelCodePayment(Strict):
    reason: Text = ""


class CodePaymentOutcome(msgspec.Struct):
    terminal: str
    transaction: str
    status: Literal["paid", "declined", "cancelled", "unknown"]
    """unknown: nothing came with this transaction (it may still come: cancel it to be sure it never pays)."""
    payment: CodePaymentObject | None
    """What it paid (paid, or cancelled after it paid)."""
    declined: ProblemDetails | None
    """Why it was declined, as the problem the payment was answered with."""
    refund_id: str | None
    """A cancelled payment's refund into the wallet."""
    object: str = "code_payment_outcome"


class CreatePaymentRequest(Strict):
    terminal: TerminalText
    amount: Amount
    currency: Currency
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="What it is for")]
    seconds: Annotated[int, msgspec.Meta(ge=0, le=600, description="How long it stays open (0: 120 s)")] = 0


class PaymentRequestObject(msgspec.Struct):
    id: str
    terminal: str
    amount: int
    currency: str
    reference: str
    status: Literal["open", "paid", "cancelled", "expired"]
    expires_at: datetime
    created_at: datetime
    payment_id: str | None
    """Paid: the payment, whose id is the request's."""
    wallet_id: str | None
    qr_payload: str
    """The EMVCo merchant-presented payload its QR code holds (also at qr.svg and qr.png)."""
    object: str = "payment_request"


class ConfirmPaymentRequest(Strict):
    customer: Customer
    pin: Annotated[str, msgspec.Meta(max_length=16)] = ""
    """The customer's payment PIN, when the amount is above the tenant's pin_above."""


class SetPin(Strict):
    pin: Annotated[str, msgspec.Meta(min_length=1, max_length=16, description="4 to 6 digits, not a run")]


class UnlockPin(Strict):
    operator: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class PinStatus(msgspec.Struct):
    wallet_id: str
    customer: str
    pin_set: bool
    failures: int
    """Wrong PINs in a row so far."""
    locked_until: datetime | None
    object: str = "pin_status"


Contact = Annotated[
    str, msgspec.Meta(min_length=1, max_length=254, description="A phone number in E.164 form or an e-mail address")
]


class CreatePayLink(Strict):
    amount: Amount
    currency: Currency
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="What it is for")]
    contact: Contact
    description: Annotated[str, msgspec.Meta(max_length=1_000, description="More words for the customer")] = ""
    customer: Annotated[str, msgspec.Meta(max_length=255, description="Only this customer's wallet pays it")] = ""
    seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 86_400, description="Open for 60 s to 30 days (0: 7 days)")] = 0
    reusable: bool = False
    """Paid again and again until it expires or is cancelled."""
    partial: bool = False
    """The customer may pay what their wallet holds; the rest is paid another way (single-use links)."""
    send: bool = False
    """Send the link to the contact now, through the ledger's notifier."""


class ShareLinks(msgspec.Struct):
    whatsapp: str
    """wa.me with the message filled in."""
    sms: str
    email: str


class PayLinkObject(msgspec.Struct):
    id: str
    url: str
    """The pay page: whoever holds it may see the amount, and pay with a wallet's PIN and the one-time code
    sent to the contact."""
    amount: int
    currency: str
    reference: str
    description: str
    contact: str
    customer: str | None
    reusable: bool
    partial: bool
    status: Literal["open", "paid", "partially_paid", "expired", "cancelled"]
    expires_at: datetime
    created_at: datetime
    paid: int
    """What its payments paid in all (a partially paid link: the rest is to be paid another way)."""
    payments: int
    payment_id: str | None
    """The last payment's."""
    qr_svg: str
    qr_png: str
    share: ShareLinks
    sent: bool = False
    """This request sent it to the contact through the notifier."""
    object: str = "pay_link"
