"""`ledger wallet …`: the Wallet service from the command line: tenants, wallets, top-ups, payments,
refunds, holds, and freezing or closing a wallet; vouchers, operators' bookings, statements, the
settlement report and the event feed in the modules beside it, which build on this one's helpers.

Each command goes through ledger.client and prints one line: what it did, or the result that refused it
(its name and the service's message). Amounts are minor units (1250) or decimals in the tenant's currency
(12.50); the tenant is asked for its currency first, and amounts are shown as decimals with it. Every write
carries an idempotency key: --key, or one drawn at random and printed before anything is sent, because a
retry (after a timeout, a lost connection) must reuse it to be a retry: the same key answers the first
reply and moves nothing twice, while a new key is a new payment. Exit codes as the operator commands': 0
OK, 1 another result (named), 2 bad usage or input (nothing was sent), 3 the call failed.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from collections.abc import Callable, Iterable
from typing import Any, Final

from google.protobuf.message import Message

from ledger.client import Client
from ledger.v1 import wallet_pb2

from ._ops import EXIT_FAILED_ITEMS, Commands, add_connection_options, emit, run_with_client, table
from ._parse import (
    MINOR_UNITS,
    InputError,
    Money,
    check_amount_text,
    format_amount,
    format_span,
    format_time,
    parse_money_amount,
    parse_span,
    parse_when,
    with_currency,
)

w = wallet_pb2
OK: Final = w.WALLET_RESULT_OK

SOURCES: Final = {
    "purchase": w.TOP_UP_SOURCE_PURCHASE,
    "operator": w.TOP_UP_SOURCE_OPERATOR,
    "gift": w.TOP_UP_SOURCE_GIFT,
    "return": w.TOP_UP_SOURCE_RETURN,
    "benefit": w.TOP_UP_SOURCE_BENEFIT,
}
STATUSES: Final = {
    "freeze": w.WALLET_STATUS_FROZEN,
    "unfreeze": w.WALLET_STATUS_ACTIVE,
    "close": w.WALLET_STATUS_CLOSED,
}
_ID: Final = re.compile("[0-9a-fA-F]{32}")
KEY_PREFIX: Final = "cli-"
"""Keys the command draws: this and 32 random hex digits (128 bits), so two never meet."""


def register(commands: Commands) -> None:
    wallet = commands.add_parser(
        "wallet",
        help="the Wallet service: tenants, wallets, payments, holds, vouchers, bookings, statements, events",
        description="Amounts are minor units (1250) or decimals in the tenant's currency (12.50). Writes take "
        "--key, the idempotency key: without it one is drawn and printed first; a retry must reuse it.",
    )
    wallet_commands = wallet.add_subparsers(dest="wallet_command", required=True, metavar="COMMAND")
    from ._grant import register as register_grant  # it builds on this module's helpers

    register_grant(wallet_commands)

    tenant = wallet_commands.add_parser("tenant", help="create, configure or show a tenant (a shop, an event)")
    tenant_commands = tenant.add_subparsers(dest="tenant_command", required=True, metavar="COMMAND")
    create = tenant_commands.add_parser("create", help="create a tenant with its ledger and system accounts")
    _tenant_argument(create)
    create.add_argument("--currency", required=True, metavar="CODE", help="ISO 4217 code, fixed for its life: EUR")
    _settings_options(create, creating=True)
    create.set_defaults(run=_create_tenant)
    configure = tenant_commands.add_parser(
        "configure", help="change a tenant's settings (only those named; the rest stay as they are)"
    )
    _tenant_argument(configure)
    _settings_options(configure, creating=False)
    configure.set_defaults(run=_configure_tenant)
    show = tenant_commands.add_parser("show", help="a tenant's currency, ledger, settings and system accounts")
    _tenant_argument(show)
    show.set_defaults(run=_show_tenant)

    opening = wallet_commands.add_parser("open", help="open a customer's wallet (opening it again is harmless)")
    _wallet_arguments(opening)
    opening.set_defaults(run=_open)
    balance = wallet_commands.add_parser(
        "balance", help="a wallet's status, what it may spend, what holds reserve, and its credit that expires"
    )
    _wallet_arguments(balance)
    balance.set_defaults(run=_balance)

    top_up = wallet_commands.add_parser("top-up", help="credit a wallet")
    _wallet_arguments(top_up)
    _amount_argument(top_up)
    top_up.add_argument("--source", required=True, choices=list(SOURCES), help="where the credit comes from")
    top_up.add_argument(
        "--reference",
        default="",
        help="purchase: the external payment reference; return: the order; operator: the reason; else a note",
    )
    top_up.add_argument("--operator", default="", help="who credits it (required with --source operator)")
    expiry = top_up.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires",
        type=parse_when,
        metavar="WHEN",
        help="when this credit expires: ISO 8601 (2027-01-31, UTC unless it says) or a span from now (30d); "
        "default: the tenant's credit expiry",
    )
    expiry.add_argument("--never-expires", action="store_true", help="this credit never expires")
    _key_option(top_up)
    top_up.set_defaults(run=_top_up)

    pay = wallet_commands.add_parser("pay", help="pay an order from a wallet, in full or (--partial) in part")
    _wallet_arguments(pay)
    _amount_argument(pay, "the order's amount")
    pay.add_argument("--order", required=True, help="the order's reference, shown on statements")
    pay.add_argument(
        "--partial", action="store_true", help="pay what the wallet covers, leave the rest to be paid another way"
    )
    _key_option(pay)
    pay.set_defaults(run=_pay)

    refund = wallet_commands.add_parser("refund", help="refund (part of) a payment into its wallet")
    _tenant_argument(refund)
    refund.add_argument("payment_id", type=_operation_id, metavar="PAYMENT_ID", help="as `pay` or `capture` printed")
    _amount_argument(refund)
    refund.add_argument(
        "--to-credit", action="store_true", help="refund the part paid another way, as store credit in the wallet"
    )
    refund.add_argument("--reason", default="", help="why (at most 255 characters)")
    _key_option(refund)
    refund.set_defaults(run=_refund)

    hold = wallet_commands.add_parser("hold", help="reserve an amount of a wallet until captured, voided or expired")
    _wallet_arguments(hold)
    _amount_argument(hold)
    hold.add_argument("--reference", required=True, help="what it is for: a table, a fuel pump, a room")
    hold.add_argument(
        "--for",
        dest="duration",
        type=parse_span,
        default=0,
        metavar="SPAN",
        help="how long it stays authorised: 30m, 12h, 7d (at most 31d; default 7d)",
    )
    _key_option(hold)
    hold.set_defaults(run=_hold)
    capture = wallet_commands.add_parser("capture", help="capture a hold, all of it or AMOUNT (the rest is released)")
    _tenant_argument(capture)
    capture.add_argument("hold_id", type=_operation_id, metavar="HOLD_ID", help="as `hold` printed")
    capture.add_argument("amount", nargs="?", type=check_amount_text, metavar="AMOUNT", help="default: all of it")
    _key_option(capture)
    capture.set_defaults(run=_capture)
    void = wallet_commands.add_parser("void", help="release a hold")
    _tenant_argument(void)
    void.add_argument("hold_id", type=_operation_id, metavar="HOLD_ID", help="as `hold` printed")
    _key_option(void)
    void.set_defaults(run=_void)

    for command, what in (
        ("freeze", "freeze a wallet: it takes refunds only"),
        ("unfreeze", "make a frozen wallet active again"),
        ("close", "close a wallet for good (only at zero, with no open holds)"),
    ):
        status = wallet_commands.add_parser(command, help=what)
        _wallet_arguments(status)
        status.add_argument("--reason", required=True, help="why, kept in the journal (1 to 255 characters)")
        status.set_defaults(run=_set_status, status=STATUSES[command])

    # They build on this module's helpers, as grant does.
    from . import _bookings, _events, _reports, _vouchers

    for module in (_vouchers, _bookings, _reports, _events):
        module.register(wallet_commands)


def _tenant_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tenant", metavar="TENANT", help="the tenant's id (a shop, an event organiser)")
    add_connection_options(parser)


def _wallet_arguments(parser: argparse.ArgumentParser) -> None:
    _tenant_argument(parser)
    parser.add_argument("customer", metavar="CUSTOMER", help="the tenant's reference for the customer")


def _amount_argument(parser: argparse.ArgumentParser, what: str = "") -> None:
    parser.add_argument(
        "amount",
        type=check_amount_text,
        metavar="AMOUNT",
        help=f"{what + ': ' if what else ''}minor units (1250) or a decimal in the tenant's currency (12.50)",
    )


def _key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        help="the idempotency key (1 to 255 printable characters); a retry must send the same one. "
        "Default: one drawn at random, printed before the call",
    )


def _operation_id(text: str) -> str:
    if _ID.fullmatch(text.strip()) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id of the Wallet service (32 hex digits)")
    return text.strip().lower()


def _settings_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    group = parser.add_argument_group(
        "settings" + ("" if creating else " (only those named change)"),
        "amounts in minor units (500) or decimals of the currency (5.00); 0 means no bound",
    )
    group.add_argument("--name", help="a display name")
    group.add_argument(
        "--self-topup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="customers may buy credit themselves (--source purchase)" + ("; default yes" if creating else ""),
    )
    group.add_argument(
        "--topup-amounts",
        metavar="A,B,…",
        help="the only amounts a customer may buy (e.g. 10.00,20.00,50.00; 'none' for any in the range)",
    )
    group.add_argument("--topup-min", type=check_amount_text, metavar="AMOUNT", help="smallest purchase of credit")
    group.add_argument("--topup-max", type=check_amount_text, metavar="AMOUNT", help="largest purchase of credit")
    group.add_argument(
        "--partial-payment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a payment may take what the wallet has and leave the rest to be paid another way",
    )
    group.add_argument("--fee-fixed", type=check_amount_text, metavar="AMOUNT", help="fee for paying with credit")
    group.add_argument(
        "--fee-per-mille",
        type=_per_mille,
        metavar="N",
        help="and N per mille (0 to 1000) of what the wallet pays, rounded half up",
    )
    group.add_argument("--max-balance", type=check_amount_text, metavar="AMOUNT", help="most a wallet may hold")
    group.add_argument(
        "--credit-expiry",
        type=_expiry_span,
        metavar="SPAN",
        help="credit without an expiry of its own expires this long after it is granted: 365d, 90d; 0: never",
    )
    group.add_argument(
        "--low-balance", type=check_amount_text, metavar="AMOUNT", help="a balance below this emits an event"
    )
    group.add_argument(
        "--refund-to-credit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the part of a payment paid another way may be refunded into the wallet as store credit",
    )
    counter = parser.add_argument_group("the counter (payment codes, PINs and risk limits; 0: none)")
    counter.add_argument("--pin-above", type=check_amount_text, metavar="AMOUNT",
                         help="a payment by code above this needs the wallet's PIN")  # fmt: skip
    counter.add_argument("--pin-attempts", type=_count, metavar="N",
                         help="wrong PINs in a row that lock a wallet's code payments (0: 5)")  # fmt: skip
    counter.add_argument("--pin-lock", type=_expiry_span, metavar="SPAN",
                         help="how long wrong PINs lock them: 15m, 1h (0: 15 minutes)")  # fmt: skip
    counter.add_argument("--code-payment-max", type=check_amount_text, metavar="AMOUNT",
                         help="the largest one payment by code")  # fmt: skip
    for span, period in (("hour", "clock hour"), ("day", "UTC day")):
        counter.add_argument(f"--wallet-{span}-amount", type=check_amount_text, metavar="AMOUNT",
                             help=f"what one wallet may pay by code in a {period}")  # fmt: skip
        counter.add_argument(f"--wallet-{span}-count", type=_count, metavar="N",
                             help=f"in how many payments a {span}")  # fmt: skip
        counter.add_argument(f"--terminal-{span}-amount", type=check_amount_text, metavar="AMOUNT",
                             help=f"what one terminal may take by code in a {span}")  # fmt: skip
    counter.add_argument("--terminal-declines-flag", type=_count, metavar="N",
                         help="this many codes refused at one terminal within 10 minutes flag it")  # fmt: skip


def _count(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 to 2147483647)")
    return int(text)


def _per_mille(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 to 1000 (per mille)")
    return int(text)


def _expiry_span(text: str) -> int:
    return 0 if text.strip() in ("0", "never") else parse_span(text)


# -- money and lines -----------------------------------------------------------------------------------


def result_name(value: int) -> str:
    """A WalletResult by its name without the prefix: INSUFFICIENT_FUNDS."""
    try:
        return w.WalletResult.Name(value).removeprefix("WALLET_RESULT_")
    except ValueError:
        return f"result {value}"


def status_name(value: int) -> str:
    try:
        return w.WalletStatus.Name(value).removeprefix("WALLET_STATUS_").lower()
    except ValueError:
        return f"status {value}"


def money_of(currency: str, scale: int | None = None) -> Money:
    """How amounts of `currency` are read and shown (the tenant's scale when known, else the table's)."""
    if scale is None:
        scale = MINOR_UNITS.get(currency, 0)
    return Money(scale, currency)


def shown(amount: int, unit: Money) -> str:
    return with_currency(format_amount(amount, unit), unit)


def amount_in(text: str, unit: Money, name: str = "AMOUNT", *, zero: bool = False) -> int:
    """`text` in minor units of `unit` (InputError naming the argument: nothing was sent)."""
    try:
        value = parse_money_amount(text, unit)
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"argument {name}: {exc}") from None
    if value == 0 and not zero:
        raise InputError(f"argument {name}: must be more than 0")
    return value


def document(message: Message) -> dict[str, Any]:
    """A reply as JSON for machines: amounts in minor units, times in nanoseconds since the epoch (None when
    unset), enums by name without their prefix."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        kind = field.message_type
        if kind is not None and kind.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif kind is not None and kind.full_name == "google.protobuf.Timestamp":
            out[field.name] = value.ToNanoseconds() if message.HasField(field.name) else None
        elif kind is not None and field.is_repeated:
            out[field.name] = [document(item) for item in value]
        elif kind is not None:
            out[field.name] = document(value)
        elif field.enum_type is not None:
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", field.enum_type.name).upper() + "_"
            out[field.name] = field.enum_type.values_by_number[value].name.removeprefix(prefix)
        else:
            out[field.name] = list(value) if field.is_repeated else value
    return out


