"""The wallet event feed: the journal's domain records, as typed events per tenant.

Every wallet operation writes one record into the commit that holds its transfers, so the feed needs no
store of its own: it reads durable commits in order and turns each record into its events. An event's
position is (commit seq, record index): its `cursor`, from which a reader resumes after a break, and its
id (with a suffix when one record yields several events, such as a payment that takes the wallet below
its tenant's threshold). A record yields its events together, so resuming after a cursor never splits one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from ._state import Record, decode_records

EVENT_TYPES: Final = {
    "tenant_created": "tenant.created",
    "tenant_configured": "tenant.configured",
    "wallet_opened": "wallet.opened",
    "wallet_frozen": "wallet.frozen",
    "wallet_unfrozen": "wallet.unfrozen",
    "wallet_closed": "wallet.closed",
    "wallet_paid_out": "wallet.paid_out",
    "wallet_written_off": "wallet.written_off",
    "empty_refused": "wallet.empty_refused",
    "topped_up": "wallet.topped_up",
    "topup_refused": "topup.refused",
    "payment_succeeded": "payment.succeeded",
    "payment_declined": "payment.declined",
    "refunded": "refund.succeeded",
    "refund_refused": "refund.refused",
    "credit_expired": "credit.expired",
    "hold_authorized": "hold.authorized",
    "hold_captured": "hold.captured",
    "hold_voided": "hold.voided",
    "hold_expired": "hold.expired",
    "hold_refused": "hold.refused",
    "booked_credit": "booking.created",
    "booked_debit": "booking.created",
    "booking_reversed": "booking.reversed",
    "booking_refused": "booking.refused",
    "reversal_refused": "booking.refused",
    "voucher_issued": "voucher.issued",
    "voucher_redeemed": "voucher.redeemed",
    "voucher_spent": "voucher.spent",
    "voucher_deactivated": "voucher.deactivated",
    "voucher_refused": "voucher.refused",
    "vouchers_expired": "voucher.expired",
    "device_enrolled": "device.enrolled",
    "device_revoked": "device.revoked",
    "pin_set": "wallet.pin_set",
    "payment_cancelled": "payment.cancelled",
    "payment_request_created": "payment_request.created",
    "payment_request_cancelled": "payment_request.cancelled",
    "wallet_unlocked": "wallet.unlocked",
    "pay_link_created": "pay_link.created",
    "pay_link_cancelled": "pay_link.cancelled",
    "pay_links_expired": "pay_link.expired",
    "pay_link_code_sent": "pay_link.code_sent",
    "pay_link_pin_refused": "pay_link.pin_refused",
    "pay_link_code_refused": "pay_link.code_refused",
}
"""Event type by record kind; a record of a kind not listed here yields no event."""
BALANCE_BELOW: Final = "wallet.balance_below"
"""A wallet's balance fell below its tenant's low_balance_threshold (once per crossing)."""
WALLET_LOCKED: Final = "wallet.locked"
"""Wrong PINs locked a wallet's code payments (from the declined payment that locked it)."""
TERMINAL_FLAGGED: Final = "terminal.flagged"
"""Codes refused at one terminal passed the tenant's terminal_declines_flag within 10 minutes."""
REQUEST_PAID: Final = "payment_request.paid"
"""A customer confirmed a payment request and it paid (from the payment's record)."""
LINK_PAID: Final = "pay_link.paid"
"""A pay link was paid in full (a reusable one: once more), from the payment's record."""
LINK_PARTIALLY_PAID: Final = "pay_link.partially_paid"
"""A partial pay link was paid in part: the rest is to be paid another way."""
TYPES: Final = frozenset({*EVENT_TYPES.values(), BALANCE_BELOW, WALLET_LOCKED, TERMINAL_FLAGGED, REQUEST_PAID,
                          LINK_PAID, LINK_PARTIALLY_PAID})  # fmt: skip
_CURSOR: Final = re.compile(r"([0-9]{1,19})\.([0-9]{1,9})")
_INDEX_LAST: Final = 999_999_999
"""The largest record index a cursor may name: past any commit's last record."""


@dataclass(frozen=True, slots=True)
class WalletEvent:
    event_id: str
    cursor: str
    type: str
    tenant: str
    wallet: int
    operation: int
    amount: int
    at: int
    """Nanoseconds since the Unix epoch."""
    data: dict[str, Any]
    """The record's fields (without its state changes): what the webhook body carries."""

    def data_json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def parse_cursor(cursor: str) -> tuple[int, int] | None:
    """(commit seq, record index) of a cursor ('' : before the first event), or None if it is not one."""
    if not cursor:
        return 0, -1
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def cursor_after_commit(seq: int) -> str:
    """The cursor just past every event of commit `seq`: a feed resumed after it starts at commit seq + 1."""
    return f"{seq}.{_INDEX_LAST}"


