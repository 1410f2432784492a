"""The wallet's result codes, and the codes it gives its accounts and transfers in the core ledger.

Result codes are listed in precedence order: an operation that breaks several rules gets the code of the
first it breaks, checked in this order. Numbers are explicit and never reused; 0 is "unspecified" and is
never returned. The proto's WalletResult repeats them name for name and number for number (a test checks).
"""

from __future__ import annotations

from enum import IntEnum


class WalletResult(IntEnum):
    UNSPECIFIED = 0
    OK = 1
    """Done; for a retry with the same key and request, the original reply."""
    IDEMPOTENCY_KEY_INVALID = 2
    """The idempotency key is missing, too long or not printable text."""
    IDEMPOTENCY_KEY_REUSED = 3
    """The key was used before for a different request; nothing was done."""
    TENANT_INVALID = 4
    """A tenant id or a tenant setting is malformed or out of bounds (the message names the field)."""
    TENANT_NOT_FOUND = 5
    TENANT_EXISTS = 6
    """A tenant with this id exists with other settings."""
    CURRENCY_MISMATCH = 7
    """The request names another currency than the tenant keeps."""
    CUSTOMER_INVALID = 8
    """The customer reference is missing, too long or not printable text."""
    WALLET_NOT_FOUND = 9
    WALLET_CLOSED = 10
    WALLET_FROZEN = 11
    """A frozen wallet may receive refunds, nothing else."""
    AMOUNT_INVALID = 12
    """Zero, negative or above the largest amount (2**63 - 1 minor units)."""
    REFERENCE_REQUIRED = 13
    """A reference the operation needs is missing or too long (external payment, order, reason, operator)."""
    EXPIRY_INVALID = 14
    """An expiry in the past, or too far ahead."""
    SELF_TOPUP_DISABLED = 15
    """The tenant does not let customers buy credit themselves."""
    AMOUNT_NOT_ALLOWED = 16
    """Not one of the tenant's top-up amounts, or outside its range (the message names them)."""
    MAX_BALANCE_EXCEEDED = 17
    """The credit would take the wallet above the tenant's maximum balance."""
    PARTIAL_PAYMENT_DISABLED = 18
    """Partial payment was asked for and the tenant does not allow it."""
    INSUFFICIENT_FUNDS = 19
    """The wallet's spendable credit does not cover the payment and its fee; nothing moved."""
    PAYMENT_NOT_FOUND = 20
    REFUND_EXCEEDS_PAYMENT = 21
    """The refunds of a payment would exceed what was paid (the message says what is left to refund)."""
    REFUND_TO_CREDIT_DISABLED = 22
    """The tenant does not refund the part paid another way as store credit."""
    HOLD_NOT_FOUND = 23
    HOLD_NOT_PENDING = 24
    """The hold was captured, voided or expired already."""
    CAPTURE_EXCEEDS_HOLD = 25
    WALLET_NOT_EMPTY = 26
    """A wallet closes at zero only: pay out or move the remainder to breakage first."""
    BOOKING_NOT_FOUND = 27
    BOOKING_ALREADY_REVERSED = 28
    LEDGER_REFUSED = 29
    """The core ledger refused the chain (a bound such as TRANSFERS_FULL; the message names its result)."""
    VOUCHER_NOT_FOUND = 30
    """No voucher of this tenant has this code, or the code is mistyped (its check character says which)."""
    VOUCHER_EXPIRED = 31
    VOUCHER_DEACTIVATED = 32
    VOUCHER_EMPTY = 33
    """Nothing is left on the voucher: it was redeemed or spent in full."""
    GRANT_RUN_REFUSED = 34
    """An all-or-nothing grant run was refused because another of its items was (see that item's result)."""
    CODE_INVALID = 35
    """A payment code that is malformed, of another window than the current or the grace one, of a device that
    was revoked or never enrolled, or of another tenant: one answer for all, which tells nothing of a wallet."""
    CODE_USED = 36
    """The payment code already paid: a code pays once (the device shows the next one a window later)."""
    DEVICE_NOT_FOUND = 37
    PIN_REQUIRED = 38
    """The payment is above the tenant's pin_above and came without the wallet's PIN (or the wallet has none)."""
    PIN_INVALID = 39
    """A wrong PIN (the message says how many tries are left), or, setting one, a PIN that may not be one."""
    PIN_LOCKED = 40
    """Wrong PINs locked the wallet's code payments for a while (the message says until when)."""
    PAYMENT_CANCELLED = 41
    """The terminal cancelled this transaction: it can no longer be paid (a paid one was refunded)."""
    REQUEST_NOT_FOUND = 44
    REQUEST_EXPIRED = 45
    """The payment request's time ran out before a customer confirmed it."""
    REQUEST_NOT_OPEN = 46
    """The payment request was paid (by another customer) or cancelled."""
    CHALLENGE_INVALID = 47
    """The one-time code of a pay link's challenge is wrong, its time ran out or its tries were used up."""
    CONTACT_INVALID = 48
    """A pay link's contact is neither a phone number in E.164 form nor an e-mail address."""
    LIMIT_EXCEEDED = 43
    """The payment would pass one of the tenant's risk limits on payments by code (the message names it)."""
    CANCEL_TOO_LATE = 42
    """A payment by code may be cancelled at its terminal within CANCEL_SECONDS of it; later, refund it."""