def _refused(args: argparse.Namespace, what: str, reply: Any, extra: dict[str, Any] | None = None) -> int:
    """The line of a reply that is not OK: what, the result's name and the service's message; exit 1."""
    message = f" ({reply.message})" if reply.message else ""
    emit(args, {**document(reply), **(extra or {})}, [f"{what}: {result_name(reply.result)}{message}"])
    return EXIT_FAILED_ITEMS


def _done(args: argparse.Namespace, reply: Message, line: str, extra: dict[str, Any] | None = None) -> int:
    emit(args, {**document(reply), **(extra or {})}, [line])
    return 0


def _tenant_money(args: argparse.Namespace, client: Client) -> Money | int:
    """The tenant's currency, to read and show amounts in; or the exit code of its refusal (printed)."""
    reply = client.get_tenant(w.GetTenantRequest(tenant=args.tenant))
    if reply.result != OK:
        return _refused(args, f"tenant {args.tenant}", reply)
    return money_of(reply.currency, reply.currency_scale)


def _with_key(args: argparse.Namespace, what: str, work: Callable[[Client, str], int]) -> int:
    """Run a write with its idempotency key: --key, or one drawn now and printed before anything is sent."""
    key = args.key
    if key is None:
        key = KEY_PREFIX + secrets.token_hex(16)
        print(
            f"{args.command_parser.prog}: key {key} (drawn at random): a retry of this {what} must send it again, "
            f"--key {key}; another key would be another {what}",
            file=sys.stderr,
        )
    return run_with_client(
        args,
        lambda client: work(client, key),
        waiting_notice=True,
        again=f"stopping and running it again with --key {key} is safe",
    )


