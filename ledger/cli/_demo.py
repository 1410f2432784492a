"""`ledger demo`: a wallet's day, through the running server or, when none runs, a temporary ledger of its own.

It never touches a user's accounts: everything it books is in a ledger number
of its own (DEMO_LEDGER, `--ledger` for another) under ids derived from that
number and a name of the step (UUIDv5 in DEMO_NAMESPACE), so they cannot meet
ids a user chose. Because the ids are always the same, running it again is a
retry of every step: what was booked answers EXISTS and nothing moves twice.
Without a server it runs the steps on a temporary SQLite journal, restarts
that ledger from its journal and runs them again, then deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ledger.client import (
    Account,
    AccountFlags,
    AsyncClient,
    ClientConfig,
    CreateTransferResult,
    LedgerCallError,
    LedgerError,
    LedgerUnreachable,
    Transfer,
    TransferFlags,
)
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import start_server

from ._ops import (
    CONNECT_SECONDS_MAX,
    EXIT_CALL_FAILED,
    EXIT_FAILED_ITEMS,
    Commands,
    add_connection_options,
    client_config,
)
from ._parse import Money, format_amount, format_id, unsigned

DEMO_LEDGER: Final = 4_000_000_978
"""The demo's ledger number: its own, far from ISO 4217 numeric codes and from the small numbers tenants get."""
DEMO_NAMESPACE: Final = uuid.UUID("6f0d7a52-3c1e-5b8e-9a4d-2e7c1b9f0d35")
"""Every demo id is UUIDv5 of this namespace and "<ledger>/<name>": fixed, and apart from anyone's own ids."""
EUR: Final = Money(2, "EUR")
DEMO_ACCOUNTS_MAX: Final = 1_000
DEMO_TRANSFERS_MAX: Final = 10_000
"""The temporary ledger's engine: room for the demo, not for millions of transfers."""


def demo_id(ledger: int, name: str) -> int:
    return uuid.uuid5(DEMO_NAMESPACE, f"{ledger}/{name}").int


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="book a wallet's day (top-up, payment with a fee, retry, hold and capture) in a ledger of its own",
        description="Runs on the server at --server (default LEDGER_SERVER, else 127.0.0.1:7100) in a ledger "
        "number of its own, under ids of its own; when no server answers at the default address, on a temporary "
        "ledger that it deletes afterwards. Run it again: every booking answers EXISTS.",
    )
    add_connection_options(parser)
    parser.add_argument(
        "--ledger",
        type=unsigned(32, nonzero=True),
        default=DEMO_LEDGER,
        help=f"the ledger number to book in (default {DEMO_LEDGER}; another one for a key bound to it)",
    )
    parser.set_defaults(run=_run)


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    transfers: tuple[Transfer, ...]
    refused: bool = False
    """Expected to be refused (EXCEEDS_CREDITS): a refusal is not stored, so a retry is decided again."""


@dataclass(frozen=True, slots=True)
class Books:
    """The demo's accounts and steps in one ledger."""

    ledger: int

    def id(self, name: str) -> int:
        return demo_id(self.ledger, name)

    def accounts(self) -> list[Account]:
        wallet_flags = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.HISTORY
        return [
            Account(id=self.id("funding"), ledger=self.ledger, code=1),
            Account(id=self.id("wallet"), ledger=self.ledger, code=2, flags=wallet_flags),
            Account(id=self.id("revenue"), ledger=self.ledger, code=3),
            Account(id=self.id("fees"), ledger=self.ledger, code=4),
        ]

    def move(self, name: str, debit: str, credit: str, amount: int, code: int, flags: int = 0) -> Transfer:
        return Transfer(
            id=self.id(name), debit_account_id=self.id(debit), credit_account_id=self.id(credit), amount=amount,
            ledger=self.ledger, code=code, flags=flags, timeout=600 if flags & TransferFlags.PENDING else 0,
        )  # fmt: skip

    def steps(self) -> list[Step]:
        payment = (
            self.move("fee", "wallet", "fees", 30, code=3, flags=TransferFlags.LINKED),
            self.move("payment", "wallet", "revenue", 80_00, code=2, flags=TransferFlags.BALANCING_DEBIT),
        )
        hold = TransferFlags.PENDING
        capture = Transfer(
            id=self.id("capture"), pending_id=self.id("hold"), amount=12_50, ledger=self.ledger,
            flags=TransferFlags.POST_PENDING_TRANSFER,
        )  # fmt: skip
        return [
            Step("top-up 50.00", (self.move("top-up", "funding", "wallet", 50_00, code=1),)),
            Step("pay an 80.00 order with credit, 0.30 fee (chained)", payment),
            Step("the terminal retries the same payment", payment),
            Step("top-up 20.00", (self.move("top-up 2", "funding", "wallet", 20_00, code=1),)),
            Step("hold 15.00 at a POS terminal", (self.move("hold", "wallet", "revenue", 15_00, 2, hold),)),
            Step("capture 12.50 of the hold (2.50 released)", (capture,)),
            Step("pay 10.00 more than the wallet holds", (self.move("overdraft", "wallet", "revenue", 1000, 2),), True),
        ]


