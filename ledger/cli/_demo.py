"""`ledger info` and `ledger demo`."""

from __future__ import annotations

import argparse
import asyncio
import json

from ledger import __version__
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import (
    IMPLEMENTATION,
    Account,
    AccountFlags,
    CreateTransferResult,
    Transfer,
    TransferFlags,
    _limits,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_accounts,
    unpack_transfer_results,
)

FUNDING, WALLET, REVENUE, FEES = 1, 2, 3, 4
EUR = 978  # the ledger number: ISO 4217 numeric code of the currency


def format_minor(amount: int) -> str:
    """Minor units as a decimal string with two places (integers only: no float touches money)."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100}.{abs(amount) % 100:02d}"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    info_parser = commands.add_parser("info", help="show the engine in use and its limits")
    info_parser.set_defaults(run=lambda _: info())
    demo_parser = commands.add_parser("demo", help="run a wallet scenario through the durable ledger, print each step")
    demo_parser.add_argument("--store", help="postgresql://… or sqlite:///path (default: SQLite in LEDGER_DATA_DIR)")
    demo_parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    # A demo needs no room for millions of transfers.
    config = LedgerConfig.from_env(
        store=args.store, accounts_max=1_000, transfers_max=100_000, pending_transfers_max=1_000
    )
    return demo(config)


def info() -> int:
    """Which engine loaded, and the limits it enforces."""
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


def demo(config: LedgerConfig) -> int:
    """A wallet's day in the durable ledger: top-up, partial payment with a fee, a hold, a retried payment."""
    return asyncio.run(_demo(config))


async def _demo(config: LedgerConfig) -> int:
    async with await Ledger.open(config) as ledger:
        report = ledger.recovery
        print(f"engine: {ledger.stats().implementation}, store: {ledger.store.description}")
        print(
            f"recovered {report.accounts_count} accounts and {report.transfers_count} transfers "
            f"in {report.seconds:.3f} s (a second run shows every step as EXISTS: retries never move money twice)"
        )
        await ledger.create_accounts(
            pack_accounts(
                [
                    Account(id=FUNDING, ledger=EUR, code=1),
                    Account(id=WALLET, ledger=EUR, code=2, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
                    Account(id=REVENUE, ledger=EUR, code=3),
                    Account(id=FEES, ledger=EUR, code=4),
                ]
            )
        )

        async def book(title: str, *transfers: Transfer) -> None:
            results = unpack_transfer_results(await ledger.create_transfers(pack_transfers(list(transfers))))
            outcome = ", ".join(f"{CreateTransferResult(r.result).name} {format_minor(r.amount)}" for r in results)
            wallet = unpack_accounts(await ledger.lookup_accounts(pack_ids([WALLET])))[0]
            balance = wallet.credits_posted - wallet.debits_posted - wallet.debits_pending
            held = wallet.debits_pending
            print(f"{title:<48} {outcome:<44} wallet {format_minor(balance):>7} EUR (held {format_minor(held)})")

        def move(transfer_id: int, debit: int, credit: int, amount: int, code: int, flags: int = 0) -> Transfer:
            return Transfer(
                id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger=EUR,
                code=code, flags=flags, timeout=600 if flags & TransferFlags.PENDING else 0,
            )  # fmt: skip

        await book("top-up 50.00", move(10, FUNDING, WALLET, 50_00, code=1))
        await book(
            "pay 80.00 order with credit, 0.30 fee (chained)",
            move(11, WALLET, FEES, 30, code=3, flags=TransferFlags.LINKED),
            move(12, WALLET, REVENUE, 80_00, code=2, flags=TransferFlags.BALANCING_DEBIT),
        )
        await book(
            "the terminal retries the same payment",
            move(11, WALLET, FEES, 30, code=3, flags=TransferFlags.LINKED),
            move(12, WALLET, REVENUE, 80_00, code=2, flags=TransferFlags.BALANCING_DEBIT),
        )
        await book("top-up 20.00", move(13, FUNDING, WALLET, 20_00, code=1))
        await book(
            "hold 15.00 at a POS terminal", move(14, WALLET, REVENUE, 15_00, code=2, flags=TransferFlags.PENDING)
        )
        await book(
            "capture 12.50 of the hold",
            Transfer(id=15, pending_id=14, amount=12_50, flags=TransferFlags.POST_PENDING_TRANSFER),
        )
        await book("pay 10.00 more than the wallet holds", move(16, WALLET, REVENUE, 10_00, code=2))
    return 0
