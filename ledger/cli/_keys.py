"""`ledger keys create|list|revoke|roles`: API keys in the ledger's store, usable while the server runs, and
the roles they may have."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from ledger.auth import (
    LEDGERS_ALLOWED,
    LEDGERS_REQUIRED,
    ApiKey,
    KeyStore,
    KeyStoreError,
    Role,
    open_key_store,
    role_permissions,
)
from ledger.config import LedgerConfig

STORE_HELP = "postgresql://… or sqlite:///path (default: SQLite in LEDGER_DATA_DIR), as for `ledger serve`"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("keys", help="create, list and revoke API keys; list the roles they may have")
    keys = parser.add_subparsers(dest="keys_command", required=True)

    create = keys.add_parser("create", help="create a key; prints its token once")
    create.add_argument(
        "--tenant",
        required=True,
        help="the tenant the key belongs to (e.g. a shop); a key of a wallet role acts for this tenant only",
    )
    create.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in Role],
        metavar="ROLE",
        help="what the key may do, a set of permissions: "
        + "; ".join(f"{role.value} ({permissions_text(role)})" for role in Role)
        + "; `ledger keys roles` lists them",
    )
    create.add_argument(
        "--ledger",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="a ledger (currency) the key may touch; repeat for more; read and write keys name at least one, "
        "readonly keys may name some for ledger.read, admin, pos, shop and operator keys name none",
    )
    create.add_argument("--name", default="", help="a label for the key (what or who uses it)")
    create.add_argument(
        "--expires",
        type=parse_expiry,
        metavar="WHEN",
        help="the key stops working then: an ISO 8601 time with its zone (2027-01-31T00:00:00Z), or a span "
        "from now such as 90d, 12h or 30m (default: until revoked)",
    )
    create.add_argument("--store", help=STORE_HELP)
    create.set_defaults(run=_with_store(_create, create=True))

    listing = keys.add_parser("list", help="list every key (never a secret)")
    listing.add_argument("--store", help=STORE_HELP)
    listing.set_defaults(run=_with_store(_list, create=False))

    revoke = keys.add_parser("revoke", help="revoke a key for good (the server refuses it within seconds)")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id, as `ledger keys list` shows it")
    revoke.add_argument("--store", help=STORE_HELP)
    revoke.set_defaults(run=_with_store(_revoke, create=False))

    roles = keys.add_parser("roles", help="list the roles a key may have, with their permissions")
    roles.set_defaults(run=_roles)


def _with_store(
    command: Callable[[KeyStore, argparse.Namespace], int], *, create: bool
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            store = open_key_store(LedgerConfig.from_env(store=args.store).store_url, create=create)
        except (KeyStoreError, ValueError) as exc:
            print(f"ledger keys {args.keys_command}: {exc}", file=sys.stderr)
            return 1
        try:
            return command(store, args)
        except ValueError as exc:
            print(f"ledger keys {args.keys_command}: {exc}", file=sys.stderr)
            return 2
        except KeyStoreError as exc:
            print(f"ledger keys {args.keys_command}: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()

    return run


_SPAN = re.compile(r"(\d+)([dhm])")
_SPAN_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_expiry(text: str) -> datetime:
    """An expiry: a time with its zone (Z or +hh:mm), or a span from now (90d, 12h, 30m)."""
    if span := _SPAN.fullmatch(text.strip()):
        return datetime.now(UTC) + int(span.group(1)) * _SPAN_UNITS[span.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an ISO 8601 time nor a span such as 90d") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. {text}Z for UTC")
    return moment


def _create(store: KeyStore, args: argparse.Namespace) -> int:
    key, token = store.create_key(
        tenant=args.tenant, role=args.role, ledgers=args.ledger, name=args.name, expires_at=args.expires
    )
    print(f"created API key {key.key_id}: {_summary(key)}", file=sys.stderr)
    print(token)
    print(
        "This is the key's only copy: it cannot be shown again (the store keeps a hash of it). "
        "Clients send it as the metadata 'authorization: Bearer <key>'.",
        file=sys.stderr,
    )
    return 0


def _list(store: KeyStore, args: argparse.Namespace) -> int:
    rows = [("ID", "NAME", "TENANT", "ROLE", "LEDGERS", "CREATED", "EXPIRES", "REVOKED")]
    for key in store.all_keys():
        rows.append(
            (
                key.key_id,
                key.name or "-",
                key.tenant,
                key.role.value,
                _ledgers(key),
                _time(key.created_at),
                _time(key.expires_at) if key.expires_at is not None else "-",
                _time(key.revoked_at) if key.revoked_at is not None else "-",
            )
        )
    _print_table(rows)
    return 0


def _revoke(store: KeyStore, args: argparse.Namespace) -> int:
    key, revoked_now = store.revoke(args.key_id)
    assert key.revoked_at is not None
    if revoked_now:
        print(f"revoked API key {key.key_id} ({_summary(key)}) at {_time(key.revoked_at)}")
    else:
        print(f"API key {key.key_id} ({_summary(key)}) was already revoked at {_time(key.revoked_at)}")
    return 0


def _roles(args: argparse.Namespace) -> int:
    rows = [("ROLE", "LEDGERS", "PERMISSIONS")]
    for role in Role:
        ledgers = "all" if role is Role.ADMIN else _LEDGER_RULES[(role in LEDGERS_REQUIRED, role in LEDGERS_ALLOWED)]
        rows.append((role.value, ledgers, permissions_text(role)))
    _print_table(rows)
    print(
        "\nRead and write keys name the ledgers they touch (--ledger); a readonly key may name some for its\n"
        "ledger.read. An admin key touches every ledger and acts for every tenant. Keys of the pos, shop\n"
        "and operator roles name no ledger: they act for their own tenant (--tenant) only."
    )
    return 0


_LEDGER_RULES = {(True, True): "required", (False, True): "optional", (False, False): "none"}


def permissions_text(role: Role) -> str:
    """The permissions of `role`, for people to read."""
    if role is Role.ADMIN:
        return "every permission"
    return ", ".join(permission.value for permission in role_permissions(role))


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _summary(key: ApiKey) -> str:
    name = f"{key.name!r}, " if key.name else ""
    expiry = f", expires {_time(key.expires_at)}" if key.expires_at is not None else ""
    return f"{name}tenant {key.tenant}, role {key.role.value}, ledgers {_ledgers(key, none='none')}{expiry}"


def _ledgers(key: ApiKey, none: str = "-") -> str:
    """The ledgers a key touches: 'all' for an admin key, `none` for a key that names none."""
    if key.role is Role.ADMIN:
        return "all"
    return ",".join(str(ledger) for ledger in sorted(key.ledgers)) if key.ledgers else none


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
