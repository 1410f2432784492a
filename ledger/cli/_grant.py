"""`ledger wallet grant --csv FILE`: a bulk grant run (every employee's monthly benefit) from a CSV file.

The file has a header and the columns `customer` and `amount` (minor units, or a decimal of the tenant's
currency), and optionally `expires_at` (ISO 8601; empty: the tenant's default) for each row's own expiry.
A span such as 30d is read too, from the moment the file is sent, so a run sent again later asks for
another expiry and its grants answer IDEMPOTENCY_KEY_REUSED: write dates in a file you may send twice.

It is sent as GrantRun calls of up to 10,000 grants, a progress bar on stderr, all under one run id:
sending the same file again with the same run id pays each customer of it once (the replies replay), so
stopping and running it again is safe. With --all-or-nothing every call is checked before anything of it
moves (a run larger than one call is all-or-nothing per call of 10,000, which the summary says). Rows that
are refused are listed with their result and the service's message.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Final

from ledger.client import Client
from ledger.v1 import wallet_pb2

from ._csv import add_progress_option, progress
from ._ops import EXIT_FAILED_ITEMS, emit, run_with_client
from ._parse import InputError, parse_when
from ._wallet import OK, _refused, _tenant_argument, _tenant_money, amount_in, shown

w = wallet_pb2
CALL_GRANTS_MAX: Final = 10_000
"""Grants per GrantRun call (the service's bound)."""
SOURCES: Final = {
    "benefit": w.TOP_UP_SOURCE_BENEFIT,
    "gift": w.TOP_UP_SOURCE_GIFT,
    "operator": w.TOP_UP_SOURCE_OPERATOR,
}
FAILURES_SHOWN_MAX: Final = 20


def register(wallet_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grant = wallet_commands.add_parser(
        "grant",
        help="credit many wallets from a CSV file (customer,amount[,expires_at]) in one run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _tenant_argument(grant)
    grant.add_argument("--csv", type=Path, required=True, metavar="FILE", help="the grants, with a header row")
    grant.add_argument(
        "--run-id", required=True, help="the run's id, e.g. benefits-2027-03: the same id pays each customer once"
    )
    grant.add_argument("--source", choices=sorted(SOURCES), default="benefit", help="where the credit comes from")
    grant.add_argument(
        "--all-or-nothing", action="store_true", help="one refused grant refuses its call of up to 10,000 as a whole"
    )
    grant.add_argument("--no-open", action="store_true", help="do not open missing wallets (refuse their grants)")
    add_progress_option(grant)
    grant.set_defaults(run=_grant)


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            if reader.fieldnames is None or not {"customer", "amount"} <= set(reader.fieldnames):
                raise InputError(f"--csv {path}: the header must name the columns customer and amount")
            return list(reader)
    except OSError as exc:
        raise InputError(f"--csv {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--csv {path}: not a CSV file of UTF-8 text ({exc})") from None


def _grant(args: argparse.Namespace) -> int:
    rows = _rows(args.csv)
    if not rows:
        raise InputError(f"--csv {args.csv}: no rows")

    def work(client: Client) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        items = []
        for number, row in enumerate(rows, 2):  # the header is line 1
            item = w.GrantItem(
                customer=row["customer"].strip(), amount=amount_in(row["amount"].strip(), unit, f"line {number} amount")
            )
            expires = (row.get("expires_at") or "").strip()
            if expires:
                try:
                    item.expires_at.FromNanoseconds(parse_when(expires))
                except argparse.ArgumentTypeError as exc:
                    raise InputError(f"--csv line {number} expires_at: {exc}") from None
            items.append(item)
        granted = granted_amount = 0
        failures: list[tuple[int, str, str]] = []
        with progress(args, len(items), "grant") as bar:
            for start in range(0, len(items), CALL_GRANTS_MAX):
                chunk = items[start : start + CALL_GRANTS_MAX]
                request = w.GrantRunRequest(
                    tenant=args.tenant, run_id=args.run_id, items=chunk, all_or_nothing=args.all_or_nothing,
                    open_wallets=not args.no_open, source=SOURCES[args.source],
                )  # fmt: skip
                reply = client.grant_run(request, timeout=max(client.config.timeout_seconds, 120.0))
                if reply.result != OK:
                    return _refused(args, f"grant run {args.run_id}", reply)
                granted += reply.granted
                granted_amount += reply.granted_amount
                for index, item_reply in enumerate(reply.replies):
                    if item_reply.result != OK:
                        name = w.WalletResult.Name(item_reply.result).removeprefix("WALLET_RESULT_")
                        failures.append((start + index + 2, name, item_reply.message))
                bar.update(len(chunk))
        calls = (len(items) + CALL_GRANTS_MAX - 1) // CALL_GRANTS_MAX
        scope = (
            f" (all-or-nothing per call of {CALL_GRANTS_MAX}: {calls} calls)"
            if args.all_or_nothing and calls > 1
            else ""
        )
        lines = [
            f"grant run {args.run_id}: {granted} of {len(items)} grants OK, {shown(granted_amount, unit)} credited"
            f"{scope}"
        ]
        lines += [f"  line {line}: {name} ({message})" for line, name, message in failures[:FAILURES_SHOWN_MAX]]
        if len(failures) > FAILURES_SHOWN_MAX:
            lines.append(f"  … and {len(failures) - FAILURES_SHOWN_MAX} more refused")
        document = {
            "run_id": args.run_id, "grants": len(items), "granted": granted, "granted_amount": granted_amount,
            "refused": [{"line": line, "result": name, "message": message} for line, name, message in failures],
        }  # fmt: skip
        emit(args, document, lines)
        return EXIT_FAILED_ITEMS if failures else 0

    return run_with_client(args, work, again="running it again with the same --run-id pays each customer once")
