"""A tenant (a shop or an event organiser) and its settings, with the rules they set.

Every amount is an integer in minor units of the tenant's currency. The fee for paying with credit is
`fee_fixed + round_half_up(paid * fee_per_mille / 1000)`, charged on what the wallet pays (nothing when it
pays nothing), taken from the wallet beside the payment and booked to the tenant's fees account. That is
the one rounding rule of the wallet.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from ledger.records.limits import AMOUNT_MAX, DOMAIN_LEDGER_FIRST

from ._currencies import Currency, currency

TENANT_LENGTH_MAX: Final = 64
TOPUP_AMOUNTS_MAX: Final = 32
"""Most fixed top-up amounts a tenant may offer."""
FEE_PER_MILLE_MAX: Final = 1000
CREDIT_EXPIRY_SECONDS_MAX: Final = 100 * 366 * 86_400
"""A hundred years: the longest default lifetime of credit."""
NAME_LENGTH_MAX: Final = 200
PIN_ATTEMPTS_DEFAULT: Final = 5
PIN_ATTEMPTS_MAX: Final = 20
PIN_LOCK_SECONDS_DEFAULT: Final = 900
PIN_LOCK_SECONDS_MAX: Final = 7 * 86_400
_TENANT: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{TENANT_LENGTH_MAX - 1}}}")

WALLET_LEDGER_FIRST: Final = DOMAIN_LEDGER_FIRST
"""Ledger numbers from here up belong to wallet tenants, one per (tenant, currency), allocated in order;
the Ledger service's own ledgers stay below it, and it refuses writes to these."""