def _until(nanoseconds_field: Any, present: bool) -> str:
    return format_time(nanoseconds_field.ToNanoseconds()) if present else ""


# -- tenants -------------------------------------------------------------------------------------------


_SETTING_AMOUNTS: Final = (
    "topup_min", "topup_max", "fee_fixed", "max_balance", "low_balance_threshold", "pin_above", "code_payment_max",
    "wallet_hour_amount", "wallet_day_amount", "terminal_hour_amount", "terminal_day_amount",
)  # fmt: skip
_SETTING_COUNTS: Final = ("pin_attempts", "wallet_hour_count", "wallet_day_count", "terminal_declines_flag")
_RISK_LIMITS: Final = (
    "code_payment_max", "wallet_hour_amount", "wallet_hour_count", "wallet_day_amount", "wallet_day_count",
    "terminal_hour_amount", "terminal_day_amount",
)  # fmt: skip
_OPTION_OF: Final = {"low_balance_threshold": "low_balance", "credit_expiry_seconds": "credit_expiry"}


def _settings(args: argparse.Namespace, unit: Money, base: wallet_pb2.TenantSettings) -> wallet_pb2.TenantSettings:
    """`base` with the settings the options name (amounts read in `unit`)."""
    settings = wallet_pb2.TenantSettings()
    settings.CopyFrom(base)
    for name in ("name", "self_topup", "partial_payment", "refund_to_credit", "fee_per_mille"):
        if (value := getattr(args, name)) is not None:
            setattr(settings, name, value)
    for name in _SETTING_AMOUNTS:
        option = _OPTION_OF.get(name, name)
        if (text := getattr(args, option)) is not None:
            setattr(settings, name, amount_in(text, unit, f"--{option.replace('_', '-')}", zero=True))
    if args.credit_expiry is not None:
        settings.credit_expiry_seconds = args.credit_expiry
    for name in _SETTING_COUNTS:
        if (count := getattr(args, name)) is not None:
            setattr(settings, name, count)
    if args.pin_lock is not None:
        settings.pin_lock_seconds = args.pin_lock
    if args.topup_amounts is not None:
        texts = [] if args.topup_amounts.strip() in ("", "none") else args.topup_amounts.split(",")
        for text in texts:
            try:
                check_amount_text(text)
            except argparse.ArgumentTypeError as exc:
                raise InputError(f"argument --topup-amounts: {exc}") from None
        del settings.topup_amounts[:]
        settings.topup_amounts.extend(amount_in(text, unit, "--topup-amounts") for text in texts)
    return settings


