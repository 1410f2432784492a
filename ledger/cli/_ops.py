"""Operator commands over gRPC: `ledger accounts create`, `transfer`, `lookup`, `balance` and `history`.

They go through ledger.client, so they run on any host that reaches the
ledger. Amounts are integers in minor units. Exit codes: 0 done, 1 an item
failed (its result is named) or was not found, 2 bad usage or input,
3 the call failed (the server's message, or no answer before the deadline).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
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
    Transfer,
    TransferFlags,
)

EXIT_FAILED_ITEMS: Final = 1
EXIT_USAGE: Final = 2
EXIT_CALL_FAILED: Final = 3

SUCCEEDED: Final = frozenset({"OK", "EXISTS"})
"""Results that leave the ledger as asked: created now, or by an earlier run with the same id and fields."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class InputError(ValueError):
    """Bad input from the operator (a flag's value, a file's cell); the message names it. Nothing was sent."""


def register(commands: Commands) -> None:
    accounts = commands.add_parser("accounts", help="create accounts through the ledger's gRPC service")
    accounts_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    create = accounts_commands.add_parser("create", help="create one account")
    add_connection_options(create)
    create.add_argument("--id", required=True, type=parse_id, help="the account's id (integer, 0x… or UUID)")
    create.add_argument("--ledger", required=True, type=unsigned(32), help="the ledger (currency) number")
    create.add_argument("--code", required=True, type=unsigned(16), help="what kind of account")
    create.add_argument(
        "--flags",
        type=flags_parser(AccountFlags),
        default=0,
        help="names joined by ',' (debits_must_not_exceed_credits,history,…) or an integer",
    )
    add_user_data_options(create)
    create.set_defaults(run=_create_account)

    transfer = commands.add_parser("transfer", help="move money: one transfer (or a hold, its capture or its void)")
    add_connection_options(transfer)
    transfer.add_argument("--id", required=True, type=parse_id, help="the transfer's id, its idempotency key")
    transfer.add_argument("--debit", type=parse_id, default=0, help="the account debited")
    transfer.add_argument("--credit", type=parse_id, default=0, help="the account credited")
    transfer.add_argument("--amount", type=unsigned(64), default=0, help="minor units (0 with --post: all of it)")
    transfer.add_argument("--ledger", type=unsigned(32), default=0)
    transfer.add_argument("--code", type=unsigned(16), default=0, help="the reason for the movement")
    kind = transfer.add_mutually_exclusive_group()
    kind.add_argument("--pending", action="store_true", help="a hold: reserve the amount until posted or voided")
    kind.add_argument("--post", type=parse_id, metavar="PENDING_ID", help="capture the hold PENDING_ID")
    kind.add_argument("--void", type=parse_id, metavar="PENDING_ID", help="release the hold PENDING_ID")
    transfer.add_argument("--timeout", type=unsigned(32), default=0, help="seconds until a hold expires (0: never)")
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
    transfer.set_defaults(run=_transfer)

    lookup = commands.add_parser("lookup", help="show accounts or transfers by id")
    add_connection_options(lookup)
    lookup.add_argument("kind", choices=["account", "transfer"])
    lookup.add_argument("ids", nargs="+", type=parse_id, metavar="ID")
    lookup.set_defaults(run=_lookup)

    balance = commands.add_parser("balance", help="an account's balances and its net, in minor units")
    add_connection_options(balance)
    balance.add_argument("id", type=parse_id, metavar="ID")
    balance.set_defaults(run=_balance)

    history = commands.add_parser("history", help="an account's transfers (or balances) over time")
    add_connection_options(history)
    history.add_argument("id", type=parse_id, metavar="ID")
    history.add_argument("--limit", type=int, default=100, help="show at most this many (default 100; 0: all)")
    history.add_argument("--reversed", action="store_true", help="newest first")
    history.add_argument(
        "--from",
        dest="timestamp_min",
        type=parse_time,
        default=0,
        help="from this time on: nanoseconds since the epoch or ISO 8601 (UTC unless it says)",
    )
    history.add_argument("--to", dest="timestamp_max", type=parse_time, default=0, help="up to this time, inclusive")
    side = history.add_mutually_exclusive_group()
    side.add_argument("--debits-only", action="store_true", help="only transfers that debit the account")
    side.add_argument("--credits-only", action="store_true", help="only transfers that credit the account")
    history.add_argument("--code", type=unsigned(16), default=0, help="only transfers with this code")
    history.add_argument(
        "--balances",
        action="store_true",
        help="the balances after each transfer instead (accounts with the HISTORY flag)",
    )
    history.set_defaults(run=_history)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--server", help="host:port of the ledger (default: LEDGER_SERVER, else 127.0.0.1:7100)")
    group.add_argument("--api-key", help="sent as 'authorization: Bearer KEY' (default: LEDGER_API_KEY)")
    group.add_argument("--tls-ca", type=Path, help="PEM root certificates: connect with TLS")
    group.add_argument("--tls-cert", type=Path, help="PEM client certificate, for mutual TLS (with --tls-key)")
    group.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    group.add_argument("--call-timeout", type=float, help="seconds each call may take, retries included (default 30)")
    parser.add_argument("--json", action="store_true", help="print JSON for machines instead of lines for people")


