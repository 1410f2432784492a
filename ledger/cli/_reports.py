"""`ledger wallet statement` and `settlement`: a wallet's statement and a tenant's settlement report.

A statement is a row per movement of a wallet (a payment with its fee is one row), oldest first, with the
balance after each, read a page at a time by the cursor the service gives (--all follows them). Both show
only what is durable. A settlement covers a UTC day or a time range: what the wallets owed at its start
and end, the movements in between by kind and the check that they add up; --csv writes the service's own
CSV of it to a file or to standard output.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any, Final

from ledger.client import Client
from ledger.v1 import wallet_pb2
from ledger.wallet import TransferCode, day_range

from ._csv import check_writable
from ._ops import EXIT_FAILED_ITEMS, Commands, emit, run_with_client, table
from ._parse import InputError, Money, format_amount, format_time, parse_time
from ._wallet import (
    OK,
    _refused,
    _tenant_argument,
    _wallet_arguments,
    _wallet_name,
    document,
    money_of,
)

w = wallet_pb2
STATEMENT_PAGE_ROWS_MAX: Final = 1000
"""Rows per GetStatement call (the service's bound); it answers 100 unless asked."""
KINDS: Final = {
    w.StatementKind.Name(value).removeprefix("STATEMENT_KIND_").lower().replace("_", "-"): value
    for value in w.StatementKind.values()
    if value != w.STATEMENT_KIND_UNSPECIFIED
}
"""Statement kinds by the name the command reads and shows: top-up, payment, …, hold-expired, write-off."""
_KIND_NAMES: Final = {value: name for name, value in KINDS.items()}
_TIME_HELP: Final = "ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z; UTC unless it says) or nanoseconds since the epoch"


def register(wallet_commands: Commands) -> None:
    statement = wallet_commands.add_parser(
        "statement", help="a wallet's statement: a row per movement with the balance after it, as a table"
    )
    _wallet_arguments(statement)
    statement.add_argument("--since", type=parse_time, metavar="TIME", help=f"rows from this time on: {_TIME_HELP}")
    statement.add_argument("--until", type=parse_time, metavar="TIME", help="rows before this time")
    statement.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        type=_kinds,
        metavar="KIND",
        help=f"only rows of these kinds, joined by ',' or repeated: {', '.join(KINDS)}",
    )
    statement.add_argument(
        "--limit",
        type=_page_rows,
        default=0,
        metavar="N",
        help=f"rows per page, 1 to {STATEMENT_PAGE_ROWS_MAX} (default: the service's, 100)",
    )
    statement.add_argument(
        "--after", default="", metavar="CURSOR", help="begin after this cursor (printed when more rows follow)"
    )
    statement.add_argument("--all", action="store_true", help="every row of the range, reading page after page")
    statement.set_defaults(run=_statement)

    settlement = wallet_commands.add_parser(
        "settlement",
        help="a tenant's settlement for a UTC day or a range: liability at both ends, movements by kind, the check",
    )
    _tenant_argument(settlement)
    period = settlement.add_mutually_exclusive_group(required=True)
    period.add_argument(
        "--day", type=_day, metavar="DAY", help="a day in UTC: YYYY-MM-DD, today or yesterday (its 24 hours)"
    )
    period.add_argument("--since", type=parse_time, metavar="TIME", help=f"movements from this time on: {_TIME_HELP}")
    settlement.add_argument(
        "--until", type=parse_time, metavar="TIME", help="with --since: movements before this time (default: up to now)"
    )
    settlement.add_argument(
        "--csv",
        metavar="FILE",
        help="write the report as the service's CSV to FILE ('-': standard output) instead of the table",
    )
    settlement.set_defaults(run=_settlement)


def _kinds(text: str) -> list[int]:
    found = []
    for name in text.split(","):
        key = name.strip().lower().replace("_", "-")
        if key not in KINDS:
            raise argparse.ArgumentTypeError(f"{name.strip()!r} is not a statement kind ({', '.join(KINDS)})")
        found.append(KINDS[key])
    return found