def describe_settings(settings: wallet_pb2.TenantSettings, unit: Money) -> str:
    """A tenant's settings in a few words, naming only what is not the default."""
    said = []
    if not settings.self_topup:
        said.append("no self top-up")
    elif settings.topup_amounts:
        said.append(
            f"self top-up of {', '.join(format_amount(a, unit) for a in settings.topup_amounts)} {unit.currency}"
        )
    elif settings.topup_min or settings.topup_max:
        high = shown(settings.topup_max, unit) if settings.topup_max else "any amount"
        said.append(f"self top-up {format_amount(settings.topup_min, unit)} to {high}")
    else:
        said.append("self top-up of any amount")
    if settings.partial_payment:
        said.append("partial payment")
    if settings.fee_fixed or settings.fee_per_mille:
        said.append(f"fee {shown(settings.fee_fixed, unit)} + {settings.fee_per_mille}‰")
    if settings.max_balance:
        said.append(f"at most {shown(settings.max_balance, unit)} a wallet")
    if settings.credit_expiry_seconds:
        said.append(f"credit expires after {format_span(settings.credit_expiry_seconds)}")
    if settings.low_balance_threshold:
        said.append(f"low balance under {shown(settings.low_balance_threshold, unit)}")
    if settings.refund_to_credit:
        said.append("refunds to credit")
    if settings.pin_above:
        said.append(f"PIN above {shown(settings.pin_above, unit)}")
    limits = [name for name in _RISK_LIMITS if getattr(settings, name)]
    if limits:
        said.append(f"{len(limits)} risk limit{'s' if len(limits) > 1 else ''} on code payments")
    return ", ".join(said)