class AccountCode(IntEnum):
    """The `code` of the core accounts the wallet creates: what kind of account it is."""

    WALLET = 1
    FUNDING = 10
    """Money that bought credit (customer purchases, operator credit, gifts): the source of top-ups."""
    REVENUE = 11
    """What customers paid with credit."""
    FEES = 12
    """Fees for paying with credit."""
    REFUNDS = 13
    """Credit given back for payments and returns."""
    BREAKAGE = 14
    """Credit that expired or was written off at closing."""
    BENEFITS = 15
    """Employee benefits granted."""
    VOUCHERS = 16
    """Value of vouchers and gift cards issued and not yet redeemed or spent."""
    PAYOUTS = 17
    """Credit paid out to customers in money."""


SYSTEM_ACCOUNTS = (
    AccountCode.FUNDING,
    AccountCode.REVENUE,
    AccountCode.FEES,
    AccountCode.REFUNDS,
    AccountCode.BREAKAGE,
    AccountCode.BENEFITS,
    AccountCode.VOUCHERS,
    AccountCode.PAYOUTS,
)
"""Created with every tenant, one each in its ledger."""


class TransferCode(IntEnum):
    """The `code` of the core transfers the wallet makes: which operation moved the money."""

    TOPUP_PURCHASE = 101
    TOPUP_OPERATOR = 102
    TOPUP_GIFT = 103
    TOPUP_RETURN = 104
    TOPUP_BENEFIT = 105
    PAYMENT = 201
    PAYMENT_FEE = 202
    HOLD = 211
    """A hold, and its capture or void: the core gives those the code of the hold they end; their flags
    (post or void pending) tell them apart."""
    REFUND = 221
    REFUND_TO_CREDIT = 222
    BOOKING_CREDIT = 301
    BOOKING_DEBIT = 302
    REVERSAL = 303
    EXPIRY = 401
    PAYOUT = 402
    WRITE_OFF = 403
    VOUCHER_ISSUE = 501
    VOUCHER_REDEEM = 502
    VOUCHER_SPEND = 503
    VOUCHER_EXPIRY = 504
    VOUCHER_DEACTIVATE = 505


class TopUpSource(IntEnum):
    """Where credit comes from; each has its own rules and transfer code."""

    UNSPECIFIED = 0
    PURCHASE = 1
    """The customer bought it (self top-up): needs the external payment reference and the tenant's policy."""
    OPERATOR = 2
    """An operator credited it: needs the operator id and a reason."""
    GIFT = 3
    """A gift or promotion."""
    RETURN = 4
    """Store credit for a returned purchase: needs the order reference."""
    BENEFIT = 5
    """An employee benefit."""


TOPUP_CODES = {
    TopUpSource.PURCHASE: (TransferCode.TOPUP_PURCHASE, AccountCode.FUNDING),
    TopUpSource.OPERATOR: (TransferCode.TOPUP_OPERATOR, AccountCode.FUNDING),
    TopUpSource.GIFT: (TransferCode.TOPUP_GIFT, AccountCode.FUNDING),
    TopUpSource.RETURN: (TransferCode.TOPUP_RETURN, AccountCode.REFUNDS),
    TopUpSource.BENEFIT: (TransferCode.TOPUP_BENEFIT, AccountCode.BENEFITS),
}
"""Per source: the transfer code and the system account the credit comes from."""