def events_of(seq: int, domain: bytes | bytearray | memoryview, after_index: int = -1) -> Iterator[WalletEvent]:
    """The events of one commit's domain records, those after record `after_index`."""
    for index, record in enumerate(decode_records(domain)):
        if index > after_index:
            yield from _record_events(seq, index, record)


def _record_events(seq: int, index: int, record: Record) -> Iterator[WalletEvent]:
    kind = EVENT_TYPES.get(str(record.get("op", "")))
    if kind is None:
        return
    cursor = f"{seq}.{index}"
    data = {key: value for key, value in record.items() if key != "facts"}
    for key in ("wallet", "id", "voucher", "payment", "hold", "reverses"):
        if isinstance(data.get(key), int):
            data[key] = f"{data[key]:032x}" if data[key] else ""
    at = int(record.get("at", 0))
    if record.get("op") == "pay_links_expired":
        for number, (link, amount, tenant) in enumerate(record.get("links", ())):
            yield WalletEvent(f"{cursor}.{number}", cursor, kind, tenant, 0, link, amount, at,
                              {"op": record["op"], "at": at, "link": f"{link:032x}", "amount": amount,
                               "tenant": tenant})  # fmt: skip
        return
    if record.get("op") in ("credit_expired", "vouchers_expired"):  # a sweep: one event per grant or voucher
        entries = record.get("grants") or record.get("vouchers") or []
        for number, entry in enumerate(entries):
            if record["op"] == "credit_expired":
                wallet, grant, amount, tenant = entry
                yield WalletEvent(f"{cursor}.{number}", cursor, kind, tenant, wallet, grant, amount, at,
                                  {"op": record["op"], "at": at, "wallet": f"{wallet:032x}", "grant": f"{grant:032x}",
                                   "amount": amount, "tenant": tenant})  # fmt: skip
            else:
                voucher, amount, tenant = entry
                yield WalletEvent(f"{cursor}.{number}", cursor, kind, tenant, 0, voucher, amount, at,
                                  {"op": record["op"], "at": at, "voucher": f"{voucher:032x}", "amount": amount,
                                   "tenant": tenant})  # fmt: skip
        return
    tenant = str(record.get("tenant", ""))
    wallet = int(record.get("wallet", 0) or 0)
    amount = int(record.get("amount", record.get("paid", 0)) or 0)
    yield WalletEvent(cursor, cursor, kind, tenant, wallet, int(record.get("id", 0) or 0), amount, at, data)
    for fact in record.get("facts", ()):
        if fact[0] == "below" and fact[2]:
            below = {"op": "balance_below", "at": at, "wallet": f"{fact[1]:032x}", "tenant": tenant}
            yield WalletEvent(f"{cursor}.below", cursor, BALANCE_BELOW, tenant, fact[1], 0, 0, at, below)
        elif fact[0] == "pin_locked":
            locked = {"op": "wallet_locked", "at": at, "wallet": f"{fact[1]:032x}", "tenant": tenant, "until": fact[2]}
            yield WalletEvent(f"{cursor}.locked", cursor, WALLET_LOCKED, tenant, fact[1], 0, 0, at, locked)
        elif fact[0] == "request_status" and fact[2] == "paid":
            paid = {"op": "payment_request_paid", "at": at, "request": f"{fact[1]:032x}", "tenant": tenant,
                    "payment": f"{fact[3]:032x}", "wallet": f"{fact[4]:032x}", "amount": amount}  # fmt: skip
            yield WalletEvent(f"{cursor}.request", cursor, REQUEST_PAID, tenant, fact[4], fact[1], amount, at, paid)
        elif fact[0] == "link_paid":
            kind_paid = LINK_PARTIALLY_PAID if fact[4] == "partially_paid" else LINK_PAID
            paid = {"op": "pay_link_paid", "at": at, "link": f"{fact[1]:032x}", "tenant": tenant, "status": fact[4],
                    "payment": f"{fact[2]:032x}", "wallet": f"{wallet:032x}", "amount": fact[3]}  # fmt: skip
            yield WalletEvent(f"{cursor}.link", cursor, kind_paid, tenant, wallet, fact[1], fact[3], at, paid)
        elif fact[0] == "terminal_flagged":
            terminal = str(fact[1]).split("\x00", 1)[-1]
            flagged = {"op": "terminal_flagged", "at": at, "terminal": terminal, "tenant": tenant}
            yield WalletEvent(f"{cursor}.flagged", cursor, TERMINAL_FLAGGED, tenant, 0, 0, 0, at, flagged)
