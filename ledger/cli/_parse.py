"""What operators type, read one way for every command: ids, integers, amounts, flags, times, the server.

Each parser raises `argparse.ArgumentTypeError` with a message saying what is wrong with the text and
what would be right; argparse puts the argument's name in front ("argument --amount: …"), and a CSV cell
or a file line puts its row or line there instead. Amounts are integers in minor units, or decimal
numbers in major units once the currency's scale is known (`--currency EUR` or `--scale 2`): the text is
read digit by digit, never through a float, and more decimals than the scale allows are refused rather
than rounded.
"""

from __future__ import annotations

import argparse
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from ledger.client import AccountFlags, TransferFlags
from ledger.records.limits import AMOUNT_MAX, ID_INT_MAX, TIMESTAMP_MAX

SCALE_MAX: Final = 18
"""Most decimal places a currency's scale may have (10**18 minor units still leave 9 major units in a u63)."""

MINOR_UNITS: Final = {
    # ISO 4217 minor units (the exponent: cents are 2) of the currencies most shops and events use; any
    # other currency takes --scale N. Sources: the ISO 4217 list maintained by SIX (list one).
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2,
    "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2,
    "INR": 2, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KES": 2, "KRW": 0, "KWD": 3, "LYD": 3, "MAD": 2,
    "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2,
    "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2,
    "TWD": 2, "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}  # fmt: skip

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INTEGER: Final = re.compile(r"[0-9]+(?:_[0-9]+)*")
_DECIMAL: Final = re.compile(r"(?P<whole>[0-9]+(?:_[0-9]+)*)(?:\.(?P<fraction>[0-9]+))?")
_SERVER: Final = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(?P<port>[0-9]+)")


class InputError(ValueError):
    """Bad input from the operator (a flag's value, a file's cell); the message names it. Nothing was sent."""


def parse_id(text: str) -> int:
    """A 128-bit id: decimal (digits may be grouped with '_'), 0x-prefixed hexadecimal, or a UUID."""
    text = text.strip()
    try:
        if text.lower().startswith("0x"):
            value = int(text, 16)
        elif _INTEGER.fullmatch(text):
            value = int(text)
        else:
            value = uuid.UUID(text).int
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (an integer, 0x… or a UUID)") from None
    if value >= 2**128:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range for a 128-bit id")
    return value


def format_id(value: int) -> str:
    """An id as people read it: decimal up to 64 bits, else as a UUID (what such ids nearly always are);
    parse_id reads either back."""
    return str(value) if value < 2**64 else str(uuid.UUID(int=value))


def parse_record_id(text: str) -> int:
    """The id of an account or a transfer: as parse_id, but neither 0 nor 2**128 - 1 (both are reserved)."""
    value = parse_id(text)
    if value in (0, ID_INT_MAX):
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is reserved: ids are 1 to 2**128 - 2")
    return value


def parse_unsigned(text: str, bits: int) -> int:
    """A whole number from 0 to 2**bits - 1 (digits may be grouped with '_')."""
    text = text.strip()
    if text.startswith("-") and _INTEGER.fullmatch(text[1:]):
        raise argparse.ArgumentTypeError(f"{text!r} is negative (0 to 2**{bits} - 1)")
    if not _INTEGER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    value = int(text)
    if value >= 2**bits:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (0 to 2**{bits} - 1)")
    return value


def unsigned(bits: int, *, nonzero: bool = False) -> Callable[[str], int]:
    """An argparse type for parse_unsigned; `nonzero` refuses 0 (a ledger or a code, where 0 is "none")."""

    def parse(text: str) -> int:
        value = parse_unsigned(text, bits)
        if nonzero and value == 0:
            raise argparse.ArgumentTypeError(f"must not be 0 (1 to 2**{bits} - 1)")
        return value

    parse.__name__ = f"u{bits}"
    return parse


def parse_count(text: str) -> int:
    """How many: 0 or more (a --limit)."""
    return parse_unsigned(text, 32)


@dataclass(frozen=True, slots=True)
class Money:
    """How amounts are read and shown: `scale` decimal places (0: whole minor units), and the currency's code."""

    scale: int = 0
    currency: str = ""

    @property
    def major(self) -> bool:
        """Whether amounts are in major units (a currency or a scale was given)."""
        return bool(self.currency) or self.scale > 0

    def describe(self) -> str:
        return self.currency or f"scale {self.scale}"


MINOR: Final = Money()
"""Amounts as integers in minor units: what every command reads and shows unless told the currency."""


def money(currency: str | None, scale: int | None) -> Money:
    """The Money of --currency CODE and --scale N (both: the scale must agree); neither is minor units."""
    if currency is None:
        return MINOR if scale is None else Money(scale)
    code = currency.strip().upper()
    known = MINOR_UNITS.get(code)
    if known is None and scale is None:
        raise InputError(
            f"argument --currency: {currency!r} is not in this command's table of ISO 4217 currencies; "
            "give its decimal places too (--scale N)"
        )
    if known is not None and scale is not None and scale != known:
        raise InputError(f"argument --scale: {code} has {known} decimal places (ISO 4217), not {scale}")
    if scale is None:
        assert known is not None  # refused above
        scale = known
    return Money(scale, code)


def parse_scale(text: str) -> int:
    value = parse_unsigned(text, 8)
    if value > SCALE_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is more decimal places than {SCALE_MAX}")
    return value


def check_amount_text(text: str) -> str:
    """The syntax of an amount, checked while the arguments are read (the scale is applied after)."""
    stripped = text.strip()
    if stripped.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is negative: amounts are positive (the debit and credit accounts say which way it moves)"
        )
    if not _DECIMAL.fullmatch(stripped):
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount (digits, e.g. 1250 or with a currency 12.50)")
    return stripped


