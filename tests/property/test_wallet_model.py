"""The wallet domain against a plain model of wallets, on both engines.

Hypothesis runs a state machine over one or two tenants with different settings: wallets opened, top-ups
of every source (with and without expiry, in and out of the tenant's policy), payments in full and in
part, refunds to the wallet and as store credit, holds authorised, captured and voided, freezes, clock
jumps across expiries, expiry sweeps, retries of earlier requests with the same key (the original reply
again) and with another request (IDEMPOTENCY_KEY_REUSED), and restarts of the domain from its journal
records, from its snapshot, and from a checkpoint plus the records after it. Amounts are biased to the
edges: 0, 1, the exact balance and one more, the amount whose fee just fits, 2**63 - 1 and past it.

The model keeps each wallet's credit by expiry and each hold's reservation in a few dicts, and every
account's four balances as the engine counts them (so it knows when an account would overflow). It
predicts every reply; after every step the engine's accounts must equal the model's (which conserves
money by construction), and every wallet's balance, holds and expiring credit must be the model's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.engine import Engine, unpack_accounts
from ledger.records.limits import AMOUNT_MAX, TIMESTAMP_MAX
from ledger.wallet import (
    AccountCode,
    Balance,
    HoldReply,
    Payment,
    PaymentReply,
    Refund,
    RefundReply,
    Reply,
    TenantSettings,
    TopUp,
    TopUpReply,
    TopUpSource,
    WalletResult,
    Wallets,
    operation_id,
    wallet_id,
)
from tests.support import ENGINE_CLASSES
from tests.wallets import SECOND_NS, WalletBench, snapshot_parts

WR = WalletResult
DAY = 86_400
HOLD_SECONDS_MAX = 31 * DAY
HOLD_SECONDS_DEFAULT = 7 * DAY
TEXT_MAX = 255
TENANTS = ["shop-a", "shop-b"]
CUSTOMERS = ["anna", "ben", "cleo"]
UNKEPT = frozenset({WR.TENANT_NOT_FOUND, WR.IDEMPOTENCY_KEY_INVALID, WR.IDEMPOTENCY_KEY_REUSED, WR.LEDGER_REFUSED})
"""Replies the domain does not keep: a retry is decided again."""
NEVER = None
"""The key of credit that never expires in a model wallet's credit by expiry."""


# -- the model ---------------------------------------------------------------------------------------


def fee_of(settings: TenantSettings, paid: int) -> int:
    """fee_fixed + round_half_up(paid * fee_per_mille / 1000), nothing on nothing paid."""
    if paid <= 0:
        return 0
    whole, rest = divmod(paid * settings.fee_per_mille, 1000)
    return settings.fee_fixed + whole + (1 if 2 * rest >= 1000 else 0)