def _create_tenant(args: argparse.Namespace) -> int:
    currency = args.currency.strip().upper()
    if currency not in MINOR_UNITS:
        raise InputError(f"argument --currency: {args.currency!r} is not an ISO 4217 code such as EUR, USD or JPY")
    unit = money_of(currency)
    settings = _settings(args, unit, wallet_pb2.TenantSettings(self_topup=True))

    def work(client: Client) -> int:
        reply = client.create_tenant(w.CreateTenantRequest(tenant=args.tenant, currency=currency, settings=settings))
        if reply.result != OK:
            return _refused(args, f"tenant {args.tenant}", reply)
        said = describe_settings(reply.settings, unit)
        return _done(args, reply, f"tenant {reply.tenant}: OK, {reply.currency} in ledger {reply.ledger}: {said}")

    return run_with_client(args, work, waiting_notice=True)


def _configure_tenant(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        current = client.get_tenant(w.GetTenantRequest(tenant=args.tenant))
        if current.result != OK:
            return _refused(args, f"tenant {args.tenant}", current)
        unit = money_of(current.currency, current.currency_scale)
        settings = _settings(args, unit, current.settings)
        changed = [field.name for field in settings.DESCRIPTOR.fields
                   if getattr(settings, field.name) != getattr(current.settings, field.name)]  # fmt: skip
        reply = client.configure_tenant(w.ConfigureTenantRequest(tenant=args.tenant, settings=settings))
        if reply.result != OK:
            return _refused(args, f"tenant {args.tenant}", reply)
        what = f"changed {', '.join(changed)}" if changed else "nothing changed"
        line = f"tenant {reply.tenant}: OK, {what}: {describe_settings(reply.settings, unit)}"
        return _done(args, reply, line, {"changed": changed})

    return run_with_client(args, work, waiting_notice=True)


def _show_tenant(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        reply = client.get_tenant(w.GetTenantRequest(tenant=args.tenant))
        if reply.result != OK:
            return _refused(args, f"tenant {args.tenant}", reply)
        unit = money_of(reply.currency, reply.currency_scale)
        s = reply.settings

        def bound(value: int) -> str:
            return shown(value, unit) if value else "none"

        def yes(value: bool) -> str:
            return "yes" if value else "no"

        offered = ", ".join(format_amount(a, unit) for a in s.topup_amounts)
        rows = [
            ["tenant", reply.tenant],
            ["name", s.name or "-"],
            ["currency", f"{reply.currency} ({reply.currency_scale} decimals)"],
            ["ledger", str(reply.ledger)],
            ["self top-up", yes(s.self_topup)],
            ["top-up amounts", f"{offered} {unit.currency}" if offered
                               else f"{bound(s.topup_min)} to {bound(s.topup_max)}"],
            ["partial payment", yes(s.partial_payment)],
            ["fee", f"{shown(s.fee_fixed, unit)} + {s.fee_per_mille} per mille of what the wallet pays"],
            ["max balance", bound(s.max_balance)],
            ["credit expiry", format_span(s.credit_expiry_seconds) if s.credit_expiry_seconds else "never"],
            ["low balance", bound(s.low_balance_threshold)],
            ["refund to credit", yes(s.refund_to_credit)],
            ["PIN above", bound(s.pin_above)],
            ["PIN attempts", f"{s.pin_attempts or 5}, then locked {format_span(s.pin_lock_seconds or 900)}"],
            ["code payment max", bound(s.code_payment_max)],
            ["wallet per hour", f"{bound(s.wallet_hour_amount)} in {s.wallet_hour_count or 'any number of'} payments"],
            ["wallet per day", f"{bound(s.wallet_day_amount)} in {s.wallet_day_count or 'any number of'} payments"],
            ["terminal per hour", bound(s.terminal_hour_amount)],
            ["terminal per day", bound(s.terminal_day_amount)],
            ["terminal flagged at", f"{s.terminal_declines_flag} refused codes in 10 minutes"
                                    if s.terminal_declines_flag else "never"],
            *([f"account {kind}", account] for kind, account in sorted(reply.accounts.items())),
        ]  # fmt: skip
        emit(args, document(reply), table(rows))
        return 0

    return run_with_client(args, work, waiting_notice=True)


# -- wallets -------------------------------------------------------------------------------------------


def _wallet_name(args: argparse.Namespace) -> str:
    return f"wallet {args.customer} of {args.tenant}"


def _expiring_lines(reply: wallet_pb2.BalanceReply, unit: Money) -> Iterable[str]:
    for credit in reply.expiring:
        yield f"  {shown(credit.amount, unit)} expires {format_time(credit.expires_at.ToNanoseconds())}"
    lasting = reply.available - sum(credit.amount for credit in reply.expiring)
    if reply.expiring and lasting > 0:
        yield f"  {shown(lasting, unit)} never expires"


def _open(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        reply = client.open_wallet(w.WalletRequest(tenant=args.tenant, customer=args.customer))
        if reply.result != OK:
            return _refused(args, _wallet_name(args), reply)
        unit = money_of(reply.currency)
        line = (
            f"{_wallet_name(args)}: OK, open ({status_name(reply.status)}), id {reply.wallet_id}, "
            f"available {shown(reply.available, unit)}"
        )
        return _done(args, reply, line)

    return run_with_client(args, work, waiting_notice=True)


def _balance(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        reply = client.get_balance(w.WalletRequest(tenant=args.tenant, customer=args.customer))
        if reply.result != OK:
            return _refused(args, _wallet_name(args), reply)
        unit = money_of(reply.currency)
        first = (
            f"{_wallet_name(args)}: {status_name(reply.status)}, available {shown(reply.available, unit)}, "
            f"held {shown(reply.held, unit)}, posted {shown(reply.posted, unit)}"
        )
        emit(args, document(reply), [first, *_expiring_lines(reply, unit)])
        return 0

    return run_with_client(args, work, waiting_notice=True)


def _set_status(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        request = w.SetWalletStatusRequest(
            tenant=args.tenant, customer=args.customer, status=args.status, reason=args.reason
        )
        reply = client.set_wallet_status(request)
        if reply.result != OK:
            return _refused(args, _wallet_name(args), reply)
        return _done(args, reply, f"{_wallet_name(args)}: OK, {status_name(reply.status)}")

    return run_with_client(args, work, waiting_notice=True)


# -- money moving --------------------------------------------------------------------------------------


def _top_up(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.TopUpRequest(
            tenant=args.tenant, customer=args.customer, amount=amount_in(args.amount, unit), key=key,
            source=SOURCES[args.source], reference=args.reference, operator=args.operator,
            never_expires=args.never_expires,
        )  # fmt: skip
        if args.expires is not None:
            request.expires_at.FromNanoseconds(args.expires)
        reply = client.top_up(request)
        if reply.result != OK:
            return _refused(args, f"top-up of {args.customer}'s wallet", reply, {"key": key})
        until = _until(reply.expires_at, reply.HasField("expires_at"))
        line = (
            f"top-up {reply.operation_id}: OK, {shown(reply.amount, unit)} credited to {args.customer} "
            f"({args.source}), {'expires ' + until if until else 'never expires'}, balance {shown(reply.balance, unit)}"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "top-up", work)


def _pay(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.PayRequest(
            tenant=args.tenant, customer=args.customer, amount=amount_in(args.amount, unit), key=key,
            order_reference=args.order, partial=args.partial,
        )  # fmt: skip
        reply = client.pay(request)
        if reply.result != OK:
            return _refused(args, f"payment of order {args.order}", reply, {"key": key})
        if reply.remainder:
            paid = (
                f"{shown(reply.paid, unit)} of {shown(reply.requested, unit)} paid for order {args.order}, "
                f"{shown(reply.remainder, unit)} left to pay another way"
            )
        else:
            paid = f"{shown(reply.paid, unit)} paid for order {args.order}"
        fee = f", fee {shown(reply.fee, unit)}" if reply.fee else ""
        line = f"payment {reply.payment_id}: OK, {paid}{fee}, balance {shown(reply.balance, unit)}"
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "payment", work)


def _refund(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.RefundRequest(
            tenant=args.tenant, payment_id=args.payment_id, amount=amount_in(args.amount, unit), key=key,
            to_credit=args.to_credit, reason=args.reason,
        )  # fmt: skip
        reply = client.refund(request)
        if reply.result != OK:
            return _refused(args, f"refund of payment {args.payment_id}", reply, {"key": key})
        how = " as store credit" if reply.to_credit else ""
        line = (
            f"refund {reply.refund_id}: OK, {shown(reply.amount, unit)} back into the wallet{how}, "
            f"{shown(reply.refundable, unit)} left to refund of payment {reply.payment_id}, "
            f"balance {shown(reply.balance, unit)}"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "refund", work)


def _hold(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        request = w.AuthorizeHoldRequest(
            tenant=args.tenant, customer=args.customer, amount=amount_in(args.amount, unit), key=key,
            seconds=args.duration, reference=args.reference,
        )  # fmt: skip
        reply = client.authorize_hold(request)
        if reply.result != OK:
            return _refused(args, f"hold on {args.customer}'s wallet", reply, {"key": key})
        line = (
            f"hold {reply.hold_id}: OK, {shown(reply.amount, unit)} held until "
            f"{_until(reply.expires_at, reply.HasField('expires_at'))}, balance {shown(reply.balance, unit)}"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "hold", work)


def _capture(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        amount = 0 if args.amount is None else amount_in(args.amount, unit)
        reply = client.capture_hold(w.CaptureHoldRequest(tenant=args.tenant, hold_id=args.hold_id, amount=amount,
                                                         key=key))  # fmt: skip
        if reply.result != OK:
            return _refused(args, f"capture of hold {args.hold_id}", reply, {"key": key})
        rest = ", the rest of the hold released" if amount else " (all it held)"
        line = (
            f"hold {reply.hold_id}: OK, {shown(reply.amount, unit)} captured{rest}, "
            f"balance {shown(reply.balance, unit)}"
        )
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "capture", work)


def _void(args: argparse.Namespace) -> int:
    def work(client: Client, key: str) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        reply = client.void_hold(w.VoidHoldRequest(tenant=args.tenant, hold_id=args.hold_id, key=key))
        if reply.result != OK:
            return _refused(args, f"void of hold {args.hold_id}", reply, {"key": key})
        line = f"hold {reply.hold_id}: OK, {shown(reply.amount, unit)} released, balance {shown(reply.balance, unit)}"
        return _done(args, reply, line, {"key": key})

    return _with_key(args, "void", work)
