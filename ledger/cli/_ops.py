"""Operator commands over gRPC: `ledger accounts create`, `transfer`, `lookup`, `balance` and `history`.

They go through ledger.client, so they run on any host that reaches the
ledger. Amounts are integers in minor units, or decimals in major units with
`--currency CODE` (or `--scale N`). Exit codes: 0 done, 1 an item failed (its
result is named) or was not found, 2 bad usage or input, 3 the call failed
(the server's message, no server to reach, or no answer before the deadline).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from ledger.client import (
    Account,
    AccountBalance,
    AccountFilter,
    AccountFlags,
    Client,
    ClientConfig,
    CreateAccountResult,
    CreateTransferResult,
    LedgerError,
    LedgerUnreachable,
    Transfer,
    TransferFlags,
)
from ledger.records.limits import BATCH_EVENTS_MAX, NANOSECONDS_PER_SECOND

from ._parse import (
    MINOR,
    InputError,
    Money,
    check_amount_text,
    flag_names,
    flags_parser,
    format_amount,
    format_id,
    format_time,
    money,
    parse_amount,
    parse_count,
    parse_id,
    parse_record_id,
    parse_scale,
    parse_server,
    parse_time,
    unsigned,
    with_currency,
)

EXIT_FAILED_ITEMS: Final = 1
EXIT_USAGE: Final = 2
EXIT_CALL_FAILED: Final = 3

SUCCEEDED: Final = frozenset({"OK", "EXISTS"})
"""Results that leave the ledger as asked: created now, or by an earlier run with the same id and fields."""

CONNECT_SECONDS_MAX: Final = 2.0
"""How long a command waits for a connection before it says it cannot reach the server. Nothing is sent
before the connection is made, so giving up then is safe; once a write was sent, its call keeps retrying
until --call-timeout, because its outcome is unknown until the server answers."""

WAITING_NOTICE_SECONDS: Final = 3.0
"""After this long without an answer, a command of a few calls says it is still waiting, and why."""

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(commands: Commands) -> None:
    accounts = commands.add_parser("accounts", help="create accounts through the ledger's gRPC service")
    accounts_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    create = accounts_commands.add_parser("create", help="create one account")
    add_connection_options(create)
    create.add_argument("--id", required=True, type=parse_record_id, help="the account's id (integer, 0x… or UUID)")
    create.add_argument("--ledger", required=True, type=unsigned(32, nonzero=True), help="the ledger (currency)")
    create.add_argument("--code", required=True, type=unsigned(16, nonzero=True), help="what kind of account")
    create.add_argument(
        "--flags",
        type=flags_parser(AccountFlags),
        default=0,
        help="names joined by ',' (debits_must_not_exceed_credits,history,…) or an integer",
    )
    add_user_data_options(create)
    create.set_defaults(run=_create_account)

    transfer = commands.add_parser("transfer", help="move money: one transfer, or a hold, its capture or its void")
    add_connection_options(transfer)
    transfer.add_argument("--id", required=True, type=parse_record_id, help="the transfer's id, its idempotency key")
    transfer.add_argument("--debit", type=parse_record_id, help="the account debited (money leaves it)")
    transfer.add_argument("--credit", type=parse_record_id, help="the account credited (money arrives)")
    transfer.add_argument(
        "--amount",
        type=check_amount_text,
        help="minor units (1250), or with --currency major units (12.50); with --post: omitted or 0 is all of it",
    )
    transfer.add_argument("--ledger", type=unsigned(32, nonzero=True), help="the ledger (currency)")
    transfer.add_argument("--code", type=unsigned(16, nonzero=True), help="the reason for the movement")
    kind = transfer.add_mutually_exclusive_group()
    kind.add_argument("--pending", action="store_true", help="a hold: reserve the amount until captured or voided")
    kind.add_argument("--post", type=parse_record_id, metavar="HOLD_ID", help="capture the hold HOLD_ID")
    kind.add_argument("--void", type=parse_record_id, metavar="HOLD_ID", help="release the hold HOLD_ID")
    transfer.add_argument(
        "--timeout", type=unsigned(32), default=0, help="a hold: seconds until it expires (default 0: never)"
    )
    transfer.add_argument("--balancing-debit", action="store_true", help="move at most what the debit account has")
    transfer.add_argument("--balancing-credit", action="store_true", help="move at most what the credit account has")
    transfer.add_argument("--closing-debit", action="store_true", help="a hold that closes the debit account")
    transfer.add_argument("--closing-credit", action="store_true", help="a hold that closes the credit account")
    transfer.add_argument(
        "--flags",
        type=flags_parser(TransferFlags),
        default=0,
        help="more flags by name joined by ',' or an integer, added to the ones above",
    )
    add_user_data_options(transfer)
    add_money_options(transfer)
    transfer.set_defaults(run=_transfer)

    lookup = commands.add_parser("lookup", help="show accounts or transfers by id")
    add_connection_options(lookup)
    lookup.add_argument("kind", choices=["account", "transfer"])
    lookup.add_argument("ids", nargs="+", type=parse_record_id, metavar="ID")
    add_money_options(lookup)
    lookup.set_defaults(run=_lookup)

    balance = commands.add_parser("balance", help="an account's balances: posted, pending, net and available")
    add_connection_options(balance)
    balance.add_argument("id", type=parse_record_id, metavar="ID")
    add_money_options(balance)
    balance.set_defaults(run=_balance)

    history = commands.add_parser("history", help="an account's transfers (or balances) over time")
    add_connection_options(history)
    history.add_argument("id", type=parse_record_id, metavar="ID")
    history.add_argument("--limit", type=parse_count, default=100, help="show at most this many (default 100; 0: all)")
    history.add_argument("--reversed", action="store_true", help="newest first")
    add_time_range_options(history)
    side = history.add_mutually_exclusive_group()
    side.add_argument("--debits-only", action="store_true", help="only transfers that debit the account")
    side.add_argument("--credits-only", action="store_true", help="only transfers that credit the account")
    history.add_argument("--code", type=unsigned(16), default=0, help="only transfers with this code")
    history.add_argument(
        "--balances",
        action="store_true",
        help="the balances after each transfer instead (accounts with the HISTORY flag)",
    )
    add_money_options(history)
    history.set_defaults(run=_history)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--server", type=parse_server, help="HOST:PORT of the ledger (default: LEDGER_SERVER, else 127.0.0.1:7100)"
    )
    group.add_argument("--api-key", help="sent as 'authorization: Bearer KEY' (default: LEDGER_API_KEY)")
    group.add_argument("--tls-ca", type=Path, help="PEM root certificates: connect with TLS")
    group.add_argument("--tls-cert", type=Path, help="PEM client certificate, for mutual TLS (with --tls-key)")
    group.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    group.add_argument("--call-timeout", type=float, help="seconds a call may take, retries included (default 30)")
    parser.add_argument("--json", action="store_true", help="print JSON for machines instead of lines for people")


def add_user_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-data-128", type=parse_id, default=0, help="your reference (integer, 0x… or UUID)")
    parser.add_argument("--user-data-64", type=unsigned(64), default=0)
    parser.add_argument("--user-data-32", type=unsigned(32), default=0)


def add_money_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("amounts (default: integers in minor units, e.g. 1250 cents)")
    group.add_argument(
        "--currency",
        metavar="CODE",
        help="the ledger's ISO 4217 currency (EUR, USD, JPY, …): amounts in major units with its decimals",
    )
    group.add_argument("--scale", type=parse_scale, metavar="N", help="amounts in major units with N decimals")


def add_time_range_options(parser: argparse.ArgumentParser, what: str = "transfers") -> None:
    parser.add_argument(
        "--from",
        dest="timestamp_min",
        type=parse_time,
        default=0,
        metavar="TIME",
        help=f"{what} from this time on: ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z; UTC unless it says) "
        "or nanoseconds since the epoch",
    )
    parser.add_argument(
        "--to", dest="timestamp_max", type=parse_time, default=0, metavar="TIME", help="up to this time, inclusive"
    )


def client_config(args: argparse.Namespace) -> ClientConfig:
    try:
        return ClientConfig.from_env(
            server=args.server,
            api_key=args.api_key,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            timeout_seconds=args.call_timeout,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None


def run_with_client(
    args: argparse.Namespace,
    work: Callable[[Client], int],
    *,
    waiting_notice: bool = False,
    again: str = "stopping and running it again is safe",
) -> int:
    """`work` with a connected client made from the options; a failed call prints the reason and exits 3.

    With `waiting_notice` (commands of one or a few calls, without a progress bar of their own), a call
    still unanswered after WAITING_NOTICE_SECONDS says so on stderr, rather than leaving the operator
    before a silent terminal until --call-timeout, and `again` (what makes running it again safe). Bad
    input (InputError) goes up to `ledger.cli.main`, which prints it and exits 2.
    """
    config = client_config(args)
    notice = threading.Timer(
        WAITING_NOTICE_SECONDS,
        lambda: print(
            f"{args.command_parser.prog}: no answer from {config.server} yet: retrying with the same ids until "
            f"--call-timeout ({config.timeout_seconds:g} s); {again}",
            file=sys.stderr,
        ),
    )
    notice.daemon = True
    try:
        with Client(config) as client:
            client.wait_for_server(min(CONNECT_SECONDS_MAX, config.timeout_seconds))
            if waiting_notice:
                notice.start()
            return work(client)
    except LedgerUnreachable as exc:
        return failed(args, unreachable(exc, config))
    except LedgerError as exc:
        return failed(args, str(exc))
    finally:
        notice.cancel()


def failed(args: argparse.Namespace, message: str) -> int:
    """Say why the command's call failed, in its name; the exit code for it."""
    print(f"{args.command_parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_CALL_FAILED


def unreachable(exc: LedgerUnreachable, config: ClientConfig) -> str:
    """The error with a hint at the usual causes."""
    if config.uses_tls:
        return f"{exc} (is TLS served there, with a certificate --tls-ca trusts?)"
    return f"{exc} (is `ledger serve` running there?)"


def unit_of(args: argparse.Namespace) -> Money:
    return money(args.currency, args.scale)


def amount_of(args: argparse.Namespace, unit: Money) -> int | None:
    """--amount in minor units (None when not given); InputError naming it if it does not fit the unit."""
    if args.amount is None:
        return None
    try:
        return parse_amount(args.amount, unit)
    except argparse.ArgumentTypeError as exc:
        major = "; or give the currency (--currency EUR, or --scale 2) to write 12.50" if "." in args.amount else ""
        raise InputError(f"argument --amount: {exc}{'' if unit.major else major}") from None


# Output.


def emit(args: argparse.Namespace, document: Any, lines: Iterable[str]) -> None:
    """The document as JSON with --json, else the lines, on stdout."""
    if args.json:
        print(json.dumps(document))
    else:
        for line in lines:
            print(line)


def table(rows: list[list[str]]) -> list[str]:
    """Rows as lines of left-aligned columns, two spaces apart."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def account_document(a: Account) -> dict[str, int]:
    return {
        "id": a.id,
        "ledger": a.ledger,
        "code": a.code,
        "flags": a.flags,
        "debits_pending": a.debits_pending,
        "debits_posted": a.debits_posted,
        "credits_pending": a.credits_pending,
        "credits_posted": a.credits_posted,
        "user_data_128": a.user_data_128,
        "user_data_64": a.user_data_64,
        "user_data_32": a.user_data_32,
        "timestamp": a.timestamp,
    }


def transfer_document(t: Transfer) -> dict[str, int]:
    return {
        "id": t.id,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount": t.amount,
        "pending_id": t.pending_id,
        "user_data_128": t.user_data_128,
        "user_data_64": t.user_data_64,
        "user_data_32": t.user_data_32,
        "timeout": t.timeout,
        "ledger": t.ledger,
        "code": t.code,
        "flags": t.flags,
        "timestamp": t.timestamp,
    }


def account_line(a: Account, unit: Money = MINOR) -> str:
    def amount(value: int) -> str:
        return format_amount(value, unit)

    return (
        f"account {format_id(a.id)} ledger {a.ledger} code {a.code} flags {flag_names(AccountFlags, a.flags)} "
        f"debits_pending {amount(a.debits_pending)} debits_posted {amount(a.debits_posted)} "
        f"credits_pending {amount(a.credits_pending)} credits_posted {amount(a.credits_posted)} "
        f"user_data_128 {format_id(a.user_data_128)} user_data_64 {a.user_data_64} user_data_32 {a.user_data_32} "
        f"created {format_time(a.timestamp)}"
    )


def transfer_line(t: Transfer, unit: Money = MINOR) -> str:
    pending = f" pending_id {format_id(t.pending_id)}" if t.pending_id else ""
    timeout = f" timeout {t.timeout}" if t.timeout else ""
    return (
        f"transfer {format_id(t.id)} {what(t)} debit {format_id(t.debit_account_id)} "
        f"credit {format_id(t.credit_account_id)} "
        f"amount {with_currency(format_amount(t.amount, unit), unit)} ledger {t.ledger} code {t.code} "
        f"flags {flag_names(TransferFlags, t.flags)}{pending}{timeout} user_data_128 {format_id(t.user_data_128)} "
        f"user_data_64 {t.user_data_64} user_data_32 {t.user_data_32} at {format_time(t.timestamp)}"
    )


def what(t: Transfer) -> str:
    """What a transfer did: moved (posted at once), reserved (a hold), captured or released (a hold's end)."""
    if t.flags & TransferFlags.PENDING:
        return "reserved"
    if t.flags & TransferFlags.POST_PENDING_TRANSFER:
        return "captured"
    if t.flags & TransferFlags.VOID_PENDING_TRANSFER:
        return "released"
    return "moved"


# The commands.


def _create_account(args: argparse.Namespace) -> int:
    account = Account(
        id=args.id,
        ledger=args.ledger,
        code=args.code,
        flags=args.flags,
        user_data_128=args.user_data_128,
        user_data_64=args.user_data_64,
        user_data_32=args.user_data_32,
    )

    def work(client: Client) -> int:
        outcome = client.create_account(account)
        name = CreateAccountResult(outcome.result).name
        document = {"id": account.id, "result": name, "timestamp": outcome.timestamp}
        at = _at(outcome.timestamp) if name in SUCCEEDED else ""
        emit(args, document, [f"account {format_id(account.id)}: {name}{at}"])
        return 0 if name in SUCCEEDED else EXIT_FAILED_ITEMS

    return run_with_client(args, work, waiting_notice=True)


def _at(timestamp: int) -> str:
    return f" at {format_time(timestamp)}" if timestamp else ""


_FLAG_OPTIONS: Final = (
    ("balancing_debit", TransferFlags.BALANCING_DEBIT),
    ("balancing_credit", TransferFlags.BALANCING_CREDIT),
    ("closing_debit", TransferFlags.CLOSING_DEBIT),
    ("closing_credit", TransferFlags.CLOSING_CREDIT),
)


def _transfer(args: argparse.Namespace) -> int:
    unit = unit_of(args)
    amount = amount_of(args, unit)
    flags = args.flags
    for option, flag in _FLAG_OPTIONS:
        if getattr(args, option):
            flags |= flag
    hold_id = args.post if args.post is not None else args.void
    if args.pending:
        flags |= TransferFlags.PENDING
    elif args.timeout:
        raise InputError("argument --timeout: only a hold (--pending) expires")
    if args.post is not None:
        flags |= TransferFlags.POST_PENDING_TRANSFER
    if args.void is not None:
        flags |= TransferFlags.VOID_PENDING_TRANSFER
    if hold_id is None:
        needed = ("debit", "credit", "amount", "ledger", "code")
        missing = [f"--{name}" for name in needed if getattr(args, name) is None]
        if missing:
            raise InputError(
                f"the following arguments are required: {', '.join(missing)} (all but --post and --void need them)"
            )
        if amount == 0:
            raise InputError("argument --amount: must be more than 0 (0 means the whole hold, with --post only)")

    def work(client: Client) -> int:
        # A hold's capture or void: the hold tells what it reserved, and its ledger (a key bound to ledgers
        # must name it: ledger 0 would take the hold's).
        hold = client.lookup_transfer(hold_id) if hold_id is not None else None
        ledger = args.ledger if args.ledger is not None else (hold.ledger if hold is not None else 0)
        transfer = Transfer(
            id=args.id,
            debit_account_id=args.debit or 0,
            credit_account_id=args.credit or 0,
            amount=amount or 0,
            ledger=ledger,
            code=args.code or 0,
            flags=flags,
            pending_id=hold_id or 0,
            timeout=args.timeout,
            user_data_128=args.user_data_128,
            user_data_64=args.user_data_64,
            user_data_32=args.user_data_32,
        )
        outcome = client.create_transfer(transfer)
        name = CreateTransferResult(outcome.result).name
        document: dict[str, Any] = {
            "id": transfer.id, "result": name, "timestamp": outcome.timestamp, "amount": outcome.amount,
        }  # fmt: skip
        if name in SUCCEEDED:
            document["what"] = what(transfer)
            said = f"{name}, {_moved(transfer, outcome.amount, outcome.timestamp, hold, unit, document)}"
        else:
            said = name + _EXPLAINED.get(name, "")
        emit(args, document, [f"transfer {format_id(transfer.id)}: {said}"])
        return 0 if name in SUCCEEDED else EXIT_FAILED_ITEMS

    return run_with_client(args, work, waiting_notice=True)


_EXPLAINED: Final = {
    "PENDING_TRANSFER_EXPIRED": " (the hold expired before this: its amount was released, nothing moved)",
    "PENDING_TRANSFER_ALREADY_POSTED": " (the hold was captured before, by another transfer id)",
    "PENDING_TRANSFER_ALREADY_VOIDED": " (the hold was released before, by another transfer id)",
    "EXCEEDS_CREDITS": " (the debit account may not go below zero; --balancing-debit moves what it has)",
}
"""A few words for the results a new user meets first; every other result is its name alone."""


def _moved(transfer: Transfer, amount: int, timestamp: int, hold: Transfer | None, unit: Money,
           document: dict[str, Any]) -> str:  # fmt: skip
    """What a transfer that succeeded did, in words: moved, reserved, captured or released."""
    money_text = with_currency(format_amount(amount, unit), unit)
    kind = what(transfer)
    if kind == "reserved":
        until = (
            f", held until {format_time(timestamp + transfer.timeout * NANOSECONDS_PER_SECOND)}"
            if transfer.timeout
            else ", held until captured or voided"
        )
        return f"{money_text} reserved{_at(timestamp)}{until}"
    if kind == "captured":
        rest = ""
        if hold is not None and hold.amount > amount:
            document["released"] = hold.amount - amount
            rest = f", {with_currency(format_amount(hold.amount - amount, unit), unit)} released"
        return f"{money_text} captured from hold {format_id(transfer.pending_id)}{rest}{_at(timestamp)}"
    if kind == "released":
        return f"{money_text} released: hold {format_id(transfer.pending_id)} voided{_at(timestamp)}"
    return f"{money_text} moved{_at(timestamp)}"


def _lookup(args: argparse.Namespace) -> int:
    unit = unit_of(args)

    def work(client: Client) -> int:
        found: dict[int, Any]
        if args.kind == "account":
            found = {a.id: a for a in client.lookup_accounts(args.ids)}
            document: list[Any] = [
                account_document(found[i]) if i in found else {"id": i, "found": False} for i in args.ids
            ]
            lines = [account_line(found[i], unit) if i in found else _missing("account", i) for i in args.ids]
        else:
            found = {t.id: t for t in client.lookup_transfers(args.ids)}
            document = [transfer_document(found[i]) if i in found else {"id": i, "found": False} for i in args.ids]
            lines = [transfer_line(found[i], unit) if i in found else _missing("transfer", i) for i in args.ids]
        emit(args, document, lines)
        return 0 if all(i in found for i in args.ids) else EXIT_FAILED_ITEMS

    return run_with_client(args, work, waiting_notice=True)


def _missing(kind: str, record_id: int) -> str:
    return f"{kind} {format_id(record_id)}: not found"


def _not_found(args: argparse.Namespace) -> int:
    emit(args, {"id": args.id, "found": False}, [_missing("account", args.id)])
    return EXIT_FAILED_ITEMS


def _balance(args: argparse.Namespace) -> int:
    unit = unit_of(args)

    def work(client: Client) -> int:
        account = client.lookup_account(args.id)
        if account is None:
            return _not_found(args)
        net = account.credits_posted - account.debits_posted
        available = net - account.debits_pending
        document = {
            "id": account.id,
            "ledger": account.ledger,
            "debits_pending": account.debits_pending,
            "debits_posted": account.debits_posted,
            "credits_pending": account.credits_pending,
            "credits_posted": account.credits_posted,
            "net": net,
            "available": available,
        }

        def amount(value: int) -> str:
            return with_currency(format_amount(value, unit), unit)

        lines = [
            f"account {format_id(account.id)} ledger {account.ledger} code {account.code} "
            f"flags {flag_names(AccountFlags, account.flags)}",
            f"debits    posted {amount(account.debits_posted)}  pending {amount(account.debits_pending)}",
            f"credits   posted {amount(account.credits_posted)}  pending {amount(account.credits_pending)}",
            f"net       {amount(net)}  (credits posted - debits posted)",
            f"available {amount(available)}  (net - debits pending)",
        ]
        emit(args, document, lines)
        return 0

    return run_with_client(args, work, waiting_notice=True)


def _history(args: argparse.Namespace) -> int:
    unit = unit_of(args)
    history_filter = AccountFilter(
        account_id=args.id,
        timestamp_min=args.timestamp_min,
        timestamp_max=args.timestamp_max,
        limit=min(args.limit, BATCH_EVENTS_MAX) if args.limit else 0,
        reversed=args.reversed,
        exclude_debits=args.credits_only,
        exclude_credits=args.debits_only,
        code=args.code,
    )

    def work(client: Client) -> int:
        # The account first: an unknown one (or another tenant's) is "not found", not an empty history.
        account = client.lookup_account(args.id)
        if account is None:
            return _not_found(args)
        if args.balances:
            if not account.flags & AccountFlags.HISTORY:
                print(
                    f"ledger history: account {format_id(args.id)} keeps no balance history (it was created "
                    "without the history flag); its transfers: ledger history without --balances",
                    file=sys.stderr,
                )
                return EXIT_FAILED_ITEMS
            balances = list(_first(client.iter_account_balances(history_filter), args.limit))
            emit(args, [_balance_document(b) for b in balances], _balance_lines(balances, unit))
            return 0
        transfers, complete = _taken(client.iter_account_transfers(history_filter), args.limit)
        rows = history_rows(client, args.id, transfers, covered_until(args, transfers, complete))
        if args.json:
            emit(args, [row.document() for row in rows], [])
        elif not rows:
            in_range = " in this range" if args.timestamp_min or args.timestamp_max else ""
            print(f"account {format_id(args.id)}: no transfers{in_range}")
        else:
            emit(args, None, history_lines(rows, unit))
        return 0

    return run_with_client(args, work, waiting_notice=True)


def _first(items: Iterator[Any], limit: int) -> Iterator[Any]:
    for index, item in enumerate(items):
        if limit and index >= limit:
            return
        yield item


def _taken(items: Iterator[Transfer], limit: int) -> tuple[list[Transfer], bool]:
    """At most `limit` items (0: all), and whether that was all of them."""
    taken: list[Transfer] = []
    for item in items:
        if limit and len(taken) == limit:
            return taken, False
        taken.append(item)
    return taken, True


def covered_until(args: argparse.Namespace, transfers: list[Transfer], complete: bool) -> int | None:
    """Up to when the rows shown hold every transfer of the account after each of them (None: up to now).

    Newest first, the rows run down from the range's end; oldest first, up to it when nothing was left out
    by --limit, else up to the last row shown. A hold's fate is told only from what the rows cover.
    """
    end = args.timestamp_max or None
    if args.reversed or complete:
        return end
    return transfers[-1].timestamp if transfers else end


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One transfer as the account saw it: its posted and pending change (signed: + credit, - debit)."""

    transfer: Transfer
    credited: bool
    what: str
    posted: int
    pending: int
    released: int | None = None
    """A capture of less than its hold: what the rest released (None: unknown, or nothing)."""
    hold: dict[str, Any] | None = None
    """A hold: what became of it, as far as the rows tell (status captured, voided, expired, open or unknown)."""

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            **transfer_document(self.transfer), "what": self.what, "posted": self.posted, "pending": self.pending,
        }  # fmt: skip
        if self.released is not None:
            document["released"] = self.released
        if self.hold is not None:
            document["hold"] = self.hold
        return document


def history_rows(client: Client, account_id: int, transfers: list[Transfer], until: int | None) -> list[HistoryRow]:
    """The rows of `ledger history`: each transfer's posted and pending change for the account, and for
    holds what became of them where the rows tell."""
    ending = TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER
    ends = {t.pending_id: t for t in transfers if t.flags & ending}
    holds = {t.id: t for t in transfers}
    missing = [hold_id for hold_id in ends if hold_id not in holds]
    if missing:  # captures of holds older than the rows shown: what did the hold reserve?
        holds.update((t.id, t) for t in client.lookup_transfers(missing))
    now = time.time_ns()
    rows = []
    for t in transfers:
        credited = t.credit_account_id == account_id
        sign = 1 if credited else -1
        kind = what(t)
        if kind == "reserved":
            rows.append(HistoryRow(t, credited, kind, 0, sign * t.amount, hold=_fate(t, ends.get(t.id), until, now)))
        elif kind == "captured":
            hold = holds.get(t.pending_id)
            released = hold.amount - t.amount if hold is not None and hold.amount > t.amount else None
            pending = -sign * hold.amount if hold is not None else 0
            rows.append(HistoryRow(t, credited, kind, sign * t.amount, pending, released=released))
        elif kind == "released":
            rows.append(HistoryRow(t, credited, kind, 0, -sign * t.amount))
        else:
            rows.append(HistoryRow(t, credited, kind, sign * t.amount, 0))
    return rows


def _fate(hold: Transfer, end: Transfer | None, until: int | None, now: int) -> dict[str, Any]:
    """What became of a hold, as far as the rows shown tell: a capture or void among them; else expiry, if
    its time passed within what the rows cover (nothing captures or voids a hold after it); else still open
    if the rows reach the present; else unknown (its end may lie after the rows shown)."""
    expires = hold.timestamp + hold.timeout * NANOSECONDS_PER_SECOND if hold.timeout else None
    if end is not None:
        return {"status": "captured" if end.flags & TransferFlags.POST_PENDING_TRANSFER else "voided", "by": end.id}
    if expires is not None and expires <= (now if until is None else min(until, now)):
        return {"status": "expired", "at": expires}
    if until is None:
        return {"status": "open", "expires": expires}
    return {"status": "unknown"}


def _hold_note(row: HistoryRow, unit: Money) -> str:
    t = row.transfer
    if row.what == "captured":
        rest = f": {format_amount(row.released, unit)} released" if row.released else ""
        return f"hold {format_id(t.pending_id)}{rest}"
    if row.what == "released":
        return f"hold {format_id(t.pending_id)} voided"
    if row.hold is None:
        return ""
    status = row.hold["status"]
    if status in ("captured", "voided"):
        return f"{status} by {format_id(row.hold['by'])}"
    if status == "expired":
        return f"expired at {format_time(row.hold['at'])}"
    if status == "open":
        expires = row.hold["expires"]
        return f"open until {format_time(expires)}" if expires is not None else "open, no expiry"
    return "open or ended after the rows shown"


def history_lines(rows: list[HistoryRow], unit: Money) -> list[str]:
    currency = f" ({unit.currency})" if unit.currency else ""
    cells = [["TIME", "TRANSFER", "WHAT", f"POSTED{currency}", f"PENDING{currency}", "WITH", "CODE", "NOTE"]]
    for row in rows:
        t = row.transfer
        cells.append(
            [
                format_time(t.timestamp),
                format_id(t.id),
                row.what,
                format_amount(row.posted, unit, sign=True) if row.posted else "",
                format_amount(row.pending, unit, sign=True) if row.pending else "",
                f"from {format_id(t.debit_account_id)}" if row.credited else f"to {format_id(t.credit_account_id)}",
                str(t.code),
                _hold_note(row, unit),
            ]
        )
    return table(cells)


def _balance_document(b: AccountBalance) -> dict[str, int]:
    return {
        "timestamp": b.timestamp,
        "debits_pending": b.debits_pending,
        "debits_posted": b.debits_posted,
        "credits_pending": b.credits_pending,
        "credits_posted": b.credits_posted,
        "net": b.credits_posted - b.debits_posted,
        "available": b.credits_posted - b.debits_posted - b.debits_pending,
    }


def _balance_lines(balances: list[AccountBalance], unit: Money) -> list[str]:
    currency = f" ({unit.currency})" if unit.currency else ""
    header = ["TIME", "DEBITS POSTED", "DEBITS PENDING", "CREDITS POSTED", "CREDITS PENDING", "NET", "AVAILABLE"]
    cells = [[*header[:-2], f"NET{currency}", f"AVAILABLE{currency}"]]
    for b in balances:
        net = b.credits_posted - b.debits_posted
        values = (b.debits_posted, b.debits_pending, b.credits_posted, b.credits_pending, net, net - b.debits_pending)
        cells.append([format_time(b.timestamp), *(format_amount(v, unit) for v in values)])
    return table(cells)