def parse_amount(text: str, unit: Money = MINOR) -> int:
    """Minor units from `text`: an integer in minor units, or with a currency a decimal in major units.

    Exact: "12.50" with scale 2 is 1250, "12.505" is refused, never rounded; at most AMOUNT_MAX.
    """
    stripped = check_amount_text(text)
    match = _DECIMAL.fullmatch(stripped)
    assert match is not None  # checked above
    whole, fraction = match["whole"], match["fraction"] or ""
    if fraction and not unit.major:
        raise argparse.ArgumentTypeError(
            f"{text!r} has decimals: amounts are integers in minor units (e.g. {int(whole + fraction)})"
        )
    if len(fraction) > unit.scale:
        raise argparse.ArgumentTypeError(
            f"{text!r} has {len(fraction)} decimal places; {unit.describe()} has {unit.scale}"
        )
    factor: int = 10**unit.scale
    value = int(whole) * factor + int(fraction.ljust(unit.scale, "0") or "0")
    if value > AMOUNT_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than an amount can be ({format_amount(AMOUNT_MAX, unit)}"
            f"{'' if unit.major else ' minor units'})"
        )
    return value


def parse_money_amount(text: str, unit: Money) -> int:
    """An amount where the currency is known (a wallet tenant's): an integer is minor units ("1250"), a
    decimal is major units of the currency ("12.50"); exact, as parse_amount reads it."""
    return parse_amount(text, unit if "." in text else MINOR)


def format_amount(minor: int, unit: Money = MINOR, *, sign: bool = False) -> str:
    """Minor units as text: an integer, or with a scale a decimal in major units (integers only)."""
    prefix = "-" if minor < 0 else ("+" if sign and minor > 0 else "")
    value = abs(minor)
    if unit.scale == 0:
        return f"{prefix}{value}"
    factor: int = 10**unit.scale
    whole, fraction = divmod(value, factor)
    return f"{prefix}{whole}.{fraction:0{unit.scale}d}"


def with_currency(text: str, unit: Money) -> str:
    return f"{text} {unit.currency}" if unit.currency else text


def parse_flags(kind: type[AccountFlags] | type[TransferFlags], text: str) -> int:
    """Flag names joined by ',' or '|' (any case), or an integer; empty is 0."""
    text = text.strip()
    if not text:
        return 0
    if text.isdigit():
        value = int(text)
        if value >= 2**16:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range for flags (0 to 65535)")
        return value
    value = 0
    for name in text.replace("|", ",").split(","):
        try:
            value |= kind[name.strip().upper()]
        except KeyError:
            names = ", ".join(f.name.lower() for f in kind if f.name and f.value)
            raise argparse.ArgumentTypeError(f"{name.strip()!r} is not a flag (flags: {names})") from None
    return value


def flags_parser(kind: type[AccountFlags] | type[TransferFlags]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        return parse_flags(kind, text)

    parse.__name__ = "flags"
    return parse


def flag_names(kind: type[AccountFlags] | type[TransferFlags], value: int) -> str:
    names = [f.name for f in kind if f.name and f.value and value & f.value]
    unknown = value & ~sum(f.value for f in kind)
    if unknown:
        names.append(str(unknown))
    return "|".join(names) or "NONE"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch, from an integer or an ISO 8601 date or time (UTC unless it says)."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither nanoseconds since the epoch nor an ISO 8601 date or time "
                "(e.g. 2026-01-31 or 2026-01-31T23:59:59Z)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = (moment - _EPOCH) // timedelta(microseconds=1) * 1_000
    if not 0 <= value <= TIMESTAMP_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is outside the ledger's times (1970 to 2262)")
    return value


_SPAN: Final = re.compile(r"([0-9]+)([smhd])")
_SPAN_SECONDS: Final = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_span(text: str) -> int:
    """A span of time in seconds, written with its unit: 90s, 30m, 12h or 365d."""
    match = _SPAN.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span of time (a number and s, m, h or d: 30d, 12h)")
    return int(match[1]) * _SPAN_SECONDS[match[2]]


def format_span(seconds: int) -> str:
    """Seconds in the largest unit parse_span reads that divides them: 31536000 is 365d."""
    for unit, size in _SPAN_SECONDS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("every whole number of seconds is a span")  # pragma: no cover


def parse_when(text: str) -> int:
    """A moment, in nanoseconds since the epoch: a span from now (30d, 12h), or as parse_time reads one."""
    if _SPAN.fullmatch(text.strip()):
        return time.time_ns() + parse_span(text) * 1_000_000_000
    return parse_time(text)


def format_time(nanoseconds: int) -> str:
    moment = _EPOCH + timedelta(microseconds=nanoseconds // 1_000)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds % 1_000_000_000:09d}Z"


def parse_server(text: str) -> str:
    """HOST:PORT (a name, an IPv4 address or a bracketed IPv6 one), or a gRPC target with a scheme (unix:…)."""
    text = text.strip()
    if text.startswith(("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:")):
        return text
    match = _SERVER.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:7100)")
    if not 1 <= int(match["port"]) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be 1 to 65535")
    return text


def parse_id_range(text: str) -> tuple[int, int]:
    first, separator, last = text.partition(":")
    if not separator:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIRST:LAST")
    low, high = parse_id(first), parse_id(last)
    if high < low:
        raise argparse.ArgumentTypeError(f"{text!r}: LAST is below FIRST")
    return low, high
