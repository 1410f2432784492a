"""`ledger wallet voucher …`: vouchers and gift cards of a tenant: issue one, show what is left on it, redeem
it into a wallet, pay an order with it, or take it out of use.

A voucher's code is shown once, in the reply to its issue (and to a retry of that issue with the same key):
the ledger keeps only a hash of it. Codes are read as the service reads them (case, spaces and dashes
ignored, O as 0, I and L as 1); one whose check character does not match is a typo, refused before
anything is sent.
"""

from __future__ import annotations

import argparse
from typing import Final

from ledger.client import Client
from ledger.v1 import wallet_pb2
from ledger.wallet import normalized_voucher_code

from ._ops import Commands, run_with_client
from ._parse import parse_when
from ._wallet import (
    OK,
    _amount_argument,
    _done,
    _key_option,
    _refused,
    _tenant_argument,
    _tenant_money,
    _until,
    _with_key,
    amount_in,
    shown,
)

w = wallet_pb2
CODE_EXAMPLE: Final = "7K2M-9QXD-4HPR-T0WB-Y"


def register(wallet_commands: Commands) -> None:
    voucher = wallet_commands.add_parser(
        "voucher", help="issue, show, redeem, spend or deactivate a voucher (a gift card)"
    )
    voucher_commands = voucher.add_subparsers(dest="voucher_command", required=True, metavar="COMMAND")

    issue = voucher_commands.add_parser(
        "issue", help="issue a voucher of AMOUNT; its code is printed once, and only then"
    )
    _tenant_argument(issue)
    _amount_argument(issue, "its value")
    expiry = issue.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires",
        type=parse_when,
        metavar="WHEN",
        help="when it expires: ISO 8601 (2027-01-31, UTC unless it says) or a span from now (90d); "
        "default: the tenant's credit expiry",
    )
    expiry.add_argument("--never-expires", action="store_true", help="it never expires")
    _key_option(issue)
    issue.set_defaults(run=_issue)

    show = voucher_commands.add_parser("show", help="what is left on a voucher, its status and expiry")
    _code_arguments(show)
    show.set_defaults(run=_show)

    redeem = voucher_commands.add_parser(
        "redeem", help="move all that is left on a voucher into a wallet, as credit expiring with the voucher"
    )
    _code_arguments(redeem)
    redeem.add_argument("customer", metavar="CUSTOMER", help="whose wallet (opened before)")
    _key_option(redeem)
    redeem.set_defaults(run=_redeem)

    spend = voucher_commands.add_parser("spend", help="pay an order from a voucher: what is left on it, up to AMOUNT")
    _code_arguments(spend)
    _amount_argument(spend, "the order's amount")
    spend.add_argument("--order", required=True, help="the order's reference")
    _key_option(spend)
    spend.set_defaults(run=_spend)

    deactivate = voucher_commands.add_parser(
        "deactivate", help="take a voucher out of use: what is left goes back to the funding account"
    )
    _code_arguments(deactivate)
    deactivate.add_argument("--reason", required=True, help="why, kept in the journal (1 to 255 characters)")
    _key_option(deactivate)
    deactivate.set_defaults(run=_deactivate)


def _code_arguments(parser: argparse.ArgumentParser) -> None:
    _tenant_argument(parser)
    parser.add_argument(
        "code", type=_code, metavar="CODE", help=f"the voucher's code, as printed when issued: {CODE_EXAMPLE}"
    )


def _code(text: str) -> str:
    if normalized_voucher_code(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a voucher code (16 characters and a check character, e.g. {CODE_EXAMPLE}): mistyped?"
        )
    return text.strip()


def _expiry(reply: wallet_pb2.VoucherReply) -> str:
    until = _until(reply.expires_at, reply.HasField("expires_at"))
    return f"expires {until}" if until else "never expires"


def _issue(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.IssueVoucherRequest(
            tenant=args.tenant, amount=amount_in(args.amount, unit), key=key, never_expires=args.never_expires
        )
        if args.expires is not None:
            request.expires_at.FromNanoseconds(args.expires)
        reply = client.issue_voucher(request)
        if reply.result != OK:
            return _refused(args, "voucher issue", reply, {"key": key})
        line = (
            f"voucher {reply.voucher_id}: OK, {shown(reply.amount, unit)} issued, {_expiry(reply)}, code {reply.code} "
            "(shown only now: the ledger keeps only a hash of it)"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "voucher issue", work)


def _show(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        reply = client.get_voucher(w.VoucherRequest(tenant=args.tenant, code=args.code))
        if reply.result != OK:
            return _refused(args, f"voucher {args.code}", reply)
        line = (
            f"voucher {reply.voucher_id}: {reply.status}, {shown(reply.remaining, unit)} left of "
            f"{shown(reply.amount, unit)}, {_expiry(reply)}"
        )
        return _done(args, reply, line)

    return run_with_client(args, work, waiting_notice=True)


def _redeem(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        reply = client.redeem_voucher(
            w.RedeemVoucherRequest(tenant=args.tenant, code=args.code, customer=args.customer, key=key)
        )
        if reply.result != OK:
            return _refused(args, f"redemption of voucher {args.code}", reply, {"key": key})
        line = (
            f"voucher {reply.voucher_id}: OK, {shown(reply.amount, unit)} redeemed into {args.customer}'s wallet, "
            f"{_expiry(reply)}, balance {shown(reply.balance, unit)}"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "redemption", work)


def _spend(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.SpendVoucherRequest(
            tenant=args.tenant, code=args.code, amount=amount_in(args.amount, unit), key=key,
            order_reference=args.order,
        )  # fmt: skip
        reply = client.spend_voucher(request)
        if reply.result != OK:
            return _refused(args, f"payment of order {args.order} by voucher {args.code}", reply, {"key": key})
        if reply.amount < reply.requested:
            paid = (
                f"{shown(reply.amount, unit)} of {shown(reply.requested, unit)} paid for order {args.order}, "
                f"{shown(reply.requested - reply.amount, unit)} left to pay another way"
            )
        else:
            paid = f"{shown(reply.amount, unit)} paid for order {args.order}"
        line = f"voucher {reply.voucher_id}: OK, {paid}, {shown(reply.remaining, unit)} left on it"
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "voucher payment", work)


def _deactivate(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.DeactivateVoucherRequest(tenant=args.tenant, code=args.code, key=key, reason=args.reason)
        reply = client.deactivate_voucher(request)
        if reply.result != OK:
            return _refused(args, f"deactivation of voucher {args.code}", reply, {"key": key})
        back = f"{shown(reply.amount, unit)} back to the funding account" if reply.amount else "nothing was left on it"
        return _done(args, reply, f"voucher {reply.voucher_id}: OK, deactivated, {back}", {"key": key})

    return _with_key(args, "deactivation", work)
