"""ISO 4217 currencies a tenant may keep credit in: alphabetic code, numeric code and minor-unit scale.

Amounts are integers in minor units of the currency (cents for EUR, yen for JPY, fils for KWD): the scale
says how many decimal places the minor unit is below the major one, for display only. The list is the
currencies in circulation that shops and event organisers use; a code outside it is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    """ISO 4217 alphabetic code, e.g. EUR."""
    number: int
    """ISO 4217 numeric code, e.g. 978 (not a ledger number: ledgers belong to tenants)."""
    scale: int
    """Decimal places of the minor unit: 2 for EUR (cents), 0 for JPY, 3 for KWD."""

    def format(self, amount: int) -> str:
        """An amount in minor units as decimal text in major units, e.g. 1999 EUR -> '19.99 EUR'."""
        sign = "-" if amount < 0 else ""
        whole, part = divmod(abs(amount), 10**self.scale)
        text = f"{whole}.{part:0{self.scale}d}" if self.scale else str(whole)
        return f"{sign}{text} {self.code}"


_TABLE: Final = (
    ("AED", 784, 2), ("ARS", 32, 2), ("AUD", 36, 2), ("BGN", 975, 2), ("BHD", 48, 3), ("BRL", 986, 2),
    ("CAD", 124, 2), ("CHF", 756, 2), ("CLP", 152, 0), ("CNY", 156, 2), ("COP", 170, 2), ("CZK", 203, 2),
    ("DKK", 208, 2), ("EGP", 818, 2), ("EUR", 978, 2), ("GBP", 826, 2), ("HKD", 344, 2), ("HUF", 348, 2),
    ("IDR", 360, 2), ("ILS", 376, 2), ("INR", 356, 2), ("ISK", 352, 0), ("JOD", 400, 3), ("JPY", 392, 0),
    ("KES", 404, 2), ("KRW", 410, 0), ("KWD", 414, 3), ("MAD", 504, 2), ("MXN", 484, 2), ("MYR", 458, 2),
    ("NGN", 566, 2), ("NOK", 578, 2), ("NZD", 554, 2), ("OMR", 512, 3), ("PEN", 604, 2), ("PHP", 608, 2),
    ("PLN", 985, 2), ("QAR", 634, 2), ("RON", 946, 2), ("RSD", 941, 2), ("SAR", 682, 2), ("SEK", 752, 2),
    ("SGD", 702, 2), ("THB", 764, 2), ("TND", 788, 3), ("TRY", 949, 2), ("TWD", 901, 2), ("UAH", 980, 2),
    ("USD", 840, 2), ("VND", 704, 0), ("ZAR", 710, 2),
)  # fmt: skip

CURRENCIES: Final = {code: Currency(code, number, scale) for code, number, scale in _TABLE}


def currency(code: str) -> Currency:
    """The currency of an ISO 4217 alphabetic code; ValueError naming the code if it is not one we keep."""
    found = CURRENCIES.get(code)
    if found is None:
        raise ValueError(f"currency must be an ISO 4217 code such as EUR, USD or JPY, got {code[:8]!r}")
    return found