def add_user_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-data-128", type=parse_id, default=0, help="your reference (integer, 0x… or UUID)")
    parser.add_argument("--user-data-64", type=unsigned(64), default=0)
    parser.add_argument("--user-data-32", type=unsigned(32), default=0)


def client_config(args: argparse.Namespace) -> ClientConfig:
    return ClientConfig.from_env(
        server=args.server,
        api_key=args.api_key,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        timeout_seconds=args.call_timeout,
    )


def run_with_client(args: argparse.Namespace, work: Callable[[Client], int]) -> int:
    """`work` with a client made from the options; a failed call prints the reason and exits 3."""
    try:
        config = client_config(args)
    except ValueError as exc:
        print(f"ledger: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with Client(config) as client:
            return work(client)
    except LedgerError as exc:
        print(f"ledger: error: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED
    except InputError as exc:
        print(f"ledger: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# Parsing what the operator typed.


def parse_id(text: str) -> int:
    """A 128-bit id: decimal, 0x-prefixed hexadecimal, or a UUID."""
    text = text.strip()
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text.replace("_", ""))
    except ValueError:
        try:
            value = uuid.UUID(text).int
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an id (an integer, 0x… or a UUID)") from None
    if not 0 <= value < 2**128:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range for a 128-bit id")
    return value


def unsigned(bits: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not 0 <= value < 2**bits:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range (0 to 2**{bits} - 1)")
        return value

    parse.__name__ = f"u{bits}"
    return parse


def flags_parser(kind: type[AccountFlags] | type[TransferFlags]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        return parse_flags(kind, text)

    parse.__name__ = "flags"
    return parse


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


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch, from an integer or an ISO 8601 date or time (UTC unless it says)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither nanoseconds since the epoch nor ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def format_time(nanoseconds: int) -> str:
    moment = _EPOCH + timedelta(microseconds=nanoseconds // 1_000)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds % 1_000_000_000:09d}Z"


def flag_names(kind: type[AccountFlags] | type[TransferFlags], value: int) -> str:
    names = [f.name for f in kind if f.name and f.value and value & f.value]
    unknown = value & ~sum(f.value for f in kind)
    if unknown:
        names.append(str(unknown))
    return "|".join(names) or "NONE"


# Output.


def emit(args: argparse.Namespace, document: Any, lines: Iterable[str]) -> None:
    """The document as JSON with --json, else the lines, on stdout."""
    if args.json:
        print(json.dumps(document))
    else:
        for line in lines:
            print(line)


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


def account_line(a: Account) -> str:
    return (
        f"account {a.id} ledger {a.ledger} code {a.code} flags {flag_names(AccountFlags, a.flags)} "
        f"debits_pending {a.debits_pending} debits_posted {a.debits_posted} credits_pending {a.credits_pending} "
        f"credits_posted {a.credits_posted} user_data_128 {a.user_data_128} user_data_64 {a.user_data_64} "
        f"user_data_32 {a.user_data_32} created {format_time(a.timestamp)}"
    )


def transfer_line(t: Transfer) -> str:
    pending = f" pending_id {t.pending_id}" if t.pending_id else ""
    timeout = f" timeout {t.timeout}" if t.timeout else ""
    return (
        f"transfer {t.id} debit {t.debit_account_id} credit {t.credit_account_id} amount {t.amount} "
        f"ledger {t.ledger} code {t.code} flags {flag_names(TransferFlags, t.flags)}{pending}{timeout} "
        f"user_data_128 {t.user_data_128} user_data_64 {t.user_data_64} user_data_32 {t.user_data_32} "
        f"at {format_time(t.timestamp)}"
    )


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
        emit(args, document, [f"account {account.id}: {name}" + (_at(outcome.timestamp) if name in SUCCEEDED else "")])
        return 0 if name in SUCCEEDED else EXIT_FAILED_ITEMS

    return run_with_client(args, work)


def _at(timestamp: int) -> str:
    return f" at {format_time(timestamp)}" if timestamp else ""


def _transfer(args: argparse.Namespace) -> int:
    flags = args.flags
    pending_id = 0
    if args.pending:
        flags |= TransferFlags.PENDING
    if args.post is not None:
        flags |= TransferFlags.POST_PENDING_TRANSFER
        pending_id = args.post
    if args.void is not None:
        flags |= TransferFlags.VOID_PENDING_TRANSFER
        pending_id = args.void
    for option, flag in (
        ("balancing_debit", TransferFlags.BALANCING_DEBIT),
        ("balancing_credit", TransferFlags.BALANCING_CREDIT),
        ("closing_debit", TransferFlags.CLOSING_DEBIT),
        ("closing_credit", TransferFlags.CLOSING_CREDIT),
    ):
        if getattr(args, option):
            flags |= flag
    if not pending_id:
        missing = [f"--{name}" for name in ("debit", "credit", "amount", "ledger", "code") if not getattr(args, name)]
        if missing:
            print(
                f"ledger transfer: error: {', '.join(missing)} required (all but a hold's --post or --void need them)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    transfer = Transfer(
        id=args.id,
        debit_account_id=args.debit,
        credit_account_id=args.credit,
        amount=args.amount,
        ledger=args.ledger,
        code=args.code,
        flags=flags,
        pending_id=pending_id,
        timeout=args.timeout,
        user_data_128=args.user_data_128,
        user_data_64=args.user_data_64,
        user_data_32=args.user_data_32,
    )

    def work(client: Client) -> int:
        outcome = client.create_transfer(transfer)
        name = CreateTransferResult(outcome.result).name
        document = {"id": transfer.id, "result": name, "timestamp": outcome.timestamp, "amount": outcome.amount}
        moved = f", {outcome.amount} moved{_at(outcome.timestamp)}" if name in SUCCEEDED else ""
        emit(args, document, [f"transfer {transfer.id}: {name}{moved}"])
        return 0 if name in SUCCEEDED else EXIT_FAILED_ITEMS

    return run_with_client(args, work)


def _lookup(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        found: dict[int, Any]
        if args.kind == "account":
            found = {a.id: a for a in client.lookup_accounts(args.ids)}
            document: list[Any] = [
                account_document(found[i]) if i in found else {"id": i, "found": False} for i in args.ids
            ]
            lines = [account_line(found[i]) if i in found else f"account {i}: not found" for i in args.ids]
        else:
            found = {t.id: t for t in client.lookup_transfers(args.ids)}
            document = [transfer_document(found[i]) if i in found else {"id": i, "found": False} for i in args.ids]
            lines = [transfer_line(found[i]) if i in found else f"transfer {i}: not found" for i in args.ids]
        emit(args, document, lines)
        return 0 if all(i in found for i in args.ids) else EXIT_FAILED_ITEMS

    return run_with_client(args, work)


def _balance(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        account = client.lookup_account(args.id)
        if account is None:
            emit(args, {"id": args.id, "found": False}, [f"account {args.id}: not found"])
            return EXIT_FAILED_ITEMS
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
        lines = [
            f"account {account.id} ledger {account.ledger} code {account.code} "
            f"flags {flag_names(AccountFlags, account.flags)}",
            f"debits   posted {account.debits_posted}  pending {account.debits_pending}",
            f"credits  posted {account.credits_posted}  pending {account.credits_pending}",
            f"net      {net}  (credits posted - debits posted)",
            f"available {available}  (net - debits pending)",
        ]
        emit(args, document, lines)
        return 0

    return run_with_client(args, work)


def _history(args: argparse.Namespace) -> int:
    if args.limit < 0:
        print("ledger history: error: --limit must be 0 (all) or more", file=sys.stderr)
        return EXIT_USAGE
    history_filter = AccountFilter(
        account_id=args.id,
        timestamp_min=args.timestamp_min,
        timestamp_max=args.timestamp_max,
        limit=min(args.limit, 8190) if args.limit else 0,
        reversed=args.reversed,
        exclude_debits=args.credits_only,
        exclude_credits=args.debits_only,
        code=args.code,
    )

    def work(client: Client) -> int:
        rows: Iterator[Any]
        if args.balances:
            rows = _first(client.iter_account_balances(history_filter), args.limit)
            items = list(rows)
            document: list[Any] = [_balance_document(b) for b in items]
            lines = [_balance_line(b) for b in items]
        else:
            rows = _first(client.iter_account_transfers(history_filter), args.limit)
            transfers = list(rows)
            document = [transfer_document(t) for t in transfers]
            lines = [_history_line(args.id, t) for t in transfers]
        emit(args, document, lines)
        return 0

    return run_with_client(args, work)


def _first(items: Iterator[Any], limit: int) -> Iterator[Any]:
    for index, item in enumerate(items):
        if limit and index >= limit:
            return
        yield item


def _history_line(account_id: int, t: Transfer) -> str:
    sign = "+" if t.credit_account_id == account_id else "-"
    other = t.debit_account_id if sign == "+" else t.credit_account_id
    direction = "from" if sign == "+" else "to"
    flags = "" if not t.flags else f"  {flag_names(TransferFlags, t.flags)}"
    return f"{format_time(t.timestamp)}  {t.id}  {sign}{t.amount}  {direction} {other}  code {t.code}{flags}"


def _balance_document(b: AccountBalance) -> dict[str, int]:
    return {
        "timestamp": b.timestamp,
        "debits_pending": b.debits_pending,
        "debits_posted": b.debits_posted,
        "credits_pending": b.credits_pending,
        "credits_posted": b.credits_posted,
        "net": b.credits_posted - b.debits_posted,
    }


def _balance_line(b: AccountBalance) -> str:
    return (
        f"{format_time(b.timestamp)}  debits posted {b.debits_posted} pending {b.debits_pending}  "
        f"credits posted {b.credits_posted} pending {b.credits_pending}  net {b.credits_posted - b.debits_posted}"
    )