def most_payable(settings: TenantSettings, amount: int, available: int) -> int:
    """The largest paid <= amount with paid + fee(paid) <= available, 0 if none."""
    # paid * (1 + fee_per_mille / 1000) + fee_fixed - 1/2 <= available bounds the answer by one more than
    # the real-valued solution; step down from there.
    guess = min(amount, max(0, (available - settings.fee_fixed) * 1000 // (1000 + settings.fee_per_mille) + 1))
    while guess > 0 and guess + fee_of(settings, guess) > available:
        guess -= 1
    assert guess == amount or guess + 1 + fee_of(settings, guess + 1) > available
    return guess


def soonest_first(expiry: int | None) -> tuple[bool, int]:
    return expiry is NEVER, expiry or 0


@dataclass
class Counters:
    """An account's balances as the engine keeps them; each may reach AMOUNT_MAX and no further."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted

    def may_debit(self, amount: int, *, pending: bool = False) -> bool:
        mine = self.debits_pending if pending else self.debits_posted
        return mine + amount <= AMOUNT_MAX and self.debits_pending + self.debits_posted + amount <= AMOUNT_MAX

    def may_credit(self, amount: int, *, pending: bool = False) -> bool:
        mine = self.credits_pending if pending else self.credits_posted
        return mine + amount <= AMOUNT_MAX and self.credits_pending + self.credits_posted + amount <= AMOUNT_MAX


@dataclass
class ModelWallet:
    customer: str
    wallet_id: int
    status: str = "active"
    credit: dict[int | None, int] = field(default_factory=dict)
    """Unreserved credit by when it expires (NEVER: it does not)."""
    account: Counters = field(default_factory=Counters)

    @property
    def posted(self) -> int:
        return self.account.credits_posted - self.account.debits_posted

    @property
    def held(self) -> int:
        return self.account.debits_pending

    def available(self, now: int) -> int:
        return sum(amount for expiry, amount in self.credit.items() if expiry is NEVER or expiry > now)

    def expiring(self, now: int) -> list[list[int]]:
        return [
            [expiry, amount]
            for expiry, amount in sorted(self.credit.items(), key=lambda item: soonest_first(item[0]))
            if expiry is not NEVER and expiry > now and amount
        ]

    def boundaries(self, now: int) -> list[int]:
        """The amounts that spend whole grants exactly, in spending order, and one more than each."""
        spendable = sorted(
            (e for e, amount in self.credit.items() if amount and (e is NEVER or e > now)), key=soonest_first
        )
        totals = [sum(self.credit[e] for e in spendable[: count + 1]) for count in range(len(spendable))]
        return [*totals, *(total + 1 for total in totals)]

    def add(self, expiry: int | None, amount: int) -> None:
        self.credit[expiry] = self.credit.get(expiry, 0) + amount

    def take(self, amount: int, now: int) -> dict[int | None, int]:
        """Take `amount` of spendable credit, soonest-expiring first; never credit past its expiry."""
        taken: dict[int | None, int] = {}
        for expiry in sorted(self.credit, key=soonest_first):
            if amount == 0:
                break
            if expiry is not NEVER and expiry <= now:
                continue
            part = min(amount, self.credit[expiry])
            taken[expiry] = part
            self.credit[expiry] -= part
            amount -= part
        assert amount == 0, "the model spent more than the wallet may spend"
        self.credit = {expiry: left for expiry, left in self.credit.items() if left}
        return taken


@dataclass
class ModelHold:
    hold_id: int
    customer: str
    amount: int
    expires_at: int
    reserved: dict[int | None, int]
    status: str = "pending"


@dataclass
class ModelPayment:
    customer: str
    paid: int
    requested: int
    fee: int
    refunded_to_wallet: int = 0
    refunded_to_credit: int = 0


@dataclass
class ModelTenant:
    name: str
    settings: TenantSettings
    ledger: int
    account_ids: dict[AccountCode, int]
    accounts: dict[AccountCode, Counters] = field(default_factory=dict)
    wallets: dict[str, ModelWallet] = field(default_factory=dict)
    keys: dict[str, tuple[Any, Reply]] = field(default_factory=dict)
    """Per idempotency key the domain keeps: the request and the first reply."""
    payments: dict[int, ModelPayment] = field(default_factory=dict)
    """Payments and captured holds, by the id a refund names."""
    holds: dict[int, ModelHold] = field(default_factory=dict)
    topups: list[int] = field(default_factory=list)
    fees: int = 0
    swept: int = 0
    expiring_granted: int = 0
    """Credit ever granted with an expiry: breakage can never receive more than this."""

    def __post_init__(self) -> None:
        self.accounts = {kind: Counters() for kind in self.account_ids}

    def default_expiry(self, now: int) -> int | None:
        seconds = self.settings.credit_expiry_seconds
        return min(now + seconds * SECOND_NS, TIMESTAMP_MAX) if seconds else NEVER


# Requests the domain takes as arguments rather than as a dataclass, so that all are compared alike.
@dataclass(frozen=True)
class Authorize:
    tenant: str
    customer: str
    amount: int
    key: str
    seconds: int
    reference: str


@dataclass(frozen=True)
class Capture:
    tenant: str
    hold_id: int
    amount: int
    key: str


@dataclass(frozen=True)
class Void:
    tenant: str
    hold_id: int
    key: str


Request = TopUp | Payment | Refund | Authorize | Capture | Void


@dataclass
class Outcome:
    """What the model expects of one request: the reply (timestamp and message aside) and, when the domain
    acts on it, the model's own change."""

    reply: Callable[[], Reply]
    """Called after `commit`: an OK reply states balances after the operation."""
    commit: Callable[[], None] = lambda: None
    expiring: int = 0
    """Credit with an expiry the request would grant."""
    replayed: bool = False

    @property
    def result(self) -> WalletResult:
        return self.reply().result


def refused(reply_type: type[Reply], result: WalletResult, **fields: Any) -> Outcome:
    return Outcome(reply=lambda: reply_type(result=result, **fields))


def valid_text(text: str) -> bool:
    return 1 <= len(text) <= TEXT_MAX and text.isprintable()


class Model:
    """Wallets as dicts: what every request should answer and change."""

    def __init__(self) -> None:
        self.tenants: dict[str, ModelTenant] = {}

    # -- the rules of every request ------------------------------------------------------------------

    def expect(self, request: Request, now: int) -> Outcome:
        reply_type = reply_type_of(request)
        tenant = self.tenants.get(request.tenant)
        if tenant is None:
            return refused(reply_type, WR.TENANT_NOT_FOUND)
        if not valid_text(request.key):
            return refused(reply_type, WR.IDEMPOTENCY_KEY_INVALID)
        known = tenant.keys.get(request.key)
        if known is not None:
            first_request, first_reply = known
            if first_request == request:
                return Outcome(reply=lambda: first_reply, replayed=True)
            return refused(reply_type, WR.IDEMPOTENCY_KEY_REUSED)
        if isinstance(request, TopUp):
            return self._top_up(tenant, request, now)
        if isinstance(request, Payment):
            return self._pay(tenant, request, now)
        if isinstance(request, Refund):
            return self._refund(tenant, request, now)
        if isinstance(request, Authorize):
            return self._authorize(tenant, request, now)
        return self._finish_hold(tenant, request, now)

    def _top_up(self, tenant: ModelTenant, request: TopUp, now: int) -> Outcome:
        settings = tenant.settings

        def no(result: WalletResult) -> Outcome:
            return refused(TopUpReply, result)

        if not valid_text(request.customer):
            return no(WR.CUSTOMER_INVALID)
        if request.currency not in ("", "EUR"):
            return no(WR.CURRENCY_MISMATCH)
        if not 1 <= request.amount <= AMOUNT_MAX:
            return no(WR.AMOUNT_INVALID)
        source = request.source
        if source is TopUpSource.UNSPECIFIED:
            return no(WR.REFERENCE_REQUIRED)
        if len(request.reference) > TEXT_MAX or len(request.operator) > TEXT_MAX:
            return no(WR.REFERENCE_REQUIRED)
        if source in (TopUpSource.PURCHASE, TopUpSource.RETURN) and not request.reference:
            return no(WR.REFERENCE_REQUIRED)
        if source is TopUpSource.OPERATOR and not (request.operator and request.reference):
            return no(WR.REFERENCE_REQUIRED)
        if not request.never_expires and request.expires_at and not now < request.expires_at <= TIMESTAMP_MAX:
            return no(WR.EXPIRY_INVALID)
        if source is TopUpSource.PURCHASE:
            if not settings.self_topup:
                return no(WR.SELF_TOPUP_DISABLED)
            if settings.topup_amounts:
                if request.amount not in settings.topup_amounts:
                    return no(WR.AMOUNT_NOT_ALLOWED)
            elif request.amount < settings.topup_min or (settings.topup_max and request.amount > settings.topup_max):
                return no(WR.AMOUNT_NOT_ALLOWED)
        wallet = tenant.wallets.get(request.customer)
        if wallet is None:
            return no(WR.WALLET_NOT_FOUND)
        if wallet.status == "closed":
            return no(WR.WALLET_CLOSED)
        if wallet.status == "frozen" and source is not TopUpSource.RETURN:
            return no(WR.WALLET_FROZEN)
        if settings.max_balance and wallet.posted + request.amount > settings.max_balance:
            return no(WR.MAX_BALANCE_EXCEEDED)
        if wallet.posted + request.amount > AMOUNT_MAX:
            return no(WR.MAX_BALANCE_EXCEEDED)
        kind = {
            TopUpSource.RETURN: AccountCode.REFUNDS,
            TopUpSource.BENEFIT: AccountCode.BENEFITS,
        }.get(source, AccountCode.FUNDING)
        funding = tenant.accounts[kind]
        if not (funding.may_debit(request.amount) and wallet.account.may_credit(request.amount)):
            return no(WR.LEDGER_REFUSED)
        if request.never_expires:
            expiry = NEVER
        elif request.expires_at:
            expiry = request.expires_at
        else:
            expiry = tenant.default_expiry(now)

        def commit() -> None:
            funding.debits_posted += request.amount
            wallet.account.credits_posted += request.amount
            wallet.add(expiry, request.amount)
            tenant.expiring_granted += request.amount if expiry is not NEVER else 0
            tenant.topups.append(operation_id(tenant.name, request.key))

        return Outcome(
            reply=lambda: TopUpReply(
                operation_id=operation_id(tenant.name, request.key),
                wallet_id=wallet.wallet_id,
                amount=request.amount,
                expires_at=expiry or 0,
                balance=wallet.available(now),
            ),
            commit=commit,
            expiring=request.amount if expiry is not NEVER else 0,
        )

    def _pay(self, tenant: ModelTenant, request: Payment, now: int) -> Outcome:
        settings = tenant.settings

        def no(result: WalletResult) -> Outcome:
            return refused(PaymentReply, result, requested=request.amount)

        if not valid_text(request.customer):
            return no(WR.CUSTOMER_INVALID)
        if request.currency not in ("", "EUR"):
            return no(WR.CURRENCY_MISMATCH)
        if not 1 <= request.amount <= AMOUNT_MAX:
            return no(WR.AMOUNT_INVALID)
        if not 1 <= len(request.order_reference) <= TEXT_MAX:
            return no(WR.REFERENCE_REQUIRED)
        if request.partial and not settings.partial_payment:
            return no(WR.PARTIAL_PAYMENT_DISABLED)
        wallet = tenant.wallets.get(request.customer)
        if wallet is None:
            return no(WR.WALLET_NOT_FOUND)
        if wallet.status != "active":
            return no(WR.WALLET_CLOSED if wallet.status == "closed" else WR.WALLET_FROZEN)
        available = wallet.available(now)
        if request.amount + fee_of(settings, request.amount) <= available:
            paid = request.amount
        elif request.partial:
            paid = most_payable(settings, request.amount, available)
        else:
            paid = 0
        if paid == 0:
            return no(WR.INSUFFICIENT_FUNDS)
        fee = fee_of(settings, paid)
        revenue, fees = tenant.accounts[AccountCode.REVENUE], tenant.accounts[AccountCode.FEES]
        assert wallet.account.may_debit(paid + fee), "a wallet's debits never pass its credits"
        if not (revenue.may_credit(paid) and fees.may_credit(fee)):
            return refused(PaymentReply, WR.LEDGER_REFUSED)
        payment_id = operation_id(tenant.name, request.key)

        def commit() -> None:
            wallet.take(paid + fee, now)
            wallet.account.debits_posted += paid + fee
            revenue.credits_posted += paid
            fees.credits_posted += fee
            tenant.fees += fee
            tenant.payments[payment_id] = ModelPayment(request.customer, paid, request.amount, fee)

        return Outcome(
            reply=lambda: PaymentReply(
                payment_id=payment_id,
                wallet_id=wallet.wallet_id,
                requested=request.amount,
                paid=paid,
                remainder=request.amount - paid,
                fee=fee,
                balance=wallet.available(now),
            ),
            commit=commit,
        )

    def _refund(self, tenant: ModelTenant, request: Refund, now: int) -> Outcome:
        def no(result: WalletResult) -> Outcome:
            return refused(RefundReply, result, payment_id=request.payment_id)

        if not 1 <= request.amount <= AMOUNT_MAX:
            return no(WR.AMOUNT_INVALID)
        if len(request.reason) > TEXT_MAX:
            return no(WR.REFERENCE_REQUIRED)
        payment = tenant.payments.get(request.payment_id)
        if payment is None:
            return no(WR.PAYMENT_NOT_FOUND)
        if request.to_credit:
            if not tenant.settings.refund_to_credit:
                return no(WR.REFUND_TO_CREDIT_DISABLED)
            refundable = payment.requested - payment.paid - payment.refunded_to_credit
        else:
            refundable = payment.paid - payment.refunded_to_wallet
        if request.amount > refundable:
            return no(WR.REFUND_EXCEEDS_PAYMENT)
        wallet = tenant.wallets[payment.customer]
        if wallet.status == "closed":
            return no(WR.WALLET_CLOSED)
        refunds = tenant.accounts[AccountCode.REFUNDS]
        if not (refunds.may_debit(request.amount) and wallet.account.may_credit(request.amount)):
            return refused(RefundReply, WR.LEDGER_REFUSED)
        expiry = tenant.default_expiry(now)

        def commit() -> None:
            refunds.debits_posted += request.amount
            wallet.account.credits_posted += request.amount
            wallet.add(expiry, request.amount)
            tenant.expiring_granted += request.amount if expiry is not NEVER else 0
            if request.to_credit:
                payment.refunded_to_credit += request.amount
            else:
                payment.refunded_to_wallet += request.amount

        return Outcome(
            reply=lambda: RefundReply(
                refund_id=operation_id(tenant.name, request.key),
                payment_id=request.payment_id,
                wallet_id=wallet.wallet_id,
                amount=request.amount,
                to_credit=request.to_credit,
                refundable=refundable - request.amount,
                balance=wallet.available(now),
            ),
            commit=commit,
            expiring=request.amount if expiry is not NEVER else 0,
        )

    def _authorize(self, tenant: ModelTenant, request: Authorize, now: int) -> Outcome:
        def no(result: WalletResult) -> Outcome:
            return refused(HoldReply, result)

        if not valid_text(request.customer):
            return no(WR.CUSTOMER_INVALID)
        if not 1 <= request.amount <= AMOUNT_MAX:
            return no(WR.AMOUNT_INVALID)
        if not 0 <= request.seconds <= HOLD_SECONDS_MAX:
            return no(WR.EXPIRY_INVALID)
        if not 1 <= len(request.reference) <= TEXT_MAX:
            return no(WR.REFERENCE_REQUIRED)
        wallet = tenant.wallets.get(request.customer)
        if wallet is None:
            return no(WR.WALLET_NOT_FOUND)
        if wallet.status != "active":
            return no(WR.WALLET_CLOSED if wallet.status == "closed" else WR.WALLET_FROZEN)
        if request.amount > wallet.available(now):
            return no(WR.INSUFFICIENT_FUNDS)
        revenue = tenant.accounts[AccountCode.REVENUE]
        assert wallet.account.may_debit(request.amount, pending=True)
        if not revenue.may_credit(request.amount, pending=True):
            return no(WR.LEDGER_REFUSED)
        hold_id = operation_id(tenant.name, request.key)
        expires_at = now + (request.seconds or HOLD_SECONDS_DEFAULT) * SECOND_NS

        def commit() -> None:
            reserved = wallet.take(request.amount, now)
            wallet.account.debits_pending += request.amount
            revenue.credits_pending += request.amount
            tenant.holds[hold_id] = ModelHold(hold_id, request.customer, request.amount, expires_at, reserved)

        return Outcome(
            reply=lambda: HoldReply(
                hold_id=hold_id,
                wallet_id=wallet.wallet_id,
                amount=request.amount,
                expires_at=expires_at,
                balance=wallet.available(now),
                status="pending",
            ),
            commit=commit,
        )

    def _finish_hold(self, tenant: ModelTenant, request: Capture | Void, now: int) -> Outcome:
        def no(result: WalletResult) -> Outcome:
            return refused(HoldReply, result)

        hold = tenant.holds.get(request.hold_id)
        if hold is None:
            return no(WR.HOLD_NOT_FOUND)
        if hold.status != "pending" or hold.expires_at <= now:
            return no(WR.HOLD_NOT_PENDING)
        amount = request.amount if isinstance(request, Capture) else 0
        if not 0 <= amount <= AMOUNT_MAX:
            return no(WR.AMOUNT_INVALID)
        if amount > hold.amount:
            return no(WR.CAPTURE_EXCEEDS_HOLD)
        captured = (amount or hold.amount) if isinstance(request, Capture) else 0
        wallet = tenant.wallets[hold.customer]
        # The reply's balance is read after the engine's step, which moves the bench's clock on.
        after = now + 1_000

        def commit() -> None:
            self.end_hold(tenant, hold, captured, "captured" if captured else "voided")

        return Outcome(
            reply=lambda: HoldReply(
                hold_id=hold.hold_id,
                wallet_id=wallet.wallet_id,
                amount=captured or hold.amount,
                expires_at=hold.expires_at,
                balance=wallet.available(after),
                status=hold.status,
            ),
            commit=commit,
        )

    # -- changes that are not requests ---------------------------------------------------------------

    def end_hold(self, tenant: ModelTenant, hold: ModelHold, captured: int, status: str) -> None:
        """Spend `captured` of what the hold reserved, soonest-expiring first, and give back the rest."""
        wallet = tenant.wallets[hold.customer]
        revenue = tenant.accounts[AccountCode.REVENUE]
        spend = captured
        for expiry in sorted(hold.reserved, key=soonest_first):
            part = min(spend, hold.reserved[expiry])
            spend -= part
            if hold.reserved[expiry] - part:
                wallet.add(expiry, hold.reserved[expiry] - part)
        wallet.account.debits_pending -= hold.amount
        revenue.credits_pending -= hold.amount
        wallet.account.debits_posted += captured
        revenue.credits_posted += captured
        hold.status = status
        if captured:
            tenant.payments[hold.hold_id] = ModelPayment(hold.customer, captured, captured, fee=0)

    def sweep(self, now: int) -> tuple[int, int]:
        """Void the holds past their expiry, then move every credit past its expiry to breakage. Returns
        (holds expired, wallet expiries that moved credit)."""
        holds = lots = 0
        for tenant in self.tenants.values():
            for hold in tenant.holds.values():
                if hold.status == "pending" and hold.expires_at <= now:
                    self.end_hold(tenant, hold, 0, "expired")
                    holds += 1
            breakage = tenant.accounts[AccountCode.BREAKAGE]
            for wallet in tenant.wallets.values():
                for expiry, amount in list(wallet.credit.items()):
                    if expiry is NEVER or expiry > now or not amount:
                        continue
                    assert breakage.may_credit(amount), "the test keeps expiring credit within breakage's bound"
                    del wallet.credit[expiry]
                    wallet.account.debits_posted += amount
                    breakage.credits_posted += amount
                    tenant.swept += amount
                    lots += 1
        return holds, lots

    def set_status(self, tenant_name: str, customer: str, status: str, reason: str) -> WalletResult:
        tenant = self.tenants.get(tenant_name)
        if tenant is None:
            return WR.TENANT_NOT_FOUND
        if not valid_text(customer):
            return WR.CUSTOMER_INVALID
        if not 1 <= len(reason) <= TEXT_MAX:
            return WR.REFERENCE_REQUIRED
        wallet = tenant.wallets.get(customer)
        if wallet is None:
            return WR.WALLET_NOT_FOUND
        if wallet.status == "closed":
            return WR.WALLET_CLOSED
        if status == "closed" and (wallet.posted or wallet.held):
            return WR.WALLET_NOT_EMPTY
        wallet.status = status
        return WR.OK


def reply_type_of(request: Request) -> type[Reply]:
    if isinstance(request, TopUp):
        return TopUpReply
    if isinstance(request, Payment):
        return PaymentReply
    if isinstance(request, Refund):
        return RefundReply
    return HoldReply


def send(wallets: Wallets, op: Any, request: Request) -> Reply:
    if isinstance(request, TopUp):
        return wallets.top_up(op, request)
    if isinstance(request, Payment):
        return wallets.pay(op, request)
    if isinstance(request, Refund):
        return wallets.refund(op, request)
    if isinstance(request, Authorize):
        return wallets.authorize(
            op, request.tenant, request.customer, request.amount, request.key,
            seconds=request.seconds, reference=request.reference,
        )  # fmt: skip
    if isinstance(request, Capture):
        return wallets.capture(op, request.tenant, request.hold_id, request.amount, request.key)
    return wallets.void(op, request.tenant, request.hold_id, request.key)


def changed(request: Request) -> Request:
    """Another request under the same key."""
    if isinstance(request, Void):
        return Capture(request.tenant, request.hold_id, 0, request.key)
    if isinstance(request, TopUp | Payment | Refund | Authorize | Capture):
        return replace(request, amount=request.amount + 1)
    raise AssertionError(request)


# -- what hypothesis draws ---------------------------------------------------------------------------


@st.composite
def tenant_settings(draw: st.DrawFn) -> TenantSettings:
    listed = draw(st.booleans())
    return TenantSettings(
        self_topup=draw(st.sampled_from([True, True, True, False])),
        topup_amounts=tuple(sorted(draw(st.sets(st.sampled_from([500, 1000, 2500, 1, AMOUNT_MAX]), min_size=1))))
        if listed
        else (),
        topup_min=0 if listed else draw(st.sampled_from([0, 1, 100])),
        topup_max=0 if listed else draw(st.sampled_from([0, 5000, AMOUNT_MAX])),
        partial_payment=draw(st.booleans()),
        fee_fixed=draw(st.sampled_from([0, 1, 7, 100])),
        fee_per_mille=draw(st.sampled_from([0, 15, 1, 500, 1000])),
        max_balance=draw(st.sampled_from([0, 20_000, 3000, AMOUNT_MAX])),
        credit_expiry_seconds=draw(st.sampled_from([0, 3600, 60, DAY, 30 * DAY])),
        low_balance_threshold=draw(st.sampled_from([0, 100])),
        refund_to_credit=draw(st.booleans()),
    )


def amounts(*edges: int, high: int = 5_000) -> st.SearchStrategy[int]:
    """An edge of the moment, or an ordinary amount."""
    usable = sorted({edge for edge in edges if 1 <= edge <= AMOUNT_MAX})
    ordinary = st.integers(1, max(1, min(high, AMOUNT_MAX)))
    return st.one_of(ordinary, st.sampled_from(usable)) if usable else ordinary


HORIZON_NS = 100 * DAY * SECOND_NS
"""The clock jumps to expiries this close only: the engine's clock ends at TIMESTAMP_MAX."""
EDGE_AMOUNTS = [0, -1, AMOUNT_MAX + 1, AMOUNT_MAX, -AMOUNT_MAX]
BAD_TEXT = ["", "x" * (TEXT_MAX + 1), "tab\there"]
CLOCK_STEPS_NS = [
    SECOND_NS, 1, 1_000, 59 * SECOND_NS, 61 * SECOND_NS, 3600 * SECOND_NS, DAY * SECOND_NS,
    7 * DAY * SECOND_NS, 31 * DAY * SECOND_NS,
]  # fmt: skip


class WalletMachine(RuleBasedStateMachine):
    """Each request is drawn valid for the moment (an existing tenant and wallet, an amount the policy
    takes or an edge of the wallet's balance), then breaks none, one or two rules named by the draw."""

    engine_class: type[Engine]

    def __init__(self) -> None:
        super().__init__()
        self.bench = WalletBench(self.engine_class)
        self.model = Model()
        self.sent: list[Request] = []
        self.keys_made = 0
        self.checkpoint: tuple[bytes, int] = (b"", 0)
        self.errors: list[str] = []
        self.errors_allowed = 0
        self.handler = _ErrorLog(self.errors)
        logging.getLogger("ledger.wallet").addHandler(self.handler)

    def teardown(self) -> None:
        logging.getLogger("ledger.wallet").removeHandler(self.handler)

    @property
    def now(self) -> int:
        return self.bench.clock.now_ns

    # -- drawing requests ------------------------------------------------------------------------------

    @staticmethod
    def broken(data: st.DataObject, *rules: str) -> set[str]:
        """Which rules the request breaks: mostly none."""
        count = data.draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2]), label="rules broken")
        return set(data.draw(st.lists(st.sampled_from(rules), min_size=count, max_size=count), label="broken"))

    def tenant(self, data: st.DataObject, broken: set[str], usual: str = "") -> str:
        """`usual` (or any tenant), "nobody", or the other tenant (whose ids name nothing of this one)."""
        if "tenant" in broken:
            return "nobody"
        others = [name for name in self.model.tenants if name != usual]
        if "other tenant" in broken and usual and others:
            return others[0]
        return usual or data.draw(st.sampled_from(sorted(self.model.tenants)), label="tenant")

    def customer(self, data: st.DataObject, tenant: str, broken: set[str]) -> str:
        """A customer with a wallet, preferably one with credit to spend."""
        if "customer" in broken:
            return data.draw(st.sampled_from(BAD_TEXT), label="customer")
        wallets = self.model.tenants[tenant].wallets if tenant in self.model.tenants else {}
        funded = [customer for customer, wallet in sorted(wallets.items()) if wallet.available(self.now)]
        unopened = [customer for customer in CUSTOMERS if customer not in wallets]
        choices = unopened if "wallet" in broken and unopened else funded or sorted(wallets) or CUSTOMERS
        return data.draw(st.sampled_from(choices), label="customer")

    def key(self, data: st.DataObject, broken: set[str]) -> str:
        if "key" in broken:
            return data.draw(st.sampled_from(BAD_TEXT), label="key")
        if "reused key" in broken and self.sent:
            return data.draw(st.sampled_from(self.sent), label="key of").key
        self.keys_made += 1
        return f"k{self.keys_made}"

    def text(self, data: st.DataObject, broken: set[str], rule: str, good: str, label: str) -> str:
        return data.draw(st.sampled_from(BAD_TEXT[:2]), label=label) if rule in broken else good

    def wallet(self, tenant: str, customer: str) -> ModelWallet | None:
        found = self.model.tenants.get(tenant)
        return found.wallets.get(customer) if found else None

    # -- set-up ----------------------------------------------------------------------------------------

    @initialize(
        first=tenant_settings(),
        second=tenant_settings(),
        two=st.booleans(),
        opened=st.sets(st.sampled_from(CUSTOMERS), min_size=1),
    )
    def tenants(self, first: TenantSettings, second: TenantSettings, two: bool, opened: set[str]) -> None:
        # The second tenant differs in what matters most, whatever else was drawn.
        second = replace(second, partial_payment=not first.partial_payment, refund_to_credit=not first.refund_to_credit)
        for name, settings_ in list(zip(TENANTS, (first, second), strict=True))[: 2 if two else 1]:
            with self.bench.op() as op:
                reply = self.bench.wallets.create_tenant(op, name, "EUR", settings_, actor="test")
            assert reply.ok, reply.message
            ids = {AccountCode[kind.upper()]: account for kind, account in reply.accounts.items()}
            self.model.tenants[name] = ModelTenant(name, settings_, reply.ledger, ids)
            for customer in sorted(opened):
                self.open(name, customer)
                amount = min(settings_.max_balance or 10_000, 10_000)
                self.call(TopUp(tenant=name, customer=customer, amount=amount, key=f"gift {customer}",
                                source=TopUpSource.GIFT, never_expires=True))  # fmt: skip

    @rule(data=st.data())
    def open_wallet(self, data: st.DataObject) -> None:
        broken = self.broken(data, "tenant", "customer")
        tenant = self.tenant(data, broken)
        customer = data.draw(st.sampled_from(BAD_TEXT), label="customer") if "customer" in broken else None
        self.open(tenant, customer or data.draw(st.sampled_from(CUSTOMERS), label="customer"))

    def open(self, tenant: str, customer: str) -> None:
        with self.bench.op() as op:
            reply = self.bench.wallets.open_wallet(op, tenant, customer)
        model = self.model.tenants.get(tenant)
        if model is None:
            assert reply.result is WR.TENANT_NOT_FOUND
        elif not valid_text(customer):
            assert reply.result is WR.CUSTOMER_INVALID
        else:
            assert reply.ok, reply.message
            assert reply.wallet_id == wallet_id(tenant, customer, "EUR")
            model.wallets.setdefault(customer, ModelWallet(customer, reply.wallet_id))

    # -- requests --------------------------------------------------------------------------------------

    @rule(data=st.data())
    def top_up(self, data: st.DataObject) -> None:
        broken = self.broken(
            data, "tenant", "customer", "wallet", "key", "reused key", "amount", "policy", "currency", "reference",
            "source", "expiry",
        )  # fmt: skip
        tenant = self.tenant(data, broken)
        customer = self.customer(data, tenant, broken)
        source = data.draw(st.sampled_from([TopUpSource.PURCHASE, *list(TopUpSource)[1:]]), label="source")
        if "source" in broken:
            source = TopUpSource.UNSPECIFIED
        model, wallet = self.model.tenants.get(tenant), self.wallet(tenant, customer)
        policy = model.settings if model else TenantSettings()
        room = AMOUNT_MAX - (wallet.posted if wallet else 0)
        if policy.max_balance:
            room = min(room, policy.max_balance - (wallet.posted if wallet else 0))
        if "amount" in broken:
            amount = data.draw(st.sampled_from([*EDGE_AMOUNTS, room + 1]), label="amount")
        elif "policy" in broken:
            outside = [policy.topup_min - 1, policy.topup_max + 1, *(a + 1 for a in policy.topup_amounts)]
            amount = data.draw(st.sampled_from(outside), label="amount")
        elif source is TopUpSource.PURCHASE and policy.topup_amounts:
            amount = data.draw(st.sampled_from(policy.topup_amounts), label="amount")
        else:
            low = policy.topup_min if source is TopUpSource.PURCHASE else 1
            high = policy.topup_max if source is TopUpSource.PURCHASE and policy.topup_max else AMOUNT_MAX
            amount = data.draw(amounts(low, min(high, room), room, AMOUNT_MAX, high=min(high, 5_000)), label="amount")
        expiry = data.draw(st.sampled_from(["at", "default", "at", "never"]), label="expiry")
        expires_at = 0
        if "expiry" in broken:
            expires_at = data.draw(st.sampled_from([self.now, self.now - 1, TIMESTAMP_MAX + 1, -1]), label="at")
            expiry = "at"
        elif expiry == "at":
            expires_at = self.now + data.draw(
                st.sampled_from([
                    60 * SECOND_NS, 1, 1_000, 1_001, SECOND_NS, DAY * SECOND_NS, 30 * DAY * SECOND_NS,
                    TIMESTAMP_MAX - self.now,
                ]),
                label="expires in",
            )  # fmt: skip
        request = TopUp(
            tenant=tenant,
            customer=customer,
            amount=amount,
            key=self.key(data, broken),
            source=source,
            currency="USD" if "currency" in broken else data.draw(st.sampled_from(["", "EUR"]), label="currency"),
            reference=self.text(data, broken, "reference", "psp-1", "reference"),
            operator="" if "reference" in broken and source is TopUpSource.OPERATOR else "op-7",
            expires_at=expires_at,
            never_expires=expiry == "never",
        )
        if self.beyond_breakage(request):
            request = replace(request, never_expires=True)
        self.call(request)

    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        broken = self.broken(
            data, "tenant", "customer", "wallet", "key", "reused key", "amount", "currency", "reference"
        )
        tenant = self.tenant(data, broken)
        customer = self.customer(data, tenant, broken)
        edges = []
        wallet = self.wallet(tenant, customer)
        if wallet is not None:
            settings_ = self.model.tenants[tenant].settings
            available = wallet.available(self.now)
            fits = most_payable(settings_, AMOUNT_MAX, available)
            edges += [available - 1, available, available + 1, fits, fits + 1, AMOUNT_MAX, *wallet.boundaries(self.now)]
        high = max(1, wallet.available(self.now)) if wallet else 5_000
        request = Payment(
            tenant=tenant,
            customer=customer,
            amount=data.draw(st.sampled_from(EDGE_AMOUNTS), label="amount")
            if "amount" in broken
            else data.draw(amounts(*edges, high=high), label="amount"),
            key=self.key(data, broken),
            order_reference=self.text(data, broken, "reference", "4711", "order"),
            partial=data.draw(st.booleans(), label="partial"),
            currency="USD" if "currency" in broken else data.draw(st.sampled_from(["", "EUR"]), label="currency"),
        )
        self.call(request)

    @precondition(lambda self: any(tenant.payments for tenant in self.model.tenants.values()))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        broken = self.broken(data, "tenant", "other tenant", "key", "reused key", "amount", "payment", "reason")
        paid = [(tenant.name, payment_id) for tenant in self.model.tenants.values() for payment_id in tenant.payments]
        if "payment" in broken or not paid:
            unpaid = [
                known
                for other in self.model.tenants.values()
                for known in (*other.topups, *other.holds, *other.payments)
            ]
            tenant = self.tenant(data, broken)
            payment_id = data.draw(st.sampled_from([*unpaid, 12_345, 0, -1]), label="payment_id")
        else:
            usual, payment_id = data.draw(st.sampled_from(paid), label="payment")
            tenant = self.tenant(data, broken, usual)
        model = self.model.tenants.get(tenant)
        edges = []
        payment = model.payments.get(payment_id) if model else None
        if payment is not None:
            left = payment.paid - payment.refunded_to_wallet
            other = payment.requested - payment.paid - payment.refunded_to_credit
            edges += [max(left, other, 1), left, left + 1, other, other + 1, AMOUNT_MAX]
        request = Refund(
            tenant=tenant,
            payment_id=payment_id,
            amount=data.draw(st.sampled_from(EDGE_AMOUNTS), label="amount")
            if "amount" in broken
            else data.draw(amounts(*edges, high=max(edges[:3], default=5_000)), label="amount"),
            key=self.key(data, broken),
            to_credit=data.draw(st.booleans(), label="to_credit"),
            reason=BAD_TEXT[1] if "reason" in broken else data.draw(st.sampled_from(["broken", ""]), label="reason"),
        )
        if self.beyond_breakage(request):
            return
        self.call(request)

    @rule(data=st.data())
    def authorize(self, data: st.DataObject) -> None:
        broken = self.broken(
            data, "tenant", "customer", "wallet", "key", "reused key", "amount", "seconds", "reference"
        )
        tenant = self.tenant(data, broken)
        customer = self.customer(data, tenant, broken)
        wallet = self.wallet(tenant, customer)
        available = wallet.available(self.now) if wallet else 0
        # Half the holds reserve whole grants exactly: what they give back is then a grant the wallet no
        # longer lists, whose expiry is still queued.
        edges = [edge for edge in wallet.boundaries(self.now) if edge <= available] if wallet else []
        ordinary = amounts(available, available + 1, high=max(1, available))
        request = Authorize(
            tenant=tenant,
            customer=customer,
            amount=data.draw(st.sampled_from(EDGE_AMOUNTS), label="amount")
            if "amount" in broken
            else data.draw(st.one_of(st.sampled_from(edges), ordinary) if edges else ordinary, label="amount"),
            key=self.key(data, broken),
            seconds=data.draw(st.sampled_from([HOLD_SECONDS_MAX + 1, -1]), label="seconds")
            if "seconds" in broken
            else data.draw(st.sampled_from([60, 0, 1, 3600, HOLD_SECONDS_MAX]), label="seconds"),
            reference=self.text(data, broken, "reference", "table 4", "reference"),
        )
        self.call(request)

    def hold(self, data: st.DataObject, broken: set[str]) -> tuple[str, int]:
        """A pending hold and its tenant, unless the request breaks that."""
        pending = [
            (tenant.name, hold.hold_id)
            for tenant in self.model.tenants.values()
            for hold in tenant.holds.values()
            if hold.status == "pending"
        ]
        if "hold" in broken or not pending:
            others = [known for other in self.model.tenants.values() for known in (*other.holds, *other.payments)]
            return self.tenant(data, broken), data.draw(st.sampled_from([*others, 12_345, 0]), label="hold_id")
        usual, hold_id = data.draw(st.sampled_from(pending), label="hold")
        return self.tenant(data, broken, usual), hold_id

    @precondition(lambda self: any(tenant.holds for tenant in self.model.tenants.values()))
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        broken = self.broken(data, "tenant", "other tenant", "key", "reused key", "hold", "amount")
        tenant, hold_id = self.hold(data, broken)
        hold = self.model.tenants[tenant].holds.get(hold_id) if tenant in self.model.tenants else None
        held = hold.amount if hold else 1
        if "amount" in broken:
            amount = data.draw(st.sampled_from([held + 1, -1, AMOUNT_MAX + 1]), label="amount")
        else:
            amount = data.draw(st.one_of(st.just(0), amounts(held, held - 1, high=held)), label="amount")
        self.call(Capture(tenant, hold_id, amount, self.key(data, broken)))

    @precondition(lambda self: any(tenant.holds for tenant in self.model.tenants.values()))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        broken = self.broken(data, "tenant", "other tenant", "key", "reused key", "hold")
        tenant, hold_id = self.hold(data, broken)
        self.call(Void(tenant, hold_id, self.key(data, broken)))

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same request again, as a client whose answer was lost sends it."""
        kinds = sorted({type(request).__name__ for request in self.sent})
        if kinds:
            kind = data.draw(st.sampled_from(kinds), label="kind")
            request = data.draw(st.sampled_from([sent for sent in self.sent if type(sent).__name__ == kind]))
            if not self.beyond_breakage(request):
                self.call(request)

    @rule(data=st.data())
    def reuse_key(self, data: st.DataObject) -> None:
        """Another request under a key the domain keeps: refused, and nothing changes."""
        kept = [request for tenant in self.model.tenants.values() for request, _ in tenant.keys.values()]
        if kept:
            request = changed(data.draw(st.sampled_from(kept), label="key of"))
            assert self.model.expect(request, self.now).result is WR.IDEMPOTENCY_KEY_REUSED
            self.call(request)

    @rule(data=st.data())
    def set_status(self, data: st.DataObject) -> None:
        broken = self.broken(data, "tenant", "customer", "wallet", "reason")
        tenant = self.tenant(data, broken)
        customer = self.customer(data, tenant, broken)
        status = data.draw(st.sampled_from(["frozen", "active", "closed"]), label="status")
        reason = self.text(data, broken, "reason", "fraud check", "reason")
        before = self.observe()
        with self.bench.op() as op:
            reply = self.bench.wallets.set_status(op, tenant, customer, status, actor="op-1", reason=reason)
        expected = self.model.set_status(tenant, customer, status, reason)
        assert reply.result is expected, (reply, expected)
        if not reply.ok:
            assert self.observe() == before

    # -- time ------------------------------------------------------------------------------------------

    @rule(data=st.data())
    def time_passes(self, data: st.DataObject) -> None:
        moments = [
            moment
            for model in self.model.tenants.values()
            for moment in (
                *(expiry for wallet in model.wallets.values() for expiry in wallet.credit if expiry is not NEVER),
                *(hold.expires_at for hold in model.holds.values() if hold.status == "pending"),
            )
            if self.now < moment <= self.now + HORIZON_NS
        ]
        if moments and data.draw(st.sampled_from([True, True, False]), label="to an expiry"):
            target = data.draw(st.sampled_from(sorted(moments)), label="expiry") + data.draw(
                st.sampled_from([0, -1, 1]), label="off by"
            )
            self.bench.clock.now_ns = max(self.now, target)
        else:
            self.bench.clock.now_ns += data.draw(st.sampled_from(CLOCK_STEPS_NS), label="step")
        if data.draw(st.booleans(), label="then sweep"):
            self.sweep()

    @rule()
    def sweep(self) -> None:
        now = self.now
        with self.bench.op() as op:
            moved = self.bench.wallets.sweep(op)
        holds, lots = self.model.sweep(now)
        # A wallet's credit with one expiry may be several grants, each an expiry of its own.
        assert moved >= holds + lots and (moved == 0) == (holds + lots == 0), (moved, holds, lots)

    # -- restarts --------------------------------------------------------------------------------------

    @rule()
    def take_checkpoint(self) -> None:
        self.checkpoint = (self.bench.wallets.snapshot(), len(self.bench.journal))

    @rule(how=st.sampled_from(["journal", "snapshot", "checkpoint"]))
    def restart(self, how: str) -> None:
        live = self.bench.wallets.snapshot()
        if how == "journal":
            wallets = self.bench.restarted()
        else:
            wallets = Wallets()
            snapshot, seq = (live, len(self.bench.journal)) if how == "snapshot" else self.checkpoint
            wallets.restore(snapshot)
            for index, records in enumerate(self.bench.journal[seq:], seq + 1):
                wallets.replay(records, index)
        assert wallets.snapshot() == live
        self.bench.wallets = wallets

    # -- one request -----------------------------------------------------------------------------------

    def beyond_breakage(self, request: Request) -> bool:
        """Whether the request would grant credit with an expiry past what breakage can take in (2**63 - 1
        over a tenant's life): the engine would refuse that expiry, which the model does not follow."""
        tenant = self.model.tenants.get(request.tenant)
        if tenant is None:
            return False
        outcome = self.model.expect(request, self.now)
        return not outcome.replayed and tenant.expiring_granted + outcome.expiring > AMOUNT_MAX

    def observe(self) -> tuple[bytes, int, bytes, int]:
        engine = self.bench.engine
        return (
            engine.export_snapshot().accounts,
            engine.stats().transfers_count,
            self.bench.wallets.snapshot(),
            len(self.bench.journal),
        )

    def call(self, request: Request) -> None:
        now = self.now
        outcome = self.model.expect(request, now)
        expected = outcome.reply()
        before = self.observe()
        with self.bench.op() as op:
            reply = send(self.bench.wallets, op, request)
        self.sent.append(request)
        assert reply.result is expected.result, (request, reply, expected)
        if outcome.replayed:
            assert reply == replace(expected, replayed=True), "a retry must get the original reply, said to be one"
            assert self.observe() == before, "a retry must change nothing"
            return
        if reply.ok:
            assert not reply.message
            outcome.commit()
            got, want = reply.to_json(), outcome.reply().to_json()
            assert got.pop("timestamp") > now and want.pop("timestamp") == 0
            assert got == want, (request, reply, want)
        else:
            assert reply.message
            assert replace(reply, message="") == expected, (request, reply, expected)
            self.unchanged_but_reply(before, reply.result)
            if reply.result is WR.LEDGER_REFUSED:
                self.errors_allowed = len(self.errors)
        if reply.result not in UNKEPT:
            self.model.tenants[request.tenant].keys[request.key] = (request, reply)

    def unchanged_but_reply(self, before: tuple[bytes, int, bytes, int], result: WalletResult) -> None:
        """A refused request moves nothing; the domain keeps its reply unless nothing can be replayed."""
        after = self.observe()
        assert after[:2] == before[:2], "a refused request must move nothing"
        if result in UNKEPT:
            assert after[2:] == before[2:]
            return
        (kept, kept_grants), (was, was_grants) = snapshot_parts(after[2]), snapshot_parts(before[2])
        assert len(kept.pop("replies")) == len(was.pop("replies")) + 1
        assert (kept, kept_grants) == (was, was_grants)
        assert after[3] == before[3] + 1

    # -- after every step ------------------------------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        now = self.now
        accounts = unpack_accounts(self.bench.engine.export_snapshot().accounts)
        refunds, holds = self.bench.wallets.state.refunds, self.bench.wallets.state.holds
        captures = self.bench.wallets.state.captures  # a captured hold's refunds are counted under its capture
        for tenant in self.model.tenants.values():
            mine = {account.id: account for account in accounts if account.ledger == tenant.ledger}
            assert sum(account.credits_posted - account.debits_posted for account in mine.values()) == 0
            assert sum(account.credits_pending - account.debits_pending for account in mine.values()) == 0
            expected = {tenant.account_ids[kind]: counters for kind, counters in tenant.accounts.items()}
            expected |= {wallet.wallet_id: wallet.account for wallet in tenant.wallets.values()}
            assert set(mine) == set(expected)
            for account_id, account in mine.items():
                balances = (account.debits_pending, account.debits_posted, account.credits_pending)
                assert (*balances, account.credits_posted) == expected[account_id].as_tuple(), account
            breakage = mine[tenant.account_ids[AccountCode.BREAKAGE]]
            fees = mine[tenant.account_ids[AccountCode.FEES]]
            assert breakage.credits_posted == tenant.swept
            assert fees.credits_posted == tenant.fees == sum(payment.fee for payment in tenant.payments.values())
            pending = {hold.hold_id: hold for hold in tenant.holds.values() if hold.status == "pending"}
            assert {hold.hold_id for hold in holds.values() if hold.tenant == tenant.name} == set(pending)
            for wallet in tenant.wallets.values():
                account = mine[wallet.wallet_id]
                assert account.credits_posted >= account.debits_posted + account.debits_pending
                mine_held = [hold for hold in pending.values() if hold.customer == wallet.customer]
                assert wallet.held == sum(hold.amount for hold in mine_held)
                assert all(sum(hold.reserved.values()) == hold.amount for hold in mine_held)
                with self.bench.op() as op:
                    balance = self.bench.wallets.balance(op, tenant.name, wallet.customer)
                assert replace(balance, expiring=[]) == Balance(
                    wallet_id=wallet.wallet_id, currency="EUR", status=wallet.status,
                    available=wallet.available(now), held=wallet.held, posted=wallet.posted,
                ), (wallet, balance)  # fmt: skip
                assert by_expiry(balance.expiring) == wallet.expiring(now)
            for payment_id, payment in tenant.payments.items():
                assert 0 <= payment.refunded_to_wallet <= payment.paid
                assert 0 <= payment.refunded_to_credit <= payment.requested - payment.paid
                refunded = [payment.refunded_to_wallet, payment.refunded_to_credit]
                assert refunds.get(captures.get(payment_id, payment_id), [0, 0]) == refunded
        assert self.errors[self.errors_allowed :] == [], "the domain logged an error it had no cause for"
        self.errors_allowed = len(self.errors)


def by_expiry(expiring: list[list[int]]) -> list[list[int]]:
    """[expires_at, amount] summed over the grants that expire at the same moment."""
    summed: dict[int, int] = {}
    for expires_at, amount in expiring:
        summed[expires_at] = summed.get(expires_at, 0) + amount
    return [[expires_at, amount] for expires_at, amount in sorted(summed.items())]


class _ErrorLog(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(record.getMessage())


# Each example is a run of up to 50 steps with a full check after each: an eighth of the profile's examples
# per engine keeps the CI profile within about a minute for both engines.
@pytest.mark.parametrize("engine_class", list(ENGINE_CLASSES.values()), ids=list(ENGINE_CLASSES))
def test_the_wallet_domain_agrees_with_a_plain_model(engine_class: type[Engine]) -> None:
    machine = type(f"WalletMachine_{engine_class.__name__}", (WalletMachine,), {"engine_class": engine_class})
    run_state_machine_as_test(
        machine, settings=settings(max_examples=max(50, settings().max_examples // 8), stateful_step_count=50)
    )
