"""EMVCo merchant-presented QR payloads: what a terminal shows for a payment request, and reading one back.

The payload is EMV QRCPS-MPM: fields of two-digit id, two-digit length and value, in id order, ending with
a CRC (id 63: CRC-16/CCITT-FALSE over everything before its value, "6304" included, as 4 upper-case hex
digits). A dynamic payload (point of initiation 12) carries the amount; the request's id rides in merchant
account information (id 26: this ledger's globally unique identifier, the tenant, the request) and as the
reference label (id 62, sub-id 05). A payload whose CRC does not match, or whose fields do not add up, is
refused with what is wrong: a QR code tampered with never reaches a payment.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Final

GUI: Final = "dev.wallet-ledger"
"""The globally unique identifier of this scheme in merchant account information (id 26, sub-id 00)."""
NAME_MAX: Final = 25
CITY_MAX: Final = 15
REFERENCE_MAX: Final = 25
AMOUNT_CHARS_MAX: Final = 13
_COUNTRY: Final = re.compile(r"[A-Z]{2}")


class EmvError(ValueError):
    """A payload that is not a well-formed one of ours; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class PaymentRequestQr:
    tenant: str
    request_id: str
    amount: int
    """Minor units."""
    currency_number: int
    """ISO 4217 numeric code, e.g. 978."""
    scale: int
    """Decimal places of the minor unit."""
    merchant_name: str
    merchant_city: str
    country: str = "ZZ"
    """ISO 3166-1 alpha-2; ZZ where the tenant has none."""
    category: str = "5999"
    """The merchant category code (5999: miscellaneous retail)."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF), which EMVCo QR codes carry."""
    return binascii.crc_hqx(data, 0xFFFF)


def _field(tag: str, value: str) -> str:
    if len(value) > 99:
        raise EmvError(f"field {tag}: {len(value)} characters, at most 99 fit")
    return f"{tag}{len(value):02d}{value}"


def amount_text(amount: int, scale: int) -> str:
    """Minor units as EMVCo writes an amount: digits, a point before the minor part when there is one."""
    whole, minor = divmod(amount, 10**scale)
    return f"{whole}.{minor:0{scale}d}" if scale else str(whole)


def encode(request: PaymentRequestQr) -> str:
    """The payload's text, CRC included (what the QR code holds)."""
    if not request.amount >= 1 or len(amount_text(request.amount, request.scale)) > AMOUNT_CHARS_MAX:
        raise EmvError(f"amount: {request.amount} does not fit the {AMOUNT_CHARS_MAX} characters of an EMVCo amount")
    if not _COUNTRY.fullmatch(request.country):
        raise EmvError(f"country: {request.country!r} is not an ISO 3166-1 alpha-2 code")
    account = _field("00", GUI) + _field("01", request.tenant) + _field("02", request.request_id)
    body = (
        _field("00", "01")
        + _field("01", "12")
        + _field("26", account)
        + _field("52", request.category)
        + _field("53", f"{request.currency_number:03d}")
        + _field("54", amount_text(request.amount, request.scale))
        + _field("58", request.country)
        + _field("59", _printable(request.merchant_name, NAME_MAX) or "Merchant")
        + _field("60", _printable(request.merchant_city, CITY_MAX) or "Online")
        + _field("62", _field("05", request.request_id[:REFERENCE_MAX]))
        + "6304"
    )
    return f"{body}{crc16(body.encode()):04X}"


def _printable(text: str, limit: int) -> str:
    """ASCII letters, digits, space and punctuation only (what every scanning app reads), cut to `limit`."""
    return "".join(c for c in text if " " <= c <= "~")[:limit]


def fields(payload: str) -> dict[str, str]:
    """The top-level fields of a payload, its CRC checked; EmvError naming the first thing wrong."""
    if not payload.isascii():
        raise EmvError("payload: only ASCII characters belong in it")
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise EmvError("payload: it does not end with a CRC field (6304 and four hex digits)")
    if f"{crc16(payload[:-4].encode()):04X}" != payload[-4:].upper():
        raise EmvError("payload: its CRC does not match its contents (misread or altered)")
    found = _tlv(payload[:-4] + "0000", "payload")
    if found.get("00") != "01":
        raise EmvError("payload: field 00 (payload format indicator) must be 01")
    return found


def _tlv(text: str, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    offset = 0
    while offset < len(text):
        head = text[offset : offset + 4]
        if len(head) < 4 or not head.isdigit():
            raise EmvError(f"{where}: a field header at character {offset} is not two ids and two length digits")
        tag, size = head[:2], int(head[2:])
        value = text[offset + 4 : offset + 4 + size]
        if len(value) < size:
            raise EmvError(f"{where}: field {tag} says {size} characters, {len(value)} follow")
        if tag in found:
            raise EmvError(f"{where}: field {tag} appears twice")
        found[tag] = value
        offset += 4 + size
    return found


def decode(payload: str) -> PaymentRequestQr:
    """A payment request's QR payload read back; EmvError if it is not one of ours or was altered."""
    top = fields(payload)
    if top.get("01") != "12":
        raise EmvError("payload: not a dynamic payload (field 01 must be 12): a request carries its amount")
    account = _tlv(top.get("26", ""), "field 26")
    if account.get("00") != GUI or not account.get("01") or not account.get("02"):
        raise EmvError(f"field 26: not a payment request of this ledger ({GUI})")
    amount = top.get("54", "")
    if not re.fullmatch(r"[0-9]{1,13}(\.[0-9]{1,3})?", amount):
        raise EmvError("field 54: the amount is not digits with an optional point")
    whole, _, minor = amount.partition(".")
    scale = len(minor)
    currency = top.get("53", "")
    if not re.fullmatch(r"[0-9]{3}", currency):
        raise EmvError("field 53: the currency is not a 3-digit ISO 4217 code")
    return PaymentRequestQr(
        tenant=account["01"], request_id=account["02"], amount=int(whole) * 10**scale + int(minor or 0),
        currency_number=int(currency), scale=scale, merchant_name=top.get("59", ""),
        merchant_city=top.get("60", ""), country=top.get("58", ""), category=top.get("52", ""),
    )  # fmt: skip