def check_tenant_id(tenant: str) -> str | None:
    """None if `tenant` is a well-formed tenant id, else what is wrong with it."""
    if _TENANT.fullmatch(tenant) is None:
        return (
            f"tenant must be 1 to {TENANT_LENGTH_MAX} letters, digits, '.', '_', ':' or '-' starting with a letter "
            f"or digit, got {tenant[:80]!r}"
        )
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantSettings:
    """What a tenant decides about its wallets. Amounts in minor units; 0 means "no limit" where stated."""

    name: str = ""
    self_topup: bool = True
    """Customers may buy credit themselves (top-up source PURCHASE)."""
    topup_amounts: tuple[int, ...] = ()
    """If not empty: the only amounts a customer may buy."""
    topup_min: int = 0
    """Smallest amount a customer may buy (0: no minimum); ignored when topup_amounts is set."""
    topup_max: int = 0
    """Largest amount a customer may buy (0: no maximum); ignored when topup_amounts is set."""
    partial_payment: bool = False
    """A payment may take what the wallet has and leave the rest to be paid another way."""
    fee_fixed: int = 0
    fee_per_mille: int = 0
    max_balance: int = 0
    """Largest balance a wallet may reach by credit (0: no maximum). Refunds may exceed it."""
    credit_expiry_seconds: int = 0
    """Credit without an expiry of its own expires this long after it is granted (0: never)."""
    low_balance_threshold: int = 0
    """A wallet whose balance falls below this emits one event per crossing (0: none)."""
    refund_to_credit: bool = False
    """The part of a payment paid another way may be refunded into the wallet as store credit."""
    pin_above: int = 0
    """A payment by code above this amount needs the wallet's payment PIN (0: none does)."""
    pin_attempts: int = 0
    """Wrong PINs in a row that lock the wallet's code payments (0: PIN_ATTEMPTS_DEFAULT)."""
    pin_lock_seconds: int = 0
    """How long such a lock lasts (0: PIN_LOCK_SECONDS_DEFAULT); an operator may lift it sooner."""

    code_payment_max: int = 0
    """Risk limits on payments by code (0: none). The largest one payment;"""
    wallet_hour_amount: int = 0
    """what one wallet may pay by code in a clock hour (UTC), and in how many payments;"""
    wallet_hour_count: int = 0
    wallet_day_amount: int = 0
    """the same per UTC day;"""
    wallet_day_count: int = 0
    terminal_hour_amount: int = 0
    """what one terminal may take in a clock hour and in a UTC day. The hour and day sums count the payments made
    while one of these is set."""
    terminal_day_amount: int = 0
    terminal_declines_flag: int = 0
    """This many codes refused at one terminal within 10 minutes flag it (a terminal.flagged event; 0: never)."""
    limits_periods: bool = field(init=False, repr=False, compare=False)
    """Whether a risk limit counts what was paid by code in an hour or a day (so each such payment needs its
    wallet's and its terminal's sums): derived, and kept because each payment by code asks."""

    def __post_init__(self) -> None:
        periods = bool(
            self.wallet_hour_amount or self.wallet_hour_count or self.wallet_day_amount or self.wallet_day_count
            or self.terminal_hour_amount or self.terminal_day_amount
        )  # fmt: skip
        object.__setattr__(self, "limits_periods", periods)

    @property
    def attempts_allowed(self) -> int:
        return self.pin_attempts or PIN_ATTEMPTS_DEFAULT

    @property
    def lock_seconds(self) -> int:
        return self.pin_lock_seconds or PIN_LOCK_SECONDS_DEFAULT

    def check(self) -> str | None:
        """None if every setting is in bounds, else a message naming the first that is not."""
        if len(self.name) > NAME_LENGTH_MAX or not self.name.isprintable():
            return f"name must be printable text of at most {NAME_LENGTH_MAX} characters"
        if len(self.topup_amounts) > TOPUP_AMOUNTS_MAX:
            return f"topup_amounts: at most {TOPUP_AMOUNTS_MAX}, got {len(self.topup_amounts)}"
        for amount in self.topup_amounts:
            if not 1 <= amount <= AMOUNT_MAX:
                return f"topup_amounts: each must be between 1 and {AMOUNT_MAX}, got {amount}"
        for name in ("topup_min", "topup_max", "fee_fixed", "max_balance", "low_balance_threshold"):
            value = getattr(self, name)
            if not 0 <= value <= AMOUNT_MAX:
                return f"{name} must be between 0 and {AMOUNT_MAX}, got {value}"
        if self.topup_max and self.topup_min > self.topup_max:
            return f"topup_min ({self.topup_min}) must not exceed topup_max ({self.topup_max})"
        if not 0 <= self.fee_per_mille <= FEE_PER_MILLE_MAX:
            return f"fee_per_mille must be between 0 and {FEE_PER_MILLE_MAX}, got {self.fee_per_mille}"
        if not 0 <= self.credit_expiry_seconds <= CREDIT_EXPIRY_SECONDS_MAX:
            return f"credit_expiry_seconds must be between 0 and {CREDIT_EXPIRY_SECONDS_MAX}"
        for name in (
            "code_payment_max",
            "wallet_hour_amount",
            "wallet_hour_count",
            "wallet_day_amount",
            "wallet_day_count",
            "terminal_hour_amount",
            "terminal_day_amount",
            "terminal_declines_flag",
        ):
            value = getattr(self, name)
            if not 0 <= value <= AMOUNT_MAX:
                return f"{name} must be between 0 and {AMOUNT_MAX}, got {value}"
        if not 0 <= self.pin_above <= AMOUNT_MAX:
            return f"pin_above must be between 0 and {AMOUNT_MAX}, got {self.pin_above}"
        if not 0 <= self.pin_attempts <= PIN_ATTEMPTS_MAX:
            return f"pin_attempts must be between 0 and {PIN_ATTEMPTS_MAX}, got {self.pin_attempts}"
        if not 0 <= self.pin_lock_seconds <= PIN_LOCK_SECONDS_MAX:
            return f"pin_lock_seconds must be between 0 and {PIN_LOCK_SECONDS_MAX}, got {self.pin_lock_seconds}"
        return None

    def fee(self, paid: int) -> int:
        """The fee for paying `paid` from the wallet (the module's rule)."""
        if paid <= 0:
            return 0
        return self.fee_fixed + (paid * self.fee_per_mille + 500) // 1000

    def most_payable(self, amount: int, available: int) -> int:
        """The largest `paid <= amount` with `paid + fee(paid) <= available` (0 if none): the fee grows
        with `paid`, so this is a binary search."""
        if amount + self.fee(amount) <= available:
            return amount
        low, high = 0, min(amount, available)
        while low < high:
            middle = (low + high + 1) // 2
            if middle + self.fee(middle) <= available:
                low = middle
            else:
                high = middle - 1
        return low

    def topup_refusal(self, amount: int, currency: Currency) -> str | None:
        """None if a customer may buy `amount`, else the rejection naming what is allowed."""
        if self.topup_amounts:
            if amount not in self.topup_amounts:
                allowed = ", ".join(currency.format(value) for value in sorted(self.topup_amounts))
                return f"amount {currency.format(amount)} is not one of the top-up amounts offered: {allowed}"
            return None
        if amount < self.topup_min or (self.topup_max and amount > self.topup_max):
            high = currency.format(self.topup_max) if self.topup_max else "no maximum"
            return (
                f"amount {currency.format(amount)} is outside the top-up range "
                f"{currency.format(self.topup_min)} to {high}"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["topup_amounts"] = list(self.topup_amounts)
        del data["limits_periods"]  # derived
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TenantSettings:
        return cls(**{**data, "topup_amounts": tuple(data.get("topup_amounts", ()))})


@dataclass(slots=True, kw_only=True)
class Tenant:
    tenant_id: str
    currency: Currency
    ledger: int
    """The tenant's ledger number for its currency (allocated, never an ISO code)."""
    settings: TenantSettings
    accounts: dict[int, int] = field(default_factory=dict)
    """System account ids by AccountCode."""
    created_at: int = 0
    """Nanoseconds since the Unix epoch."""
    secret: bytes = b""
    """32 random bytes chosen at creation, from which the tenant's voucher codes are derived."""

    @staticmethod
    def currency_of(code: str) -> Currency:
        return currency(code)