def _run(args: argparse.Namespace) -> int:
    # A server named by the operator must answer; the default address may simply have nobody serving.
    named = args.server is not None or bool(os.environ.get("LEDGER_SERVER"))
    return asyncio.run(_demo(client_config(args), args.ledger, named))


async def _demo(config: ClientConfig, ledger: int, named: bool) -> int:
    books = Books(ledger)
    try:
        async with AsyncClient(config) as client:
            try:
                await client.wait_for_server(min(CONNECT_SECONDS_MAX, config.timeout_seconds))
            except LedgerUnreachable as exc:
                if named:
                    raise
                print(f"{exc}: no ledger serves there (`ledger serve` starts one).")
            else:
                print(f"The ledger at {config.server}{await _describe(client)}, in ledger {ledger}:")
                verdict = await run_steps(client, books)
                if verdict == FIRST_RUN:
                    wallet = format_id(books.id("wallet"))
                    server = f" --server {config.server}" if named else ""
                    print(f"Run it again: every booking answers EXISTS. The wallet: ledger history {wallet}{server}")
                return 0 if verdict in (FIRST_RUN, RETRY) else EXIT_FAILED_ITEMS
        return await _on_a_temporary_ledger(books)
    except LedgerCallError as exc:
        print(f"ledger demo: error: {exc}", file=sys.stderr)
        print(
            f"  it books in ledger {ledger}: it needs a key that may write there (an admin key), or --ledger N "
            "for a ledger your key may write (its ids stay its own)",
            file=sys.stderr,
        )
        return EXIT_CALL_FAILED
    except LedgerError as exc:
        print(f"ledger demo: error: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED


async def _describe(client: AsyncClient) -> str:
    try:
        info = await client.server_info()
    except LedgerCallError:  # a server from before GetServerInfo, or a key it refuses: the steps will say
        return ""
    return f" ({info.version}, engine {info.engine}{', store ' + info.store if info.store else ''})"


async def _on_a_temporary_ledger(books: Books) -> int:
    """The steps on a ledger of the demo's own; then again after a restart from its journal: all EXISTS."""
    with tempfile.TemporaryDirectory(prefix="ledger-demo-") as directory:
        config = LedgerConfig(
            store=f"sqlite:///{Path(directory) / 'demo.sqlite3'}",
            accounts_max=DEMO_ACCOUNTS_MAX,
            transfers_max=DEMO_TRANSFERS_MAX,
            pending_transfers_max=DEMO_ACCOUNTS_MAX,
        )
        print(f"Running on a temporary ledger of its own instead ({directory}, deleted afterwards):")
        async with _served(config) as client:
            first = await run_steps(client, books)
        print("Restarting that ledger from its journal, and retrying the same steps:")
        async with _served(config) as client:
            again = await run_steps(client, books)
    return 0 if (first, again) == (FIRST_RUN, RETRY) else EXIT_FAILED_ITEMS


@asynccontextmanager
async def _served(config: LedgerConfig) -> AsyncIterator[AsyncClient]:
    async with await Ledger.open(config) as ledger:
        server, port, _ = await start_server(ledger)
        report = ledger.recovery
        if report.transfers_count:
            print(f"  (recovered {report.accounts_count} accounts and {report.transfers_count} transfers)")
        try:
            async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}")) as client:
                yield client
        finally:
            await server.stop(None)


FIRST_RUN: Final = "first run"
RETRY: Final = "retry"
UNEXPECTED: Final = "unexpected"


async def run_steps(client: AsyncClient, books: Books) -> str:
    """Each step, what it answered and the wallet after it. FIRST_RUN if every booking answered OK or EXISTS,
    RETRY if every one answered EXISTS (the refused payment is refused both times), else UNEXPECTED."""
    await client.create_accounts(books.accounts())
    wallet_id = books.id("wallet")
    bookings: list[str] = []
    refused_again = True
    for step in books.steps():
        outcomes = await client.create_transfers(list(step.transfers))
        names = [CreateTransferResult(o.result).name for o in outcomes]
        if step.refused:
            refused_again &= names == ["EXCEEDS_CREDITS"]
        else:
            bookings.extend(names)
        said = ", ".join(f"{name} {format_amount(o.amount, EUR)}" for name, o in zip(names, outcomes, strict=True))
        wallet = await client.lookup_account(wallet_id)
        assert wallet is not None  # created above
        available = wallet.credits_posted - wallet.debits_posted - wallet.debits_pending
        print(
            f"  {step.title:<52} {said:<28} wallet {format_amount(available, EUR):>6} EUR "
            f"(held {format_amount(wallet.debits_pending, EUR)})"
        )
    if refused_again and all(name == "EXISTS" for name in bookings):
        print(
            "  A retry: every booking answered EXISTS and nothing moved twice; the refused payment was refused "
            "again (a refusal is not stored, so it is decided anew)."
        )
        return RETRY
    if refused_again and all(name in ("OK", "EXISTS") for name in bookings):
        return FIRST_RUN
    print("  Some steps answered otherwise than a first run or a retry would (see above).")
    return UNEXPECTED
