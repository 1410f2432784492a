"""`ledger wallet book`, `reverse`, `bookings` and `empty`: an operator's corrections of a wallet and their
audit trail.

A booking credits or debits a wallet against the tenant's funding account, with the operator who booked it
and why; it is never edited or deleted, only reversed (at most once, by its id). `bookings` lists the trail,
by customer, operator and time. `empty` pays out or writes off all a wallet holds so that it may close.
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

from ledger.client import Client
from ledger.v1 import wallet_pb2

from ._ops import Commands, emit, run_with_client, table
from ._parse import InputError, Money, format_amount, format_time, parse_count, parse_time
from ._wallet import (
    OK,
    _amount_argument,
    _done,
    _key_option,
    _operation_id,
    _refused,
    _tenant_argument,
    _tenant_money,
    _wallet_arguments,
    _with_key,
    amount_in,
    document,
    shown,
)

w = wallet_pb2
PAGE_BOOKINGS_MAX: Final = 1000
"""Bookings per ListBookings call (the service's bound)."""
BOOKINGS_SHOWN_DEFAULT: Final = 100


def register(wallet_commands: Commands) -> None:
    book = wallet_commands.add_parser(
        "book", help="an operator credits or debits a wallet, with a reason (never edited: reverse it instead)"
    )
    _wallet_arguments(book)
    _amount_argument(book)
    direction = book.add_mutually_exclusive_group(required=True)
    direction.add_argument(
        "--credit", action="store_const", const=w.BOOKING_DIRECTION_CREDIT, dest="direction",
        help="into the wallet (booked credit never expires)",
    )  # fmt: skip
    direction.add_argument(
        "--debit", action="store_const", const=w.BOOKING_DIRECTION_DEBIT, dest="direction",
        help="out of the wallet (never more than it may spend)",
    )  # fmt: skip
    _operator_options(book)
    _key_option(book)
    book.set_defaults(run=_book)

    reverse = wallet_commands.add_parser(
        "reverse", help="reverse a booking, at most once: the same amount the other way"
    )
    _tenant_argument(reverse)
    reverse.add_argument("booking_id", type=_operation_id, metavar="BOOKING_ID", help="as `book` printed")
    _operator_options(reverse)
    _key_option(reverse)
    reverse.set_defaults(run=_reverse)

    bookings = wallet_commands.add_parser(
        "bookings", help="the audit trail of bookings and reversals, oldest first, as a table"
    )
    _tenant_argument(bookings)
    bookings.add_argument("--customer", default="", help="only this customer's wallet")
    bookings.add_argument("--operator", default="", help="only this operator's bookings")
    bookings.add_argument(
        "--since",
        type=parse_time,
        metavar="TIME",
        help="bookings from this time on: ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z; UTC unless it says) "
        "or nanoseconds since the epoch",
    )
    bookings.add_argument("--until", type=parse_time, metavar="TIME", help="bookings before this time")
    shown_count = bookings.add_mutually_exclusive_group()
    shown_count.add_argument(
        "--limit",
        type=parse_count,
        default=BOOKINGS_SHOWN_DEFAULT,
        help=f"show at most this many, read a page of up to {PAGE_BOOKINGS_MAX} at a time "
        f"(default {BOOKINGS_SHOWN_DEFAULT}; 0: all, as --all)",
    )
    shown_count.add_argument("--all", action="store_true", help="show every booking, reading page after page")
    bookings.set_defaults(run=_bookings)

    empty = wallet_commands.add_parser(
        "empty", help="pay out or write off all a wallet holds, expired credit included, so that it may close"
    )
    _wallet_arguments(empty)
    destination = empty.add_mutually_exclusive_group(required=True)
    destination.add_argument(
        "--payout", action="store_const", const=w.EMPTY_DESTINATION_PAYOUT, dest="destination",
        help="paid out to the customer in money (to the tenant's payouts account)",
    )  # fmt: skip
    destination.add_argument(
        "--write-off", action="store_const", const=w.EMPTY_DESTINATION_BREAKAGE, dest="destination",
        help="written off (to the tenant's breakage account)",
    )  # fmt: skip
    _operator_options(empty)
    _key_option(empty)
    empty.set_defaults(run=_empty)


def _operator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operator", required=True, help="who does it (1 to 255 characters), kept in the journal")
    parser.add_argument("--reason", required=True, help="why (1 to 255 characters), kept in the journal")


def _direction(value: int) -> str:
    return "credited to" if value == w.BOOKING_DIRECTION_CREDIT else "debited from"


def _book(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.BookRequest(
            tenant=args.tenant, customer=args.customer, amount=amount_in(args.amount, unit), key=key,
            direction=args.direction, operator=args.operator, reason=args.reason,
        )  # fmt: skip
        reply = client.book(request)
        if reply.result != OK:
            return _refused(args, f"booking on {args.customer}'s wallet", reply, {"key": key})
        line = (
            f"booking {reply.booking_id}: OK, {shown(reply.amount, unit)} {_direction(reply.direction)} "
            f"{args.customer} by {args.operator}, balance {shown(reply.balance, unit)}"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "booking", work)


def _reverse(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.ReverseBookingRequest(
            tenant=args.tenant, booking_id=args.booking_id, key=key, operator=args.operator, reason=args.reason
        )
        reply = client.reverse_booking(request)
        if reply.result != OK:
            return _refused(args, f"reversal of booking {args.booking_id}", reply, {"key": key})
        line = (
            f"booking {reply.booking_id}: OK, reverses {reply.reverses}: {shown(reply.amount, unit)} "
            f"{_direction(reply.direction)} the wallet by {args.operator}, balance {shown(reply.balance, unit)}"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "reversal", work)


def _bookings(args: argparse.Namespace) -> int:
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise InputError("argument --until: must be after --since")
    wanted = 0 if args.all else args.limit

    def work(client: Client) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.ListBookingsRequest(tenant=args.tenant, customer=args.customer, operator=args.operator)
        if args.since is not None:
            request.since.FromNanoseconds(args.since)
        if args.until is not None:
            request.until.FromNanoseconds(args.until)
        entries: list[wallet_pb2.BookingEntry] = []
        more = False
        while not wanted or len(entries) < wanted:
            request.limit = PAGE_BOOKINGS_MAX if not wanted else min(wanted - len(entries), PAGE_BOOKINGS_MAX)
            reply = client.list_bookings(request)
            if reply.result != OK:
                return _refused(args, f"bookings of {args.tenant}", reply)
            entries.extend(reply.bookings)
            more = bool(reply.next_starting_after)
            if not more:
                break
            request.starting_after = reply.next_starting_after
        if args.json:
            emit(args, {"bookings": [document(entry) for entry in entries], "more": more}, [])
        elif not entries:
            print(f"bookings of {args.tenant}: none{_filtered(args)}")
        else:
            emit(args, None, _lines(entries, unit))
        if more and not args.json:
            print(
                f"{args.command_parser.prog}: the first {len(entries)} shown; more with --limit N or --all",
                file=sys.stderr,
            )
        return 0

    return run_with_client(args, work, waiting_notice=not args.all)


def _filtered(args: argparse.Namespace) -> str:
    said = [f"{name} {value}" for name, value in (("customer", args.customer), ("operator", args.operator)) if value]
    if args.since is not None or args.until is not None:
        said.append("in this range")
    return f" ({', '.join(said)})" if said else ""


def _lines(entries: list[wallet_pb2.BookingEntry], unit: Money) -> list[str]:
    cells = [["TIME", "BOOKING", "WALLET", f"AMOUNT ({unit.currency})", "OPERATOR", "REASON", "NOTE"]]
    for entry in entries:
        sign = 1 if entry.direction == w.BOOKING_DIRECTION_CREDIT else -1
        note = f"reverses {entry.reverses}" if entry.reverses else ""
        if entry.reversed_by:
            note = f"reversed by {entry.reversed_by}"
        cells.append(
            [
                format_time(entry.created_at.ToNanoseconds()),
                entry.booking_id,
                entry.wallet_id,
                format_amount(sign * entry.amount, unit, sign=True),
                entry.operator,
                entry.reason,
                note,
            ]
        )
    return table(cells)


def _empty(args: argparse.Namespace) -> int:
    payout = args.destination == w.EMPTY_DESTINATION_PAYOUT
    what = "payout" if payout else "write-off"

    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.EmptyWalletRequest(
            tenant=args.tenant, customer=args.customer, key=key, destination=args.destination,
            operator=args.operator, reason=args.reason,
        )  # fmt: skip
        reply = client.empty_wallet(request)
        if reply.result != OK:
            return _refused(args, f"{what} of {args.customer}'s wallet", reply, {"key": key})
        moved = "paid out of" if payout else "written off from"
        line = (
            f"{what} {reply.booking_id}: OK, {shown(reply.amount, unit)} {moved} {args.customer}'s wallet, "
            f"balance {shown(reply.balance, unit)}: it may close"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, what, work)