def _page_rows(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= STATEMENT_PAGE_ROWS_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not 1 to {STATEMENT_PAGE_ROWS_MAX} (rows per page)")
    return int(text)


def _day(text: str) -> str:
    """A UTC day as YYYY-MM-DD; `today` and `yesterday` name the current and previous UTC day."""
    word = text.strip().lower()
    if word in ("today", "yesterday"):
        today = datetime.datetime.now(datetime.UTC).date()
        return (today - datetime.timedelta(days=1 if word == "yesterday" else 0)).isoformat()
    try:
        day_range(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day in UTC (YYYY-MM-DD from 1970-01-01, today or yesterday)"
        ) from None
    return text.strip()


def _check_range(since: int | None, until: int | None) -> None:
    if since is not None and until is not None and until <= since:
        raise InputError("argument --until: must be after --since")


# -- statement -----------------------------------------------------------------------------------------


def _statement(args: argparse.Namespace) -> int:
    _check_range(args.since, args.until)
    request = w.GetStatementRequest(
        tenant=args.tenant, customer=args.customer, limit=args.limit, starting_after=args.after,
        kinds=[kind for kinds in args.kinds or () for kind in kinds],
    )  # fmt: skip
    if args.since is not None:
        request.since.FromNanoseconds(args.since)
    if args.until is not None:
        request.until.FromNanoseconds(args.until)

    def work(client: Client) -> int:
        reply = client.get_statement(request)
        if reply.result != OK:
            return _refused(args, _wallet_name(args), reply)
        rows = list(reply.rows)
        while args.all and reply.has_more:
            request.starting_after = reply.next_cursor
            reply = client.get_statement(request)
            if reply.result != OK:
                return _refused(args, _wallet_name(args), reply)
            rows.extend(reply.rows)
        unit = money_of(reply.currency)
        if args.json:
            emit(args, {**document(reply), "rows": [document(row) for row in rows]}, [])
        elif rows:
            emit(args, None, _statement_lines(rows, unit))
        else:
            ranged = " in this range" if args.since is not None or args.until is not None or args.after else ""
            kinds = " of these kinds" if args.kinds else ""
            print(f"{_wallet_name(args)}: no movements{kinds}{ranged}")
        if reply.has_more and not args.json:
            print(
                f"{args.command_parser.prog}: more rows follow: --after {reply.next_cursor} for the next page, "
                "or --all for every one",
                file=sys.stderr,
            )
        return 0

    return run_with_client(args, work, waiting_notice=not args.all)


def _statement_lines(rows: list[wallet_pb2.StatementRow], unit: Money) -> list[str]:
    currency = f" ({unit.currency})" if unit.currency else ""
    cells = [["TIME", "KIND", "OPERATION", f"AMOUNT{currency}", "FEE", "BALANCE", "NOTE"]]
    for row in rows:
        cells.append(
            [
                format_time(row.created_at.ToNanoseconds()),
                _KIND_NAMES.get(row.kind, f"kind {row.kind}"),
                row.operation_id,
                format_amount(row.amount, unit, sign=True),
                format_amount(row.fee, unit) if row.fee else "",
                format_amount(row.balance, unit),
                _note(row, unit),
            ]
        )
    return table(cells)


_HOLD_ENDS: Final = {
    w.STATEMENT_KIND_CAPTURE: "captures",
    w.STATEMENT_KIND_VOID: "voids",
    w.STATEMENT_KIND_HOLD_EXPIRED: "expires",
}


def _note(row: wallet_pb2.StatementRow, unit: Money) -> str:
    """What a row's kind leaves unsaid: where credit came from, what a payment left to pay, which hold or
    payment it ends or refunds."""
    kind = row.kind
    if kind == w.STATEMENT_KIND_TOP_UP:
        if row.code == TransferCode.VOUCHER_REDEEM:
            return "voucher"
        return w.TopUpSource.Name(row.source).removeprefix("TOP_UP_SOURCE_").lower() if row.source else ""
    if kind == w.STATEMENT_KIND_PAYMENT and row.requested > -row.amount:
        other = format_amount(row.requested + row.amount, unit)
        return f"of {format_amount(row.requested, unit)}, {other} paid another way"
    if kind == w.STATEMENT_KIND_REFUND:
        return f"of payment {row.related_id}{' as store credit' if row.to_credit else ''}"
    if kind == w.STATEMENT_KIND_HOLD:
        return f"{format_amount(row.held_change, unit)} held"
    if kind in _HOLD_ENDS:
        return f"{_HOLD_ENDS[kind]} hold {row.related_id} ({format_amount(-row.held_change, unit)} held)"
    if kind == w.STATEMENT_KIND_EXPIRY:
        return f"credit {row.related_id}" if row.related_id else ""
    if kind == w.STATEMENT_KIND_OTHER:
        return f"code {row.code}"
    return ""


# -- settlement ----------------------------------------------------------------------------------------


def _settlement(args: argparse.Namespace) -> int:
    if args.until is not None and args.since is None:
        raise InputError("argument --until: goes with --since (a --day is 24 hours)")
    _check_range(args.since, args.until)
    if args.csv not in (None, "-"):
        check_writable(Path(args.csv), "--csv")
    request = w.GetSettlementRequest(tenant=args.tenant, day=args.day or "", csv=args.csv is not None)
    if args.since is not None:
        request.since.FromNanoseconds(args.since)
    if args.until is not None:
        request.until.FromNanoseconds(args.until)

    def work(client: Client) -> int:
        reply = client.get_settlement(request)
        if reply.result != OK:
            return _refused(args, f"settlement of {args.tenant}", reply)
        unit = money_of(reply.currency, reply.currency_scale)
        period = _period(reply)
        if args.csv == "-":
            sys.stdout.write(reply.csv)
        elif args.csv is not None:
            Path(args.csv).write_text(reply.csv, encoding="utf-8", newline="")
            rows = reply.csv.count("\n") - 1
            line = (
                f"settlement of {reply.tenant} {period}: {rows} rows written to {args.csv}, closing liability "
                f"{format_amount(reply.closing_liability, unit)} {unit.currency}, difference "
                f"{format_amount(reply.difference, unit)}"
            )
            emit(args, {**document(reply), "csv": args.csv}, [line])
        else:
            emit(args, document(reply), [f"settlement of {reply.tenant} ({reply.currency}) {period}",
                                         *_settlement_lines(reply, unit)])  # fmt: skip
        if reply.difference:
            print(
                f"{args.command_parser.prog}: the report does not add up: closing - (opening + movements) = "
                f"{format_amount(reply.difference, unit)} {unit.currency}, a fault of the server (it logged it)",
                file=sys.stderr,
            )
            return EXIT_FAILED_ITEMS
        return 0

    return run_with_client(args, work, waiting_notice=True)


def _period(reply: wallet_pb2.SettlementReply) -> str:
    """The range a report covers; `as of` while its end is still ahead (today's, or one without an end)."""
    said = f"from {format_time(reply.since.ToNanoseconds())}"
    if reply.HasField("until"):
        said += f" to {format_time(reply.until.ToNanoseconds())}"
        if reply.as_of.ToNanoseconds() >= reply.until.ToNanoseconds():
            return said
    return f"{said}, as of {format_time(reply.as_of.ToNanoseconds())}"


def _settlement_lines(reply: wallet_pb2.SettlementReply, unit: Money) -> list[str]:
    def row(section: str, line: str, transfers: Any, amount: int) -> list[str]:
        return [section, line, str(transfers), format_amount(amount, unit, sign=section not in _STATES)]

    currency = f" ({unit.currency})" if unit.currency else ""
    cells = [
        ["SECTION", "LINE", "TRANSFERS", f"AMOUNT{currency}"],
        row("opening", "liability", "", reply.opening_liability),
        *(row(line.section, line.line, line.transfers, line.amount) for line in reply.lines),
        row("movements", "total", sum(line.transfers for line in reply.lines), reply.movements),
        row("closing", "liability", "", reply.closing_liability),
        row("check", "difference", "", reply.difference),
        row("vouchers", "opening", "", reply.opening_vouchers),
        row("vouchers", "closing", "", reply.closing_vouchers),
    ]
    return table(cells)


_STATES: Final = frozenset({"opening", "closing", "check", "vouchers"})
"""Settlement rows that are balances, not movements: shown without a sign."""
