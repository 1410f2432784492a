"""`ledger info`: this installation's engine and limits, or with --server what a running server says."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledger import __version__
from ledger.client import Client, LedgerError, LedgerUnauthenticated, LedgerUnreachable, ServerInfo
from ledger.engine import IMPLEMENTATION
from ledger.records import limits as _limits

from ._ops import (
    CONNECT_SECONDS_MAX,
    EXIT_CALL_FAILED,
    Commands,
    add_connection_options,
    client_config,
    table,
    unreachable,
)


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "info",
        help="the engine and limits here; with --server, what a running server is (reachable, health, version, …)",
    )
    add_connection_options(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.server is None:
        return local_info()
    return server_info(args)


def local_info() -> int:
    """Which engine loaded here, and the limits it enforces."""
    print(
        json.dumps(
            {
                "version": __version__,
                "engine": IMPLEMENTATION,
                "batch_events_max": _limits.BATCH_EVENTS_MAX,
                "amount_max": _limits.AMOUNT_MAX,
                "account_size": _limits.ACCOUNT_SIZE,
                "transfer_size": _limits.TRANSFER_SIZE,
                "accounts_max_default": _limits.ACCOUNTS_MAX_DEFAULT,
                "transfers_max_default": _limits.TRANSFERS_MAX_DEFAULT,
                "pending_transfers_max_default": _limits.PENDING_TRANSFERS_MAX_DEFAULT,
            },
            indent=2,
        )
    )
    return 0


def server_info(args: argparse.Namespace) -> int:
    """Reachable, health, then what GetServerInfo says (it needs a key when the server requires keys)."""
    config = client_config(args)
    report: dict[str, Any] = {"server": config.server, "tls": config.uses_tls, "reachable": False}
    failure = ""
    with Client(config) as client:
        try:
            client.wait_for_server(min(CONNECT_SECONDS_MAX, config.timeout_seconds))
            report["reachable"] = True
            report["health"] = client.health()
            report.update(_document(client.server_info()))
        except LedgerUnauthenticated as exc:
            report["auth_required"] = True
            if config.api_key:
                failure = f"the server refused the API key: {exc.message}"
            else:
                failure = f"the server requires an API key (--api-key or LEDGER_API_KEY) to say more: {exc.message}"
        except LedgerUnreachable as exc:
            failure = unreachable(exc, config)
        except LedgerError as exc:
            failure = str(exc)
    if failure:
        report["error"] = failure
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(table([[name, value] for name, value in _lines(report)])))
    if failure:
        print(f"ledger info: error: {failure}", file=sys.stderr)
        return EXIT_CALL_FAILED
    return 0


def _document(info: ServerInfo) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": info.version,
        "engine": info.engine,
        "auth_required": info.auth_required,
    }
    if info.auth_required:
        document["key"] = {"id": info.key_id, "tenant": info.tenant, "role": info.role, "ledgers": list(info.ledgers)}
    if info.store is not None:
        document.update(
            store=info.store,
            store_available=info.store_available,
            accounts_count=info.accounts_count,
            transfers_count=info.transfers_count,
            pending_transfers_count=info.pending_transfers_count,
            capacity_warnings=list(info.capacity_warnings),
        )
    return document


def _lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [("server", f"{report['server']} ({'TLS' if report['tls'] else 'plaintext'})")]
    lines.append(("reachable", "yes" if report["reachable"] else "no"))
    if "health" in report:
        lines.append(("health", report["health"]))
    if "version" in report:
        lines += [("version", report["version"]), ("engine", report["engine"])]
    if "key" in report:
        key = report["key"]
        ledgers = ",".join(map(str, key["ledgers"])) or "all"
        lines.append(("auth", f"on: key {key['id']} (tenant {key['tenant']}, role {key['role']}, ledgers {ledgers})"))
    elif report.get("auth_required"):
        lines.append(("auth", "on: a key is needed"))
    elif "version" in report:
        lines.append(("auth", "off: calls need no key"))
    if "store" in report:
        taking = "taking commits" if report["store_available"] else "NOT taking commits: writes are refused"
        lines.append(("store", f"{report['store']} ({taking})"))
        lines.append(
            (
                "holds",
                f"{report['accounts_count']} accounts, {report['transfers_count']} transfers, "
                f"{report['pending_transfers_count']} open holds",
            )
        )
        lines += [("capacity", warning) for warning in report["capacity_warnings"]]
    elif "version" in report:
        lines.append(("store", "(told to admin keys only)"))
    return lines
